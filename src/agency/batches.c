/* batches.c — batch queries at the requester (一括照会; DESIGN §4).
 *
 * A business system hands this agency node up to RK_BATCH_MAX queries at
 * once (POST /v1/queries/batch) and is answered 202 as soon as the batch is
 * committed; the node then sends them itself and the system reads each
 * result as it settles (GET /v1/queries/batch/{batch_id}, or one query by
 * its id, GET /v1/queries/{query_id}). Each query of a batch is the query
 * POST /v1/queries would make (agency/query.h): the same exchange id
 * (derived from its query_id), record and kept answer — a query_id asked
 * again, alone or in another batch, gets its first answer.
 *
 * The runner: BATCH_LANES threads, each claiming up to BATCH_GROUP pending
 * queries for one provider, sending them in one POST /v1/exchanges/batch
 * through this agency's gateway (one round trip to the core and one from
 * the core to the provider for the group, not one per person), opening the
 * answers and settling them in one commit. A query whose outcome is unknown
 * (the core or the provider could not be reached, a timeout, a node busy)
 * stays pending and is sent again later with the same ids, so that the
 * answers the core and the provider kept make a resend take effect once.
 * Pending queries survive a restart of this node (batch_store_resume) and
 * of any other. The lanes are a background service of the node
 * (node/service.h): they call out through the node's calls loop
 * (rk_node_call) and never run on the server's event loop. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agency/batch_store.h"
#include "agency/query.h"
#include "lib/log.h"
#include "lib/util.h"
#include "node/service.h"

#define BATCH_GROUP 100      /* queries in one POST /v1/exchanges/batch */
#define BATCH_LANES 8        /* groups in flight at once */
#define RETRY_MIN_MS 250     /* an unknown outcome is sent again after this, doubling … */
#define RETRY_MAX_MS 10000   /* … up to this */
#define LEASE_PEER_TIMEOUTS 4 /* a claimed group is another lane's after this many [peer] timeout_ms */

/* ---------- the business system's routes ---------- */

typedef struct submit {
    agency *a;
    batch_query_in *q;
    char (*hashes)[65];
    char **bodies;
    const char **ids;
} submit;

static int read_entry(const rk_request *e, rk_response *resp, size_t i, void *arg)
{
    submit *s = arg;
    agency_query_in in;
    if (!json_is_object(e->json)) {
        rk_reply_error(resp, 400, "invalid_field", "a query is an object as POST /v1/queries takes");
        return -1;
    }
    if (agency_read_query(e, resp, &in) != 0)
        return -1;
    rk_request_hash(e->json, s->hashes[i]); /* as POST /v1/queries hashes it: one query_id, one request */
    if (!(s->bodies[i] = json_dumps(e->json, JSON_COMPACT))) {
        rk_reply_error(resp, 500, "internal", "out of memory");
        return -1;
    }
    s->q[i] = (batch_query_in){in.query_id, in.provider, s->hashes[i], s->bodies[i]};
    s->ids[i] = in.query_id;
    return 0;
}

/* Every query read and the batch stored, or refused as a whole (nothing
 * stored); resp holds the answer. */
static void submit_batch(submit *s, const rk_request *req, rk_response *resp, const char *batch_id, json_t *list)
{
    size_t n = json_array_size(list);
    char hash[65];
    if (rk_req_entries(req, resp, "queries", list, read_entry, s) != 0 ||
        rk_req_distinct(resp, s->ids, n, "duplicate_query_id", "query_id") != 0)
        return;
    rk_request_hash(req->json, hash);
    rk_rc rc = batch_store_add(agency_store_db(s->a->store), req->peer->id, batch_id, hash, s->q, n, rk_now_ms());
    if (rc == RK_ERR_CONFLICT) {
        rk_reply_error(resp, 409, "conflict", "batch_id %s was used with another request", batch_id);
        return;
    }
    if (rc != RK_OK && rc != RK_ERR_EXISTS) {
        rk_reply_error(resp, 500, "store_error", "the batch could not be stored; retry with the same batch_id");
        return;
    }
    rk_reply_json(resp, 202, json_pack("{s:s,s:I}", "batch_id", batch_id, "total", (json_int_t)n));
    if (rc == RK_OK)
        agency_batches_wake(s->a);
}

/* POST /v1/queries/batch {"batch_id","queries":[…as POST /v1/queries…]}: a
 * `fn` route (on a worker), it only checks and stores; the runner sends. */
void agency_post_queries_batch(void *app, const rk_request *req, rk_response *resp)
{
    const char *batch_id = rk_req_string(req, resp, "batch_id", RK_ID_FIELD_MAX);
    if (!batch_id)
        return;
    if (!rk_id_valid(batch_id, RK_ID_FIELD_MAX)) {
        rk_reply_error(resp, 400, "invalid_field", "batch_id must be characters of [A-Za-z0-9._-]");
        return;
    }
    json_t *list = rk_req_batch(req, resp, "queries");
    if (!list)
        return;
    size_t n = json_array_size(list);
    submit s = {app, calloc(n, sizeof *s.q), calloc(n, sizeof *s.hashes), calloc(n, sizeof *s.bodies),
                calloc(n, sizeof *s.ids)};
    if (s.q && s.hashes && s.bodies && s.ids)
        submit_batch(&s, req, resp, batch_id, list);
    else
        rk_reply_error(resp, 500, "internal", "out of memory");
    for (size_t i = 0; s.bodies && i < n; i++)
        free(s.bodies[i]);
    free(s.q);
    free(s.hashes);
    free(s.bodies);
    free(s.ids);
}

/* GET /v1/queries/batch/{batch_id}?after=SEQ&limit=N: the batch's progress
 * and its results settled after SEQ, in the order they settled; a batch is
 * its business system's own. */
void agency_get_queries_batch(void *app, const rk_request *req, rk_response *resp)
{
    agency *a = app;
    const char *batch_id = req->path + strlen("/v1/queries/batch/");
    int64_t after = 0;
    int limit = 0;
    if (rk_page_cursor(req, resp, "after", &after, &limit) != 0)
        return;
    json_t *out = NULL;
    rk_rc rc = rk_id_valid(batch_id, RK_ID_FIELD_MAX)
                   ? batch_store_progress(agency_store_db(a->store), req->peer->id, batch_id, after, limit, &out)
                   : RK_ERR_NOT_FOUND;
    if (rc == RK_OK)
        rk_reply_json(resp, 200, out);
    else if (rc == RK_ERR_NOT_FOUND)
        rk_reply_error(resp, 404, "unknown_batch", "no batch of this system has this batch_id");
    else
        rk_reply_error(resp, 500, "store_error", "the batch could not be read; retry");
}

/* GET /v1/queries/{query_id}: what a query came to — its first answer, as
 * a retry with the same query_id would get it; 202 pending while a batch
 * holds it unsettled. */
void agency_get_query(void *app, const rk_request *req, rk_response *resp)
{
    agency *a = app;
    const char *query_id = req->path + strlen("/v1/queries/");
    char batch_id[RK_ID_FIELD_MAX + 1] = "", *body = NULL;
    int status = 0;
    rk_rc rc = rk_id_valid(query_id, RK_ID_FIELD_MAX)
                   ? batch_store_query_state(agency_store_db(a->store), query_id, &status, &body, batch_id)
                   : RK_ERR_NOT_FOUND;
    if (rc == RK_OK)
        rk_reply_text(resp, status, body);
    else if (rc == RK_ERR_BUSY)
        rk_reply_json(resp, 202, json_pack("{s:s,s:s,s:s}", "query_id", query_id, "status", "pending", "batch_id",
                                           batch_id));
    else if (rc == RK_ERR_NOT_FOUND)
        rk_reply_error(resp, 404, "unknown_query", "no query with this query_id was settled or is pending here");
    else
        rk_reply_error(resp, 500, "store_error", "the query could not be read; retry");
}

/* ---------- the runner ---------- */

/* What became of one query of a group. */
enum { SEND, SETTLE, KEPT, AGAIN };

typedef struct group {
    agency *a;
    batch_query *b;            /* claimed */
    size_t n;
    agency_q *q;
    json_t **parsed;           /* each query's body */
    int *fate;
    int *kept_status;          /* KEPT: the answer kept under its query_id */
    char (*kept_outcome)[32];
    size_t *sent;              /* positions in the call of the queries sent */
    size_t n_sent;
} group;

/* When the queries of a group whose outcome is unknown are due again:
 * together (the group stays one call), after a delay doubling with their
 * attempts — or after the gateway's one-second window when it only said
 * this agency was over its rate. */
static int64_t retry_at(const group *g)
{
    int attempts = 0, limited = 1;
    for (size_t i = 0; i < g->n; i++)
        if (g->fate[i] == AGAIN || g->fate[i] == SEND) {
            attempts = g->b[i].attempts > attempts ? g->b[i].attempts : attempts;
            limited = limited && strcmp(g->q[i].transient, "rate_limited") == 0;
        }
    return rk_now_ms() + (limited ? rk_backoff_ms(1, 1000, 1000)
                                  : rk_backoff_ms(attempts, RETRY_MIN_MS, RETRY_MAX_MS));
}

/* Query i read again from its stored body, then its kept answer or the
 * person's code; the exchange to send added to list. */
static void prepare(group *g, size_t i, json_t *list)
{
    agency *a = g->a;
    rk_db *db = agency_store_db(a->store);
    batch_query *b = &g->b[i];
    rk_request r = {.method = "POST", .path = "/v1/queries", .query = "", .body = "", .peer = a->node->self,
                    .received_ms = b->requested_ms};
    rk_response none = {0};
    g->fate[i] = AGAIN;
    r.json = g->parsed[i] = json_loads(b->body, 0, NULL);
    if (agency_q_open(a, &g->q[i], &r, &none) != 0 || strcmp(g->q[i].request_hash, b->request_hash) != 0) {
        rk_error("batch %s: query %s is stored unreadable; left pending", b->batch_id, b->query_id);
        free(none.body);
        return;
    }
    for (size_t j = 0; j < i; j++)
        if (strcmp(g->b[j].query_id, b->query_id) == 0)
            return; /* twice in the group (two batches): the next round finds it settled */
    char *text = NULL, code[64];
    if (rk_answer_entry(db, b->query_id, "requester", b->request_hash, "query_id", &g->kept_status[i], &text)) {
        batch_answer_outcome(text, g->kept_outcome[i], sizeof g->kept_outcome[i]);
        if (text)
            rk_wipe(text, strlen(text)); /* may hold a provided value */
        free(text);
        g->fate[i] = KEPT;
        return;
    }
    rk_rc rc = agency_store_code_of(a->store, g->q[i].person, code, sizeof code);
    if (rc == RK_ERR_NOT_FOUND) {
        agency_q_not_linked(&g->q[i]);
        g->fate[i] = SETTLE;
    } else if (rc == RK_OK && json_array_append_new(list, agency_q_exchange(&g->q[i], code)) == 0) {
        g->fate[i] = SEND;
        g->sent[i] = g->n_sent++;
    }
}

/* The core's answer to the group: each sent query's outcome, or unknown. */
static void take_answers(group *g, rk_rc rc, const rk_http_result *res)
{
    json_t *body = rc == RK_OK && res->body ? json_loads(res->body, 0, NULL) : NULL;
    json_t *results = rc == RK_OK && res->status == 200 ? json_object_get(body, "results") : NULL;
    for (size_t i = 0; i < g->n; i++) {
        if (g->fate[i] != SEND)
            continue;
        long status = 0;
        json_t *answer = rk_entry_result(results, g->sent[i], "exchange_id", g->q[i].exchange_id, &status);
        int known;
        if (answer)
            known = agency_q_take(&g->q[i], RK_OK, status, answer);
        else if (results) /* no answer for it: not settled */
            known = -1;
        else /* the whole call was refused or failed: as a single query takes that */
            known = agency_q_take(&g->q[i], rc, rc == RK_OK ? res->status : 0, body);
        g->fate[i] = known == 0 ? SETTLE : AGAIN;
    }
    json_decref(body);
}

/* Settles what is known in one commit; the rest is due again later. */
static void finish_group(group *g)
{
    batch_done *done = calloc(g->n, sizeof *done);
    rk_settlement *s = calloc(g->n, sizeof *s);
    char **texts = calloc(g->n, sizeof *texts);
    int64_t *ids = calloc(g->n, sizeof *ids), *next = calloc(g->n, sizeof *next);
    size_t nd = 0, nr = 0;
    for (size_t i = 0; done && s && texts && i < g->n; i++) {
        batch_query *b = &g->b[i];
        if (g->fate[i] == SETTLE) {
            json_t *answer = agency_q_settlement(&g->q[i], &s[i]);
            texts[i] = answer ? json_dumps(answer, JSON_COMPACT) : NULL;
            json_decref(answer);
            s[i].body = texts[i];
            if (!texts[i]) {
                g->fate[i] = AGAIN;
                continue;
            }
            done[nd++] = (batch_done){b->id, b->owner, b->batch_id, b->query_id, &s[i], g->q[i].status,
                                      g->q[i].rec.outcome};
        } else if (g->fate[i] == KEPT) {
            done[nd++] = (batch_done){b->id, b->owner, b->batch_id, b->query_id, NULL, g->kept_status[i],
                                      g->kept_outcome[i]};
        }
    }
    rk_db *db = agency_store_db(g->a->store);
    rk_rc rc = done && s && texts ? batch_store_settle(db, done, nd) : RK_ERR_NOMEM;
    if (rc != RK_OK)
        rk_warn("%zu batch queries could not be settled: %s; they are sent again", nd, rk_strerror(rc));
    for (size_t k = 0; k < nd; k++)
        if (rc != RK_OK || (done[k].rc != RK_OK && done[k].rc != RK_ERR_CONFLICT))
            for (size_t i = 0; i < g->n; i++)
                if (g->b[i].id == done[k].id)
                    g->fate[i] = AGAIN;
    int64_t again = retry_at(g);
    for (size_t i = 0; ids && next && i < g->n; i++)
        if (g->fate[i] == AGAIN || g->fate[i] == SEND) {
            ids[nr] = g->b[i].id;
            next[nr++] = again;
        }
    if (batch_store_release(db, ids, next, nr) != RK_OK)
        rk_warn("%zu batch queries could not be rescheduled; their claim runs out", nr);
    for (size_t i = 0; texts && i < g->n; i++)
        if (texts[i]) {
            rk_wipe(texts[i], strlen(texts[i])); /* may hold a provided value */
            free(texts[i]);
        }
    free(done);
    free(s);
    free(texts);
    free(ids);
    free(next);
}

/* One claimed group: read, sent in one call, settled in one commit. */
static void run_group(agency *a, batch_query *b, size_t n)
{
    group g = {.a = a, .b = b, .n = n, .q = calloc(n, sizeof *g.q), .parsed = calloc(n, sizeof *g.parsed),
               .fate = calloc(n, sizeof *g.fate), .kept_status = calloc(n, sizeof *g.kept_status),
               .kept_outcome = calloc(n, sizeof *g.kept_outcome), .sent = calloc(n, sizeof *g.sent)};
    json_t *list = json_array();
    if (g.q && g.parsed && g.fate && g.kept_status && g.kept_outcome && g.sent && list) {
        for (size_t i = 0; i < n; i++)
            prepare(&g, i, list);
        if (g.n_sent) {
            json_t *msg = json_pack("{s:O}", "exchanges", list);
            char *body = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
            json_decref(msg);
            rk_http_result res = {0};
            rk_rc rc = body ? rk_node_call(a->node, "POST", a->gateway, "/v1/exchanges/batch", body, &res, NULL)
                            : RK_ERR_NOMEM;
            free(body); /* codes and metadata, no value */
            take_answers(&g, rc, &res);
            rk_http_result_clear(&res); /* ciphertext */
        }
        finish_group(&g);
    } else {
        rk_warn("out of memory for a group of %zu batch queries; their claim runs out", n);
    }
    json_decref(list);
    for (size_t i = 0; i < n; i++) {
        if (g.q)
            agency_q_clear(&g.q[i]);
        if (g.parsed)
            json_decref(g.parsed[i]);
    }
    free(g.q);
    free(g.parsed);
    free(g.fate);
    free(g.kept_status);
    free(g.kept_outcome);
    free(g.sent);
}

/* One round of a lane: a group claimed and run, or the wait until the
 * next is due (at most a second: a clock step or a lost wake-up costs no
 * more). */
static int64_t lane_round(void *arg)
{
    agency *a = arg;
    batch_query b[BATCH_GROUP];
    size_t n = 0;
    int64_t lease = (int64_t)a->node->cfg.peer_timeout_ms * LEASE_PEER_TIMEOUTS, due = -1;
    rk_rc rc = batch_store_claim(agency_store_db(a->store), rk_now_ms(), lease, b, BATCH_GROUP, &n);
    if (rc != RK_OK)
        rk_warn("batch queries could not be claimed: %s", rk_strerror(rc));
    if (n) {
        run_group(a, b, n);
        batch_store_free(b, n);
        return 0;
    }
    batch_store_next_due(agency_store_db(a->store), &due);
    int64_t wait_ms = due < 0 ? 1000 : due - rk_now_ms();
    return wait_ms > 1000 ? 1000 : wait_ms;
}

rk_rc agency_batches_start(agency *a)
{
    rk_rc rc = batch_store_resume(agency_store_db(a->store));
    return rc == RK_OK ? rk_service_start(BATCH_LANES, lane_round, a, &a->batches) : rc;
}

void agency_batches_wake(agency *a)
{
    rk_service_wake(a->batches);
}

void agency_batches_stop(agency *a)
{
    rk_service_stop(a->batches);
    a->batches = NULL;
}
