/* fuzz_permissions.c — the permission table and its catalogues
 * (src/core/permissions.c: permissions.csv, kinds.csv, businesses.csv,
 * items.csv), as the core loads them at start and on SIGHUP. The input is
 * permissions.csv, then optionally "%%" lines and the three catalogues. A
 * table is refused with a reason, or every row it holds is allowed and
 * every id in it is a catalogue id. */
#include "core/permissions.h"
#include "fuzz.h"
#include "lib/ids.h"

static char dir[64], perm[128];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    snprintf(dir, sizeof dir, "/tmp/rk-fuzz-permissions-XXXXXX");
    if (!mkdtemp(dir))
        abort();
    snprintf(perm, sizeof perm, "%s/permissions.csv", dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const files[] = {"permissions.csv", "kinds.csv", "businesses.csv", "items.csv"};
    char *text = fz_str(data, size), *parts[4];
    int n = fz_parts(text, parts, 4);
    for (int i = 0; i < 4; i++) {
        char path[160];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        const char *body = i < n ? parts[i] : "";
        if (fz_write(path, body, strlen(body)) != 0)
            abort();
    }
    rk_permissions *p = NULL;
    char err[512] = "";
    rk_rc rc = rk_permissions_load(perm, n > 1 ? dir : NULL, &p, err, sizeof err);
    if (rc != RK_OK) {
        FZ_CHECK(p == NULL && err[0]);
    } else {
        size_t count = rk_permissions_count(p);
        for (size_t i = 0; i < count; i++) {
            const char *r = NULL, *b = NULL, *pk = NULL, *it = NULL;
            FZ_CHECK(rk_permissions_row(p, i, &r, &b, &pk, &it) == RK_OK);
            FZ_CHECK(rk_catalogue_id_valid(r) && rk_catalogue_id_valid(b) && rk_catalogue_id_valid(pk) &&
                     rk_catalogue_id_valid(it));
            FZ_CHECK(rk_permissions_allows(p, r, b, pk, it) == 1);
            FZ_CHECK(rk_permissions_known_business(p, b) && rk_permissions_known_item(p, it) &&
                     rk_permissions_known_kind(p, r) && rk_permissions_known_kind(p, pk));
            if (n > 1)
                FZ_CHECK(rk_permissions_business_name(p, b) && rk_permissions_item_name(p, it));
        }
        FZ_CHECK(rk_permissions_row(p, count, NULL, NULL, NULL, NULL) == RK_ERR_NOT_FOUND);
        FZ_CHECK(rk_permissions_allows(p, NULL, "x", "y", "z") == 0);
        rk_permissions_free(p);
    }
    free(text);
    return 0;
}
