/* reply.c — answers: the response helpers handlers fill (rk_reply_json/text/error), an answer sent on its
 * connection (send_now, refuse), and the request field helpers (rk_req_string/int/batch/entries, rk_page_params/cursor,
 * rk_query_param). */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/condition.h"
#include "lib/util.h"
#include "net/server_internal.h"

void rk_reply_json(rk_response *resp, int status, json_t *body)
{
    free(resp->body);
    resp->status = status;
    resp->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
    resp->body_len = resp->body ? strlen(resp->body) : 0;
    resp->content_type = "application/json";
    resp->store_error = 0;
    json_decref(body);
}

void rk_reply_text(rk_response *resp, int status, char *text)
{
    free(resp->body);
    resp->status = status;
    resp->body = text;
    resp->body_len = text ? strlen(text) : 0;
    resp->content_type = "application/json";
    resp->store_error = 0;
}

static json_t *error_json(const char *code, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static json_t *error_json(const char *code, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    return json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
}

void rk_reply_error(rk_response *resp, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_t *e = error_json(code, fmt, ap);
    va_end(ap);
    rk_reply_json(resp, status, e);
    resp->store_error = status == 500 && strcmp(code, "store_error") == 0;
}

char *rk_error_text(const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_t *e = error_json(code, fmt, ap);
    va_end(ap);
    char *text = e ? json_dumps(e, JSON_COMPACT) : NULL;
    json_decref(e);
    return text;
}

/* Every handler answers a failed store step 500 store_error; when the
 * database is absent (its connection lost, a failover under way) that is
 * said as such, here, for every route of every role (DESIGN §6). */
static void say_store_lost(const rk_server *srv, rk_response *resp)
{
    if (resp->store_error && srv->cfg.store_lost && srv->cfg.store_lost(srv->cfg.app))
        rk_reply_error(resp, 503, "store_unavailable",
                       "the database is unavailable (a failover?); retry with the same id");
}

void send_now(struct evhttp_request *req, const rk_server *srv, rk_response *resp)
{
    say_store_lost(srv, resp);
    conn *c = conn_of_request(req);
    if (c && !c->closing) { /* between requests now */
        c->phase = PH_IDLE;
        conn_deadline(c, RK_SERVER_IDLE_MS);
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)rk_server_now_ms(srv));
    evhttp_add_header(h, "Content-Type", resp->content_type ? resp->content_type : "application/json");
    evhttp_add_header(h, "X-Renkei-Time", now);
    if (resp->cache_control)
        evhttp_add_header(h, "Cache-Control", resp->cache_control);
    if ((c && c->person) || resp->page) { /* a browser's: nothing from elsewhere, nothing framed, nothing guessed */
        evhttp_add_header(h, "Content-Security-Policy",
                          "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self';"
                          " base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
        evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
        evhttp_add_header(h, "X-Frame-Options", "DENY");
        evhttp_add_header(h, "Referrer-Policy", "no-referrer");
    }
    struct evbuffer *buf = evbuffer_new();
    if (buf && resp->body)
        evbuffer_add(buf, resp->body, resp->body_len);
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    evhttp_send_reply(req, resp->status ? resp->status : 500, NULL, buf);
    if (buf)
        evbuffer_free(buf);
    /* The head and the body are queued as separate pieces, and the TLS
     * bufferevent writes each as its own record and system call: one piece
     * makes one record, one write, and one wake-up at the peer. */
    if (bev)
        evbuffer_pullup(bufferevent_get_output(bev), -1);
}

void refuse(struct evhttp_request *req, const rk_server *srv, int status, const char *code, const char *msg)
{
    rk_response r = {0};
    rk_reply_error(&r, status, code, "%s", msg);
    send_now(req, srv, &r);
    free(r.body);
}

const char *rk_req_string(const rk_request *req, rk_response *resp, const char *field, size_t maxlen)
{
    json_t *v = req->json ? json_object_get(req->json, field) : NULL;
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > maxlen ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        rk_reply_error(resp, 400, "invalid_field", "field \"%s\" is missing or not a string of 1 to %zu bytes",
                       field, maxlen);
        return NULL;
    }
    return json_string_value(v);
}

int rk_req_condition(const rk_request *req, rk_response *resp, rk_condition *out)
{
    if (rk_condition_read(req->json ? json_object_get(req->json, "condition") : NULL, out) == 0)
        return 0;
    rk_reply_error(resp, 400, "invalid_field",
                   "field \"condition\" must be {\"fiscal_year\": YYYY} or {\"as_of\": \"YYYY-MM-DD\"}");
    return -1;
}

int rk_req_int(const rk_request *req, rk_response *resp, const char *field, long min, long max, long *out)
{
    json_t *v = req->json ? json_object_get(req->json, field) : NULL;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        rk_reply_error(resp, 400, "invalid_field", "field \"%s\" is missing or not an integer in %ld..%ld",
                       field, min, max);
        return -1;
    }
    *out = (long)json_integer_value(v);
    return 0;
}

json_t *rk_req_batch(const rk_request *req, rk_response *resp, const char *field)
{
    json_t *list = req->json ? json_object_get(req->json, field) : NULL;
    size_t n = json_array_size(list);
    if (json_is_array(list) && n >= 1 && n <= RK_BATCH_MAX)
        return list;
    rk_reply_error(resp, 400, "invalid_field", "field \"%s\" must be an array of 1 to %d entries", field,
                   RK_BATCH_MAX);
    return NULL;
}

int rk_req_entries(const rk_request *req, rk_response *resp, const char *field, json_t *list, rk_entry_read_fn read,
                   void *arg)
{
    for (size_t i = 0; i < json_array_size(list); i++) {
        rk_request e = *req;
        e.json = json_array_get(list, i);
        e.body = "";
        e.body_len = 0;
        if (read(&e, resp, i, arg) == 0)
            continue;
        json_t *doc = resp->body ? json_loads(resp->body, 0, NULL) : NULL;
        json_t *err = json_object_get(doc, "error");
        const char *code = json_string_value(json_object_get(err, "code"));
        const char *msg = json_string_value(json_object_get(err, "message"));
        rk_reply_error(resp, resp->status ? resp->status : 400, code ? code : "invalid_field", "%s[%zu]: %s", field, i,
                       msg ? msg : "not a usable entry");
        json_decref(doc);
        return -1;
    }
    return 0;
}

int rk_req_distinct(rk_response *resp, const char *const *ids, size_t n, const char *code, const char *what)
{
    int err = 0;
    const char *twice = rk_duplicate(ids, n, &err);
    if (twice)
        rk_reply_error(resp, 400, code, "%s %s is given twice", what, twice);
    else if (err)
        rk_reply_error(resp, 500, "internal", "out of memory");
    return twice || err ? -1 : 0;
}

int rk_page_cursor(const rk_request *req, rk_response *resp, const char *cursor, int64_t *at, int *limit)
{
    char at_s[24], limit_s[8];
    int fa = rk_query_param(req, cursor, at_s, sizeof at_s);
    int fl = rk_query_param(req, "limit", limit_s, sizeof limit_s);
    *at = fa == 1 ? strtoll(at_s, NULL, 10) : 0;
    *limit = fl == 1 ? atoi(limit_s) : 50;
    if (fa < 0 || fl < 0 || *at < 0 || *limit < 1 || *limit > 500) {
        rk_reply_error(resp, 400, "invalid_field", "limit must be 1..500 and %s a seq of this list", cursor);
        return -1;
    }
    return 0;
}

int rk_page_params(const rk_request *req, rk_response *resp, int64_t *before, int *limit)
{
    return rk_page_cursor(req, resp, "before", before, limit);
}

int rk_query_param(const rk_request *req, const char *name, char *out, size_t outlen)
{
    struct evkeyvalq params;
    if (!req->query[0] || evhttp_parse_query_str(req->query, &params) != 0)
        return 0;
    const char *v = evhttp_find_header(&params, name);
    int found = !v ? 0 : strlen(v) < outlen ? 1 : -1;
    if (found == 1)
        strcpy(out, v);
    evhttp_clear_headers(&params);
    return found;
}
