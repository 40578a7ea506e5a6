/* provision_results.c — the late results of held requests (手動応答;
 * DESIGN §2.2, §4).
 *
 * A provider that holds a request answers the exchange {"status":"held"}
 * (recorded `held` here, exchanges.c). When its operator answers or
 * declines it, or its held_timeout passes, the provider's gateway sends
 * the result: POST /v1/provision-results {"exchange_id","status"
 * (provided|no_data|declined)[,"payload","provider_cert","reason"]}. The
 * core takes it only from the provider of an exchange it recorded held,
 * records the late outcome as a second record of the exchange (records
 * are an append-only log; the payload's SHA-256, never its content) and
 * queues it for the requester, in one commit. A deliverer sends it to the
 * requester's agency through its gateway (POST /v1/query-results) until
 * the agency has it, with backoff across restarts, each row claimed for
 * [core] notice_lease_ms so that of several core instances one sends it —
 * as code notices are delivered (notices.c). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "crypto/cms.h"
#include "lib/ids.h"
#include "lib/log.h"
#include "lib/util.h"
#include "node/service.h"
#include "records/records.h"

#define RESULTS_BATCH 32

/* ---------- the store ---------- */

typedef struct keep_args {
    const rk_record *late;
    const char *body;
    int64_t now_ms;
} keep_args;

/* The late record and the delivery, together; RK_ERR_EXISTS when this
 * outcome was recorded before (a repeat: nothing changes). */
static rk_rc keep_in_tx(rk_db *db, void *arg)
{
    keep_args *k = arg;
    rk_rc rc = rk_record_append(db, k->late);
    if (rc == RK_ERR_CONFLICT)
        return RK_ERR_EXISTS;
    if (rc != RK_OK)
        return rc;
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO late_results(exchange_id, requester, body, next_ms, created_ms)"
                                 " VALUES (?,?,?,?,?)");
    rk_bind_text(st, 1, k->late->exchange_id);
    rk_bind_text(st, 2, k->late->requester);
    rk_bind_text(st, 3, k->body);
    rk_bind_int(st, 4, k->now_ms);
    rk_bind_int(st, 5, k->now_ms);
    rc = rk_stmt_exec(st);
    return rc == RK_ERR_CONFLICT ? RK_ERR_EXISTS : rc; /* another outcome of this exchange came before */
}

/* Whether the exchange already has a late outcome here (one per exchange). */
static rk_rc late_known(rk_db *db, void *arg)
{
    rk_stmt *q = rk_db_stmt(db, "SELECT 1 FROM late_results WHERE exchange_id = ?");
    rk_bind_text(q, 1, (const char *)arg);
    return rk_stmt_next(q);
}

typedef struct late_result {
    int64_t id;
    char exchange_id[RK_EXCHANGE_ID_MAX + 1];
    char requester[RK_AGENCY_FIELD_MAX + 1];
    char *body;
    int attempts;
    int64_t created_ms;
} late_result;

typedef struct claim_args {
    int64_t now_ms, lease_ms;
    late_result *out;
    size_t max, *n;
} claim_args;

static rk_rc claim_in_tx(rk_db *db, void *arg)
{
    claim_args *x = arg;
    rk_stmt *q = rk_db_stmt(db, "UPDATE late_results SET next_ms = ? WHERE id IN ("
                                "  SELECT id FROM late_results WHERE done_ms IS NULL AND next_ms <= ?"
                                "  ORDER BY next_ms LIMIT ? {skip_locked})"
                                " RETURNING id, exchange_id, requester, body, attempts, created_ms");
    rk_bind_int(q, 1, x->now_ms + x->lease_ms);
    rk_bind_int(q, 2, x->now_ms);
    rk_bind_int(q, 3, (int64_t)x->max);
    rk_rc rc;
    while ((rc = rk_stmt_next(q)) == RK_OK)
        if (*x->n < x->max) {
            late_result *r = &x->out[*x->n];
            r->id = rk_col_int(q, 0);
            rk_col_copy(q, 1, r->exchange_id, sizeof r->exchange_id);
            rk_col_copy(q, 2, r->requester, sizeof r->requester);
            const char *body = rk_col_text(q, 3);
            if (!(r->body = strdup(body ? body : "")))
                return RK_ERR_NOMEM;
            r->attempts = (int)rk_col_int(q, 4);
            r->created_ms = rk_col_int(q, 5);
            (*x->n)++;
        }
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

typedef struct settle_args {
    int64_t id, next_ms, now_ms;
    const char *outcome; /* NULL: again at next_ms */
} settle_args;

static rk_rc settle_in_tx(rk_db *db, void *arg)
{
    settle_args *x = arg;
    rk_stmt *st;
    if (x->outcome) {
        st = rk_db_stmt(db, "UPDATE late_results SET done_ms = ?, outcome = ?, attempts = attempts + 1 WHERE id = ?");
        rk_bind_int(st, 1, x->now_ms);
        rk_bind_text(st, 2, x->outcome);
        rk_bind_int(st, 3, x->id);
    } else {
        st = rk_db_stmt(db, "UPDATE late_results SET next_ms = ?, attempts = attempts + 1 WHERE id = ?");
        rk_bind_int(st, 1, x->next_ms);
        rk_bind_int(st, 2, x->id);
    }
    return rk_stmt_exec(st);
}

static rk_rc pending_in_tx(rk_db *db, void *arg)
{
    rk_stmt *q = rk_db_stmt(db, "SELECT count(*) FROM late_results WHERE done_ms IS NULL");
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK)
        *(int64_t *)arg = rk_col_int(q, 0);
    return rc;
}

size_t core_results_pending(core *c)
{
    int64_t n = 0;
    rk_db_scan(core_store_db(c->store), pending_in_tx, &n);
    return (size_t)n;
}

/* ---------- POST /v1/provision-results ---------- */

/* A `fn` route: on a worker, it reads and writes the store only. */
void core_handle_provision_result(void *app, const rk_request *req, rk_response *resp)
{
    core *c = app;
    const char *xid = rk_req_string(req, resp, "exchange_id", RK_EXCHANGE_ID_MAX);
    const char *st = xid ? rk_req_string(req, resp, "status", 16) : NULL;
    if (!st)
        return;
    int provided = strcmp(st, "provided") == 0, declined = strcmp(st, "declined") == 0;
    if (!provided && !declined && strcmp(st, "no_data") != 0) {
        rk_reply_error(resp, 400, "invalid_field", "status must be provided, no_data or declined");
        return;
    }
    const char *payload = json_string_value(json_object_get(req->json, "payload"));
    const char *cert = json_string_value(json_object_get(req->json, "provider_cert"));
    const char *reason = json_string_value(json_object_get(req->json, "reason"));
    rk_record late;
    if (provided && (!payload || !cert || strlen(cert) > RK_CERT_PEM_MAX ||
                     rk_payload_digest(payload, late.payload_sha256) != RK_OK)) {
        rk_reply_error(resp, 400, "invalid_field", "a provided result needs \"payload\" (base64 CMS) and"
                                                   " \"provider_cert\"");
        return;
    }
    if (reason && strlen(reason) >= RK_REASON_MAX) {
        rk_reply_error(resp, 400, "invalid_field", "field \"reason\" is too long");
        return;
    }
    char digest[65];
    snprintf(digest, sizeof digest, "%s", provided ? late.payload_sha256 : "");
    rk_db *db = core_store_db(c->store);
    rk_rc rc = rk_records_find(db, xid, "core", "held", &late);
    if (rc == RK_ERR_NOT_FOUND) {
        rk_reply_error(resp, 404, "not_held", "no exchange %s is held at the core", xid);
        return;
    }
    if (rc != RK_OK) {
        rk_reply_error(resp, 500, "store_error", "the exchange could not be read; retry");
        return;
    }
    if (strcmp(late.provider, req->peer->agency) != 0) { /* only the provider answers its own */
        rk_reply_error(resp, 403, "wrong_agency", "exchange %s was not sent to %s", xid, req->peer->agency);
        return;
    }
    int64_t now = rk_node_now_ms(c->node);
    snprintf(late.outcome, sizeof late.outcome, "%s", st);
    snprintf(late.reason, sizeof late.reason, "%s",
             declined ? (reason ? reason : "declined by the provider")
                      : provided ? "" : "the provider holds no data for this person and item");
    snprintf(late.payload_sha256, sizeof late.payload_sha256, "%s", digest);
    late.provided_ms = declined ? 0 : now;
    json_t *msg = json_pack("{s:s,s:s}", "exchange_id", xid, "status", st);
    if (msg && provided) {
        json_object_set_new(msg, "payload", json_string(payload));
        json_object_set_new(msg, "payload_sha256", json_string(digest));
        json_object_set_new(msg, "provider_cert", json_string(cert));
    }
    if (msg && !provided)
        json_object_set_new(msg, "reason", json_string(late.reason));
    char *body = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    keep_args k = {&late, body, now};
    rc = body ? rk_db_write(db, keep_in_tx, &k) : RK_ERR_NOMEM;
    free(body);
    if (rc == RK_ERR_EXISTS && rk_db_read(db, late_known, (void *)xid) != RK_OK)
        rc = RK_ERR_STORE;
    if (rc == RK_OK || rc == RK_ERR_EXISTS) { /* a repeat gets the same answer */
        if (rc == RK_OK) {
            rk_info("exchange %s %s -> %s: late result %s", xid, late.requester, late.provider, st);
            rk_service_wake(c->results);
        }
        rk_reply_json(resp, 200, json_pack("{s:s,s:s}", "exchange_id", xid, "status", "recorded"));
    } else {
        rk_reply_error(resp, 500, "store_error", "the result could not be recorded; retry");
    }
}

/* ---------- the deliverer ---------- */

/* The agency's answers that sending again cannot change. */
static const char *delivered(rk_rc rc, long status)
{
    if (rc != RK_OK)
        return NULL;
    if (status == 200)
        return "delivered";
    if (status == 404 || status == 400 || status == 403)
        return "refused";
    return NULL;
}

static void deliver(core *c, late_result *r)
{
    const rk_peer_node *gw = rk_registry_find(c->node->registry, RK_ROLE_GATEWAY, r->requester);
    rk_http_result res = {0};
    rk_rc rc = gw ? rk_node_post(c->node, gw, "/v1/query-results", r->body, &res, NULL) : RK_ERR_CONFIG;
    int64_t now = rk_now_ms();
    settle_args s = {r->id, 0, now, gw ? delivered(rc, res.status) : "undeliverable"};
    if (!s.outcome) {
        s.next_ms = now + rk_backoff_ms(r->attempts + 1, c->node->cfg.outbox_retry_min_ms,
                                        c->node->cfg.outbox_retry_max_ms);
        rk_warn("the late result of %s did not reach %s (%s, HTTP %ld); retrying", r->exchange_id, r->requester,
                rk_strerror(rc), res.status);
        if (now - r->created_ms > c->node->cfg.unreachable_ms && rk_watch_hit(c->unreachable, r->requester, now))
            rk_node_raise(c->node, "outage", "late results to %s undelivered for over %d ms", r->requester,
                          c->node->cfg.unreachable_ms);
    } else if (strcmp(s.outcome, "delivered") != 0) {
        rk_warn("the late result of %s was refused by %s (HTTP %ld)", r->exchange_id, r->requester, res.status);
    }
    rk_http_result_clear(&res);
    if (rk_db_write(core_store_db(c->store), settle_in_tx, &s) != RK_OK)
        rk_warn("the delivery of %s could not be noted; it is claimed again after its lease", r->exchange_id);
}

static rk_rc next_due_fn(rk_db *db, void *arg)
{
    rk_stmt *q = rk_db_stmt(db, "SELECT min(next_ms) FROM late_results WHERE done_ms IS NULL");
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK && !rk_col_is_null(q, 0))
        *(int64_t *)arg = rk_col_int(q, 0);
    return rc;
}

static int64_t results_round(void *arg)
{
    core *c = arg;
    late_result r[RESULTS_BATCH];
    size_t n = 0;
    int64_t due = -1;
    rk_db_read(core_store_db(c->store), next_due_fn, &due);
    if (due < 0 || due > rk_now_ms()) /* nothing to deliver: no write */
        return 500;
    claim_args x = {rk_now_ms(), c->node->cfg.notice_lease_ms, r, RESULTS_BATCH, &n};
    rk_rc rc = rk_db_write(core_store_db(c->store), claim_in_tx, &x);
    for (size_t i = 0; i < n; i++) {
        if (rc == RK_OK)
            deliver(c, &r[i]);
        free(r[i].body);
    }
    return rc == RK_OK && n == RESULTS_BATCH ? 0 : 500;
}

rk_rc core_results_start(core *c)
{
    return rk_service_start(1, results_round, c, &c->results);
}

void core_results_stop(core *c)
{
    rk_service_stop(c->results);
    c->results = NULL;
}
