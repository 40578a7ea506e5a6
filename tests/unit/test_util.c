/* Unit tests: small helpers — hex, paths, capped file reads, atomic writes
 * with a mode, the private-file check, the error texts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/ids.h"
#include "lib/util.h"

static void hex_round_trip_and_refusals(void **state)
{
    const uint8_t in[4] = {0x00, 0x7f, 0xab, 0xff};
    char hex[9];
    uint8_t back[4];
    rk_hex(in, 4, hex);
    assert_string_equal(hex, "007fabff");
    assert_int_equal(rk_unhex(hex, back, 4), RK_OK);
    assert_memory_equal(in, back, 4);
    assert_int_equal(rk_unhex("007FABFF", back, 4), RK_OK);
    assert_int_equal(rk_unhex("007fabf", back, 4), RK_ERR_INVALID);   /* short */
    assert_int_equal(rk_unhex("007fabff0", back, 4), RK_ERR_INVALID); /* long */
    assert_int_equal(rk_unhex("007fabfg", back, 4), RK_ERR_INVALID);  /* not hex */
}

static void paths(void **state)
{
    char out[64];
    rk_path_join(out, sizeof out, "/a/b", "c.pem");
    assert_string_equal(out, "/a/b/c.pem");
    rk_path_join(out, sizeof out, "/a/b", "/abs.pem");
    assert_string_equal(out, "/abs.pem");
    rk_dirname("/a/b/c.conf", out, sizeof out);
    assert_string_equal(out, "/a/b");
    rk_dirname("c.conf", out, sizeof out);
    assert_string_equal(out, ".");
    assert_true(rk_is_digits("0123", 4));
    assert_false(rk_is_digits("012a", 4));
    assert_false(rk_is_digits("012", 4));
}

static void files(void **state)
{
    char dir[] = "/tmp/rk-test-util-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/f", dir);
    assert_int_equal(rk_write_file(path, "secret", 6, 0600), RK_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(rk_file_private(path), RK_OK);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(rk_read_file(path, 100, &text, &len), RK_OK);
    assert_int_equal(len, 6);
    assert_string_equal(text, "secret");
    free(text);
    char big[9000];
    memset(big, 'x', sizeof big);
    assert_int_equal(rk_write_file(path, big, sizeof big, 0644), RK_OK);
    assert_int_equal(rk_file_private(path), RK_ERR_DENIED);
    assert_int_equal(rk_read_file(path, 4096, &text, &len), RK_ERR_TOO_LARGE);
    unlink(path);
    assert_int_equal(rk_read_file(path, 100, &text, &len), RK_ERR_NOT_FOUND);
    assert_int_equal(rk_file_private(path), RK_ERR_NOT_FOUND);
    rmdir(dir);
}

/* Found by fuzzing (tests/fuzz/corpus/ids/crash-date-with-space): a date's
 * digits must be digits, not a space or a sign that sscanf would skip. */
static void dates_and_ids(void **state)
{
    assert_true(rk_date_valid("2025-06-01"));
    assert_true(rk_date_valid("1900-12-31"));
    assert_false(rk_date_valid("2025- 6-01"));
    assert_false(rk_date_valid("2025-+6-01"));
    assert_false(rk_date_valid("2025-06- 1"));
    assert_false(rk_date_valid(" 025-06-01"));
    assert_false(rk_date_valid("+202-06-01"));
    assert_false(rk_date_valid("2025-13-01"));
    assert_false(rk_date_valid("2025-06-00"));
    assert_false(rk_date_valid("1899-06-01"));
    assert_false(rk_date_valid("2025-06-011"));
    /* a day the month has: 30 February is no date; 29 February only in a leap year */
    assert_false(rk_date_valid("2025-02-30"));
    assert_false(rk_date_valid("2025-02-29"));
    assert_true(rk_date_valid("2024-02-29"));
    assert_false(rk_date_valid("1900-02-29"));
    assert_true(rk_date_valid("2000-02-29"));
    assert_false(rk_date_valid("2025-04-31"));
    assert_true(rk_date_valid("2025-12-31"));
    assert_true(rk_id_valid("op-001.A_b", RK_ID_FIELD_MAX));
    assert_false(rk_id_valid("op 001", RK_ID_FIELD_MAX));
    assert_false(rk_person_id_valid("123456789018")); /* a valid My Number */
    assert_true(rk_person_id_valid("123456789010"));
}

static void every_error_has_a_text(void **state)
{
    for (int rc = RK_OK; rc < RK_ERR__COUNT; rc++)
        assert_true(strlen(rk_strerror((rk_rc)rc)) > 0);
    assert_string_equal(rk_strerror((rk_rc)999), "unknown error");
}

/* jansson frees through the wiping release, on malloc's own blocks (so that
 * json_dumps' text is still freed with free()). */
static void json_blocks_are_wiped_when_freed(void **state)
{
    (void)state;
    rk_json_wipe_on_free();
    json_malloc_t m = NULL;
    json_free_t f = NULL;
    json_get_alloc_funcs(&m, &f);
    assert_ptr_equal(m, malloc);
    assert_ptr_not_equal(f, free);
    json_t *j = json_pack("{s:s,s:i}", "my_number", "123456789018", "n", 1);
    char *text = json_dumps(j, JSON_COMPACT);
    assert_string_equal(text, "{\"my_number\":\"123456789018\",\"n\":1}");
    free(text);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hex_round_trip_and_refusals),
        cmocka_unit_test(json_blocks_are_wiped_when_freed),
        cmocka_unit_test(paths),
        cmocka_unit_test(files),
        cmocka_unit_test(every_error_has_a_text),
        cmocka_unit_test(dates_and_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
