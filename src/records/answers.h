/* answers.h — the answers kept so that a retry with the same id gets the
 * first answer, and settlement: a record and its kept answer committed in
 * one transaction, both on disk before anyone is told (DESIGN §2.2, §3). */
#ifndef RK_ANSWERS_H
#define RK_ANSWERS_H

#include <jansson.h>
#include "store/db.h"
#include "lib/err.h"

struct rk_record; /* records/records.h */
struct rk_response;

/* Looks up the answer kept for (key, side). RK_ERR_NOT_FOUND: none;
 * RK_ERR_CONFLICT: the same key came with another request (request_hash
 * differs; a NULL request_hash takes the kept answer whatever its request).
 * On RK_OK *status and *body (malloc'ed) are the first answer. */
rk_rc rk_answer_get(rk_db *db, const char *key, const char *side, const char *request_hash, int *status,
                    char **body);

/* A repeat of the request kept under (key, side), answered at once: the
 * first answer again (1), or 409 `conflict` when the key came with another
 * request (1); 0 when nothing is kept there (resp untouched). id_name names
 * the key in the error ("exchange_id", "query_id"). */
int rk_answer_replay(rk_db *db, const char *key, const char *side, const char *request_hash, const char *id_name,
                     struct rk_response *resp);

/* The same for one entry of a batch: 1 with *status and *text (malloc'ed;
 * the first answer, or 409 conflict), 0 when nothing is kept there. */
int rk_answer_entry(rk_db *db, const char *key, const char *side, const char *request_hash, const char *id_name,
                    int *status, char **text);

/* Inside a write callback (rk_db_write): keeps an answer under (key, side). */
rk_rc rk_answer_keep(rk_db *db, const char *key, const char *side, const char *request_hash, int status,
                     const char *body);

/* Settles an exchange for a flow on the event loop (node/flow.h): in one
 * commit, made by the store's committer thread (rk_db_write_later), the
 * record is appended (when not NULL), the answer kept and `extra` (may be
 * NULL) run for the caller's own rows; then written(arg, rc) on the loop,
 * RK_ERR_CONFLICT when the key was settled meanwhile. *s and everything it
 * points to must live until then. */
typedef struct rk_settlement {
    const struct rk_record *record; /* appended when not NULL */
    const char *key, *request_hash, *body;
    int status;
    rk_rc (*extra)(rk_db *db, void *arg);
    void *extra_arg;
    rk_rc rc;                       /* out, rk_settle_many: this one's result */
} rk_settlement;
rk_rc rk_settle_later(rk_db *db, struct event_base *base, const rk_settlement *s, rk_db_written_fn written,
                      void *arg);
/* Inside a write callback: the settlement's rows (record, kept answer,
 * extra); RK_ERR_CONFLICT when the key is settled already. */
rk_rc rk_settle_in_tx(rk_db *db, const rk_settlement *s);
/* The batch forms (a worker or a background thread; it waits): n
 * settlements in one commit, each in its own savepoint, so that one
 * settled meanwhile (s[i].rc RK_ERR_CONFLICT: its kept answer stands) or
 * failing leaves the others. Returns the commit's result. */
rk_rc rk_settle_many(rk_db *db, rk_settlement *s, size_t n);
/* The entries of a batch's answer (POST /v1/exchanges/batch,
 * /v1/provisions/batch): each its id, HTTP status and answer text
 * (malloc'ed, the caller frees it), and, when settle is set, the
 * settlement that records it (its body is the text). */
typedef struct rk_entry_answer {
    const char *id;
    int status;
    char *text;
    int settle;
    rk_settlement s;
} rk_entry_answer;
/* Settles the entries marked settle in one commit (rk_settle_many, on a
 * worker); one settled meanwhile takes the answer kept then, one that
 * could not be recorded a 500 store_error (nothing settled: sent again
 * with the same id, it may be). s.rc tells each one's result. */
void rk_settle_entries(rk_db *db, rk_entry_answer *e, size_t n, const char *id_name);
/* {"results":[{<id_name>: id, "http_status", "answer"}, …]} in order; NULL
 * without memory. */
json_t *rk_entry_results(const rk_entry_answer *e, size_t n, const char *id_name);

/* The other side's reading of such results: entry j's answer when it
 * answers the entry with this id (*status its HTTP status), else NULL. */
json_t *rk_entry_result(json_t *results, size_t j, const char *id_name, const char *id, long *status);

/* SHA-256 hex of the canonical (sorted, compact) JSON of a request: the
 * request_hash under which an answer is kept. */
void rk_request_hash(json_t *request, char out[65]);

#endif
