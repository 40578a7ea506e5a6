/* queries.c — the requester's side of an exchange (DESIGN §2.2 steps 1 and 4;
 * standard 第8-3, 第8-4(1)).
 *
 * An operator's business system asks, naming the operator (第8-3), for one
 * item of one of this agency's persons from a provider agency. The request
 * goes with this agency's code for the person through its gateway to the
 * core. A provided value arrives sealed: it is decrypted with this node's
 * key and accepted only when signed by the provider's registered
 * certificate (else `bad_payload`). Each settled query is recorded once and
 * its answer kept, so the same query_id again gets the same answer. A query
 * whose outcome is unknown (the core could not be reached) is not settled:
 * it may be retried with the same id, and the core's own answer cache makes
 * that retry exactly-once. */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agency/agency.h"
#include "agency/query.h"
#include "crypto/cms.h"
#include "lib/ids.h"
#include "lib/log.h"
#include "net/peer_certs.h"
#include "records/records.h"
#include "lib/util.h"
#include "node/flow.h"

/* One query, a flow (node/flow.h): parsed on the event thread; the kept
 * answer, else the person's code, read on the pool; the exchange sent through
 * the loop's relay; the core's answer opened on the pool; then settled. The
 * fields borrowed from the request live until rk_flow_finish. */
typedef struct query {
    rk_flow f;                /* first: the flow's own state */
    agency_q q;
    char code[64];
    int replayed;             /* answered from the kept answer */
    rk_rc code_rc;            /* the code read, on a worker */
    rk_rc core_rc;            /* the core's answer, read on a worker */
    rk_http_result core_res;
    int known;
} query;

int agency_read_query(const rk_request *req, rk_response *resp, agency_query_in *q)
{
    if (!(q->query_id = rk_req_string(req, resp, "query_id", RK_ID_FIELD_MAX)) ||
        !(q->person = rk_req_string(req, resp, "person", RK_ID_FIELD_MAX)) ||
        !(q->business = rk_req_string(req, resp, "business", RK_CATALOGUE_ID_MAX)) ||
        !(q->provider = rk_req_string(req, resp, "provider", RK_AGENCY_FIELD_MAX)) ||
        !(q->item = rk_req_string(req, resp, "item", RK_CATALOGUE_ID_MAX)) ||
        !(q->operator_id = rk_req_string(req, resp, "operator", RK_ID_FIELD_MAX)))
        return -1;
    if (!rk_id_valid(q->query_id, RK_ID_FIELD_MAX) || !rk_id_valid(q->operator_id, RK_ID_FIELD_MAX)) {
        rk_reply_error(resp, 400, "invalid_field", "query_id and operator must be characters of [A-Za-z0-9._-]");
        return -1;
    }
    if (rk_req_condition(req, resp, &q->condition) != 0)
        return -1;
    return 0;
}

/* The exchange id: this agency's id and a digest of the query id, so that
 * a retry of the same query is the same exchange at the core, and no other
 * agency can use it (see RK_EXCHANGE_ID_MAX). */
static void exchange_id_for(const char *agency_id, const char *query_id, char out[RK_EXCHANGE_ID_MAX + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    char hex[33];
    EVP_Digest(query_id, strlen(query_id), md, NULL, EVP_sha256(), NULL);
    rk_hex(md, 16, hex);
    snprintf(out, RK_EXCHANGE_ID_MAX + 1, "%s.%s", agency_id, hex);
}

static void set_outcome(agency_q *q, int status, const char *outcome, const char *reason)
{
    snprintf(q->rec.outcome, sizeof q->rec.outcome, "%s", outcome);
    snprintf(q->rec.reason, sizeof q->rec.reason, "%s", reason ? reason : "");
    q->status = status;
    json_decref(q->answer);
    if (status >= 400)
        q->answer = json_pack("{s:s,s:s,s:{s:s,s:s}}", "query_id", q->query_id, "exchange_id", q->exchange_id,
                              "error", "code", outcome, "message", q->rec.reason);
    else
        q->answer = json_pack("{s:s,s:s,s:s}", "query_id", q->query_id, "exchange_id", q->exchange_id, "status",
                              outcome);
}

void agency_q_not_linked(agency_q *q)
{
    set_outcome(q, 409, "person_not_linked", "the person is unknown here or has no code yet");
}

/* Opens a sealed payload and checks it answers this exchange: signed with
 * the provider's registered certificate (sent beside the payload). */
static int open_payload(agency_q *q, const char *payload, const char *provider_cert)
{
    agency *a = q->a;
    const rk_peer_node *prov = rk_registry_find(a->node->registry, RK_ROLE_AGENCY, q->provider);
    char *plain = NULL;
    size_t len = 0;
    X509 *signer = NULL;
    rk_rc rc = prov ? rk_peer_certs_get_node(a->node->peer_certs, provider_cert, prov, &signer)
                    : RK_ERR_INVALID;
    const rk_identity *me = rk_node_identity(a->node); /* certificate and key of one renewal */
    if (rc == RK_OK && (rc = rk_cms_open(me->cert, me->key, signer, payload, &plain, &len)) != RK_OK && me->before)
        /* an answer sealed to the certificate this node sent before a renewal taken while it waited */
        rc = rk_cms_open(me->before->cert, me->before->key, signer, payload, &plain, &len);
    X509_free(signer);
    if (rc != RK_OK)
        return -1;
    json_t *inner = json_loadb(plain, len, 0, NULL);
    rk_wipe(plain, len);
    free(plain);
    const char *xid = json_string_value(json_object_get(inner, "exchange_id"));
    const char *item = json_string_value(json_object_get(inner, "item"));
    const char *as_of = json_string_value(json_object_get(inner, "as_of"));
    json_t *value = json_object_get(inner, "value");
    int ok = xid && item && as_of && value && strcmp(xid, q->exchange_id) == 0 && strcmp(item, q->item) == 0 &&
             strlen(as_of) == RK_DATE_LEN;
    if (ok) {
        snprintf(q->as_of, sizeof q->as_of, "%s", as_of);
        q->value_json = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
        json_object_set(q->answer, "value", value);
        json_object_set_new(q->answer, "as_of", json_string(as_of));
        json_object_set_new(q->answer, "provider", json_string(q->provider));
        json_object_set_new(q->answer, "item", json_string(q->item));
    }
    json_decref(inner);
    return ok && q->value_json ? 0 : -1;
}

/* Errors that say nothing about the exchange itself: the gateway could not
 * reach the core (or, in a batch, the core the provider), or a node was
 * busy or failed to store. A retry with the same id may still settle it. */
static int outcome_unknown(const char *err)
{
    static const char *const transient[] = {"upstream_unavailable", "upstream_timeout", "store_error",
                                            "store_unavailable", "overloaded", "internal", "rate_limited"};
    for (size_t i = 0; i < sizeof transient / sizeof transient[0]; i++)
        if (strcmp(err, transient[i]) == 0)
            return 1;
    return 0;
}

int agency_q_take(agency_q *q, rk_rc rc, long status, json_t *body)
{
    const char *st = json_string_value(json_object_get(body, "status"));
    const char *err = json_string_value(json_object_get(json_object_get(body, "error"), "code"));
    const char *msg = json_string_value(json_object_get(json_object_get(body, "error"), "message"));
    const char *payload = json_string_value(json_object_get(body, "payload"));
    const char *provider_cert = json_string_value(json_object_get(body, "provider_cert"));
    if (rc == RK_OK && status == 200 && st && strcmp(st, "provided") == 0 && payload) {
        set_outcome(q, 200, "provided", NULL);
        rk_payload_digest(payload, q->rec.payload_sha256);
        if (open_payload(q, payload, provider_cert) != 0) {
            rk_warn("exchange %s: payload failed decryption or signature check", q->exchange_id);
            set_outcome(q, 502, "bad_payload", "the payload failed decryption or the provider's signature check");
        } else {
            q->rec.provided_ms = rk_now_ms();
        }
    } else if (rc == RK_OK && status == 200 && st && strcmp(st, "no_data") == 0) {
        set_outcome(q, 200, "no_data", "the provider holds no data for this person and item");
    } else if (rc == RK_OK && (status == 200 || status == 202) && st && strcmp(st, "held") == 0) {
        /* 手動応答: the provider's operator answers later (POST /v1/query-results) */
        set_outcome(q, 202, "held", "the provider holds the request for its operator");
    } else if (rc == RK_OK && status == 200 && st && strcmp(st, "declined") == 0) { /* a held request's late result */
        const char *why = json_string_value(json_object_get(body, "reason"));
        set_outcome(q, 200, "declined", why && strlen(why) < RK_REASON_MAX ? why : "declined by the provider");
    } else if (rc == RK_OK && err && !outcome_unknown(err)) {
        set_outcome(q, (int)status, err, msg);
    } else {
        snprintf(q->transient, sizeof q->transient, "%s", err ? err : "");
        return -1;
    }
    return 0;
}

static void fill_requester_record(agency_q *q, const rk_request *req)
{
    rk_record *r = &q->rec;
    snprintf(r->exchange_id, sizeof r->exchange_id, "%s", q->exchange_id);
    strcpy(r->side, "requester");
    snprintf(r->requester, sizeof r->requester, "%s", q->a->node->self->agency);
    snprintf(r->provider, sizeof r->provider, "%s", q->provider);
    snprintf(r->business, sizeof r->business, "%s", q->business);
    snprintf(r->item, sizeof r->item, "%s", q->item);
    snprintf(r->operator_id, sizeof r->operator_id, "%s", q->operator_id);
    snprintf(r->subject, sizeof r->subject, "%s", q->person);
    r->requested_ms = req->received_ms;
    rk_condition_text(&q->condition, r->condition);
}

int agency_q_open(agency *a, agency_q *q, const rk_request *req, rk_response *resp)
{
    agency_query_in in;
    q->a = a;
    if (agency_read_query(req, resp, &in) != 0)
        return -1;
    q->query_id = in.query_id;
    q->person = in.person;
    q->business = in.business;
    q->provider = in.provider;
    q->item = in.item;
    q->operator_id = in.operator_id;
    q->condition = in.condition;
    rk_request_hash(req->json, q->request_hash);
    exchange_id_for(a->node->self->agency, q->query_id, q->exchange_id);
    fill_requester_record(q, req);
    return 0;
}

json_t *agency_q_exchange(const agency_q *q, const char *code)
{
    json_t *msg = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "exchange_id", q->exchange_id, "code", code,
                            "business", q->business, "provider", q->provider, "item", q->item, "operator",
                            q->operator_id, "requester_cert", rk_node_identity(q->a->node)->cert_pem);
    json_t *condition = rk_condition_json(&q->condition);
    if (condition && msg)
        json_object_set_new(msg, "condition", condition);
    else if (condition)
        json_decref(condition);
    return msg;
}

json_t *agency_q_settlement(agency_q *q, rk_settlement *s)
{
    int provided = strcmp(q->rec.outcome, "provided") == 0, held = strcmp(q->rec.outcome, "held") == 0;
    q->received = (agency_received){q->exchange_id, q->person, q->provider, q->item, q->value_json, q->as_of,
                                    rk_now_ms()};
    q->awaiting = (awaiting_in){q->exchange_id, q->query_id, q->person, q->provider, q->item, rk_now_ms()};
    *s = (rk_settlement){.record = &q->rec, .key = q->query_id, .request_hash = q->request_hash,
                         .status = q->status,
                         .extra = provided ? agency_store_keep_received : held ? held_store_keep_awaiting : NULL,
                         .extra_arg = held ? (void *)&q->awaiting : (void *)&q->received};
    json_t *answer = q->answer; /* the caller's from here */
    q->answer = NULL;
    return answer;
}

void agency_q_clear(agency_q *q)
{
    if (q->value_json) {
        rk_wipe(q->value_json, strlen(q->value_json));
        free(q->value_json);
        q->value_json = NULL;
    }
    json_decref(q->answer);
    q->answer = NULL;
}

/* ---------- POST /v1/queries: one query, one flow ---------- */

/* The flow's cleanup: the provided value is wiped; the kept text holding it
 * is wiped by rk_flow_finish. */
static void query_cleanup(rk_flow *f)
{
    query *q = (query *)f;
    agency_q_clear(&q->q);
    rk_http_result_clear(&q->core_res); /* ciphertext and metadata only */
}

/* The record, the kept answer and a provided value, committed together by
 * the store's committer thread; then the reply. */
static void settle(query *q)
{
    json_t *answer = agency_q_settlement(&q->q, &q->f.settlement);
    rk_flow_settle(&q->f, agency_store_db(q->q.a->store), answer, "query_id", NULL);
}

/* On a worker: the answer read, the payload decrypted and its signature
 * checked (the CPU of a query), while the event thread serves others. */
static void take_answer_work(rk_flow *f)
{
    query *q = (query *)f;
    json_t *body = q->core_rc == RK_OK && q->core_res.body ? json_loads(q->core_res.body, 0, NULL) : NULL;
    q->known = agency_q_take(&q->q, q->core_rc, q->core_res.status, body);
    json_decref(body);
    rk_http_result_clear(&q->core_res);
}

/* Back on the event thread: settle, or say the outcome is unknown. */
static void answer_taken(rk_flow *f)
{
    query *q = (query *)f;
    if (q->known == 0)
        settle(q);
    else if (strcmp(q->q.transient, "rate_limited") == 0)
        rk_flow_fail(f, 429, "rate_limited", "this agency is over its rate to the core; retry with the same query_id");
    else if (strcmp(q->q.transient, "store_unavailable") == 0) /* a database on the way: the core's or the provider's */
        rk_flow_fail(f, 503, "store_unavailable", "a database on the exchange's way is unavailable (a failover);"
                                                   " retry with the same query_id");
    else
        rk_flow_fail(f, 503, "core_unavailable", "the core could not be reached; retry with the same query_id");
}

static void core_answered(rk_flow *f, rk_rc rc, rk_http_result *res)
{
    query *q = (query *)f;
    q->core_rc = rc;
    q->core_res = *res; /* the body moves to q */
    rk_flow_pool(f, take_answer_work, answer_taken);
}

/* On a worker: the answer kept for this query_id (DESIGN §3), else the
 * person's code; one pool step for both (rk_flow_replay would take a step
 * of its own). */
static void code_work(rk_flow *f)
{
    query *q = (query *)f;
    rk_db *db = agency_store_db(q->q.a->store);
    q->replayed = rk_answer_replay(db, q->q.query_id, "requester", q->q.request_hash, "query_id", f->resp);
    if (!q->replayed)
        q->code_rc = agency_store_code_of(q->q.a->store, q->q.person, q->code, sizeof q->code);
}

/* The exchange goes to the core through this agency's gateway; a person
 * without a code is settled here. */
static void code_read(rk_flow *f)
{
    query *q = (query *)f;
    agency *a = q->q.a;
    if (q->replayed) {
        rk_flow_finish(f);
        return;
    }
    if (q->code_rc == RK_ERR_NOT_FOUND) {
        agency_q_not_linked(&q->q);
        settle(q);
        return;
    }
    if (q->code_rc != RK_OK) { /* nothing settled: a retry may succeed */
        rk_flow_fail(f, 500, "store_error", "the person's code could not be read; retry with the same query_id");
        return;
    }
    json_t *msg = agency_q_exchange(&q->q, q->code);
    char *body = msg ? json_dumps(msg, JSON_COMPACT) : NULL; /* no value in it: freed by the flow */
    json_decref(msg);
    rk_flow_call(f, a->node, a->gateway, "/v1/exchanges", body, core_answered);
}

/* POST /v1/queries from a business system of this agency, on the event
 * thread (a `start` route). */
void agency_start_query(void *app, rk_pending *p, const rk_request *req, rk_response *resp)
{
    query *q = rk_flow_new(p, resp, sizeof *q, query_cleanup);
    if (!q)
        return;
    if (agency_q_open(app, &q->q, req, resp) != 0) {
        rk_flow_finish(&q->f);
        return;
    }
    rk_flow_pool(&q->f, code_work, code_read);
}
