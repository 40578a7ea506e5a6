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
    return n >= 1 && n <= 64 &&
           strspn(person, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
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
        rk_reply_error(resp, 400, "invalid_field", "field \"person\" must be 1 to 64 characters of [A-Za-z0-9._-]");
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
    if (rc != RK_OK) {
        rk_reply_error(resp, 500, "store_error", "the notice could not be stored; retry");
    } else if (outcome == NOTICE_LINKED) {
        rk_reply_json(resp, 200, json_pack("{s:s}", "status", "linked"));
    } else if (outcome == NOTICE_MISMATCH) {
        rk_warn("incident: check code mismatch on a code notice; person not linked");
        rk_reply_error(resp, 409, "check_code_mismatch", "the check code does not match; the code was not linked");
    } else if (outcome == NOTICE_DUPLICATE) {
        rk_reply_error(resp, 409, "code_already_linked", "another person here holds this code; not linked");
    } else {
        rk_reply_error(resp, 404, "unknown_acquisition", "no pending acquisition has this number");
    }
}
