/* lib/ids.c — identifier grammar (ids.h). */
#include "lib/ids.h"

#include <stdlib.h>
#include <string.h>

#include "lib/mynumber.h"

int rk_id_valid(const char *s, size_t max)
{
    size_t n = strlen(s);
    return n >= 1 && n <= max && strspn(s, RK_ID_CHARS) == n;
}

int rk_catalogue_id_valid(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= RK_CATALOGUE_ID_MAX && strspn(s, RK_CATALOGUE_CHARS) == n;
}

int rk_person_id_valid(const char *person)
{
    return rk_id_valid(person, RK_ID_FIELD_MAX) && rk_mynumber_validate(person) != RK_OK;
}

int rk_acquisition_no_valid(const char *s)
{
    size_t n = strlen(s);
    return n >= RK_ACQUISITION_NO_MIN && n <= RK_ACQUISITION_NO_MAX && strspn(s, "0123456789abcdef") == n;
}

int rk_date_valid(const char *s)
{
    /* digits where the digits go: sscanf alone would take " 6" or "+6" */
    if (strlen(s) != RK_DATE_LEN || s[4] != '-' || s[7] != '-' || strspn(s, "0123456789") != 4 ||
        strspn(s + 5, "0123456789") != 2 || strspn(s + 8, "0123456789") != 2)
        return 0;
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return y >= 1900 && m >= 1 && m <= 12 && d >= 1 && d <= days[m - 1] + (m == 2 && leap);
}
