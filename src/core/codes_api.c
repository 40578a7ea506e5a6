/* codes_api.c — POST /v1/codes (and /v1/codes/batch): J-LIS hands the core
 * acquisitions (standard 第7-2, 第8-2; 法21条の2). The core finds or creates
 * each person, records the acquisition, and queues the code notice for the
 * agency — all committed before it answers, so an acknowledged acquisition
 * is never lost. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "lib/ids.h"
#include "lib/log.h"
#include "lib/mynumber.h"
#include "lib/util.h"

typedef struct acquisition_in {
    core_acquisition_item item;
    const char *previous[CORE_MAX_PREVIOUS];
} acquisition_in;

const char *core_read_acquisition(json_t *obj, core_acquisition *a, const char *previous[CORE_MAX_PREVIOUS])
{
    json_t *check = json_object_get(obj, "check_code"), *prev = json_object_get(obj, "previous_resident_codes");
    a->agency = json_string_value(json_object_get(obj, "agency"));
    a->acquisition_no = json_string_value(json_object_get(obj, "acquisition_no"));
    a->resident_code = json_string_value(json_object_get(obj, "resident_code"));
    if (!a->agency || strlen(a->agency) > RK_AGENCY_FIELD_MAX)
        return "agency";
    if (!a->acquisition_no || !rk_acquisition_no_valid(a->acquisition_no))
        return "acquisition_no";
    if (!a->resident_code || rk_resident_code_validate(a->resident_code) != RK_OK)
        return "resident_code";
    if (!json_is_integer(check) || json_integer_value(check) < 0 || json_integer_value(check) > 9)
        return "check_code";
    a->check_code = (int)json_integer_value(check);
    if (prev && (!json_is_array(prev) || json_array_size(prev) > CORE_MAX_PREVIOUS))
        return "previous_resident_codes";
    a->n_previous = 0;
    for (size_t i = 0; i < json_array_size(prev); i++) {
        const char *code = json_string_value(json_array_get(prev, i));
        if (!code || rk_resident_code_validate(code) != RK_OK)
            return "previous_resident_codes";
        previous[a->n_previous++] = code;
    }
    a->previous = previous;
    return NULL;
}

/* Reads one acquisition; on bad input returns the field at fault. The
 * strings stay owned by `obj`. */
static const char *read_acquisition(const core *c, json_t *obj, acquisition_in *in)
{
    (void)c;
    return core_read_acquisition(obj, &in->item.a, in->previous);
}

static int agency_known(const core *c, const char *agency)
{
    return rk_registry_find(c->node->registry, RK_ROLE_AGENCY, agency) != NULL;
}

void core_handle_codes(void *app, const rk_request *req, rk_response *resp)
{
    core *c = app;
    acquisition_in in = {0};
    const char *bad = read_acquisition(c, req->json, &in);
    if (bad) {
        rk_reply_error(resp, 400, "invalid_field", "field \"%s\" is missing or malformed", bad);
        return;
    }
    if (!agency_known(c, in.item.a.agency)) {
        rk_reply_error(resp, 404, "unknown_agency", "no agency \"%s\" in this network", in.item.a.agency);
        return;
    }
    rk_rc rc = core_store_acquire_many(c->store, &in.item, 1, rk_now_ms());
    if (rc == RK_OK)
        rc = in.item.rc;
    if (rc == RK_ERR_CONFLICT) {
        rk_reply_error(resp, 409, "conflict", "this acquisition number was used for another person");
        return;
    }
    if (rc != RK_OK) {
        rk_reply_error(resp, 500, "store_error", "the acquisition could not be stored; retry");
        return;
    }
    if (!in.item.duplicate || in.item.rearmed)
        core_notices_wake(c, in.item.notice_id);
    rk_reply_json(resp, 202, json_pack("{s:s}", "status", in.item.duplicate ? "already_accepted" : "accepted"));
}

static json_t *item_result(const acquisition_in *in, const char *bad, int known)
{
    const core_acquisition_item *it = &in->item;
    const char *code = bad ? "invalid_field" : !known ? "unknown_agency" : it->rc == RK_ERR_CONFLICT ? "conflict"
                     : it->rc != RK_OK ? "store_error" : NULL;
    if (code)
        return json_pack("{s:s?,s:{s:s,s:s}}", "acquisition_no", it->a.acquisition_no, "error", "code", code,
                         "message", bad ? bad : code);
    return json_pack("{s:s,s:s}", "acquisition_no", it->a.acquisition_no, "status",
                     it->duplicate ? "already_accepted" : "accepted");
}

/* POST /v1/codes/batch {"codes":[…]}: up to RK_BATCH_MAX acquisitions in one
 * commit; 200 with one result per acquisition, in order. */
void core_handle_codes_batch(void *app, const rk_request *req, rk_response *resp)
{
    core *c = app;
    json_t *list = rk_req_batch(req, resp, "codes");
    if (!list)
        return;
    size_t n = json_array_size(list), ok = 0;
    acquisition_in *in = calloc(n, sizeof *in);
    core_acquisition_item *valid = calloc(n, sizeof *valid);
    const char **bad = calloc(n, sizeof *bad);
    if (!in || !valid || !bad) {
        rk_reply_error(resp, 500, "internal", "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        bad[i] = read_acquisition(c, json_array_get(list, i), &in[i]);
        if (!bad[i] && agency_known(c, in[i].item.a.agency))
            valid[ok++] = in[i].item;
    }
    if (ok && core_store_acquire_many(c->store, valid, ok, rk_now_ms()) != RK_OK) {
        rk_reply_error(resp, 500, "store_error", "the acquisitions could not be stored; retry");
        goto done;
    }
    json_t *results = json_array();
    for (size_t i = 0, k = 0; i < n; i++) {
        int known = !bad[i] && agency_known(c, in[i].item.a.agency);
        if (known)
            in[i].item = valid[k++];
        json_array_append_new(results, item_result(&in[i], bad[i], known));
    }
    unsigned woken = 0; /* one wake per lane, not per notice */
    for (size_t k = 0; k < ok; k++)
        if (valid[k].rc == RK_OK && (!valid[k].duplicate || valid[k].rearmed)) {
            int64_t id = valid[k].notice_id;
            unsigned bit = id < 0 ? ~0u : 1u << (id % CORE_NOTICE_LANES);
            if ((woken & bit) != bit)
                core_notices_wake(c, id);
            woken |= bit;
        }
    rk_reply_json(resp, 200, json_pack("{s:o}", "results", results));
done:
    free(in);
    free(valid);
    free(bad);
}
