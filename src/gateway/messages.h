/* messages.h — a gateway's message log (DESIGN §1): the metadata of every
 * relayed call — who, to whom, which endpoint, the answer's status, sizes
 * and time — never a body. Kept off the relay path: entries queue in memory
 * and a flusher commits them together every MESSAGES_FLUSH_MS (a crash
 * loses at most that much of the log; no answer depends on it). The log is
 * the gateway's answer to GET /v1/records. */
#ifndef RK_GATEWAY_MESSAGES_H
#define RK_GATEWAY_MESSAGES_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "store/db.h"
#include "net/http_server.h"
#include "net/registry.h"

#define MESSAGES_FLUSH_MS 200
#define MESSAGES_QUEUE_MAX 8192

/* Brings the log's tables to the newest version (module "gateway_messages");
 * before message_log_start. */
rk_rc message_log_migrate(rk_db *db);

typedef struct message {
    char caller[RK_ID_MAX], target[RK_ID_MAX], path[64];
    int64_t at_ms, ms;
    long status;
    size_t bytes_in, bytes_out;
} message;

typedef struct message_log {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    message *queue;          /* filled by the relays */
    message *spare;          /* written by the flusher; the two swap */
    size_t n;
    uint64_t dropped;        /* queue full: counted in /metrics */
    int stopping;
    pthread_t flusher;
    int running;
    rk_db *db;
} message_log;

rk_rc message_log_start(message_log *log, rk_db *db);
void message_log_stop(message_log *log); /* writes what is queued */
void message_log_add(message_log *log, const message *m);
/* GET /v1/records?before=&limit= : the log, newest first. */
void message_log_serve(message_log *log, const rk_request *req, rk_response *resp);

#endif
