/* Unit tests: event windows for early detection (bursts, rate jumps). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>

#include "node/watch.h"

static void burst_fires_once_per_window(void **state)
{
    rk_watch *w = rk_watch_new(1000, 3, 0);
    assert_int_equal(rk_watch_hit(w, "a", 0), 0);
    assert_int_equal(rk_watch_hit(w, "a", 10), 0);
    assert_int_equal(rk_watch_hit(w, "b", 20), 0); /* keys are apart */
    assert_int_equal(rk_watch_hit(w, "a", 30), 1);
    assert_int_equal(rk_watch_hit(w, "a", 40), 0); /* once per window */
    assert_int_equal(rk_watch_hit(w, "a", 1100), 0); /* new window starts over */
    assert_int_equal(rk_watch_hit(w, "a", 1200), 0);
    assert_int_equal(rk_watch_hit(w, "a", 1300), 1);
    rk_watch_free(w);
}

static void rate_jump_against_baseline(void **state)
{
    rk_watch *w = rk_watch_new(1000, 12, 4);
    int fired = 0;
    for (int s = 0; s < 5; s++)          /* two a second: the baseline */
        for (int i = 0; i < 2; i++)
            fired |= rk_watch_hit(w, "k", s * 1000 + i * 100);
    assert_int_equal(fired, 0);
    for (int i = 0; i < 11; i++)         /* eleven in the next second: below the minimum */
        fired |= rk_watch_hit(w, "k", 5000 + i * 10);
    assert_int_equal(fired, 0);
    assert_int_equal(rk_watch_hit(w, "k", 5500), 1); /* the twelfth */
    rk_watch_free(w);
}

static void no_baseline_no_rate_alarm(void **state)
{
    rk_watch *w = rk_watch_new(1000, 5, 4);
    int fired = 0;
    for (int i = 0; i < 100; i++)
        fired |= rk_watch_hit(w, "new", i);
    assert_int_equal(fired, 0); /* a newcomer's first window is its baseline */
    rk_watch_free(w);
}

static void bounded_table_forgets_the_oldest(void **state)
{
    rk_watch *w = rk_watch_new(1000, 2, 0);
    char key[16];
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(rk_watch_hit(w, key, i), 0);
    }
    assert_int_equal(rk_watch_hit(w, "k1999", 2001), 1);
    rk_watch_free(w);
}

static void rate_limit_over_threshold(void **state)
{
    rk_watch *w = rk_watch_new(1000, 3, 0);
    assert_int_equal(rk_watch_over(w, "gw", 0), 0);
    assert_int_equal(rk_watch_over(w, "gw", 10), 0);
    assert_int_equal(rk_watch_over(w, "gw", 20), 0);
    assert_int_equal(rk_watch_over(w, "gw", 30), 1);  /* the fourth in the second */
    assert_int_equal(rk_watch_over(w, "gw", 40), 1);  /* and every one after it */
    assert_int_equal(rk_watch_over(w, "other", 50), 0);
    assert_int_equal(rk_watch_over(w, "gw", 1001), 0); /* a new second */
    rk_watch_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(burst_fires_once_per_window),
        cmocka_unit_test(rate_jump_against_baseline),
        cmocka_unit_test(no_baseline_no_rate_alarm),
        cmocka_unit_test(bounded_table_forgets_the_oldest),
        cmocka_unit_test(rate_limit_over_threshold),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
