/* Unit tests: the PIA register's store through ppc_store.h on a temporary
 * database — a change gets the next serial and a history row, the same
 * state and date again change nothing, the changes since a serial in serial
 * order and capped, the first states seeded into an empty register only,
 * and what it holds kept across a reopen. On SQLite, and on PostgreSQL when
 * RENKEI_TEST_STORE=postgres (unit/test_ppc_store_pg; pg_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_fixture.h"
#include "ppc/ppc_store.h"

static char dir[64];
static char target[160];

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/rk-test-ppc-store-XXXXXX");
    if (!mkdtemp(dir) || test_store_target(dir, "node", target, sizeof target) != 0)
        return -1;
    ppc_store *s = NULL;
    if (ppc_store_open(target, 0, &s) != RK_OK)
        return -1;
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    ppc_store_close(*state);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static pia_entry entry(const char *agency, const char *business, rk_pia_state state, const char *date)
{
    pia_entry e = {.state = state, .changed_ms = 1000};
    snprintf(e.agency, sizeof e.agency, "%s", agency);
    snprintf(e.business, sizeof e.business, "%s", business);
    snprintf(e.evaluated_on, sizeof e.evaluated_on, "%s", date);
    return e;
}

/* Sets it; the serial it got and whether it changed. */
static int64_t set(ppc_store *s, const char *agency, const char *business, rk_pia_state state, const char *date,
                   int *changed)
{
    pia_entry e = entry(agency, business, state, date);
    assert_int_equal(ppc_store_set(s, &e, changed), RK_OK);
    return e.serial;
}

static void states_are_named(void **state)
{
    (void)state;
    assert_int_equal(rk_pia_state_parse("published"), RK_PIA_PUBLISHED);
    assert_int_equal(rk_pia_state_parse("lapsed"), RK_PIA_LAPSED);
    assert_int_equal(rk_pia_state_parse("breach"), RK_PIA_BREACH);
    assert_int_equal(rk_pia_state_parse("Published"), RK_PIA_NONE);
    assert_int_equal(rk_pia_state_parse(""), RK_PIA_NONE);
    assert_int_equal(rk_pia_state_parse(NULL), RK_PIA_NONE);
    assert_string_equal(rk_pia_state_name(RK_PIA_LAPSED), "lapsed");
    assert_string_equal(rk_pia_state_name(RK_PIA_NONE), "none");
}

static void a_change_gets_the_next_serial_and_the_same_again_none(void **state)
{
    ppc_store *s = *state;
    int changed = -1;
    assert_int_equal(ppc_store_count(s), 0);
    assert_int_equal(set(s, "city-a", "b1", RK_PIA_PUBLISHED, "2025-04-01", &changed), 1);
    assert_int_equal(changed, 1);
    assert_int_equal(set(s, "city-a", "b1", RK_PIA_PUBLISHED, "2025-04-01", &changed), 1);
    assert_int_equal(changed, 0); /* nothing new */
    assert_int_equal(set(s, "city-a", "b1", RK_PIA_PUBLISHED, "2026-04-01", &changed), 2);
    assert_int_equal(changed, 1); /* re-evaluated: a change */
    assert_int_equal(set(s, "city-a", "b1", RK_PIA_LAPSED, "2026-04-01", &changed), 3);
    assert_int_equal(set(s, "pref-b", "b1", RK_PIA_BREACH, "2024-01-31", &changed), 4);
    assert_int_equal(ppc_store_count(s), 2);
    /* the history keeps every change, newest first */
    pia_entry h[8];
    size_t n = 0;
    assert_int_equal(ppc_store_history(s, "city-a", "b1", h, 8, &n), RK_OK);
    assert_int_equal(n, 3);
    assert_int_equal(h[0].state, RK_PIA_LAPSED);
    assert_int_equal(h[0].serial, 3);
    assert_string_equal(h[1].evaluated_on, "2026-04-01");
    assert_int_equal(h[2].state, RK_PIA_PUBLISHED);
    assert_string_equal(h[2].evaluated_on, "2025-04-01");
    assert_int_equal(ppc_store_history(s, "city-a", "b1", h, 2, &n), RK_OK);
    assert_int_equal(n, 2); /* capped */
    assert_int_equal(ppc_store_history(s, "nobody", "b1", h, 8, &n), RK_OK);
    assert_int_equal(n, 0);
}

static void changes_since_a_serial_in_serial_order(void **state)
{
    ppc_store *s = *state;
    set(s, "a1", "b1", RK_PIA_PUBLISHED, "2025-04-01", NULL); /* 1 */
    set(s, "a2", "b1", RK_PIA_PUBLISHED, "2025-04-01", NULL); /* 2 */
    set(s, "a3", "b2", RK_PIA_PUBLISHED, "2025-04-01", NULL); /* 3 */
    set(s, "a1", "b1", RK_PIA_LAPSED, "2025-04-01", NULL);    /* 4: a1 moves past the others */
    pia_entry out[8];
    size_t n = 0;
    int64_t latest = 0;
    assert_int_equal(ppc_store_since(s, 0, out, 8, &n, &latest), RK_OK);
    assert_int_equal(latest, 4);
    assert_int_equal(n, 3); /* one per entry, as it stands */
    assert_string_equal(out[0].agency, "a2");
    assert_string_equal(out[1].agency, "a3");
    assert_string_equal(out[1].business, "b2");
    assert_string_equal(out[2].agency, "a1");
    assert_int_equal(out[2].state, RK_PIA_LAPSED);
    assert_int_equal(out[2].serial, 4);
    assert_int_equal(ppc_store_since(s, 0, out, 2, &n, &latest), RK_OK);
    assert_int_equal(n, 2); /* capped: the next page starts after out[1] */
    assert_int_equal(ppc_store_since(s, out[1].serial, out, 2, &n, &latest), RK_OK);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].agency, "a1");
    assert_int_equal(ppc_store_since(s, 4, out, 8, &n, &latest), RK_OK);
    assert_int_equal(n, 0);
    assert_int_equal(latest, 4);
    assert_int_equal(ppc_store_since(s, 99, out, 8, &n, &latest), RK_OK);
    assert_int_equal(n, 0);
}

static void seed_fills_an_empty_register_only(void **state)
{
    ppc_store *s = *state;
    pia_entry rows[3] = {entry("a1", "b1", RK_PIA_PUBLISHED, "2025-04-01"), entry("a1", "b2", RK_PIA_PUBLISHED, "2025-04-01"),
                         entry("a2", "b1", RK_PIA_LAPSED, "2024-04-01")};
    assert_int_equal(ppc_store_seed(s, rows, 3, 5000), RK_OK);
    assert_int_equal(rows[2].serial, 3);
    assert_int_equal(ppc_store_count(s), 3);
    pia_entry again[1] = {entry("a9", "b9", RK_PIA_BREACH, "2025-04-01")};
    assert_int_equal(ppc_store_seed(s, again, 1, 6000), RK_ERR_CONFLICT);
    assert_int_equal(ppc_store_count(s), 3);
    pia_entry out[8];
    size_t n = 0;
    int64_t latest = 0;
    assert_int_equal(ppc_store_since(s, 0, out, 8, &n, &latest), RK_OK);
    assert_int_equal(n, 3);
    assert_int_equal(latest, 3);
    assert_int_equal(out[0].changed_ms, 5000);
    /* a change after the seed goes on from its serials */
    assert_int_equal(set(s, "a2", "b1", RK_PIA_PUBLISHED, "2025-04-01", NULL), 4);
}

static void kept_across_a_reopen(void **state)
{
    ppc_store *s = *state;
    set(s, "a1", "b1", RK_PIA_BREACH, "2025-04-01", NULL);
    ppc_store_close(s);
    assert_int_equal(ppc_store_open(target, 0, &s), RK_OK); /* the migration again: nothing to do */
    *state = s;
    pia_entry out[2];
    size_t n = 0;
    int64_t latest = 0;
    assert_int_equal(ppc_store_since(s, 0, out, 2, &n, &latest), RK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].state, RK_PIA_BREACH);
    assert_int_equal(set(s, "a1", "b1", RK_PIA_PUBLISHED, "2025-04-01", NULL), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(states_are_named),
        cmocka_unit_test_setup_teardown(a_change_gets_the_next_serial_and_the_same_again_none, setup, teardown),
        cmocka_unit_test_setup_teardown(changes_since_a_serial_in_serial_order, setup, teardown),
        cmocka_unit_test_setup_teardown(seed_fills_an_empty_register_only, setup, teardown),
        cmocka_unit_test_setup_teardown(kept_across_a_reopen, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, test_store_group_end);
}
