/* disclosure.h — a person's records at a node, with what proves them, for
 * the person to see (法23条, DESIGN §2.5): each record's leaf — the exact
 * bytes the records log hashed — with its RFC 9162 inclusion proof, read
 * from the stored tiles, against the newest checkpoint that every witness
 * cosigned. Whoever holds the leaf, the proof and the checkpoint checks
 * them alone, with the log's and the witnesses' vkeys (network.json). */
#ifndef RK_RECORDS_DISCLOSURE_H
#define RK_RECORDS_DISCLOSURE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "records/checkpoint.h"
#include "records/merkle.h"
#include "records/records.h"
#include "store/db.h"

#define RK_DISCLOSURE_HEADS 64 /* the newest heads looked at for one every witness cosigned */

/* A signed head with its C2SP checkpoint and the cosignatures it has. */
typedef struct rk_disclosure_head {
    uint64_t size;
    rk_hash root;
    int64_t time_ms;
    char *checkpoint; /* the note and its cosignature lines, malloc'ed */
} rk_disclosure_head;

/* The newest head (of the last RK_DISCLOSURE_HEADS) whose checkpoint holds a
 * cosignature of every witness in `witnesses` that verifies (with none, the
 * newest head). RK_ERR_NOT_FOUND when there is none. */
rk_rc rk_disclosure_head_find(rk_db *db, const rk_vkey *witnesses, size_t n_witnesses, rk_disclosure_head *out);
void rk_disclosure_head_clear(rk_disclosure_head *h);
/* The head as the portal's answer carries it: {"tree_size", "root_hash"
 * (base64), "timestamp" (ms), "signature" (base64 of the log's signature
 * line), "cosignatures" (the witnesses' lines), "checkpoint" (verbatim)}. */
json_t *rk_disclosure_head_json(const rk_disclosure_head *h);

/* One record of the person's, with its leaf and proof. */
typedef struct rk_disclosed {
    int64_t seq;          /* leaf index + 1 */
    rk_record rec;
    char *leaf;           /* the leaf's bytes (rk_record_leaf_text), malloc'ed */
    rk_hash leaf_hash;    /* SHA-256(0x00 ‖ leaf) */
    rk_hash *proof;       /* the inclusion proof in the head's tree; NULL (and
                             proven 0) when the record is newer than the head */
    size_t proof_len;
    int proven;
} rk_disclosed;

/* The records whose subject is `subject`, newest first, before seq
 * before_seq (0: from the newest), at most limit (1..500), each with its
 * proof in the tree of `size` leaves when it is in it. *next_before: the
 * seq to go on from, 0 when there is no more. *out is the caller's to free
 * with rk_disclosed_free. */
rk_rc rk_disclosure_records(rk_db *db, const char *subject, int64_t before_seq, int limit, uint64_t size,
                            rk_disclosed **out, size_t *n, int64_t *next_before);
void rk_disclosed_free(rk_disclosed *d, size_t n);

/* Base64 of hashes, as a JSON array. */
json_t *rk_disclosure_hashes_json(const rk_hash *h, size_t n);

#endif
