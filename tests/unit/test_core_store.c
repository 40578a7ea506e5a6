/* Unit tests: the core's store through core_store.h on a temporary
 * database — one serial per person across resident-code changes, codes
 * issued, the notice outbox (due, retry, done), the reads for tools, the
 * person a resident code names and the markings of records not to be
 * disclosed (in force until their date, a repeat harmless), and a read-only
 * open beside the writer. On SQLite, and on PostgreSQL when
 * RENKEI_TEST_STORE=postgres (unit/test_core_store_pg; pg_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_store.h"
#include "records/records.h"
#include "pg_fixture.h"
#include "store/db.h"

static char dir[64];
static char target[160]; /* sqlite:<dir>/node.db or a new PostgreSQL database */

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/rk-test-core-store-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    if (test_store_target(dir, "node", target, sizeof target) != 0)
        return -1;
    core_store *s = NULL;
    if (core_store_open(target, 0, &s) != RK_OK)
        return -1;
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    core_store_close(*state);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static core_acquisition_item item(const char *agency, const char *no, const char *code, const char *const *previous,
                                  int n_previous, int check_code)
{
    return (core_acquisition_item){.a = {agency, no, code, previous, n_previous, check_code}};
}

/* One acquisition in its own commit; the item's rc. */
static rk_rc acquire(core_store *s, core_acquisition_item *it, int64_t now_ms)
{
    assert_int_equal(core_store_acquire_many(s, it, 1, now_ms), RK_OK);
    return it->rc;
}

static void serial_follows_the_person_across_code_changes(void **state)
{
    core_store *s = *state;
    core_acquisition_item a = item("city-a", "a-1", "11111111111", NULL, 0, 3);
    assert_int_equal(acquire(s, &a, 1000), RK_OK);
    assert_int_equal(a.duplicate, 0);
    assert_true(a.serial > 0);

    /* The resident's code changed: the earlier one names the same person. */
    const char *prev[] = {"11111111111"};
    core_acquisition_item b = item("city-b", "b-1", "22222222222", prev, 1, 3);
    assert_int_equal(acquire(s, &b, 2000), RK_OK);
    assert_int_equal(b.serial, a.serial);

    /* The new code alone now names the person too. */
    core_acquisition_item c = item("city-c", "c-1", "22222222222", NULL, 0, 3);
    assert_int_equal(acquire(s, &c, 3000), RK_OK);
    assert_int_equal(c.serial, a.serial);

    core_acquisition_item other = item("city-a", "a-2", "33333333333", NULL, 0, 5);
    assert_int_equal(acquire(s, &other, 4000), RK_OK);
    assert_true(other.serial != a.serial);
    assert_int_equal(core_store_outbox_depth(s), 4);
}

static void a_person_and_the_markings_of_their_records(void **state)
{
    core_store *s = *state;
    uint64_t serial = 0;
    assert_int_equal(core_store_person(s, "44444444444", &serial), RK_ERR_NOT_FOUND);
    const char *prev[] = {"44444444444"};
    core_acquisition_item a = item("city-a", "a-9", "55555555555", prev, 1, 3);
    assert_int_equal(acquire(s, &a, 1000), RK_OK);
    assert_int_equal(core_store_person(s, "44444444444", &serial), RK_OK); /* an earlier code names them too */
    assert_int_equal(serial, a.serial);
    assert_int_equal(core_store_person(s, "55555555555", &serial), RK_OK);
    assert_int_equal(serial, a.serial);

    rk_record step = {.exchange_id = "city-a.x1", .side = "core", .requester = "city-a", .provider = "city-b",
                      .business = "b", .item = "i", .operator_id = "op-1", .subject = "1", .requested_ms = 5000,
                      .outcome = "withheld", .reason = "city-b: basis"};
    char basis[CORE_BASIS_MAX + 1], until[11];
    assert_int_equal(core_store_withheld(s, "city-a.x1", "2026-01-01", basis, until), RK_ERR_NOT_FOUND);
    assert_int_equal(core_store_withhold(s, &step, "city-b", "basis", "2026-03-31", "op-1", 5000), RK_OK);
    assert_int_equal(core_store_withheld(s, "city-a.x1", "2026-03-31", basis, until), RK_OK); /* the last day */
    assert_string_equal(basis, "basis");
    assert_string_equal(until, "2026-03-31");
    assert_int_equal(core_store_withheld(s, "city-a.x1", "2026-04-01", basis, until), RK_ERR_NOT_FOUND);
    /* again, for good: the step stays one record, the marking is the latest */
    assert_int_equal(core_store_withhold(s, &step, "city-b", "basis 2", NULL, "op-2", 6000), RK_OK);
    assert_int_equal(core_store_withheld(s, "city-a.x1", "2099-01-01", basis, until), RK_OK);
    assert_string_equal(basis, "basis 2");
    assert_string_equal(until, "");
    assert_int_equal(rk_records_count(core_store_db(s)), 1);
    assert_int_equal(core_store_withheld(s, "city-a.x2", "2026-01-01", basis, until), RK_ERR_NOT_FOUND);
}

static void repeats_are_duplicates_and_reuse_is_refused_item_by_item(void **state)
{
    core_store *s = *state;
    core_acquisition_item first = item("city-a", "a-1", "11111111111", NULL, 0, 3);
    assert_int_equal(acquire(s, &first, 1000), RK_OK);

    core_acquisition_item batch[3] = {
        item("city-a", "a-1", "11111111111", NULL, 0, 3), /* the same again */
        item("city-a", "a-1", "44444444444", NULL, 0, 1), /* the number, for another person */
        item("city-a", "a-3", "55555555555", NULL, 0, 2), /* new */
    };
    assert_int_equal(core_store_acquire_many(s, batch, 3, 2000), RK_OK);
    assert_int_equal(batch[0].rc, RK_OK);
    assert_int_equal(batch[0].duplicate, 1);
    assert_int_equal(batch[0].serial, first.serial);
    assert_int_equal(batch[1].rc, RK_ERR_CONFLICT);
    assert_int_equal(batch[2].rc, RK_OK);
    assert_int_equal(batch[2].duplicate, 0);
    /* Only the first and the new one queued a notice; the refused item left
     * no person behind: its code names nobody. */
    assert_int_equal(core_store_outbox_depth(s), 2);
    int64_t persons = -1, agencies = -1;
    assert_int_equal(core_store_person_spread(s, "44444444444", &persons, &agencies), RK_OK);
    assert_int_equal(persons, 0);
    assert_int_equal(agencies, 0);
}

static void codes_issued_per_agency(void **state)
{
    core_store *s = *state;
    core_acquisition_item a = item("city-a", "a-1", "11111111111", NULL, 0, 3);
    assert_int_equal(acquire(s, &a, 1000), RK_OK);
    assert_int_equal(core_store_issued(s, "city-a", a.serial), RK_OK);
    assert_int_equal(core_store_issued(s, "city-b", a.serial), RK_ERR_NOT_FOUND);
    assert_int_equal(core_store_issued(s, "city-a", a.serial + 100), RK_ERR_NOT_FOUND);

    /* A second acquisition by the same agency for the same person: still issued once. */
    core_acquisition_item again = item("city-a", "a-2", "11111111111", NULL, 0, 3);
    assert_int_equal(acquire(s, &again, 2000), RK_OK);
    assert_int_equal(core_store_issued(s, "city-a", a.serial), RK_OK);
}

static void outbox_due_retry_done(void **state)
{
    core_store *s = *state;
    assert_int_equal(core_store_next_due(s, 0, 1), -1);
    core_acquisition_item it[4] = {
        item("city-a", "a-1", "11111111111", NULL, 0, 1),
        item("city-a", "a-2", "22222222222", NULL, 0, 2),
        item("city-b", "b-1", "33333333333", NULL, 0, 3),
        item("city-b", "b-2", "44444444444", NULL, 0, 4),
    };
    assert_int_equal(core_store_acquire_many(s, it, 4, 1000), RK_OK);
    assert_int_equal(core_store_outbox_depth(s), 4);
    assert_int_equal(core_store_next_due(s, 0, 1), 1000);

    core_notice due[8];
    size_t n = 0;
    assert_int_equal(core_store_claim_notices(s, 999, 0, 0, 1, due, 8, &n), RK_OK);
    assert_int_equal(n, 0); /* not yet due */
    assert_int_equal(core_store_claim_notices(s, 1000, 0, 0, 1, due, 8, &n), RK_OK);
    assert_int_equal(n, 4);
    assert_int_equal(core_store_claim_notices(s, 1000, 0, 0, 1, due, 3, &n), RK_OK);
    assert_int_equal(n, 3); /* at most max */

    /* Two lanes share the notices between them, each by id. */
    core_notice lane0[8], lane1[8];
    size_t n0 = 0, n1 = 0;
    assert_int_equal(core_store_claim_notices(s, 1000, 0, 0, 2, lane0, 8, &n0), RK_OK);
    assert_int_equal(core_store_claim_notices(s, 1000, 0, 1, 2, lane1, 8, &n1), RK_OK);
    assert_int_equal(n0 + n1, 4);
    for (size_t i = 0; i < n0; i++)
        assert_int_equal(lane0[i].id % 2, 0);
    for (size_t i = 0; i < n1; i++)
        assert_int_equal(lane1[i].id % 2, 1);

    assert_int_equal(core_store_claim_notices(s, 1000, 0, 0, 1, due, 8, &n), RK_OK);
    const core_notice *a1 = NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(due[i].acquisition_no, "a-1") == 0)
            a1 = &due[i];
    assert_non_null(a1);
    assert_string_equal(a1->agency, "city-a");
    assert_int_equal(a1->serial, it[0].serial);
    assert_int_equal(a1->check_code, 1);
    assert_int_equal(a1->attempts, 0);
    assert_int_equal(a1->created_ms, 1000);

    /* One retried later, one done, in one commit. */
    core_notice_result r[2] = {
        {.id = due[0].id, .outcome = NULL, .attempts = 1, .next_ms = 5000},
        {.id = due[1].id, .outcome = "accepted", .attempts = 1},
    };
    assert_int_equal(core_store_notices_settle(s, r, 2, 2000), RK_OK);
    assert_int_equal(core_store_outbox_depth(s), 3);
    assert_int_equal(core_store_claim_notices(s, 2000, 0, 0, 1, due + 4, 4, &n), RK_OK);
    assert_int_equal(n, 2); /* the retried one waits until 5000 */
    for (size_t i = 0; i < n; i++)
        assert_true(due[4 + i].id != r[0].id && due[4 + i].id != r[1].id);

    /* The other two done: the retried one is the next due. */
    core_notice_result rest[2] = {{.id = due[4].id, .outcome = "accepted"}, {.id = due[5].id, .outcome = "refused"}};
    assert_int_equal(core_store_notices_settle(s, rest, 2, 3000), RK_OK);
    assert_int_equal(core_store_next_due(s, 0, 1), 5000);
    assert_int_equal(core_store_claim_notices(s, 5000, 0, 0, 1, due, 8, &n), RK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(due[0].id, r[0].id);
    assert_int_equal(due[0].attempts, 1);

    core_notice_result last = {.id = due[0].id, .outcome = "accepted"};
    assert_int_equal(core_store_notices_settle(s, &last, 1, 6000), RK_OK);
    assert_int_equal(core_store_outbox_depth(s), 0);
    assert_int_equal(core_store_next_due(s, 0, 1), -1);
}

/* A repeat of an acquisition re-arms its notice — waiting in backoff, or
 * ended unknown_acquisition or undeliverable — due now; one the agency
 * settled for good stays settled. */
static void repeat_rearms_its_notice(void **state)
{
    core_store *s = *state;
    core_acquisition_item it[3] = {
        item("city-a", "r-1", "11111111111", NULL, 0, 1),
        item("city-a", "r-2", "22222222222", NULL, 0, 2),
        item("city-a", "r-3", "33333333333", NULL, 0, 3),
    };
    assert_int_equal(core_store_acquire_many(s, it, 3, 1000), RK_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(it[i].rearmed, 0);
    core_notice due[4];
    size_t n = 0;
    assert_int_equal(core_store_claim_notices(s, 1000, 0, 0, 1, due, 4, &n), RK_OK);
    assert_int_equal(n, 3);
    int64_t id[3];
    for (size_t i = 0; i < n; i++)
        id[due[i].acquisition_no[2] - '1'] = due[i].id;
    core_notice_result r[3] = {
        {.id = id[0], .outcome = NULL, .next_ms = 90000},       /* in backoff */
        {.id = id[1], .outcome = "unknown_acquisition"},        /* the agency had no row then */
        {.id = id[2], .outcome = "linked"},                     /* settled for good */
    };
    assert_int_equal(core_store_notices_settle(s, r, 3, 2000), RK_OK);
    assert_int_equal(core_store_outbox_depth(s), 1);
    assert_int_equal(core_store_claim_notices(s, 3000, 0, 0, 1, due, 4, &n), RK_OK);
    assert_int_equal(n, 0);

    core_acquisition_item again[3] = {
        item("city-a", "r-1", "11111111111", NULL, 0, 1),
        item("city-a", "r-2", "22222222222", NULL, 0, 2),
        item("city-a", "r-3", "33333333333", NULL, 0, 3),
    };
    assert_int_equal(core_store_acquire_many(s, again, 3, 3000), RK_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(again[i].rc, RK_OK);
        assert_int_equal(again[i].duplicate, 1);
    }
    assert_int_equal(again[0].rearmed, 1);
    assert_int_equal(again[1].rearmed, 1);
    assert_int_equal(again[2].rearmed, 0);
    assert_int_equal(core_store_outbox_depth(s), 2);
    assert_int_equal(core_store_next_due(s, 0, 1), 3000);
    assert_int_equal(core_store_claim_notices(s, 3000, 0, 0, 1, due, 4, &n), RK_OK);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        assert_true(due[i].id == id[0] || due[i].id == id[1]); /* the same rows, not new ones */
        assert_int_equal(due[i].attempts, 0);
    }
}

/* A claim holds its notices for the lease: no other deliverer (of any
 * instance) gets them meanwhile; when the lease ends unsettled — the
 * claimer died — they are due again, for another. */
static void a_claim_holds_its_notices_for_the_lease(void **state)
{
    core_store *s = *state;
    core_acquisition_item it[2] = {
        item("city-a", "l-1", "11111111111", NULL, 0, 1),
        item("city-a", "l-2", "22222222222", NULL, 0, 2),
    };
    assert_int_equal(core_store_acquire_many(s, it, 2, 1000), RK_OK);
    core_notice due[4];
    size_t n = 0;
    assert_int_equal(core_store_claim_notices(s, 1000, 30000, 0, 1, due, 4, &n), RK_OK);
    assert_int_equal(n, 2);
    assert_int_equal(core_store_claim_notices(s, 1000, 30000, 0, 1, due, 4, &n), RK_OK);
    assert_int_equal(n, 0); /* claimed */
    assert_int_equal(core_store_claim_notices(s, 30999, 30000, 0, 1, due, 4, &n), RK_OK);
    assert_int_equal(n, 0);
    assert_int_equal(core_store_next_due(s, 0, 1), 31000);
    assert_int_equal(core_store_claim_notices(s, 31000, 30000, 0, 1, due, 4, &n), RK_OK);
    assert_int_equal(n, 2); /* the lease ended unsettled: due again */
    assert_int_equal(due[0].attempts, 0);
}

#define RACE_N 100

typedef struct racer {
    core_store *s;
    const char *agency;
    int failed;
} racer;

static void *race_main(void *arg)
{
    racer *r = arg;
    for (int i = 0; i < RACE_N; i++) {
        char no[32], code[16];
        snprintf(no, sizeof no, "%s-%d", r->agency, i);
        snprintf(code, sizeof code, "%011d", 70000000 + i);
        core_acquisition_item it = item(r->agency, no, code, NULL, 0, 1);
        r->failed += core_store_acquire_many(r->s, &it, 1, 1000) != RK_OK || it.rc != RK_OK;
    }
    return NULL;
}

/* Two core instances over one database receive the same residents at once
 * (two agencies' acquisitions): each resident is one person. */
static void one_resident_is_one_person_across_instances(void **state)
{
    racer r[2] = {{NULL, "city-a", 0}, {NULL, "city-b", 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(core_store_open(target, 0, &r[i].s), RK_OK);
        assert_int_equal(pthread_create(&t[i], NULL, race_main, &r[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        core_store_close(r[i].s);
        assert_int_equal(r[i].failed, 0);
    }
    for (int i = 0; i < RACE_N; i++) {
        char code[16];
        snprintf(code, sizeof code, "%011d", 70000000 + i);
        int64_t persons = -1, agencies = -1;
        assert_int_equal(core_store_person_spread(*state, code, &persons, &agencies), RK_OK);
        assert_int_equal(persons, 1);
        assert_int_equal(agencies, 2);
    }
}

static void reads_for_tools(void **state)
{
    core_store *s = *state;
    int64_t count = -1;
    int lo = 0, hi = 0;
    assert_int_equal(core_store_acquisitions_of(s, "city-a", "11111111111", &count, &lo, &hi), RK_OK);
    assert_int_equal(count, 0);
    assert_int_equal(lo, -1);
    assert_int_equal(hi, -1);

    /* One resident under three codes at three agencies, two acquisitions at city-a. */
    const char *prev1[] = {"11111111111"}, *prev2[] = {"22222222222", "11111111111"};
    core_acquisition_item it[5] = {
        item("city-a", "a-1", "11111111111", NULL, 0, 7),
        item("city-b", "b-1", "22222222222", prev1, 1, 7),
        item("city-c", "c-1", "33333333333", prev2, 2, 7),
        item("city-a", "a-2", "33333333333", NULL, 0, 7),
        item("city-a", "a-3", "99999999999", NULL, 0, 2), /* someone else */
    };
    assert_int_equal(core_store_acquire_many(s, it, 5, 1000), RK_OK);
    for (int i = 0; i < 5; i++)
        assert_int_equal(it[i].rc, RK_OK);

    assert_int_equal(core_store_acquisitions_of(s, "city-a", "11111111111", &count, &lo, &hi), RK_OK);
    assert_int_equal(count, 2);
    assert_int_equal(lo, 7);
    assert_int_equal(hi, 7);
    assert_int_equal(core_store_acquisitions_of(s, "city-b", "33333333333", &count, &lo, &hi), RK_OK);
    assert_int_equal(count, 1);
    assert_int_equal(core_store_acquisitions_of(s, "city-b", "99999999999", &count, &lo, &hi), RK_OK);
    assert_int_equal(count, 0);
    assert_int_equal(core_store_acquisitions_of(s, "city-a", "99999999999", &count, &lo, &hi), RK_OK);
    assert_int_equal(count, 1);
    assert_int_equal(lo, 2);

    int64_t persons = 0, agencies = 0;
    assert_int_equal(core_store_person_spread(s, "22222222222", &persons, &agencies), RK_OK);
    assert_int_equal(persons, 1);
    assert_int_equal(agencies, 3);
    assert_int_equal(core_store_person_spread(s, "99999999999", &persons, &agencies), RK_OK);
    assert_int_equal(persons, 1);
    assert_int_equal(agencies, 1);
    assert_int_equal(core_store_person_spread(s, "00000000000", &persons, &agencies), RK_OK);
    assert_int_equal(persons, 0);
    assert_int_equal(agencies, 0);
}

/* A tool opens the database of a running core read-only: it reads what the
 * core committed and cannot write. */
static void read_only_open_reads_and_cannot_write(void **state)
{
    core_store *s = *state;
    core_acquisition_item a = item("city-a", "a-1", "11111111111", NULL, 0, 4);
    assert_int_equal(acquire(s, &a, 1000), RK_OK);

    core_store *ro = NULL;
    const char *same = test_store_is_pg() ? target : target + strlen("sqlite:"); /* a bare path: sqlite:PATH */
    assert_int_equal(core_store_open(same, RK_DB_READONLY, &ro), RK_OK);
    assert_int_equal(core_store_issued(ro, "city-a", a.serial), RK_OK);
    assert_int_equal(core_store_outbox_depth(ro), 1);
    assert_int_equal(core_store_next_due(ro, 0, 1), 1000);
    core_notice due[2];
    size_t n = 0;
    assert_int_equal(core_store_claim_notices(ro, 1000, 0, 0, 1, due, 2, &n), RK_ERR_DENIED); /* a claim writes */
    assert_int_equal(n, 0);
    int64_t count = 0;
    int lo = 0, hi = 0;
    assert_int_equal(core_store_acquisitions_of(ro, "city-a", "11111111111", &count, &lo, &hi), RK_OK);
    assert_int_equal(count, 1);
    assert_int_equal(lo, 4);

    assert_int_equal(core_store_writable(ro), 0);
    core_acquisition_item b = item("city-b", "b-1", "11111111111", NULL, 0, 4);
    assert_int_equal(core_store_acquire_many(ro, &b, 1, 2000), RK_ERR_DENIED);
    core_notice_result done = {.id = due[0].id, .outcome = "accepted"};
    assert_int_equal(core_store_notices_settle(ro, &done, 1, 2000), RK_ERR_DENIED);

    /* Commits of the writer after the open are seen. */
    assert_int_equal(acquire(s, &b, 2000), RK_OK);
    assert_int_equal(core_store_issued(ro, "city-b", a.serial), RK_OK);
    assert_int_equal(core_store_outbox_depth(ro), 2);
    assert_int_equal(core_store_outbox_depth(s), 2);
    assert_int_equal(core_store_writable(s), 1);
    core_store_close(ro);

    /* Read-only never creates a database. */
    char missing[160];
    if (test_store_is_pg())
        snprintf(missing, sizeof missing, "postgresql://postgres@127.0.0.1:%d/missing", pg_fixture_port());
    else
        snprintf(missing, sizeof missing, "sqlite:%s/missing.db", dir);
    assert_int_not_equal(core_store_open(missing, RK_DB_READONLY, &ro), RK_OK);
}

/* A database opens again with its rows (the migration is not run twice). */
static void reopen_keeps_rows(void **state)
{
    core_store *s = *state;
    core_acquisition_item a = item("city-a", "a-1", "11111111111", NULL, 0, 4);
    assert_int_equal(acquire(s, &a, 1000), RK_OK);
    core_store_close(s);
    *state = NULL;
    assert_int_equal(core_store_open(target, 0, &s), RK_OK);
    *state = s;
    assert_int_equal(core_store_issued(s, "city-a", a.serial), RK_OK);
    core_acquisition_item again = item("city-b", "b-1", "11111111111", NULL, 0, 4);
    assert_int_equal(acquire(s, &again, 2000), RK_OK);
    assert_int_equal(again.serial, a.serial);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(serial_follows_the_person_across_code_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(repeats_are_duplicates_and_reuse_is_refused_item_by_item, setup, teardown),
        cmocka_unit_test_setup_teardown(codes_issued_per_agency, setup, teardown),
        cmocka_unit_test_setup_teardown(outbox_due_retry_done, setup, teardown),
        cmocka_unit_test_setup_teardown(repeat_rearms_its_notice, setup, teardown),
        cmocka_unit_test_setup_teardown(a_claim_holds_its_notices_for_the_lease, setup, teardown),
        cmocka_unit_test_setup_teardown(one_resident_is_one_person_across_instances, setup, teardown),
        cmocka_unit_test_setup_teardown(reads_for_tools, setup, teardown),
        cmocka_unit_test_setup_teardown(read_only_open_reads_and_cannot_write, setup, teardown),
        cmocka_unit_test_setup_teardown(reopen_keeps_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(a_person_and_the_markings_of_their_records, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, test_store_group_end);
}
