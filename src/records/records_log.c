#include "records/records_log.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/cms.h"
#include "net/http_server.h"
#include "lib/log.h"
#include "node/node.h"
#include "records/records.h"
#include "lib/util.h"

struct rk_records_log {
    rk_node *node;
    rk_db *db;
    int64_t interval_ms;
    pthread_mutex_t lock;          /* guards the frontier and the head state */
    pthread_cond_t wake;
    rk_merkle_frontier frontier;   /* every record appended so far */
    uint64_t head_size;            /* size of the last signed head */
    int64_t head_time_ms;
    pthread_t thread;
    int running, stopping;
};

/* ---------- signatures ---------- */

static int head_message(char *out, size_t outlen, const char *node_id, uint64_t size, const rk_hash root,
                        int64_t time_ms)
{
    char hex[65];
    rk_merkle_hex(root, hex);
    return snprintf(out, outlen, "renkei-tree-head/1\n%s\n%llu\n%s\n%lld\n", node_id, (unsigned long long)size, hex,
                    (long long)time_ms);
}

rk_rc rk_head_sign(EVP_PKEY *key, const char *node_id, uint64_t size, const rk_hash root, int64_t time_ms,
                   char **signature_b64)
{
    char msg[256];
    int n = head_message(msg, sizeof msg, node_id, size, root, time_ms);
    unsigned char sig[256];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    rk_rc rc = RK_ERR_CRYPTO;
    if (ctx && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
        EVP_DigestSign(ctx, sig, &siglen, (unsigned char *)msg, (size_t)n) == 1)
        rc = rk_base64_encode(sig, siglen, signature_b64);
    EVP_MD_CTX_free(ctx);
    return rc;
}

rk_rc rk_head_verify(X509 *cert, const char *node_id, uint64_t size, const rk_hash root, int64_t time_ms,
                     const char *signature_b64)
{
    char msg[256];
    int n = head_message(msg, sizeof msg, node_id, size, root, time_ms);
    unsigned char *sig = NULL;
    size_t siglen = 0;
    if (rk_base64_decode(signature_b64, &sig, &siglen) != RK_OK)
        return RK_ERR_CRYPTO;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    rk_rc rc = ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, X509_get0_pubkey(cert)) == 1 &&
                       EVP_DigestVerify(ctx, sig, siglen, (unsigned char *)msg, (size_t)n) == 1
                   ? RK_OK : RK_ERR_CRYPTO;
    EVP_MD_CTX_free(ctx);
    free(sig);
    return rc;
}

/* ---------- leaves ---------- */

#define LEAVES_CHUNK 4096

typedef struct leaves_args {
    uint64_t from, count;
    rk_hash *out;
} leaves_args;

/* Reads leaves [from, from + count); RK_ERR_STORE unless all were read. */
static rk_rc read_leaves_fn(rk_db *db, void *arg)
{
    leaves_args *a = arg;
    uint64_t got = 0;
    rk_stmt *q = rk_db_stmt(db, "SELECT leaf_hash FROM records WHERE seq > ? ORDER BY seq LIMIT ?");
    if (!q)
        return RK_ERR_STORE;
    rk_bind_int(q, 1, (int64_t)a->from);
    rk_bind_int(q, 2, (int64_t)a->count);
    while (got < a->count && rk_stmt_next(q) == RK_OK)
        if (rk_merkle_unhex(rk_col_text(q, 0), a->out[got++]) != RK_OK)
            return RK_ERR_STORE;
    return got == a->count ? RK_OK : RK_ERR_STORE;
}

/* The log is append-only, so its first n leaves can be read in chunks,
 * letting writes in between: a long proof never stalls the node's writes. */
rk_rc rk_records_leaves(rk_db *db, uint64_t n, rk_hash **out)
{
    rk_hash *leaves = malloc((n ? n : 1) * sizeof *leaves);
    if (!leaves)
        return RK_ERR_NOMEM;
    for (uint64_t from = 0; from < n; from += LEAVES_CHUNK) {
        uint64_t count = n - from < LEAVES_CHUNK ? n - from : LEAVES_CHUNK;
        leaves_args a = {from, count, leaves + from}; /* seq counts from 1 */
        if (rk_db_scan(db, read_leaves_fn, &a) != RK_OK) {
            free(leaves);
            return RK_ERR_STORE;
        }
    }
    *out = leaves;
    return RK_OK;
}

/* Appends to the frontier the leaves recorded since (log->lock held). A
 * scan: the node's writes go on meanwhile. */
static rk_rc catch_up_fn(rk_db *db, void *arg)
{
    rk_merkle_frontier *f = arg;
    /* seq counts from 1 without gaps (read_leaves_fn relies on it too) */
    rk_stmt *q = rk_db_stmt(db, "SELECT leaf_hash FROM records WHERE seq > ? ORDER BY seq");
    if (!q)
        return RK_ERR_STORE;
    rk_bind_int(q, 1, (int64_t)f->size);
    rk_rc rc;
    rk_hash leaf;
    while ((rc = rk_stmt_next(q)) == RK_OK) {
        if ((rc = rk_merkle_unhex(rk_col_text(q, 0), leaf)) != RK_OK)
            return rc;
        rk_merkle_frontier_append(f, leaf);
    }
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

static rk_rc catch_up(rk_records_log *log)
{
    return rk_db_scan(log->db, catch_up_fn, &log->frontier);
}

/* ---------- heads ---------- */

typedef struct head_row {
    uint64_t size;
    char root[65];
    int64_t time_ms;
    const char *signature;
} head_row;

static rk_rc store_head_fn(rk_db *db, void *arg)
{
    const head_row *h = arg;
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO tree_heads(size, root, time_ms, signature) VALUES (?,?,?,?)"
                                 " ON CONFLICT (size) DO NOTHING");
    if (!st)
        return RK_ERR_STORE;
    rk_bind_int(st, 1, (int64_t)h->size);
    rk_bind_text(st, 2, h->root);
    rk_bind_int(st, 3, h->time_ms);
    rk_bind_text(st, 4, h->signature);
    return rk_stmt_exec(st);
}

static rk_rc store_head(rk_db *db, uint64_t size, const rk_hash root, int64_t time_ms, const char *sig)
{
    head_row h = {.size = size, .time_ms = time_ms, .signature = sig};
    rk_merkle_hex(root, h.root);
    return rk_db_write(db, store_head_fn, &h);
}

/* Lock held. */
static rk_rc sign_locked(rk_records_log *log)
{
    rk_rc rc = catch_up(log);
    if (rc != RK_OK || log->frontier.size == log->head_size)
        return rc;
    rk_hash root;
    char *sig = NULL;
    int64_t now = rk_node_now_ms(log->node);
    rk_merkle_frontier_root(&log->frontier, root);
    rc = rk_head_sign(log->node->key, log->node->cfg.id, log->frontier.size, root, now, &sig);
    if (rc == RK_OK)
        rc = store_head(log->db, log->frontier.size, root, now, sig);
    if (rc == RK_OK) {
        log->head_size = log->frontier.size;
        log->head_time_ms = now;
    }
    free(sig);
    return rc;
}


int64_t rk_records_log_head_age_ms(rk_records_log *log)
{
    pthread_mutex_lock(&log->lock);
    int64_t age = log->head_time_ms ? rk_node_now_ms(log->node) - log->head_time_ms : -1;
    pthread_mutex_unlock(&log->lock);
    return age;
}

static void *signer_main(void *arg)
{
    rk_records_log *log = arg;
    pthread_mutex_lock(&log->lock);
    while (!log->stopping) {
        if (sign_locked(log) != RK_OK)
            rk_error("records log: could not sign a tree head");
        rk_cond_wait_ms(&log->wake, &log->lock, log->interval_ms);
    }
    sign_locked(log); /* a last head for what came before the stop */
    pthread_mutex_unlock(&log->lock);
    return NULL;
}

static rk_rc last_head_fn(rk_db *db, void *arg)
{
    rk_records_log *log = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT size, time_ms FROM tree_heads ORDER BY size DESC LIMIT 1");
    rk_rc rc = q ? rk_stmt_next(q) : RK_ERR_STORE;
    if (rc == RK_OK) {
        log->head_size = (uint64_t)rk_col_int(q, 0);
        log->head_time_ms = rk_col_int(q, 1);
    }
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

rk_rc rk_records_log_start(rk_node *node, rk_db *db, int64_t interval_ms, rk_records_log **out)
{
    rk_records_log *log = calloc(1, sizeof *log);
    if (!log)
        return RK_ERR_NOMEM;
    log->node = node;
    log->db = db;
    log->interval_ms = interval_ms > 0 ? interval_ms : 2000;
    pthread_mutex_init(&log->lock, NULL);
    pthread_cond_init(&log->wake, NULL);
    rk_merkle_frontier_init(&log->frontier);
    rk_rc rc = rk_db_read(db, last_head_fn, log);
    if (rc == RK_OK)
        rc = catch_up(log);
    if (rc == RK_OK && pthread_create(&log->thread, NULL, signer_main, log) != 0)
        rc = RK_ERR_NOMEM;
    if (rc != RK_OK) {
        pthread_mutex_destroy(&log->lock);
        pthread_cond_destroy(&log->wake);
        free(log);
        return rc;
    }
    log->running = 1;
    *out = log;
    return RK_OK;
}

void rk_records_log_stop(rk_records_log *log)
{
    if (!log)
        return;
    pthread_mutex_lock(&log->lock);
    log->stopping = 1;
    pthread_cond_broadcast(&log->wake);
    pthread_mutex_unlock(&log->lock);
    if (log->running)
        pthread_join(log->thread, NULL);
    pthread_mutex_destroy(&log->lock);
    pthread_cond_destroy(&log->wake);
    free(log);
}

/* ---------- proofs over HTTP ---------- */

typedef struct head_json_args {
    const char *node_id;
    uint64_t size;
    json_t *head;
} head_json_args;

static rk_rc head_json_fn(rk_db *db, void *arg)
{
    head_json_args *a = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT size, root, time_ms, signature FROM tree_heads WHERE size = ?");
    if (!q)
        return RK_ERR_STORE;
    rk_bind_int(q, 1, (int64_t)a->size);
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK)
        a->head = json_pack("{s:s,s:I,s:s,s:I,s:s}", "node", a->node_id, "size", (json_int_t)rk_col_int(q, 0),
                            "root", rk_col_text(q, 1), "time_ms", (json_int_t)rk_col_int(q, 2), "signature",
                            rk_col_text(q, 3));
    return rc;
}

/* The signed head of exactly this size, as JSON; NULL if none. */
static json_t *head_json(rk_records_log *log, uint64_t size)
{
    head_json_args a = {log->node->cfg.id, size, NULL};
    rk_db_read(log->db, head_json_fn, &a);
    return a.head;
}

static json_t *hashes_json(const rk_hash *h, size_t n)
{
    json_t *arr = json_array();
    char hex[65];
    for (size_t i = 0; i < n; i++) {
        rk_merkle_hex(h[i], hex);
        json_array_append_new(arr, json_string(hex));
    }
    return arr;
}

typedef struct leaf_args {
    const char *exchange_id, *side;
    uint64_t *index;
    char *leaf;
} leaf_args;

static rk_rc find_leaf_fn(rk_db *db, void *arg)
{
    leaf_args *a = arg;
    /* seq counts from 1 without gaps (append-only), so the leaf index is seq - 1 */
    rk_stmt *q = rk_db_stmt(db, "SELECT seq - 1, leaf_hash FROM records WHERE exchange_id = ?"
                                " AND (CAST(? AS TEXT) IS NULL OR side = ?) ORDER BY seq LIMIT 1");
    if (!q)
        return RK_ERR_STORE;
    rk_bind_text(q, 1, a->exchange_id);
    rk_bind_text(q, 2, a->side);
    rk_bind_text(q, 3, a->side);
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK) {
        *a->index = (uint64_t)rk_col_int(q, 0);
        rk_col_copy(q, 1, a->leaf, 65);
    }
    return rc;
}

/* Position (0-based) and leaf hash of the record of an exchange. */
static rk_rc find_leaf(rk_db *db, const char *exchange_id, const char *side, uint64_t *index, char leaf[65])
{
    leaf_args a = {exchange_id, side, index, leaf};
    return rk_db_read(db, find_leaf_fn, &a);
}

void rk_records_proof_serve(rk_records_log *log, const rk_request *req, rk_response *resp)
{
    char exchange_id[RK_EXCHANGE_ID_MAX + 1], side[16], leaf[65];
    uint64_t index = 0;
    int has_side = rk_query_param(req, "side", side, sizeof side);
    if (rk_query_param(req, "exchange_id", exchange_id, sizeof exchange_id) != 1 || has_side < 0) {
        rk_reply_error(resp, 400, "invalid_field", "exchange_id is required (and side, if given, is a side)");
        return;
    }
    rk_rc rc = find_leaf(log->db, exchange_id, has_side == 1 ? side : NULL, &index, leaf);
    if (rc != RK_OK) {
        rk_reply_error(resp, rc == RK_ERR_NOT_FOUND ? 404 : 500, rc == RK_ERR_NOT_FOUND ? "not_found" : "store_error",
                       "no record of exchange %s here", exchange_id);
        return;
    }
    pthread_mutex_lock(&log->lock);
    if (index >= log->head_size)
        sign_locked(log); /* the record is newer than the last head: sign one now */
    uint64_t size = log->head_size;
    pthread_mutex_unlock(&log->lock);
    rk_hash *leaves = NULL, *path = NULL;
    size_t path_len = 0;
    rc = index < size ? rk_records_leaves(log->db, size, &leaves) : RK_ERR_STORE;
    if (rc == RK_OK)
        rc = rk_merkle_inclusion_proof(leaves, size, index, &path, &path_len);
    json_t *head = rc == RK_OK ? head_json(log, size) : NULL;
    if (!head)
        rk_reply_error(resp, 500, "store_error", "no signed head covers the record yet");
    else
        rk_reply_json(resp, 200, json_pack("{s:s,s:I,s:I,s:s,s:o,s:o}", "exchange_id", exchange_id, "leaf_index",
                                           (json_int_t)index, "tree_size", (json_int_t)size, "leaf_hash", leaf,
                                           "audit_path", hashes_json(path, path_len), "head", head));
    free(leaves);
    free(path);
}

void rk_records_consistency_serve(rk_records_log *log, const rk_request *req, rk_response *resp)
{
    char from_s[24], to_s[24];
    long long from = -1, to = -1;
    if (rk_query_param(req, "from", from_s, sizeof from_s) == 1)
        from = strtoll(from_s, NULL, 10);
    if (rk_query_param(req, "to", to_s, sizeof to_s) == 1)
        to = strtoll(to_s, NULL, 10);
    pthread_mutex_lock(&log->lock);
    uint64_t latest = log->head_size;
    pthread_mutex_unlock(&log->lock);
    if (from < 1 || to < from || (uint64_t)to > latest) {
        rk_reply_error(resp, 400, "invalid_field", "need 1 <= from <= to <= %llu (the latest signed head)",
                       (unsigned long long)latest);
        return;
    }
    rk_hash *leaves = NULL, *proof = NULL;
    size_t proof_len = 0;
    rk_rc rc = rk_records_leaves(log->db, (uint64_t)to, &leaves);
    if (rc == RK_OK)
        rc = rk_merkle_consistency_proof(leaves, (size_t)to, (size_t)from, &proof, &proof_len);
    if (rc != RK_OK) {
        rk_reply_error(resp, 500, "store_error", "the proof could not be computed");
    } else {
        json_t *from_head = head_json(log, (uint64_t)from), *to_head = head_json(log, (uint64_t)to);
        rk_reply_json(resp, 200, json_pack("{s:I,s:I,s:o,s:o,s:o}", "from", (json_int_t)from, "to", (json_int_t)to,
                                           "proof", hashes_json(proof, proof_len), "from_head",
                                           from_head ? from_head : json_null(), "to_head",
                                           to_head ? to_head : json_null()));
    }
    free(leaves);
    free(proof);
}

typedef struct sizes_args {
    uint64_t *sizes;
    size_t n, cap;
} sizes_args;

static rk_rc head_sizes_fn(rk_db *db, void *arg)
{
    sizes_args *a = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT size FROM tree_heads ORDER BY size DESC LIMIT 1000");
    if (!q)
        return RK_ERR_STORE;
    while (a->n < a->cap && rk_stmt_next(q) == RK_OK)
        a->sizes[a->n++] = (uint64_t)rk_col_int(q, 0);
    return RK_OK;
}

void rk_records_heads_serve(rk_records_log *log, const rk_request *req, rk_response *resp)
{
    json_t *arr = json_array();
    uint64_t sizes[1000];
    sizes_args a = {sizes, 0, 1000};
    rk_db_read(log->db, head_sizes_fn, &a);
    for (size_t i = 0; i < a.n; i++) {
        json_t *h = head_json(log, sizes[i]);
        if (h)
            json_array_append_new(arr, h);
    }
    rk_reply_json(resp, 200, json_pack("{s:o}", "heads", arr));
}

/* ---------- iteration, for a tool ---------- */

typedef struct heads_each_args {
    rk_tree_head_fn fn;
    void *arg;
} heads_each_args;

static rk_rc heads_each_fn(rk_db *db, void *arg)
{
    heads_each_args *a = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT size, root, time_ms, signature FROM tree_heads ORDER BY size");
    if (!q)
        return RK_ERR_STORE;
    rk_rc rc;
    while ((rc = rk_stmt_next(q)) == RK_OK)
        if ((rc = a->fn(a->arg, rk_col_int(q, 0), rk_col_text(q, 1), rk_col_int(q, 2), rk_col_text(q, 3))) != RK_OK)
            return rc;
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

rk_rc rk_tree_heads_each(rk_db *db, rk_tree_head_fn fn, void *arg)
{
    heads_each_args a = {fn, arg};
    return rk_db_scan(db, heads_each_fn, &a);
}
