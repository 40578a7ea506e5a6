/* fuzz_core.c — the core's request readers (src/core/codes_api.c,
 * exchanges.c; src/node/incidents.c for POST /v1/incidents): a body either
 * is refused with a 400 or gives fields within the grammar each promises.
 * The first byte picks the route; the rest is the body. */
#include "core/core.h"
#include "fuzz_body.h"
#include "lib/ids.h"
#include "lib/mynumber.h"
#include "node/incidents.h"

static void acquisition(json_t *obj)
{
    core_acquisition a;
    const char *previous[CORE_MAX_PREVIOUS];
    memset(&a, 0, sizeof a);
    const char *bad = core_read_acquisition(obj, &a, previous);
    if (bad)
        return;
    FZ_CHECK(a.agency && strlen(a.agency) <= RK_AGENCY_FIELD_MAX);
    FZ_CHECK(rk_acquisition_no_valid(a.acquisition_no) && rk_resident_code_validate(a.resident_code) == RK_OK);
    FZ_CHECK(a.check_code >= 0 && a.check_code <= 9 && a.check_code == json_integer_value(json_object_get(obj, "check_code")));
    FZ_CHECK(a.n_previous >= 0 && a.n_previous <= CORE_MAX_PREVIOUS);
    for (int i = 0; i < a.n_previous; i++)
        FZ_CHECK(rk_resident_code_validate(a.previous[i]) == RK_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rk_request req;
    if (size < 1 || fz_request(&req, "/v1/x", data + 1, size - 1) != 0)
        return 0;
    rk_response resp = {0};
    switch (data[0] % 4) {
    case 0: /* POST /v1/codes */
        acquisition(req.json);
        break;
    case 1: { /* POST /v1/codes/batch: each entry */
        json_t *list = rk_req_batch(&req, &resp, "codes");
        if (!list) {
            fz_refused(&resp);
            break;
        }
        for (size_t i = 0; i < json_array_size(list) && i < 50; i++)
            acquisition(json_array_get(list, i));
        break;
    }
    case 2: { /* POST /v1/exchanges */
        core_exchange_in in;
        if (core_read_exchange(&req, &resp, &in) != 0) {
            fz_refused(&resp);
            break;
        }
        fz_untouched(&resp);
        FZ_CHECK(rk_id_valid(in.exchange_id, RK_EXCHANGE_ID_MAX) && rk_id_valid(in.operator_id, RK_ID_FIELD_MAX));
        FZ_CHECK(rk_catalogue_id_valid(in.business) && rk_catalogue_id_valid(in.item));
        FZ_CHECK(*in.code && strlen(in.code) <= RK_CODE_FIELD_MAX && *in.provider &&
                 strlen(in.provider) <= RK_AGENCY_FIELD_MAX && strlen(in.requester_cert) <= RK_CERT_PEM_MAX);
        break;
    }
    default: { /* POST /v1/incidents */
        rk_incident in;
        if (rk_incident_read(&req, &resp, &in) != 0) {
            fz_refused(&resp);
            break;
        }
        fz_untouched(&resp);
        FZ_CHECK(rk_incident_kind_valid(in.kind) && *in.incident_id && strlen(in.incident_id) <= RK_INCIDENT_ID_MAX);
        FZ_CHECK(*in.summary && strlen(in.summary) <= RK_SUMMARY_MAX);
        FZ_CHECK(!in.node || strlen(in.node) <= 64);
        const char *texts[] = {in.details, in.actions, in.cause, in.prevention};
        for (int i = 0; i < 4; i++)
            FZ_CHECK(!texts[i] || strlen(texts[i]) <= RK_INCIDENT_TEXT_MAX);
        break;
    }
    }
    json_decref(req.json);
    return 0;
}
