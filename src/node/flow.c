/* node/flow.c — a started request's chain of steps (flow.h). */
#include "node/flow.h"

#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "node/node.h"

void *rk_flow_new(rk_pending *p, rk_response *resp, size_t size, rk_flow_fn cleanup)
{
    rk_flow *f = rk_pending_calloc(p, resp, size < sizeof *f ? sizeof *f : size);
    if (f) {
        f->p = p;
        f->resp = resp;
        f->cleanup = cleanup;
    }
    return f;
}

void rk_flow_finish(rk_flow *f)
{
    rk_pending *p = f->p;
    if (f->cleanup)
        f->cleanup(f);
    if (f->text) { /* a settled answer may hold a provided value */
        rk_wipe(f->text, strlen(f->text));
        free(f->text);
    }
    if (f->call_body) {
        rk_wipe(f->call_body, strlen(f->call_body));
        free(f->call_body);
    }
    free(f);
    rk_pending_finish(p);
}

void rk_flow_fail(rk_flow *f, int status, const char *code, const char *message)
{
    rk_reply_error(f->resp, status, code, "%s", message);
    rk_flow_finish(f);
}

/* ---------- work on the pool ---------- */

static void pool_work(void *arg)
{
    rk_flow *f = arg;
    f->work(f);
}

static void pool_done(void *arg)
{
    rk_flow *f = arg;
    rk_flow_fn then = f->then;
    f->work = f->then = NULL;
    then(f);
}

void rk_flow_pool(rk_flow *f, rk_flow_fn work, rk_flow_fn then)
{
    f->work = work;
    f->then = then;
    if (rk_pending_offload(f->p, pool_work, pool_done, f) != RK_OK) {
        f->work = f->then = NULL;
        rk_flow_fail(f, 503, "overloaded", "this node is busy; retry with the same id");
    }
}

/* ---------- a call to another node ---------- */

static void call_answered(void *arg, rk_rc rc, rk_http_result *res)
{
    rk_flow *f = arg;
    /* a failover has sent it again if it had to; a body may carry a My
     * Number (第8-1(3)ア): wiped before it is freed */
    rk_wipe(f->call_body, strlen(f->call_body));
    free(f->call_body);
    f->call_body = NULL;
    rk_flow_called_fn then = f->called;
    f->called = NULL;
    then(f, rc, res);
}

void rk_flow_call(rk_flow *f, rk_node *node, const rk_peer_node *peer, const char *path, char *body,
                  rk_flow_called_fn then)
{
    if (!body) {
        rk_http_result none = {0};
        then(f, RK_ERR_NOMEM, &none);
        return;
    }
    f->call_body = body;
    f->called = then;
    rk_node_post_later(node, rk_pending_base(f->p), peer, path, body, strlen(body), call_answered, f);
}

/* ---------- a request seen before ---------- */

static void replay_work(rk_flow *f)
{
    f->replayed = rk_answer_replay(f->db, f->replay_key, f->side, f->replay_hash, f->id_name, f->resp);
}

static void replay_done(rk_flow *f)
{
    rk_flow_fn fresh = f->fresh;
    f->fresh = NULL;
    if (f->replayed)
        rk_flow_finish(f);
    else
        fresh(f);
}

void rk_flow_replay(rk_flow *f, rk_db *db, const char *key, const char *side, const char *request_hash,
                    const char *id_name, rk_flow_fn fresh)
{
    f->db = db;
    f->replay_key = key;
    f->side = side;
    f->replay_hash = request_hash;
    f->id_name = id_name;
    f->replayed = 0;
    f->fresh = fresh;
    rk_flow_pool(f, replay_work, replay_done);
}

/* ---------- settling ---------- */

/* Settled meanwhile by a request with the same key, yet nothing is kept
 * under it: no answer can be given but an error. */
static void settle_lost(rk_flow *f)
{
    rk_flow_fail(f, 500, "store_error", "the answer could not be recorded; retry with the same id");
}

static void settle_written(void *arg, rk_rc rc)
{
    rk_flow *f = arg;
    if (f->logged)
        f->logged(f, rc);
    if (rc == RK_OK) {
        rk_reply_text(f->resp, f->settlement.status, f->text); /* the answer as kept */
        f->text = NULL;
        rk_flow_finish(f);
        return;
    }
    if (rc == RK_ERR_CONFLICT) { /* the first answer for this key */
        const char *side = f->settlement.record ? f->settlement.record->side : "answer";
        rk_flow_replay(f, f->db, f->settlement.key, side, f->settlement.request_hash, f->id_name, settle_lost);
        return;
    }
    rk_reply_error(f->resp, 500, "store_error", "the answer could not be recorded; retry with the same %s",
                   f->id_name);
    rk_flow_finish(f);
}

void rk_flow_settle(rk_flow *f, rk_db *db, json_t *answer, const char *id_name, void (*logged)(rk_flow *f, rk_rc rc))
{
    f->db = db;
    f->id_name = id_name;
    f->logged = logged;
    f->text = answer ? json_dumps(answer, JSON_COMPACT) : NULL;
    json_decref(answer);
    f->settlement.body = f->text;
    rk_rc rc = f->text ? rk_settle_later(db, rk_pending_base(f->p), &f->settlement, settle_written, f) : RK_ERR_NOMEM;
    if (rc != RK_OK)
        settle_written(f, rc);
}
