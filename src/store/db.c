#include "store/db.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/log.h"

#define STMT_CACHE 64

/* A write waiting for its group commit; on the writer's stack (rk_db_write)
 * or on the heap (rk_db_write_later). */
typedef struct write_req {
    rk_db_write_fn fn;
    void *arg;
    rk_rc rc;
    int done;
    struct write_req *next;
    rk_db_written_fn written;     /* rk_db_write_later: called on the loop */
    void *written_arg;
} write_req;

/* One SQLite connection, its lock and its prepared statements. */
typedef struct db_conn {
    sqlite3 *conn;
    pthread_mutex_t lock;
    struct {
        const char *sql;
        sqlite3_stmt *stmt;
    } cache[STMT_CACHE];
} db_conn;

/* Threads and ownership: `w` is the only connection that writes; `r` only
 * reads (query_only), for rk_db_read_lock when `w` is busy, so that a read
 * never waits for a commit's fsync (WAL readers see the last commit). */
struct rk_db {
    db_conn w, r;
    char path[1024];
    pthread_mutex_t queue_lock;   /* the writes waiting for a commit */
    pthread_cond_t committed;
    write_req *head, *tail;
    int leader;                   /* a thread is committing a batch */
    unsigned long long writes, batches;
    /* rk_db_write_later, under queue_lock (later_base, written_event and
     * committer are set by the loop before the committer starts) */
    struct event_base *later_base;
    struct event *written_event;              /* batches_back, on the loop */
    write_req *later_head, *later_tail;       /* queued for the next commit */
    write_req *finished_head, *finished_tail; /* committed, for the loop */
    int back_scheduled;                       /* written_event is active */
    pthread_cond_t later_queued;              /* the committer waits on it */
    pthread_t committer;
    int committer_running, stopping;
    int readonly;                 /* rk_db_open with RK_DB_READONLY: only `r` */
};

/* Set while this thread runs a batch of db: its statements go to `w`. */
static __thread rk_db *tl_writing;
/* Set while this thread holds db's read lock on `r`: its statements go there. */
static __thread rk_db *tl_reading;
/* Set while this thread holds db's read lock on `w` (it was free). */
static __thread rk_db *tl_reading_on_writer;

static db_conn *current(rk_db *db)
{
    return tl_reading == db && tl_writing != db ? &db->r : &db->w;
}

static rk_rc conn_open(db_conn *c, const char *path)
{
    pthread_mutex_init(&c->lock, NULL);
    if (sqlite3_open_v2(path, &c->conn, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        rk_error("db: cannot open %s: %s", path, c->conn ? sqlite3_errmsg(c->conn) : "no memory");
        return RK_ERR_STORE;
    }
    sqlite3_busy_timeout(c->conn, 5000);
    return RK_OK;
}

static void conn_close(db_conn *c)
{
    for (int i = 0; i < STMT_CACHE; i++)
        sqlite3_finalize(c->cache[i].stmt);
    sqlite3_close(c->conn);
    pthread_mutex_destroy(&c->lock);
}

static rk_rc conn_exec(db_conn *c, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(c->conn, sql, NULL, NULL, &msg) != SQLITE_OK) {
        rk_error("db: %s", msg ? msg : sqlite3_errmsg(c->conn));
        sqlite3_free(msg);
        return RK_ERR_STORE;
    }
    return RK_OK;
}

rk_rc rk_db_open_schema(const char *path, const char *schema, rk_db **out)
{
    rk_db_pcache_install();
    rk_db *db = calloc(1, sizeof *db);
    if (!db)
        return RK_ERR_NOMEM;
    pthread_mutex_init(&db->queue_lock, NULL);
    pthread_cond_init(&db->committed, NULL);
    pthread_cond_init(&db->later_queued, NULL);
    snprintf(db->path, sizeof db->path, "%s", path);
    rk_rc rc = conn_open(&db->w, path);
    /* secure_delete: deleted content is overwritten, also in free pages. */
    if (rc == RK_OK)
        rc = conn_exec(&db->w, "PRAGMA page_size=1024; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                               "PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON; PRAGMA cache_size=-32768;"
                               "PRAGMA wal_autocheckpoint=8192; CREATE TABLE IF NOT EXISTS health_probe(x);");
    if (rc == RK_OK && schema)
        rc = conn_exec(&db->w, schema);
    if (rc == RK_OK && (rc = conn_open(&db->r, path)) == RK_OK)
        rc = conn_exec(&db->r, "PRAGMA query_only=1; PRAGMA cache_size=-8192;");
    if (rc != RK_OK) {
        rk_db_close(db);
        return rc;
    }
    *out = db;
    return RK_OK;
}

static void stop_committer(rk_db *db);

void rk_db_close(rk_db *db)
{
    if (!db)
        return;
    stop_committer(db);
    conn_close(&db->r);
    conn_close(&db->w);
    pthread_mutex_destroy(&db->queue_lock);
    pthread_cond_destroy(&db->committed);
    pthread_cond_destroy(&db->later_queued);
    free(db);
}

/* Set while this thread holds db's writer lock through rk_db_lock. */
static __thread rk_db *tl_holding;

void rk_db_lock(rk_db *db)
{
    pthread_mutex_lock(&db->w.lock);
    tl_holding = db;
}

void rk_db_unlock(rk_db *db)
{
    tl_holding = NULL;
    pthread_mutex_unlock(&db->w.lock);
}

/* A short read goes to the writing connection when no one holds it (its
 * page cache is warm: a WAL reader drops its cache after every commit made
 * by another connection), else to the read-only one, waiting for it if a
 * scan holds it (a scan is bounded; the committer may take the writer again
 * and again). A thread that holds the writer already reads there. */
void rk_db_read_lock(rk_db *db)
{
    if (tl_writing == db || tl_holding == db) /* its lock is held: read there, see its rows */
        return;
    if (pthread_mutex_trylock(&db->w.lock) == 0) {
        tl_reading_on_writer = db;
        return;
    }
    pthread_mutex_lock(&db->r.lock);
    tl_reading = db;
}

void rk_db_scan_lock(rk_db *db)
{
    if (tl_writing == db || tl_holding == db)
        return;
    pthread_mutex_lock(&db->r.lock);
    tl_reading = db;
}

void rk_db_read_unlock(rk_db *db)
{
    if (tl_writing == db || (tl_holding == db && tl_reading != db))
        return;
    if (tl_reading_on_writer == db) {
        tl_reading_on_writer = NULL;
        pthread_mutex_unlock(&db->w.lock);
        return;
    }
    tl_reading = NULL;
    pthread_mutex_unlock(&db->r.lock);
}

sqlite3 *rk_db_handle(rk_db *db) { return current(db)->conn; }

rk_rc rk_db_exec(rk_db *db, const char *sql) { return conn_exec(current(db), sql); }

rk_rc rk_db_begin(rk_db *db) { return rk_db_exec(db, "BEGIN IMMEDIATE"); }
rk_rc rk_db_commit(rk_db *db) { return rk_db_exec(db, "COMMIT"); }

void rk_db_rollback(rk_db *db)
{
    if (!sqlite3_get_autocommit(db->w.conn))
        sqlite3_exec(db->w.conn, "ROLLBACK", NULL, NULL, NULL);
}

sqlite3_stmt *rk_db_sqlite_stmt(rk_db *db, const char *sql)
{
    db_conn *c = current(db);
    int i, free_slot = -1;
    for (i = 0; i < STMT_CACHE; i++) {
        if (c->cache[i].sql == sql) {
            sqlite3_reset(c->cache[i].stmt);
            sqlite3_clear_bindings(c->cache[i].stmt);
            return c->cache[i].stmt;
        }
        if (!c->cache[i].sql && free_slot < 0)
            free_slot = i;
    }
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v3(c->conn, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL) != SQLITE_OK) {
        rk_error("db: prepare failed: %s", sqlite3_errmsg(c->conn));
        return NULL;
    }
    if (free_slot >= 0) {
        c->cache[free_slot].sql = sql;
        c->cache[free_slot].stmt = stmt;
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
    rk_error("db: %s", sqlite3_errmsg(current(db)->conn));
    return RK_ERR_STORE;
}

rk_rc rk_db_checkpoint_truncate(rk_db *db)
{
    /* With the read-only connection held, no read of ours keeps an old
     * snapshot of the WAL; short reads meanwhile wait for the writer. */
    pthread_mutex_lock(&db->r.lock);
    int log = -1, done = -1;
    int rc = sqlite3_wal_checkpoint_v2(db->w.conn, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log, &done);
    pthread_mutex_unlock(&db->r.lock);
    if (rc != SQLITE_OK) {
        rk_error("db: the WAL could not be truncated: %s", sqlite3_errmsg(db->w.conn));
        return RK_ERR_STORE;
    }
    return RK_OK;
}

rk_rc rk_db_step_row(rk_db *db, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return RK_OK;
    if (rc == SQLITE_DONE)
        return RK_ERR_NOT_FOUND;
    rk_error("db: %s", sqlite3_errmsg(current(db)->conn));
    return RK_ERR_STORE;
}

static rk_rc exec_cached(rk_db *db, const char *sql);

/* Resets every statement of c still holding a row, so that no read keeps
 * an old snapshot (and the WAL can be checkpointed) after its callback. */
static void reset_busy(db_conn *c)
{
    for (sqlite3_stmt *st = sqlite3_next_stmt(c->conn, NULL); st; st = sqlite3_next_stmt(c->conn, st))
        if (sqlite3_stmt_busy(st))
            sqlite3_reset(st);
}

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
    sqlite3_stmt *st = rk_db_sqlite_stmt(db, sql);
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
    tl_writing = db;
    rk_rc rc = rk_db_begin(db);
    for (write_req *r = batch; r; r = r->next) {
        if (rc != RK_OK) {
            r->rc = rc;
            continue;
        }
        if ((r->rc = exec_cached(db, "SAVEPOINT w")) == RK_OK) {
            r->rc = r->fn(db, r->arg);
            reset_busy(&db->w);
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
    tl_writing = NULL;
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

/* ---------- commits for an event loop (rk_db_write_later) ----------
 *
 * The loop queues writes; this rk_db's committer thread takes everything
 * queued, commits it — the fsync off the loop, which meanwhile reads on
 * the read-only connection and serves other connections — and hands the
 * batch back to the loop (the `written` event), then takes what was queued
 * meanwhile without waiting for the loop. */

/* On the loop: batches are on disk (or failed); tell each writer. */
static void batches_back(evutil_socket_t fd, short what, void *arg)
{
    rk_db *db = arg;
    (void)fd;
    (void)what;
    pthread_mutex_lock(&db->queue_lock);
    write_req *done = db->finished_head;
    db->finished_head = db->finished_tail = NULL;
    db->back_scheduled = 0;
    pthread_mutex_unlock(&db->queue_lock);
    while (done) {
        write_req *next = done->next;
        done->written(done->written_arg, done->rc);
        free(done);
        done = next;
    }
}

static void *committer_main(void *arg)
{
    rk_db *db = arg;
    pthread_mutex_lock(&db->queue_lock);
    for (;;) {
        while (!db->later_head && !db->stopping)
            pthread_cond_wait(&db->later_queued, &db->queue_lock);
        if (!db->later_head)
            break;
        write_req *batch = db->later_head, *last = db->later_tail;
        db->later_head = db->later_tail = NULL;
        pthread_mutex_unlock(&db->queue_lock);
        run_batch(db, batch);
        unsigned long long n = 0;
        for (write_req *r = batch; r; r = r->next)
            n++;
        pthread_mutex_lock(&db->queue_lock);
        db->batches++;
        db->writes += n;
        if (db->finished_tail)
            db->finished_tail->next = batch;
        else
            db->finished_head = batch;
        db->finished_tail = last;
        if (!db->back_scheduled) /* thread-safe: libevent locks the base and wakes the loop */
            event_active(db->written_event, EV_TIMEOUT, 0);
        db->back_scheduled = 1;
    }
    pthread_mutex_unlock(&db->queue_lock);
    return NULL;
}

static void stop_committer(rk_db *db)
{
    if (!db->committer_running)
        return;
    pthread_mutex_lock(&db->queue_lock);
    db->stopping = 1;
    pthread_cond_signal(&db->later_queued);
    pthread_mutex_unlock(&db->queue_lock);
    pthread_join(db->committer, NULL);
    db->committer_running = 0;
    db->stopping = 0;
}

void rk_db_loop_end(rk_db *db)
{
    stop_committer(db);
    if (db->written_event) {
        batches_back(-1, 0, db); /* none left in practice: every started request finished */
        event_free(db->written_event);
        db->written_event = NULL;
    }
    db->later_base = NULL;
}

rk_rc rk_db_write_later(rk_db *db, struct event_base *base, rk_db_write_fn fn, void *arg, rk_db_written_fn written,
                        void *written_arg)
{
    if (db->later_base && db->later_base != base)
        return RK_ERR_INVALID; /* one loop per rk_db */
    if (!db->written_event) {
        if (!(db->written_event = event_new(base, -1, 0, batches_back, db)))
            return RK_ERR_NOMEM;
        db->later_base = base;
    }
    if (!db->committer_running) {
        if (pthread_create(&db->committer, NULL, committer_main, db) != 0)
            return RK_ERR_NOMEM;
        db->committer_running = 1;
    }
    write_req *me = calloc(1, sizeof *me);
    if (!me)
        return RK_ERR_NOMEM;
    *me = (write_req){.fn = fn, .arg = arg, .written = written, .written_arg = written_arg};
    pthread_mutex_lock(&db->queue_lock);
    if (db->later_tail)
        db->later_tail->next = me;
    else
        db->later_head = me;
    db->later_tail = me;
    pthread_cond_signal(&db->later_queued);
    pthread_mutex_unlock(&db->queue_lock);
    return RK_OK;
}

void rk_db_write_stats(rk_db *db, unsigned long long *writes, unsigned long long *batches)
{
    pthread_mutex_lock(&db->queue_lock);
    *writes = db->writes;
    *batches = db->batches;
    pthread_mutex_unlock(&db->queue_lock);
}

/* ---------- the interface of store/db.h ---------- */

struct rk_stmt; /* an rk_stmt is a sqlite3_stmt in this driver */
#define SQ(st) ((sqlite3_stmt *)(st))

rk_rc rk_db_open(const char *target, int flags, rk_db **out)
{
    if (strncmp(target, "sqlite:", 7) == 0)
        target += 7;
    if (strncmp(target, "postgresql:", 11) == 0 || strncmp(target, "postgres:", 9) == 0) {
        rk_error("store: this build has no PostgreSQL driver");
        return RK_ERR_CONFIG;
    }
    if (!(flags & RK_DB_READONLY))
        return rk_db_open_schema(target, NULL, out);
    rk_db_pcache_install();
    rk_db *db = calloc(1, sizeof *db);
    if (!db)
        return RK_ERR_NOMEM;
    pthread_mutex_init(&db->queue_lock, NULL);
    pthread_cond_init(&db->committed, NULL);
    pthread_cond_init(&db->later_queued, NULL);
    snprintf(db->path, sizeof db->path, "%s", target);
    db->readonly = 1;
    rk_rc rc = RK_OK;
    pthread_mutex_init(&db->w.lock, NULL);
    pthread_mutex_init(&db->r.lock, NULL);
    if (sqlite3_open_v2(target, &db->r.conn, SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
        rk_error("store: cannot open %s: %s", target, db->r.conn ? sqlite3_errmsg(db->r.conn) : "no memory");
        rc = RK_ERR_STORE;
    } else {
        sqlite3_busy_timeout(db->r.conn, 5000);
    }
    if (rc != RK_OK) {
        rk_db_close(db);
        return rc;
    }
    *out = db;
    return RK_OK;
}

const char *rk_db_engine(const rk_db *db)
{
    (void)db;
    return "sqlite";
}

/* DDL tokens of store/db.h, as SQLite spells them. */
static char *expand_ddl(const char *in)
{
    static const struct {
        const char *token, *sqlite;
    } tokens[] = {
        {"{id}", "INTEGER PRIMARY KEY AUTOINCREMENT"},
        {"{blob}", "BLOB"},
        {"{without_rowid}", " WITHOUT ROWID"},
    };
    size_t cap = strlen(in) * 3 + 1, n = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    while (*in) {
        int hit = 0;
        for (size_t t = 0; t < sizeof tokens / sizeof tokens[0]; t++) {
            size_t tl = strlen(tokens[t].token), sl = strlen(tokens[t].sqlite);
            if (strncmp(in, tokens[t].token, tl) == 0) {
                memcpy(out + n, tokens[t].sqlite, sl);
                n += sl;
                in += tl;
                hit = 1;
                break;
            }
        }
        if (!hit)
            out[n++] = *in++;
    }
    out[n] = 0;
    return out;
}

rk_rc rk_db_migrate(rk_db *db, const char *module, const char *const *steps, int n_steps)
{
    if (db->readonly)
        return RK_ERR_INVALID;
    rk_rc rc = RK_OK;
    rk_db_lock(db);
    rc = conn_exec(&db->w, "CREATE TABLE IF NOT EXISTS schema_versions ("
                           " module TEXT PRIMARY KEY, version BIGINT NOT NULL)");
    int64_t version = 0;
    if (rc == RK_OK) {
        sqlite3_stmt *q = NULL;
        if (sqlite3_prepare_v2(db->w.conn, "SELECT version FROM schema_versions WHERE module = ?", -1, &q, NULL) !=
            SQLITE_OK) {
            rk_error("store: %s", sqlite3_errmsg(db->w.conn));
            rc = RK_ERR_STORE;
        } else {
            sqlite3_bind_text(q, 1, module, -1, SQLITE_STATIC);
            int step = sqlite3_step(q);
            if (step == SQLITE_ROW)
                version = sqlite3_column_int64(q, 0);
            else if (step != SQLITE_DONE)
                rc = RK_ERR_STORE;
            sqlite3_finalize(q);
        }
    }
    if (rc == RK_OK && version > n_steps) {
        rk_error("store: the %s tables are at schema version %lld, newer than this renkei knows (%d): "
                 "run the renkei that wrote them",
                 module, (long long)version, n_steps);
        rc = RK_ERR_STORE;
    }
    for (int64_t v = version; rc == RK_OK && v < n_steps; v++) {
        char *ddl = expand_ddl(steps[v]);
        if (!ddl) {
            rc = RK_ERR_NOMEM;
            break;
        }
        char bump[256];
        snprintf(bump, sizeof bump,
                 "INSERT INTO schema_versions(module, version) VALUES ('%s', %lld)"
                 " ON CONFLICT(module) DO UPDATE SET version = excluded.version",
                 module, (long long)v + 1);
        rc = conn_exec(&db->w, "BEGIN IMMEDIATE");
        if (rc == RK_OK && (rc = conn_exec(&db->w, ddl)) == RK_OK && (rc = conn_exec(&db->w, bump)) == RK_OK)
            rc = conn_exec(&db->w, "COMMIT");
        if (rc != RK_OK)
            rk_db_rollback(db);
        free(ddl);
    }
    rk_db_unlock(db);
    return rc;
}

rk_rc rk_db_read(rk_db *db, rk_db_fn fn, void *arg)
{
    if (db->readonly)
        return rk_db_scan(db, fn, arg);
    rk_db_read_lock(db);
    rk_rc rc = fn(db, arg);
    if (tl_writing != db && tl_holding != db)
        reset_busy(current(db));
    rk_db_read_unlock(db);
    return rc;
}

rk_rc rk_db_scan(rk_db *db, rk_db_fn fn, void *arg)
{
    rk_db_scan_lock(db);
    rk_rc rc = fn(db, arg);
    if (tl_writing != db && tl_holding != db)
        reset_busy(current(db));
    rk_db_read_unlock(db);
    return rc;
}

rk_rc rk_db_purge(rk_db *db)
{
    rk_db_lock(db);
    rk_rc rc = rk_db_checkpoint_truncate(db);
    rk_db_unlock(db);
    return rc;
}

rk_stmt *rk_db_stmt(rk_db *db, const char *sql)
{
    return (rk_stmt *)rk_db_sqlite_stmt(db, sql);
}

void rk_bind_text(rk_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(SQ(st), i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(SQ(st), i);
}

void rk_bind_int(rk_stmt *st, int i, int64_t v) { sqlite3_bind_int64(SQ(st), i, (sqlite3_int64)v); }
void rk_bind_blob(rk_stmt *st, int i, const void *p, size_t n) { sqlite3_bind_blob64(SQ(st), i, p, n, SQLITE_STATIC); }
void rk_bind_null(rk_stmt *st, int i) { sqlite3_bind_null(SQ(st), i); }

static rk_rc step_error(sqlite3_stmt *st, int step)
{
    if ((step & 0xff) == SQLITE_CONSTRAINT)
        return RK_ERR_CONFLICT;
    rk_error("store: %s", sqlite3_errmsg(sqlite3_db_handle(st)));
    return RK_ERR_STORE;
}

rk_rc rk_stmt_exec(rk_stmt *st)
{
    int step;
    while ((step = sqlite3_step(SQ(st))) == SQLITE_ROW)
        ;
    rk_rc rc = step == SQLITE_DONE ? RK_OK : step_error(SQ(st), step);
    sqlite3_reset(SQ(st));
    return rc;
}

rk_rc rk_stmt_next(rk_stmt *st)
{
    int step = sqlite3_step(SQ(st));
    if (step == SQLITE_ROW)
        return RK_OK;
    if (step == SQLITE_DONE)
        return RK_ERR_NOT_FOUND;
    return step_error(SQ(st), step);
}

int64_t rk_col_int(rk_stmt *st, int col) { return sqlite3_column_int64(SQ(st), col); }
const char *rk_col_text(rk_stmt *st, int col) { return (const char *)sqlite3_column_text(SQ(st), col); }
int rk_col_is_null(rk_stmt *st, int col) { return sqlite3_column_type(SQ(st), col) == SQLITE_NULL; }

const void *rk_col_blob(rk_stmt *st, int col, size_t *len)
{
    const void *p = sqlite3_column_blob(SQ(st), col);
    *len = (size_t)sqlite3_column_bytes(SQ(st), col);
    return p;
}

void rk_col_copy(rk_stmt *st, int col, char *buf, size_t size)
{
    const char *t = rk_col_text(st, col);
    snprintf(buf, size, "%s", t ? t : "");
}

int64_t rk_db_changes(rk_db *db) { return sqlite3_changes(current(db)->conn); }
