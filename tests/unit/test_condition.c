/* Unit tests: a query's condition (lib/condition.h) — what is read, what is
 * refused, its text in a record and the date whose version answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "lib/condition.h"

static int read_text(const char *text, rk_condition *c)
{
    json_t *j = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    int rc = rk_condition_read(j, c);
    json_decref(j);
    return rc;
}

static void reads_each_kind_and_its_date(void **state)
{
    (void)state;
    rk_condition c;
    char text[RK_CONDITION_TEXT_MAX], date[RK_DATE_LEN + 1];
    assert_int_equal(read_text(NULL, &c), 0);
    assert_int_equal(c.kind, RK_COND_NONE);
    rk_condition_text(&c, text);
    rk_condition_date(&c, date);
    assert_string_equal(text, "");
    assert_string_equal(date, "");
    assert_null(rk_condition_json(&c));

    assert_int_equal(read_text("{\"fiscal_year\": 2025}", &c), 0);
    assert_int_equal(c.kind, RK_COND_FISCAL_YEAR);
    rk_condition_text(&c, text);
    rk_condition_date(&c, date);
    assert_string_equal(text, "fiscal_year=2025");
    assert_string_equal(date, "2026-03-31"); /* 年度 2025 ends on 31 March 2026 */
    json_t *j = rk_condition_json(&c);
    assert_int_equal(json_integer_value(json_object_get(j, "fiscal_year")), 2025);
    json_decref(j);

    assert_int_equal(read_text("{\"as_of\": \"2025-01-01\"}", &c), 0);
    assert_int_equal(c.kind, RK_COND_AS_OF);
    rk_condition_text(&c, text);
    rk_condition_date(&c, date);
    assert_string_equal(text, "as_of=2025-01-01");
    assert_string_equal(date, "2025-01-01");
    assert_int_equal(read_text("{\"fiscal_year\": 9998}", &c), 0);
    rk_condition_date(&c, date);
    assert_string_equal(date, "9999-03-31");
}

static void refuses_what_is_not_one_condition(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "[]", "\"2025\"", "2025", "{}", "{\"fiscal_year\": 2025, \"as_of\": \"2025-01-01\"}",
        "{\"fiscal_year\": \"2025\"}", "{\"fiscal_year\": 1899}", "{\"fiscal_year\": 9999}", "{\"fiscal_year\": 2025.5}",
        "{\"as_of\": \"2025-13-01\"}", "{\"as_of\": \"2025-1-1\"}", "{\"as_of\": 20250101}", "{\"month\": 1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rk_condition c;
        assert_int_equal(read_text(bad[i], &c), -1);
    }
}

static void kinds_by_word(void **state)
{
    (void)state;
    assert_int_equal(rk_condition_kind_of("fiscal_year"), RK_COND_FISCAL_YEAR);
    assert_int_equal(rk_condition_kind_of("as_of"), RK_COND_AS_OF);
    assert_int_equal(rk_condition_kind_of("As_of"), RK_COND_NONE);
    assert_int_equal(rk_condition_kind_of(""), RK_COND_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_each_kind_and_its_date),
        cmocka_unit_test(refuses_what_is_not_one_condition),
        cmocka_unit_test(kinds_by_word),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
