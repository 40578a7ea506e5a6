/* Unit tests: My Number check digit (省令 第5条), check code (第7-2(1)),
 * resident code format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "lib/mynumber.h"

static void valid_and_invalid_numbers(void **state)
{
    assert_int_equal(rk_mynumber_validate("123456789018"), RK_OK);
    assert_int_equal(rk_mynumber_validate("123456789017"), RK_ERR_INVALID);
    assert_int_equal(rk_mynumber_validate("12345678901"), RK_ERR_INVALID);   /* 11 digits */
    assert_int_equal(rk_mynumber_validate("1234567890180"), RK_ERR_INVALID); /* 13 digits */
    assert_int_equal(rk_mynumber_validate("12345678901a"), RK_ERR_INVALID);
    assert_int_equal(rk_mynumber_validate(""), RK_ERR_INVALID);
    assert_int_equal(rk_mynumber_validate(NULL), RK_ERR_INVALID);
}

static void check_digit_rule(void **state)
{
    assert_int_equal(rk_mynumber_check_digit("12345678901"), 8);
    /* r <= 1 gives 0: all zeros sum to 0. */
    assert_int_equal(rk_mynumber_check_digit("00000000000"), 0);
    /* Every digit string of 11 gets exactly one valid 12th digit. */
    char n[13] = "98765432109X";
    int valid = 0;
    for (char d = '0'; d <= '9'; d++) {
        n[11] = d;
        valid += rk_mynumber_validate(n) == RK_OK;
    }
    assert_int_equal(valid, 1);
}

static void check_code(void **state)
{
    /* 1+2+…+9+0+1 = 46 → 6 */
    assert_int_equal(rk_mynumber_check_code("123456789018"), 6);
    assert_int_equal(rk_mynumber_check_code("123456789017"), -1);
    assert_int_equal(rk_mynumber_check_code("000000000000"), 0);
}

static void resident_codes(void **state)
{
    assert_int_equal(rk_resident_code_validate("12345678901"), RK_OK);
    assert_int_equal(rk_resident_code_validate("1234567890"), RK_ERR_INVALID);
    assert_int_equal(rk_resident_code_validate("1234567890x"), RK_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_and_invalid_numbers),
        cmocka_unit_test(check_digit_rule),
        cmocka_unit_test(check_code),
        cmocka_unit_test(resident_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
