#include "core/core_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/db.h"
#include "lib/log.h"
#include "records/records.h"

struct core_store {
    rk_db *db;
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS persons (serial INTEGER PRIMARY KEY AUTOINCREMENT, created_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS resident_codes ("
    "  resident_code TEXT PRIMARY KEY, serial INTEGER NOT NULL REFERENCES persons(serial)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS acquisitions ("
    "  agency TEXT NOT NULL, acquisition_no TEXT NOT NULL, serial INTEGER NOT NULL, check_code INTEGER NOT NULL,"
    "  at_ms INTEGER NOT NULL, PRIMARY KEY (agency, acquisition_no)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS issued ("
    "  agency TEXT NOT NULL, serial INTEGER NOT NULL, at_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (agency, serial)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS outbox ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, agency TEXT NOT NULL, acquisition_no TEXT NOT NULL,"
    "  serial INTEGER NOT NULL, check_code INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_ms INTEGER NOT NULL, created_ms INTEGER NOT NULL, done_ms INTEGER, outcome TEXT);"
    "CREATE INDEX IF NOT EXISTS outbox_due ON outbox(next_ms) WHERE done_ms IS NULL;";

rk_db *core_store_db(core_store *s)
{
    return s->db;
}

rk_rc core_store_open(const char *path, core_store **out)
{
    core_store *s = calloc(1, sizeof *s);
    if (!s)
        return RK_ERR_NOMEM;
    rk_rc rc = rk_db_open_schema(path, schema, &s->db);
    if (rc == RK_OK)
        rc = rk_db_exec(s->db, rk_records_schema);
    if (rc != RK_OK) {
        rk_db_close(s->db);
        free(s);
        return rc;
    }
    *out = s;
    return RK_OK;
}

void core_store_close(core_store *s)
{
    if (!s)
        return;
    rk_db_close(s->db);
    free(s);
}

/* The serial of the person named by this resident code, or 0. */
static uint64_t serial_of_code(rk_db *db, const char *code)
{
    sqlite3_stmt *q = rk_db_sqlite_stmt(db, "SELECT serial FROM resident_codes WHERE resident_code = ?");
    if (!q)
        return 0;
    sqlite3_bind_text(q, 1, code, -1, SQLITE_STATIC);
    uint64_t serial = sqlite3_step(q) == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(q, 0) : 0;
    sqlite3_reset(q);
    return serial;
}

static rk_rc bind_code(rk_db *db, const char *code, uint64_t serial)
{
    sqlite3_stmt *st = rk_db_sqlite_stmt(db, "INSERT OR IGNORE INTO resident_codes(resident_code, serial) VALUES (?,?)");
    if (!st)
        return RK_ERR_STORE;
    sqlite3_bind_text(st, 1, code, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)serial);
    rk_rc rc = rk_db_step_rc(db, sqlite3_step(st));
    sqlite3_reset(st);
    return rc;
}

/* Finds the person by the current or any earlier resident code, or creates
 * one, and makes every code of the person point at it. */
static rk_rc resolve_person(rk_db *db, const core_acquisition *a, int64_t now_ms, uint64_t *serial)
{
    uint64_t found = serial_of_code(db, a->resident_code);
    for (int i = 0; !found && i < a->n_previous; i++)
        found = serial_of_code(db, a->previous[i]);
    if (!found) {
        sqlite3_stmt *st = rk_db_sqlite_stmt(db, "INSERT INTO persons(created_ms) VALUES (?)");
        if (!st)
            return RK_ERR_STORE;
        sqlite3_bind_int64(st, 1, now_ms);
        rk_rc rc = rk_db_step_rc(db, sqlite3_step(st));
        sqlite3_reset(st);
        if (rc != RK_OK)
            return rc;
        found = (uint64_t)sqlite3_last_insert_rowid(rk_db_handle(db));
    }
    rk_rc rc = bind_code(db, a->resident_code, found);
    for (int i = 0; rc == RK_OK && i < a->n_previous; i++)
        rc = bind_code(db, a->previous[i], found);
    *serial = found;
    return rc;
}

/* 0: new acquisition; 1: same one again; -1: number used for another person. */
static int known_acquisition(rk_db *db, const core_acquisition *a, uint64_t serial)
{
    sqlite3_stmt *q = rk_db_sqlite_stmt(db, "SELECT serial FROM acquisitions WHERE agency = ? AND acquisition_no = ?");
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, a->agency, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, a->acquisition_no, -1, SQLITE_STATIC);
    int r = 0;
    if (sqlite3_step(q) == SQLITE_ROW)
        r = (uint64_t)sqlite3_column_int64(q, 0) == serial ? 1 : -1;
    sqlite3_reset(q);
    return r;
}

static rk_rc insert_acquisition(rk_db *db, const core_acquisition *a, uint64_t serial, int64_t now_ms)
{
    static const char *const sql[] = {
        "INSERT INTO acquisitions(agency, acquisition_no, serial, check_code, at_ms) VALUES (?1,?2,?3,?4,?5)",
        "INSERT OR IGNORE INTO issued(agency, serial, at_ms) VALUES (?1,?3,?5)",
        "INSERT INTO outbox(agency, acquisition_no, serial, check_code, next_ms, created_ms) VALUES (?1,?2,?3,?4,?5,?5)",
    };
    rk_rc rc = RK_OK;
    for (size_t i = 0; i < sizeof sql / sizeof sql[0] && rc == RK_OK; i++) {
        sqlite3_stmt *st = rk_db_sqlite_stmt(db, sql[i]);
        if (!st)
            return RK_ERR_STORE;
        sqlite3_bind_text(st, 1, a->agency, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, a->acquisition_no, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)serial);
        sqlite3_bind_int(st, 4, a->check_code);
        sqlite3_bind_int64(st, 5, now_ms);
        rc = rk_db_step_rc(db, sqlite3_step(st));
        sqlite3_reset(st);
    }
    return rc;
}

typedef struct acquire_args {
    const core_acquisition *a;
    int64_t now_ms;
    uint64_t *serial;
    int *duplicate;
} acquire_args;

static rk_rc acquire_in_tx(rk_db *db, void *arg)
{
    acquire_args *x = arg;
    rk_rc rc = resolve_person(db, x->a, x->now_ms, x->serial);
    if (rc != RK_OK)
        return rc;
    int known = known_acquisition(db, x->a, *x->serial);
    if (known < 0)
        return RK_ERR_CONFLICT;
    if (known > 0) {
        *x->duplicate = 1;
        return RK_OK;
    }
    return insert_acquisition(db, x->a, *x->serial, x->now_ms);
}


typedef struct acquire_many {
    core_acquisition_item *items;
    size_t n;
    int64_t now_ms;
} acquire_many;

static rk_rc acquire_many_in_tx(rk_db *db, void *arg)
{
    acquire_many *m = arg;
    for (size_t i = 0; i < m->n; i++) {
        core_acquisition_item *it = &m->items[i];
        it->duplicate = 0;
        acquire_args x = {&it->a, m->now_ms, &it->serial, &it->duplicate};
        it->rc = rk_db_item(db, acquire_in_tx, &x);
    }
    return RK_OK;
}

rk_rc core_store_acquire_many(core_store *s, core_acquisition_item *items, size_t n, int64_t now_ms)
{
    acquire_many m = {items, n, now_ms};
    return rk_db_write(s->db, acquire_many_in_tx, &m);
}

rk_rc core_store_issued(core_store *s, const char *agency, uint64_t serial)
{
    rk_db_read_lock(s->db);
    sqlite3_stmt *q = rk_db_sqlite_stmt(s->db, "SELECT 1 FROM issued WHERE agency = ? AND serial = ?");
    rk_rc rc = RK_ERR_STORE;
    if (q) {
        sqlite3_bind_text(q, 1, agency, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, (sqlite3_int64)serial);
        rc = rk_db_step_row(s->db, q);
        sqlite3_reset(q);
    }
    rk_db_read_unlock(s->db);
    return rc;
}

rk_rc core_store_due_notices(core_store *s, int64_t now_ms, int lane, int lanes, core_notice *out, size_t max,
                             size_t *n)
{
    *n = 0;
    rk_db_lock(s->db);
    sqlite3_stmt *q = rk_db_sqlite_stmt(s->db,
        "SELECT id, agency, acquisition_no, serial, check_code, attempts, created_ms FROM outbox "
        "WHERE done_ms IS NULL AND next_ms <= ?1 AND id % ?3 = ?4 ORDER BY next_ms LIMIT ?2");
    rk_rc rc = q ? RK_OK : RK_ERR_STORE;
    if (q) {
        sqlite3_bind_int64(q, 1, now_ms);
        sqlite3_bind_int64(q, 2, (sqlite3_int64)max);
        sqlite3_bind_int(q, 3, lanes);
        sqlite3_bind_int(q, 4, lane);
        while (*n < max && sqlite3_step(q) == SQLITE_ROW) {
            core_notice *c = &out[(*n)++];
            c->id = sqlite3_column_int64(q, 0);
            snprintf(c->agency, sizeof c->agency, "%s", (const char *)sqlite3_column_text(q, 1));
            snprintf(c->acquisition_no, sizeof c->acquisition_no, "%s", (const char *)sqlite3_column_text(q, 2));
            c->serial = (uint64_t)sqlite3_column_int64(q, 3);
            c->check_code = sqlite3_column_int(q, 4);
            c->attempts = sqlite3_column_int(q, 5);
            c->created_ms = sqlite3_column_int64(q, 6);
        }
        sqlite3_reset(q);
    }
    rk_db_unlock(s->db);
    return rc;
}

typedef struct notice_update {
    const char *sql;
    int64_t id, a;
    const char *text;
} notice_update;

static rk_rc update_in_tx(rk_db *db, void *arg)
{
    notice_update *u = arg;
    sqlite3_stmt *st = rk_db_sqlite_stmt(db, u->sql);
    if (!st)
        return RK_ERR_STORE;
    sqlite3_bind_int64(st, 1, u->a);
    sqlite3_bind_text(st, 2, u->text, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, u->id);
    rk_rc rc = rk_db_step_rc(db, sqlite3_step(st));
    sqlite3_reset(st);
    return rc;
}


static int64_t single_int(core_store *s, const char *sql, int64_t none)
{
    rk_db_lock(s->db);
    sqlite3_stmt *q = rk_db_sqlite_stmt(s->db, sql);
    int64_t v = none;
    if (q && sqlite3_step(q) == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL)
        v = sqlite3_column_int64(q, 0);
    if (q)
        sqlite3_reset(q);
    rk_db_unlock(s->db);
    return v;
}

int64_t core_store_next_due(core_store *s, int lane, int lanes)
{
    rk_db_lock(s->db);
    sqlite3_stmt *q = rk_db_sqlite_stmt(s->db, "SELECT min(next_ms) FROM outbox WHERE done_ms IS NULL AND id % ?1 = ?2");
    int64_t v = -1;
    if (q) {
        sqlite3_bind_int(q, 1, lanes);
        sqlite3_bind_int(q, 2, lane);
        if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL)
            v = sqlite3_column_int64(q, 0);
        sqlite3_reset(q);
    }
    rk_db_unlock(s->db);
    return v;
}

size_t core_store_outbox_depth(core_store *s)
{
    return (size_t)single_int(s, "SELECT count(*) FROM outbox WHERE done_ms IS NULL", 0);
}

int core_store_writable(core_store *s)
{
    return rk_db_writable(s->db);
}

typedef struct settle_many {
    const core_notice_result *r;
    size_t n;
    int64_t now_ms;
} settle_many;

static rk_rc settle_many_in_tx(rk_db *db, void *arg)
{
    settle_many *m = arg;
    rk_rc rc = RK_OK;
    for (size_t i = 0; i < m->n && rc == RK_OK; i++) {
        const core_notice_result *r = &m->r[i];
        notice_update u = r->outcome
            ? (notice_update){"UPDATE outbox SET done_ms = ?1, outcome = ?2, attempts = attempts + 1 WHERE id = ?3",
                              r->id, m->now_ms, r->outcome}
            : (notice_update){"UPDATE outbox SET next_ms = ?1, attempts = attempts + 1 WHERE id = ?3",
                              r->id, r->next_ms, NULL};
        rc = update_in_tx(db, &u);
    }
    return rc;
}

rk_rc core_store_notices_settle(core_store *s, const core_notice_result *r, size_t n, int64_t now_ms)
{
    settle_many m = {r, n, now_ms};
    return rk_db_write(s->db, settle_many_in_tx, &m);
}

