/* fuzz_registry.c — the network registry every node and tool reads
 * (network.json, src/net/registry.c) and the operator's signed registry a
 * node fetches from the core (GET /v1/registry, DESIGN §3): a file or an
 * answer either is refused with a reason or gives nodes that the lookups
 * find again. Each input is read four ways: as network.json; as an answer of
 * GET /v1/registry and as a bare envelope under the harness's anchor (the
 * seeds in corpus/registry/ named signed-* are signed with its key); and as
 * a document signed here with that key, so that the signed document's own
 * fields (serial, issued_at) are reached whatever the mutation. */
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "crypto/signed_doc.h"
#include "fuzz.h"
#include "net/registry.h"

/* A key for this harness only, a test fixture (fixtures/registry-test-key.pem): its
 * corpus is signed with it, so it cannot be made afresh at start. */

static char dir[64], path[128];
static EVP_PKEY *key;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    snprintf(dir, sizeof dir, "/tmp/rk-fuzz-registry-XXXXXX");
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof path, "%s/network.json", dir);
    FILE *f = fopen(RK_FUZZ_DIR "/fixtures/registry-test-key.pem", "r");
    key = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    if (!key)
        abort();
    return 0;
}

/* What every registry that opened must hold. */
static void check(rk_registry *reg, int is_signed)
{
    FZ_CHECK(memchr(reg->network, '\0', sizeof reg->network));
    FZ_CHECK(!is_signed || (reg->serial >= 1 && reg->serial <= (UINT64_C(1) << 53) && reg->envelope));
    for (size_t i = 0; i < reg->n_nodes; i++) {
        const rk_peer_node *n = &reg->nodes[i];
        FZ_CHECK(memchr(n->id, '\0', sizeof n->id) && n->id[0]);
        FZ_CHECK(rk_registry_by_id(reg, n->id) == n);
        FZ_CHECK(strlen(n->fingerprint) == 64 && rk_registry_by_fingerprint(reg, n->fingerprint) == n);
        FZ_CHECK(strcmp(rk_role_name(n->role), "none") != 0);
        FZ_CHECK(n->n_addresses >= 0 && n->n_addresses <= RK_MAX_ADDRESSES);
        for (int a = 0; a < n->n_addresses; a++)
            FZ_CHECK(rk_peer_address_allowed(n, n->addresses[a]));
        const rk_peer_node *f = rk_registry_find(reg, n->role, n->agency[0] ? n->agency : NULL);
        FZ_CHECK(f && f->role == n->role);
    }
    FZ_CHECK(!rk_peer_address_allowed(reg->n_nodes ? &reg->nodes[0] : &(rk_peer_node){0}, "not an address"));
    size_t crl_len = 0;
    const char *crl = rk_registry_crl(reg, &crl_len);
    FZ_CHECK(crl ? strlen(crl) == crl_len : crl_len == 0);
    rk_registry_free(reg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fz_write(path, data, size) != 0)
        abort();
    rk_registry *reg = NULL;
    char err[256] = "";
    rk_rc rc = rk_registry_load(path, &reg, err, sizeof err);
    if (rc != RK_OK)
        FZ_CHECK(reg == NULL && err[0] != '\0');
    else
        check(reg, 0);
    /* the signed forms, under the anchor */
    reg = NULL;
    err[0] = '\0';
    if (rk_registry_open_answer(key, (const char *)data, size, &reg, err, sizeof err) == RK_OK)
        check(reg, 1);
    else
        FZ_CHECK(reg == NULL && err[0] != '\0');
    reg = NULL;
    err[0] = '\0';
    if (rk_registry_open_signed(key, (const char *)data, size, NULL, 0, &reg, err, sizeof err) == RK_OK)
        check(reg, 1);
    else
        FZ_CHECK(reg == NULL && err[0] != '\0');
    /* the input as a document the operator signed */
    char *env = NULL;
    size_t envlen = 0;
    if (size < (1u << 20) && rk_signed_doc_sign(key, "registry", data, size, &env, &envlen) == RK_OK) {
        reg = NULL;
        err[0] = '\0';
        if (rk_registry_open_signed(key, env, envlen, NULL, 0, &reg, err, sizeof err) == RK_OK)
            check(reg, 1);
        else
            FZ_CHECK(reg == NULL && err[0] != '\0');
        free(env);
    }
    return 0;
}
