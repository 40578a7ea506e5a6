/* authz.c — authorisation of each request before any handler runs: a registered certificate, a registered
 * address (第5-2(2)), a route and role the route allows, the agency (deny by default, 第5-4(1)), the clock
 * skew (第6-8); refusals counted, and a burst from one source raised as an incident (the refusal watch). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "net/server_internal.h"

/* Counts a refusal against its source; a burst raises one incident. */
void note_refusal(rk_server *srv, const char *source, const char *what)
{
    if (!srv->refusals || !srv->cfg.on_incident || !rk_watch_hit(srv->refusals, source, rk_now_ms()))
        return;
    char summary[256];
    snprintf(summary, sizeof summary, "%d or more refused calls (%s) from %s within %d s", srv->cfg.refusal_threshold,
             what, source, srv->cfg.refusal_window_ms / 1000);
    srv->cfg.on_incident(srv->cfg.incident_ctx, "unauthorized_access", summary);
}

static int path_matches(const char *pattern, const char *path)
{
    size_t n = strlen(pattern);
    if (n > 0 && pattern[n - 1] == '*')
        return strncmp(pattern, path, n - 1) == 0 && path[n - 1] != '\0';
    return strcmp(pattern, path) == 0;
}

const rk_route *route_find(const rk_server *srv, const char *method, const char *path, int *path_known,
                           size_t *index)
{
    static const rk_route builtin[] = {
        {"GET", "/healthz", RK_ROLES_ANY, 0, NULL},
        {"GET", "/metrics", RK_ROLES_ANY, 0, NULL},
    };
    *path_known = 0;
    for (size_t i = 0; i < srv->cfg.n_routes + 2; i++) {
        const rk_route *r = i < srv->cfg.n_routes ? &srv->cfg.routes[i] : &builtin[i - srv->cfg.n_routes];
        if (!path_matches(r->path, path))
            continue;
        *path_known = 1;
        if (strcmp(r->method, method) == 0) {
            *index = i;
            return r;
        }
    }
    return NULL;
}

/* Finds the route and checks the caller; on refusal replies and returns NULL. */
const rk_route *authorise(rk_server *srv, struct evhttp_request *req, const char *method,
                          const char *path, const rk_peer_node **peer_out, size_t *stats_index)
{
    /* the connection's peer as the registry in force has it now (DESIGN §3):
     * by its certificate, so that a previous one is refused once its overlap ends */
    const rk_peer_node *peer = connection_peer(srv, req);
    char *addr = NULL;
    ev_uint16_t port = 0;
    evhttp_connection_get_peer(evhttp_request_get_connection(req), &addr, &port);
    if (!peer) {
        count(&srv->unknown_peer);
        note_refusal(srv, addr ? addr : "unknown address", "unregistered certificate");
        refuse(req, srv, 403, "unknown_peer", "the client certificate is not registered in this network");
        return NULL;
    }
    if (!addr || !rk_peer_address_allowed(peer, addr)) {
        count(&srv->address_refusals);
        note_refusal(srv, peer->id, "unregistered address");
        rk_warn("refused %s from unregistered address", peer->id);
        refuse(req, srv, 403, "address_not_allowed", "this peer may not call from this address");
        return NULL;
    }
    *peer_out = peer;
    int path_known = 0;
    const rk_route *found = route_find(srv, method, path, &path_known, stats_index);
    if (!found) {
        count(&srv->not_found);
        refuse(req, srv, path_known ? 405 : 404, path_known ? "method_not_allowed" : "not_found",
               path_known ? "method not allowed on this path" : "no such endpoint");
        return NULL;
    }
    /* same_agency binds every caller to this node's agency, except the
     * network's own nodes (core, J-LIS), which serve all agencies. */
    int network_node = peer->role == RK_ROLE_CORE || peer->role == RK_ROLE_JLIS;
    int agency_ok = !found->same_agency || network_node || strcmp(peer->agency, srv->cfg.agency) == 0;
    /* The PIA register's operator: the routes made for it alone (法28条's
     * register, PUT /v1/pia), not even /healthz — whatever a table says. */
    int ppc_operator_ok = peer->role != RK_ROLE_PPC_OPERATOR || found->roles == RK_ROLE_PPC_OPERATOR;
    if (!(found->roles & peer->role) || !agency_ok || !ppc_operator_ok) {
        count(&srv->role_refusals);
        note_refusal(srv, peer->id, "role or agency not allowed");
        rk_warn("refused %s (role %s) on %s %s", peer->id, rk_role_name(peer->role), method, path);
        int by_agency = !agency_ok && ppc_operator_ok;
        refuse(req, srv, 403, by_agency ? "wrong_agency" : "role_not_allowed",
               by_agency ? "the caller belongs to another agency" : "the caller's role may not call this endpoint");
        return NULL;
    }
    return found;
}

/* A card's holder on the person listener: the person routes only, each
 * open to RK_ROLE_PERSON; no /healthz, no /metrics, no node route. */
const rk_route *authorise_person(rk_server *srv, struct evhttp_request *req, const char *method, const char *path,
                                 rk_peer_node *person, size_t *stats_index)
{
    if (!connection_person(req, person)) { /* the handshake checked the card: not reached */
        count(&srv->unknown_peer);
        refuse(req, srv, 403, "unknown_card", "the client certificate is not a card of this network");
        return NULL;
    }
    int path_known = 0;
    for (size_t i = 0; i < srv->cfg.n_person_routes; i++) {
        const rk_route *r = &srv->cfg.person_routes[i];
        if (!path_matches(r->path, path))
            continue;
        path_known = 1;
        if (strcmp(r->method, method) != 0)
            continue;
        if (!(r->roles & RK_ROLE_PERSON))
            break;
        *stats_index = PERSON_STATS + i;
        return r;
    }
    count(&srv->not_found);
    refuse(req, srv, path_known ? 405 : 404, path_known ? "method_not_allowed" : "not_found",
           path_known ? "method not allowed on this path" : "no such page");
    return NULL;
}

/* 第6-8: a request states when it was created; one too far from this
 * node's clock is refused (a replay, or a clock that drifted). */
int check_skew(job *j, struct evhttp_request *req)
{
    const char *created = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Renkei-Created");
    if (j->srv->cfg.max_skew_ms <= 0 || j->route->any_clock)
        return 1;
    /* Nodes always state it; business systems and operators may not. */
    rk_role r = j->in.peer->role;
    if (!created && !(r & RK_ROLES_SERVER))
        return 1;
    if (!created)
        created = "0";
    long long t = strtoll(created, NULL, 10);
    long long skew = (long long)j->in.received_ms - t;
    if (skew < 0)
        skew = -skew;
    if (t > 0 && skew <= j->srv->cfg.max_skew_ms)
        return 1;
    count(&j->srv->skew_refusals);
    char msg[160];
    snprintf(msg, sizeof msg, "the request was created %lld ms away from this node's clock (limit %lld ms)", skew,
             (long long)j->srv->cfg.max_skew_ms);
    refuse(req, j->srv, 400, "clock_skew", msg);
    return 0;
}
