/* self_data.c — わたしの情報: a person's own data held by agencies, for the
 * portal (DESIGN §2.5; 法23条, マイナポータル's わたしの情報).
 *
 * POST /v1/persons/data {"resident_code","portal_cert"} from the portal.
 * The core finds the person's serial, the agencies it issued a code for
 * that person to, and for each the items the permission table lets the
 * person themself have from an agency of that kind (rows of requester kind
 * `self`). Each item is asked of the agency through its gateway as any
 * provision (POST /v1/provisions, requester `portal`, the agency's own code
 * for the person), so the answer is sealed by the agency to the portal's
 * registered certificate and the core relays it unread. Each ask is a record
 * of the core's log (requester `portal`, the person's serial), as the
 * agency's answer is of the agency's. The items are asked one after the
 * other on the event loop; the records are committed in one write. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/codes.h"
#include "core/core.h"
#include "crypto/cms.h"
#include "lib/ids.h"
#include "lib/log.h"
#include "lib/mynumber.h"
#include "lib/util.h"
#include "node/flow.h"
#include "records/records.h"

#define SELF_KIND "self"
#define SELF_TARGETS_MAX 16 /* items asked for one person at most */
#define SELF_HOLDERS_MAX 32

typedef struct self_target {
    char agency[64], business[65], item[65];
    char code[RK_CODE_TEXT_MAX];
    char exchange_id[RK_EXCHANGE_ID_MAX + 1];
    const rk_peer_node *gateway;
} self_target;

typedef struct self_data {
    rk_flow f;                   /* first: the flow's state */
    core *c;
    char code[12];               /* the resident code: this request's only, wiped */
    const char *portal_cert;     /* borrowed from the request */
    uint64_t serial;
    int status;                  /* after lookup: 0 on, 404 nobody, 500 store */
    self_target t[SELF_TARGETS_MAX];
    rk_record rec[SELF_TARGETS_MAX];
    size_t n, i;
    json_t *items;
} self_data;

static void self_cleanup(rk_flow *f)
{
    self_data *d = (self_data *)f;
    rk_wipe(d->code, sizeof d->code);
    json_decref(d->items);
}

static void put(char *dst, size_t n, const char *src)
{
    size_t k = strnlen(src, n - 1);
    memcpy(dst, src, k);
    dst[k] = '\0';
}

/* On a worker: the person, the agencies holding a code, the `self` rows. */
static void lookup_work(rk_flow *f)
{
    self_data *d = (self_data *)f;
    core *c = d->c;
    rk_rc rc = core_store_person(c->store, d->code, &d->serial);
    if (rc != RK_OK) {
        d->status = rc == RK_ERR_NOT_FOUND ? 404 : 500;
        return;
    }
    core_store_holder h[SELF_HOLDERS_MAX];
    size_t nh = 0;
    if (core_store_holders(c->store, d->serial, h, SELF_HOLDERS_MAX, &nh) != RK_OK) {
        d->status = 500;
        return;
    }
    pthread_rwlock_rdlock(&c->perms_lock);
    size_t rows = c->perms ? rk_permissions_count(c->perms) : 0;
    for (size_t k = 0; k < nh; k++) {
        const rk_peer_node *ag = rk_registry_find(c->node->registry, RK_ROLE_AGENCY, h[k].agency);
        const rk_peer_node *gw = rk_registry_find(c->node->registry, RK_ROLE_GATEWAY, h[k].agency);
        if (!ag || !gw)
            continue;
        for (size_t i = 0; i < rows && d->n < SELF_TARGETS_MAX; i++) {
            const char *rk, *bus, *pk, *item;
            if (rk_permissions_row(c->perms, i, &rk, &bus, &pk, &item) != RK_OK || strcmp(rk, SELF_KIND) != 0 ||
                strcmp(pk, ag->kind) != 0)
                continue;
            self_target *t = &d->t[d->n];
            if (rk_code_derive_version(c->codec, h[k].version, d->serial, rk_agency_number(h[k].agency), t->code) !=
                RK_OK)
                continue;
            uint8_t rnd[8];
            char hex[17];
            if (rk_random(rnd, sizeof rnd) != RK_OK)
                continue;
            rk_hex(rnd, sizeof rnd, hex);
            put(t->agency, sizeof t->agency, h[k].agency);
            put(t->business, sizeof t->business, bus);
            put(t->item, sizeof t->item, item);
            snprintf(t->exchange_id, sizeof t->exchange_id, "portal.%s", hex);
            t->gateway = gw;
            d->n++;
        }
    }
    pthread_rwlock_unlock(&c->perms_lock);
}

static void ask_next(self_data *d);

/* The core's record of one ask. */
static void note(self_data *d, const char *outcome, const char *reason, const char *payload)
{
    self_target *t = &d->t[d->i];
    rk_record *r = &d->rec[d->i];
    memset(r, 0, sizeof *r);
    put(r->exchange_id, sizeof r->exchange_id, t->exchange_id);
    strcpy(r->side, "core");
    strcpy(r->requester, "portal");
    put(r->provider, sizeof r->provider, t->agency);
    put(r->business, sizeof r->business, t->business);
    put(r->item, sizeof r->item, t->item);
    strcpy(r->operator_id, "person");
    snprintf(r->subject, sizeof r->subject, "%llu", (unsigned long long)d->serial);
    r->requested_ms = rk_node_now_ms(d->c->node);
    snprintf(r->outcome, sizeof r->outcome, "%s", outcome);
    snprintf(r->reason, sizeof r->reason, "%s", reason);
    if (payload && rk_payload_digest(payload, r->payload_sha256) == RK_OK)
        r->provided_ms = r->requested_ms;
}

static void answered(rk_flow *f, rk_rc rc, rk_http_result *res)
{
    self_data *d = (self_data *)f;
    self_target *t = &d->t[d->i];
    long status = rc == RK_OK ? res->status : 0;
    json_t *body = status == 200 && res->body ? json_loads(res->body, 0, NULL) : NULL;
    rk_http_result_clear(res);
    const char *st = json_string_value(json_object_get(body, "status"));
    const char *payload = json_string_value(json_object_get(body, "payload"));
    const char *cert = json_string_value(json_object_get(body, "provider_cert"));
    json_t *e = json_pack("{s:s,s:s,s:s,s:s}", "exchange_id", t->exchange_id, "provider", t->agency, "business",
                          t->business, "item", t->item);
    if (st && strcmp(st, "provided") == 0 && payload && cert) {
        note(d, "provided", "", payload);
        json_object_update_new(e, json_pack("{s:s,s:s,s:s}", "status", "provided", "payload", payload,
                                            "provider_cert", cert));
    } else if (st && strcmp(st, "no_data") == 0) {
        note(d, "no_data", "no data for this item", NULL);
        json_object_set_new(e, "status", json_string("no_data"));
    } else if (st && strcmp(st, "declined") == 0) { /* 手動応答: the agency answers no portal automatically */
        note(d, "declined", "held for an operator at the agency: not answered to the portal", NULL);
        json_object_set_new(e, "status", json_string("declined"));
    } else {
        note(d, "failed", "the agency did not answer", NULL);
        json_object_set_new(e, "status", json_string("failed"));
    }
    json_decref(body);
    pthread_rwlock_rdlock(&d->c->perms_lock);
    const rk_permissions *cat = d->c->catalogue;
    const rk_peer_node *ag = rk_registry_find(d->c->node->registry, RK_ROLE_AGENCY, t->agency);
    json_object_set_new(e, "names", json_pack("{s:s?,s:s?}", "provider", ag ? rk_permissions_kind_name(cat, ag->kind) : NULL,
                                              "item", rk_permissions_item_name(cat, t->item)));
    pthread_rwlock_unlock(&d->c->perms_lock);
    json_array_append_new(d->items, e);
    d->i++;
    ask_next(d);
}

typedef struct recs_args {
    rk_record *rec;
    size_t n;
} recs_args;

static rk_rc append_all(rk_db *db, void *arg)
{
    recs_args *a = arg;
    for (size_t i = 0; i < a->n; i++) {
        rk_rc rc = rk_record_append(db, &a->rec[i]);
        if (rc != RK_OK)
            return rc;
    }
    return RK_OK;
}

/* On a worker: every ask's record, in one commit. */
static void record_work(rk_flow *f)
{
    self_data *d = (self_data *)f;
    recs_args a = {d->rec, d->n};
    d->status = d->n && rk_db_write(core_store_db(d->c->store), append_all, &a) != RK_OK ? 500 : 0;
}

static void recorded(rk_flow *f)
{
    self_data *d = (self_data *)f;
    if (d->status) {
        rk_flow_fail(f, 500, "store_error", "the records of the asks could not be written; try again");
        return;
    }
    json_t *items = d->items;
    d->items = NULL;
    rk_reply_json(f->resp, 200, json_pack("{s:o}", "items", items));
    rk_flow_finish(f);
}

static void ask_next(self_data *d)
{
    if (d->i >= d->n) {
        rk_flow_pool(&d->f, record_work, recorded);
        return;
    }
    self_target *t = &d->t[d->i];
    json_t *msg = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "exchange_id", t->exchange_id, "code", t->code,
                            "business", t->business, "requester", "portal", "item", t->item, "operator", "person",
                            "requester_cert", d->portal_cert);
    char *body = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    rk_flow_call(&d->f, d->c->node, t->gateway, "/v1/provisions", body, answered);
}

static void looked_up(rk_flow *f)
{
    self_data *d = (self_data *)f;
    if (d->status == 404) { /* a person the core does not know holds nothing */
        rk_reply_json(f->resp, 200, json_pack("{s:[]}", "items"));
        rk_flow_finish(f);
        return;
    }
    if (d->status) {
        rk_flow_fail(f, 500, "store_error", "the person's holders could not be read");
        return;
    }
    d->items = json_array();
    if (!d->items) {
        rk_flow_fail(f, 500, "internal", "out of memory");
        return;
    }
    ask_next(d);
}

/* POST /v1/persons/data, on the event thread (a `start` route). */
void core_start_person_data(void *app, rk_pending *p, const rk_request *req, rk_response *resp)
{
    self_data *d = rk_flow_new(p, resp, sizeof *d, self_cleanup);
    if (!d)
        return;
    d->c = app;
    const char *code = rk_req_string(req, resp, "resident_code", 11);
    d->portal_cert = code ? rk_req_string(req, resp, "portal_cert", RK_CERT_PEM_MAX) : NULL;
    if (!d->portal_cert) {
        rk_flow_finish(&d->f);
        return;
    }
    if (rk_resident_code_validate(code) != RK_OK) {
        rk_flow_fail(&d->f, 400, "invalid_field", "field \"resident_code\" must be 11 digits");
        return;
    }
    snprintf(d->code, sizeof d->code, "%s", code);
    rk_flow_pool(&d->f, lookup_work, looked_up);
}
