#include "lib/mynumber.h"

#include "lib/util.h"

/* 省令 第5条: number the first 11 digits from the right, n = 1..11; weight
 * Qn = n+1 for n <= 6, n-5 for n >= 7; r = sum(Pn*Qn) mod 11; check digit is
 * 0 when r <= 1, else 11 - r. */
int rk_mynumber_check_digit(const char *first11)
{
    int sum = 0;
    for (int n = 1; n <= 11; n++) {
        int p = first11[11 - n] - '0';
        int q = n <= 6 ? n + 1 : n - 5;
        sum += p * q;
    }
    int r = sum % 11;
    return r <= 1 ? 0 : 11 - r;
}

rk_rc rk_mynumber_validate(const char *s)
{
    if (!rk_is_digits(s, 12))
        return RK_ERR_INVALID;
    return rk_mynumber_check_digit(s) == s[11] - '0' ? RK_OK : RK_ERR_INVALID;
}

int rk_mynumber_check_code(const char *s)
{
    if (rk_mynumber_validate(s) != RK_OK)
        return -1;
    int sum = 0;
    for (int i = 0; i < 11; i++)
        sum += s[i] - '0';
    return sum % 10;
}

rk_rc rk_resident_code_validate(const char *s)
{
    return rk_is_digits(s, 11) ? RK_OK : RK_ERR_INVALID;
}
