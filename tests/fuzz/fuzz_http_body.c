/* fuzz_http_body.c — a request body as every route receives it
 * (src/net/server.c request_json: one JSON object, duplicate keys refused,
 * else 400 invalid_json) and the field helpers every handler reads it with
 * (src/net/reply.c: rk_req_string, rk_req_int, rk_req_batch). A field
 * handed to a handler is what its helper promises; a refusal is a 400
 * JSON error naming the field. The gateway's routes read no more than
 * this: they relay the body as it came. */
#include <event2/buffer.h>

#include "fuzz.h"
#include "lib/ids.h"
#include "net/server_internal.h"

static const char *const fields[] = {"person", "my_number", "query_id", "exchange_id", "value", "requests",
                                     "check_code", "as_of", "code", "requester_cert"};

static void refused(rk_response *resp, const char *field)
{
    FZ_CHECK(resp->status == 400 && resp->body);
    json_t *e = json_loads(resp->body, 0, NULL);
    FZ_CHECK(e && strcmp(json_string_value(json_object_get(json_object_get(e, "error"), "code")), "invalid_field") == 0);
    FZ_CHECK(strstr(json_string_value(json_object_get(json_object_get(e, "error"), "message")), field));
    json_decref(e);
    free(resp->body);
    memset(resp, 0, sizeof *resp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rk_server srv;
    memset(&srv, 0, sizeof srv);
    job j;
    memset(&j, 0, sizeof j);
    j.srv = &srv;
    struct evbuffer *in = evbuffer_new();
    evbuffer_add(in, data, size);
    char msg[300];
    FZ_CHECK(request_copy(&j, "/v1/x", "", in, size % 2 ? "POST" : "PUT") == RK_OK);
    if (!request_json(&j, msg, sizeof msg)) {
        FZ_CHECK(msg[0] && (!j.in.json || !json_is_object(j.in.json)));
        json_decref(j.in.json); /* as job_free does */
        goto done;
    }
    FZ_CHECK(json_is_object(j.in.json));
    rk_response resp = {0};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        static const size_t maxes[] = {1, RK_ID_FIELD_MAX, RK_CERT_PEM_MAX};
        for (size_t m = 0; m < 3; m++) {
            const char *v = rk_req_string(&j.in, &resp, fields[i], maxes[m]);
            if (v) {
                json_t *raw = json_object_get(j.in.json, fields[i]);
                FZ_CHECK(v == json_string_value(raw) && strlen(v) >= 1 && strlen(v) <= maxes[m] &&
                         strlen(v) == json_string_length(raw) && !resp.body);
            } else {
                refused(&resp, fields[i]);
            }
        }
        long n = -1;
        if (rk_req_int(&j.in, &resp, fields[i], 0, 9, &n) == 0)
            FZ_CHECK(n >= 0 && n <= 9 && json_integer_value(json_object_get(j.in.json, fields[i])) == n);
        else
            refused(&resp, fields[i]);
        json_t *list = rk_req_batch(&j.in, &resp, fields[i]);
        if (list)
            FZ_CHECK(json_array_size(list) >= 1 && json_array_size(list) <= RK_BATCH_MAX);
        else
            refused(&resp, fields[i]);
    }
    json_decref(j.in.json);
done:
    free(j.path);
    free(j.query);
    free(j.body);
    evbuffer_free(in);
    return 0;
}
