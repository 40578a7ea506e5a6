/* exchanges_batch.c — POST /v1/exchanges/batch: many exchanges of one
 * requester in one call (一括照会; the batch form of POST /v1/exchanges).
 *
 * Each exchange is read, checked, sent, recorded and kept exactly as a
 * single one (core/exchange.h): one record and one kept answer per
 * exchange (法23条), refusals with their reason (法21条2項) and the provider
 * never hearing of them. What the batch changes is the number of round
 * trips: the permitted exchanges go to each provider in one POST
 * /v1/provisions/batch through its gateway (at most CORE_PROVISION_GROUP a
 * call) and every outcome is committed in one write. A provider that
 * cannot be reached, does not answer in time or fails the whole call
 * settles nothing: those exchanges answer 502 upstream_unavailable (504
 * upstream_timeout), and the requester sends them again with the same ids
 * — the provider's kept answers make that safe, so a provider's restart in
 * the middle of a batch leaves every exchange recorded once at each node.
 *
 * A flow (node/flow.h): the entries read and checked in one pool step, the
 * provider calls through the loop's relay one after another, the answers
 * opened and every outcome committed in one pool step. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/exchange.h"
#include "lib/util.h"
#include "node/flow.h"

/* Entries of one POST /v1/provisions/batch: its body stays well under a
 * node's default max_body (a requester certificate rides in each). */
#define CORE_PROVISION_GROUP 100

typedef struct xb_item {
    core_xchg x;
    int verdict;     /* core_xchg_check's: 1 kept, 0 sent, -1 to settle, -2 answered unsettled */
} xb_item;

/* One provider call: the entries it carries, in order, and its answer. */
typedef struct xb_call {
    const rk_peer_node *gateway;
    size_t *items;
    size_t n;
    char *body;
    rk_rc rc;
    rk_http_result res;
} xb_call;

typedef struct xbatch {
    rk_flow flow;    /* first */
    core *c;
    const rk_request *req;
    json_t *list;
    size_t n;
    xb_item *items;
    rk_entry_answer *out; /* each entry's answer, in order */
    const char **ids;     /* each entry's exchange id */
    xb_call *calls;
    size_t n_calls, next_call;
    int refused;     /* the request itself was refused: resp holds it */
} xbatch;

static void xb_cleanup(rk_flow *f)
{
    xbatch *b = (xbatch *)f;
    for (size_t i = 0; b->items && i < b->n; i++) {
        core_xchg_clear(&b->items[i].x);
        free(b->out[i].text);
    }
    for (size_t i = 0; b->calls && i < b->n_calls; i++) {
        free(b->calls[i].items);
        free(b->calls[i].body);
        rk_http_result_clear(&b->calls[i].res);
    }
    free(b->items);
    free(b->out);
    free(b->ids);
    free(b->calls);
}

static int open_entry(const rk_request *e, rk_response *resp, size_t i, void *arg)
{
    xbatch *b = arg;
    if (core_xchg_open(b->c, &b->items[i].x, e, resp) != 0)
        return -1;
    b->ids[i] = b->items[i].x.exchange_id;
    return 0;
}

/* The permitted entries, by provider, as calls of at most
 * CORE_PROVISION_GROUP entries each; their bodies made. */
static rk_rc plan_calls(xbatch *b)
{
    if (!(b->calls = calloc(b->n, sizeof *b->calls)))
        return RK_ERR_NOMEM;
    for (size_t i = 0; i < b->n; i++) {
        xb_item *it = &b->items[i];
        if (it->verdict != 0)
            continue;
        xb_call *call = NULL;
        for (size_t k = 0; k < b->n_calls && !call; k++)
            if (b->calls[k].gateway == it->x.gateway && b->calls[k].n < CORE_PROVISION_GROUP)
                call = &b->calls[k];
        if (!call) {
            call = &b->calls[b->n_calls++];
            call->gateway = it->x.gateway;
            if (!(call->items = malloc(CORE_PROVISION_GROUP * sizeof *call->items)))
                return RK_ERR_NOMEM;
        }
        call->items[call->n++] = i;
    }
    for (size_t k = 0; k < b->n_calls; k++) {
        json_t *list = json_array();
        for (size_t j = 0; list && j < b->calls[k].n; j++)
            json_array_append_new(list, core_xchg_provision(&b->items[b->calls[k].items[j]].x));
        json_t *msg = list ? json_pack("{s:o}", "provisions", list) : NULL;
        b->calls[k].body = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
        json_decref(msg);
        if (!b->calls[k].body)
            return RK_ERR_NOMEM;
    }
    return RK_OK;
}

/* On a worker: the entries read, then each one's kept answer or checks. */
static void check_work(rk_flow *f)
{
    xbatch *b = (xbatch *)f;
    /* each exchange is settled once: one id twice is refused, as a malformed entry */
    if (rk_req_entries(b->req, f->resp, "exchanges", b->list, open_entry, b) != 0 ||
        rk_req_distinct(f->resp, b->ids, b->n, "invalid_field", "exchange_id") != 0) {
        b->refused = 1;
        return;
    }
    for (size_t i = 0; i < b->n; i++) {
        xb_item *it = &b->items[i];
        rk_entry_answer *o = &b->out[i];
        o->id = it->x.exchange_id;
        it->verdict = core_xchg_check(&it->x, &o->status, &o->text);
        if (it->verdict == -2) {
            o->status = 500;
            o->text = rk_error_text("store_error", "the exchange could not be checked; retry with the same id");
        }
    }
    if (plan_calls(b) != RK_OK) {
        rk_reply_error(f->resp, 500, "internal", "out of memory");
        b->refused = 1;
    }
}

/* The provider's answers made each sent exchange's outcome; an entry
 * whose provider was not reached, did not answer in time or failed the
 * whole call (5xx: it settled none of them) gets the transient answer and
 * is not settled. */
static void take_call(xbatch *b, xb_call *call)
{
    int reached = call->rc == RK_OK && call->res.status < 500;
    int timeout = call->rc == RK_ERR_TIMEOUT || (call->rc == RK_OK && call->res.status == 504);
    json_t *body = reached && call->res.body ? json_loads(call->res.body, 0, NULL) : NULL;
    json_t *results = call->res.status == 200 ? json_object_get(body, "results") : NULL;
    for (size_t j = 0; j < call->n; j++) {
        xb_item *it = &b->items[call->items[j]];
        rk_entry_answer *o = &b->out[call->items[j]];
        long status = 0;
        json_t *answer = rk_entry_result(results, j, "exchange_id", it->x.exchange_id, &status);
        if (reached && !results) { /* a refusal of the whole call, taken as the single form takes it */
            core_xchg_take_provision(&it->x, call->rc, call->res.status, body);
        } else if (answer) {
            core_xchg_take_provision(&it->x, RK_OK, status, answer);
        } else {
            it->verdict = -2;
            o->status = timeout ? 504 : 502;
            o->text = rk_error_text(timeout ? "upstream_timeout" : "upstream_unavailable",
                                    "exchange %s: the provider %s; not settled: send it again with the same id",
                                    it->x.exchange_id, timeout ? "did not answer in time" : "could not be reached");
            continue;
        }
        it->verdict = -1; /* an outcome to settle */
    }
    json_decref(body);
    rk_http_result_clear(&call->res);
}

/* On a worker: the provider calls' answers taken, every outcome committed
 * in one write (each in its own savepoint), then the reply. */
static void settle_work(rk_flow *f)
{
    xbatch *b = (xbatch *)f;
    for (size_t k = 0; k < b->n_calls; k++)
        take_call(b, &b->calls[k]);
    for (size_t i = 0; i < b->n; i++) {
        rk_entry_answer *o = &b->out[i];
        if (b->items[i].verdict != -1)
            continue;
        json_t *answer = core_xchg_settlement(&b->items[i].x, &o->s);
        o->settle = 1;
        o->status = o->s.status;
        o->text = answer ? json_dumps(answer, JSON_COMPACT) : NULL;
        json_decref(answer);
    }
    rk_settle_entries(core_store_db(b->c->store), b->out, b->n, "exchange_id");
    for (size_t i = 0; i < b->n; i++)
        if (b->out[i].settle)
            core_xchg_logged(&b->items[i].x, b->out[i].s.rc);
    json_t *answer = rk_entry_results(b->out, b->n, "exchange_id");
    if (answer)
        rk_reply_json(f->resp, 200, answer);
    else
        rk_reply_error(f->resp, 500, "internal", "out of memory");
}

static void call_next(xbatch *b);

static void call_answered(rk_flow *f, rk_rc rc, rk_http_result *res)
{
    xbatch *b = (xbatch *)f;
    xb_call *call = &b->calls[b->next_call++];
    call->rc = rc;
    call->res = *res; /* the body moves to the call */
    call_next(b);
}

/* The next provider call, or the settling step once all have answered. */
static void call_next(xbatch *b)
{
    if (b->next_call == b->n_calls) {
        rk_flow_pool(&b->flow, settle_work, rk_flow_finish);
        return;
    }
    xb_call *call = &b->calls[b->next_call];
    char *body = call->body;
    call->body = NULL; /* the flow's to wipe and free */
    rk_flow_call(&b->flow, b->c->node, call->gateway, "/v1/provisions/batch", body, call_answered);
}

static void checked(rk_flow *f)
{
    xbatch *b = (xbatch *)f;
    if (b->refused)
        rk_flow_finish(f);
    else
        call_next(b);
}

/* POST /v1/exchanges/batch {"exchanges":[…as POST /v1/exchanges…]} from a
 * requester's gateway, on the event thread (a `start` route). */
void core_start_exchange_batch(void *app, rk_pending *p, const rk_request *req, rk_response *resp)
{
    xbatch *b = rk_flow_new(p, resp, sizeof *b, xb_cleanup);
    if (!b)
        return;
    b->c = app;
    b->req = req;
    if (!(b->list = rk_req_batch(req, resp, "exchanges"))) {
        rk_flow_finish(&b->flow);
        return;
    }
    b->n = json_array_size(b->list);
    b->items = calloc(b->n, sizeof *b->items);
    b->out = calloc(b->n, sizeof *b->out);
    b->ids = calloc(b->n, sizeof *b->ids);
    if (!b->items || !b->out || !b->ids) {
        rk_flow_fail(&b->flow, 500, "internal", "out of memory");
        return;
    }
    rk_flow_pool(&b->flow, check_work, checked);
}
