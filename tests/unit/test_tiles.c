/* Unit tests: the records log as tiles (records/tiles.h) and its C2SP
 * checkpoint (records/checkpoint.h) — tile paths and their canonical form,
 * tiles built as leaves arrive and stored in steps, proofs and roots read
 * from stored tiles equal to those from every leaf at many sizes, a reload
 * that resumes with the same tiles, and signed notes and vkeys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "records/checkpoint.h"
#include "records/records.h"
#include "records/tiles.h"
#include "store/db.h"

static char dir[64], path[128];

static void leaf_of(uint64_t i, rk_hash out)
{
    char text[32];
    int n = snprintf(text, sizeof text, "leaf %llu", (unsigned long long)i);
    rk_merkle_leaf_hash(text, (size_t)n, out);
}

static rk_rc store_fn(rk_db *db, void *arg)
{
    return rk_tiles_store(db, arg);
}

static rk_db *open_db(void)
{
    rk_db *db = NULL;
    assert_int_equal(rk_db_open(path, 0, &db), RK_OK);
    assert_int_equal(rk_records_migrate(db), RK_OK);
    return db;
}

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/rk-test-tiles-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/node.db", dir);
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

static void test_paths(void **state)
{
    char p[RK_TILE_PATH_MAX];
    rk_tile_path(0, 0, 0, p);
    assert_string_equal(p, "0/000");
    rk_tile_path(0, 1234067, 0, p);
    assert_string_equal(p, "0/x001/x234/067");
    rk_tile_path(1, 5, 17, p);
    assert_string_equal(p, "1/005.p/17");
    rk_tile_path(2, 1000, 0, p);
    assert_string_equal(p, "2/x001/000");
    int level, width;
    uint64_t index;
    assert_int_equal(rk_tile_path_parse("0/x001/x234/067", &level, &index, &width), 0);
    assert_int_equal(level, 0);
    assert_int_equal(index, 1234067);
    assert_int_equal(width, 0);
    assert_int_equal(rk_tile_path_parse("3/999.p/255", &level, &index, &width), 0);
    assert_int_equal(level, 3);
    assert_int_equal(index, 999);
    assert_int_equal(width, 255);
    static const char *const bad[] = {"", "0", "0/", "0/1", "0/01", "0/0000", "0/x000/001", "8/000", "0/000.p/0",
                                      "0/000.p/256", "0/000.p/017", "0/000.p/", "0/000/", "/0/000", "0/x001",
                                      "01/000", "0/000.q/1", "-1/000", "0/x1000/000", "0/000 ", "0/x001/x002/x003/x004/x005/x006/x007/008"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(rk_tile_path_parse(bad[i], &level, &index, &width), -1);
}

/* 70 000 leaves: 273 tiles of level 0, a full and a partial tile of level 1,
 * one hash at level 2; stored every 997 leaves as a node stores them. */
#define N_LEAVES 70000

static void test_proofs_from_tiles(void **state)
{
    rk_hash *leaves = malloc(N_LEAVES * sizeof *leaves);
    assert_non_null(leaves);
    rk_db *db = open_db();
    rk_tile_builder b;
    rk_tile_builder_init(&b);
    for (uint64_t i = 0; i < N_LEAVES; i++) {
        leaf_of(i, leaves[i]);
        assert_int_equal(rk_tile_builder_append(&b, leaves[i]), RK_OK);
        if (i % 997 == 0 || i == N_LEAVES - 1)
            assert_int_equal(rk_db_write(db, store_fn, &b), RK_OK);
    }
    rk_hash want, got;
    rk_merkle_root(leaves, N_LEAVES, want);
    rk_merkle_frontier_root(&b.frontier, got);
    assert_memory_equal(want, got, 32);
    /* proofs at many sizes, from the tiles as stored at the end */
    static const uint64_t sizes[] = {1, 2, 3, 255, 256, 257, 511, 512, 65535, 65536, 65537, 69999, N_LEAVES};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        uint64_t n = sizes[s];
        rk_tile_reader r;
        rk_tile_reader_init(&r, db, n);
        rk_merkle_source src = rk_tile_reader_source(&r);
        rk_merkle_root(leaves, n, want);
        assert_int_equal(rk_merkle_root_from(&src, n, got), RK_OK);
        assert_memory_equal(want, got, 32);
        for (int k = 0; k < 8; k++) {
            uint64_t m = (n * (uint64_t)(k * 37 + 5) / 300) % n;
            rk_hash *p1 = NULL, *p2 = NULL;
            size_t l1 = 0, l2 = 0;
            assert_int_equal(rk_merkle_inclusion_proof(leaves, n, m, &p1, &l1), RK_OK);
            assert_int_equal(rk_merkle_inclusion_proof_from(&src, n, m, &p2, &l2), RK_OK);
            assert_int_equal(l1, l2);
            if (l1)
                assert_memory_equal(p1, p2, l1 * 32);
            assert_int_equal(rk_merkle_verify_inclusion(leaves[m], m, n, p2, l2, want), RK_OK);
            free(p1);
            free(p2);
            uint64_t old = m + 1;
            assert_int_equal(rk_merkle_consistency_proof(leaves, n, old, &p1, &l1), RK_OK);
            assert_int_equal(rk_merkle_consistency_proof_from(&src, n, old, &p2, &l2), RK_OK);
            assert_int_equal(l1, l2);
            if (l1)
                assert_memory_equal(p1, p2, l1 * 32);
            free(p1);
            free(p2);
            rk_hash leaf;
            assert_int_equal(rk_tile_reader_leaf(&r, m, leaf), RK_OK);
            assert_memory_equal(leaf, leaves[m], 32);
        }
        /* a handful of tiles per proof, never every leaf */
        assert_true(r.reads <= 40);
    }
    /* the same proofs with the tiles above the leaves shared in memory: once
     * they are there, a proof reads one tile from the store, its leaf's */
    rk_tile_cache *cache = rk_tile_cache_new(RK_TILE_CACHE_BYTES);
    assert_non_null(cache);
    for (int pass = 0; pass < 2; pass++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            uint64_t n = sizes[s], m = n * 7 / 11;
            rk_tile_reader r;
            rk_tile_reader_init(&r, db, n);
            rk_tile_reader_share(&r, cache);
            rk_merkle_source src = rk_tile_reader_source(&r);
            rk_hash *p1 = NULL, *p2 = NULL;
            size_t l1 = 0, l2 = 0;
            assert_int_equal(rk_merkle_inclusion_proof(leaves, n, m, &p1, &l1), RK_OK);
            assert_int_equal(rk_merkle_inclusion_proof_from(&src, n, m, &p2, &l2), RK_OK);
            assert_int_equal(l1, l2);
            if (l1)
                assert_memory_equal(p1, p2, l1 * 32);
            free(p1);
            free(p2);
            if (pass == 1)
                assert_true(r.reads <= 1);
        }
    size_t held, bytes;
    uint64_t hits, misses;
    rk_tile_cache_stats(cache, &held, &bytes, &hits, &misses);
    /* 1/000, 1/001.p/17 and the right edge of the leaves at each size: 0/000, 0/001, 0/255, 0/256,
     * 0/273.p/112 (no proof of a leaf below 65536 reads level 2) */
    assert_int_equal(held, 7);
    assert_true(hits > 0 && bytes < RK_TILE_CACHE_BYTES);
    rk_tile_cache_free(cache);
    /* a cache read in the background when a node starts, and one the
     * builder fills as it stores: the first proof reads its leaf's tile only */
    rk_tile_cache *warmed = rk_tile_cache_new(RK_TILE_CACHE_BYTES), *built = rk_tile_cache_new(RK_TILE_CACHE_BYTES);
    assert_non_null(warmed);
    assert_non_null(built);
    rk_tile_cache_warm(warmed, db, N_LEAVES);
    for (int i = 0; i < 1000; i++) { /* 1/000, 1/001.p/17 and 2/000.p/1 */
        rk_tile_cache_stats(warmed, &held, &bytes, &hits, &misses);
        if (held == 3)
            break;
        usleep(10000);
    }
    assert_int_equal(held, 3);
    rk_tile_builder nb;
    rk_tile_builder_init(&nb);
    nb.cache = built;
    rk_db *db2 = NULL;
    char path2[160];
    snprintf(path2, sizeof path2, "%s/other.db", dir);
    assert_int_equal(rk_db_open(path2, 0, &db2), RK_OK);
    assert_int_equal(rk_records_migrate(db2), RK_OK);
    for (uint64_t i = 0; i < N_LEAVES; i++) {
        assert_int_equal(rk_tile_builder_append(&nb, leaves[i]), RK_OK);
        if (i % 4099 == 0 || i == N_LEAVES - 1)
            assert_int_equal(rk_db_write(db2, store_fn, &nb), RK_OK);
    }
    rk_tile_cache *both[] = {warmed, built};
    rk_db *dbs[] = {db, db2};
    for (int k = 0; k < 2; k++) {
        uint64_t n = N_LEAVES, m = 300;
        rk_tile_reader r;
        rk_tile_reader_init(&r, dbs[k], n);
        rk_tile_reader_share(&r, both[k]);
        rk_merkle_source src = rk_tile_reader_source(&r);
        rk_hash *p1 = NULL, *p2 = NULL;
        size_t l1 = 0, l2 = 0;
        assert_int_equal(rk_merkle_inclusion_proof(leaves, n, m, &p1, &l1), RK_OK);
        assert_int_equal(rk_merkle_inclusion_proof_from(&src, n, m, &p2, &l2), RK_OK);
        assert_int_equal(l1, l2);
        assert_memory_equal(p1, p2, l1 * 32);
        free(p1);
        free(p2);
        assert_int_equal(r.reads, k == 0 ? 2 : 1); /* warmed: the leaves' edge 0/273.p/112 too; built: it holds it */
    }
    rk_tile_builder_free(&nb);
    rk_db_close(db2);
    rk_tile_cache_free(warmed);
    rk_tile_cache_free(built);
    /* beyond the tiles stored: refused, not guessed */
    rk_tile_reader r;
    rk_tile_reader_init(&r, db, N_LEAVES + 300);
    rk_merkle_source src = rk_tile_reader_source(&r);
    assert_int_not_equal(rk_merkle_root_from(&src, N_LEAVES + 300, got), RK_OK);

    /* a reload resumes with the same edge: appending more gives the tiles
     * and root a builder that never stopped gives */
    rk_tile_builder again;
    rk_tile_builder_init(&again);
    assert_int_equal(rk_tiles_load(db, &again), RK_OK);
    assert_int_equal(again.frontier.size, N_LEAVES);
    for (int l = 0; l < RK_TILE_LEVELS; l++) {
        assert_int_equal(again.edge[l].width, b.edge[l].width);
        assert_int_equal(again.edge[l].index, b.edge[l].index);
        assert_memory_equal(again.edge[l].hashes, b.edge[l].hashes, (size_t)b.edge[l].width * 32);
    }
    rk_hash extra;
    leaf_of(N_LEAVES, extra);
    assert_int_equal(rk_tile_builder_append(&again, extra), RK_OK);
    assert_int_equal(rk_tile_builder_append(&b, extra), RK_OK);
    rk_merkle_frontier_root(&again.frontier, want);
    rk_merkle_frontier_root(&b.frontier, got);
    assert_memory_equal(want, got, 32);
    rk_tile_builder_free(&again);
    rk_tile_builder_free(&b);
    rk_db_close(db);
    free(leaves);
}

typedef struct raw_tile {
    int level, width;
    uint64_t index;
} raw_tile;

static void tile_hashes(const raw_tile *t, rk_hash *h)
{
    for (int i = 0; i < t->width; i++) {
        char text[48];
        int n = snprintf(text, sizeof text, "%d/%llu/%d", t->level, (unsigned long long)t->index, i);
        rk_merkle_leaf_hash(text, (size_t)n, h[i]);
    }
}

static rk_rc put_raw_fn(rk_db *db, void *arg)
{
    const raw_tile *t = arg;
    rk_hash h[RK_TILE_WIDTH];
    tile_hashes(t, h);
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO log_tiles(level, idx, hashes) VALUES (?,?,?)"
                                 " ON CONFLICT (level, idx) DO UPDATE SET hashes = excluded.hashes");
    rk_bind_int(st, 1, t->level);
    rk_bind_int(st, 2, (int64_t)t->index);
    rk_bind_blob(st, 3, h, (size_t)t->width * sizeof(rk_hash));
    return rk_stmt_exec(st);
}

/* Reads a tile through the cache and checks its hashes; 1 when the cache had it. */
static int read_through(rk_tile_cache *c, rk_db *db, int level, uint64_t index, int need, int width)
{
    uint64_t hits0, hits, misses;
    size_t held, bytes;
    rk_tile_cache_stats(c, &held, &bytes, &hits0, &misses);
    rk_hash got[RK_TILE_WIDTH], want[RK_TILE_WIDTH];
    int w = 0;
    assert_int_equal(rk_tile_read_cached(c, db, level, index, need, got, &w), RK_OK);
    assert_int_equal(w, width);
    raw_tile t = {level, width, index};
    tile_hashes(&t, want);
    assert_memory_equal(got, want, (size_t)width * sizeof(rk_hash));
    rk_tile_cache_stats(c, &held, &bytes, &hits, &misses);
    return hits > hits0;
}

/* The cache of the tiles above the leaves stays within its cap (here one
 * set of 16 tiles), gives up tiles of the lowest level first, least
 * recently read first, and serves a partial tile only as wide as it holds
 * it. */
static void test_tile_cache_bounded(void **state)
{
    rk_db *db = open_db();
    for (int level = 1; level <= 2; level++)
        for (uint64_t i = 0; i < (level == 1 ? 40 : 4); i++) {
            raw_tile t = {level, RK_TILE_WIDTH, i};
            assert_int_equal(rk_db_write(db, put_raw_fn, &t), RK_OK);
        }
    rk_tile_cache *c = rk_tile_cache_new(1);
    assert_non_null(c);
    for (uint64_t i = 0; i < 4; i++)
        assert_false(read_through(c, db, 2, i, RK_TILE_WIDTH, RK_TILE_WIDTH));
    for (uint64_t i = 0; i < 40; i++)
        assert_false(read_through(c, db, 1, i, RK_TILE_WIDTH, RK_TILE_WIDTH));
    size_t held, bytes;
    uint64_t hits, misses;
    rk_tile_cache_stats(c, &held, &bytes, &hits, &misses);
    assert_int_equal(held, 16);
    assert_true(bytes < 17 * (RK_TILE_WIDTH * sizeof(rk_hash) + 64));
    for (uint64_t i = 0; i < 4; i++) /* level 2 stayed */
        assert_true(read_through(c, db, 2, i, RK_TILE_WIDTH, RK_TILE_WIDTH));
    assert_true(read_through(c, db, 1, 39, RK_TILE_WIDTH, RK_TILE_WIDTH));  /* the latest of level 1 */
    assert_true(read_through(c, db, 1, 28, 100, RK_TILE_WIDTH));            /* the oldest still kept */
    assert_false(read_through(c, db, 1, 27, RK_TILE_WIDTH, RK_TILE_WIDTH)); /* gone: read again */
    /* a partial tile: kept as wide as it was read; a wider need reads the store again */
    raw_tile p = {1, 10, 100};
    assert_int_equal(rk_db_write(db, put_raw_fn, &p), RK_OK);
    assert_false(read_through(c, db, 1, 100, 5, 10));
    assert_true(read_through(c, db, 1, 100, 10, 10));
    p.width = 20;
    assert_int_equal(rk_db_write(db, put_raw_fn, &p), RK_OK);
    assert_false(read_through(c, db, 1, 100, 15, 20));
    assert_true(read_through(c, db, 1, 100, 3, 20));
    rk_tile_cache_stats(c, &held, &bytes, &hits, &misses);
    assert_int_equal(held, 16);
    rk_tile_cache_free(c);
    rk_db_close(db);
}

static EVP_PKEY *new_log_key(void)
{
    char kp[160];
    snprintf(kp, sizeof kp, "%s/log_key.pem", dir);
    assert_int_equal(rk_log_key_create(kp), RK_OK);
    FILE *f = fopen(kp, "r");
    assert_non_null(f);
    EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(key);
    return key;
}

static void test_checkpoint(void **state)
{
    EVP_PKEY *key = new_log_key();
    char vtext[RK_VKEY_MAX];
    assert_int_equal(rk_vkey_of("renkei/test/core", key, vtext), RK_OK);
    assert_int_equal(strncmp(vtext, "renkei/test/core+", 17), 0);
    rk_vkey v;
    assert_int_equal(rk_vkey_parse(vtext, &v), RK_OK);
    assert_string_equal(v.name, "renkei/test/core");
    assert_int_equal(rk_vkey_of("bad name", key, vtext), RK_ERR_INVALID);

    rk_hash root, got;
    rk_merkle_leaf_hash("x", 1, root);
    char *note = NULL;
    assert_int_equal(rk_checkpoint_sign(key, "renkei/test/core", 12345, root, &note), RK_OK);
    assert_non_null(strstr(note, "renkei/test/core\n12345\n"));
    assert_non_null(strstr(note, "\n\n\xe2\x80\x94 renkei/test/core "));
    uint64_t size = 0;
    assert_int_equal(rk_checkpoint_open(note, strlen(note), &v, &size, got), RK_OK);
    assert_int_equal(size, 12345);
    assert_memory_equal(root, got, 32);
    /* a cosignature line after it changes nothing */
    char *cosigned = NULL;
    assert_true(asprintf(&cosigned, "%s\xe2\x80\x94 witness-1 AAAAAAAA\n", note) > 0);
    assert_int_equal(rk_checkpoint_open(cosigned, strlen(cosigned), &v, &size, got), RK_OK);
    free(cosigned);
    /* a changed size, another origin, a cut note: refused */
    char *bad = strdup(note);
    bad[strlen("renkei/test/core\n")] = '9';
    assert_int_equal(rk_checkpoint_open(bad, strlen(bad), &v, &size, got), RK_ERR_CRYPTO);
    free(bad);
    rk_vkey other = v;
    snprintf(other.name, sizeof other.name, "renkei/test/other");
    assert_int_equal(rk_checkpoint_open(note, strlen(note), &other, &size, got), RK_ERR_INVALID);
    assert_int_not_equal(rk_checkpoint_open(note, strlen(note) - 3, &v, &size, got), RK_OK);
    /* another key under the same name: no signature of it */
    EVP_PKEY *key2 = new_log_key();
    char v2text[RK_VKEY_MAX];
    rk_vkey v2;
    assert_int_equal(rk_vkey_of("renkei/test/core", key2, v2text), RK_OK);
    assert_int_equal(rk_vkey_parse(v2text, &v2), RK_OK);
    assert_int_equal(rk_checkpoint_open(note, strlen(note), &v2, &size, got), RK_ERR_CRYPTO);
    /* a vkey whose id does not match its key */
    v2text[strlen("renkei/test/core+")] ^= 1;
    assert_int_equal(rk_vkey_parse(v2text, &v2), RK_ERR_INVALID);
    free(note);
    EVP_PKEY_free(key);
    EVP_PKEY_free(key2);
}

/* A log's keys over time (log_vkey_history): each time has the key valid
 * then, or none; a rotation appends the current key with its period; a
 * history out of order, of another name or too long is refused. */
static void test_log_keys(void **state)
{
    (void)state;
    EVP_PKEY *k1 = new_log_key(), *k2 = new_log_key(), *k3 = new_log_key();
    char v1[RK_VKEY_MAX], v2[RK_VKEY_MAX], v3[RK_VKEY_MAX], vx[RK_VKEY_MAX], *h1 = NULL, *h2 = NULL;
    assert_int_equal(rk_vkey_of("renkei/test/core", k1, v1), RK_OK);
    assert_int_equal(rk_vkey_of("renkei/test/core", k2, v2), RK_OK);
    assert_int_equal(rk_vkey_of("renkei/test/core", k3, v3), RK_OK);
    assert_int_equal(rk_vkey_of("renkei/test/other", k1, vx), RK_OK);
    rk_log_keys keys;
    assert_int_equal(rk_log_keys_parse(v1, NULL, &keys), RK_OK);
    assert_ptr_equal(rk_log_keys_at(&keys, 0), &keys.current);
    /* rotated at t = 1 000 000 000 123 ms, then at t + 60 s */
    int64_t t = INT64_C(1000000000123);
    assert_int_equal(rk_log_keys_rotate(v1, NULL, t, &h1), RK_OK);
    assert_non_null(strstr(h1, "\"until\":\"2001-09-09T01:46:40.123Z\""));
    assert_null(strstr(h1, "\"from\""));
    assert_int_equal(rk_log_keys_rotate(v2, h1, t + 60000, &h2), RK_OK);
    assert_int_equal(rk_log_keys_rotate(v2, h1, t, &h2 /* unchanged on error */), RK_ERR_CONFLICT);
    assert_int_equal(rk_log_keys_parse(v3, h2, &keys), RK_OK);
    assert_int_equal(keys.n_earlier, 2);
    rk_vkey want1, want2;
    assert_int_equal(rk_vkey_parse(v1, &want1), RK_OK);
    assert_int_equal(rk_vkey_parse(v2, &want2), RK_OK);
    assert_memory_equal(rk_log_keys_at(&keys, 5)->pub, want1.pub, 32);     /* since the log began */
    assert_memory_equal(rk_log_keys_at(&keys, t - 1)->pub, want1.pub, 32);
    assert_memory_equal(rk_log_keys_at(&keys, t)->pub, want2.pub, 32);
    assert_ptr_equal(rk_log_keys_at(&keys, t + 60000), &keys.current);
    /* a gap in the history: no key then */
    char gap[1024];
    snprintf(gap, sizeof gap,
             "[{\"vkey\":\"%s\",\"until\":\"2001-01-01T00:00:00Z\"},"
             "{\"vkey\":\"%s\",\"from\":\"2001-02-01T00:00:00Z\",\"until\":\"2001-03-01T00:00:00.500Z\"}]",
             v1, v2);
    assert_int_equal(rk_log_keys_parse(v3, gap, &keys), RK_OK);
    assert_null(rk_log_keys_at(&keys, INT64_C(979430400000))); /* 2001-01-14 */
    assert_memory_equal(rk_log_keys_at(&keys, INT64_C(983404800499))->pub, want2.pub, 32);
    assert_ptr_equal(rk_log_keys_at(&keys, INT64_C(983404800500)), &keys.current);
    /* refused: out of order, overlapping, bad times, not a list (K1, K2: the first two keys) */
    const char *bad[] = {
        "[{\"vkey\":\"K1\",\"from\":\"2001-03-01T00:00:00Z\",\"until\":\"2001-02-01T00:00:00Z\"}]",
        "[{\"vkey\":\"K1\",\"until\":\"2001-03-01T00:00:00Z\"},{\"vkey\":\"K2\",\"from\":\"2001-02-01T00:00:00Z\","
        "\"until\":\"2001-04-01T00:00:00Z\"}]",
        "[{\"vkey\":\"K1\",\"until\":\"2001-03-01 00:00:00\"}]",
        "[{\"vkey\":\"K1\",\"until\":\"2001-03-01T00:00:00.5Z\"}]",
        "[{\"vkey\":\"K1\"}]",
        "{\"vkey\":\"K1\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[1024] = "";
        for (const char *p = bad[i]; *p; p++) {
            if (p[0] == 'K' && (p[1] == '1' || p[1] == '2')) {
                strcat(text, p[1] == '1' ? v1 : v2);
                p++;
            } else
                strncat(text, p, 1);
        }
        assert_int_equal(rk_log_keys_parse(v3, text, &keys), RK_ERR_INVALID);
    }
    char other[1024];
    snprintf(other, sizeof other, "[{\"vkey\":\"%s\",\"until\":\"2001-03-01T00:00:00Z\"}]", vx);
    assert_int_equal(rk_log_keys_parse(v3, other, &keys), RK_ERR_INVALID);
    assert_int_equal(rk_log_keys_parse("not a vkey", NULL, &keys), RK_ERR_INVALID);
    free(h1);
    free(h2);
    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
    EVP_PKEY_free(k3);
}

/* A witness's cosignature (C2SP tlog-cosignature): it verifies with the
 * witness's vkey (type 0x04), not with a log's; a changed body, time or
 * signature does not. */
static void test_cosignature(void **state)
{
    (void)state;
    EVP_PKEY *log_key = new_log_key(), *wkey = new_log_key();
    rk_hash root;
    rk_merkle_leaf_hash("y", 1, root);
    char *note = NULL, *line = NULL, wtext[RK_VKEY_MAX], ntext[RK_VKEY_MAX];
    assert_int_equal(rk_checkpoint_sign(log_key, "renkei/test/core", 7, root, &note), RK_OK);
    assert_int_equal(rk_cosign(wkey, "renkei/test/witness-1", note, strlen(note), 1700000000, &line), RK_OK);
    assert_int_equal(strncmp(line, "\xe2\x80\x94 renkei/test/witness-1 ", 26), 0);
    assert_int_equal(line[strlen(line) - 1], '\n');
    rk_vkey w, n;
    assert_int_equal(rk_vkey_of_type("renkei/test/witness-1", wkey, RK_VKEY_COSIGNATURE, wtext), RK_OK);
    assert_int_equal(rk_vkey_parse(wtext, &w), RK_OK);
    assert_int_equal(w.type, RK_VKEY_COSIGNATURE);
    assert_int_equal(rk_vkey_of("renkei/test/witness-1", wkey, ntext), RK_OK); /* the same key as a log's */
    assert_int_equal(rk_vkey_parse(ntext, &n), RK_OK);
    assert_memory_not_equal(w.id, n.id, 4); /* the type is in the key ID */
    char *cosigned = NULL;
    assert_true(asprintf(&cosigned, "%s%s", note, line) > 0);
    uint64_t t = 0;
    assert_int_equal(rk_cosignature_check(&w, cosigned, strlen(cosigned), &t), RK_OK);
    assert_int_equal(t, 1700000000);
    assert_int_equal(rk_cosignature_check(&n, cosigned, strlen(cosigned), &t), RK_ERR_INVALID); /* not a cosigner */
    assert_int_equal(rk_cosignature_check(&w, note, strlen(note), &t), RK_ERR_CRYPTO);         /* not cosigned */
    /* a checkpoint of another size under the same cosignature */
    char *forged = strdup(cosigned);
    forged[strlen("renkei/test/core\n")] = '8';
    assert_int_equal(rk_cosignature_check(&w, forged, strlen(forged), &t), RK_ERR_CRYPTO);
    free(forged);
    /* a flipped bit in the signature */
    forged = strdup(cosigned);
    forged[strlen(forged) - 6] ^= 1;
    assert_int_not_equal(rk_cosignature_check(&w, forged, strlen(forged), &t), RK_OK);
    free(forged);
    assert_int_equal(rk_cosign(wkey, "renkei/test/witness-1", "no body", 7, 1, &line), RK_ERR_INVALID);
    free(cosigned);
    free(line);
    free(note);
    EVP_PKEY_free(log_key);
    EVP_PKEY_free(wkey);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),
        cmocka_unit_test_setup_teardown(test_proofs_from_tiles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tile_cache_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cosignature, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_keys, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
