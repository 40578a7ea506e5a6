/* Unit tests: codes (情報提供用個人識別符号) — derivation, conversion,
 * unlinkability across agencies, forged codes, key versions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <string.h>

#include "core/codes.h"

static const uint8_t master[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                   17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static int setup(void **state)
{
    rk_codec *c = NULL;
    if (rk_codec_new(master, sizeof master, 1, &c) != RK_OK)
        return -1;
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    rk_codec_free(*state);
    return 0;
}

static void deterministic_per_person_and_agency(void **state)
{
    rk_codec *c = *state;
    uint32_t a = rk_agency_number("city-yokohama"), b = rk_agency_number("nenkin-kikou");
    char x1[RK_CODE_TEXT_MAX], x2[RK_CODE_TEXT_MAX], y[RK_CODE_TEXT_MAX], z[RK_CODE_TEXT_MAX];
    assert_int_equal(rk_code_derive(c, 42, a, x1), RK_OK);
    assert_int_equal(rk_code_derive(c, 42, a, x2), RK_OK);
    assert_string_equal(x1, x2);
    assert_int_equal(rk_code_derive(c, 42, b, y), RK_OK);
    assert_string_not_equal(x1, y);
    assert_int_equal(rk_code_derive(c, 43, a, z), RK_OK);
    assert_string_not_equal(x1, z);
    assert_int_equal(strlen(x1), 35);
    assert_memory_equal(x1, "v1-", 3);
}

static void open_and_convert(void **state)
{
    rk_codec *c = *state;
    uint32_t a = rk_agency_number("city-yokohama"), b = rk_agency_number("nenkin-kikou");
    char code_a[RK_CODE_TEXT_MAX], code_b[RK_CODE_TEXT_MAX], conv[RK_CODE_TEXT_MAX];
    rk_code_derive(c, 123456, a, code_a);
    rk_code_derive(c, 123456, b, code_b);
    uint64_t serial;
    uint32_t owner;
    assert_int_equal(rk_code_open(c, code_a, &serial, &owner), RK_OK);
    assert_int_equal(serial, 123456);
    assert_int_equal(owner, a);
    assert_int_equal(rk_code_convert(c, code_a, a, b, conv), RK_OK);
    assert_string_equal(conv, code_b);
    /* A requester presenting another agency's code: code_not_yours. */
    assert_int_equal(rk_code_convert(c, code_b, a, b, conv), RK_ERR_DENIED);
}

static void forged_codes_rejected(void **state)
{
    rk_codec *c = *state;
    char code[RK_CODE_TEXT_MAX];
    uint64_t serial;
    uint32_t owner;
    rk_code_derive(c, 7, rk_agency_number("city-yokohama"), code);
    code[10] = code[10] == '0' ? '1' : '0'; /* one flipped nibble */
    assert_int_equal(rk_code_open(c, code, &serial, &owner), RK_ERR_INVALID);
    assert_int_equal(rk_code_open(c, "v1-00000000000000000000000000000000", &serial, &owner), RK_ERR_INVALID);
    assert_int_equal(rk_code_open(c, "v2-00000000000000000000000000000000", &serial, &owner), RK_ERR_INVALID);
    assert_int_equal(rk_code_open(c, "v1-xyz", &serial, &owner), RK_ERR_INVALID);
    assert_int_equal(rk_code_open(c, "", &serial, &owner), RK_ERR_INVALID);
    assert_int_equal(rk_code_open(c, NULL, &serial, &owner), RK_ERR_INVALID);
    /* A code made under another master key is not ours. */
    uint8_t other[32] = {9};
    rk_codec *d = NULL;
    assert_int_equal(rk_codec_new(other, sizeof other, 1, &d), RK_OK);
    rk_code_derive(d, 7, rk_agency_number("city-yokohama"), code);
    assert_int_equal(rk_code_open(c, code, &serial, &owner), RK_ERR_INVALID);
    rk_codec_free(d);
}

static void key_versions(void **state)
{
    rk_codec *v2 = NULL;
    assert_int_equal(rk_codec_new(master, sizeof master, 2, &v2), RK_OK);
    char old[RK_CODE_TEXT_MAX], fresh[RK_CODE_TEXT_MAX];
    rk_code_derive(*state, 99, 5, old);  /* made under version 1 */
    rk_code_derive(v2, 99, 5, fresh);    /* new codes use version 2 */
    assert_memory_equal(fresh, "v2-", 3);
    uint64_t serial;
    uint32_t owner;
    assert_int_equal(rk_code_open(v2, old, &serial, &owner), RK_OK); /* old codes still open */
    assert_int_equal(serial, 99);
    rk_codec_free(v2);
}

static void bad_arguments(void **state)
{
    rk_codec *c = NULL;
    char code[RK_CODE_TEXT_MAX];
    assert_int_equal(rk_codec_new(master, 16, 1, &c), RK_ERR_INVALID);
    assert_int_equal(rk_codec_new(master, 32, 0, &c), RK_ERR_INVALID);
    assert_int_equal(rk_code_derive(*state, 0, 1, code), RK_ERR_INVALID);
    assert_int_equal(rk_code_derive(*state, RK_CODE_MAX_SERIAL + 1, 1, code), RK_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(deterministic_per_person_and_agency, setup, teardown),
        cmocka_unit_test_setup_teardown(open_and_convert, setup, teardown),
        cmocka_unit_test_setup_teardown(forged_codes_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(key_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
