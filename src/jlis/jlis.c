/* jlis.c — the J-LIS node (地方公共団体情報システム機構): relays an agency's
 * code acquisition to the core (法21条の2, 令27条, standard 第7-2, 第8-2).
 *
 * It holds the resident registry. For a request it finds the resident,
 * computes the 符号取得処理検査用符号 itself (第7-2(1)) and hands
 * (agency, acquisition number, resident codes, check code) to the core on
 * the primary line, or on the backup line when the primary fails
 * (第7-1(7)). It answers 202 only after the core acknowledged, and it never
 * sees a code. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jlis/jlis_store.h"
#include "lib/log.h"
#include "lib/mynumber.h"
#include "node/node.h"
#include "lib/util.h"
#include "node/watch.h"
#include "roles.h"

typedef struct jlis {
    rk_node *node;
    jlis_store *store;
    const rk_peer_node *core;
    rk_watch *line_down;   /* one outage incident per window while the primary line fails */
} jlis;

/* 取得番号: the agency's random number for this acquisition. 16 to 64
 * characters of [0-9a-f] — never a My Number or resident code. */
static int acquisition_no_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 16 || n > 64)
        return 0;
    return strspn(s, "0123456789abcdef") == n;
}

static json_t *notice_for_core(const char *agency, const char *acquisition_no, const jlis_resident *r, int check)
{
    json_t *prev = json_array();
    for (int i = 0; i < r->n_previous; i++)
        json_array_append_new(prev, json_string(r->previous[i]));
    return json_pack("{s:s,s:s,s:s,s:o,s:i}", "agency", agency, "acquisition_no", acquisition_no,
                     "resident_code", r->resident_code, "previous_resident_codes", prev, "check_code", check);
}

static void relay_to_core(jlis *j, const rk_request *req, rk_response *resp, const char *acquisition_no,
                          const jlis_resident *r, int check)
{
    json_t *msg = notice_for_core(req->peer->agency, acquisition_no, r, check);
    char *body = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    rk_http_result res;
    int backup = 0;
    rk_rc rc = body ? rk_node_post(j->node, j->core, "/v1/codes", body, &res, &backup) : RK_ERR_NOMEM;
    free(body);
    if (backup && rk_watch_hit(j->line_down, "primary", rk_now_ms()))
        rk_node_raise(j->node, "outage", "the core's primary line failed; J-LIS relays on the backup line");
    if (rc == RK_OK && res.status == 202) {
        jlis_store_log_relay(j->store, req->peer->agency, acquisition_no, backup ? "backup" : "primary",
                             (long long)req->received_ms);
        rk_info("relayed acquisition for %s on the %s line", req->peer->agency, backup ? "backup" : "primary");
        rk_reply_json(resp, 202, json_pack("{s:s}", "status", "forwarded"));
    } else if (rc == RK_OK && res.status == 409) {
        rk_reply_error(resp, 409, "conflict", "this acquisition number was used with another person");
    } else if (rc == RK_OK && res.status < 500) {
        rk_warn("core refused an acquisition for %s: HTTP %ld", req->peer->agency, res.status);
        rk_reply_error(resp, 502, "core_refused", "the core refused the request (HTTP %ld)", res.status);
    } else {
        rk_warn("core unreachable on both lines: %s", rk_strerror(rc));
        rk_reply_error(resp, 503, "core_unavailable", "the core could not be reached on either line; retry");
    }
    if (rc == RK_OK)
        rk_http_result_clear(&res);
}

/* POST /v1/code-requests {"acquisition_no","my_number"} from an agency node. */
static void handle_code_request(void *app, const rk_request *req, rk_response *resp)
{
    jlis *j = app;
    const char *acquisition_no = rk_req_string(req, resp, "acquisition_no", 64);
    const char *my_number = acquisition_no ? rk_req_string(req, resp, "my_number", 32) : NULL;
    if (!my_number)
        return;
    if (!acquisition_no_valid(acquisition_no)) {
        rk_reply_error(resp, 400, "invalid_field", "field \"acquisition_no\" must be 16 to 64 lowercase hex digits");
        return;
    }
    if (rk_mynumber_validate(my_number) != RK_OK) {
        rk_reply_error(resp, 400, "invalid_my_number", "not a valid My Number (12 digits with a correct check digit)");
        return;
    }
    jlis_resident r;
    rk_rc rc = jlis_store_find(j->store, my_number, &r);
    if (rc == RK_ERR_NOT_FOUND) {
        rk_reply_error(resp, 404, "unknown_person", "no resident has this My Number");
        return;
    }
    if (rc != RK_OK) {
        rk_reply_error(resp, 500, "store_error", "the resident registry could not be read");
        return;
    }
    relay_to_core(j, req, resp, acquisition_no, &r, rk_mynumber_check_code(my_number));
}

/* ---------- bulk relay ---------- */

typedef struct relay_item {
    const char *acquisition_no;
    json_t *error;       /* set when refused here or by the core */
} relay_item;

/* Validates and looks up each request; the valid ones go into `codes`. */
static void prepare_batch(jlis *j, const rk_request *req, json_t *list, relay_item *items, json_t *codes)
{
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *e = json_array_get(list, i);
        relay_item *it = &items[i];
        const char *number = json_string_value(json_object_get(e, "my_number"));
        jlis_resident r;
        it->acquisition_no = json_string_value(json_object_get(e, "acquisition_no"));
        rk_rc rc = RK_ERR_INVALID;
        if (!it->acquisition_no || !acquisition_no_valid(it->acquisition_no))
            it->error = json_pack("{s:s,s:s}", "code", "invalid_field", "message", "bad acquisition_no");
        else if (!number || rk_mynumber_validate(number) != RK_OK)
            it->error = json_pack("{s:s,s:s}", "code", "invalid_my_number", "message", "not a valid My Number");
        else if ((rc = jlis_store_find(j->store, number, &r)) != RK_OK)
            it->error = json_pack("{s:s,s:s}", "code", rc == RK_ERR_NOT_FOUND ? "unknown_person" : "store_error",
                                  "message", rc == RK_ERR_NOT_FOUND ? "no resident has this My Number"
                                                                    : "the registry could not be read");
        else
            json_array_append_new(codes, notice_for_core(req->peer->agency, it->acquisition_no, &r,
                                                         rk_mynumber_check_code(number)));
    }
}

/* One call to the core for the batch (primary line, else backup); its
 * results in order, or NULL when the core did not take it. */
static json_t *relay_batch(jlis *j, json_t *codes, int *backup)
{
    json_t *msg = json_pack("{s:O}", "codes", codes);
    char *body = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    rk_http_result res = {0};
    rk_rc rc = body ? rk_node_post(j->node, j->core, "/v1/codes/batch", body, &res, backup) : RK_ERR_NOMEM;
    free(body);
    json_t *answer = rc == RK_OK && res.status == 200 && res.body ? json_loads(res.body, 0, NULL) : NULL;
    json_t *results = json_incref(json_object_get(answer, "results"));
    json_decref(answer);
    rk_http_result_clear(&res);
    if (*backup && rk_watch_hit(j->line_down, "primary", rk_now_ms()))
        rk_node_raise(j->node, "outage", "the core's primary line failed; J-LIS relays on the backup line");
    return results;
}

/* POST /v1/code-requests/batch {"requests":[{"acquisition_no","my_number"},…]}:
 * as /v1/code-requests for up to RK_BATCH_MAX acquisitions, relayed to the
 * core in one call. Answers 200 with one result per request, in order. */
static void handle_code_requests_batch(void *app, const rk_request *req, rk_response *resp)
{
    jlis *j = app;
    json_t *list = rk_req_batch(req, resp, "requests");
    if (!list)
        return;
    size_t n = json_array_size(list);
    relay_item *items = calloc(n, sizeof *items);
    const char **relayed = calloc(n, sizeof *relayed);
    json_t *codes = json_array(), *results = json_array();
    if (!items || !relayed || !codes || !results) {
        rk_reply_error(resp, 500, "internal", "out of memory");
        json_decref(codes);
        json_decref(results);
        free(relayed);
        free(items);
        return;
    }
    prepare_batch(j, req, list, items, codes);
    int backup = 0;
    json_t *core_results = json_array_size(codes) ? relay_batch(j, codes, &backup) : NULL;
    size_t k = 0, n_relayed = 0;
    for (size_t i = 0; i < n; i++) {
        relay_item *it = &items[i];
        json_t *one = it->error ? NULL : json_array_get(core_results, k++);
        if (!it->error && !one)
            it->error = json_pack("{s:s,s:s}", "code", "core_unavailable", "message", "the core did not take it; retry");
        else if (!it->error && json_object_get(one, "error"))
            it->error = json_incref(json_object_get(one, "error"));
        if (it->error)
            json_array_append_new(results, json_pack("{s:s?,s:o}", "acquisition_no", it->acquisition_no, "error", it->error));
        else {
            relayed[n_relayed++] = it->acquisition_no;
            json_array_append_new(results, json_pack("{s:s,s:s}", "acquisition_no", it->acquisition_no, "status",
                                                     "forwarded"));
        }
    }
    if (n_relayed)
        jlis_store_log_relays(j->store, req->peer->agency, relayed, n_relayed, backup ? "backup" : "primary",
                              (long long)req->received_ms);
    rk_reply_json(resp, 200, json_pack("{s:O}", "results", results));
    json_decref(results);
    json_decref(codes);
    json_decref(core_results);
    free(relayed);
    free(items);
}

/* GET /v1/records?before=&limit= for the network operator: J-LIS is no
 * party to an exchange; its records are the relay log. */
static void handle_records(void *app, const rk_request *req, rk_response *resp)
{
    jlis *j = app;
    int64_t before = 0;
    int limit = 0;
    json_t *arr = NULL;
    if (req->peer->agency[0]) {
        rk_reply_error(resp, 403, "role_not_allowed", "only the network operator reads J-LIS's records");
    } else if (rk_page_params(req, resp, &before, &limit) != 0) {
        return;
    } else if (jlis_store_relays(j->store, before, limit, &arr) != RK_OK) {
        rk_reply_error(resp, 500, "store_error", "the relay log could not be read");
    } else {
        rk_reply_json(resp, 200, json_pack("{s:o}", "relays", arr));
    }
}

static const rk_route routes[] = {
    {"POST", "/v1/code-requests", RK_ROLE_AGENCY, 0, handle_code_request},
    {"POST", "/v1/code-requests/batch", RK_ROLE_AGENCY, 0, handle_code_requests_batch},
    {"GET", "/v1/records", RK_ROLE_OPERATOR, 0, handle_records},
};

static int health(void *app, json_t *checks)
{
    jlis *j = app;
    int writable = jlis_store_writable(j->store);
    json_object_set_new(checks, "store_writable", json_boolean(writable));
    json_object_set_new(checks, "residents", json_integer((json_int_t)jlis_store_count(j->store)));
    return rk_node_health(j->node, checks) || !writable;
}

static rk_rc run(rk_node *node)
{
    jlis j = {.node = node, .core = rk_registry_find(node->registry, RK_ROLE_CORE, NULL)};
    char err[512] = "";
    size_t imported = 0;
    rk_rc rc = RK_ERR_CONFIG;
    if (!j.core) {
        rk_error("no core in the registry");
        goto done;
    }
    if ((rc = jlis_store_open(node->cfg.db, 0, &j.store)) != RK_OK)
        goto done;
    if (node->cfg.residents[0] && (rc = jlis_store_import(j.store, node->cfg.residents, &imported, err, sizeof err)) != RK_OK) {
        rk_error("%s", err);
        goto done;
    }
    if (imported)
        rk_info("imported %zu residents", imported);
    j.line_down = rk_watch_new(node->cfg.unreachable_ms, 1, 0);
    if ((rc = rk_node_incidents_start(node, jlis_store_db(j.store))) != RK_OK ||
        (rc = rk_node_clock_start(node)) != RK_OK)
        goto done;
    rk_server_config sc = {.routes = routes, .n_routes = sizeof routes / sizeof routes[0], .app = &j,
                           .health = health};
    rc = rk_node_serve(node, &sc);
done:
    rk_node_stop_services(node);
    rk_watch_free(j.line_down);
    jlis_store_close(j.store);
    return rc;
}

int rk_jlis_main(int argc, char **argv)
{
    return rk_role_command(argc, argv, RK_ROLE_JLIS, run);
}
