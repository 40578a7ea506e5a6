/* records.c — `renkei bench records`: the core's records log from 10^3 to
 * N records (issue: the records log at national scale). Records are
 * appended to the running core's log through the records store — the code
 * an exchange's record takes, group commit included — while the core tiles
 * and signs them at its production interval; at each size 10^3, 10^4, …, N
 * inclusion and consistency proofs are timed over HTTPS. Then bytes on disk
 * per record, the append rate, the nodes' peak RSS and the time and peak
 * RSS of `renkei records verify`. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/util.h"
#include "node/config.h"
#include "records/merkle.h"
#include "records/records.h"
#include "store/db.h"
#include "tools/bench/bench.h"

static const char usage_records[] =
    "usage: renkei bench records [--records N] [--threads T] [--store sqlite|postgres] [--keep]\n"
    "\n"
    "Builds a fresh network and appends N synthetic records (default 1000000)\n"
    "to the core's records log through the records store (group commit; the\n"
    "core tiles and signs them every 2 s as in production). At 10^3, 10^4, …\n"
    "and N records it times 1000 random inclusion proofs and 100 consistency\n"
    "proofs over HTTPS (p50, p99). Then: the append rate, bytes on disk per\n"
    "record (tiles included), the peak RSS of every node, and the time and\n"
    "peak RSS of `renkei records verify`.\n"
    "\n"
    "  --records N   1000..1000000000 (default 1000000)\n"
    "  --threads T   appending threads (default 4)\n"
    "  --store S     sqlite (default) or postgres: the network's data in PostgreSQL\n"
    "                (bytes on disk are then not measured)\n"
    "  --keep        keep the network folder (printed on a 'network: DIR' line)\n";

#define APPEND_CHUNK 256   /* records per write callback */
#define PROOFS 1000
#define CONSISTENCY_PROOFS 100
#define CALL_TIMEOUT_MS 30000

typedef struct rec_bench {
    bench_opts o;
    bench_net n;
    rk_db *db;                 /* the core's database, opened as a second writer */
    const rk_peer_node *core;
    pthread_mutex_t lock;
    unsigned long long next, target; /* records handed out to appenders, and where this stage ends */
    rk_rc append_rc;
    double append_s;           /* time spent appending, waits excluded */
    char err[1024];
} rec_bench;

typedef struct chunk {
    unsigned long long from, to;
} chunk;

static rk_rc append_fn(rk_db *db, void *arg)
{
    const chunk *c = arg;
    rk_record r;
    memset(&r, 0, sizeof r);
    snprintf(r.side, sizeof r.side, "core");
    snprintf(r.requester, sizeof r.requester, "city-yokohama");
    snprintf(r.provider, sizeof r.provider, "pref-kanagawa");
    snprintf(r.business, sizeof r.business, "public_assistance");
    snprintf(r.item, sizeof r.item, "local_tax");
    snprintf(r.operator_id, sizeof r.operator_id, "bench");
    snprintf(r.outcome, sizeof r.outcome, "provided");
    rk_rc rc = RK_OK;
    for (unsigned long long i = c->from; i < c->to && rc == RK_OK; i++) {
        snprintf(r.exchange_id, sizeof r.exchange_id, "city-yokohama.bench-%llu", i);
        snprintf(r.subject, sizeof r.subject, "%llu", i % 1000003);
        r.requested_ms = 1700000000000LL + (long long)i;
        r.provided_ms = r.requested_ms + 40;
        uint8_t h[32];
        rk_merkle_leaf_hash(r.exchange_id, strlen(r.exchange_id), h); /* a payload digest stands in */
        rk_hex(h, sizeof h, r.payload_sha256);
        rc = rk_record_append(db, &r);
    }
    return rc;
}

static void *appender(void *arg)
{
    rec_bench *b = arg;
    for (;;) {
        pthread_mutex_lock(&b->lock);
        chunk c = {b->next, b->next + APPEND_CHUNK};
        if (c.to > b->target)
            c.to = b->target;
        b->next = c.to;
        int done = c.from >= c.to || b->append_rc != RK_OK || bench_stop;
        pthread_mutex_unlock(&b->lock);
        if (done)
            return NULL;
        rk_rc rc = rk_db_write(b->db, append_fn, &c);
        if (rc != RK_OK) {
            pthread_mutex_lock(&b->lock);
            b->append_rc = rc;
            pthread_mutex_unlock(&b->lock);
            return NULL;
        }
    }
}

/* Appends records until there are `target`. */
static rk_rc append_to(rec_bench *b, unsigned long long target)
{
    pthread_t t[64];
    int n = b->o.threads;
    b->target = target;
    double start = rk_mono_s();
    for (int i = 0; i < n; i++)
        if (pthread_create(&t[i], NULL, appender, b) != 0)
            return RK_ERR_NOMEM;
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    b->append_s += rk_mono_s() - start;
    return bench_stop ? RK_ERR_TIMEOUT : b->append_rc;
}

/* GET a path of the core as the operator: the body on 200. */
static rk_rc core_get(rec_bench *b, const char *path, rk_http_result *res)
{
    char url[RK_URL_MAX + 256];
    bench_fmt(url, sizeof url, "%s%s", b->core->url, path);
    rk_rc rc = rk_client_call(b->n.op.client, "GET", url, b->core->pin[0] ? b->core->pin : NULL, NULL, 0,
                              CALL_TIMEOUT_MS, res);
    if (rc == RK_OK && (res->status != 200 || !res->body))
        rc = RK_ERR_UPSTREAM;
    return rc;
}

/* Waits until the core's checkpoint has `size` records. */
static rk_rc wait_checkpoint(rec_bench *b, unsigned long long size)
{
    double deadline = rk_mono_s() + 120;
    while (!bench_stop && rk_mono_s() < deadline) {
        rk_http_result res = {0};
        rk_rc rc = core_get(b, "/v1/checkpoint", &res);
        unsigned long long got = 0;
        const char *nl = rc == RK_OK ? strchr(res.body, '\n') : NULL;
        if (nl)
            got = strtoull(nl + 1, NULL, 10);
        rk_http_result_clear(&res);
        if (got >= size)
            return RK_OK;
        tk_sleep_ms(50);
    }
    return RK_ERR_TIMEOUT;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    int i = (int)(p * (n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

/* Times n proofs of one kind at tree size `size` (a signed head of exactly
 * that size), at random positions; ms gets each call's milliseconds. */
static rk_rc time_kind(rec_bench *b, int consistency, unsigned long long size, double *ms, int n)
{
    char path[256];
    unsigned long long seed = size * 2654435761ULL + 1 + (unsigned)consistency;
    for (int i = 0; i < n && !bench_stop; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        unsigned long long r = (seed >> 17) % size;
        if (consistency)
            bench_fmt(path, sizeof path, "/v1/records/consistency?from=%llu&to=%llu", r + 1, size);
        else
            bench_fmt(path, sizeof path, "/v1/records/proof?index=%llu&tree_size=%llu", r, size);
        rk_http_result res = {0};
        double t = rk_mono_s();
        rk_rc rc = core_get(b, path, &res);
        ms[i] = (rk_mono_s() - t) * 1000;
        rk_http_result_clear(&res);
        if (rc != RK_OK) {
            bench_fmt(b->err, sizeof b->err, "%s proof at size %llu: %s", consistency ? "consistency" : "inclusion",
                      size, rk_strerror(rc));
            return rc;
        }
    }
    return RK_OK;
}

static rk_rc time_proofs(rec_bench *b, unsigned long long size)
{
    static double inc[PROOFS], con[CONSISTENCY_PROOFS];
    rk_rc rc = time_kind(b, 0, size, inc, PROOFS);
    if (rc == RK_OK)
        rc = time_kind(b, 1, size, con, CONSISTENCY_PROOFS);
    if (rc != RK_OK)
        return rc;
    printf("  %12llu records: inclusion p50 %6.2f ms  p99 %6.2f ms | consistency p50 %6.2f ms  p99 %6.2f ms\n", size,
           pct(inc, PROOFS, 0.5), pct(inc, PROOFS, 0.99), pct(con, CONSISTENCY_PROOFS, 0.5),
           pct(con, CONSISTENCY_PROOFS, 0.99));
    fflush(stdout);
    return RK_OK;
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

/* `renkei records verify DIR` as a child: its time and peak RSS. */
static void time_verify(rec_bench *b)
{
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0)
        return;
    exe[len] = '\0';
    double t = rk_mono_s();
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout))
            _exit(127);
        execl(exe, exe, "records", "verify", b->n.dir, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    if (pid < 0 || wait4(pid, &status, 0, &ru) != pid)
        return;
    double s = rk_mono_s() - t;
    printf("  records verify (every node, streaming): %.1f s, %.0f records/s, peak RSS %.1f MiB, exit %d\n", s,
           (double)b->o.records / s, (double)ru.ru_maxrss / 1024.0, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

static int run(rec_bench *b)
{
    rk_rc rc;
    printf("renkei bench records: %lld records appended to the core's log, %d appending threads\n", b->o.records,
           b->o.threads);
    if ((rc = bench_net_open(&b->n, 10, 0, &b->o, b->err, sizeof b->err)) != RK_OK)
        return bench_failure("%s", b->err[0] ? b->err : rk_strerror(rc));
    bench_note("network: %s (%s)", b->n.dir, b->o.postgres ? "PostgreSQL" : "SQLite");
    b->core = bench_net_node(&b->n, RK_ROLE_CORE, NULL);
    char path[TK_PATH_CAP];
    /* the core's store as its node.conf names it: the records are appended there */
    rk_node_config *cfg = calloc(1, sizeof *cfg);
    bench_fmt(path, sizeof path, "%s/nodes/%s/node.conf", b->n.dir, b->core->id);
    rc = cfg ? rk_config_load(path, cfg, b->err, sizeof b->err) : RK_ERR_NOMEM;
    if (rc == RK_OK)
        rc = rk_db_open(cfg->db, 0, &b->db);
    free(cfg);
    if (rc != RK_OK)
        return bench_failure("cannot open the core's store: %s", rk_strerror(rc));
    printf("  proofs from tiles over HTTPS, %d inclusion and %d consistency at each size:\n", PROOFS,
           CONSISTENCY_PROOFS);
    unsigned long long size = 1000;
    for (;;) {
        unsigned long long target = size < (unsigned long long)b->o.records ? size : (unsigned long long)b->o.records;
        if ((rc = append_to(b, target)) != RK_OK)
            return bench_failure("appending records: %s", rk_strerror(rc));
        if ((rc = wait_checkpoint(b, target)) != RK_OK)
            return bench_failure("no checkpoint of %llu records in time", target);
        if ((rc = time_proofs(b, target)) != RK_OK)
            return bench_failure("%s", b->err);
        if (target == (unsigned long long)b->o.records)
            break;
        size *= 10;
    }
    printf("  append: %lld records in %.1f s: %.0f records/s (group commit, %d threads)\n", b->o.records, b->append_s,
           (double)b->o.records / b->append_s, b->o.threads);
    rk_db_close(b->db);
    b->db = NULL;
    if (!b->o.postgres) {
        bench_fmt(path, sizeof path, "%s/nodes/%s/node.db", b->n.dir, b->core->id);
        long long bytes = file_size(path);
        bench_fmt(path, sizeof path, "%s/nodes/%s/node.db-wal", b->n.dir, b->core->id);
        bytes += file_size(path);
        printf("  on disk: %.1f MiB for the core's database, %.0f bytes per record (records, indexes, tiles, heads)\n",
               (double)bytes / (1 << 20), (double)bytes / (double)b->o.records);
    }
    bench_rss_print();
    rk_rc closed = bench_net_close(&b->n, 1); /* stopped; the folder stays for verify */
    time_verify(b);
    if (!b->o.keep) {
        char cmd[TK_PATH_CAP + 16];
        bench_fmt(cmd, sizeof cmd, "rm -rf '%s'", b->n.dir);
        if (system(cmd) != 0)
            fprintf(stderr, "renkei bench: cannot remove %s\n", b->n.dir);
    } else {
        printf("network: %s\n", b->n.dir);
    }
    return closed == RK_OK ? 0 : 1;
}

int bench_cmd_records(int argc, char **argv)
{
    static const struct option opts[] = {
        {"records", required_argument, NULL, BENCH_OPT_RECORDS},
        {"threads", required_argument, NULL, BENCH_OPT_THREADS},
        {"keep", no_argument, NULL, BENCH_OPT_KEEP},
        {"store", required_argument, NULL, BENCH_OPT_STORE},
        BENCH_O_HELP,
        BENCH_O_END,
    };
    rec_bench b;
    memset(&b, 0, sizeof b);
    b.o.records = 1000000;
    b.o.threads = 4;
    switch (bench_parse_opts(argc, argv, opts, &b.o)) {
    case BENCH_PARSE_HELP:
        return fputs(usage_records, stdout), 0;
    case BENCH_PARSE_USAGE:
        return TK_EXIT_USAGE;
    case BENCH_PARSE_OK:
        break;
    }
    bench_install_signals();
    pthread_mutex_init(&b.lock, NULL);
    int code = run(&b);
    if (b.db)
        rk_db_close(b.db);
    if (b.n.procs)
        bench_net_close(&b.n, b.o.keep);
    pthread_mutex_destroy(&b.lock);
    return code;
}
