/* store/db.c — the store of db.h over a driver (driver.h): which
 * connection a call uses, transactions, versioned migrations, group commit
 * and the committer thread of an event loop. No engine is named here.
 *
 * Threads and ownership: `w` is the only connection that writes; `r` only
 * reads. Each has a mutex; a callback runs with its connection's mutex held
 * and its connection bound to the thread (tl_bound), so that rk_db_stmt
 * inside it needs no handle. A short read takes `w` when it is free (its
 * cache is warm: a WAL reader drops its cache after another connection's
 * commit), else `r`; a scan always `r`, so no write waits for it. */
#include "store/db.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/util.h"
#include "store/driver.h"

#define TARGET_MAX 1024
#define LOST_RECENT_MS 2000 /* rk_db_lost: still 1 this long after the database answered again */

/* A write waiting for its group commit; on the writer's stack (rk_db_write)
 * or on the heap (rk_db_write_later). */
typedef struct write_req {
    rk_db_fn fn;
    void *arg;
    rk_rc rc;
    int done;
    struct write_req *next;
    rk_db_written_fn written; /* rk_db_write_later: called on the loop */
    void *written_arg;
} write_req;

typedef struct db_conn {
    rk_db_conn *c;
    pthread_mutex_t lock;
} db_conn;

struct rk_db {
    const rk_db_driver *drv;
    char target[TARGET_MAX];
    int readonly; /* RK_DB_READONLY: `r` only */
    db_conn w, r;
    pthread_mutex_t queue_lock; /* the writes waiting for a commit */
    pthread_cond_t committed;
    write_req *head, *tail;
    int leader; /* a thread is committing a batch */
    unsigned long long writes, batches;
    /* rk_db_write_later, under queue_lock (later_base and written_event are
     * set by the loop before the committer starts) */
    struct event_base *later_base;
    struct event *written_event;              /* batches_back, on the loop */
    write_req *later_head, *later_tail;       /* queued for the next commit */
    write_req *finished_head, *finished_tail; /* committed, for the loop */
    int back_scheduled;                       /* written_event is active */
    pthread_cond_t later_queued;              /* the committer waits on it */
    pthread_t committer;
    int committer_running, stopping;
    /* rk_db_lost: what the last call saw, and when one last saw the
     * database absent (monotonic ms, 0: never); atomics */
    int lost;
    int64_t lost_ms;
};

/* The connection this thread's current callback runs on. */
typedef struct binding {
    rk_db *db;
    db_conn *conn;
} binding;
static __thread binding tl_bound;

static const rk_db_driver *const drivers[] = {&rk_sqlite_driver, &rk_pg_driver};

/* ---------- running a callback on a connection ---------- */

/* After a call on conn (its mutex held): whether the database was there is
 * noted for rk_db_lost, and a failure of a call that met its absence is
 * RK_ERR_UNAVAILABLE, whatever a module made of it on the way. */
static rk_rc noted(rk_db *db, db_conn *conn, rk_rc rc)
{
    int lost = db->drv->lost && db->drv->lost(conn->c);
    if (lost)
        __atomic_store_n(&db->lost_ms, rk_mono_ms(), __ATOMIC_RELAXED);
    __atomic_store_n(&db->lost, lost, __ATOMIC_RELAXED);
    return lost && rc == RK_ERR_STORE ? RK_ERR_UNAVAILABLE : rc;
}

static rk_rc run_bound(rk_db *db, db_conn *conn, rk_db_fn fn, void *arg)
{
    binding saved = tl_bound;
    tl_bound = (binding){db, conn};
    rk_rc rc = fn(db, arg);
    db->drv->release(conn->c);
    tl_bound = saved;
    return noted(db, conn, rc);
}

int rk_db_lost(rk_db *db)
{
    if (__atomic_load_n(&db->lost, __ATOMIC_RELAXED))
        return 1;
    int64_t at = __atomic_load_n(&db->lost_ms, __ATOMIC_RELAXED);
    return at != 0 && rk_mono_ms() - at < LOST_RECENT_MS;
}

static rk_rc run_on(rk_db *db, db_conn *conn, rk_db_fn fn, void *arg)
{
    pthread_mutex_lock(&conn->lock);
    rk_rc rc = run_bound(db, conn, fn, arg);
    pthread_mutex_unlock(&conn->lock);
    return rc;
}

rk_rc rk_db_read(rk_db *db, rk_db_fn fn, void *arg)
{
    if (tl_bound.db == db) /* inside a callback: its connection, its own rows */
        return noted(db, tl_bound.conn, fn(db, arg));
    if (!db->readonly && pthread_mutex_trylock(&db->w.lock) == 0) {
        rk_rc rc = run_bound(db, &db->w, fn, arg);
        pthread_mutex_unlock(&db->w.lock);
        return rc;
    }
    return run_on(db, &db->r, fn, arg);
}

rk_rc rk_db_scan(rk_db *db, rk_db_fn fn, void *arg)
{
    if (tl_bound.db == db)
        return noted(db, tl_bound.conn, fn(db, arg));
    return run_on(db, &db->r, fn, arg);
}

typedef struct lock_args {
    const char *sql;
    int64_t key;
    int held;
} lock_args;

static rk_rc lock_fn(rk_db *db, void *arg)
{
    lock_args *a = arg;
    rk_stmt *q = rk_db_stmt(db, a->sql);
    rk_bind_int(q, 1, a->key);
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK)
        a->held = rk_col_int(q, 0) != 0;
    if (rc == RK_OK)
        rc = rk_stmt_next(q) == RK_ERR_NOT_FOUND ? RK_OK : RK_ERR_STORE; /* one row */
    return rc == RK_ERR_NOT_FOUND ? RK_ERR_STORE : rc;
}

rk_rc rk_db_lock(rk_db *db, int64_t key)
{
    if (tl_bound.db != db || tl_bound.conn != &db->w)
        return RK_ERR_STORE; /* inside a write only */
    if (!db->drv->lock_sql)
        return RK_OK;
    lock_args a = {db->drv->lock_sql, key, 0};
    return lock_fn(db, &a);
}

rk_rc rk_db_lead(rk_db *db, int64_t key, int *leading)
{
    *leading = 0;
    if (tl_bound.db == db)
        return RK_ERR_STORE; /* outside any callback */
    if (!db->drv->lead_sql) {
        *leading = 1;
        return RK_OK;
    }
    /* on the reader, whose session lives as long as the process keeps it */
    lock_args a = {db->drv->lead_sql, key, 0};
    rk_rc rc = run_on(db, &db->r, lock_fn, &a);
    *leading = rc == RK_OK && a.held;
    return rc;
}

rk_stmt *rk_db_stmt(rk_db *db, const char *sql)
{
    if (tl_bound.db != db) {
        rk_error("store: a statement outside a callback of its database");
        return NULL;
    }
    return db->drv->stmt(tl_bound.conn->c, sql);
}

int64_t rk_db_changes(rk_db *db)
{
    return tl_bound.db == db ? db->drv->changes(tl_bound.conn->c) : 0;
}

/* A cached statement without parameters or rows (transaction control). */
static rk_rc exec_cached(rk_db *db, db_conn *conn, const char *sql)
{
    rk_stmt *st = db->drv->stmt(conn->c, sql);
    return st ? st->ops->exec(st) : db->drv->lost && db->drv->lost(conn->c) ? RK_ERR_UNAVAILABLE : RK_ERR_STORE;
}

/* ---------- statements: the calls of db.h, through the driver's ops ---------- */

/* A statement that could not be prepared (NULL, logged by rk_db_stmt) binds
 * nothing and steps to RK_ERR_STORE (RK_ERR_UNAVAILABLE when the database
 * is absent), so that callers check one result. */
static rk_rc no_stmt(void)
{
    const rk_db *db = tl_bound.db;
    return db && db->drv->lost && db->drv->lost(tl_bound.conn->c) ? RK_ERR_UNAVAILABLE : RK_ERR_STORE;
}

void rk_bind_text(rk_stmt *st, int i, const char *s) { if (st) st->ops->bind_text(st, i, s); }
void rk_bind_int(rk_stmt *st, int i, int64_t v) { if (st) st->ops->bind_int(st, i, v); }
void rk_bind_blob(rk_stmt *st, int i, const void *p, size_t n) { if (st) st->ops->bind_blob(st, i, p, n); }
void rk_bind_null(rk_stmt *st, int i) { if (st) st->ops->bind_null(st, i); }
rk_rc rk_stmt_exec(rk_stmt *st) { return st ? st->ops->exec(st) : no_stmt(); }
rk_rc rk_stmt_next(rk_stmt *st) { return st ? st->ops->next(st) : no_stmt(); }
int64_t rk_col_int(rk_stmt *st, int col) { return st->ops->col_int(st, col); }
const char *rk_col_text(rk_stmt *st, int col) { return st->ops->col_text(st, col); }
const void *rk_col_blob(rk_stmt *st, int col, size_t *len) { return st->ops->col_blob(st, col, len); }
int rk_col_is_null(rk_stmt *st, int col) { return st->ops->col_is_null(st, col); }

void rk_col_copy(rk_stmt *st, int col, char *buf, size_t size)
{
    const char *t = rk_col_text(st, col);
    snprintf(buf, size, "%s", t ? t : "");
}

/* ---------- opening ---------- */

static void stop_committer(rk_db *db);

void rk_db_close(rk_db *db)
{
    if (!db)
        return;
    rk_db_loop_end(db); /* a no-op when the loop's end already did it */
    if (db->r.c)
        db->drv->close(db->r.c);
    if (db->w.c)
        db->drv->close(db->w.c);
    pthread_mutex_destroy(&db->w.lock);
    pthread_mutex_destroy(&db->r.lock);
    pthread_mutex_destroy(&db->queue_lock);
    pthread_cond_destroy(&db->committed);
    pthread_cond_destroy(&db->later_queued);
    free(db);
}

rk_rc rk_db_open(const char *target, int flags, rk_db **out)
{
    const rk_db_driver *drv = NULL;
    for (size_t i = 0; i < sizeof drivers / sizeof drivers[0] && !drv; i++)
        if (drivers[i]->accepts(target))
            drv = drivers[i];
    if (!drv) {
        rk_error("store: no driver for this store (sqlite:PATH, a path, or a postgresql:// URI)");
        return RK_ERR_CONFIG;
    }
    if (strlen(target) >= TARGET_MAX)
        return RK_ERR_CONFIG;
    rk_db *db = calloc(1, sizeof *db);
    if (!db)
        return RK_ERR_NOMEM;
    db->drv = drv;
    db->readonly = (flags & RK_DB_READONLY) != 0;
    snprintf(db->target, sizeof db->target, "%s", target);
    pthread_mutex_init(&db->w.lock, NULL);
    pthread_mutex_init(&db->r.lock, NULL);
    pthread_mutex_init(&db->queue_lock, NULL);
    pthread_cond_init(&db->committed, NULL);
    pthread_cond_init(&db->later_queued, NULL);
    rk_rc rc = RK_OK;
    if (!db->readonly)
        rc = drv->open(target, RK_CONN_WRITER, 0, &db->w.c);
    if (rc == RK_OK)
        rc = drv->open(target, RK_CONN_READER, db->readonly, &db->r.c);
    if (rc != RK_OK) {
        rk_db_close(db);
        return rc;
    }
    *out = db;
    return RK_OK;
}

const char *rk_db_engine(const rk_db *db)
{
    return db->drv->name;
}

/* ---------- migrations ---------- */

/* SQL with the driver's spelling of {id}, {blob}, {without_rowid} and
 * {skip_locked}; malloc'ed. */
char *rk_db_expand_tokens(const rk_db_driver *drv, const char *in)
{
    size_t cap = strlen(in) * 3 + 64, n = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    while (*in) {
        const char *close = *in == '{' ? strchr(in, '}') : NULL;
        char token[32];
        const char *spelled = NULL;
        if (close && (size_t)(close - in + 1) < sizeof token) {
            memcpy(token, in, (size_t)(close - in + 1));
            token[close - in + 1] = '\0';
            spelled = drv->ddl_token(token);
        }
        if (spelled && n + strlen(spelled) < cap) {
            memcpy(out + n, spelled, strlen(spelled));
            n += strlen(spelled);
            in = close + 1;
        } else if (n + 1 < cap) {
            out[n++] = *in++;
        } else {
            free(out);
            return NULL;
        }
    }
    out[n] = '\0';
    return out;
}

typedef struct migration {
    const char *module;
    const char *const *steps;
    int n_steps;
    int64_t version;
} migration;

static rk_rc read_version(rk_db *db, void *arg)
{
    migration *m = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT version FROM schema_versions WHERE module = ?");
    if (!q)
        return RK_ERR_STORE;
    rk_bind_text(q, 1, m->module);
    rk_rc rc = rk_stmt_next(q);
    m->version = rc == RK_OK ? rk_col_int(q, 0) : 0;
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

static rk_rc write_version(rk_db *db, void *arg)
{
    migration *m = arg;
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO schema_versions(module, version) VALUES (?, ?)"
                                 " ON CONFLICT(module) DO UPDATE SET version = excluded.version");
    if (!st)
        return RK_ERR_STORE;
    rk_bind_text(st, 1, m->module);
    rk_bind_int(st, 2, m->version);
    return rk_stmt_exec(st);
}

#define MIGRATE_LOCK_KEY 0x726b6d6967LL /* the processes over one database migrate in turns */

static rk_rc lock_migrations(rk_db *db, void *arg)
{
    (void)arg;
    return rk_db_lock(db, MIGRATE_LOCK_KEY);
}

rk_rc rk_db_migrate(rk_db *db, const char *module, const char *const *steps, int n_steps)
{
    if (db->readonly)
        return RK_ERR_INVALID;
    migration m = {module, steps, n_steps, 0};
    pthread_mutex_lock(&db->w.lock);
    /* each step and its new version in one transaction, which reads the
     * version under the lock: another instance may have migrated meanwhile */
    rk_rc rc = RK_OK;
    for (;;) {
        rc = db->drv->exec(db->w.c, db->drv->begin_write);
        if (rc == RK_OK)
            rc = run_bound(db, &db->w, lock_migrations, NULL);
        if (rc == RK_OK)
            rc = db->drv->exec(db->w.c, "CREATE TABLE IF NOT EXISTS schema_versions ("
                                        " module TEXT PRIMARY KEY, version BIGINT NOT NULL)");
        if (rc == RK_OK)
            rc = run_bound(db, &db->w, read_version, &m);
        if (rc == RK_OK && m.version > n_steps) {
            rk_error("store: the %s tables are at schema version %lld, newer than this renkei knows (%d);"
                     " run the renkei that wrote them",
                     module, (long long)m.version, n_steps);
            rc = RK_ERR_STORE;
        }
        if (rc != RK_OK || m.version == n_steps)
            break;
        char *ddl = rk_db_expand_tokens(db->drv, steps[m.version]);
        if (!ddl) {
            rc = RK_ERR_NOMEM;
            break;
        }
        m.version++;
        if ((rc = db->drv->exec(db->w.c, ddl)) == RK_OK && (rc = run_bound(db, &db->w, write_version, &m)) == RK_OK)
            rc = db->drv->exec(db->w.c, "COMMIT");
        free(ddl);
        if (rc != RK_OK)
            break;
    }
    if (rc == RK_OK)
        rc = db->drv->exec(db->w.c, "COMMIT");
    else
        db->drv->rollback(db->w.c);
    rc = noted(db, &db->w, rc);
    pthread_mutex_unlock(&db->w.lock);
    return rc;
}

/* ---------- health, purge ---------- */

int rk_db_writable(rk_db *db)
{
    if (db->readonly)
        return 0;
    pthread_mutex_lock(&db->w.lock);
    int ok = db->drv->writable(db->w.c, db->target);
    noted(db, &db->w, RK_OK);
    pthread_mutex_unlock(&db->w.lock);
    return ok;
}

rk_rc rk_db_purge(rk_db *db)
{
    if (db->readonly)
        return RK_ERR_INVALID;
    pthread_mutex_lock(&db->w.lock);
    pthread_mutex_lock(&db->r.lock); /* no read of ours keeps an old snapshot */
    rk_rc rc = noted(db, &db->w, db->drv->purge(db->w.c));
    pthread_mutex_unlock(&db->r.lock);
    pthread_mutex_unlock(&db->w.lock);
    return rc;
}

/* ---------- group commit ---------- */

/* Runs one batch in one transaction; each write in its own savepoint. */
static void run_batch(rk_db *db, write_req *batch)
{
    pthread_mutex_lock(&db->w.lock);
    binding saved = tl_bound;
    tl_bound = (binding){db, &db->w};
    rk_rc rc = exec_cached(db, &db->w, db->drv->begin_write);
    for (write_req *r = batch; r; r = r->next) {
        if (rc != RK_OK) {
            r->rc = rc;
            continue;
        }
        if ((r->rc = exec_cached(db, &db->w, "SAVEPOINT w")) == RK_OK) {
            r->rc = r->fn(db, r->arg);
            db->drv->release(db->w.c);
            if (r->rc != RK_OK)
                exec_cached(db, &db->w, "ROLLBACK TO w");
            exec_cached(db, &db->w, "RELEASE w");
        }
    }
    if (rc == RK_OK && (rc = exec_cached(db, &db->w, "COMMIT")) != RK_OK) {
        db->drv->rollback(db->w.c);
        for (write_req *r = batch; r; r = r->next)
            r->rc = rc;
    }
    /* a batch that met the database's absence failed whole: each write
     * says so (a COMMIT whose answer was lost may have been done: a retry
     * with the same id finds it) */
    for (write_req *r = batch; r; r = r->next)
        r->rc = noted(db, &db->w, r->rc);
    tl_bound = saved;
    pthread_mutex_unlock(&db->w.lock);
}

rk_rc rk_db_write(rk_db *db, rk_db_fn fn, void *arg)
{
    if (db->readonly)
        return RK_ERR_INVALID;
    if (tl_bound.db == db && tl_bound.conn == &db->w) { /* it would wait for itself */
        rk_error("store: a write inside a callback that holds the writer");
        return RK_ERR_INVALID;
    }
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

rk_rc rk_db_item(rk_db *db, rk_db_fn fn, void *arg)
{
    if (tl_bound.db != db || tl_bound.conn != &db->w)
        return RK_ERR_INVALID;
    rk_rc rc = exec_cached(db, &db->w, "SAVEPOINT item");
    if (rc != RK_OK)
        return rc;
    rc = fn(db, arg);
    db->drv->release(db->w.c);
    if (rc != RK_OK)
        exec_cached(db, &db->w, "ROLLBACK TO item");
    exec_cached(db, &db->w, "RELEASE item");
    return rc;
}

void rk_db_write_stats(rk_db *db, unsigned long long *writes, unsigned long long *batches)
{
    pthread_mutex_lock(&db->queue_lock);
    *writes = db->writes;
    *batches = db->batches;
    pthread_mutex_unlock(&db->queue_lock);
}

/* ---------- commits for an event loop (rk_db_write_later) ----------
 *
 * The loop queues writes; the committer thread takes everything queued,
 * commits it — the fsync off the loop, which meanwhile reads on the reader
 * and serves other connections — and hands the batch back to the loop (the
 * `written` event), then takes what was queued meanwhile without waiting
 * for the loop. */

/* On the loop: batches are durable (or failed); tell each writer. */
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

rk_rc rk_db_write_later(rk_db *db, struct event_base *base, rk_db_fn fn, void *arg, rk_db_written_fn written,
                        void *written_arg)
{
    if (db->readonly || (db->later_base && db->later_base != base))
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
