/* nondisclosure.c — a record not to be disclosed to the person (法23条 with
 * 個人情報保護法78条: 不開示情報).
 *
 * The agency's privileged operator marks an exchange this agency was party
 * to (requester or provider): POST /v1/records/{exchange_id}/nondisclosure
 * {"basis","operator"[,"until"]}. The marking is a step of this agency's
 * records log, and the agency tells the core through its gateway (POST
 * /v1/nondisclosures), which records it too and from then on shows the
 * person that a record is there — its leaf hash and inclusion proof — but
 * none of its details, until the date given or, without one, for good.
 * A repeat is harmless: the log keeps the first marking, the core the
 * latest basis and date.
 *
 * The same operator lifts it before its date (or one marked until lifted):
 * POST /v1/records/{exchange_id}/nondisclosure/lift {"operator","reason"}.
 * The lifting is a step of this agency's log (outcome `disclosed`), and the
 * core, told through the gateway (POST /v1/nondisclosures/lift), drops this
 * agency's marking and records the step too: the person sees the record in
 * detail again. 409 not_withheld when this agency never marked it, or the
 * core holds no marking of this agency's for it. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "agency/agency.h"
#include "lib/ids.h"
#include "lib/log.h"
#include "node/flow.h"
#include "records/records.h"

#define BASIS_MAX 150 /* the core's cap (core/core_store.h CORE_BASIS_MAX) */

typedef struct withholding {
    rk_flow f;                    /* first: the flow's own state */
    agency *a;
    char exchange_id[RK_EXCHANGE_ID_MAX + 1];
    const char *basis, *operator_id, *until; /* borrowed from the request; a lifting's reason in basis */
    rk_record rec;
    int found;                    /* 1 found and stepped, 0 not this agency's, 2 never marked, -1 the store failed */
} withholding;

/* This agency's record of the exchange, as its requester or its provider. */
static rk_rc find_own(withholding *w, rk_db *db)
{
    rk_rc rc = rk_records_find(db, w->exchange_id, "requester", NULL, &w->rec);
    return rc == RK_ERR_NOT_FOUND ? rk_records_find(db, w->exchange_id, "provider", NULL, &w->rec) : rc;
}

/* On a worker: the agency's record of the exchange, and the marking's step. */
static void mark_work(rk_flow *f)
{
    withholding *w = (withholding *)f;
    rk_db *db = agency_store_db(w->a->store);
    rk_rc rc = find_own(w, db);
    if (rc == RK_ERR_NOT_FOUND) {
        w->found = 0;
        return;
    }
    char reason[RK_REASON_MAX + 1];
    snprintf(reason, sizeof reason, "not disclosed to the person%s%s", w->until ? " until " : "", w->until ? w->until : "");
    rk_record base = w->rec;
    snprintf(base.operator_id, sizeof base.operator_id, "%s", w->operator_id);
    if (rc == RK_OK)
        rc = rk_records_append_step(db, &base, "withheld", reason, rk_node_now_ms(w->a->node));
    w->found = rc == RK_OK ? 1 : -1;
}

static void core_answered(rk_flow *f, rk_rc rc, rk_http_result *res)
{
    withholding *w = (withholding *)f;
    long status = rc == RK_OK ? res->status : 0;
    rk_http_result_clear(res);
    if (status != 200) {
        rk_warn("the marking of exchange %s did not reach the core (HTTP %ld)", w->exchange_id, status);
        rk_flow_fail(f, 502, "core_unavailable", "marked here; the core has not recorded it yet: send it again");
        return;
    }
    rk_warn("exchange %s marked not to be disclosed by %s", w->exchange_id, w->operator_id);
    rk_reply_json(f->resp, 200, json_pack("{s:s,s:s,s:s?}", "exchange_id", w->exchange_id, "status", "withheld",
                                          "until", w->until));
    rk_flow_finish(f);
}

static void marked(rk_flow *f)
{
    withholding *w = (withholding *)f;
    if (w->found <= 0) {
        if (w->found == 0)
            rk_flow_fail(f, 404, "not_found", "this agency was party to no such exchange");
        else
            rk_flow_fail(f, 500, "store_error", "the marking could not be recorded; retry");
        return;
    }
    json_t *msg = json_pack("{s:s,s:s,s:s,s:s?}", "exchange_id", w->exchange_id, "basis", w->basis, "operator",
                            w->operator_id, "until", w->until);
    char *body = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    rk_flow_call(f, w->a->node, w->a->gateway, "/v1/nondisclosures", body, core_answered);
}

/* The exchange id of /v1/records/{exchange_id}<suffix>; -1 with the reply when the path is not that. */
static int read_path(const rk_request *req, rk_response *resp, const char *suffix,
                     char exchange_id[RK_EXCHANGE_ID_MAX + 1])
{
    static const char prefix[] = "/v1/records/";
    size_t plen = strlen(req->path), slen = strlen(suffix);
    size_t n = plen > sizeof prefix - 1 + slen ? plen - (sizeof prefix - 1) - slen : 0;
    if (!n || n > RK_EXCHANGE_ID_MAX || strncmp(req->path, prefix, sizeof prefix - 1) != 0 ||
        strcmp(req->path + plen - slen, suffix) != 0) {
        rk_reply_error(resp, 404, "not_found", "no such endpoint");
        return -1;
    }
    memcpy(exchange_id, req->path + sizeof prefix - 1, n);
    exchange_id[n] = '\0';
    if (strchr(exchange_id, '/') || !rk_id_valid(exchange_id, RK_EXCHANGE_ID_MAX)) {
        rk_reply_error(resp, 400, "invalid_field", "the exchange id in the path is not an id");
        return -1;
    }
    return 0;
}

int agency_read_nondisclosure(const rk_request *req, rk_response *resp, char exchange_id[RK_EXCHANGE_ID_MAX + 1],
                              const char **basis, const char **operator_id, const char **until)
{
    if (read_path(req, resp, "/nondisclosure", exchange_id) != 0)
        return -1;
    *basis = rk_req_string(req, resp, "basis", BASIS_MAX);
    *operator_id = *basis ? rk_req_string(req, resp, "operator", RK_ID_FIELD_MAX) : NULL;
    if (!*operator_id)
        return -1;
    json_t *u = json_object_get(req->json, "until");
    *until = u && !json_is_null(u) ? json_string_value(u) : NULL;
    if (!rk_id_valid(*operator_id, RK_ID_FIELD_MAX) || (u && !json_is_null(u) && (!*until || !rk_date_valid(*until)))) {
        rk_reply_error(resp, 400, "invalid_field", "operator must be an id, until a date YYYY-MM-DD when given");
        return -1;
    }
    return 0;
}

int agency_read_nondisclosure_lift(const rk_request *req, rk_response *resp,
                                   char exchange_id[RK_EXCHANGE_ID_MAX + 1], const char **operator_id,
                                   const char **reason)
{
    if (read_path(req, resp, "/nondisclosure/lift", exchange_id) != 0)
        return -1;
    *operator_id = rk_req_string(req, resp, "operator", RK_ID_FIELD_MAX);
    *reason = *operator_id ? rk_req_string(req, resp, "reason", BASIS_MAX) : NULL;
    if (!*reason)
        return -1;
    if (!rk_id_valid(*operator_id, RK_ID_FIELD_MAX)) {
        rk_reply_error(resp, 400, "invalid_field", "operator must be an id");
        return -1;
    }
    return 0;
}

/* ---------- lifting ---------- */

/* On a worker: the agency's record of the exchange, whether this agency
 * ever marked it, and the lifting's step. */
static void lift_work(rk_flow *f)
{
    withholding *w = (withholding *)f;
    rk_db *db = agency_store_db(w->a->store);
    rk_rc rc = find_own(w, db);
    if (rc == RK_ERR_NOT_FOUND) {
        w->found = 0;
        return;
    }
    rk_record marking;
    if (rc == RK_OK) {
        rc = rk_records_find(db, w->exchange_id, w->rec.side, "withheld", &marking);
        if (rc == RK_ERR_NOT_FOUND) {
            w->found = 2;
            return;
        }
    }
    char reason[RK_REASON_MAX + 1];
    snprintf(reason, sizeof reason, "disclosed to the person again: %s", w->basis);
    rk_record base = w->rec;
    snprintf(base.operator_id, sizeof base.operator_id, "%s", w->operator_id);
    if (rc == RK_OK) /* a lifting recorded before stays the first step */
        rc = rk_records_append_step(db, &base, "disclosed", reason, rk_node_now_ms(w->a->node));
    w->found = rc == RK_OK ? 1 : -1;
}

static void core_lifted(rk_flow *f, rk_rc rc, rk_http_result *res)
{
    withholding *w = (withholding *)f;
    long status = rc == RK_OK ? res->status : 0;
    rk_http_result_clear(res);
    if (status == 409) {
        rk_flow_fail(f, 409, "not_withheld", "the core holds no marking of this agency's for this exchange");
        return;
    }
    if (status != 200) {
        rk_warn("the lifting for exchange %s did not reach the core (HTTP %ld)", w->exchange_id, status);
        rk_flow_fail(f, 502, "core_unavailable", "lifted here; the core has not recorded it yet: send it again");
        return;
    }
    rk_warn("exchange %s disclosed to the person again by %s", w->exchange_id, w->operator_id);
    rk_reply_json(f->resp, 200, json_pack("{s:s,s:s}", "exchange_id", w->exchange_id, "status", "disclosed"));
    rk_flow_finish(f);
}

static void lifted(rk_flow *f)
{
    withholding *w = (withholding *)f;
    if (w->found != 1) {
        if (w->found == 0)
            rk_flow_fail(f, 404, "not_found", "this agency was party to no such exchange");
        else if (w->found == 2)
            rk_flow_fail(f, 409, "not_withheld", "this agency never marked the exchange not to be disclosed");
        else
            rk_flow_fail(f, 500, "store_error", "the lifting could not be recorded; retry");
        return;
    }
    json_t *msg = json_pack("{s:s,s:s,s:s}", "exchange_id", w->exchange_id, "operator", w->operator_id, "reason",
                            w->basis);
    char *body = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    rk_flow_call(f, w->a->node, w->a->gateway, "/v1/nondisclosures/lift", body, core_lifted);
}

/* POST /v1/records/{exchange_id}/nondisclosure[/lift], on the event thread (a `start` route). */
void agency_start_nondisclosure(void *app, rk_pending *p, const rk_request *req, rk_response *resp)
{
    withholding *w = rk_flow_new(p, resp, sizeof *w, NULL);
    if (!w)
        return;
    w->a = app;
    static const char lift[] = "/nondisclosure/lift";
    size_t plen = strlen(req->path);
    if (plen > sizeof lift - 1 && strcmp(req->path + plen - (sizeof lift - 1), lift) == 0) {
        if (agency_read_nondisclosure_lift(req, resp, w->exchange_id, &w->operator_id, &w->basis) != 0) {
            rk_flow_finish(&w->f);
            return;
        }
        rk_flow_pool(&w->f, lift_work, lifted);
        return;
    }
    if (agency_read_nondisclosure(req, resp, w->exchange_id, &w->basis, &w->operator_id, &w->until) != 0) {
        rk_flow_finish(&w->f);
        return;
    }
    rk_flow_pool(&w->f, mark_work, marked);
}
