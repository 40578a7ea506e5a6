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
#include "lib/log.h"
#include "records/records.h"
#include "lib/util.h"

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

static void unlawful_provision(agency *a, const rk_request *req, rk_response *resp, const rk_record *rec,
                               const char *reason)
{
    if (append_step(a, rec, "unlawful_provision", reason) != RK_OK) {
        rk_reply_error(resp, 500, "store_error", "the marking could not be stored; retry");
        return;
    }
    json_t *msg = json_pack("{s:s,s:s}", "exchange_id", rec->exchange_id, "reason", reason);
    char *body = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    rk_http_result res = {0};
    rk_rc rc = body ? rk_node_post(a->node, a->gateway, "/v1/deletion-requests", body, &res, NULL) : RK_ERR_NOMEM;
    free(body);
    if (rc != RK_OK || res.status != 200) {
        rk_http_result_clear(&res);
        rk_reply_error(resp, 502, "requester_unavailable",
                       "marked; the deletion request did not reach the requester yet: retry");
        return;
    }
    rk_http_result_clear(&res);
    if (append_step(a, rec, "deletion_confirmed", "the requester confirmed the deletion (第8-5(2))") != RK_OK) {
        rk_reply_error(resp, 500, "store_error", "the confirmation could not be recorded; retry");
        return;
    }
    char actions[200];
    snprintf(actions, sizeof actions, "deletion requested from %s through the core; %s confirmed it", rec->requester,
             rec->requester);
    report(a, req, "unlawful_provision", rec->exchange_id, actions);
    rk_reply_json(resp, 200, json_pack("{s:s,s:s}", "exchange_id", rec->exchange_id, "status", "deleted_at_requester"));
}

/* POST /v1/unlawful {"exchange_id","kind","reason"[,"cause","prevention"]} */
void agency_post_unlawful(void *app, const rk_request *req, rk_response *resp)
{
    agency *a = app;
    const char *exchange_id = rk_req_string(req, resp, "exchange_id", RK_EXCHANGE_ID_MAX);
    const char *kind = exchange_id ? rk_req_string(req, resp, "kind", 32) : NULL;
    const char *reason = kind ? rk_req_string(req, resp, "reason", 190) : NULL;
    if (!reason)
        return;
    const char *too_long = NULL;
    static const char *const texts[] = {"cause", "prevention"};
    for (size_t i = 0; i < 2; i++) {
        json_t *v = json_object_get(req->json, texts[i]);
        if (v && (!json_is_string(v) || json_string_length(v) > 4000))
            too_long = texts[i];
    }
    if (too_long) { /* the core would refuse the report: say so now */
        rk_reply_error(resp, 400, "invalid_field", "field \"%s\" must be a string of at most 4000 bytes", too_long);
        return;
    }
    int is_request = strcmp(kind, "unlawful_request") == 0;
    if (!is_request && strcmp(kind, "unlawful_provision") != 0) {
        rk_reply_error(resp, 400, "invalid_field", "kind must be unlawful_request or unlawful_provision");
        return;
    }
    rk_record rec;
    if (rk_records_find(agency_store_db(a->store), exchange_id, is_request ? "requester" : "provider", NULL, &rec) !=
        RK_OK) {
        rk_reply_error(resp, 404, "not_found", "this agency was not the %s of exchange %s",
                       is_request ? "requester" : "provider", exchange_id);
        return;
    }
    rk_warn("exchange %s marked %s by %s", exchange_id, kind, req->peer->id);
    if (is_request)
        unlawful_request(a, req, resp, &rec, reason);
    else
        unlawful_provision(a, req, resp, &rec, reason);
}

/* POST /v1/deletions {"exchange_id","reason","provider"} from this agency's
 * gateway, on behalf of the core: the provider asks that a value be deleted. */
void agency_post_deletion(void *app, const rk_request *req, rk_response *resp)
{
    agency *a = app;
    const char *exchange_id = rk_req_string(req, resp, "exchange_id", RK_EXCHANGE_ID_MAX);
    const char *reason = exchange_id ? rk_req_string(req, resp, "reason", 190) : NULL;
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
