/* fuzz_body.h — what the harnesses of the roles' request readers share: a
 * body parsed as the server parses it (request_json: one JSON object,
 * duplicate keys refused), and the check of a refusal (a 4xx JSON error
 * with a code). */
#ifndef RK_FUZZ_BODY_H
#define RK_FUZZ_BODY_H

#include <jansson.h>

#include "fuzz.h"
#include "net/http_server.h"

static const rk_peer_node fz_peer = {.id = "city-yokohama", .role = RK_ROLE_AGENCY, .agency = "city-yokohama"};

/* 0 when the server would hand this body to a handler: req filled. */
static inline int fz_request(rk_request *req, const char *path, const uint8_t *data, size_t size)
{
    memset(req, 0, sizeof *req);
    req->json = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(req->json)) {
        json_decref(req->json);
        return -1;
    }
    req->method = "POST";
    req->path = path;
    req->query = "";
    req->body = "";
    req->peer = &fz_peer;
    req->received_ms = 1700000000000;
    return 0;
}

/* resp is a refusal: status 400 or 404 and {"error":{"code","message"}}; reset. */
static inline void fz_refused(rk_response *resp)
{
    FZ_CHECK((resp->status == 400 || resp->status == 404) && resp->body);
    json_t *e = json_loads(resp->body, 0, NULL);
    FZ_CHECK(e && json_string_value(json_object_get(json_object_get(e, "error"), "code")) &&
             json_string_value(json_object_get(json_object_get(e, "error"), "message")));
    json_decref(e);
    free(resp->body);
    memset(resp, 0, sizeof *resp);
}

/* resp untouched by a reader that accepted. */
static inline void fz_untouched(const rk_response *resp)
{
    FZ_CHECK(resp->status == 0 && resp->body == NULL);
}

#endif
