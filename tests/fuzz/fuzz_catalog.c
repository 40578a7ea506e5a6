/* fuzz_catalog.c — the catalogue document (src/core/permissions.c:
 * rk_catalog_doc_parse), as the core reads each signed version of
 * [core] catalog_dir once its signature verified. A document is refused
 * with a reason, or it has a version and an effective time, every row it
 * holds is allowed and names catalogue ids, and it is written out and read
 * back to the same rows. */
#include "core/permissions.h"
#include "fuzz.h"
#include "lib/ids.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rk_permissions *p = NULL, *q = NULL;
    char err[512] = "", *doc = NULL;
    size_t len = 0;
    rk_rc rc = rk_catalog_doc_parse((const char *)data, size, &p, err, sizeof err);
    if (rc != RK_OK) {
        FZ_CHECK(p == NULL && err[0]);
        return 0;
    }
    FZ_CHECK(rk_permissions_version(p) >= 1 && rk_permissions_effective_from(p)[0]);
    size_t count = rk_permissions_count(p);
    for (size_t i = 0; i < count; i++) {
        const char *r = NULL, *b = NULL, *pk = NULL, *it = NULL;
        FZ_CHECK(rk_permissions_row(p, i, &r, &b, &pk, &it) == RK_OK);
        FZ_CHECK(rk_catalogue_id_valid(r) && rk_catalogue_id_valid(b) && rk_catalogue_id_valid(pk) &&
                 rk_catalogue_id_valid(it));
        FZ_CHECK(rk_permissions_allows(p, r, b, pk, it) == 1);
        FZ_CHECK(rk_permissions_known_business(p, b) && rk_permissions_known_item(p, it) &&
                 rk_permissions_known_kind(p, r) && rk_permissions_known_kind(p, pk));
        FZ_CHECK(rk_layout_version_valid(rk_permissions_item_layout(p, it)));
    }
    FZ_CHECK(rk_catalog_doc_build(p, rk_permissions_version(p), rk_permissions_effective_from(p), &doc, &len, err,
                                  sizeof err) == RK_OK);
    FZ_CHECK(rk_catalog_doc_parse(doc, len, &q, err, sizeof err) == RK_OK);
    FZ_CHECK(rk_permissions_count(q) == count && rk_permissions_version(q) == rk_permissions_version(p) &&
             rk_permissions_effective_ms(q) == rk_permissions_effective_ms(p));
    free(doc);
    rk_permissions_free(p);
    rk_permissions_free(q);
    return 0;
}
