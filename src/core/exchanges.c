/* exchanges.c — POST /v1/exchanges: one request for one item of one person
 * (法19条8号, 法21条, 法22条, 法23条; standard 第8).
 *
 * The caller must be the requester's gateway (checked by the server); the
 * code must be one the core issued to that requester; a row of the
 * permission table must allow (requester kind, business, provider kind,
 * item) — otherwise the request is refused with its reason (法21条2項) and
 * the provider never hears of it. A permitted request is converted to the
 * provider's code and sent through the provider's gateway; the encrypted
 * answer is relayed unread, its SHA-256 recorded. Every outcome is recorded
 * once, with the answer kept for retries of the same exchange id.
 *
 * The request is a flow (node/flow.h): read on the event thread; the kept
 * answer and the code, permission and issue checks in one pool step; the
 * provision request through the loop's relay; the outcome settled by the
 * store's committer. No thread waits on the provider or the disk. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/catalog.h"
#include "core/core.h"
#include "core/exchange.h"
#include "core/pia.h"
#include "crypto/cms.h"
#include "node/flow.h"
#include "node/incidents.h"
#include "lib/ids.h"
#include "lib/log.h"
#include "net/peer_certs.h"
#include "crypto/pki.h"
#include "records/records.h"
#include "lib/util.h"

/* One exchange at the core, from the request to the reply. */
typedef struct exchange {
    rk_flow flow;                         /* first: the flow's state */
    core_xchg x;
    int checked;                          /* 1: replayed, else core_xchg_check's verdict */
} exchange;

int core_permitted(core *c, const char *requester_kind, const char *business, const char *provider_kind,
                   const char *item)
{
    pthread_rwlock_rdlock(&c->perms_lock);
    int ok = c->perms && rk_permissions_allows(c->perms, requester_kind, business, provider_kind, item);
    pthread_rwlock_unlock(&c->perms_lock);
    return ok;
}

int core_read_exchange(const rk_request *req, rk_response *resp, core_exchange_in *in)
{
    if (!(in->exchange_id = rk_req_string(req, resp, "exchange_id", RK_EXCHANGE_ID_MAX)) ||
        !(in->code = rk_req_string(req, resp, "code", RK_CODE_FIELD_MAX)) ||
        !(in->business = rk_req_string(req, resp, "business", RK_CATALOGUE_ID_MAX)) ||
        !(in->provider = rk_req_string(req, resp, "provider", RK_AGENCY_FIELD_MAX)) ||
        !(in->item = rk_req_string(req, resp, "item", RK_CATALOGUE_ID_MAX)) ||
        !(in->operator_id = rk_req_string(req, resp, "operator", RK_ID_FIELD_MAX)) ||
        !(in->requester_cert = rk_req_string(req, resp, "requester_cert", RK_CERT_PEM_MAX)))
        return -1;
    const char *bad = !rk_id_valid(in->exchange_id, RK_EXCHANGE_ID_MAX) ? "exchange_id"
                    : !rk_id_valid(in->operator_id, RK_ID_FIELD_MAX) ? "operator"
                    : !rk_catalogue_id_valid(in->business) ? "business"
                    : !rk_catalogue_id_valid(in->item) ? "item" : NULL;
    if (bad) {
        rk_reply_error(resp, 400, "invalid_field", "field \"%s\" has characters or a length not allowed", bad);
        return -1;
    }
    if (rk_req_condition(req, resp, &in->condition) != 0)
        return -1;
    return 0;
}

static void set_outcome(core_xchg *x, int status, const char *outcome, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_outcome(core_xchg *x, int status, const char *outcome, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->rec.reason, sizeof x->rec.reason, fmt, ap);
    va_end(ap);
    snprintf(x->rec.outcome, sizeof x->rec.outcome, "%s", outcome);
    x->status = status;
    json_decref(x->answer);
    if (status >= 400)
        x->answer = json_pack("{s:s,s:{s:s,s:s}}", "exchange_id", x->exchange_id, "error", "code", outcome,
                              "message", x->rec.reason);
    else
        x->answer = json_pack("{s:s,s:s}", "exchange_id", x->exchange_id, "status", outcome);
}

/* The requester's certificate must be its registered agency node's: the
 * same DER (the provider parses and checks it again before using it). */
static int requester_cert_ok(const core_xchg *x)
{
    char fp[RK_FINGERPRINT_LEN];
    return rk_pem_cert_fingerprint(x->requester_cert, fp) == RK_OK && strcmp(fp, x->requester_node->fingerprint) == 0;
}

/* Code, permission, ownership and issue; 0 when the exchange may proceed,
 * -1 when refused (the outcome is set), -2 when the store could not say
 * (nothing is settled: the caller answers 500 and a retry may succeed).
 * The code is opened first so that every record, refusals included, keeps
 * the person's serial for disclosure. On a worker: it reads the store and
 * an incident raised here is written before it returns. */
static int check_request(core *c, core_xchg *x, uint64_t *serial)
{
    uint32_t owner = 0;
    x->rec.catalog_version = core_catalog_in_force(c); /* every refusal names the version in force */
    if (rk_code_open(c->codec, x->code, serial, &owner) != RK_OK) {
        set_outcome(x, 404, "unknown_code", "the code was not issued by this core");
        return -1;
    }
    snprintf(x->rec.subject, sizeof x->rec.subject, "%llu", (unsigned long long)*serial);
    if (!x->provider_node) {
        set_outcome(x, 404, "unknown_provider", "no agency \"%s\" in this network", x->provider);
        return -1;
    }
    unsigned admits = 0; /* one read of the catalogue in force: the version named by the record decided */
    if (!core_catalog_decide(c, x->requester_node->kind, x->business, x->provider_node->kind, x->item, &admits,
                             &x->rec.catalog_version)) {
        if (rk_watch_hit(c->not_permitted, x->requester_node->agency, rk_now_ms()))
            rk_node_raise(c->node, "unauthorized_access", "a burst of requests the permission table refuses from %s",
                          x->requester_node->agency);
        /* 法21条2項: refused with the reason; the provider never hears of it */
        char in[48] = ""; /* 法21条2項: the reason names the rows that refused it */
        if (x->rec.catalog_version)
            snprintf(in, sizeof in, " (catalogue version %lld)", (long long)x->rec.catalog_version);
        set_outcome(x, 403, "not_permitted", "no row of the permission table allows %s / %s / %s / %s%s",
                    x->requester_node->kind, x->business, x->provider_node->kind, x->item, in);
        return -1;
    }
    if (x->condition.kind && !(admits & x->condition.kind)) {
        /* the row allows the exchange, not the condition: refused and recorded, the provider never hears of it */
        set_outcome(x, 403, "condition_not_permitted", "the permission row of %s / %s / %s / %s does not admit %s",
                    x->requester_node->kind, x->business, x->provider_node->kind, x->item,
                    x->condition.kind == RK_COND_FISCAL_YEAR ? "fiscal_year" : "as_of");
        return -1;
    }
    if (owner != rk_agency_number(x->requester_node->agency)) {
        /* Every one is recorded; one incident per agency and window. */
        if (rk_watch_hit(c->misused_codes, x->requester_node->agency, rk_now_ms()))
            rk_node_raise(c->node, "unauthorized_access", "%s presented a code issued to another agency (exchange %s)",
                          x->requester_node->agency, x->exchange_id);
        set_outcome(x, 403, "code_not_yours", "the code was issued to another agency");
        return -1;
    }
    rk_rc issued = core_store_issued(c->store, x->requester_node->agency, *serial);
    if (issued == RK_ERR_NOT_FOUND) {
        set_outcome(x, 404, "unknown_code", "no code for this person was issued to the requester");
        return -1;
    }
    if (issued != RK_OK)
        return -2;
    if (!requester_cert_ok(x)) {
        set_outcome(x, 400, "bad_requester_cert", "requester_cert is not the requester's registered certificate");
        return -1;
    }
    const char *agency, *state;
    if (core_pia_refuses(c->pia, x->requester_node->agency, x->provider_node->agency, x->business, &agency, &state)) {
        /* 法28条, 法21条: no published PIA for a file involved; the provider never hears of it */
        set_outcome(x, 403, "pia_not_valid", "the PIA of %s for %s is %s, not published", agency, x->business, state);
        return -1;
    }
    return 0;
}

void core_xchg_take_provision(core_xchg *x, rk_rc rc, long status, json_t *body)
{
    const char *st = json_string_value(json_object_get(body, "status"));
    const char *payload = json_string_value(json_object_get(body, "payload"));
    const char *provider_cert = json_string_value(json_object_get(body, "provider_cert"));
    if (rc == RK_ERR_TIMEOUT || (rc == RK_OK && status == 504)) {
        set_outcome(x, 504, "provider_timeout", "the provider did not answer in time");
    } else if (rc != RK_OK || status == 502 || status == 503) {
        set_outcome(x, 502, "provider_unavailable", "the provider could not be reached");
    } else if (status == 200 && st && strcmp(st, "held") == 0) {
        /* 手動応答: the provider's operator answers later (provision_results.c) */
        set_outcome(x, 202, "held", "the provider holds the request for its operator");
    } else if (status == 200 && st && strcmp(st, "no_data") == 0) {
        set_outcome(x, 200, "no_data", "the provider holds no data for this person and item");
        x->rec.provided_ms = rk_now_ms();
    } else if (status == 200 && st && strcmp(st, "provided") == 0 && payload &&
               rk_payload_digest(payload, x->rec.payload_sha256) == RK_OK) {
        set_outcome(x, 200, "provided", "%s", "");
        x->rec.provided_ms = rk_now_ms();
        json_object_set_new(x->answer, "payload", json_string(payload));
        json_object_set_new(x->answer, "payload_sha256", json_string(x->rec.payload_sha256));
        if (provider_cert && strlen(provider_cert) <= RK_CERT_PEM_MAX) /* the requester checks it */
            json_object_set_new(x->answer, "provider_cert", json_string(provider_cert));
    } else {
        set_outcome(x, 502, "provider_unavailable", "the provider answered HTTP %ld without a usable answer",
                    rc == RK_OK ? status : 0);
    }
}

static void fill_record(core_xchg *x, const rk_request *req)
{
    rk_record *r = &x->rec;
    snprintf(r->exchange_id, sizeof r->exchange_id, "%s", x->exchange_id);
    strcpy(r->side, "core");
    snprintf(r->requester, sizeof r->requester, "%s", x->requester_node->agency);
    snprintf(r->provider, sizeof r->provider, "%s", x->provider);
    snprintf(r->business, sizeof r->business, "%s", x->business);
    snprintf(r->item, sizeof r->item, "%s", x->item);
    snprintf(r->operator_id, sizeof r->operator_id, "%s", x->operator_id);
    r->requested_ms = req->received_ms;
    rk_condition_text(&x->condition, r->condition);
}

int core_xchg_open(core *c, core_xchg *x, const rk_request *req, rk_response *resp)
{
    core_exchange_in in;
    x->c = c;
    if (core_read_exchange(req, resp, &in) != 0)
        return -1;
    x->exchange_id = in.exchange_id;
    x->code = in.code;
    x->business = in.business;
    x->provider = in.provider;
    x->item = in.item;
    x->operator_id = in.operator_id;
    x->requester_cert = in.requester_cert;
    x->condition = in.condition;
    x->requester_node = rk_registry_find(c->node->registry, RK_ROLE_AGENCY, req->peer->agency);
    x->provider_node = rk_registry_find(c->node->registry, RK_ROLE_AGENCY, x->provider);
    if (!x->requester_node) {
        rk_reply_error(resp, 403, "unknown_requester", "the calling gateway's agency has no agency node");
        return -1;
    }
    size_t own = strlen(req->peer->agency);
    if (strncmp(x->exchange_id, req->peer->agency, own) != 0 || x->exchange_id[own] != '.') {
        rk_reply_error(resp, 400, "invalid_field", "exchange_id must start with the requester's agency id and '.'");
        return -1;
    }
    rk_request_hash(req->json, x->request_hash);
    fill_record(x, req);
    return 0;
}

void core_xchg_clear(core_xchg *x)
{
    json_decref(x->answer);
    x->answer = NULL;
    rk_wipe(x->provider_code, sizeof x->provider_code);
}

void core_xchg_logged(const core_xchg *x, rk_rc rc)
{
    if (rc == RK_OK)
        rk_info("exchange %s %s -> %s %s/%s: %s", x->exchange_id, x->rec.requester, x->rec.provider, x->rec.business,
                x->rec.item, x->rec.outcome);
    else if (rc != RK_ERR_CONFLICT)
        rk_error("exchange %s could not be recorded: %s", x->exchange_id, rk_strerror(rc));
}

json_t *core_xchg_settlement(core_xchg *x, rk_settlement *s)
{
    char t[32];
    rk_format_time(x->rec.requested_ms, t, sizeof t);
    json_object_set_new(x->answer, "requested_at", json_string(t));
    if (x->rec.provided_ms) {
        rk_format_time(x->rec.provided_ms, t, sizeof t);
        json_object_set_new(x->answer, "provided_at", json_string(t));
    }
    *s = (rk_settlement){.record = &x->rec, .key = x->exchange_id, .request_hash = x->request_hash,
                         .status = x->status};
    json_t *answer = x->answer; /* the caller's from here */
    x->answer = NULL;
    return answer;
}

int core_xchg_kept(core_xchg *x, int *kept_status, char **kept_body)
{
    rk_rc kept = rk_answer_get(core_store_db(x->c->store), x->exchange_id, "core", x->request_hash, kept_status,
                               kept_body);
    if (kept == RK_ERR_CONFLICT) {
        *kept_status = 409;
        *kept_body = rk_error_text("conflict", "exchange_id %s was used with another request", x->exchange_id);
    }
    return kept == RK_OK || kept == RK_ERR_CONFLICT;
}

int core_xchg_check(core_xchg *x, int *kept_status, char **kept_body)
{
    core *c = x->c;
    if (core_xchg_kept(x, kept_status, kept_body))
        return 1;
    if (rk_watch_hit(c->rates, x->requester_node->agency, rk_now_ms()))
        rk_node_raise(c->node, "unauthorized_access", "the request rate of %s jumped far beyond its baseline",
                      x->requester_node->agency);
    uint64_t serial = 0;
    int verdict = check_request(c, x, &serial);
    if (verdict != 0)
        return verdict;
    x->gateway = rk_registry_find(c->node->registry, RK_ROLE_GATEWAY, x->provider_node->agency);
    /* the provider's code in the key version it was issued in (rotation) */
    int version = rk_codec_versions(c->codec);
    rk_rc issued = core_store_issued_version(c->store, x->provider_node->agency, serial, &version);
    if (issued != RK_OK && issued != RK_ERR_NOT_FOUND)
        return -2;
    if (!x->gateway || rk_code_derive_version(c->codec, version, serial, rk_agency_number(x->provider_node->agency),
                                              x->provider_code) != RK_OK) {
        set_outcome(x, 502, "provider_unavailable", "the provider has no gateway in the registry");
        return -1;
    }
    return 0;
}

json_t *core_xchg_provision(const core_xchg *x)
{
    json_t *msg = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "exchange_id", x->exchange_id, "code", x->provider_code,
                            "business", x->business, "requester", x->requester_node->agency, "item", x->item,
                            "operator", x->operator_id, "requester_cert", x->requester_cert);
    json_t *condition = rk_condition_json(&x->condition);
    if (condition && msg)
        json_object_set_new(msg, "condition", condition);
    else if (condition)
        json_decref(condition);
    return msg;
}

/* ---------- POST /v1/exchanges: one exchange, one flow ---------- */

static void cleanup(rk_flow *f)
{
    core_xchg_clear(&((exchange *)f)->x);
}

/* The commit is over: today's log lines (the reply is the flow's). */
static void logged(rk_flow *f, rk_rc rc)
{
    core_xchg_logged(&((exchange *)f)->x, rc);
}

/* The last step: record + kept answer committed together, then the reply. */
static void settle(exchange *e)
{
    json_t *answer = core_xchg_settlement(&e->x, &e->flow.settlement);
    rk_flow_settle(&e->flow, core_store_db(e->x.c->store), answer, "exchange_id", logged);
}

/* The provider's own store was unavailable (its database failing over):
 * nothing happened there, so nothing is settled here either and a retry
 * with the same id can succeed (DESIGN §6). */
static int provider_store_lost(rk_rc rc, long status, json_t *body)
{
    const char *code = json_string_value(json_object_get(json_object_get(body, "error"), "code"));
    return rc == RK_OK && status == 503 && code && strcmp(code, "store_unavailable") == 0;
}

static void provision_answered(rk_flow *f, rk_rc rc, rk_http_result *res)
{
    exchange *e = (exchange *)f;
    json_t *body = rc == RK_OK && res->body ? json_loads(res->body, 0, NULL) : NULL;
    int lost = provider_store_lost(rc, rc == RK_OK ? res->status : 0, body);
    if (!lost)
        core_xchg_take_provision(&e->x, rc, rc == RK_OK ? res->status : 0, body);
    json_decref(body);
    rk_http_result_clear(res);
    if (lost)
        rk_flow_fail(f, 503, "store_unavailable", "the provider's database is unavailable; retry with the same id");
    else
        settle(e);
}

/* On a worker: the kept answer of a retry (the first answer, no second
 * effect), else the rate watch, the checks, and the provider's code. One
 * step, so one trip through the pool for an exchange's reads. */
static void check_work(rk_flow *f)
{
    exchange *e = (exchange *)f;
    int status = 0;
    char *kept = NULL;
    e->checked = core_xchg_check(&e->x, &status, &kept);
    if (e->checked == 1)
        rk_reply_text(f->resp, status, kept);
}

/* Checked: a retry (its kept answer), refused (settled), the store could
 * not say (500, nothing settled), or on to the provider's gateway. */
static void checked(rk_flow *f)
{
    exchange *e = (exchange *)f;
    if (e->checked == 1) {
        rk_flow_finish(f);
        return;
    }
    if (e->checked == -2) {
        rk_flow_fail(f, 500, "store_error", "the exchange could not be checked; retry with the same id");
        return;
    }
    if (e->checked == -1) {
        settle(e);
        return;
    }
    json_t *msg = core_xchg_provision(&e->x);
    char *body = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    if (!body) {
        set_outcome(&e->x, 502, "provider_unavailable", "out of memory");
        settle(e);
        return;
    }
    rk_flow_call(f, e->x.c->node, e->x.gateway, "/v1/provisions", body, provision_answered);
}

/* POST /v1/exchanges, on the event thread (a `start` route): only what
 * cannot block — the body's fields, the registry, the id's prefix. */
void core_start_exchange(void *app, rk_pending *p, const rk_request *req, rk_response *resp)
{
    exchange *e = rk_flow_new(p, resp, sizeof *e, cleanup);
    if (!e)
        return;
    if (core_xchg_open(app, &e->x, req, resp) != 0) {
        rk_flow_finish(&e->flow);
        return;
    }
    rk_flow_pool(&e->flow, check_work, checked);
}

/* The core's records and incidents are for the network operator, not for
 * an agency's own operator (who sees its agency's records at its node). */
static int network_operator(const rk_request *req, rk_response *resp)
{
    if (!req->peer->agency[0])
        return 1;
    rk_reply_error(resp, 403, "role_not_allowed", "only the network operator reads the core's records and incidents");
    return 0;
}

void core_handle_records(void *app, const rk_request *req, rk_response *resp)
{
    core *c = app;
    if (network_operator(req, resp))
        rk_records_serve(core_store_db(c->store), req, resp);
}

/* POST /v1/incidents: an incident raised by another node (through an
 * agency's gateway, or from J-LIS or a gateway itself). */
void core_handle_incident(void *app, const rk_request *req, rk_response *resp)
{
    core *c = app;
    rk_incident_accept(core_store_db(c->store), c->node->registry, req, resp);
}

void core_handle_incidents(void *app, const rk_request *req, rk_response *resp)
{
    core *c = app;
    if (network_operator(req, resp))
        rk_incidents_serve(core_store_db(c->store), req, resp);
}

void core_handle_proof(void *app, const rk_request *req, rk_response *resp)
{
    if (network_operator(req, resp))
        rk_records_proof_serve(((core *)app)->log, req, resp);
}

void core_handle_consistency(void *app, const rk_request *req, rk_response *resp)
{
    if (network_operator(req, resp))
        rk_records_consistency_serve(((core *)app)->log, req, resp);
}

void core_handle_heads(void *app, const rk_request *req, rk_response *resp)
{
    if (network_operator(req, resp))
        rk_records_heads_serve(((core *)app)->log, req, resp);
}

/* The checkpoint and tiles hold hashes only: any registered caller reads them (DESIGN §4.1). */
void core_handle_checkpoint(void *app, const rk_request *req, rk_response *resp)
{
    rk_records_checkpoint_serve(((core *)app)->log, req, resp);
}

void core_handle_tile(void *app, const rk_request *req, rk_response *resp)
{
    rk_records_tile_serve(((core *)app)->log, req, resp);
}
