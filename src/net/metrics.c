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

void rk_metric_head(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void refusals(struct evbuffer *out, const char *reason, const uint64_t *counter)
{
    evbuffer_add_printf(out, "renkei_refusals_total{reason=\"%s\"} %llu\n", reason,
                        (unsigned long long)__atomic_load_n(counter, __ATOMIC_RELAXED));
}

/* Each family once, its HELP and TYPE first, then all its samples: the
 * text format wants a family's lines together. Times in seconds. */
/* Route i of the node's routes, then of the person routes, and its stats. */
static const rk_route *route_at(const rk_server *srv, size_t i)
{
    return i < srv->cfg.n_routes ? &srv->cfg.routes[i] : &srv->cfg.person_routes[i - srv->cfg.n_routes];
}

static const route_stats *stats_at(const rk_server *srv, size_t i)
{
    return i < srv->cfg.n_routes ? &srv->stats[i] : &srv->stats[PERSON_STATS + i - srv->cfg.n_routes];
}

void serve_metrics(rk_server *srv, rk_response *resp)
{
    struct evbuffer *out = evbuffer_new();
    if (!out) {
        rk_reply_error(resp, 500, "internal", "out of memory");
        return;
    }
    rk_metric_head(out, "renkei_refusals_total", "counter",
                   "Requests and connections refused before any handler ran, by reason.");
    refusals(out, "tls", &srv->tls_refusals);
    refusals(out, "unknown_peer", &srv->unknown_peer);
    refusals(out, "address", &srv->address_refusals);
    refusals(out, "role", &srv->role_refusals);
    refusals(out, "not_found", &srv->not_found);
    refusals(out, "overloaded", &srv->overloaded);
    refusals(out, "clock_skew", &srv->skew_refusals);
    refusals(out, "connections", &srv->conn_refusals);
    refusals(out, "deadline", &srv->conn_timeouts);
    rk_metric_head(out, "renkei_accept_errors_total", "counter",
                   "Failed accepts of new connections (out of file descriptors or memory).");
    evbuffer_add_printf(out, "renkei_accept_errors_total %llu\n",
                        (unsigned long long)__atomic_load_n(&srv->accept_errors, __ATOMIC_RELAXED));
    rk_metric_head(out, "renkei_connections", "gauge", "Connections open now.");
    evbuffer_add_printf(out, "renkei_connections %zu\n", __atomic_load_n(&srv->n_conns, __ATOMIC_RELAXED));
    rk_metric_head(out, "renkei_requests_total", "counter", "Answers of each route of this node, by status class.");
    for (size_t i = 0; i < srv->cfg.n_routes + srv->cfg.n_person_routes; i++) {
        const rk_route *r = route_at(srv, i);
        const route_stats *s = stats_at(srv, i);
        for (int c = 1; c < 6; c++) {
            uint64_t n = __atomic_load_n(&s->by_class[c], __ATOMIC_RELAXED);
            if (n)
                evbuffer_add_printf(out, "renkei_requests_total{endpoint=\"%s %s\",class=\"%dxx\"} %llu\n",
                                    r->method, r->path, c, (unsigned long long)n);
        }
    }
    rk_metric_head(out, "renkei_request_duration_seconds", "histogram",
                   "Time from a request's arrival to its answer, per route of this node.");
    for (size_t i = 0; i < srv->cfg.n_routes + srv->cfg.n_person_routes; i++) {
        const rk_route *r = route_at(srv, i);
        const route_stats *s = stats_at(srv, i);
        uint64_t cum = 0, buckets[N_BUCKETS];
        for (int b = 0; b < N_BUCKETS; b++)
            cum += buckets[b] = __atomic_load_n(&s->buckets[b], __ATOMIC_RELAXED);
        if (!cum)
            continue;
        cum = 0;
        for (int b = 0; b < N_BUCKETS; b++) {
            cum += buckets[b];
            if (b == N_BUCKETS - 1)
                evbuffer_add_printf(out,
                                    "renkei_request_duration_seconds_bucket{endpoint=\"%s %s\",le=\"+Inf\"} %llu\n",
                                    r->method, r->path, (unsigned long long)cum);
            else
                evbuffer_add_printf(out, "renkei_request_duration_seconds_bucket{endpoint=\"%s %s\",le=\"%g\"} %llu\n",
                                    r->method, r->path, bucket_ms[b] / 1000.0, (unsigned long long)cum);
        }
        evbuffer_add_printf(out, "renkei_request_duration_seconds_sum{endpoint=\"%s %s\"} %.6f\n"
                                 "renkei_request_duration_seconds_count{endpoint=\"%s %s\"} %llu\n",
                            r->method, r->path, (double)__atomic_load_n(&s->sum_us, __ATOMIC_RELAXED) / 1e6,
                            r->method, r->path, (unsigned long long)cum);
    }
    rk_metric_head(out, "renkei_queue_depth", "gauge", "Steps waiting for a worker thread.");
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
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    evbuffer_free(out);
}
