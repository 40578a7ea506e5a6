/* Unit tests: the store interface of store/db.h — group commit, commits on
 * an event loop, the read connection, item savepoints, versioned
 * migrations (a newer schema refused in one line), a read-only open, and a
 * rolled-back savepoint that grew the file. They run on SQLite, and on
 * PostgreSQL when RENKEI_TEST_STORE=postgres (unit/test_store_pg: a
 * throwaway server, a new database for each test; pg_fixture.h). The
 * records module has its own tests (test_records.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "pg_fixture.h"
#include "store/db.h"

static char dir[64];
static char target[160]; /* this test's store: sqlite:<dir>/node.db or a new PostgreSQL database */

static const char *const test_steps[] = {
    "CREATE TABLE t (k BIGINT PRIMARY KEY, v TEXT NOT NULL);",
};

static int setup(void **state)
{
    evthread_use_pthreads(); /* the committer wakes the test's event loop */
    snprintf(dir, sizeof dir, "/tmp/rk-test-store-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    if (test_store_target(dir, "node", target, sizeof target) != 0)
        return -1;
    rk_db *db = NULL;
    if (rk_db_open(target, 0, &db) != RK_OK || rk_db_migrate(db, "test", test_steps, 1) != RK_OK)
        return -1;
    *state = db;
    return 0;
}

static int teardown(void **state)
{
    rk_db_close(*state);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static rk_rc insert_k(rk_db *db, void *arg)
{
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO t(k, v) VALUES (?, 'x')");
    if (!st)
        return RK_ERR_STORE;
    rk_bind_int(st, 1, (int64_t)(intptr_t)arg);
    return rk_stmt_exec(st);
}

/* Inside any callback: the rows of t as this connection sees them. */
static long count_in(rk_db *db)
{
    rk_stmt *q = rk_db_stmt(db, "SELECT COUNT(*) FROM t");
    return q && rk_stmt_next(q) == RK_OK ? (long)rk_col_int(q, 0) : -1;
}

static rk_rc count_fn(rk_db *db, void *arg)
{
    *(long *)arg = count_in(db);
    return RK_OK;
}

/* A short read of the rows of t. */
static long count_rows(rk_db *db)
{
    long n = -1;
    return rk_db_read(db, count_fn, &n) == RK_OK ? n : -1;
}

static long count_rows_scan(rk_db *db)
{
    long n = -1;
    return rk_db_scan(db, count_fn, &n) == RK_OK ? n : -1;
}

typedef struct writer {
    rk_db *db;
    int base;
} writer;

static void *write_many(void *arg)
{
    writer *w = arg;
    for (int i = 0; i < 200; i++)
        if (rk_db_write(w->db, insert_k, (void *)(intptr_t)(w->base + i)) != RK_OK)
            return (void *)1;
    return NULL;
}

static void group_commit_commits_every_write(void **state)
{
    rk_db *db = *state;
    pthread_t t[8];
    writer w[8];
    for (int i = 0; i < 8; i++) {
        w[i] = (writer){db, i * 1000};
        assert_int_equal(pthread_create(&t[i], NULL, write_many, &w[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        void *ret = NULL;
        pthread_join(t[i], &ret);
        assert_null(ret);
    }
    assert_int_equal(count_rows(db), 1600);
    unsigned long long writes = 0, batches = 0;
    rk_db_write_stats(db, &writes, &batches);
    assert_int_equal(writes, 1600);
    assert_true(batches >= 1 && batches <= writes);
}

static void failing_write_is_rolled_back_alone(void **state)
{
    rk_db *db = *state;
    assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)1), RK_OK);
    assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)1), RK_ERR_CONFLICT); /* duplicate key */
    assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)2), RK_OK);
    assert_int_equal(count_rows(db), 2);
}

/* rk_db_item: inside one write, a failing item is rolled back alone and
 * the others are committed. */
static rk_rc three_items(rk_db *db, void *arg)
{
    rk_rc *rcs = arg;
    rcs[0] = rk_db_item(db, insert_k, (void *)(intptr_t)10);
    rcs[1] = rk_db_item(db, insert_k, (void *)(intptr_t)10); /* the same key */
    rcs[2] = rk_db_item(db, insert_k, (void *)(intptr_t)11);
    return RK_OK;
}

static void a_failing_item_is_rolled_back_alone(void **state)
{
    rk_db *db = *state;
    rk_rc rcs[3];
    assert_int_equal(rk_db_write(db, three_items, rcs), RK_OK);
    assert_int_equal(rcs[0], RK_OK);
    assert_int_equal(rcs[1], RK_ERR_CONFLICT);
    assert_int_equal(rcs[2], RK_OK);
    assert_int_equal(count_rows(db), 2);
}

/* rk_db_write_later: writes queued on a loop are committed by the
 * committer thread (sharing commits as they queue); a failing one is
 * rolled back alone; each writer is told once, after its commit, on the
 * loop's thread. */
typedef struct told {
    rk_rc rc;
    int calls;
    long rows_seen;
    rk_db *db;
    pthread_t thread;
} told;

static void on_written(void *arg, rk_rc rc)
{
    told *t = arg;
    t->rc = rc;
    t->calls++;
    t->rows_seen = count_rows(t->db); /* committed by now */
    t->thread = pthread_self();
}

typedef struct loop_writes {
    rk_db *db;
    struct event_base *base;
    told t[3];
} loop_writes;

static void queue_three(evutil_socket_t fd, short what, void *arg)
{
    loop_writes *w = arg;
    assert_int_equal(rk_db_write_later(w->db, w->base, insert_k, (void *)(intptr_t)1, on_written, &w->t[0]), RK_OK);
    assert_int_equal(rk_db_write_later(w->db, w->base, insert_k, (void *)(intptr_t)1, on_written, &w->t[1]), RK_OK);
    assert_int_equal(rk_db_write_later(w->db, w->base, insert_k, (void *)(intptr_t)2, on_written, &w->t[2]), RK_OK);
    assert_int_equal(w->t[0].calls, 0); /* nothing is told before the commit */
}

static void keep_alive(evutil_socket_t fd, short what, void *arg) {}

static void writes_on_a_loop_are_committed_then_told(void **state)
{
    rk_db *db = *state;
    loop_writes w = {.db = db, .base = event_base_new()};
    for (int i = 0; i < 3; i++)
        w.t[i].db = db;
    unsigned long long writes0, batches0, writes1, batches1;
    rk_db_write_stats(db, &writes0, &batches0);
    /* a timer keeps the loop running until the committer hands back */
    struct timeval ms = {0, 1000};
    struct event *tick = event_new(w.base, -1, EV_PERSIST, keep_alive, NULL);
    assert_int_equal(event_add(tick, &ms), 0);
    assert_int_equal(event_base_once(w.base, -1, EV_TIMEOUT, queue_three, &w, NULL), 0);
    for (int i = 0; i < 5000 && w.t[0].calls + w.t[1].calls + w.t[2].calls < 3; i++)
        event_base_loop(w.base, EVLOOP_ONCE);
    event_free(tick);
    rk_db_write_stats(db, &writes1, &batches1);
    assert_true(batches1 - batches0 >= 1 && batches1 - batches0 <= 3);
    assert_int_equal(writes1 - writes0, 3);
    assert_int_equal(w.t[0].rc, RK_OK);
    assert_int_equal(w.t[1].rc, RK_ERR_CONFLICT); /* the same key: rolled back alone */
    assert_int_equal(w.t[2].rc, RK_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(w.t[i].calls, 1);
        assert_true(w.t[i].rows_seen >= 1);
        assert_true(pthread_equal(w.t[i].thread, pthread_self())); /* told on the loop */
    }
    assert_int_equal(w.t[2].rows_seen, 2);
    /* Another loop may not use the same store. */
    struct event_base *other = event_base_new();
    told t = {.db = db};
    assert_int_equal(rk_db_write_later(db, other, insert_k, (void *)(intptr_t)3, on_written, &t), RK_ERR_INVALID);
    rk_db_loop_end(db);
    rk_db_loop_end(db); /* again: nothing left, no effect */
    event_base_free(other);
    event_base_free(w.base);
    assert_int_equal(count_rows(db), 2);
}

/* Inside a write: inserts k, then counts what the write sees; rolled back
 * when `roll_back` is set. */
typedef struct insert_count {
    int k, roll_back;
    long seen;
} insert_count;

static rk_rc insert_then_count(rk_db *db, void *arg)
{
    insert_count *a = arg;
    rk_rc rc = insert_k(db, (void *)(intptr_t)a->k);
    a->seen = count_in(db);
    return rc != RK_OK ? rc : a->roll_back ? RK_ERR_INVALID : RK_OK;
}

/* Another thread's write in progress: it holds the writer with an
 * uncommitted row until told to end, then fails (rolled back). */
typedef struct open_write {
    rk_db *db;
    pthread_mutex_t m;
    pthread_cond_t c;
    int stage; /* 1: the row is in, uncommitted; 2: roll back */
    rk_rc insert_rc;
} open_write;

static rk_rc held_write(rk_db *db, void *arg)
{
    open_write *o = arg;
    o->insert_rc = insert_k(db, (void *)(intptr_t)2);
    pthread_mutex_lock(&o->m);
    o->stage = 1;
    pthread_cond_signal(&o->c);
    while (o->stage != 2)
        pthread_cond_wait(&o->c, &o->m);
    pthread_mutex_unlock(&o->m);
    return RK_ERR_INVALID;
}

static void *hold_a_write(void *arg)
{
    open_write *o = arg;
    rk_rc rc = rk_db_write(o->db, held_write, o);
    return rc == RK_ERR_INVALID && o->insert_rc == RK_OK ? NULL : (void *)1;
}

static rk_rc try_insert(rk_db *db, void *arg)
{
    *(rk_rc *)arg = insert_k(db, (void *)(intptr_t)9);
    return RK_OK;
}

typedef struct write_in_scan {
    rk_rc write_rc;
} write_in_scan;

static rk_rc write_during_scan(rk_db *db, void *arg)
{
    write_in_scan *a = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT k FROM t ORDER BY k");
    if (!q || rk_stmt_next(q) != RK_OK) /* the scan is under way */
        return RK_ERR_STORE;
    a->write_rc = rk_db_write(db, insert_k, (void *)(intptr_t)3);
    return RK_OK;
}

/* rk_db_read does not wait for another thread's write in progress: it
 * reads the last commit on the read-only connection, which does not see
 * the write's rows and cannot write. Inside a write, its own rows are
 * read. */
static void reads_do_not_wait_for_a_write(void **state)
{
    rk_db *db = *state;
    assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)1), RK_OK);
    open_write o = {.db = db};
    pthread_mutex_init(&o.m, NULL);
    pthread_cond_init(&o.c, NULL);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, hold_a_write, &o), 0);
    pthread_mutex_lock(&o.m);
    while (o.stage != 1)
        pthread_cond_wait(&o.c, &o.m);
    pthread_mutex_unlock(&o.m);
    assert_int_equal(count_rows(db), 1); /* the last commit only, without waiting */
    rk_rc insert_rc = RK_OK;
    assert_int_equal(rk_db_read(db, try_insert, &insert_rc), RK_OK);
    assert_int_not_equal(insert_rc, RK_OK); /* a read cannot write */
    pthread_mutex_lock(&o.m);
    o.stage = 2;
    pthread_cond_signal(&o.c);
    pthread_mutex_unlock(&o.m);
    void *failed = NULL;
    pthread_join(t, &failed);
    assert_null(failed);
    assert_int_equal(count_rows(db), 1); /* that write was rolled back */
    /* Inside a write: its own uncommitted row is read. */
    insert_count ic = {.k = 2, .roll_back = 1};
    assert_int_equal(rk_db_write(db, insert_then_count, &ic), RK_ERR_INVALID);
    assert_int_equal(ic.seen, 2);
    assert_int_equal(count_rows(db), 1); /* rolled back */
    ic = (insert_count){.k = 2};
    assert_int_equal(rk_db_write(db, insert_then_count, &ic), RK_OK);
    assert_int_equal(ic.seen, 2);
    assert_int_equal(count_rows(db), 2);
    /* A scan holds the read-only connection only: writes go on (here on the
     * same thread, which would deadlock otherwise). */
    write_in_scan ws = {RK_ERR_STORE};
    assert_int_equal(rk_db_scan(db, write_during_scan, &ws), RK_OK);
    assert_int_equal(ws.write_rc, RK_OK);
    assert_int_equal(count_rows(db), 3);
    assert_int_equal(count_rows_scan(db), 3);
    pthread_mutex_destroy(&o.m);
    pthread_cond_destroy(&o.c);
}

/* ---------- migrations ---------- */

static rk_rc version_fn(rk_db *db, void *arg)
{
    int64_t *v = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT version FROM schema_versions WHERE module = ?");
    if (!q)
        return RK_ERR_STORE;
    rk_bind_text(q, 1, "m");
    rk_rc rc = rk_stmt_next(q);
    *v = rc == RK_OK ? rk_col_int(q, 0) : 0;
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

static int64_t version_of_m(rk_db *db)
{
    int64_t v = -1;
    assert_int_equal(rk_db_read(db, version_fn, &v), RK_OK);
    return v;
}

static rk_rc insert_a(rk_db *db, void *arg)
{
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO a(x) VALUES (?)");
    if (!st)
        return RK_ERR_STORE;
    rk_bind_int(st, 1, (int64_t)(intptr_t)arg);
    return rk_stmt_exec(st);
}

static rk_rc insert_b(rk_db *db, void *arg)
{
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO b(y, data) VALUES (?, ?) RETURNING id");
    if (!st)
        return RK_ERR_STORE;
    rk_bind_text(st, 1, "one");
    rk_bind_blob(st, 2, "\0\1\2", 3);
    rk_rc rc = rk_stmt_next(st);
    if (rc == RK_OK)
        *(int64_t *)arg = rk_col_int(st, 0);
    return rc;
}

/* Steps run once each, in order, each in its own transaction; the version
 * is kept per module; a failing step leaves the version before it; a
 * database newer than the steps known is refused. */
static void migrations_are_versioned(void **state)
{
    rk_db *db = *state;
    static const char *const steps[] = {
        "CREATE TABLE a (x BIGINT PRIMARY KEY);",
        /* not idempotent: running it twice would fail */
        "CREATE TABLE b (id {id}, y TEXT NOT NULL, data {blob});"
        "CREATE TABLE c (k TEXT PRIMARY KEY, v BIGINT NOT NULL){without_rowid};",
        "CREATE TABLE d (z BIGINT); this is not SQL;",
    };
    assert_int_equal(version_of_m(db), 0);
    assert_int_equal(rk_db_migrate(db, "m", steps, 1), RK_OK);
    assert_int_equal(version_of_m(db), 1);
    assert_int_equal(rk_db_write(db, insert_a, (void *)(intptr_t)7), RK_OK);
    assert_int_equal(rk_db_migrate(db, "m", steps, 2), RK_OK);
    assert_int_equal(version_of_m(db), 2);
    assert_int_equal(rk_db_migrate(db, "m", steps, 2), RK_OK); /* nothing left to run */
    int64_t id = 0;
    assert_int_equal(rk_db_write(db, insert_b, &id), RK_OK);
    assert_int_equal(id, 1);
    assert_int_equal(rk_db_migrate(db, "m", steps, 3), RK_ERR_STORE); /* a bad step */
    assert_int_equal(version_of_m(db), 2);
    /* another module has its own version */
    assert_int_equal(rk_db_migrate(db, "test", test_steps, 1), RK_OK);
    /* a renkei that knows fewer steps refuses the database */
    assert_int_equal(rk_db_migrate(db, "m", steps, 1), RK_ERR_STORE);
    assert_int_equal(version_of_m(db), 2);
    /* kept across a reopen, with the rows */
    rk_db_close(db);
    *state = NULL;
    assert_int_equal(rk_db_open(target, 0, &db), RK_OK);
    *state = db;
    assert_int_equal(version_of_m(db), 2);
    assert_int_equal(rk_db_migrate(db, "m", steps, 2), RK_OK);
    assert_int_equal(rk_db_write(db, insert_a, (void *)(intptr_t)7), RK_ERR_CONFLICT); /* still there */
}

/* ---------- read-only ---------- */

static void a_read_only_open_reads_and_does_not_write(void **state)
{
    rk_db *db = *state;
    assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)1), RK_OK);
    assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)2), RK_OK);
    rk_db *ro = NULL;
    assert_int_equal(rk_db_open(target, RK_DB_READONLY, &ro), RK_OK);
    assert_string_equal(rk_db_engine(ro), test_store_is_pg() ? "postgresql" : "sqlite");
    assert_string_equal(rk_db_engine(db), rk_db_engine(ro));
    assert_int_equal(count_rows(ro), 2);
    assert_int_equal(count_rows_scan(ro), 2);
    /* it sees what the node commits meanwhile */
    assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)3), RK_OK);
    assert_int_equal(count_rows(ro), 3);
    assert_int_not_equal(rk_db_write(ro, insert_k, (void *)(intptr_t)4), RK_OK);
    rk_rc insert_rc = RK_OK;
    assert_int_equal(rk_db_read(ro, try_insert, &insert_rc), RK_OK);
    assert_int_not_equal(insert_rc, RK_OK);
    assert_int_not_equal(rk_db_migrate(ro, "test", test_steps, 1), RK_OK);
    rk_db_close(ro);
    assert_int_equal(count_rows(db), 3);
    /* a missing database is not created */
    char missing[200];
    ro = NULL;
    if (test_store_is_pg()) { /* nor by a writer: PostgreSQL's are made by whoever runs the server */
        snprintf(missing, sizeof missing, "postgresql://postgres@127.0.0.1:%d/none", pg_fixture_port());
        assert_int_not_equal(rk_db_open(missing, RK_DB_READONLY, &ro), RK_OK);
        assert_int_not_equal(rk_db_open(missing, 0, &ro), RK_OK);
        return;
    }
    snprintf(missing, sizeof missing, "%s/none.db", dir);
    assert_int_not_equal(rk_db_open(missing, RK_DB_READONLY, &ro), RK_OK);
    assert_int_not_equal(access(missing, F_OK), 0);
}

/* ---------- a rolled-back savepoint that grew the file ---------- */

typedef struct round_args {
    int round;
    unsigned seed;
    char body[1500];
} round_args;

static rk_rc insert_round(rk_db *db, void *arg)
{
    round_args *a = arg;
    char key[32];
    for (int i = 0; i < 1500; i++) {
        rk_stmt *st = rk_db_stmt(db, "INSERT INTO r (k, b) VALUES (?, ?)");
        if (!st)
            return RK_ERR_STORE;
        snprintf(key, sizeof key, "r%d.%08x", a->round, rand_r(&a->seed));
        a->body[0] = (char)('a' + a->round);
        rk_bind_text(st, 1, key);
        rk_bind_text(st, 2, a->body);
        rk_rc rc = rk_stmt_exec(st);
        if (rc != RK_OK)
            return rc;
    }
    return a->round == 1 ? RK_ERR_INVALID : RK_OK; /* the middle round fails: rolled back */
}

static rk_rc check_r(rk_db *db, void *arg)
{
    int64_t *out = arg;
    /* SQLite checks its file; PostgreSQL has nothing of the kind to ask (the test is its rows) */
    rk_stmt *q = test_store_is_pg() ? rk_db_stmt(db, "SELECT 'ok'") : rk_db_stmt(db, "PRAGMA integrity_check");
    if (!q || rk_stmt_next(q) != RK_OK)
        return RK_ERR_STORE;
    out[0] = strcmp(rk_col_text(q, 0), "ok") == 0;
    q = rk_db_stmt(db, "SELECT COUNT(*), SUM(CASE WHEN SUBSTR(b, 1, 1) = 'b' THEN 1 ELSE 0 END),"
                       " SUM(CASE WHEN k LIKE 'r1.%' THEN 1 ELSE 0 END) FROM r");
    if (!q || rk_stmt_next(q) != RK_OK)
        return RK_ERR_STORE;
    out[1] = rk_col_int(q, 0);
    out[2] = rk_col_int(q, 1);
    out[3] = rk_col_int(q, 2);
    return RK_OK;
}

/* Random keys in a unique index make B-tree splits park pages under the
 * lock-byte page number (the driver's page cache); the pages a failing
 * write added in its savepoint must leave the cache with its rollback, or
 * they come back stale when the file grows again. (The driver's own test,
 * test_store_sqlite.c, also measures the cache.) */
static void a_rolled_back_write_leaves_no_stale_pages(void **state)
{
    rk_db *db = *state;
    static const char *const steps[] = {"CREATE TABLE r (id {id}, k TEXT NOT NULL UNIQUE, b TEXT NOT NULL);"};
    assert_int_equal(rk_db_migrate(db, "r", steps, 1), RK_OK);
    round_args a = {.seed = 7};
    memset(a.body, 'b', sizeof a.body - 1);
    a.body[sizeof a.body - 1] = '\0';
    for (a.round = 0; a.round < 3; a.round++)
        assert_int_equal(rk_db_write(db, insert_round, &a), a.round == 1 ? RK_ERR_INVALID : RK_OK);
    int64_t r[4] = {0};
    assert_int_equal(rk_db_read(db, check_r, r), RK_OK);
    assert_int_equal(r[0], 1);    /* integrity_check: ok */
    assert_int_equal(r[1], 3000); /* rounds 0 and 2 */
    assert_int_equal(r[2], 0);    /* nothing of round 1 … */
    assert_int_equal(r[3], 0);
}

/* ---------- a schema newer than this binary knows ---------- */

/* Runs migrate with stderr in a file: the lines it logged. */
static int lines_logged_by_migrate(rk_db *db, const char *module, const char *const *steps, int n, rk_rc *rc,
                                   char *text, size_t size)
{
    char log[128];
    snprintf(log, sizeof log, "%s/stderr.txt", dir);
    fflush(stderr);
    int saved = dup(2), fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    *rc = rk_db_migrate(db, module, steps, n);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    FILE *f = fopen(log, "r");
    assert_non_null(f);
    size_t got = fread(text, 1, size - 1, f);
    text[got] = '\0';
    fclose(f);
    int lines = 0;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    fprintf(stderr, "%s", text); /* as the test's own output too */
    return lines;
}

static void a_newer_schema_is_refused_in_one_line(void **state)
{
    rk_db *db = *state;
    static const char *const steps[] = {"CREATE TABLE n1 (x BIGINT);", "CREATE TABLE n2 (x BIGINT);"};
    assert_int_equal(rk_db_migrate(db, "newer", steps, 2), RK_OK);
    /* the same database reopened by a renkei that knows one step only */
    rk_db_close(db);
    *state = NULL;
    assert_int_equal(rk_db_open(target, 0, &db), RK_OK);
    *state = db;
    rk_rc rc = RK_OK;
    char text[2048];
    assert_int_equal(lines_logged_by_migrate(db, "newer", steps, 1, &rc, text, sizeof text), 1);
    assert_int_equal(rc, RK_ERR_STORE);
    assert_non_null(strstr(text, "the newer tables are at schema version 2, newer than this renkei knows (1)"));
    /* nothing was changed: the binary that knows both steps still opens it */
    assert_int_equal(lines_logged_by_migrate(db, "newer", steps, 2, &rc, text, sizeof text), 0);
    assert_int_equal(rc, RK_OK);
}

/* ---------- several processes over one database ---------- */

#define TEST_LEAD_KEY 0x7465737401LL

static void one_process_leads_at_a_time(void **state)
{
    (void)state;
    rk_db *a = NULL, *b = NULL;
    assert_int_equal(rk_db_open(target, 0, &a), RK_OK);
    assert_int_equal(rk_db_open(target, 0, &b), RK_OK);
    int la = 0, lb = 0;
    assert_int_equal(rk_db_lead(a, TEST_LEAD_KEY, &la), RK_OK);
    assert_int_equal(la, 1);
    assert_int_equal(rk_db_lead(a, TEST_LEAD_KEY, &la), RK_OK); /* asked again: still */
    assert_int_equal(la, 1);
    assert_int_equal(rk_db_lead(b, TEST_LEAD_KEY, &lb), RK_OK);
    if (!test_store_is_pg()) { /* SQLite: one process per database, it leads */
        assert_int_equal(lb, 1);
    } else {
        assert_int_equal(lb, 0);
        assert_int_equal(rk_db_lead(b, TEST_LEAD_KEY + 1, &lb), RK_OK); /* another key is free */
        assert_int_equal(lb, 1);
        rk_db_close(a); /* the leader goes: its session's lock with it, once the server ended the session */
        a = NULL;
        for (int tries = 0; tries < 100 && !lb; tries++) {
            assert_int_equal(rk_db_lead(b, TEST_LEAD_KEY, &lb), RK_OK);
            if (!lb)
                usleep(20000);
        }
        assert_int_equal(lb, 1);
    }
    rk_db_close(a);
    rk_db_close(b);
}

static rk_rc append_numbered(rk_db *db, void *arg)
{
    (void)arg;
    rk_rc rc = rk_db_lock(db, TEST_LEAD_KEY);
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO t(k, v) VALUES ((SELECT COALESCE(MAX(k), 0) + 1 FROM t), 'n')");
    return rc == RK_OK ? rk_stmt_exec(st) : rc;
}

typedef struct appender {
    rk_db *db;
    int failed;
} appender;

static void *append_many(void *arg)
{
    appender *a = arg;
    for (int i = 0; i < 60; i++)
        a->failed += rk_db_write(a->db, append_numbered, NULL) != RK_OK;
    return NULL;
}

/* Two processes' writers numbering rows from MAX + 1 take turns under the
 * lock: no number is taken twice, none is skipped. */
static void the_lock_makes_writers_take_turns(void **state)
{
    assert_int_not_equal(rk_db_lock(*state, 1), RK_OK); /* outside a write: refused */
    appender w[2] = {{NULL, 0}, {NULL, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(rk_db_open(target, 0, &w[i].db), RK_OK);
        assert_int_equal(pthread_create(&t[i], NULL, append_many, &w[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        rk_db_close(w[i].db);
        assert_int_equal(w[i].failed, 0);
    }
    assert_int_equal(count_rows(*state), 120);
}

static rk_rc claim_one(rk_db *db, void *arg)
{
    rk_stmt *q = rk_db_stmt(db, "SELECT k FROM t WHERE k > ? ORDER BY k LIMIT 1 {skip_locked}");
    rk_bind_int(q, 1, 0);
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK)
        *(int64_t *)arg = rk_col_int(q, 0);
    return rc;
}

typedef struct holder {
    rk_db *db;
    int64_t got;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int claimed, go;
} holder;

/* Claims a row, then holds its transaction open until told. */
static rk_rc claim_and_hold(rk_db *db, void *arg)
{
    holder *h = arg;
    rk_rc rc = claim_one(db, &h->got);
    pthread_mutex_lock(&h->lock);
    h->claimed = 1;
    pthread_cond_broadcast(&h->cond);
    while (!h->go)
        pthread_cond_wait(&h->cond, &h->lock);
    pthread_mutex_unlock(&h->lock);
    return rc;
}

static void *hold_main(void *arg)
{
    holder *h = arg;
    rk_db_write(h->db, claim_and_hold, h);
    return NULL;
}

/* {skip_locked}: a row one process claimed is passed over by another's
 * claim until the first commits (PostgreSQL); SQLite's one writer claims
 * alone, and the statement runs there too. */
static void a_claim_passes_over_claimed_rows(void **state)
{
    rk_db *db = *state;
    for (int k = 1; k <= 2; k++)
        assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)k), RK_OK);
    int64_t got = 0;
    assert_int_equal(rk_db_write(db, claim_one, &got), RK_OK);
    assert_int_equal(got, 1);
    if (!test_store_is_pg())
        return;
    holder h = {.got = 0};
    pthread_mutex_init(&h.lock, NULL);
    pthread_cond_init(&h.cond, NULL);
    assert_int_equal(rk_db_open(target, 0, &h.db), RK_OK);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, hold_main, &h), 0);
    pthread_mutex_lock(&h.lock);
    while (!h.claimed)
        pthread_cond_wait(&h.cond, &h.lock);
    pthread_mutex_unlock(&h.lock);
    assert_int_equal(h.got, 1);
    got = 0;
    assert_int_equal(rk_db_write(db, claim_one, &got), RK_OK); /* does not wait for the holder */
    assert_int_equal(got, 2);
    pthread_mutex_lock(&h.lock);
    h.go = 1;
    pthread_cond_broadcast(&h.cond);
    pthread_mutex_unlock(&h.lock);
    pthread_join(t, NULL);
    rk_db_close(h.db);
    pthread_mutex_destroy(&h.lock);
    pthread_cond_destroy(&h.cond);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(group_commit_commits_every_write, setup, teardown),
        cmocka_unit_test_setup_teardown(failing_write_is_rolled_back_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(a_failing_item_is_rolled_back_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(writes_on_a_loop_are_committed_then_told, setup, teardown),
        cmocka_unit_test_setup_teardown(reads_do_not_wait_for_a_write, setup, teardown),
        cmocka_unit_test_setup_teardown(migrations_are_versioned, setup, teardown),
        cmocka_unit_test_setup_teardown(a_read_only_open_reads_and_does_not_write, setup, teardown),
        cmocka_unit_test_setup_teardown(a_rolled_back_write_leaves_no_stale_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(a_newer_schema_is_refused_in_one_line, setup, teardown),
        cmocka_unit_test_setup_teardown(one_process_leads_at_a_time, setup, teardown),
        cmocka_unit_test_setup_teardown(the_lock_makes_writers_take_turns, setup, teardown),
        cmocka_unit_test_setup_teardown(a_claim_passes_over_claimed_rows, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, test_store_group_end);
}
