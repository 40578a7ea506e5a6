/* fuzz_mynumber.c — My Number checks (src/lib/mynumber.c) against a
 * reference written from 省令 第5条, and resident codes (11 digits): what
 * J-LIS and an agency check in every enrolment and residents file. */
#include "fuzz.h"
#include "lib/mynumber.h"

/* 省令 第5条, from the left: digit i (0..10) has n = 11 - i. */
static int reference_check_digit(const char *s)
{
    int sum = 0;
    for (int i = 0; i < 11; i++) {
        int n = 11 - i;
        sum += (s[i] - '0') * (n <= 6 ? n + 1 : n - 5);
    }
    return sum % 11 <= 1 ? 0 : 11 - sum % 11;
}

static int digits(const char *s, size_t n)
{
    if (strlen(s) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fz_str(data, size);
    int valid = digits(s, 12) && reference_check_digit(s) == s[11] - '0';
    FZ_CHECK((rk_mynumber_validate(s) == RK_OK) == valid);
    int code = rk_mynumber_check_code(s);
    if (valid) {
        int sum = 0;
        for (int i = 0; i < 11; i++)
            sum += s[i] - '0';
        FZ_CHECK(code == sum % 10);
    } else {
        FZ_CHECK(code == -1);
    }
    if (strlen(s) >= 11 && digits((char[12]){s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], s[9], s[10], 0}, 11)) {
        int d = rk_mynumber_check_digit(s);
        FZ_CHECK(d >= 0 && d <= 9 && d == reference_check_digit(s));
    }
    FZ_CHECK((rk_resident_code_validate(s) == RK_OK) == digits(s, 11));
    free(s);
    return 0;
}
