/* store/driver.h — what an engine's driver gives the store (store/db.c).
 * Only store/ includes this. A driver owns connections and statements; the
 * store owns which connection a call uses, transactions, group commit and
 * the committer thread.
 *
 * A connection is used by one thread at a time (the store holds its
 * mutex). Statements come from the connection's cache, keyed by the SQL
 * literal's address; an rk_stmt starts with its driver's statement ops, so
 * that the column and bind calls of db.h reach the right driver. */
#ifndef RK_STORE_DRIVER_H
#define RK_STORE_DRIVER_H

#include <stddef.h>
#include <stdint.h>
#include "store/db.h"

typedef struct rk_db_conn rk_db_conn;

typedef struct rk_stmt_ops {
    void (*bind_text)(rk_stmt *st, int i, const char *s);
    void (*bind_int)(rk_stmt *st, int i, int64_t v);
    void (*bind_blob)(rk_stmt *st, int i, const void *p, size_t n);
    void (*bind_null)(rk_stmt *st, int i);
    rk_rc (*exec)(rk_stmt *st);
    rk_rc (*next)(rk_stmt *st);
    int64_t (*col_int)(rk_stmt *st, int col);
    const char *(*col_text)(rk_stmt *st, int col);
    const void *(*col_blob)(rk_stmt *st, int col, size_t *len);
    int (*col_is_null)(rk_stmt *st, int col);
} rk_stmt_ops;

/* Every driver's statement starts with this. */
struct rk_stmt {
    const rk_stmt_ops *ops;
};

typedef enum {
    RK_CONN_WRITER, /* the one connection that writes */
    RK_CONN_READER, /* reads only, never waits for a commit in progress */
} rk_conn_kind;

typedef struct rk_db_driver {
    const char *name;
    /* 1 when target names this driver's engine ("sqlite:PATH", a path). */
    int (*accepts)(const char *target);
    /* Opens a connection; a writer also creates the database when missing
     * (unless readonly). */
    rk_rc (*open)(const char *target, rk_conn_kind kind, int readonly, rk_db_conn **out);
    void (*close)(rk_db_conn *c);
    /* Statements without rows or parameters, several separated by ';'. */
    rk_rc (*exec)(rk_db_conn *c, const char *sql);
    rk_stmt *(*stmt)(rk_db_conn *c, const char *sql);
    /* After a callback: releases what its statements still hold. */
    void (*release)(rk_db_conn *c);
    int64_t (*changes)(rk_db_conn *c);
    /* The engine's spelling of the tokens {id}, {blob}, {without_rowid}
     * (DDL) and {skip_locked} (statements); NULL for another word. */
    const char *(*ddl_token)(const char *token);
    /* One row, one column: holds the transaction lock ?1 until the end of
     * the transaction (rk_db_lock); NULL when the writer is alone anyway. */
    const char *lock_sql;
    /* One row, one boolean column: 1 when this session holds, or has just
     * taken, the session lock ?1 (rk_db_lead); NULL when one process is
     * alone over the database. */
    const char *lead_sql;
    /* The BEGIN of a write transaction. */
    const char *begin_write;
    /* Rolls back the open transaction, if there is one, without a word. */
    void (*rollback)(rk_db_conn *c);
    /* After deletions that must leave no trace; the reader is held. */
    rk_rc (*purge)(rk_db_conn *writer);
    /* A write goes through now (rolled back); 0 when not. */
    int (*writable)(rk_db_conn *writer, const char *target);
    /* 1 when the last command on c failed because the database is absent
     * (unreachable, the connection lost, a standby): the store then answers
     * RK_ERR_UNAVAILABLE. NULL: never (an embedded engine). */
    int (*lost)(rk_db_conn *c);
} rk_db_driver;

/* sql with the driver's spelling of its {tokens}, malloc'ed (NULL: out of
 * memory). For the drivers, when they prepare a statement that has some. */
char *rk_db_expand_tokens(const rk_db_driver *drv, const char *sql);

extern const rk_db_driver rk_sqlite_driver;
extern const rk_db_driver rk_pg_driver;

#endif
