/* tiles.c — tile paths, the tile builder, tiles in the store and proofs
 * read from them (tiles.h; C2SP tlog-tiles). */
#include "records/tiles.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- paths ---------- */

void rk_tile_path(int level, uint64_t index, int width, char out[RK_TILE_PATH_MAX])
{
    /* N in groups of three digits, every group but the last prefixed with
     * x: 1234067 is x001/x234/067. */
    int groups = 1;
    uint64_t div = 1;
    while (index / div >= 1000) {
        div *= 1000;
        groups++;
    }
    char *p = out + sprintf(out, "%d/", level);
    for (int g = 0; g < groups; g++, div /= 1000)
        p += sprintf(p, g < groups - 1 ? "x%03u/" : "%03u", (unsigned)((index / div) % 1000));
    if (width > 0 && width < RK_TILE_WIDTH)
        sprintf(p, ".p/%d", width);
}

int rk_tile_path_parse(const char *path, int *level, uint64_t *index, int *width)
{
    if (!path || strlen(path) >= RK_TILE_PATH_MAX)
        return -1;
    const char *p = path;
    if (*p < '0' || *p > '9')
        return -1;
    int lv = 0;
    while (*p >= '0' && *p <= '9' && lv < 100)
        lv = lv * 10 + (*p++ - '0');
    if (*p++ != '/' || lv >= RK_TILE_LEVELS)
        return -1;
    uint64_t n = 0;
    for (int groups = 0;; groups++) {
        int x = *p == 'x';
        p += x;
        if (groups >= 7 || !(p[0] >= '0' && p[0] <= '9' && p[1] >= '0' && p[1] <= '9' && p[2] >= '0' && p[2] <= '9'))
            return -1;
        n = n * 1000 + (uint64_t)((p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0'));
        p += 3;
        if (!x)
            break;
        if (*p++ != '/')
            return -1;
    }
    int w = 0;
    if (strncmp(p, ".p/", 3) == 0) {
        p += 3;
        while (*p >= '0' && *p <= '9' && w < 1000)
            w = w * 10 + (*p++ - '0');
        if (w < 1 || w >= RK_TILE_WIDTH)
            return -1;
    }
    if (*p != '\0')
        return -1;
    /* only the canonical spelling: no leading empty groups, no "01" widths */
    char again[RK_TILE_PATH_MAX];
    rk_tile_path(lv, n, w, again);
    if (strcmp(again, path) != 0)
        return -1;
    *level = lv;
    *index = n;
    *width = w;
    return 0;
}

uint64_t rk_tile_level_hashes(uint64_t size, int level)
{
    return level * RK_TILE_HEIGHT >= 64 ? 0 : size >> (level * RK_TILE_HEIGHT);
}

/* ---------- the builder ---------- */

void rk_tile_builder_init(rk_tile_builder *b)
{
    memset(b, 0, sizeof *b);
    rk_merkle_frontier_init(&b->frontier);
    for (int l = 0; l < RK_TILE_LEVELS; l++)
        b->edge[l].level = l;
}

void rk_tile_builder_free(rk_tile_builder *b)
{
    free(b->dirty);
    b->dirty = NULL;
    b->n_dirty = b->cap_dirty = 0;
}

/* Room for `more` tiles in the dirty list, before anything changes. */
static rk_rc reserve_dirty(rk_tile_builder *b, size_t more)
{
    if (b->n_dirty + more <= b->cap_dirty)
        return RK_OK;
    size_t cap = b->cap_dirty ? 2 * b->cap_dirty : 16;
    while (cap < b->n_dirty + more)
        cap *= 2;
    rk_tile *bigger = realloc(b->dirty, cap * sizeof *bigger);
    if (!bigger)
        return RK_ERR_NOMEM;
    b->dirty = bigger;
    b->cap_dirty = cap;
    return RK_OK;
}

/* The leaf goes into the level-0 edge tile and into the frontier. A tile
 * of level L fills when the 8(L+1) low bits of the size before the leaf
 * are all ones: the frontier's carry through those heights is then that
 * tile's root (the perfect subtree of its 256 hashes), the next hash one
 * level up; no tile is hashed again. */
rk_rc rk_tile_builder_append(rk_tile_builder *b, const rk_hash leaf)
{
    rk_merkle_frontier *f = &b->frontier;
    if (f->size == UINT64_MAX)
        return RK_OK; /* full, as the frontier is */
    size_t filling = 0;
    while (filling < RK_TILE_LEVELS && b->edge[filling].width == RK_TILE_WIDTH - 1)
        filling++;
    if (filling && reserve_dirty(b, filling) != RK_OK)
        return RK_ERR_NOMEM;
    uint64_t size = f->size;
    rk_hash carry;
    memcpy(carry, leaf, sizeof carry);
    unsigned i = 0; /* the frontier's height the carry has reached */
    for (int l = 0; l < RK_TILE_LEVELS; l++) {
        rk_tile *t = &b->edge[l];
        memcpy(t->hashes[t->width++], carry, sizeof carry);
        b->edge_dirty |= 1u << l;
        if (t->width < RK_TILE_WIDTH)
            break;
        /* full: kept for the store; its root is the next hash one level up */
        memcpy(&b->dirty[b->n_dirty++], t, sizeof *t);
        unsigned top = (unsigned)(l + 1) * RK_TILE_HEIGHT;
        uint64_t low = top >= 64 ? UINT64_MAX : (UINT64_C(1) << top) - 1;
        if ((size & low) == low && i == top - RK_TILE_HEIGHT) {
            for (; i < top; i++)
                rk_merkle_node_hash(f->nodes[i], carry, carry);
        } else { /* edge tiles unlike the frontier (cannot happen when built here): hash the tile */
            rk_merkle_root((const rk_hash *)t->hashes, RK_TILE_WIDTH, carry);
            i = 64;
        }
        t->index++;
        t->width = 0;
    }
    if (i <= 63) { /* the rest of the frontier's binary increment */
        for (; (size >> i) & 1; i++)
            rk_merkle_node_hash(f->nodes[i], carry, carry);
        memcpy(f->nodes[i], carry, sizeof carry);
        f->size++;
    } else
        rk_merkle_frontier_append(f, leaf);
    return RK_OK;
}

size_t rk_tile_builder_pending(const rk_tile_builder *b)
{
    return b->n_dirty;
}

/* ---------- the tiles above the leaves, in memory ---------- */

#define CACHE_WAYS 16

typedef struct cached_tile {
    int level, width;
    uint64_t index;
    uint64_t used; /* the cache's tick when last read */
    rk_hash hashes[RK_TILE_WIDTH];
} cached_tile;

/* Sets of CACHE_WAYS tiles of level >= 1, each allocated when first
 * filled: a set is chosen by the tile's index, so that the consecutive
 * tiles of a level spread evenly over the sets. The partial tiles of level
 * 0 at the right edge of recent trees apart, the few latest only: a log
 * that grows has a new one at every head. */
#define CACHE_EDGES 8

struct rk_tile_cache {
    pthread_mutex_t lock;
    size_t n_sets;
    cached_tile **slot; /* n_sets * CACHE_WAYS */
    cached_tile *edge[CACHE_EDGES];
    size_t n;
    uint64_t tick, hits, misses;
    struct {            /* the reading in the background (rk_tile_cache_warm) */
        pthread_t thread;
        int started, running, stopping;
        rk_db *db;
        uint64_t size;
    } warm;
};

rk_tile_cache *rk_tile_cache_new(size_t cap_bytes)
{
    rk_tile_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    size_t edges = CACHE_EDGES * sizeof(cached_tile);
    c->n_sets = cap_bytes > edges ? (cap_bytes - edges) / (CACHE_WAYS * sizeof(cached_tile)) : 0;
    if (c->n_sets == 0)
        c->n_sets = 1;
    if (!(c->slot = calloc(c->n_sets * CACHE_WAYS, sizeof *c->slot))) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

void rk_tile_cache_free(rk_tile_cache *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    c->warm.stopping = 1;
    pthread_mutex_unlock(&c->lock);
    if (c->warm.started)
        pthread_join(c->warm.thread, NULL);
    for (size_t i = 0; i < c->n_sets * CACHE_WAYS; i++)
        free(c->slot[i]);
    for (int i = 0; i < CACHE_EDGES; i++)
        free(c->edge[i]);
    free(c->slot);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* The ways a tile may be in: its set, or the edges for level 0. */
static cached_tile **cache_set(rk_tile_cache *c, int level, uint64_t index, int *ways)
{
    *ways = level ? CACHE_WAYS : CACHE_EDGES;
    return level ? &c->slot[((index + (uint64_t)level * 0x9E3779B1u) % c->n_sets) * CACHE_WAYS] : c->edge;
}

/* Keeps a tile read from the store: over a narrower copy of it, in a free
 * way, or over the tile of the lowest level read least recently when that
 * level is not above this one's. */
static void cache_put(rk_tile_cache *c, int level, uint64_t index, const rk_hash *hashes, int width)
{
    int ways;
    cached_tile **set = cache_set(c, level, index, &ways), **victim = NULL;
    for (int w = 0; w < ways; w++) {
        cached_tile *t = set[w];
        if (t && t->level == level && t->index == index) {
            victim = &set[w];
            break;
        }
        if (!t) {
            if (!victim || *victim)
                victim = &set[w];
        } else if (!victim || (*victim && (t->level < (*victim)->level ||
                                           (t->level == (*victim)->level && t->used < (*victim)->used))))
            victim = &set[w];
    }
    cached_tile *t = *victim;
    if (t && !(t->level == level && t->index == index) && t->level > level)
        return; /* the set holds tiles of higher levels only: they serve more proofs */
    if (!t) {
        if (!(t = malloc(sizeof *t)))
            return;
        *victim = t;
        c->n++;
    } else if (t->level == level && t->index == index && t->width >= width)
        return;
    t->level = level;
    t->index = index;
    t->width = width;
    t->used = ++c->tick;
    memcpy(t->hashes, hashes, (size_t)width * sizeof(rk_hash));
}

/* *stored: 1 when the tile was read from the store. A tile of level 0 is
 * kept when it is partial or `edge` says that it is the right edge of the
 * tree a proof reads (every proof of that size reads it). */
static rk_rc read_tile(rk_tile_cache *c, rk_db *db, int level, uint64_t index, int need, int edge,
                       rk_hash hashes[RK_TILE_WIDTH], int *width, int *stored)
{
    *stored = 1;
    if (!c)
        return rk_tile_read(db, level, index, hashes, width);
    pthread_mutex_lock(&c->lock);
    int ways;
    cached_tile **set = cache_set(c, level, index, &ways);
    for (int w = 0; w < ways; w++) {
        cached_tile *t = set[w];
        if (t && t->level == level && t->index == index && t->width >= need) {
            memcpy(hashes, t->hashes, (size_t)t->width * sizeof(rk_hash));
            *width = t->width;
            t->used = ++c->tick;
            c->hits++;
            pthread_mutex_unlock(&c->lock);
            *stored = 0;
            return RK_OK;
        }
    }
    c->misses++;
    pthread_mutex_unlock(&c->lock);
    rk_rc rc = rk_tile_read(db, level, index, hashes, width);
    if (rc == RK_OK && (level >= 1 || edge || *width < RK_TILE_WIDTH)) {
        pthread_mutex_lock(&c->lock);
        cache_put(c, level, index, (const rk_hash *)hashes, *width);
        pthread_mutex_unlock(&c->lock);
    }
    return rc;
}

rk_rc rk_tile_read_cached(rk_tile_cache *c, rk_db *db, int level, uint64_t index, int need,
                          rk_hash hashes[RK_TILE_WIDTH], int *width)
{
    int stored;
    return read_tile(c, db, level, index, need, 0, hashes, width, &stored);
}

/* Lock held: the cache holds the tile at least `need` wide. */
static int cache_has(rk_tile_cache *c, int level, uint64_t index, int need)
{
    int ways;
    cached_tile **set = cache_set(c, level, index, &ways);
    for (int w = 0; w < ways; w++)
        if (set[w] && set[w]->level == level && set[w]->index == index && set[w]->width >= need)
            return 1;
    return 0;
}

static void *warm_main(void *arg)
{
    rk_tile_cache *c = arg;
    rk_hash *h = malloc(RK_TILE_WIDTH * sizeof *h);
    uint64_t room = c->n_sets * CACHE_WAYS;
    for (int level = RK_TILE_LEVELS - 1; level >= 1 && h; level--) {
        uint64_t n = rk_tile_level_hashes(c->warm.size, level);
        uint64_t tiles = (n + RK_TILE_WIDTH - 1) / RK_TILE_WIDTH;
        /* oldest first, so that past the cap the newest stay (least recently read goes first) */
        for (uint64_t i = tiles > room ? tiles - room : 0; i < tiles; i++) {
            int need = i + 1 < tiles || n % RK_TILE_WIDTH == 0 ? RK_TILE_WIDTH : (int)(n % RK_TILE_WIDTH), width = 0;
            pthread_mutex_lock(&c->lock);
            int skip = c->warm.stopping ? -1 : cache_has(c, level, i, need);
            pthread_mutex_unlock(&c->lock);
            if (skip < 0)
                goto done;
            if (skip || rk_tile_read(c->warm.db, level, i, h, &width) != RK_OK)
                continue;
            pthread_mutex_lock(&c->lock);
            cache_put(c, level, i, (const rk_hash *)h, width);
            pthread_mutex_unlock(&c->lock);
        }
    }
done:
    free(h);
    pthread_mutex_lock(&c->lock);
    c->warm.running = 0;
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

void rk_tile_cache_warm(rk_tile_cache *c, rk_db *db, uint64_t size)
{
    if (!c || rk_tile_level_hashes(size, 1) == 0)
        return;
    pthread_mutex_lock(&c->lock);
    int busy = c->warm.running || c->warm.stopping;
    pthread_mutex_unlock(&c->lock);
    if (busy)
        return;
    if (c->warm.started) /* the previous reading has ended */
        pthread_join(c->warm.thread, NULL);
    c->warm.started = 0;
    c->warm.db = db;
    c->warm.size = size;
    c->warm.running = 1;
    if (pthread_create(&c->warm.thread, NULL, warm_main, c) == 0)
        c->warm.started = 1;
    else
        c->warm.running = 0;
}

void rk_tile_cache_stats(rk_tile_cache *c, size_t *tiles, size_t *bytes, uint64_t *hits, uint64_t *misses)
{
    pthread_mutex_lock(&c->lock);
    *tiles = c->n;
    *bytes = c->n * sizeof(cached_tile) + c->n_sets * CACHE_WAYS * sizeof(cached_tile *) + sizeof *c;
    *hits = c->hits;
    *misses = c->misses;
    pthread_mutex_unlock(&c->lock);
}

/* ---------- the store ---------- */

/* The tiles just stored, into the log's cache: the full ones of level >= 1
 * and the edge of every level, which the next proofs read. Their hashes
 * follow from the records alone, so a transaction that does not commit
 * leaves the cache right. */
static void cache_stored(rk_tile_builder *b)
{
    rk_tile_cache *c = b->cache;
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < b->n_dirty; i++)
        if (b->dirty[i].level >= 1)
            cache_put(c, b->dirty[i].level, b->dirty[i].index, (const rk_hash *)b->dirty[i].hashes, b->dirty[i].width);
    for (int l = 0; l < RK_TILE_LEVELS; l++)
        if ((b->edge_dirty >> l & 1) && b->edge[l].width > 0)
            cache_put(c, l, b->edge[l].index, (const rk_hash *)b->edge[l].hashes, b->edge[l].width);
    pthread_mutex_unlock(&c->lock);
}

static rk_rc put_tile(rk_db *db, const rk_tile *t)
{
    /* the widest version stays: a tile only grows */
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO log_tiles(level, idx, hashes) VALUES (?,?,?)"
                                 " ON CONFLICT (level, idx) DO UPDATE SET hashes = excluded.hashes"
                                 " WHERE length(excluded.hashes) > length(log_tiles.hashes)");
    rk_bind_int(st, 1, t->level);
    rk_bind_int(st, 2, (int64_t)t->index);
    rk_bind_blob(st, 3, t->hashes, (size_t)t->width * sizeof(rk_hash));
    return rk_stmt_exec(st);
}

rk_rc rk_tiles_store(rk_db *db, rk_tile_builder *b)
{
    rk_rc rc = RK_OK;
    for (size_t i = 0; i < b->n_dirty && rc == RK_OK; i++)
        rc = put_tile(db, &b->dirty[i]);
    for (int l = 0; l < RK_TILE_LEVELS && rc == RK_OK; l++)
        if ((b->edge_dirty >> l & 1) && b->edge[l].width > 0)
            rc = put_tile(db, &b->edge[l]);
    /* the frontier: the roots of the perfect subtrees of the set bits of size */
    rk_hash nodes[64];
    size_t n = 0;
    for (int i = 63; i >= 0; i--)
        if (b->frontier.size >> i & 1)
            memcpy(nodes[n++], b->frontier.nodes[i], sizeof(rk_hash));
    /* compare-and-set: only over the state this builder grew from */
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO log_state(id, size, frontier) VALUES (1,?,?)"
                                 " ON CONFLICT (id) DO UPDATE SET size = excluded.size, frontier = excluded.frontier"
                                 " WHERE log_state.size = ?");
    rk_bind_int(st, 1, (int64_t)b->frontier.size);
    rk_bind_blob(st, 2, nodes, n * sizeof(rk_hash));
    rk_bind_int(st, 3, (int64_t)b->stored_size);
    if (rc == RK_OK)
        rc = rk_stmt_exec(st);
    if (rc == RK_OK && rk_db_changes(db) != 1)
        rc = RK_ERR_CONFLICT;
    if (rc == RK_OK) {
        cache_stored(b);
        b->n_dirty = 0;
        b->edge_dirty = 0;
        b->stored_size = b->frontier.size;
    }
    return rc;
}

typedef struct tile_get {
    int level;
    uint64_t index;
    rk_hash *hashes;
    int width;
} tile_get;

static rk_rc tile_get_fn(rk_db *db, void *arg)
{
    tile_get *a = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT hashes FROM log_tiles WHERE level = ? AND idx = ?");
    rk_bind_int(q, 1, a->level);
    rk_bind_int(q, 2, (int64_t)a->index);
    rk_rc rc = rk_stmt_next(q);
    if (rc != RK_OK)
        return rc;
    size_t len = 0;
    const void *blob = rk_col_blob(q, 0, &len);
    if (!blob || len == 0 || len % sizeof(rk_hash) || len > RK_TILE_WIDTH * sizeof(rk_hash))
        return RK_ERR_STORE; /* a damaged tile */
    memcpy(a->hashes, blob, len);
    a->width = (int)(len / sizeof(rk_hash));
    return RK_OK;
}

rk_rc rk_tile_read(rk_db *db, int level, uint64_t index, rk_hash hashes[RK_TILE_WIDTH], int *width)
{
    tile_get a = {level, index, hashes, 0};
    rk_rc rc = rk_db_read(db, tile_get_fn, &a);
    if (rc == RK_OK)
        *width = a.width;
    return rc;
}

static rk_rc state_get_fn(rk_db *db, void *arg)
{
    rk_tile_builder *b = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT size, frontier FROM log_state WHERE id = 1");
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_ERR_NOT_FOUND)
        return RK_OK; /* an empty tree */
    if (rc != RK_OK)
        return rc;
    uint64_t size = (uint64_t)rk_col_int(q, 0);
    size_t len = 0;
    const uint8_t *blob = rk_col_blob(q, 1, &len);
    if (len != (size_t)__builtin_popcountll(size) * sizeof(rk_hash) || (len && !blob))
        return RK_ERR_STORE;
    b->frontier.size = size;
    b->stored_size = size;
    for (int i = 63; i >= 0; i--)
        if (size >> i & 1) {
            memcpy(b->frontier.nodes[i], blob, sizeof(rk_hash));
            blob += sizeof(rk_hash);
        }
    return RK_OK;
}

rk_rc rk_tiles_load(rk_db *db, rk_tile_builder *b)
{
    struct rk_tile_cache *cache = b->cache;
    rk_tile_builder_free(b);
    rk_tile_builder_init(b);
    b->cache = cache;
    rk_rc rc = rk_db_read(db, state_get_fn, b);
    /* each level's edge: the stored rightmost tile, cut to what the size covers */
    for (int l = 0; l < RK_TILE_LEVELS && rc == RK_OK; l++) {
        uint64_t n = rk_tile_level_hashes(b->frontier.size, l);
        rk_tile *t = &b->edge[l];
        t->index = n / RK_TILE_WIDTH;
        int want = (int)(n % RK_TILE_WIDTH), got = 0;
        if (want == 0)
            continue;
        rc = rk_tile_read(db, l, t->index, t->hashes, &got);
        if (rc == RK_OK && got < want)
            rc = RK_ERR_STORE; /* the state is ahead of its tiles: damaged */
        t->width = want;
    }
    if (rc == RK_ERR_NOT_FOUND)
        rc = RK_ERR_STORE;
    return rc;
}

/* ---------- proofs from tiles ---------- */

void rk_tile_reader_init(rk_tile_reader *r, rk_db *db, uint64_t size)
{
    memset(r, 0, sizeof *r);
    r->db = db;
    r->size = size;
}

void rk_tile_reader_share(rk_tile_reader *r, rk_tile_cache *c)
{
    r->shared = c;
}

/* The hashes of tile (level, index), at least `need` wide. */
static rk_rc reader_tile(rk_tile_reader *r, int level, uint64_t index, int need, const rk_hash **out)
{
    for (int i = 0; i < r->n_cache; i++)
        if (r->cache[i].level == level && r->cache[i].index == index && r->cache[i].width >= need) {
            *out = (const rk_hash *)r->cache[i].hashes;
            return RK_OK;
        }
    int slot = r->n_cache < (int)(sizeof r->cache / sizeof r->cache[0]) ? r->n_cache++ : r->next;
    r->next = (slot + 1) % (int)(sizeof r->cache / sizeof r->cache[0]);
    r->cache[slot].level = -1;
    int width = 0, stored = 0;
    int edge = (index + 1) * RK_TILE_WIDTH > rk_tile_level_hashes(r->size, level);
    rk_rc rc = read_tile(r->shared, r->db, level, index, need, edge, r->cache[slot].hashes, &width, &stored);
    r->reads += stored;
    if (rc != RK_OK || width < need)
        return RK_ERR_STORE;
    r->cache[slot].level = level;
    r->cache[slot].index = index;
    r->cache[slot].width = width;
    *out = (const rk_hash *)r->cache[slot].hashes;
    return RK_OK;
}

/* A perfect subtree of height h = 8L + s is 2^s hashes of tile level L,
 * all in one tile: they are hashed up s levels. */
static rk_rc reader_subtree(void *arg, unsigned height, uint64_t index, rk_hash out)
{
    rk_tile_reader *r = arg;
    int level = (int)(height / RK_TILE_HEIGHT);
    unsigned s = height % RK_TILE_HEIGHT;
    uint64_t first = index << s, count = (uint64_t)1 << s;
    if (level >= RK_TILE_LEVELS || first + count > rk_tile_level_hashes(r->size, level))
        return RK_ERR_INVALID;
    const rk_hash *h;
    int off = (int)(first % RK_TILE_WIDTH);
    rk_rc rc = reader_tile(r, level, first / RK_TILE_WIDTH, off + (int)count, &h);
    if (rc == RK_OK)
        rc = rk_merkle_root(h + off, (size_t)count, out);
    return rc;
}

rk_merkle_source rk_tile_reader_source(rk_tile_reader *r)
{
    rk_merkle_source s = {reader_subtree, r};
    return s;
}

rk_rc rk_tile_reader_leaf(rk_tile_reader *r, uint64_t index, rk_hash out)
{
    return reader_subtree(r, 0, index, out);
}
