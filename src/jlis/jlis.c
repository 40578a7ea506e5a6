/* jlis.c — the J-LIS node (地方公共団体情報システム機構): relays an agency's
 * code acquisition to the core (法21条の2, 令27条, standard 第7-2, 第8-2).
 *
 * It holds the resident registry. For a request it finds the resident,
 * compares the four basic items the agency sent with the registry's
 * (lib/basic_info.h: a mismatch is refused, 409 basic_info_mismatch, and
 * never reaches the core), computes the 符号取得処理検査用符号 itself
 * (第7-2(1)) and hands (agency, acquisition number, resident codes, check
 * code) to the core on the primary line, or on the backup line when the
 * primary fails (第7-1(7)). It answers 202 only after the core
 * acknowledged, and it never sees a code. Every lookup of the registry is
 * logged (agency, acquisition number, purpose, outcome; never a My Number
 * nor an item's value), the code requests' and the rechecks'
 * (POST /v1/basic-info-checks: the comparison alone, nothing relayed).
 *
 * Persons' cards (DESIGN §2.5): J-LIS knows which resident each card serial
 * belongs to (its card file, appended to by `renkei card issue`) and
 * publishes the card CRL (`renkei card revoke`); the portal asks it for a
 * card's resident (POST /v1/card-lookups, in the lookup log too) and
 * fetches the CRL (GET /v1/card-crl). */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/card.h"
#include "crypto/pki.h"
#include "jlis/jlis.h"
#include "jlis/jlis_store.h"
#include "lib/basic_info.h"
#include "lib/ids.h"
#include "lib/log.h"
#include "lib/mynumber.h"
#include "node/flow.h"
#include "node/node.h"
#include "lib/util.h"
#include "node/watch.h"
#include "roles.h"
#include "store/db.h"

typedef struct jlis {
    rk_node *node;
    jlis_store *store;
    const rk_peer_node *core;
    rk_watch *line_down;   /* one outage incident per window while the primary line fails */
    /* persons' cards (DESIGN §2.5): the card CA and the CRL J-LIS publishes,
     * read again when its file changes */
    pthread_mutex_t cards_lock;
    X509 *card_ca;         /* NULL: no card service ([jlis] card_ca and card_crl unset) */
    X509_CRL *crl;
    char *crl_pem;
    long crl_number;
    char crl_stamp[64];
} jlis;

static json_t *notice_for_core(const char *agency, const char *acquisition_no, const jlis_resident *r, int check)
{
    json_t *prev = json_array();
    for (int i = 0; i < r->n_previous; i++)
        json_array_append_new(prev, json_string(r->previous[i]));
    return json_pack("{s:s,s:s,s:s,s:o,s:i}", "agency", agency, "acquisition_no", acquisition_no,
                     "resident_code", r->resident_code, "previous_resident_codes", prev, "check_code", check);
}

/* One line failed and the backup answered: one outage incident per window
 * (on the loop, whose incident writes the committer makes). */
static void note_line(jlis *j, int backup)
{
    if (backup && rk_watch_hit(j->line_down, "primary", rk_now_ms()))
        rk_node_raise(j->node, "outage", "the core's primary line failed; J-LIS relays on the backup line");
}

/* ---------- one acquisition ---------- */

/* POST /v1/code-requests as a flow (node/flow.h): the resident looked up on
 * the pool, the notice relayed to the core by the loop (primary line, then
 * backup, 第7-1(7)), the line logged by the store's committer, then 202. */
typedef struct code_request {
    rk_flow flow;               /* first: the flow's state */
    jlis *j;
    const char *agency, *acquisition_no, *my_number; /* borrowed from the request */
    rk_basic_info given;        /* borrowed from the request */
    int64_t received_ms;
    rk_rc found;
    jlis_resident r;            /* resident codes and items: wiped */
    unsigned mismatched;        /* RK_BASIC_* bits */
    int check;
    const char *nos[1];
    jlis_lookup lookup;
    jlis_relay_log log;
} code_request;

static void code_request_cleanup(rk_flow *f)
{
    code_request *x = (code_request *)f;
    rk_wipe(&x->r, sizeof x->r);
}

static void request_logged(void *arg, rk_rc rc)
{
    code_request *x = arg;
    if (rc != RK_OK)
        rk_warn("the lookup of acquisition %s for %s could not be logged: %s", x->acquisition_no, x->agency,
                rk_strerror(rc));
    rk_flow_finish(&x->flow);
}

/* Logs the request's lookup — and its relay on line, when relayed — in one
 * commit, then answers what resp holds. */
static void log_and_finish(code_request *x, const char *line)
{
    x->nos[0] = x->acquisition_no;
    x->log = (jlis_relay_log){.agency = x->agency, .line = line ? line : "", .acquisition_nos = x->nos,
                              .n = line ? 1 : 0, .lookups = &x->lookup, .n_lookups = 1,
                              .at_ms = (long long)x->received_ms};
    if (jlis_store_log_relays_later(x->j->store, rk_pending_base(x->flow.p), &x->log, request_logged, x) != RK_OK)
        request_logged(x, RK_ERR_STORE);
}

static void code_relayed(rk_flow *f, rk_rc rc, rk_http_result *res)
{
    code_request *x = (code_request *)f;
    long status = rc == RK_OK ? res->status : 0;
    int backup = res->backup_line;
    rk_http_result_clear(res);
    note_line(x->j, backup);
    if (rc == RK_OK && status == 202) {
        rk_info("relayed acquisition for %s on the %s line", x->agency, backup ? "backup" : "primary");
        rk_reply_json(f->resp, 202, json_pack("{s:s}", "status", "forwarded"));
        log_and_finish(x, backup ? "backup" : "primary");
        return;
    }
    if (rc == RK_OK && status == 409) {
        rk_reply_error(f->resp, 409, "conflict", "this acquisition number was used with another person");
    } else if (rc == RK_OK && status < 500) {
        rk_warn("core refused an acquisition for %s: HTTP %ld", x->agency, status);
        rk_reply_error(f->resp, 502, "core_refused", "the core refused the request (HTTP %ld)", status);
    } else {
        rk_warn("core unreachable on both lines: %s", rk_strerror(rc));
        rk_reply_error(f->resp, 503, "core_unavailable", "the core could not be reached on either line; retry");
    }
    log_and_finish(x, NULL);
}

/* On a worker: the resident, the comparison, the check code. */
static void find_resident(rk_flow *f)
{
    code_request *x = (code_request *)f;
    x->found = jlis_store_find(x->j->store, x->my_number, &x->r);
    x->check = rk_mynumber_check_code(x->my_number);
    if (x->found == RK_OK) {
        rk_basic_info registry = jlis_resident_items(&x->r);
        x->mismatched = rk_basic_compare(&registry, &x->given);
    }
}

static void resident_found(rk_flow *f)
{
    code_request *x = (code_request *)f;
    if (x->found != RK_OK && x->found != RK_ERR_NOT_FOUND) {
        rk_flow_fail(f, 500, "store_error", "the resident registry could not be read");
        return;
    }
    x->lookup = (jlis_lookup){.acquisition_no = x->acquisition_no, .purpose = "link",
                              .outcome = x->found == RK_ERR_NOT_FOUND ? "unknown_person"
                                         : x->mismatched              ? "mismatch"
                                                                      : "match",
                              .mismatched = x->mismatched};
    if (x->found == RK_ERR_NOT_FOUND) {
        rk_reply_error(f->resp, 404, "unknown_person", "no resident has this My Number");
        log_and_finish(x, NULL);
        return;
    }
    if (x->mismatched) { /* the link is refused before the core hears of it */
        rk_reply_error(f->resp, 409, "basic_info_mismatch",
                       "the basic items (name, birth date, sex, address) do not match the resident registry");
        log_and_finish(x, NULL);
        return;
    }
    json_t *msg = notice_for_core(x->agency, x->acquisition_no, &x->r, x->check);
    char *body = json_dumps(msg, JSON_COMPACT); /* the flow's: wiped once sent */
    json_decref(msg);
    rk_flow_call(f, x->j->node, x->j->core, "/v1/codes", body, code_relayed);
}

int jlis_read_code_request(const rk_request *req, rk_response *resp, const char **acquisition_no,
                           const char **my_number, rk_basic_info *items)
{
    *acquisition_no = rk_req_string(req, resp, "acquisition_no", RK_ACQUISITION_NO_MAX);
    *my_number = *acquisition_no ? rk_req_string(req, resp, "my_number", RK_MY_NUMBER_FIELD_MAX) : NULL;
    if (!*my_number)
        return -1;
    if (!rk_acquisition_no_valid(*acquisition_no)) {
        rk_reply_error(resp, 400, "invalid_field", "field \"acquisition_no\" must be 16 to 64 lowercase hex digits");
        return -1;
    }
    if (rk_mynumber_validate(*my_number) != RK_OK) {
        rk_reply_error(resp, 400, "invalid_my_number", "not a valid My Number (12 digits with a correct check digit)");
        return -1;
    }
    const char *bad = rk_basic_read_json(req->json, items);
    if (bad) {
        rk_reply_error(resp, 400, bad, "%s", rk_basic_error_message(bad));
        return -1;
    }
    return 0;
}

/* An entry {number_field, "my_number", items}: NULL or its error code. */
static const char *read_entry(json_t *e, const char *number_field, const char **number, const char **my_number,
                              rk_basic_info *items)
{
    *my_number = json_string_value(json_object_get(e, "my_number"));
    *number = json_string_value(json_object_get(e, number_field));
    memset(items, 0, sizeof *items);
    if (!*number || !rk_acquisition_no_valid(*number))
        return "invalid_field";
    if (!*my_number || rk_mynumber_validate(*my_number) != RK_OK)
        return "invalid_my_number";
    return rk_basic_read_json(e, items);
}

const char *jlis_read_batch_entry(json_t *e, const char **acquisition_no, const char **my_number,
                                  rk_basic_info *items)
{
    return read_entry(e, "acquisition_no", acquisition_no, my_number, items);
}

const char *jlis_read_check_entry(json_t *e, const char **check_no, const char **my_number, rk_basic_info *items)
{
    return read_entry(e, "check_no", check_no, my_number, items);
}

/* The message of an entry's error code. */
static const char *entry_message(const char *code)
{
    if (strcmp(code, "invalid_field") == 0)
        return "bad acquisition_no or check_no (16 to 64 lowercase hex digits)";
    if (strcmp(code, "invalid_my_number") == 0)
        return "not a valid My Number";
    if (strcmp(code, "unknown_person") == 0)
        return "no resident has this My Number";
    if (strcmp(code, "basic_info_mismatch") == 0)
        return "the basic items do not match the resident registry";
    if (strcmp(code, "store_error") == 0)
        return "the registry could not be read";
    return rk_basic_error_message(code);
}

static json_t *entry_error(const char *code)
{
    return json_pack("{s:s,s:s}", "code", code, "message", entry_message(code));
}

/* POST /v1/code-requests {"acquisition_no","my_number", the four items}
 * from an agency node, on the event thread (a `start` route). */
static void start_code_request(void *app, rk_pending *p, const rk_request *req, rk_response *resp)
{
    code_request *x = rk_flow_new(p, resp, sizeof *x, code_request_cleanup);
    if (!x)
        return;
    x->j = app;
    x->agency = req->peer->agency;
    x->received_ms = req->received_ms;
    if (jlis_read_code_request(req, resp, &x->acquisition_no, &x->my_number, &x->given) != 0) {
        rk_flow_finish(&x->flow);
        return;
    }
    rk_flow_pool(&x->flow, find_resident, resident_found);
}

/* ---------- bulk relay ---------- */

typedef struct relay_item {
    const char *acquisition_no;
    json_t *error;       /* set when refused here or by the core */
} relay_item;

/* Validates, looks up and compares each request; the matching ones go into
 * `codes`, each lookup into lookups (*n_lookups of them). On a worker. */
static void prepare_batch(jlis *j, const char *agency, json_t *list, relay_item *items, json_t *codes,
                          jlis_lookup *lookups, size_t *n_lookups)
{
    jlis_resident *r = malloc(sizeof *r);
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *e = json_array_get(list, i);
        relay_item *it = &items[i];
        const char *number = NULL;
        rk_basic_info given;
        const char *bad = jlis_read_batch_entry(e, &it->acquisition_no, &number, &given);
        rk_rc rc = bad ? RK_ERR_INVALID : !r ? RK_ERR_NOMEM : jlis_store_find(j->store, number, r);
        if (bad || (rc != RK_OK && rc != RK_ERR_NOT_FOUND)) {
            it->error = entry_error(bad ? bad : "store_error");
            continue;
        }
        jlis_lookup *l = &lookups[(*n_lookups)++];
        *l = (jlis_lookup){.acquisition_no = it->acquisition_no, .purpose = "link", .outcome = "unknown_person"};
        if (rc == RK_ERR_NOT_FOUND) {
            it->error = entry_error("unknown_person");
            continue;
        }
        rk_basic_info registry = jlis_resident_items(r);
        if ((l->mismatched = rk_basic_compare(&registry, &given)) != 0) {
            l->outcome = "mismatch";
            it->error = entry_error("basic_info_mismatch");
            continue;
        }
        l->outcome = "match";
        json_array_append_new(codes, notice_for_core(agency, it->acquisition_no, r, rk_mynumber_check_code(number)));
    }
    if (r) {
        rk_wipe(r, sizeof *r);
        free(r);
    }
}

/* POST /v1/code-requests/batch as a flow: the residents looked up and the
 * notices made on the pool, one call to the core for the batch (primary
 * line, else backup), the relays logged in one commit, then the results. */
typedef struct code_batch {
    rk_flow flow;               /* first: the flow's state */
    jlis *j;
    const char *agency;         /* borrowed from the request, as list is */
    int64_t received_ms;
    json_t *list;
    size_t n;
    relay_item *items;
    jlis_lookup *lookups;       /* of the registry, logged with the relays */
    size_t n_lookups;
    const char **relayed;       /* acquisition numbers the core took */
    json_t *codes;              /* the notices for the core */
    char *body;                 /* the call's body, until it is the flow's */
    json_t *results;
    jlis_relay_log log;
} code_batch;

static void code_batch_cleanup(rk_flow *f)
{
    code_batch *x = (code_batch *)f;
    for (size_t i = 0; x->items && i < x->n; i++)
        json_decref(x->items[i].error);
    if (x->body) {
        rk_wipe(x->body, strlen(x->body));
        free(x->body);
    }
    json_decref(x->codes);
    json_decref(x->results);
    free(x->relayed);
    free(x->lookups);
    free(x->items);
}

static void batch_reply(code_batch *x)
{
    rk_reply_json(x->flow.resp, 200, json_pack("{s:O}", "results", x->results));
    rk_flow_finish(&x->flow);
}

static void batch_logged(void *arg, rk_rc rc)
{
    code_batch *x = arg;
    if (rc != RK_OK)
        rk_warn("%zu lookups for %s could not be logged: %s", x->n_lookups, x->agency, rk_strerror(rc));
    batch_reply(x);
}

/* One result per request, in order: refused here, refused by the core, or
 * forwarded; the forwarded ones logged with the line that took them. */
static void batch_merge(code_batch *x, json_t *core_results, int backup)
{
    size_t k = 0, n_relayed = 0;
    for (size_t i = 0; i < x->n; i++) {
        relay_item *it = &x->items[i];
        json_t *one = it->error ? NULL : json_array_get(core_results, k++);
        if (!it->error && !one)
            it->error = json_pack("{s:s,s:s}", "code", "core_unavailable", "message", "the core did not take it; retry");
        else if (!it->error && json_object_get(one, "error"))
            it->error = json_incref(json_object_get(one, "error"));
        if (it->error) {
            json_array_append_new(x->results, json_pack("{s:s?,s:o}", "acquisition_no", it->acquisition_no, "error",
                                                        it->error));
            it->error = NULL; /* the results' */
        } else {
            x->relayed[n_relayed++] = it->acquisition_no;
            json_array_append_new(x->results, json_pack("{s:s,s:s}", "acquisition_no", it->acquisition_no, "status",
                                                        "forwarded"));
        }
    }
    json_decref(core_results);
    if (n_relayed || x->n_lookups) {
        x->log = (jlis_relay_log){.agency = x->agency, .line = backup ? "backup" : "primary",
                                  .acquisition_nos = x->relayed, .n = n_relayed, .lookups = x->lookups,
                                  .n_lookups = x->n_lookups, .at_ms = (long long)x->received_ms};
        if (jlis_store_log_relays_later(x->j->store, rk_pending_base(x->flow.p), &x->log, batch_logged, x) == RK_OK)
            return;
    }
    batch_reply(x);
}

/* The core's results in order, or none when it did not take the batch. */
static void batch_relayed(rk_flow *f, rk_rc rc, rk_http_result *res)
{
    code_batch *x = (code_batch *)f;
    json_t *answer = rc == RK_OK && res->status == 200 && res->body ? json_loads(res->body, 0, NULL) : NULL;
    json_t *results = json_incref(json_object_get(answer, "results"));
    json_decref(answer);
    int backup = res->backup_line;
    rk_http_result_clear(res);
    note_line(x->j, backup);
    batch_merge(x, results, backup);
}

/* On a worker: the checks, the residents, the call's body. */
static void batch_prepare(rk_flow *f)
{
    code_batch *x = (code_batch *)f;
    prepare_batch(x->j, x->agency, x->list, x->items, x->codes, x->lookups, &x->n_lookups);
    if (!json_array_size(x->codes))
        return;
    json_t *msg = json_pack("{s:O}", "codes", x->codes);
    x->body = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
}

static void batch_prepared(rk_flow *f)
{
    code_batch *x = (code_batch *)f;
    if (!json_array_size(x->codes)) {
        batch_merge(x, NULL, 0);
        return;
    }
    char *body = x->body; /* the flow's from here; NULL (no memory): as a core that did not take it */
    x->body = NULL;
    rk_flow_call(f, x->j->node, x->j->core, "/v1/codes/batch", body, batch_relayed);
}

/* POST /v1/code-requests/batch {"requests":[{"acquisition_no","my_number", the four items},…]}:
 * as /v1/code-requests for up to RK_BATCH_MAX acquisitions, relayed to the
 * core in one call. Answers 200 with one result per request, in order. On
 * the event thread (a `start` route). */
static void start_code_requests_batch(void *app, rk_pending *p, const rk_request *req, rk_response *resp)
{
    code_batch *x = rk_flow_new(p, resp, sizeof *x, code_batch_cleanup);
    if (!x)
        return;
    x->j = app;
    x->agency = req->peer->agency;
    x->received_ms = req->received_ms;
    if (!(x->list = rk_req_batch(req, resp, "requests"))) {
        rk_flow_finish(&x->flow);
        return;
    }
    x->n = json_array_size(x->list);
    x->items = calloc(x->n, sizeof *x->items);
    x->relayed = calloc(x->n, sizeof *x->relayed);
    x->lookups = calloc(x->n, sizeof *x->lookups);
    x->codes = json_array();
    x->results = json_array();
    if (!x->items || !x->relayed || !x->lookups || !x->codes || !x->results) {
        rk_flow_fail(&x->flow, 500, "internal", "out of memory");
        return;
    }
    rk_flow_pool(&x->flow, batch_prepare, batch_prepared);
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

/* POST /v1/basic-info-checks {"checks":[{"check_no","my_number", the four
 * items},…]} (1..RK_BATCH_MAX): an agency's recheck of persons it linked
 * earlier. Each is compared as a code request is, nothing is relayed; the
 * lookups are logged before the answer (no answer when they cannot be):
 * 200 {"results":[{"check_no","status":"match"|"mismatch"} or
 * {"check_no","error"}]}, in order. On a worker (store only). */
static void handle_checks(void *app, const rk_request *req, rk_response *resp)
{
    jlis *j = app;
    json_t *list = rk_req_batch(req, resp, "checks");
    if (!list)
        return;
    size_t n = json_array_size(list), n_lookups = 0;
    jlis_lookup *lookups = calloc(n, sizeof *lookups);
    jlis_resident *r = malloc(sizeof *r);
    json_t *results = json_array();
    if (!lookups || !r || !results) {
        rk_reply_error(resp, 500, "internal", "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        const char *check_no = NULL, *number = NULL;
        rk_basic_info given;
        const char *bad = jlis_read_check_entry(json_array_get(list, i), &check_no, &number, &given);
        rk_rc rc = bad ? RK_ERR_INVALID : jlis_store_find(j->store, number, r);
        if (!bad && (rc == RK_OK || rc == RK_ERR_NOT_FOUND)) {
            rk_basic_info registry = jlis_resident_items(r);
            unsigned bits = rc == RK_OK ? rk_basic_compare(&registry, &given) : 0;
            lookups[n_lookups++] = (jlis_lookup){.acquisition_no = check_no, .purpose = "recheck", .mismatched = bits,
                                                 .outcome = rc != RK_OK ? "unknown_person" : bits ? "mismatch" : "match"};
            if (rc == RK_OK) {
                json_array_append_new(results, json_pack("{s:s,s:s}", "check_no", check_no, "status",
                                                         bits ? "mismatch" : "match"));
                continue;
            }
            bad = "unknown_person";
        }
        json_array_append_new(results, json_pack("{s:s?,s:o}", "check_no", check_no, "error",
                                                 entry_error(bad ? bad : "store_error")));
    }
    if (n_lookups && jlis_store_log_lookups(j->store, req->peer->agency, lookups, n_lookups, req->received_ms) != RK_OK)
        rk_reply_error(resp, 500, "store_error", "the lookups could not be logged; nothing is answered");
    else
        rk_reply_json(resp, 200, json_pack("{s:O}", "results", results));
done:
    if (r) {
        rk_wipe(r, sizeof *r);
        free(r);
    }
    json_decref(results);
    free(lookups);
}

/* GET /v1/lookups?before=&limit= for the network operator: every lookup of
 * the registry an agency caused, newest first (J-LIS's provision log). */
static void handle_lookups(void *app, const rk_request *req, rk_response *resp)
{
    jlis *j = app;
    int64_t before = 0;
    int limit = 0;
    json_t *arr = NULL;
    if (req->peer->agency[0]) {
        rk_reply_error(resp, 403, "role_not_allowed", "only the network operator reads J-LIS's lookup log");
    } else if (rk_page_params(req, resp, &before, &limit) != 0) {
        return;
    } else if (jlis_store_lookups(j->store, before, limit, &arr) != RK_OK) {
        rk_reply_error(resp, 500, "store_error", "the lookup log could not be read");
    } else {
        rk_reply_json(resp, 200, json_pack("{s:o}", "lookups", arr));
    }
}

/* ---------- persons' cards (DESIGN §2.5) ---------- */

/* Lock held: the CRL file read again when it changed (size, time). A CRL
 * the card CA did not sign, or older than the one in force, is refused and
 * the one in force stays. */
static void refresh_crl(jlis *j)
{
    struct stat st;
    char stamp[64];
    if (stat(j->node->cfg.card_crl, &st) != 0) {
        rk_warn("%s: cannot read the card CRL; the one in force stays", j->node->cfg.card_crl);
        return;
    }
    snprintf(stamp, sizeof stamp, "%lld:%lld.%09ld", (long long)st.st_size, (long long)st.st_mtim.tv_sec,
             (long)st.st_mtim.tv_nsec);
    if (strcmp(stamp, j->crl_stamp) == 0)
        return;
    char *pem = NULL;
    size_t len = 0;
    X509_CRL *crl = NULL;
    long number = 0;
    rk_rc rc = rk_read_file(j->node->cfg.card_crl, RK_CARD_CRL_MAX, &pem, &len);
    if (rc == RK_OK)
        rc = rk_card_crl_read(pem, len, j->card_ca, &crl, &number);
    if (rc == RK_OK && number < j->crl_number)
        rc = RK_ERR_CONFLICT;
    if (rc != RK_OK) {
        rk_error("%s: card CRL refused (%s); the one in force stays", j->node->cfg.card_crl,
                 rc == RK_ERR_CONFLICT ? "older than the one in force" : rk_strerror(rc));
        X509_CRL_free(crl);
        free(pem);
        return;
    }
    X509_CRL_free(j->crl);
    free(j->crl_pem);
    j->crl = crl;
    j->crl_pem = pem;
    j->crl_number = number;
    snprintf(j->crl_stamp, sizeof j->crl_stamp, "%s", stamp);
    rk_info("card CRL number %ld in force", number);
}

/* The cards issued since the last look, taken in (the card file). */
static void refresh_cards(jlis *j)
{
    char err[512];
    size_t n = 0;
    if (jlis_store_import_cards(j->store, j->node->cfg.cards, &n, err, sizeof err) != RK_OK)
        rk_error("%s; the cards known stay", err);
    else if (n)
        rk_info("%zu cards known", n);
}

/* POST /v1/card-lookups {"card_serial"} from the portal: the resident code
 * of a person's card, for that one request (DESIGN §2.5). A revoked card is
 * 403 card_revoked, an unknown one 404 unknown_card; every lookup enters the
 * lookup log (the portal, the card serial, the outcome) before the answer.
 * On a worker (store only). */
static void handle_card_lookup(void *app, const rk_request *req, rk_response *resp)
{
    jlis *j = app;
    const char *serial = rk_req_string(req, resp, "card_serial", RK_CARD_SERIAL_LEN);
    if (!serial)
        return;
    if (!rk_card_serial_valid(serial)) {
        rk_reply_error(resp, 400, "invalid_field", "field \"card_serial\" must be 32 lowercase hex digits");
        return;
    }
    if (!j->card_ca) {
        rk_reply_error(resp, 503, "no_card_service", "this J-LIS has no card CA ([jlis] card_ca, card_crl)");
        return;
    }
    char code[12] = "";
    pthread_mutex_lock(&j->cards_lock);
    refresh_crl(j);
    refresh_cards(j);
    int revoked = rk_card_crl_lists(j->crl, serial);
    pthread_mutex_unlock(&j->cards_lock);
    rk_rc rc = revoked ? RK_OK : jlis_store_card(j->store, serial, code);
    if (rc != RK_OK && rc != RK_ERR_NOT_FOUND) {
        rk_reply_error(resp, 500, "store_error", "the cards could not be read");
        return;
    }
    jlis_lookup l = {.acquisition_no = serial, .purpose = "card",
                     .outcome = revoked ? "card_revoked" : rc == RK_ERR_NOT_FOUND ? "unknown_card" : "match"};
    if (jlis_store_log_lookups(j->store, req->peer->id, &l, 1, req->received_ms) != RK_OK)
        rk_reply_error(resp, 500, "store_error", "the lookup could not be logged; nothing is answered");
    else if (revoked)
        rk_reply_error(resp, 403, "card_revoked", "this card is revoked");
    else if (rc == RK_ERR_NOT_FOUND)
        rk_reply_error(resp, 404, "unknown_card", "no resident has this card");
    else
        rk_reply_json(resp, 200, json_pack("{s:s}", "resident_code", code));
    rk_wipe(code, sizeof code);
}

/* GET /v1/card-crl for the portal: the card CRL in force, as J-LIS
 * publishes it ({"crl": PEM, "number"}). On a worker. */
static void handle_card_crl(void *app, const rk_request *req, rk_response *resp)
{
    jlis *j = app;
    if (!j->card_ca) {
        rk_reply_error(resp, 503, "no_card_service", "this J-LIS has no card CA ([jlis] card_ca, card_crl)");
        return;
    }
    pthread_mutex_lock(&j->cards_lock);
    refresh_crl(j);
    json_t *body = j->crl_pem ? json_pack("{s:s,s:I}", "crl", j->crl_pem, "number", (json_int_t)j->crl_number) : NULL;
    pthread_mutex_unlock(&j->cards_lock);
    if (body)
        rk_reply_json(resp, 200, body);
    else
        rk_reply_error(resp, 503, "no_card_crl", "no valid card CRL is in force");
}

static const rk_route routes[] = {
    {"POST", "/v1/card-lookups", RK_ROLE_PORTAL, 0, handle_card_lookup},
    {"GET", "/v1/card-crl", RK_ROLE_PORTAL, 0, handle_card_crl},
    {"POST", "/v1/code-requests", RK_ROLE_AGENCY, 0, NULL, 0, start_code_request},
    {"POST", "/v1/code-requests/batch", RK_ROLE_AGENCY, 0, NULL, 0, start_code_requests_batch},
    {"POST", "/v1/basic-info-checks", RK_ROLE_AGENCY, 0, handle_checks},
    {"GET", "/v1/records", RK_ROLE_OPERATOR, 0, handle_records},
    {"GET", "/v1/lookups", RK_ROLE_OPERATOR, 0, handle_lookups},
};

static int health(void *app, json_t *checks)
{
    jlis *j = app;
    json_object_set_new(checks, "residents", json_integer((json_int_t)jlis_store_count(j->store)));
    if (!j->card_ca)
        return 0;
    pthread_mutex_lock(&j->cards_lock);
    long number = j->crl_number;
    pthread_mutex_unlock(&j->cards_lock);
    json_object_set_new(checks, "card_crl_number", json_integer(number));
    return number == 0; /* a card service without a valid CRL */
}

/* On the event thread, after the last started request finished. */

static rk_rc open_jlis(rk_node *node, void *app)
{
    jlis *j = app;
    char err[512] = "";
    size_t imported = 0;
    rk_rc rc;
    if (!(j->core = rk_registry_find(node->registry, RK_ROLE_CORE, NULL))) {
        rk_error("no core in the registry");
        return RK_ERR_CONFIG;
    }
    if (rk_basic_init() != RK_OK) { /* no comparison without the JIS sets */
        rk_error("the C library has no EUC-JISX0213 converter (gconv): the basic items cannot be compared");
        return RK_ERR_CONFIG;
    }
    if ((rc = jlis_store_open(node->cfg.db, 0, &j->store)) != RK_OK)
        return rc;
    if (node->cfg.residents[0] &&
        (rc = jlis_store_import(j->store, node->cfg.residents, &imported, err, sizeof err)) != RK_OK) {
        rk_error("%s", err);
        return rc;
    }
    if (imported)
        rk_info("imported %zu residents", imported);
    pthread_mutex_init(&j->cards_lock, NULL);
    if (!node->cfg.card_ca[0] != !node->cfg.card_crl[0]) {
        rk_error("[jlis] card_ca and card_crl go together");
        return RK_ERR_CONFIG;
    }
    if (node->cfg.card_ca[0]) { /* persons' cards: the CA, the CRL in force, the cards issued */
        if (rk_pki_load_cert(node->cfg.card_ca, &j->card_ca) != RK_OK) {
            rk_error("%s: cannot load the card CA", node->cfg.card_ca);
            return RK_ERR_CONFIG;
        }
        refresh_crl(j);
        refresh_cards(j);
    }
    j->line_down = rk_watch_new(node->cfg.unreachable_ms, 1, 0);
    if ((rc = rk_node_incidents_start(node, jlis_store_db(j->store))) != RK_OK)
        return rc;
    return rk_node_clock_start(node);
}

static void close_jlis(void *app)
{
    jlis *j = app;
    rk_watch_free(j->line_down);
    jlis_store_close(j->store);
    X509_free(j->card_ca);
    X509_CRL_free(j->crl);
    free(j->crl_pem);
    pthread_mutex_destroy(&j->cards_lock);
}

static rk_db *jlis_db(void *app)
{
    return jlis_store_db(((jlis *)app)->store);
}

const rk_role_desc rk_jlis_role = {
    .role = RK_ROLE_JLIS,
    .help = "run the J-LIS code relay node (--config FILE)",
    .app_size = sizeof(jlis),
    .open = open_jlis,
    .close = close_jlis,
    .store = jlis_db,
    .routes = routes,
    .n_routes = sizeof routes / sizeof routes[0],
    .health = health,
};
