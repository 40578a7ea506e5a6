/* Unit test of the SQLite driver's page cache (store/sqlite/pcache.c) and
 * of its VFS that keeps statement journals in memory (memsub.c): what the
 * interface of store/db.h cannot see — the cache's own accounting, where a
 * journal lives — so it speaks to SQLite directly, as the driver does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/sqlite/memsub.h"
#include "store/sqlite/pcache.h"

static char dir[64];

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/rk-test-store-sqlite-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    char path[128];
    snprintf(path, sizeof path, "%s/node.db", dir);
    assert_int_equal(rk_sqlite_pcache_install(), 1); /* before SQLite opens anything */
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
        return -1;
    *state = db;
    return 0;
}

static int teardown(void **state)
{
    sqlite3_close(*state);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
}

/* Random keys in a unique index make B-tree splits park pages under the
 * lock-byte page number (store/sqlite/pcache.c); the wrapped cache must still drop
 * every page a rolled-back savepoint added, or they come back stale when
 * the file grows again. */
static void page_cache_drops_what_a_rollback_removed(void **state)
{
    sqlite3 *db = *state;
    exec_ok(db, "PRAGMA page_size=1024; PRAGMA journal_mode=WAL");
    exec_ok(db, "CREATE TABLE r (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE, b TEXT NOT NULL)");
    sqlite3 *h = db;
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

static int count_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    int n = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    return n;
}

/* Savepoints rolled back through the in-memory statement journal, nested
 * as rk_db_write and rk_db_item nest them, below its bound and beyond it
 * (where it moves to a temporary file): every page comes back as it was. */
static void statement_journal_rolls_back_in_memory_and_spilled(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/journal.db", dir);
    assert_string_equal(rk_sqlite_memsub_vfs(), RK_SQLITE_VFS);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, RK_SQLITE_VFS), SQLITE_OK);
    exec_ok(db, "PRAGMA page_size=1024; PRAGMA journal_mode=WAL; PRAGMA secure_delete=ON;"
                "CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT NOT NULL);"
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 30000)"
                " INSERT INTO t SELECT hex(randomblob(16)), hex(randomblob(300)) FROM c;");
    int before = count_int(db, "SELECT sum(length(v) + unicode(v)) FROM t");
    /* a few pages (in memory), then every page (30 MB: spilled) */
    exec_ok(db, "BEGIN IMMEDIATE; SAVEPOINT w; SAVEPOINT item;"
                "UPDATE t SET v = 'x' WHERE rowid % 1000 = 0; ROLLBACK TO item; RELEASE item;"
                "SAVEPOINT item; UPDATE t SET v = 'y'; DELETE FROM t WHERE k < '8';"
                "ROLLBACK TO item; RELEASE item; RELEASE w; COMMIT");
    assert_int_equal(count_int(db, "SELECT count(*) FROM t"), 30000);
    assert_int_equal(count_int(db, "SELECT sum(length(v) + unicode(v)) FROM t"), before);
    /* kept changes stay, in the same transaction as a rolled-back item */
    exec_ok(db, "BEGIN IMMEDIATE; SAVEPOINT w; SAVEPOINT item; DELETE FROM t WHERE k < '8'; RELEASE item;"
                "SAVEPOINT item; UPDATE t SET v = 'z'; ROLLBACK TO item; RELEASE item; RELEASE w; COMMIT");
    assert_int_equal(count_int(db, "SELECT count(*) FROM t WHERE k < '8'"), 0);
    assert_int_equal(count_int(db, "SELECT count(*) FROM t WHERE v = 'z'"), 0);
    assert_true(count_int(db, "SELECT count(*) FROM t") > 10000);
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "ok");
    sqlite3_finalize(q);
    sqlite3_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(page_cache_drops_what_a_rollback_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(statement_journal_rolls_back_in_memory_and_spilled, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
