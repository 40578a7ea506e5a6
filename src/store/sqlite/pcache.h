/* store/sqlite/pcache.h — SQLite's page cache, with one needless scan
 * skipped (pcache.c says which). Installed once per process, before the
 * first connection opens; returns 1 when the wrapper is in place. */
#ifndef RK_STORE_SQLITE_PCACHE_H
#define RK_STORE_SQLITE_PCACHE_H

int rk_sqlite_pcache_install(void);

#endif
