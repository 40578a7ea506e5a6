/* batch_store.h — an agency node's batch queries (一括照会, DESIGN §4): the
 * batches its business systems submitted and each query of them, pending
 * until it is settled. A query of a batch is settled as a single query is
 * (its record, and its answer kept under its query_id, records/answers.h);
 * this module keeps the batch's side: which queries it holds, which are
 * still to send and when, and in what order they settled (the batch's
 * results are read in that order). Tables: query_batches, batch_queries
 * (module "batches"). Every function takes the agency's store. */
#ifndef RK_AGENCY_BATCH_STORE_H
#define RK_AGENCY_BATCH_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"
#include "lib/ids.h"
#include "records/answers.h"
#include "store/db.h"

/* Brings the module's tables to the newest version. */
rk_rc batch_store_migrate(rk_db *db);

/* One query of a new batch: its id, provider, the hash of its body (as a
 * single POST /v1/queries would hash it) and the body itself (no value, no
 * My Number: a query names a person id). */
typedef struct batch_query_in {
    const char *query_id, *provider, *request_hash, *body;
} batch_query_in;

/* Stores a batch of n queries of owner (the calling business system) under
 * batch_id, all pending, in one commit. The same batch_id with the same
 * request_hash again: RK_ERR_EXISTS, nothing stored; with another:
 * RK_ERR_CONFLICT. */
rk_rc batch_store_add(rk_db *db, const char *owner, const char *batch_id, const char *request_hash,
                      const batch_query_in *q, size_t n, int64_t now_ms);

/* A query claimed to be sent (a copy of its row). */
typedef struct batch_query {
    int64_t id;
    char owner[RK_ID_FIELD_MAX + 1], batch_id[RK_ID_FIELD_MAX + 1], query_id[RK_ID_FIELD_MAX + 1];
    char provider[RK_AGENCY_FIELD_MAX + 1];
    char request_hash[65];
    char *body;                 /* malloc'ed (batch_store_free) */
    int64_t requested_ms;
    int attempts;               /* claims so far, this one included */
} batch_query;

/* Claims up to max pending queries due by now_ms, all for one provider (the
 * provider of the one due first), oldest first: each is not due again
 * before now_ms + lease_ms, unless released or settled. *n may be 0. */
rk_rc batch_store_claim(rk_db *db, int64_t now_ms, int64_t lease_ms, batch_query *out, size_t max, size_t *n);
void batch_store_free(batch_query *q, size_t n);

/* The earliest time a pending query is due (*due_ms), or -1 when none. */
rk_rc batch_store_next_due(rk_db *db, int64_t *due_ms);

/* At a node's start: every pending query is due at once (the claims of a
 * process that stopped are void; one agency node per store). */
rk_rc batch_store_resume(rk_db *db);

/* A claimed query whose outcome is unknown: due again at next_ms. */
rk_rc batch_store_release(rk_db *db, const int64_t *ids, const int64_t *next_ms, size_t n);

/* A claimed query settled: with `settlement` (not NULL) its record, kept
 * answer and extra rows are committed as well; without, it was settled
 * already (its kept answer stands). status and outcome (the answer's
 * "status", or its error code) are the batch's tally. One settled meanwhile
 * by a single query takes that query's answer. rc: each one's result. */
typedef struct batch_done {
    int64_t id;
    const char *owner, *batch_id, *query_id;
    const rk_settlement *settlement;
    int status;
    const char *outcome;
    rk_rc rc;
} batch_done;
rk_rc batch_store_settle(rk_db *db, batch_done *d, size_t n);

/* A batch's progress and the results settled after seq `after` (at most
 * limit, in the order they settled): {"batch_id","total","settled",
 * "pending","by_status":{outcome: n},"results":[{"index","query_id",
 * "http_status","answer"}],"next_after"}. RK_ERR_NOT_FOUND when owner has
 * no such batch. */
rk_rc batch_store_progress(rk_db *db, const char *owner, const char *batch_id, int64_t after, int limit,
                           json_t **out);

/* A query's state: its kept answer (RK_OK, *status and *body malloc'ed),
 * else pending in a batch (RK_ERR_BUSY, that batch's id in batch_id), else
 * RK_ERR_NOT_FOUND. */
rk_rc batch_store_query_state(rk_db *db, const char *query_id, int *status, char **body,
                              char batch_id[RK_ID_FIELD_MAX + 1]);

/* The tally word of an answer: its "status", else its error code (out: at
 * least 32 bytes; "" when neither). */
void batch_answer_outcome(const char *body, char *out, size_t outlen);

#endif
