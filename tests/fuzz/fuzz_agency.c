/* fuzz_agency.c — the agency node's request readers (src/agency/persons.c,
 * provision.c, queries.c, unlawful.c, nondisclosure.c, held.c): a body is
 * refused with a 400 (404 for a data path without an item, or a path that is
 * not a nondisclosure's, a handling's or a held request's) or gives fields
 * within the grammar each promises. The first byte picks the route; for PUT
 * /v1/data the body's first line is the path after /v1/data/, for a
 * nondisclosure (or its lifting) the path after /v1/records/, for a handling the path after
 * /v1/persons/, for a held request's answer the path after
 * /v1/held-provisions/. */
#include "agency/agency.h"
#include "fuzz_body.h"
#include "lib/basic_info.h"
#include "lib/ids.h"
#include "lib/mynumber.h"

static void person_fields(const char *person, int check, const rk_basic_info *items)
{
    FZ_CHECK(rk_person_id_valid(person) && check >= 0 && check <= 9);
    FZ_CHECK(rk_basic_check(items) == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int route = data[0] % 11;
    char path[200] = "/v1/x";
    data++;
    size--;
    if (route == 5 || route >= 8) { /* the path, then the body */
        const char *prefix = route == 5 ? "/v1/data/" : route == 8 ? "/v1/records/"
                           : route == 9 ? "/v1/persons/" : "/v1/held-provisions/";
        const uint8_t *nl = memchr(data, '\n', size);
        size_t n = nl ? (size_t)(nl - data) : 0;
        if (!nl || n > 150)
            return 0;
        snprintf(path, sizeof path, "%s%.*s", prefix, (int)n, (const char *)data);
        if (strlen(path) != strlen(prefix) + n)
            return 0; /* a NUL inside: no such path reaches a handler */
        data += n + 1;
        size -= n + 1;
    }
    rk_request req;
    if (fz_request(&req, path, data, size) != 0)
        return 0;
    rk_response resp = {0};
    int rc = 0;
    switch (route) {
    case 0: { /* POST /v1/persons */
        const char *person, *number;
        int check = -1;
        rk_basic_info items;
        if ((rc = agency_read_person(&req, &resp, &person, &number, &check, &items)) == 0) {
            person_fields(person, check, &items);
            FZ_CHECK(rk_mynumber_validate(number) == RK_OK && check == rk_mynumber_check_code(number));
        }
        break;
    }
    case 1: { /* POST /v1/persons/batch */
        json_t *list = rk_req_batch(&req, &resp, "persons");
        rc = list ? 0 : -1;
        for (size_t i = 0; i < json_array_size(list) && i < 50; i++) {
            const char *person;
            int check;
            rk_basic_info items;
            if (!agency_read_person_entry(json_array_get(list, i), &person, &check, &items))
                person_fields(person, check, &items);
        }
        break;
    }
    case 2: { /* POST /v1/code-notices */
        agency_notice n;
        if ((rc = agency_read_code_notice(&req, &resp, &n)) == 0)
            FZ_CHECK(*n.acquisition_no && strlen(n.code) <= RK_CODE_FIELD_MAX && n.check_code >= 0 && n.check_code <= 9);
        break;
    }
    case 3: { /* POST /v1/code-notices/batch: what reaches the store */
        json_t *list = rk_req_batch(&req, &resp, "notices");
        rc = list ? 0 : -1;
        for (size_t i = 0; i < json_array_size(list) && i < 50; i++) {
            json_t *e = json_array_get(list, i), *check = json_object_get(e, "check_code");
            agency_notice n;
            agency_read_notice_entry(e, &n);
            if (n.acquisition_no)
                FZ_CHECK(n.code && strlen(n.code) <= RK_CODE_FIELD_MAX);
            FZ_CHECK(n.check_code == -1 || (n.check_code >= 0 && n.check_code <= 9));
            if (n.check_code >= 0) /* the number sent, not a wrapped one */
                FZ_CHECK(json_is_integer(check) && json_integer_value(check) == n.check_code);
        }
        break;
    }
    case 4: { /* POST /v1/provisions */
        agency_provision_in in;
        if ((rc = agency_read_provision(&req, &resp, &in)) == 0)
            FZ_CHECK(*in.exchange_id && strlen(in.exchange_id) <= RK_EXCHANGE_ID_MAX && *in.code &&
                     strlen(in.requester) <= RK_AGENCY_FIELD_MAX && strlen(in.requester_cert) <= RK_CERT_PEM_MAX);
        break;
    }
    case 5: { /* PUT /v1/data/{person}/{item} */
        agency_data_in in;
        if ((rc = agency_read_data(&req, &resp, &in)) == 0) {
            FZ_CHECK(rk_person_id_valid(in.person) && rk_catalogue_id_valid(in.item) && in.value);
            FZ_CHECK(rk_date_valid(in.as_of) && (!in.request_id || rk_person_id_valid(in.request_id)));
        }
        break;
    }
    case 6: { /* POST /v1/queries */
        agency_query_in in;
        if ((rc = agency_read_query(&req, &resp, &in)) == 0)
            FZ_CHECK(rk_id_valid(in.query_id, RK_ID_FIELD_MAX) && rk_id_valid(in.operator_id, RK_ID_FIELD_MAX) &&
                     *in.person && *in.business && *in.item && strlen(in.provider) <= RK_AGENCY_FIELD_MAX);
        break;
    }
    case 8: { /* POST /v1/records/{exchange_id}/nondisclosure[/lift] */
        char xid[RK_EXCHANGE_ID_MAX + 1];
        const char *basis, *operator_id, *until;
        size_t plen = strlen(path);
        if (plen > 5 && strcmp(path + plen - 5, "/lift") == 0) {
            if ((rc = agency_read_nondisclosure_lift(&req, &resp, xid, &operator_id, &basis)) == 0) {
                FZ_CHECK(rk_id_valid(xid, RK_EXCHANGE_ID_MAX) && !strchr(xid, '/'));
                FZ_CHECK(*basis && strlen(basis) <= 150 && rk_id_valid(operator_id, RK_ID_FIELD_MAX));
                char want[200];
                snprintf(want, sizeof want, "/v1/records/%s/nondisclosure/lift", xid);
                FZ_CHECK(strcmp(want, path) == 0);
            }
            break;
        }
        if ((rc = agency_read_nondisclosure(&req, &resp, xid, &basis, &operator_id, &until)) == 0) {
            FZ_CHECK(rk_id_valid(xid, RK_EXCHANGE_ID_MAX) && !strchr(xid, '/'));
            FZ_CHECK(*basis && strlen(basis) <= 150 && rk_id_valid(operator_id, RK_ID_FIELD_MAX));
            FZ_CHECK(!until || rk_date_valid(until));
            char want[200];
            snprintf(want, sizeof want, "/v1/records/%s/nondisclosure", xid);
            FZ_CHECK(strcmp(want, path) == 0);
        }
        break;
    }
    case 9: { /* PUT /v1/persons/{person}/handling */
        char person[RK_ID_FIELD_MAX + 1];
        int auto_answer = -1;
        const char *reason;
        if ((rc = agency_read_handling(&req, &resp, person, &auto_answer, &reason)) == 0) {
            FZ_CHECK(rk_person_id_valid(person) && (auto_answer == 0 || auto_answer == 1));
            FZ_CHECK(auto_answer || (reason && *reason));
            FZ_CHECK(!reason || strlen(reason) <= 150);
            char want[200];
            snprintf(want, sizeof want, "/v1/persons/%s/handling", person);
            FZ_CHECK(strcmp(want, path) == 0);
        }
        break;
    }
    case 10: { /* POST /v1/held-provisions/{exchange_id}/answer|decline */
        char xid[RK_EXCHANGE_ID_MAX + 1];
        int answer = -1;
        const char *operator_id;
        if ((rc = agency_read_held_action(&req, &resp, xid, &answer, &operator_id)) == 0) {
            FZ_CHECK(rk_id_valid(xid, RK_EXCHANGE_ID_MAX) && !strchr(xid, '/'));
            FZ_CHECK(rk_id_valid(operator_id, RK_ID_FIELD_MAX));
            char want[200];
            snprintf(want, sizeof want, "/v1/held-provisions/%s/%s", xid, answer ? "answer" : "decline");
            FZ_CHECK(strcmp(want, path) == 0);
        }
        break;
    }
    case 7:
    default: { /* POST /v1/unlawful */
        const char *xid, *kind, *reason;
        int is_request = -1;
        if ((rc = agency_read_unlawful(&req, &resp, &xid, &kind, &reason, &is_request)) == 0)
            FZ_CHECK(is_request == (strcmp(kind, "unlawful_request") == 0) &&
                     (is_request || strcmp(kind, "unlawful_provision") == 0) && strlen(reason) <= RK_REASON_MAX);
        break;
    }
    }
    if (rc == 0)
        fz_untouched(&resp);
    else
        fz_refused(&resp);
    json_decref(req.json);
    return 0;
}
