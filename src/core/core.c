/* core.c — the core system node (コアシステム). It holds no My Number and no
 * personal data content: persons are internal serials, agencies see only
 * their own codes (DESIGN §1, §2.1). This file wires the store, the code
 * key and the routes, and runs the server. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/console.h"
#include "core/catalog.h"
#include "core/core.h"
#include "core/pia.h"
#include "node/incidents.h"
#include "lib/log.h"
#include "records/records.h"
#include "lib/util.h"
#include "roles.h"


/* GET /v1/registry (DESIGN §3, §4): the operator's signed registry in force
 * and the CA's CRL, to any registered caller (node/registry_refresh.c). */
static void handle_registry(void *app, const rk_request *req, rk_response *resp)
{
    rk_node_registry_reply(((core *)app)->node, req, resp);
}

/* The flows that call another node are started routes (node/flow.h): no
 * thread waits on a peer. The `fn` routes only read or write this node's
 * store, so each is one step on a worker by construction: /v1/codes[/batch]
 * (J-LIS's acquisitions, committed before the answer), the records and the
 * incidents. */
static const rk_route routes[] = {
    {"POST", "/v1/codes", RK_ROLE_JLIS, 0, core_handle_codes},
    {"POST", "/v1/codes/batch", RK_ROLE_JLIS, 0, core_handle_codes_batch},
    {"POST", "/v1/exchanges", RK_ROLE_GATEWAY, 0, NULL, 0, core_start_exchange},
    {"POST", "/v1/exchanges/batch", RK_ROLE_GATEWAY, 0, NULL, 0, core_start_exchange_batch},
    {"POST", "/v1/provision-results", RK_ROLE_GATEWAY, 0, core_handle_provision_result}, /* the provider's gateway */
    {"POST", "/v1/deletion-requests", RK_ROLE_GATEWAY, 0, NULL, 0, core_start_deletion_request},
    {"GET", "/v1/records", RK_ROLE_OPERATOR, 0, core_handle_records},
    {"GET", "/v1/records/proof", RK_ROLE_OPERATOR, 0, core_handle_proof},
    {"GET", "/v1/records/consistency", RK_ROLE_OPERATOR, 0, core_handle_consistency},
    {"GET", "/v1/records/heads", RK_ROLE_OPERATOR, 0, core_handle_heads},
    {"GET", "/v1/checkpoint", RK_ROLES_ANY, 0, core_handle_checkpoint},
    {"GET", "/v1/tile/*", RK_ROLES_ANY, 0, core_handle_tile},
    {"POST", "/v1/persons/exchanges", RK_ROLE_PORTAL, 0, core_handle_person_exchanges},
    {"POST", "/v1/persons/data", RK_ROLE_PORTAL, 0, NULL, 0, core_start_person_data},
    {"POST", "/v1/nondisclosures", RK_ROLE_GATEWAY, 0, core_handle_nondisclosure},
    {"POST", "/v1/nondisclosures/lift", RK_ROLE_GATEWAY, 0, core_handle_nondisclosure_lift},
    {"POST", "/v1/incidents",
     RK_ROLE_GATEWAY | RK_ROLE_JLIS | RK_ROLE_OPERATOR | RK_ROLE_WITNESS | RK_ROLE_PORTAL | RK_ROLE_PPC, 0,
     core_handle_incident, 1},
    {"GET", "/v1/incidents", RK_ROLE_OPERATOR, 0, core_handle_incidents},
    {"GET", "/v1/network", RK_ROLE_OPERATOR, 0, core_handle_network},
    {"GET", "/console", RK_ROLE_OPERATOR, 0, core_handle_console_page},
    {"GET", "/console/console.js", RK_ROLE_OPERATOR, 0, core_handle_console_page},
    {"GET", "/console/console.css", RK_ROLE_OPERATOR, 0, core_handle_console_page},
    {"GET", "/v1/catalog", RK_ROLES_ANY, 0, core_handle_catalog},
    {"GET", "/v1/registry", RK_ROLES_ANY, 0, handle_registry},
};

/* Loads the permission table, and the catalogue of names when [core]
 * catalogue names one; on SIGHUP a malformed file is refused with file and
 * line, and the table and catalogue in force stay (issue: permission table). */
static rk_rc load_permissions(core *c)
{
    rk_permissions *fresh = NULL, *names = NULL;
    char err[512] = "";
    rk_rc rc = rk_permissions_load(c->node->cfg.permissions, NULL, &fresh, err, sizeof err);
    if (rc != RK_OK) {
        rk_error("permission table refused: %s", err);
        return rc;
    }
    if (c->node->cfg.catalogue[0] && (rc = rk_catalogue_load(c->node->cfg.catalogue, &names, err, sizeof err)) != RK_OK) {
        rk_error("catalogue refused: %s", err);
        rk_permissions_free(fresh);
        return rc;
    }
    pthread_rwlock_wrlock(&c->perms_lock);
    rk_permissions *old = c->perms, *old_names = c->catalogue;
    c->perms = fresh;
    c->catalogue = names;
    pthread_rwlock_unlock(&c->perms_lock);
    rk_permissions_free(old);
    rk_permissions_free(old_names);
    rk_info("permission table loaded: %zu rows", rk_permissions_count(fresh));
    return RK_OK;
}

static void on_reload(void *app)
{
    core *c = app;
    if (c->cat)
        core_catalog_wake(c); /* a rescan of [core] catalog_dir at once */
    else
        load_permissions(c);
}

static int health(void *app, json_t *checks)
{
    core *c = app;
    json_object_set_new(checks, "keys_loaded", json_boolean(c->codec != NULL));
    pthread_rwlock_rdlock(&c->perms_lock);
    json_object_set_new(checks, "permission_rows", json_integer((json_int_t)rk_permissions_count(c->perms)));
    json_object_set_new(checks, "catalog_version", json_integer((json_int_t)rk_permissions_version(c->perms)));
    int no_catalogue = c->cat && !c->perms; /* signed versions held, none in force yet: every request refused */
    pthread_rwlock_unlock(&c->perms_lock);
    json_object_set_new(checks, "outbox_depth", json_integer((json_int_t)core_store_outbox_depth(c->store)));
    json_object_set_new(checks, "late_results_pending", json_integer((json_int_t)core_results_pending(c)));
    int pia_unknown = core_pia_health(c->pia, checks);
    return !c->codec || no_catalogue || pia_unknown;
}

static void metrics(void *app, struct evbuffer *out)
{
    core *c = app;
    rk_metric_head(out, "renkei_outbox_depth", "gauge", "Code notices waiting for delivery to their agency.");
    evbuffer_add_printf(out, "renkei_outbox_depth %zu\n", core_store_outbox_depth(c->store));
    rk_metric_head(out, "renkei_notices_delivered_total", "counter", "Code notices an agency acknowledged.");
    evbuffer_add_printf(out, "renkei_notices_delivered_total %llu\n", (unsigned long long)c->notices_delivered);
    rk_metric_head(out, "renkei_notice_retries_total", "counter",
                   "Deliveries of code notices that failed and wait for a retry.");
    evbuffer_add_printf(out, "renkei_notice_retries_total %llu\n", (unsigned long long)c->notices_failed_attempts);
    pthread_rwlock_rdlock(&c->perms_lock);
    long long catalog_version = (long long)rk_permissions_version(c->perms);
    pthread_rwlock_unlock(&c->perms_lock);
    rk_metric_head(out, "renkei_catalog_version", "gauge",
                   "The catalogue version in force (0: the unsigned table, or none yet).");
    evbuffer_add_printf(out, "renkei_catalog_version %lld\n", catalog_version);
    rk_metric_head(out, "renkei_incidents_total", "counter", "Incidents kept at the core.");
    evbuffer_add_printf(out, "renkei_incidents_total %lld\n",
                        (long long)rk_incidents_count(core_store_db(c->store), NULL));
    rk_metric_head(out, "renkei_records_total", "counter",
                   "Records written to the core's records log (its tree size).");
    evbuffer_add_printf(out, "renkei_records_total %lld\n", (long long)rk_records_count(core_store_db(c->store)));
    /* -1 before the first signed head */
    int64_t age_ms = rk_records_log_head_age_ms(c->log);
    rk_metric_head(out, "renkei_tree_head_age_seconds", "gauge",
                   "Seconds since the records log's last signed tree head; -1 before the first.");
    evbuffer_add_printf(out, "renkei_tree_head_age_seconds %.3f\n", age_ms < 0 ? -1.0 : (double)age_ms / 1000.0);
    core_pia_metrics(c->pia, out);
}

/* Codes carry a 32-bit agency number derived from the agency id; two
 * agencies with the same number would share codes, so the core refuses to
 * start on such a registry (rename one agency). */
typedef struct agency_no {
    uint32_t no;
    const char *agency;
} agency_no;

static int by_number(const void *a, const void *b)
{
    const agency_no *x = a, *y = b;
    return x->no < y->no ? -1 : x->no > y->no;
}

static rk_rc check_agency_numbers(const rk_registry *reg)
{
    /* sorted by number, neighbours compared: O(n log n) for thousands of agencies */
    agency_no *v = calloc(reg->n_nodes + 1, sizeof *v);
    size_t n = 0;
    if (!v)
        return RK_ERR_NOMEM;
    for (size_t i = 0; i < reg->n_nodes; i++)
        if (reg->nodes[i].role == RK_ROLE_AGENCY)
            v[n++] = (agency_no){rk_agency_number(reg->nodes[i].agency), reg->nodes[i].agency};
    qsort(v, n, sizeof *v, by_number);
    rk_rc rc = RK_OK;
    for (size_t i = 1; i < n && rc == RK_OK; i++)
        if (v[i].no == v[i - 1].no && strcmp(v[i].agency, v[i - 1].agency) != 0) {
            rk_error("agencies %s and %s have the same agency number; rename one", v[i - 1].agency, v[i].agency);
            rc = RK_ERR_CONFIG;
        }
    free(v);
    return rc;
}

/* The witnesses' vkeys (network.json): a person's proofs are against a
 * checkpoint every one of them cosigned. */
static rk_rc load_witnesses(core *c, const rk_registry *reg)
{
    for (size_t i = 0; i < reg->n_nodes; i++) {
        const rk_peer_node *n = &reg->nodes[i];
        if (n->role != RK_ROLE_WITNESS)
            continue;
        if (c->n_witnesses == sizeof c->witnesses / sizeof c->witnesses[0] ||
            rk_vkey_parse(n->vkey, &c->witnesses[c->n_witnesses]) != RK_OK ||
            c->witnesses[c->n_witnesses].type != RK_VKEY_COSIGNATURE) {
            rk_error("network.json: witness %s: no cosignature vkey, or more than %zu witnesses", n->id,
                     sizeof c->witnesses / sizeof c->witnesses[0]);
            return RK_ERR_CONFIG;
        }
        c->n_witnesses++;
    }
    return RK_OK;
}

/* On the event thread, after the last started request finished. */

static rk_rc open_core(rk_node *node, void *app)
{
    core *c = app;
    rk_rc rc;
    pthread_rwlock_init(&c->perms_lock, NULL);
    if ((rc = check_agency_numbers(node->registry)) != RK_OK || (rc = load_witnesses(c, node->registry)) != RK_OK)
        return rc;
    int signed_catalog = node->cfg.catalog_dir[0] != '\0'; /* else the unsigned CSV table */
    if (!node->cfg.master_key_file[0] || (!signed_catalog && !node->cfg.permissions[0])) {
        rk_error("[core] %s is required",
                 !node->cfg.master_key_file[0] ? "master_key_file" : "permissions (or catalog_dir)");
        return RK_ERR_CONFIG;
    }
    char why[512];
    /* plain or wrapped by the core's key, which may be in a token (core/codes.h) */
    if ((rc = rk_codec_load(node->cfg.master_key_file, node->cert, node->key, &c->codec, why, sizeof why)) != RK_OK) {
        rk_error("%s", why);
        return rc;
    }
    if ((rc = core_store_open(node->cfg.db, 0, &c->store)) != RK_OK)
        return rc;
    core_store_set_code_version(c->store, rk_codec_versions(c->codec)); /* new issues: the newest version */
    if (!signed_catalog && (rc = load_permissions(c)) != RK_OK)
        return rc;
    c->not_permitted = rk_watch_new(node->cfg.not_permitted_window_ms, (unsigned)node->cfg.not_permitted_threshold, 0);
    c->rates = rk_watch_new(node->cfg.rate_window_ms, (unsigned)node->cfg.rate_min, node->cfg.rate_factor);
    c->unreachable = rk_watch_new(node->cfg.unreachable_ms, 1, 0);
    c->misused_codes = rk_watch_new(node->cfg.not_permitted_window_ms, 1, 0);
    if ((rc = rk_node_incidents_start(node, core_store_db(c->store))) != RK_OK ||
        (signed_catalog && (rc = core_catalog_open(c)) != RK_OK) ||
        (rc = rk_records_log_start(node, core_store_db(c->store), node->cfg.head_interval_ms, &c->log)) != RK_OK ||
        (rc = core_pia_start(c)) != RK_OK)
        return rc;
    if ((rc = core_console_start(c)) != RK_OK || (rc = core_results_start(c)) != RK_OK)
        return rc;
    return core_notices_start(c);
}

static void stop_core(void *app)
{
    core *c = app;
    core_notices_stop(c);
    core_results_stop(c);
    core_console_stop(c);
    core_catalog_stop(c);
    core_pia_stop(c->pia);
    rk_records_log_stop(c->log);
    c->log = NULL;
}

static void close_core(void *app)
{
    core *c = app;
    core_pia_free(c->pia);
    core_store_close(c->store);
    rk_codec_free(c->codec);
    core_catalog_free(c); /* its versions: c->perms is one of them */
    rk_permissions_free(c->perms);
    rk_permissions_free(c->catalogue);
    pthread_rwlock_destroy(&c->perms_lock);
    rk_watch_free(c->not_permitted);
    rk_watch_free(c->rates);
    rk_watch_free(c->unreachable);
    rk_watch_free(c->misused_codes);
}

static rk_db *core_db(void *app)
{
    return core_store_db(((core *)app)->store);
}

const rk_role_desc rk_core_role = {
    .role = RK_ROLE_CORE,
    .help = "run the core system node (--config FILE)",
    .app_size = sizeof(core),
    .open = open_core,
    .stop = stop_core,
    .close = close_core,
    .store = core_db,
    .routes = routes,
    .n_routes = sizeof routes / sizeof routes[0],
    .health = health,
    .metrics = metrics,
    .on_reload = on_reload,
};
