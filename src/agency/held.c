/* held.c — held answers (手動応答) for protected persons (DESIGN §2.2, §4).
 *
 * A provider must not answer automatically for a person under 支援措置
 * (victims of DV, stalking, child abuse): their data, an address above
 * all, must not reach an abuser through another agency. The business
 * system flags the person (PUT /v1/persons/{person}/handling); a provision
 * request for a flagged person is then held (provision.c: recorded `held`,
 * answered {"status":"held"}, no value read). The agency's operators list
 * the held requests (GET /v1/held-provisions) and answer or decline each
 * (POST /v1/held-provisions/{exchange_id}/answer|decline {"operator"}); a
 * request not handled within [agency] held_timeout seconds is declined by
 * this node. Each handling is a second record of the exchange (outcome
 * provided, no_data or declined; records are an append-only log) committed
 * with the late result, which this node's service sends to the core through
 * its gateway (POST /v1/provision-results) until the core has it; the core
 * delivers it to the requester the same way (core/provision_results.c).
 *
 * At the requester, POST /v1/query-results (from its gateway) opens and
 * checks the late result as a direct answer would be, records it, and
 * replaces the answer kept under the query's id, which GET
 * /v1/queries/{query_id} and a retry of the query then give. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agency/agency.h"
#include "agency/held_store.h"
#include "agency/query.h"
#include "lib/ids.h"
#include "lib/log.h"
#include "lib/util.h"
#include "node/service.h"
#include "records/records.h"

#define HELD_BATCH 32

/* ---------- PUT /v1/persons/{person}/handling ---------- */

int agency_read_handling(const rk_request *req, rk_response *resp, char person[RK_ID_FIELD_MAX + 1], int *auto_answer,
                         const char **reason)
{
    static const char prefix[] = "/v1/persons/", suffix[] = "/handling";
    size_t plen = strlen(req->path), n = plen > sizeof prefix + sizeof suffix - 2
                                              ? plen - (sizeof prefix - 1) - (sizeof suffix - 1) : 0;
    if (!n || n > RK_ID_FIELD_MAX || strncmp(req->path, prefix, sizeof prefix - 1) != 0 ||
        strcmp(req->path + plen - (sizeof suffix - 1), suffix) != 0) {
        rk_reply_error(resp, 404, "not_found", "use /v1/persons/{person}/handling");
        return -1;
    }
    memcpy(person, req->path + sizeof prefix - 1, n);
    person[n] = '\0';
    json_t *aa = json_object_get(req->json, "auto_answer");
    json_t *r = json_object_get(req->json, "reason");
    *reason = json_string_value(r);
    if (!rk_person_id_valid(person)) {
        rk_reply_error(resp, 400, "invalid_field", "the person id in the path is not an id");
        return -1;
    }
    if (!json_is_boolean(aa)) {
        rk_reply_error(resp, 400, "invalid_field", "field \"auto_answer\" must be true or false");
        return -1;
    }
    *auto_answer = json_is_true(aa);
    /* Holding needs its reason (支援措置 and the like); lifting may give one. */
    if ((r && !json_is_null(r) && !*reason) || (*reason && strlen(*reason) > HELD_REASON_MAX) ||
        (!*auto_answer && (!*reason || !**reason))) {
        rk_reply_error(resp, 400, "invalid_field", "field \"reason\" (1 to %d bytes) is required with auto_answer false",
                       HELD_REASON_MAX);
        return -1;
    }
    return 0;
}

/* A `fn` route: on a worker, it only writes the store. */
void agency_put_handling(void *app, const rk_request *req, rk_response *resp)
{
    agency *a = app;
    char person[RK_ID_FIELD_MAX + 1];
    int auto_answer = 1;
    const char *reason = NULL;
    if (agency_read_handling(req, resp, person, &auto_answer, &reason) != 0)
        return;
    rk_rc rc = held_store_set_handling(agency_store_db(a->store), person, auto_answer, reason,
                                       rk_node_now_ms(a->node));
    if (rc == RK_ERR_NOT_FOUND) {
        rk_reply_error(resp, 404, "unknown_person", "no person \"%s\" at this agency", person);
        return;
    }
    if (rc != RK_OK) {
        rk_reply_error(resp, 500, "store_error", "the handling could not be stored; retry");
        return;
    }
    /* Who is protected is not for the log: the store keeps it (handling). */
    rk_info("a person's provision requests are now %s", auto_answer ? "answered automatically" : "held (手動応答)");
    rk_reply_json(resp, 200, json_pack("{s:s,s:b,s:s?}", "person", person, "auto_answer", auto_answer, "reason",
                                       auto_answer ? NULL : reason));
}

/* ---------- the operators' routes ---------- */

/* GET /v1/held-provisions?after=SEQ&limit=N: the requests waiting for an
 * operator, oldest first, metadata only. */
void agency_get_held(void *app, const rk_request *req, rk_response *resp)
{
    agency *a = app;
    int64_t after = 0, next = 0;
    int limit = 50;
    if (rk_page_cursor(req, resp, "after", &after, &limit) != 0)
        return;
    json_t *list = NULL;
    if (held_store_list(agency_store_db(a->store), after, limit, &list, &next) != RK_OK) {
        rk_reply_error(resp, 500, "store_error", "the held requests could not be read; retry");
        return;
    }
    json_t *out = json_pack("{s:o}", "held", list);
    if (out && next)
        json_object_set_new(out, "next_after", json_integer((json_int_t)next));
    rk_reply_json(resp, 200, out);
}

/* The late result's record: the held record with its new outcome. */
static rk_rc declined_record(rk_db *db, const held_row *h, const char *reason, rk_record *late)
{
    rk_rc rc = rk_records_find(db, h->exchange_id, "provider", "held", late);
    if (rc != RK_OK)
        return rc;
    strcpy(late->outcome, "declined");
    snprintf(late->reason, sizeof late->reason, "%s", reason);
    late->provided_ms = 0;
    late->payload_sha256[0] = '\0';
    return RK_OK;
}

/* Declines a held request (an operator, or the timeout when by is ""): its
 * record and result in one commit. */
static rk_rc decline(agency *a, const held_row *h, const char *by, const char *reason)
{
    rk_db *db = agency_store_db(a->store);
    rk_record late;
    rk_rc rc = declined_record(db, h, reason, &late);
    if (rc != RK_OK)
        return rc;
    /* What the requester learns: declined, not by whom. */
    json_t *result = json_pack("{s:s,s:s,s:s}", "exchange_id", h->exchange_id, "status", "declined", "reason",
                               by[0] ? "declined by the provider's operator" : "not handled within the provider's time");
    char *text = result ? json_dumps(result, JSON_COMPACT) : NULL;
    json_decref(result);
    rc = text ? held_store_handle(db, h->exchange_id, "declined", by, &late, text, rk_node_now_ms(a->node))
              : RK_ERR_NOMEM;
    free(text);
    return rc;
}

int agency_read_held_action(const rk_request *req, rk_response *resp, char exchange_id[RK_EXCHANGE_ID_MAX + 1],
                            int *answer, const char **operator_id)
{
    static const char prefix[] = "/v1/held-provisions/";
    const char *rest = req->path + sizeof prefix - 1, *slash = strrchr(req->path, '/');
    size_t n = slash > rest ? (size_t)(slash - rest) : 0;
    if (strncmp(req->path, prefix, sizeof prefix - 1) != 0 || !n || n > RK_EXCHANGE_ID_MAX ||
        (strcmp(slash, "/answer") != 0 && strcmp(slash, "/decline") != 0)) {
        rk_reply_error(resp, 404, "not_found", "use /v1/held-provisions/{exchange_id}/answer or /decline");
        return -1;
    }
    memcpy(exchange_id, rest, n);
    exchange_id[n] = '\0';
    *answer = strcmp(slash, "/answer") == 0;
    if (strchr(exchange_id, '/') || !rk_id_valid(exchange_id, RK_EXCHANGE_ID_MAX)) {
        rk_reply_error(resp, 400, "invalid_field", "the exchange id in the path is not an id");
        return -1;
    }
    /* 第8-3: every handling names its operator */
    if (!(*operator_id = rk_req_string(req, resp, "operator", RK_ID_FIELD_MAX)))
        return -1;
    if (!rk_id_valid(*operator_id, RK_ID_FIELD_MAX)) {
        rk_reply_error(resp, 400, "invalid_field", "operator must be characters of [A-Za-z0-9._-]");
        return -1;
    }
    return 0;
}

/* POST /v1/held-provisions/{exchange_id}/answer|decline {"operator"}: a
 * `fn` route on a worker — the store, and for an answer the seal (as an
 * automatic provision would make it). The result goes to the core from
 * the service. */
void agency_post_held_action(void *app, const rk_request *req, rk_response *resp)
{
    agency *a = app;
    char exchange_id[RK_EXCHANGE_ID_MAX + 1];
    int answer = 0;
    const char *operator_id = NULL;
    if (agency_read_held_action(req, resp, exchange_id, &answer, &operator_id) != 0)
        return;
    rk_db *db = agency_store_db(a->store);
    held_row h;
    rk_rc rc = held_store_get(db, exchange_id, &h);
    if (rc == RK_ERR_NOT_FOUND) {
        rk_reply_error(resp, 404, "not_held", "no provision request %s is held here", exchange_id);
        return;
    }
    if (rc != RK_OK) {
        rk_reply_error(resp, 500, "store_error", "the held request could not be read; retry");
        return;
    }
    rk_record late;
    char *result = NULL;
    if (strcmp(h.state, "held") != 0) {
        rc = RK_ERR_CONFLICT;
    } else if (answer) {
        rc = agency_held_answer(a, &h, operator_id, &late, &result);
        if (rc == RK_OK)
            rc = held_store_handle(db, exchange_id, "answered", operator_id, &late, result, rk_node_now_ms(a->node));
        if (result) {
            rk_wipe(result, strlen(result)); /* ciphertext, wiped all the same */
            free(result);
        }
    } else {
        char reason[RK_REASON_MAX + 1];
        snprintf(reason, sizeof reason, "declined by operator %s", operator_id);
        rc = decline(a, &h, operator_id, reason);
    }
    if (rc == RK_ERR_CONFLICT)
        rk_reply_error(resp, 409, "not_held", "provision request %s was %s already", exchange_id,
                       strcmp(h.state, "held") != 0 ? h.state : "handled");
    else if (rc == RK_ERR_INVALID)
        rk_reply_error(resp, 409, "bad_requester_cert", "the requester's certificate is no longer registered: decline");
    else if (rc != RK_OK)
        rk_reply_error(resp, 500, "store_error", "the handling could not be recorded; retry");
    else {
        rk_info("held provision %s %s by %s", exchange_id, answer ? "answered" : "declined", operator_id);
        rk_reply_json(resp, 200, json_pack("{s:s,s:s,s:s,s:s}", "exchange_id", exchange_id, "status",
                                           answer ? "answered" : "declined", "outcome", answer ? late.outcome
                                                                                              : "declined",
                                           "operator", operator_id));
        rk_service_wake(a->held);
    }
    held_row_clear(&h);
}

/* ---------- POST /v1/query-results: the late result, at the requester ---------- */

void agency_post_query_result(void *app, const rk_request *req, rk_response *resp)
{
    agency *a = app;
    const char *xid = rk_req_string(req, resp, "exchange_id", RK_EXCHANGE_ID_MAX);
    const char *st = xid ? rk_req_string(req, resp, "status", 16) : NULL;
    if (!st)
        return;
    if (strcmp(st, "provided") != 0 && strcmp(st, "no_data") != 0 && strcmp(st, "declined") != 0) {
        rk_reply_error(resp, 400, "invalid_field", "status must be provided, no_data or declined");
        return;
    }
    rk_db *db = agency_store_db(a->store);
    awaiting_row w;
    rk_rc rc = held_store_awaiting_get(db, xid, &w);
    if (rc == RK_ERR_NOT_FOUND) {
        rk_reply_error(resp, 404, "unknown_exchange", "no query of this agency waits for exchange %s", xid);
        return;
    }
    if (rc == RK_OK && w.settled) { /* a repeat: the first settled it */
        rk_reply_json(resp, 200, json_pack("{s:s,s:s}", "exchange_id", xid, "status", "settled"));
        return;
    }
    agency_q q = {.a = a, .query_id = w.query_id, .person = w.person, .provider = w.provider, .item = w.item};
    snprintf(q.exchange_id, sizeof q.exchange_id, "%s", xid);
    if (rc == RK_OK)
        rc = rk_records_find(db, xid, "requester", "held", &q.rec);
    if (rc != RK_OK) {
        rk_reply_error(resp, 500, "store_error", "the query could not be read; retry");
        return;
    }
    q.rec.provided_ms = 0;
    q.rec.payload_sha256[0] = '\0';
    if (agency_q_take(&q, RK_OK, 200, req->json) != 0) {
        agency_q_clear(&q);
        rk_reply_error(resp, 400, "invalid_field", "the result is not one this agency can settle");
        return;
    }
    rk_settlement s;
    json_t *answer = agency_q_settlement(&q, &s);
    char *text = answer ? json_dumps(answer, JSON_COMPACT) : NULL;
    json_decref(answer);
    rc = text ? held_store_settle_awaiting(db, xid, &q.rec, s.status, text, s.extra, s.extra_arg,
                                           rk_node_now_ms(a->node))
              : RK_ERR_NOMEM;
    if (text) {
        rk_wipe(text, strlen(text)); /* it holds the value */
        free(text);
    }
    if (rc == RK_OK || rc == RK_ERR_EXISTS) {
        rk_info("query %s (exchange %s) settled late: %s", w.query_id, xid, q.rec.outcome);
        rk_reply_json(resp, 200, json_pack("{s:s,s:s,s:s}", "exchange_id", xid, "status", "settled", "outcome",
                                           q.rec.outcome));
    } else {
        rk_reply_error(resp, 500, "store_error", "the result could not be recorded; retry");
    }
    agency_q_clear(&q);
}

/* ---------- the service: timeouts, and the results sent to the core ---------- */

/* Requests held past [agency] held_timeout are declined and recorded. */
static void decline_expired(agency *a)
{
    char ids[HELD_BATCH][RK_EXCHANGE_ID_MAX + 1];
    size_t n = 0;
    rk_db *db = agency_store_db(a->store);
    if (held_store_expired(db, rk_node_now_ms(a->node), ids, HELD_BATCH, &n) != RK_OK)
        return;
    for (size_t i = 0; i < n; i++) {
        held_row h;
        if (held_store_get(db, ids[i], &h) != RK_OK)
            continue;
        char reason[RK_REASON_MAX + 1];
        snprintf(reason, sizeof reason, "declined: not handled within held_timeout (%d s)",
                 a->node->cfg.held_timeout_s);
        rk_rc rc = decline(a, &h, "", reason);
        if (rc == RK_OK)
            rk_warn("held provision %s declined: no operator handled it within %d s", ids[i],
                    a->node->cfg.held_timeout_s);
        else if (rc != RK_ERR_CONFLICT)
            rk_warn("held provision %s could not be declined: %s", ids[i], rk_strerror(rc));
        held_row_clear(&h);
    }
}

/* The core's answers that sending again cannot change. */
static int final_status(long status)
{
    return status == 200 || (status >= 400 && status < 500 && status != 408 && status != 429);
}

/* Sends the due late results; the number claimed. */
static size_t send_results(agency *a)
{
    held_result r[HELD_BATCH];
    size_t n = 0;
    rk_db *db = agency_store_db(a->store);
    const rk_node_config *cfg = &a->node->cfg;
    int64_t due = held_store_next_due(db), now = rk_now_ms();
    if (due < 0 || due > now) /* nothing to send: no write */
        return 0;
    if (held_store_claim_results(db, now, cfg->notice_lease_ms, r, HELD_BATCH, &n) != RK_OK)
        return 0;
    for (size_t i = 0; i < n; i++) {
        rk_http_result res = {0};
        rk_rc rc = rk_node_post(a->node, a->gateway, "/v1/provision-results", r[i].result_json, &res, NULL);
        int done = rc == RK_OK && final_status(res.status);
        if (done && res.status != 200)
            rk_warn("the core refused the late result of %s (HTTP %ld): not sent again", r[i].exchange_id,
                    res.status);
        else if (!done)
            rk_warn("the late result of %s did not reach the core (%s, HTTP %ld); retrying", r[i].exchange_id,
                    rk_strerror(rc), res.status);
        int64_t at = rk_now_ms();
        held_store_result_sent(db, r[i].seq, done,
                               at + rk_backoff_ms(r[i].attempts + 1, cfg->outbox_retry_min_ms,
                                                  cfg->outbox_retry_max_ms), at);
        rk_http_result_clear(&res);
        free(r[i].result_json);
    }
    return n;
}

static int64_t held_round(void *arg)
{
    agency *a = arg;
    decline_expired(a);
    size_t sent = send_results(a);
    if (sent == HELD_BATCH)
        return 0; /* more may be due */
    int64_t p = (int64_t)a->node->cfg.held_timeout_s * 250; /* a quarter of the timeout */
    return p < 50 ? 50 : p > 1000 ? 1000 : p;
}

rk_rc agency_held_start(agency *a)
{
    return rk_service_start(1, held_round, a, &a->held);
}

void agency_held_stop(agency *a)
{
    rk_service_stop(a->held);
    a->held = NULL;
}
