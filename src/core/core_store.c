#include "core/core_store.h"

#include <stdlib.h>
#include <string.h>

#include "store/db.h"
#include "records/records.h"

struct core_store {
    rk_db *db;
    int readonly; /* RK_DB_READONLY: every write is refused here, before the driver */
    int code_version; /* the code key version new issues get (core/codes.h) */
};

/* The core's tables, one migration a version (module "core"). Step 1 is the
 * schema from before versioned migrations: IF NOT EXISTS, so that a database
 * made then opens unchanged. */
static const char *const core_steps[] = {
    "CREATE TABLE IF NOT EXISTS persons (serial {id}, created_ms BIGINT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS resident_codes ("
    "  resident_code TEXT PRIMARY KEY, serial BIGINT NOT NULL REFERENCES persons(serial)){without_rowid};"
    "CREATE TABLE IF NOT EXISTS acquisitions ("
    "  agency TEXT NOT NULL, acquisition_no TEXT NOT NULL, serial BIGINT NOT NULL, check_code BIGINT NOT NULL,"
    "  at_ms BIGINT NOT NULL, PRIMARY KEY (agency, acquisition_no)){without_rowid};"
    "CREATE TABLE IF NOT EXISTS issued ("
    "  agency TEXT NOT NULL, serial BIGINT NOT NULL, at_ms BIGINT NOT NULL,"
    "  PRIMARY KEY (agency, serial)){without_rowid};"
    "CREATE TABLE IF NOT EXISTS outbox ("
    "  id {id}, agency TEXT NOT NULL, acquisition_no TEXT NOT NULL,"
    "  serial BIGINT NOT NULL, check_code BIGINT NOT NULL, attempts BIGINT NOT NULL DEFAULT 0,"
    "  next_ms BIGINT NOT NULL, created_ms BIGINT NOT NULL, done_ms BIGINT, outcome TEXT);"
    "CREATE INDEX IF NOT EXISTS outbox_due ON outbox(next_ms) WHERE done_ms IS NULL;",
    /* Step 2: an acquisition names its notice (a repeat re-arms it); NULL
     * for the acquisitions from before, found by their number. */
    "ALTER TABLE acquisitions ADD COLUMN notice_id BIGINT;",
    /* Step 3: records an agency marked not to be disclosed to the person
     * (法23条 with 個人情報保護法78条), until a date ('' for until lifted). */
    "CREATE TABLE nondisclosures (exchange_id TEXT NOT NULL, agency TEXT NOT NULL, basis TEXT NOT NULL,"
    "  until TEXT NOT NULL DEFAULT '', operator TEXT NOT NULL, at_ms BIGINT NOT NULL,"
    "  PRIMARY KEY (exchange_id, agency)){without_rowid};",
    /* Step 4: the code key version an agency's code for a person was first
     * issued in (rotation, core/codes.h); NULL for the issues from before: 1. */
    "ALTER TABLE issued ADD COLUMN code_version BIGINT;",
    /* Step 5: held requests' late results (手動応答), kept until the
     * requester's agency has each (core/provision_results.c). */
    "CREATE TABLE late_results (id {id}, exchange_id TEXT NOT NULL UNIQUE, requester TEXT NOT NULL,"
    "  body TEXT NOT NULL, attempts BIGINT NOT NULL DEFAULT 0, next_ms BIGINT NOT NULL, created_ms BIGINT NOT NULL,"
    "  done_ms BIGINT, outcome TEXT);"
    "CREATE INDEX late_results_due ON late_results(next_ms) WHERE done_ms IS NULL;",
};

rk_db *core_store_db(core_store *s)
{
    return s->db;
}

rk_rc core_store_open(const char *target, int flags, core_store **out)
{
    core_store *s = calloc(1, sizeof *s);
    if (!s)
        return RK_ERR_NOMEM;
    s->readonly = (flags & RK_DB_READONLY) != 0;
    s->code_version = 1;
    rk_rc rc = rk_db_open(target, flags, &s->db);
    if (rc == RK_OK && !s->readonly)
        rc = rk_db_migrate(s->db, "core", core_steps, (int)(sizeof core_steps / sizeof core_steps[0]));
    if (rc == RK_OK && !s->readonly) /* the records tables belong to the records module */
        rc = rk_records_migrate(s->db);
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

/* The serial of the person named by this resident code: RK_OK,
 * RK_ERR_NOT_FOUND, or an error. */
static rk_rc serial_of_code(rk_db *db, const char *code, uint64_t *serial)
{
    rk_stmt *q = rk_db_stmt(db, "SELECT serial FROM resident_codes WHERE resident_code = ?");
    rk_bind_text(q, 1, code);
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK)
        *serial = (uint64_t)rk_col_int(q, 0);
    return rc;
}

static rk_rc bind_code(rk_db *db, const char *code, uint64_t serial)
{
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO resident_codes(resident_code, serial) VALUES (?, ?)"
                                 " ON CONFLICT (resident_code) DO NOTHING");
    rk_bind_text(st, 1, code);
    rk_bind_int(st, 2, (int64_t)serial);
    return rk_stmt_exec(st);
}

static rk_rc new_person(rk_db *db, int64_t now_ms, uint64_t *serial)
{
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO persons(created_ms) VALUES (?) RETURNING serial");
    rk_bind_int(st, 1, now_ms);
    rk_rc rc = rk_stmt_next(st);
    if (rc == RK_ERR_NOT_FOUND)
        return RK_ERR_STORE; /* RETURNING always answers the row it inserted */
    if (rc != RK_OK)
        return rc;
    *serial = (uint64_t)rk_col_int(st, 0);
    /* Runs the statement to its end, so that no insert is left open. */
    rc = rk_stmt_next(st);
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

/* Finds the person by the current or any earlier resident code, or creates
 * one, and makes every code of the person point at it. */
static rk_rc resolve_person(rk_db *db, const core_acquisition *a, int64_t now_ms, uint64_t *serial)
{
    rk_rc rc = serial_of_code(db, a->resident_code, serial);
    for (int i = 0; rc == RK_ERR_NOT_FOUND && i < a->n_previous; i++)
        rc = serial_of_code(db, a->previous[i], serial);
    int created = rc == RK_ERR_NOT_FOUND;
    if (created)
        rc = new_person(db, now_ms, serial);
    if (rc == RK_OK)
        rc = bind_code(db, a->resident_code, *serial);
    if (rc == RK_OK && created && rk_db_changes(db) == 0) {
        /* Another instance bound this code meanwhile (DESIGN §6): its person
         * is the one, and the one made here goes. On PostgreSQL the insert
         * above waited for that commit and did nothing. */
        uint64_t bound = 0;
        rc = serial_of_code(db, a->resident_code, &bound);
        if (rc == RK_OK && bound != *serial) {
            rk_stmt *st = rk_db_stmt(db, "DELETE FROM persons WHERE serial = ?");
            rk_bind_int(st, 1, (int64_t)*serial);
            rc = rk_stmt_exec(st);
            *serial = bound;
        }
    }
    for (int i = 0; rc == RK_OK && i < a->n_previous; i++)
        rc = bind_code(db, a->previous[i], *serial);
    return rc;
}

/* *known: 0 a new acquisition; 1 the same one again; -1 the number was used
 * for another person. */
static rk_rc known_acquisition(rk_db *db, const core_acquisition *a, uint64_t serial, int *known, int64_t *notice_id)
{
    rk_stmt *q = rk_db_stmt(db, "SELECT serial, notice_id FROM acquisitions WHERE agency = ? AND acquisition_no = ?");
    rk_bind_text(q, 1, a->agency);
    rk_bind_text(q, 2, a->acquisition_no);
    rk_rc rc = rk_stmt_next(q);
    *known = 0;
    *notice_id = -1;
    if (rc == RK_OK) {
        *known = (uint64_t)rk_col_int(q, 0) == serial ? 1 : -1;
        if (!rk_col_is_null(q, 1))
            *notice_id = rk_col_int(q, 1);
    }
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

/* The notice first, so that the acquisition names it. */
static rk_rc insert_acquisition(rk_db *db, const core_acquisition *a, uint64_t serial, int64_t now_ms,
                                int code_version, int64_t *queued)
{
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO outbox(agency, acquisition_no, serial, check_code, next_ms, created_ms)"
                                 " VALUES (?, ?, ?, ?, ?, ?) RETURNING id");
    rk_bind_text(st, 1, a->agency);
    rk_bind_text(st, 2, a->acquisition_no);
    rk_bind_int(st, 3, (int64_t)serial);
    rk_bind_int(st, 4, a->check_code);
    rk_bind_int(st, 5, now_ms);
    rk_bind_int(st, 6, now_ms);
    rk_rc rc = rk_stmt_next(st);
    if (rc != RK_OK)
        return rc == RK_ERR_NOT_FOUND ? RK_ERR_STORE : rc; /* RETURNING answers the row it inserted */
    int64_t notice_id = rk_col_int(st, 0);
    *queued = notice_id;
    if ((rc = rk_stmt_next(st)) != RK_ERR_NOT_FOUND) /* run the insert to its end */
        return rc == RK_OK ? RK_ERR_STORE : rc;
    st = rk_db_stmt(db, "INSERT INTO acquisitions(agency, acquisition_no, serial, check_code, at_ms, notice_id)"
                        " VALUES (?, ?, ?, ?, ?, ?)");
    rk_bind_text(st, 1, a->agency);
    rk_bind_text(st, 2, a->acquisition_no);
    rk_bind_int(st, 3, (int64_t)serial);
    rk_bind_int(st, 4, a->check_code);
    rk_bind_int(st, 5, now_ms);
    rk_bind_int(st, 6, notice_id);
    if ((rc = rk_stmt_exec(st)) != RK_OK)
        return rc;
    st = rk_db_stmt(db, "INSERT INTO issued(agency, serial, at_ms, code_version) VALUES (?, ?, ?, ?)"
                        " ON CONFLICT (agency, serial) DO NOTHING");
    rk_bind_text(st, 1, a->agency);
    rk_bind_int(st, 2, (int64_t)serial);
    rk_bind_int(st, 3, now_ms);
    rk_bind_int(st, 4, code_version);
    return rk_stmt_exec(st);
}

/* A repeat of an acquisition re-arms its notice, due now, unless the agency
 * settled it for good (linked, or refused by 第8-2(1)イ): the agency may have
 * lost it, or answered unknown_acquisition before its row was there. */
static rk_rc rearm_notice(rk_db *db, const core_acquisition *a, int64_t notice_id, int64_t now_ms, int *rearmed)
{
    rk_stmt *st;
    if (notice_id >= 0) {
        st = rk_db_stmt(db, "UPDATE outbox SET next_ms = ?, attempts = 0, done_ms = NULL, outcome = NULL WHERE id = ?"
                            " AND (done_ms IS NULL OR outcome IN ('unknown_acquisition', 'undeliverable'))");
        rk_bind_int(st, 2, notice_id);
    } else { /* an acquisition from before step 2: a scan, once */
        st = rk_db_stmt(db, "UPDATE outbox SET next_ms = ?, attempts = 0, done_ms = NULL, outcome = NULL"
                            " WHERE agency = ? AND acquisition_no = ?"
                            " AND (done_ms IS NULL OR outcome IN ('unknown_acquisition', 'undeliverable'))");
        rk_bind_text(st, 2, a->agency);
        rk_bind_text(st, 3, a->acquisition_no);
    }
    rk_bind_int(st, 1, now_ms);
    rk_rc rc = rk_stmt_exec(st);
    if (rc == RK_OK)
        *rearmed = rk_db_changes(db) > 0;
    return rc;
}

typedef struct acquire_args {
    const core_acquisition *a;
    int64_t now_ms;
    uint64_t *serial;
    int *duplicate, *rearmed;
    int64_t *notice_id;
    int code_version;
} acquire_args;

static rk_rc acquire_in_tx(rk_db *db, void *arg)
{
    acquire_args *x = arg;
    rk_rc rc = resolve_person(db, x->a, x->now_ms, x->serial);
    int known = 0;
    int64_t notice_id = -1;
    if (rc == RK_OK)
        rc = known_acquisition(db, x->a, *x->serial, &known, &notice_id);
    if (rc != RK_OK)
        return rc;
    if (known < 0)
        return RK_ERR_CONFLICT;
    if (known > 0) {
        *x->duplicate = 1;
        *x->notice_id = notice_id;
        return rearm_notice(db, x->a, notice_id, x->now_ms, x->rearmed);
    }
    return insert_acquisition(db, x->a, *x->serial, x->now_ms, x->code_version, x->notice_id);
}

typedef struct acquire_many {
    core_acquisition_item *items;
    size_t n;
    int64_t now_ms;
    int code_version;
} acquire_many;

static rk_rc acquire_many_in_tx(rk_db *db, void *arg)
{
    acquire_many *m = arg;
    for (size_t i = 0; i < m->n; i++) {
        core_acquisition_item *it = &m->items[i];
        it->duplicate = it->rearmed = 0;
        it->notice_id = -1;
        acquire_args x = {&it->a, m->now_ms, &it->serial, &it->duplicate, &it->rearmed, &it->notice_id,
                          m->code_version};
        it->rc = rk_db_item(db, acquire_in_tx, &x);
    }
    return RK_OK;
}

rk_rc core_store_acquire_many(core_store *s, core_acquisition_item *items, size_t n, int64_t now_ms)
{
    if (s->readonly)
        return RK_ERR_DENIED;
    acquire_many m = {items, n, now_ms, s->code_version};
    return rk_db_write(s->db, acquire_many_in_tx, &m);
}

typedef struct issued_args {
    const char *agency;
    uint64_t serial;
    int *version;
} issued_args;

static rk_rc issued_version(rk_db *db, const char *agency, uint64_t serial, int *version)
{
    rk_stmt *q = rk_db_stmt(db, "SELECT COALESCE(code_version, 1) FROM issued WHERE agency = ? AND serial = ?");
    rk_bind_text(q, 1, agency);
    rk_bind_int(q, 2, (int64_t)serial);
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK && version)
        *version = (int)rk_col_int(q, 0);
    return rc;
}

static rk_rc issued_in_tx(rk_db *db, void *arg)
{
    issued_args *x = arg;
    return issued_version(db, x->agency, x->serial, x->version);
}

rk_rc core_store_issued(core_store *s, const char *agency, uint64_t serial)
{
    issued_args x = {agency, serial, NULL};
    return rk_db_read(s->db, issued_in_tx, &x);
}

rk_rc core_store_issued_version(core_store *s, const char *agency, uint64_t serial, int *version)
{
    issued_args x = {agency, serial, version};
    return rk_db_read(s->db, issued_in_tx, &x);
}

typedef struct holders_args {
    uint64_t serial;
    core_store_holder *out;
    size_t max, n;
} holders_args;

static rk_rc holders_fn(rk_db *db, void *arg)
{
    holders_args *a = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT agency, COALESCE(code_version, 1) FROM issued WHERE serial = ? ORDER BY agency");
    rk_bind_int(q, 1, (int64_t)a->serial);
    rk_rc rc = RK_ERR_NOT_FOUND;
    while (a->n < a->max && (rc = rk_stmt_next(q)) == RK_OK) {
        snprintf(a->out[a->n].agency, sizeof a->out[a->n].agency, "%s", rk_col_text(q, 0));
        a->out[a->n++].version = (int)rk_col_int(q, 1);
    }
    return a->n == a->max || rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

rk_rc core_store_holders(core_store *s, uint64_t serial, core_store_holder *out, size_t max, size_t *n)
{
    holders_args a = {serial, out, max, 0};
    rk_rc rc = rk_db_read(s->db, holders_fn, &a);
    *n = rc == RK_OK ? a.n : 0;
    return rc;
}

void core_store_set_code_version(core_store *s, int version)
{
    s->code_version = version;
}

typedef struct claim_args {
    int64_t now_ms, lease_ms;
    int lane, lanes;
    core_notice *out;
    size_t max, *n;
} claim_args;

/* A write: the due rows are claimed as they are read (their next attempt
 * moved to the lease's end), rows another instance's claim holds passed
 * over. */
static rk_rc claim_in_tx(rk_db *db, void *arg)
{
    claim_args *x = arg;
    rk_stmt *q = rk_db_stmt(db, "UPDATE outbox SET next_ms = ? WHERE id IN ("
                                "  SELECT id FROM outbox WHERE done_ms IS NULL AND next_ms <= ? AND id % ? = ?"
                                "  ORDER BY next_ms LIMIT ? {skip_locked})"
                                " RETURNING id, agency, acquisition_no, serial, check_code, attempts, created_ms");
    rk_bind_int(q, 1, x->now_ms + x->lease_ms);
    rk_bind_int(q, 2, x->now_ms);
    rk_bind_int(q, 3, x->lanes);
    rk_bind_int(q, 4, x->lane);
    rk_bind_int(q, 5, (int64_t)x->max);
    rk_rc rc = RK_OK;
    while ((rc = rk_stmt_next(q)) == RK_OK)
        if (*x->n < x->max) {
            core_notice *c = &x->out[(*x->n)++];
            c->id = rk_col_int(q, 0);
            rk_col_copy(q, 1, c->agency, sizeof c->agency);
            rk_col_copy(q, 2, c->acquisition_no, sizeof c->acquisition_no);
            c->serial = (uint64_t)rk_col_int(q, 3);
            c->check_code = (int)rk_col_int(q, 4);
            c->attempts = (int)rk_col_int(q, 5);
            c->created_ms = rk_col_int(q, 6);
        }
    if (rc != RK_ERR_NOT_FOUND)
        return rc;
    /* each notice carries the code in the version first issued to its agency */
    for (size_t i = 0; i < *x->n; i++) {
        core_notice *c = &x->out[i];
        c->code_version = 1;
        if ((rc = issued_version(db, c->agency, c->serial, &c->code_version)) != RK_OK && rc != RK_ERR_NOT_FOUND)
            return rc;
    }
    return RK_OK;
}

rk_rc core_store_claim_notices(core_store *s, int64_t now_ms, int64_t lease_ms, int lane, int lanes, core_notice *out,
                               size_t max, size_t *n)
{
    *n = 0;
    if (s->readonly)
        return RK_ERR_DENIED;
    claim_args x = {now_ms, lease_ms, lane, lanes, out, max, n};
    rk_rc rc = rk_db_write(s->db, claim_in_tx, &x);
    if (rc != RK_OK)
        *n = 0; /* rolled back: nothing is claimed */
    return rc;
}

typedef struct next_due_args {
    int lane, lanes;
    int64_t next;
} next_due_args;

static rk_rc next_due_in_tx(rk_db *db, void *arg)
{
    next_due_args *x = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT min(next_ms) FROM outbox WHERE done_ms IS NULL AND id % ? = ?");
    rk_bind_int(q, 1, x->lanes);
    rk_bind_int(q, 2, x->lane);
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK && !rk_col_is_null(q, 0))
        x->next = rk_col_int(q, 0);
    return rc;
}

int64_t core_store_next_due(core_store *s, int lane, int lanes)
{
    next_due_args x = {lane, lanes, -1};
    rk_db_scan(s->db, next_due_in_tx, &x);
    return x.next;
}

static rk_rc outbox_depth_in_tx(rk_db *db, void *arg)
{
    rk_stmt *q = rk_db_stmt(db, "SELECT count(*) FROM outbox WHERE done_ms IS NULL");
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK)
        *(int64_t *)arg = rk_col_int(q, 0);
    return rc;
}

size_t core_store_outbox_depth(core_store *s)
{
    int64_t n = 0;
    rk_db_scan(s->db, outbox_depth_in_tx, &n);
    return (size_t)n;
}

int core_store_writable(core_store *s)
{
    return !s->readonly && rk_db_writable(s->db);
}

typedef struct settle_many {
    const core_notice_result *r;
    size_t n;
    int64_t now_ms;
} settle_many;

static rk_rc settle_one(rk_db *db, const core_notice_result *r, int64_t now_ms)
{
    rk_stmt *st;
    if (r->outcome) {
        st = rk_db_stmt(db, "UPDATE outbox SET done_ms = ?, outcome = ?, attempts = attempts + 1 WHERE id = ?");
        rk_bind_int(st, 1, now_ms);
        rk_bind_text(st, 2, r->outcome);
        rk_bind_int(st, 3, r->id);
    } else {
        st = rk_db_stmt(db, "UPDATE outbox SET next_ms = ?, attempts = attempts + 1 WHERE id = ?");
        rk_bind_int(st, 1, r->next_ms);
        rk_bind_int(st, 2, r->id);
    }
    return rk_stmt_exec(st);
}

static rk_rc settle_many_in_tx(rk_db *db, void *arg)
{
    settle_many *m = arg;
    rk_rc rc = RK_OK;
    for (size_t i = 0; i < m->n && rc == RK_OK; i++)
        rc = settle_one(db, &m->r[i], m->now_ms);
    return rc;
}

rk_rc core_store_notices_settle(core_store *s, const core_notice_result *r, size_t n, int64_t now_ms)
{
    if (s->readonly)
        return RK_ERR_DENIED;
    settle_many m = {r, n, now_ms};
    return rk_db_write(s->db, settle_many_in_tx, &m);
}

/* ---- reads for tools (each a scan: acquisitions are keyed by agency and
 * number, not by person) ---- */

typedef struct acquisitions_of_args {
    const char *agency, *resident_code;
    int64_t *count;
    int *min_check_code, *max_check_code;
} acquisitions_of_args;

static rk_rc acquisitions_of_in_tx(rk_db *db, void *arg)
{
    acquisitions_of_args *x = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT count(*), min(a.check_code), max(a.check_code) FROM acquisitions a"
                                " JOIN resident_codes r ON r.serial = a.serial"
                                " WHERE a.agency = ? AND r.resident_code = ?");
    rk_bind_text(q, 1, x->agency);
    rk_bind_text(q, 2, x->resident_code);
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_ERR_NOT_FOUND)
        return RK_ERR_STORE; /* an aggregate always answers one row */
    if (rc != RK_OK)
        return rc;
    *x->count = rk_col_int(q, 0);
    *x->min_check_code = rk_col_is_null(q, 1) ? -1 : (int)rk_col_int(q, 1);
    *x->max_check_code = rk_col_is_null(q, 2) ? -1 : (int)rk_col_int(q, 2);
    return RK_OK;
}

rk_rc core_store_acquisitions_of(core_store *s, const char *agency, const char *resident_code, int64_t *count,
                                 int *min_check_code, int *max_check_code)
{
    *count = 0;
    *min_check_code = *max_check_code = -1;
    acquisitions_of_args x = {agency, resident_code, count, min_check_code, max_check_code};
    return rk_db_scan(s->db, acquisitions_of_in_tx, &x);
}

typedef struct spread_args {
    const char *resident_code;
    int64_t *persons, *agencies;
} spread_args;

static rk_rc spread_in_tx(rk_db *db, void *arg)
{
    spread_args *x = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT count(DISTINCT a.serial), count(DISTINCT a.agency) FROM acquisitions a"
                                " JOIN resident_codes r ON r.serial = a.serial WHERE r.resident_code = ?");
    rk_bind_text(q, 1, x->resident_code);
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_ERR_NOT_FOUND)
        return RK_ERR_STORE;
    if (rc != RK_OK)
        return rc;
    *x->persons = rk_col_int(q, 0);
    *x->agencies = rk_col_int(q, 1);
    return RK_OK;
}

rk_rc core_store_person_spread(core_store *s, const char *resident_code, int64_t *persons, int64_t *agencies)
{
    *persons = *agencies = 0;
    spread_args x = {resident_code, persons, agencies};
    return rk_db_scan(s->db, spread_in_tx, &x);
}

/* ---------- disclosure to the person (DESIGN §2.5) ---------- */

typedef struct person_args {
    const char *code;
    uint64_t *serial;
} person_args;

static rk_rc person_fn(rk_db *db, void *arg)
{
    person_args *a = arg;
    return serial_of_code(db, a->code, a->serial);
}

rk_rc core_store_person(core_store *s, const char *resident_code, uint64_t *serial)
{
    person_args a = {resident_code, serial};
    return rk_db_read(s->db, person_fn, &a);
}

typedef struct withhold_args {
    const rk_record *step;
    const char *agency, *basis, *until, *operator_id;
    int64_t now_ms;
} withhold_args;

static rk_rc withhold_fn(rk_db *db, void *arg)
{
    withhold_args *a = arg;
    /* marked before: the log keeps the first marking, the table the latest
     * (looked up first: on PostgreSQL a refused insert ends the transaction) */
    rk_stmt *q = rk_db_stmt(db, "SELECT 1 FROM records WHERE exchange_id = ? AND side = ? AND outcome = ?");
    rk_bind_text(q, 1, a->step->exchange_id);
    rk_bind_text(q, 2, a->step->side);
    rk_bind_text(q, 3, a->step->outcome);
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_ERR_NOT_FOUND)
        rc = rk_record_append(db, a->step);
    if (rc != RK_OK)
        return rc;
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO nondisclosures(exchange_id, agency, basis, until, operator, at_ms)"
                                 " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (exchange_id, agency) DO UPDATE SET"
                                 " basis = excluded.basis, until = excluded.until, operator = excluded.operator,"
                                 " at_ms = excluded.at_ms");
    rk_bind_text(st, 1, a->step->exchange_id);
    rk_bind_text(st, 2, a->agency);
    rk_bind_text(st, 3, a->basis);
    rk_bind_text(st, 4, a->until ? a->until : "");
    rk_bind_text(st, 5, a->operator_id);
    rk_bind_int(st, 6, a->now_ms);
    return rk_stmt_exec(st);
}

rk_rc core_store_withhold(core_store *s, const rk_record *step, const char *agency, const char *basis,
                          const char *until, const char *operator_id, int64_t now_ms)
{
    if (s->readonly)
        return RK_ERR_DENIED;
    withhold_args a = {step, agency, basis, until, operator_id, now_ms};
    return rk_db_write(s->db, withhold_fn, &a);
}

typedef struct lift_args {
    const rk_record *step;
    const char *agency;
} lift_args;

static rk_rc lift_fn(rk_db *db, void *arg)
{
    lift_args *a = arg;
    rk_stmt *m = rk_db_stmt(db, "SELECT 1 FROM nondisclosures WHERE exchange_id = ? AND agency = ?");
    rk_bind_text(m, 1, a->step->exchange_id);
    rk_bind_text(m, 2, a->agency);
    rk_rc rc = rk_stmt_next(m);
    if (rc != RK_OK)
        return rc; /* RK_ERR_NOT_FOUND: not withheld by this agency */
    /* lifted before: the log keeps the first lifting (looked up first, as above) */
    rk_stmt *q = rk_db_stmt(db, "SELECT 1 FROM records WHERE exchange_id = ? AND side = ? AND outcome = ?");
    rk_bind_text(q, 1, a->step->exchange_id);
    rk_bind_text(q, 2, a->step->side);
    rk_bind_text(q, 3, a->step->outcome);
    rc = rk_stmt_next(q);
    if (rc == RK_ERR_NOT_FOUND)
        rc = rk_record_append(db, a->step);
    if (rc != RK_OK)
        return rc;
    rk_stmt *st = rk_db_stmt(db, "DELETE FROM nondisclosures WHERE exchange_id = ? AND agency = ?");
    rk_bind_text(st, 1, a->step->exchange_id);
    rk_bind_text(st, 2, a->agency);
    return rk_stmt_exec(st);
}

rk_rc core_store_lift(core_store *s, const rk_record *step, const char *agency)
{
    if (s->readonly)
        return RK_ERR_DENIED;
    lift_args a = {step, agency};
    return rk_db_write(s->db, lift_fn, &a);
}

typedef struct withheld_args {
    const char *exchange_id, *today;
    char *basis, *until;
} withheld_args;

static rk_rc withheld_fn(rk_db *db, void *arg)
{
    withheld_args *a = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT basis, until FROM nondisclosures WHERE exchange_id = ?"
                                " AND (until = '' OR until >= ?) ORDER BY at_ms LIMIT 1");
    rk_bind_text(q, 1, a->exchange_id);
    rk_bind_text(q, 2, a->today);
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK) {
        rk_col_copy(q, 0, a->basis, CORE_BASIS_MAX + 1);
        rk_col_copy(q, 1, a->until, 11);
    }
    return rc;
}

rk_rc core_store_withheld(core_store *s, const char *exchange_id, const char *today, char basis[CORE_BASIS_MAX + 1],
                          char until[11])
{
    withheld_args a = {exchange_id, today, basis, until};
    basis[0] = until[0] = '\0';
    return rk_db_read(s->db, withheld_fn, &a);
}
