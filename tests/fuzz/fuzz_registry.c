/* fuzz_registry.c — the network registry every node and tool reads
 * (network.json, src/net/registry.c): a file either is refused with a
 * reason or gives nodes that the lookups find again. */
#include "fuzz.h"
#include "net/registry.h"

static char dir[64], path[128];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    snprintf(dir, sizeof dir, "/tmp/rk-fuzz-registry-XXXXXX");
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof path, "%s/network.json", dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fz_write(path, data, size) != 0)
        abort();
    rk_registry *reg = NULL;
    char err[256] = "";
    rk_rc rc = rk_registry_load(path, &reg, err, sizeof err);
    if (rc != RK_OK) {
        FZ_CHECK(reg == NULL && err[0] != '\0');
        return 0;
    }
    FZ_CHECK(memchr(reg->network, '\0', sizeof reg->network));
    for (size_t i = 0; i < reg->n_nodes; i++) {
        const rk_peer_node *n = &reg->nodes[i];
        FZ_CHECK(memchr(n->id, '\0', sizeof n->id) && n->id[0]);
        FZ_CHECK(rk_registry_by_id(reg, n->id) != NULL);
        FZ_CHECK(strlen(n->fingerprint) == 64 && rk_registry_by_fingerprint(reg, n->fingerprint) != NULL);
        FZ_CHECK(strcmp(rk_role_name(n->role), "none") != 0);
        FZ_CHECK(n->n_addresses >= 0 && n->n_addresses <= RK_MAX_ADDRESSES);
        for (int a = 0; a < n->n_addresses; a++)
            FZ_CHECK(rk_peer_address_allowed(n, n->addresses[a]));
        rk_registry_find(reg, n->role, n->agency[0] ? n->agency : NULL);
    }
    FZ_CHECK(!rk_peer_address_allowed(reg->n_nodes ? &reg->nodes[0] : &(rk_peer_node){0}, "not an address"));
    rk_registry_free(reg);
    return 0;
}
