/* fuzz_http_head.c — the server's handling of a request's bytes around
 * libevent's parser (src/net/conns.c, server.c, authz.c, reply.c): the
 * connection's input callback that moves a request through its header and
 * body deadlines as decrypted bytes arrive (however they are split, and
 * whatever lines libevent has taken out meanwhile); the request target as
 * libevent's URI parser gives it, decoded and matched against a route
 * table; the query helpers; and the output callback that replaces
 * libevent's own HTML error page by the JSON error. No socket: libevent's
 * request-line and header parser has no entry without a connection, so
 * its own checks are not driven here (OSS-Fuzz fuzzes libevent).
 *
 * Input: the bytes of a connection; each byte of a control prefix decides
 * chunk sizes and when libevent takes a line out. */
#include <event2/buffer.h>
#include <event2/http.h>

#include "fuzz.h"
#include "net/server_internal.h"

static const rk_route routes[] = {
    {"POST", "/v1/persons", RK_ROLE_SYSTEM, 1, NULL},
    {"GET", "/v1/persons/*", RK_ROLE_SYSTEM, 1, NULL},
    {"PUT", "/v1/data/*", RK_ROLE_SYSTEM, 1, NULL},
    {"GET", "/v1/records", RK_ROLE_OPERATOR, 0, NULL},
    {"GET", "/v1/tile/*", RK_ROLES_ANY, 0, NULL},
};

static void feed_input(conn *c, const uint8_t *ctl, size_t nctl, const uint8_t *data, size_t size)
{
    struct evbuffer *in = evbuffer_new();
    struct evbuffer_cb_entry *cb = evbuffer_add_cb(in, on_conn_input, c);
    size_t at = 0, k = 0;
    while (at < size) {
        uint8_t b = nctl ? ctl[k++ % nctl] : 0xff;
        size_t chunk = 1 + (b & 0x3f);
        if (chunk > size - at)
            chunk = size - at;
        evbuffer_add(in, data + at, chunk);
        at += chunk;
        if (b & 0x40) { /* libevent takes complete lines out as it reads */
            size_t len = 0;
            char *line;
            while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF))) {
                free(line);
                if (!(b & 0x80))
                    break;
            }
        }
        if (c->phase == PH_BODY)
            FZ_CHECK(c->head_bytes <= c->req_bytes && c->req_bytes <= at);
        if (c->phase == PH_HEADERS)
            FZ_CHECK(c->req_bytes <= at);
    }
    evbuffer_remove_cb_entry(in, cb);
    evbuffer_free(in);
}

/* The request line's target, as libevent hands it on. */
static void target(rk_server *srv, const char *line, const uint8_t *body, size_t body_len)
{
    char method[16], uri_text[4096];
    if (sscanf(line, "%15s %4095s", method, uri_text) != 2)
        return;
    struct evhttp_uri *uri = evhttp_uri_parse_with_flags(uri_text, EVHTTP_URI_NONCONFORMANT);
    if (!uri)
        return;
    job j;
    memset(&j, 0, sizeof j);
    j.srv = srv;
    struct evbuffer *in = evbuffer_new();
    evbuffer_add(in, body, body_len);
    const char *m = strcmp(method, "POST") == 0 ? "POST" : strcmp(method, "PUT") == 0 ? "PUT" : "GET";
    if (request_copy(&j, evhttp_uri_get_path(uri), evhttp_uri_get_query(uri), in, m) == RK_OK) {
        FZ_CHECK(j.in.body_len == body_len && j.in.body[body_len] == '\0');
        int known = 0;
        size_t index = 99;
        const rk_route *r = route_find(srv, j.in.method, j.in.path, &known, &index);
        if (r)
            FZ_CHECK(known && index < srv->cfg.n_routes + 2 && strcmp(r->method, j.in.method) == 0);
        char v[24];
        int got = rk_query_param(&j.in, "before", v, sizeof v);
        FZ_CHECK(got == -1 || got == 0 || (got == 1 && strlen(v) < sizeof v));
        rk_response resp = {0};
        int64_t before = 0;
        int limit = 0;
        if (rk_page_params(&j.in, &resp, &before, &limit) == 0)
            FZ_CHECK(before >= 0 && limit >= 1 && limit <= 500 && !resp.body);
        else
            FZ_CHECK(resp.status == 400 && resp.body);
        free(resp.body);
    }
    free(j.path);
    free(j.query);
    free(j.body);
    evbuffer_free(in);
    evhttp_uri_free(uri);
}

/* libevent's own error page, after earlier answers still in the buffer:
 * what goes out is the JSON error, never the HTML. */
static void error_page(conn *c, const uint8_t *prefix, size_t prefix_len, int status)
{
    static const char *const phrases[] = {"Bad Request", "Payload Too Large", "Not Implemented", "Expectation Failed"};
    const char *phrase = phrases[(unsigned)status % 4];
    struct evbuffer *out = evbuffer_new();
    evbuffer_add(out, prefix, prefix_len); /* an earlier answer not yet written */
    struct evbuffer_cb_entry *cb = evbuffer_add_cb(out, on_conn_output, c);
    char page[512], head[256];
    int n = snprintf(page, sizeof page,
                     "<HTML><HEAD>\n<TITLE>%d %s</TITLE>\n</HEAD><BODY>\n<H1>%s</H1>\n</BODY></HTML>\n", status,
                     phrase, phrase);
    snprintf(head, sizeof head,
             "HTTP/1.1 %d %s\r\nContent-Type: text/html\r\nConnection: close\r\nContent-Length: %d\r\n\r\n", status,
             phrase, n);
    evbuffer_add(out, head, strlen(head));
    evbuffer_add(out, page, (size_t)n);
    size_t len = evbuffer_get_length(out);
    char *all = malloc(len + 1);
    evbuffer_copyout(out, all, len);
    all[len] = '\0';
    /* the earlier answer is intact, and the error is JSON */
    FZ_CHECK(len >= prefix_len && memcmp(all, prefix, prefix_len) == 0);
    FZ_CHECK(strstr(all + prefix_len, "<HTML>") == NULL);
    FZ_CHECK(strstr(all + prefix_len, "{\"error\":{\"code\":\"") != NULL);
    FZ_CHECK(strncmp(all + prefix_len, "HTTP/1.1 4", 10) == 0);
    free(all);
    evbuffer_remove_cb_entry(out, cb);
    evbuffer_free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    size_t nctl = data[0] % 16, nprefix = data[1] % 32;
    int status = 400 + data[2] % 120;
    data += 3;
    size -= 3;
    if (nctl + nprefix > size)
        return 0;
    const uint8_t *ctl = data, *prefix = data + nctl;
    data += nctl + nprefix;
    size -= nctl + nprefix;
    rk_server *srv = calloc(1, sizeof *srv);
    srv->cfg.routes = routes;
    srv->cfg.n_routes = sizeof routes / sizeof routes[0];
    conn *c = calloc(1, sizeof *c);
    c->srv = srv;
    c->phase = PH_IDLE;
    feed_input(c, ctl, nctl, data, size);
    /* the request line, and the body after the head if the head ended */
    char *text = fz_str(data, size);
    char *eol = strchr(text, '\n');
    const uint8_t *body = data + size;
    const uint8_t *end = memmem(data, size, "\r\n\r\n", 4);
    if (end)
        body = end + 4;
    if (eol) {
        *eol = '\0';
        target(srv, text, body, (size_t)(data + size - body));
    }
    free(text);
    error_page(c, prefix, nprefix, status);
    free(c);
    free(srv);
    return 0;
}
