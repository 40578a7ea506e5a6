#include "agency/agency_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/db.h"
#include "node/incidents.h"
#include "records/records.h"

struct agency_store {
    rk_db *db;
    char node_id[64];
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS persons ("
    "  person TEXT PRIMARY KEY, status TEXT NOT NULL CHECK (status IN ('pending','linked','failed')),"
    "  code TEXT UNIQUE,"
    "  created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS persons_status ON persons(status);"
    /* Acquisitions in flight only: small and hot, gone once the notice came. */
    "CREATE TABLE IF NOT EXISTS pending ("
    "  acquisition_no TEXT PRIMARY KEY, person TEXT NOT NULL, check_code INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS data ("
    "  person TEXT NOT NULL, item TEXT NOT NULL, version INTEGER NOT NULL, value TEXT NOT NULL,"
    "  as_of TEXT NOT NULL, stored_ms INTEGER NOT NULL, PRIMARY KEY (person, item, version)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS received ("
    "  exchange_id TEXT PRIMARY KEY, person TEXT NOT NULL, provider TEXT NOT NULL, item TEXT NOT NULL,"
    "  value TEXT NOT NULL, as_of TEXT NOT NULL, received_ms INTEGER NOT NULL);";

rk_rc agency_store_open(const char *path, const char *node_id, agency_store **out)
{
    agency_store *s = calloc(1, sizeof *s);
    if (!s)
        return RK_ERR_NOMEM;
    snprintf(s->node_id, sizeof s->node_id, "%s", node_id);
    rk_rc rc = rk_db_open_schema(path, schema, &s->db);
    if (rc == RK_OK)
        rc = rk_db_exec(s->db, rk_records_schema);
    if (rc == RK_OK)
        rc = rk_db_exec(s->db, rk_incidents_schema);
    if (rc != RK_OK) {
        rk_db_close(s->db);
        free(s);
        return rc;
    }
    *out = s;
    return RK_OK;
}

void agency_store_close(agency_store *s)
{
    if (!s)
        return;
    rk_db_close(s->db);
    free(s);
}

/* With the lock held: the person's status, or RK_ERR_NOT_FOUND. */
static rk_rc read_status(rk_db *db, const char *person, char status[AGENCY_STATUS_MAX])
{
    sqlite3_stmt *q = rk_db_sqlite_stmt(db, "SELECT status FROM persons WHERE person = ?");
    if (!q)
        return RK_ERR_STORE;
    sqlite3_bind_text(q, 1, person, -1, SQLITE_STATIC);
    rk_rc rc = RK_ERR_NOT_FOUND;
    if (sqlite3_step(q) == SQLITE_ROW) {
        snprintf(status, AGENCY_STATUS_MAX, "%s", (const char *)sqlite3_column_text(q, 0));
        rc = RK_OK;
    }
    sqlite3_reset(q);
    return rc;
}

typedef struct pending_args {
    const char *person, *acquisition_no;
    int check_code;
    int64_t now_ms;
    char *status;
} pending_args;

static rk_rc add_pending_in_tx(rk_db *db, void *arg)
{
    pending_args *p = arg;
    rk_rc rc = read_status(db, p->person, p->status);
    if (rc == RK_OK && strcmp(p->status, "failed") != 0)
        return RK_ERR_EXISTS;
    static const char *const sql[] = {
        "INSERT INTO persons(person, status, created_ms, updated_ms) VALUES (?1, 'pending', ?4, ?4)"
        " ON CONFLICT(person) DO UPDATE SET status = 'pending', code = NULL, updated_ms = ?4",
        "INSERT INTO pending(acquisition_no, person, check_code) VALUES (?2, ?1, ?3)",
    };
    rc = RK_OK;
    for (size_t i = 0; i < 2 && rc == RK_OK; i++) {
        sqlite3_stmt *st = rk_db_sqlite_stmt(db, sql[i]);
        if (!st)
            return RK_ERR_STORE;
        sqlite3_bind_text(st, 1, p->person, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, p->acquisition_no, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, p->check_code);
        sqlite3_bind_int64(st, 4, p->now_ms);
        rc = rk_db_step_rc(db, sqlite3_step(st));
        sqlite3_reset(st);
    }
    if (rc == RK_OK)
        strcpy(p->status, "pending");
    return rc;
}

rk_rc agency_store_add_pending(agency_store *s, const char *person, const char *acquisition_no, int check_code,
                               int64_t now_ms, char status[AGENCY_STATUS_MAX])
{
    pending_args p = {person, acquisition_no, check_code, now_ms, status};
    return rk_db_write(s->db, add_pending_in_tx, &p);
}

typedef struct pending_many {
    agency_pending *items;
    size_t n;
    int64_t now_ms;
} pending_many;

static rk_rc add_pending_many_in_tx(rk_db *db, void *arg)
{
    pending_many *m = arg;
    for (size_t i = 0; i < m->n; i++) {
        agency_pending *it = &m->items[i];
        pending_args p = {it->person, it->acquisition_no, it->check_code, m->now_ms, it->status};
        it->rc = add_pending_in_tx(db, &p);
    }
    return RK_OK;
}

rk_rc agency_store_add_pending_many(agency_store *s, agency_pending *items, size_t n, int64_t now_ms)
{
    pending_many m = {items, n, now_ms};
    return rk_db_write(s->db, add_pending_many_in_tx, &m);
}

typedef struct drop_args {
    const char *person, *acquisition_no;
} drop_args;

static rk_rc drop_in_tx(rk_db *db, void *arg)
{
    drop_args *d = arg;
    static const char *const sql[] = {
        "DELETE FROM persons WHERE person = ?1 AND status = 'pending'"
        " AND EXISTS (SELECT 1 FROM pending WHERE acquisition_no = ?2 AND person = ?1)",
        "DELETE FROM pending WHERE acquisition_no = ?2 AND person = ?1",
    };
    rk_rc rc = RK_OK;
    for (size_t i = 0; i < 2 && rc == RK_OK; i++) {
        sqlite3_stmt *st = rk_db_sqlite_stmt(db, sql[i]);
        if (!st)
            return RK_ERR_STORE;
        sqlite3_bind_text(st, 1, d->person, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, d->acquisition_no, -1, SQLITE_STATIC);
        rc = rk_db_step_rc(db, sqlite3_step(st));
        sqlite3_reset(st);
    }
    return rc;
}

rk_rc agency_store_drop_pending(agency_store *s, const char *person, const char *acquisition_no)
{
    drop_args d = {person, acquisition_no};
    return rk_db_write(s->db, drop_in_tx, &d);
}

rk_rc agency_store_person_status(agency_store *s, const char *person, char status[AGENCY_STATUS_MAX])
{
    rk_db_lock(s->db);
    rk_rc rc = read_status(s->db, person, status);
    rk_db_unlock(s->db);
    return rc;
}

static rk_rc insert_incident(agency_store *s, const char *kind, const char *summary, int64_t now_ms)
{
    rk_incident in = {.kind = kind, .node = s->node_id, .detected_ms = now_ms, .summary = summary};
    return rk_incident_store(s->db, &in, 0, 1);
}

/* With the lock held: the person already holding this code, if any. */
static int person_with_code(rk_db *db, const char *code, char *person, size_t personlen)
{
    sqlite3_stmt *q = rk_db_sqlite_stmt(db, "SELECT person FROM persons WHERE code = ?");
    int found = 0;
    if (q) {
        sqlite3_bind_text(q, 1, code, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW) {
            snprintf(person, personlen, "%s", (const char *)sqlite3_column_text(q, 0));
            found = 1;
        }
        sqlite3_reset(q);
    }
    return found;
}

/* With the lock and a transaction held: takes the pending acquisition (it
 * is forgotten whatever the outcome, 第8-2(1)イ). 0 when there is none. */
static int take_pending(rk_db *db, const char *acquisition_no, char *person, size_t personlen, int *expected)
{
    sqlite3_stmt *q = rk_db_sqlite_stmt(db, "DELETE FROM pending WHERE acquisition_no = ? RETURNING person, check_code");
    int found = 0;
    if (!q)
        return 0;
    sqlite3_bind_text(q, 1, acquisition_no, -1, SQLITE_STATIC);
    if (sqlite3_step(q) == SQLITE_ROW) {
        snprintf(person, personlen, "%s", (const char *)sqlite3_column_text(q, 0));
        *expected = sqlite3_column_int(q, 1);
        found = 1;
        sqlite3_step(q); /* finish the statement so that the delete takes effect */
    }
    sqlite3_reset(q);
    return found;
}

/* With the lock and a transaction held: sets the outcome of one notice. */
static rk_rc settle_notice(agency_store *s, const char *acquisition_no, const char *code, int check_code, int64_t now_ms,
                           agency_notice_outcome *outcome)
{
    rk_db *db = s->db;
    char person[128], other[128];
    int expected = -1;
    if (!take_pending(db, acquisition_no, person, sizeof person, &expected)) {
        *outcome = NOTICE_UNKNOWN;
        return RK_OK;
    }
    *outcome = expected != check_code ? NOTICE_MISMATCH
             : person_with_code(db, code, other, sizeof other) ? NOTICE_DUPLICATE /* one person, two ids */
             : NOTICE_LINKED;
    int linked = *outcome == NOTICE_LINKED;
    sqlite3_stmt *st = rk_db_sqlite_stmt(db, "UPDATE persons SET status = CASE ?4 WHEN 1 THEN 'linked' ELSE 'failed' END,"
                                      " code = CASE ?4 WHEN 1 THEN ?2 ELSE NULL END, updated_ms = ?3 WHERE person = ?1");
    if (!st)
        return RK_ERR_STORE;
    sqlite3_bind_text(st, 1, person, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, code, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now_ms);
    sqlite3_bind_int(st, 4, linked);
    rk_rc rc = rk_db_step_rc(db, sqlite3_step(st));
    sqlite3_reset(st);
    if (rc != RK_OK || linked)
        return rc;
    char summary[256];
    snprintf(summary, sizeof summary, *outcome == NOTICE_MISMATCH
             ? "check code mismatch on the notice for acquisition %.64s: code not linked"
             : "acquisition %.64s names a person already linked here under another id: not linked", acquisition_no);
    return insert_incident(s, *outcome == NOTICE_MISMATCH ? "check_code_mismatch" : "unauthorized_access", summary,
                           now_ms);
}

typedef struct notice_args {
    agency_store *s;
    const char *acquisition_no, *code;
    int check_code;
    int64_t now_ms;
    agency_notice_outcome *outcome;
} notice_args;

static rk_rc apply_notice_in_tx(rk_db *db, void *arg)
{
    notice_args *n = arg;
    return settle_notice(n->s, n->acquisition_no, n->code, n->check_code, n->now_ms, n->outcome);
}

rk_rc agency_store_apply_notice(agency_store *s, const char *acquisition_no, const char *code, int check_code,
                                int64_t now_ms, agency_notice_outcome *outcome)
{
    notice_args n = {s, acquisition_no, code, check_code, now_ms, outcome};
    return rk_db_write(s->db, apply_notice_in_tx, &n);
}

typedef struct notices_many {
    agency_store *s;
    agency_notice *items;
    size_t n;
    int64_t now_ms;
} notices_many;

static rk_rc notice_item(rk_db *db, void *arg)
{
    notice_args *n = arg;
    return settle_notice(n->s, n->acquisition_no, n->code, n->check_code, n->now_ms, n->outcome);
}

static rk_rc apply_notices_in_tx(rk_db *db, void *arg)
{
    notices_many *m = arg;
    for (size_t i = 0; i < m->n; i++) {
        agency_notice *it = &m->items[i];
        if (!it->acquisition_no || !it->code || it->check_code < 0 || it->check_code > 9) {
            it->rc = RK_ERR_INVALID; /* a malformed entry changes nothing */
            continue;
        }
        notice_args n = {m->s, it->acquisition_no, it->code, it->check_code, m->now_ms, &it->outcome};
        it->rc = rk_db_item(db, notice_item, &n);
    }
    return RK_OK;
}

rk_rc agency_store_apply_notices(agency_store *s, agency_notice *items, size_t n, int64_t now_ms)
{
    notices_many m = {s, items, n, now_ms};
    return rk_db_write(s->db, apply_notices_in_tx, &m);
}

rk_rc agency_store_code_of(agency_store *s, const char *person, char *code, size_t codelen)
{
    rk_db_read_lock(s->db);
    sqlite3_stmt *q = rk_db_sqlite_stmt(s->db, "SELECT code FROM persons WHERE person = ? AND status = 'linked'");
    rk_rc rc = RK_ERR_STORE;
    if (q) {
        sqlite3_bind_text(q, 1, person, -1, SQLITE_STATIC);
        if ((rc = rk_db_step_row(s->db, q)) == RK_OK) {
            snprintf(code, codelen, "%s", (const char *)sqlite3_column_text(q, 0));
        }
        sqlite3_reset(q);
    }
    rk_db_read_unlock(s->db);
    return rc;
}


size_t agency_store_count(agency_store *s, const char *status)
{
    rk_db_lock(s->db);
    sqlite3_stmt *q = rk_db_sqlite_stmt(s->db, "SELECT count(*) FROM persons WHERE status = ?");
    size_t n = 0;
    if (q) {
        sqlite3_bind_text(q, 1, status, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW)
            n = (size_t)sqlite3_column_int64(q, 0);
        sqlite3_reset(q);
    }
    rk_db_unlock(s->db);
    return n;
}

int agency_store_writable(agency_store *s)
{
    return rk_db_writable(s->db);
}

rk_db *agency_store_db(agency_store *s)
{
    return s->db;
}

typedef struct put_args {
    const char *person, *item, *value_json, *as_of, *request_id, *request_hash;
    int64_t now_ms;
    int64_t *version;
    char *(*answer)(int64_t version, void *arg);
    void *arg;
} put_args;

static rk_rc put_data_in_tx(rk_db *db, void *arg)
{
    put_args *p = arg;
    char status[AGENCY_STATUS_MAX];
    rk_rc rc = read_status(db, p->person, status);
    if (rc != RK_OK)
        return rc;
    sqlite3_stmt *st = rk_db_sqlite_stmt(db,
        "INSERT INTO data(person, item, version, value, as_of, stored_ms) VALUES (?1, ?2,"
        " (SELECT coalesce(max(version), 0) + 1 FROM data WHERE person = ?1 AND item = ?2), ?3, ?4, ?5)"
        " RETURNING version");
    if (!st)
        return RK_ERR_STORE;
    sqlite3_bind_text(st, 1, p->person, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, p->item, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, p->value_json, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, p->as_of, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, p->now_ms);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW)
        *p->version = sqlite3_column_int64(st, 0);
    rc = rk_db_step_rc(db, r == SQLITE_ROW ? sqlite3_step(st) : r);
    sqlite3_reset(st);
    if (rc != RK_OK || !p->request_id)
        return rc;
    char *body = p->answer(*p->version, p->arg);
    rc = body ? rk_answer_keep(db, p->request_id, "data", p->request_hash, 200, body) : RK_ERR_NOMEM;
    free(body);
    return rc;
}

rk_rc agency_store_put_data(agency_store *s, const char *person, const char *item, const char *value_json,
                            const char *as_of, int64_t now_ms, int64_t *version)
{
    put_args p = {person, item, value_json, as_of, NULL, NULL, now_ms, version, NULL, NULL};
    return rk_db_write(s->db, put_data_in_tx, &p);
}

rk_rc agency_store_put_data_once(agency_store *s, const char *request_id, const char *request_hash,
                                 const char *person, const char *item, const char *value_json, const char *as_of,
                                 int64_t now_ms, char *(*answer)(int64_t version, void *arg), void *arg,
                                 int64_t *version, char **kept)
{
    int status = 0;
    *kept = NULL;
    rk_rc rc = rk_answer_get(s->db, request_id, "data", request_hash, &status, kept);
    if (rc != RK_ERR_NOT_FOUND)
        return rc; /* RK_OK with the first answer, or RK_ERR_CONFLICT */
    put_args p = {person, item, value_json, as_of, request_id, request_hash, now_ms, version, answer, arg};
    rc = rk_db_write(s->db, put_data_in_tx, &p);
    if (rc == RK_ERR_CONFLICT) /* the same id settled meanwhile */
        rc = rk_answer_get(s->db, request_id, "data", request_hash, &status, kept);
    return rc;
}

rk_rc agency_store_newest_data(agency_store *s, const char *person, const char *item, char **value_json,
                               char as_of[11], int64_t *version)
{
    rk_db_read_lock(s->db);
    sqlite3_stmt *q = rk_db_sqlite_stmt(s->db, "SELECT value, as_of, version FROM data WHERE person = ? AND item = ?"
                                        " ORDER BY version DESC LIMIT 1");
    rk_rc rc = RK_ERR_STORE;
    if (q) {
        sqlite3_bind_text(q, 1, person, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, item, -1, SQLITE_STATIC);
        if ((rc = rk_db_step_row(s->db, q)) == RK_OK) {
            *value_json = strdup((const char *)sqlite3_column_text(q, 0));
            snprintf(as_of, 11, "%s", (const char *)sqlite3_column_text(q, 1));
            *version = sqlite3_column_int64(q, 2);
            rc = *value_json ? RK_OK : RK_ERR_NOMEM;
        }
        sqlite3_reset(q);
    }
    rk_db_read_unlock(s->db);
    return rc;
}

rk_rc agency_store_person_by_code(agency_store *s, const char *code, char *person, size_t personlen)
{
    rk_db_read_lock(s->db);
    sqlite3_stmt *q = rk_db_sqlite_stmt(s->db, "SELECT person FROM persons WHERE code = ? AND status = 'linked'");
    rk_rc rc = RK_ERR_STORE;
    if (q) {
        sqlite3_bind_text(q, 1, code, -1, SQLITE_STATIC);
        if ((rc = rk_db_step_row(s->db, q)) == RK_OK) {
            snprintf(person, personlen, "%s", (const char *)sqlite3_column_text(q, 0));
        }
        sqlite3_reset(q);
    }
    rk_db_read_unlock(s->db);
    return rc;
}

rk_rc agency_store_keep_received(rk_db *db, void *arg)
{
    const agency_received *r = arg;
    sqlite3_stmt *st = rk_db_sqlite_stmt(db, "INSERT INTO received(exchange_id, person, provider, item, value, as_of,"
                                      " received_ms) VALUES (?,?,?,?,?,?,?)");
    if (!st)
        return RK_ERR_STORE;
    const char *text[] = {r->exchange_id, r->person, r->provider, r->item, r->value_json, r->as_of};
    for (int i = 0; i < 6; i++)
        sqlite3_bind_text(st, i + 1, text[i], -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, r->received_ms);
    rk_rc rc = rk_db_step_rc(db, sqlite3_step(st));
    sqlite3_reset(st);
    return rc;
}

rk_rc agency_store_delete_received(agency_store *s, const char *exchange_id, int *deleted)
{
    static const char *const sql[] = {
        "DELETE FROM received WHERE exchange_id = ?1",
        "UPDATE answers SET body = json_remove(body, '$.value', '$.as_of')"
        " WHERE side = 'requester' AND json_extract(body, '$.exchange_id') = ?1 AND json_type(body, '$.value') IS NOT NULL",
    };
    *deleted = 0;
    rk_db_lock(s->db);
    rk_rc rc = rk_db_begin(s->db);
    for (size_t i = 0; rc == RK_OK && i < sizeof sql / sizeof sql[0]; i++) {
        sqlite3_stmt *st = rk_db_sqlite_stmt(s->db, sql[i]);
        if (!st) {
            rc = RK_ERR_STORE;
            break;
        }
        sqlite3_bind_text(st, 1, exchange_id, -1, SQLITE_STATIC);
        rc = rk_db_step_rc(s->db, sqlite3_step(st));
        *deleted += sqlite3_changes(rk_db_handle(s->db));
        sqlite3_reset(st);
    }
    if (rc == RK_OK)
        rc = rk_db_commit(s->db);
    if (rc != RK_OK)
        rk_db_rollback(s->db);
    else
        rc = rk_db_checkpoint_truncate(s->db);
    rk_db_unlock(s->db);
    return rc;
}
