#include "db.h"

#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

#define STMT_CACHE 64

/* A write waiting for its group commit; lives on the writer's stack. */
typedef struct write_req {
    rk_db_write_fn fn;
    void *arg;
    rk_rc rc;
    int done;
    struct write_req *next;
} write_req;

struct rk_db {
    sqlite3 *conn;
    char path[1024];
    pthread_mutex_t lock;         /* the connection */
    pthread_mutex_t queue_lock;   /* the writes waiting for a commit */
    pthread_cond_t committed;
    write_req *head, *tail;
    int leader;                   /* a thread is committing a batch */
    unsigned long long writes, batches;
    struct {
        const char *sql;
        sqlite3_stmt *stmt;
    } cache[STMT_CACHE];
};

rk_rc rk_db_open(const char *path, const char *schema, rk_db **out)
{
    rk_db_pcache_install();
    rk_db *db = calloc(1, sizeof *db);
    if (!db)
        return RK_ERR_NOMEM;
    pthread_mutex_init(&db->lock, NULL);
    pthread_mutex_init(&db->queue_lock, NULL);
    pthread_cond_init(&db->committed, NULL);
    snprintf(db->path, sizeof db->path, "%s", path);
    rk_rc rc = RK_OK;
    if (sqlite3_open_v2(path, &db->conn, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK) {
        rk_error("db: cannot open %s: %s", path, db->conn ? sqlite3_errmsg(db->conn) : "no memory");
        rc = RK_ERR_STORE;
        goto done;
    }
    sqlite3_busy_timeout(db->conn, 5000);
    /* secure_delete: deleted content is overwritten, also in free pages. */
    rc = rk_db_exec(db, "PRAGMA page_size=1024; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
                        "PRAGMA secure_delete=ON; PRAGMA cache_size=-32768; PRAGMA wal_autocheckpoint=8192;"
                        "CREATE TABLE IF NOT EXISTS health_probe(x);");
    if (rc == RK_OK && schema)
        rc = rk_db_exec(db, schema);
done:
    if (rc != RK_OK) {
        rk_db_close(db);
        return rc;
    }
    *out = db;
    return RK_OK;
}

void rk_db_close(rk_db *db)
{
    if (!db)
        return;
    for (int i = 0; i < STMT_CACHE; i++)
        sqlite3_finalize(db->cache[i].stmt);
    sqlite3_close(db->conn);
    pthread_mutex_destroy(&db->lock);
    pthread_mutex_destroy(&db->queue_lock);
    pthread_cond_destroy(&db->committed);
    free(db);
}

void rk_db_lock(rk_db *db) { pthread_mutex_lock(&db->lock); }
void rk_db_unlock(rk_db *db) { pthread_mutex_unlock(&db->lock); }
sqlite3 *rk_db_handle(rk_db *db) { return db->conn; }

rk_rc rk_db_exec(rk_db *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db->conn, sql, NULL, NULL, &msg) != SQLITE_OK) {
        rk_error("db: %s", msg ? msg : sqlite3_errmsg(db->conn));
        sqlite3_free(msg);
        return RK_ERR_STORE;
    }
    return RK_OK;
}

rk_rc rk_db_begin(rk_db *db) { return rk_db_exec(db, "BEGIN IMMEDIATE"); }
rk_rc rk_db_commit(rk_db *db) { return rk_db_exec(db, "COMMIT"); }

void rk_db_rollback(rk_db *db)
{
    if (!sqlite3_get_autocommit(db->conn))
        sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
}

sqlite3_stmt *rk_db_stmt(rk_db *db, const char *sql)
{
    int i, free_slot = -1;
    for (i = 0; i < STMT_CACHE; i++) {
        if (db->cache[i].sql == sql) {
            sqlite3_reset(db->cache[i].stmt);
            sqlite3_clear_bindings(db->cache[i].stmt);
            return db->cache[i].stmt;
        }
        if (!db->cache[i].sql && free_slot < 0)
            free_slot = i;
    }
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v3(db->conn, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL) != SQLITE_OK) {
        rk_error("db: prepare failed: %s", sqlite3_errmsg(db->conn));
        return NULL;
    }
    if (free_slot >= 0) {
        db->cache[free_slot].sql = sql;
        db->cache[free_slot].stmt = stmt;
    } else {
        rk_error("db: statement cache full");
        sqlite3_finalize(stmt);
        return NULL;
    }
    return stmt;
}

rk_rc rk_db_step_rc(rk_db *db, int sqlite_rc)
{
    if (sqlite_rc == SQLITE_DONE || sqlite_rc == SQLITE_ROW)
        return RK_OK;
    if ((sqlite_rc & 0xff) == SQLITE_CONSTRAINT)
        return RK_ERR_CONFLICT;
    rk_error("db: %s", sqlite3_errmsg(db->conn));
    return RK_ERR_STORE;
}

static rk_rc exec_cached(rk_db *db, const char *sql);

/* Writable means: the file is not marked read-only (an operator's chmod
 * a-w, which root's writes would otherwise ignore) and a write goes through. */
int rk_db_writable(rk_db *db)
{
    struct stat st;
    if (stat(db->path, &st) != 0 || !(st.st_mode & S_IWUSR))
        return 0;
    /* A row into a table made at open, rolled back: no schema change, so
     * the prepared statements of every other caller stay valid. */
    rk_db_lock(db);
    int ok = exec_cached(db, "BEGIN IMMEDIATE") == RK_OK && exec_cached(db, "INSERT INTO health_probe VALUES (1)") == RK_OK;
    rk_db_rollback(db);
    rk_db_unlock(db);
    return ok;
}

/* ---------- group commit ---------- */

static rk_rc exec_cached(rk_db *db, const char *sql)
{
    sqlite3_stmt *st = rk_db_stmt(db, sql);
    if (!st)
        return RK_ERR_STORE;
    rk_rc rc = rk_db_step_rc(db, sqlite3_step(st));
    sqlite3_reset(st);
    return rc;
}

/* Runs one batch in one transaction; each write in its own savepoint. */
static void run_batch(rk_db *db, write_req *batch)
{
    rk_db_lock(db);
    rk_rc rc = rk_db_begin(db);
    for (write_req *r = batch; r; r = r->next) {
        if (rc != RK_OK) {
            r->rc = rc;
            continue;
        }
        if ((r->rc = exec_cached(db, "SAVEPOINT w")) == RK_OK) {
            r->rc = r->fn(db, r->arg);
            if (r->rc != RK_OK)
                exec_cached(db, "ROLLBACK TO w");
            exec_cached(db, "RELEASE w");
        }
    }
    if (rc == RK_OK && (rc = rk_db_commit(db)) != RK_OK) {
        rk_db_rollback(db);
        for (write_req *r = batch; r; r = r->next)
            r->rc = rc;
    }
    rk_db_unlock(db);
}

rk_rc rk_db_write(rk_db *db, rk_db_write_fn fn, void *arg)
{
    write_req me = {.fn = fn, .arg = arg};
    pthread_mutex_lock(&db->queue_lock);
    if (db->tail)
        db->tail->next = &me;
    else
        db->head = &me;
    db->tail = &me;
    while (!me.done) {
        if (db->leader) {
            pthread_cond_wait(&db->committed, &db->queue_lock);
            continue;
        }
        /* Lead: commit everything queued so far, this write included. */
        db->leader = 1;
        write_req *batch = db->head;
        db->head = db->tail = NULL;
        pthread_mutex_unlock(&db->queue_lock);
        run_batch(db, batch);
        pthread_mutex_lock(&db->queue_lock);
        db->batches++;
        while (batch) {
            write_req *next = batch->next; /* a done request may leave at once */
            db->writes++;
            batch->done = 1;
            batch = next;
        }
        db->leader = 0;
        pthread_cond_broadcast(&db->committed);
    }
    pthread_mutex_unlock(&db->queue_lock);
    return me.rc;
}

rk_rc rk_db_item(rk_db *db, rk_db_write_fn fn, void *arg)
{
    rk_rc rc = exec_cached(db, "SAVEPOINT item");
    if (rc != RK_OK)
        return rc;
    rc = fn(db, arg);
    if (rc != RK_OK)
        exec_cached(db, "ROLLBACK TO item");
    exec_cached(db, "RELEASE item");
    return rc;
}

void rk_db_write_stats(rk_db *db, unsigned long long *writes, unsigned long long *batches)
{
    pthread_mutex_lock(&db->queue_lock);
    *writes = db->writes;
    *batches = db->batches;
    pthread_mutex_unlock(&db->queue_lock);
}
