/* store/sqlite/sqlite.c — the SQLite driver of the store (store/driver.h).
 *
 * WAL journal, synchronous=FULL: a commit that returned is on disk, so an
 * acknowledged write survives SIGKILL (DESIGN §6). secure_delete=ON:
 * deleted content is overwritten, free pages included (第8-5). 1 KiB pages
 * (random-key inserts write fewer bytes to the WAL), an enlarged cache on
 * the writer, a checkpoint every 8192 pages. The reader is query_only and,
 * in WAL mode, never waits for a commit in progress. Statement journals
 * (the savepoints' copies of pages) stay in memory (memsub.c).
 *
 * Threads: the store uses a connection from one thread at a time and holds
 * its mutex meanwhile (driver.h), so SQLite's own locks are not taken
 * again: a connection is opened NOMUTEX, and SQLite's global count of the
 * memory it allocated (a process-wide mutex on every allocation, read by
 * nothing here) is off. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/log.h"
#include "store/driver.h"
#include "store/sqlite/memsub.h"
#include "store/sqlite/pcache.h"

#define STMT_CACHE 64
#define BUSY_TIMEOUT_MS 5000

typedef struct sq_stmt {
    rk_stmt base;
    sqlite3_stmt *st;
} sq_stmt;

struct rk_db_conn {
    sqlite3 *db;
    struct {
        const char *sql;
        sq_stmt s;
    } cache[STMT_CACHE];
};

#define ST(x) (((sq_stmt *)(x))->st)

static const char *path_of(const char *target)
{
    return strncmp(target, "sqlite:", 7) == 0 ? target + 7 : target;
}

static int sq_accepts(const char *target)
{
    if (strncmp(target, "sqlite:", 7) == 0)
        return target[7] != '\0';
    return *target && !strstr(target, "://");
}

static rk_rc sq_exec(rk_db_conn *c, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        rk_error("store: %s", msg ? msg : sqlite3_errmsg(c->db));
        sqlite3_free(msg);
        return RK_ERR_STORE;
    }
    return RK_OK;
}

static void sq_close(rk_db_conn *c)
{
    if (!c)
        return;
    for (int i = 0; i < STMT_CACHE; i++)
        sqlite3_finalize(c->cache[i].s.st);
    sqlite3_close(c->db);
    free(c);
}

/* Before SQLite initialises (the first connection); refused after, which
 * is only slower. */
static void configure(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static rk_rc sq_open(const char *target, rk_conn_kind kind, int readonly, rk_db_conn **out)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, configure);
    rk_sqlite_pcache_install();
    const char *path = path_of(target);
    rk_db_conn *c = calloc(1, sizeof *c);
    if (!c)
        return RK_ERR_NOMEM;
    int flags = SQLITE_OPEN_NOMUTEX | (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE);
    if (kind == RK_CONN_WRITER && !readonly)
        flags |= SQLITE_OPEN_CREATE;
    if (sqlite3_open_v2(path, &c->db, flags, rk_sqlite_memsub_vfs()) != SQLITE_OK) {
        rk_error("store: cannot open %s: %s", path, c->db ? sqlite3_errmsg(c->db) : "no memory");
        sq_close(c);
        return RK_ERR_STORE;
    }
    sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
    rk_rc rc = RK_OK;
    if (kind == RK_CONN_WRITER && !readonly)
        rc = sq_exec(c, "PRAGMA page_size=1024; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                        "PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON; PRAGMA cache_size=-32768;"
                        "PRAGMA wal_autocheckpoint=8192; CREATE TABLE IF NOT EXISTS health_probe(x);");
    else
        rc = sq_exec(c, "PRAGMA query_only=1; PRAGMA cache_size=-8192;");
    if (rc != RK_OK) {
        sq_close(c);
        return rc;
    }
    *out = c;
    return RK_OK;
}

/* ---------- statements ---------- */

static void sq_bind_text(rk_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(ST(st), i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(ST(st), i);
}

static void sq_bind_int(rk_stmt *st, int i, int64_t v) { sqlite3_bind_int64(ST(st), i, (sqlite3_int64)v); }

static void sq_bind_blob(rk_stmt *st, int i, const void *p, size_t n)
{
    sqlite3_bind_blob64(ST(st), i, p, n, SQLITE_STATIC);
}

static void sq_bind_null(rk_stmt *st, int i) { sqlite3_bind_null(ST(st), i); }

static rk_rc step_error(sqlite3_stmt *st, int step)
{
    if ((step & 0xff) == SQLITE_CONSTRAINT)
        return RK_ERR_CONFLICT;
    rk_error("store: %s", sqlite3_errmsg(sqlite3_db_handle(st)));
    return RK_ERR_STORE;
}

static rk_rc sq_stmt_exec(rk_stmt *st)
{
    int step;
    while ((step = sqlite3_step(ST(st))) == SQLITE_ROW)
        ;
    rk_rc rc = step == SQLITE_DONE ? RK_OK : step_error(ST(st), step);
    sqlite3_reset(ST(st));
    return rc;
}

static rk_rc sq_next(rk_stmt *st)
{
    int step = sqlite3_step(ST(st));
    if (step == SQLITE_ROW)
        return RK_OK;
    if (step == SQLITE_DONE)
        return RK_ERR_NOT_FOUND;
    return step_error(ST(st), step);
}

static int64_t sq_col_int(rk_stmt *st, int col) { return sqlite3_column_int64(ST(st), col); }
static const char *sq_col_text(rk_stmt *st, int col) { return (const char *)sqlite3_column_text(ST(st), col); }
static int sq_col_is_null(rk_stmt *st, int col) { return sqlite3_column_type(ST(st), col) == SQLITE_NULL; }

static const void *sq_col_blob(rk_stmt *st, int col, size_t *len)
{
    const void *p = sqlite3_column_blob(ST(st), col);
    *len = (size_t)sqlite3_column_bytes(ST(st), col);
    return p;
}

static const rk_stmt_ops sq_stmt_ops = {
    .bind_text = sq_bind_text,
    .bind_int = sq_bind_int,
    .bind_blob = sq_bind_blob,
    .bind_null = sq_bind_null,
    .exec = sq_stmt_exec,
    .next = sq_next,
    .col_int = sq_col_int,
    .col_text = sq_col_text,
    .col_blob = sq_col_blob,
    .col_is_null = sq_col_is_null,
};

static rk_stmt *sq_prepare(rk_db_conn *c, const char *sql)
{
    int free_slot = -1;
    for (int i = 0; i < STMT_CACHE; i++) {
        if (c->cache[i].sql == sql) {
            sqlite3_stmt *st = c->cache[i].s.st;
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            return &c->cache[i].s.base;
        }
        if (!c->cache[i].sql && free_slot < 0)
            free_slot = i;
    }
    if (free_slot < 0) {
        rk_error("store: statement cache full (%d)", STMT_CACHE);
        return NULL;
    }
    sqlite3_stmt *st = NULL;
    char *expanded = strchr(sql, '{') ? rk_db_expand_tokens(&rk_sqlite_driver, sql) : NULL;
    int ok = sqlite3_prepare_v3(c->db, expanded ? expanded : sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    free(expanded);
    if (ok != SQLITE_OK) {
        rk_error("store: prepare failed: %s", sqlite3_errmsg(c->db));
        return NULL;
    }
    c->cache[free_slot].sql = sql;
    c->cache[free_slot].s = (sq_stmt){.base = {.ops = &sq_stmt_ops}, .st = st};
    return &c->cache[free_slot].s.base;
}

/* Resets every statement still holding a row, so that no read keeps an old
 * snapshot of the WAL (which would stop checkpoints) after its callback. */
static void sq_release(rk_db_conn *c)
{
    for (sqlite3_stmt *st = sqlite3_next_stmt(c->db, NULL); st; st = sqlite3_next_stmt(c->db, st))
        if (sqlite3_stmt_busy(st))
            sqlite3_reset(st);
}

static void sq_rollback(rk_db_conn *c)
{
    if (!sqlite3_get_autocommit(c->db))
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
}

static int64_t sq_changes(rk_db_conn *c) { return sqlite3_changes(c->db); }

static const char *sq_ddl_token(const char *token)
{
    if (strcmp(token, "{id}") == 0)
        return "INTEGER PRIMARY KEY AUTOINCREMENT";
    if (strcmp(token, "{blob}") == 0)
        return "BLOB";
    if (strcmp(token, "{without_rowid}") == 0)
        return " WITHOUT ROWID";
    if (strcmp(token, "{skip_locked}") == 0)
        return ""; /* one writer: nothing else claims meanwhile */
    return NULL;
}

/* Checkpoints and truncates the WAL, so the deleted pages are in neither
 * file (the store holds the reader meanwhile: no read keeps an old one). */
static rk_rc sq_purge(rk_db_conn *w)
{
    int log = -1, done = -1;
    if (sqlite3_wal_checkpoint_v2(w->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log, &done) != SQLITE_OK) {
        rk_error("store: the WAL could not be truncated: %s", sqlite3_errmsg(w->db));
        return RK_ERR_STORE;
    }
    return RK_OK;
}

/* Writable: the file is not marked read-only (an operator's chmod a-w,
 * which root's writes would otherwise ignore) and a write goes through: a
 * row into a table made at open, rolled back, so no schema change
 * invalidates other callers' prepared statements. */
static int sq_writable(rk_db_conn *w, const char *target)
{
    struct stat st;
    if (stat(path_of(target), &st) != 0 || !(st.st_mode & S_IWUSR))
        return 0;
    static const char begin[] = "BEGIN IMMEDIATE", probe[] = "INSERT INTO health_probe VALUES (1)";
    rk_stmt *b = sq_prepare(w, begin);
    int ok = b && sq_stmt_exec(b) == RK_OK;
    rk_stmt *p = ok ? sq_prepare(w, probe) : NULL;
    ok = ok && p && sq_stmt_exec(p) == RK_OK;
    sq_rollback(w);
    return ok;
}

const rk_db_driver rk_sqlite_driver = {
    .name = "sqlite",
    .accepts = sq_accepts,
    .open = sq_open,
    .close = sq_close,
    .exec = sq_exec,
    .stmt = sq_prepare,
    .release = sq_release,
    .changes = sq_changes,
    .ddl_token = sq_ddl_token,
    .begin_write = "BEGIN IMMEDIATE",
    .rollback = sq_rollback,
    .purge = sq_purge,
    .writable = sq_writable,
};
