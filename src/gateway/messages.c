#include "gateway/messages.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/util.h"

const char messages_schema[] =
    "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, caller TEXT NOT NULL,"
    " target TEXT NOT NULL, path TEXT NOT NULL, status INTEGER NOT NULL, bytes_in INTEGER NOT NULL,"
    " bytes_out INTEGER NOT NULL, ms INTEGER NOT NULL);";

static rk_rc log_one(rk_db *db, const message *m)
{
    sqlite3_stmt *st = rk_db_sqlite_stmt(db, "INSERT INTO messages(at_ms, caller, target, path, status, bytes_in,"
                                      " bytes_out, ms) VALUES (?,?,?,?,?,?,?,?)");
    if (!st)
        return RK_ERR_STORE;
    sqlite3_bind_int64(st, 1, m->at_ms);
    sqlite3_bind_text(st, 2, m->caller, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, m->target, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, m->path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, m->status);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)m->bytes_in);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)m->bytes_out);
    sqlite3_bind_int64(st, 8, m->ms);
    rk_rc rc = rk_db_step_rc(db, sqlite3_step(st));
    sqlite3_reset(st);
    return rc;
}

typedef struct message_batch {
    message *m;
    size_t n;
} message_batch;

static rk_rc log_batch_in_tx(rk_db *db, void *arg)
{
    message_batch *b = arg;
    rk_rc rc = RK_OK;
    for (size_t i = 0; i < b->n && rc == RK_OK; i++)
        rc = log_one(db, &b->m[i]);
    return rc;
}

static void flush_messages(message_log *log)
{
    pthread_mutex_lock(&log->lock);
    message_batch b = {log->queue, log->n};
    log->queue = log->spare;
    log->spare = b.m;
    log->n = 0;
    pthread_mutex_unlock(&log->lock);
    if (b.n && rk_db_write(log->db, log_batch_in_tx, &b) != RK_OK)
        rk_error("message log: %zu entries could not be written", b.n);
}

static void *flusher_main(void *arg)
{
    message_log *log = arg;
    int stop = 0;
    while (!stop) {
        pthread_mutex_lock(&log->lock);
        if (!log->stopping)
            rk_cond_wait_ms(&log->wake, &log->lock, MESSAGES_FLUSH_MS);
        stop = log->stopping;
        pthread_mutex_unlock(&log->lock);
        flush_messages(log);
    }
    return NULL;
}

void message_log_add(message_log *log, const message *m)
{
    pthread_mutex_lock(&log->lock);
    if (log->queue && log->n < MESSAGES_QUEUE_MAX)
        log->queue[log->n++] = *m;
    else
        log->dropped++; /* counted in /metrics */
    pthread_mutex_unlock(&log->lock);
}

rk_rc message_log_start(message_log *log, rk_db *db)
{
    pthread_mutex_init(&log->lock, NULL);
    pthread_cond_init(&log->wake, NULL);
    log->db = db;
    log->queue = calloc(MESSAGES_QUEUE_MAX, sizeof *log->queue);
    log->spare = calloc(MESSAGES_QUEUE_MAX, sizeof *log->spare);
    if (!log->queue || !log->spare || pthread_create(&log->flusher, NULL, flusher_main, log) != 0)
        return RK_ERR_NOMEM;
    log->running = 1;
    return RK_OK;
}

void message_log_stop(message_log *log)
{
    if (log->running) {
        pthread_mutex_lock(&log->lock);
        log->stopping = 1;
        pthread_cond_broadcast(&log->wake);
        pthread_mutex_unlock(&log->lock);
        pthread_join(log->flusher, NULL); /* its last round writes what is queued */
        log->running = 0;
    }
    free(log->queue);
    free(log->spare);
    log->queue = log->spare = NULL;
}

static json_t *row_json(sqlite3_stmt *q)
{
    char at[32];
    rk_format_time(sqlite3_column_int64(q, 1), at, sizeof at);
    return json_pack("{s:I,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I}", "seq", (json_int_t)sqlite3_column_int64(q, 0), "at",
                     at, "caller", (const char *)sqlite3_column_text(q, 2), "target",
                     (const char *)sqlite3_column_text(q, 3), "path", (const char *)sqlite3_column_text(q, 4),
                     "status", (json_int_t)sqlite3_column_int64(q, 5), "bytes_in",
                     (json_int_t)sqlite3_column_int64(q, 6), "bytes_out", (json_int_t)sqlite3_column_int64(q, 7),
                     "ms", (json_int_t)sqlite3_column_int64(q, 8));
}

void message_log_serve(message_log *log, const rk_request *req, rk_response *resp)
{
    int64_t before = 0;
    int limit = 0;
    if (rk_page_params(req, resp, &before, &limit) != 0)
        return;
    json_t *arr = json_array();
    rk_db_lock(log->db);
    sqlite3_stmt *q = rk_db_sqlite_stmt(log->db, "SELECT id, at_ms, caller, target, path, status, bytes_in, bytes_out, ms"
                                          " FROM messages WHERE (?1 = 0 OR id < ?1) ORDER BY id DESC LIMIT ?2");
    if (q) {
        sqlite3_bind_int64(q, 1, before);
        sqlite3_bind_int(q, 2, limit);
        while (sqlite3_step(q) == SQLITE_ROW)
            json_array_append_new(arr, row_json(q));
        sqlite3_reset(q);
    }
    rk_db_unlock(log->db);
    if (!q) {
        json_decref(arr);
        rk_reply_error(resp, 500, "store_error", "the message log could not be read");
        return;
    }
    rk_reply_json(resp, 200, json_pack("{s:o}", "messages", arr));
}
