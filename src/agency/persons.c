/* persons.c — code acquisition at the agency (DESIGN §2.1, standard 第8-2(1)).
 *
 * POST /v1/persons links an internal person to a My Number: the number is
 * validated, the check code computed, a random acquisition number stored
 * as pending, and (acquisition number, My Number) sent to J-LIS. The My
 * Number itself is never stored or logged here: once J-LIS has it, the
 * agency forgets it. The code arrives later as a notice through the
 * gateway, and is linked only when its check code matches (第8-2(1)イ). */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "agency/agency.h"
#include "lib/log.h"
#include "lib/mynumber.h"
#include "lib/util.h"

#define ACQUISITION_BYTES 16

int agency_person_id_valid(const char *person)
{
    size_t n = strlen(person);
    /* Never a My Number: person ids go into records, logs and incidents. */
    return n >= 1 && n <= 64 &&
           strspn(person, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n &&
           rk_mynumber_validate(person) != RK_OK;
}

static void reply_status(rk_response *resp, int http, const char *person, const char *status)
{
    rk_reply_json(resp, http, json_pack("{s:s,s:s}", "person", person, "status", status));
}

/* Sends (acquisition number, My Number) to J-LIS; maps its answer. Returns
 * 0 when J-LIS took it; otherwise resp holds the error for the caller. */
static int ask_jlis(agency *a, const char *acquisition_no, const char *my_number, rk_response *resp)
{
    json_t *msg = json_pack("{s:s,s:s}", "acquisition_no", acquisition_no, "my_number", my_number);
    char *body = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    rk_http_result res = {0};
    rk_rc rc = body ? rk_node_post(a->node, a->jlis, "/v1/code-requests", body, &res, NULL) : RK_ERR_NOMEM;
    if (body) {
        rk_wipe(body, strlen(body)); /* it held the My Number */
        free(body);
    }
    int took = rc == RK_OK && res.status == 202;
    if (!took && rc == RK_OK && (res.status == 400 || res.status == 404)) {
        json_t *err = res.body ? json_loads(res.body, 0, NULL) : NULL;
        const char *code = json_string_value(json_object_get(json_object_get(err, "error"), "code"));
        rk_reply_error(resp, (int)res.status, code ? code : "jlis_refused", "J-LIS refused the request: %s",
                       code ? code : "no reason given");
        json_decref(err);
    } else if (!took) {
        rk_warn("J-LIS did not take an acquisition: %s, HTTP %ld", rk_strerror(rc), res.status);
        rk_reply_error(resp, 503, "jlis_unavailable", "J-LIS or the core could not take the request now; retry");
    }
    rk_http_result_clear(&res);
    return took ? 0 : -1;
}

void agency_post_person(void *app, const rk_request *req, rk_response *resp)
{
    agency *a = app;
    const char *person = rk_req_string(req, resp, "person", 64);
    const char *my_number = person ? rk_req_string(req, resp, "my_number", 32) : NULL;
    if (!my_number)
        return;
    if (!agency_person_id_valid(person)) {
        rk_reply_error(resp, 400, "invalid_field",
                       "field \"person\" must be 1 to 64 characters of [A-Za-z0-9._-], and not a My Number");
        return;
    }
    int check = rk_mynumber_check_code(my_number); /* 第7-2(1) */
    if (check < 0) {
        rk_reply_error(resp, 400, "invalid_my_number", "not a valid My Number (12 digits with a correct check digit)");
        return;
    }
    uint8_t raw[ACQUISITION_BYTES];
    char acquisition_no[2 * ACQUISITION_BYTES + 1], status[AGENCY_STATUS_MAX];
    if (rk_random(raw, sizeof raw) != RK_OK) {
        rk_reply_error(resp, 500, "internal", "no randomness");
        return;
    }
    rk_hex(raw, sizeof raw, acquisition_no);
    rk_rc rc = agency_store_add_pending(a->store, person, acquisition_no, check, rk_now_ms(), status);
    if (rc == RK_ERR_EXISTS) {
        reply_status(resp, 202, person, status); /* the first answer again, no second effect */
        return;
    }
    if (rc != RK_OK) {
        rk_reply_error(resp, 500, "store_error", "the person could not be stored; retry");
        return;
    }
    if (ask_jlis(a, acquisition_no, my_number, resp) != 0) {
        agency_store_drop_pending(a->store, person, acquisition_no);
        return;
    }
    if (agency_store_person_status(a->store, person, status) != RK_OK)
        strcpy(status, "pending");
    reply_status(resp, 202, person, status);
}

void agency_get_person(void *app, const rk_request *req, rk_response *resp)
{
    agency *a = app;
    const char *person = req->path + strlen("/v1/persons/");
    char status[AGENCY_STATUS_MAX];
    if (!agency_person_id_valid(person)) {
        rk_reply_error(resp, 400, "invalid_field", "the person id must be 1 to 64 characters of [A-Za-z0-9._-]");
        return;
    }
    rk_rc rc = agency_store_person_status(a->store, person, status);
    if (rc == RK_ERR_NOT_FOUND)
        rk_reply_error(resp, 404, "unknown_person", "no person \"%s\" at this agency", person);
    else if (rc != RK_OK)
        rk_reply_error(resp, 500, "store_error", "the person could not be read");
    else
        reply_status(resp, 200, person, status);
}

/* The answer to one notice, the same in the single and the bulk form. */
static const char *notice_status(rk_rc rc, agency_notice_outcome outcome)
{
    if (rc == RK_ERR_INVALID)
        return "invalid_field";
    if (rc != RK_OK)
        return "store_error";
    switch (outcome) {
    case NOTICE_LINKED: return "linked";
    case NOTICE_MISMATCH: return "check_code_mismatch";
    case NOTICE_DUPLICATE: return "code_already_linked";
    default: return "unknown_acquisition";
    }
}

/* POST /v1/code-notices {"acquisition_no","code","check_code"} from the
 * agency's own gateway, on behalf of the core. */
void agency_post_code_notice(void *app, const rk_request *req, rk_response *resp)
{
    agency *a = app;
    long check = 0;
    const char *acquisition_no = rk_req_string(req, resp, "acquisition_no", 64);
    const char *code = acquisition_no ? rk_req_string(req, resp, "code", 47) : NULL;
    if (!code || rk_req_int(req, resp, "check_code", 0, 9, &check) != 0)
        return;
    agency_notice_outcome outcome;
    rk_rc rc = agency_store_apply_notice(a->store, acquisition_no, code, (int)check, rk_now_ms(), &outcome);
    const char *status = notice_status(rc, outcome);
    if (strcmp(status, "linked") == 0)
        rk_reply_json(resp, 200, json_pack("{s:s}", "status", "linked"));
    else if (strcmp(status, "store_error") == 0)
        rk_reply_error(resp, 500, status, "the notice could not be stored; retry");
    else if (strcmp(status, "unknown_acquisition") == 0)
        rk_reply_error(resp, 404, status, "no pending acquisition has this number");
    else /* check_code_mismatch (an incident is recorded), code_already_linked */
        rk_reply_error(resp, 409, status, "the code was not linked");
}

/* ---------- bulk enrolment ---------- */

/* POST /v1/persons/batch {"persons":[{"person","my_number"},…]} — the
 * same as POST /v1/persons for up to RK_BATCH_MAX persons, in one commit
 * here and one call to J-LIS. Each person gets its own answer, in order. */
typedef struct batch_item {
    const char *person, *my_number;
    char acquisition_no[2 * ACQUISITION_BYTES + 1];
    agency_pending *pending; /* its pending row, when the entry is valid */
    json_t *result;          /* the person's answer once known */
} batch_item;

static json_t *item_error(const char *person, const char *code, const char *message)
{
    return json_pack("{s:s?,s:{s:s,s:s}}", "person", person, "error", "code", code, "message", message);
}

/* Validates each entry; valid ones get an acquisition number. */
static size_t read_batch(json_t *list, batch_item *items, agency_pending *pending)
{
    size_t n = json_array_size(list), valid = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(list, i);
        batch_item *it = &items[i];
        it->person = json_string_value(json_object_get(e, "person"));
        it->my_number = json_string_value(json_object_get(e, "my_number"));
        int check = it->my_number ? rk_mynumber_check_code(it->my_number) : -1;
        uint8_t raw[ACQUISITION_BYTES];
        if (!it->person || !agency_person_id_valid(it->person))
            it->result = item_error(it->person, "invalid_field", "person must be 1 to 64 characters of [A-Za-z0-9._-]");
        else if (check < 0)
            it->result = item_error(it->person, "invalid_my_number", "not a valid My Number");
        else if (rk_random(raw, sizeof raw) != RK_OK)
            it->result = item_error(it->person, "internal", "no randomness");
        if (it->result)
            continue;
        rk_hex(raw, sizeof raw, it->acquisition_no);
        it->pending = &pending[valid++];
        *it->pending = (agency_pending){.person = it->person, .acquisition_no = it->acquisition_no,
                                        .check_code = check};
    }
    return valid;
}

/* The answer of an entry whose pending row was not newly stored. */
static json_t *settled_without_jlis(const batch_item *it)
{
    if (it->pending->rc == RK_ERR_EXISTS) /* the first answer again */
        return json_pack("{s:s,s:s}", "person", it->person, "status", it->pending->status);
    return item_error(it->person, "store_error", "the person could not be stored; retry");
}

/* One J-LIS call for the new acquisitions; J-LIS answers in order. */
static void ask_jlis_batch(agency *a, batch_item *items, size_t n)
{
    json_t *reqs = json_array();
    for (size_t i = 0; i < n; i++) {
        batch_item *it = &items[i];
        if (!it->result && it->pending->rc != RK_OK)
            it->result = settled_without_jlis(it);
        if (!it->result)
            json_array_append_new(reqs, json_pack("{s:s,s:s}", "acquisition_no", it->acquisition_no, "my_number",
                                                  it->my_number));
    }
    json_t *msg = json_pack("{s:o}", "requests", reqs);
    char *body = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    rk_http_result res = {0};
    rk_rc rc = body ? rk_node_post(a->node, a->jlis, "/v1/code-requests/batch", body, &res, NULL) : RK_ERR_NOMEM;
    if (body) {
        rk_wipe(body, strlen(body)); /* it held My Numbers */
        free(body);
    }
    json_t *answer = rc == RK_OK && res.status == 200 && res.body ? json_loads(res.body, 0, NULL) : NULL;
    json_t *results = json_object_get(answer, "results");
    size_t r = 0;
    for (size_t i = 0; i < n; i++) {
        batch_item *it = &items[i];
        if (it->result)
            continue;
        json_t *one = json_array_get(results, r++);
        json_t *err = json_object_get(one, "error");
        if (one && !err) {
            it->result = json_pack("{s:s,s:s}", "person", it->person, "status", "pending");
            continue;
        }
        const char *code = err ? json_string_value(json_object_get(err, "code")) : "jlis_unavailable";
        agency_store_drop_pending(a->store, it->person, it->acquisition_no);
        it->result = item_error(it->person, code ? code : "jlis_refused", "J-LIS did not take this request");
    }
    json_decref(answer);
    rk_http_result_clear(&res);
}

void agency_post_persons_batch(void *app, const rk_request *req, rk_response *resp)
{
    agency *a = app;
    json_t *list = rk_req_batch(req, resp, "persons");
    if (!list)
        return;
    size_t n = json_array_size(list);
    batch_item *items = calloc(n, sizeof *items);
    agency_pending *pending = calloc(n, sizeof *pending);
    json_t *results = json_array();
    if (!items || !pending || !results) {
        rk_reply_error(resp, 500, "internal", "out of memory");
        goto done;
    }
    size_t np = read_batch(list, items, pending);
    if (np && agency_store_add_pending_many(a->store, pending, np, rk_now_ms()) != RK_OK) {
        rk_reply_error(resp, 500, "store_error", "the persons could not be stored; retry");
        goto done;
    }
    if (np)
        ask_jlis_batch(a, items, n);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(results, items[i].result ? json_incref(items[i].result)
                                                       : item_error(items[i].person, "internal", "no answer"));
    rk_reply_json(resp, 202, json_pack("{s:O}", "results", results));
done:
    for (size_t i = 0; items && i < n; i++)
        json_decref(items[i].result); /* the ones appended hold their own reference */
    json_decref(results);
    free(items);
    free(pending);
}

/* POST /v1/code-notices/batch {"notices":[{"acquisition_no","code","check_code"},…]}
 * from this agency's gateway: each notice as POST /v1/code-notices, in one commit. */
void agency_post_code_notices_batch(void *app, const rk_request *req, rk_response *resp)
{
    agency *a = app;
    json_t *list = rk_req_batch(req, resp, "notices");
    if (!list)
        return;
    size_t n = json_array_size(list);
    agency_notice *items = calloc(n, sizeof *items);
    if (!items) {
        rk_reply_error(resp, 500, "internal", "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(list, i);
        json_t *check = json_object_get(e, "check_code");
        items[i].acquisition_no = json_string_value(json_object_get(e, "acquisition_no"));
        items[i].code = json_string_value(json_object_get(e, "code"));
        items[i].check_code = json_is_integer(check) ? (int)json_integer_value(check) : -1;
        if (!items[i].acquisition_no || !items[i].code || strlen(items[i].code) > 47)
            items[i].acquisition_no = NULL; /* answered invalid_field below */
    }
    rk_rc rc = agency_store_apply_notices(a->store, items, n, rk_now_ms());
    json_t *results = json_array();
    for (size_t i = 0; i < n && rc == RK_OK; i++) {
        const agency_notice *it = &items[i];
        const char *status = notice_status(it->rc, it->outcome);
        json_array_append_new(results, json_pack("{s:s?,s:s}", "acquisition_no", it->acquisition_no, "status", status));
    }
    if (rc != RK_OK)
        rk_reply_error(resp, 500, "store_error", "the notices could not be stored; retry");
    else
        rk_reply_json(resp, 200, json_pack("{s:O}", "results", results));
    json_decref(results);
    free(items);
}
