/* metrics.c — the built-in endpoints: /healthz (the role's checks) and Prometheus /metrics (refusal and
 * connection counters, per-route answers and durations, the queue, the role's own lines). */
#include <event2/buffer.h>
#include <stdlib.h>

#include "net/server_internal.h"

/* Upper bounds of the request duration buckets, ms; the last is +Inf. */
static const double bucket_ms[N_BUCKETS] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 1e18};

void record_stats(route_stats *s, int status, int64_t elapsed_us)
{
    if (!s)
        return;
    int cls = status / 100;
    count(&s->by_class[cls >= 1 && cls <= 5 ? cls : 5]);
    double ms = (double)elapsed_us / 1000.0;
    int b = 0;
    while (b < N_BUCKETS - 1 && ms > bucket_ms[b])
        b++;
    count(&s->buckets[b]);
    __atomic_add_fetch(&s->sum_us, (uint64_t)elapsed_us, __ATOMIC_RELAXED);
}

void serve_health(rk_server *srv, rk_response *resp)
{
    json_t *checks = json_object();
    int bad = srv->cfg.health ? srv->cfg.health(srv->cfg.app, checks) : 0;
    char now[32];
    rk_format_time(rk_server_now_ms(srv), now, sizeof now);
    rk_reply_json(resp, bad ? 503 : 200,
                  json_pack("{s:s,s:s,s:o}", "status", bad ? "degraded" : "ok", "time", now, "checks", checks));
}

void serve_metrics(rk_server *srv, rk_response *resp)
{
    struct evbuffer *out = evbuffer_new();
    if (!out) {
        rk_reply_error(resp, 500, "internal", "out of memory");
        return;
    }
    evbuffer_add_printf(out, "# TYPE renkei_refusals_total counter\n");
    evbuffer_add_printf(out, "renkei_refusals_total{reason=\"tls\"} %llu\n", (unsigned long long)srv->tls_refusals);
    evbuffer_add_printf(out, "renkei_refusals_total{reason=\"unknown_peer\"} %llu\n",
                        (unsigned long long)srv->unknown_peer);
    evbuffer_add_printf(out, "renkei_refusals_total{reason=\"address\"} %llu\n",
                        (unsigned long long)srv->address_refusals);
    evbuffer_add_printf(out, "renkei_refusals_total{reason=\"role\"} %llu\n", (unsigned long long)srv->role_refusals);
    evbuffer_add_printf(out, "renkei_refusals_total{reason=\"not_found\"} %llu\n", (unsigned long long)srv->not_found);
    evbuffer_add_printf(out, "renkei_refusals_total{reason=\"overloaded\"} %llu\n",
                        (unsigned long long)srv->overloaded);
    evbuffer_add_printf(out, "renkei_refusals_total{reason=\"clock_skew\"} %llu\n",
                        (unsigned long long)srv->skew_refusals);
    evbuffer_add_printf(out, "renkei_refusals_total{reason=\"connections\"} %llu\n",
                        (unsigned long long)__atomic_load_n(&srv->conn_refusals, __ATOMIC_RELAXED));
    evbuffer_add_printf(out, "renkei_refusals_total{reason=\"deadline\"} %llu\n",
                        (unsigned long long)__atomic_load_n(&srv->conn_timeouts, __ATOMIC_RELAXED));
    evbuffer_add_printf(out, "# TYPE renkei_accept_errors_total counter\nrenkei_accept_errors_total %llu\n",
                        (unsigned long long)__atomic_load_n(&srv->accept_errors, __ATOMIC_RELAXED));
    evbuffer_add_printf(out, "# TYPE renkei_connections gauge\nrenkei_connections %zu\n",
                        __atomic_load_n(&srv->n_conns, __ATOMIC_RELAXED));
    evbuffer_add_printf(out, "# TYPE renkei_requests_total counter\n# TYPE renkei_request_duration_ms histogram\n");
    for (size_t i = 0; i < srv->cfg.n_routes; i++) {
        const rk_route *r = &srv->cfg.routes[i];
        const route_stats *s = &srv->stats[i];
        uint64_t total = 0;
        for (int c = 1; c < 6; c++) {
            total += s->by_class[c];
            if (s->by_class[c])
                evbuffer_add_printf(out, "renkei_requests_total{endpoint=\"%s %s\",class=\"%dxx\"} %llu\n",
                                    r->method, r->path, c, (unsigned long long)s->by_class[c]);
        }
        uint64_t cum = 0;
        for (int b = 0; b < N_BUCKETS && total; b++) {
            cum += s->buckets[b];
            if (b == N_BUCKETS - 1)
                evbuffer_add_printf(out, "renkei_request_duration_ms_bucket{endpoint=\"%s %s\",le=\"+Inf\"} %llu\n",
                                    r->method, r->path, (unsigned long long)cum);
            else
                evbuffer_add_printf(out, "renkei_request_duration_ms_bucket{endpoint=\"%s %s\",le=\"%g\"} %llu\n",
                                    r->method, r->path, bucket_ms[b], (unsigned long long)cum);
        }
        if (total)
            evbuffer_add_printf(out, "renkei_request_duration_ms_sum{endpoint=\"%s %s\"} %.3f\n"
                                     "renkei_request_duration_ms_count{endpoint=\"%s %s\"} %llu\n",
                                r->method, r->path, (double)s->sum_us / 1000.0, r->method, r->path,
                                (unsigned long long)total);
    }
    evbuffer_add_printf(out, "renkei_queue_depth %zu\n", srv->queued);
    if (srv->cfg.metrics)
        srv->cfg.metrics(srv->cfg.app, out);
    size_t len = evbuffer_get_length(out);
    free(resp->body);
    resp->body = malloc(len + 1);
    if (resp->body) {
        evbuffer_remove(out, resp->body, len);
        resp->body[len] = '\0';
    }
    resp->body_len = resp->body ? len : 0;
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4";
    evbuffer_free(out);
}
