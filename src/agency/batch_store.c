/* batch_store.c — batch queries at an agency node (batch_store.h). */
#include "agency/batch_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const batch_steps[] = {
    "CREATE TABLE query_batches ("
    "  owner TEXT NOT NULL, batch_id TEXT NOT NULL, request_hash TEXT NOT NULL, total BIGINT NOT NULL,"
    "  settled BIGINT NOT NULL, created_ms BIGINT NOT NULL, PRIMARY KEY (owner, batch_id)) {without_rowid};"
    /* One row per query: pending until settled; settled_seq numbers them
     * in the order they settled, within their batch (the results' order). */
    "CREATE TABLE batch_queries ("
    "  id {id}, owner TEXT NOT NULL, batch_id TEXT NOT NULL, idx BIGINT NOT NULL, query_id TEXT NOT NULL,"
    "  provider TEXT NOT NULL, request_hash TEXT NOT NULL, body TEXT NOT NULL, requested_ms BIGINT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('pending','settled')), next_ms BIGINT NOT NULL,"
    "  attempts BIGINT NOT NULL, http_status BIGINT, outcome TEXT, settled_seq BIGINT,"
    "  UNIQUE (owner, batch_id, idx));"
    "CREATE INDEX batch_queries_due ON batch_queries(state, next_ms);"
    "CREATE INDEX batch_queries_provider ON batch_queries(state, provider, id);"
    "CREATE INDEX batch_queries_query ON batch_queries(query_id);"
    "CREATE INDEX batch_queries_settled ON batch_queries(owner, batch_id, settled_seq);",
};

rk_rc batch_store_migrate(rk_db *db)
{
    return rk_db_migrate(db, "batches", batch_steps, (int)(sizeof batch_steps / sizeof batch_steps[0]));
}

/* ---------- a new batch ---------- */

typedef struct add_args {
    const char *owner, *batch_id, *request_hash;
    const batch_query_in *q;
    size_t n;
    int64_t now_ms;
} add_args;

static rk_rc add_in_tx(rk_db *db, void *arg)
{
    add_args *a = arg;
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO query_batches(owner, batch_id, request_hash, total, settled, created_ms)"
                                 " VALUES (?, ?, ?, ?, 0, ?) ON CONFLICT (owner, batch_id) DO NOTHING");
    rk_bind_text(st, 1, a->owner);
    rk_bind_text(st, 2, a->batch_id);
    rk_bind_text(st, 3, a->request_hash);
    rk_bind_int(st, 4, (int64_t)a->n);
    rk_bind_int(st, 5, a->now_ms);
    rk_rc rc = rk_stmt_exec(st);
    if (rc != RK_OK)
        return rc;
    if (rk_db_changes(db) == 0) { /* seen before: the same request, or another */
        rk_stmt *q = rk_db_stmt(db, "SELECT request_hash FROM query_batches WHERE owner = ? AND batch_id = ?");
        rk_bind_text(q, 1, a->owner);
        rk_bind_text(q, 2, a->batch_id);
        if ((rc = rk_stmt_next(q)) != RK_OK)
            return rc == RK_ERR_NOT_FOUND ? RK_ERR_STORE : rc;
        const char *hash = rk_col_text(q, 0);
        return hash && strcmp(hash, a->request_hash) == 0 ? RK_ERR_EXISTS : RK_ERR_CONFLICT;
    }
    for (size_t i = 0; i < a->n && rc == RK_OK; i++) {
        st = rk_db_stmt(db, "INSERT INTO batch_queries(owner, batch_id, idx, query_id, provider, request_hash, body,"
                            " requested_ms, state, next_ms, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, 0)");
        rk_bind_text(st, 1, a->owner);
        rk_bind_text(st, 2, a->batch_id);
        rk_bind_int(st, 3, (int64_t)i);
        rk_bind_text(st, 4, a->q[i].query_id);
        rk_bind_text(st, 5, a->q[i].provider);
        rk_bind_text(st, 6, a->q[i].request_hash);
        rk_bind_text(st, 7, a->q[i].body);
        rk_bind_int(st, 8, a->now_ms);
        rk_bind_int(st, 9, a->now_ms);
        rc = rk_stmt_exec(st);
    }
    return rc;
}

rk_rc batch_store_add(rk_db *db, const char *owner, const char *batch_id, const char *request_hash,
                      const batch_query_in *q, size_t n, int64_t now_ms)
{
    add_args a = {owner, batch_id, request_hash, q, n, now_ms};
    return rk_db_write(db, add_in_tx, &a);
}

/* ---------- claiming, releasing ---------- */

typedef struct claim_args {
    int64_t now_ms, lease_ms;
    batch_query *out;
    size_t max, n;
} claim_args;

static rk_rc claim_in_tx(rk_db *db, void *arg)
{
    claim_args *a = arg;
    char provider[RK_AGENCY_FIELD_MAX + 1];
    rk_stmt *q = rk_db_stmt(db, "SELECT provider FROM batch_queries WHERE state = 'pending' AND next_ms <= ?"
                                " ORDER BY next_ms, id LIMIT 1");
    rk_bind_int(q, 1, a->now_ms);
    rk_rc rc = rk_stmt_next(q);
    if (rc != RK_OK)
        return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
    rk_col_copy(q, 0, provider, sizeof provider);
    q = rk_db_stmt(db, "UPDATE batch_queries SET next_ms = ?, attempts = attempts + 1 WHERE id IN"
                       " (SELECT id FROM batch_queries WHERE state = 'pending' AND provider = ? AND next_ms <= ?"
                       " ORDER BY id LIMIT ?)"
                       " RETURNING id, owner, batch_id, query_id, provider, request_hash, body, requested_ms, attempts");
    rk_bind_int(q, 1, a->now_ms + a->lease_ms);
    rk_bind_text(q, 2, provider);
    rk_bind_int(q, 3, a->now_ms);
    rk_bind_int(q, 4, (int64_t)a->max);
    while ((rc = rk_stmt_next(q)) == RK_OK && a->n < a->max) {
        batch_query *b = &a->out[a->n];
        memset(b, 0, sizeof *b);
        b->id = rk_col_int(q, 0);
        rk_col_copy(q, 1, b->owner, sizeof b->owner);
        rk_col_copy(q, 2, b->batch_id, sizeof b->batch_id);
        rk_col_copy(q, 3, b->query_id, sizeof b->query_id);
        rk_col_copy(q, 4, b->provider, sizeof b->provider);
        rk_col_copy(q, 5, b->request_hash, sizeof b->request_hash);
        const char *body = rk_col_text(q, 6);
        b->requested_ms = rk_col_int(q, 7);
        b->attempts = (int)rk_col_int(q, 8);
        if (!(b->body = strdup(body ? body : "")))
            return RK_ERR_NOMEM;
        a->n++;
    }
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

static int by_id(const void *l, const void *r)
{
    int64_t a = ((const batch_query *)l)->id, b = ((const batch_query *)r)->id;
    return a < b ? -1 : a > b;
}

rk_rc batch_store_claim(rk_db *db, int64_t now_ms, int64_t lease_ms, batch_query *out, size_t max, size_t *n)
{
    claim_args a = {now_ms, lease_ms, out, max, 0};
    rk_rc rc = rk_db_write(db, claim_in_tx, &a);
    if (rc != RK_OK) {
        batch_store_free(out, a.n);
        a.n = 0;
    }
    qsort(out, a.n, sizeof *out, by_id); /* RETURNING gives no order */
    *n = a.n;
    return rc;
}

void batch_store_free(batch_query *q, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(q[i].body);
        q[i].body = NULL;
    }
}

static rk_rc next_due_read(rk_db *db, void *arg)
{
    rk_stmt *q = rk_db_stmt(db, "SELECT next_ms FROM batch_queries WHERE state = 'pending' ORDER BY next_ms LIMIT 1");
    rk_rc rc = rk_stmt_next(q);
    *(int64_t *)arg = rc == RK_OK ? rk_col_int(q, 0) : -1;
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

rk_rc batch_store_next_due(rk_db *db, int64_t *due_ms)
{
    return rk_db_read(db, next_due_read, due_ms);
}

static rk_rc resume_in_tx(rk_db *db, void *arg)
{
    rk_stmt *st = rk_db_stmt(db, "UPDATE batch_queries SET next_ms = 0 WHERE state = 'pending' AND next_ms > 0");
    return rk_stmt_exec(st);
}

rk_rc batch_store_resume(rk_db *db)
{
    return rk_db_write(db, resume_in_tx, NULL);
}

typedef struct release_args {
    const int64_t *ids, *next_ms;
    size_t n;
} release_args;

static rk_rc release_in_tx(rk_db *db, void *arg)
{
    release_args *a = arg;
    rk_rc rc = RK_OK;
    for (size_t i = 0; i < a->n && rc == RK_OK; i++) {
        rk_stmt *st = rk_db_stmt(db, "UPDATE batch_queries SET next_ms = ? WHERE id = ? AND state = 'pending'");
        rk_bind_int(st, 1, a->next_ms[i]);
        rk_bind_int(st, 2, a->ids[i]);
        rc = rk_stmt_exec(st);
    }
    return rc;
}

rk_rc batch_store_release(rk_db *db, const int64_t *ids, const int64_t *next_ms, size_t n)
{
    release_args a = {ids, next_ms, n};
    return n ? rk_db_write(db, release_in_tx, &a) : RK_OK;
}

/* ---------- settling ---------- */

void batch_answer_outcome(const char *body, char *out, size_t outlen)
{
    json_t *j = body ? json_loads(body, 0, NULL) : NULL;
    const char *s = json_string_value(json_object_get(j, "status"));
    if (!s)
        s = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    snprintf(out, outlen, "%s", s ? s : "");
    json_decref(j);
}

typedef struct mark_args {
    const batch_done *d;
    int status;
    const char *outcome;
} mark_args;

/* Inside a write: the query settled, numbered after its batch's last. */
static rk_rc mark_settled(rk_db *db, void *arg)
{
    mark_args *m = arg;
    rk_stmt *q = rk_db_stmt(db, "UPDATE query_batches SET settled = settled + 1 WHERE owner = ? AND batch_id = ?"
                                " RETURNING settled");
    rk_bind_text(q, 1, m->d->owner);
    rk_bind_text(q, 2, m->d->batch_id);
    rk_rc rc = rk_stmt_next(q);
    if (rc != RK_OK)
        return rc == RK_ERR_NOT_FOUND ? RK_ERR_STORE : rc;
    int64_t seq = rk_col_int(q, 0);
    if ((rc = rk_stmt_next(q)) != RK_ERR_NOT_FOUND) /* run the update to its end */
        return rc == RK_OK ? RK_ERR_STORE : rc;
    rk_stmt *st = rk_db_stmt(db, "UPDATE batch_queries SET state = 'settled', http_status = ?, outcome = ?,"
                                 " settled_seq = ? WHERE id = ? AND state = 'pending'");
    rk_bind_int(st, 1, m->status);
    rk_bind_text(st, 2, m->outcome);
    rk_bind_int(st, 3, seq);
    rk_bind_int(st, 4, m->d->id);
    if ((rc = rk_stmt_exec(st)) != RK_OK)
        return rc;
    return rk_db_changes(db) == 1 ? RK_OK : RK_ERR_CONFLICT; /* settled already: undone with the savepoint */
}

static rk_rc settle_one(rk_db *db, void *arg)
{
    mark_args *m = arg;
    rk_rc rc = m->d->settlement ? rk_settle_in_tx(db, m->d->settlement) : RK_OK;
    return rc == RK_OK ? mark_settled(db, m) : rc;
}

/* Settled meanwhile under its query_id (a single query with the same id):
 * the batch takes that answer. */
static rk_rc settle_as_kept(rk_db *db, void *arg)
{
    mark_args *m = arg;
    int status = 0;
    char *body = NULL, outcome[32];
    rk_rc rc = rk_answer_get(db, m->d->query_id, "requester", NULL, &status, &body);
    if (rc != RK_OK)
        return rc == RK_ERR_NOT_FOUND ? RK_ERR_STORE : rc;
    batch_answer_outcome(body, outcome, sizeof outcome);
    free(body);
    mark_args kept = {m->d, status, outcome};
    return mark_settled(db, &kept);
}

typedef struct settle_args {
    batch_done *d;
    size_t n;
} settle_args;

static rk_rc settle_in_tx(rk_db *db, void *arg)
{
    settle_args *a = arg;
    for (size_t i = 0; i < a->n; i++) {
        mark_args m = {&a->d[i], a->d[i].status, a->d[i].outcome};
        a->d[i].rc = rk_db_item(db, settle_one, &m);
        if (a->d[i].rc == RK_ERR_CONFLICT && a->d[i].settlement)
            a->d[i].rc = rk_db_item(db, settle_as_kept, &m);
    }
    return RK_OK;
}

rk_rc batch_store_settle(rk_db *db, batch_done *d, size_t n)
{
    settle_args a = {d, n};
    return n ? rk_db_write(db, settle_in_tx, &a) : RK_OK;
}

/* ---------- reading ---------- */

typedef struct progress_args {
    const char *owner, *batch_id;
    int64_t after;
    int limit;
    json_t *out;
} progress_args;

/* A settled query's answer: the one kept under its query_id when it was
 * kept for this query's request, else a conflict (the id was taken by
 * another request before). */
static json_t *result_row(rk_stmt *q)
{
    const char *mine = rk_col_text(q, 3), *kept_hash = rk_col_text(q, 5), *body = rk_col_text(q, 7);
    int status = (int)rk_col_int(q, 6);
    json_t *answer = NULL;
    if (kept_hash && mine && strcmp(kept_hash, mine) == 0 && body) {
        answer = json_loads(body, 0, NULL);
    } else if (kept_hash) {
        status = 409;
        answer = json_pack("{s:s,s:{s:s,s:s}}", "query_id", rk_col_text(q, 2), "error", "code", "conflict", "message",
                           "query_id was used with another request");
    }
    if (!answer) {
        status = 500;
        answer = json_pack("{s:{s:s,s:s}}", "error", "code", "store_error", "message", "the answer is not kept");
    }
    return json_pack("{s:I,s:s,s:i,s:o}", "index", (json_int_t)rk_col_int(q, 1), "query_id", rk_col_text(q, 2),
                     "http_status", status, "answer", answer);
}

static rk_rc progress_scan(rk_db *db, void *arg)
{
    progress_args *a = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT total, settled FROM query_batches WHERE owner = ? AND batch_id = ?");
    rk_bind_text(q, 1, a->owner);
    rk_bind_text(q, 2, a->batch_id);
    rk_rc rc = rk_stmt_next(q);
    if (rc != RK_OK)
        return rc;
    int64_t total = rk_col_int(q, 0), settled = rk_col_int(q, 1);
    json_t *by = json_object(), *results = json_array();
    a->out = json_pack("{s:s,s:I,s:I,s:I,s:o,s:o}", "batch_id", a->batch_id, "total", (json_int_t)total, "settled",
                       (json_int_t)settled, "pending", (json_int_t)(total - settled), "by_status", by, "results",
                       results);
    if (!a->out)
        return RK_ERR_NOMEM;
    q = rk_db_stmt(db, "SELECT outcome, count(*) FROM batch_queries WHERE owner = ? AND batch_id = ?"
                       " AND state = 'settled' GROUP BY outcome");
    rk_bind_text(q, 1, a->owner);
    rk_bind_text(q, 2, a->batch_id);
    while ((rc = rk_stmt_next(q)) == RK_OK)
        json_object_set_new(by, rk_col_text(q, 0) ? rk_col_text(q, 0) : "", json_integer(rk_col_int(q, 1)));
    if (rc != RK_ERR_NOT_FOUND)
        return rc;
    q = rk_db_stmt(db, "SELECT b.settled_seq, b.idx, b.query_id, b.request_hash, b.http_status,"
                       " a.request_hash, a.status, a.body FROM batch_queries b LEFT JOIN answers a"
                       " ON a.key = b.query_id AND a.side = 'requester'"
                       " WHERE b.owner = ? AND b.batch_id = ? AND b.settled_seq > ? ORDER BY b.settled_seq LIMIT ?");
    rk_bind_text(q, 1, a->owner);
    rk_bind_text(q, 2, a->batch_id);
    rk_bind_int(q, 3, a->after);
    rk_bind_int(q, 4, a->limit);
    int64_t last = a->after;
    while ((rc = rk_stmt_next(q)) == RK_OK) {
        last = rk_col_int(q, 0);
        json_array_append_new(results, result_row(q));
    }
    json_object_set_new(a->out, "next_after", json_integer(last));
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

rk_rc batch_store_progress(rk_db *db, const char *owner, const char *batch_id, int64_t after, int limit,
                           json_t **out)
{
    progress_args a = {owner, batch_id, after, limit, NULL};
    rk_rc rc = rk_db_scan(db, progress_scan, &a);
    if (rc != RK_OK) {
        json_decref(a.out);
        a.out = NULL;
    }
    *out = a.out;
    return rc;
}

typedef struct pending_args {
    const char *query_id;
    char *batch_id;
} pending_args;

static rk_rc pending_read(rk_db *db, void *arg)
{
    pending_args *a = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT batch_id FROM batch_queries WHERE query_id = ? AND state = 'pending' LIMIT 1");
    rk_bind_text(q, 1, a->query_id);
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK)
        rk_col_copy(q, 0, a->batch_id, RK_ID_FIELD_MAX + 1);
    return rc;
}

rk_rc batch_store_query_state(rk_db *db, const char *query_id, int *status, char **body,
                              char batch_id[RK_ID_FIELD_MAX + 1])
{
    *body = NULL;
    rk_rc rc = rk_answer_get(db, query_id, "requester", NULL, status, body);
    if (rc != RK_ERR_NOT_FOUND)
        return rc;
    pending_args a = {query_id, batch_id};
    rc = rk_db_read(db, pending_read, &a);
    return rc == RK_OK ? RK_ERR_BUSY : rc;
}
