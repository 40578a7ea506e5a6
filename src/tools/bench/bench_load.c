/* bench_load.c — the closed-loop HTTPS load generator of `renkei bench`
 * (see bench_load.h). libcurl multi interface; TLS 1.3 with a client
 * certificate given to each connection's SSL_CTX; keep-alive. */
#include "tools/bench/bench_load.h"
#include "lib/util.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_TIMEOUT_MS 30000
#define MAX_RESPONSE (1u << 20)
#define POLL_MS 50
#define INTERRUPT_DRAIN_MS 2000
#define URL_CAP (1024 + BENCH_PATH_CAP)

typedef struct load_thread load_thread;

typedef struct slot {
    CURL *h;
    load_thread *t;
    bench_request req;
    char *body; /* BENCH_BODY_CAP bytes */
    char *resp;
    size_t resp_len, resp_cap;
    int64_t started_ns;
    int busy;
    char url[URL_CAP];
} slot;

typedef struct shared {
    const bench_load_config *cfg;
    pthread_mutex_t cb_lock;
    int64_t t0_ns, t1_ns; /* the measured window */
    int timed;
    struct curl_slist *headers;
} shared;

struct load_thread {
    shared *sh;
    pthread_t tid;
    slot *slots;
    int n;
    CURLM *m;
    uint32_t *lat; /* microseconds of the successes */
    size_t n_lat, cap_lat;
    uint64_t ok, rejected, errors, sent;
    long connects;
    bench_status_count statuses[BENCH_MAX_STATUSES];
    int n_statuses;
    char first_error[256];
    int nomem;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int stop_asked(const bench_load_config *cfg)
{
    return cfg->stop && *cfg->stop;
}

/* Every connection's SSL_CTX gets the client identity. */
static CURLcode set_identity(CURL *curl, void *sslctx, void *arg)
{
    const bench_load_config *cfg = arg;
    SSL_CTX *ctx = sslctx;
    if (SSL_CTX_use_certificate(ctx, cfg->cert) != 1 || SSL_CTX_use_PrivateKey(ctx, cfg->key) != 1)
        return CURLE_SSL_CERTPROBLEM;
    return CURLE_OK;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    slot *s = arg;
    return rk_buf_append(&s->resp, &s->resp_len, &s->resp_cap, data, size * n, MAX_RESPONSE) == RK_OK ? size * n : 0;
}

static rk_rc slot_init(slot *s, load_thread *t)
{
    const bench_load_config *cfg = t->sh->cfg;
    long timeout = cfg->timeout_ms > 0 ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
    s->t = t;
    if (!(s->body = malloc(BENCH_BODY_CAP)) || !(s->h = curl_easy_init()))
        return RK_ERR_NOMEM;
    CURL *h = s->h;
    curl_easy_setopt(h, CURLOPT_PRIVATE, s);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)(CURL_SSLVERSION_TLSv1_3 | CURL_SSLVERSION_MAX_TLSv1_3));
    curl_easy_setopt(h, CURLOPT_CAINFO, cfg->ca_path);
    curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, set_identity);
    curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, (void *)cfg);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout < 5000 ? timeout : 5000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, t->sh->headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
    return RK_OK;
}

static void slot_free(slot *s, CURLM *m)
{
    if (s->h) {
        if (s->busy)
            curl_multi_remove_handle(m, s->h);
        curl_easy_cleanup(s->h);
    }
    free(s->body);
    free(s->resp);
}

/* Asks for the next request and starts it; 0 when there is none. */
static int slot_start(slot *s)
{
    load_thread *t = s->t;
    const bench_load_config *cfg = t->sh->cfg;
    bench_request *r = &s->req;
    r->path[0] = '\0';
    r->method = NULL;
    r->body = s->body;
    r->body_len = 0;
    r->tag = 0;
    if (cfg->next) {
        pthread_mutex_lock(&t->sh->cb_lock);
        int more = cfg->next(cfg->arg, r);
        pthread_mutex_unlock(&t->sh->cb_lock);
        if (!more)
            return 0;
    } else {
        r->body = (char *)cfg->body;
        r->body_len = cfg->body ? cfg->body_len : 0;
    }
    const char *path = r->path[0] ? r->path : cfg->path && *cfg->path ? cfg->path : "/";
    const char *method = r->method ? r->method : cfg->method ? cfg->method : (r->body && r->body_len ? "POST" : "GET");
    snprintf(s->url, sizeof s->url, "%s%s", cfg->base_url, path);
    curl_easy_setopt(s->h, CURLOPT_URL, s->url);
    if (strcmp(method, "GET") == 0 && !r->body_len) {
        curl_easy_setopt(s->h, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(s->h, CURLOPT_CUSTOMREQUEST, NULL);
    } else {
        curl_easy_setopt(s->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        curl_easy_setopt(s->h, CURLOPT_POSTFIELDS, r->body ? r->body : "");
        curl_easy_setopt(s->h, CURLOPT_CUSTOMREQUEST, strcmp(method, "POST") == 0 ? NULL : method);
    }
    s->resp_len = 0;
    if (s->resp)
        s->resp[0] = '\0';
    s->started_ns = now_ns();
    if (curl_multi_add_handle(t->m, s->h) != CURLM_OK)
        return 0;
    s->busy = 1;
    return 1;
}

static void count_status(load_thread *t, long status)
{
    int i;
    for (i = 0; i < t->n_statuses; i++)
        if (t->statuses[i].status == status)
            break;
    if (i == t->n_statuses) {
        if (t->n_statuses == BENCH_MAX_STATUSES)
            return;
        t->statuses[t->n_statuses++] = (bench_status_count){.status = status, .count = 0};
    }
    t->statuses[i].count++;
}

static void record_latency(load_thread *t, int64_t ns)
{
    if (t->n_lat == t->cap_lat) {
        size_t cap = t->cap_lat ? t->cap_lat * 2 : 65536;
        uint32_t *bigger = realloc(t->lat, cap * sizeof *bigger);
        if (!bigger) {
            t->nomem = 1;
            return;
        }
        t->lat = bigger;
        t->cap_lat = cap;
    }
    int64_t us = ns / 1000;
    t->lat[t->n_lat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* One transfer ended: account for it. */
static void slot_done(slot *s, CURLcode result)
{
    load_thread *t = s->t;
    const bench_load_config *cfg = t->sh->cfg;
    int64_t end = now_ns();
    long status = 0, connects = 0;
    curl_multi_remove_handle(t->m, s->h);
    s->busy = 0;
    if (result == CURLE_OK)
        curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(s->h, CURLINFO_NUM_CONNECTS, &connects);
    t->connects += connects;
    t->sent++;
    int success;
    if (cfg->check) {
        pthread_mutex_lock(&t->sh->cb_lock);
        success = cfg->check(cfg->arg, &s->req, status, status ? (s->resp ? s->resp : "") : NULL,
                             status ? s->resp_len : 0);
        pthread_mutex_unlock(&t->sh->cb_lock);
    } else {
        success = status >= 200 && status < 300;
    }
    if (end < t->sh->t0_ns || end >= t->sh->t1_ns)
        return; /* warm-up or drain */
    if (success) {
        t->ok++;
        record_latency(t, end - s->started_ns);
        return;
    }
    count_status(t, status);
    if (status) {
        t->rejected++;
        return;
    }
    t->errors++;
    if (!t->first_error[0])
        snprintf(t->first_error, sizeof t->first_error, "%s", curl_easy_strerror(result));
}

static void *thread_main(void *arg)
{
    load_thread *t = arg;
    const bench_load_config *cfg = t->sh->cfg;
    int active = 0, stopping = 0;
    int64_t drain_until = 0;
    long timeout = cfg->timeout_ms > 0 ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
    for (int i = 0; i < t->n; i++)
        active += slot_start(&t->slots[i]);
    while (active > 0) {
        int64_t now = now_ns();
        if (!stopping && ((t->sh->timed && now >= t->sh->t1_ns) || stop_asked(cfg))) {
            stopping = 1;
            drain_until = now + (int64_t)(stop_asked(cfg) ? INTERRUPT_DRAIN_MS : timeout) * 1000000;
        }
        if (stopping && now >= drain_until)
            break;
        int running = 0;
        curl_multi_perform(t->m, &running);
        CURLMsg *msg;
        int queued;
        while ((msg = curl_multi_info_read(t->m, &queued))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            slot *s = NULL;
            CURLcode result = msg->data.result;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            slot_done(s, result);
            active--;
            if (!stopping && !stop_asked(cfg) && !(t->sh->timed && now_ns() >= t->sh->t1_ns))
                active += slot_start(s);
        }
        if (active > 0)
            curl_multi_poll(t->m, NULL, 0, POLL_MS, NULL);
    }
    return NULL;
}

static void sleep_until(int64_t deadline_ns, const bench_load_config *cfg)
{
    for (;;) {
        int64_t left = deadline_ns - now_ns();
        if (left <= 0 || stop_asked(cfg))
            return;
        if (left > 50000000)
            left = 50000000;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = left};
        nanosleep(&ts, NULL);
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest rank. */
static double percentile_ms(const uint32_t *v, size_t n, double p)
{
    if (!n)
        return 0;
    size_t rank = (size_t)(p * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return v[rank - 1] / 1000.0;
}

static void merge(load_thread *threads, int n_threads, bench_load_result *out, rk_rc *rc)
{
    size_t total = 0;
    for (int i = 0; i < n_threads; i++)
        total += threads[i].n_lat;
    uint32_t *all = total ? malloc(total * sizeof *all) : NULL;
    if (total && !all) {
        *rc = RK_ERR_NOMEM;
        return;
    }
    size_t k = 0;
    double sum = 0;
    for (int i = 0; i < n_threads; i++) {
        load_thread *t = &threads[i];
        memcpy(all + k, t->lat, t->n_lat * sizeof *all);
        k += t->n_lat;
        out->ok += t->ok;
        out->rejected += t->rejected;
        out->errors += t->errors;
        out->sent += t->sent;
        out->connects += t->connects;
        if (!out->first_error[0] && t->first_error[0])
            snprintf(out->first_error, sizeof out->first_error, "%s", t->first_error);
        for (int j = 0; j < t->n_statuses; j++) {
            int m;
            for (m = 0; m < out->n_statuses; m++)
                if (out->statuses[m].status == t->statuses[j].status)
                    break;
            if (m == out->n_statuses) {
                if (m == BENCH_MAX_STATUSES)
                    continue;
                out->statuses[out->n_statuses++] = (bench_status_count){.status = t->statuses[j].status};
            }
            out->statuses[m].count += t->statuses[j].count;
        }
        if (t->nomem)
            *rc = RK_ERR_NOMEM;
    }
    for (size_t i = 0; i < total; i++)
        sum += all[i];
    if (total)
        qsort(all, total, sizeof *all, cmp_u32);
    out->p50_ms = percentile_ms(all, total, 0.50);
    out->p90_ms = percentile_ms(all, total, 0.90);
    out->p99_ms = percentile_ms(all, total, 0.99);
    out->max_ms = total ? all[total - 1] / 1000.0 : 0;
    out->mean_ms = total ? sum / (double)total / 1000.0 : 0;
    out->rate = out->elapsed_s > 0 ? (double)out->ok / out->elapsed_s : 0;
    free(all);
}

/* Gives each thread its share of the connections, a multi handle and its
 * slots. */
static rk_rc threads_init(shared *sh, load_thread *threads, int n_threads, slot *slots)
{
    const bench_load_config *cfg = sh->cfg;
    for (int i = 0, first = 0; i < n_threads; i++) {
        load_thread *t = &threads[i];
        int share = cfg->concurrency / n_threads + (i < cfg->concurrency % n_threads);
        t->sh = sh;
        t->slots = slots + first;
        t->n = share;
        first += share;
        if (!(t->m = curl_multi_init()))
            return RK_ERR_NOMEM;
        curl_multi_setopt(t->m, CURLMOPT_MAXCONNECTS, (long)share);
        curl_multi_setopt(t->m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)share);
        curl_multi_setopt(t->m, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
        for (int j = 0; j < share; j++) {
            rk_rc rc = slot_init(&t->slots[j], t);
            if (rc != RK_OK)
                return rc;
        }
    }
    return RK_OK;
}

static void threads_free(load_thread *threads, int n_threads)
{
    for (int i = 0; i < n_threads; i++) {
        load_thread *t = &threads[i];
        for (int j = 0; t->slots && j < t->n; j++)
            slot_free(&t->slots[j], t->m);
        if (t->m)
            curl_multi_cleanup(t->m);
        free(t->lat);
    }
}

/* Sets the measured window: after the warm-up when timed, else from now
 * until the work runs out. */
static void set_window(shared *sh)
{
    const bench_load_config *cfg = sh->cfg;
    int64_t begin = now_ns();
    if (sh->timed) {
        sh->t0_ns = begin + (int64_t)(cfg->warmup * 1e9);
        sh->t1_ns = sh->t0_ns + (int64_t)(cfg->seconds * 1e9);
    } else {
        sh->t0_ns = begin;
        sh->t1_ns = INT64_MAX;
    }
}

/* Runs the threads until they end, calling cfg->mark at the start and the
 * end of the measured window; its length goes to out->elapsed_s. */
static rk_rc run_threads(shared *sh, load_thread *threads, int n_threads, bench_load_result *out)
{
    const bench_load_config *cfg = sh->cfg;
    rk_rc rc = RK_OK;
    int started = 0;
    for (; started < n_threads; started++)
        if (pthread_create(&threads[started].tid, NULL, thread_main, &threads[started]) != 0) {
            rc = RK_ERR_NOMEM;
            break;
        }
    int64_t window_end = 0;
    if (sh->timed) {
        sleep_until(sh->t0_ns, cfg);
        if (cfg->mark)
            cfg->mark(cfg->arg, 0);
        sleep_until(sh->t1_ns, cfg);
        window_end = now_ns();
        if (window_end > sh->t1_ns)
            window_end = sh->t1_ns;
        if (cfg->mark)
            cfg->mark(cfg->arg, 1);
    } else if (cfg->mark) {
        cfg->mark(cfg->arg, 0);
    }
    for (int i = 0; i < started; i++)
        pthread_join(threads[i].tid, NULL);
    if (!sh->timed) {
        window_end = now_ns();
        if (cfg->mark)
            cfg->mark(cfg->arg, 1);
    }
    out->elapsed_s = (double)(window_end - sh->t0_ns) / 1e9;
    if (out->elapsed_s < 0)
        out->elapsed_s = 0;
    return rc;
}

rk_rc bench_load_run(const bench_load_config *cfg, bench_load_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!cfg->base_url || !cfg->cert || !cfg->key || !cfg->ca_path || cfg->concurrency < 1) {
        snprintf(err, errlen, "load generator: incomplete configuration");
        return RK_ERR_INVALID;
    }
    pthread_once(&curl_once, curl_init_once);
    int n_threads = cfg->threads > 0 ? cfg->threads : 1;
    if (n_threads > cfg->concurrency)
        n_threads = cfg->concurrency;
    shared sh = {.cfg = cfg, .timed = cfg->seconds > 0};
    rk_rc rc = RK_OK;
    load_thread *threads = calloc((size_t)n_threads, sizeof *threads);
    slot *slots = calloc((size_t)cfg->concurrency, sizeof *slots);
    sh.headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (sh.headers)
        sh.headers = curl_slist_append(sh.headers, "Expect:");
    pthread_mutex_init(&sh.cb_lock, NULL);
    if (!threads || !slots || !sh.headers) {
        rc = RK_ERR_NOMEM;
    } else if ((rc = threads_init(&sh, threads, n_threads, slots)) == RK_OK) {
        set_window(&sh);
        rc = run_threads(&sh, threads, n_threads, out);
        if (rc == RK_OK)
            merge(threads, n_threads, out, &rc);
    }
    if (threads)
        threads_free(threads, n_threads);
    free(threads);
    free(slots);
    curl_slist_free_all(sh.headers);
    pthread_mutex_destroy(&sh.cb_lock);
    if (rc != RK_OK)
        snprintf(err, errlen, "load generator: %s", rk_strerror(rc));
    return rc;
}

void bench_load_print(FILE *out, const char *label, const char *unit, const bench_load_result *r, int concurrency)
{
    fprintf(out, "%s\n", label);
    fprintf(out, "  rate         %.1f %s/s  (%llu in %.2f s, %d concurrent)\n", r->rate, unit,
            (unsigned long long)r->ok, r->elapsed_s, concurrency);
    fprintf(out, "  latency ms   p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  mean %.2f\n", r->p50_ms, r->p90_ms,
            r->p99_ms, r->max_ms, r->mean_ms);
    fprintf(out, "  not counted  %llu other answers, %llu errors", (unsigned long long)r->rejected,
            (unsigned long long)r->errors);
    for (int i = 0; i < r->n_statuses; i++) {
        fputs(i ? ", " : "  (", out);
        if (r->statuses[i].status)
            fprintf(out, "HTTP %ld", r->statuses[i].status);
        else
            fputs("no answer", out);
        fprintf(out, " x%llu", (unsigned long long)r->statuses[i].count);
    }
    if (r->n_statuses)
        fputc(')', out);
    fputc('\n', out);
    if (r->first_error[0])
        fprintf(out, "  first error  %s\n", r->first_error);
    fprintf(out, "  connections  %ld opened for %d concurrent over %llu requests%s\n", r->connects, concurrency,
            (unsigned long long)r->sent,
            r->connects > (long)concurrency + concurrency / 10 + 1 ? "  (connections were not kept alive!)" : "");
    fflush(out);
}
