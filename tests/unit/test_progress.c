/* test_progress.c — the progress bar (src/tools/progress.c): the pure line
 * formatter in both forms, and a bar driven by several threads onto a
 * file (the plain, non-terminal form). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/progress.h"

#define FMT(tty, width, done, total, secs) \
    rk_progress_format(buf, sizeof buf, "enrol", (done), (total), (secs), (tty), (width))

static void test_tty_start(void **state)
{
    char buf[256];
    FMT(1, 10, 0, 100, 0.0);
    assert_string_equal(buf, "enrol [..........] 0/100    0%  0.0/s  ETA --:--");
}

static void test_tty_half(void **state)
{
    char buf[256];
    FMT(1, 10, 50, 100, 5.0); /* 10/s, 50 to go: 5 s */
    assert_string_equal(buf, "enrol [#####.....] 50/100   50%  10.0/s  ETA 00:05");
}

static void test_tty_done(void **state)
{
    char buf[256];
    FMT(1, 10, 100, 100, 8.0);
    assert_string_equal(buf, "enrol [##########] 100/100  100%  12.5/s  ETA 00:00");
}

static void test_tty_total_zero(void **state)
{
    char buf[256];
    FMT(1, 10, 0, 0, 0.0);
    assert_string_equal(buf, "enrol [##########] 0/0  100%  0.0/s  ETA 00:00");
}

static void test_tty_long_eta(void **state)
{
    char buf[256];
    FMT(1, 4, 1, 10000, 1.0); /* 9999 s to go */
    assert_string_equal(buf, "enrol [....] 1/10000    0%  1.0/s  ETA 166:39");
}

static void test_plain_forms(void **state)
{
    char buf[256];
    FMT(0, 10, 0, 100, 0.0);
    assert_string_equal(buf, "enrol: 0/100 (0%) 0.0/s ETA ?");
    FMT(0, 10, 50, 100, 5.0);
    assert_string_equal(buf, "enrol: 50/100 (50%) 10.0/s ETA 5s");
    FMT(0, 10, 100, 100, 8.0);
    assert_string_equal(buf, "enrol: 100/100 (100%) 12.5/s ETA 0s");
    FMT(0, 10, 0, 0, 0.0);
    assert_string_equal(buf, "enrol: 0/0 (100%) 0.0/s ETA 0s");
}

static void assert_bar(const char *line, int filled, int empty)
{
    const char *open = strchr(line, '['), *close = strchr(line, ']');
    assert_non_null(open);
    assert_non_null(close);
    assert_int_equal(close - open - 1, filled + empty);
    for (int i = 0; i < filled + empty; i++)
        assert_int_equal(open[1 + i], i < filled ? '#' : '.');
}

static void test_bar_width(void **state)
{
    char buf[512];
    FMT(1, 20, 25, 100, 1.0);
    assert_bar(buf, 5, 15);
    FMT(1, RK_PROGRESS_WIDTH, 1, 3, 1.0);
    assert_bar(buf, RK_PROGRESS_WIDTH / 3, RK_PROGRESS_WIDTH - RK_PROGRESS_WIDTH / 3);
    FMT(1, 0, 0, 10, 1.0); /* clamped to one cell */
    assert_bar(buf, 0, 1);
    FMT(1, 1000, 10, 10, 1.0); /* clamped to the maximum */
    assert_bar(buf, RK_PROGRESS_WIDTH_MAX, 0);
    FMT(1, 10, 150, 100, 1.0); /* more than total: a full bar, 100% */
    assert_bar(buf, 10, 0);
    assert_non_null(strstr(buf, " 100%"));
}

static void test_small_buffer(void **state)
{
    char buf[12];
    memset(buf, 'x', sizeof buf);
    rk_progress_format(buf, 8, "enrol", 50, 100, 5.0, 1, 10);
    assert_string_equal(buf, "enrol [");
    assert_int_equal(buf[8], 'x');
    rk_progress_format(buf, 0, "enrol", 50, 100, 5.0, 1, 10); /* writes nothing */
    assert_string_equal(buf, "enrol [");
}

static void *add_many(void *arg)
{
    for (int i = 0; i < 1000; i++)
        rk_progress_add(arg, 1);
    return NULL;
}

/* Eight threads add 8000 units to a bar printing to a file: not a terminal,
 * so only the plain form, and (this being fast) only the final line. */
static void test_threads_to_file(void **state)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    rk_progress *p = rk_progress_new("link", 8000, f);
    assert_non_null(p);
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_create(&t[i], NULL, add_many, p), 0);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    rk_progress_message(p, "line %d: %s", 7, "a note");
    rk_progress_finish(p);
    char text[512] = "";
    rewind(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    assert_non_null(strstr(text, "line 7: a note\n"));
    const char *last = strstr(text, "link: 8000/8000 (100%) ");
    assert_non_null(last);
    assert_non_null(strstr(last, " ETA 0s\n"));
    assert_null(strchr(text, '\r'));
    rk_progress_add(NULL, 1); /* NULL is a no-op */
    rk_progress_finish(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tty_start),     cmocka_unit_test(test_tty_half),
        cmocka_unit_test(test_tty_done),      cmocka_unit_test(test_tty_total_zero),
        cmocka_unit_test(test_tty_long_eta),  cmocka_unit_test(test_plain_forms),
        cmocka_unit_test(test_bar_width),     cmocka_unit_test(test_small_buffer),
        cmocka_unit_test(test_threads_to_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
