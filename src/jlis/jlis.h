/* jlis.h — the readers of J-LIS's request bodies, before any registry
 * look-up or call to the core: what its routes take from outside
 * (tests/fuzz/fuzz_jlis.c drives them). The node itself is jlis.c. */
#ifndef RK_JLIS_H
#define RK_JLIS_H

#include <jansson.h>

#include "lib/basic_info.h"
#include "net/http_server.h"

/* POST /v1/code-requests {"acquisition_no","my_number","name","birth_date",
 * "sex","address"}: 0 with the fields (borrowed from req), else -1 with resp
 * a 400 (invalid_field, invalid_my_number, invalid_name,
 * invalid_birth_date, invalid_sex, invalid_address: lib/basic_info.h). */
int jlis_read_code_request(const rk_request *req, rk_response *resp, const char **acquisition_no,
                           const char **my_number, rk_basic_info *items);
/* One entry of POST /v1/code-requests/batch: NULL when usable, else its
 * error code; the fields are borrowed from e (NULL when absent). */
const char *jlis_read_batch_entry(json_t *e, const char **acquisition_no, const char **my_number,
                                  rk_basic_info *items);
/* One entry of POST /v1/basic-info-checks {"check_no","my_number", the four
 * items}: as a batch entry, its number check_no (the grammar of an
 * acquisition number). */
const char *jlis_read_check_entry(json_t *e, const char **check_no, const char **my_number, rk_basic_info *items);

#endif
