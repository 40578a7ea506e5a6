#include "gateway/messages.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/util.h"

static const char *const messages_steps[] = {
    /* 1: the table of before versions, IF NOT EXISTS: an existing database opens as it is */
    "CREATE TABLE IF NOT EXISTS messages (id {id}, at_ms BIGINT NOT NULL, caller TEXT NOT NULL,"
    " target TEXT NOT NULL, path TEXT NOT NULL, status BIGINT NOT NULL, bytes_in BIGINT NOT NULL,"
    " bytes_out BIGINT NOT NULL, ms BIGINT NOT NULL);",
};

rk_rc message_log_migrate(rk_db *db)
{
    return rk_db_migrate(db, "gateway_messages", messages_steps,
                         (int)(sizeof messages_steps / sizeof messages_steps[0]));
}

static rk_rc log_one(rk_db *db, const message *m)
{
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO messages(at_ms, caller, target, path, status, bytes_in, bytes_out, ms)"
                                 " VALUES (?,?,?,?,?,?,?,?)");
    rk_bind_int(st, 1, m->at_ms);
    rk_bind_text(st, 2, m->caller);
    rk_bind_text(st, 3, m->target);
    rk_bind_text(st, 4, m->path);
    rk_bind_int(st, 5, m->status);
    rk_bind_int(st, 6, (int64_t)m->bytes_in);
    rk_bind_int(st, 7, (int64_t)m->bytes_out);
    rk_bind_int(st, 8, m->ms);
    return rk_stmt_exec(st);
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

static json_t *row_json(rk_stmt *q)
{
    char at[32];
    rk_format_time(rk_col_int(q, 1), at, sizeof at);
    return json_pack("{s:I,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I}", "seq", (json_int_t)rk_col_int(q, 0), "at", at,
                     "caller", rk_col_text(q, 2), "target", rk_col_text(q, 3), "path", rk_col_text(q, 4), "status",
                     (json_int_t)rk_col_int(q, 5), "bytes_in", (json_int_t)rk_col_int(q, 6), "bytes_out",
                     (json_int_t)rk_col_int(q, 7), "ms", (json_int_t)rk_col_int(q, 8));
}

typedef struct message_page {
    int64_t before; /* ids below it; 0: from the newest */
    int limit;
    json_t *arr;
} message_page;

static rk_rc read_page(rk_db *db, void *arg)
{
    message_page *pg = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT id, at_ms, caller, target, path, status, bytes_in, bytes_out, ms"
                                " FROM messages WHERE id < ? ORDER BY id DESC LIMIT ?");
    rk_bind_int(q, 1, pg->before > 0 ? pg->before : INT64_MAX);
    rk_bind_int(q, 2, pg->limit);
    rk_rc rc;
    while ((rc = rk_stmt_next(q)) == RK_OK)
        json_array_append_new(pg->arr, row_json(q));
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

void message_log_serve(message_log *log, const rk_request *req, rk_response *resp)
{
    message_page pg = {0, 0, NULL};
    if (rk_page_params(req, resp, &pg.before, &pg.limit) != 0)
        return;
    pg.arr = json_array();
    if (!pg.arr || rk_db_scan(log->db, read_page, &pg) != RK_OK) {
        json_decref(pg.arr);
        rk_reply_error(resp, 500, "store_error", "the message log could not be read");
        return;
    }
    rk_reply_json(resp, 200, json_pack("{s:o}", "messages", pg.arr));
}
