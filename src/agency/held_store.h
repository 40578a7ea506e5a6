/* held_store.h — held answers (手動応答) at an agency node: the persons
 * whose provision requests are not answered automatically (支援措置 for
 * victims of DV, stalking, child abuse), the provision requests held for
 * an operator with their late results to send, and, at the requester, the
 * queries waiting for such a result (DESIGN §2.2, §4). A held request
 * keeps what its late answer needs (the requester's certificate, the
 * code, the condition), never a value: the value is read and sealed only
 * when an operator answers. */
#ifndef RK_HELD_STORE_H
#define RK_HELD_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"
#include "lib/ids.h"
#include "records/records.h"

struct rk_db;

#define HELD_REASON_MAX 150
#define HELD_CONDITION_MAX 64 /* the condition as its JSON member, "" for none */

rk_rc held_store_migrate(struct rk_db *db);

/* ---------- handling of a person (PUT /v1/persons/{person}/handling) ---------- */

/* auto_answer 0: the person's provision requests are held, for reason;
 * 1: answered automatically again. RK_ERR_NOT_FOUND: no such person here. */
rk_rc held_store_set_handling(struct rk_db *db, const char *person, int auto_answer, const char *reason,
                              int64_t now_ms);
/* *held 1 when the person's provision requests are held (a read). */
rk_rc held_store_person_held(struct rk_db *db, const char *person, int *held);

/* ---------- the provider's held requests ---------- */

/* What a held provision keeps (a settlement's extra, inside its commit). */
typedef struct held_in {
    const char *exchange_id, *person, *requester, *business, *item, *operator_id, *code, *condition_json,
        *requester_cert;
    int64_t requested_ms, deadline_ms;
} held_in;
rk_rc held_store_keep(struct rk_db *db, void *held_in);

typedef struct held_row {
    int64_t seq;
    char exchange_id[RK_EXCHANGE_ID_MAX + 1];
    char person[RK_ID_FIELD_MAX + 1];
    char requester[RK_AGENCY_FIELD_MAX + 1];
    char business[RK_CATALOGUE_ID_MAX + 1];
    char item[RK_CATALOGUE_ID_MAX + 1];
    char operator_id[RK_ID_FIELD_MAX + 1];
    char code[RK_CODE_FIELD_MAX + 1];
    char condition_json[HELD_CONDITION_MAX + 1];
    char state[12];                  /* held, answered, declined */
    char *requester_cert;            /* malloc'ed: held_row_clear */
    int64_t requested_ms, deadline_ms;
} held_row;
void held_row_clear(held_row *r);

/* RK_ERR_NOT_FOUND when no request with this exchange id was held here. */
rk_rc held_store_get(struct rk_db *db, const char *exchange_id, held_row *out);

/* The requests still held, oldest first, after seq `after` (0: from the
 * first): metadata only, as a JSON array; *next the cursor of the next
 * page, 0 when none. */
rk_rc held_store_list(struct rk_db *db, int64_t after, int limit, json_t **out, int64_t *next);

/* An operator's answer or decline, or the timeout's decline, in one commit:
 * the state moves from held to `state` (answered, declined), the record of
 * the late outcome is appended and the result to send to the core is
 * queued (due now). RK_ERR_CONFLICT when the request is no longer held. */
rk_rc held_store_handle(struct rk_db *db, const char *exchange_id, const char *state, const char *by,
                        const rk_record *late, const char *result_json, int64_t now_ms);

/* Up to max requests held past their deadline (exchange ids into ids). */
rk_rc held_store_expired(struct rk_db *db, int64_t now_ms, char (*ids)[RK_EXCHANGE_ID_MAX + 1], size_t max,
                         size_t *n);

/* The late results to send to the core (POST /v1/provision-results),
 * claimed for lease_ms so that one instance sends each. */
typedef struct held_result {
    int64_t seq;
    char exchange_id[RK_EXCHANGE_ID_MAX + 1];
    char *result_json;               /* malloc'ed */
    int attempts;
} held_result;
rk_rc held_store_claim_results(struct rk_db *db, int64_t now_ms, int64_t lease_ms, held_result *out, size_t max,
                               size_t *n);
/* The earliest next attempt of a result not yet sent, or -1 when none (a
 * read: the service claims only when one is due). */
int64_t held_store_next_due(struct rk_db *db);
/* done: sent (the core has it); else due again at next_ms. */
rk_rc held_store_result_sent(struct rk_db *db, int64_t seq, int done, int64_t next_ms, int64_t now_ms);
/* How many held requests (state held), and results not yet sent. */
rk_rc held_store_counts(struct rk_db *db, int64_t *held, int64_t *unsent);

/* ---------- the requester's queries waiting for a late result ---------- */

typedef struct awaiting_in {
    const char *exchange_id, *query_id, *person, *provider, *item;
    int64_t at_ms;
} awaiting_in;
rk_rc held_store_keep_awaiting(struct rk_db *db, void *awaiting_in);

typedef struct awaiting_row {
    char exchange_id[RK_EXCHANGE_ID_MAX + 1];
    char query_id[RK_ID_FIELD_MAX + 1];
    char person[RK_ID_FIELD_MAX + 1];
    char provider[RK_AGENCY_FIELD_MAX + 1];
    char item[RK_CATALOGUE_ID_MAX + 1];
    int settled;
} awaiting_row;
rk_rc held_store_awaiting_get(struct rk_db *db, const char *exchange_id, awaiting_row *out);

/* The late result settles the query, in one commit: the record appended,
 * the answer kept under its query_id replaced, extra (may be NULL) run
 * (a received value), the wait ended. RK_ERR_EXISTS when it was settled
 * before (nothing changes). */
rk_rc held_store_settle_awaiting(struct rk_db *db, const char *exchange_id, const rk_record *late, int status,
                                 const char *answer, rk_rc (*extra)(struct rk_db *, void *), void *extra_arg,
                                 int64_t now_ms);

#endif
