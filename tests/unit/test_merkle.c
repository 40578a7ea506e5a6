/* Unit tests: merkle (RFC 9162 §2.1) — the Certificate Transparency
 * known-answer vectors, every inclusion and consistency proof of trees up to
 * 70 leaves (and their tampered forms), the frontier, hex. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "records/merkle.h"

/* The RFC 6962 test data of the CT reference implementations
 * (transparency-dev/merkle testonly/constants.go). */
static const struct {
    const char *data;
    size_t len;
} ct_inputs[8] = {
    {"", 0},
    {"\x00", 1},
    {"\x10", 1},
    {"\x20\x21", 2},
    {"\x30\x31", 2},
    {"\x40\x41\x42\x43", 4},
    {"\x50\x51\x52\x53\x54\x55\x56\x57", 8},
    {"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f", 16},
};

static const char *const ct_leaf_hashes[8] = {
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
};

/* Roots for sizes 0..8. */
static const char *const ct_roots[9] = {
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

#define H_96A2 "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"
#define H_BC1A "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"
#define H_D37E "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"
#define H_5F08 "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"
#define H_6B47 "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"
#define H_CA85 "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"
#define H_0EBC "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"

static const struct {
    size_t m, n, len;
    const char *hashes[3];
} ct_inclusion[] = {
    {0, 8, 3, {H_96A2, H_5F08, H_6B47}},
    {5, 8, 3, {H_BC1A, H_CA85, H_D37E}},
    {0, 1, 0, {NULL}},
}, ct_consistency[] = {
    {2, 8, 2, {H_5F08, H_6B47}},
    {6, 8, 3, {H_0EBC, H_CA85, H_D37E}},
    {2, 5, 2, {H_5F08, H_BC1A}},
    {1, 1, 0, {NULL}},
};

#define MAX_N 70
#define FRONTIER_N 300

static rk_hash leaves[FRONTIER_N];
static rk_hash roots[FRONTIER_N + 1];

static void unhex_ok(const char *hex, rk_hash out)
{
    assert_int_equal(rk_merkle_unhex(hex, out), RK_OK);
}

static void assert_hash_hex(const rk_hash h, const char *hex)
{
    char text[65];
    rk_merkle_hex(h, text);
    assert_string_equal(text, hex);
}

static void flip(rk_hash h, unsigned bit)
{
    h[(bit / 8) % 32] ^= (uint8_t)(1u << (bit % 8));
}

/* The largest power of two smaller than n (n >= 2). */
static size_t split_of(size_t n)
{
    size_t k = 1;
    while (2 * k < n)
        k *= 2;
    return k;
}

/* An independent MTH straight from the RFC's recursive definition, hashing
 * with one-shot EVP_Digest over concatenated buffers. */
static void ref_sha256(const void *data, size_t len, rk_hash out)
{
    assert_int_equal(EVP_Digest(data, len, out, NULL, EVP_sha256(), NULL), 1);
}

static void ref_mth(const rk_hash *d, size_t n, rk_hash out)
{
    if (n == 0) {
        ref_sha256("", 0, out);
        return;
    }
    if (n == 1) {
        memcpy(out, d[0], 32);
        return;
    }
    size_t k = split_of(n);
    uint8_t buf[65] = {0x01};
    ref_mth(d, k, buf + 1);
    ref_mth(d + k, n - k, buf + 33);
    ref_sha256(buf, sizeof buf, out);
}

/* The shape of PATH(m, D[n]) by the recursive definition: for each level
 * from the root, whether the sibling is on the right ('R') or left ('L'). */
static void path_shape(size_t m, size_t n, char *out)
{
    while (n > 1) {
        size_t k = split_of(n);
        *out++ = m < k ? 'R' : 'L';
        if (m < k) {
            n = k;
        } else {
            m -= k;
            n -= k;
        }
    }
    *out = '\0';
}

/* The same for PROOF(m, D[n]), 0 < m <= n; 'S' marks the subtree hash that
 * starts the proof when the old tree is not itself a node of the new one. */
static void proof_shape(size_t m, size_t n, char *out)
{
    int whole = 1;
    while (m != n) {
        size_t k = split_of(n);
        *out++ = m <= k ? 'R' : 'L';
        if (m <= k) {
            n = k;
        } else {
            m -= k;
            n -= k;
            whole = 0;
        }
    }
    if (!whole)
        *out++ = 'S';
    *out = '\0';
}

static int setup(void **state)
{
    for (unsigned i = 0; i < FRONTIER_N; i++) {
        char data[32];
        int len = snprintf(data, sizeof data, "renkei record %u", i);
        rk_merkle_leaf_hash(data, (size_t)len, leaves[i]);
    }
    for (size_t n = 0; n <= FRONTIER_N; n++)
        if (rk_merkle_root(leaves, n, roots[n]) != RK_OK)
            return -1;
    return 0;
}

static void known_leaf_hashes_and_roots(void **state)
{
    rk_hash ct[8], root, ref;
    for (size_t i = 0; i < 8; i++) {
        rk_merkle_leaf_hash(ct_inputs[i].data, ct_inputs[i].len, ct[i]);
        assert_hash_hex(ct[i], ct_leaf_hashes[i]);
    }
    rk_merkle_node_hash(ct[0], ct[1], root);
    assert_hash_hex(root, ct_roots[2]);
    for (size_t n = 0; n <= 8; n++) {
        assert_int_equal(rk_merkle_root(ct, n, root), RK_OK);
        assert_hash_hex(root, ct_roots[n]);
        ref_mth(ct, n, ref);
        assert_memory_equal(root, ref, 32);
    }
    assert_int_equal(rk_merkle_root(NULL, 0, root), RK_OK);
    ref_sha256("", 0, ref);
    assert_memory_equal(root, ref, 32);
    assert_hash_hex(root, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void known_proofs(void **state)
{
    rk_hash ct[8], root_m, root_n, *p;
    size_t len;
    for (size_t i = 0; i < 8; i++)
        rk_merkle_leaf_hash(ct_inputs[i].data, ct_inputs[i].len, ct[i]);
    for (size_t t = 0; t < sizeof ct_inclusion / sizeof ct_inclusion[0]; t++) {
        size_t m = ct_inclusion[t].m, n = ct_inclusion[t].n;
        assert_int_equal(rk_merkle_inclusion_proof(ct, n, m, &p, &len), RK_OK);
        assert_int_equal(len, ct_inclusion[t].len);
        for (size_t i = 0; i < len; i++)
            assert_hash_hex(p[i], ct_inclusion[t].hashes[i]);
        unhex_ok(ct_roots[n], root_n);
        assert_int_equal(rk_merkle_verify_inclusion(ct[m], m, n, p, len, root_n), RK_OK);
        free(p);
    }
    for (size_t t = 0; t < sizeof ct_consistency / sizeof ct_consistency[0]; t++) {
        size_t m = ct_consistency[t].m, n = ct_consistency[t].n;
        assert_int_equal(rk_merkle_consistency_proof(ct, n, m, &p, &len), RK_OK);
        assert_int_equal(len, ct_consistency[t].len);
        for (size_t i = 0; i < len; i++)
            assert_hash_hex(p[i], ct_consistency[t].hashes[i]);
        unhex_ok(ct_roots[m], root_m);
        unhex_ok(ct_roots[n], root_n);
        assert_int_equal(rk_merkle_verify_consistency(m, n, root_m, root_n, p, len), RK_OK);
        free(p);
    }
}

static void roots_match_reference_and_frontier(void **state)
{
    rk_merkle_frontier f;
    rk_hash ref, froot;
    rk_merkle_frontier_init(&f);
    for (size_t n = 0; n <= FRONTIER_N; n++) {
        assert_int_equal(f.size, n);
        rk_merkle_frontier_root(&f, froot);
        assert_memory_equal(froot, roots[n], 32);
        ref_mth((const rk_hash *)leaves, n, ref);
        assert_memory_equal(roots[n], ref, 32);
        if (n < FRONTIER_N)
            rk_merkle_frontier_append(&f, leaves[n]);
    }
}

static void frontier_full(void **state)
{
    rk_merkle_frontier f, before;
    rk_merkle_frontier_init(&f);
    for (unsigned i = 0; i < 64; i++)
        memcpy(f.nodes[i], leaves[i], 32);
    f.size = UINT64_MAX;
    before = f;
    rk_merkle_frontier_append(&f, leaves[99]); /* ignored, nothing overwritten */
    assert_memory_equal(&f, &before, sizeof f);
    f.size = UINT64_MAX - 1; /* bit 0 clear: stored as is */
    rk_merkle_frontier_append(&f, leaves[99]);
    assert_true(f.size == UINT64_MAX);
    assert_memory_equal(f.nodes[0], leaves[99], 32);
    assert_memory_equal(f.nodes[1], before.nodes[1], 32);

    rk_hash carry, root;
    f = before;
    f.size = (UINT64_C(1) << 63) - 1; /* bits 0..62: 63 carries into nodes[63] */
    memcpy(carry, leaves[99], 32);
    for (unsigned i = 0; i < 63; i++)
        rk_merkle_node_hash(before.nodes[i], carry, carry);
    rk_merkle_frontier_append(&f, leaves[99]);
    assert_true(f.size == UINT64_C(1) << 63);
    assert_memory_equal(f.nodes[63], carry, 32);
    rk_merkle_frontier_root(&f, root);
    assert_memory_equal(root, carry, 32);
}

/* A proof checked against sizes n2 != n: RFC 9162 binds the proof to the
 * root, so a size whose audit path has the same shape (for example leaf 0 of
 * 3 and of 4 leaves) verifies the same; every other size must fail. */
static size_t check_wrong_sizes(size_t m, size_t n, const rk_hash *p, size_t len)
{
    const size_t sizes[] = {0, m, n - 1, n + 1, n + 2, 2 * n, n / 2, n + 9, 3 * n + 1, SIZE_MAX};
    char want[80], got[80];
    size_t same = 0;
    path_shape(m, n, want);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n2 = sizes[i];
        if (n2 == n)
            continue;
        rk_rc rc = rk_merkle_verify_inclusion(leaves[m], m, n2, p, len, roots[n]);
        if (n2 <= m || n2 > SIZE_MAX / 32) {
            assert_int_equal(rc, RK_ERR_INVALID);
            continue;
        }
        path_shape(m, n2, got);
        same += strcmp(want, got) == 0;
        assert_int_equal(rc, strcmp(want, got) == 0 ? RK_OK : RK_ERR_INVALID);
    }
    return same;
}

static void check_inclusion(size_t m, size_t n, size_t *same_shape)
{
    rk_hash *p, leaf, extra[65];
    size_t len;
    assert_int_equal(rk_merkle_inclusion_proof(leaves, n, m, &p, &len), RK_OK);
    assert_true(len <= 7);
    assert_int_equal(rk_merkle_verify_inclusion(leaves[m], m, n, p, len, roots[n]), RK_OK);
    for (size_t i = 0; i < len; i++) {
        unsigned bit = (unsigned)(m * 31 + i * 7) % 256;
        flip(p[i], bit);
        assert_int_equal(rk_merkle_verify_inclusion(leaves[m], m, n, p, len, roots[n]), RK_ERR_INVALID);
        flip(p[i], bit);
    }
    memcpy(leaf, leaves[m], 32);
    flip(leaf, (unsigned)n);
    assert_int_equal(rk_merkle_verify_inclusion(leaf, m, n, p, len, roots[n]), RK_ERR_INVALID);
    const size_t wrong[] = {m ^ 1, m + 1, m - 1, m ^ 2, n - 1 - m, n, SIZE_MAX};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++)
        if (wrong[i] != m)
            assert_int_equal(rk_merkle_verify_inclusion(leaves[m], wrong[i], n, p, len, roots[n]),
                             RK_ERR_INVALID);
    *same_shape += check_wrong_sizes(m, n, p, len);
    /* The path of a leaf in the right subtree D[k:n] ends with MTH(D[0:k]):
     * read relative to that subtree it must not reach the full root
     * (the "sn is 0" stop of §2.1.3.2 step 4a). */
    size_t k = n > 1 ? split_of(n) : 0;
    if (n > 1 && m >= k)
        assert_int_equal(rk_merkle_verify_inclusion(leaves[m], m - k, n - k, p, len, roots[n]),
                         RK_ERR_INVALID);
    if (len > 0)
        assert_int_equal(rk_merkle_verify_inclusion(leaves[m], m, n, p, len - 1, roots[n]),
                         RK_ERR_INVALID);
    if (len > 0)
        memcpy(extra, p, len * 32);
    memcpy(extra[len], leaves[0], 32);
    assert_int_equal(rk_merkle_verify_inclusion(leaves[m], m, n, (const rk_hash *)extra, len + 1, roots[n]),
                     RK_ERR_INVALID);
    free(p);
}

static void inclusion_every_leaf(void **state)
{
    size_t same_shape = 0;
    for (size_t n = 1; n <= MAX_N; n++)
        for (size_t m = 0; m < n; m++)
            check_inclusion(m, n, &same_shape);
    assert_true(same_shape > 0); /* the RFC property above is exercised */
}

/* A consistency proof checked against other sizes: as for inclusion, only
 * sizes whose proof has the same shape verify (for example 1 to 3 and 1 to
 * 4 leaves). Returns how many did. */
static size_t check_wrong_consistency_sizes(size_t m, size_t n, const rk_hash *p, size_t len)
{
    const size_t sizes[] = {0, m - 1, m + 1, n - 1, n + 1, n + 2, 2 * n, n + 9, 3 * n + 1, SIZE_MAX};
    char want[80], got[80];
    size_t same = 0;
    proof_shape(m, n, want);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t x = sizes[i];
        /* Wrong new size: */
        if (x != n) {
            rk_rc rc = rk_merkle_verify_consistency(m, x, roots[m], roots[n], p, len);
            if (x <= m || x > SIZE_MAX / 32) {
                assert_int_equal(rc, RK_ERR_INVALID);
            } else {
                proof_shape(m, x, got);
                same += strcmp(want, got) == 0;
                assert_int_equal(rc, strcmp(want, got) == 0 ? RK_OK : RK_ERR_INVALID);
            }
        }
        /* Wrong old size: */
        if (x != m) {
            rk_rc rc = rk_merkle_verify_consistency(x, n, roots[m], roots[n], p, len);
            if (x == 0 || x >= n) {
                assert_int_equal(rc, RK_ERR_INVALID);
            } else {
                proof_shape(x, n, got);
                same += strcmp(want, got) == 0;
                assert_int_equal(rc, strcmp(want, got) == 0 ? RK_OK : RK_ERR_INVALID);
            }
        }
    }
    return same;
}

static void check_consistency(size_t m, size_t n, size_t *same_shape)
{
    rk_hash *p, root_m, root_n, extra[65];
    size_t len;
    assert_int_equal(rk_merkle_consistency_proof(leaves, n, m, &p, &len), RK_OK);
    assert_true(len <= 14);
    if (m == n)
        assert_int_equal(len, 0);
    assert_int_equal(rk_merkle_verify_consistency(m, n, roots[m], roots[n], p, len), RK_OK);
    memcpy(root_m, roots[m], 32);
    memcpy(root_n, roots[n], 32);
    flip(root_m, (unsigned)(m + n));
    flip(root_n, (unsigned)(m * n));
    assert_int_equal(rk_merkle_verify_consistency(m, n, root_m, roots[n], p, len), RK_ERR_INVALID);
    assert_int_equal(rk_merkle_verify_consistency(m, n, roots[m], root_n, p, len), RK_ERR_INVALID);
    for (size_t i = 0; i < len; i++) {
        unsigned bit = (unsigned)(m * 13 + n + i * 5) % 256;
        flip(p[i], bit);
        assert_int_equal(rk_merkle_verify_consistency(m, n, roots[m], roots[n], p, len), RK_ERR_INVALID);
        flip(p[i], bit);
    }
    if (len > 0)
        assert_int_equal(rk_merkle_verify_consistency(m, n, roots[m], roots[n], p, len - 1),
                         RK_ERR_INVALID);
    *same_shape += check_wrong_consistency_sizes(m, n, p, len);
    /* When m > k the proof ends with MTH(D[0:k]); read relative to D[k:n]
     * it must fail (§2.1.4.2 step 6a). */
    size_t k = n > 1 ? split_of(n) : 0;
    if (n > 1 && m > k && m < n)
        assert_int_equal(rk_merkle_verify_consistency(m - k, n - k, roots[m], roots[n], p, len),
                         RK_ERR_INVALID);
    if (len > 0)
        memcpy(extra, p, len * 32);
    memcpy(extra[len], leaves[0], 32);
    assert_int_equal(rk_merkle_verify_consistency(m, n, roots[m], roots[n], (const rk_hash *)extra, len + 1),
                     RK_ERR_INVALID);
    free(p);
}

static void consistency_every_pair(void **state)
{
    size_t same_shape = 0;
    for (size_t n = 1; n <= MAX_N; n++)
        for (size_t m = 1; m <= n; m++)
            check_consistency(m, n, &same_shape);
    assert_true(same_shape > 0);
}

static void consistency_from_empty(void **state)
{
    rk_hash *p = leaves, other;
    size_t len = 99;
    assert_int_equal(rk_merkle_consistency_proof(leaves, 5, 0, &p, &len), RK_OK);
    assert_null(p);
    assert_int_equal(len, 0);
    assert_int_equal(rk_merkle_verify_consistency(0, 5, roots[0], roots[5], NULL, 0), RK_OK);
    assert_int_equal(rk_merkle_verify_consistency(0, 0, roots[0], roots[0], NULL, 0), RK_OK);
    memset(other, 0, sizeof other);
    assert_int_equal(rk_merkle_verify_consistency(0, 5, other, roots[5], NULL, 0), RK_ERR_INVALID);
    assert_int_equal(rk_merkle_verify_consistency(0, 0, other, other, NULL, 0), RK_ERR_INVALID);
    assert_int_equal(rk_merkle_verify_consistency(0, 5, roots[0], roots[5], leaves, 1), RK_ERR_INVALID);
}

static void bad_arguments(void **state)
{
    rk_hash out, *p;
    size_t len;
    const size_t huge = SIZE_MAX / 32 + 1;
    assert_int_equal(rk_merkle_root(NULL, 1, out), RK_ERR_INVALID);
    assert_int_equal(rk_merkle_root(leaves, huge, out), RK_ERR_INVALID);
    assert_int_equal(rk_merkle_root(leaves, 1, NULL), RK_ERR_INVALID);

    assert_int_equal(rk_merkle_inclusion_proof(leaves, 5, 5, &p, &len), RK_ERR_INVALID);
    assert_null(p);
    assert_int_equal(len, 0);
    assert_int_equal(rk_merkle_inclusion_proof(leaves, 0, 0, &p, &len), RK_ERR_INVALID);
    assert_int_equal(rk_merkle_inclusion_proof(NULL, 5, 1, &p, &len), RK_ERR_INVALID);
    assert_int_equal(rk_merkle_inclusion_proof(leaves, huge, 1, &p, &len), RK_ERR_INVALID);
    assert_int_equal(rk_merkle_inclusion_proof(leaves, 5, 1, NULL, &len), RK_ERR_INVALID);
    assert_int_equal(rk_merkle_inclusion_proof(leaves, 5, 1, &p, NULL), RK_ERR_INVALID);
    assert_int_equal(rk_merkle_inclusion_proof(leaves, 1, 0, &p, &len), RK_OK);
    assert_null(p);
    assert_int_equal(len, 0);

    assert_int_equal(rk_merkle_consistency_proof(leaves, 5, 6, &p, &len), RK_ERR_INVALID);
    assert_int_equal(rk_merkle_consistency_proof(NULL, 5, 2, &p, &len), RK_ERR_INVALID);
    assert_int_equal(rk_merkle_consistency_proof(leaves, huge, 2, &p, &len), RK_ERR_INVALID);
    assert_int_equal(rk_merkle_consistency_proof(leaves, 5, 2, NULL, &len), RK_ERR_INVALID);
    assert_int_equal(rk_merkle_consistency_proof(leaves, 5, 5, &p, &len), RK_OK);
    assert_null(p);

    assert_int_equal(rk_merkle_verify_inclusion(leaves[0], 0, 0, NULL, 0, roots[0]), RK_ERR_INVALID);
    assert_int_equal(rk_merkle_verify_inclusion(leaves[0], 0, 1, NULL, 0, roots[1]), RK_OK);
    assert_int_equal(rk_merkle_verify_inclusion(leaves[0], 0, 1, NULL, 1, roots[1]), RK_ERR_INVALID);
    assert_int_equal(rk_merkle_verify_inclusion(leaves[0], 0, 1, leaves, 1, roots[1]), RK_ERR_INVALID);
    assert_int_equal(rk_merkle_verify_inclusion(NULL, 0, 1, NULL, 0, roots[1]), RK_ERR_INVALID);
    assert_int_equal(rk_merkle_verify_inclusion(leaves[0], 0, 1, NULL, 0, NULL), RK_ERR_INVALID);
    assert_int_equal(rk_merkle_verify_inclusion(leaves[0], 0, huge, leaves, 3, roots[1]), RK_ERR_INVALID);

    assert_int_equal(rk_merkle_verify_consistency(6, 5, roots[6], roots[5], NULL, 0), RK_ERR_INVALID);
    assert_int_equal(rk_merkle_verify_consistency(3, 5, roots[3], roots[5], NULL, 0), RK_ERR_INVALID);
    assert_int_equal(rk_merkle_verify_consistency(3, 5, roots[3], roots[5], NULL, 2), RK_ERR_INVALID);
    assert_int_equal(rk_merkle_verify_consistency(3, 5, NULL, roots[5], leaves, 2), RK_ERR_INVALID);
    assert_int_equal(rk_merkle_verify_consistency(3, 5, roots[3], NULL, leaves, 2), RK_ERR_INVALID);
    assert_int_equal(rk_merkle_verify_consistency(4, 4, roots[4], roots[5], NULL, 0), RK_ERR_INVALID);
    assert_int_equal(rk_merkle_verify_consistency(4, 4, roots[4], roots[4], leaves, 1), RK_ERR_INVALID);
    assert_int_equal(rk_merkle_verify_consistency(1, huge, roots[1], roots[5], leaves, 3), RK_ERR_INVALID);
}

static void hex_round_trip(void **state)
{
    char text[65];
    rk_hash back;
    for (size_t i = 0; i < 20; i++) {
        rk_merkle_hex(leaves[i], text);
        assert_int_equal(strlen(text), 64);
        assert_int_equal(rk_merkle_unhex(text, back), RK_OK);
        assert_memory_equal(back, leaves[i], 32);
    }
    unhex_ok("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", back);
    assert_memory_equal(back, roots[0], 32);

    rk_merkle_hex(roots[0], text);
    memcpy(back, roots[1], 32);
    char bad[70];
    snprintf(bad, sizeof bad, "%.63s", text); /* one digit short */
    assert_int_equal(rk_merkle_unhex(bad, back), RK_ERR_INVALID);
    snprintf(bad, sizeof bad, "%s0", text); /* one digit long */
    assert_int_equal(rk_merkle_unhex(bad, back), RK_ERR_INVALID);
    snprintf(bad, sizeof bad, "%.40sg%s", text, text + 41);
    assert_int_equal(rk_merkle_unhex(bad, back), RK_ERR_INVALID);
    assert_int_equal(rk_merkle_unhex("", back), RK_ERR_INVALID);
    assert_int_equal(rk_merkle_unhex(NULL, back), RK_ERR_INVALID);
    assert_memory_equal(back, roots[1], 32); /* untouched on failure */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(known_leaf_hashes_and_roots),
        cmocka_unit_test(known_proofs),
        cmocka_unit_test(roots_match_reference_and_frontier),
        cmocka_unit_test(frontier_full),
        cmocka_unit_test(inclusion_every_leaf),
        cmocka_unit_test(consistency_every_pair),
        cmocka_unit_test(consistency_from_empty),
        cmocka_unit_test(bad_arguments),
        cmocka_unit_test(hex_round_trip),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
