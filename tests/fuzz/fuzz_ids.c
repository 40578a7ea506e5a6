/* fuzz_ids.c — the identifier grammar (src/lib/ids.c) against a reference
 * written from its header: every id a node takes from outside (person,
 * query_id, operator, business, item, acquisition number, dates). */
#include "fuzz.h"
#include "lib/ids.h"
#include "lib/mynumber.h"

static int all_of(const char *s, size_t len, const char *chars, size_t min, size_t max)
{
    if (len < min || len > max)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!memchr(chars, s[i], strlen(chars)))
            return 0;
    return 1;
}

static int digit(char c)
{
    return c >= '0' && c <= '9';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fz_str(data, size);
    size_t len = strlen(s);
    static const size_t maxes[] = {1, 16, RK_AGENCY_FIELD_MAX, RK_ID_FIELD_MAX, RK_EXCHANGE_ID_MAX};
    for (size_t i = 0; i < sizeof maxes / sizeof maxes[0]; i++)
        FZ_CHECK(!!rk_id_valid(s, maxes[i]) == all_of(s, len, RK_ID_CHARS, 1, maxes[i]));
    FZ_CHECK(!!rk_catalogue_id_valid(s) == all_of(s, len, RK_CATALOGUE_CHARS, 1, RK_CATALOGUE_ID_MAX));
    FZ_CHECK(!!rk_acquisition_no_valid(s) ==
             all_of(s, len, "0123456789abcdef", RK_ACQUISITION_NO_MIN, RK_ACQUISITION_NO_MAX));
    /* a person id is an id, and never a My Number */
    int person = rk_person_id_valid(s);
    FZ_CHECK(person == (all_of(s, len, RK_ID_CHARS, 1, RK_ID_FIELD_MAX) && rk_mynumber_validate(s) != RK_OK));
    if (person)
        FZ_CHECK(rk_mynumber_validate(s) != RK_OK);
    /* YYYY-MM-DD: ten characters, digits where the digits go */
    if (rk_date_valid(s)) {
        FZ_CHECK(len == RK_DATE_LEN && s[4] == '-' && s[7] == '-');
        for (int i = 0; i < RK_DATE_LEN; i++)
            FZ_CHECK(i == 4 || i == 7 || digit(s[i]));
        int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
        FZ_CHECK(y >= 1900 && m >= 1 && m <= 12 && d >= 1 && d <= 31);
    }
    free(s);
    return 0;
}
