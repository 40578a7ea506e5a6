/* fuzz_jlis.c — J-LIS's request readers (src/jlis/jlis.c): a code request
 * is refused with a 400 or holds a valid acquisition number, a valid My
 * Number and four basic items that pass their check; so does each entry of
 * the bulk form and of the rechecks. The first byte picks the route; the
 * rest is the body. */
#include "fuzz_body.h"
#include "jlis/jlis.h"
#include "lib/basic_info.h"
#include "lib/ids.h"
#include "lib/mynumber.h"

static const char *const entry_codes[] = {"invalid_field", "invalid_my_number", "invalid_name", "invalid_birth_date",
                                          "invalid_sex", "invalid_address"};

static void entry_checked(const char *bad, const char *number, const char *no, const rk_basic_info *items)
{
    if (!bad) {
        FZ_CHECK(rk_acquisition_no_valid(no) && rk_mynumber_validate(number) == RK_OK);
        FZ_CHECK(rk_basic_check(items) == NULL);
        return;
    }
    int known = 0;
    for (size_t k = 0; k < sizeof entry_codes / sizeof entry_codes[0]; k++)
        known |= strcmp(bad, entry_codes[k]) == 0;
    FZ_CHECK(known);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rk_request req;
    if (size < 1 || fz_request(&req, "/v1/code-requests", data + 1, size - 1) != 0)
        return 0;
    rk_response resp = {0};
    const char *acq = NULL, *number = NULL;
    rk_basic_info items;
    if (data[0] % 3 == 0) {
        if (jlis_read_code_request(&req, &resp, &acq, &number, &items) != 0) {
            fz_refused(&resp);
        } else {
            fz_untouched(&resp);
            FZ_CHECK(rk_acquisition_no_valid(acq) && rk_mynumber_validate(number) == RK_OK);
            FZ_CHECK(rk_basic_check(&items) == NULL);
        }
    } else {
        json_t *list = rk_req_batch(&req, &resp, data[0] % 3 == 1 ? "requests" : "checks");
        if (!list)
            fz_refused(&resp);
        for (size_t i = 0; i < json_array_size(list) && i < 50; i++) {
            json_t *e = json_array_get(list, i);
            const char *bad = data[0] % 3 == 1 ? jlis_read_batch_entry(e, &acq, &number, &items)
                                               : jlis_read_check_entry(e, &acq, &number, &items);
            entry_checked(bad, number, acq, &items);
        }
    }
    json_decref(req.json);
    return 0;
}
