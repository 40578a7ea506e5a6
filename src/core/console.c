/* console.c — the network operator's console (see console.h). */
#include "core/console.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "lib/util.h"
#include "net/http_server.h"
#include "node/service.h"

/* One node's /healthz as the sweeper last saw it. */
typedef struct seen {
    char id[RK_ID_MAX];
    long http_status;   /* 0: no answer */
    int64_t checked_ms;
    json_t *health;     /* its answer's JSON, or NULL */
} seen;

typedef struct core_console {
    core *c;
    rk_service *sweeper;
    pthread_mutex_t lock; /* guards sights and n_sights, swapped whole after each round */
    seen *sights;
    size_t n_sights;
} core_console;

static void free_sights(seen *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(s[i].health);
    free(s);
}

/* A round: every server node's /healthz, one after another (a down node
 * costs a refused connection or the call's timeout). */
static int64_t sweep(void *arg)
{
    core_console *k = arg;
    rk_node *node = k->c->node;
    const rk_registry *reg = node->registry;
    seen *round = calloc(reg->n_nodes ? reg->n_nodes : 1, sizeof *round);
    size_t n = 0;
    for (size_t i = 0; round && i < reg->n_nodes; i++) {
        const rk_peer_node *p = &reg->nodes[i];
        if (!(p->role & RK_ROLES_SERVER) || !p->url[0])
            continue;
        seen *s = &round[n++];
        snprintf(s->id, sizeof s->id, "%s", p->id);
        rk_http_result res = {0};
        if (rk_node_call(node, "GET", p, "/healthz", NULL, &res, NULL) == RK_OK || res.status) {
            s->http_status = res.status;
            s->health = res.body ? json_loadb(res.body, res.body_len, 0, NULL) : NULL;
            if (s->health && !json_is_object(s->health)) {
                json_decref(s->health);
                s->health = NULL;
            }
        }
        s->checked_ms = rk_node_now_ms(node);
        rk_http_result_clear(&res);
    }
    if (round) {
        pthread_mutex_lock(&k->lock);
        seen *old = k->sights;
        size_t old_n = k->n_sights;
        k->sights = round;
        k->n_sights = n;
        pthread_mutex_unlock(&k->lock);
        free_sights(old, old_n);
    }
    return (int64_t)node->cfg.health_sweep_s * 1000;
}

rk_rc core_console_start(core *c)
{
    core_console *k = calloc(1, sizeof *k);
    if (!k)
        return RK_ERR_NOMEM;
    k->c = c;
    pthread_mutex_init(&k->lock, NULL);
    c->console = k;
    if (c->node->cfg.health_sweep_s > 0)
        return rk_service_start(1, sweep, k, &k->sweeper);
    return RK_OK;
}

void core_console_stop(core *c)
{
    core_console *k = c->console;
    if (!k)
        return;
    rk_service_stop(k->sweeper);
    free_sights(k->sights, k->n_sights);
    pthread_mutex_destroy(&k->lock);
    free(k);
    c->console = NULL;
}

/* The console is the network operator's: not an agency's operator. */
static int network_operator(const rk_request *req, rk_response *resp)
{
    if (!req->peer->agency[0])
        return 1;
    rk_reply_error(resp, 403, "role_not_allowed", "the console is the network operator's");
    return 0;
}

void core_handle_console_page(void *app, const rk_request *req, rk_response *resp)
{
    (void)app;
    if (network_operator(req, resp))
        rk_asset_serve(rk_console_assets, rk_console_n_assets, req, resp);
}

/* "ok", "degraded" (answered, but not ok), "down" (no answer) or
 * "unknown" (not swept yet). */
static const char *state_of(const seen *s)
{
    if (!s)
        return "unknown";
    if (!s->http_status)
        return "down";
    const char *st = json_string_value(json_object_get(s->health, "status"));
    return s->http_status == 200 && st && strcmp(st, "ok") == 0 ? "ok" : "degraded";
}

void core_handle_network(void *app, const rk_request *req, rk_response *resp)
{
    core *c = app;
    if (!network_operator(req, resp))
        return;
    const rk_registry *reg = c->node->registry;
    core_console *k = c->console;
    json_t *nodes = json_array();
    pthread_mutex_lock(&k->lock);
    for (size_t i = 0, j = 0; nodes && i < reg->n_nodes; i++) {
        const rk_peer_node *p = &reg->nodes[i];
        const seen *s = NULL;
        /* the sweep follows the registry's order: look ahead from the last match */
        for (size_t t = 0; t < k->n_sights && !s; t++) {
            size_t at = (j + t) % k->n_sights;
            if (strcmp(k->sights[at].id, p->id) == 0) {
                s = &k->sights[at];
                j = at + 1;
            }
        }
        json_t *n = json_pack("{s:s,s:s,s:s,s:s,s:s}", "id", p->id, "role", rk_role_name(p->role), "agency", p->agency,
                              "kind", p->kind, "url", p->url);
        if (n && (p->role & RK_ROLES_SERVER) && p->url[0]) {
            char at[32] = "";
            if (s)
                rk_format_time(s->checked_ms, at, sizeof at);
            json_t *h = json_pack("{s:s,s:I}", "state", state_of(s), "http_status", (json_int_t)(s ? s->http_status : 0));
            if (h && s) {
                json_object_set_new(h, "checked_at", json_string(at));
                if (s->health)
                    json_object_set_new(h, "healthz", json_deep_copy(s->health));
            }
            json_object_set_new(n, "health", h ? h : json_null());
        }
        json_array_append_new(nodes, n);
    }
    pthread_mutex_unlock(&k->lock);
    if (!nodes) {
        rk_reply_error(resp, 500, "internal", "out of memory");
        return;
    }
    rk_reply_json(resp, 200,
                  json_pack("{s:s,s:s,s:i,s:o}", "network", reg->network, "served_by", c->node->self->id,
                            "health_sweep_s", c->node->cfg.health_sweep_s, "nodes", nodes));
}
