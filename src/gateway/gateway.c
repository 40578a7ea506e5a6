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
#include "gateway/messages.h"
#include "lib/db.h"
#include "lib/util.h"
#include "lib/watch.h"
#include "tools/roles.h"



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
    message_log_add(&g->log, &m);
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

static const rk_route routes[] = {
    {"POST", "/v1/code-notices", RK_ROLE_CORE, 0, to_agency},
    {"POST", "/v1/code-notices/batch", RK_ROLE_CORE, 0, to_agency},
    {"POST", "/v1/provisions", RK_ROLE_CORE, 0, to_agency},
    {"POST", "/v1/exchanges", RK_ROLE_AGENCY, 1, to_core},
    {"POST", "/v1/incidents", RK_ROLE_AGENCY, 1, to_core, 1},
    {"POST", "/v1/deletion-requests", RK_ROLE_AGENCY, 1, to_core},
    {"POST", "/v1/deletions", RK_ROLE_CORE, 0, to_agency},
    {"GET", "/v1/records", RK_ROLE_OPERATOR, 0, records}, /* its agency's operator or the network's */
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
    if ((rc = rk_db_open(node->cfg.db, messages_schema, &g.db)) != RK_OK ||
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
