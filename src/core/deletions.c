/* deletions.c — POST /v1/deletion-requests: a provider found that it
 * provided unlawfully and asks that the requester delete what it received
 * (standard 第8-5(2)). The core checks that the caller's agency was the
 * provider of that exchange and that something was provided, passes the
 * request to the requester through its gateway, and records both steps.
 *
 * A flow (node/flow.h): the record found and the request recorded on the
 * pool, the call to the requester's gateway through the loop's relay, the
 * confirmation recorded on the pool, then the answer. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "lib/ids.h"
#include "lib/log.h"
#include "node/flow.h"
#include "records/records.h"
#include "lib/util.h"

typedef struct deletion {
    rk_flow flow;                 /* first: the flow's state */
    core *c;
    const char *agency, *exchange_id, *reason; /* borrowed from the request */
    rk_record rec;                /* the core's record of what was provided */
    const rk_peer_node *gateway;  /* the requester's */
    enum { DEL_OK, DEL_NOT_FOUND, DEL_STORE } found;
    rk_rc confirmed;
} deletion;

/* On a worker: the exchange as the core recorded it, and the request's step. */
static void find_work(rk_flow *f)
{
    deletion *x = (deletion *)f;
    rk_db *db = core_store_db(x->c->store);
    if (rk_records_find(db, x->exchange_id, "core", "provided", &x->rec) != RK_OK ||
        strcmp(x->rec.provider, x->agency) != 0) {
        x->found = DEL_NOT_FOUND;
        return;
    }
    x->gateway = rk_registry_find(x->c->node->registry, RK_ROLE_GATEWAY, x->rec.requester);
    x->found = rk_records_append_step(db, &x->rec, "deletion_requested", x->reason, rk_node_now_ms(x->c->node)) == RK_OK
                   ? DEL_OK : DEL_STORE;
}

/* On a worker. */
static void confirm_work(rk_flow *f)
{
    deletion *x = (deletion *)f;
    x->confirmed = rk_records_append_step(core_store_db(x->c->store), &x->rec, "deletion_confirmed",
                                          "the requester deleted the value", rk_node_now_ms(x->c->node));
}

static void confirm_done(rk_flow *f)
{
    deletion *x = (deletion *)f;
    if (x->confirmed != RK_OK) {
        rk_flow_fail(f, 500, "store_error", "the confirmation could not be recorded; retry");
        return;
    }
    rk_info("exchange %s: %s deleted the value at %s's request", x->exchange_id, x->rec.requester, x->rec.provider);
    rk_reply_json(f->resp, 200, json_pack("{s:s,s:s}", "exchange_id", x->exchange_id, "status", "deleted"));
    rk_flow_finish(f);
}

static void requester_answered(rk_flow *f, rk_rc rc, rk_http_result *res)
{
    deletion *x = (deletion *)f;
    long status = rc == RK_OK ? res->status : 0;
    rk_http_result_clear(res);
    if (status != 200) {
        rk_warn("deletion request for exchange %s did not reach %s", x->exchange_id, x->rec.requester);
        rk_flow_fail(f, 502, "requester_unavailable", "the requester could not be reached; retry");
        return;
    }
    rk_flow_pool(f, confirm_work, confirm_done);
}

static void found(rk_flow *f)
{
    deletion *x = (deletion *)f;
    if (x->found == DEL_NOT_FOUND) {
        rk_reply_error(f->resp, 404, "not_found", "%s provided nothing in exchange %s", x->agency, x->exchange_id);
        rk_flow_finish(f);
        return;
    }
    if (x->found == DEL_STORE) {
        rk_flow_fail(f, 500, "store_error", "the request could not be recorded; retry");
        return;
    }
    if (!x->gateway) { /* as a requester that cannot be reached */
        rk_http_result none = {0};
        requester_answered(f, RK_ERR_CONFIG, &none);
        return;
    }
    json_t *msg = json_pack("{s:s,s:s,s:s}", "exchange_id", x->exchange_id, "reason", x->reason, "provider",
                            x->rec.provider);
    char *body = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    rk_flow_call(f, x->c->node, x->gateway, "/v1/deletions", body, requester_answered);
}

/* POST /v1/deletion-requests, on the event thread (a `start` route). */
void core_start_deletion_request(void *app, rk_pending *p, const rk_request *req, rk_response *resp)
{
    deletion *x = rk_flow_new(p, resp, sizeof *x, NULL);
    if (!x)
        return;
    x->c = app;
    x->agency = req->peer->agency;
    x->exchange_id = rk_req_string(req, resp, "exchange_id", RK_EXCHANGE_ID_MAX);
    x->reason = x->exchange_id ? rk_req_string(req, resp, "reason", RK_REASON_MAX) : NULL;
    if (!x->reason) {
        rk_flow_finish(&x->flow);
        return;
    }
    rk_flow_pool(&x->flow, find_work, found);
}
