/* gateway.c — an agency's interface system (インターフェイスシステム): the
 * only node of an agency that talks to the core (standard 第4, 第5, 第6).
 *
 * It is a relay with a firewall's manners: every call is authenticated by
 * certificate and allowed by role (from the core: notices and provision
 * requests for its own agency node; from its own agency node: requests for
 * the core), bodies are capped, and it forwards them unchanged — it cannot
 * read an encrypted payload and does not try. It logs metadata only. */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"
#include "lib/node.h"
#include "lib/db.h"
#include "lib/util.h"
#include "lib/watch.h"
#include "tools/roles.h"


/* The message log (DESIGN §1): metadata of every relayed call — who, to
 * whom, which endpoint, the answer's status, sizes and time — never a body.
 * Kept off the relay path: entries queue in memory and a flusher commits
 * them together every LOG_FLUSH_MS (a crash loses at most that much of the
 * log; no answer depends on it). */
static const char message_schema[] =
    "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, caller TEXT NOT NULL,"
    " target TEXT NOT NULL, path TEXT NOT NULL, status INTEGER NOT NULL, bytes_in INTEGER NOT NULL,"
    " bytes_out INTEGER NOT NULL, ms INTEGER NOT NULL);";

#define LOG_FLUSH_MS 200
#define LOG_QUEUE_MAX 8192

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
    uint64_t dropped;
    int stopping;
    pthread_t flusher;
    int running;
    rk_db *db;
} message_log;

static rk_rc log_one(rk_db *db, const message *m)
{
    sqlite3_stmt *st = rk_db_stmt(db, "INSERT INTO messages(at_ms, caller, target, path, status, bytes_in,"
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
            rk_cond_wait_ms(&log->wake, &log->lock, LOG_FLUSH_MS);
        stop = log->stopping;
        pthread_mutex_unlock(&log->lock);
        flush_messages(log);
    }
    return NULL;
}

static void log_message(message_log *log, const message *m)
{
    pthread_mutex_lock(&log->lock);
    if (log->queue && log->n < LOG_QUEUE_MAX)
        log->queue[log->n++] = *m;
    else
        log->dropped++; /* counted in /metrics */
    pthread_mutex_unlock(&log->lock);
}

static rk_rc message_log_start(message_log *log, rk_db *db)
{
    pthread_mutex_init(&log->lock, NULL);
    pthread_cond_init(&log->wake, NULL);
    log->db = db;
    log->queue = calloc(LOG_QUEUE_MAX, sizeof *log->queue);
    log->spare = calloc(LOG_QUEUE_MAX, sizeof *log->spare);
    if (!log->queue || !log->spare || pthread_create(&log->flusher, NULL, flusher_main, log) != 0)
        return RK_ERR_NOMEM;
    log->running = 1;
    return RK_OK;
}

static void message_log_stop(message_log *log)
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

typedef struct gateway {
    rk_node *node;
    rk_db *db;                    /* incidents and the message log: no content */
    rk_watch *unreachable;        /* one outage incident per window per target */
    rk_watch *callers;            /* per-caller rate limit towards the core */
    message_log log;
    const rk_peer_node *core;
    const rk_peer_node *agency;   /* this agency's own node */
    uint64_t relayed, upstream_failures, rate_limited;
} gateway;

/* Forwards the request body to `to` at the same path and passes the answer
 * back as it came. An unreachable target is 502/504 with a stable code. */
static void relay(gateway *g, const rk_peer_node *to, const rk_request *req, rk_response *resp)
{
    rk_http_result res;
    int64_t start = rk_mono_ms();
    rk_rc rc = rk_node_post(g->node, to, req->path, req->body, &res, NULL);
    message m = {.at_ms = req->received_ms, .ms = rk_mono_ms() - start, .status = rc == RK_OK ? res.status : 0,
                 .bytes_in = req->body_len, .bytes_out = rc == RK_OK ? res.body_len : 0};
    snprintf(m.caller, sizeof m.caller, "%s", req->peer->id);
    snprintf(m.target, sizeof m.target, "%s", to->id);
    snprintf(m.path, sizeof m.path, "%s", req->path);
    log_message(&g->log, &m);
    if (rc != RK_OK) {
        __atomic_add_fetch(&g->upstream_failures, 1, __ATOMIC_RELAXED);
        if (rk_watch_hit(g->unreachable, to->id, rk_now_ms()))
            rk_node_raise(g->node, "outage", "%s is unreachable from %s", to->id, g->node->cfg.id);
        rk_warn("relay %s from %s to %s failed: %s", req->path, req->peer->id, to->id, rk_strerror(rc));
        if (rc == RK_ERR_TIMEOUT)
            rk_reply_error(resp, 504, "upstream_timeout", "%s did not answer in time", to->id);
        else
            rk_reply_error(resp, 502, "upstream_unavailable", "%s could not be reached", to->id);
        return;
    }
    __atomic_add_fetch(&g->relayed, 1, __ATOMIC_RELAXED);
    rk_debug("relayed %s from %s to %s: %ld (%zu bytes)", req->path, req->peer->id, to->id, res.status, res.body_len);
    free(resp->body);
    resp->status = (int)res.status;
    resp->body = res.body; /* ownership moves to the response */
    resp->body_len = res.body_len;
    resp->content_type = "application/json";
}

static void to_agency(void *app, const rk_request *req, rk_response *resp)
{
    gateway *g = app;
    relay(g, g->agency, req, resp);
}

static void to_core(void *app, const rk_request *req, rk_response *resp)
{
    gateway *g = app;
    /* Per-caller limit (DESIGN §1): one business flood must not take the
     * agency's line to the core. Incident reports are not limited. */
    if (strcmp(req->path, "/v1/incidents") != 0 && rk_watch_over(g->callers, req->peer->id, rk_now_ms())) {
        __atomic_add_fetch(&g->rate_limited, 1, __ATOMIC_RELAXED);
        rk_reply_error(resp, 429, "rate_limited", "over %d requests a second from %s; retry later",
                       g->node->cfg.caller_rate_per_s, req->peer->id);
        return;
    }
    relay(g, g->core, req, resp);
}

static const rk_route routes[] = {
    {"POST", "/v1/code-notices", RK_ROLE_CORE, 0, to_agency},
    {"POST", "/v1/code-notices/batch", RK_ROLE_CORE, 0, to_agency},
    {"POST", "/v1/provisions", RK_ROLE_CORE, 0, to_agency},
    {"POST", "/v1/exchanges", RK_ROLE_AGENCY, 1, to_core},
    {"POST", "/v1/incidents", RK_ROLE_AGENCY, 1, to_core, 1},
    {"POST", "/v1/deletion-requests", RK_ROLE_AGENCY, 1, to_core},
    {"POST", "/v1/deletions", RK_ROLE_CORE, 0, to_agency},
};

static int health(void *app, json_t *checks)
{
    gateway *g = app;
    int writable = rk_db_writable(g->db);
    json_object_set_new(checks, "store_writable", json_boolean(writable));
    return rk_node_health(g->node, checks) || !writable;
}

static void metrics(void *app, struct evbuffer *out)
{
    gateway *g = app;
    evbuffer_add_printf(out, "renkei_relayed_total %llu\nrenkei_upstream_failures_total %llu\n"
                             "renkei_rate_limited_total %llu\nrenkei_message_log_dropped_total %llu\n",
                        (unsigned long long)g->relayed, (unsigned long long)g->upstream_failures,
                        (unsigned long long)g->rate_limited, (unsigned long long)g->log.dropped);
}

static rk_rc run(rk_node *node)
{
    gateway g = {.node = node};
    rk_rc rc = RK_ERR_CONFIG;
    g.core = rk_registry_find(node->registry, RK_ROLE_CORE, NULL);
    g.agency = rk_registry_find(node->registry, RK_ROLE_AGENCY, node->self->agency);
    if (!g.core || !g.agency) {
        rk_error("the registry lacks the core or the agency node of %s", node->self->agency);
        goto done;
    }
    g.unreachable = rk_watch_new(node->cfg.unreachable_ms, 1, 0);
    g.callers = rk_watch_new(1000, (unsigned)node->cfg.caller_rate_per_s, 0);
    if ((rc = rk_db_open(node->cfg.db, message_schema, &g.db)) != RK_OK ||
        (rc = rk_node_incidents_start(node, g.db)) != RK_OK || (rc = rk_node_clock_start(node)) != RK_OK ||
        (rc = message_log_start(&g.log, g.db)) != RK_OK)
        goto done;
    rk_server_config sc = {.routes = routes, .n_routes = sizeof routes / sizeof routes[0], .app = &g,
                           .health = health, .metrics = metrics};
    rc = rk_node_serve(node, &sc);
done:
    rk_node_stop_services(node);
    message_log_stop(&g.log);
    rk_db_close(g.db);
    rk_watch_free(g.unreachable);
    rk_watch_free(g.callers);
    return rc;
}

int rk_gateway_main(int argc, char **argv)
{
    return rk_role_command(argc, argv, RK_ROLE_GATEWAY, run);
}
