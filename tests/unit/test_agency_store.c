/* Unit tests: the agency store through its header, on a fresh database per
 * test — acquisitions and notices (one by one and in batches), provision
 * copies and their versions, kept answers of put_data_once, the deletion of
 * a received value (第8-5), a read-only open and a database written before
 * the tables were versioned. On SQLite, and on PostgreSQL when
 * RENKEI_TEST_STORE=postgres (unit/test_agency_store_pg; pg_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agency/agency_store.h"
#include "agency/held_store.h"
#include "pg_fixture.h"
#include "records/records.h"
#include "store/db.h"

static char dir[64];
static char path[128];   /* SQLite: the database file */
static char target[160]; /* the store: sqlite:<path> (the form of a node's config) or a new PostgreSQL database */

/* The store as a tool names it: SQLite's bare path (a synonym), PostgreSQL's URI. */
static const char *tool_target(void)
{
    return test_store_is_pg() ? target : path;
}

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/rk-test-agency-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/node.db", dir);
    if (test_store_target(dir, "node", target, sizeof target) != 0)
        return -1;
    agency_store *s = NULL;
    if (agency_store_open(target, 0, "agency-test", &s) != RK_OK)
        return -1;
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    agency_store_close(*state);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---------- helpers reading what the header does not show ---------- */

typedef struct count_q {
    const char *sql, *arg;
    long n;
} count_q;

static rk_rc count_read(rk_db *db, void *arg)
{
    count_q *c = arg;
    rk_stmt *q = rk_db_stmt(db, c->sql);
    if (!q)
        return RK_ERR_STORE;
    rk_bind_text(q, 1, c->arg);
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK)
        c->n = (long)rk_col_int(q, 0);
    return rc;
}

static const char incidents_of_kind[] = "SELECT count(*) FROM incidents WHERE kind = ?";
static const char received_of[] = "SELECT count(*) FROM received WHERE exchange_id = ?";

static long count_where(agency_store *s, const char *sql, const char *arg)
{
    count_q c = {sql, arg, -1};
    assert_int_equal(rk_db_read(agency_store_db(s), count_read, &c), RK_OK);
    return c.n;
}

/* One acquisition added; status as the store answered it. */
static rk_rc add1(agency_store *s, const char *person, const char *acq, int check, int64_t now_ms,
                  char status[AGENCY_STATUS_MAX])
{
    agency_pending p = {.person = person, .check_code = check};
    snprintf(p.acquisition_no, sizeof p.acquisition_no, "%s", acq);
    rk_rc rc = agency_store_add_pending(s, &p, now_ms);
    memcpy(status, p.status, AGENCY_STATUS_MAX);
    return rc;
}

/* J-LIS took it. */
static void forward(agency_store *s, const char *person, const char *acq)
{
    agency_sent it = {.person = person, .acquisition_no = acq, .outcome = SENT_FORWARDED};
    assert_int_equal(agency_store_settle_sent(s, &it, 1), RK_OK);
    assert_int_equal(it.rc, RK_OK);
}

static void expect_status(agency_store *s, const char *person, const char *want)
{
    char status[AGENCY_STATUS_MAX] = "";
    assert_int_equal(agency_store_person_status(s, person, status), RK_OK);
    assert_string_equal(status, want);
}

static void link_person(agency_store *s, const char *person, const char *acq, const char *code)
{
    char status[AGENCY_STATUS_MAX];
    agency_notice_outcome out;
    assert_int_equal(add1(s, person, acq, 7, 1000, status), RK_OK);
    assert_int_equal(agency_store_apply_notice(s, acq, code, 7, 2000, &out), RK_OK);
    assert_int_equal(out, NOTICE_LINKED);
}

/* ---------- acquisitions and notices ---------- */

static void test_pending_notice_linked(void **state)
{
    agency_store *s = *state;
    char status[AGENCY_STATUS_MAX] = "", code[64] = "", person[64] = "";
    assert_int_equal(agency_store_person_status(s, "p1", status), RK_ERR_NOT_FOUND);
    assert_int_equal(add1(s, "p1", "A1", 3, 1000, status), RK_OK);
    assert_string_equal(status, "pending");
    expect_status(s, "p1", "pending");
    assert_int_equal(agency_store_count(s, "pending"), 1);
    assert_int_equal(agency_store_code_of(s, "p1", code, sizeof code), RK_ERR_NOT_FOUND); /* not linked yet */

    status[0] = 0;
    forward(s, "p1", "A1");
    assert_int_equal(add1(s, "p1", "A2", 3, 1100, status), RK_ERR_EXISTS);
    assert_string_equal(status, "pending");

    agency_notice_outcome out = NOTICE_UNKNOWN;
    assert_int_equal(agency_store_apply_notice(s, "A1", "CODE1", 3, 2000, &out), RK_OK);
    assert_int_equal(out, NOTICE_LINKED);
    expect_status(s, "p1", "linked");
    assert_int_equal(agency_store_code_of(s, "p1", code, sizeof code), RK_OK);
    assert_string_equal(code, "CODE1");
    assert_int_equal(agency_store_person_by_code(s, "CODE1", person, sizeof person), RK_OK);
    assert_string_equal(person, "p1");
    assert_int_equal(agency_store_person_by_code(s, "CODE9", person, sizeof person), RK_ERR_NOT_FOUND);
    assert_int_equal(agency_store_count(s, "pending"), 0);
    assert_int_equal(agency_store_count(s, "linked"), 1);

    /* The acquisition number is forgotten once its notice came. */
    assert_int_equal(agency_store_apply_notice(s, "A1", "CODE1", 3, 2100, &out), RK_OK);
    assert_int_equal(out, NOTICE_UNKNOWN);
    assert_int_equal(add1(s, "p1", "A3", 3, 2200, status), RK_ERR_EXISTS);
    assert_string_equal(status, "linked");

    /* A pending acquisition taken back: the person is forgotten. */
    assert_int_equal(add1(s, "p9", "A9", 1, 3000, status), RK_OK);
    assert_int_equal(agency_store_drop_pending(s, "p9", "A9"), RK_OK);
    assert_int_equal(agency_store_person_status(s, "p9", status), RK_ERR_NOT_FOUND);
    assert_int_equal(agency_store_apply_notice(s, "A9", "CODE9", 1, 3100, &out), RK_OK);
    assert_int_equal(out, NOTICE_UNKNOWN);
    /* ... but not a linked person named with another number. */
    assert_int_equal(agency_store_drop_pending(s, "p1", "A1"), RK_OK);
    expect_status(s, "p1", "linked");
}

static void expect_reason(agency_store *s, const char *person, const char *status, const char *reason)
{
    char got[AGENCY_STATUS_MAX] = "", why[AGENCY_REASON_MAX] = "x";
    assert_int_equal(agency_store_person_state(s, person, got, why), RK_OK);
    assert_string_equal(got, status);
    assert_string_equal(why, reason);
}

/* A retry of a row J-LIS may not have sends it again under its stored
 * number; another My Number for it is a conflict; once forwarded it is
 * answered from the store, and no refusal drops it. */
static void test_resend_and_forwarded(void **state)
{
    agency_store *s = *state;
    char status[AGENCY_STATUS_MAX];
    assert_int_equal(add1(s, "q1", "Q1", 4, 1000, status), RK_OK);
    agency_pending again = {.person = "q1", .acquisition_no = "Q2", .check_code = 4};
    assert_int_equal(agency_store_add_pending(s, &again, 1100), RK_OK);
    assert_int_equal(again.resend, 1);
    assert_string_equal(again.acquisition_no, "Q1");
    agency_pending other = {.person = "q1", .acquisition_no = "Q3", .check_code = 5};
    assert_int_equal(agency_store_add_pending(s, &other, 1100), RK_ERR_CONFLICT);
    assert_int_equal(count_where(s, "SELECT count(*) FROM pending WHERE person = ?", "q1"), 1);

    /* An uncertain answer keeps the row; forwarded, a later refusal of an
     * overlapping request cannot drop it. */
    agency_sent unsure = {.person = "q1", .acquisition_no = "Q1", .outcome = SENT_UNCERTAIN};
    assert_int_equal(agency_store_settle_sent(s, &unsure, 1), RK_OK);
    expect_status(s, "q1", "pending");
    forward(s, "q1", "Q1");
    assert_int_equal(agency_store_drop_pending(s, "q1", "Q1"), RK_OK);
    expect_status(s, "q1", "pending");
    assert_int_equal(add1(s, "q1", "Q4", 4, 1200, status), RK_ERR_EXISTS);
    assert_string_equal(status, "pending");

    /* A forwarded row whose notice came first: the answer says linked. */
    assert_int_equal(add1(s, "q2", "Q5", 6, 1000, status), RK_OK);
    agency_notice_outcome out;
    assert_int_equal(agency_store_apply_notice(s, "Q5", "CQ5", 6, 1100, &out), RK_OK);
    agency_sent late = {.person = "q2", .acquisition_no = "Q5", .outcome = SENT_FORWARDED, .want_status = 1};
    assert_int_equal(agency_store_settle_sent(s, &late, 1), RK_OK);
    assert_int_equal(late.rc, RK_OK);
    assert_string_equal(late.status, "linked");
}

/* J-LIS found other basic items: the 'new' row goes, the person is failed
 * with that reason (its code and acquisition forgotten), and may be
 * enrolled again; a forwarded row is never failed so, nor a person who
 * started again meanwhile under another number. Linked persons are told
 * from the others in one read. */
static void test_basic_info_mismatch(void **state)
{
    agency_store *s = *state;
    char status[AGENCY_STATUS_MAX];
    assert_int_equal(add1(s, "m1", "M1", 3, 1000, status), RK_OK);
    agency_sent mis = {.person = "m1", .acquisition_no = "M1", .outcome = SENT_MISMATCH, .at_ms = 1500};
    assert_int_equal(agency_store_settle_sent(s, &mis, 1), RK_OK);
    assert_int_equal(mis.rc, RK_OK);
    expect_reason(s, "m1", "failed", "basic_info_mismatch");
    assert_int_equal(count_where(s, "SELECT count(*) FROM pending WHERE person = ?", "m1"), 0);
    assert_int_equal(count_where(s, "SELECT count(*) FROM persons WHERE person = ? AND acquisition_no IS NULL"
                                    " AND code IS NULL AND updated_ms = 1500", "m1"), 1);
    /* enrolled again with the right items: linked as any failed person */
    assert_int_equal(add1(s, "m1", "M2", 3, 2000, status), RK_OK);
    assert_string_equal(status, "pending");
    agency_notice_outcome out;
    assert_int_equal(agency_store_apply_notice(s, "M2", "CM2", 3, 2100, &out), RK_OK);
    assert_int_equal(out, NOTICE_LINKED);

    /* a forwarded row stays */
    assert_int_equal(add1(s, "m2", "M3", 3, 1000, status), RK_OK);
    forward(s, "m2", "M3");
    agency_sent late = {.person = "m2", .acquisition_no = "M3", .outcome = SENT_MISMATCH, .at_ms = 1500};
    assert_int_equal(agency_store_settle_sent(s, &late, 1), RK_OK);
    expect_status(s, "m2", "pending");
    assert_int_equal(count_where(s, "SELECT count(*) FROM pending WHERE person = ?", "m2"), 1);

    const char *persons[] = {"m1", "m2", "nobody", NULL};
    int linked[4] = {-1, -1, -1, -1};
    assert_int_equal(agency_store_linked_many(s, persons, 4, linked), RK_OK);
    assert_int_equal(linked[0], 1);
    assert_int_equal(linked[1], 0);
    assert_int_equal(linked[2], 0);
    assert_int_equal(linked[3], 0);
}

/* The sweeper fails what stayed 'new' (not_forwarded) or 'forwarded'
 * (no_code_notice) too long; a late notice still links them, check codes
 * compared (第8-2(1)イ); their rows go after the grace period. */
static void test_sweep_and_late_notice(void **state)
{
    agency_store *s = *state;
    char status[AGENCY_STATUS_MAX];
    assert_int_equal(add1(s, "w1", "W1", 1, 1000, status), RK_OK); /* stays new */
    assert_int_equal(add1(s, "w2", "W2", 2, 1000, status), RK_OK);
    forward(s, "w2", "W2");
    assert_int_equal(add1(s, "w3", "W3", 3, 1000, status), RK_OK); /* stays new */
    assert_int_equal(add1(s, "w8", "W8", 8, 1000, status), RK_OK); /* stays new, no notice ever */
    assert_int_equal(add1(s, "w4", "W4", 4, 5000, status), RK_OK);
    assert_int_equal(add1(s, "w5", "W5", 5, 1000, status), RK_OK);
    forward(s, "w5", "W5");

    agency_sweep done;
    assert_int_equal(agency_store_sweep(s, 6000, 2000, 900, 0, &done), RK_OK);
    assert_int_equal(done.not_forwarded, 3); /* w1, w3, w8; not w4 (younger) */
    assert_int_equal(done.no_code_notice, 0);
    expect_reason(s, "w1", "failed", "not_forwarded");
    expect_reason(s, "w2", "pending", "");
    expect_reason(s, "w4", "pending", "");
    assert_int_equal(agency_store_sweep(s, 7000, 2000, 2000, 0, &done), RK_OK);
    assert_int_equal(done.no_code_notice, 2);
    expect_reason(s, "w2", "failed", "no_code_notice");

    agency_notice_outcome out;
    assert_int_equal(agency_store_apply_notice(s, "W1", "CW1", 1, 8000, &out), RK_OK);
    assert_int_equal(out, NOTICE_LINKED);
    expect_reason(s, "w1", "linked", "");
    assert_int_equal(agency_store_apply_notice(s, "W2", "CW2", 7, 8000, &out), RK_OK);
    assert_int_equal(out, NOTICE_MISMATCH);
    expect_reason(s, "w2", "failed", "check_code_mismatch");
    /* Failed for a mismatch: not linked by anything later. */
    assert_int_equal(agency_store_apply_notice(s, "W2", "CW2", 2, 8100, &out), RK_OK);
    assert_int_equal(out, NOTICE_UNKNOWN);
    link_person(s, "w6", "W6", "CW6");
    assert_int_equal(agency_store_apply_notice(s, "W5", "CW6", 5, 8000, &out), RK_OK);
    assert_int_equal(out, NOTICE_DUPLICATE);
    expect_reason(s, "w5", "failed", "code_already_linked");

    /* Enrolled again: a fresh acquisition, the old number forgotten. */
    assert_int_equal(add1(s, "w3", "W7", 3, 9000, status), RK_OK);
    expect_reason(s, "w3", "pending", "");
    assert_int_equal(count_where(s, "SELECT count(*) FROM pending WHERE person = ?", "w3"), 1);
    assert_int_equal(agency_store_apply_notice(s, "W3", "CW3", 3, 9100, &out), RK_OK);
    assert_int_equal(out, NOTICE_UNKNOWN);

    /* After the grace period the rows of failed persons go; pending ones stay. */
    assert_int_equal(count_where(s, "SELECT count(*) FROM pending WHERE person = ?", "w8"), 1);
    assert_int_equal(agency_store_sweep(s, 20000, 0, 0, 10000, &done), RK_OK);
    assert_int_equal(done.purged, 1);
    assert_int_equal(count_where(s, "SELECT count(*) FROM pending WHERE person = ?", "w8"), 0);
    assert_int_equal(count_where(s, "SELECT count(*) FROM pending WHERE person = ?", "w3"), 1);
    assert_int_equal(count_where(s, "SELECT count(*) FROM pending WHERE person = ?", "w4"), 1);
}

static void test_mismatch_failed(void **state)
{
    agency_store *s = *state;
    char status[AGENCY_STATUS_MAX], code[64];
    agency_notice_outcome out = NOTICE_UNKNOWN;
    assert_int_equal(add1(s, "p2", "A3", 4, 1000, status), RK_OK);
    assert_int_equal(agency_store_apply_notice(s, "A3", "CODE2", 5, 2000, &out), RK_OK);
    assert_int_equal(out, NOTICE_MISMATCH);
    expect_status(s, "p2", "failed");
    assert_int_equal(agency_store_code_of(s, "p2", code, sizeof code), RK_ERR_NOT_FOUND);
    assert_int_equal(agency_store_person_by_code(s, "CODE2", code, sizeof code), RK_ERR_NOT_FOUND);
    assert_int_equal(count_where(s, incidents_of_kind, "check_code_mismatch"), 1);
    assert_int_equal(agency_store_count(s, "failed"), 1);

    /* A failed person may be acquired again. */
    assert_int_equal(add1(s, "p2", "A4", 6, 3000, status), RK_OK);
    assert_string_equal(status, "pending");
    assert_int_equal(agency_store_apply_notice(s, "A4", "CODE2", 6, 4000, &out), RK_OK);
    assert_int_equal(out, NOTICE_LINKED);
    expect_status(s, "p2", "linked");
}

static void test_duplicates(void **state)
{
    agency_store *s = *state;
    char status[AGENCY_STATUS_MAX];
    agency_notice_outcome out = NOTICE_UNKNOWN;
    link_person(s, "p3", "A5", "CODE3");

    /* Another person here under the same code: not linked, an incident. */
    assert_int_equal(add1(s, "p4", "A6", 2, 1000, status), RK_OK);
    assert_int_equal(agency_store_apply_notice(s, "A6", "CODE3", 2, 2000, &out), RK_OK);
    assert_int_equal(out, NOTICE_DUPLICATE);
    expect_status(s, "p4", "failed");
    expect_status(s, "p3", "linked");
    assert_int_equal(count_where(s, incidents_of_kind, "unauthorized_access"), 1);

    /* An acquisition number already in flight: refused, nothing left. */
    assert_int_equal(add1(s, "p5", "A7", 1, 3000, status), RK_OK);
    assert_int_equal(add1(s, "p6", "A7", 1, 3000, status), RK_ERR_CONFLICT);
    assert_int_equal(agency_store_person_status(s, "p6", status), RK_ERR_NOT_FOUND);
    expect_status(s, "p5", "pending");
}

static void test_batches(void **state)
{
    agency_store *s = *state;
    link_person(s, "b0", "B0", "C0");
    agency_pending pend[] = {
        {.person = "b1", .acquisition_no = "B1", .check_code = 1},
        {.person = "b2", .acquisition_no = "B2", .check_code = 2},
        {.person = "b1", .acquisition_no = "B8", .check_code = 1}, /* b1 is pending already */
        {.person = "b3", .acquisition_no = "B1", .check_code = 3}, /* B1 is in flight */
        {.person = "b4", .acquisition_no = "B4", .check_code = 4},
        {.person = "b0", .acquisition_no = "B5", .check_code = 4}, /* linked */
    };
    assert_int_equal(agency_store_add_pending_many(s, pend, 6, 1000), RK_OK);
    assert_int_equal(pend[0].rc, RK_OK);
    assert_string_equal(pend[0].status, "pending");
    assert_int_equal(pend[1].rc, RK_OK);
    assert_int_equal(pend[2].rc, RK_OK); /* not forwarded yet: sent again under its first number */
    assert_int_equal(pend[2].resend, 1);
    assert_string_equal(pend[2].acquisition_no, "B1");
    assert_int_equal(pend[3].rc, RK_ERR_CONFLICT);
    assert_int_equal(pend[4].rc, RK_OK);
    assert_int_equal(pend[5].rc, RK_ERR_EXISTS);
    assert_string_equal(pend[5].status, "linked");
    char status[AGENCY_STATUS_MAX];
    assert_int_equal(agency_store_person_status(s, "b3", status), RK_ERR_NOT_FOUND); /* its item left nothing */
    assert_int_equal(agency_store_count(s, "pending"), 3);

    agency_notice notes[] = {
        {.acquisition_no = "B1", .code = "C1", .check_code = 1},
        {.acquisition_no = "B2", .code = "C2", .check_code = 9},
        {.acquisition_no = NULL, .code = "C3", .check_code = 1},
        {.acquisition_no = "B2", .code = "C2", .check_code = 2}, /* taken by the mismatch above */
        {.acquisition_no = "B4", .code = "C1", .check_code = 4}, /* C1 linked to b1 just above */
        {.acquisition_no = "BX", .code = "C5", .check_code = 10},
        {.acquisition_no = "BY", .code = "C6", .check_code = 1},
    };
    assert_int_equal(agency_store_apply_notices(s, notes, 7, 2000), RK_OK);
    assert_int_equal(notes[0].rc, RK_OK);
    assert_int_equal(notes[0].outcome, NOTICE_LINKED);
    assert_int_equal(notes[1].rc, RK_OK);
    assert_int_equal(notes[1].outcome, NOTICE_MISMATCH);
    assert_int_equal(notes[2].rc, RK_ERR_INVALID);
    assert_int_equal(notes[3].rc, RK_OK);
    assert_int_equal(notes[3].outcome, NOTICE_UNKNOWN);
    assert_int_equal(notes[4].rc, RK_OK);
    assert_int_equal(notes[4].outcome, NOTICE_DUPLICATE);
    assert_int_equal(notes[5].rc, RK_ERR_INVALID);
    assert_int_equal(notes[6].rc, RK_OK);
    assert_int_equal(notes[6].outcome, NOTICE_UNKNOWN);
    expect_status(s, "b1", "linked");
    expect_status(s, "b2", "failed");
    expect_status(s, "b4", "failed");
    assert_int_equal(count_where(s, incidents_of_kind, "check_code_mismatch"), 1);
    assert_int_equal(count_where(s, incidents_of_kind, "unauthorized_access"), 1);
}

/* ---------- provision copies ---------- */

static void test_data_versions(void **state)
{
    agency_store *s = *state;
    int64_t version = 0;
    char *value = NULL, as_of[11];
    assert_int_equal(agency_store_put_data(s, "nobody", "local_tax", "1", "2024-04-01", 1000, &version),
                     RK_ERR_NOT_FOUND);
    link_person(s, "d1", "D1", "CD1");
    assert_int_equal(agency_store_data_at(s, "d1", "local_tax", NULL, &value, as_of, &version), RK_ERR_NOT_FOUND);
    assert_int_equal(agency_store_put_data(s, "d1", "local_tax", "{\"amount\":1}", "2024-04-01", 1000, &version),
                     RK_OK);
    assert_int_equal(version, 1);
    assert_int_equal(agency_store_put_data(s, "d1", "local_tax", "{\"amount\":2}", "2024-05-01", 1100, &version),
                     RK_OK);
    assert_int_equal(version, 2);
    assert_int_equal(agency_store_put_data(s, "d1", "pension_benefits", "3", "2024-06-01", 1200, &version), RK_OK);
    assert_int_equal(version, 1); /* versions count per item */

    assert_int_equal(agency_store_data_at(s, "d1", "local_tax", NULL, &value, as_of, &version), RK_OK);
    assert_string_equal(value, "{\"amount\":2}");
    assert_string_equal(as_of, "2024-05-01");
    assert_int_equal(version, 2);
    free(value);

    /* by date: the version in force then; a correction of an earlier date,
     * stored later, answers for its own date, not for the newest */
    assert_int_equal(agency_store_put_data(s, "d1", "local_tax", "{\"amount\":11}", "2024-04-01", 1300, &version),
                     RK_OK);
    assert_int_equal(agency_store_data_at(s, "d1", "local_tax", "2024-03-31", &value, as_of, &version),
                     RK_ERR_NOT_FOUND); /* before the first */
    assert_int_equal(agency_store_data_at(s, "d1", "local_tax", "2024-04-30", &value, as_of, &version), RK_OK);
    assert_string_equal(value, "{\"amount\":11}"); /* the correction of 2024-04-01 */
    assert_int_equal(version, 3);
    free(value);
    assert_int_equal(agency_store_data_at(s, "d1", "local_tax", "2025-03-31", &value, as_of, &version), RK_OK);
    assert_string_equal(value, "{\"amount\":2}");
    assert_string_equal(as_of, "2024-05-01");
    free(value);
    assert_int_equal(agency_store_data_at(s, "d1", "local_tax", "", &value, as_of, &version), RK_OK);
    assert_int_equal(version, 3); /* no date: the newest stored */
    free(value);
}

static char *answer_of(int64_t version, void *arg)
{
    int *calls = arg;
    ++*calls;
    char *body = malloc(32);
    if (body)
        snprintf(body, 32, "{\"version\":%lld}", (long long)version);
    return body;
}

static void test_put_data_once(void **state)
{
    agency_store *s = *state;
    link_person(s, "d2", "D2", "CD2");
    int calls = 0;
    int64_t version = 0;
    char *kept = NULL, *value = NULL, as_of[11];
    assert_int_equal(agency_store_put_data_once(s, "r1", "hash-a", "d2", "local_tax", "10", "2024-04-01", 1000,
                                                answer_of, &calls, &version, &kept), RK_OK);
    assert_int_equal(version, 1);
    assert_null(kept);
    assert_int_equal(calls, 1);

    /* The same request again: the first answer, no new version. */
    version = 0;
    assert_int_equal(agency_store_put_data_once(s, "r1", "hash-a", "d2", "local_tax", "10", "2024-04-01", 1100,
                                                answer_of, &calls, &version, &kept), RK_OK);
    assert_non_null(kept);
    assert_string_equal(kept, "{\"version\":1}");
    free(kept);
    assert_int_equal(calls, 1);
    assert_int_equal(agency_store_data_at(s, "d2", "local_tax", NULL, &value, as_of, &version), RK_OK);
    assert_int_equal(version, 1);
    free(value);

    /* The same id with another request. */
    assert_int_equal(agency_store_put_data_once(s, "r1", "hash-b", "d2", "local_tax", "11", "2024-04-01", 1200,
                                                answer_of, &calls, &version, &kept), RK_ERR_CONFLICT);
    assert_null(kept);

    /* An unknown person: nothing kept, a retry is answered the same. */
    for (int i = 0; i < 2; i++)
        assert_int_equal(agency_store_put_data_once(s, "r2", "hash-c", "nobody", "local_tax", "1", "2024-04-01",
                                                    1300, answer_of, &calls, &version, &kept), RK_ERR_NOT_FOUND);
    assert_int_equal(calls, 1);
}

/* ---------- 第8-5: deleting a received value ---------- */

#define SECRET "SECRET-VALUE-7731"
#define OTHER "OTHER-VALUE-4410"

static rk_rc keep_exchange(rk_db *db, void *arg)
{
    const agency_received *r = arg;
    char body[256];
    snprintf(body, sizeof body,
             "{\"query_id\":\"q-%s\",\"exchange_id\":\"%s\",\"status\":\"provided\",\"value\":%s,"
             "\"as_of\":\"%s\",\"provider\":\"%s\",\"item\":\"%s\"}",
             r->exchange_id, r->exchange_id, r->value_json, r->as_of, r->provider, r->item);
    char key[64];
    snprintf(key, sizeof key, "q-%s", r->exchange_id);
    rk_rc rc = rk_answer_keep(db, key, "requester", "h", 200, body);
    return rc == RK_OK ? agency_store_keep_received(db, arg) : rc;
}

/* Whether the bytes of text are in the file (a missing file holds nothing). */
static int file_holds(const char *file, const char *text)
{
    FILE *f = fopen(file, "rb");
    if (!f)
        return 0;
    size_t n = strlen(text), len = 0, cap = 1 << 16;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            char *more = realloc(buf, cap *= 2);
            assert_non_null(more);
            buf = more;
        }
    }
    fclose(f);
    int found = 0;
    for (size_t i = 0; !found && i + n <= len; i++)
        found = memcmp(buf + i, text, n) == 0;
    free(buf);
    return found;
}

/* PostgreSQL: the row versions, live or dead, of received and answers
 * whose bytes hold the text (pageinspect reads the pages as they are). */
static rk_rc add_pageinspect(rk_db *db, void *arg)
{
    (void)arg;
    return rk_stmt_exec(rk_db_stmt(db, "CREATE EXTENSION IF NOT EXISTS pageinspect"));
}

static const char versions_holding[] =
    "SELECT count(*) FROM (SELECT 'answers' AS t UNION ALL SELECT 'received') AS r,"
    " generate_series(0, pg_relation_size(r.t) / 8192 - 1) AS b, heap_page_items(get_raw_page(r.t, b)) AS i"
    " WHERE position(convert_to(?, 'UTF8') IN coalesce(i.t_data, '')) > 0";

static void test_delete_received(void **state)
{
    agency_store *s = *state;
    rk_db *db = agency_store_db(s);
    /* Two exchanges whose ids share a prefix: only the one named goes. */
    agency_received one = {"ag.x1", "p1", "prov", "local_tax", "\"" SECRET "\"", "2024-04-01", 1000};
    agency_received ten = {"ag.x10", "p1", "prov", "local_tax", "\"" OTHER "\"", "2024-04-02", 1000};
    assert_int_equal(rk_db_write(db, keep_exchange, &one), RK_OK);
    assert_int_equal(rk_db_write(db, keep_exchange, &ten), RK_OK);
    assert_int_equal(count_where(s, received_of, "ag.x1"), 1);
    char file[160];
    snprintf(file, sizeof file, "%s-wal", path);
    int pg = test_store_is_pg();
    assert_true(pg || file_holds(path, SECRET) || file_holds(file, SECRET)); /* the check below can fail */
    if (pg) {
        assert_int_equal(rk_db_write(db, add_pageinspect, NULL), RK_OK);
        assert_int_equal(count_where(s, versions_holding, SECRET), 2); /* the received row and the kept answer */
    }

    int deleted = -1;
    assert_int_equal(agency_store_delete_received(s, "ag.x1", &deleted), RK_OK);
    assert_int_equal(deleted, 2); /* the received row and the kept answer */
    assert_int_equal(count_where(s, received_of, "ag.x1"), 0);
    assert_int_equal(count_where(s, received_of, "ag.x10"), 1);

    int status = 0;
    char *body = NULL;
    assert_int_equal(rk_answer_get(db, "q-ag.x1", "requester", "h", &status, &body), RK_OK);
    assert_int_equal(status, 200);
    assert_null(strstr(body, SECRET));
    assert_null(strstr(body, "as_of"));
    assert_non_null(strstr(body, "\"exchange_id\":\"ag.x1\""));
    assert_non_null(strstr(body, "\"status\":\"provided\""));
    free(body);
    assert_int_equal(rk_answer_get(db, "q-ag.x10", "requester", "h", &status, &body), RK_OK);
    assert_non_null(strstr(body, OTHER));
    free(body);

    /* Not in the database files either (SQLite); in no row version, not even
     * a dead one (PostgreSQL: purge ran VACUUM — the bytes of a removed
     * version may linger in a page's free space until it is reused). */
    assert_false(!pg && file_holds(path, SECRET));
    assert_false(!pg && file_holds(file, SECRET));
    assert_true(!pg || count_where(s, versions_holding, SECRET) == 0);

    /* Again: nothing held any more. */
    assert_int_equal(agency_store_delete_received(s, "ag.x1", &deleted), RK_OK);
    assert_int_equal(deleted, 0);
}

/* ---------- held answers (手動応答): held_store.h ---------- */

static rk_record held_record(const char *xid, const char *side, const char *outcome)
{
    rk_record r = {0};
    snprintf(r.exchange_id, sizeof r.exchange_id, "%s", xid);
    snprintf(r.side, sizeof r.side, "%s", side);
    strcpy(r.requester, "req");
    strcpy(r.provider, "prov");
    strcpy(r.business, "b");
    strcpy(r.item, "local_tax");
    strcpy(r.subject, "h1");
    r.requested_ms = 1000;
    snprintf(r.outcome, sizeof r.outcome, "%s", outcome);
    return r;
}

static rk_rc append_record(rk_db *db, void *arg)
{
    return rk_record_append(db, arg);
}

static rk_rc keep_held(rk_db *db, void *arg)
{
    return held_store_keep(db, arg);
}

typedef struct settle_kept {
    const char *key;
    int status;
    const char *body;
} settle_kept;

static rk_rc keep_answer(rk_db *db, void *arg)
{
    settle_kept *k = arg;
    return rk_answer_keep(db, k->key, "requester", "h", k->status, k->body);
}

static void test_handling(void **state)
{
    agency_store *s = *state;
    rk_db *db = agency_store_db(s);
    int held = -1;
    assert_int_equal(held_store_set_handling(db, "nobody", 0, "DV", 1000), RK_ERR_NOT_FOUND);
    link_person(s, "h1", "H1", "CH1");
    assert_int_equal(held_store_person_held(db, "h1", &held), RK_OK);
    assert_int_equal(held, 0);
    assert_int_equal(held_store_set_handling(db, "h1", 0, "支援措置", 1000), RK_OK);
    assert_int_equal(held_store_set_handling(db, "h1", 0, "支援措置 (renewed)", 1100), RK_OK); /* again: one row */
    assert_int_equal(held_store_person_held(db, "h1", &held), RK_OK);
    assert_int_equal(held, 1);
    assert_int_equal(held_store_set_handling(db, "h1", 1, NULL, 1200), RK_OK);
    assert_int_equal(held_store_person_held(db, "h1", &held), RK_OK);
    assert_int_equal(held, 0);
    assert_int_equal(held_store_set_handling(db, "h1", 1, NULL, 1300), RK_OK); /* lifting twice is no error */
}

static void test_held_requests(void **state)
{
    agency_store *s = *state;
    rk_db *db = agency_store_db(s);
    held_row h;
    assert_int_equal(held_store_get(db, "req.x1", &h), RK_ERR_NOT_FOUND);
    /* two held requests, as the settlement of their provisions keeps them */
    const char *ids[] = {"req.x1", "req.x2", "req.x3"};
    for (int i = 0; i < 3; i++) {
        held_in in = {ids[i], "h1", "req", "b", "local_tax", "op-r", "CODE", i ? "" : "{\"fiscal_year\":2025}",
                      "-----CERT-----", 1000 + i, 5000 + i};
        rk_record r = held_record(ids[i], "provider", "held");
        assert_int_equal(rk_db_write(db, append_record, &r), RK_OK);
        assert_int_equal(rk_db_write(db, keep_held, &in), RK_OK);
    }
    held_in again = {"req.x1", "h1", "req", "b", "local_tax", "op-r", "CODE", "", "C", 1, 2};
    assert_int_not_equal(rk_db_write(db, keep_held, &again), RK_OK); /* one row an exchange */
    assert_int_equal(held_store_get(db, "req.x1", &h), RK_OK);
    assert_string_equal(h.state, "held");
    assert_string_equal(h.requester_cert, "-----CERT-----");
    assert_string_equal(h.condition_json, "{\"fiscal_year\":2025}");
    assert_int_equal(h.deadline_ms, 5000);
    held_row_clear(&h);

    /* the list: oldest first, paged, metadata only */
    json_t *list = NULL;
    int64_t next = 0;
    assert_int_equal(held_store_list(db, 0, 2, &list, &next), RK_OK);
    assert_int_equal(json_array_size(list), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "exchange_id")), "req.x1");
    assert_null(json_object_get(json_array_get(list, 0), "requester_cert"));
    assert_true(next > 0);
    json_decref(list);
    assert_int_equal(held_store_list(db, next, 2, &list, &next), RK_OK);
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "exchange_id")), "req.x3");
    assert_int_equal(next, 0);
    json_decref(list);

    /* expired: those past their deadline only */
    char expired[4][RK_EXCHANGE_ID_MAX + 1];
    size_t n = 9;
    assert_int_equal(held_store_expired(db, 4999, expired, 4, &n), RK_OK);
    assert_int_equal(n, 0);
    assert_int_equal(held_store_expired(db, 5001, expired, 4, &n), RK_OK);
    assert_int_equal(n, 2);
    assert_string_equal(expired[0], "req.x1");

    /* handled once: the record and the result with it; a second handling refused, nothing written */
    rk_record late = held_record("req.x1", "provider", "provided");
    assert_int_equal(held_store_handle(db, "req.x1", "answered", "op-p", &late, "{\"status\":\"provided\"}", 6000),
                     RK_OK);
    rk_record declined = held_record("req.x1", "provider", "declined");
    assert_int_equal(held_store_handle(db, "req.x1", "declined", "op-q", &declined, "{}", 6100), RK_ERR_CONFLICT);
    rk_record found;
    assert_int_equal(rk_records_find(db, "req.x1", "provider", "declined", &found), RK_ERR_NOT_FOUND);
    assert_int_equal(rk_records_find(db, "req.x1", "provider", "provided", &found), RK_OK);
    assert_int_equal(held_store_handle(db, "req.nothing", "declined", "op", &declined, "{}", 6100), RK_ERR_CONFLICT);
    assert_int_equal(held_store_get(db, "req.x1", &h), RK_OK);
    assert_string_equal(h.state, "answered");
    held_row_clear(&h);
    int64_t held_n = 0, unsent = 0;
    assert_int_equal(held_store_counts(db, &held_n, &unsent), RK_OK);
    assert_int_equal(held_n, 2);
    assert_int_equal(unsent, 1);

    /* the result claimed once for its lease; again after a failure's backoff; then sent */
    held_result r[4];
    assert_int_equal(held_store_claim_results(db, 6000, 60000, r, 4, &n), RK_OK);
    assert_int_equal(n, 1);
    assert_string_equal(r[0].exchange_id, "req.x1");
    assert_string_equal(r[0].result_json, "{\"status\":\"provided\"}");
    free(r[0].result_json);
    int64_t seq = r[0].seq;
    assert_int_equal(held_store_claim_results(db, 6001, 60000, r, 4, &n), RK_OK);
    assert_int_equal(n, 0); /* leased */
    assert_int_equal(held_store_result_sent(db, seq, 0, 7000, 6002), RK_OK);
    assert_int_equal(held_store_claim_results(db, 6999, 60000, r, 4, &n), RK_OK);
    assert_int_equal(n, 0);
    assert_int_equal(held_store_claim_results(db, 7000, 60000, r, 4, &n), RK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(r[0].attempts, 1);
    free(r[0].result_json);
    assert_int_equal(held_store_result_sent(db, seq, 1, 0, 7001), RK_OK);
    assert_int_equal(held_store_claim_results(db, 999999999, 60000, r, 4, &n), RK_OK);
    assert_int_equal(n, 0);
    assert_int_equal(held_store_counts(db, &held_n, &unsent), RK_OK);
    assert_int_equal(unsent, 0);
}

static void test_awaiting(void **state)
{
    agency_store *s = *state;
    rk_db *db = agency_store_db(s);
    awaiting_row w;
    assert_int_equal(held_store_awaiting_get(db, "ag.h1", &w), RK_ERR_NOT_FOUND);
    /* the query settled held: its record, its kept answer, and the wait */
    rk_record r = held_record("ag.h1", "requester", "held");
    awaiting_in in = {"ag.h1", "q-h1", "p1", "prov", "local_tax", 1000};
    assert_int_equal(rk_db_write(db, append_record, &r), RK_OK);
    assert_int_equal(rk_db_write(db, held_store_keep_awaiting, &in), RK_OK);
    assert_int_equal(rk_answer_get(db, "q-h1", "requester", NULL, &(int){0}, &(char *){NULL}), RK_ERR_NOT_FOUND);
    settle_kept k = {"q-h1", 202, "{\"status\":\"held\"}"};
    assert_int_equal(rk_db_write(db, keep_answer, &k), RK_OK);
    assert_int_equal(held_store_awaiting_get(db, "ag.h1", &w), RK_OK);
    assert_string_equal(w.query_id, "q-h1");
    assert_int_equal(w.settled, 0);

    /* the late result: the record added, the kept answer replaced, the value kept, once */
    rk_record late = held_record("ag.h1", "requester", "provided");
    agency_received got = {"ag.h1", "p1", "prov", "local_tax", "\"late value\"", "2024-04-01", 2000};
    assert_int_equal(held_store_settle_awaiting(db, "ag.h1", &late, 200, "{\"status\":\"provided\"}",
                                                agency_store_keep_received, &got, 2000),
                     RK_OK);
    int status = 0;
    char *body = NULL;
    assert_int_equal(rk_answer_get(db, "q-h1", "requester", NULL, &status, &body), RK_OK);
    assert_int_equal(status, 200);
    assert_string_equal(body, "{\"status\":\"provided\"}");
    free(body);
    assert_int_equal(count_where(s, received_of, "ag.h1"), 1);
    assert_int_equal(held_store_awaiting_get(db, "ag.h1", &w), RK_OK);
    assert_int_equal(w.settled, 1);
    rk_record declined = held_record("ag.h1", "requester", "declined");
    assert_int_equal(held_store_settle_awaiting(db, "ag.h1", &declined, 200, "{}", NULL, NULL, 3000), RK_ERR_EXISTS);
    rk_record found;
    assert_int_equal(rk_records_find(db, "ag.h1", "requester", "declined", &found), RK_ERR_NOT_FOUND);
    assert_int_equal(held_store_settle_awaiting(db, "ag.none", &declined, 200, "{}", NULL, NULL, 3000), RK_ERR_EXISTS);
}

/* ---------- a tool reading a running node's data ---------- */

static void test_readonly(void **state)
{
    agency_store *s = *state;
    link_person(s, "r1", "R1", "CR1");
    int64_t version = 0;
    assert_int_equal(agency_store_put_data(s, "r1", "local_tax", "5", "2024-04-01", 1000, &version), RK_OK);

    agency_store *ro = NULL;
    char missing[160];
    if (test_store_is_pg())
        snprintf(missing, sizeof missing, "postgresql://postgres@127.0.0.1:%d/none", pg_fixture_port());
    else
        snprintf(missing, sizeof missing, "%s/none.db", dir);
    assert_int_not_equal(agency_store_open(missing, RK_DB_READONLY, "agency-test", &ro), RK_OK); /* not created */
    assert_int_equal(access(missing, F_OK), -1);

    assert_int_equal(agency_store_open(tool_target(), RK_DB_READONLY, "agency-test", &ro), RK_OK);
    char status[AGENCY_STATUS_MAX], code[64], person[64], *value = NULL, as_of[11], *kept = NULL;
    assert_int_equal(agency_store_person_status(ro, "r1", status), RK_OK);
    assert_string_equal(status, "linked");
    assert_int_equal(agency_store_code_of(ro, "r1", code, sizeof code), RK_OK);
    assert_string_equal(code, "CR1");
    assert_int_equal(agency_store_person_by_code(ro, "CR1", person, sizeof person), RK_OK);
    assert_string_equal(person, "r1");
    assert_int_equal(agency_store_count(ro, "linked"), 1);
    assert_int_equal(agency_store_data_at(ro, "r1", "local_tax", NULL, &value, as_of, &version), RK_OK);
    assert_string_equal(value, "5");
    free(value);

    /* A write made meanwhile by the node is seen. */
    assert_int_equal(agency_store_put_data(s, "r1", "local_tax", "6", "2024-05-01", 1100, &version), RK_OK);
    assert_int_equal(agency_store_data_at(ro, "r1", "local_tax", NULL, &value, as_of, &version), RK_OK);
    assert_string_equal(value, "6");
    free(value);

    agency_notice_outcome out;
    agency_pending pend = {.person = "r2", .acquisition_no = "R2", .check_code = 1};
    agency_notice note = {.acquisition_no = "R1", .code = "CR1", .check_code = 7};
    int deleted = 0, calls = 0;
    assert_int_equal(agency_store_writable(ro), 0);
    assert_int_equal(add1(ro, "r2", "R2", 1, 2000, status), RK_ERR_INVALID);
    assert_int_equal(agency_store_add_pending_many(ro, &pend, 1, 2000), RK_ERR_INVALID);
    assert_int_equal(agency_store_drop_pending(ro, "r1", "R1"), RK_ERR_INVALID);
    assert_int_equal(agency_store_apply_notice(ro, "R1", "CR1", 7, 2000, &out), RK_ERR_INVALID);
    assert_int_equal(agency_store_apply_notices(ro, &note, 1, 2000), RK_ERR_INVALID);
    assert_int_equal(agency_store_put_data(ro, "r1", "local_tax", "7", "2024-06-01", 2000, &version), RK_ERR_INVALID);
    assert_int_equal(agency_store_put_data_once(ro, "w1", "h", "r1", "local_tax", "7", "2024-06-01", 2000, answer_of,
                                                &calls, &version, &kept), RK_ERR_INVALID);
    assert_int_equal(agency_store_delete_received(ro, "ag.x1", &deleted), RK_ERR_INVALID);
    agency_store_close(ro);

    assert_int_equal(agency_store_person_status(s, "r2", status), RK_ERR_NOT_FOUND);
    assert_int_equal(agency_store_writable(s), 1);
}

/* ---------- an existing database opens again ---------- */

static void test_reopen(void **state)
{
    agency_store *s = *state;
    link_person(s, "o1", "O1", "CO1");
    agency_store *again = NULL;
    assert_int_equal(agency_store_open(tool_target(), 0, "agency-test", &again), RK_OK); /* the migration is done */
    expect_status(again, "o1", "linked");
    agency_store_close(again);
}

/* A database written before the tables were versioned: no schema_versions,
 * INTEGER columns. Those were SQLite's; on PostgreSQL the same tables in its
 * spelling. */
static rk_rc old_schema(rk_db *db, void *arg)
{
    (void)arg;
    static const char *const pg_sql[] = {
        "CREATE TABLE persons ("
        "  person TEXT PRIMARY KEY, status TEXT NOT NULL CHECK (status IN ('pending','linked','failed')),"
        "  code TEXT UNIQUE, created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL)",
        "CREATE TABLE pending ("
        "  acquisition_no TEXT PRIMARY KEY, person TEXT NOT NULL, check_code BIGINT NOT NULL)",
        "INSERT INTO persons VALUES ('old1', 'pending', NULL, 1, 1)",
        "INSERT INTO pending VALUES ('OLD1', 'old1', 4)",
    };
    static const char *const sqlite_sql[] = {
        "CREATE TABLE persons ("
        "  person TEXT PRIMARY KEY, status TEXT NOT NULL CHECK (status IN ('pending','linked','failed')),"
        "  code TEXT UNIQUE, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL) WITHOUT ROWID",
        "CREATE TABLE pending ("
        "  acquisition_no TEXT PRIMARY KEY, person TEXT NOT NULL, check_code INTEGER NOT NULL) WITHOUT ROWID",
        "INSERT INTO persons VALUES ('old1', 'pending', NULL, 1, 1)",
        "INSERT INTO pending VALUES ('OLD1', 'old1', 4)",
    };
    const char *const *sql = test_store_is_pg() ? pg_sql : sqlite_sql;
    for (size_t i = 0; i < sizeof pg_sql / sizeof pg_sql[0]; i++) {
        rk_stmt *st = rk_db_stmt(db, sql[i]);
        rk_rc rc = st ? rk_stmt_exec(st) : RK_ERR_STORE;
        if (rc != RK_OK)
            return rc;
    }
    return RK_OK;
}

static void test_existing_database(void **state)
{
    (void)state;
    char old[160];
    assert_int_equal(test_store_target(dir, "old", old, sizeof old), 0);
    rk_db *db = NULL;
    assert_int_equal(rk_db_open(old, 0, &db), RK_OK);
    assert_int_equal(rk_db_write(db, old_schema, NULL), RK_OK);
    rk_db_close(db);

    agency_store *s = NULL;
    assert_int_equal(agency_store_open(old, 0, "agency-test", &s), RK_OK);
    expect_status(s, "old1", "pending");
    agency_notice_outcome out;
    assert_int_equal(agency_store_apply_notice(s, "OLD1", "COLD", 4, 1000, &out), RK_OK);
    assert_int_equal(out, NOTICE_LINKED);
    int64_t version = 0;
    assert_int_equal(agency_store_put_data(s, "old1", "local_tax", "1", "2024-04-01", 1000, &version), RK_OK);
    assert_int_equal(version, 1);
    agency_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pending_notice_linked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mismatch_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resend_and_forwarded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_basic_info_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_and_late_notice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_data_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_received, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readonly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_held_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_awaiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_existing_database, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, test_store_group_end);
}
