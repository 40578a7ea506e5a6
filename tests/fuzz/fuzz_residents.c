/* fuzz_residents.c — J-LIS's residents file (residents.csv), read row by
 * row as jlis_store_import reads it (src/jlis/jlis_store.c): every row it
 * accepts holds a valid My Number, an 11-digit resident code and at most
 * JLIS_MAX_PREVIOUS previous codes of 11 digits; nothing else gets in. */
#include "fuzz.h"
#include "jlis/jlis_store.h"
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
    if (fgets(line, sizeof line, f)) { /* the header, as the import reads it */
        char *number, *code, *previous;
        const char *bad = NULL;
        int got, rows = 0;
        while ((got = jlis_residents_row(f, line, &lineno, &number, &code, &previous, &bad)) == 1) {
            FZ_CHECK(rk_mynumber_validate(number) == RK_OK);
            FZ_CHECK(rk_resident_code_validate(code) == RK_OK);
            int n = 0;
            for (const char *p = previous; *p; n++) {
                size_t w = strcspn(p, ";");
                FZ_CHECK(w == 11 && strspn(p, "0123456789") == 11);
                p += w + (p[w] == ';');
            }
            FZ_CHECK(n <= JLIS_MAX_PREVIOUS);
            FZ_CHECK(strlen(number) + strlen(code) < JLIS_LINE_MAX);
            rows++;
        }
        FZ_CHECK(got == 0 || (got == -1 && bad && *bad));
        FZ_CHECK(lineno >= (size_t)rows + 1);
    }
    fclose(f);
    return 0;
}
