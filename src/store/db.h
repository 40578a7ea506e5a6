/* db.h — the SQLite handle every node's store is built on.
 *
 * WAL journal, synchronous=FULL: a transaction that returned from commit is
 * on disk, so an acknowledged write survives SIGKILL (DESIGN §6). One
 * writing connection per node, guarded by a mutex: callers take
 * rk_db_lock() around a transaction; a second, read-only connection serves
 * rk_db_read_lock() so that reads do not wait for a commit. Statements are prepared once and cached by their SQL text
 * pointer (pass string literals). Only the per-role store files (…_store.c)
 * use this; flow code calls their domain functions, so a PostgreSQL store
 * can replace them behind the same headers. */
#ifndef RK_DB_H
#define RK_DB_H

#include <sqlite3.h>
#include "lib/err.h"

typedef struct rk_db rk_db;

/* Opens (creating) path and runs schema (idempotent CREATE … IF NOT EXISTS). */
rk_rc rk_db_open(const char *path, const char *schema, rk_db **out);
/* Wraps SQLite's page cache (db_pcache.c); rk_db_open calls it first.
 * Returns 1 when the wrapper is in place. */
int rk_db_pcache_install(void);
void rk_db_close(rk_db *db);

void rk_db_lock(rk_db *db);
void rk_db_unlock(rk_db *db);
/* For a short read only: on the writing connection when it is free (or
 * this thread holds it), else on a second, read-only connection that never
 * waits for a commit in progress and sees the last one (WAL), waiting for
 * it while a scan holds it. Statements taken between the two go there. Inside a write callback (whose lock is held) they do nothing:
 * its statements stay on the writer and see the write's own rows. */
void rk_db_read_lock(rk_db *db);
/* For a read that may take long (a list, a count, the log's leaves): always
 * on the read-only connection, so no write and no short read waits for it.
 * Released with rk_db_read_unlock. */
void rk_db_scan_lock(rk_db *db);
void rk_db_read_unlock(rk_db *db);

/* Group commit: runs fn(db, arg) inside a write transaction that it may
 * share with other threads' writes, and returns once that transaction is
 * committed — on disk — with fn's result. fn must not take the lock or
 * begin/commit itself; a failing fn is rolled back alone (a savepoint), the
 * others commit. One fsync then serves every write of the batch. */
typedef rk_rc (*rk_db_write_fn)(rk_db *db, void *arg);
rk_rc rk_db_write(rk_db *db, rk_db_write_fn fn, void *arg);
/* The same for a caller on an event loop, without the loop waiting: fn
 * runs on this rk_db's committer thread, in a commit shared with every
 * write the loop queued meanwhile; then written(written_arg, rc) is called
 * on the loop, once that commit is on disk (or failed). fn and its arg
 * must be safe to use from the committer thread and live until then. Only
 * one event loop may use this per rk_db, and its base must have been made
 * after evthread_use_pthreads() (the committer wakes it). On an error return nothing is
 * queued and written will not be called. */
struct event_base;
typedef void (*rk_db_written_fn)(void *arg, rk_rc rc);
rk_rc rk_db_write_later(rk_db *db, struct event_base *base, rk_db_write_fn fn, void *arg, rk_db_written_fn written,
                        void *written_arg);
/* On that loop, when it ends (the server's on_stop) and before its base is
 * freed: stops the committer thread and frees what rk_db_write_later set
 * up on the loop. Safe to call when it was never used, and again. */
void rk_db_loop_end(rk_db *db);
/* Inside a write callback: runs fn in a nested savepoint, so that a batch
 * of items can fail item by item. */
rk_rc rk_db_item(rk_db *db, rk_db_write_fn fn, void *arg);

/* Writes and commits so far, for /metrics: batches <= writes. */
void rk_db_write_stats(rk_db *db, unsigned long long *writes, unsigned long long *batches);

/* With the lock held. */
rk_rc rk_db_begin(rk_db *db);      /* BEGIN IMMEDIATE */
rk_rc rk_db_commit(rk_db *db);
void rk_db_rollback(rk_db *db);
rk_rc rk_db_exec(rk_db *db, const char *sql);
/* A cached, reset statement for this SQL literal; NULL on error (logged). */
sqlite3_stmt *rk_db_stmt(rk_db *db, const char *sql);
sqlite3 *rk_db_handle(rk_db *db);
/* Maps a sqlite3_step result: SQLITE_DONE/ROW → RK_OK, constraint → RK_ERR_CONFLICT. */
rk_rc rk_db_step_rc(rk_db *db, int sqlite_rc);
/* After a deletion that must leave no trace (lock held): checkpoints and
 * truncates the WAL, so the deleted pages are in neither file; RK_ERR_STORE
 * (logged) when SQLite could not. */
rk_rc rk_db_checkpoint_truncate(rk_db *db);
/* Steps a query for one row: RK_OK with a row, RK_ERR_NOT_FOUND without,
 * RK_ERR_STORE on an error (logged) — never an error taken for "none". */
rk_rc rk_db_step_row(rk_db *db, sqlite3_stmt *st);
/* True when the database accepts a write now (health check). */
int rk_db_writable(rk_db *db);

#endif
