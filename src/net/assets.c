/* net/assets.c — serving a table of built-in static files (net/assets.h). */
#include "net/assets.h"

#include <stdlib.h>
#include <string.h>

#include "net/http_server.h"

void rk_asset_serve(const rk_asset *table, size_t n, const rk_request *req, rk_response *resp)
{
    for (size_t i = 0; i < n; i++) {
        const rk_asset *a = &table[i];
        if (strcmp(a->path, req->path) != 0)
            continue;
        if (!(resp->body = malloc(a->len + 1))) {
            rk_reply_error(resp, 500, "internal", "out of memory");
            return;
        }
        memcpy(resp->body, a->data, a->len + 1);
        resp->body_len = a->len;
        resp->status = 200;
        resp->content_type = a->content_type;
        resp->cache_control = "no-cache";
        resp->page = 1;
        return;
    }
    rk_reply_error(resp, 404, "not_found", "no such page");
}
