/* portal.c — the portal node (マイナポータル's disclosure, DESIGN §1, §2.5):
 * a person, signed in with their card, sees every exchange of their data
 * at the core, with what proves it.
 *
 * Two listeners. Its url serves the network as every node does (/healthz,
 * /metrics to registered peers over the nodes' mutual TLS). Its person_url
 * serves persons only: a card of the card CA is required in the TLS
 * handshake and checked against the card CRL in force, which J-LIS
 * publishes and this node fetches every [portal] crl_refresh_ms and on
 * SIGHUP; a node's certificate is not a card, a card not a node's
 * certificate (two trust anchors). Persons get the page (GET /, its script
 * and style, served from the binary), the keys that check a checkpoint
 * (GET /v1/me/keys, from network.json), and their exchanges (GET
 * /v1/me/exchanges), and their own data agencies hold (わたしの情報, GET
 * /v1/me/data: the values agencies seal to this node, opened here and
 * shown, never kept). For both, the card's serial is looked up at J-LIS,
 * which answers the resident code, and the core answers for that person
 * (exchanges with their proofs, or the agencies' sealed values). The resident code is held for that one request, wiped after, and
 * never stored nor logged; the portal stores nothing of a person (its
 * store holds its incidents only). */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/card.h"
#include "crypto/cms.h"
#include "net/peer_certs.h"
#include "lib/log.h"
#include "lib/mynumber.h"
#include "lib/util.h"
#include "node/flow.h"
#include "node/node.h"
#include "portal/assets.h"
#include "roles.h"
#include "store/db.h"

#define PAGE_DEFAULT 50
#define PAGE_MAX 100
#define CRL_RETRY_MS 1000 /* while no CRL is in force, every card is refused: ask again soon */

typedef struct portal {
    rk_node *node;
    rk_db *db;                   /* incidents only */
    rk_card_trust *trust;        /* the card CA and the CRL in force */
    const rk_peer_node *jlis, *core;
    char *keys;                  /* GET /v1/me/keys, made once from network.json */
    pthread_t crl_thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int crl_running, stopping, crl_now;
    uint64_t listed, unknown_cards, revoked_cards, upstream_failures;
} portal;

/* ---------- the card CRL, from J-LIS ---------- */

static void fetch_crl(portal *p)
{
    rk_http_result res = {0};
    rk_rc rc = rk_node_call(p->node, "GET", p->jlis, "/v1/card-crl", NULL, &res, NULL);
    json_t *body = rc == RK_OK && res.status == 200 && res.body ? json_loads(res.body, 0, NULL) : NULL;
    const char *pem = json_string_value(json_object_get(body, "crl"));
    if (!pem) {
        rk_warn("the card CRL could not be fetched from J-LIS (%s, HTTP %ld)", rk_strerror(rc), res.status);
    } else {
        long before = rk_card_trust_crl_number(p->trust);
        rc = rk_card_trust_set_crl(p->trust, pem, strlen(pem));
        if (rc != RK_OK)
            rk_error("the card CRL from J-LIS was refused (%s); the one in force stays",
                     rc == RK_ERR_CONFLICT ? "older than the one in force" : rk_strerror(rc));
        else if (rk_card_trust_crl_number(p->trust) != before)
            rk_info("card CRL number %ld in force", rk_card_trust_crl_number(p->trust));
    }
    json_decref(body);
    rk_http_result_clear(&res);
}

static void *crl_main(void *arg)
{
    portal *p = arg;
    pthread_mutex_lock(&p->lock);
    while (!p->stopping) {
        p->crl_now = 0;
        pthread_mutex_unlock(&p->lock);
        fetch_crl(p);
        int have = rk_card_trust_crl_number(p->trust) > 0;
        pthread_mutex_lock(&p->lock);
        if (!p->stopping && !p->crl_now)
            rk_cond_wait_ms(&p->wake, &p->lock, have ? p->node->cfg.crl_refresh_ms : CRL_RETRY_MS);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* SIGHUP: the CRL is fetched now. */
static void on_reload(void *app)
{
    portal *p = app;
    pthread_mutex_lock(&p->lock);
    p->crl_now = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
}

/* ---------- the person routes ---------- */

/* GET /, /portal.js, /portal.css: the page, from the binary. On a worker. */
static void serve_asset(void *app, const rk_request *req, rk_response *resp)
{
    (void)app;
    rk_asset_serve(rk_portal_assets, rk_portal_n_assets, req, resp);
}

/* GET /v1/me/keys: the keys the page checks a checkpoint with — the core's
 * log (origin and C2SP vkey) and every witness's cosignature vkey, as
 * network.json names them. On a worker. */
static void handle_keys(void *app, const rk_request *req, rk_response *resp)
{
    portal *p = app;
    (void)req;
    char *text = strdup(p->keys);
    if (!text) {
        rk_reply_error(resp, 500, "internal", "out of memory");
        return;
    }
    rk_reply_text(resp, 200, text);
    resp->cache_control = "no-store";
}

/* GET /v1/me/exchanges[?cursor=&limit=] as a flow: the card's resident at
 * J-LIS, then that person's exchanges at the core, relayed as the core
 * answered them. */
typedef struct mine {
    rk_flow flow;                /* first: the flow's state */
    portal *p;
    char serial[RK_CARD_SERIAL_LEN + 1];
    long cursor, limit;
    char code[12];               /* the resident code: this request's only, wiped */
    int data;                    /* GET /v1/me/data: わたしの情報 */
    json_t *items;               /* the core's answer, then opened on a worker */
    json_t *shown;               /* what the person is shown */
} mine;

static void mine_cleanup(rk_flow *f)
{
    mine *m = (mine *)f;
    rk_wipe(m->code, sizeof m->code);
    json_decref(m->items);
    json_decref(m->shown);
}

static void count(uint64_t *n)
{
    __atomic_add_fetch(n, 1, __ATOMIC_RELAXED);
}

static void listed(rk_flow *f, rk_rc rc, rk_http_result *res)
{
    mine *m = (mine *)f;
    if (rc == RK_OK && res->status == 200 && res->body) {
        count(&m->p->listed);
        free(f->resp->body);
        f->resp->status = 200;
        f->resp->body = res->body; /* the core's answer, as it came: the page checks it */
        f->resp->body_len = res->body_len;
        f->resp->content_type = "application/json";
        f->resp->cache_control = "no-store";
        res->body = NULL;
        rk_flow_finish(f);
        return;
    }
    count(&m->p->upstream_failures);
    rk_warn("the core did not list a person's exchanges (%s, HTTP %ld)", rk_strerror(rc), rc == RK_OK ? res->status : 0);
    rk_http_result_clear(res);
    rk_flow_fail(f, 503, "core_unavailable", "the core could not list the exchanges now; try again");
}

/* ---------- わたしの情報 (GET /v1/me/data) ---------- */

/* On a worker: each value the agencies sealed to this node opened — only
 * when signed by that agency's registered certificate — and shown. */
static void open_work(rk_flow *f)
{
    mine *m = (mine *)f;
    rk_node *node = m->p->node;
    json_t *shown = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(m->items, i, e) {
        const char *provider = json_string_value(json_object_get(e, "provider"));
        const char *item = json_string_value(json_object_get(e, "item"));
        const char *status = json_string_value(json_object_get(e, "status"));
        const char *payload = json_string_value(json_object_get(e, "payload"));
        const char *cert = json_string_value(json_object_get(e, "provider_cert"));
        if (!provider || !item || !status)
            continue;
        json_t *row = json_pack("{s:s,s:s,s:s,s:O*}", "provider", provider, "item", item, "status", status, "names",
                                json_object_get(e, "names"));
        const rk_peer_node *ag = rk_registry_find(node->registry, RK_ROLE_AGENCY, provider);
        X509 *signer = NULL;
        char *plain = NULL;
        size_t len = 0;
        json_t *inner = NULL;
        if (row && strcmp(status, "provided") == 0) {
            const rk_identity *me = rk_node_identity(node); /* certificate and key of one renewal */
            if (ag && payload && cert && rk_peer_certs_get_node(node->peer_certs, cert, ag, &signer) == RK_OK &&
                (rk_cms_open(me->cert, me->key, signer, payload, &plain, &len) == RK_OK ||
                 /* sealed to the certificate sent before a renewal taken meanwhile */
                 (me->before && rk_cms_open(me->before->cert, me->before->key, signer, payload, &plain, &len) == RK_OK)))
                inner = json_loadb(plain, len, 0, NULL);
            const char *got = json_string_value(json_object_get(inner, "item"));
            if (inner && got && strcmp(got, item) == 0) {
                json_object_set(row, "value", json_object_get(inner, "value"));
                json_object_set(row, "as_of", json_object_get(inner, "as_of"));
            } else {
                json_object_set_new(row, "status", json_string("not_verified"));
            }
        }
        if (plain) {
            rk_wipe(plain, len);
            free(plain);
        }
        json_decref(inner);
        X509_free(signer);
        if (row)
            json_array_append_new(shown, row);
    }
    m->shown = shown;
}

static void opened(rk_flow *f)
{
    mine *m = (mine *)f;
    json_t *shown = m->shown;
    m->shown = NULL;
    if (!shown) {
        rk_flow_fail(f, 500, "internal", "out of memory");
        return;
    }
    rk_reply_json(f->resp, 200, json_pack("{s:o}", "items", shown));
    f->resp->cache_control = "no-store";
    rk_flow_finish(f);
}

static void data_answered(rk_flow *f, rk_rc rc, rk_http_result *res)
{
    mine *m = (mine *)f;
    json_t *body = rc == RK_OK && res->status == 200 && res->body ? json_loads(res->body, 0, NULL) : NULL;
    long status = rc == RK_OK ? res->status : 0;
    rk_http_result_clear(res);
    json_t *items = json_object_get(body, "items");
    if (!json_is_array(items)) {
        json_decref(body);
        count(&m->p->upstream_failures);
        rk_warn("the core did not answer a person's data (%s, HTTP %ld)", rk_strerror(rc), status);
        rk_flow_fail(f, 503, "core_unavailable", "the core could not answer the data now; try again");
        return;
    }
    m->items = json_incref(items);
    json_decref(body);
    rk_flow_pool(f, open_work, opened);
}

static void looked_up(rk_flow *f, rk_rc rc, rk_http_result *res)
{
    mine *m = (mine *)f;
    long status = rc == RK_OK ? res->status : 0;
    json_t *body = status == 200 && res->body ? json_loads(res->body, 0, NULL) : NULL;
    const char *code = json_string_value(json_object_get(body, "resident_code"));
    if (code && rk_resident_code_validate(code) == RK_OK)
        snprintf(m->code, sizeof m->code, "%s", code);
    json_decref(body);
    if (res->body)
        rk_wipe(res->body, res->body_len);
    rk_http_result_clear(res);
    if (status == 404) {
        count(&m->p->unknown_cards);
        rk_flow_fail(f, 404, "unknown_card", "no resident has this card");
    } else if (status == 403) {
        count(&m->p->revoked_cards);
        rk_flow_fail(f, 403, "card_revoked", "this card is revoked");
    } else if (!m->code[0]) {
        count(&m->p->upstream_failures);
        rk_warn("J-LIS did not look the card up (%s, HTTP %ld)", rk_strerror(rc), status);
        rk_flow_fail(f, 503, "jlis_unavailable", "the card could not be looked up now; try again");
    } else if (m->data) {
        json_t *q = json_pack("{s:s,s:s}", "resident_code", m->code, "portal_cert", rk_node_identity(m->p->node)->cert_pem);
        char *text = q ? json_dumps(q, JSON_COMPACT) : NULL; /* the flow's: wiped once sent */
        json_decref(q);
        rk_flow_call(f, m->p->node, m->p->core, "/v1/persons/data", text, data_answered);
    } else {
        json_t *q = json_pack("{s:s,s:i}", "resident_code", m->code, "limit", (int)m->limit);
        if (q && m->cursor)
            json_object_set_new(q, "cursor", json_integer(m->cursor));
        char *text = q ? json_dumps(q, JSON_COMPACT) : NULL; /* the flow's: wiped once sent */
        json_decref(q);
        rk_flow_call(f, m->p->node, m->p->core, "/v1/persons/exchanges", text, listed);
    }
}

/* A number of the query string in min..max: 1, 0 when absent, -1 when bad. */
static int number_param(const rk_request *req, const char *name, long min, long max, long *out)
{
    char text[24], *end;
    int got = rk_query_param(req, name, text, sizeof text);
    if (got != 1)
        return got;
    long v = strtol(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end || v < min || v > max)
        return -1;
    *out = v;
    return 1;
}

static void start_my_exchanges(void *app, rk_pending *pending, const rk_request *req, rk_response *resp)
{
    mine *m = rk_flow_new(pending, resp, sizeof *m, mine_cleanup);
    if (!m)
        return;
    m->p = app;
    m->limit = PAGE_DEFAULT;
    snprintf(m->serial, sizeof m->serial, "%.32s", req->peer->id); /* a card serial (net/tls.c) */
    if (number_param(req, "cursor", 1, INT64_MAX, &m->cursor) < 0 ||
        number_param(req, "limit", 1, PAGE_MAX, &m->limit) < 0) {
        rk_flow_fail(&m->flow, 400, "invalid_field", "cursor must be a next_cursor of this list, limit 1..100");
        return;
    }
    json_t *q = json_pack("{s:s}", "card_serial", m->serial);
    char *text = q ? json_dumps(q, JSON_COMPACT) : NULL;
    json_decref(q);
    rk_flow_call(&m->flow, m->p->node, m->p->jlis, "/v1/card-lookups", text, looked_up);
}

/* GET /v1/me/data as a flow: the card's resident at J-LIS, then the core,
 * which asks each agency holding a code for the person for the items it
 * provides to the person themself, sealed to this node; opened here. */
static void start_my_data(void *app, rk_pending *pending, const rk_request *req, rk_response *resp)
{
    mine *m = rk_flow_new(pending, resp, sizeof *m, mine_cleanup);
    if (!m)
        return;
    m->p = app;
    m->data = 1;
    snprintf(m->serial, sizeof m->serial, "%.32s", req->peer->id); /* a card serial (net/tls.c) */
    json_t *q = json_pack("{s:s}", "card_serial", m->serial);
    char *text = q ? json_dumps(q, JSON_COMPACT) : NULL;
    json_decref(q);
    rk_flow_call(&m->flow, m->p->node, m->p->jlis, "/v1/card-lookups", text, looked_up);
}

static const rk_route person_routes[] = {
    {"GET", "/", RK_ROLE_PERSON, 0, serve_asset},
    {"GET", "/portal.js", RK_ROLE_PERSON, 0, serve_asset},
    {"GET", "/portal.css", RK_ROLE_PERSON, 0, serve_asset},
    {"GET", "/v1/me/keys", RK_ROLE_PERSON, 0, handle_keys},
    {"GET", "/v1/me/exchanges", RK_ROLE_PERSON, 0, NULL, 0, start_my_exchanges},
    {"GET", "/v1/me/data", RK_ROLE_PERSON, 0, NULL, 0, start_my_data},
};

/* ---------- the node ---------- */

/* The keys of the page, from network.json: the core's log and every witness. */
static rk_rc make_keys(portal *p)
{
    const rk_registry *reg = p->node->registry;
    json_t *witnesses = json_array();
    for (size_t i = 0; witnesses && i < reg->n_nodes; i++)
        if (reg->nodes[i].role == RK_ROLE_WITNESS)
            json_array_append_new(witnesses, json_pack("{s:s,s:s}", "id", reg->nodes[i].id, "vkey", reg->nodes[i].vkey));
    if (!p->core->log_vkey[0]) {
        json_decref(witnesses);
        rk_error("network.json: the core has no log_vkey: no checkpoint could be checked");
        return RK_ERR_CONFIG;
    }
    json_t *keys = json_pack("{s:{s:s,s:s},s:o}", "log", "origin", p->core->log_origin, "vkey", p->core->log_vkey,
                             "witnesses", witnesses);
    p->keys = keys ? json_dumps(keys, JSON_COMPACT) : NULL;
    json_decref(keys);
    return p->keys ? RK_OK : RK_ERR_NOMEM;
}

static rk_rc open_portal(rk_node *node, void *app)
{
    portal *p = app;
    rk_rc rc;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->jlis = rk_registry_find(node->registry, RK_ROLE_JLIS, NULL);
    p->core = rk_registry_find(node->registry, RK_ROLE_CORE, NULL);
    if (!p->jlis || !p->core) {
        rk_error("the registry lacks J-LIS or the core");
        return RK_ERR_CONFIG;
    }
    if (!node->cfg.card_ca[0]) {
        rk_error("[portal] card_ca is required: the card CA persons' cards are checked against");
        return RK_ERR_CONFIG;
    }
    if ((rc = rk_card_trust_new(node->cfg.card_ca, &p->trust)) != RK_OK) {
        rk_error("%s: cannot load the card CA", node->cfg.card_ca);
        return rc;
    }
    if ((rc = make_keys(p)) != RK_OK || (rc = rk_db_open(node->cfg.db, 0, &p->db)) != RK_OK ||
        (rc = rk_node_incidents_start(node, p->db)) != RK_OK || (rc = rk_node_clock_start(node)) != RK_OK)
        return rc;
    fetch_crl(p); /* before the first card: none is accepted until a CRL is in force */
    if (pthread_create(&p->crl_thread, NULL, crl_main, p) != 0)
        return RK_ERR_NOMEM;
    p->crl_running = 1;
    return RK_OK;
}

static void stop_portal(void *app)
{
    portal *p = app;
    if (!p->crl_running)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->crl_thread, NULL);
    p->crl_running = 0;
}

static void close_portal(void *app)
{
    portal *p = app;
    rk_db_close(p->db);
    rk_card_trust_free(p->trust);
    free(p->keys);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
}

static rk_db *portal_db(void *app)
{
    return ((portal *)app)->db;
}

static X509_STORE *portal_person_store(void *app)
{
    return rk_card_trust_store(((portal *)app)->trust);
}

static int health(void *app, json_t *checks)
{
    portal *p = app;
    long number = rk_card_trust_crl_number(p->trust);
    json_object_set_new(checks, "card_crl_number", json_integer(number));
    return number == 0; /* no CRL in force: every card is refused */
}

static void metrics(void *app, struct evbuffer *out)
{
    portal *p = app;
    rk_metric_head(out, "renkei_portal_lists_total", "counter", "Lists of a person's exchanges answered.");
    evbuffer_add_printf(out, "renkei_portal_lists_total %llu\n", (unsigned long long)__atomic_load_n(&p->listed, __ATOMIC_RELAXED));
    rk_metric_head(out, "renkei_portal_refused_cards_total", "counter",
                   "Cards refused after the handshake: J-LIS knew no resident for them, or revoked them.");
    evbuffer_add_printf(out, "renkei_portal_refused_cards_total{reason=\"unknown_card\"} %llu\n"
                             "renkei_portal_refused_cards_total{reason=\"card_revoked\"} %llu\n",
                        (unsigned long long)__atomic_load_n(&p->unknown_cards, __ATOMIC_RELAXED),
                        (unsigned long long)__atomic_load_n(&p->revoked_cards, __ATOMIC_RELAXED));
    rk_metric_head(out, "renkei_portal_upstream_failures_total", "counter",
                   "Lists that failed because J-LIS or the core did not answer.");
    evbuffer_add_printf(out, "renkei_portal_upstream_failures_total %llu\n",
                        (unsigned long long)__atomic_load_n(&p->upstream_failures, __ATOMIC_RELAXED));
    rk_metric_head(out, "renkei_portal_card_crl_number", "gauge", "The number of the card CRL in force (0: none).");
    evbuffer_add_printf(out, "renkei_portal_card_crl_number %ld\n", rk_card_trust_crl_number(p->trust));
}

const rk_role_desc rk_portal_role = {
    .role = RK_ROLE_PORTAL,
    .help = "run the portal: persons see their exchanges with proofs (--config FILE)",
    .app_size = sizeof(portal),
    .open = open_portal,
    .stop = stop_portal,
    .close = close_portal,
    .store = portal_db,
    .health = health,
    .metrics = metrics,
    .on_reload = on_reload,
    .person_routes = person_routes,
    .n_person_routes = sizeof person_routes / sizeof person_routes[0],
    .person_store = portal_person_store,
};
