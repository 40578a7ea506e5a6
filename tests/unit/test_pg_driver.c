/* Unit tests of the PostgreSQL driver (store/postgres/postgres.c) on a real
 * throwaway server (pg_fixture.h), for what the engine-independent tests
 * (test_store.c, also run on PostgreSQL as unit/test_store_pg) do not show:
 * an unreachable database at open, the server restarted under an open
 * store (calls fail RK_ERR_UNAVAILABLE, then succeed again by themselves; a
 * transaction cut by the loss is never finished in autocommit; a server
 * that does not answer is not waited for by every call), a server turned
 * read-only (a primary demoted) is unavailable too and the writer takes a
 * new session, `?` numbering, bytea and
 * 64-bit values, a statement run while another's rows are being read,
 * rows changed, a failed statement spoiling the rest of its write (held
 * savepoints included), and purge's VACUUM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pg_fixture.h"
#include "store/db.h"

static char uri[160];

static const char *const steps[] = {
    "CREATE TABLE t (k BIGINT PRIMARY KEY, v TEXT NOT NULL);"
    "CREATE TABLE b (id {id}, data {blob}, n BIGINT){without_rowid};"
    "CREATE TABLE u (k BIGINT PRIMARY KEY, v TEXT NOT NULL);",
};

static int start_server(void **state)
{
    (void)state;
    return pg_fixture_start();
}

static int end_server(void **state)
{
    (void)state;
    pg_fixture_end();
    return 0;
}

static int setup(void **state)
{
    rk_db *db = NULL;
    if (pg_fixture_restart() != 0 || pg_fixture_new_db(uri, sizeof uri) != 0 || rk_db_open(uri, 0, &db) != RK_OK ||
        rk_db_migrate(db, "t", steps, 1) != RK_OK)
        return -1;
    *state = db;
    return 0;
}

static int teardown(void **state)
{
    rk_db_close(*state);
    return pg_fixture_restart(); /* a failed test may have left it stopped */
}

static rk_rc insert_k(rk_db *db, void *arg)
{
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO t(k, v) VALUES (?, 'x')");
    rk_bind_int(st, 1, (int64_t)(intptr_t)arg);
    return rk_stmt_exec(st);
}

static rk_rc count_fn(rk_db *db, void *arg)
{
    rk_stmt *q = rk_db_stmt(db, "SELECT COUNT(*) FROM t");
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK)
        *(long *)arg = (long)rk_col_int(q, 0);
    return rc;
}

static long count_rows(rk_db *db)
{
    long n = -1;
    return rk_db_read(db, count_fn, &n) == RK_OK ? n : -1;
}

static long count_scan(rk_db *db)
{
    long n = -1;
    return rk_db_scan(db, count_fn, &n) == RK_OK ? n : -1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---------- opening ---------- */

static void an_unreachable_database_is_one_clear_line(void **state)
{
    (void)state;
    /* nothing listens there once the server is stopped */
    char dead[200], log[64] = "/tmp/rk-test-pg-driver-XXXXXX";
    int fd = mkstemp(log);
    assert_true(fd >= 0);
    snprintf(dead, sizeof dead, "postgresql://renkei:secret@127.0.0.1:%d/nodb?sslmode=disable", pg_fixture_port());
    assert_int_equal(pg_fixture_stop(), 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    rk_db *db = NULL;
    double t0 = now_s();
    rk_rc rc = rk_db_open(dead, 0, &db);
    double took = now_s() - t0;
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char text[2048] = "";
    ssize_t got = pread(fd, text, sizeof text - 1, 0);
    close(fd);
    unlink(log);
    text[got > 0 ? got : 0] = '\0';
    fprintf(stderr, "%s", text);
    assert_int_equal(rc, RK_ERR_UNAVAILABLE);
    assert_null(db);
    assert_true(took < 5.0);
    int lines = 0;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 1);
    assert_non_null(strstr(text, "store: cannot connect to postgresql://renkei:***@127.0.0.1:"));
    assert_non_null(strstr(text, "/nodb: "));
    assert_null(strstr(text, "secret")); /* the password is never logged */
    assert_int_equal(pg_fixture_restart(), 0);
    /* an unknown scheme is no driver's */
    assert_int_equal(rk_db_open("mysql://127.0.0.1/x", 0, &db), RK_ERR_CONFIG);
}

/* ---------- the server restarted under an open store ---------- */

static void a_restart_fails_calls_then_they_succeed_again(void **state)
{
    rk_db *db = *state;
    assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)1), RK_OK);
    assert_int_equal(count_rows(db), 1);
    assert_int_equal(count_scan(db), 1);
    assert_true(rk_db_writable(db));
    assert_false(rk_db_lost(db));

    assert_int_equal(pg_fixture_stop(), 0);
    assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)2), RK_ERR_UNAVAILABLE);
    assert_true(rk_db_lost(db));
    long n = 0;
    assert_int_equal(rk_db_read(db, count_fn, &n), RK_ERR_UNAVAILABLE);
    assert_int_equal(rk_db_scan(db, count_fn, &n), RK_ERR_UNAVAILABLE);
    assert_false(rk_db_writable(db));
    assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)2), RK_ERR_UNAVAILABLE); /* still down */
    assert_true(rk_db_lost(db));

    assert_int_equal(pg_fixture_restart(), 0);
    assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)2), RK_OK); /* connected again by itself */
    assert_int_equal(count_rows(db), 2);
    assert_int_equal(count_scan(db), 2);
    assert_true(rk_db_writable(db));

    /* a restart the store does not see coming: the first call meets it and
     * fails, the next ones succeed */
    assert_int_equal(pg_fixture_stop(), 0);
    assert_int_equal(pg_fixture_restart(), 0);
    assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)3), RK_ERR_UNAVAILABLE);
    assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)3), RK_OK);
    n = count_scan(db);
    if (n < 0) /* the reader met it only now */
        n = count_scan(db);
    assert_int_equal(n, 3);
    assert_int_equal(count_rows(db), 3);
}

/* A server that does not answer (a listener that never accepts, as a dead
 * machine's address would): one attempt waits for connect_timeout, and the
 * calls within the next second fail at once instead of waiting too. */
static void an_unanswering_server_is_not_waited_for_by_every_call(void **state)
{
    rk_db_close(*state);
    *state = NULL;
    char slow[200];
    snprintf(slow, sizeof slow, "%s?connect_timeout=2", uri);
    rk_db *db = NULL;
    assert_int_equal(rk_db_open(slow, 0, &db), RK_OK);
    *state = db;
    assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)1), RK_OK);
    assert_int_equal(pg_fixture_stop(), 0);
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)pg_fixture_port()),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s, 16), 0); /* never accepted: connections wait for the server's first word */
    assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)2), RK_ERR_UNAVAILABLE); /* meets the loss */
    double t0 = now_s();
    assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)2), RK_ERR_UNAVAILABLE);
    double waited = now_s() - t0;
    t0 = now_s();
    assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)2), RK_ERR_UNAVAILABLE);
    double at_once = now_s() - t0;
    close(s);
    assert_true(waited > 1.5);
    assert_true(at_once < 0.5);
    assert_int_equal(pg_fixture_restart(), 0);
    sleep(1);
    assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)2), RK_OK);
    assert_int_equal(count_rows(db), 2);
}

/* A write whose connection is lost after its first insert: the server is
 * back before its next statements, which must not run outside the lost
 * transaction — the write fails as a whole. */
typedef struct cut_write {
    rk_rc first, second, third;
} cut_write;

static rk_rc write_cut_in_the_middle(rk_db *db, void *arg)
{
    cut_write *c = arg;
    c->first = insert_k(db, (void *)(intptr_t)10);
    if (pg_fixture_stop() != 0 || pg_fixture_restart() != 0)
        return RK_ERR_IO;
    c->second = insert_k(db, (void *)(intptr_t)11);
    c->third = insert_k(db, (void *)(intptr_t)12);
    return RK_OK; /* as a careless caller would */
}

static void a_transaction_cut_by_a_restart_is_not_finished_in_autocommit(void **state)
{
    rk_db *db = *state;
    cut_write c = {RK_ERR_IO, RK_ERR_IO, RK_ERR_IO};
    assert_int_equal(rk_db_write(db, write_cut_in_the_middle, &c), RK_ERR_UNAVAILABLE);
    assert_int_equal(c.first, RK_OK);
    assert_int_equal(c.second, RK_ERR_UNAVAILABLE);
    assert_int_equal(c.third, RK_ERR_UNAVAILABLE);
    long n = count_rows(db);
    if (n < 0)
        n = count_rows(db);
    assert_int_equal(n, 0); /* none of the three */
    assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)11), RK_OK);
    assert_int_equal(count_rows(db), 1);
}

/* A server turned read-only, as a primary demoted by a failover is: writes
 * are RK_ERR_UNAVAILABLE (SQLSTATE 25006), not store errors, reads go on,
 * and the writer takes a new session (one naming every data node with
 * target_session_attrs=read-write would find the new primary there); once
 * the server takes writes again, so does the store, by itself. */
static rk_rc run_sql(rk_db *db, void *arg)
{
    /* this session writes whatever the server's default (its own setting first) */
    const char *const sql[] = {"SET default_transaction_read_only = off", arg, "SELECT pg_reload_conf()"};
    for (size_t i = 0; i < 3; i++) {
        rk_rc rc = rk_stmt_next(rk_db_stmt(db, sql[i]));
        if (rc != RK_OK && rc != RK_ERR_NOT_FOUND)
            return rc;
    }
    return RK_OK;
}

static void set_read_only(int on)
{
    rk_db *admin = NULL;
    assert_int_equal(rk_db_open(uri, RK_DB_READONLY, &admin), RK_OK); /* no table made at open */
    assert_int_equal(rk_db_read(admin, run_sql,
                                on ? (void *)"ALTER SYSTEM SET default_transaction_read_only = on"
                                   : (void *)"ALTER SYSTEM RESET default_transaction_read_only"),
                     RK_OK);
    rk_db_close(admin);
    usleep(300 * 1000); /* the sessions take the reloaded setting */
}

static void a_read_only_server_is_unavailable_and_the_writer_reconnects(void **state)
{
    rk_db *db = *state;
    assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)1), RK_OK);
    set_read_only(1);
    assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)2), RK_ERR_UNAVAILABLE);
    assert_true(rk_db_lost(db));
    assert_false(rk_db_writable(db));
    assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)2), RK_ERR_UNAVAILABLE); /* a new session: still */
    assert_int_equal(count_scan(db), 1); /* reads go on */
    set_read_only(0);
    assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)2), RK_OK);
    assert_true(rk_db_writable(db));
    assert_true(rk_db_lost(db)); /* for a moment after the last absence … */
    usleep(2100 * 1000);
    assert_false(rk_db_lost(db)); /* … then no longer */
    assert_int_equal(count_rows(db), 2);
}

/* ---------- statements ---------- */

typedef struct values_args {
    char text[64];
    char literal[8];
    int64_t big, small;
    unsigned char blob[300];
    size_t blob_len;
    int blob_null, changes_after_select;
    int64_t id1, id2, id3, changes;
} values_args;

static rk_rc values_fn(rk_db *db, void *arg)
{
    values_args *a = arg;
    /* a `?` inside a literal, a quoted name or a comment is not a parameter */
    rk_stmt *q = rk_db_stmt(db, "SELECT '?' AS \"a?\", ? /* ? */, CAST(? AS BIGINT), CAST(? AS BIGINT) -- ?\n");
    rk_bind_text(q, 1, "caf\xc3\xa9 'quoted'");
    rk_bind_int(q, 2, INT64_MAX);
    rk_bind_int(q, 3, INT64_MIN);
    rk_rc rc = rk_stmt_next(q);
    if (rc != RK_OK)
        return rc;
    rk_col_copy(q, 0, a->literal, sizeof a->literal);
    rk_col_copy(q, 1, a->text, sizeof a->text);
    a->big = rk_col_int(q, 2);
    a->small = rk_col_int(q, 3);
    if ((rc = rk_stmt_next(q)) != RK_ERR_NOT_FOUND)
        return RK_ERR_STORE;
    /* bytea: every byte value, NUL included; generated ids by RETURNING */
    unsigned char bytes[256];
    for (int i = 0; i < 256; i++)
        bytes[i] = (unsigned char)(255 - i);
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO b(data, n) VALUES (?, ?) RETURNING id");
    rk_bind_blob(st, 1, bytes, sizeof bytes);
    rk_bind_int(st, 2, 1);
    if ((rc = rk_stmt_next(st)) != RK_OK)
        return rc;
    a->id1 = rk_col_int(st, 0);
    st = rk_db_stmt(db, "INSERT INTO b(data, n) VALUES (?, ?) RETURNING id");
    rk_bind_null(st, 1);
    rk_bind_int(st, 2, 2);
    if ((rc = rk_stmt_next(st)) != RK_OK)
        return rc;
    a->id2 = rk_col_int(st, 0);
    /* BY DEFAULT: a caller may give the id itself */
    st = rk_db_stmt(db, "INSERT INTO b(id, data, n) VALUES (?, ?, 3) RETURNING id");
    rk_bind_int(st, 1, 1000);
    rk_bind_blob(st, 2, "", 0);
    if ((rc = rk_stmt_next(st)) != RK_OK)
        return rc;
    a->id3 = rk_col_int(st, 0);
    q = rk_db_stmt(db, "SELECT data FROM b WHERE n = ?");
    rk_bind_int(q, 1, 1);
    if ((rc = rk_stmt_next(q)) != RK_OK)
        return rc;
    const void *p = rk_col_blob(q, 0, &a->blob_len);
    if (p && a->blob_len <= sizeof a->blob)
        memcpy(a->blob, p, a->blob_len);
    q = rk_db_stmt(db, "SELECT data FROM b WHERE n = ?");
    rk_bind_int(q, 1, 2);
    if ((rc = rk_stmt_next(q)) != RK_OK)
        return rc;
    size_t len = 99;
    a->blob_null = rk_col_is_null(q, 0) && rk_col_blob(q, 0, &len) == NULL && len == 0;
    /* rows changed: by the last INSERT, UPDATE or DELETE, not by a SELECT */
    st = rk_db_stmt(db, "UPDATE b SET n = n + 10 WHERE n < ?");
    rk_bind_int(st, 1, 3);
    if ((rc = rk_stmt_exec(st)) != RK_OK)
        return rc;
    a->changes = rk_db_changes(db);
    q = rk_db_stmt(db, "SELECT COUNT(*) FROM b");
    if ((rc = rk_stmt_next(q)) != RK_OK)
        return rc;
    a->changes_after_select = (int)rk_db_changes(db);
    return RK_OK;
}

static void values_go_and_come_back_as_they_are(void **state)
{
    rk_db *db = *state;
    values_args a = {0};
    assert_int_equal(rk_db_write(db, values_fn, &a), RK_OK);
    assert_string_equal(a.literal, "?");
    assert_string_equal(a.text, "caf\xc3\xa9 'quoted'");
    assert_true(a.big == INT64_MAX);
    assert_true(a.small == INT64_MIN);
    assert_int_equal(a.id1, 1);
    assert_int_equal(a.id2, 2);
    assert_int_equal(a.id3, 1000);
    assert_int_equal(a.blob_len, 256);
    for (int i = 0; i < 256; i++)
        assert_int_equal(a.blob[i], 255 - i);
    assert_true(a.blob_null);
    assert_int_equal(a.changes, 2);
    assert_int_equal(a.changes_after_select, 2);
}

/* Constraint violations are conflicts; other errors are store errors, and
 * a statement that cannot be prepared steps to RK_ERR_STORE. */
typedef struct errors_args {
    rk_rc dup, not_null, bad_sql, bad_type;
} errors_args;

static rk_rc dup_fn(rk_db *db, void *arg)
{
    ((errors_args *)arg)->dup = insert_k(db, (void *)(intptr_t)1);
    return ((errors_args *)arg)->dup;
}

static rk_rc not_null_fn(rk_db *db, void *arg)
{
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO t(k, v) VALUES (?, ?)");
    rk_bind_int(st, 1, 5);
    rk_bind_null(st, 2);
    return ((errors_args *)arg)->not_null = rk_stmt_exec(st);
}

static rk_rc bad_sql_fn(rk_db *db, void *arg)
{
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO nowhere VALUES (?)");
    rk_bind_int(st, 1, 1);
    return ((errors_args *)arg)->bad_sql = rk_stmt_exec(st);
}

static rk_rc bad_type_fn(rk_db *db, void *arg)
{
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO t(k, v) VALUES (?, 'x')");
    rk_bind_text(st, 1, "not a number");
    return ((errors_args *)arg)->bad_type = rk_stmt_exec(st);
}

static void errors_are_told_apart(void **state)
{
    rk_db *db = *state;
    errors_args e;
    assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)1), RK_OK);
    assert_int_equal(rk_db_write(db, dup_fn, &e), RK_ERR_CONFLICT);
    assert_int_equal(rk_db_write(db, not_null_fn, &e), RK_ERR_CONFLICT);
    assert_int_equal(rk_db_write(db, bad_sql_fn, &e), RK_ERR_STORE);
    assert_int_equal(rk_db_write(db, bad_type_fn, &e), RK_ERR_STORE);
    assert_false(rk_db_lost(db)); /* a bad statement is not the database's absence */
    assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)2), RK_OK); /* the writer goes on */
    assert_int_equal(count_rows(db), 2);
}

/* Another statement while the rows of a first are being read: the first's
 * rest is buffered and still handed out, in a write and in a scan. */
typedef struct nested_args {
    long seen, sum;
    rk_rc rc;
} nested_args;

static rk_rc nested_fn(rk_db *db, void *arg)
{
    nested_args *a = arg;
    rk_stmt *outer = rk_db_stmt(db, "SELECT k FROM t ORDER BY k");
    rk_rc rc;
    while ((rc = rk_stmt_next(outer)) == RK_OK) {
        int64_t k = rk_col_int(outer, 0);
        rk_stmt *inner = rk_db_stmt(db, "SELECT k * 10 FROM t WHERE k = ?");
        rk_bind_int(inner, 1, k);
        if (rk_stmt_next(inner) != RK_OK)
            return RK_ERR_STORE;
        a->sum += (long)rk_col_int(inner, 0);
        a->seen++;
    }
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

static void a_statement_while_another_reads_rows(void **state)
{
    rk_db *db = *state;
    for (int k = 1; k <= 50; k++)
        assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)k), RK_OK);
    nested_args a = {0};
    assert_int_equal(rk_db_write(db, nested_fn, &a), RK_OK);
    assert_int_equal(a.seen, 50);
    assert_int_equal(a.sum, 10 * 50 * 51 / 2);
    a = (nested_args){0};
    assert_int_equal(rk_db_scan(db, nested_fn, &a), RK_OK);
    assert_int_equal(a.seen, 50);
    assert_int_equal(a.sum, 10 * 50 * 51 / 2);
}

/* A statement that fails inside a write spoils the rest of that write on
 * PostgreSQL (db.h), an item's savepoint included: it is held and sent with
 * the item's first statement, and fails with it. Nothing of the write is
 * committed; the next write goes through. */
typedef struct spoiled {
    rk_rc dup, item;
} spoiled;

static rk_rc insert_3(rk_db *db, void *arg)
{
    (void)arg;
    return insert_k(db, (void *)(intptr_t)3);
}

static rk_rc spoil_then_item(rk_db *db, void *arg)
{
    spoiled *x = arg;
    x->dup = insert_k(db, (void *)(intptr_t)1); /* a conflict, outside any item */
    x->item = rk_db_item(db, insert_3, NULL);
    return RK_OK; /* as a careless caller would */
}

static void a_failed_statement_spoils_the_rest_of_its_write(void **state)
{
    rk_db *db = *state;
    assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)1), RK_OK);
    spoiled x = {RK_OK, RK_OK};
    assert_int_equal(rk_db_write(db, spoil_then_item, &x), RK_ERR_STORE);
    assert_int_equal(x.dup, RK_ERR_CONFLICT);
    assert_int_equal(x.item, RK_ERR_STORE);
    assert_int_equal(count_rows(db), 1);
    assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)3), RK_OK);
    assert_int_equal(count_rows(db), 2);
}

/* ---------- purge ---------- */

typedef struct vacuums {
    int64_t t, u;
} vacuums;

static rk_rc vacuum_counts(rk_db *db, void *arg)
{
    vacuums *v = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT relname, vacuum_count FROM pg_stat_user_tables WHERE relname IN ('t', 'u')");
    rk_rc rc;
    while ((rc = rk_stmt_next(q)) == RK_OK)
        *(strcmp(rk_col_text(q, 0), "t") == 0 ? &v->t : &v->u) = rk_col_int(q, 1);
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

static rk_rc delete_some(rk_db *db, void *arg)
{
    (void)arg;
    return rk_stmt_exec(rk_db_stmt(db, "DELETE FROM t WHERE k > 1"));
}

static void purge_vacuums_the_tables_changed(void **state)
{
    rk_db *db = *state;
    vacuums v0 = {-1, -1}, v1 = {-1, -1}, v2 = {-1, -1};
    assert_int_equal(rk_db_scan(db, vacuum_counts, &v0), RK_OK);
    assert_int_equal(rk_db_purge(db), RK_OK); /* nothing deleted: nothing to do */
    for (int k = 1; k <= 3; k++)
        assert_int_equal(rk_db_write(db, insert_k, (void *)(intptr_t)k), RK_OK);
    assert_int_equal(rk_db_write(db, delete_some, NULL), RK_OK);
    assert_int_equal(rk_db_purge(db), RK_OK);
    assert_int_equal(rk_db_scan(db, vacuum_counts, &v1), RK_OK);
    assert_int_equal(v1.t, v0.t + 1); /* the table a row was deleted from */
    assert_int_equal(v1.u, v0.u);     /* not the others */
    assert_int_equal(rk_db_purge(db), RK_OK); /* nothing since */
    assert_int_equal(rk_db_scan(db, vacuum_counts, &v2), RK_OK);
    assert_int_equal(v2.t, v1.t);
    assert_int_equal(count_rows(db), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(an_unreachable_database_is_one_clear_line, setup, teardown),
        cmocka_unit_test_setup_teardown(a_restart_fails_calls_then_they_succeed_again, setup, teardown),
        cmocka_unit_test_setup_teardown(a_transaction_cut_by_a_restart_is_not_finished_in_autocommit, setup, teardown),
        cmocka_unit_test_setup_teardown(an_unanswering_server_is_not_waited_for_by_every_call, setup, teardown),
        cmocka_unit_test_setup_teardown(a_read_only_server_is_unavailable_and_the_writer_reconnects, setup, teardown),
        cmocka_unit_test_setup_teardown(values_go_and_come_back_as_they_are, setup, teardown),
        cmocka_unit_test_setup_teardown(errors_are_told_apart, setup, teardown),
        cmocka_unit_test_setup_teardown(a_statement_while_another_reads_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(a_failed_statement_spoils_the_rest_of_its_write, setup, teardown),
        cmocka_unit_test_setup_teardown(purge_vacuums_the_tables_changed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, start_server, end_server);
}
