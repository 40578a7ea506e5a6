/* deletions.c — POST /v1/deletion-requests: a provider found that it
 * provided unlawfully and asks that the requester delete what it received
 * (standard 第8-5(2)). The core checks that the caller's agency was the
 * provider of that exchange and that something was provided, passes the
 * request to the requester through its gateway, and records both steps. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "lib/log.h"
#include "records/records.h"
#include "lib/util.h"

void core_handle_deletion_request(void *app, const rk_request *req, rk_response *resp)
{
    core *c = app;
    const char *exchange_id = rk_req_string(req, resp, "exchange_id", RK_EXCHANGE_ID_MAX);
    const char *reason = exchange_id ? rk_req_string(req, resp, "reason", 190) : NULL;
    rk_record rec;
    rk_db *db = core_store_db(c->store);
    if (!reason)
        return;
    if (rk_records_find(db, exchange_id, "core", "provided", &rec) != RK_OK ||
        strcmp(rec.provider, req->peer->agency) != 0) {
        rk_reply_error(resp, 404, "not_found", "%s provided nothing in exchange %s", req->peer->agency, exchange_id);
        return;
    }
    const rk_peer_node *gw = rk_registry_find(c->node->registry, RK_ROLE_GATEWAY, rec.requester);
    if (rk_records_append_step(db, &rec, "deletion_requested", reason, rk_node_now_ms(c->node)) != RK_OK) {
        rk_reply_error(resp, 500, "store_error", "the request could not be recorded; retry");
        return;
    }
    json_t *msg = json_pack("{s:s,s:s,s:s}", "exchange_id", exchange_id, "reason", reason, "provider", rec.provider);
    char *body = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    rk_http_result res = {0};
    rk_rc rc = body && gw ? rk_node_post(c->node, gw, "/v1/deletions", body, &res, NULL) : RK_ERR_CONFIG;
    free(body);
    if (rc != RK_OK || res.status != 200) {
        rk_warn("deletion request for exchange %s did not reach %s", exchange_id, rec.requester);
        rk_reply_error(resp, 502, "requester_unavailable", "the requester could not be reached; retry");
    } else if (rk_records_append_step(db, &rec, "deletion_confirmed", "the requester deleted the value",
                                      rk_node_now_ms(c->node)) != RK_OK) {
        rk_reply_error(resp, 500, "store_error", "the confirmation could not be recorded; retry");
    } else {
        rk_info("exchange %s: %s deleted the value at %s's request", exchange_id, rec.requester, rec.provider);
        rk_reply_json(resp, 200, json_pack("{s:s,s:s}", "exchange_id", exchange_id, "status", "deleted"));
    }
    rk_http_result_clear(&res);
}
