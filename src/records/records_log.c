/* records_log.c — the records log: its leaves, the tiles and frontier kept
 * as records arrive, and the thread that stores tiles and signs tree heads
 * and checkpoints. Its endpoints are in records_serve.c.
 *
 * Several instances over one database (DESIGN §6): every instance appends
 * records (their sequence is taken under a store-wide lock, records.c);
 * one at a time leads the log — holds RK_RECORDS_LEADER_LOCK — and only the
 * leader stores tiles and signs. The others read the latest head from the
 * store. A leader that lost its lock without knowing yet is fenced: the
 * tiles' state is stored by compare-and-set (tiles.c), so two signers never
 * fork the tree; and since records never change once numbered, any two
 * signers compute the same tiles for the same leaves. */
#include "records/records_log.h"
#include "records/records_log_priv.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <string.h>

#include "crypto/cms.h"
#include "crypto/pki.h"
#include "lib/log.h"
#include "lib/util.h"
#include "node/node.h"
#include "records/checkpoint.h"
#include "records/records.h"
#include "records/tiles.h"
#include "records/witnessing.h"

struct rk_records_log {
    rk_node *node;
    rk_db *db;
    int64_t interval_ms;
    EVP_PKEY *log_key;             /* Ed25519: signs the checkpoints (DESIGN §4.1) */
    char origin[RK_ORIGIN_MAX];
    pthread_mutex_t lock;          /* guards the tiles and the head state */
    pthread_cond_t wake;
    rk_tile_builder tiles;         /* every record appended so far: edge tiles and frontier */
    uint64_t head_size;            /* size of the last signed head */
    int64_t head_time_ms;
    char *checkpoint;              /* its signed note; NULL before the first */
    int leading;                   /* this instance leads the log: its tiles are the store's */
    rk_witnessing *witnessing;     /* the core's: its checkpoints to the witnesses; NULL elsewhere */
    rk_tile_cache *tile_cache;     /* the tiles of level >= 1 that proofs read (tiles.h); NULL: none */
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
    if (!signature_b64 || rk_base64_decode(signature_b64, &sig, &siglen) != RK_OK) /* a damaged row: NULL */
        return RK_ERR_CRYPTO;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    rk_rc rc = ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, X509_get0_pubkey(cert)) == 1 &&
                       EVP_DigestVerify(ctx, sig, siglen, (unsigned char *)msg, (size_t)n) == 1
                   ? RK_OK : RK_ERR_CRYPTO;
    EVP_MD_CTX_free(ctx);
    free(sig);
    return rc;
}

/* ---------- catching up: leaves into tiles ---------- */

#define CATCH_UP_CHUNK 65536  /* leaves read per scan */
#define STORE_EVERY_TILES 512 /* full tiles kept in memory before they are stored */

typedef struct catch_up_args {
    rk_tile_builder *b;
    uint64_t got;
    int again; /* a name newer than the scan's start: go on with the names loaded again */
} catch_up_args;

/* Appends to the tiles up to a chunk of the leaves recorded since, each
 * computed from its record's fields. A scan: the node's writes go on
 * meanwhile. */
static rk_rc catch_up_fn(rk_db *db, void *arg)
{
    catch_up_args *a = arg;
    rk_record_names *names = NULL;
    rk_rc rc = rk_record_names_load(db, &names); /* the node migrated its store */
    if (rc != RK_OK)
        return rc;
    /* seq counts from 1 without gaps: leaf i is seq i + 1 */
    rk_stmt *q = rk_db_stmt(db, "SELECT seq, " RK_RECORD_ROW_COLUMNS " FROM record_rows WHERE seq > ? ORDER BY seq"
                                " LIMIT ?");
    rk_bind_int(q, 1, (int64_t)a->b->frontier.size);
    rk_bind_int(q, 2, CATCH_UP_CHUNK);
    rk_hash leaf;
    rk_record r;
    while ((rc = rk_stmt_next(q)) == RK_OK) {
        if ((uint64_t)rk_col_int(q, 0) != a->b->frontier.size + 1) {
            rc = RK_ERR_STORE; /* a gap: the log cannot go on past it */
            break;
        }
        if (rk_record_from_stored(q, 1, names, &r) != RK_OK) {
            a->again = 1;
            break;
        }
        rk_record_leaf(&r, leaf);
        if ((rc = rk_tile_builder_append(a->b, leaf)) != RK_OK)
            break;
        a->got++;
    }
    rk_record_names_free(names);
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

static rk_rc store_tiles_fn(rk_db *db, void *arg)
{
    return rk_tiles_store(db, arg);
}

/* Lock held. A long catch-up (a log made before tiles, or one left behind)
 * stores its full tiles as it goes, so that memory stays bounded. */
static rk_rc catch_up(rk_records_log *log)
{
    for (;;) {
        catch_up_args a = {&log->tiles, 0, 0};
        rk_rc rc = rk_db_scan(log->db, catch_up_fn, &a);
        if (rc == RK_OK && rk_tile_builder_pending(&log->tiles) >= STORE_EVERY_TILES)
            rc = rk_db_write(log->db, store_tiles_fn, &log->tiles);
        if (rc != RK_OK || (a.got < CATCH_UP_CHUNK && !(a.again && a.got > 0)))
            return rc;
    }
}

/* ---------- heads ---------- */

typedef struct head_row {
    rk_tile_builder *tiles;
    uint64_t size;
    char root[65];
    int64_t time_ms;
    const char *signature, *checkpoint, *signer;
} head_row;

/* The tiles a head covers and the head, in one transaction: a head is
 * never published before the tiles that prove against it. */
static rk_rc store_head_fn(rk_db *db, void *arg)
{
    const head_row *h = arg;
    rk_rc rc = rk_tiles_store(db, h->tiles);
    if (rc != RK_OK || !h->signature)
        return rc;
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO tree_heads(size, root, time_ms, signature, checkpoint, signer)"
                                 " VALUES (?,?,?,?,?,?) ON CONFLICT (size) DO UPDATE SET checkpoint = excluded.checkpoint"
                                 " WHERE tree_heads.checkpoint IS NULL");
    rk_bind_int(st, 1, (int64_t)h->size);
    rk_bind_text(st, 2, h->root);
    rk_bind_int(st, 3, h->time_ms);
    rk_bind_text(st, 4, h->signature);
    rk_bind_text(st, 5, h->checkpoint);
    rk_bind_text(st, 6, h->signer);
    return rk_stmt_exec(st);
}

/* Lock held: stores what the tiles gained and signs a head and its
 * checkpoint when the log grew (or its last head has no checkpoint yet). */
static rk_rc sign_locked(rk_records_log *log)
{
    rk_rc rc = catch_up(log);
    if (rc != RK_OK)
        return rc;
    rk_tile_builder *t = &log->tiles;
    int need_head = t->frontier.size != log->head_size || !log->checkpoint; /* an empty log has a checkpoint too */
    if (!need_head && !rk_tile_builder_pending(t) && !t->edge_dirty)
        return RK_OK;
    head_row h = {.tiles = t, .size = t->frontier.size, .signer = log->node->cfg.id};
    rk_hash root;
    char *sig = NULL, *note = NULL;
    int64_t now = rk_node_now_ms(log->node);
    if (need_head) {
        rk_merkle_frontier_root(&t->frontier, root);
        rk_merkle_hex(root, h.root);
        h.time_ms = now;
        rc = rk_head_sign(rk_node_identity(log->node)->key, log->node->cfg.id, h.size, root, now, &sig);
        if (rc == RK_OK)
            rc = rk_checkpoint_sign(log->log_key, log->origin, h.size, root, &note);
        h.signature = sig;
        h.checkpoint = note;
    }
    if (rc == RK_OK)
        rc = rk_db_write(log->db, store_head_fn, &h);
    if (rc == RK_OK && need_head) {
        log->head_size = h.size;
        log->head_time_ms = now;
        free(log->checkpoint);
        log->checkpoint = note;
        note = NULL;
        rk_witnessing_offer(log->witnessing, log->checkpoint, h.size);
    }
    free(sig);
    free(note);
    return rc;
}

int64_t rk_records_log_head_age_ms(rk_records_log *log)
{
    pthread_mutex_lock(&log->lock);
    int64_t age = log->head_time_ms ? rk_node_now_ms(log->node) - log->head_time_ms : -1;
    pthread_mutex_unlock(&log->lock);
    return age;
}

static rk_rc last_head_fn(rk_db *db, void *arg)
{
    rk_records_log *log = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT size, time_ms, checkpoint, cosignatures FROM tree_heads"
                                " ORDER BY size DESC LIMIT 1");
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK && (uint64_t)rk_col_int(q, 0) >= log->head_size) {
        const char *note = rk_col_text(q, 2), *cosigs = rk_col_text(q, 3);
        char *copy = NULL;
        if (note && asprintf(&copy, "%s%s", note, cosigs ? cosigs : "") < 0)
            return RK_ERR_NOMEM;
        log->head_size = (uint64_t)rk_col_int(q, 0);
        log->head_time_ms = rk_col_int(q, 1);
        free(log->checkpoint);
        log->checkpoint = copy;
    }
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

/* Lock held: the latest head in the store (another instance signs it). */
static rk_rc read_last_head(rk_records_log *log)
{
    return rk_db_read(log->db, last_head_fn, log);
}

/* Lock held: one round of the signer. The leader stores tiles and signs;
 * an instance that becomes the leader starts from the stored state (the
 * previous leader's); the others follow the store's latest head. */
static rk_rc sign_round(rk_records_log *log)
{
    int leading = 0;
    rk_rc rc = rk_db_lead(log->db, RK_RECORDS_LEADER_LOCK, &leading);
    if (rc != RK_OK || !leading) {
        if (log->leading)
            rk_warn("records log: %s no longer leads the log", log->node->cfg.id);
        log->leading = 0;
        return rc != RK_OK ? rc : read_last_head(log);
    }
    if (!log->leading) {
        if ((rc = rk_tiles_load(log->db, &log->tiles)) != RK_OK || (rc = read_last_head(log)) != RK_OK)
            return rc;
        log->leading = 1;
        rk_info("records log: %s leads the log from size %llu", log->node->cfg.id,
                (unsigned long long)log->tiles.frontier.size);
    }
    rc = sign_locked(log);
    if (rc == RK_ERR_CONFLICT) { /* another signer moved the stored state: start again from it */
        rk_warn("records log: the stored log moved under %s; reloading it", log->node->cfg.id);
        log->leading = 0;
    }
    return rc;
}

static void *signer_main(void *arg)
{
    rk_records_log *log = arg;
    pthread_mutex_lock(&log->lock);
    int failing = 0;
    while (!log->stopping) {
        rk_rc rc = sign_round(log);
        if (rc != RK_OK && rc != RK_ERR_CONFLICT && !failing) /* once per outage */
            rk_error("records log: could not sign a tree head: %s", rk_strerror(rc));
        failing = rc != RK_OK && rc != RK_ERR_CONFLICT;
        rk_cond_wait_ms(&log->wake, &log->lock, log->interval_ms);
    }
    if (log->leading)
        sign_locked(log); /* a last head for what came before the stop */
    pthread_mutex_unlock(&log->lock);
    return NULL;
}

/* The log key and origin: network.json names them for this node (a node
 * whose entry names none signs as renkei/<network>/<id>); a key that is
 * not the one named is refused. */
static rk_rc load_log_key(rk_records_log *log)
{
    rk_node *node = log->node;
    const char *path = node->cfg.log_key;
    if (rk_pki_load_key(path, NULL, &log->log_key) != RK_OK || EVP_PKEY_get_id(log->log_key) != EVP_PKEY_ED25519) {
        rk_error("%s: cannot load the records log key (an Ed25519 key, mode 0600)", path);
        return RK_ERR_CRYPTO;
    }
    const rk_peer_node *self = node->self;
    if (self && self->log_origin[0])
        snprintf(log->origin, sizeof log->origin, "%s", self->log_origin);
    else
        snprintf(log->origin, sizeof log->origin, "renkei/%.48s/%.64s", node->registry->network, node->cfg.id);
    char vkey[RK_VKEY_MAX];
    if (rk_vkey_of(log->origin, log->log_key, vkey) != RK_OK) {
        rk_error("records log: origin '%s' cannot name a key", log->origin);
        return RK_ERR_INVALID;
    }
    if (self && self->log_vkey[0] && strcmp(vkey, self->log_vkey) != 0) {
        rk_error("%s: not the log key network.json names for %s (log_vkey)", path, node->cfg.id);
        return RK_ERR_DENIED;
    }
    return RK_OK;
}

/* From the witnessing thread: the cosignatures of the checkpoint of size,
 * served after it while it is the latest. */
static void cosigned(void *arg, uint64_t size, char *lines)
{
    rk_records_log *log = arg;
    pthread_mutex_lock(&log->lock);
    char *grown = NULL;
    if (size == log->head_size && log->checkpoint && asprintf(&grown, "%s%s", log->checkpoint, lines) > 0) {
        free(log->checkpoint);
        log->checkpoint = grown;
    }
    pthread_mutex_unlock(&log->lock);
    free(lines);
}

static void log_free(rk_records_log *log)
{
    pthread_mutex_destroy(&log->lock);
    pthread_cond_destroy(&log->wake);
    rk_tile_builder_free(&log->tiles);
    rk_tile_cache_free(log->tile_cache);
    EVP_PKEY_free(log->log_key); /* OpenSSL cleanses private key material on free */
    free(log->checkpoint);
    free(log);
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
    rk_tile_builder_init(&log->tiles);
    log->tile_cache = rk_tile_cache_new(RK_TILE_CACHE_BYTES);
    log->tiles.cache = log->tile_cache;
    rk_rc rc = load_log_key(log);
    if (rc == RK_OK)
        rc = read_last_head(log);
    if (rc == RK_OK)
        rk_tile_cache_warm(log->tile_cache, db, log->head_size);
    int leading = 0;
    if (rc == RK_OK)
        rc = rk_db_lead(db, RK_RECORDS_LEADER_LOCK, &leading);
    if (rc == RK_OK && leading) { /* the leader resumes from the stored tiles before it serves */
        rc = rk_tiles_load(db, &log->tiles);
        if (rc == RK_OK)
            rc = catch_up(log);
        log->leading = rc == RK_OK;
        if (log->leading)
            rk_info("records log: %s leads the log from size %llu", node->cfg.id,
                    (unsigned long long)log->tiles.frontier.size);
    }
    if (rc == RK_OK && node->self->role == RK_ROLE_CORE) /* DESIGN §4.1: the core's log is witnessed */
        rc = rk_witnessing_start(node, db, cosigned, log, &log->witnessing);
    if (rc == RK_OK && pthread_create(&log->thread, NULL, signer_main, log) != 0)
        rc = RK_ERR_NOMEM;
    if (rc != RK_OK) {
        rk_witnessing_stop(log->witnessing);
        log_free(log);
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
    rk_witnessing_stop(log->witnessing);
    log_free(log);
}

/* ---------- for the endpoints (records_log_priv.h) ---------- */

rk_db *rk_records_log_db(rk_records_log *log)
{
    return log->db;
}

rk_tile_cache *rk_records_log_tile_cache(rk_records_log *log)
{
    return log->tile_cache;
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

char *rk_records_log_checkpoint(rk_records_log *log)
{
    pthread_mutex_lock(&log->lock);
    char *note = log->checkpoint ? strdup(log->checkpoint) : NULL;
    pthread_mutex_unlock(&log->lock);
    return note;
}

const char *rk_records_log_origin(rk_records_log *log)
{
    return log->origin;
}

uint64_t rk_records_log_head_covering(rk_records_log *log, uint64_t index)
{
    pthread_mutex_lock(&log->lock);
    if (index >= log->head_size && log->leading)
        sign_locked(log); /* the record is newer than the last head: sign one now */
    /* another instance leads: its next head, within a few of its rounds */
    int64_t deadline = rk_now_ms() + 2 * log->interval_ms + 1000;
    while (index >= log->head_size && !log->leading && !log->stopping && rk_now_ms() < deadline) {
        rk_cond_wait_ms(&log->wake, &log->lock, 100);
        read_last_head(log);
    }
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
    rk_stmt *q = rk_db_stmt(db, "SELECT size, root, time_ms, signature, checkpoint, signer, cosignatures"
                                " FROM tree_heads ORDER BY size");
    rk_rc rc;
    while ((rc = rk_stmt_next(q)) == RK_OK) {
        rk_tree_head_row h = {.size = rk_col_int(q, 0), .root_hex = rk_col_text(q, 1), .time_ms = rk_col_int(q, 2),
                              .signature_b64 = rk_col_text(q, 3), .checkpoint = rk_col_text(q, 4),
                              .signer = rk_col_text(q, 5), .cosignatures = rk_col_text(q, 6)};
        if ((rc = a->fn(a->arg, &h)) != RK_OK)
            return rc;
    }
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

rk_rc rk_tree_heads_each(rk_db *db, rk_tree_head_fn fn, void *arg)
{
    heads_each_args a = {fn, arg};
    return rk_db_scan(db, heads_each_fn, &a);
}
