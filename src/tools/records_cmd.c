/* records_cmd.c — `renkei records verify DIR [--url URL]` (DESIGN §4.1, §5;
 * standard 第3-1(2), 法23条): checks the records logs of a network.
 *
 * From the databases (the default): for each node that keeps records (the
 * core and every agency node) it reads the node's store as its node.conf
 * names it, read-only, through the records module (no SQL here; the node
 * may be running; a network's PostgreSQL server that is down is started
 * for the reading and stopped after) in one
 * streaming pass, in memory bounded by the number of signed heads, not of
 * records. Each record's leaf is recomputed from its fields and checked
 * against its stored leaf (nothing altered), its position (nothing removed)
 * and the leaf the node's stored tiles signed at that position; the leaves
 * are built into tiles again and compared with the stored ones; every tree
 * head's signature and checkpoint are verified (with the node's certificate
 * and the log_vkey of network.json) and its root compared with the root of
 * the records up to its size. A leaf that differs from its tile is the
 * record's fault when the next head disagrees with the records, else the
 * tile's. Each finding names the node and the record or tile.
 *
 * A log's key rotates (`records rotate-log-key`): each checkpoint is checked
 * with the key valid at its head's time (log_vkey_history), and a renewed
 * node's heads before the renewal with its previous certificate.
 *
 * With --url: checks a running node as an auditor without its database
 * would, from its checkpoint and tiles alone (signature, every tile against
 * the checkpoint's root); without the records it cannot name a record. */
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto/pki.h"
#include "lib/util.h"
#include "net/registry.h"
#include "records/checkpoint.h"
#include "records/merkle.h"
#include "records/records.h"
#include "records/records_log.h"
#include "records/tiles.h"
#include "node/config.h"
#include "tools/net/net.h"
#include "tools/records_internal.h"
#include "tools/registry_cmd.h"
#include "tools/toolkit.h"
#include "tools/tools.h"

#define MAX_SUSPECTS 16

typedef struct head_entry {
    uint64_t size;
    rk_hash root;
} head_entry;

#define MAX_SIGNERS 8

typedef struct node_check {
    const rk_peer_node *node;
    const char *dir;
    const rk_registry *reg;
    rk_db *db, *tiles_db;  /* records and heads are scanned on db; tiles read on tiles_db meanwhile */
    X509 *cert;
    struct {               /* the other instances of a log kept by several (DESIGN §6), as they sign */
        const rk_peer_node *node;
        X509 *cert;
    } signers[MAX_SIGNERS];
    int n_signers;
    rk_log_keys keys;      /* log_vkey and log_vkey_history: the key valid at each head's time */
    int has_vkey;
    struct {               /* certificates before a renewal (`pki renew`), each signing until its end */
        X509 *cert;
        int64_t until_ms;
    } previous[RK_PREVIOUS_MAX];
    int n_previous;
    head_entry *heads;     /* heads whose signature verified, by size */
    size_t n_heads, cap_heads, next_head;
    int n_heads_seen;
    int n_cosigned;        /* witnesses' cosignatures that verified */
    rk_tile_builder built; /* tiles of the recomputed leaves */
    rk_tile_builder stored_state; /* the stored state: size and frontier */
    rk_hash stored_root_seen;     /* the recomputed root at the stored state's size */
    rk_hash tile0[RK_TILE_WIDTH]; /* the stored level-0 tile of the current leaves */
    int tile0_width;
    uint64_t tile0_index;
    int tile0_loaded;
    long long expected;    /* the next seq, when nothing was removed */
    uint64_t n;            /* records read */
    uint64_t last_good;    /* the size of the last head the records matched */
    struct {
        long long seq;
        uint64_t pos;
        char xid[RK_EXCHANGE_ID_MAX + 1];
    } suspects[MAX_SUSPECTS];
    int n_suspects;
    int mismatched;
    int findings;
} node_check;

void finding(const char *node, int *count, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("  %s: ", node);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    (*count)++;
}

#define FINDING(c, ...) finding((c)->node->id, &(c)->findings, __VA_ARGS__)

/* ---------- heads ---------- */

/* The registered certificate of a node, or NULL. */
static X509 *registered_cert(const char *dir, const rk_peer_node *node)
{
    char path[TK_PATH_CAP], fp[RK_FINGERPRINT_LEN];
    X509 *cert = NULL;
    snprintf(path, sizeof path, "%s/nodes/%s/cert.pem", dir, node->id);
    if (rk_pki_load_cert(path, &cert) != RK_OK || rk_pki_fingerprint(cert, fp) != RK_OK ||
        strcmp(fp, node->fingerprint) != 0) {
        X509_free(cert);
        return NULL;
    }
    return cert;
}

/* The certificate of the instance that signed a head: the node itself, or
 * another instance of the same log (the same role and log origin); NULL
 * when the signer is neither. */
static X509 *signer_cert(node_check *c, const char *signer)
{
    if (!signer || strcmp(signer, c->node->id) == 0)
        return c->cert;
    for (int i = 0; i < c->n_signers; i++)
        if (strcmp(c->signers[i].node->id, signer) == 0)
            return c->signers[i].cert;
    const rk_peer_node *n = rk_registry_by_id(c->reg, signer);
    if (!n || n->role != c->node->role || !n->log_origin[0] || strcmp(n->log_origin, c->node->log_origin) != 0 ||
        c->n_signers == MAX_SIGNERS)
        return NULL;
    X509 *cert = registered_cert(c->dir, n);
    if (cert) {
        c->signers[c->n_signers].node = n;
        c->signers[c->n_signers++].cert = cert;
    }
    return cert;
}

/* The witnesses' cosignatures of a head's checkpoint (DESIGN §4.1): each
 * line of a witness of network.json must verify with its vkey. */
static void check_cosignatures(node_check *c, const rk_tree_head_row *h)
{
    for (size_t i = 0; i < c->reg->n_nodes; i++) {
        const rk_peer_node *w = &c->reg->nodes[i];
        rk_vkey vk;
        char mark[RK_ORIGIN_MAX + 8];
        if (w->role != RK_ROLE_WITNESS || rk_vkey_parse(w->vkey, &vk) != RK_OK)
            continue;
        snprintf(mark, sizeof mark, "\xe2\x80\x94 %s ", vk.name);
        if (!strstr(h->cosignatures, mark))
            continue;
        char *note = NULL;
        if (asprintf(&note, "%s%s", h->checkpoint, h->cosignatures) < 0)
            return;
        if (rk_cosignature_check(&vk, note, strlen(note), NULL) == RK_OK)
            c->n_cosigned++;
        else
            FINDING(c, "checkpoint of size %lld: the cosignature of witness %s does not verify with its vkey",
                    (long long)h->size, w->id);
        free(note);
    }
}

/* A head's signature by the node's certificate, or, for a head made
 * before a renewal ended, by the previous certificate it signed with. */
static int head_verifies(node_check *c, X509 *cert, const char *signer, long long size, const rk_hash root,
                         const rk_tree_head_row *h)
{
    const char *id = signer ? signer : c->node->id;
    if (rk_head_verify(cert, id, (uint64_t)size, root, h->time_ms, h->signature_b64) == RK_OK)
        return 1;
    for (int i = 0; cert == c->cert && i < c->n_previous; i++)
        if (h->time_ms < c->previous[i].until_ms &&
            rk_head_verify(c->previous[i].cert, id, (uint64_t)size, root, h->time_ms, h->signature_b64) == RK_OK)
            return 1;
    return 0;
}

static rk_rc collect_head(void *arg, const rk_tree_head_row *h)
{
    node_check *c = arg;
    long long size = (long long)h->size;
    const char *signer = h->signer, *checkpoint = h->checkpoint;
    rk_hash root;
    c->n_heads_seen++;
    X509 *cert = signer_cert(c, signer);
    if (!cert) {
        FINDING(c, "tree head of size %lld: signed by %s, not an instance of this log", size, signer);
        return RK_OK;
    }
    if (rk_merkle_unhex(h->root_hex, root) != RK_OK || !head_verifies(c, cert, signer, size, root, h)) {
        FINDING(c, "tree head of size %lld: the signature does not verify (forged or altered head)", size);
        return RK_OK;
    }
    const rk_vkey *vkey = c->has_vkey ? rk_log_keys_at(&c->keys, h->time_ms) : NULL;
    if (checkpoint && c->has_vkey && !vkey)
        FINDING(c, "checkpoint of size %lld: signed at a time when no log key of network.json was valid", size);
    else if (checkpoint && vkey) {
        uint64_t csize = 0;
        rk_hash croot;
        if (rk_checkpoint_open(checkpoint, strlen(checkpoint), vkey, &csize, croot) != RK_OK ||
            csize != (uint64_t)size || memcmp(croot, root, sizeof root) != 0)
            FINDING(c, "checkpoint of size %lld: does not verify with the log key of network.json valid at its time, "
                       "or is not its head",
                    size);
    }
    if (checkpoint && h->cosignatures)
        check_cosignatures(c, h);
    if (c->n_heads == c->cap_heads) {
        size_t cap = c->cap_heads ? 2 * c->cap_heads : 64;
        head_entry *bigger = realloc(c->heads, cap * sizeof *bigger);
        if (!bigger)
            return RK_ERR_NOMEM;
        c->heads = bigger;
        c->cap_heads = cap;
    }
    c->heads[c->n_heads].size = (uint64_t)size;
    memcpy(c->heads[c->n_heads++].root, root, sizeof root);
    return RK_OK;
}

/* A head reached: the records up to its size give its root, or not. */
static void check_head_root(node_check *c, const head_entry *h)
{
    rk_hash mine;
    rk_merkle_frontier_root(&c->built.frontier, mine);
    if (memcmp(mine, h->root, sizeof mine) == 0) {
        /* the records are what was signed: leaves that differed from their tile were the tile's fault */
        for (int i = 0; i < c->n_suspects; i++) {
            char path[RK_TILE_PATH_MAX];
            rk_tile_path(0, c->suspects[i].pos / RK_TILE_WIDTH, 0, path);
            FINDING(c, "tile %s: hash %llu was altered (the records match the signed head of size %llu)", path,
                    (unsigned long long)(c->suspects[i].pos % RK_TILE_WIDTH), (unsigned long long)h->size);
        }
        c->last_good = h->size;
    } else if (!c->mismatched) { /* every later head fails as well: name the first */
        c->mismatched = 1;
        for (int i = 0; i < c->n_suspects; i++)
            FINDING(c, "record seq %lld (exchange %s) is not the record signed at position %llu "
                       "(altered, removed or reordered)",
                    c->suspects[i].seq, c->suspects[i].xid, (unsigned long long)c->suspects[i].pos + 1);
        if (!c->n_suspects)
            FINDING(c, "one of the records at positions %llu..%llu is not what the tree head of size %llu signed "
                       "(altered, removed or reordered)",
                    (unsigned long long)c->last_good + 1, (unsigned long long)h->size, (unsigned long long)h->size);
    }
    c->n_suspects = 0;
}

/* ---------- tiles ---------- */

/* The stored tile's leaf at position pos; 0 when the stored tiles do not
 * cover it (a finding when they should). */
static int stored_leaf(node_check *c, uint64_t pos, rk_hash out)
{
    if (pos >= c->stored_state.frontier.size)
        return 0;
    uint64_t index = pos / RK_TILE_WIDTH;
    int off = (int)(pos % RK_TILE_WIDTH);
    if (!c->tile0_loaded || c->tile0_index != index) {
        c->tile0_loaded = 1;
        c->tile0_index = index;
        c->tile0_width = 0;
        uint64_t covered = c->stored_state.frontier.size - index * RK_TILE_WIDTH;
        int want = covered >= RK_TILE_WIDTH ? RK_TILE_WIDTH : (int)covered;
        rk_rc rc = rk_tile_read(c->tiles_db, 0, index, c->tile0, &c->tile0_width);
        if (rc != RK_OK || c->tile0_width < want) {
            char path[RK_TILE_PATH_MAX];
            rk_tile_path(0, index, 0, path);
            FINDING(c, "tile %s is %s (%d of %d hashes)", path, rc == RK_ERR_NOT_FOUND ? "missing" : "truncated or damaged",
                    rc == RK_OK ? c->tile0_width : 0, want);
            if (rc != RK_OK)
                c->tile0_width = 0;
        }
    }
    if (off >= c->tile0_width)
        return 0;
    memcpy(out, c->tile0[off], sizeof(rk_hash));
    return 1;
}

/* Compares a tile the recomputed leaves made with the stored one (levels
 * above 0: level 0 is checked leaf by leaf). */
static void compare_tile(node_check *c, const rk_tile *t)
{
    if (t->level == 0)
        return;
    uint64_t have = rk_tile_level_hashes(c->stored_state.frontier.size, t->level);
    if (have <= t->index * RK_TILE_WIDTH)
        return; /* beyond what the stored tiles cover */
    uint64_t covered = have - t->index * RK_TILE_WIDTH;
    int want = covered < (uint64_t)t->width ? (int)covered : t->width, got = 0;
    rk_hash *h = malloc(RK_TILE_WIDTH * sizeof *h);
    rk_rc rc = h ? rk_tile_read(c->tiles_db, t->level, t->index, h, &got) : RK_ERR_NOMEM;
    char path[RK_TILE_PATH_MAX];
    rk_tile_path(t->level, t->index, 0, path);
    if (rc != RK_OK || got < want)
        FINDING(c, "tile %s is missing or truncated (%d of %d hashes)", path, rc == RK_OK ? got : 0, want);
    else if (memcmp(h, t->hashes, (size_t)want * sizeof(rk_hash)) != 0)
        FINDING(c, "tile %s was altered: it does not match the records", path);
    free(h);
}

static void compare_new_tiles(node_check *c)
{
    for (size_t i = 0; i < c->built.n_dirty; i++)
        compare_tile(c, &c->built.dirty[i]);
    c->built.n_dirty = 0;
    c->built.edge_dirty = 0;
}

/* ---------- records ---------- */

/* Leaf c->n - 1 recomputed (or, archived, read from its tile): into the
 * tiles, which are compared with the stored ones, and the heads it reaches
 * checked. */
static rk_rc leaf_built(node_check *c, const rk_hash leaf)
{
    if (rk_tile_builder_append(&c->built, leaf) != RK_OK)
        return RK_ERR_NOMEM;
    compare_new_tiles(c);
    if (c->n == c->stored_state.frontier.size)
        rk_merkle_frontier_root(&c->built.frontier, c->stored_root_seen);
    while (c->next_head < c->n_heads && c->heads[c->next_head].size <= c->n) {
        if (c->heads[c->next_head].size == c->n)
            check_head_root(c, &c->heads[c->next_head]);
        c->next_head++;
    }
    return RK_OK;
}

static rk_rc check_record(node_check *c, int64_t seq64, const rk_record *r)
{
    long long seq = (long long)seq64;
    if (seq != c->expected)
        FINDING(c, "record seq %lld%s is missing (removed)", c->expected, seq > c->expected + 1 ? " and following" : "");
    c->expected = seq < LLONG_MAX ? seq + 1 : seq; /* a damaged seq at the top of its range must not overflow */
    rk_hash leaf, signed_leaf;
    rk_record_leaf(r, leaf);
    uint64_t pos = c->n++;
    /* a leaf unlike its tile's: the record's fault or the tile's, which the
     * next signed head tells (check_head_root) */
    if (stored_leaf(c, pos, signed_leaf) && memcmp(leaf, signed_leaf, sizeof leaf) != 0 &&
        c->n_suspects < MAX_SUSPECTS) {
        c->suspects[c->n_suspects].seq = seq;
        c->suspects[c->n_suspects].pos = pos;
        snprintf(c->suspects[c->n_suspects++].xid, sizeof c->suspects[0].xid, "%s", r->exchange_id);
    }
    return leaf_built(c, leaf);
}

/* Two threads share the work: the scan (the store's stepping and the rows'
 * decoding) hands the records in batches, in order, to a checker that
 * recomputes each leaf and builds and compares the tiles; each takes about
 * half of the time. A few batches in flight bound the memory. */
#define BATCH_RECORDS 256
#define BATCHES 4

typedef struct record_batch {
    int n;
    int64_t seq[BATCH_RECORDS];
    rk_record rec[BATCH_RECORDS];
} record_batch;

typedef struct pipeline {
    node_check *c;
    record_batch *batch;  /* BATCHES of them: `count` full ones from `take` on, then the one being filled */
    int take, fill, count, done, threaded;
    rk_rc rc;             /* the checker's first failure: the scan stops */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t thread;
} pipeline;

static rk_rc check_batch(pipeline *p, const record_batch *b)
{
    rk_rc rc = RK_OK;
    for (int i = 0; i < b->n && rc == RK_OK; i++)
        rc = check_record(p->c, b->seq[i], &b->rec[i]);
    return rc;
}

static void *checker_main(void *arg)
{
    pipeline *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->count && !p->done)
            pthread_cond_wait(&p->cond, &p->lock);
        if (!p->count)
            break;
        record_batch *b = &p->batch[p->take];
        int failed = p->rc != RK_OK;
        pthread_mutex_unlock(&p->lock);
        rk_rc rc = failed ? RK_OK : check_batch(p, b);
        pthread_mutex_lock(&p->lock);
        if (rc != RK_OK)
            p->rc = rc;
        p->take = (p->take + 1) % BATCHES;
        p->count--;
        pthread_cond_broadcast(&p->cond);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* The batch being filled goes to the checker (or, without a thread, is checked here). */
static rk_rc submit_batch(pipeline *p)
{
    record_batch *b = &p->batch[p->fill];
    if (!b->n && p->threaded) {
        pthread_mutex_lock(&p->lock);
        rk_rc rc = p->rc;
        pthread_mutex_unlock(&p->lock);
        return rc;
    }
    if (!p->threaded) {
        rk_rc rc = check_batch(p, b);
        b->n = 0;
        return rc;
    }
    pthread_mutex_lock(&p->lock);
    p->count++;
    pthread_cond_broadcast(&p->cond);
    while (p->count == BATCHES)
        pthread_cond_wait(&p->cond, &p->lock);
    p->fill = (p->fill + 1) % BATCHES;
    p->batch[p->fill].n = 0;
    rk_rc rc = p->rc;
    pthread_mutex_unlock(&p->lock);
    return rc;
}

static rk_rc scan_record(void *arg, int64_t seq, const rk_record *r)
{
    pipeline *p = arg;
    record_batch *b = &p->batch[p->fill];
    b->seq[b->n] = seq;
    memcpy(&b->rec[b->n], r, sizeof *r);
    return ++b->n == BATCH_RECORDS ? submit_batch(p) : RK_OK;
}

/* Every record of the store, in seq order, through check_record. */
static rk_rc check_records(node_check *c)
{
    pipeline p = {.c = c};
    if (!(p.batch = malloc(BATCHES * sizeof *p.batch)))
        return RK_ERR_NOMEM;
    p.batch[0].n = 0;
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.cond, NULL);
    p.threaded = pthread_create(&p.thread, NULL, checker_main, &p) == 0;
    rk_rc rc = rk_records_each(c->db, scan_record, &p);
    if (rc == RK_OK)
        rc = submit_batch(&p);
    if (p.threaded) {
        pthread_mutex_lock(&p.lock);
        p.done = 1;
        pthread_cond_broadcast(&p.cond);
        pthread_mutex_unlock(&p.lock);
        pthread_join(p.thread, NULL);
    }
    if (rc == RK_OK)
        rc = p.rc;
    pthread_mutex_destroy(&p.lock);
    pthread_cond_destroy(&p.cond);
    free(p.batch);
    return rc;
}

/* The archived prefix (written out, then pruned: DESIGN §4.1): its leaves
 * are the stored level-0 tiles, checked against the signed heads as the
 * records' would be; the archive file itself is checked with --archive. */
static void check_archived_prefix(node_check *c, uint64_t archived)
{
    rk_hash leaf;
    for (uint64_t pos = 0; pos < archived; pos++) {
        if (!stored_leaf(c, pos, leaf)) {
            FINDING(c, "the archived records 1..%llu have no tiles beyond %llu", (unsigned long long)archived,
                    (unsigned long long)pos);
            return;
        }
        c->n++;
        if (leaf_built(c, leaf) != RK_OK)
            return;
    }
    c->expected = (long long)archived + 1;
}

/* After the last record: heads beyond it, the stored edge tiles and state,
 * and leaves unlike their tiles that no signed head covers yet. */
static void check_end(node_check *c)
{
    for (int i = 0; i < c->n_suspects; i++)
        FINDING(c, "record seq %lld (exchange %s) is not the leaf its tile holds (the record or the tile was altered;"
                   " no signed head covers it yet)",
                c->suspects[i].seq, c->suspects[i].xid);
    c->n_suspects = 0;
    for (; c->next_head < c->n_heads; c->next_head++)
        if (c->heads[c->next_head].size > c->n)
            FINDING(c, "tree head of size %llu covers records that are gone (only %llu remain)",
                    (unsigned long long)c->heads[c->next_head].size, (unsigned long long)c->n);
        else if (c->heads[c->next_head].size == 0)
            check_head_root(c, &c->heads[c->next_head]);
    for (int l = 1; l < RK_TILE_LEVELS; l++)
        if (c->built.edge[l].width > 0)
            compare_tile(c, &c->built.edge[l]);
    uint64_t size = c->stored_state.frontier.size;
    if (size > c->n) {
        FINDING(c, "the stored tiles cover %llu leaves but only %llu records remain", (unsigned long long)size,
                (unsigned long long)c->n);
    } else if (size > 0) {
        rk_hash stored;
        rk_merkle_frontier_root(&c->stored_state.frontier, stored);
        if (memcmp(stored, c->stored_root_seen, sizeof stored) != 0)
            FINDING(c, "the stored frontier of size %llu does not match the records", (unsigned long long)size);
    }
}

void rk_records_node_store(const char *dir, const rk_peer_node *node, char *path, size_t size, int *retain_days)
{
    char err[256] = "";
    rk_node_config *cfg = calloc(1, sizeof *cfg);
    snprintf(path, size, "%s/nodes/%s/node.conf", dir, node->id);
    if (cfg && rk_config_load(path, cfg, err, sizeof err) == RK_OK) {
        snprintf(path, size, "%s", cfg->db);
        if (retain_days)
            *retain_days = cfg->retain_days;
    } else {
        snprintf(path, size, "%s/nodes/%s/node.db", dir, node->id);
        if (retain_days)
            *retain_days = RK_RETAIN_DAYS_DEFAULT;
    }
    free(cfg);
}

/* network.json's log_vkey_history of a node as JSON text (NULL when it has
 * none); the file is read once per command. */
static json_t *network_json;

char *log_vkey_history(const char *dir, const char *id)
{
    char path[TK_PATH_CAP];
    if (!network_json && tk_path(path, sizeof path, "%s/network.json", dir) == RK_OK)
        network_json = json_load_file(path, 0, NULL);
    json_t *nodes = json_object_get(network_json, "nodes"), *n;
    size_t i;
    json_array_foreach(nodes, i, n) {
        const char *nid = json_string_value(json_object_get(n, "id"));
        json_t *h = json_object_get(n, "log_vkey_history");
        if (nid && strcmp(nid, id) == 0 && h)
            return json_dumps(h, JSON_COMPACT | JSON_ENCODE_ANY);
    }
    return NULL;
}

/* The previous certificates of a renewed node, kept in its folder as
 * cert-<fingerprint prefix>.pem (`renkei pki renew`); one that is missing
 * or is not the registered fingerprint is a finding. */
static void load_previous(node_check *c)
{
    for (int i = 0; i < c->node->n_previous; i++) {
        char path[TK_PATH_CAP], fp[RK_FINGERPRINT_LEN];
        const char *want = c->node->previous[i].fingerprint;
        X509 *cert = NULL;
        snprintf(path, sizeof path, "%s/nodes/%s/cert-%.16s.pem", c->dir, c->node->id, want);
        if (rk_pki_load_cert(path, &cert) != RK_OK || rk_pki_fingerprint(cert, fp) != RK_OK || strcmp(fp, want) != 0) {
            X509_free(cert);
            FINDING(c, "its previous certificate %.16s… is missing or altered (%s)", want, path);
            continue;
        }
        c->previous[c->n_previous].cert = cert;
        c->previous[c->n_previous++].until_ms = c->node->previous[i].until * 1000;
    }
}

static int verify_node(const char *dir, const rk_registry *reg, const rk_peer_node *node)
{
    node_check c = {.node = node, .dir = dir, .reg = reg, .expected = 1};
    rk_tile_builder_init(&c.built);
    rk_tile_builder_init(&c.stored_state);
    char path[TK_PATH_CAP];
    if (!(c.cert = registered_cert(dir, node))) {
        FINDING(&c, "its certificate is missing or is not the registered one");
        goto done;
    }
    load_previous(&c);
    if (node->log_vkey[0]) {
        char *history = log_vkey_history(dir, node->id);
        if (rk_log_keys_parse(node->log_vkey, history, &c.keys) != RK_OK)
            FINDING(&c, "its log_vkey or log_vkey_history in network.json is not C2SP Ed25519 vkeys with valid periods");
        else
            c.has_vkey = 1;
        free(history);
    }
    rk_records_node_store(dir, node, path, sizeof path, NULL);
    if (rk_db_open(path, RK_DB_READONLY, &c.db) != RK_OK || rk_db_open(path, RK_DB_READONLY, &c.tiles_db) != RK_OK) {
        /* a URI holds the role's password: never printed */
        FINDING(&c, "cannot open its store%s%s", strstr(path, "://") ? "" : " ", strstr(path, "://") ? "" : path);
        goto done;
    }
    rk_rc rc = rk_tree_heads_each(c.db, collect_head, &c);
    if (rc == RK_OK && rk_tiles_load(c.tiles_db, &c.stored_state) != RK_OK)
        FINDING(&c, "its stored tile state cannot be read (damaged)");
    int64_t archived = 0;
    if (rc == RK_OK)
        rc = rk_records_archived_upto(c.db, &archived);
    if (rc == RK_OK && archived > 0)
        check_archived_prefix(&c, (uint64_t)archived);
    if (rc == RK_OK)
        rc = check_records(&c);
    if (rc != RK_OK) {
        FINDING(&c, "cannot read its records and heads: %s", rk_strerror(rc));
        goto done;
    }
    check_end(&c);
    if (c.n_heads_seen == 0 && c.n > 0)
        FINDING(&c, "%llu records but no signed tree head", (unsigned long long)c.n);
    if (!c.findings && archived)
        printf("  %-28s ok: %llu records (%lld archived, their tiles kept), %d signed tree heads, tiles of %llu"
               " leaves\n", node->id, (unsigned long long)c.n, (long long)archived, c.n_heads_seen,
               (unsigned long long)c.stored_state.frontier.size);
    else if (!c.findings)
        printf("  %-28s ok: %llu records, %d signed tree heads, tiles of %llu leaves\n", node->id,
               (unsigned long long)c.n, c.n_heads_seen, (unsigned long long)c.stored_state.frontier.size);
    if (!c.findings && c.n_cosigned)
        printf("  %-28s %d witness cosignatures verify\n", "", c.n_cosigned);
done:
    rk_db_close(c.db);
    rk_db_close(c.tiles_db);
    rk_tile_builder_free(&c.built);
    rk_tile_builder_free(&c.stored_state);
    free(c.heads);
    X509_free(c.cert);
    for (int i = 0; i < c.n_previous; i++)
        X509_free(c.previous[i].cert);
    for (int i = 0; i < c.n_signers; i++)
        X509_free(c.signers[i].cert);
    return c.findings;
}

/* ---------- a running node, from its checkpoint and tiles ---------- */

typedef struct url_check {
    const rk_peer_node *node;
    const char *url;
    tk_client *client;
    rk_tile_builder built;
    uint64_t fetched;
    int findings;
} url_check;

/* GETs URL/v1/<what>; the body when the status is 200 and its length is
 * expect (0: any). */
static rk_rc fetch(url_check *u, const char *what, size_t expect, rk_http_result *res)
{
    char full[TK_PATH_CAP];
    snprintf(full, sizeof full, "%s/v1/%s", u->url, what);
    rk_rc rc = rk_client_call(u->client->client, "GET", full, u->node->pin[0] ? u->node->pin : NULL, NULL, 0, 30000, res);
    if (rc == RK_OK && (res->status != 200 || !res->body || (expect && res->body_len != expect)))
        rc = res->status == 404 ? RK_ERR_NOT_FOUND : RK_ERR_INVALID;
    return rc;
}

static void compare_fetched(url_check *u, const rk_tile *t)
{
    char path[RK_TILE_PATH_MAX + 8];
    rk_http_result res = {0};
    memcpy(path, "tile/", 5);
    rk_tile_path(t->level, t->index, t->width, path + 5);
    rk_rc rc = fetch(u, path, (size_t)t->width * sizeof(rk_hash), &res);
    u->fetched++;
    if (rc != RK_OK)
        finding(u->node->id, &u->findings, "tile %s cannot be read (%s)", path + 5, rk_strerror(rc));
    else if (memcmp(res.body, t->hashes, res.body_len) != 0)
        finding(u->node->id, &u->findings, "tile %s does not match the tiles below it", path + 5);
    rk_http_result_clear(&res);
}

static int verify_url(url_check *u, const rk_vkey *vkey)
{
    rk_http_result res = {0};
    uint64_t size = 0;
    rk_hash root, mine;
    rk_rc rc = fetch(u, "checkpoint", 0, &res);
    if (rc != RK_OK || rk_checkpoint_open(res.body, res.body_len, vkey, &size, root) != RK_OK) {
        finding(u->node->id, &u->findings, "its checkpoint %s", rc != RK_OK ? "cannot be read"
                                                                              : "does not verify with its log_vkey");
        rk_http_result_clear(&res);
        return u->findings;
    }
    rk_http_result_clear(&res);
    rk_tile_builder_init(&u->built);
    /* every level-0 tile, as the checkpoint's size cuts them; the tiles
     * above are made again and compared with the node's */
    for (uint64_t t = 0; t * RK_TILE_WIDTH < size && !u->findings; t++) {
        uint64_t left = size - t * RK_TILE_WIDTH;
        int width = left >= RK_TILE_WIDTH ? RK_TILE_WIDTH : (int)left;
        char path[RK_TILE_PATH_MAX + 8];
        memcpy(path, "tile/", 5);
        rk_tile_path(0, t, width, path + 5);
        rc = fetch(u, path, (size_t)width * sizeof(rk_hash), &res);
        u->fetched++;
        if (rc != RK_OK) {
            finding(u->node->id, &u->findings, "tile %s cannot be read (%s)", path + 5, rk_strerror(rc));
        } else {
            for (int i = 0; i < width && rc == RK_OK; i++)
                rc = rk_tile_builder_append(&u->built, (const uint8_t *)res.body + (size_t)i * sizeof(rk_hash));
            for (size_t i = 0; i < u->built.n_dirty; i++)
                if (u->built.dirty[i].level > 0)
                    compare_fetched(u, &u->built.dirty[i]);
            u->built.n_dirty = 0;
        }
        rk_http_result_clear(&res);
    }
    for (int l = 1; l < RK_TILE_LEVELS && !u->findings; l++)
        if (u->built.edge[l].width > 0)
            compare_fetched(u, &u->built.edge[l]);
    rk_merkle_frontier_root(&u->built.frontier, mine);
    if (!u->findings && memcmp(mine, root, sizeof mine) != 0)
        finding(u->node->id, &u->findings, "its tiles do not give the root of its checkpoint of size %llu",
                (unsigned long long)size);
    if (!u->findings)
        printf("  %-28s ok: checkpoint of %llu records verifies; %llu tiles give its root\n", u->node->id,
               (unsigned long long)size, (unsigned long long)u->fetched);
    rk_tile_builder_free(&u->built);
    return u->findings;
}

static int run_url(const char *dir, const rk_registry *reg, const char *url)
{
    const rk_peer_node *node = NULL;
    for (size_t i = 0; i < reg->n_nodes && !node; i++)
        if (reg->nodes[i].url[0] && (strcmp(reg->nodes[i].url, url) == 0 || strcmp(reg->nodes[i].backup_url, url) == 0))
            node = &reg->nodes[i];
    rk_vkey vkey;
    if (!node || !node->log_vkey[0] || rk_vkey_parse(node->log_vkey, &vkey) != RK_OK)
        return tk_failure("records", "%s: no node of network.json keeps a log there (url and log_vkey)", url);
    tk_client op = {0};
    char err[512] = "";
    if (tk_client_open(dir, "clients/operator", &op, err, sizeof err) != RK_OK)
        return tk_failure("records", "%s", err);
    url_check u = {.node = node, .url = url, .client = &op};
    printf("log of %s at %s:\n", node->id, url);
    int findings = verify_url(&u, &vkey);
    tk_client_close(&op);
    if (findings) {
        printf("records verify: %d finding(s)\n", findings);
        return 1;
    }
    printf("records verify: the log of %s is intact\n", node->id);
    return 0;
}

/* True when node i keeps the same log, in the same store, as an earlier
 * node of the registry (the instances of the core, DESIGN §6). */
static int same_log_as_earlier(const char *dir, const rk_registry *reg, size_t i)
{
    const rk_peer_node *n = &reg->nodes[i];
    if (!n->log_origin[0])
        return 0;
    char mine[TK_PATH_CAP], theirs[TK_PATH_CAP];
    rk_records_node_store(dir, n, mine, sizeof mine, NULL);
    for (size_t j = 0; j < i; j++) {
        const rk_peer_node *e = &reg->nodes[j];
        if (e->role != n->role || strcmp(e->log_origin, n->log_origin) != 0)
            continue;
        rk_records_node_store(dir, e, theirs, sizeof theirs, NULL);
        if (strcmp(mine, theirs) == 0) {
            printf("  %-28s the log of %s (the same store)\n", n->id, e->id);
            return 1;
        }
    }
    return 0;
}

/* ---------- rotate-log-key (DESIGN §3, §4.1) ---------- */

#define MAX_LOG_INSTANCES 16

static const char usage_rotate[] =
    "usage: renkei records rotate-log-key DIR NODE-ID\n"
    "\n"
    "Gives the log of node NODE-ID (the core or an agency node) a new Ed25519 log key:\n"
    "network.json's log_vkey becomes the new key's, and the previous one goes to its\n"
    "log_vkey_history, valid until now, so that `records verify` checks each checkpoint\n"
    "with the key valid at its time. The key file that node.conf names ([records] log_key)\n"
    "is replaced in the folder of every instance of that log. Stop the node(s) first, and\n"
    "start them after: a running node signs with the key it loaded at start.\n";

/* node.conf's [records] log_key of a node. */
static int log_key_path(const char *dir, const rk_peer_node *n, char out[TK_PATH_CAP])
{
    char conf[TK_PATH_CAP], err[256];
    rk_node_config *cfg = calloc(1, sizeof *cfg);
    int ok = cfg && tk_path(conf, sizeof conf, "%s/nodes/%s/node.conf", dir, n->id) == RK_OK &&
             rk_config_load(conf, cfg, err, sizeof err) == RK_OK && cfg->log_key[0] &&
             snprintf(out, TK_PATH_CAP, "%s", cfg->log_key) < TK_PATH_CAP;
    free(cfg);
    return ok;
}

/* network.json with the new vkey and history for every instance of the log. */
static rk_rc write_log_keys(const char *dir, const char *origin, const char *vkey, const char *history)
{
    char path[TK_PATH_CAP];
    if (tk_path(path, sizeof path, "%s/network.json", dir) != RK_OK)
        return RK_ERR_INVALID;
    json_t *root = json_load_file(path, 0, NULL), *n, *hist = json_loads(history, 0, NULL);
    size_t i;
    rk_rc rc = root && hist ? RK_OK : RK_ERR_INVALID;
    json_array_foreach(json_object_get(root, "nodes"), i, n) {
        const char *o = json_string_value(json_object_get(n, "log_origin"));
        if (rc == RK_OK && o && strcmp(o, origin) == 0 &&
            (json_object_set_new(n, "log_vkey", json_string(vkey)) || json_object_set(n, "log_vkey_history", hist)))
            rc = RK_ERR_NOMEM;
    }
    char *text = rc == RK_OK ? json_dumps(root, JSON_INDENT(2)) : NULL;
    if (rc == RK_OK)
        rc = text ? rk_write_file(path, text, strlen(text), 0644) : RK_ERR_NOMEM;
    free(text);
    json_decref(hist);
    json_decref(root);
    return rc;
}

static int rotate_log_key(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
    int c;
    tk_getopt_reset();
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage_rotate, stdout);
            return 0;
        }
        return tk_option_error("records", c, argv);
    }
    if (argc - optind != 2)
        return tk_usage_error("records", "rotate-log-key takes a network directory and a node id");
    const char *dir = argv[optind], *id = argv[optind + 1];
    char err[512] = "", keys[MAX_LOG_INSTANCES][TK_PATH_CAP], fresh[MAX_LOG_INSTANCES][TK_PATH_CAP + 8];
    char vkey[RK_VKEY_MAX], *history = NULL, *newhist = NULL, *pem = NULL;
    size_t pem_len = 0;
    int n_keys = 0, status = 1;
    EVP_PKEY *key = NULL;
    rk_registry *reg = NULL;
    if (tk_registry_load(dir, &reg, err, sizeof err) != RK_OK)
        return tk_failure("records", "%s", err);
    const rk_peer_node *node = rk_registry_by_id(reg, id);
    if (!node) {
        tk_failure("records", "no node '%s' in %s/network.json", id, dir);
        goto done;
    }
    if (!node->log_vkey[0]) {
        tk_failure("records", "%s keeps no log (no log_vkey in network.json)", id);
        goto done;
    }
    /* every instance of the log holds the key network.json names */
    for (size_t i = 0; i < reg->n_nodes; i++) {
        const rk_peer_node *n = &reg->nodes[i];
        if (strcmp(n->log_origin, node->log_origin) != 0)
            continue;
        if (n_keys == MAX_LOG_INSTANCES || !log_key_path(dir, n, keys[n_keys])) {
            tk_failure("records", "cannot read the configuration of %s (its log_key)", n->id);
            goto done;
        }
        EVP_PKEY_free(key);
        key = NULL;
        if (rk_pki_load_key(keys[n_keys], NULL, &key) != RK_OK || rk_vkey_of(n->log_origin, key, vkey) != RK_OK ||
            strcmp(vkey, n->log_vkey) != 0) {
            tk_failure("records", "%s is not the log key whose vkey network.json names for %s", keys[n_keys], n->id);
            goto done;
        }
        snprintf(fresh[n_keys], sizeof fresh[n_keys], "%s.new", keys[n_keys]);
        n_keys++;
    }
    history = log_vkey_history(dir, id);
    rk_rc rc = rk_log_keys_rotate(node->log_vkey, history, rk_now_ms(), &newhist);
    if (rc != RK_OK) {
        tk_failure("records", "%s: %s", id,
                   rc == RK_ERR_CONFLICT ? "its log_vkey_history is full (16 earlier keys)"
                                         : "its log_vkey_history in network.json is not valid");
        goto done;
    }
    EVP_PKEY_free(key);
    key = NULL;
    if ((rc = rk_log_key_create(fresh[0])) != RK_OK || (rc = rk_pki_load_key(fresh[0], NULL, &key)) != RK_OK ||
        (rc = rk_vkey_of(node->log_origin, key, vkey)) != RK_OK || (rc = rk_read_file(fresh[0], 65536, &pem, &pem_len)) != RK_OK)
        goto failed;
    for (int i = 1; i < n_keys && rc == RK_OK; i++) /* the instances keep one log: one key (DESIGN §6) */
        rc = rk_write_file(fresh[i], pem, pem_len, 0600);
    if (rc == RK_OK)
        rc = write_log_keys(dir, node->log_origin, vkey, newhist);
failed:
    if (rc != RK_OK) {
        for (int i = 0; i < n_keys; i++)
            unlink(fresh[i]);
        tk_failure("records", "cannot rotate the log key of %s: %s", id, rk_strerror(rc));
        goto done;
    }
    for (int i = 0; i < n_keys; i++)
        if (rename(fresh[i], keys[i]) != 0) {
            tk_failure("records", "network.json names the new log key of %s but %s could not be put in place", id,
                       keys[i]);
            goto done;
        }
    /* the signed registry names the new log key too (DESIGN §3, §4.1): published,
     * and each instance's kept registry dropped */
    char why[400] = "";
    uint64_t serial = 0;
    const char *changed[MAX_LOG_INSTANCES];
    size_t n_changed = 0;
    for (size_t i = 0; i < reg->n_nodes && n_changed < MAX_LOG_INSTANCES; i++)
        if (strcmp(reg->nodes[i].log_origin, node->log_origin) == 0)
            changed[n_changed++] = reg->nodes[i].id;
    if (rk_registry_changed_nodes(dir, changed, n_changed, &serial, why, sizeof why) != RK_OK) {
        tk_failure("records", "network.json names the new log key of %s, but the registry was not published: %s"
                   " (run renkei registry publish %s)", id, why, dir);
        goto done;
    }
    printf("rotated the log key of %s: log_vkey %s; the previous key verifies the checkpoints signed before now. ", id,
           vkey);
    if (serial)
        printf("Registry serial %llu published. ", (unsigned long long)serial);
    printf("Start %s (and its other instances) to sign with it.\n", id);
    status = 0;
done:
    if (pem) {
        rk_wipe(pem, pem_len);
        free(pem);
    }
    EVP_PKEY_free(key);
    free(history);
    free(newhist);
    rk_registry_free(reg);
    return status;
}

/* ---------- the command ---------- */

static int usage(FILE *out, int code)
{
    fprintf(out, "usage: renkei records verify DIR [--url URL | --archive FILE]\n"
                 "\n"
                 "Checks the records of every node of the network in DIR (the core and each agency\n"
                 "node): every record against its signed tree heads, checkpoints and stored tiles,\n"
                 "streaming. Exit 0 when nothing was altered, removed, reordered or forged; otherwise\n"
                 "each finding names the node and the record or tile.\n"
                 "\n"
                 "  --url URL       check the running node at URL from its checkpoint and tiles alone\n"
                 "                  (as an auditor without its database), with DIR's operator credential\n"
                 "  --archive FILE  check an archive (records archive) against the log it came from\n"
                 "\n"
                 "archive writes a node's records older than its retention to FILE and prunes them\n"
                 "from its store ('renkei records archive --help').\n"
                 "rotate-log-key DIR NODE-ID gives a node's log a new key, the previous one kept in\n"
                 "network.json's log_vkey_history ('renkei records rotate-log-key --help').\n");
    return code;
}

int rk_cmd_records(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--help") == 0)
        return usage(stdout, 0);
    if (argc >= 2 && strcmp(argv[1], "archive") == 0)
        return rk_records_archive_cmd(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "rotate-log-key") == 0)
        return rotate_log_key(argc - 1, argv + 1);
    if (argc < 3 || strcmp(argv[1], "verify") != 0)
        return usage(stderr, 2);
    static const struct option opts[] = {{"url", required_argument, NULL, 'u'},
                                         {"archive", required_argument, NULL, 'a'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    const char *url = NULL, *archive = NULL;
    int c;
    tk_getopt_reset();
    while ((c = getopt_long(argc - 1, argv + 1, "", opts, NULL)) != -1) {
        if (c == 'h')
            return usage(stdout, 0);
        if (c == 'u')
            url = optarg;
        else if (c == 'a')
            archive = optarg;
        else
            return tk_option_error("records", c, argv + 1);
    }
    if (url && archive)
        return tk_usage_error("records", "verify takes --url or --archive, not both");
    if (optind != argc - 2) /* one operand after the options, GNU getopt having moved it last */
        return tk_usage_error("records", "verify takes one network folder");
    const char *dir = argv[1 + optind];
    char err[512] = "";
    rk_registry *reg = NULL;
    if (tk_registry_load(dir, &reg, err, sizeof err) != RK_OK)
        return tk_failure("records", "%s", err);
    if (url || archive) {
        int rc = url ? run_url(dir, reg, url) : rk_records_verify_archive(dir, reg, archive);
        rk_registry_free(reg);
        return rc;
    }
    int findings = 0, nodes = 0, pg_started = 0;
    if (rk_net_pg_start(dir, &pg_started, err, sizeof err) != RK_OK) { /* --store postgres, and down */
        rk_registry_free(reg);
        return tk_failure("records", "%s", err);
    }
    printf("records of the network in %s:\n", dir);
    for (size_t i = 0; i < reg->n_nodes; i++) {
        const rk_peer_node *n = &reg->nodes[i];
        if (n->role != RK_ROLE_CORE && n->role != RK_ROLE_AGENCY)
            continue;
        if (same_log_as_earlier(dir, reg, i))
            continue; /* another instance of a log checked already */
        nodes++;
        findings += verify_node(dir, reg, n);
    }
    rk_registry_free(reg);
    json_decref(network_json);
    network_json = NULL;
    if (pg_started && rk_net_pg_stop(dir) != RK_OK)
        fprintf(stderr, "renkei records: the PostgreSQL server of %s/pg did not stop\n", dir);
    if (findings) {
        printf("records verify: %d finding(s) in %d node(s) checked\n", findings, nodes);
        return 1;
    }
    printf("records verify: all %d nodes' records are intact\n", nodes);
    return 0;
}
