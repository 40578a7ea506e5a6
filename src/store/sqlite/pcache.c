/* db_pcache.c — SQLite's own page cache, with one needless scan skipped.
 *
 * When a B-tree page split reorders its new pages, SQLite parks one page
 * under a temporary number: the lock-byte page, 2^30 / page size + 1. The
 * default cache (pcache1) then remembers that number as the largest key it
 * has seen, and at every commit the pager asks it to drop the pages beyond
 * the database's end; with the remembered key far beyond, pcache1 walks its
 * whole hash table — every cached page — to find nothing. On the exchange
 * path (random ids in unique indexes, a split in most transactions) that
 * walk was the single largest CPU cost inside SQLite.
 *
 * This wrapper keeps the default cache for everything and tracks, per
 * cache, an upper bound of the page numbers it holds (ignoring the parked
 * lock-byte number, which it counts separately). A truncation that cannot
 * remove anything is not passed on; every other call is. Installed once per
 * process, before the first connection opens (SQLITE_CONFIG_PCACHE2). */
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>

#include "store/sqlite/pcache.h"
#include "lib/log.h"

#define LOCK_BYTE_OFFSET 0x40000000u /* SQLite's PENDING_BYTE */

typedef struct tracked_cache {
    sqlite3_pcache *inner;
    unsigned lock_key;  /* the lock-byte page's number at this page size */
    unsigned max_key;   /* no other page above this is cached */
    int parked;         /* pages now under lock_key */
} tracked_cache;

static sqlite3_pcache_methods2 inner_methods;

static int wrap_init(void *arg) { return inner_methods.xInit ? inner_methods.xInit(arg) : SQLITE_OK; }

static void wrap_shutdown(void *arg)
{
    if (inner_methods.xShutdown)
        inner_methods.xShutdown(arg);
}

static sqlite3_pcache *wrap_create(int page_size, int extra_size, int purgeable)
{
    tracked_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->inner = inner_methods.xCreate(page_size, extra_size, purgeable);
    if (!c->inner) {
        free(c);
        return NULL;
    }
    c->lock_key = page_size > 0 ? LOCK_BYTE_OFFSET / (unsigned)page_size + 1 : 0;
    return (sqlite3_pcache *)c;
}

static void wrap_cachesize(sqlite3_pcache *p, int n) { inner_methods.xCachesize(((tracked_cache *)p)->inner, n); }
static int wrap_pagecount(sqlite3_pcache *p) { return inner_methods.xPagecount(((tracked_cache *)p)->inner); }

static void note_key(tracked_cache *c, unsigned key)
{
    if (key == c->lock_key)
        c->parked++;
    else if (key > c->max_key)
        c->max_key = key;
}

static sqlite3_pcache_page *wrap_fetch(sqlite3_pcache *p, unsigned key, int create)
{
    tracked_cache *c = (tracked_cache *)p;
    sqlite3_pcache_page *page = inner_methods.xFetch(c->inner, key, create);
    if (page && create && key > c->max_key)
        c->max_key = key; /* an upper bound (the pager never keeps the lock-byte page it fetched) */
    return page;
}

static void wrap_unpin(sqlite3_pcache *p, sqlite3_pcache_page *page, int discard)
{
    inner_methods.xUnpin(((tracked_cache *)p)->inner, page, discard);
}

static void wrap_rekey(sqlite3_pcache *p, sqlite3_pcache_page *page, unsigned old_key, unsigned new_key)
{
    tracked_cache *c = (tracked_cache *)p;
    inner_methods.xRekey(c->inner, page, old_key, new_key);
    if (old_key == c->lock_key && c->parked > 0)
        c->parked--;
    note_key(c, new_key);
}

static void wrap_truncate(sqlite3_pcache *p, unsigned limit)
{
    tracked_cache *c = (tracked_cache *)p;
    if (c->parked == 0 && c->max_key < limit)
        return; /* nothing cached at or above limit */
    inner_methods.xTruncate(c->inner, limit);
    if (c->lock_key >= limit)
        c->parked = 0;
    if (c->max_key >= limit)
        c->max_key = limit ? limit - 1 : 0;
}

static void wrap_destroy(sqlite3_pcache *p)
{
    tracked_cache *c = (tracked_cache *)p;
    inner_methods.xDestroy(c->inner);
    free(c);
}

static void wrap_shrink(sqlite3_pcache *p) { inner_methods.xShrink(((tracked_cache *)p)->inner); }

static int installed;

static void install(void)
{
    if (sqlite3_config(SQLITE_CONFIG_GETPCACHE2, &inner_methods) != SQLITE_OK || !inner_methods.xCreate ||
        !inner_methods.xRekey || !inner_methods.xTruncate) {
        rk_debug("db: SQLite's page cache left as it is");
        return;
    }
    sqlite3_pcache_methods2 wrapped = {
        .iVersion = 1,
        .pArg = inner_methods.pArg,
        .xInit = wrap_init,
        .xShutdown = wrap_shutdown,
        .xCreate = wrap_create,
        .xCachesize = wrap_cachesize,
        .xPagecount = wrap_pagecount,
        .xFetch = wrap_fetch,
        .xUnpin = wrap_unpin,
        .xRekey = wrap_rekey,
        .xTruncate = wrap_truncate,
        .xDestroy = wrap_destroy,
        .xShrink = wrap_shrink,
    };
    /* Refused once SQLite is initialised (a connection opened before):
     * then the default cache stays, which is only slower. */
    if (sqlite3_config(SQLITE_CONFIG_PCACHE2, &wrapped) != SQLITE_OK)
        rk_debug("db: SQLite already initialised; page cache left as it is");
    else
        installed = 1;
}

int rk_sqlite_pcache_install(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, install);
    return installed;
}
