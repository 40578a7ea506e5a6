/* codes_api.c — POST /v1/codes: J-LIS hands the core an acquisition
 * (standard 第7-2, 第8-2; 法21条の2). The core finds or creates the person,
 * records it, and queues the code notice for the agency — all before it
 * answers 202, so an acknowledged acquisition is never lost. */
#include <jansson.h>
#include <string.h>

#include "core/core.h"
#include "lib/log.h"
#include "lib/mynumber.h"
#include "lib/util.h"

#define MAX_PREVIOUS 8

static int previous_codes(const rk_request *req, rk_response *resp, const char **out, int *n)
{
    json_t *arr = json_object_get(req->json, "previous_resident_codes");
    *n = 0;
    if (!arr)
        return 0;
    size_t i;
    json_t *v;
    if (!json_is_array(arr) || json_array_size(arr) > MAX_PREVIOUS)
        goto bad;
    json_array_foreach(arr, i, v) {
        if (!json_is_string(v) || rk_resident_code_validate(json_string_value(v)) != RK_OK)
            goto bad;
        out[(*n)++] = json_string_value(v);
    }
    return 0;
bad:
    rk_reply_error(resp, 400, "invalid_field",
                   "field \"previous_resident_codes\" must be an array of at most %d resident codes", MAX_PREVIOUS);
    return -1;
}

void core_handle_codes(void *app, const rk_request *req, rk_response *resp)
{
    core *c = app;
    const char *prev[MAX_PREVIOUS];
    core_acquisition a = {0};
    long check = 0;
    if (!(a.agency = rk_req_string(req, resp, "agency", 63)) ||
        !(a.acquisition_no = rk_req_string(req, resp, "acquisition_no", 64)) ||
        !(a.resident_code = rk_req_string(req, resp, "resident_code", 11)) ||
        rk_req_int(req, resp, "check_code", 0, 9, &check) != 0 || previous_codes(req, resp, prev, &a.n_previous) != 0)
        return;
    a.previous = prev;
    a.check_code = (int)check;
    if (rk_resident_code_validate(a.resident_code) != RK_OK) {
        rk_reply_error(resp, 400, "invalid_field", "field \"resident_code\" must be 11 digits");
        return;
    }
    if (!rk_registry_find(c->node->registry, RK_ROLE_AGENCY, a.agency)) {
        rk_reply_error(resp, 404, "unknown_agency", "no agency \"%s\" in this network", a.agency);
        return;
    }
    uint64_t serial = 0;
    int duplicate = 0;
    rk_rc rc = core_store_acquire(c->store, &a, rk_now_ms(), &serial, &duplicate);
    if (rc == RK_ERR_CONFLICT) {
        rk_reply_error(resp, 409, "conflict", "this acquisition number was used for another person");
        return;
    }
    if (rc != RK_OK) {
        rk_reply_error(resp, 500, "store_error", "the acquisition could not be stored; retry");
        return;
    }
    if (!duplicate)
        core_notices_wake(c);
    rk_reply_json(resp, 202, json_pack("{s:s}", "status", duplicate ? "already_accepted" : "accepted"));
}
