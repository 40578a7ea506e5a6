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
#include "node/node.h"
#include "gateway/messages.h"
#include "store/db.h"
#include "lib/util.h"
#include "node/watch.h"
#include "roles.h"

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

/* One relayed request, waiting for the target's answer on the event loop. */
typedef struct relaying {
    gateway *g;
    rk_pending *p;
    const rk_request *req;
    rk_response *resp;
    const rk_peer_node *to;
    int64_t start_ms;
} relaying;

static void log_message(relaying *x, rk_rc rc, const rk_http_result *res)
{
    message m = {.at_ms = x->req->received_ms, .ms = rk_mono_ms() - x->start_ms,
                 .status = rc == RK_OK ? res->status : 0, .bytes_in = x->req->body_len,
                 .bytes_out = rc == RK_OK ? res->body_len : 0};
    snprintf(m.caller, sizeof m.caller, "%s", x->req->peer->id);
    snprintf(m.target, sizeof m.target, "%s", x->to->id);
    snprintf(m.path, sizeof m.path, "%s", x->req->path);
    message_log_add(&x->g->log, &m);
}

/* The target's answer is passed back as it came; an unreachable target is
 * 502/504 with a stable code. The backup line (第7-1(7)) was tried by
 * rk_node_post_later. */
static void relayed(void *arg, rk_rc rc, rk_http_result *res)
{
    relaying *x = arg;
    gateway *g = x->g;
    log_message(x, rc, res);
    if (rc != RK_OK) {
        __atomic_add_fetch(&g->upstream_failures, 1, __ATOMIC_RELAXED);
        /* At most once per [alerts] unreachable_ms; its commit is the
         * store's committer's (rk_node_raise on the loop), not this thread's. */
        if (rk_watch_hit(g->unreachable, x->to->id, rk_now_ms()))
            rk_node_raise(g->node, "outage", "%s is unreachable from %s", x->to->id, g->node->cfg.id);
        rk_warn("relay %s from %s to %s failed: %s", x->req->path, x->req->peer->id, x->to->id, rk_strerror(rc));
        if (rc == RK_ERR_TIMEOUT)
            rk_reply_error(x->resp, 504, "upstream_timeout", "%s did not answer in time", x->to->id);
        else
            rk_reply_error(x->resp, 502, "upstream_unavailable", "%s could not be reached", x->to->id);
    } else {
        __atomic_add_fetch(&g->relayed, 1, __ATOMIC_RELAXED);
        rk_debug("relayed %s from %s to %s: %ld (%zu bytes)", x->req->path, x->req->peer->id, x->to->id,
                 res->status, res->body_len);
        free(x->resp->body);
        x->resp->status = (int)res->status;
        x->resp->body = res->body; /* ownership moves to the response */
        x->resp->body_len = res->body_len;
        x->resp->content_type = "application/json";
    }
    rk_pending *p = x->p;
    free(x);
    rk_pending_finish(p);
}

/* Forwards the request body to `to` at the same path, without a thread
 * waiting: the answer comes back on the event loop (relayed). */
static void relay(gateway *g, const rk_peer_node *to, rk_pending *p, const rk_request *req, rk_response *resp)
{
    relaying *x = rk_pending_calloc(p, resp, sizeof *x);
    if (!x)
        return;
    *x = (relaying){.g = g, .p = p, .req = req, .resp = resp, .to = to, .start_ms = rk_mono_ms()};
    rk_node_post_later(g->node, rk_pending_base(p), to, req->path, req->body, req->body_len, relayed, x);
}

static void to_agency(void *app, rk_pending *p, const rk_request *req, rk_response *resp)
{
    gateway *g = app;
    relay(g, g->agency, p, req, resp);
}

static void to_core(void *app, rk_pending *p, const rk_request *req, rk_response *resp)
{
    gateway *g = app;
    /* Per-caller limit (DESIGN §1): one business flood must not take the
     * agency's line to the core. Incident reports are not limited. */
    if (strcmp(req->path, "/v1/incidents") != 0 && rk_watch_over(g->callers, req->peer->id, rk_now_ms())) {
        __atomic_add_fetch(&g->rate_limited, 1, __ATOMIC_RELAXED);
        rk_reply_error(resp, 429, "rate_limited", "over %d requests a second from %s; retry later",
                       g->node->cfg.caller_rate_per_s, req->peer->id);
        rk_pending_finish(p);
        return;
    }
    relay(g, g->core, p, req, resp);
}

/* GET /v1/records: the gateway keeps no 法23条 records of its own (it is
 * no party to an exchange); its records are the message log. */
static void records(void *app, const rk_request *req, rk_response *resp)
{
    gateway *g = app;
    if (req->peer->agency[0] && strcmp(req->peer->agency, g->node->self->agency) != 0) {
        rk_reply_error(resp, 403, "wrong_agency", "the caller belongs to another agency");
        return;
    }
    message_log_serve(&g->log, req, resp);
}

/* The relays run on the event thread (`start`): no thread waits on a
 * target's answer. */
static const rk_route routes[] = {
    {"POST", "/v1/code-notices", RK_ROLE_CORE, 0, NULL, 0, to_agency},
    {"POST", "/v1/code-notices/batch", RK_ROLE_CORE, 0, NULL, 0, to_agency},
    {"POST", "/v1/provisions", RK_ROLE_CORE, 0, NULL, 0, to_agency},
    {"POST", "/v1/provisions/batch", RK_ROLE_CORE, 0, NULL, 0, to_agency},
    {"POST", "/v1/query-results", RK_ROLE_CORE, 0, NULL, 0, to_agency},
    {"POST", "/v1/exchanges", RK_ROLE_AGENCY, 1, NULL, 0, to_core},
    {"POST", "/v1/exchanges/batch", RK_ROLE_AGENCY, 1, NULL, 0, to_core},
    {"POST", "/v1/provision-results", RK_ROLE_AGENCY, 1, NULL, 0, to_core},
    {"POST", "/v1/incidents", RK_ROLE_AGENCY, 1, NULL, 1, to_core},
    {"POST", "/v1/deletion-requests", RK_ROLE_AGENCY, 1, NULL, 0, to_core},
    {"POST", "/v1/deletions", RK_ROLE_CORE, 0, NULL, 0, to_agency},
    {"POST", "/v1/nondisclosures", RK_ROLE_AGENCY, 1, NULL, 0, to_core},
    {"POST", "/v1/nondisclosures/lift", RK_ROLE_AGENCY, 1, NULL, 0, to_core},
    {"GET", "/v1/records", RK_ROLE_OPERATOR, 0, records}, /* its agency's operator or the network's */
};

static void metrics(void *app, struct evbuffer *out)
{
    gateway *g = app;
    rk_metric_head(out, "renkei_relayed_total", "counter", "Calls relayed that got an answer from their target.");
    evbuffer_add_printf(out, "renkei_relayed_total %llu\n",
                        (unsigned long long)__atomic_load_n(&g->relayed, __ATOMIC_RELAXED));
    rk_metric_head(out, "renkei_upstream_failures_total", "counter",
                   "Calls that could not be relayed: the core or the agency node did not answer.");
    evbuffer_add_printf(out, "renkei_upstream_failures_total %llu\n",
                        (unsigned long long)__atomic_load_n(&g->upstream_failures, __ATOMIC_RELAXED));
    rk_metric_head(out, "renkei_rate_limited_total", "counter",
                   "Calls refused with 429: over a caller's rate towards the core.");
    evbuffer_add_printf(out, "renkei_rate_limited_total %llu\n",
                        (unsigned long long)__atomic_load_n(&g->rate_limited, __ATOMIC_RELAXED));
    rk_metric_head(out, "renkei_message_log_dropped_total", "counter",
                   "Entries of the message log dropped because its queue was full.");
    evbuffer_add_printf(out, "renkei_message_log_dropped_total %llu\n", (unsigned long long)g->log.dropped);
}

static rk_rc open_gateway(rk_node *node, void *app)
{
    gateway *g = app;
    g->core = rk_registry_find(node->registry, RK_ROLE_CORE, NULL);
    g->agency = rk_registry_find(node->registry, RK_ROLE_AGENCY, node->self->agency);
    if (!g->core || !g->agency) {
        rk_error("the registry lacks the core or the agency node of %s", node->self->agency);
        return RK_ERR_CONFIG;
    }
    g->unreachable = rk_watch_new(node->cfg.unreachable_ms, 1, 0);
    g->callers = rk_watch_new(1000, (unsigned)node->cfg.caller_rate_per_s, 0);
    rk_rc rc;
    if ((rc = rk_db_open(node->cfg.db, 0, &g->db)) != RK_OK || (rc = message_log_migrate(g->db)) != RK_OK ||
        (rc = rk_node_incidents_start(node, g->db)) != RK_OK || (rc = rk_node_clock_start(node)) != RK_OK)
        return rc;
    return message_log_start(&g->log, g->db);
}

static void stop_gateway(void *app)
{
    message_log_stop(&((gateway *)app)->log);
}

static void close_gateway(void *app)
{
    gateway *g = app;
    rk_db_close(g->db);
    rk_watch_free(g->unreachable);
    rk_watch_free(g->callers);
}

static rk_db *gateway_store(void *app)
{
    return ((gateway *)app)->db;
}

const rk_role_desc rk_gateway_role = {
    .role = RK_ROLE_GATEWAY,
    .help = "run an agency's interface system (--config FILE)",
    .app_size = sizeof(gateway),
    .open = open_gateway,
    .stop = stop_gateway,
    .close = close_gateway,
    .store = gateway_store,
    .routes = routes,
    .n_routes = sizeof routes / sizeof routes[0],
    .metrics = metrics,
};
