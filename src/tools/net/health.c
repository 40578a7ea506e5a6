/* health.c — the health of a network's nodes (/healthz with the operator's
 * credentials): waiting until all are healthy, and `renkei net status`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "net/http_client.h"
#include "net/registry.h"
#include "tools/net/net.h"
#include "tools/net/net_internal.h"
#include "tools/toolkit.h"

#define NET_POLL_MS 100
#define NET_HEALTH_CALL_MS 2000

typedef enum { HEALTH_OK, HEALTH_DEGRADED, HEALTH_DOWN } net_health;

static const char *const health_names[] = {"ok", "degraded", "down"};

typedef struct health_ctx {
    rk_registry *reg;
    tk_client op; /* the operator's credential and client */
} health_ctx;

static void health_close(health_ctx *h)
{
    tk_client_close(&h->op);
    rk_registry_free(h->reg);
    memset(h, 0, sizeof *h);
}

/* The registry and a client holding the operator's credentials. */
static rk_rc health_open(const char *dir, health_ctx *h, char *err, size_t errlen)
{
    memset(h, 0, sizeof *h);
    rk_rc rc = tk_registry_load(dir, &h->reg, err, errlen);
    if (rc == RK_OK && (rc = tk_client_open(dir, "clients/operator", &h->op, err, errlen)) != RK_OK) {
        if (h->op.failed == TK_STEP_CERT)
            net_set_err(err, errlen, "%s: cannot load the operator certificate: %s", h->op.failed_path,
                        rk_strerror(rc));
        else if (h->op.failed == TK_STEP_KEY)
            net_set_err(err, errlen, "%s: cannot load the operator key: %s", h->op.failed_path, rk_strerror(rc));
        else if (h->op.failed == TK_STEP_CLIENT)
            net_set_err(err, errlen, "cannot create a client: %s", rk_strerror(rc));
    }
    if (rc != RK_OK)
        health_close(h);
    return rc;
}

static net_health check_url(health_ctx *h, const char *base, const char *pin, int timeout_ms)
{
    char url[RK_URL_MAX + 16];
    rk_http_result res;
    if (tk_path(url, sizeof url, "%s/healthz", base) != RK_OK)
        return HEALTH_DOWN;
    rk_rc rc = rk_client_call(h->op.client, "GET", url, pin, NULL, 0, timeout_ms, &res);
    net_health health = rc != RK_OK ? HEALTH_DOWN : res.status == 200 ? HEALTH_OK : HEALTH_DEGRADED;
    rk_http_result_clear(&res);
    return health;
}

/* A node with a backup line (the core) is ok when both lines are, down when
 * both are down, degraded otherwise. */
static net_health check_node(health_ctx *h, const rk_peer_node *n, int timeout_ms)
{
    net_health primary = check_url(h, n->url, n->pin, timeout_ms);
    if (!n->backup_url[0])
        return primary;
    net_health backup = check_url(h, n->backup_url, n->pin, timeout_ms);
    if (primary == backup)
        return primary;
    return HEALTH_DEGRADED;
}

/* One round over the nodes not yet healthy; returns how many still are not,
 * naming the first in pending. */
static size_t health_round(health_ctx *h, char *healthy, char *pending, size_t pendlen)
{
    size_t left = 0;
    for (size_t i = 0; i < h->reg->n_nodes; i++) {
        const rk_peer_node *n = &h->reg->nodes[i];
        if (!net_is_server_role(n->role) || healthy[i])
            continue;
        if (check_node(h, n, NET_HEALTH_CALL_MS) == HEALTH_OK) {
            healthy[i] = 1;
            continue;
        }
        if (left++ == 0)
            net_set_err(pending, pendlen, "%s", n->id);
    }
    return left;
}

/* Polls until all server nodes are healthy. procs (optional): only its
 * nodes (`net up --only`), and fails early when one of them exits. Stops
 * early when `net up` is asked to stop. */
rk_rc net_wait_healthy(const char *dir, int timeout_ms, rk_net_procs *procs, char *pending, size_t pendlen)
{
    health_ctx h;
    char *healthy = NULL;
    int64_t deadline = rk_mono_ms() + timeout_ms;
    rk_rc rc = health_open(dir, &h, pending, pendlen);
    if (rc != RK_OK)
        return rc;
    if (!(healthy = calloc(h.reg->n_nodes + 1, 1))) {
        rc = RK_ERR_NOMEM;
        goto done;
    }
    if (procs) { /* the nodes not started count as done */
        memset(healthy, 1, h.reg->n_nodes);
        for (size_t i = 0; i < rk_net_count(procs); i++) {
            const rk_peer_node *n = rk_registry_by_id(h.reg, net_proc_id(procs, i));
            if (n)
                healthy[n - h.reg->nodes] = 0;
        }
    }
    for (;;) {
        if (health_round(&h, healthy, pending, pendlen) == 0)
            break;
        if ((procs && net_reap_unexpected(procs) > 0) || net_stop_requested) {
            rc = RK_ERR_UPSTREAM;
            break;
        }
        if (rk_mono_ms() >= deadline) {
            rc = RK_ERR_TIMEOUT;
            break;
        }
        tk_sleep_ms(NET_POLL_MS);
    }
done:
    free(healthy);
    health_close(&h);
    return rc;
}

rk_rc rk_net_wait_healthy(const char *dir, int timeout_ms)
{
    char pending[RK_ID_MAX + 256];
    return net_wait_healthy(dir, timeout_ms, NULL, pending, sizeof pending);
}

int rk_net_status(const char *dir, FILE *out)
{
    health_ctx h;
    char err[512] = "";
    if (health_open(dir, &h, err, sizeof err) != RK_OK) {
        fprintf(stderr, "renkei net: %s\n", err);
        return 1;
    }
    int width = 4, bad = 0;
    for (size_t i = 0; i < h.reg->n_nodes; i++)
        if (net_is_server_role(h.reg->nodes[i].role) && (int)strlen(h.reg->nodes[i].id) > width)
            width = (int)strlen(h.reg->nodes[i].id);
    for (size_t i = 0; i < h.reg->n_nodes; i++) {
        const rk_peer_node *n = &h.reg->nodes[i];
        if (!net_is_server_role(n->role))
            continue;
        net_health health = check_node(&h, n, NET_HEALTH_CALL_MS);
        fprintf(out, "%-*s %-7s %s %s\n", width, n->id, rk_role_name(n->role), n->url, health_names[health]);
        bad |= health != HEALTH_OK;
    }
    if (net_ha_present(dir)) /* and the database servers (ha.c) */
        bad |= net_ha_status(dir, out, width);
    else if (net_pg_present(dir)) /* or the one server (pg.c) */
        bad |= net_pg_status(dir, out, width);
    fflush(out);
    health_close(&h);
    return bad ? 1 : 0;
}
