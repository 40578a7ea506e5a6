/* agency.c — an agency node: wires its store, its peers (J-LIS, its own
 * gateway) and its routes. Business systems of its own agency call the API;
 * only its own gateway may deliver notices and provision requests. */
#include <jansson.h>
#include <stdio.h>

#include "agency/agency.h"
#include "agency/held_store.h"
#include "lib/log.h"
#include "roles.h"

/* Every route that calls another node is started (`start`, on the event
 * thread): a chain of steps (node/flow.h) whose store work and CMS run on
 * the pool and whose calls go through the loop's relay; no thread waits on
 * a peer. The `fn` routes only read or write the store and answer from it
 * (a group of provisions seals its values too): on a worker, they are a
 * pool step by construction. Batch queries are sent by the node's own
 * runner (batches.c), never by a route. */
static const rk_route routes[] = {
    {"POST", "/v1/persons", RK_ROLE_SYSTEM, 1, NULL, 0, agency_start_person},
    {"GET", "/v1/persons/*", RK_ROLE_SYSTEM, 1, agency_get_person},
    {"PUT", "/v1/persons/*", RK_ROLE_SYSTEM, 1, agency_put_handling}, /* …/{person}/handling */
    {"POST", "/v1/code-notices", RK_ROLE_GATEWAY, 1, agency_post_code_notice},
    {"POST", "/v1/persons/batch", RK_ROLE_SYSTEM, 1, NULL, 0, agency_start_persons_batch},
    {"POST", "/v1/persons/recheck", RK_ROLE_SYSTEM, 1, NULL, 0, agency_start_recheck},
    {"POST", "/v1/code-notices/batch", RK_ROLE_GATEWAY, 1, agency_post_code_notices_batch},
    {"PUT", "/v1/data/*", RK_ROLE_SYSTEM, 1, agency_put_data},
    {"POST", "/v1/queries", RK_ROLE_SYSTEM, 1, NULL, 0, agency_start_query},
    {"POST", "/v1/queries/batch", RK_ROLE_SYSTEM, 1, agency_post_queries_batch},
    {"GET", "/v1/queries/batch/*", RK_ROLE_SYSTEM, 1, agency_get_queries_batch}, /* matched before the next */
    {"GET", "/v1/queries/*", RK_ROLE_SYSTEM, 1, agency_get_query},
    {"POST", "/v1/provisions", RK_ROLE_GATEWAY, 1, NULL, 0, agency_start_provision},
    {"POST", "/v1/provisions/batch", RK_ROLE_GATEWAY, 1, agency_post_provisions_batch},
    {"GET", "/v1/records", RK_ROLE_SYSTEM | RK_ROLE_OPERATOR, 1, agency_get_records},
    {"GET", "/v1/records/proof", RK_ROLE_SYSTEM | RK_ROLE_OPERATOR, 1, agency_get_proof},
    {"GET", "/v1/records/consistency", RK_ROLE_SYSTEM | RK_ROLE_OPERATOR, 1, agency_get_consistency},
    {"GET", "/v1/records/heads", RK_ROLE_SYSTEM | RK_ROLE_OPERATOR, 1, agency_get_heads},
    {"GET", "/v1/checkpoint", RK_ROLES_ANY, 0, agency_get_checkpoint},
    {"GET", "/v1/tile/*", RK_ROLES_ANY, 0, agency_get_tile},
    {"POST", "/v1/unlawful", RK_ROLE_OPERATOR, 1, NULL, 0, agency_start_unlawful},
    {"POST", "/v1/deletions", RK_ROLE_GATEWAY, 1, agency_post_deletion},
    {"POST", "/v1/records/*", RK_ROLE_OPERATOR, 1, NULL, 0, agency_start_nondisclosure}, /* …/{exchange_id}/nondisclosure */
    {"GET", "/v1/held-provisions", RK_ROLE_OPERATOR, 1, agency_get_held},
    {"POST", "/v1/held-provisions/*", RK_ROLE_OPERATOR, 1, agency_post_held_action}, /* …/{exchange_id}/answer|decline */
    {"POST", "/v1/query-results", RK_ROLE_GATEWAY, 1, agency_post_query_result},
};

static int health(void *app, json_t *checks)
{
    agency *a = app;
    json_object_set_new(checks, "persons_pending", json_integer((json_int_t)agency_store_count(a->store, "pending")));
    json_object_set_new(checks, "persons_linked", json_integer((json_int_t)agency_store_count(a->store, "linked")));
    int64_t held = 0, unsent = 0;
    if (held_store_counts(agency_store_db(a->store), &held, &unsent) == RK_OK) {
        json_object_set_new(checks, "held_requests", json_integer((json_int_t)held));
        json_object_set_new(checks, "late_results_unsent", json_integer((json_int_t)unsent));
    }
    return 0;
}

/* On the event thread, after the last started query or provision finished. */

static rk_rc open_agency(rk_node *node, void *app)
{
    agency *a = app;
    a->jlis = rk_registry_find(node->registry, RK_ROLE_JLIS, NULL);
    a->gateway = rk_registry_find(node->registry, RK_ROLE_GATEWAY, node->self->agency);
    if (!a->jlis || !a->gateway) {
        rk_error("the registry lacks J-LIS or the gateway of %s", node->self->agency);
        return RK_ERR_CONFIG;
    }
    if (node->cfg.pending_new_after_ms <= node->cfg.peer_timeout_ms) { /* a request in flight is not swept */
        rk_error("[agency] pending_new_after_ms (%d) must exceed [peer] timeout_ms (%d)",
                 node->cfg.pending_new_after_ms, node->cfg.peer_timeout_ms);
        return RK_ERR_CONFIG;
    }
    rk_rc rc;
    if ((rc = agency_store_open(node->cfg.db, 0, node->cfg.id, &a->store)) != RK_OK ||
        (rc = rk_node_incidents_start(node, agency_store_db(a->store))) != RK_OK ||
        (rc = rk_records_log_start(node, agency_store_db(a->store), node->cfg.head_interval_ms, &a->log)) != RK_OK ||
        (rc = rk_node_clock_start(node)) != RK_OK)
        return rc;
    if ((rc = agency_sweeper_start(a)) != RK_OK || (rc = agency_held_start(a)) != RK_OK)
        return rc;
    return agency_batches_start(a);
}

static void stop_agency(void *app)
{
    agency *a = app;
    agency_batches_stop(a);
    agency_sweeper_stop(a);
    agency_held_stop(a);
    rk_records_log_stop(a->log);
    a->log = NULL;
}

static void close_agency(void *app)
{
    agency_store_close(((agency *)app)->store);
}

static rk_db *agency_db(void *app)
{
    return agency_store_db(((agency *)app)->store);
}

const rk_role_desc rk_agency_role = {
    .role = RK_ROLE_AGENCY,
    .help = "run an agency's intermediate server (--config FILE)",
    .app_size = sizeof(agency),
    .open = open_agency,
    .stop = stop_agency,
    .close = close_agency,
    .store = agency_db,
    .routes = routes,
    .n_routes = sizeof routes / sizeof routes[0],
    .health = health,
};
