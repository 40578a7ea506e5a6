/* merkle.c — RFC 9162 §2.1 Merkle tree hashes, proofs and their checks. */
#include "records/merkle.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

#define HASH_LEN sizeof(rk_hash)
#define MAX_LEAVES (SIZE_MAX / HASH_LEN)

/* SHA-256 fetched once (an implicit fetch by name at every digest took
 * half the time of `records verify`), and one context per thread, reused:
 * a log hashes a leaf and about two interior nodes per record. The context
 * is freed when its thread ends (a key's destructor); the main thread's
 * stays reachable through the thread-local pointer. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static pthread_key_t sha256_key;
static __thread EVP_MD_CTX *sha256_ctx;

static void ctx_free(void *ctx)
{
    EVP_MD_CTX_free(ctx);
}

static void sha256_setup(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!sha256_md || pthread_key_create(&sha256_key, ctx_free) != 0)
        abort();
}

/* SHA-256(prefix || a || b). out may alias a or b (it is written last).
 * SHA-256 fails only when OpenSSL cannot allocate a context; these functions
 * have no error return and a log must never publish a wrong hash, so that
 * aborts. */
static void sha256_prefixed(uint8_t prefix, const void *a, size_t alen, const void *b, size_t blen,
                            rk_hash out)
{
    if (!sha256_ctx) {
        if (pthread_once(&sha256_once, sha256_setup) != 0 || !(sha256_ctx = EVP_MD_CTX_new()) ||
            pthread_setspecific(sha256_key, sha256_ctx) != 0)
            abort();
    }
    EVP_MD_CTX *ctx = sha256_ctx;
    unsigned int len = 0;
    bool ok = EVP_DigestInit_ex2(ctx, sha256_md, NULL) == 1 && EVP_DigestUpdate(ctx, &prefix, 1) == 1 &&
              (alen == 0 || EVP_DigestUpdate(ctx, a, alen) == 1) && (blen == 0 || EVP_DigestUpdate(ctx, b, blen) == 1) &&
              EVP_DigestFinal_ex(ctx, out, &len) == 1;
    if (!ok || len != HASH_LEN)
        abort();
}

static void empty_root(rk_hash out)
{
    unsigned int len = 0;
    if (EVP_Digest("", 0, out, &len, EVP_sha256(), NULL) != 1 || len != HASH_LEN)
        abort();
}

static bool hash_eq(const rk_hash a, const rk_hash b)
{
    return memcmp(a, b, HASH_LEN) == 0;
}

void rk_merkle_leaf_hash(const void *data, size_t len, rk_hash out)
{
    sha256_prefixed(0x00, data, len, NULL, 0, out);
}

void rk_merkle_node_hash(const rk_hash left, const rk_hash right, rk_hash out)
{
    sha256_prefixed(0x01, left, HASH_LEN, right, HASH_LEN, out);
}

/* The largest power of two smaller than n (n >= 2). */
static uint64_t split(uint64_t n)
{
    uint64_t k = 1;
    while (k < n - k)
        k <<= 1;
    return k;
}

/* MTH(D[n]) for n >= 1 over an array; recursion depth is log2(n). */
static void mth(const rk_hash *d, size_t n, rk_hash out)
{
    if (n == 1) {
        memcpy(out, d[0], HASH_LEN);
        return;
    }
    size_t k = split(n);
    rk_hash left, right;
    mth(d, k, left);
    mth(d + k, n - k, right);
    rk_merkle_node_hash(left, right, out);
}

static bool leaves_ok(const rk_hash *leaves, size_t n)
{
    return n <= MAX_LEAVES && (n == 0 || leaves != NULL);
}

rk_rc rk_merkle_root(const rk_hash *leaves, size_t n, rk_hash out)
{
    if (out == NULL || !leaves_ok(leaves, n))
        return RK_ERR_INVALID;
    if (n == 0)
        empty_root(out);
    else
        mth(leaves, n, out);
    return RK_OK;
}

/* MTH(D[lo:lo+n]) for n >= 1 from a source. The ranges the RFC's recursion
 * meets are a perfect subtree (n a power of two, lo a multiple of n) or the
 * right edge of one, so the source is asked only for perfect subtrees:
 * O(log n) of them. */
static rk_rc mth_from(const rk_merkle_source *src, uint64_t lo, uint64_t n, rk_hash out)
{
    if ((n & (n - 1)) == 0) {
        unsigned h = (unsigned)__builtin_ctzll(n);
        return src->subtree(src->arg, h, lo >> h, out);
    }
    uint64_t k = split(n);
    rk_hash left, right;
    rk_rc rc = mth_from(src, lo, k, left);
    if (rc == RK_OK)
        rc = mth_from(src, lo + k, n - k, right);
    if (rc == RK_OK)
        rk_merkle_node_hash(left, right, out);
    return rc;
}

rk_rc rk_merkle_root_from(const rk_merkle_source *src, uint64_t n, rk_hash out)
{
    if (src == NULL || out == NULL || n > MAX_LEAVES)
        return RK_ERR_INVALID;
    if (n == 0) {
        empty_root(out);
        return RK_OK;
    }
    return mth_from(src, 0, n, out);
}

static rk_rc alloc_hashes(size_t count, rk_hash **out)
{
    *out = NULL;
    if (count == 0)
        return RK_OK;
    *out = malloc(count * HASH_LEN);
    return *out ? RK_OK : RK_ERR_NOMEM;
}

/* PATH(m, D[n]) walked from the root down: each level adds the hash of the
 * other half, and the RFC lists them leaf side first, so they are counted
 * first and then stored from the end. */
static size_t inclusion_len(uint64_t m, uint64_t n)
{
    size_t len = 0;
    for (; n > 1; len++) {
        uint64_t k = split(n);
        if (m < k) {
            n = k;
        } else {
            m -= k;
            n -= k;
        }
    }
    return len;
}

rk_rc rk_merkle_inclusion_proof_from(const rk_merkle_source *src, uint64_t n, uint64_t m, rk_hash **path,
                                     size_t *path_len)
{
    if (path == NULL || path_len == NULL)
        return RK_ERR_INVALID;
    *path = NULL;
    *path_len = 0;
    if (src == NULL || n > MAX_LEAVES || m >= n)
        return RK_ERR_INVALID;
    size_t len = inclusion_len(m, n);
    rk_hash *p;
    rk_rc rc = alloc_hashes(len, &p);
    uint64_t lo = 0;
    for (size_t i = len; rc == RK_OK && n > 1;) {
        uint64_t k = split(n);
        if (m < k) { /* PATH(m, D[0:k]) : MTH(D[k:n]) */
            rc = mth_from(src, lo + k, n - k, p[--i]);
            n = k;
        } else { /* PATH(m - k, D[k:n]) : MTH(D[0:k]) */
            rc = mth_from(src, lo, k, p[--i]);
            lo += k;
            m -= k;
            n -= k;
        }
    }
    if (rc != RK_OK) {
        free(p);
        return rc;
    }
    *path = p;
    *path_len = len;
    return RK_OK;
}

/* SUBPROOF(m, D[n], b) walked from the root down, like PATH. When the walk
 * ends at a subtree D[m] that is not the whole old tree (b false), that
 * subtree's hash comes first in the proof. */
static size_t consistency_len(uint64_t m, uint64_t n)
{
    size_t len = 0;
    bool whole = true;
    for (; m != n; len++) {
        uint64_t k = split(n);
        if (m <= k) {
            n = k;
        } else {
            m -= k;
            n -= k;
            whole = false;
        }
    }
    return len + !whole;
}

rk_rc rk_merkle_consistency_proof_from(const rk_merkle_source *src, uint64_t n, uint64_t m, rk_hash **proof,
                                       size_t *proof_len)
{
    if (proof == NULL || proof_len == NULL)
        return RK_ERR_INVALID;
    *proof = NULL;
    *proof_len = 0;
    if (src == NULL || n > MAX_LEAVES || m > n)
        return RK_ERR_INVALID;
    if (m == 0 || m == n)
        return RK_OK;
    size_t len = consistency_len(m, n);
    rk_hash *p;
    rk_rc rc = alloc_hashes(len, &p);
    uint64_t lo = 0;
    bool whole = true;
    size_t i = len;
    while (rc == RK_OK && m != n) {
        uint64_t k = split(n);
        if (m <= k) { /* SUBPROOF(m, D[0:k], b) : MTH(D[k:n]) */
            rc = mth_from(src, lo + k, n - k, p[--i]);
            n = k;
        } else { /* SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k]) */
            rc = mth_from(src, lo, k, p[--i]);
            lo += k;
            m -= k;
            n -= k;
            whole = false;
        }
    }
    if (rc == RK_OK && !whole) /* SUBPROOF(m, D[m], false) = {MTH(D[m])} */
        rc = mth_from(src, lo, m, p[--i]);
    if (rc != RK_OK) {
        free(p);
        return rc;
    }
    *proof = p;
    *proof_len = len;
    return RK_OK;
}

/* An array of leaves as a source: a perfect subtree is hashed from its leaves. */
static rk_rc array_subtree(void *arg, unsigned height, uint64_t index, rk_hash out)
{
    mth((const rk_hash *)arg + (index << height), (size_t)1 << height, out);
    return RK_OK;
}

rk_rc rk_merkle_inclusion_proof(const rk_hash *leaves, size_t n, size_t m, rk_hash **path,
                                size_t *path_len)
{
    rk_merkle_source src = {array_subtree, (void *)leaves};
    if (path && path_len && !leaves_ok(leaves, n)) {
        *path = NULL;
        *path_len = 0;
        return RK_ERR_INVALID;
    }
    return rk_merkle_inclusion_proof_from(&src, n, m, path, path_len);
}

rk_rc rk_merkle_consistency_proof(const rk_hash *leaves, size_t n, size_t m, rk_hash **proof,
                                  size_t *proof_len)
{
    rk_merkle_source src = {array_subtree, (void *)leaves};
    if (proof && proof_len && !leaves_ok(leaves, n)) {
        *proof = NULL;
        *proof_len = 0;
        return RK_ERR_INVALID;
    }
    return rk_merkle_consistency_proof_from(&src, n, m, proof, proof_len);
}

/* Step 4.b.ii of §2.1.3.2 and 6.b.iii of §2.1.4.2. */
static void shift_to_set_lsb(size_t *fn, size_t *sn)
{
    while ((*fn & 1) == 0 && *fn != 0) {
        *fn >>= 1;
        *sn >>= 1;
    }
}

rk_rc rk_merkle_verify_inclusion(const rk_hash leaf, size_t m, size_t n, const rk_hash *path,
                                 size_t path_len, const rk_hash root)
{
    if (leaf == NULL || root == NULL || (path == NULL && path_len > 0) || n > MAX_LEAVES || m >= n)
        return RK_ERR_INVALID;
    size_t fn = m, sn = n - 1;
    rk_hash r;
    memcpy(r, leaf, HASH_LEN);
    for (size_t i = 0; i < path_len; i++) {
        if (sn == 0)
            return RK_ERR_INVALID;
        if ((fn & 1) || fn == sn) {
            rk_merkle_node_hash(path[i], r, r);
            shift_to_set_lsb(&fn, &sn);
        } else {
            rk_merkle_node_hash(r, path[i], r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && hash_eq(r, root) ? RK_OK : RK_ERR_INVALID;
}

static bool is_power_of_two(size_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

/* §2.1.4.2 for 0 < m < n. */
static rk_rc verify_consistency_path(size_t m, size_t n, const rk_hash root_m, const rk_hash root_n,
                                     const rk_hash *proof, size_t proof_len)
{
    if (proof_len == 0)
        return RK_ERR_INVALID;
    /* Step 2: when m is a power of two, the old tree is a node of the new
     * one and the proof leaves it out; start from root_m instead. */
    const rk_hash *c = proof, *end = proof + proof_len;
    rk_hash fr, sr;
    memcpy(fr, is_power_of_two(m) ? root_m : *c++, HASH_LEN);
    memcpy(sr, fr, HASH_LEN);
    size_t fn = m - 1, sn = n - 1;
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    for (; c < end; c++) {
        if (sn == 0)
            return RK_ERR_INVALID;
        if ((fn & 1) || fn == sn) {
            rk_merkle_node_hash(*c, fr, fr);
            rk_merkle_node_hash(*c, sr, sr);
            shift_to_set_lsb(&fn, &sn);
        } else {
            rk_merkle_node_hash(sr, *c, sr);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && hash_eq(fr, root_m) && hash_eq(sr, root_n) ? RK_OK : RK_ERR_INVALID;
}

rk_rc rk_merkle_verify_consistency(size_t m, size_t n, const rk_hash root_m, const rk_hash root_n,
                                   const rk_hash *proof, size_t proof_len)
{
    if (root_m == NULL || root_n == NULL || (proof == NULL && proof_len > 0) || n > MAX_LEAVES ||
        m > n)
        return RK_ERR_INVALID;
    if (m == 0) {
        rk_hash empty;
        empty_root(empty);
        if (!hash_eq(root_m, empty))
            return RK_ERR_INVALID;
    }
    if (m == n)
        return proof_len == 0 && hash_eq(root_m, root_n) ? RK_OK : RK_ERR_INVALID;
    if (m == 0)
        return proof_len == 0 ? RK_OK : RK_ERR_INVALID;
    return verify_consistency_path(m, n, root_m, root_n, proof, proof_len);
}

void rk_merkle_frontier_init(rk_merkle_frontier *f)
{
    memset(f, 0, sizeof *f);
}

void rk_merkle_frontier_append(rk_merkle_frontier *f, const rk_hash leaf)
{
    if (f->size == UINT64_MAX)
        return;
    rk_hash carry;
    memcpy(carry, leaf, HASH_LEN);
    /* Binary increment: each set low bit is a perfect subtree as large as
     * carry, immediately to its left; merge them. A zero bit below 64
     * exists because size < UINT64_MAX. */
    unsigned i = 0;
    for (; (f->size >> i) & 1; i++)
        rk_merkle_node_hash(f->nodes[i], carry, carry);
    memcpy(f->nodes[i], carry, HASH_LEN);
    f->size++;
}

void rk_merkle_frontier_root(const rk_merkle_frontier *f, rk_hash out)
{
    if (f->size == 0) {
        empty_root(out);
        return;
    }
    /* MTH splits at the highest set bit of the size, so the root folds the
     * perfect subtrees from the smallest (rightmost) up. */
    unsigned i = 0;
    while (((f->size >> i) & 1) == 0)
        i++;
    rk_hash r;
    memcpy(r, f->nodes[i], HASH_LEN);
    for (i++; i < 64; i++)
        if ((f->size >> i) & 1)
            rk_merkle_node_hash(f->nodes[i], r, r);
    memcpy(out, r, HASH_LEN);
}

void rk_merkle_hex(const rk_hash h, char out[65])
{
    rk_hex(h, HASH_LEN, out);
}

rk_rc rk_merkle_unhex(const char *hex, rk_hash out)
{
    rk_hash h;
    if (hex == NULL || out == NULL || rk_unhex(hex, h, HASH_LEN) != RK_OK)
        return RK_ERR_INVALID;
    memcpy(out, h, HASH_LEN);
    return RK_OK;
}
