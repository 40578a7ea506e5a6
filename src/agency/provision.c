/* provision.c — the provider's side of an exchange, and the provision
 * copies (副本) it answers from (DESIGN §2.2 step 3; standard 第6-4, 第8-2(2)).
 *
 * PUT /v1/data/{person}/{item} stores a new version; a provision request
 * (from this agency's own gateway, on behalf of the core) is answered with
 * the newest version, signed with this node's key and encrypted to the
 * requester's registered certificate, so that only the requester can read
 * it. Every provision, or its absence, is recorded once (法23条). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agency/agency.h"
#include "agency/held_store.h"
#include "crypto/cms.h"
#include "lib/log.h"
#include "net/peer_certs.h"
#include "crypto/pki.h"
#include "records/records.h"
#include "lib/ids.h"
#include "lib/util.h"
#include "node/flow.h"

typedef struct data_answer {
    const char *person, *item, *as_of;
} data_answer;

static char *data_answer_text(int64_t version, void *arg)
{
    const data_answer *d = arg;
    json_t *j = json_pack("{s:s,s:s,s:I,s:s}", "person", d->person, "item", d->item, "version",
                          (json_int_t)version, "as_of", d->as_of);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return text;
}

int agency_read_data(const rk_request *req, rk_response *resp, agency_data_in *in)
{
    memset(in, 0, sizeof *in);
    const char *rest = req->path + strlen("/v1/data/");
    const char *slash = strchr(rest, '/');
    if (!slash || (size_t)(slash - rest) >= sizeof in->person || strlen(slash + 1) >= sizeof in->item) {
        rk_reply_error(resp, 404, "not_found", "use /v1/data/{person}/{item}");
        return -1;
    }
    snprintf(in->person, sizeof in->person, "%.*s", (int)(slash - rest), rest);
    snprintf(in->item, sizeof in->item, "%s", slash + 1);
    in->as_of = rk_req_string(req, resp, "as_of", RK_DATE_LEN);
    in->value = json_object_get(req->json, "value");
    if (!in->as_of)
        return -1;
    if (!rk_person_id_valid(in->person) || !rk_catalogue_id_valid(in->item) || !in->value ||
        !rk_date_valid(in->as_of)) {
        rk_reply_error(resp, 400, "invalid_field", "need a person id, an item id of [a-z0-9_], "
                                                   "\"value\" (any JSON) and \"as_of\" (YYYY-MM-DD)");
        return -1;
    }
    in->request_id = json_string_value(json_object_get(req->json, "request_id"));
    /* Held as a person id is: kept with the answer, so never a My Number either. */
    if (json_object_get(req->json, "request_id") && (!in->request_id || !rk_person_id_valid(in->request_id))) {
        rk_reply_error(resp, 400, "invalid_field", "field \"request_id\" must be 1 to 64 characters of [A-Za-z0-9._-]");
        return -1;
    }
    return 0;
}

/* PUT /v1/data/{person}/{item} {"value": any JSON, "as_of": "YYYY-MM-DD"
 * [, "request_id"]} — with a request_id, a retry gets the first answer and
 * stores no second version (DESIGN §3). */
void agency_put_data(void *app, const rk_request *req, rk_response *resp)
{
    agency *a = app;
    agency_data_in in;
    if (agency_read_data(req, resp, &in) != 0)
        return;
    const char *person = in.person, *item = in.item, *as_of = in.as_of, *request_id = in.request_id;
    json_t *value = in.value;
    char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY), *kept = NULL, hash[65];
    data_answer ans = {person, item, as_of};
    int64_t version = 0;
    rk_rc rc = RK_ERR_NOMEM;
    if (text && request_id) {
        rk_request_hash(req->json, hash);
        rc = agency_store_put_data_once(a->store, request_id, hash, person, item, text, as_of, rk_now_ms(),
                                        data_answer_text, &ans, &version, &kept);
    } else if (text) {
        rc = agency_store_put_data(a->store, person, item, text, as_of, rk_now_ms(), &version);
    }
    free(text);
    if (rc == RK_ERR_NOT_FOUND)
        rk_reply_error(resp, 404, "unknown_person", "no person \"%s\" at this agency", person);
    else if (rc == RK_ERR_CONFLICT)
        rk_reply_error(resp, 409, "conflict", "request_id was used with another request");
    else if (rc != RK_OK)
        rk_reply_error(resp, 500, "store_error", "the data could not be stored; retry");
    else if (kept) /* the first answer to this request_id */
        rk_reply_text(resp, 200, kept);
    else
        rk_reply_json(resp, 200, json_pack("{s:s,s:s,s:I,s:s}", "person", person, "item", item, "version",
                                           (json_int_t)version, "as_of", as_of));
}

/* One provision, whatever carried it (POST /v1/provisions, or an entry of
 * its batch form): read on arrival; the requester's certificate, the person
 * and the sealed version (the newest, or the one in force on the query's
 * condition) found on a worker; then its outcome. The fields borrowed from
 * the request live as long as it. */
typedef struct prov {
    agency *a;
    const char *exchange_id, *code, *business, *requester, *item, *requester_cert, *operator_id;
    rk_condition condition;
    const rk_peer_node *requester_node;
    int64_t requested_ms;
    char request_hash[65];
    rk_record rec;
    char person[RK_ID_FIELD_MAX + 1];
    char *payload;               /* sealed on a worker */
    enum { SEALED, BAD_CERT, LOOKUP_FAILED, SEAL_FAILED, HELD, SELF_DECLINED } outcome;
    int late;                    /* an operator's answer to a held request: never held again */
    held_in held;                /* HELD: what the request keeps for its operator */
    char condition_json[HELD_CONDITION_MAX + 1];
} prov;

int agency_read_provision(const rk_request *req, rk_response *resp, agency_provision_in *in)
{
    if (!(in->exchange_id = rk_req_string(req, resp, "exchange_id", RK_EXCHANGE_ID_MAX)) ||
        !(in->code = rk_req_string(req, resp, "code", RK_CODE_FIELD_MAX)) ||
        !(in->business = rk_req_string(req, resp, "business", RK_CATALOGUE_ID_MAX)) ||
        !(in->requester = rk_req_string(req, resp, "requester", RK_AGENCY_FIELD_MAX)) ||
        !(in->item = rk_req_string(req, resp, "item", RK_CATALOGUE_ID_MAX)) ||
        !(in->requester_cert = rk_req_string(req, resp, "requester_cert", RK_CERT_PEM_MAX)))
        return -1;
    if (rk_req_condition(req, resp, &in->condition) != 0)
        return -1;
    return 0;
}

/* Reads the provision in req's body; 0, or -1 with resp the 400. */
static int prov_open(agency *a, prov *p, const rk_request *req, rk_response *resp)
{
    agency_provision_in in;
    if (agency_read_provision(req, resp, &in) != 0)
        return -1;
    p->a = a;
    p->exchange_id = in.exchange_id;
    p->code = in.code;
    p->business = in.business;
    p->requester = in.requester;
    p->item = in.item;
    p->requester_cert = in.requester_cert;
    p->condition = in.condition;
    /* The requester's operator, as the core relays it (第8-3). */
    const char *op = json_string_value(json_object_get(req->json, "operator"));
    p->operator_id = op && strlen(op) <= RK_ID_FIELD_MAX ? op : "";
    p->requested_ms = req->received_ms;
    rk_request_hash(req->json, p->request_hash);
    /* わたしの情報: the portal asks, through the core, for the person themself */
    p->requester_node = strcmp(p->requester, "portal") == 0 ? rk_registry_find(a->node->registry, RK_ROLE_PORTAL, NULL)
                                                            : rk_registry_find(a->node->registry, RK_ROLE_AGENCY, p->requester);
    return 0;
}

/* The certificate to encrypt to, if it is the requester's registered one. */
static X509 *requester_certificate(agency *a, const prov *p)
{
    X509 *cert = NULL;
    if (!p->requester_node ||
        rk_peer_certs_get_node(a->node->peer_certs, p->requester_cert, p->requester_node, &cert) != RK_OK)
        return NULL;
    return cert;
}

/* Seals the version the query asks for — in force on its condition's date,
 * else the newest — for the requester; NULL answer means no data. */
static rk_rc seal_version(agency *a, prov *p, const char *person, X509 *to, char **payload)
{
    char *value = NULL, as_of[RK_DATE_LEN + 1], on_date[RK_DATE_LEN + 1];
    int64_t version = 0;
    *payload = NULL;
    rk_condition_date(&p->condition, on_date);
    rk_rc rc = agency_store_data_at(a->store, person, p->item, on_date, &value, as_of, &version);
    if (rc != RK_OK)
        return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
    json_t *inner = json_pack("{s:s,s:s,s:s,s:o,s:s,s:I}", "exchange_id", p->exchange_id, "provider",
                              a->node->self->agency, "item", p->item, "value",
                              json_loads(value, JSON_DECODE_ANY, NULL), "as_of", as_of, "version", (json_int_t)version);
    char *plain = inner ? json_dumps(inner, JSON_COMPACT) : NULL;
    const rk_identity *me = rk_node_identity(a->node); /* certificate and key of one renewal */
    rc = plain ? rk_cms_seal(me->cert, me->key, to, plain, strlen(plain), payload) : RK_ERR_NOMEM;
    if (plain) {
        rk_wipe(plain, strlen(plain)); /* content: never kept in the clear */
        free(plain);
    }
    rk_wipe(value, strlen(value));
    free(value);
    json_decref(inner);
    return rc;
}

/* A held request keeps what its late answer needs: never a value. */
static void held_prepare(prov *p)
{
    json_t *c = rk_condition_json(&p->condition);
    char *text = c ? json_dumps(c, JSON_COMPACT) : NULL;
    snprintf(p->condition_json, sizeof p->condition_json, "%s", text ? text : "");
    free(text);
    json_decref(c);
    int64_t timeout_ms = (int64_t)p->a->node->cfg.held_timeout_s * 1000;
    p->held = (held_in){p->exchange_id, p->person, p->requester, p->business, p->item, p->operator_id, p->code,
                        p->condition_json, p->requester_cert, p->requested_ms, p->requested_ms + timeout_ms};
}

static void fill_provider_record(prov *p)
{
    rk_record *r = &p->rec;
    snprintf(r->exchange_id, sizeof r->exchange_id, "%s", p->exchange_id);
    strcpy(r->side, "provider");
    snprintf(r->requester, sizeof r->requester, "%s", p->requester);
    snprintf(r->provider, sizeof r->provider, "%s", p->a->node->self->agency);
    snprintf(r->business, sizeof r->business, "%s", p->business);
    snprintf(r->item, sizeof r->item, "%s", p->item);
    snprintf(r->subject, sizeof r->subject, "%s", p->person);
    snprintf(r->operator_id, sizeof r->operator_id, "%s", p->operator_id);
    r->requested_ms = p->requested_ms;
    rk_condition_text(&p->condition, r->condition);
}

/* On a worker: the requester's certificate, the person holding the code,
 * and the version signed and encrypted (the CPU of a provision). */
static void prov_seal(prov *p)
{
    X509 *to = requester_certificate(p->a, p);
    rk_rc rc = to ? agency_store_person_by_code(p->a->store, p->code, p->person, sizeof p->person) : RK_OK;
    int held = 0;
    if (to && rc == RK_OK && p->person[0] && !p->late) /* 手動応答: flagged persons wait for an operator */
        rc = held_store_person_held(agency_store_db(p->a->store), p->person, &held);
    if (!to)
        p->outcome = BAD_CERT;
    else if (rc != RK_OK && rc != RK_ERR_NOT_FOUND)
        p->outcome = LOOKUP_FAILED;
    else if (held && strcmp(p->requester, "portal") == 0)
        p->outcome = SELF_DECLINED; /* わたしの情報: no late answer could reach the portal */
    else if (held)
        p->outcome = HELD;
    else if (p->person[0] && seal_version(p->a, p, p->person, to, &p->payload) != RK_OK)
        p->outcome = SEAL_FAILED;
    else
        p->outcome = SEALED;
    X509_free(to);
}

/* The sealed provision's answer and record (0; the answer is the caller's
 * to settle with p->rec), or a refusal that settles nothing: its status,
 * code and message. */
static int prov_outcome(prov *p, json_t **answer, const char **code, const char **message)
{
    switch (p->outcome) {
    case BAD_CERT:
        *code = "bad_requester_cert";
        *message = "requester_cert is not the requester's registered certificate";
        return 400;
    case LOOKUP_FAILED:
        *code = "store_error"; /* a lost database: 503 store_unavailable (net/reply.c) */
        *message = "the person could not be looked up; retry with the same exchange_id";
        return 500;
    case SEAL_FAILED:
        *code = "internal";
        *message = "the value could not be sealed";
        return 500;
    case HELD:
        fill_provider_record(p);
        strcpy(p->rec.outcome, "held");
        strcpy(p->rec.reason, "held for an operator (手動応答): the person's data is not answered automatically");
        held_prepare(p);
        *answer = json_pack("{s:s,s:s}", "exchange_id", p->exchange_id, "status", "held");
        return 0;
    case SELF_DECLINED:
        fill_provider_record(p);
        strcpy(p->rec.outcome, "declined");
        strcpy(p->rec.reason, "held for an operator (手動応答): not answered to the portal automatically");
        *answer = json_pack("{s:s,s:s}", "exchange_id", p->exchange_id, "status", "declined");
        return 0;
    case SEALED:
        break;
    }
    fill_provider_record(p);
    if (p->payload && rk_payload_digest(p->payload, p->rec.payload_sha256) == RK_OK) {
        p->rec.provided_ms = rk_now_ms();
        strcpy(p->rec.outcome, "provided");
        /* The signing certificate travels beside the payload (cms.h). */
        *answer = json_pack("{s:s,s:s,s:s,s:s}", "exchange_id", p->exchange_id, "status", "provided", "payload",
                            p->payload, "provider_cert", rk_node_identity(p->a->node)->cert_pem);
    } else {
        strcpy(p->rec.outcome, "no_data");
        snprintf(p->rec.reason, sizeof p->rec.reason, "%s",
                 p->person[0] ? "no data for this item" : "no person has this code here");
        *answer = json_pack("{s:s,s:s}", "exchange_id", p->exchange_id, "status", "no_data");
    }
    return 0;
}

/* What a settled provision is kept as: a held one with its held request,
 * in the same commit. */
static rk_settlement prov_settlement(prov *p)
{
    return (rk_settlement){.record = &p->rec, .key = p->exchange_id, .request_hash = p->request_hash, .status = 200,
                           .extra = p->outcome == HELD ? held_store_keep : NULL, .extra_arg = &p->held};
}

/* ---------- POST /v1/provisions: one provision, a flow ---------- */

typedef struct provision {
    rk_flow f;                   /* first: the flow's own state */
    prov p;
    int replayed;                /* answered from the kept answer */
} provision;

/* The flow's cleanup: the payload is ciphertext. */
static void provision_cleanup(rk_flow *f)
{
    free(((provision *)f)->p.payload);
}

/* On a worker: the answer kept for this exchange_id (DESIGN §3), else the
 * seal, while the event thread serves other connections; one pool step
 * for all (rk_flow_replay would take a step of its own). */
static void seal_work(rk_flow *f)
{
    provision *v = (provision *)f;
    v->replayed = rk_answer_replay(agency_store_db(v->p.a->store), v->p.exchange_id, "provider", v->p.request_hash,
                                   "exchange_id", f->resp);
    if (!v->replayed)
        prov_seal(&v->p);
}

/* Back on the event thread: the answer, then its record. */
static void sealed(rk_flow *f)
{
    provision *v = (provision *)f;
    if (v->replayed) {
        rk_flow_finish(f);
        return;
    }
    json_t *answer = NULL;
    const char *code = NULL, *message = NULL;
    int refused = prov_outcome(&v->p, &answer, &code, &message);
    if (refused) {
        rk_flow_fail(f, refused, code, message);
        return;
    }
    v->f.settlement = prov_settlement(&v->p);
    rk_flow_settle(f, agency_store_db(v->p.a->store), answer, "exchange_id", NULL);
}

/* POST /v1/provisions from this agency's gateway (on behalf of the core),
 * on the event thread (a `start` route). */
void agency_start_provision(void *app, rk_pending *pending, const rk_request *req, rk_response *resp)
{
    provision *v = rk_flow_new(pending, resp, sizeof *v, provision_cleanup);
    if (!v)
        return;
    if (prov_open(app, &v->p, req, resp) != 0) {
        rk_flow_finish(&v->f);
        return;
    }
    rk_flow_pool(&v->f, seal_work, sealed);
}

/* ---------- POST /v1/provisions/batch: many, one commit ---------- */

typedef struct prov_batch {
    agency *a;
    prov *items;
    const char **ids;
} prov_batch;

static int open_entry(const rk_request *e, rk_response *resp, size_t i, void *arg)
{
    prov_batch *b = arg;
    if (prov_open(b->a, &b->items[i], e, resp) != 0)
        return -1;
    b->ids[i] = b->items[i].exchange_id;
    return 0;
}

/* Each entry answered as POST /v1/provisions would answer it: its kept
 * answer, else sealed; the new ones recorded in one commit. */
static void provide_all(prov_batch *b, rk_entry_answer *out, size_t n)
{
    rk_db *db = agency_store_db(b->a->store);
    for (size_t i = 0; i < n; i++) {
        prov *p = &b->items[i];
        rk_entry_answer *o = &out[i];
        o->id = p->exchange_id;
        if (rk_answer_entry(db, p->exchange_id, "provider", p->request_hash, "exchange_id", &o->status, &o->text))
            continue;
        prov_seal(p);
        json_t *answer = NULL;
        const char *code = NULL, *message = NULL;
        o->status = prov_outcome(p, &answer, &code, &message);
        if (o->status) {
            o->text = rk_error_text(code, "%s", message);
            continue;
        }
        o->status = 200;
        o->text = answer ? json_dumps(answer, JSON_COMPACT) : NULL;
        json_decref(answer);
        o->s = prov_settlement(p);
        o->settle = 1;
    }
    rk_settle_entries(db, out, n, "exchange_id");
}

/* POST /v1/provisions/batch {"provisions":[…as POST /v1/provisions…]} from
 * this agency's gateway (on behalf of the core, 一括照会): a `fn` route, on
 * a worker — it only reads the store, seals and writes. */
void agency_post_provisions_batch(void *app, const rk_request *req, rk_response *resp)
{
    json_t *list = rk_req_batch(req, resp, "provisions");
    if (!list)
        return;
    size_t n = json_array_size(list);
    prov_batch b = {app, calloc(n, sizeof *b.items), calloc(n, sizeof *b.ids)};
    rk_entry_answer *out = calloc(n, sizeof *out);
    if (!b.items || !b.ids || !out)
        rk_reply_error(resp, 500, "internal", "out of memory");
    else if (rk_req_entries(req, resp, "provisions", list, open_entry, &b) == 0 &&
             rk_req_distinct(resp, b.ids, n, "invalid_field", "exchange_id") == 0) {
        provide_all(&b, out, n);
        json_t *answer = rk_entry_results(out, n, "exchange_id");
        if (answer)
            rk_reply_json(resp, 200, answer);
        else
            rk_reply_error(resp, 500, "internal", "out of memory");
    }
    for (size_t i = 0; out && b.items && i < n; i++) {
        free(out[i].text);
        free(b.items[i].payload);
    }
    free(out);
    free(b.items);
    free(b.ids);
}

/* ---------- the late answer to a held request (held.c) ---------- */

rk_rc agency_held_answer(agency *a, const held_row *h, const char *operator_id, rk_record *late, char **result)
{
    prov p = {.a = a, .exchange_id = h->exchange_id, .code = h->code, .business = h->business,
              .requester = h->requester, .item = h->item, .requester_cert = h->requester_cert,
              .operator_id = h->operator_id, .requested_ms = h->requested_ms, .late = 1};
    json_t *cond = h->condition_json[0] ? json_loads(h->condition_json, 0, NULL) : NULL;
    int bad = rk_condition_read(cond, &p.condition);
    json_decref(cond);
    if (bad)
        return RK_ERR_INVALID;
    p.requester_node = rk_registry_find(a->node->registry, RK_ROLE_AGENCY, p.requester);
    prov_seal(&p);
    json_t *answer = NULL;
    const char *code = NULL, *message = NULL;
    int refused = prov_outcome(&p, &answer, &code, &message);
    free(p.payload);
    if (refused) {
        json_decref(answer);
        return refused == 400 ? RK_ERR_INVALID : RK_ERR_STORE;
    }
    *late = p.rec;
    late->requested_ms = h->requested_ms;
    snprintf(late->reason, sizeof late->reason, "answered by operator %.64s%s", operator_id,
             strcmp(late->outcome, "no_data") == 0 ? ": no data" : "");
    *result = answer ? json_dumps(answer, JSON_COMPACT) : NULL;
    json_decref(answer);
    return *result ? RK_OK : RK_ERR_NOMEM;
}

void agency_get_records(void *app, const rk_request *req, rk_response *resp)
{
    agency *a = app;
    rk_records_serve(agency_store_db(a->store), req, resp);
}

void agency_get_proof(void *app, const rk_request *req, rk_response *resp)
{
    rk_records_proof_serve(((agency *)app)->log, req, resp);
}

void agency_get_consistency(void *app, const rk_request *req, rk_response *resp)
{
    rk_records_consistency_serve(((agency *)app)->log, req, resp);
}

void agency_get_heads(void *app, const rk_request *req, rk_response *resp)
{
    rk_records_heads_serve(((agency *)app)->log, req, resp);
}

void agency_get_checkpoint(void *app, const rk_request *req, rk_response *resp)
{
    rk_records_checkpoint_serve(((agency *)app)->log, req, resp);
}

void agency_get_tile(void *app, const rk_request *req, rk_response *resp)
{
    rk_records_tile_serve(((agency *)app)->log, req, resp);
}
