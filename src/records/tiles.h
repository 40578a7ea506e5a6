/* tiles.h — the records log's tree kept as C2SP tlog-tiles (DESIGN §4.1),
 * so that a proof reads a handful of stored tiles whatever the size of the
 * log (5×10¹⁰ records in seven years, 法23条).
 *
 * A tile holds up to 256 hashes of one level of tiles: level 0 the leaf
 * hashes, level l+1 the roots of the full tiles of level l. Tile N of level
 * L covers hashes [256N, 256N+256) of that level; a tile of width W < 256 is
 * a partial tile. Tiles only grow: a tile of width W is a prefix of every
 * later one, and a full tile never changes.
 *
 * The store keeps, per (level, index), the widest version of each tile
 * (table log_tiles) and the tree's frontier with the size the tiles cover
 * (table log_state), written together in one transaction: after a crash
 * the node resumes from the last such write with the same tiles. */
#ifndef RK_RECORDS_TILES_H
#define RK_RECORDS_TILES_H

#include <stddef.h>
#include <stdint.h>
#include "lib/err.h"
#include "records/merkle.h"
#include "store/db.h"

#define RK_TILE_WIDTH 256
#define RK_TILE_HEIGHT 8 /* log2(RK_TILE_WIDTH): levels of the tree in one tile level */
#define RK_TILE_LEVELS 8 /* 256^8 = 2^64 leaves */
#define RK_TILE_PATH_MAX 96

/* ---------- paths: "<L>/<N>[.p/<W>]", N as x001/x234/067 ---------- */

/* 0, or -1 when the path is not the canonical form of a tile (level
 * 0..RK_TILE_LEVELS-1, width 1..255 when partial, 0 for a full tile). */
int rk_tile_path_parse(const char *path, int *level, uint64_t *index, int *width);
void rk_tile_path(int level, uint64_t index, int width, char out[RK_TILE_PATH_MAX]);

/* Hashes at level L of a tree of `size` leaves: size >> (8 L). */
uint64_t rk_tile_level_hashes(uint64_t size, int level);

/* ---------- building tiles as leaves are appended ---------- */

/* A tile the builder has changed since it was last stored. */
typedef struct rk_tile {
    int level;
    uint64_t index;
    int width;
    rk_hash hashes[RK_TILE_WIDTH];
} rk_tile;

/* The right edge of the tree in tiles: the partial tile of every level, the
 * frontier (for the root) and the tiles filled or grown since the last
 * rk_tiles_store. */
typedef struct rk_tile_builder {
    rk_merkle_frontier frontier;
    rk_tile edge[RK_TILE_LEVELS]; /* edge[L]: the rightmost tile of level L */
    rk_tile *dirty;               /* full tiles made since the last store, then copies of edge */
    size_t n_dirty, cap_dirty;
    unsigned edge_dirty;          /* bit L: edge[L] changed */
    uint64_t stored_size;         /* the stored state's size this builder extends (fencing, below) */
    struct rk_tile_cache *cache;  /* the log's tiles in memory (below): rk_tiles_store puts there the tiles
                                     of level >= 1 and the edge it stored; NULL: none */
} rk_tile_builder;

void rk_tile_builder_init(rk_tile_builder *b);
void rk_tile_builder_free(rk_tile_builder *b);
/* Appends a leaf hash; RK_ERR_NOMEM when a filled tile cannot be kept. */
rk_rc rk_tile_builder_append(rk_tile_builder *b, const rk_hash leaf);
/* Full tiles waiting to be stored. */
size_t rk_tile_builder_pending(const rk_tile_builder *b);

/* ---------- the store ---------- */

/* The module's tables are created by rk_records_migrate (module "records"). */

/* Inside a write callback: stores the builder's changed tiles and its state
 * (size and frontier), then forgets what it stored. Fenced: when the stored
 * state is no longer the one this builder extends (another instance's
 * signer moved it, DESIGN §6), nothing is stored and the answer is
 * RK_ERR_CONFLICT; the caller loads the state again. */
rk_rc rk_tiles_store(rk_db *db, rk_tile_builder *b);
/* Loads the state last stored into b (an empty tree when none); b keeps its cache. */
rk_rc rk_tiles_load(rk_db *db, rk_tile_builder *b);

/* Reads the stored tile (level, index): *width hashes (1..256) into hashes.
 * RK_ERR_NOT_FOUND when none is stored. A short read (rk_db_read). */
rk_rc rk_tile_read(rk_db *db, int level, uint64_t index, rk_hash hashes[RK_TILE_WIDTH], int *width);

/* ---------- the tiles above the leaves, in memory ---------- */

/* A serving node keeps the tiles of level 1 and up that proofs read in a
 * bounded cache shared by its threads, with the partial tiles of level 0
 * at the right edge of the latest few trees (every proof of a size reads
 * its edge), so that a proof reads at most one tile from the store, its
 * leaf's: the tiles above the leaves are 1/256 of them (12.5 MB at 10⁸
 * records) and a proof reads one per level. A tile is kept with the width
 * it was read at; since a tile only grows and its hashes never change, it
 * serves any proof that needs no more of it. Past the cap, a tile of the
 * lowest level read least recently makes room. */
#define RK_TILE_CACHE_BYTES (16u << 20) /* 2032 tiles and 8 edges: every tile above level 0 to about 1.3×10⁸ leaves */

typedef struct rk_tile_cache rk_tile_cache;

/* NULL when out of memory (the tiles are then read from the store). */
rk_tile_cache *rk_tile_cache_new(size_t cap_bytes);
void rk_tile_cache_free(rk_tile_cache *c);
/* Reads tile (level, index) at least `need` hashes wide: from the cache when
 * it holds it that wide, else from the store (rk_tile_read), then kept (a
 * tile of level ≥ 1, or a partial one). c may be NULL. */
rk_rc rk_tile_read_cached(rk_tile_cache *c, rk_db *db, int level, uint64_t index, int need,
                          rk_hash hashes[RK_TILE_WIDTH], int *width);
/* Reads in the background (one thread, at most one at a time) the tiles of
 * level >= 1 of a tree of `size` leaves, highest level first, the newest
 * that fit under the cap: a node that starts with a large log answers its
 * first proofs from memory too. db must outlive c; rk_tile_cache_free
 * stops the reading. */
void rk_tile_cache_warm(rk_tile_cache *c, rk_db *db, uint64_t size);
/* Tiles held and their bytes, lookups that found their tile (for tests and
 * the bench). */
void rk_tile_cache_stats(rk_tile_cache *c, size_t *tiles, size_t *bytes, uint64_t *hits, uint64_t *misses);

/* Proofs from stored tiles: a source (merkle.h) over db for a tree of
 * `size` leaves, keeping the few tiles a proof reads. Not shared between
 * threads (the cache it is given may be). */
typedef struct rk_tile_reader {
    rk_db *db;
    rk_tile_cache *shared;        /* NULL: none */
    uint64_t size;
    int reads;                    /* tiles read from the store so far */
    struct {
        int level, width;
        uint64_t index;
        rk_hash hashes[RK_TILE_WIDTH];
    } cache[6];
    int n_cache, next;
} rk_tile_reader;

void rk_tile_reader_init(rk_tile_reader *r, rk_db *db, uint64_t size);
/* The reader takes its tiles of level ≥ 1 from c (may be NULL). */
void rk_tile_reader_share(rk_tile_reader *r, rk_tile_cache *c);
/* The source to pass to rk_merkle_*_from; RK_ERR_STORE when a tile the
 * tree of that size needs is missing or too narrow. */
rk_merkle_source rk_tile_reader_source(rk_tile_reader *r);
/* The hash of leaf `index` (level 0). */
rk_rc rk_tile_reader_leaf(rk_tile_reader *r, uint64_t index, rk_hash out);

#endif
