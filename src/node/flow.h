/* node/flow.h — one way to wait: a started request's work as a chain of
 * steps on the server's event loop.
 *
 * A flow belongs to one started request (an rk_route with `start`). Each
 * step runs on the event thread, does only what cannot block, and starts
 * at most one thing to wait for, whose continuation runs on the event
 * thread again:
 *   rk_flow_pool    work on the worker pool (the store, CMS), then `then`;
 *   rk_flow_call    a call to another node through the loop's relay, with
 *                   the registry's failover (rk_node_post_later);
 *   rk_flow_settle  the record and the kept answer committed together by
 *                   the store's committer (rk_settle_later), then the reply;
 *   rk_flow_finish  the reply as it stands, and everything freed.
 * A full worker queue is a 503 `overloaded`, never work on the loop.
 *
 * Ownership: the role's state embeds an rk_flow as its first member and is
 * allocated by rk_flow_new; rk_flow_finish (reached on every path, once)
 * calls the role's cleanup, wipes and frees the flow's texts, frees the
 * state and answers. */
#ifndef RK_NODE_FLOW_H
#define RK_NODE_FLOW_H

#include <jansson.h>
#include <stddef.h>
#include "net/http_client.h"
#include "net/http_server.h"
#include "records/records.h"

struct rk_node;
struct rk_peer_node;
typedef struct rk_flow rk_flow;
typedef void (*rk_flow_fn)(rk_flow *f);
typedef void (*rk_flow_called_fn)(rk_flow *f, rk_rc rc, rk_http_result *res);

struct rk_flow {
    rk_pending *p;
    rk_response *resp;
    rk_flow_fn cleanup;           /* frees (and wipes) the role's own fields; may be NULL */
    /* rk_flow_settle: the caller fills record, key, request_hash, status,
     * extra and extra_arg; the flow the body. */
    rk_settlement settlement;
    /* private to flow.c */
    rk_flow_fn work, then, fresh;
    rk_flow_called_fn called;
    char *call_body;              /* the body of the call under way */
    char *text;                   /* the answer being settled: may hold a value, wiped */
    rk_db *db;
    const char *id_name, *side;
    void (*logged)(rk_flow *f, rk_rc rc);
    const char *replay_key, *replay_hash;
    int replayed;
};

/* The zeroed state (size bytes, an rk_flow first) of the request p; without
 * memory it answers 500 internal and returns NULL (p is finished). */
void *rk_flow_new(rk_pending *p, rk_response *resp, size_t size, rk_flow_fn cleanup);

/* work(f) on a worker thread, then then(f) on the event thread. */
void rk_flow_pool(rk_flow *f, rk_flow_fn work, rk_flow_fn then);

/* POSTs body (taken: wiped and freed once the call is over) to path at peer through
 * the loop's relay, then then(f, rc, res) on the event thread; res->body is
 * then's to free (rk_http_result_clear). A NULL body is out of memory. */
void rk_flow_call(rk_flow *f, struct rk_node *node, const struct rk_peer_node *peer, const char *path, char *body,
                  rk_flow_called_fn then);

/* A request seen before (DESIGN §3): on a worker, looks up the answer kept
 * under (key, side); when there is one (or the key came with another body:
 * 409 conflict) the reply is that and the flow finishes; else fresh(f) on
 * the event thread. A store error is a 500 that settles nothing. */
void rk_flow_replay(rk_flow *f, rk_db *db, const char *key, const char *side, const char *request_hash,
                    const char *id_name, rk_flow_fn fresh);

/* Settles: answer (taken) becomes the kept text, committed with
 * f->settlement's record and extra rows; then the reply and the end of the
 * flow. Settled meanwhile by another request with this key: that one's
 * answer (or 409 conflict); a store error: 500 store_error, nothing
 * settled. logged(f, rc), when not NULL, runs once the commit is over. */
void rk_flow_settle(rk_flow *f, rk_db *db, json_t *answer, const char *id_name, void (*logged)(rk_flow *f, rk_rc rc));

/* Answers with f->resp as it stands and frees everything. */
void rk_flow_finish(rk_flow *f);

/* The common refusals of a flow's steps, then finish. */
void rk_flow_fail(rk_flow *f, int status, const char *code, const char *message);

#endif
