/* ppc_store.c — see ppc_store.h. */
#include "ppc/ppc_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PPC_SERIAL_LOCK 0x7070637365LL /* the register's serials are given in turn (store/db.h rk_db_lock) */

struct ppc_store {
    rk_db *db;
};

static const char *const ppc_steps[] = {
    "CREATE TABLE pia (agency TEXT NOT NULL, business TEXT NOT NULL, state TEXT NOT NULL,"
    "  evaluated_on TEXT NOT NULL, serial BIGINT NOT NULL, changed_ms BIGINT NOT NULL,"
    "  PRIMARY KEY (agency, business)){without_rowid};"
    "CREATE UNIQUE INDEX pia_serial ON pia(serial);"
    "CREATE TABLE pia_history (serial BIGINT PRIMARY KEY, agency TEXT NOT NULL, business TEXT NOT NULL,"
    "  state TEXT NOT NULL, evaluated_on TEXT NOT NULL, changed_ms BIGINT NOT NULL);"
    "CREATE INDEX pia_history_entry ON pia_history(agency, business, serial);",
};

rk_rc ppc_store_open(const char *target, int flags, ppc_store **out)
{
    ppc_store *s = calloc(1, sizeof *s);
    if (!s)
        return RK_ERR_NOMEM;
    rk_rc rc = rk_db_open(target, flags, &s->db);
    if (rc == RK_OK && !(flags & RK_DB_READONLY))
        rc = rk_db_migrate(s->db, "ppc", ppc_steps, (int)(sizeof ppc_steps / sizeof ppc_steps[0]));
    if (rc != RK_OK) {
        rk_db_close(s->db);
        free(s);
        return rc;
    }
    *out = s;
    return RK_OK;
}

void ppc_store_close(ppc_store *s)
{
    if (!s)
        return;
    rk_db_close(s->db);
    free(s);
}

rk_db *ppc_store_db(ppc_store *s)
{
    return s->db;
}

static rk_rc last_serial(rk_db *db, int64_t *serial)
{
    rk_stmt *q = rk_db_stmt(db, "SELECT COALESCE(MAX(serial), 0) FROM pia_history");
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK)
        *serial = rk_col_int(q, 0);
    return rc;
}

/* Inside a write holding the serial lock: e gets the next serial. */
static rk_rc write_entry(rk_db *db, pia_entry *e, int64_t next)
{
    const char *state = rk_pia_state_name(e->state);
    rk_stmt *h = rk_db_stmt(db, "INSERT INTO pia_history(serial, agency, business, state, evaluated_on, changed_ms)"
                                " VALUES (?,?,?,?,?,?)");
    rk_bind_int(h, 1, next);
    rk_bind_text(h, 2, e->agency);
    rk_bind_text(h, 3, e->business);
    rk_bind_text(h, 4, state);
    rk_bind_text(h, 5, e->evaluated_on);
    rk_bind_int(h, 6, e->changed_ms);
    rk_rc rc = rk_stmt_exec(h);
    if (rc != RK_OK)
        return rc;
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO pia(agency, business, state, evaluated_on, serial, changed_ms)"
                                 " VALUES (?,?,?,?,?,?) ON CONFLICT (agency, business) DO UPDATE SET"
                                 " state = excluded.state, evaluated_on = excluded.evaluated_on,"
                                 " serial = excluded.serial, changed_ms = excluded.changed_ms");
    rk_bind_text(st, 1, e->agency);
    rk_bind_text(st, 2, e->business);
    rk_bind_text(st, 3, state);
    rk_bind_text(st, 4, e->evaluated_on);
    rk_bind_int(st, 5, next);
    rk_bind_int(st, 6, e->changed_ms);
    if ((rc = rk_stmt_exec(st)) == RK_OK)
        e->serial = next;
    return rc;
}

typedef struct set_args {
    pia_entry *e;
    int changed;
} set_args;

static rk_rc set_in_tx(rk_db *db, void *arg)
{
    set_args *a = arg;
    pia_entry *e = a->e;
    rk_rc rc = rk_db_lock(db, PPC_SERIAL_LOCK);
    if (rc != RK_OK)
        return rc;
    rk_stmt *q = rk_db_stmt(db, "SELECT state, evaluated_on, serial FROM pia WHERE agency = ? AND business = ?");
    rk_bind_text(q, 1, e->agency);
    rk_bind_text(q, 2, e->business);
    rc = rk_stmt_next(q);
    if (rc == RK_OK && rk_pia_state_parse(rk_col_text(q, 0)) == e->state &&
        strcmp(rk_col_text(q, 1) ? rk_col_text(q, 1) : "", e->evaluated_on) == 0) {
        e->serial = rk_col_int(q, 2); /* nothing changes: no new serial */
        a->changed = 0;
        return RK_OK;
    }
    if (rc != RK_OK && rc != RK_ERR_NOT_FOUND)
        return rc;
    int64_t serial = 0;
    if ((rc = last_serial(db, &serial)) != RK_OK)
        return rc;
    a->changed = 1;
    return write_entry(db, e, serial + 1);
}

rk_rc ppc_store_set(ppc_store *s, pia_entry *e, int *changed)
{
    set_args a = {.e = e};
    rk_rc rc = rk_db_write(s->db, set_in_tx, &a);
    if (changed)
        *changed = rc == RK_OK && a.changed;
    return rc;
}

typedef struct seed_args {
    pia_entry *entries;
    size_t n;
    int64_t now_ms;
} seed_args;

static rk_rc seed_in_tx(rk_db *db, void *arg)
{
    seed_args *a = arg;
    rk_rc rc = rk_db_lock(db, PPC_SERIAL_LOCK);
    int64_t serial = 0;
    if (rc == RK_OK)
        rc = last_serial(db, &serial);
    if (rc != RK_OK)
        return rc;
    if (serial > 0)
        return RK_ERR_CONFLICT;
    for (size_t i = 0; i < a->n && rc == RK_OK; i++) {
        a->entries[i].changed_ms = a->now_ms;
        rc = write_entry(db, &a->entries[i], ++serial);
    }
    return rc;
}

rk_rc ppc_store_seed(ppc_store *s, pia_entry *entries, size_t n, int64_t now_ms)
{
    seed_args a = {entries, n, now_ms};
    return rk_db_write(s->db, seed_in_tx, &a);
}

static void read_entry(rk_stmt *q, pia_entry *e)
{
    rk_col_copy(q, 0, e->agency, sizeof e->agency);
    rk_col_copy(q, 1, e->business, sizeof e->business);
    e->state = rk_pia_state_parse(rk_col_text(q, 2));
    rk_col_copy(q, 3, e->evaluated_on, sizeof e->evaluated_on);
    e->serial = rk_col_int(q, 4);
    e->changed_ms = rk_col_int(q, 5);
}

typedef struct list_args {
    const char *agency, *business;
    int64_t since;
    pia_entry *out;
    size_t cap, n;
    int64_t latest;
} list_args;

static rk_rc since_fn(rk_db *db, void *arg)
{
    list_args *a = arg;
    rk_rc rc = last_serial(db, &a->latest);
    if (rc != RK_OK)
        return rc;
    rk_stmt *q = rk_db_stmt(db, "SELECT agency, business, state, evaluated_on, serial, changed_ms FROM pia"
                                " WHERE serial > ? ORDER BY serial LIMIT ?");
    rk_bind_int(q, 1, a->since);
    rk_bind_int(q, 2, (int64_t)a->cap);
    while (a->n < a->cap && (rc = rk_stmt_next(q)) == RK_OK)
        read_entry(q, &a->out[a->n++]);
    return rc == RK_ERR_NOT_FOUND || rc == RK_OK ? RK_OK : rc;
}

rk_rc ppc_store_since(ppc_store *s, int64_t since, pia_entry *out, size_t cap, size_t *n, int64_t *latest)
{
    list_args a = {.since = since, .out = out, .cap = cap};
    rk_rc rc = rk_db_scan(s->db, since_fn, &a);
    *n = a.n;
    *latest = a.latest;
    return rc;
}

static rk_rc history_fn(rk_db *db, void *arg)
{
    list_args *a = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT agency, business, state, evaluated_on, serial, changed_ms FROM pia_history"
                                " WHERE agency = ? AND business = ? ORDER BY serial DESC LIMIT ?");
    rk_bind_text(q, 1, a->agency);
    rk_bind_text(q, 2, a->business);
    rk_bind_int(q, 3, (int64_t)a->cap);
    rk_rc rc;
    while (a->n < a->cap && (rc = rk_stmt_next(q)) == RK_OK)
        read_entry(q, &a->out[a->n++]);
    return a->n == a->cap || rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

rk_rc ppc_store_history(ppc_store *s, const char *agency, const char *business, pia_entry *out, size_t cap,
                        size_t *n)
{
    list_args a = {.agency = agency, .business = business, .out = out, .cap = cap};
    rk_rc rc = rk_db_read(s->db, history_fn, &a);
    *n = a.n;
    return rc;
}

static rk_rc count_fn(rk_db *db, void *arg)
{
    rk_stmt *q = rk_db_stmt(db, "SELECT count(*) FROM pia");
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK)
        *(int64_t *)arg = rk_col_int(q, 0);
    return rc;
}

int64_t ppc_store_count(ppc_store *s)
{
    int64_t n = 0;
    rk_db_read(s->db, count_fn, &n);
    return n;
}
