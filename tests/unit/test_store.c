/* Unit tests: the SQLite handle (group commit, commits on an event loop,
 * the read connection, item savepoints) and the
 * records module (settle, kept answers, conflicts, leaves, paging). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "store/db.h"
#include "records/records.h"

static char dir[64];

static int setup(void **state)
{
    evthread_use_pthreads(); /* the committer wakes the test's event loop */
    snprintf(dir, sizeof dir, "/tmp/rk-test-store-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    char path[128];
    snprintf(path, sizeof path, "%s/node.db", dir);
    rk_db *db = NULL;
    if (rk_db_open_schema(path, "CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v TEXT NOT NULL);", &db) != RK_OK ||
        rk_db_exec(db, rk_records_schema) != RK_OK)
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
    sqlite3_stmt *st = rk_db_sqlite_stmt(db, "INSERT INTO t(k, v) VALUES (?, 'x')");
    if (!st)
        return RK_ERR_STORE;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)(intptr_t)arg);
    rk_rc rc = rk_db_step_rc(db, sqlite3_step(st));
    sqlite3_reset(st);
    return rc;
}

static long count_rows(rk_db *db)
{
    rk_db_lock(db);
    sqlite3_stmt *q = rk_db_sqlite_stmt(db, "SELECT count(*) FROM t");
    long n = q && sqlite3_step(q) == SQLITE_ROW ? (long)sqlite3_column_int64(q, 0) : -1;
    if (q)
        sqlite3_reset(q);
    rk_db_unlock(db);
    return n;
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

static rk_record sample(const char *xid, const char *outcome)
{
    rk_record r = {0};
    snprintf(r.exchange_id, sizeof r.exchange_id, "%s", xid);
    strcpy(r.side, "core");
    strcpy(r.requester, "city-a");
    strcpy(r.provider, "city-b");
    strcpy(r.business, "child_allowance");
    strcpy(r.item, "local_tax");
    strcpy(r.operator_id, "op-1");
    strcpy(r.subject, "42");
    r.requested_ms = 1700000000000;
    snprintf(r.outcome, sizeof r.outcome, "%s", outcome);
    return r;
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

static long count_rows_read(rk_db *db)
{
    rk_db_read_lock(db);
    sqlite3_stmt *q = rk_db_sqlite_stmt(db, "SELECT count(*) FROM t");
    long n = q && sqlite3_step(q) == SQLITE_ROW ? (long)sqlite3_column_int64(q, 0) : -1;
    if (q)
        sqlite3_reset(q);
    rk_db_read_unlock(db);
    return n;
}

static rk_rc insert_then_read(rk_db *db, void *arg)
{
    rk_rc rc = insert_k(db, arg);
    /* inside a write, a read sees the write's own row */
    return rc == RK_OK && count_rows_read(db) == 2 ? RK_OK : RK_ERR_STORE;
}

/* Another thread's write in progress: it holds the writer's lock with an
 * uncommitted row until told to roll back. */
typedef struct open_write {
    rk_db *db;
    pthread_mutex_t m;
    pthread_cond_t c;
    int stage; /* 1: the row is in, uncommitted; 2: roll back */
} open_write;

static void *hold_a_write(void *arg)
{
    open_write *o = arg;
    rk_db_lock(o->db);
    int ok = rk_db_begin(o->db) == RK_OK && insert_k(o->db, (void *)(intptr_t)2) == RK_OK;
    pthread_mutex_lock(&o->m);
    o->stage = 1;
    pthread_cond_signal(&o->c);
    while (o->stage != 2)
        pthread_cond_wait(&o->c, &o->m);
    pthread_mutex_unlock(&o->m);
    rk_db_rollback(o->db);
    rk_db_unlock(o->db);
    return ok ? NULL : (void *)1;
}

/* rk_db_read_lock does not wait for another thread's write in progress: it
 * reads the last commit on the read-only connection, which does not see the
 * write's rows and cannot write. A thread that holds the writer reads its
 * own rows there. */
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
    assert_int_equal(count_rows_read(db), 1); /* the last commit only, without waiting */
    rk_db_read_lock(db);
    assert_int_not_equal(rk_db_exec(db, "INSERT INTO t(k, v) VALUES (9, 'x')"), RK_OK);
    rk_db_read_unlock(db);
    pthread_mutex_lock(&o.m);
    o.stage = 2;
    pthread_cond_signal(&o.c);
    pthread_mutex_unlock(&o.m);
    void *failed = NULL;
    pthread_join(t, &failed);
    assert_null(failed);
    /* This thread holding the writer: its own uncommitted row is read. */
    rk_db_lock(db);
    assert_int_equal(rk_db_begin(db), RK_OK);
    assert_int_equal(insert_k(db, (void *)(intptr_t)2), RK_OK);
    assert_int_equal(count_rows_read(db), 2);
    rk_db_rollback(db);
    rk_db_unlock(db);
    assert_int_equal(count_rows_read(db), 1); /* the writer is free: read there */
    assert_int_equal(rk_db_write(db, insert_then_read, (void *)(intptr_t)2), RK_OK);
    assert_int_equal(count_rows_read(db), 2);
    /* A scan holds the read-only connection only: writes and short reads
     * go on (here on the same thread, which would deadlock otherwise). */
    rk_db_scan_lock(db);
    assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)3), RK_OK);
    rk_db_read_unlock(db);
    assert_int_equal(count_rows_read(db), 3);
    pthread_mutex_destroy(&o.m);
    pthread_cond_destroy(&o.c);
}

static void settle_keeps_the_first_answer(void **state)
{
    rk_db *db = *state;
    rk_record r = sample("city-a.x1", "provided");
    assert_int_equal(rk_settle(db, &r, "city-a.x1", "hash-1", 200, "{\"status\":\"provided\"}", NULL, NULL), RK_OK);
    int status = 0;
    char *body = NULL;
    assert_int_equal(rk_answer_get(db, "city-a.x1", "core", "hash-1", &status, &body), RK_OK);
    assert_int_equal(status, 200);
    assert_string_equal(body, "{\"status\":\"provided\"}");
    free(body);
    assert_int_equal(rk_answer_get(db, "city-a.x1", "core", "hash-2", &status, &body), RK_ERR_CONFLICT);
    assert_int_equal(rk_answer_get(db, "city-a.x9", "core", "hash-1", &status, &body), RK_ERR_NOT_FOUND);
    /* settling the same exchange again is a conflict, and changes nothing */
    assert_int_equal(rk_settle(db, &r, "city-a.x1", "hash-1", 200, "{}", NULL, NULL), RK_ERR_CONFLICT);
    assert_int_equal(rk_records_count(db), 1);
}

static void leaves_are_deterministic_and_field_sensitive(void **state)
{
    rk_record a = sample("city-a.x2", "provided"), b = a;
    uint8_t la[32], lb[32];
    rk_record_leaf(&a, la);
    rk_record_leaf(&b, lb);
    assert_memory_equal(la, lb, 32);
    strcpy(b.operator_id, "op-2");
    rk_record_leaf(&b, lb);
    assert_memory_not_equal(la, lb, 32);
}

static void list_pages_newest_first(void **state)
{
    rk_db *db = *state;
    char xid[32];
    for (int i = 0; i < 5; i++) {
        snprintf(xid, sizeof xid, "city-a.p%d", i);
        rk_record r = sample(xid, "no_data");
        assert_int_equal(rk_settle(db, &r, xid, "h", 200, "{}", NULL, NULL), RK_OK);
    }
    rk_records_query q = {.limit = 2};
    json_t *page = NULL;
    int64_t next = 0;
    assert_int_equal(rk_records_list(db, &q, &page, &next), RK_OK);
    assert_int_equal(json_array_size(page), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(page, 0), "exchange_id")), "city-a.p4");
    assert_true(next > 0);
    json_decref(page);
    q.before_seq = next;
    assert_int_equal(rk_records_list(db, &q, &page, &next), RK_OK);
    assert_string_equal(json_string_value(json_object_get(json_array_get(page, 0), "exchange_id")), "city-a.p2");
    json_decref(page);
    rk_records_query one = {.exchange_id = "city-a.p3", .limit = 10};
    assert_int_equal(rk_records_list(db, &one, &page, &next), RK_OK);
    assert_int_equal(json_array_size(page), 1);
    assert_int_equal(next, 0);
    json_decref(page);
}

static void exec_ok(rk_db *db, const char *sql)
{
    assert_int_equal(rk_db_exec(db, sql), RK_OK);
}

/* Random keys in a unique index make B-tree splits park pages under the
 * lock-byte page number (db_pcache.c); the wrapped cache must still drop
 * every page a rolled-back savepoint added, or they come back stale when
 * the file grows again. */
static void page_cache_drops_what_a_rollback_removed(void **state)
{
    rk_db *db = *state;
    assert_int_equal(rk_db_pcache_install(), 1);
    exec_ok(db, "CREATE TABLE r (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE, b TEXT NOT NULL)");
    sqlite3 *h = rk_db_handle(db);
    sqlite3_stmt *ins = NULL;
    assert_int_equal(sqlite3_prepare_v2(h, "INSERT INTO r (k, b) VALUES (?, ?)", -1, &ins, NULL), SQLITE_OK);
    char key[32], body[1500];
    memset(body, 'b', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    unsigned seed = 7;
    int cache_used[3] = {0}, highwater = 0;
    for (int round = 0; round < 3; round++) {
        /* the middle round grows the file inside a savepoint that is rolled
         * back (as rk_db_write does with a failing write), then commits */
        int undo = round == 1;
        exec_ok(db, undo ? "BEGIN IMMEDIATE; SAVEPOINT w" : "BEGIN IMMEDIATE");
        for (int i = 0; i < 1500; i++) {
            snprintf(key, sizeof key, "r%d.%08x", round, rand_r(&seed));
            body[0] = (char)('a' + round);
            sqlite3_bind_text(ins, 1, key, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(ins, 2, body, -1, SQLITE_STATIC);
            assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
            sqlite3_reset(ins);
        }
        exec_ok(db, undo ? "ROLLBACK TO w; RELEASE w; COMMIT" : "COMMIT");
        sqlite3_db_status(h, SQLITE_DBSTATUS_CACHE_USED, &cache_used[round], &highwater, 0);
    }
    /* the pages the savepoint added left the cache at the commit */
    assert_true(cache_used[1] < cache_used[0] + cache_used[0] / 4);
    sqlite3_finalize(ins);
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "ok");
    sqlite3_finalize(q);
    assert_int_equal(sqlite3_prepare_v2(h, "SELECT count(*), sum(substr(b, 1, 1) = 'b'), sum(k LIKE 'r1.%') FROM r",
                                        -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(q, 0), 3000); /* rounds 0 and 2 */
    assert_int_equal(sqlite3_column_int(q, 1), 0);    /* nothing of round 1 … */
    assert_int_equal(sqlite3_column_int(q, 2), 0);
    sqlite3_finalize(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(group_commit_commits_every_write, setup, teardown),
        cmocka_unit_test_setup_teardown(failing_write_is_rolled_back_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(writes_on_a_loop_are_committed_then_told, setup, teardown),
        cmocka_unit_test_setup_teardown(reads_do_not_wait_for_a_write, setup, teardown),
        cmocka_unit_test_setup_teardown(settle_keeps_the_first_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(leaves_are_deterministic_and_field_sensitive, setup, teardown),
        cmocka_unit_test_setup_teardown(list_pages_newest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(page_cache_drops_what_a_rollback_removed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
