/* queries.c — `renkei bench queries`: the same queries asked one by one and
 * as batch queries (一括照会) in one run, through a fresh network: the time
 * each way takes to complete, queries per second, and the CPU seconds of
 * every process. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/ids.h"
#include "lib/util.h"
#include "tools/bench/bench.h"

#define POLL_MS 100
#define CALL_TIMEOUT_MS 30000
#define SETTLE_STALL_MS 120000 /* the batches give up after this long without progress */

static const char usage_queries[] =
    "usage: renkei bench queries [--queries N] [--batch N] [--concurrency N] [--persons N]\n"
    "                            [--workers N] [--store sqlite|postgres] [--keep]\n"
    "\n"
    "Builds a fresh network in a temporary folder (3 agencies), enrols N persons\n"
    "(default 200) at city-yokohama and pref-kanagawa and stores a local_tax value\n"
    "for each at city-yokohama. Then pref-kanagawa's business system asks for the\n"
    "same queries twice (public_assistance, local_tax from city-yokohama, person i\n"
    "modulo N, fresh query ids each time): one by one (POST /v1/queries, C\n"
    "connections) until all are answered, then as batches (POST /v1/queries/batch,\n"
    "all handed over at once) until every query has settled (GET\n"
    "/v1/queries/batch/{batch_id}). Prints, for each way, the time to complete,\n"
    "queries per second, the answers by status, and the CPU seconds each process\n"
    "used.\n"
    "\n"
    "  --queries N          queries each way (default 10000)\n"
    "  --batch N            queries per batch, 1..1000 (default 1000)\n"
    "  --concurrency N      connections of the one-by-one run, 1..1024 (default 64)\n"
    "  --persons N          persons enrolled and queried (default 200)\n"
    "  --workers N          handler threads of every node (default: the nodes'\n"
    "                       own default, 16)\n"
    "  --store S            sqlite (default) or postgres: the nodes' data in one\n"
    "                       PostgreSQL server of the network (net init --store)\n"
    "  --keep               keep the network folder\n";

typedef struct one_job {
    size_t n, next, persons;
    char run[20];
    uint64_t provided, other;
    char other_status[64];
} one_job;

typedef struct way {
    int ran;
    double seconds;
    uint64_t provided, other;
    bench_proc_snap before, after;
} way;

static int one_next(void *arg, bench_request *req)
{
    one_job *j = arg;
    if (j->next == j->n)
        return 0;
    size_t i = j->next++;
    req->body_len = (size_t)bench_fmt(req->body, BENCH_BODY_CAP,
                                      "{\"query_id\":\"one-%s-%zu\",\"person\":\"P%07zu\","
                                      "\"business\":\"public_assistance\",\"provider\":\"city-yokohama\","
                                      "\"item\":\"local_tax\",\"operator\":\"bench\"}",
                                      j->run, i, i % j->persons);
    return 1;
}

static int one_check(void *arg, const bench_request *req, long status, const char *body, size_t len)
{
    one_job *j = arg;
    json_t *doc = status == 200 && body ? json_loadb(body, len, 0, NULL) : NULL;
    int provided = strcmp(json_string_value(json_object_get(doc, "status")) ?: "", "provided") == 0;
    json_decref(doc);
    if (provided)
        j->provided++;
    else if (j->other++ == 0)
        bench_fmt(j->other_status, sizeof j->other_status, "HTTP %ld", status);
    return provided;
}

/* 1. one by one, through the load generator until every query is answered. */
static int run_one_by_one(bench_exch_net *x, const bench_opts *o, int queries, const char *run, way *w, char *err,
                          size_t errlen)
{
    one_job j = {.n = (size_t)queries, .persons = (size_t)o->persons};
    bench_fmt(j.run, sizeof j.run, "%s", run);
    bench_load_config cfg = bench_net_load_cfg(&x->n, bench_net_node(&x->n, RK_ROLE_AGENCY, "pref-kanagawa"),
                                               &x->kanagawa, o->concurrency, 1);
    cfg.path = "/v1/queries";
    cfg.method = "POST";
    cfg.next = one_next;
    cfg.check = one_check;
    cfg.arg = &j;
    bench_load_result r;
    bench_snap_take(&w->before);
    double t = rk_mono_s();
    if (bench_load_run(&cfg, &r, err, errlen) != RK_OK)
        return bench_failure("%s", err);
    w->seconds = rk_mono_s() - t;
    bench_snap_take(&w->after);
    w->ran = 1;
    w->provided = j.provided;
    w->other = j.other;
    printf("\none by one: %d POST /v1/queries over %d connections\n", queries, o->concurrency);
    printf("  completed in %.2f s: %.1f queries/s, %" PRIu64 " provided, %" PRIu64 " other%s%s\n", w->seconds,
           (double)queries / w->seconds, w->provided, w->other, j.other_status[0] ? ", the first " : "",
           j.other_status);
    bench_cpu_print(&w->before, &w->after, "CPU seconds used", w->provided, "query");
    return 0;
}

/* One call to pref-kanagawa's agency node as its business system. */
static rk_rc call(bench_exch_net *x, const char *method, const char *path, const char *body, rk_http_result *res)
{
    const rk_peer_node *node = bench_net_node(&x->n, RK_ROLE_AGENCY, "pref-kanagawa");
    char url[RK_URL_MAX + 128];
    bench_fmt(url, sizeof url, "%s%s", node->url, path);
    return rk_client_call(x->kanagawa.client, method, url, node->pin[0] ? node->pin : NULL, body,
                          body ? strlen(body) : 0, CALL_TIMEOUT_MS, res);
}

/* Hands over every batch; their ids in ids (each RK_ID_FIELD_MAX + 1). */
static int submit_batches(bench_exch_net *x, const bench_opts *o, int queries, const char *run,
                          char (*ids)[RK_ID_FIELD_MAX + 1], int n_batches)
{
    for (int b = 0; b < n_batches; b++) {
        json_t *list = json_array();
        for (int i = b * o->batch; list && i < queries && i < (b + 1) * o->batch; i++) {
            char qid[64], person[16];
            bench_fmt(qid, sizeof qid, "bat-%s-%d", run, i);
            bench_fmt(person, sizeof person, "P%07d", i % o->persons);
            json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "query_id", qid, "person", person,
                                                  "business", "public_assistance", "provider", "city-yokohama",
                                                  "item", "local_tax", "operator", "bench"));
        }
        bench_fmt(ids[b], RK_ID_FIELD_MAX + 1, "bench-%s-%d", run, b);
        json_t *msg = list ? json_pack("{s:s,s:o}", "batch_id", ids[b], "queries", list) : NULL;
        char *body = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
        json_decref(msg);
        rk_http_result res = {0};
        rk_rc rc = body ? call(x, "POST", "/v1/queries/batch", body, &res) : RK_ERR_NOMEM;
        free(body);
        long status = res.status;
        rk_http_result_clear(&res);
        if (rc != RK_OK || status != 202)
            return bench_failure("POST /v1/queries/batch %s: %s, HTTP %ld", ids[b], rk_strerror(rc), status);
    }
    return 0;
}

/* The progress of batch id: settled and provided so far; -1 on failure. */
static int batch_progress(bench_exch_net *x, const char *id, int64_t *settled, int64_t *provided)
{
    char path[RK_ID_FIELD_MAX + 64];
    bench_fmt(path, sizeof path, "/v1/queries/batch/%s?limit=1", id);
    rk_http_result res = {0};
    rk_rc rc = call(x, "GET", path, NULL, &res);
    json_t *doc = rc == RK_OK && res.status == 200 && res.body ? json_loads(res.body, 0, NULL) : NULL;
    rk_http_result_clear(&res);
    *settled = json_integer_value(json_object_get(doc, "settled"));
    *provided = json_integer_value(json_object_get(json_object_get(doc, "by_status"), "provided"));
    int ok = doc != NULL;
    json_decref(doc);
    return ok ? 0 : -1;
}

/* 2. as batches: every batch handed over, then polled until all settled. */
static int run_batches(bench_exch_net *x, const bench_opts *o, int queries, const char *run, way *w)
{
    int n_batches = (queries + o->batch - 1) / o->batch;
    char (*ids)[RK_ID_FIELD_MAX + 1] = calloc((size_t)n_batches, sizeof *ids);
    int64_t *done = calloc((size_t)n_batches, sizeof *done), *provided = calloc((size_t)n_batches, sizeof *provided);
    int code = ids && done && provided ? 0 : bench_failure("out of memory");
    rk_progress *bar = NULL;
    bench_snap_take(&w->before);
    double t = rk_mono_s(), submitted = 0;
    if (!code && (code = submit_batches(x, o, queries, run, ids, n_batches)) == 0) {
        submitted = rk_mono_s() - t;
        bar = rk_progress_new("batch", (uint64_t)queries, stderr);
    }
    int64_t total = 0, last_move = rk_mono_ms();
    while (!code && total < queries && !bench_stop) {
        int64_t before = total;
        total = 0;
        for (int b = 0; b < n_batches; b++) {
            if (done[b] < o->batch && batch_progress(x, ids[b], &done[b], &provided[b]) != 0) {
                code = bench_failure("GET /v1/queries/batch/%s failed", ids[b]);
                break;
            }
            total += done[b];
        }
        rk_progress_add(bar, (uint64_t)(total - before));
        if (total > before)
            last_move = rk_mono_ms();
        else if (rk_mono_ms() - last_move > SETTLE_STALL_MS)
            code = bench_failure("the batches made no progress for %d s (%" PRId64 " of %d settled)",
                                 SETTLE_STALL_MS / 1000, total, queries);
        if (!code && total < queries)
            tk_sleep_ms(POLL_MS);
    }
    rk_progress_finish(bar);
    w->seconds = rk_mono_s() - t;
    bench_snap_take(&w->after);
    for (int b = 0; !code && b < n_batches; b++)
        w->provided += (uint64_t)provided[b];
    w->other = (uint64_t)total - w->provided;
    free(ids);
    free(done);
    free(provided);
    if (code || bench_stop)
        return code ? code : bench_failure("interrupted");
    w->ran = 1;
    printf("\nas batches: %d queries in %d POST /v1/queries/batch of up to %d (handed over in %.2f s)\n", queries,
           n_batches, o->batch, submitted);
    printf("  completed in %.2f s: %.1f queries/s, %" PRIu64 " provided, %" PRIu64 " other\n", w->seconds,
           (double)queries / w->seconds, w->provided, w->other);
    bench_cpu_print(&w->before, &w->after, "CPU seconds used", w->provided, "query");
    return 0;
}

int bench_cmd_queries(int argc, char **argv)
{
    static const struct option table[] = {
        {"queries", required_argument, NULL, BENCH_OPT_QUERIES},
        {"batch", required_argument, NULL, BENCH_OPT_BATCH},
        {"concurrency", required_argument, NULL, BENCH_OPT_CONCURRENCY},
        {"persons", required_argument, NULL, BENCH_OPT_PERSONS},
        {"workers", required_argument, NULL, BENCH_OPT_WORKERS},
        {"store", required_argument, NULL, BENCH_OPT_STORE},
        {"keep", no_argument, NULL, BENCH_OPT_KEEP},
        BENCH_O_HELP,
        BENCH_O_END,
    };
    bench_opts o = {.concurrency = 64, .persons = 200, .batch = RK_BATCH_MAX, .queries = 10000};
    enum bench_parse_result pr = bench_parse_opts(argc, argv, table, &o);
    if (pr != BENCH_PARSE_OK)
        return pr == BENCH_PARSE_HELP ? (fputs(usage_queries, stdout), 0) : TK_EXIT_USAGE;
    bench_install_signals();
    printf("renkei bench queries: 3 agencies, %d persons, %d queries each way (one by one over %d connections; "
           "batches of %d), node workers %s\n",
           o.persons, o.queries, o.concurrency, o.batch, o.workers ? "set" : "default");
    fflush(stdout);
    char run[20], err[1024] = "";
    bench_fmt(run, sizeof run, "%lx", (unsigned long)time(NULL) ^ ((unsigned long)getpid() << 16));
    bench_exch_net x = {0};
    way one = {0}, batch = {0};
    int code = bench_exch_net_open(&x, &o, err, sizeof err);
    if (!code)
        code = run_one_by_one(&x, &o, o.queries, run, &one, err, sizeof err);
    if (!code)
        code = run_batches(&x, &o, o.queries, run, &batch);
    if (!code) {
        printf("\n");
        bench_rss_print();
        printf("\nsummary (%d queries each way, %ld cores)\n", o.queries, sysconf(_SC_NPROCESSORS_ONLN));
        printf("  %-28s %8.2f s  %10.1f queries/s\n", "one by one (POST /v1/queries)", one.seconds,
               (double)o.queries / one.seconds);
        printf("  %-28s %8.2f s  %10.1f queries/s\n", "batches (/v1/queries/batch)", batch.seconds,
               (double)o.queries / batch.seconds);
        printf("  %-28s %8.2f\n", "batches / one by one", one.seconds / batch.seconds);
        fflush(stdout);
    }
    return bench_exch_net_close(&x, o.keep, code);
}
