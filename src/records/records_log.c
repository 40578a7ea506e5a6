/* records_log.c — the records log: its leaves, the frontier kept in memory
 * and the thread that signs and keeps tree heads. Its endpoints are in
 * records_serve.c. */
#include "records/records_log.h"
#include "records/records_log_priv.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "crypto/cms.h"
#include "lib/log.h"
#include "node/node.h"
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

/* ---------- for the endpoints (records_log_priv.h) ---------- */

rk_db *rk_records_log_db(rk_records_log *log)
{
    return log->db;
}

const char *rk_records_log_node_id(rk_records_log *log)
{
    return log->node->cfg.id;
}

uint64_t rk_records_log_head_size(rk_records_log *log)
{
    pthread_mutex_lock(&log->lock);
    uint64_t size = log->head_size;
    pthread_mutex_unlock(&log->lock);
    return size;
}

uint64_t rk_records_log_head_covering(rk_records_log *log, uint64_t index)
{
    pthread_mutex_lock(&log->lock);
    if (index >= log->head_size)
        sign_locked(log); /* the record is newer than the last head: sign one now */
    uint64_t size = log->head_size;
    pthread_mutex_unlock(&log->lock);
    return size;
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
