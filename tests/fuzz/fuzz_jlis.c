/* fuzz_jlis.c — J-LIS's request readers (src/jlis/jlis.c): a code request
 * is refused with a 400 or holds a valid acquisition number and a valid
 * My Number; so does each entry of the bulk form. The first byte picks the
 * route; the rest is the body. */
#include "fuzz_body.h"
#include "jlis/jlis.h"
#include "lib/ids.h"
#include "lib/mynumber.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rk_request req;
    if (size < 1 || fz_request(&req, "/v1/code-requests", data + 1, size - 1) != 0)
        return 0;
    rk_response resp = {0};
    const char *acq = NULL, *number = NULL;
    if (data[0] % 2 == 0) {
        if (jlis_read_code_request(&req, &resp, &acq, &number) != 0) {
            fz_refused(&resp);
        } else {
            fz_untouched(&resp);
            FZ_CHECK(rk_acquisition_no_valid(acq) && rk_mynumber_validate(number) == RK_OK);
        }
    } else {
        json_t *list = rk_req_batch(&req, &resp, "requests");
        if (!list)
            fz_refused(&resp);
        for (size_t i = 0; i < json_array_size(list) && i < 50; i++) {
            const char *bad = jlis_read_batch_entry(json_array_get(list, i), &acq, &number);
            if (!bad)
                FZ_CHECK(rk_acquisition_no_valid(acq) && rk_mynumber_validate(number) == RK_OK);
            else
                FZ_CHECK(strcmp(bad, "invalid_field") == 0 || strcmp(bad, "invalid_my_number") == 0);
        }
    }
    json_decref(req.json);
    return 0;
}
