/* merkle.h — the append-only Merkle tree of RFC 9162 (Certificate
 * Transparency v2) §2.1, hashed with SHA-256.
 *
 * Every renkei node keeps its 法23条 records (who asked whom for what, and
 * what was given) in an append-only log. This module is the pure arithmetic
 * of that log: the tree head it signs (signed tree heads), inclusion proofs
 * that a record is in a given tree head, and consistency proofs that a later
 * tree head only appended to an earlier one. No I/O, no storage: the caller
 * supplies the leaf hashes.
 *
 *   leaf hash      SHA-256(0x00 || leaf data)
 *   interior node  SHA-256(0x01 || left || right)
 *   empty tree     SHA-256("")
 *   MTH(D[n]), n > 1, splits at k, the largest power of two smaller than n.
 *
 * Proofs are lists of 32-byte hashes in the RFC's order (leaf side first).
 * Sizes are capped at SIZE_MAX / 32 leaves so an array of hashes never
 * overflows. */
#ifndef RK_MERKLE_H
#define RK_MERKLE_H

#include <stddef.h>
#include <stdint.h>
#include "lib/err.h"

typedef uint8_t rk_hash[32];

void rk_merkle_leaf_hash(const void *data, size_t len, rk_hash out);
void rk_merkle_node_hash(const rk_hash left, const rk_hash right, rk_hash out);

/* Root (MTH) of leaves[0..n) (leaf hashes); SHA-256("") when n == 0. */
rk_rc rk_merkle_root(const rk_hash *leaves, size_t n, rk_hash out);

/* Inclusion proof (audit path) for leaf index m < n in a tree of size n:
 * RFC 9162 §2.1.3.1 PATH(m, D[n]). *path is malloc'ed (NULL when empty, which
 * is when n == 1); *path_len hashes. */
rk_rc rk_merkle_inclusion_proof(const rk_hash *leaves, size_t n, size_t m, rk_hash **path,
                                size_t *path_len);

/* Where proofs read a large tree from without holding its leaves: the hash
 * of the perfect subtree of 2^height leaves that starts at leaf
 * index << height (records/tiles.h reads them from stored tiles). */
typedef struct rk_merkle_source {
    rk_rc (*subtree)(void *arg, unsigned height, uint64_t index, rk_hash out);
    void *arg;
} rk_merkle_source;

/* The same root and proofs from a source; the source is asked O(log n)
 * times per level, for perfect subtrees inside the first n leaves only. An
 * error of the source is returned as it is. */
rk_rc rk_merkle_root_from(const rk_merkle_source *src, uint64_t n, rk_hash out);
rk_rc rk_merkle_inclusion_proof_from(const rk_merkle_source *src, uint64_t n, uint64_t m, rk_hash **path,
                                     size_t *path_len);
rk_rc rk_merkle_consistency_proof_from(const rk_merkle_source *src, uint64_t n, uint64_t m, rk_hash **proof,
                                       size_t *proof_len);

/* Verifies an inclusion proof: RFC 9162 §2.1.3.2. RK_OK or RK_ERR_INVALID.
 * The proof binds the leaf to the root, not to n: the caller must take n and
 * root from the same signed tree head. */
rk_rc rk_merkle_verify_inclusion(const rk_hash leaf, size_t m, size_t n, const rk_hash *path,
                                 size_t path_len, const rk_hash root);

/* Consistency proof between sizes m <= n: RFC 9162 §2.1.4.1 PROOF(m, D[n]).
 * Empty (*proof NULL) when m == n or m == 0. */
rk_rc rk_merkle_consistency_proof(const rk_hash *leaves, size_t n, size_t m, rk_hash **proof,
                                  size_t *proof_len);

/* Verifies a consistency proof: RFC 9162 §2.1.4.2. RK_OK or RK_ERR_INVALID.
 * m == n needs an empty proof and equal roots; m == 0 needs an empty proof
 * and root_m == SHA-256(""). */
rk_rc rk_merkle_verify_consistency(size_t m, size_t n, const rk_hash root_m, const rk_hash root_n,
                                   const rk_hash *proof, size_t proof_len);

/* Incremental root: the compact range of the right edge. nodes[i] is the
 * root of a perfect subtree of 2^i leaves when bit i of size is set.
 * Appending is O(log n) (amortised O(1)); the root is O(log n). */
typedef struct rk_merkle_frontier {
    rk_hash nodes[64];
    uint64_t size;
} rk_merkle_frontier;

void rk_merkle_frontier_init(rk_merkle_frontier *f);
/* Appends a leaf hash. A frontier of UINT64_MAX leaves is full and ignores it. */
void rk_merkle_frontier_append(rk_merkle_frontier *f, const rk_hash leaf);
/* Equals rk_merkle_root of all appended leaves. */
void rk_merkle_frontier_root(const rk_merkle_frontier *f, rk_hash out);

/* Lowercase hex; exactly 64 hex digits back (RK_ERR_INVALID otherwise). */
void rk_merkle_hex(const rk_hash h, char out[65]);
rk_rc rk_merkle_unhex(const char *hex, rk_hash out);

#endif
