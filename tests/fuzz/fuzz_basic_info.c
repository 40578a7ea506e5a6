/* fuzz_basic_info.c — the four basic items (src/lib/basic_info.c): any
 * bytes as a name and an address. A value the check takes is valid UTF-8
 * within its cap, normalises to no more code points than it has bytes,
 * folds back to UTF-8, and matches itself; a birth date the check takes is
 * a real date. The first byte splits the rest into name and address. */
#include "fuzz.h"
#include "lib/basic_info.h"
#include "lib/ids.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t cut = size > 1 ? data[0] % size : 0;
    char *all = fz_str(data + 1, size - 1); /* NUL-terminated copy */
    char *name = all, *address = all + (cut < strlen(all) ? cut : strlen(all));
    char name_copy[RK_NAME_FIELD_MAX + 2];
    snprintf(name_copy, sizeof name_copy, "%.*s", (int)(address - name), name);
    rk_basic_info b = {.name = name_copy, .birth_date = "2000-02-29", .sex = NULL, .address = address};
    const char *bad = rk_basic_check(&b);
    uint32_t cps[RK_ADDRESS_FIELD_MAX];
    char folded[4 * RK_ADDRESS_FIELD_MAX + 1];
    for (int address_mode = 0; address_mode < 2; address_mode++) {
        const char *s = address_mode ? address : name_copy;
        int n = rk_basic_normalise(s, address_mode, cps, RK_ADDRESS_FIELD_MAX);
        FZ_CHECK(n <= (int)strlen(s));
        if (n >= 0)
            FZ_CHECK(rk_basic_fold(s, address_mode, folded, sizeof folded) == RK_OK);
    }
    if (!bad) {
        FZ_CHECK(strlen(b.name) <= RK_NAME_FIELD_MAX && strlen(b.address) <= RK_ADDRESS_FIELD_MAX);
        FZ_CHECK(rk_basic_normalise(b.name, 0, cps, RK_ADDRESS_FIELD_MAX) >= 0);
        FZ_CHECK(rk_basic_compare(&b, &b) == 0);
    }
    /* the name as a date: taken only in the form YYYY-MM-DD */
    if (rk_basic_date_valid(name_copy))
        FZ_CHECK(strlen(name_copy) == RK_DATE_LEN && name_copy[4] == '-' && name_copy[7] == '-');
    free(all);
    return 0;
}
