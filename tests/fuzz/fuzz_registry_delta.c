/* fuzz_registry_delta.c — a registry delta from outside (src/net/registry_delta.c):
 * the answer a node rebuilds its registry from. The input is a previous
 * document, a NUL, then the operations as JSON. Applying fails cleanly or
 * makes at most the cap; every copy lies inside the previous document; and a
 * delta made between the input's two parts rebuilds the second exactly. */
#include <jansson.h>

#include "fuzz.h"
#include "net/registry_delta.h"

#define CAP (1u << 16)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *nul = memchr(data, 0, size);
    if (!nul)
        return 0;
    const char *from = (const char *)data, *rest = nul + 1;
    size_t from_len = (size_t)(nul - from), rest_len = size - from_len - 1;
    json_t *ops = json_loadb(rest, rest_len, JSON_REJECT_DUPLICATES, NULL);
    char *out = NULL;
    size_t len = 0;
    rk_rc rc = rk_registry_delta_apply(from, from_len, ops, CAP, &out, &len);
    FZ_CHECK(rc != RK_OK || (out && len <= CAP && out[len] == '\0'));
    FZ_CHECK(rc == RK_OK || !out);
    free(out);
    json_decref(ops);
    /* the two parts as documents: a delta between them rebuilds the second
     * (when the second is not UTF-8 no delta can carry it: refused) */
    json_t *made = NULL;
    if (rk_registry_delta_make(from, from_len, rest, rest_len, &made) == RK_OK) {
        char *text = json_dumps(made, JSON_COMPACT);
        json_t *back = text ? json_loads(text, 0, NULL) : NULL;
        FZ_CHECK(back && rk_registry_delta_apply(from, from_len, back, SIZE_MAX, &out, &len) == RK_OK);
        FZ_CHECK(len == rest_len && memcmp(out, rest, len) == 0);
        free(out);
        free(text);
        json_decref(back);
        json_decref(made);
    }
    return 0;
}
