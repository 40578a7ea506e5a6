/* exchanges.c — `renkei bench exchanges`: exchanges per second through a
 * fresh network, one node alone, and (--baseline) nginx with mutual TLS. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/util.h"
#include "net/registry.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_load.h"
#include "tools/net/net.h"
#include "tools/toolkit.h"

#define BASELINE_START_MS 10000
#define BASELINE_STOP_MS 10000
#define BASELINE_DEFAULT "/work/shared/bench/nginx-mtls-baseline"
#define BASELINE_REL "../shared/bench/nginx-mtls-baseline"

static const char usage_exchanges[] =
    "usage: renkei bench exchanges [--concurrency N] [--seconds S] [--warmup S]\n"
    "                              [--persons N] [--baseline] [--workers N] [--keep]\n"
    "                              [--store sqlite|postgres] [--core-instances N]\n"
    "\n"
    "Builds a fresh network in a temporary folder (3 agencies), enrols N persons\n"
    "(default 200) at city-yokohama and pref-kanagawa, stores a local_tax value\n"
    "for each at city-yokohama, then loads pref-kanagawa's agency node with\n"
    "POST /v1/queries (public_assistance, provider city-yokohama, item local_tax,\n"
    "a fresh query_id and a random person each time) and counts the 'provided'\n"
    "answers. Then measures one node alone (GET /healthz on the core as the\n"
    "operator: TLS + authentication + JSON) and, with --baseline, nginx with\n"
    "mutual TLS 1.3 answering a static 200 (POST /), with the same generator.\n"
    "Prints rates, latency percentiles, the ratio renkei/nginx and the CPU\n"
    "seconds each process used during each measured window.\n"
    "\n"
    "  --concurrency N      connections, 1..1024 (default 64)\n"
    "  --threads T          client threads (default 1)\n"
    "  --seconds S          measured window of each run (default 10)\n"
    "  --warmup S           warm-up before each window (default 2)\n"
    "  --persons N          persons enrolled and queried (default 200)\n"
    "  --baseline           also run the nginx baseline: $RENKEI_BASELINE, else\n"
    "                       $RENKEI_SOURCE_DIR/" BASELINE_REL ",\n"
    "                       else " BASELINE_DEFAULT "\n"
    "  --baseline-workers W nginx worker processes (default 1)\n"
    "  --workers N          handler threads of every node (default: the nodes'\n"
    "                       own default, 16)\n"
    "  --keep               keep the network folder\n"
    "  --store S            sqlite (default) or postgres: the nodes' data in one\n"
    "                       PostgreSQL server of the network (net init --store)\n"
    "  --core-instances N   the core as N instances over one database (with\n"
    "                       --store postgres; net init --core-instances)\n";

typedef struct query_job {
    size_t persons;
    uint64_t counter;
    uint64_t rng;
    char run[20];
    uint64_t provided, other;
    char other_status[64]; /* the first non-"provided" answer's status or error */
    bench_proc_snap before, after;
} query_job;

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static int query_next(void *arg, bench_request *req)
{
    query_job *j = arg;
    size_t person = (size_t)(xorshift(&j->rng) % j->persons);
    req->body_len = (size_t)bench_fmt(req->body, BENCH_BODY_CAP,
                                      "{\"query_id\":\"bench-%s-%llu\",\"person\":\"P%07zu\","
                                      "\"business\":\"public_assistance\",\"provider\":\"city-yokohama\","
                                      "\"item\":\"local_tax\",\"operator\":\"bench\"}",
                                      j->run, (unsigned long long)++j->counter, person);
    return 1;
}

/* A success is 200 with "status":"provided". */
static int query_check(void *arg, const bench_request *req, long status, const char *body, size_t len)
{
    query_job *j = arg;
    int provided = 0;
    json_t *doc = NULL;
    if (status == 200 && body && (doc = json_loadb(body, len, 0, NULL)))
        provided = strcmp(json_string_value(json_object_get(doc, "status")) ?: "", "provided") == 0;
    if (provided) {
        j->provided++;
    } else {
        j->other++;
        if (!j->other_status[0] && status) {
            if (!doc && body)
                doc = json_loadb(body, len, 0, NULL);
            const char *what = json_string_value(json_object_get(json_object_get(doc, "error"), "code"));
            if (!what)
                what = json_string_value(json_object_get(doc, "status"));
            bench_fmt(j->other_status, sizeof j->other_status, "HTTP %ld %s", status, what ? what : "");
        }
    }
    json_decref(doc);
    return provided;
}

static void mark_cpu(void *arg, int end)
{
    query_job *j = arg;
    bench_snap_take(end ? &j->after : &j->before);
}

/* The baseline script: $RENKEI_BASELINE, $RENKEI_SOURCE_DIR/../shared/…, the
 * source tree this binary was built from, then the default path. */
static int find_baseline(char *out, size_t outlen)
{
    const char *env = getenv("RENKEI_BASELINE");
    if (env && *env) {
        bench_fmt(out, outlen, "%s", env);
        return access(out, X_OK) == 0;
    }
    const char *src = getenv("RENKEI_SOURCE_DIR");
    if (src && *src) {
        bench_fmt(out, outlen, "%s/%s", src, BASELINE_REL);
        if (access(out, X_OK) == 0)
            return 1;
    }
#ifdef RENKEI_DATA_DIR
    bench_fmt(out, outlen, "%s/../%s", RENKEI_DATA_DIR, BASELINE_REL);
    if (access(out, X_OK) == 0)
        return 1;
#endif
    bench_fmt(out, outlen, "%s", BASELINE_DEFAULT);
    return access(out, X_OK) == 0;
}

static int free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t len = sizeof sa;
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static int port_open(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

typedef struct baseline {
    pid_t pid; /* also its process group */
    int port;
    char log[TK_PATH_CAP];
} baseline;

static void baseline_stop(baseline *b)
{
    if (b->pid <= 0)
        return;
    kill(-b->pid, SIGTERM);
    double deadline = rk_mono_s() + BASELINE_STOP_MS / 1000.0;
    int status;
    while (waitpid(b->pid, &status, WNOHANG) == 0) {
        if (rk_mono_s() > deadline) {
            kill(-b->pid, SIGKILL);
            waitpid(b->pid, &status, 0);
            break;
        }
        tk_sleep_ms(20);
    }
    kill(-b->pid, SIGKILL); /* anything of the group that outlived the script */
    b->pid = 0;
}

/* Starts the nginx baseline with the node certificate of city-yokohama in
 * its own process group; waits until its port answers. */
static rk_rc baseline_start(const char *script, const bench_net *n, int workers, baseline *b, char *err,
                            size_t errlen)
{
    char cert[TK_PATH_CAP], key[TK_PATH_CAP], port[16], nworkers[16];
    bench_fmt(cert, sizeof cert, "%s/nodes/city-yokohama/cert.pem", n->dir);
    bench_fmt(key, sizeof key, "%s/nodes/city-yokohama/key.pem", n->dir);
    bench_fmt(b->log, sizeof b->log, "%s/nginx-baseline.log", n->dir);
    b->port = free_port();
    if (!b->port) {
        bench_fmt(err, errlen, "no free port for the baseline");
        return RK_ERR_IO;
    }
    bench_fmt(port, sizeof port, "%d", b->port);
    bench_fmt(nworkers, sizeof nworkers, "%d", workers);
    int logfd = open(b->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t parent = getpid();
    pid_t pid = logfd >= 0 && nullfd >= 0 ? fork() : -1;
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        sigaction(SIGINT, &dfl, NULL);
        sigaction(SIGTERM, &dfl, NULL);
        sigaction(SIGPIPE, &dfl, NULL);
        if (getppid() != parent || dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
            _exit(127);
        execl(script, script, "--cert", cert, "--key", key, "--ca", n->ca, "--port", port, "--workers", nworkers,
              (char *)NULL);
        _exit(127);
    }
    if (logfd >= 0)
        close(logfd);
    if (nullfd >= 0)
        close(nullfd);
    if (pid < 0) {
        bench_fmt(err, errlen, "cannot start %s: %s", script, strerror(errno));
        return RK_ERR_IO;
    }
    setpgid(pid, pid);
    b->pid = pid;
    double deadline = rk_mono_s() + BASELINE_START_MS / 1000.0;
    while (!port_open(b->port)) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            b->pid = 0;
            bench_fmt(err, errlen, "%s exited before listening (see %s)", script, b->log);
            return RK_ERR_UPSTREAM;
        }
        if (rk_mono_s() > deadline || bench_stop) {
            baseline_stop(b);
            bench_fmt(err, errlen, "%s did not listen on port %d within %d s (see %s)", script, b->port,
                      BASELINE_START_MS / 1000, b->log);
            return RK_ERR_TIMEOUT;
        }
        tk_sleep_ms(50);
    }
    return RK_OK;
}

typedef struct run_figure {
    int ran;
    bench_load_result r;
} run_figure;

/* One timed run with per-process CPU, printed. */
static rk_rc timed_run(bench_load_config *cfg, query_job *qj, const char *label, const char *unit,
                       const char *one, run_figure *fig, char *err, size_t errlen)
{
    cfg->mark = mark_cpu;
    cfg->arg = qj;
    rk_rc rc = bench_load_run(cfg, &fig->r, err, errlen);
    if (rc != RK_OK)
        return rc;
    fig->ran = 1;
    printf("\n");
    bench_load_print(stdout, label, unit, &fig->r, cfg->concurrency);
    bench_cpu_print(&qj->before, &qj->after, "CPU seconds used during the window", fig->r.ok, one);
    return RK_OK;
}

static void summary_line(const char *what, const run_figure *f, const char *unit)
{
    if (!f->ran) {
        printf("  %-34s (not run)\n", what);
        return;
    }
    printf("  %-34s %10.1f %s/s   p50 %7.2f ms  p90 %7.2f ms  p99 %7.2f ms\n", what, f->r.rate, unit, f->r.p50_ms,
           f->r.p90_ms, f->r.p99_ms);
}

/* The state of one `bench exchanges` run. */
typedef struct exch_bench {
    bench_opts o;
    char script[TK_PATH_CAP]; /* the nginx baseline script */
    int have_baseline;
    bench_exch_net x;
    query_job *qj;
    baseline nginx;
    run_figure exch, hop, base;
    char err[1024];
} exch_bench;

static void exch_banner(const bench_opts *o)
{
    printf("renkei bench exchanges: 3 agencies, %d persons, %d connections, %d client thread(s), "
           "%.1f s warm-up + %.1f s per run, node workers %s\n",
           o->persons, o->concurrency, o->threads, o->warmup, o->seconds, o->workers ? "set" : "default");
    if (o->workers)
        printf("  (every node: [node] workers = %d)\n", o->workers);
    fflush(stdout);
}

/* 1. exchanges: POST /v1/queries at pref-kanagawa, answered by city-yokohama. */
static int exch_run_exchanges(exch_bench *x)
{
    query_job *qj = x->qj;
    qj->persons = (size_t)x->o.persons;
    qj->rng = (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid() ^ 0x9E3779B97F4A7C15ull;
    bench_fmt(qj->run, sizeof qj->run, "%x", (unsigned)(qj->rng >> 32));
    bench_load_config cfg = bench_net_load_cfg(&x->x.n, bench_net_node(&x->x.n, RK_ROLE_AGENCY, "pref-kanagawa"),
                                               &x->x.kanagawa, x->o.concurrency, x->o.threads);
    cfg.path = "/v1/queries";
    cfg.method = "POST";
    cfg.next = query_next;
    cfg.check = query_check;
    cfg.seconds = x->o.seconds;
    cfg.warmup = x->o.warmup;
    if (timed_run(&cfg, qj, "exchanges: pref-kanagawa -> gateway -> core -> gateway -> city-yokohama "
                            "(POST /v1/queries, answer \"provided\")",
                  "exchanges", "exchange", &x->exch, x->err, sizeof x->err) != RK_OK)
        return bench_failure("%s", x->err);
    if (qj->other_status[0])
        printf("  first answer that was not \"provided\": %s\n", qj->other_status);
    return 0;
}

/* 2. one node alone: GET /healthz on the core as the operator. */
static int exch_run_one_node(exch_bench *x)
{
    if (bench_stop)
        return 0;
    bench_load_config cfg = bench_net_load_cfg(&x->x.n, bench_net_node(&x->x.n, RK_ROLE_CORE, NULL), &x->x.n.op,
                                               x->o.concurrency, x->o.threads);
    cfg.path = "/healthz";
    cfg.method = "GET";
    cfg.seconds = x->o.seconds;
    cfg.warmup = x->o.warmup;
    if (timed_run(&cfg, x->qj, "one node, TLS + auth + JSON (GET /healthz on the core as the operator)",
                  "requests", "request", &x->hop, x->err, sizeof x->err) != RK_OK)
        return bench_failure("%s", x->err);
    return 0;
}

/* 3. the nginx baseline, when asked for: skipped (with a note) when it
 * cannot be started. */
static int exch_run_baseline(exch_bench *x)
{
    if (x->o.baseline && !x->have_baseline) {
        printf("\nnginx mTLS baseline: skipped: the script was not found (set RENKEI_BASELINE; tried %s)\n",
               x->script);
        return 0;
    }
    if (!x->o.baseline || bench_stop)
        return 0;
    if (baseline_start(x->script, &x->x.n, x->o.baseline_workers, &x->nginx, x->err, sizeof x->err) != RK_OK) {
        printf("\nnginx mTLS baseline: skipped: %s\n", x->err);
        return 0;
    }
    char url[64];
    bench_fmt(url, sizeof url, "https://127.0.0.1:%d", x->nginx.port);
    bench_load_config cfg = bench_net_load_cfg(&x->x.n, bench_net_node(&x->x.n, RK_ROLE_AGENCY, "pref-kanagawa"),
                                               &x->x.kanagawa, x->o.concurrency, x->o.threads);
    cfg.base_url = url;
    cfg.path = "/";
    cfg.method = "POST";
    cfg.next = query_next; /* the same bodies; any 2xx counts */
    cfg.seconds = x->o.seconds;
    cfg.warmup = x->o.warmup;
    char label[TK_PATH_CAP + 128];
    bench_fmt(label, sizeof label, "nginx mTLS baseline (%s, %d worker(s); POST /, static 200)", x->script,
              x->o.baseline_workers);
    rk_rc rc = timed_run(&cfg, x->qj, label, "requests", "request", &x->base, x->err, sizeof x->err);
    baseline_stop(&x->nginx);
    if (rc != RK_OK)
        return bench_failure("%s", x->err);
    return 0;
}

static void exch_summary(const exch_bench *x)
{
    const run_figure *exch = &x->exch, *hop = &x->hop, *base = &x->base;
    printf("\n");
    bench_rss_print();
    printf("\nsummary (%d connections, %.1f s each, %ld cores)\n", x->o.concurrency, x->o.seconds,
           sysconf(_SC_NPROCESSORS_ONLN));
    summary_line("renkei exchanges", exch, "exch");
    summary_line("one node, TLS + auth + JSON", hop, "req ");
    if (x->o.baseline)
        summary_line("nginx mTLS baseline", base, "req ");
    if (base->ran && base->r.rate > 0) {
        printf("  %-34s %10.4f  (exchanges/s over nginx requests/s)\n", "ratio renkei/nginx",
               exch->r.rate / base->r.rate);
        if (hop->ran)
            printf("  %-34s %10.4f  (one node requests/s over nginx requests/s)\n", "ratio one node/nginx",
                   hop->r.rate / base->r.rate);
    }
    if (hop->ran && exch->r.rate > 0)
        printf("  %-34s %10.1f  (one-node requests per exchange, by rate)\n", "one node / exchanges",
               hop->r.rate / exch->r.rate);
    fflush(stdout);
}

/* Set-up, the three runs and the summary; 0 when all ran. */
static int exch_all(exch_bench *x)
{
    int code;
    if ((code = bench_exch_net_open(&x->x, &x->o, x->err, sizeof x->err)) != 0 ||
        (code = exch_run_exchanges(x)) != 0 || (code = exch_run_one_node(x)) != 0 ||
        (code = exch_run_baseline(x)) != 0)
        return code;
    exch_summary(x);
    if (bench_stop)
        return bench_failure("interrupted");
    return 0;
}

int bench_cmd_exchanges(int argc, char **argv)
{
    static const struct option table[] = {
        BENCH_O_LOAD,
        {"persons", required_argument, NULL, BENCH_OPT_PERSONS},
        {"baseline", no_argument, NULL, BENCH_OPT_BASELINE},
        {"baseline-workers", required_argument, NULL, BENCH_OPT_BASELINE_WORKERS},
        {"keep", no_argument, NULL, BENCH_OPT_KEEP},
        {"workers", required_argument, NULL, BENCH_OPT_WORKERS},
        {"store", required_argument, NULL, BENCH_OPT_STORE},
        {"core-instances", required_argument, NULL, BENCH_OPT_CORE_INSTANCES},
        BENCH_O_HELP,
        BENCH_O_END,
    };
    exch_bench x = {.o = {.seconds = 10, .warmup = 2, .concurrency = 64, .threads = 1, .persons = 200,
                          .baseline_workers = 1}};
    enum bench_parse_result pr = bench_parse_opts(argc, argv, table, &x.o);
    if (pr != BENCH_PARSE_OK)
        return pr == BENCH_PARSE_HELP ? (fputs(usage_exchanges, stdout), 0) : TK_EXIT_USAGE;
    x.have_baseline = x.o.baseline && find_baseline(x.script, sizeof x.script);
    char canonical[PATH_MAX];
    if (x.have_baseline && realpath(x.script, canonical))
        bench_fmt(x.script, sizeof x.script, "%s", canonical);
    bench_install_signals();
    if (!(x.qj = calloc(1, sizeof *x.qj)))
        return bench_failure("out of memory");
    exch_banner(&x.o);
    int code = exch_all(&x);
    baseline_stop(&x.nginx);
    code = bench_exch_net_close(&x.x, x.o.keep, code);
    free(x.qj);
    return code;
}
