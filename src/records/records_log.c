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

/* Reads leaves [from, from + count) under the lock; 0 when all were read. */
static int read_leaves(rk_db *db, uint64_t from, uint64_t count, rk_hash *out)
{
    uint64_t got = 0;
    rk_db_scan_lock(db);
    sqlite3_stmt *q = rk_db_sqlite_stmt(db, "SELECT leaf_hash FROM records WHERE seq > ? ORDER BY seq LIMIT ?");
    if (q) {
        sqlite3_bind_int64(q, 1, (sqlite3_int64)from);
        sqlite3_bind_int64(q, 2, (sqlite3_int64)count);
        while (got < count && sqlite3_step(q) == SQLITE_ROW)
            if (rk_merkle_unhex((const char *)sqlite3_column_text(q, 0), out[got++]) != RK_OK)
                break;
        sqlite3_reset(q);
    }
    rk_db_read_unlock(db);
    return got == count ? 0 : -1;
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
        if (read_leaves(db, from, count, leaves + from) != 0) { /* seq counts from 1 */
            free(leaves);
            return RK_ERR_STORE;
        }
    }
    *out = leaves;
    return RK_OK;
}

/* Appends to the frontier the leaves recorded since (log->lock held). Read
 * on the read-only connection: the node's writes go on meanwhile. */
static rk_rc catch_up(rk_records_log *log)
{
    rk_db_scan_lock(log->db);
    /* seq counts from 1 without gaps (read_leaves relies on it too) */
    sqlite3_stmt *q = rk_db_sqlite_stmt(log->db, "SELECT leaf_hash FROM records WHERE seq > ? ORDER BY seq");
    rk_rc rc = q ? RK_OK : RK_ERR_STORE;
    if (q) {
        sqlite3_bind_int64(q, 1, (sqlite3_int64)log->frontier.size);
        rk_hash leaf;
        while (rc == RK_OK && sqlite3_step(q) == SQLITE_ROW)
            if ((rc = rk_merkle_unhex((const char *)sqlite3_column_text(q, 0), leaf)) == RK_OK)
                rk_merkle_frontier_append(&log->frontier, leaf);
        sqlite3_reset(q);
    }
    rk_db_read_unlock(log->db);
    return rc;
}

/* ---------- heads ---------- */

static rk_rc store_head(rk_db *db, uint64_t size, const rk_hash root, int64_t time_ms, const char *sig)
{
    char hex[65];
    rk_merkle_hex(root, hex);
    rk_db_lock(db);
    sqlite3_stmt *st = rk_db_sqlite_stmt(db, "INSERT OR IGNORE INTO tree_heads(size, root, time_ms, signature) VALUES (?,?,?,?)");
    rk_rc rc = RK_ERR_STORE;
    if (st) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)size);
        sqlite3_bind_text(st, 2, hex, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, time_ms);
        sqlite3_bind_text(st, 4, sig, -1, SQLITE_STATIC);
        rc = rk_db_step_rc(db, sqlite3_step(st));
        sqlite3_reset(st);
    }
    rk_db_unlock(db);
    return rc;
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

static void load_last_head(rk_records_log *log)
{
    rk_db_lock(log->db);
    sqlite3_stmt *q = rk_db_sqlite_stmt(log->db, "SELECT size, time_ms FROM tree_heads ORDER BY size DESC LIMIT 1");
    if (q && sqlite3_step(q) == SQLITE_ROW) {
        log->head_size = (uint64_t)sqlite3_column_int64(q, 0);
        log->head_time_ms = sqlite3_column_int64(q, 1);
    }
    if (q)
        sqlite3_reset(q);
    rk_db_unlock(log->db);
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
    load_last_head(log);
    rk_rc rc = catch_up(log);
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

/* The signed head of exactly this size, as JSON; NULL if none. */
static json_t *head_json(rk_records_log *log, uint64_t size)
{
    json_t *h = NULL;
    rk_db_lock(log->db);
    sqlite3_stmt *q = rk_db_sqlite_stmt(log->db, "SELECT size, root, time_ms, signature FROM tree_heads WHERE size = ?");
    if (q) {
        sqlite3_bind_int64(q, 1, (sqlite3_int64)size);
        if (sqlite3_step(q) == SQLITE_ROW)
            h = json_pack("{s:s,s:I,s:s,s:I,s:s}", "node", log->node->cfg.id, "size",
                          (json_int_t)sqlite3_column_int64(q, 0), "root", (const char *)sqlite3_column_text(q, 1),
                          "time_ms", (json_int_t)sqlite3_column_int64(q, 2), "signature",
                          (const char *)sqlite3_column_text(q, 3));
        sqlite3_reset(q);
    }
    rk_db_unlock(log->db);
    return h;
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

/* Position (0-based) and leaf hash of the record of an exchange. */
static rk_rc find_leaf(rk_db *db, const char *exchange_id, const char *side, uint64_t *index, char leaf[65])
{
    rk_db_lock(db);
    /* seq counts from 1 without gaps (append-only), so the leaf index is seq - 1 */
    sqlite3_stmt *q = rk_db_sqlite_stmt(db, "SELECT seq - 1, leaf_hash FROM records"
                                     " WHERE exchange_id = ?1 AND (?2 IS NULL OR side = ?2) ORDER BY seq LIMIT 1");
    rk_rc rc = q ? RK_ERR_NOT_FOUND : RK_ERR_STORE;
    if (q) {
        sqlite3_bind_text(q, 1, exchange_id, -1, SQLITE_STATIC);
        if (side)
            sqlite3_bind_text(q, 2, side, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW) {
            *index = (uint64_t)sqlite3_column_int64(q, 0);
            snprintf(leaf, 65, "%s", (const char *)sqlite3_column_text(q, 1));
            rc = RK_OK;
        }
        sqlite3_reset(q);
    }
    rk_db_unlock(db);
    return rc;
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

void rk_records_heads_serve(rk_records_log *log, const rk_request *req, rk_response *resp)
{
    json_t *arr = json_array();
    rk_db_lock(log->db);
    sqlite3_stmt *q = rk_db_sqlite_stmt(log->db, "SELECT size FROM tree_heads ORDER BY size DESC LIMIT 1000");
    uint64_t sizes[1000];
    size_t n = 0;
    while (q && n < 1000 && sqlite3_step(q) == SQLITE_ROW)
        sizes[n++] = (uint64_t)sqlite3_column_int64(q, 0);
    if (q)
        sqlite3_reset(q);
    rk_db_unlock(log->db);
    for (size_t i = 0; i < n; i++) {
        json_t *h = head_json(log, sizes[i]);
        if (h)
            json_array_append_new(arr, h);
    }
    rk_reply_json(resp, 200, json_pack("{s:o}", "heads", arr));
}
