/* store/postgres/postgres.c — the PostgreSQL driver of the store
 * (store/driver.h), over libpq. No PQ* call is made anywhere else.
 *
 * Connections: the writer runs the store's transactions (one at a time:
 * the store serialises writers through it); the reader runs in autocommit
 * with default_transaction_read_only, so every statement takes a fresh
 * snapshot, is never blocked by the writer (MVCC) and cannot write. Both
 * keep synchronous_commit on: a COMMIT that returned is flushed (and, with
 * a synchronous standby, on it), so an acknowledged write survives the
 * loss of the node (DESIGN §6).
 *
 * Statements: the `?` of the portable SQL become `$1`, `$2` … once, when
 * the statement is prepared (a server-side prepared statement, cached per
 * connection by the address of the SQL literal, as the SQLite driver
 * does). Parameters go untyped (the server infers each from its context):
 * integers and text in text format, blobs in binary format (bytea). Results
 * come in text format: integers are parsed, bytea is unescaped on demand.
 *
 * Rows are read one by one with PQsendQueryPrepared + PQsetSingleRowMode
 * rather than through a cursor: one round trip per statement, no
 * transaction needed around a read (a cursor needs one, and a FETCH per
 * chunk), and a long scan never holds its rows in memory. The price: the
 * connection is busy until the statement's results are read, so when a
 * callback runs another statement on the same connection meanwhile, the
 * rest of the first one's rows are read into memory first (buffered) and
 * handed out from there.
 *
 * Round trips: the writer's transaction control without rows or
 * parameters (BEGIN, SAVEPOINT, RELEASE: the store's group commit and
 * rk_db_item send them around every write and item) is not sent on its own.
 * It is held and sent with the next statement, in one pipeline (libpq's
 * pipeline mode) with one round trip: a write of two inserts costs two round
 * trips and its commit one, not six. A held command that fails makes that
 * next statement fail (logged), as the transaction it belongs to does.
 *
 * Connection loss: the statement that meets it answers RK_ERR_UNAVAILABLE;
 * the next statement reconnects (PQreset) and prepares again what it needs
 * — but never inside a transaction that the loss cut short: until the store
 * ends it (COMMIT fails, rollback()), every statement answers
 * RK_ERR_UNAVAILABLE, so no half of a transaction is run again in
 * autocommit. The server's absence is told apart from every other failure
 * (unavailable_state): the connection lost, SQLSTATE class 08, 57P01..57P03
 * (shut down, crashed, starting), and 25006 on the writer, a read-only
 * server — a primary demoted by a failover; the writer then reconnects,
 * and a URI naming every data node with target_session_attrs=read-write
 * finds the new primary (DESIGN §6). The store answers RK_ERR_UNAVAILABLE
 * for these, so that nodes answer 503 store_unavailable, never success.
 *
 * The database itself (and its role) is made by whoever runs the server
 * (`renkei net init`, an operator): a writer does not create it. */
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/log.h"
#include "lib/util.h"
#include "store/driver.h"

#define STMT_CACHE 128
#define HELD_MAX 16      /* transaction control held for the next statement (see above) */
#define DIRTY_MAX 32     /* tables a purge vacuums; more: the whole database */
#define RETRY_SLOW_MS 1000 /* see ensure_connected */
#define BOOLOID 16
#define BYTEAOID 17

typedef struct pg_stmt pg_stmt;

/* A bytea column unescaped for rk_col_blob; freed at the next step. */
typedef struct blob_buf {
    unsigned char *p;
    struct blob_buf *next;
} blob_buf;

struct pg_stmt {
    rk_stmt base;
    rk_db_conn *c;
    char name[16];
    char *text;          /* the SQL with $n (owned) */
    char *touches;       /* the table a DELETE or UPDATE changes, for purge (owned), or NULL */
    unsigned gen;        /* the connection's generation it was prepared in (0: not prepared) */
    int holdable;        /* 1: BEGIN, SAVEPOINT or RELEASE: sent with the next statement; 2: BEGIN */
    int nparams;
    const char **values; /* one allocation for the four arrays below */
    int *lengths, *formats;
    char (*nums)[24];    /* integers, in text */
    /* a run: sent, its results read from the connection or from `queue` */
    int running;
    int drained;         /* every result of the run is in `queue` */
    PGresult **queue;
    size_t q_head, q_len, q_cap;
    PGresult *row;       /* the current row's result (one row in single-row mode, else several) */
    int row_i;           /* the current row in it */
    rk_rc end_rc;        /* what the run ended with: RK_ERR_NOT_FOUND, or an error */
    blob_buf *blobs;
};

struct rk_db_conn {
    PGconn *pg;
    rk_conn_kind kind;
    int readonly;
    unsigned gen;      /* +1 at each (re)connection: prepared statements are per session */
    unsigned next_name;
    int in_tx;         /* a transaction was open when last seen */
    int down_logged;   /* the database's absence was logged (once per outage) */
    int lost;          /* the last command failed for the database's absence (pg_lost) */
    int reset_wanted;  /* the writer met a read-only server: a new session before the next command */
    int64_t retry_ms;  /* no reconnection before (monotonic ms): the last one waited long to fail */
    pg_stmt *active;   /* the statement whose results the connection is sending */
    int pipelined;     /* active's results are in a pipeline, after the held commands' */
    pg_stmt *held[HELD_MAX];
    int n_held;
    int64_t changes;
    char *dirty[DIRTY_MAX]; /* writer: tables with deleted or updated rows since the last purge */
    int n_dirty, dirty_all;
    struct {
        const char *sql;
        pg_stmt *s;
    } cache[STMT_CACHE];
};

#define PG(st) ((pg_stmt *)(st))

static int pg_accepts(const char *target)
{
    return strncmp(target, "postgresql://", 13) == 0 || strncmp(target, "postgres://", 11) == 0;
}

/* libpq's messages end with a newline and may hold several lines: one line
 * for the log. */
static const char *one_line(const char *msg, char *buf, size_t size)
{
    snprintf(buf, size, "%s", msg && *msg ? msg : "unknown error");
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    return buf;
}

/* The target for a message: scheme, user, host and database, without a
 * password or the query string. */
static void redact(const char *target, char *buf, size_t size)
{
    const char *rest = strstr(target, "://");
    rest = rest ? rest + 3 : target;
    size_t scheme = (size_t)(rest - target);
    size_t end = strcspn(rest, "?");
    const char *at = memchr(rest, '@', strcspn(rest, "/?"));
    const char *colon = at ? memchr(rest, ':', (size_t)(at - rest)) : NULL;
    int n;
    if (colon) /* user:password@ */
        n = snprintf(buf, size, "%.*s%.*s:***%.*s", (int)scheme, target, (int)(colon - rest), rest,
                     (int)(end - (size_t)(at - rest)), at);
    else
        n = snprintf(buf, size, "%.*s%.*s", (int)scheme, target, (int)end, rest);
    /* a unix socket's folder and port are parameters: those two are told too */
    const char *query = rest[end] == '?' ? rest + end : NULL;
    for (const char *key = "host=", *k = key; query && n >= 0 && (size_t)n < size; k = "port=") {
        const char *v = strstr(query, k);
        if (v && (v[-1] == '?' || v[-1] == '&')) {
            int m = snprintf(buf + n, size - (size_t)n, "%c%.*s", strchr(buf, '?') ? '&' : '?',
                             (int)strcspn(v, "&"), v);
            n = m < 0 ? -1 : n + m;
        }
        if (k != key)
            break;
    }
}

/* Notices (CREATE … IF NOT EXISTS that skips) are not news; warnings are. */
static void on_notice(void *arg, const PGresult *res)
{
    (void)arg;
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (severity && strcmp(severity, "WARNING") == 0) {
        char line[512];
        rk_warn("store: %s", one_line(PQresultErrorMessage(res), line, sizeof line));
    }
}

/* ---------- results ---------- */

/* A failure that is the database's absence rather than the statement's:
 * no SQLSTATE (libpq's own failure: the server sends one with every error;
 * a server that shuts down under a unix socket's session can leave it
 * CONNECTION_OK until the next read); class 08 (connection exception);
 * 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now;
 * 25006 read_only_sql_transaction (the writer on a standby: a failover). */
static int unavailable_state(const char *state)
{
    if (!state)
        return 1;
    return strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 || strcmp(state, "57P02") == 0 ||
           strcmp(state, "57P03") == 0 || strcmp(state, "25006") == 0;
}

/* The database is absent: said once per outage. */
static rk_rc mark_lost(rk_db_conn *c, const char *msg, const char *state)
{
    c->lost = 1;
    if (!c->down_logged) {
        char line[512];
        rk_error("store: the database is unavailable: %s%s%s%s", one_line(msg, line, sizeof line),
                 state ? " (" : "", state ? state : "", state ? ")" : "");
        c->down_logged = 1;
    }
    return RK_ERR_UNAVAILABLE;
}

/* A command went through: the database is there. */
static void mark_ok(rk_db_conn *c)
{
    c->lost = 0;
}

/* How a statement ends whose pipeline was aborted by an earlier failure. */
static rk_rc aborted(const rk_db_conn *c)
{
    return c->lost ? RK_ERR_UNAVAILABLE : RK_ERR_STORE;
}

static rk_rc error_of(rk_db_conn *c, const PGresult *r)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (state && strncmp(state, "23", 2) == 0) /* integrity_constraint_violation */
        return RK_ERR_CONFLICT;
    if (unavailable_state(state)) {
        if (state && strcmp(state, "25006") == 0 && c->kind == RK_CONN_WRITER)
            c->reset_wanted = 1; /* the primary is elsewhere now */
        if (!state)
            c->reset_wanted = 1; /* the session is not to be trusted: a new one */
        const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        if (!msg || !*msg) /* libpq's own: the connection's message */
            msg = PQerrorMessage(c->pg);
        return mark_lost(c, msg, state);
    }
    char line[512];
    if (!r) {
        rk_error("store: %s", one_line(PQerrorMessage(c->pg), line, sizeof line));
        return RK_ERR_STORE;
    }
    /* Only the primary message, never DETAIL (it can quote a row's values),
     * and for a data exception (class 22) not even that: "invalid input
     * syntax …" quotes the value, which may be a My Number or a payload. */
    const char *table = PQresultErrorField(r, PG_DIAG_TABLE_NAME);
    if (state && strncmp(state, "22", 2) == 0)
        rk_error("store: data exception %s%s%s", state, table ? " on table " : "", table ? table : "");
    else
        rk_error("store: %s%s%s (%s)", one_line(PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY), line, sizeof line),
                 table ? " on table " : "", table ? table : "", state ? state : "no SQLSTATE");
    return RK_ERR_STORE;
}

/* After a command completed: what it changed and whether a transaction is
 * open (unknown once the connection is lost: the last state is kept). */
static void completed(rk_db_conn *c, const PGresult *r)
{
    mark_ok(c);
    const char *cmd = PQcmdStatus((PGresult *)r);
    if (strncmp(cmd, "INSERT ", 7) == 0 || strncmp(cmd, "UPDATE ", 7) == 0 || strncmp(cmd, "DELETE ", 7) == 0 ||
        strncmp(cmd, "MERGE ", 6) == 0)
        c->changes = strtoll(PQcmdTuples((PGresult *)r), NULL, 10);
}

static void note_tx(rk_db_conn *c)
{
    PGTransactionStatusType t = PQtransactionStatus(c->pg);
    if (t == PQTRANS_IDLE)
        c->in_tx = 0;
    else if (t == PQTRANS_INTRANS || t == PQTRANS_INERROR)
        c->in_tx = 1;
}

static void free_blobs(pg_stmt *s)
{
    while (s->blobs) {
        blob_buf *b = s->blobs;
        s->blobs = b->next;
        PQfreemem(b->p);
        free(b);
    }
}

static void drop_row(pg_stmt *s)
{
    PQclear(s->row);
    s->row = NULL;
    s->row_i = 0;
    free_blobs(s);
}

/* After the last result of a pipelined statement: its sync, and the
 * connection out of pipeline mode (a lost connection is out already). */
static void end_pipeline(rk_db_conn *c)
{
    if (!c->pipelined)
        return;
    PGresult *r;
    while ((r = PQgetResult(c->pg)) != NULL) {
        ExecStatusType t = PQresultStatus(r);
        PQclear(r);
        if (t == PGRES_PIPELINE_SYNC)
            break;
    }
    PQexitPipelineMode(c->pg);
    c->pipelined = 0;
}

static int queue_push(pg_stmt *s, PGresult *r)
{
    if (s->q_len == s->q_cap) {
        size_t cap = s->q_cap ? s->q_cap * 2 : 16;
        PGresult **q = realloc(s->queue, cap * sizeof *q);
        if (!q)
            return -1;
        s->queue = q;
        s->q_cap = cap;
    }
    s->queue[s->q_len++] = r;
    return 0;
}

/* The next result of s's run, from the queue or the connection; NULL at
 * its end. */
static PGresult *next_result(pg_stmt *s)
{
    if (s->q_head < s->q_len)
        return s->queue[s->q_head++];
    s->q_head = s->q_len = 0;
    if (s->drained || s->c->active != s)
        return NULL;
    PGresult *r = PQgetResult(s->c->pg);
    if (!r) {
        s->c->active = NULL;
        s->drained = 1;
        end_pipeline(s->c);
        note_tx(s->c);
    }
    return r;
}

/* Reads the rest of s's results into its queue, so that the connection is
 * free for another statement. */
static void buffer_rest(pg_stmt *s)
{
    rk_db_conn *c = s->c;
    PGresult *r;
    while ((r = PQgetResult(c->pg)) != NULL)
        if (queue_push(s, r) != 0) { /* out of memory: the run ends in an error */
            PQclear(r);
            s->end_rc = RK_ERR_NOMEM;
        }
    c->active = NULL;
    s->drained = 1;
    end_pipeline(c);
    note_tx(c);
}

/* Ends s's run: its remaining results are read and dropped. */
static void finish(pg_stmt *s)
{
    drop_row(s);
    if (s->running) {
        PGresult *r;
        while ((r = next_result(s)) != NULL) {
            if (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK)
                completed(s->c, r);
            PQclear(r);
        }
    }
    s->running = 0;
    s->q_head = s->q_len = 0;
}

/* The connection must be free (no run reading) for a new command. */
static void free_connection(rk_db_conn *c)
{
    if (c->active)
        buffer_rest(c->active);
}

/* ---------- connecting ---------- */

/* What every session sets; run again after a reconnection. */
static rk_rc session_setup(rk_db_conn *c)
{
    /* The writer: acknowledged = flushed, and on the synchronous standby
     * when there is one (a stronger setting of the server's is kept). */
    const char *sql = c->kind == RK_CONN_READER
                          ? "SET default_transaction_read_only = on"
                          : "SELECT set_config('synchronous_commit', 'on', false)"
                            " WHERE current_setting('synchronous_commit') IN ('off', 'local', 'remote_write')";
    PGresult *r = PQexec(c->pg, sql);
    ExecStatusType t = PQresultStatus(r);
    rk_rc rc = t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK ? RK_OK : error_of(c, r);
    PQclear(r);
    return rc;
}

static void forget_session(rk_db_conn *c)
{
    for (int i = 0; i < STMT_CACHE; i++) {
        pg_stmt *s = c->cache[i].s;
        if (!s)
            continue;
        drop_row(s);
        for (size_t k = s->q_head; k < s->q_len; k++)
            PQclear(s->queue[k]);
        s->q_head = s->q_len = 0;
        s->running = 0;
    }
    c->active = NULL;
    c->pipelined = 0; /* PQreset leaves pipeline mode */
    c->n_held = 0;
    c->in_tx = 0;
    c->gen++;
}

/* Before a command: a lost connection is made again (and a writer's
 * session on a read-only server too), unless it was lost inside a
 * transaction that the store has not ended yet. */
static rk_rc ensure_connected(rk_db_conn *c)
{
    if (PQstatus(c->pg) == CONNECTION_OK && !c->reset_wanted)
        return RK_OK;
    if (c->in_tx) {
        c->lost = 1;
        return RK_ERR_UNAVAILABLE; /* the transaction is lost: it fails as a whole */
    }
    /* A server that refuses answers at once; one that does not answer (a
     * dead machine) holds each attempt up to connect_timeout, with the
     * connection's mutex: then calls fail at once for a second before the
     * next attempt, rather than queue behind it. */
    int64_t now = rk_mono_ms();
    if (now < c->retry_ms) {
        c->lost = 1;
        return RK_ERR_UNAVAILABLE;
    }
    forget_session(c);
    PQreset(c->pg);
    c->reset_wanted = 0;
    rk_rc rc = PQstatus(c->pg) != CONNECTION_OK ? mark_lost(c, PQerrorMessage(c->pg), NULL) : session_setup(c);
    if (rc != RK_OK) {
        if (rk_mono_ms() - now > RETRY_SLOW_MS)
            c->retry_ms = rk_mono_ms() + RETRY_SLOW_MS;
        return rc == RK_ERR_UNAVAILABLE ? rc : mark_lost(c, "the new session could not be set up", NULL);
    }
    if (c->down_logged)
        rk_info("store: connected to the database again");
    c->down_logged = 0;
    return RK_OK;
}

static void free_stmt(pg_stmt *s)
{
    if (!s)
        return;
    finish(s);
    free(s->queue);
    free(s->values);
    free(s->text);
    free(s->touches);
    free(s);
}

static void pg_close(rk_db_conn *c)
{
    if (!c)
        return;
    for (int i = 0; i < STMT_CACHE; i++)
        free_stmt(c->cache[i].s);
    for (int i = 0; i < c->n_dirty; i++)
        free(c->dirty[i]);
    PQfinish(c->pg);
    free(c);
}

static rk_rc pg_exec(rk_db_conn *c, const char *sql);

static rk_rc pg_open(const char *target, rk_conn_kind kind, int readonly, rk_db_conn **out)
{
    rk_db_conn *c = calloc(1, sizeof *c);
    if (!c)
        return RK_ERR_NOMEM;
    c->kind = kind;
    c->readonly = readonly;
    c->gen = 1;
    /* Defaults first, the target last: what the URI says wins. Keepalives
     * notice a server gone without a word (a dead machine) within ~40 s. */
    const char *const keys[] = {"connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
                                "keepalives_count", "client_encoding", "fallback_application_name", "dbname", NULL};
    const char *const values[] = {"10", "1", "10", "10", "3", "UTF8", "renkei", target, NULL};
    c->pg = PQconnectdbParams(keys, values, 1);
    if (!c->pg) {
        free(c);
        return RK_ERR_NOMEM;
    }
    rk_rc rc = RK_OK;
    if (PQstatus(c->pg) != CONNECTION_OK) {
        char where[256], line[512];
        redact(target, where, sizeof where);
        rk_error("store: cannot connect to %s: %s", where, one_line(PQerrorMessage(c->pg), line, sizeof line));
        rc = RK_ERR_UNAVAILABLE;
    }
    if (rc == RK_OK) {
        PQsetNoticeReceiver(c->pg, on_notice, NULL);
        PQsetErrorVerbosity(c->pg, PQERRORS_TERSE); /* the message without the statement's text */
        rc = session_setup(c);
    }
    /* the table of the health check's write (writable); IF NOT EXISTS, and
     * a concurrent creation by another process is as good */
    if (rc == RK_OK && kind == RK_CONN_WRITER && !readonly) {
        PGresult *r = PQexec(c->pg, "CREATE TABLE IF NOT EXISTS health_probe (x BIGINT)");
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (PQresultStatus(r) != PGRES_COMMAND_OK && !(state && (strcmp(state, "23505") == 0 ||
                                                                 strcmp(state, "42P07") == 0)))
            rc = error_of(c, r);
        PQclear(r);
    }
    if (rc != RK_OK) {
        pg_close(c);
        return rc;
    }
    *out = c;
    return RK_OK;
}

/* ---------- statements ---------- */

/* The SQL with each `?` outside quotes and comments as $1, $2 …; malloc'ed. */
static char *number_parameters(const char *sql, int *n)
{
    size_t len = strlen(sql);
    char *out = malloc(len * 5 + 1); /* "?" -> "$9999" at most */
    if (!out)
        return NULL;
    char *o = out;
    *n = 0;
    for (const char *p = sql; *p;) {
        if (*p == '\'' || *p == '"') { /* a literal or a quoted name; '' and "" stay inside */
            char q = *p;
            *o++ = *p++;
            while (*p && *p != q)
                *o++ = *p++;
            if (*p)
                *o++ = *p++;
        } else if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n')
                *o++ = *p++;
        } else if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            size_t w = e ? (size_t)(e + 2 - p) : strlen(p);
            memcpy(o, p, w);
            o += w;
            p += w;
        } else if (*p == '?' && *n < 9999) {
            o += sprintf(o, "$%d", ++*n);
            p++;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}

/* The table a DELETE, an UPDATE or an upsert changes (its old row versions
 * are what purge removes); NULL for any other statement. */
static char *touched_table(const char *sql)
{
    while (*sql == ' ' || *sql == '\n')
        sql++;
    const char *name = NULL;
    if (strncasecmp(sql, "DELETE FROM ", 12) == 0)
        name = sql + 12;
    else if (strncasecmp(sql, "UPDATE ", 7) == 0)
        name = sql + 7;
    else if (strncasecmp(sql, "INSERT INTO ", 12) == 0 && strcasestr(sql, "DO UPDATE"))
        name = sql + 12;
    if (!name)
        return NULL;
    size_t w = strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
    return w > 0 && w < 64 ? strndup(name, w) : NULL;
}

static void note_dirty(rk_db_conn *c, const char *table)
{
    for (int i = 0; i < c->n_dirty; i++)
        if (strcmp(c->dirty[i], table) == 0)
            return;
    if (c->n_dirty == DIRTY_MAX || !(c->dirty[c->n_dirty] = strdup(table)))
        c->dirty_all = 1;
    else
        c->n_dirty++;
}

static void pg_bind_text(rk_stmt *st, int i, const char *s)
{
    pg_stmt *p = PG(st);
    if (i < 1 || i > p->nparams)
        return;
    p->values[i - 1] = s; /* NULL binds SQL NULL */
    p->lengths[i - 1] = 0;
    p->formats[i - 1] = 0;
}

static void pg_bind_int(rk_stmt *st, int i, int64_t v)
{
    pg_stmt *p = PG(st);
    if (i < 1 || i > p->nparams)
        return;
    snprintf(p->nums[i - 1], sizeof p->nums[0], "%lld", (long long)v);
    p->values[i - 1] = p->nums[i - 1];
    p->lengths[i - 1] = 0;
    p->formats[i - 1] = 0;
}

static void pg_bind_blob(rk_stmt *st, int i, const void *ptr, size_t n)
{
    pg_stmt *p = PG(st);
    if (i < 1 || i > p->nparams)
        return;
    p->values[i - 1] = ptr ? ptr : ""; /* bytea in binary: the bytes as they are */
    p->lengths[i - 1] = (int)n;
    p->formats[i - 1] = 1;
}

static void pg_bind_null(rk_stmt *st, int i) { pg_bind_text(st, i, NULL); }

/* Sends the held commands and then s (NULL: none) in one pipeline; reads
 * the held commands' results, so that s's come next. RK_ERR_STORE (logged)
 * when one of them failed: s's results are then PGRES_PIPELINE_ABORTED. */
static rk_rc send_pipeline(rk_db_conn *c, pg_stmt *s)
{
    int n = c->n_held, sent = PQenterPipelineMode(c->pg);
    c->n_held = 0;
    for (int i = 0; sent && i < n; i++)
        sent = PQsendQueryPrepared(c->pg, c->held[i]->name, 0, NULL, NULL, NULL, 0);
    if (sent && s)
        sent = PQsendQueryPrepared(c->pg, s->name, s->nparams, s->values, s->lengths, s->formats, 0);
    if (sent)
        sent = PQpipelineSync(c->pg);
    c->pipelined = 1;
    rk_rc rc = sent ? RK_OK : error_of(c, NULL);
    for (int i = 0; sent && i < n; i++) {
        PGresult *r;
        while ((r = PQgetResult(c->pg)) != NULL) {
            ExecStatusType t = PQresultStatus(r);
            if (t != PGRES_COMMAND_OK && rc == RK_OK)
                rc = t == PGRES_PIPELINE_ABORTED ? aborted(c) : error_of(c, r);
            PQclear(r);
        }
    }
    if (!sent || !s)
        end_pipeline(c);
    return rc == RK_ERR_CONFLICT ? RK_ERR_STORE : rc;
}

/* The held commands, sent now on their own (before a command that cannot
 * join a pipeline). */
static rk_rc send_held(rk_db_conn *c)
{
    if (c->n_held == 0)
        return RK_OK;
    free_connection(c);
    rk_rc rc = ensure_connected(c);
    if (rc != RK_OK) {
        c->n_held = 0;
        return rc;
    }
    rc = send_pipeline(c, NULL);
    note_tx(c);
    return rc;
}

static rk_rc prepare(pg_stmt *s);

/* Sends s with its parameters (after the held commands); rows one by one
 * when `rows`. */
static rk_rc start(pg_stmt *s, int rows)
{
    rk_db_conn *c = s->c;
    finish(s);
    s->drained = 0;
    s->end_rc = RK_ERR_NOT_FOUND;
    free_connection(c);
    unsigned gen = c->gen;
    rk_rc rc = ensure_connected(c);
    if (rc == RK_OK && s->gen != c->gen) {
        if (c->gen != gen) /* a new session here, between transactions: s is its first statement */
            rc = prepare(s);
        else /* prepared before a reconnection that came meanwhile: rk_db_stmt prepares it again */
            rc = mark_lost(c, "the session ended", NULL);
    }
    if (rc != RK_OK) {
        c->n_held = 0; /* their transaction is lost with the connection */
        return rc;
    }
    if (c->n_held > 0) {
        rk_rc held = send_pipeline(c, s);
        if (!c->pipelined) /* not sent */
            return held;
        s->end_rc = held == RK_OK ? RK_ERR_NOT_FOUND : held; /* s's own results follow, aborted after a failure */
    } else if (!PQsendQueryPrepared(c->pg, s->name, s->nparams, s->values, s->lengths, s->formats, 0)) {
        return error_of(c, NULL);
    }
    if (rows)
        PQsetSingleRowMode(c->pg); /* when refused (it may be, in a pipeline), the rows come in one result */
    if (s->touches && c->kind == RK_CONN_WRITER)
        note_dirty(c, s->touches);
    c->active = s;
    s->running = 1;
    return RK_OK;
}

static rk_rc pg_next(rk_stmt *st)
{
    pg_stmt *s = PG(st);
    if (s->row && s->row_i + 1 < PQntuples(s->row)) { /* the next row of a result of several */
        free_blobs(s);
        s->row_i++;
        return RK_OK;
    }
    drop_row(s);
    rk_rc rc;
    if (!s->running && (rc = start(s, 1)) != RK_OK)
        return rc;
    PGresult *r;
    while ((r = next_result(s)) != NULL) {
        ExecStatusType t = PQresultStatus(r);
        if (t == PGRES_SINGLE_TUPLE || (t == PGRES_TUPLES_OK && PQntuples(r) > 0 && s->end_rc == RK_ERR_NOT_FOUND)) {
            if (t == PGRES_TUPLES_OK)
                completed(s->c, r);
            s->row = r;
            s->row_i = 0;
            mark_ok(s->c);
            return RK_OK;
        }
        if (t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK)
            completed(s->c, r);
        else if (s->end_rc == RK_ERR_NOT_FOUND)
            s->end_rc = t == PGRES_PIPELINE_ABORTED ? aborted(s->c) : error_of(s->c, r);
        PQclear(r);
    }
    s->running = 0; /* the run is over: a next step runs it again, as SQLite does after its end */
    return s->end_rc;
}

static rk_rc pg_stmt_exec(rk_stmt *st)
{
    pg_stmt *s = PG(st);
    rk_db_conn *c = s->c;
    if (s->holdable && c->kind == RK_CONN_WRITER && s->gen == c->gen && PQstatus(c->pg) == CONNECTION_OK &&
        !c->reset_wanted) {
        rk_rc rc = c->n_held == HELD_MAX ? send_held(c) : RK_OK;
        if (rc != RK_OK)
            return rc;
        finish(s);
        c->held[c->n_held++] = s; /* sent with the next statement */
        if (s->holdable == 2)
            c->in_tx = 1; /* a connection lost from now on takes a transaction with it */
        return RK_OK;
    }
    rk_rc rc = start(s, 0);
    if (rc != RK_OK)
        return rc;
    rc = s->end_rc == RK_ERR_NOT_FOUND ? RK_OK : s->end_rc; /* a held command failed */
    PGresult *r;
    while ((r = next_result(s)) != NULL) {
        ExecStatusType t = PQresultStatus(r);
        if (t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK)
            completed(s->c, r);
        else if (rc == RK_OK)
            rc = t == PGRES_PIPELINE_ABORTED ? aborted(s->c) : error_of(s->c, r);
        PQclear(r);
    }
    s->running = 0;
    return rc != RK_OK ? rc : s->end_rc == RK_ERR_NOMEM ? RK_ERR_NOMEM : RK_OK;
}

static const char *value_of(rk_stmt *st, int col)
{
    pg_stmt *s = PG(st);
    if (!s->row || col < 0 || col >= PQnfields(s->row) || PQgetisnull(s->row, s->row_i, col))
        return NULL;
    return PQgetvalue(s->row, s->row_i, col);
}

static int64_t pg_col_int(rk_stmt *st, int col)
{
    const char *v = value_of(st, col);
    if (!v)
        return 0;
    if (PQftype(PG(st)->row, col) == BOOLOID)
        return *v == 't';
    return strtoll(v, NULL, 10);
}

static const char *pg_col_text(rk_stmt *st, int col) { return value_of(st, col); }

static int pg_col_is_null(rk_stmt *st, int col)
{
    pg_stmt *s = PG(st);
    return !s->row || col < 0 || col >= PQnfields(s->row) || PQgetisnull(s->row, s->row_i, col);
}

/* bytea comes in text format (hex): unescaped here, kept until the next
 * step. Another type's text is its bytes. */
static const void *pg_col_blob(rk_stmt *st, int col, size_t *len)
{
    pg_stmt *s = PG(st);
    const char *v = value_of(st, col);
    *len = 0;
    if (!v)
        return NULL;
    if (PQftype(s->row, col) != BYTEAOID) {
        *len = (size_t)PQgetlength(s->row, s->row_i, col);
        return v;
    }
    blob_buf *b = calloc(1, sizeof *b);
    if (!b || !(b->p = PQunescapeBytea((const unsigned char *)v, len))) {
        free(b);
        *len = 0;
        return NULL;
    }
    b->next = s->blobs;
    s->blobs = b;
    return b->p;
}

static const rk_stmt_ops pg_stmt_ops = {
    .bind_text = pg_bind_text,
    .bind_int = pg_bind_int,
    .bind_blob = pg_bind_blob,
    .bind_null = pg_bind_null,
    .exec = pg_stmt_exec,
    .next = pg_next,
    .col_int = pg_col_int,
    .col_text = pg_col_text,
    .col_blob = pg_col_blob,
    .col_is_null = pg_col_is_null,
};

/* Prepares s on the connection's current session. */
static rk_rc prepare(pg_stmt *s)
{
    rk_db_conn *c = s->c;
    /* the held savepoint first: a statement that fails to parse spoils the
     * transaction, which that savepoint lets the store recover */
    rk_rc rc = send_held(c);
    if (rc != RK_OK)
        return rc;
    free_connection(c);
    rc = ensure_connected(c);
    if (rc != RK_OK)
        return rc;
    snprintf(s->name, sizeof s->name, "rk%u", ++c->next_name);
    PGresult *r = PQprepare(c->pg, s->name, s->text, 0, NULL);
    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
        s->gen = c->gen;
    } else {
        error_of(c, r); /* logged */
        rc = RK_ERR_STORE;
    }
    PQclear(r);
    note_tx(c);
    return rc;
}

static pg_stmt *new_stmt(rk_db_conn *c, const char *sql)
{
    pg_stmt *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->base.ops = &pg_stmt_ops;
    s->c = c;
    char *expanded = strchr(sql, '{') ? rk_db_expand_tokens(&rk_pg_driver, sql) : NULL;
    s->text = number_parameters(expanded ? expanded : sql, &s->nparams);
    free(expanded);
    s->touches = touched_table(sql);
    if (s->nparams == 0)
        s->holdable = strcasecmp(sql, "BEGIN") == 0                                                ? 2
                      : strncasecmp(sql, "SAVEPOINT ", 10) == 0 || strncasecmp(sql, "RELEASE ", 8) == 0 ? 1
                                                                                                   : 0;
    size_t n = (size_t)(s->nparams ? s->nparams : 1);
    /* values, lengths, formats and nums in one block */
    s->values = calloc(n, sizeof(char *) + 2 * sizeof(int) + sizeof s->nums[0]);
    if (!s->text || !s->values) {
        free_stmt(s);
        return NULL;
    }
    s->nums = (char(*)[24])(s->values + n);
    s->lengths = (int *)(s->nums + n);
    s->formats = s->lengths + n;
    return s;
}

static rk_stmt *pg_prepare(rk_db_conn *c, const char *sql)
{
    int free_slot = -1;
    pg_stmt *s = NULL;
    for (int i = 0; i < STMT_CACHE && !s; i++) {
        if (c->cache[i].sql == sql)
            s = c->cache[i].s;
        else if (!c->cache[i].sql && free_slot < 0)
            free_slot = i;
    }
    if (s) { /* ready to bind again: its run ended, its parameters NULL */
        finish(s);
        memset(s->values, 0, (size_t)s->nparams * sizeof *s->values);
        memset(s->formats, 0, (size_t)s->nparams * sizeof *s->formats);
        if (s->gen == c->gen && PQstatus(c->pg) == CONNECTION_OK)
            return &s->base;
        return prepare(s) == RK_OK ? &s->base : NULL; /* a new session: prepared again */
    }
    if (free_slot < 0) {
        rk_error("store: statement cache full (%d)", STMT_CACHE);
        return NULL;
    }
    if (!(s = new_stmt(c, sql)))
        return NULL;
    if (prepare(s) != RK_OK) {
        free_stmt(s);
        return NULL;
    }
    c->cache[free_slot].sql = sql;
    c->cache[free_slot].s = s;
    return &s->base;
}

/* After a callback: no statement keeps a run open (the connection is free
 * and holds no rows). */
static void pg_release(rk_db_conn *c)
{
    for (int i = 0; i < STMT_CACHE; i++) {
        pg_stmt *s = c->cache[i].s;
        if (s && (s->running || s->row))
            finish(s);
    }
}

/* Statements without parameters or rows, several separated by ';' (the
 * simple query protocol runs them as one implicit transaction unless one is
 * open). */
static rk_rc pg_exec(rk_db_conn *c, const char *sql)
{
    rk_rc rc = send_held(c);
    if (rc != RK_OK)
        return rc;
    free_connection(c);
    rc = ensure_connected(c);
    if (rc != RK_OK)
        return rc;
    PGresult *r = PQexec(c->pg, sql);
    ExecStatusType t = PQresultStatus(r);
    rc = t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK || t == PGRES_EMPTY_QUERY ? RK_OK : error_of(c, r);
    PQclear(r);
    note_tx(c);
    return rc;
}

static void pg_rollback(rk_db_conn *c)
{
    c->n_held = 0; /* never sent: nothing of them to undo */
    free_connection(c);
    if (PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        PQclear(PQexec(c->pg, "ROLLBACK"));
    c->in_tx = 0; /* a lost connection took its transaction with it */
    if (c->reset_wanted) /* on a read-only server: the next transaction in a new session */
        ensure_connected(c);
}

static int64_t pg_changes(rk_db_conn *c) { return c->changes; }

static const char *pg_ddl_token(const char *token)
{
    /* BY DEFAULT, not ALWAYS: a caller may give the value itself (the
     * records give seq, which counts without gaps; a sequence skips the
     * values of rolled-back inserts). RETURNING answers generated ids. */
    if (strcmp(token, "{id}") == 0)
        return "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY";
    if (strcmp(token, "{blob}") == 0)
        return "BYTEA";
    if (strcmp(token, "{without_rowid}") == 0)
        return ""; /* a heap table and its primary key index either way */
    if (strcmp(token, "{skip_locked}") == 0) /* rows another instance claims are passed over */
        return "FOR UPDATE SKIP LOCKED";
    return NULL;
}

/* 第8-5: after a deletion that must leave no trace. A deleted or updated
 * row stays in its table's pages as a dead version until VACUUM removes it
 * (and its index entries); autovacuum would, some time later. So: VACUUM
 * the tables this writer deleted or updated rows in since the last purge,
 * now. VACUUM cannot run inside a transaction: it runs on the writer,
 * between the store's transactions (the store holds both connections, so
 * no snapshot of ours keeps the old versions alive). Limits, for the
 * runbook: a snapshot held by another session (a tool reading the
 * database, another instance) keeps them until it ends; VACUUM frees the
 * space of the removed versions without overwriting it at once; and the
 * server's WAL keeps the deleted values until its segments are recycled
 * (the server's own checkpoints; CHECKPOINT needs a privileged role). */
static rk_rc pg_purge(rk_db_conn *w)
{
    if (w->in_tx)
        return RK_ERR_STORE;
    if (!w->dirty_all && w->n_dirty == 0)
        return RK_OK; /* nothing deleted or updated since the last purge */
    char sql[64 * DIRTY_MAX + 16] = "VACUUM";
    if (!w->dirty_all)
        for (int i = 0; i < w->n_dirty; i++)
            snprintf(sql + strlen(sql), sizeof sql - strlen(sql), "%s %s", i ? "," : "", w->dirty[i]);
    rk_rc rc = pg_exec(w, sql);
    if (rc == RK_OK) {
        for (int i = 0; i < w->n_dirty; i++)
            free(w->dirty[i]);
        w->n_dirty = w->dirty_all = 0;
    }
    return rc;
}

/* Writable: a row into a table made at open goes in, and is rolled back. */
static int pg_writable(rk_db_conn *w, const char *target)
{
    (void)target;
    if (w->in_tx)
        return 0;
    static const char begin[] = "BEGIN", probe[] = "INSERT INTO health_probe VALUES (1)";
    rk_stmt *b = pg_prepare(w, begin);
    int ok = b && pg_stmt_exec(b) == RK_OK;
    rk_stmt *p = ok ? pg_prepare(w, probe) : NULL;
    ok = ok && p && pg_stmt_exec(p) == RK_OK;
    pg_rollback(w);
    return ok;
}

static int pg_lost(rk_db_conn *c) { return c->lost; }

const rk_db_driver rk_pg_driver = {
    .name = "postgresql",
    .accepts = pg_accepts,
    .open = pg_open,
    .close = pg_close,
    .exec = pg_exec,
    .stmt = pg_prepare,
    .release = pg_release,
    .changes = pg_changes,
    .ddl_token = pg_ddl_token,
    .lock_sql = "SELECT 1 FROM (SELECT pg_advisory_xact_lock(CAST(? AS BIGINT))) AS held",
    /* held already by this session (a lock survives as long as the session
     * that took it: after a reconnection it is gone), or taken now */
    .lead_sql = "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND pid = pg_backend_pid() AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = k.key)"
                " THEN 1 WHEN pg_try_advisory_lock(k.key) THEN 1 ELSE 0 END FROM (SELECT CAST(? AS BIGINT) AS key) AS k",
    .begin_write = "BEGIN",
    .rollback = pg_rollback,
    .purge = pg_purge,
    .writable = pg_writable,
    .lost = pg_lost,
};
