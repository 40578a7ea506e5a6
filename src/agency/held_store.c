/* held_store.c — held answers at an agency node (held_store.h). */
#include "agency/held_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "records/answers.h"
#include "store/db.h"

static const char *const held_steps[] = {
    /* Persons whose provision requests wait for an operator (手動応答). */
    "CREATE TABLE handling (person TEXT PRIMARY KEY, reason TEXT NOT NULL, at_ms BIGINT NOT NULL) {without_rowid};"
    /* The provider's held requests: what the late answer needs, never a
     * value; then the result to send to the core until it has it. */
    "CREATE TABLE held ("
    "  seq {id}, exchange_id TEXT NOT NULL UNIQUE, person TEXT NOT NULL, requester TEXT NOT NULL,"
    "  business TEXT NOT NULL, item TEXT NOT NULL, operator TEXT NOT NULL, code TEXT NOT NULL,"
    "  condition TEXT NOT NULL, requester_cert TEXT NOT NULL, requested_ms BIGINT NOT NULL,"
    "  deadline_ms BIGINT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('held','answered','declined')), handled_by TEXT, handled_ms BIGINT,"
    "  result TEXT, attempts BIGINT NOT NULL DEFAULT 0, next_ms BIGINT, sent_ms BIGINT);"
    "CREATE INDEX held_state ON held(state, deadline_ms);"
    "CREATE INDEX held_unsent ON held(next_ms) WHERE result IS NOT NULL AND sent_ms IS NULL;"
    /* The requester's queries answered `held`, until their late result. */
    "CREATE TABLE awaiting ("
    "  exchange_id TEXT PRIMARY KEY, query_id TEXT NOT NULL, person TEXT NOT NULL, provider TEXT NOT NULL,"
    "  item TEXT NOT NULL, at_ms BIGINT NOT NULL, settled_ms BIGINT) {without_rowid};",
};

rk_rc held_store_migrate(rk_db *db)
{
    return rk_db_migrate(db, "held", held_steps, (int)(sizeof held_steps / sizeof held_steps[0]));
}

/* ---------- handling ---------- */

typedef struct handling_args {
    const char *person, *reason;
    int auto_answer;
    int64_t now_ms;
} handling_args;

static rk_rc handling_in_tx(rk_db *db, void *arg)
{
    handling_args *h = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT 1 FROM persons WHERE person = ?");
    rk_bind_text(q, 1, h->person);
    rk_rc rc = rk_stmt_next(q);
    if (rc != RK_OK)
        return rc;
    rk_stmt *st;
    if (h->auto_answer) {
        st = rk_db_stmt(db, "DELETE FROM handling WHERE person = ?");
        rk_bind_text(st, 1, h->person);
    } else {
        st = rk_db_stmt(db, "INSERT INTO handling(person, reason, at_ms) VALUES (?,?,?)"
                            " ON CONFLICT (person) DO UPDATE SET reason = excluded.reason, at_ms = excluded.at_ms");
        rk_bind_text(st, 1, h->person);
        rk_bind_text(st, 2, h->reason ? h->reason : "");
        rk_bind_int(st, 3, h->now_ms);
    }
    return rk_stmt_exec(st);
}

rk_rc held_store_set_handling(rk_db *db, const char *person, int auto_answer, const char *reason, int64_t now_ms)
{
    handling_args h = {person, reason, auto_answer, now_ms};
    return rk_db_write(db, handling_in_tx, &h);
}

typedef struct person_held_args {
    const char *person;
    int *held;
} person_held_args;

static rk_rc person_held_fn(rk_db *db, void *arg)
{
    person_held_args *x = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT 1 FROM handling WHERE person = ?");
    rk_bind_text(q, 1, x->person);
    rk_rc rc = rk_stmt_next(q);
    *x->held = rc == RK_OK;
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

rk_rc held_store_person_held(rk_db *db, const char *person, int *held)
{
    person_held_args x = {person, held};
    *held = 0;
    return rk_db_read(db, person_held_fn, &x);
}

/* ---------- the provider's held requests ---------- */

rk_rc held_store_keep(rk_db *db, void *arg)
{
    const held_in *h = arg;
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO held(exchange_id, person, requester, business, item, operator, code,"
                                 " condition, requester_cert, requested_ms, deadline_ms, state)"
                                 " VALUES (?,?,?,?,?,?,?,?,?,?,?,'held')");
    rk_bind_text(st, 1, h->exchange_id);
    rk_bind_text(st, 2, h->person);
    rk_bind_text(st, 3, h->requester);
    rk_bind_text(st, 4, h->business);
    rk_bind_text(st, 5, h->item);
    rk_bind_text(st, 6, h->operator_id ? h->operator_id : "");
    rk_bind_text(st, 7, h->code);
    rk_bind_text(st, 8, h->condition_json ? h->condition_json : "");
    rk_bind_text(st, 9, h->requester_cert);
    rk_bind_int(st, 10, h->requested_ms);
    rk_bind_int(st, 11, h->deadline_ms);
    return rk_stmt_exec(st);
}

void held_row_clear(held_row *r)
{
    free(r->requester_cert);
    r->requester_cert = NULL;
}

#define HELD_COLUMNS "seq, exchange_id, person, requester, business, item, operator, code, condition," \
                     " requested_ms, deadline_ms, state"

static void row_from(rk_stmt *q, held_row *r)
{
    r->seq = rk_col_int(q, 0);
    rk_col_copy(q, 1, r->exchange_id, sizeof r->exchange_id);
    rk_col_copy(q, 2, r->person, sizeof r->person);
    rk_col_copy(q, 3, r->requester, sizeof r->requester);
    rk_col_copy(q, 4, r->business, sizeof r->business);
    rk_col_copy(q, 5, r->item, sizeof r->item);
    rk_col_copy(q, 6, r->operator_id, sizeof r->operator_id);
    rk_col_copy(q, 7, r->code, sizeof r->code);
    rk_col_copy(q, 8, r->condition_json, sizeof r->condition_json);
    r->requested_ms = rk_col_int(q, 9);
    r->deadline_ms = rk_col_int(q, 10);
    rk_col_copy(q, 11, r->state, sizeof r->state);
}

typedef struct get_args {
    const char *exchange_id;
    held_row *out;
} get_args;

static rk_rc get_fn(rk_db *db, void *arg)
{
    get_args *x = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT " HELD_COLUMNS ", requester_cert FROM held WHERE exchange_id = ?");
    rk_bind_text(q, 1, x->exchange_id);
    rk_rc rc = rk_stmt_next(q);
    if (rc != RK_OK)
        return rc;
    row_from(q, x->out);
    const char *cert = rk_col_text(q, 12);
    x->out->requester_cert = strdup(cert ? cert : "");
    return x->out->requester_cert ? RK_OK : RK_ERR_NOMEM;
}

rk_rc held_store_get(rk_db *db, const char *exchange_id, held_row *out)
{
    memset(out, 0, sizeof *out);
    get_args x = {exchange_id, out};
    rk_rc rc = rk_db_read(db, get_fn, &x);
    if (rc != RK_OK)
        held_row_clear(out);
    return rc;
}

typedef struct list_args {
    int64_t after;
    int limit;
    json_t *list;
    int64_t *next;
} list_args;

static rk_rc list_fn(rk_db *db, void *arg)
{
    list_args *x = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT " HELD_COLUMNS " FROM held WHERE state = 'held' AND seq > ?"
                                " ORDER BY seq LIMIT ?");
    rk_bind_int(q, 1, x->after);
    rk_bind_int(q, 2, x->limit + 1);
    rk_rc rc;
    int n = 0;
    while ((rc = rk_stmt_next(q)) == RK_OK) {
        held_row r;
        row_from(q, &r);
        if (++n > x->limit) { /* there is a next page */
            break;
        }
        *x->next = 0;
        char requested[32], deadline[32];
        rk_format_time(r.requested_ms, requested, sizeof requested);
        rk_format_time(r.deadline_ms, deadline, sizeof deadline);
        json_t *one = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I}", "exchange_id", r.exchange_id, "person",
                                r.person, "requester", r.requester, "business", r.business, "item", r.item,
                                "requester_operator", r.operator_id, "requested_at", requested, "decline_at",
                                deadline, "seq", (json_int_t)r.seq);
        if (one && r.condition_json[0])
            json_object_set_new(one, "condition", json_loads(r.condition_json, 0, NULL));
        if (!one || json_array_append_new(x->list, one) != 0)
            return RK_ERR_NOMEM;
    }
    if (rc == RK_OK && n > x->limit) /* the last row of this page is the cursor */
        *x->next = json_integer_value(json_object_get(json_array_get(x->list, (size_t)x->limit - 1), "seq"));
    return rc == RK_ERR_NOT_FOUND || rc == RK_OK ? RK_OK : rc;
}

rk_rc held_store_list(rk_db *db, int64_t after, int limit, json_t **out, int64_t *next)
{
    *next = 0;
    *out = json_array();
    if (!*out)
        return RK_ERR_NOMEM;
    list_args x = {after, limit, *out, next};
    rk_rc rc = rk_db_read(db, list_fn, &x);
    if (rc != RK_OK) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

typedef struct handle_args {
    const char *exchange_id, *state, *by, *result;
    const rk_record *late;
    int64_t now_ms;
} handle_args;

static rk_rc handle_in_tx(rk_db *db, void *arg)
{
    handle_args *h = arg;
    rk_stmt *st = rk_db_stmt(db, "UPDATE held SET state = ?, handled_by = ?, handled_ms = ?, result = ?,"
                                 " next_ms = ? WHERE exchange_id = ? AND state = 'held'");
    rk_bind_text(st, 1, h->state);
    rk_bind_text(st, 2, h->by);
    rk_bind_int(st, 3, h->now_ms);
    rk_bind_text(st, 4, h->result);
    rk_bind_int(st, 5, h->now_ms);
    rk_bind_text(st, 6, h->exchange_id);
    rk_rc rc = rk_stmt_exec(st);
    if (rc == RK_OK && rk_db_changes(db) == 0)
        return RK_ERR_CONFLICT; /* handled meanwhile, or never held */
    return rc == RK_OK ? rk_record_append(db, h->late) : rc;
}

rk_rc held_store_handle(rk_db *db, const char *exchange_id, const char *state, const char *by, const rk_record *late,
                        const char *result_json, int64_t now_ms)
{
    handle_args h = {exchange_id, state, by, result_json, late, now_ms};
    return rk_db_write(db, handle_in_tx, &h);
}

typedef struct expired_args {
    int64_t now_ms;
    char (*ids)[RK_EXCHANGE_ID_MAX + 1];
    size_t max, *n;
} expired_args;

static rk_rc expired_fn(rk_db *db, void *arg)
{
    expired_args *x = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT exchange_id FROM held WHERE state = 'held' AND deadline_ms <= ?"
                                " ORDER BY deadline_ms LIMIT ?");
    rk_bind_int(q, 1, x->now_ms);
    rk_bind_int(q, 2, (int64_t)x->max);
    rk_rc rc;
    while ((rc = rk_stmt_next(q)) == RK_OK && *x->n < x->max)
        rk_col_copy(q, 0, x->ids[(*x->n)++], RK_EXCHANGE_ID_MAX + 1);
    return rc == RK_ERR_NOT_FOUND || rc == RK_OK ? RK_OK : rc;
}

rk_rc held_store_expired(rk_db *db, int64_t now_ms, char (*ids)[RK_EXCHANGE_ID_MAX + 1], size_t max, size_t *n)
{
    *n = 0;
    expired_args x = {now_ms, ids, max, n};
    return rk_db_read(db, expired_fn, &x);
}

typedef struct claim_args {
    int64_t now_ms, lease_ms;
    held_result *out;
    size_t max, *n;
} claim_args;

/* A write: the due results claimed as they are read (their next attempt
 * moved to the lease's end), rows another instance's claim holds passed over. */
static rk_rc claim_in_tx(rk_db *db, void *arg)
{
    claim_args *x = arg;
    rk_stmt *q = rk_db_stmt(db, "UPDATE held SET next_ms = ? WHERE seq IN ("
                                "  SELECT seq FROM held WHERE result IS NOT NULL AND sent_ms IS NULL AND next_ms <= ?"
                                "  ORDER BY next_ms LIMIT ? {skip_locked})"
                                " RETURNING seq, exchange_id, result, attempts");
    rk_bind_int(q, 1, x->now_ms + x->lease_ms);
    rk_bind_int(q, 2, x->now_ms);
    rk_bind_int(q, 3, (int64_t)x->max);
    rk_rc rc;
    while ((rc = rk_stmt_next(q)) == RK_OK)
        if (*x->n < x->max) {
            held_result *r = &x->out[*x->n];
            r->seq = rk_col_int(q, 0);
            rk_col_copy(q, 1, r->exchange_id, sizeof r->exchange_id);
            const char *text = rk_col_text(q, 2);
            r->result_json = strdup(text ? text : "");
            r->attempts = (int)rk_col_int(q, 3);
            if (!r->result_json)
                return RK_ERR_NOMEM;
            (*x->n)++;
        }
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

rk_rc held_store_claim_results(rk_db *db, int64_t now_ms, int64_t lease_ms, held_result *out, size_t max, size_t *n)
{
    *n = 0;
    claim_args x = {now_ms, lease_ms, out, max, n};
    rk_rc rc = rk_db_write(db, claim_in_tx, &x);
    if (rc != RK_OK) { /* rolled back: nothing is claimed */
        for (size_t i = 0; i < *n; i++)
            free(out[i].result_json);
        *n = 0;
    }
    return rc;
}

static rk_rc next_due_fn(rk_db *db, void *arg)
{
    rk_stmt *q = rk_db_stmt(db, "SELECT min(next_ms) FROM held WHERE result IS NOT NULL AND sent_ms IS NULL");
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK && !rk_col_is_null(q, 0))
        *(int64_t *)arg = rk_col_int(q, 0);
    return rc;
}

int64_t held_store_next_due(rk_db *db)
{
    int64_t next = -1;
    rk_db_read(db, next_due_fn, &next);
    return next;
}

typedef struct sent_args {
    int64_t seq, next_ms, now_ms;
    int done;
} sent_args;

static rk_rc sent_in_tx(rk_db *db, void *arg)
{
    sent_args *x = arg;
    rk_stmt *st;
    if (x->done) {
        st = rk_db_stmt(db, "UPDATE held SET sent_ms = ?, attempts = attempts + 1 WHERE seq = ?");
        rk_bind_int(st, 1, x->now_ms);
    } else {
        st = rk_db_stmt(db, "UPDATE held SET next_ms = ?, attempts = attempts + 1 WHERE seq = ?");
        rk_bind_int(st, 1, x->next_ms);
    }
    rk_bind_int(st, 2, x->seq);
    return rk_stmt_exec(st);
}

rk_rc held_store_result_sent(rk_db *db, int64_t seq, int done, int64_t next_ms, int64_t now_ms)
{
    sent_args x = {seq, next_ms, now_ms, done};
    return rk_db_write(db, sent_in_tx, &x);
}

typedef struct counts_args {
    int64_t *held, *unsent;
} counts_args;

static rk_rc counts_fn(rk_db *db, void *arg)
{
    counts_args *x = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT (SELECT count(*) FROM held WHERE state = 'held'),"
                                " (SELECT count(*) FROM held WHERE result IS NOT NULL AND sent_ms IS NULL)");
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK) {
        *x->held = rk_col_int(q, 0);
        *x->unsent = rk_col_int(q, 1);
    }
    return rc;
}

rk_rc held_store_counts(rk_db *db, int64_t *held, int64_t *unsent)
{
    counts_args x = {held, unsent};
    *held = *unsent = 0;
    return rk_db_read(db, counts_fn, &x);
}

/* ---------- the requester's side ---------- */

rk_rc held_store_keep_awaiting(rk_db *db, void *arg)
{
    const awaiting_in *w = arg;
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO awaiting(exchange_id, query_id, person, provider, item, at_ms)"
                                 " VALUES (?,?,?,?,?,?)");
    rk_bind_text(st, 1, w->exchange_id);
    rk_bind_text(st, 2, w->query_id);
    rk_bind_text(st, 3, w->person);
    rk_bind_text(st, 4, w->provider);
    rk_bind_text(st, 5, w->item);
    rk_bind_int(st, 6, w->at_ms);
    return rk_stmt_exec(st);
}

typedef struct awaiting_args {
    const char *exchange_id;
    awaiting_row *out;
} awaiting_args;

static rk_rc awaiting_fn(rk_db *db, void *arg)
{
    awaiting_args *x = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT exchange_id, query_id, person, provider, item, settled_ms FROM awaiting"
                                " WHERE exchange_id = ?");
    rk_bind_text(q, 1, x->exchange_id);
    rk_rc rc = rk_stmt_next(q);
    if (rc != RK_OK)
        return rc;
    rk_col_copy(q, 0, x->out->exchange_id, sizeof x->out->exchange_id);
    rk_col_copy(q, 1, x->out->query_id, sizeof x->out->query_id);
    rk_col_copy(q, 2, x->out->person, sizeof x->out->person);
    rk_col_copy(q, 3, x->out->provider, sizeof x->out->provider);
    rk_col_copy(q, 4, x->out->item, sizeof x->out->item);
    x->out->settled = !rk_col_is_null(q, 5);
    return RK_OK;
}

rk_rc held_store_awaiting_get(rk_db *db, const char *exchange_id, awaiting_row *out)
{
    memset(out, 0, sizeof *out);
    awaiting_args x = {exchange_id, out};
    return rk_db_read(db, awaiting_fn, &x);
}

typedef struct settle_args {
    const char *exchange_id, *answer;
    const rk_record *late;
    int status;
    rk_rc (*extra)(rk_db *, void *);
    void *extra_arg;
    int64_t now_ms;
} settle_args;

static rk_rc settle_in_tx(rk_db *db, void *arg)
{
    settle_args *x = arg;
    rk_stmt *st = rk_db_stmt(db, "UPDATE awaiting SET settled_ms = ? WHERE exchange_id = ? AND settled_ms IS NULL"
                                 " RETURNING query_id");
    rk_bind_int(st, 1, x->now_ms);
    rk_bind_text(st, 2, x->exchange_id);
    rk_rc rc = rk_stmt_next(st);
    if (rc == RK_ERR_NOT_FOUND)
        return RK_ERR_EXISTS; /* settled before (or never held: the caller read it) */
    if (rc != RK_OK)
        return rc;
    char query_id[RK_ID_FIELD_MAX + 1];
    rk_col_copy(st, 0, query_id, sizeof query_id);
    if ((rc = rk_stmt_next(st)) != RK_ERR_NOT_FOUND) /* runs the statement to its end */
        return rc == RK_OK ? RK_ERR_STORE : rc;
    st = rk_db_stmt(db, "UPDATE answers SET status = ?, body = ?, at_ms = ? WHERE key = ? AND side = 'requester'");
    rk_bind_int(st, 1, x->status);
    rk_bind_text(st, 2, x->answer);
    rk_bind_int(st, 3, x->now_ms);
    rk_bind_text(st, 4, query_id);
    if ((rc = rk_stmt_exec(st)) != RK_OK || (rc = rk_record_append(db, x->late)) != RK_OK)
        return rc;
    /* a query of a batch (batch_store.h) counts under its late outcome from now on */
    st = rk_db_stmt(db, "UPDATE batch_queries SET outcome = ?, http_status = ? WHERE query_id = ? AND state = 'settled'"
                        " AND outcome = 'held'");
    rk_bind_text(st, 1, x->late->outcome);
    rk_bind_int(st, 2, x->status);
    rk_bind_text(st, 3, query_id);
    if ((rc = rk_stmt_exec(st)) != RK_OK)
        return rc;
    return x->extra ? x->extra(db, x->extra_arg) : RK_OK;
}

rk_rc held_store_settle_awaiting(rk_db *db, const char *exchange_id, const rk_record *late, int status,
                                 const char *answer, rk_rc (*extra)(rk_db *, void *), void *extra_arg, int64_t now_ms)
{
    settle_args x = {exchange_id, answer, late, status, extra, extra_arg, now_ms};
    return rk_db_write(db, settle_in_tx, &x);
}
