#include "agency/agency_store.h"
#include "agency/batch_store.h"
#include "agency/held_store.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/db.h"
#include "lib/util.h"
#include "node/incidents.h"
#include "records/records.h"

struct agency_store {
    rk_db *db;
    int readonly; /* opened with RK_DB_READONLY: every write is refused here */
    char node_id[64];
};

/* The agency module's tables, one step per schema version (rk_db_migrate).
 * Step 1 is the schema that predates versioning: IF NOT EXISTS, so that an
 * existing database opens unchanged. */
static const char *const agency_steps[] = {
    "CREATE TABLE IF NOT EXISTS persons ("
    "  person TEXT PRIMARY KEY, status TEXT NOT NULL CHECK (status IN ('pending','linked','failed')),"
    "  code TEXT UNIQUE,"
    "  created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL) {without_rowid};"
    "CREATE INDEX IF NOT EXISTS persons_status ON persons(status);"
    /* Acquisitions in flight only: small and hot, gone once the notice came. */
    "CREATE TABLE IF NOT EXISTS pending ("
    "  acquisition_no TEXT PRIMARY KEY, person TEXT NOT NULL, check_code BIGINT NOT NULL) {without_rowid};"
    "CREATE TABLE IF NOT EXISTS data ("
    "  person TEXT NOT NULL, item TEXT NOT NULL, version BIGINT NOT NULL, value TEXT NOT NULL,"
    "  as_of TEXT NOT NULL, stored_ms BIGINT NOT NULL, PRIMARY KEY (person, item, version)) {without_rowid};"
    "CREATE TABLE IF NOT EXISTS received ("
    "  exchange_id TEXT PRIMARY KEY, person TEXT NOT NULL, provider TEXT NOT NULL, item TEXT NOT NULL,"
    "  value TEXT NOT NULL, as_of TEXT NOT NULL, received_ms BIGINT NOT NULL);",
    /* Step 2: why a person failed; whether J-LIS is known to hold a pending
     * acquisition ('forwarded') or not yet ('new'), and since when. Rows
     * from before are taken as forwarded, dated by their person. */
    "ALTER TABLE persons ADD COLUMN reason TEXT;"
    "ALTER TABLE pending ADD COLUMN state TEXT NOT NULL DEFAULT 'forwarded' CHECK (state IN ('new','forwarded'));"
    "ALTER TABLE pending ADD COLUMN created_ms BIGINT NOT NULL DEFAULT 0;"
    "UPDATE pending SET created_ms = coalesce((SELECT updated_ms FROM persons WHERE persons.person = pending.person),"
    "  0);"
    "CREATE INDEX pending_sweep ON pending(created_ms);" /* not on state: marking forwarded leaves it alone */
    /* The person's pending acquisition (a retry finds it by its key; no
     * index by person on pending), forgotten once its notice came. */
    "ALTER TABLE persons ADD COLUMN acquisition_no TEXT;",
};

rk_rc agency_store_open(const char *target, int flags, const char *node_id, agency_store **out)
{
    agency_store *s = calloc(1, sizeof *s);
    if (!s)
        return RK_ERR_NOMEM;
    snprintf(s->node_id, sizeof s->node_id, "%s", node_id);
    s->readonly = (flags & RK_DB_READONLY) != 0;
    rk_rc rc = rk_db_open(target, flags, &s->db);
    if (rc == RK_OK && !s->readonly)
        rc = rk_db_migrate(s->db, "agency", agency_steps, (int)(sizeof agency_steps / sizeof agency_steps[0]));
    /* the records, incidents and batches tables belong to their modules */
    if (rc == RK_OK && !s->readonly)
        rc = rk_records_migrate(s->db);
    if (rc == RK_OK && !s->readonly)
        rc = rk_incidents_migrate(s->db);
    if (rc == RK_OK && !s->readonly)
        rc = batch_store_migrate(s->db);
    if (rc == RK_OK && !s->readonly)
        rc = held_store_migrate(s->db);
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

/* Inside a callback: the person's status and reason ("" unless failed; reason
 * may be NULL), or RK_ERR_NOT_FOUND. */
static rk_rc read_state(rk_db *db, const char *person, char status[AGENCY_STATUS_MAX], char *reason)
{
    rk_stmt *q = rk_db_stmt(db, "SELECT status, reason FROM persons WHERE person = ?");
    rk_bind_text(q, 1, person);
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK) {
        rk_col_copy(q, 0, status, AGENCY_STATUS_MAX);
        if (reason)
            rk_col_copy(q, 1, reason, AGENCY_REASON_MAX);
    }
    return rc;
}

static rk_rc read_status(rk_db *db, const char *person, char status[AGENCY_STATUS_MAX])
{
    return read_state(db, person, status, NULL);
}

/* Inside a callback: the state of a pending acquisition. */
static rk_rc pending_state(rk_db *db, const char *person, const char *acquisition_no, int *check_code, char state[16])
{
    rk_stmt *q = rk_db_stmt(db, "SELECT check_code, state FROM pending WHERE acquisition_no = ? AND person = ?");
    rk_bind_text(q, 1, acquisition_no);
    rk_bind_text(q, 2, person);
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK) {
        *check_code = (int)rk_col_int(q, 0);
        rk_col_copy(q, 1, state, 16);
    }
    return rc;
}

/* Inside a callback: the person's status, reason and pending acquisition
 * ("" when none), or RK_ERR_NOT_FOUND. */
static rk_rc read_person(rk_db *db, agency_pending *p, char stored[RK_ACQUISITION_NO_MAX + 1])
{
    rk_stmt *q = rk_db_stmt(db, "SELECT status, reason, acquisition_no FROM persons WHERE person = ?");
    rk_bind_text(q, 1, p->person);
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK) {
        rk_col_copy(q, 0, p->status, AGENCY_STATUS_MAX);
        rk_col_copy(q, 1, p->reason, AGENCY_REASON_MAX);
        rk_col_copy(q, 2, stored, RK_ACQUISITION_NO_MAX + 1);
    }
    return rc;
}

typedef struct pending_args {
    agency_pending *p;
    int64_t now_ms;
} pending_args;

/* A retry carries the My Number again, and the agency keeps none (DESIGN
 * §2.1): a row J-LIS may not have is sent again under its stored number
 * (the core takes an (agency, acquisition number) once), never replayed as
 * if it were with J-LIS. */
static rk_rc resend_or_replay(rk_db *db, agency_pending *p, const char *stored)
{
    char state[16];
    int check = -1;
    rk_rc rc = *stored ? pending_state(db, p->person, stored, &check, state) : RK_ERR_NOT_FOUND;
    if (rc == RK_ERR_NOT_FOUND || (rc == RK_OK && strcmp(state, "forwarded") == 0))
        return RK_ERR_EXISTS; /* pending at J-LIS (or being settled): the first answer again */
    if (rc != RK_OK)
        return rc;
    if (check != p->check_code)
        return RK_ERR_CONFLICT; /* another My Number for this person */
    snprintf(p->acquisition_no, sizeof p->acquisition_no, "%s", stored);
    p->resend = 1;
    return RK_OK;
}

static rk_rc add_pending_in_tx(rk_db *db, void *arg)
{
    pending_args *a = arg;
    agency_pending *p = a->p;
    char stored[RK_ACQUISITION_NO_MAX + 1] = "";
    p->resend = 0;
    p->reason[0] = 0;
    rk_rc rc = read_person(db, p, stored);
    if (rc == RK_OK && strcmp(p->status, "pending") == 0)
        return resend_or_replay(db, p, stored);
    if (rc == RK_OK && strcmp(p->status, "failed") != 0)
        return RK_ERR_EXISTS;
    if (rc != RK_OK && rc != RK_ERR_NOT_FOUND)
        return rc;
    /* A failed person starts again: pending, its code, reason and earlier
     * acquisition forgotten (a late notice for that one is unknown). */
    if (*stored) {
        rk_stmt *st = rk_db_stmt(db, "DELETE FROM pending WHERE acquisition_no = ? AND person = ?");
        rk_bind_text(st, 1, stored);
        rk_bind_text(st, 2, p->person);
        if ((rc = rk_stmt_exec(st)) != RK_OK)
            return rc;
    }
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO persons(person, status, acquisition_no, created_ms, updated_ms)"
                                 " VALUES (?, 'pending', ?, ?, ?) ON CONFLICT (person) DO UPDATE"
                                 " SET status = 'pending', code = NULL, reason = NULL,"
                                 " acquisition_no = excluded.acquisition_no, updated_ms = excluded.updated_ms");
    rk_bind_text(st, 1, p->person);
    rk_bind_text(st, 2, p->acquisition_no);
    rk_bind_int(st, 3, a->now_ms);
    rk_bind_int(st, 4, a->now_ms);
    if ((rc = rk_stmt_exec(st)) != RK_OK)
        return rc;
    st = rk_db_stmt(db, "INSERT INTO pending(acquisition_no, person, check_code, state, created_ms)"
                        " VALUES (?, ?, ?, 'new', ?)");
    rk_bind_text(st, 1, p->acquisition_no);
    rk_bind_text(st, 2, p->person);
    rk_bind_int(st, 3, p->check_code);
    rk_bind_int(st, 4, a->now_ms);
    if ((rc = rk_stmt_exec(st)) == RK_OK) {
        snprintf(p->status, AGENCY_STATUS_MAX, "pending");
        p->reason[0] = 0;
    }
    return rc;
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
        pending_args a = {&m->items[i], m->now_ms};
        m->items[i].rc = rk_db_item(db, add_pending_in_tx, &a); /* a failing item leaves nothing behind */
    }
    return RK_OK;
}

rk_rc agency_store_add_pending_many(agency_store *s, agency_pending *items, size_t n, int64_t now_ms)
{
    if (s->readonly)
        return RK_ERR_INVALID;
    pending_many m = {items, n, now_ms};
    return rk_db_write(s->db, add_pending_many_in_tx, &m);
}

rk_rc agency_store_add_pending(agency_store *s, agency_pending *p, int64_t now_ms)
{
    rk_rc rc = agency_store_add_pending_many(s, p, 1, now_ms);
    return rc == RK_OK ? p->rc : rc;
}

/* Inside a write callback: drops a refused acquisition — only while it is
 * 'new', so that a concurrent request's forwarded row is never deleted —
 * and its person when that was all it had. */
static rk_rc drop_new(rk_db *db, const char *person, const char *acquisition_no)
{
    rk_stmt *st = rk_db_stmt(db, "DELETE FROM persons WHERE person = ? AND status = 'pending' AND EXISTS"
                                 " (SELECT 1 FROM pending WHERE acquisition_no = ? AND person = ? AND state = 'new')");
    rk_bind_text(st, 1, person);
    rk_bind_text(st, 2, acquisition_no);
    rk_bind_text(st, 3, person);
    rk_rc rc = rk_stmt_exec(st);
    if (rc != RK_OK)
        return rc;
    st = rk_db_stmt(db, "DELETE FROM pending WHERE acquisition_no = ? AND person = ? AND state = 'new'");
    rk_bind_text(st, 1, acquisition_no);
    rk_bind_text(st, 2, person);
    return rk_stmt_exec(st);
}

/* Inside a write callback: a 'new' acquisition whose basic items J-LIS
 * found different from its registry is dropped, and its person fails with
 * the reason (kept as the agency's record of the attempt: person and time,
 * no My Number, no item). */
static rk_rc fail_new(rk_db *db, const char *person, const char *acquisition_no, const char *reason, int64_t at_ms)
{
    rk_stmt *st = rk_db_stmt(db, "UPDATE persons SET status = 'failed', reason = ?, acquisition_no = NULL,"
                                 " updated_ms = ? WHERE person = ? AND status = 'pending' AND EXISTS"
                                 " (SELECT 1 FROM pending WHERE acquisition_no = ? AND person = ? AND state = 'new')");
    rk_bind_text(st, 1, reason);
    rk_bind_int(st, 2, at_ms);
    rk_bind_text(st, 3, person);
    rk_bind_text(st, 4, acquisition_no);
    rk_bind_text(st, 5, person);
    rk_rc rc = rk_stmt_exec(st);
    if (rc != RK_OK)
        return rc;
    st = rk_db_stmt(db, "DELETE FROM pending WHERE acquisition_no = ? AND person = ? AND state = 'new'");
    rk_bind_text(st, 1, acquisition_no);
    rk_bind_text(st, 2, person);
    return rk_stmt_exec(st);
}

static rk_rc settle_sent_one(rk_db *db, void *arg)
{
    agency_sent *it = arg;
    it->status[0] = it->reason[0] = 0;
    if (it->outcome == SENT_REFUSED)
        return drop_new(db, it->person, it->acquisition_no);
    if (it->outcome == SENT_MISMATCH)
        return fail_new(db, it->person, it->acquisition_no, "basic_info_mismatch", it->at_ms);
    if (it->outcome != SENT_FORWARDED)
        return RK_OK;
    rk_stmt *st = rk_db_stmt(db, "UPDATE pending SET state = 'forwarded' WHERE acquisition_no = ? AND person = ?");
    rk_bind_text(st, 1, it->acquisition_no);
    rk_bind_text(st, 2, it->person);
    rk_rc rc = rk_stmt_exec(st);
    if (rc == RK_OK && it->want_status) /* no row: its notice came first, or the person started again */
        rc = read_state(db, it->person, it->status, it->reason);
    return rc;
}

typedef struct sent_many {
    agency_sent *items;
    size_t n;
} sent_many;

/* One savepoint per refused item only: marking forwarded is a single update
 * that fails only with the whole commit. */
static rk_rc settle_sent_in_tx(rk_db *db, void *arg)
{
    sent_many *m = arg;
    rk_rc rc = RK_OK;
    for (size_t i = 0; i < m->n && rc == RK_OK; i++) {
        agency_sent *it = &m->items[i];
        it->rc = it->outcome == SENT_REFUSED || it->outcome == SENT_MISMATCH ? rk_db_item(db, settle_sent_one, it)
                 : it->outcome == SENT_FORWARDED ? (rc = settle_sent_one(db, it)) : RK_OK;
    }
    return rc;
}

rk_rc agency_store_settle_sent(agency_store *s, agency_sent *items, size_t n)
{
    if (s->readonly)
        return RK_ERR_INVALID;
    size_t i = 0;
    while (i < n && items[i].outcome == SENT_UNCERTAIN)
        items[i++].rc = RK_OK;
    if (i == n)
        return RK_OK; /* nothing to write */
    sent_many m = {items, n};
    return rk_db_write(s->db, settle_sent_in_tx, &m);
}

typedef struct linked_args {
    const char *const *persons;
    size_t n;
    int *linked;
} linked_args;

static rk_rc linked_in_tx(rk_db *db, void *arg)
{
    linked_args *a = arg;
    for (size_t i = 0; i < a->n; i++) {
        char status[AGENCY_STATUS_MAX];
        rk_rc rc = a->persons[i] ? read_status(db, a->persons[i], status) : RK_ERR_NOT_FOUND;
        if (rc != RK_OK && rc != RK_ERR_NOT_FOUND)
            return rc;
        a->linked[i] = rc == RK_OK && strcmp(status, "linked") == 0;
    }
    return RK_OK;
}

rk_rc agency_store_linked_many(agency_store *s, const char *const *persons, size_t n, int *linked)
{
    linked_args a = {persons, n, linked};
    return rk_db_read(s->db, linked_in_tx, &a);
}

rk_rc agency_store_drop_pending(agency_store *s, const char *person, const char *acquisition_no)
{
    agency_sent it = {.person = person, .acquisition_no = acquisition_no, .outcome = SENT_REFUSED};
    rk_rc rc = agency_store_settle_sent(s, &it, 1);
    return rc == RK_OK ? it.rc : rc;
}

typedef struct status_args {
    const char *person;
    char *status, *reason;
} status_args;

static rk_rc status_read(rk_db *db, void *arg)
{
    status_args *a = arg;
    return read_state(db, a->person, a->status, a->reason);
}

rk_rc agency_store_person_state(agency_store *s, const char *person, char status[AGENCY_STATUS_MAX],
                                char reason[AGENCY_REASON_MAX])
{
    if (reason)
        reason[0] = 0;
    status_args a = {person, status, reason};
    return rk_db_read(s->db, status_read, &a);
}

rk_rc agency_store_person_status(agency_store *s, const char *person, char status[AGENCY_STATUS_MAX])
{
    return agency_store_person_state(s, person, status, NULL);
}

typedef struct sweep_args {
    int64_t now_ms, new_before_ms, forwarded_before_ms, purge_before_ms;
    agency_sweep *out;
} sweep_args;

/* Inside a write callback: fails the pending persons whose acquisition has
 * been in state since before `before`. */
static rk_rc fail_stale(rk_db *db, const char *state, int64_t before, const char *reason, int64_t now_ms,
                        int64_t *n)
{
    rk_stmt *st = rk_db_stmt(db, "UPDATE persons SET status = 'failed', reason = ?, updated_ms = ?"
                                 " WHERE status = 'pending' AND person IN"
                                 " (SELECT person FROM pending WHERE state = ? AND created_ms < ?)");
    rk_bind_text(st, 1, reason);
    rk_bind_int(st, 2, now_ms);
    rk_bind_text(st, 3, state);
    rk_bind_int(st, 4, before);
    rk_rc rc = rk_stmt_exec(st);
    if (rc == RK_OK)
        *n = rk_db_changes(db);
    return rc;
}

static rk_rc sweep_in_tx(rk_db *db, void *arg)
{
    sweep_args *a = arg;
    rk_rc rc = fail_stale(db, "new", a->new_before_ms, "not_forwarded", a->now_ms, &a->out->not_forwarded);
    if (rc == RK_OK)
        rc = fail_stale(db, "forwarded", a->forwarded_before_ms, "no_code_notice", a->now_ms, &a->out->no_code_notice);
    if (rc != RK_OK)
        return rc;
    rk_stmt *st = rk_db_stmt(db, "DELETE FROM pending WHERE created_ms < ? AND NOT EXISTS"
                                 " (SELECT 1 FROM persons s WHERE s.person = pending.person AND s.status = 'pending')");
    rk_bind_int(st, 1, a->purge_before_ms);
    if ((rc = rk_stmt_exec(st)) != RK_OK)
        return rc;
    a->out->purged = rk_db_changes(db);
    /* their numbers forgotten too */
    st = rk_db_stmt(db, "UPDATE persons SET acquisition_no = NULL WHERE status = 'failed' AND acquisition_no IS NOT NULL"
                        " AND updated_ms < ?");
    rk_bind_int(st, 1, a->purge_before_ms);
    return rk_stmt_exec(st);
}

rk_rc agency_store_sweep(agency_store *s, int64_t now_ms, int64_t new_before_ms, int64_t forwarded_before_ms,
                         int64_t purge_before_ms, agency_sweep *out)
{
    *out = (agency_sweep){0};
    if (s->readonly)
        return RK_ERR_INVALID;
    sweep_args a = {now_ms, new_before_ms, forwarded_before_ms, purge_before_ms, out};
    return rk_db_write(s->db, sweep_in_tx, &a);
}

/* Inside a write callback: the person already holding this code, if any
 * (RK_ERR_NOT_FOUND when none). */
static rk_rc person_with_code(rk_db *db, const char *code, char *person, size_t personlen)
{
    rk_stmt *q = rk_db_stmt(db, "SELECT person FROM persons WHERE code = ?");
    rk_bind_text(q, 1, code);
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK)
        rk_col_copy(q, 0, person, personlen);
    return rc;
}

/* Inside a write callback: takes the pending acquisition (it is forgotten
 * whatever the outcome, 第8-2(1)イ). RK_ERR_NOT_FOUND when there is none. */
static rk_rc take_pending(rk_db *db, const char *acquisition_no, char *person, size_t personlen, int *expected)
{
    rk_stmt *q = rk_db_stmt(db, "DELETE FROM pending WHERE acquisition_no = ? RETURNING person, check_code");
    rk_bind_text(q, 1, acquisition_no);
    rk_rc rc = rk_stmt_next(q);
    if (rc != RK_OK)
        return rc;
    rk_col_copy(q, 0, person, personlen);
    *expected = (int)rk_col_int(q, 1);
    rc = rk_stmt_next(q); /* run the statement to its end: the key is unique, no second row */
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc == RK_OK ? RK_ERR_STORE : rc;
}

/* Inside a write callback: sets the outcome of one notice. */
static rk_rc settle_notice(rk_db *db, const char *node_id, const char *acquisition_no, const char *code,
                           int check_code, int64_t now_ms, agency_notice_outcome *outcome)
{
    char person[128], other[128];
    int expected = -1;
    rk_rc rc = take_pending(db, acquisition_no, person, sizeof person, &expected);
    if (rc == RK_ERR_NOT_FOUND) {
        *outcome = NOTICE_UNKNOWN;
        return RK_OK;
    }
    if (rc != RK_OK)
        return rc;
    if (expected != check_code) { /* 第8-2(1)イ, also for a late notice */
        *outcome = NOTICE_MISMATCH;
    } else if ((rc = person_with_code(db, code, other, sizeof other)) == RK_OK) {
        *outcome = NOTICE_DUPLICATE; /* one person, two ids */
    } else if (rc == RK_ERR_NOT_FOUND) {
        *outcome = NOTICE_LINKED;
    } else {
        return rc;
    }
    /* Only a pending person, or one the sweeper failed for want of this
     * notice (not for anything a notice showed), takes its outcome. */
    int linked = *outcome == NOTICE_LINKED;
    rk_stmt *st = rk_db_stmt(db, "UPDATE persons SET status = ?, code = ?, reason = ?, updated_ms = ?,"
                                 " acquisition_no = NULL WHERE person = ? AND (status = 'pending' OR (status = 'failed'"
                                 " AND reason IN ('not_forwarded', 'no_code_notice')))");
    rk_bind_text(st, 1, linked ? "linked" : "failed");
    rk_bind_text(st, 2, linked ? code : NULL);
    rk_bind_text(st, 3, linked ? NULL : *outcome == NOTICE_MISMATCH ? "check_code_mismatch" : "code_already_linked");
    rk_bind_int(st, 4, now_ms);
    rk_bind_text(st, 5, person);
    if ((rc = rk_stmt_exec(st)) != RK_OK)
        return rc;
    if (rk_db_changes(db) == 0) {
        *outcome = NOTICE_UNKNOWN; /* settled otherwise already: the row was stale */
        return RK_OK;
    }
    if (linked)
        return RK_OK;
    char summary[256];
    snprintf(summary, sizeof summary, *outcome == NOTICE_MISMATCH
             ? "check code mismatch on the notice for acquisition %.64s: code not linked"
             : "acquisition %.64s names a person already linked here under another id: not linked", acquisition_no);
    rk_incident in = {.kind = *outcome == NOTICE_MISMATCH ? "check_code_mismatch" : "unauthorized_access",
                      .node = node_id, .detected_ms = now_ms, .summary = summary};
    return rk_incident_store(db, &in, 0, 1); /* inside this write */
}

typedef struct notice_args {
    const char *node_id, *acquisition_no, *code;
    int check_code;
    int64_t now_ms;
    agency_notice_outcome *outcome;
} notice_args;

static rk_rc notice_in_tx(rk_db *db, void *arg)
{
    notice_args *n = arg;
    return settle_notice(db, n->node_id, n->acquisition_no, n->code, n->check_code, n->now_ms, n->outcome);
}

rk_rc agency_store_apply_notice(agency_store *s, const char *acquisition_no, const char *code, int check_code,
                                int64_t now_ms, agency_notice_outcome *outcome)
{
    if (s->readonly)
        return RK_ERR_INVALID;
    notice_args n = {s->node_id, acquisition_no, code, check_code, now_ms, outcome};
    return rk_db_write(s->db, notice_in_tx, &n);
}

typedef struct notices_many {
    const char *node_id;
    agency_notice *items;
    size_t n;
    int64_t now_ms;
} notices_many;

static rk_rc apply_notices_in_tx(rk_db *db, void *arg)
{
    notices_many *m = arg;
    for (size_t i = 0; i < m->n; i++) {
        agency_notice *it = &m->items[i];
        if (!it->acquisition_no || !it->code || it->check_code < 0 || it->check_code > 9) {
            it->rc = RK_ERR_INVALID; /* a malformed entry changes nothing */
            continue;
        }
        notice_args n = {m->node_id, it->acquisition_no, it->code, it->check_code, m->now_ms, &it->outcome};
        it->rc = rk_db_item(db, notice_in_tx, &n);
    }
    return RK_OK;
}

rk_rc agency_store_apply_notices(agency_store *s, agency_notice *items, size_t n, int64_t now_ms)
{
    if (s->readonly)
        return RK_ERR_INVALID;
    notices_many m = {s->node_id, items, n, now_ms};
    return rk_db_write(s->db, apply_notices_in_tx, &m);
}

typedef struct text_read {
    const char *key;
    char *out;
    size_t outlen;
} text_read;

static rk_rc code_read(rk_db *db, void *arg)
{
    text_read *t = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT code FROM persons WHERE person = ? AND status = 'linked'");
    rk_bind_text(q, 1, t->key);
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK)
        rk_col_copy(q, 0, t->out, t->outlen);
    return rc;
}

rk_rc agency_store_code_of(agency_store *s, const char *person, char *code, size_t codelen)
{
    text_read t = {person, code, codelen};
    return rk_db_read(s->db, code_read, &t);
}

typedef struct count_args {
    const char *status;
    size_t n;
} count_args;

static rk_rc count_scan(rk_db *db, void *arg)
{
    count_args *c = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT count(*) FROM persons WHERE status = ?");
    rk_bind_text(q, 1, c->status);
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK)
        c->n = (size_t)rk_col_int(q, 0);
    return rc;
}

size_t agency_store_count(agency_store *s, const char *status)
{
    count_args c = {status, 0};
    return rk_db_scan(s->db, count_scan, &c) == RK_OK ? c.n : 0;
}

int agency_store_writable(agency_store *s)
{
    return !s->readonly && rk_db_writable(s->db);
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
    rk_stmt *st = rk_db_stmt(db,
        "INSERT INTO data(person, item, version, value, as_of, stored_ms) VALUES (?, ?,"
        " (SELECT coalesce(max(version), 0) + 1 FROM data WHERE person = ? AND item = ?), ?, ?, ?)"
        " RETURNING version");
    rk_bind_text(st, 1, p->person);
    rk_bind_text(st, 2, p->item);
    rk_bind_text(st, 3, p->person);
    rk_bind_text(st, 4, p->item);
    rk_bind_text(st, 5, p->value_json);
    rk_bind_text(st, 6, p->as_of);
    rk_bind_int(st, 7, p->now_ms);
    if ((rc = rk_stmt_next(st)) != RK_OK)
        return rc == RK_ERR_NOT_FOUND ? RK_ERR_STORE : rc;
    *p->version = rk_col_int(st, 0);
    rc = rk_stmt_next(st); /* run the insert to its end */
    if (rc != RK_ERR_NOT_FOUND)
        return rc == RK_OK ? RK_ERR_STORE : rc;
    if (!p->request_id)
        return RK_OK;
    char *body = p->answer(*p->version, p->arg);
    rc = body ? rk_answer_keep(db, p->request_id, "data", p->request_hash, 200, body) : RK_ERR_NOMEM;
    free(body);
    return rc;
}

rk_rc agency_store_put_data(agency_store *s, const char *person, const char *item, const char *value_json,
                            const char *as_of, int64_t now_ms, int64_t *version)
{
    if (s->readonly)
        return RK_ERR_INVALID;
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
    if (s->readonly)
        return RK_ERR_INVALID;
    rk_rc rc = rk_answer_get(s->db, request_id, "data", request_hash, &status, kept);
    if (rc != RK_ERR_NOT_FOUND)
        return rc; /* RK_OK with the first answer, or RK_ERR_CONFLICT */
    put_args p = {person, item, value_json, as_of, request_id, request_hash, now_ms, version, answer, arg};
    rc = rk_db_write(s->db, put_data_in_tx, &p);
    if (rc == RK_ERR_CONFLICT) /* the same id settled meanwhile */
        rc = rk_answer_get(s->db, request_id, "data", request_hash, &status, kept);
    return rc;
}

typedef struct newest_args {
    const char *person, *item, *on_date;
    char **value_json;
    char *as_of;
    int64_t *version;
} newest_args;

static rk_rc newest_read(rk_db *db, void *arg)
{
    newest_args *a = arg;
    rk_stmt *q;
    if (a->on_date && a->on_date[0]) {
        q = rk_db_stmt(db, "SELECT value, as_of, version FROM data WHERE person = ? AND item = ? AND as_of <= ?"
                           " ORDER BY as_of DESC, version DESC LIMIT 1");
        rk_bind_text(q, 3, a->on_date);
    } else {
        q = rk_db_stmt(db, "SELECT value, as_of, version FROM data WHERE person = ? AND item = ?"
                           " ORDER BY version DESC LIMIT 1");
    }
    rk_bind_text(q, 1, a->person);
    rk_bind_text(q, 2, a->item);
    rk_rc rc = rk_stmt_next(q);
    if (rc != RK_OK)
        return rc;
    const char *value = rk_col_text(q, 0);
    *a->value_json = strdup(value ? value : "");
    rk_col_copy(q, 1, a->as_of, 11);
    *a->version = rk_col_int(q, 2);
    return *a->value_json ? RK_OK : RK_ERR_NOMEM;
}

rk_rc agency_store_data_at(agency_store *s, const char *person, const char *item, const char *on_date,
                           char **value_json, char as_of[RK_DATE_LEN + 1], int64_t *version)
{
    newest_args a = {person, item, on_date, value_json, as_of, version};
    return rk_db_read(s->db, newest_read, &a);
}

static rk_rc person_read(rk_db *db, void *arg)
{
    text_read *t = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT person FROM persons WHERE code = ? AND status = 'linked'");
    rk_bind_text(q, 1, t->key);
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK)
        rk_col_copy(q, 0, t->out, t->outlen);
    return rc;
}

rk_rc agency_store_person_by_code(agency_store *s, const char *code, char *person, size_t personlen)
{
    text_read t = {code, person, personlen};
    return rk_db_read(s->db, person_read, &t);
}

rk_rc agency_store_keep_received(rk_db *db, void *arg)
{
    const agency_received *r = arg;
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO received(exchange_id, person, provider, item, value, as_of,"
                                 " received_ms) VALUES (?, ?, ?, ?, ?, ?, ?)");
    const char *text[] = {r->exchange_id, r->person, r->provider, r->item, r->value_json, r->as_of};
    for (int i = 0; i < 6; i++)
        rk_bind_text(st, i + 1, text[i]);
    rk_bind_int(st, 7, r->received_ms);
    return rk_stmt_exec(st);
}

/* A requester's kept answer to rewrite without its value. */
typedef struct answer_edit {
    int64_t id;
    char *body;
} answer_edit;

typedef struct delete_args {
    const char *exchange_id;
    char *pattern; /* LIKE pattern: the answers that may name the exchange */
    answer_edit *edits;
    size_t n_edits, cap;
    int deleted;
} delete_args;

/* The kept answer without "value" and "as_of" when it answers this
 * exchange and holds a value; NULL otherwise (or out of memory). */
static char *without_value(const char *body, const char *exchange_id)
{
    json_t *j = body ? json_loads(body, 0, NULL) : NULL;
    char *out = NULL;
    const char *xid = json_string_value(json_object_get(j, "exchange_id"));
    if (xid && strcmp(xid, exchange_id) == 0 && json_object_get(j, "value")) {
        json_object_del(j, "value");
        json_object_del(j, "as_of");
        out = json_dumps(j, JSON_COMPACT);
    }
    json_decref(j);
    return out;
}

static void wipe_free(char *s)
{
    if (s) {
        rk_wipe(s, strlen(s));
        free(s);
    }
}

static rk_rc delete_in_tx(rk_db *db, void *arg)
{
    delete_args *d = arg;
    rk_stmt *st = rk_db_stmt(db, "DELETE FROM received WHERE exchange_id = ?");
    rk_bind_text(st, 1, d->exchange_id);
    rk_rc rc = rk_stmt_exec(st);
    if (rc != RK_OK)
        return rc;
    d->deleted += (int)rk_db_changes(db);
    /* The kept answers of this exchange: found by a substring of their
     * text, then parsed and checked; all read before any is rewritten. */
    rk_stmt *q = rk_db_stmt(db, "SELECT id, body FROM answers WHERE side = 'requester' AND body LIKE ? ESCAPE '!'");
    rk_bind_text(q, 1, d->pattern);
    while ((rc = rk_stmt_next(q)) == RK_OK) {
        char *body = without_value(rk_col_text(q, 1), d->exchange_id);
        if (!body)
            continue;
        if (d->n_edits == d->cap) {
            size_t cap = d->cap ? d->cap * 2 : 4;
            answer_edit *e = realloc(d->edits, cap * sizeof *e);
            if (!e) {
                wipe_free(body);
                return RK_ERR_NOMEM;
            }
            d->edits = e;
            d->cap = cap;
        }
        d->edits[d->n_edits++] = (answer_edit){rk_col_int(q, 0), body};
    }
    if (rc != RK_ERR_NOT_FOUND)
        return rc;
    for (size_t i = 0; i < d->n_edits; i++) {
        st = rk_db_stmt(db, "UPDATE answers SET body = ? WHERE id = ?");
        rk_bind_text(st, 1, d->edits[i].body);
        rk_bind_int(st, 2, d->edits[i].id);
        if ((rc = rk_stmt_exec(st)) != RK_OK)
            return rc;
        d->deleted += (int)rk_db_changes(db);
    }
    return RK_OK;
}

/* `%"exchange_id":"<id>"%` as the answer's JSON spells the id, with the
 * LIKE wildcards of the id escaped by '!'. */
static char *answer_pattern(const char *exchange_id)
{
    json_t *id = json_string(exchange_id);
    char *quoted = id ? json_dumps(id, JSON_ENCODE_ANY) : NULL;
    json_decref(id);
    if (!quoted)
        return NULL;
    static const char head[] = "%\"exchange_id\":";
    char *out = malloc(sizeof head + 2 * strlen(quoted) + 1);
    if (out) {
        char *o = out + sizeof head - 1;
        memcpy(out, head, sizeof head - 1);
        for (const char *c = quoted; *c; c++) {
            if (*c == '%' || *c == '_' || *c == '!')
                *o++ = '!';
            *o++ = *c;
        }
        *o++ = '%';
        *o = 0;
    }
    free(quoted);
    return out;
}

rk_rc agency_store_delete_received(agency_store *s, const char *exchange_id, int *deleted)
{
    *deleted = 0;
    if (s->readonly)
        return RK_ERR_INVALID;
    delete_args d = {.exchange_id = exchange_id, .pattern = answer_pattern(exchange_id)};
    if (!d.pattern)
        return RK_ERR_NOMEM;
    rk_rc rc = rk_db_write(s->db, delete_in_tx, &d);
    for (size_t i = 0; i < d.n_edits; i++)
        wipe_free(d.edits[i].body);
    free(d.edits);
    free(d.pattern);
    if (rc != RK_OK)
        return rc;
    *deleted = d.deleted;
    return rk_db_purge(s->db); /* no old copy of the value left in the write-ahead log */
}
