/* unlawful.c — when a request or a provision was unlawful (standard 第8-5).
 *
 * A privileged operator marks an exchange at this agency:
 *   - unlawful_request, at the requester (第8-5(1)): the value received is
 *     deleted here at once;
 *   - unlawful_provision, at the provider (第8-5(2)): the provider asks,
 *     through the core, that the requester delete what it received; the
 *     requester deletes it and confirms.
 * Each step is appended to the records, and the agency reports an incident
 * to the core with what happened, what was done, the root cause and the
 * prevention (the report to the 内閣総理大臣 the clause asks for). */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "agency/agency.h"
#include "node/incidents.h"
#include "lib/ids.h"
#include "lib/log.h"
#include "records/records.h"
#include "lib/util.h"
#include "node/flow.h"

/* The longest cause or prevention an incident report takes (node/incidents.c). */
#define INCIDENT_TEXT_MAX RK_INCIDENT_TEXT_MAX

static rk_rc append_step(agency *a, const rk_record *base, const char *outcome, const char *reason)
{
    return rk_records_append_step(agency_store_db(a->store), base, outcome, reason, rk_node_now_ms(a->node));
}

static void report(agency *a, const rk_request *req, const char *kind, const char *exchange_id, const char *actions)
{
    char summary[300], id[128];
    snprintf(summary, sizeof summary, "%s in exchange %s", kind, exchange_id);
    /* One incident per exchange and kind: marking again updates it. */
    snprintf(id, sizeof id, "%s-%s", kind, exchange_id);
    rk_incident in = {.incident_id = id, .kind = kind, .node = a->node->cfg.id, .detected_ms = rk_node_now_ms(a->node),
                      .summary = summary,
                      .details = json_string_value(json_object_get(req->json, "reason")),
                      .actions = actions,
                      .cause = json_string_value(json_object_get(req->json, "cause")),
                      .prevention = json_string_value(json_object_get(req->json, "prevention"))};
    rk_incident_store(agency_store_db(a->store), &in, 0, 0);
    rk_incident_reporter_wake(a->node->reporter);
}

static void unlawful_request(agency *a, const rk_request *req, rk_response *resp, const rk_record *rec,
                             const char *reason)
{
    int deleted = 0;
    rk_rc rc = append_step(a, rec, "unlawful_request", reason);
    if (rc == RK_OK)
        rc = agency_store_delete_received(a->store, rec->exchange_id, &deleted);
    if (rc == RK_OK)
        rc = append_step(a, rec, "deleted", "the value received was deleted (第8-5(1))");
    if (rc != RK_OK) {
        rk_reply_error(resp, 500, "store_error", "the marking could not be stored; retry");
        return;
    }
    report(a, req, "unlawful_request", rec->exchange_id, "the value received was deleted from this agency's node");
    rk_reply_json(resp, 200, json_pack("{s:s,s:s,s:b}", "exchange_id", rec->exchange_id, "status", "deleted",
                                       "value_was_held", deleted > 0));
}

/* POST /v1/unlawful, a flow: checked on the event thread; the record found
 * and the marking stored on the pool (an unlawful request is then done
 * there); for an unlawful provision the deletion request goes to the
 * requester through the gateway (the loop's relay), then the confirmation
 * is recorded and reported on the pool. */
typedef struct marking {
    rk_flow f;                   /* first: the flow's own state */
    agency *a;
    const rk_request *req;       /* borrowed until rk_flow_finish */
    const char *exchange_id, *kind, *reason;
    int is_request;
    rk_record rec;
    int answered;                /* resp holds the answer: no call */
} marking;

/* On a worker: the exchange found and marked. */
static void mark_work(rk_flow *f)
{
    marking *m = (marking *)f;
    agency *a = m->a;
    m->answered = 1;
    if (rk_records_find(agency_store_db(a->store), m->exchange_id, m->is_request ? "requester" : "provider", NULL,
                        &m->rec) != RK_OK) {
        rk_reply_error(f->resp, 404, "not_found", "this agency was not the %s of exchange %s",
                       m->is_request ? "requester" : "provider", m->exchange_id);
        return;
    }
    rk_warn("exchange %s marked %s by %s", m->exchange_id, m->kind, m->req->peer->id);
    if (m->is_request) {
        unlawful_request(a, m->req, f->resp, &m->rec, m->reason);
        return;
    }
    if (append_step(a, &m->rec, "unlawful_provision", m->reason) != RK_OK) {
        rk_reply_error(f->resp, 500, "store_error", "the marking could not be stored; retry");
        return;
    }
    m->answered = 0; /* 第8-5(2): the requester is asked to delete */
}

/* On a worker: the requester's confirmation recorded, and reported. */
static void confirmed_work(rk_flow *f)
{
    marking *m = (marking *)f;
    agency *a = m->a;
    const rk_record *rec = &m->rec;
    if (append_step(a, rec, "deletion_confirmed", "the requester confirmed the deletion (第8-5(2))") != RK_OK) {
        rk_reply_error(f->resp, 500, "store_error", "the confirmation could not be recorded; retry");
        return;
    }
    char actions[200];
    snprintf(actions, sizeof actions, "deletion requested from %s through the core; %s confirmed it", rec->requester,
             rec->requester);
    report(a, m->req, "unlawful_provision", rec->exchange_id, actions);
    rk_reply_json(f->resp, 200,
                  json_pack("{s:s,s:s}", "exchange_id", rec->exchange_id, "status", "deleted_at_requester"));
}

static void deletion_answered(rk_flow *f, rk_rc rc, rk_http_result *res)
{
    int ok = rc == RK_OK && res->status == 200;
    rk_http_result_clear(res);
    if (!ok)
        rk_flow_fail(f, 502, "requester_unavailable", "marked; the deletion request did not reach the requester yet: retry");
    else
        rk_flow_pool(f, confirmed_work, rk_flow_finish);
}

static void marked(rk_flow *f)
{
    marking *m = (marking *)f;
    if (m->answered) {
        rk_flow_finish(f);
        return;
    }
    json_t *msg = json_pack("{s:s,s:s}", "exchange_id", m->rec.exchange_id, "reason", m->reason);
    char *body = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    rk_flow_call(f, m->a->node, m->a->gateway, "/v1/deletion-requests", body, deletion_answered);
}

int agency_read_unlawful(const rk_request *req, rk_response *resp, const char **exchange_id, const char **kind,
                         const char **reason, int *is_request)
{
    *exchange_id = rk_req_string(req, resp, "exchange_id", RK_EXCHANGE_ID_MAX);
    *kind = *exchange_id ? rk_req_string(req, resp, "kind", RK_KIND_FIELD_MAX) : NULL;
    *reason = *kind ? rk_req_string(req, resp, "reason", RK_REASON_MAX) : NULL;
    if (!*reason)
        return -1;
    const char *too_long = NULL;
    static const char *const texts[] = {"cause", "prevention"};
    for (size_t i = 0; i < 2; i++) {
        json_t *v = json_object_get(req->json, texts[i]);
        if (v && (!json_is_string(v) || json_string_length(v) > INCIDENT_TEXT_MAX))
            too_long = texts[i];
    }
    if (too_long) { /* the core would refuse the report: say so now */
        rk_reply_error(resp, 400, "invalid_field", "field \"%s\" must be a string of at most %d bytes", too_long,
                       INCIDENT_TEXT_MAX);
        return -1;
    }
    *is_request = strcmp(*kind, "unlawful_request") == 0;
    if (!*is_request && strcmp(*kind, "unlawful_provision") != 0) {
        rk_reply_error(resp, 400, "invalid_field", "kind must be unlawful_request or unlawful_provision");
        return -1;
    }
    return 0;
}

/* POST /v1/unlawful {"exchange_id","kind","reason"[,"cause","prevention"]},
 * on the event thread (a `start` route). */
void agency_start_unlawful(void *app, rk_pending *p, const rk_request *req, rk_response *resp)
{
    marking *m = rk_flow_new(p, resp, sizeof *m, NULL);
    if (!m)
        return;
    m->a = app;
    m->req = req;
    if (agency_read_unlawful(req, resp, &m->exchange_id, &m->kind, &m->reason, &m->is_request) != 0) {
        rk_flow_finish(&m->f);
        return;
    }
    rk_flow_pool(&m->f, mark_work, marked);
}

/* POST /v1/deletions {"exchange_id","reason","provider"} from this agency's
 * gateway, on behalf of the core: the provider asks that a value be deleted. */
void agency_post_deletion(void *app, const rk_request *req, rk_response *resp)
{
    agency *a = app;
    const char *exchange_id = rk_req_string(req, resp, "exchange_id", RK_EXCHANGE_ID_MAX);
    const char *reason = exchange_id ? rk_req_string(req, resp, "reason", RK_REASON_MAX) : NULL;
    rk_record rec;
    int deleted = 0;
    if (!reason)
        return;
    if (rk_records_find(agency_store_db(a->store), exchange_id, "requester", NULL, &rec) != RK_OK) {
        rk_reply_error(resp, 404, "not_found", "this agency holds no exchange %s", exchange_id);
        return;
    }
    rk_rc rc = agency_store_delete_received(a->store, exchange_id, &deleted);
    char why[200];
    snprintf(why, sizeof why, "deleted at the provider's request: %s", reason);
    if (rc == RK_OK)
        rc = append_step(a, &rec, "deleted_on_request", why);
    if (rc != RK_OK) {
        rk_reply_error(resp, 500, "store_error", "the deletion could not be completed; retry");
        return;
    }
    rk_reply_json(resp, 200, json_pack("{s:s,s:s,s:b}", "exchange_id", exchange_id, "status", "deleted",
                                       "value_was_held", deleted > 0));
}
