/* fuzz_merkle.c — the Merkle proofs `renkei records verify` and any
 * client check (src/records/merkle.c, through its public header): proofs,
 * sizes and hashes read from outside must never crash a verifier, proofs
 * the module makes must verify, and a proof with one bit changed must not. */
#include "fuzz.h"
#include "records/merkle.h"

typedef struct reader {
    const uint8_t *p;
    size_t n;
} reader;

static uint64_t take(reader *r, size_t bytes)
{
    uint64_t v = 0;
    for (size_t i = 0; i < bytes && r->n; i++, r->p++, r->n--)
        v = v << 8 | *r->p;
    return v;
}

/* Verifiers on sizes, indexes and hashes as they come. */
static void verify_any(reader *r)
{
    size_t m = (size_t)take(r, 1 + take(r, 1) % 8), n = (size_t)take(r, 1 + take(r, 1) % 8);
    size_t len = (size_t)take(r, 1) % 70;
    rk_hash *path = calloc(len ? len : 1, sizeof *path);
    rk_hash a, b;
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    for (size_t i = 0; i < 32 && r->n; i++)
        a[i] = (uint8_t)take(r, 1);
    for (size_t i = 0; i < 32 && r->n; i++)
        b[i] = (uint8_t)take(r, 1);
    for (size_t i = 0; i < len && r->n; i++)
        for (size_t k = 0; k < 32 && r->n; k++)
            path[i][k] = (uint8_t)take(r, 1);
    rk_rc rc = rk_merkle_verify_inclusion(a, m, n, path, len, b);
    FZ_CHECK(rc == RK_OK || rc == RK_ERR_INVALID);
    if (rc == RK_OK)
        FZ_CHECK(m < n);
    rc = rk_merkle_verify_consistency(m, n, a, b, path, len);
    FZ_CHECK(rc == RK_OK || rc == RK_ERR_INVALID);
    if (rc == RK_OK)
        FZ_CHECK(m <= n);
    free(path);
}

/* A tree of the input's leaves: roots agree; every proof it makes
 * verifies; the same proof altered in one bit does not. */
static void round_trip(reader *r)
{
    size_t n = (size_t)take(r, 1) % 70;
    rk_hash *leaves = calloc(n ? n : 1, sizeof *leaves);
    rk_merkle_frontier f;
    rk_merkle_frontier_init(&f);
    for (size_t i = 0; i < n; i++) {
        size_t len = r->n ? (size_t)take(r, 1) % 8 : 0;
        len = len < r->n ? len : r->n;
        rk_merkle_leaf_hash(r->p, len, leaves[i]);
        r->p += len;
        r->n -= len;
        rk_merkle_frontier_append(&f, leaves[i]);
    }
    rk_hash root, froot;
    FZ_CHECK(rk_merkle_root(leaves, n, root) == RK_OK);
    rk_merkle_frontier_root(&f, froot);
    FZ_CHECK(memcmp(root, froot, sizeof root) == 0);
    size_t m = n ? (size_t)take(r, 1) % n : 0, flip = (size_t)take(r, 2);
    if (n) {
        rk_hash *path = NULL;
        size_t len = 0;
        FZ_CHECK(rk_merkle_inclusion_proof(leaves, n, m, &path, &len) == RK_OK);
        FZ_CHECK(rk_merkle_verify_inclusion(leaves[m], m, n, path, len, root) == RK_OK);
        if (len) {
            path[flip / 256 % len][flip % 32] ^= (uint8_t)(1u << (flip % 8));
            FZ_CHECK(rk_merkle_verify_inclusion(leaves[m], m, n, path, len, root) == RK_ERR_INVALID);
        }
        free(path);
    }
    size_t old = n ? (size_t)take(r, 1) % (n + 1) : 0;
    rk_hash old_root;
    FZ_CHECK(rk_merkle_root(leaves, old, old_root) == RK_OK);
    rk_hash *proof = NULL;
    size_t plen = 0;
    FZ_CHECK(rk_merkle_consistency_proof(leaves, n, old, &proof, &plen) == RK_OK);
    FZ_CHECK(rk_merkle_verify_consistency(old, n, old_root, root, proof, plen) == RK_OK);
    if (plen) {
        proof[flip / 256 % plen][flip % 32] ^= (uint8_t)(1u << (flip % 8));
        FZ_CHECK(rk_merkle_verify_consistency(old, n, old_root, root, proof, plen) == RK_ERR_INVALID);
    }
    free(proof);
    free(leaves);
}

/* Hex as a tree head or a record carries it. */
static void hex(reader *r)
{
    char *s = fz_str(r->p, r->n);
    rk_hash h;
    if (rk_merkle_unhex(s, h) == RK_OK) {
        char back[65];
        rk_merkle_hex(h, back);
        FZ_CHECK(strlen(s) == 64);
        for (int i = 0; i < 64; i++)
            FZ_CHECK(back[i] == (s[i] >= 'A' && s[i] <= 'F' ? s[i] - 'A' + 'a' : s[i]));
    }
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader r = {data, size};
    switch (take(&r, 1) % 3) {
    case 0: verify_any(&r); break;
    case 1: round_trip(&r); break;
    default: hex(&r); break;
    }
    return 0;
}
