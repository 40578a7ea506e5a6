/* store/db.h — the one SQL interface every store module is written against
 * (DESIGN §6). Modelled on Dovecot's lib-sql: one API, a driver per engine
 * (store/sqlite/, store/postgres/), no engine symbol outside its driver.
 *
 * What a store module does with it:
 *   - names its tables once, as versioned migrations (rk_db_migrate);
 *   - says what a call does — a short read, a long read (scan), or a write —
 *     and gives a callback; the driver chooses the connection and the
 *     transaction (rk_db_read, rk_db_scan, rk_db_write, rk_db_write_later);
 *   - inside the callback, takes prepared statements by their SQL literal
 *     (rk_db_stmt), binds, steps and reads columns. Statements are reset by
 *     the store when the callback returns: a module never resets by hand.
 *
 * The SQL is portable (SQLite 3.40 and PostgreSQL 15 both run it): `?`
 * parameters, INSERT … ON CONFLICT … DO NOTHING / DO UPDATE, RETURNING for
 * generated ids, BIGINT for every integer. PostgreSQL infers each
 * parameter's type from its context: where there is none (`? IS NULL`) or
 * where it would be narrower than the value (`? = 0` is an INTEGER), the
 * SQL says it: CAST(? AS TEXT), CAST(? AS BIGINT). A statement that fails
 * inside a write spoils the rest of that write on PostgreSQL: a caller goes
 * on after a failed statement only through rk_db_item. DDL may use three
 * tokens that the driver expands: {id} (a generated BIGINT primary key; it
 * may skip values, e.g. after a rollback), {blob} (bytes) and
 * {without_rowid} (a table keyed by its primary key alone). A statement
 * may use {skip_locked} after the SELECT of a work queue that several
 * processes claim from (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite, whose
 * one writer is alone: nothing).
 *
 * Durability: a write returned RK_OK only once it is committed — on disk,
 * and under failover on the synchronous standby — so a node killed with
 * SIGKILL loses nothing it acknowledged. Threads: every call may be made
 * from any thread; one event loop per rk_db may use rk_db_write_later. */
#ifndef RK_STORE_DB_H
#define RK_STORE_DB_H

#include <stddef.h>
#include <stdint.h>
#include "lib/err.h"

typedef struct rk_db rk_db;
typedef struct rk_stmt rk_stmt;

/* ---------- opening ---------- */

enum {
    RK_DB_READONLY = 1, /* a tool reading a node's data while it runs: no schema, no writes */
};

/* Opens the database named by target: "sqlite:PATH" or a bare PATH
 * (created when missing, unless RK_DB_READONLY), or a libpq URI
 * "postgresql://…" (the database must exist; RK_ERR_UNAVAILABLE when it
 * cannot be reached). When the connection to PostgreSQL is lost, or the
 * server turned standby (a failover), calls answer RK_ERR_UNAVAILABLE —
 * nothing was done, or for a commit whose answer was lost, perhaps done:
 * the caller retries with the same id — and a later call connects again by
 * itself (to the new primary, when the URI names every data node with
 * target_session_attrs=read-write). */
rk_rc rk_db_open(const char *target, int flags, rk_db **out);
/* Closes the database; what rk_db_write_later set up on a loop is freed
 * too when the loop's end did not (its base must still exist then). */
void rk_db_close(rk_db *db);
/* "sqlite" or "postgresql" (the driver's name), for messages and metrics. */
const char *rk_db_engine(const rk_db *db);

/* Brings module's tables to the newest version: steps[i] takes them from
 * version i to i+1, each in its own transaction; the version is kept in the
 * database (table schema_versions). A database whose version for module is
 * newer than n_steps is refused with RK_ERR_STORE and one logged line. */
rk_rc rk_db_migrate(rk_db *db, const char *module, const char *const *steps, int n_steps);

/* ---------- access: the caller says what it does ---------- */

typedef rk_rc (*rk_db_fn)(rk_db *db, void *arg);

/* A short read (one row, a few rows): never waits for a commit in progress;
 * sees every commit that returned before it started. */
rk_rc rk_db_read(rk_db *db, rk_db_fn fn, void *arg);
/* A read that may take long (a page of a list, a count, the log's leaves):
 * no write and no short read waits for it. Its fn may call rk_db_write. */
rk_rc rk_db_scan(rk_db *db, rk_db_fn fn, void *arg);

/* Group commit: runs fn inside a write transaction that it may share with
 * other threads' writes and returns once that transaction is committed,
 * with fn's result. A failing fn is rolled back alone (a savepoint). Inside
 * fn, reads (rk_db_read, rk_db_scan) see fn's own rows; fn must not call
 * rk_db_write, nor may the fn of an rk_db_read. */
rk_rc rk_db_write(rk_db *db, rk_db_fn fn, void *arg);

/* The same for a caller on an event loop, which does not wait: fn runs on
 * this rk_db's committer thread, in a commit shared with every write the
 * loop queued meanwhile; then written(written_arg, rc) is called on the
 * loop once that commit is durable (or failed). fn and its arg must be safe
 * to use from the committer thread and live until then. The loop's base
 * must have been made after evthread_use_pthreads(). On an error return
 * nothing is queued and written will not be called. */
struct event_base;
typedef void (*rk_db_written_fn)(void *arg, rk_rc rc);
rk_rc rk_db_write_later(rk_db *db, struct event_base *base, rk_db_fn fn, void *arg, rk_db_written_fn written,
                        void *written_arg);
/* On that loop, when it ends and before its base is freed: stops the
 * committer thread. Safe to call when it was never used, and again. */
void rk_db_loop_end(rk_db *db);

/* Inside a write callback: runs fn in a nested savepoint, so that a batch of
 * items can fail item by item. */
rk_rc rk_db_item(rk_db *db, rk_db_fn fn, void *arg);

/* After a write that deleted what must leave no trace (第8-5): makes the
 * engine drop the old copies of the deleted rows (SQLite: checkpoint and
 * truncate the WAL; PostgreSQL: VACUUM the tables changed since). Outside
 * any callback. */
rk_rc rk_db_purge(rk_db *db);

/* ---------- several processes over one database (DESIGN §6) ---------- */

/* Store-wide lock keys: one per rule that the processes over one database
 * must take in turns (the records module names its own). */

/* Inside a write callback: waits for, then holds until the write's
 * transaction ends, the store-wide lock `key`, so that the writers of every
 * process over this database take turns for what follows (e.g. numbering
 * rows without gaps). PostgreSQL: a transaction advisory lock; SQLite: a
 * no-op, its one writer is already alone. */
rk_rc rk_db_lock(rk_db *db, int64_t key);

/* Leadership among the processes over one database: tries to become, or
 * checks that it still is, the holder of `key`; *leading is 1 while this
 * process holds it. PostgreSQL: a session advisory lock of the reader
 * connection, released when the process dies or that connection is lost;
 * since a leader can learn of a loss late, what it writes as leader must be
 * fenced (a compare-and-set on the state it extends). SQLite: always 1.
 * Outside any callback. */
rk_rc rk_db_lead(rk_db *db, int64_t key, int *leading);

/* ---------- statements (inside a callback only) ---------- */

/* The prepared statement for this SQL literal on the connection the current
 * callback runs on, ready to bind; prepared once and cached by the literal's
 * address (pass string literals). NULL on error (logged): binding it does
 * nothing and stepping it answers RK_ERR_STORE, so one check of the step's
 * result covers the prepare too. */
rk_stmt *rk_db_stmt(rk_db *db, const char *sql);

/* Parameters are numbered from 1. Text and blobs are copied only when the
 * driver needs to: they must stay valid until the statement is stepped.
 * A NULL text binds SQL NULL. */
void rk_bind_text(rk_stmt *st, int i, const char *s);
void rk_bind_int(rk_stmt *st, int i, int64_t v);
void rk_bind_blob(rk_stmt *st, int i, const void *p, size_t n);
void rk_bind_null(rk_stmt *st, int i);

/* Runs a statement that answers no rows (or whose rows are not wanted):
 * RK_OK; RK_ERR_CONFLICT when a constraint refused it; RK_ERR_STORE on an
 * error (logged); RK_ERR_UNAVAILABLE when the database is absent. */
rk_rc rk_stmt_exec(rk_stmt *st);
/* Steps to the next row: RK_OK with a row, RK_ERR_NOT_FOUND when there is
 * none left, RK_ERR_CONFLICT (constraint), RK_ERR_STORE (logged),
 * RK_ERR_UNAVAILABLE — never an error taken for "no row". */
rk_rc rk_stmt_next(rk_stmt *st);

/* Columns of the current row, numbered from 0. Text and blobs stay valid
 * until the next step or the end of the callback; NULL reads as 0 or NULL. */
int64_t rk_col_int(rk_stmt *st, int col);
const char *rk_col_text(rk_stmt *st, int col);
const void *rk_col_blob(rk_stmt *st, int col, size_t *len);
int rk_col_is_null(rk_stmt *st, int col);
/* Copies a text column into buf (cut to size - 1, always terminated). */
void rk_col_copy(rk_stmt *st, int col, char *buf, size_t size);

/* Rows changed by the last statement run in this callback. */
int64_t rk_db_changes(rk_db *db);

/* ---------- health and metrics ---------- */

/* True when the database accepts a write now (health check). */
int rk_db_writable(rk_db *db);
/* 1 when the last call found the database absent (RK_ERR_UNAVAILABLE), and
 * for two seconds after one did: a node answers the store failures it meets
 * meanwhile 503 store_unavailable. Always 0 on SQLite. Any thread. */
int rk_db_lost(rk_db *db);
/* Writes and commits so far, for /metrics: batches <= writes. */
void rk_db_write_stats(rk_db *db, unsigned long long *writes, unsigned long long *batches);

#endif
