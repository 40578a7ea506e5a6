/* fuzz_residents.c — J-LIS's residents file (residents.csv), read row by
 * row as jlis_store_import reads it (src/jlis/jlis_store.c): every row it
 * accepts holds a valid My Number, an 11-digit resident code, at most
 * JLIS_MAX_PREVIOUS previous codes of 11 digits and four basic items that
 * pass their check, and normalising its name and address stays in bounds;
 * nothing else gets in. */
#include "fuzz.h"
#include "jlis/jlis_store.h"
#include "lib/basic_info.h"
#include "lib/mynumber.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    FILE *f = fmemopen((void *)data, size, "r");
    if (!f)
        abort();
    char line[JLIS_LINE_MAX];
    size_t lineno = 1;
    jlis_columns cols;
    const char *bad = NULL;
    if (fgets(line, sizeof line, f) && jlis_residents_header(line, &cols, &bad) == 0) {
        jlis_row row;
        int got, rows = 0;
        while ((got = jlis_residents_row(f, &cols, line, &lineno, &row, &bad)) == 1) {
            FZ_CHECK(rk_mynumber_validate(row.my_number) == RK_OK);
            FZ_CHECK(rk_resident_code_validate(row.resident_code) == RK_OK);
            int n = 0;
            for (const char *p = row.previous; *p; n++) {
                size_t w = strcspn(p, ";");
                FZ_CHECK(w == 11 && strspn(p, "0123456789") == 11);
                p += w + (p[w] == ';');
            }
            FZ_CHECK(n <= JLIS_MAX_PREVIOUS);
            FZ_CHECK(rk_basic_check(&row.items) == NULL);
            uint32_t cps[RK_ADDRESS_FIELD_MAX];
            FZ_CHECK(rk_basic_normalise(row.items.name, 0, cps, RK_ADDRESS_FIELD_MAX) >= 0);
            FZ_CHECK(rk_basic_normalise(row.items.address, 1, cps, RK_ADDRESS_FIELD_MAX) >= 0);
            FZ_CHECK(rk_basic_compare(&row.items, &row.items) == 0);
            rows++;
        }
        FZ_CHECK(got == 0 || (got == -1 && bad && *bad));
        FZ_CHECK(lineno >= (size_t)rows + 1);
    } else {
        FZ_CHECK(bad == NULL || *bad);
    }
    fclose(f);
    return 0;
}
