/* records_log.h — the records of a node as a verifiable log (standard
 * 第3-1(2), 法23条; RFC 9162 §2.1).
 *
 * Each record is a leaf of an append-only Merkle tree (records/merkle.h),
 * kept as C2SP tiles (records/tiles.h). The node signs a tree head — size,
 * root, time — with its own key every few seconds while records arrive,
 * and the same head as a C2SP checkpoint with its Ed25519 log key
 * (records/checkpoint.h), and keeps every head it signed. Anyone with
 * the node's certificate can then check that a record is in the log
 * (inclusion proof), that a later head only appended to an earlier one
 * (consistency proof), and that nothing in the database was altered,
 * removed or reordered (`renkei records verify`). */
#ifndef RK_RECORDS_LOG_H
#define RK_RECORDS_LOG_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdint.h>
#include "store/db.h"
#include "lib/err.h"
#include "records/merkle.h"

struct rk_node;
struct rk_request;
struct rk_response;

typedef struct rk_records_log rk_records_log;

/* Loads the log's state and starts signing heads every interval_ms while
 * records arrive — when this instance leads the log (DESIGN §6: one of the
 * instances over a database at a time; the others serve the heads it
 * signs). The node (its id and key) and db must outlive the log. */
rk_rc rk_records_log_start(struct rk_node *node, rk_db *db, int64_t interval_ms, rk_records_log **out);
void rk_records_log_stop(rk_records_log *log);
/* Milliseconds since the last signed head (-1: none yet). */
int64_t rk_records_log_head_age_ms(rk_records_log *log);

/* GET /v1/records/proof?exchange_id=…[&side=…] or ?index=I[&tree_size=N],
 * /v1/records/consistency?from=&to=, /v1/records/heads, and the log as C2SP
 * readers see it: GET /v1/checkpoint, GET /v1/tile/<L>/<N>[.p/<W>]
 * (records_serve.c). Proofs read O(log n) stored tiles. */
void rk_records_proof_serve(rk_records_log *log, const struct rk_request *req, struct rk_response *resp);
void rk_records_consistency_serve(rk_records_log *log, const struct rk_request *req, struct rk_response *resp);
void rk_records_heads_serve(rk_records_log *log, const struct rk_request *req, struct rk_response *resp);
void rk_records_checkpoint_serve(rk_records_log *log, const struct rk_request *req, struct rk_response *resp);
void rk_records_tile_serve(rk_records_log *log, const struct rk_request *req, struct rk_response *resp);

/* The signed statement of a head: "renkei-tree-head/1\n<node>\n<size>\n<root hex>\n<time_ms>\n". */
rk_rc rk_head_sign(EVP_PKEY *key, const char *node_id, uint64_t size, const rk_hash root, int64_t time_ms,
                   char **signature_b64);
rk_rc rk_head_verify(X509 *cert, const char *node_id, uint64_t size, const rk_hash root, int64_t time_ms,
                     const char *signature_b64);

/* A signed tree head as kept: its strings are valid during the call only
 * and may be NULL (a damaged database; signer NULL for the node's own heads
 * from before instances; cosignatures NULL when no witness cosigned). */
typedef struct rk_tree_head_row {
    int64_t size, time_ms;
    const char *root_hex, *signature_b64;
    const char *checkpoint;   /* its C2SP note */
    const char *signer;       /* the node id whose key signed it */
    const char *cosignatures; /* the witnesses' cosignature lines of its checkpoint */
} rk_tree_head_row;

/* Calls fn for every signed tree head kept in db, by size (a scan, for a
 * tool such as `renkei records verify`). Stops at the first result of fn
 * other than RK_OK and returns it. fn must not use db. */
typedef rk_rc (*rk_tree_head_fn)(void *arg, const rk_tree_head_row *head);
rk_rc rk_tree_heads_each(rk_db *db, rk_tree_head_fn fn, void *arg);

#endif
