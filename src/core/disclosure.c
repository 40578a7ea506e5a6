/* disclosure.c — the core's side of disclosure to the person (法23条,
 * DESIGN §2.5; マイナポータル's やりとり履歴).
 *
 * POST /v1/persons/exchanges (the portal): a person's exchanges at the core
 * — refused and failed ones too — newest first, each with its leaf (the
 * exact bytes the records log hashed) and its inclusion proof from the
 * stored tiles, against the newest checkpoint every witness cosigned, and
 * the Japanese names of requester, provider, business and item from the
 * catalogue. The portal names the person by resident code, for that one
 * request; the core finds its serial and knows nothing more of them.
 *
 * POST /v1/nondisclosures (an agency, through its gateway): the agency, a
 * party to the exchange, marks it not to be disclosed (法23条 with 個人情報
 * 保護法78条). The marking is a step of the records log and a row of the
 * core; while it is in force the person's list still holds each record of
 * the exchange — its leaf hash and inclusion proof, so the list stays
 * provably the log's — but neither its leaf nor any of its details.
 *
 * POST /v1/nondisclosures/lift (an agency, through its gateway): the agency
 * lifts its own marking before its date; a step of the log (outcome
 * `disclosed`), and the record is shown in detail again unless another
 * party's marking is still in force. A route of its own, not a flag on the
 * marking's: a node that does not know it refuses it (404) instead of
 * reading a lifting as a marking. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core.h"
#include "crypto/cms.h"
#include "lib/ids.h"
#include "lib/log.h"
#include "lib/mynumber.h"
#include "lib/util.h"
#include "records/disclosure.h"
#include "records/records.h"

#define PAGE_DEFAULT 50
#define PAGE_MAX 100

/* Today in Japan (UTC+9, no daylight saving): a marking's until is a date there. */
static void today_jst(char out[11])
{
    time_t t = time(NULL) + 9 * 3600;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}

/* The names of an agency's kind, of a business, of an item, in Japanese
 * (en 0) or English (en 1); NULL where the catalogue has none. */
static json_t *names_json(core *c, const rk_record *r, int en)
{
    const rk_peer_node *req = rk_registry_find(c->node->registry, RK_ROLE_AGENCY, r->requester);
    const rk_peer_node *prov = rk_registry_find(c->node->registry, RK_ROLE_AGENCY, r->provider);
    const char *(*kind)(const rk_permissions *, const char *) = en ? rk_permissions_kind_name_en : rk_permissions_kind_name;
    pthread_rwlock_rdlock(&c->perms_lock);
    const rk_permissions *cat = c->catalogue;
    json_t *names = json_pack("{s:s?,s:s?,s:s?,s:s?}", "requester", req ? kind(cat, req->kind) : NULL, "provider",
                              prov ? kind(cat, prov->kind) : NULL, "business",
                              (en ? rk_permissions_business_name_en : rk_permissions_business_name)(cat, r->business),
                              "item", (en ? rk_permissions_item_name_en : rk_permissions_item_name)(cat, r->item));
    pthread_rwlock_unlock(&c->perms_lock);
    return names;
}

static json_t *b64_json(const void *data, size_t len)
{
    char *b64 = NULL;
    if (rk_base64_encode(data, len, &b64) != RK_OK)
        return NULL;
    json_t *s = json_string(b64);
    free(b64);
    return s;
}

/* One entry of the answer: the record with its leaf and proof, or, withheld, its leaf hash and proof only. */
static json_t *entry_json(core *c, const rk_disclosed *d, const char *today)
{
    char basis[CORE_BASIS_MAX + 1], until[11];
    rk_rc held = core_store_withheld(c->store, d->rec.exchange_id, today, basis, until);
    if (held != RK_OK && held != RK_ERR_NOT_FOUND)
        return NULL;
    json_t *e = json_pack("{s:I}", "leaf_index", (json_int_t)(d->seq - 1));
    if (!e)
        return NULL;
    if (d->proven)
        json_object_set_new(e, "inclusion_proof", rk_disclosure_hashes_json(d->proof, d->proof_len));
    if (held == RK_OK) { /* not disclosed: that a record is there, and no more */
        json_object_set_new(e, "leaf_hash", b64_json(d->leaf_hash, sizeof d->leaf_hash));
        json_object_set_new(e, "withheld", json_pack("{s:s,s:s?}", "basis", basis, "until", until[0] ? until : NULL));
        return e;
    }
    const rk_record *r = &d->rec;
    char req_at[32], prov_at[32] = "";
    rk_format_time(r->requested_ms, req_at, sizeof req_at);
    if (r->provided_ms)
        rk_format_time(r->provided_ms, prov_at, sizeof prov_at);
    json_object_set_new(e, "leaf", b64_json(d->leaf, strlen(d->leaf)));
    json_object_update_new(e, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s?,s:s,s:s,s:o,s:o}", "exchange_id",
                                        r->exchange_id, "requester", r->requester, "provider", r->provider, "business",
                                        r->business, "item", r->item, "requested_at", req_at, "provided_at",
                                        prov_at[0] ? prov_at : NULL, "outcome", r->outcome, "reason", r->reason,
                                        "names", names_json(c, r, 0), "names_en", names_json(c, r, 1)));
    if (r->condition[0])
        json_object_set_new(e, "condition", json_string(r->condition));
    return e;
}

/* POST /v1/persons/exchanges {"resident_code"[,"cursor","limit"]} from the
 * portal → {"exchanges":[…], "tree_head":{…} or null[, "next_cursor"]}.
 * A resident the core does not know has no exchange: an empty list. On a
 * worker (store only). */
void core_handle_person_exchanges(void *app, const rk_request *req, rk_response *resp)
{
    core *c = app;
    long cursor = 0, limit = PAGE_DEFAULT;
    const char *code = rk_req_string(req, resp, "resident_code", 11);
    if (!code)
        return;
    if (rk_resident_code_validate(code) != RK_OK) {
        rk_reply_error(resp, 400, "invalid_field", "field \"resident_code\" must be 11 digits");
        return;
    }
    if ((json_object_get(req->json, "cursor") && rk_req_int(req, resp, "cursor", 1, INT64_MAX, &cursor) != 0) ||
        (json_object_get(req->json, "limit") && rk_req_int(req, resp, "limit", 1, PAGE_MAX, &limit) != 0))
        return;
    rk_db *db = core_store_db(c->store);
    rk_disclosure_head head;
    rk_rc rc = rk_disclosure_head_find(db, c->witnesses, c->n_witnesses, &head);
    if (rc != RK_OK && rc != RK_ERR_NOT_FOUND) {
        rk_reply_error(resp, 500, "store_error", "the records log could not be read");
        return;
    }
    uint64_t serial = 0;
    rk_rc found = core_store_person(c->store, code, &serial);
    rk_disclosed *list = NULL;
    size_t n = 0;
    int64_t next = 0;
    char subject[24], today[11];
    snprintf(subject, sizeof subject, "%llu", (unsigned long long)serial);
    if (found == RK_OK)
        found = rk_disclosure_records(db, subject, cursor, (int)limit, head.size, &list, &n, &next);
    json_t *entries = json_array();
    today_jst(today);
    for (size_t i = 0; entries && i < n; i++) {
        json_t *e = entry_json(c, &list[i], today);
        if (!e) {
            found = RK_ERR_STORE;
            break;
        }
        json_array_append_new(entries, e);
    }
    if (found != RK_OK && found != RK_ERR_NOT_FOUND) {
        rk_reply_error(resp, 500, "store_error", "the person's records could not be read");
        json_decref(entries);
    } else {
        json_t *body = json_pack("{s:o,s:o}", "exchanges", entries, "tree_head",
                                 head.checkpoint ? rk_disclosure_head_json(&head) : json_null());
        if (next)
            json_object_set_new(body, "next_cursor", json_integer(next));
        rk_reply_json(resp, 200, body);
    }
    rk_disclosed_free(list, n);
    rk_disclosure_head_clear(&head);
}

/* text cut to fit out, between two UTF-8 characters */
static void cut_text(const char *text, char *out, size_t outlen)
{
    size_t len = strlen(text), k = len < outlen ? len : outlen - 1;
    while (k > 0 && k < len && ((unsigned char)text[k] & 0xC0) == 0x80)
        k--;
    memcpy(out, text, k);
    out[k] = '\0';
}

/* The core's record of exchange_id as the step an agency party to it adds
 * (outcome, operator, now; reason left to the caller). RK_ERR_NOT_FOUND,
 * answered 404, when there is no such exchange or the agency is no party
 * to it; another error is the store's, not answered. */
static rk_rc party_step(core *c, rk_response *resp, const char *agency, const char *exchange_id, const char *outcome,
                        const char *operator_id, rk_record *step)
{
    rk_rc rc = rk_records_find(core_store_db(c->store), exchange_id, "core", NULL, step);
    if (rc == RK_ERR_NOT_FOUND ||
        (rc == RK_OK && strcmp(step->requester, agency) != 0 && strcmp(step->provider, agency) != 0)) {
        rk_reply_error(resp, 404, "not_found", "%s is no party to an exchange %s", agency, exchange_id);
        return RK_ERR_NOT_FOUND;
    }
    step->requested_ms = rk_node_now_ms(c->node);
    step->provided_ms = 0;
    step->payload_sha256[0] = '\0';
    snprintf(step->outcome, sizeof step->outcome, "%s", outcome);
    snprintf(step->operator_id, sizeof step->operator_id, "%s", operator_id);
    return rc;
}

/* POST /v1/nondisclosures {"exchange_id","basis","operator"[,"until"]} from
 * an agency's gateway: the agency, requester or provider of the exchange,
 * marks it not to be disclosed; the step is recorded with the person's
 * serial, as every record of the exchange. On a worker (store only). */
void core_handle_nondisclosure(void *app, const rk_request *req, rk_response *resp)
{
    core *c = app;
    const char *agency = req->peer->agency;
    const char *exchange_id = rk_req_string(req, resp, "exchange_id", RK_EXCHANGE_ID_MAX);
    const char *basis = exchange_id ? rk_req_string(req, resp, "basis", CORE_BASIS_MAX) : NULL;
    const char *operator_id = basis ? rk_req_string(req, resp, "operator", RK_ID_FIELD_MAX) : NULL;
    if (!operator_id)
        return;
    json_t *u = json_object_get(req->json, "until");
    const char *until = json_string_value(u);
    if ((u && !json_is_null(u) && (!until || !rk_date_valid(until))) || !rk_id_valid(operator_id, RK_ID_FIELD_MAX)) {
        rk_reply_error(resp, 400, "invalid_field", "until must be YYYY-MM-DD when given, operator an id");
        return;
    }
    rk_record step;
    rk_rc rc = party_step(c, resp, agency, exchange_id, "withheld", operator_id, &step);
    if (rc == RK_ERR_NOT_FOUND)
        return;
    /* the whole basis is the marking's; the record names the agency and as
     * much of the basis as fits */
    char cut[111];
    cut_text(basis, cut, sizeof cut);
    snprintf(step.reason, sizeof step.reason, "%.63s: %s%s%.10s", agency, cut, until ? " until " : "", until ? until : "");
    if (rc == RK_OK)
        rc = core_store_withhold(c->store, &step, agency, basis, until, operator_id, step.requested_ms);
    if (rc != RK_OK) {
        rk_reply_error(resp, 500, "store_error", "the marking could not be recorded; retry");
        return;
    }
    rk_info("exchange %s withheld from the person by %s", exchange_id, agency);
    rk_reply_json(resp, 200, json_pack("{s:s,s:s,s:s?}", "exchange_id", exchange_id, "status", "withheld", "until", until));
}

/* POST /v1/nondisclosures/lift {"exchange_id","operator","reason"} from an
 * agency's gateway: the agency lifts its own marking. 404 when it is no
 * party to the exchange, 409 not_withheld when it holds no marking of it.
 * On a worker (store only). */
void core_handle_nondisclosure_lift(void *app, const rk_request *req, rk_response *resp)
{
    core *c = app;
    const char *agency = req->peer->agency;
    const char *exchange_id = rk_req_string(req, resp, "exchange_id", RK_EXCHANGE_ID_MAX);
    const char *operator_id = exchange_id ? rk_req_string(req, resp, "operator", RK_ID_FIELD_MAX) : NULL;
    const char *reason = operator_id ? rk_req_string(req, resp, "reason", CORE_BASIS_MAX) : NULL;
    if (!reason)
        return;
    if (!rk_id_valid(operator_id, RK_ID_FIELD_MAX)) {
        rk_reply_error(resp, 400, "invalid_field", "operator must be an id");
        return;
    }
    rk_record step;
    rk_rc rc = party_step(c, resp, agency, exchange_id, "disclosed", operator_id, &step);
    if (rc == RK_ERR_NOT_FOUND)
        return;
    char cut[111]; /* as much of the reason as fits */
    cut_text(reason, cut, sizeof cut);
    snprintf(step.reason, sizeof step.reason, "%.63s: lifted: %s", agency, cut);
    if (rc == RK_OK)
        rc = core_store_lift(c->store, &step, agency);
    if (rc == RK_ERR_NOT_FOUND) {
        rk_reply_error(resp, 409, "not_withheld", "%s holds no marking of exchange %s", agency, exchange_id);
        return;
    }
    if (rc != RK_OK) {
        rk_reply_error(resp, 500, "store_error", "the lifting could not be recorded; retry");
        return;
    }
    rk_info("exchange %s disclosed to the person again by %s", exchange_id, agency);
    rk_reply_json(resp, 200, json_pack("{s:s,s:s}", "exchange_id", exchange_id, "status", "disclosed"));
}
