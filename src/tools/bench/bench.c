/* bench.c — `renkei bench`: benchmarks that print their figures.
 *
 *   renkei bench codes [--seconds S]
 *   renkei bench cms [--seconds S]
 *   renkei bench http --url URL --cert C --key K --ca CA [--path P] [--body FILE] [--method M] …
 *   renkei bench exchanges [--concurrency N] [--seconds S] [--persons N] [--baseline] [--workers N] [--keep]
 *   renkei bench enrol [--persons N] [--concurrency N] [--workers N] [--keep]
 *
 * Nothing here passes or fails on time: the figures are printed for a
 * person to read (docs/bench.md). Exit status: 0 when the benchmark ran,
 * 1 when it could not (set-up failed, a node did not stop cleanly), 2 usage
 * error; errors are one line on stderr starting with "renkei bench: ". */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/codes.h"
#include "net/http_client.h"
#include "net/http_server.h"
#include "crypto/pki.h"
#include "net/registry.h"
#include "lib/util.h"
#include "tools/bench/bench_cms.h"
#include "tools/bench/bench_load.h"
#include "tools/net.h"
#include "tools/progress.h"
#include "tools/toolkit.h"
#include "tools/tools.h"

#define EXIT_USAGE TK_EXIT_USAGE
#define PATH_CAP TK_PATH_CAP
#define MAX_CONCURRENCY 1024
#define MAX_THREADS 64
#define MAX_PERSONS 5000000
#define HEALTHY_TIMEOUT_MS 60000
#define SETUP_CONCURRENCY 16
#define LINK_STALL_MS 120000   /* linking gives up after this long without progress */
#define LINK_POLL_MS 250
#define BASELINE_START_MS 10000
#define BASELINE_STOP_MS 10000
#define MAX_PROCS 256
#define ENROL_TRIES 6          /* attempts per person on 503, 429 or no answer */
#define CALL_TIMEOUT_MS 10000
#define BASELINE_DEFAULT "/work/shared/bench/nginx-mtls-baseline"
#define BASELINE_REL "../shared/bench/nginx-mtls-baseline"

/* Set by SIGINT/SIGTERM: the run ends early and cleans up. */
static volatile int bench_stop;

/* snprintf whose truncation is accepted (paths and messages are cut, never
 * overflowed); returns what snprintf returns. */
__attribute__((format(printf, 3, 4))) static int fmt(char *out, size_t outlen, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(out, outlen, f, ap);
    va_end(ap);
    return n;
}

/* ---- messages ------------------------------------------------------------ */

#define usage_error(...) tk_usage_error("bench", __VA_ARGS__)
#define failure(...) tk_failure("bench", __VA_ARGS__)

__attribute__((format(printf, 1, 2))) static void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

static const char usage_main[] =
    "usage: renkei bench WHAT [options]\n"
    "\n"
    "Benchmarks that print their figures (they never pass or fail on time).\n"
    "\n"
    "  codes       code derivation and conversion per second, one thread\n"
    "  cms         sealing and opening one provision payload, and the P-256\n"
    "              operations inside them, one thread\n"
    "  http        a closed-loop HTTPS load generator (mutual TLS 1.3, keep-alive)\n"
    "              against any URL\n"
    "  exchanges   request-and-provision exchanges per second through a fresh\n"
    "              network, one node alone, and (--baseline) nginx with mutual TLS\n"
    "  enrol       bulk enrolment: time to accept and to link N persons, peak RSS\n"
    "\n"
    "Run 'renkei bench WHAT --help' for the options. See docs/bench.md.\n";

static const char usage_codes[] =
    "usage: renkei bench codes [--seconds S]\n"
    "\n"
    "Derives codes (rk_code_derive) and converts them between two agencies\n"
    "(rk_code_convert), then opens them (rk_code_open), each for S seconds\n"
    "(default 3) on one thread with a fixed test master key. Prints ops/s and\n"
    "ns/op for each.\n";

static const char usage_cms[] =
    "usage: renkei bench cms [--seconds S]\n"
    "\n"
    "Times, S seconds each (default 3) on one thread, with a throw-away CA and\n"
    "two agency certificates: rk_cms_seal (the provider signs and encrypts a\n"
    "payload), rk_cms_open (the requester decrypts and verifies it), and the\n"
    "P-256 operations inside them through EVP alone (sign, verify, ephemeral\n"
    "key, ECDH derive, and the peer-key check OpenSSL 3.0 runs before each\n"
    "derive). Prints us/op and how one exchange's CMS work splits between the\n"
    "curve arithmetic it needs, the peer checks and the rest of the library.\n";

static const char usage_http[] =
    "usage: renkei bench http --url URL --cert C --key K --ca CA [options]\n"
    "\n"
    "A closed-loop load generator: N keep-alive connections with mutual TLS 1.3,\n"
    "each sending its next request as soon as the previous answer came. Only 2xx\n"
    "answers count as successes. Prints requests/s, latency percentiles of the\n"
    "successes, the other answers and errors, and the connections opened.\n"
    "\n"
    "  --url URL            https://HOST:PORT (a path in it is used as --path)\n"
    "  --cert C --key K     the client certificate and key (the key 0600)\n"
    "  --passphrase-file F  the key's passphrase, when it is encrypted\n"
    "  --ca CA              the CA that signed the server certificate\n"
    "  --path P             request path (default /)\n"
    "  --body FILE          request body (default none)\n"
    "  --method M           GET, POST, PUT… (default GET, or POST with --body)\n"
    "  --concurrency N      connections, 1..1024 (default 64)\n"
    "  --threads T          client threads sharing them (default 1)\n"
    "  --seconds S          measured window (default 10)\n"
    "  --warmup S           unmeasured warm-up first (default 2)\n";

static const char usage_exchanges[] =
    "usage: renkei bench exchanges [--concurrency N] [--seconds S] [--warmup S]\n"
    "                              [--persons N] [--baseline] [--workers N] [--keep]\n"
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
    "  --keep               keep the network folder\n";

static const char usage_enrol[] =
    "usage: renkei bench enrol [--persons N] [--batch N] [--concurrency N] [--workers N] [--keep]\n"
    "\n"
    "Builds a fresh network of 3 agencies with N synthetic residents (default\n"
    "1000000), enrols every one at city-yokohama with POST /v1/persons (the\n"
    "load generator, bodies from residents.csv; 503 or no answer is retried),\n"
    "then polls the agency node's /healthz until every person is linked. Prints\n"
    "the time to accept all, the time until all are linked, the rates, the CPU\n"
    "seconds and the peak RSS (VmHWM) of every node process. A progress bar\n"
    "goes to stderr.\n"
    "\n"
    "  --persons N          1..5000000 (default 1000000)\n"
    "  --batch N            N persons (1..1000) per POST /v1/persons/batch, the\n"
    "                       bulk path, instead of one POST /v1/persons each\n"
    "  --concurrency N      connections, 1..1024 (default 64)\n"
    "  --threads T          client threads (default 1)\n"
    "  --workers N          handler threads of every node (default: the nodes'\n"
    "                       own default, 16)\n"
    "  --keep               keep the network folder\n";

/* ---- options ---------------------------------------------------------------- */

typedef struct bench_opts {
    double seconds, warmup;
    int concurrency, threads, persons, baseline, keep, baseline_workers, workers;
    int batch; /* bench enrol: persons per POST /v1/persons/batch; 0: one POST /v1/persons each */
    const char *url, *cert, *key, *ca, *path, *body_file, *method, *passphrase_file;
} bench_opts;

enum {
    OPT_SECONDS = 1000,
    OPT_WARMUP,
    OPT_CONCURRENCY,
    OPT_THREADS,
    OPT_PERSONS,
    OPT_BASELINE,
    OPT_BASELINE_WORKERS,
    OPT_WORKERS,
    OPT_BATCH,
    OPT_KEEP,
    OPT_URL,
    OPT_CERT,
    OPT_KEY,
    OPT_CA,
    OPT_PATH,
    OPT_BODY,
    OPT_METHOD,
    OPT_PASSPHRASE,
};

enum parse_result { PARSE_OK, PARSE_HELP, PARSE_USAGE };

static int parse_seconds(const char *s, double min, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !(v >= min) || v > 86400)
        return 0;
    *out = v;
    return 1;
}

/* Stores the value of a numeric option c (optarg) in o: 1 when it is valid,
 * 0 after a usage error, -1 when c is not a numeric option. */
static int parse_number_opt(int c, bench_opts *o)
{
    switch (c) {
    case OPT_SECONDS:
        if (!parse_seconds(optarg, 0.1, &o->seconds))
            return usage_error("--seconds must be a number of seconds, at least 0.1"), 0;
        return 1;
    case OPT_WARMUP:
        if (!parse_seconds(optarg, 0, &o->warmup))
            return usage_error("--warmup must be a number of seconds, 0 or more"), 0;
        return 1;
    case OPT_CONCURRENCY:
        if (!tk_parse_int(optarg, 1, MAX_CONCURRENCY, &o->concurrency))
            return usage_error("--concurrency must be 1..%d", MAX_CONCURRENCY), 0;
        return 1;
    case OPT_THREADS:
        if (!tk_parse_int(optarg, 1, MAX_THREADS, &o->threads))
            return usage_error("--threads must be 1..%d", MAX_THREADS), 0;
        return 1;
    case OPT_PERSONS:
        if (!tk_parse_int(optarg, 1, MAX_PERSONS, &o->persons))
            return usage_error("--persons must be 1..%d", MAX_PERSONS), 0;
        return 1;
    case OPT_BASELINE_WORKERS:
        if (!tk_parse_int(optarg, 1, 64, &o->baseline_workers))
            return usage_error("--baseline-workers must be 1..64"), 0;
        return 1;
    case OPT_WORKERS:
        if (!tk_parse_int(optarg, 1, 64, &o->workers))
            return usage_error("--workers must be 1..64"), 0;
        return 1;
    case OPT_BATCH:
        if (!tk_parse_int(optarg, 1, RK_BATCH_MAX, &o->batch))
            return usage_error("--batch must be 1..%d", RK_BATCH_MAX), 0;
        return 1;
    default:
        return -1;
    }
}

/* Stores a flag or a text option c in o; 0 when c is neither. */
static int set_text_opt(int c, bench_opts *o)
{
    switch (c) {
    case OPT_BASELINE:
        o->baseline = 1;
        break;
    case OPT_KEEP:
        o->keep = 1;
        break;
    case OPT_URL:
        o->url = optarg;
        break;
    case OPT_CERT:
        o->cert = optarg;
        break;
    case OPT_KEY:
        o->key = optarg;
        break;
    case OPT_CA:
        o->ca = optarg;
        break;
    case OPT_PATH:
        o->path = optarg;
        break;
    case OPT_BODY:
        o->body_file = optarg;
        break;
    case OPT_METHOD:
        o->method = optarg;
        break;
    case OPT_PASSPHRASE:
        o->passphrase_file = optarg;
        break;
    default:
        return 0;
    }
    return 1;
}

/* The usage error for what getopt_long rejected (c is ':' for a missing value). */
static enum parse_result bad_opt(int c, char **argv)
{
    if (c == ':')
        return usage_error("option '%s' needs a value", argv[optind - 1]), PARSE_USAGE;
    if (optopt && optopt < 256)
        return usage_error("unknown option '-%c'", optopt), PARSE_USAGE;
    return usage_error("unknown option '%s'", argv[optind - 1]), PARSE_USAGE;
}

static enum parse_result parse_opts(int argc, char **argv, const struct option *table, bench_opts *o)
{
    int c;
    tk_getopt_reset();
    while ((c = getopt_long(argc, argv, ":h", table, NULL)) != -1) {
        if (c == 'h')
            return PARSE_HELP;
        int number = parse_number_opt(c, o);
        if (number == 0)
            return PARSE_USAGE;
        if (number < 0 && !set_text_opt(c, o))
            return bad_opt(c, argv);
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]), PARSE_USAGE;
    return PARSE_OK;
}

#define O_HELP {"help", no_argument, NULL, 'h'}
#define O_END {NULL, 0, NULL, 0}
#define O_LOAD                                                                                                      \
    {"concurrency", required_argument, NULL, OPT_CONCURRENCY}, {"threads", required_argument, NULL, OPT_THREADS},   \
        {"seconds", required_argument, NULL, OPT_SECONDS}, {"warmup", required_argument, NULL, OPT_WARMUP}

/* ---- signals ----------------------------------------------------------------- */

static void on_stop(int sig)
{
    (void)sig;
    bench_stop = 1;
}

static void install_signals(void)
{
    struct sigaction sa = {.sa_handler = on_stop};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* ---- processes: CPU seconds and peak RSS of this process's descendants -------- */

typedef struct proc_entry {
    pid_t pid;
    char name[64];
    double cpu_s; /* utime + stime */
} proc_entry;

typedef struct proc_snap {
    proc_entry p[MAX_PROCS];
    int n;
    double self_cpu_s;
    double at;                /* mono seconds */
    double machine_busy_s;    /* all CPUs, every process (from /proc/stat) */
    double machine_total_s;
} proc_snap;

/* Busy and total CPU seconds of the whole machine since boot. */
static void machine_cpu(double *busy_s, double *total_s)
{
    unsigned long long v[10] = {0};
    *busy_s = *total_s = 0;
    FILE *f = fopen("/proc/stat", "re");
    if (!f)
        return;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
                   &v[5], &v[6], &v[7], &v[8], &v[9]);
    fclose(f);
    if (n < 8)
        return;
    /* user nice system idle iowait irq softirq steal (guest is inside user) */
    unsigned long long total = 0;
    for (int i = 0; i < 8; i++)
        total += v[i];
    long tick = sysconf(_SC_CLK_TCK);
    double t = (double)(tick > 0 ? tick : 100);
    *total_s = (double)total / t;
    *busy_s = (double)(total - v[3] - v[4]) / t;
}

/* utime+stime in seconds and the parent of pid; -1 when it is gone. */
static int read_stat(pid_t pid, double *cpu_s, pid_t *ppid)
{
    char path[64], buf[1024];
    fmt(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    char state;
    int pp;
    unsigned long long ut, st;
    if (sscanf(p + 2, "%c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &state, &pp, &ut, &st) != 4)
        return -1;
    static long tick;
    if (!tick)
        tick = sysconf(_SC_CLK_TCK);
    if (cpu_s)
        *cpu_s = (double)(ut + st) / (double)(tick > 0 ? tick : 100);
    if (ppid)
        *ppid = pp;
    return 0;
}

/* A readable name: the node id for a renkei node (from --config
 * DIR/nodes/<id>/node.conf), "nginx master"/"nginx worker", or the program. */
static void proc_name(pid_t pid, char *out, size_t outlen)
{
    char path[64], buf[4096];
    fmt(out, outlen, "pid %d", (int)pid);
    fmt(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    const char *args[16];
    int na = 0;
    for (char *p = buf; p < buf + n && na < 16; p += strlen(p) + 1)
        args[na++] = p;
    if (na == 0)
        return;
    if (strncmp(args[0], "nginx: master", 13) == 0) {
        fmt(out, outlen, "nginx master");
        return;
    }
    if (strncmp(args[0], "nginx: worker", 13) == 0) {
        fmt(out, outlen, "nginx worker");
        return;
    }
    for (int i = 0; i + 1 < na; i++) {
        if (strcmp(args[i], "--config") != 0)
            continue;
        char dir[PATH_CAP];
        rk_dirname(args[i + 1], dir, sizeof dir);
        const char *slash = strrchr(dir, '/');
        fmt(out, outlen, "%s", slash ? slash + 1 : dir);
        return;
    }
    const char *prog = args[0];
    const char *base = strrchr(prog, '/');
    base = base ? base + 1 : prog;
    if ((strcmp(base, "bash") == 0 || strcmp(base, "sh") == 0) && na > 1) {
        base = strrchr(args[1], '/');
        base = base ? base + 1 : args[1];
    }
    fmt(out, outlen, "%s", base);
}

/* Every living descendant of this process (children, grandchildren, …). */
static int list_descendants(pid_t *out, int cap)
{
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    static pid_t pids[65536], parents[65536];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 65536) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        pid_t pp;
        if (read_stat((pid_t)pid, NULL, &pp) == 0) {
            pids[n] = (pid_t)pid;
            parents[n++] = pp;
        }
    }
    closedir(d);
    int found = 0;
    out[found++] = getpid();
    for (int k = 0; k < found; k++) /* breadth first over the tree */
        for (int i = 0; i < n && found < cap; i++)
            if (parents[i] == out[k])
                out[found++] = pids[i];
    for (int i = 1; i < found; i++)
        out[i - 1] = out[i]; /* drop ourselves */
    return found - 1;
}

static void snap_take(proc_snap *s)
{
    pid_t pids[MAX_PROCS + 1];
    int n = list_descendants(pids, MAX_PROCS + 1);
    s->n = 0;
    for (int i = 0; i < n; i++) {
        proc_entry *p = &s->p[s->n];
        if (read_stat(pids[i], &p->cpu_s, NULL) != 0)
            continue;
        p->pid = pids[i];
        proc_name(pids[i], p->name, sizeof p->name);
        s->n++;
    }
    read_stat(getpid(), &s->self_cpu_s, NULL);
    machine_cpu(&s->machine_busy_s, &s->machine_total_s);
    s->at = rk_mono_s();
}

typedef struct cpu_row {
    const char *name;
    double used;
} cpu_row;

static int cmp_row(const void *a, const void *b)
{
    double x = ((const cpu_row *)a)->used, y = ((const cpu_row *)b)->used;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* CPU seconds used between two snapshots, busiest first; with `ops` > 0
 * (the successes counted in the window) also the CPU per operation (`one`
 * names it), which is the cost of each hop (docs/bench.md). */
static void cpu_print(const proc_snap *a, const proc_snap *b, const char *title, uint64_t ops, const char *one)
{
    cpu_row rows[MAX_PROCS + 1];
    int n = 0;
    double wall = b->at - a->at, total = 0;
    for (int i = 0; i < b->n; i++) {
        double before = 0;
        for (int j = 0; j < a->n; j++)
            if (a->p[j].pid == b->p[i].pid)
                before = a->p[j].cpu_s;
        rows[n++] = (cpu_row){b->p[i].name, b->p[i].cpu_s - before};
    }
    rows[n++] = (cpu_row){"bench client (this process)", b->self_cpu_s - a->self_cpu_s};
    qsort(rows, (size_t)n, sizeof *rows, cmp_row);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    printf("  %s (%.2f s wall, %ld cores = %.2f CPU-s available):\n", title, wall, cores, wall * (double)cores);
    for (int i = 0; i < n; i++) {
        total += rows[i].used;
        if (rows[i].used < 0.005 && i > 0)
            continue;
        printf("    %-30s %7.2f s  %4.0f%% of one core", rows[i].name, rows[i].used,
               wall > 0 ? 100.0 * rows[i].used / wall : 0.0);
        if (ops > 0)
            printf("  %7.3f ms per %s", 1000.0 * rows[i].used / (double)ops, one);
        putchar('\n');
    }
    printf("    %-30s %7.2f s  %4.0f%% of the machine", "total, every process", total,
           wall > 0 && cores > 0 ? 100.0 * total / (wall * (double)cores) : 0.0);
    if (ops > 0)
        printf("  %7.3f ms per %s", 1000.0 * total / (double)ops, one);
    putchar('\n');
    double busy = b->machine_busy_s - a->machine_busy_s, all = b->machine_total_s - a->machine_total_s;
    if (all > 0) {
        double others = busy - total;
        printf("    %-30s %7.2f s  %4.0f%% of the machine busy in all (interrupts and other processes: %.2f s%s)\n",
               "machine (/proc/stat)", busy, 100.0 * busy / all, others > 0 ? others : 0.0,
               others > 0.1 * all ? " - the machine was not ours alone" : "");
    }
    fflush(stdout);
}

static long proc_hwm_kb(pid_t pid)
{
    char path[64], line[256];
    fmt(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "re");
    long kb = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

static void rss_print(void)
{
    pid_t pids[MAX_PROCS];
    int n = list_descendants(pids, MAX_PROCS);
    printf("  peak RSS (VmHWM):\n");
    for (int i = 0; i < n; i++) {
        char name[64];
        long kb = proc_hwm_kb(pids[i]);
        if (kb < 0)
            continue;
        proc_name(pids[i], name, sizeof name);
        printf("    %-30s %8.1f MiB\n", name, (double)kb / 1024.0);
    }
    printf("    %-30s %8.1f MiB\n", "bench client (this process)", (double)proc_hwm_kb(getpid()) / 1024.0);
    fflush(stdout);
}

/* ---- codes ----------------------------------------------------------------------- */

#define CODES_BATCH 4096

typedef struct codes_result {
    uint64_t ops;
    double seconds;
} codes_result;

static void codes_print(const char *what, codes_result r)
{
    double rate = r.seconds > 0 ? (double)r.ops / r.seconds : 0;
    printf("  %-8s %12.0f ops/s  %8.1f ns/op  (%llu ops in %.2f s)\n", what, rate, rate > 0 ? 1e9 / rate : 0,
           (unsigned long long)r.ops, r.seconds);
    fflush(stdout);
}

/* Derives codes for `seconds`, CODES_BATCH at a time; sets *failed when one fails. */
static codes_result codes_derive_run(const rk_codec *c, uint32_t from, double seconds, int *failed)
{
    char out[RK_CODE_TEXT_MAX];
    volatile unsigned sink = 0;
    codes_result r = {0};
    double start = rk_mono_s(), end = start + seconds, now = start;
    for (uint64_t serial = 1; now < end && !bench_stop;) {
        for (int i = 0; i < CODES_BATCH; i++, serial++) {
            *failed |= rk_code_derive(c, serial & RK_CODE_MAX_SERIAL, from, out) != RK_OK;
            sink += (unsigned char)out[5];
        }
        r.ops += CODES_BATCH;
        now = rk_mono_s();
    }
    r.seconds = now - start;
    (void)sink;
    return r;
}

/* Converts the given codes from one agency to another for `seconds`. */
static codes_result codes_convert_run(const rk_codec *c, char codes[][RK_CODE_TEXT_MAX], uint32_t from, uint32_t to,
                                      double seconds, int *failed)
{
    char out[RK_CODE_TEXT_MAX];
    volatile unsigned sink = 0;
    codes_result r = {0};
    double start = rk_mono_s(), end = start + seconds, now = start;
    while (now < end && !bench_stop) {
        for (int i = 0; i < CODES_BATCH; i++) {
            *failed |= rk_code_convert(c, codes[i], from, to, out) != RK_OK;
            sink += (unsigned char)out[5];
        }
        r.ops += CODES_BATCH;
        now = rk_mono_s();
    }
    r.seconds = now - start;
    (void)sink;
    return r;
}

/* Opens the given codes (serial and agency back) for `seconds`. */
static codes_result codes_open_run(const rk_codec *c, char codes[][RK_CODE_TEXT_MAX], double seconds, int *failed)
{
    volatile unsigned sink = 0;
    codes_result r = {0};
    double start = rk_mono_s(), end = start + seconds, now = start;
    while (now < end && !bench_stop) {
        for (int i = 0; i < CODES_BATCH; i++) {
            uint64_t serial;
            uint32_t agency;
            *failed |= rk_code_open(c, codes[i], &serial, &agency) != RK_OK;
            sink += (unsigned)serial;
        }
        r.ops += CODES_BATCH;
        now = rk_mono_s();
    }
    r.seconds = now - start;
    (void)sink;
    return r;
}

static int cmd_codes(int argc, char **argv)
{
    static const struct option table[] = {{"seconds", required_argument, NULL, OPT_SECONDS}, O_HELP, O_END};
    bench_opts o = {.seconds = 3};
    enum parse_result pr = parse_opts(argc, argv, table, &o);
    if (pr != PARSE_OK)
        return pr == PARSE_HELP ? (fputs(usage_codes, stdout), 0) : EXIT_USAGE;
    uint8_t master[32];
    for (size_t i = 0; i < sizeof master; i++)
        master[i] = (uint8_t)(0xA0 + i); /* a fixed test key, never a real one */
    rk_codec *c = NULL;
    rk_rc rc = rk_codec_new(master, sizeof master, 1, &c);
    if (rc != RK_OK)
        return failure("cannot make a codec: %s", rk_strerror(rc));
    uint32_t from = rk_agency_number("city-yokohama"), to = rk_agency_number("pref-kanagawa");
    static char codes[CODES_BATCH][RK_CODE_TEXT_MAX];
    printf("renkei bench codes: one thread, %.1f s per operation, fixed test master key\n", o.seconds);
    int failed = 0;
    codes_print("derive", codes_derive_run(c, from, o.seconds, &failed));
    for (int i = 0; i < CODES_BATCH; i++)
        failed |= rk_code_derive(c, (uint64_t)i * 7919 + 1, from, codes[i]) != RK_OK;
    codes_print("convert", codes_convert_run(c, codes, from, to, o.seconds, &failed));
    codes_print("open", codes_open_run(c, codes, o.seconds, &failed));
    rk_codec_free(c);
    rk_wipe(master, sizeof master);
    if (failed)
        return failure("an operation failed during the run: the figures above are not valid");
    return 0;
}

static int cmd_cms(int argc, char **argv)
{
    static const struct option table[] = {{"seconds", required_argument, NULL, OPT_SECONDS}, O_HELP, O_END};
    bench_opts o = {.seconds = 3};
    enum parse_result pr = parse_opts(argc, argv, table, &o);
    if (pr != PARSE_OK)
        return pr == PARSE_HELP ? (fputs(usage_cms, stdout), 0) : EXIT_USAGE;
    return rk_bench_cms(o.seconds);
}

/* ---- http -------------------------------------------------------------------------- */

/* The usage errors of `bench http` that parse_opts cannot see: 0 when the
 * options are usable, else what usage_error returned. */
static int http_check_opts(const bench_opts *o)
{
    if (!o->url || !o->cert || !o->key || !o->ca)
        return usage_error("http needs --url, --cert, --key and --ca");
    if (strncmp(o->url, "https://", 8) != 0)
        return usage_error("--url must start with https://");
    if (o->method && (!*o->method || strspn(o->method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(o->method)))
        return usage_error("--method must be an upper-case HTTP method");
    if (o->path && o->path[0] != '/')
        return usage_error("--path must start with '/'");
    return 0;
}

/* What `bench http` loads before it runs: the client credential and the body. */
typedef struct http_inputs {
    X509 *cert;
    EVP_PKEY *key;
    char *body;
    size_t body_len;
} http_inputs;

/* 0 when the certificate, the key and the body (if any) are loaded, else
 * what failure returned. */
static int http_load_inputs(const bench_opts *o, http_inputs *in)
{
    rk_rc rc;
    if ((rc = rk_pki_load_cert(o->cert, &in->cert)) != RK_OK)
        return failure("cannot load the certificate %s: %s", o->cert, rk_strerror(rc));
    if ((rc = rk_pki_load_key(o->key, o->passphrase_file, &in->key)) != RK_OK)
        return failure("cannot load the key %s: %s%s", o->key, rk_strerror(rc),
                       rc == RK_ERR_DENIED ? " (it must be mode 0600)" : "");
    if (o->body_file && (rc = rk_read_file(o->body_file, 64u << 20, &in->body, &in->body_len)) != RK_OK)
        return failure("cannot read the body %s: %s", o->body_file, rk_strerror(rc));
    return 0;
}

static void http_inputs_free(http_inputs *in)
{
    free(in->body);
    EVP_PKEY_free(in->key);
    X509_free(in->cert);
}

/* Runs the load generator against base + path and prints the figures. */
static int http_run(const bench_opts *o, const char *base, const char *path, const http_inputs *in)
{
    install_signals();
    const char *method = o->method ? o->method : in->body ? "POST" : "GET";
    printf("renkei bench http: %s %s%s, %d connections, %d thread(s), %.1f s warm-up + %.1f s\n", method, base, path,
           o->concurrency, o->threads, o->warmup, o->seconds);
    fflush(stdout);
    bench_load_config cfg = {
        .base_url = base,
        .path = path,
        .method = method,
        .body = in->body,
        .body_len = in->body_len,
        .cert = in->cert,
        .key = in->key,
        .ca_path = o->ca,
        .concurrency = o->concurrency,
        .threads = o->threads,
        .seconds = o->seconds,
        .warmup = o->warmup,
        .stop = &bench_stop,
    };
    bench_load_result r;
    char err[512];
    if (bench_load_run(&cfg, &r, err, sizeof err) != RK_OK)
        return failure("%s", err);
    bench_load_print(stdout, "result", "requests", &r, o->concurrency);
    return 0;
}

static int cmd_http(int argc, char **argv)
{
    static const struct option table[] = {
        {"url", required_argument, NULL, OPT_URL},
        {"cert", required_argument, NULL, OPT_CERT},
        {"key", required_argument, NULL, OPT_KEY},
        {"passphrase-file", required_argument, NULL, OPT_PASSPHRASE},
        {"ca", required_argument, NULL, OPT_CA},
        {"path", required_argument, NULL, OPT_PATH},
        {"body", required_argument, NULL, OPT_BODY},
        {"method", required_argument, NULL, OPT_METHOD},
        O_LOAD,
        O_HELP,
        O_END,
    };
    bench_opts o = {.seconds = 10, .warmup = 2, .concurrency = 64, .threads = 1};
    enum parse_result pr = parse_opts(argc, argv, table, &o);
    if (pr != PARSE_OK)
        return pr == PARSE_HELP ? (fputs(usage_http, stdout), 0) : EXIT_USAGE;
    int code = http_check_opts(&o);
    if (code != 0)
        return code;

    /* Split a path out of the URL: the generator wants scheme://host:port. */
    char base[1024], path[BENCH_PATH_CAP];
    const char *slash = strchr(o.url + 8, '/');
    if (strlen(o.url) >= sizeof base)
        return usage_error("--url is too long");
    fmt(base, sizeof base, "%.*s", (int)(slash ? slash - o.url : (long)strlen(o.url)), o.url);
    fmt(path, sizeof path, "%s", o.path ? o.path : slash ? slash : "/");

    http_inputs in = {0};
    code = http_load_inputs(&o, &in);
    if (code == 0)
        code = http_run(&o, base, path, &in);
    http_inputs_free(&in);
    return code;
}

/* ---- a fresh network ---------------------------------------------------------------- */

/* A client credential (cert, key and an rk_client) from DIR/<sub>/{cert,key}.pem. */
typedef tk_client cred;
#define cred_load tk_client_open
#define cred_free tk_client_close

typedef struct bench_net {
    char dir[PATH_CAP];
    char ca[PATH_CAP];
    rk_registry *reg;
    rk_net_procs *procs;
    int made_dir;
    cred op;            /* the operator console, with its client */
} bench_net;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static const rk_peer_node *net_node(const bench_net *n, rk_role role, const char *agency)
{
    return rk_registry_find(n->reg, role, agency);
}

/* Writes and starts a network of 3 agencies and `persons` residents in a new
 * temporary folder and waits until every node is healthy. */
/* Appends "[node] workers = N" to every server node's node.conf (the last
 * value read wins). */
static rk_rc set_workers(const bench_net *n, int workers, char *err, size_t errlen)
{
    for (size_t i = 0; i < n->reg->n_nodes; i++) {
        const rk_peer_node *node = &n->reg->nodes[i];
        if (!node->url[0])
            continue; /* a client */
        char path[PATH_CAP];
        fmt(path, sizeof path, "%s/nodes/%s/node.conf", n->dir, node->id);
        FILE *f = fopen(path, "ae");
        if (!f || fprintf(f, "\n[node]\nworkers = %d\n", workers) < 0 || fclose(f) != 0) {
            fmt(err, errlen, "cannot set workers in %s: %s", path, strerror(errno));
            return RK_ERR_IO;
        }
    }
    return RK_OK;
}

static rk_rc net_open(bench_net *n, int persons, int workers, char *err, size_t errlen)
{
    memset(n, 0, sizeof *n);
    char exe[PATH_MAX], path[PATH_CAP];
    rk_rc rc = tk_temp_dir("renkei-bench", n->dir, sizeof n->dir, err, errlen);
    if (rc != RK_OK)
        return rc;
    n->made_dir = 1;
    fmt(n->ca, sizeof n->ca, "%s/pki/ca.pem", n->dir);
    rk_net_options opt = {.agencies = 3, .persons = persons};
    rc = rk_net_init(n->dir, &opt, err, errlen);
    if (rc != RK_OK)
        return rc;
    fmt(path, sizeof path, "%s/network.json", n->dir);
    if ((rc = rk_registry_load(path, &n->reg, err, errlen)) != RK_OK)
        return rc;
    if (!net_node(n, RK_ROLE_AGENCY, "city-yokohama") || !net_node(n, RK_ROLE_AGENCY, "pref-kanagawa") ||
        !net_node(n, RK_ROLE_CORE, NULL)) {
        fmt(err, errlen, "%s: no core, city-yokohama or pref-kanagawa node", path);
        return RK_ERR_CONFIG;
    }
    if ((rc = cred_load(n->dir, "clients/operator", &n->op, err, errlen)) != RK_OK) {
        if (n->op.failed == TK_STEP_CLIENT)
            fmt(err, errlen, "cannot make a client: %s", rk_strerror(rc));
        return rc;
    }
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) {
        fmt(err, errlen, "cannot find my own executable: %s", strerror(errno));
        return RK_ERR_IO;
    }
    exe[len] = '\0';
    if (workers > 0 && (rc = set_workers(n, workers, err, errlen)) != RK_OK)
        return rc;
    if ((rc = rk_net_start(n->dir, exe, &n->procs, err, errlen)) != RK_OK)
        return rc;
    if ((rc = rk_net_wait_healthy(n->dir, HEALTHY_TIMEOUT_MS)) != RK_OK)
        fmt(err, errlen, "the network did not become healthy within %d s (see %s/nodes/*/node.log)",
                 HEALTHY_TIMEOUT_MS / 1000, n->dir);
    return rc;
}

/* Stops the nodes, removes the folder unless keep. RK_OK when every node
 * exited cleanly. */
static rk_rc net_close(bench_net *n, int keep)
{
    rk_rc rc = rk_net_stop(n->procs);
    n->procs = NULL;
    cred_free(&n->op);
    rk_registry_free(n->reg);
    n->reg = NULL;
    if (n->made_dir) {
        if (keep || rc != RK_OK)
            fprintf(stderr, "renkei bench: the network folder is kept: %s\n", n->dir);
        else
            nftw(n->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    return rc;
}

/* persons_linked and persons_pending from an agency node's /healthz. */
static rk_rc agency_counts(bench_net *n, const char *agency, long *linked, long *pending)
{
    const rk_peer_node *node = net_node(n, RK_ROLE_AGENCY, agency);
    char url[RK_URL_MAX + 16];
    rk_http_result res;
    fmt(url, sizeof url, "%s/healthz", node->url);
    rk_rc rc = rk_client_call(n->op.client, "GET", url, node->pin[0] ? node->pin : NULL, NULL, 0, CALL_TIMEOUT_MS,
                              &res);
    if (rc != RK_OK)
        return rc;
    json_t *doc = res.body ? json_loads(res.body, 0, NULL) : NULL;
    json_t *checks = json_object_get(doc, "checks");
    json_t *l = json_object_get(checks, "persons_linked"), *p = json_object_get(checks, "persons_pending");
    if (json_is_integer(l) && json_is_integer(p)) {
        *linked = (long)json_integer_value(l);
        *pending = (long)json_integer_value(p);
    } else {
        rc = RK_ERR_UPSTREAM;
    }
    json_decref(doc);
    rk_http_result_clear(&res);
    return rc;
}

/* Polls until `want` persons are linked at agency; RK_ERR_TIMEOUT when no
 * progress for LINK_STALL_MS, RK_ERR_CONFLICT when none is pending any more
 * but fewer are linked (some failed). bar: optional progress. */
static rk_rc wait_linked(bench_net *n, const char *agency, long want, rk_progress *bar, long *linked_out)
{
    long linked = 0, pending = 0, shown = 0;
    double last_progress = rk_mono_s();
    for (;;) {
        rk_rc rc = agency_counts(n, agency, &linked, &pending);
        if (rc == RK_OK) {
            if (linked > shown) {
                rk_progress_add(bar, (uint64_t)(linked - shown));
                shown = linked;
                last_progress = rk_mono_s();
            }
            if (linked >= want)
                break;
            if (pending == 0) {
                *linked_out = linked;
                return RK_ERR_CONFLICT;
            }
        }
        if (bench_stop || (rk_mono_s() - last_progress) * 1000 > LINK_STALL_MS) {
            *linked_out = linked;
            return RK_ERR_TIMEOUT;
        }
        tk_sleep_ms(LINK_POLL_MS);
    }
    *linked_out = linked;
    return RK_OK;
}

/* ---- bulk jobs through the generator: enrol persons, store values --------------------- */

typedef struct enrol_job {
    char (*numbers)[16];  /* My Numbers, NUL-terminated */
    size_t n;
    size_t next_i;
    uint32_t *retry;      /* indices to send again */
    size_t n_retry;
    uint8_t *attempts;
    uint64_t accepted, given_up;
    long last_status;     /* of the last refusal */
    rk_progress *bar;
    int batch;            /* persons per POST /v1/persons/batch; 0: POST /v1/persons */
    uint32_t (*sent)[RK_BATCH_MAX + 1]; /* --batch: per batch under way, its persons (UINT32_MAX ends) */
    uint32_t *free_slots;  /* slots of sent not under way */
    size_t n_free;
} enrol_job;

/* The index of the next person to send, or -1 when none is left. */
static long enrol_take(enrol_job *j)
{
    if (j->n_retry)
        return (long)j->retry[--j->n_retry];
    if (j->next_i < j->n)
        return (long)j->next_i++;
    return -1;
}

static int enrol_next(void *arg, bench_request *req)
{
    enrol_job *j = arg;
    long i = enrol_take(j);
    if (i < 0)
        return 0;
    j->attempts[i]++;
    req->tag = (uint64_t)i;
    req->body_len = (size_t)fmt(req->body, BENCH_BODY_CAP, "{\"person\":\"P%07ld\",\"my_number\":\"%s\"}", i,
                                j->numbers[i]);
    return 1;
}

/* One person's answer (a status of 2xx: accepted); sent again on 503, 429
 * or no answer, up to ENROL_TRIES times. Returns 1 when accepted. */
static int enrol_person_done(enrol_job *j, size_t i, long status)
{
    if (status >= 200 && status < 300) {
        j->accepted++;
        rk_progress_add(j->bar, 1);
        return 1;
    }
    if ((status == 0 || status == 503 || status == 429) && j->attempts[i] < ENROL_TRIES) {
        j->retry[j->n_retry++] = (uint32_t)i;
        return 0;
    }
    j->last_status = status;
    j->given_up++;
    return 0;
}

static int enrol_check(void *arg, const bench_request *req, long status, const char *body, size_t len)
{
    (void)body;
    (void)len;
    return enrol_person_done(arg, (size_t)req->tag, status);
}

/* --batch: up to j->batch persons in one POST /v1/persons/batch; the tag
 * is the batch's slot of j->sent, which lists them. */
static int enrol_next_batch(void *arg, bench_request *req)
{
    enrol_job *j = arg;
    if (!j->n_free)
        return 0;
    uint32_t *ids = j->sent[j->free_slots[j->n_free - 1]];
    size_t len = (size_t)fmt(req->body, BENCH_BODY_CAP, "{\"persons\":["), k = 0;
    while ((int)k < j->batch && len + 64 < BENCH_BODY_CAP) {
        long i = enrol_take(j);
        if (i < 0)
            break;
        j->attempts[i]++;
        ids[k] = (uint32_t)i;
        len += (size_t)fmt(req->body + len, BENCH_BODY_CAP - len, "%s{\"person\":\"P%07ld\",\"my_number\":\"%s\"}",
                           k ? "," : "", i, j->numbers[i]);
        k++;
    }
    if (!k)
        return 0;
    len += (size_t)fmt(req->body + len, BENCH_BODY_CAP - len, "]}");
    ids[k] = UINT32_MAX;
    req->tag = j->free_slots[--j->n_free];
    req->body_len = len;
    return 1;
}

/* A batch's answer: 202 with one result per person, each with a status or
 * an error; anything else counts for every person of the batch. */
static int enrol_check_batch(void *arg, const bench_request *req, long status, const char *body, size_t len)
{
    enrol_job *j = arg;
    uint32_t *ids = j->sent[req->tag];
    json_t *answer = status == 202 && body ? json_loadb(body, len, 0, NULL) : NULL;
    json_t *results = json_object_get(answer, "results");
    int ok = 1;
    for (size_t k = 0; ids[k] != UINT32_MAX; k++) {
        json_t *one = json_array_get(results, k);
        long st = status;
        if (status == 202)
            st = one && !json_object_get(one, "error") ? 202 : 400;
        ok &= enrol_person_done(j, ids[k], st);
    }
    json_decref(answer);
    j->free_slots[j->n_free++] = (uint32_t)req->tag;
    return ok;
}

/* --batch N with up to `under_way` requests at once. */
static rk_rc enrol_job_batches(enrol_job *j, int batch, int under_way)
{
    j->batch = batch;
    j->sent = calloc((size_t)under_way, sizeof *j->sent);
    j->free_slots = calloc((size_t)under_way, sizeof *j->free_slots);
    if (!j->sent || !j->free_slots)
        return RK_ERR_NOMEM;
    for (int k = 0; k < under_way; k++)
        j->free_slots[j->n_free++] = (uint32_t)k;
    return RK_OK;
}

static rk_rc enrol_job_init(enrol_job *j, size_t n)
{
    memset(j, 0, sizeof *j);
    j->n = n;
    j->numbers = calloc(n ? n : 1, sizeof *j->numbers);
    j->retry = calloc(n ? n : 1, sizeof *j->retry);
    j->attempts = calloc(n ? n : 1, 1);
    return j->numbers && j->retry && j->attempts ? RK_OK : RK_ERR_NOMEM;
}

static void enrol_job_reset(enrol_job *j)
{
    j->next_i = j->n_retry = 0;
    j->accepted = j->given_up = 0;
    memset(j->attempts, 0, j->n);
}

static void enrol_job_free(enrol_job *j)
{
    if (j->numbers)
        rk_wipe(j->numbers, j->n * sizeof *j->numbers);
    free(j->numbers);
    free(j->retry);
    free(j->attempts);
    free(j->sent);
    free(j->free_slots);
    memset(j, 0, sizeof *j);
}

/* The first n My Numbers of DIR/residents.csv. */
static rk_rc read_residents(const char *dir, enrol_job *j, char *err, size_t errlen)
{
    char path[PATH_CAP], line[256];
    fmt(path, sizeof path, "%s/residents.csv", dir);
    FILE *f = fopen(path, "re");
    if (!f) {
        fmt(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return RK_ERR_IO;
    }
    size_t k = 0;
    int header = 1;
    while (k < j->n && fgets(line, sizeof line, f)) {
        if (header) {
            header = 0;
            continue;
        }
        size_t len = strcspn(line, ",\r\n");
        if (len != 12)
            continue;
        memcpy(j->numbers[k], line, 12);
        j->numbers[k][12] = '\0';
        k++;
    }
    rk_wipe(line, sizeof line);
    fclose(f);
    if (k < j->n) {
        fmt(err, errlen, "%s holds %zu residents, %zu wanted", path, k, j->n);
        return RK_ERR_INVALID;
    }
    return RK_OK;
}

/* The load generator's configuration for calls as `who` to `node`. */
static bench_load_config load_cfg(const bench_net *n, const rk_peer_node *node, const cred *who, int concurrency,
                                  int threads)
{
    return (bench_load_config){
        .base_url = node->url,
        .cert = who->cert,
        .key = who->key,
        .ca_path = n->ca,
        .concurrency = concurrency,
        .threads = threads,
        .timeout_ms = 30000,
        .stop = &bench_stop,
    };
}

/* Enrols every person of j at agency (credential who); RK_OK when all were
 * accepted. */
static rk_rc enrol_all(bench_net *n, const char *agency, const cred *who, enrol_job *j, int concurrency, int threads,
                       bench_load_result *r, char *err, size_t errlen)
{
    bench_load_config cfg = load_cfg(n, net_node(n, RK_ROLE_AGENCY, agency), who, concurrency, threads);
    cfg.path = "/v1/persons";
    cfg.method = "POST";
    cfg.next = enrol_next;
    cfg.check = enrol_check;
    cfg.arg = j;
    enrol_job_reset(j);
    rk_rc rc = bench_load_run(&cfg, r, err, errlen);
    if (rc != RK_OK)
        return rc;
    if (bench_stop) {
        fmt(err, errlen, "interrupted");
        return RK_ERR_TIMEOUT;
    }
    if (j->accepted < j->n) {
        fmt(err, errlen, "%s accepted %llu of %zu enrolments (last refusal: HTTP %ld; %llu errors)", agency,
                 (unsigned long long)j->accepted, j->n, j->last_status, (unsigned long long)r->errors);
        return RK_ERR_UPSTREAM;
    }
    return RK_OK;
}

typedef struct data_job {
    size_t n, next_i;
} data_job;

static int data_next(void *arg, bench_request *req)
{
    data_job *j = arg;
    if (j->next_i >= j->n)
        return 0;
    size_t i = j->next_i++;
    fmt(req->path, sizeof req->path, "/v1/data/P%07zu/local_tax", i);
    req->method = "PUT";
    req->body_len = (size_t)fmt(req->body, BENCH_BODY_CAP,
                                     "{\"value\":{\"income\":%zu,\"tax\":%zu,\"note\":\"bench\"},"
                                     "\"as_of\":\"2026-06-01\"}",
                                     3000000 + i * 1000, 120000 + i * 40);
    return 1;
}

/* ---- exchanges ----------------------------------------------------------------------------- */

typedef struct query_job {
    size_t persons;
    uint64_t counter;
    uint64_t rng;
    char run[20];
    uint64_t provided, other;
    char other_status[64]; /* the first non-"provided" answer's status or error */
    proc_snap before, after;
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
    req->body_len = (size_t)fmt(req->body, BENCH_BODY_CAP,
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
            fmt(j->other_status, sizeof j->other_status, "HTTP %ld %s", status, what ? what : "");
        }
    }
    json_decref(doc);
    return provided;
}

static void mark_cpu(void *arg, int end)
{
    query_job *j = arg;
    snap_take(end ? &j->after : &j->before);
}

/* The baseline script: $RENKEI_BASELINE, $RENKEI_SOURCE_DIR/../shared/…, the
 * source tree this binary was built from, then the default path. */
static int find_baseline(char *out, size_t outlen)
{
    const char *env = getenv("RENKEI_BASELINE");
    if (env && *env) {
        fmt(out, outlen, "%s", env);
        return access(out, X_OK) == 0;
    }
    const char *src = getenv("RENKEI_SOURCE_DIR");
    if (src && *src) {
        fmt(out, outlen, "%s/%s", src, BASELINE_REL);
        if (access(out, X_OK) == 0)
            return 1;
    }
#ifdef RENKEI_DATA_DIR
    fmt(out, outlen, "%s/../%s", RENKEI_DATA_DIR, BASELINE_REL);
    if (access(out, X_OK) == 0)
        return 1;
#endif
    fmt(out, outlen, "%s", BASELINE_DEFAULT);
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
    char log[PATH_CAP];
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
    char cert[PATH_CAP], key[PATH_CAP], port[16], nworkers[16];
    fmt(cert, sizeof cert, "%s/nodes/city-yokohama/cert.pem", n->dir);
    fmt(key, sizeof key, "%s/nodes/city-yokohama/key.pem", n->dir);
    fmt(b->log, sizeof b->log, "%s/nginx-baseline.log", n->dir);
    b->port = free_port();
    if (!b->port) {
        fmt(err, errlen, "no free port for the baseline");
        return RK_ERR_IO;
    }
    fmt(port, sizeof port, "%d", b->port);
    fmt(nworkers, sizeof nworkers, "%d", workers);
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
        fmt(err, errlen, "cannot start %s: %s", script, strerror(errno));
        return RK_ERR_IO;
    }
    setpgid(pid, pid);
    b->pid = pid;
    double deadline = rk_mono_s() + BASELINE_START_MS / 1000.0;
    while (!port_open(b->port)) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            b->pid = 0;
            fmt(err, errlen, "%s exited before listening (see %s)", script, b->log);
            return RK_ERR_UPSTREAM;
        }
        if (rk_mono_s() > deadline || bench_stop) {
            baseline_stop(b);
            fmt(err, errlen, "%s did not listen on port %d within %d s (see %s)", script, b->port,
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
    cpu_print(&qj->before, &qj->after, "CPU seconds used during the window", fig->r.ok, one);
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
    char script[PATH_CAP]; /* the nginx baseline script */
    int have_baseline;
    bench_net n;
    cred yokohama, kanagawa;
    enrol_job ej;
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

/* Starts the network and loads both agencies' credentials and the residents. */
static int exch_open(exch_bench *x)
{
    rk_rc rc;
    double t = rk_mono_s();
    if ((rc = net_open(&x->n, x->o.persons, x->o.workers, x->err, sizeof x->err)) != RK_OK)
        return failure("%s", x->err[0] ? x->err : rk_strerror(rc));
    note("network: %s, %zu nodes, up in %.1f s", x->n.dir, rk_net_count(x->n.procs), rk_mono_s() - t);
    if ((rc = cred_load(x->n.dir, "clients/city-yokohama", &x->yokohama, x->err, sizeof x->err)) != RK_OK ||
        (rc = cred_load(x->n.dir, "clients/pref-kanagawa", &x->kanagawa, x->err, sizeof x->err)) != RK_OK ||
        (rc = enrol_job_init(&x->ej, (size_t)x->o.persons)) != RK_OK ||
        (rc = read_residents(x->n.dir, &x->ej, x->err, sizeof x->err)) != RK_OK)
        return failure("%s", x->err[0] ? x->err : rk_strerror(rc));
    return 0;
}

/* Enrols every person at city-yokohama and pref-kanagawa and waits until
 * both have linked them all. */
static int exch_enrol_both(exch_bench *x)
{
    double t = rk_mono_s();
    bench_load_result r;
    if (enrol_all(&x->n, "city-yokohama", &x->yokohama, &x->ej, SETUP_CONCURRENCY, 1, &r, x->err,
                  sizeof x->err) != RK_OK ||
        enrol_all(&x->n, "pref-kanagawa", &x->kanagawa, &x->ej, SETUP_CONCURRENCY, 1, &r, x->err,
                  sizeof x->err) != RK_OK)
        return failure("enrolment: %s", x->err);
    long linked = 0;
    static const char *const agencies[] = {"city-yokohama", "pref-kanagawa"};
    for (int i = 0; i < 2; i++) {
        if (wait_linked(&x->n, agencies[i], x->o.persons, NULL, &linked) != RK_OK)
            return failure("only %ld of %d persons were linked at %s", linked, x->o.persons, agencies[i]);
    }
    note("set-up: %d persons enrolled and linked at city-yokohama and pref-kanagawa in %.1f s", x->o.persons,
         rk_mono_s() - t);
    return 0;
}

/* Stores a local_tax value for every person at city-yokohama. */
static int exch_store_values(exch_bench *x)
{
    double t = rk_mono_s();
    data_job dj = {.n = (size_t)x->o.persons};
    bench_load_config cfg = load_cfg(&x->n, net_node(&x->n, RK_ROLE_AGENCY, "city-yokohama"), &x->yokohama,
                                     SETUP_CONCURRENCY, 1);
    cfg.next = data_next;
    cfg.arg = &dj;
    bench_load_result r;
    rk_rc rc = bench_load_run(&cfg, &r, x->err, sizeof x->err);
    if (rc != RK_OK || r.ok != (uint64_t)x->o.persons)
        return failure("storing local_tax values: %s", rc != RK_OK ? x->err : "not every PUT was answered 200");
    note("set-up: %d local_tax values stored at city-yokohama in %.1f s", x->o.persons, rk_mono_s() - t);
    return 0;
}

/* 1. exchanges: POST /v1/queries at pref-kanagawa, answered by city-yokohama. */
static int exch_run_exchanges(exch_bench *x)
{
    query_job *qj = x->qj;
    qj->persons = (size_t)x->o.persons;
    qj->rng = (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid() ^ 0x9E3779B97F4A7C15ull;
    fmt(qj->run, sizeof qj->run, "%x", (unsigned)(qj->rng >> 32));
    bench_load_config cfg = load_cfg(&x->n, net_node(&x->n, RK_ROLE_AGENCY, "pref-kanagawa"), &x->kanagawa,
                                     x->o.concurrency, x->o.threads);
    cfg.path = "/v1/queries";
    cfg.method = "POST";
    cfg.next = query_next;
    cfg.check = query_check;
    cfg.seconds = x->o.seconds;
    cfg.warmup = x->o.warmup;
    if (timed_run(&cfg, qj, "exchanges: pref-kanagawa -> gateway -> core -> gateway -> city-yokohama "
                            "(POST /v1/queries, answer \"provided\")",
                  "exchanges", "exchange", &x->exch, x->err, sizeof x->err) != RK_OK)
        return failure("%s", x->err);
    if (qj->other_status[0])
        printf("  first answer that was not \"provided\": %s\n", qj->other_status);
    return 0;
}

/* 2. one node alone: GET /healthz on the core as the operator. */
static int exch_run_one_node(exch_bench *x)
{
    if (bench_stop)
        return 0;
    bench_load_config cfg = load_cfg(&x->n, net_node(&x->n, RK_ROLE_CORE, NULL), &x->n.op, x->o.concurrency,
                                     x->o.threads);
    cfg.path = "/healthz";
    cfg.method = "GET";
    cfg.seconds = x->o.seconds;
    cfg.warmup = x->o.warmup;
    if (timed_run(&cfg, x->qj, "one node, TLS + auth + JSON (GET /healthz on the core as the operator)",
                  "requests", "request", &x->hop, x->err, sizeof x->err) != RK_OK)
        return failure("%s", x->err);
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
    if (baseline_start(x->script, &x->n, x->o.baseline_workers, &x->nginx, x->err, sizeof x->err) != RK_OK) {
        printf("\nnginx mTLS baseline: skipped: %s\n", x->err);
        return 0;
    }
    char url[64];
    fmt(url, sizeof url, "https://127.0.0.1:%d", x->nginx.port);
    bench_load_config cfg = load_cfg(&x->n, net_node(&x->n, RK_ROLE_AGENCY, "pref-kanagawa"), &x->kanagawa,
                                     x->o.concurrency, x->o.threads);
    cfg.base_url = url;
    cfg.path = "/";
    cfg.method = "POST";
    cfg.next = query_next; /* the same bodies; any 2xx counts */
    cfg.seconds = x->o.seconds;
    cfg.warmup = x->o.warmup;
    char label[PATH_CAP + 128];
    fmt(label, sizeof label, "nginx mTLS baseline (%s, %d worker(s); POST /, static 200)", x->script,
        x->o.baseline_workers);
    rk_rc rc = timed_run(&cfg, x->qj, label, "requests", "request", &x->base, x->err, sizeof x->err);
    baseline_stop(&x->nginx);
    if (rc != RK_OK)
        return failure("%s", x->err);
    return 0;
}

static void exch_summary(const exch_bench *x)
{
    const run_figure *exch = &x->exch, *hop = &x->hop, *base = &x->base;
    printf("\n");
    rss_print();
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
    if ((code = exch_open(x)) != 0 || (code = exch_enrol_both(x)) != 0 || (code = exch_store_values(x)) != 0 ||
        (code = exch_run_exchanges(x)) != 0 || (code = exch_run_one_node(x)) != 0 ||
        (code = exch_run_baseline(x)) != 0)
        return code;
    exch_summary(x);
    if (bench_stop)
        return failure("interrupted");
    return 0;
}

static int cmd_exchanges(int argc, char **argv)
{
    static const struct option table[] = {
        O_LOAD,
        {"persons", required_argument, NULL, OPT_PERSONS},
        {"baseline", no_argument, NULL, OPT_BASELINE},
        {"baseline-workers", required_argument, NULL, OPT_BASELINE_WORKERS},
        {"keep", no_argument, NULL, OPT_KEEP},
        {"workers", required_argument, NULL, OPT_WORKERS},
        O_HELP,
        O_END,
    };
    exch_bench x = {.o = {.seconds = 10, .warmup = 2, .concurrency = 64, .threads = 1, .persons = 200,
                          .baseline_workers = 1}};
    enum parse_result pr = parse_opts(argc, argv, table, &x.o);
    if (pr != PARSE_OK)
        return pr == PARSE_HELP ? (fputs(usage_exchanges, stdout), 0) : EXIT_USAGE;
    x.have_baseline = x.o.baseline && find_baseline(x.script, sizeof x.script);
    char canonical[PATH_MAX];
    if (x.have_baseline && realpath(x.script, canonical))
        fmt(x.script, sizeof x.script, "%s", canonical);
    install_signals();
    if (!(x.qj = calloc(1, sizeof *x.qj)))
        return failure("out of memory");
    exch_banner(&x.o);
    int code = exch_all(&x);
    baseline_stop(&x.nginx);
    if (net_close(&x.n, x.o.keep || (code != 0 && !bench_stop)) != RK_OK && code == 0)
        code = failure("a node did not stop cleanly (see its node.log)");
    cred_free(&x.yokohama);
    cred_free(&x.kanagawa);
    enrol_job_free(&x.ej);
    free(x.qj);
    return code;
}

/* ---- enrol ----------------------------------------------------------------------------------- */

typedef struct enrol_marks {
    proc_snap before, after;
} enrol_marks;

/* The state of one `bench enrol` run. */
typedef struct enrol_bench {
    bench_opts o;
    bench_net n;
    cred yokohama;
    enrol_job ej;
    enrol_marks *marks;
    bench_load_result r;
    double start, accepted_at, linked_at;
    long linked;
    rk_rc link_rc; /* of waiting until every accepted person is linked */
    char err[1024];
} enrol_bench;

/* Starts the network and loads city-yokohama's credential and the residents. */
static int enrol_open(enrol_bench *e)
{
    rk_rc rc;
    printf("renkei bench enrol: %d persons at city-yokohama, %d connections, %d client thread(s), node workers %s, %s\n",
           e->o.persons, e->o.concurrency, e->o.threads, e->o.workers ? "set" : "default",
           e->o.batch ? "POST /v1/persons/batch" : "one POST /v1/persons per person");
    if (e->o.batch)
        printf("  (%d persons per batch)\n", e->o.batch);
    if (e->o.workers)
        printf("  (every node: [node] workers = %d)\n", e->o.workers);
    fflush(stdout);
    double t = rk_mono_s();
    if ((rc = net_open(&e->n, e->o.persons, e->o.workers, e->err, sizeof e->err)) != RK_OK)
        return failure("%s", e->err[0] ? e->err : rk_strerror(rc));
    note("network: %s, %zu nodes, written and up in %.1f s", e->n.dir, rk_net_count(e->n.procs), rk_mono_s() - t);
    if ((rc = cred_load(e->n.dir, "clients/city-yokohama", &e->yokohama, e->err, sizeof e->err)) != RK_OK ||
        (rc = enrol_job_init(&e->ej, (size_t)e->o.persons)) != RK_OK ||
        (e->o.batch && (rc = enrol_job_batches(&e->ej, e->o.batch, e->o.concurrency * e->o.threads)) != RK_OK) ||
        (rc = read_residents(e->n.dir, &e->ej, e->err, sizeof e->err)) != RK_OK)
        return failure("%s", e->err[0] ? e->err : rk_strerror(rc));
    return 0;
}

/* Enrols every person at city-yokohama (POST /v1/persons) with a progress bar. */
static int enrol_accept(enrol_bench *e)
{
    snap_take(&e->marks->before);
    e->start = rk_mono_s();
    e->ej.bar = rk_progress_new("accepted", (uint64_t)e->o.persons, stderr);
    bench_load_config cfg = load_cfg(&e->n, net_node(&e->n, RK_ROLE_AGENCY, "city-yokohama"), &e->yokohama,
                                     e->o.concurrency, e->o.threads);
    cfg.path = e->o.batch ? "/v1/persons/batch" : "/v1/persons";
    cfg.method = "POST";
    cfg.next = e->o.batch ? enrol_next_batch : enrol_next;
    cfg.check = e->o.batch ? enrol_check_batch : enrol_check;
    cfg.arg = &e->ej;
    enrol_job_reset(&e->ej);
    rk_rc rc = bench_load_run(&cfg, &e->r, e->err, sizeof e->err);
    e->accepted_at = rk_mono_s();
    rk_progress_finish(e->ej.bar);
    e->ej.bar = NULL;
    if (rc != RK_OK)
        return failure("%s", e->err);
    return 0;
}

/* Waits until every accepted person is linked (a progress bar unless they
 * already are); the outcome is in e->link_rc. */
static void enrol_wait_linked(enrol_bench *e)
{
    long pending = 0;
    rk_progress *bar = NULL;
    e->linked = 0;
    if (agency_counts(&e->n, "city-yokohama", &e->linked, &pending) != RK_OK || e->linked < (long)e->ej.accepted)
        bar = rk_progress_new("linked", (uint64_t)e->ej.accepted, stderr); /* none when all are linked already */
    e->link_rc = wait_linked(&e->n, "city-yokohama", (long)e->ej.accepted, bar, &e->linked);
    e->linked_at = rk_mono_s();
    rk_progress_finish(bar);
    snap_take(&e->marks->after);
}

static void enrol_report(const enrol_bench *e)
{
    double accept_s = e->accepted_at - e->start, link_s = e->linked_at - e->start;
    printf("\n");
    bench_load_print(stdout,
                     e->o.batch ? "accepting: POST /v1/persons/batch at city-yokohama (202 = accepted)"
                                : "accepting: POST /v1/persons at city-yokohama (202 = accepted)",
                     e->o.batch ? "batches" : "enrolments", &e->r,
                     e->o.concurrency);
    printf("\nresults\n");
    printf("  accepted      %llu of %d in %.2f s: %.1f /s%s\n", (unsigned long long)e->ej.accepted, e->o.persons,
           accept_s, accept_s > 0 ? (double)e->ej.accepted / accept_s : 0.0,
           e->ej.given_up ? " (some were refused: see above)" : "");
    if (bench_stop)
        printf("  interrupted: %ld of %llu linked after %.2f s\n", e->linked, (unsigned long long)e->ej.accepted,
               link_s);
    else if (e->link_rc == RK_OK)
        printf("  all linked    %ld in %.2f s from the first request: %.1f /s (%.2f s after the last acceptance)\n",
               e->linked, link_s, link_s > 0 ? (double)e->linked / link_s : 0.0, e->linked_at - e->accepted_at);
    else
        printf("  NOT all linked: %ld of %llu after %.2f s (%s)\n", e->linked, (unsigned long long)e->ej.accepted,
               link_s, e->link_rc == RK_ERR_CONFLICT ? "none pending any more: some failed" : "no progress, gave up");
    cpu_print(&e->marks->before, &e->marks->after, "CPU seconds used from the first request until all linked", 0, "");
    rss_print();
}

/* Set-up, enrolment, linking and the report; 0 when every person was
 * accepted and linked. */
static int enrol_measure(enrol_bench *e)
{
    int code;
    if ((code = enrol_open(e)) != 0 || (code = enrol_accept(e)) != 0)
        return code;
    enrol_wait_linked(e);
    enrol_report(e);
    if (bench_stop)
        return failure("interrupted");
    if (e->link_rc != RK_OK || e->ej.accepted < (uint64_t)e->o.persons)
        return failure("not every person was accepted and linked (see above)");
    return 0;
}

static int cmd_enrol(int argc, char **argv)
{
    static const struct option table[] = {
        {"persons", required_argument, NULL, OPT_PERSONS},
        {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"keep", no_argument, NULL, OPT_KEEP},
        {"workers", required_argument, NULL, OPT_WORKERS},
        {"batch", required_argument, NULL, OPT_BATCH},
        O_HELP,
        O_END,
    };
    enrol_bench e = {.o = {.concurrency = 64, .threads = 1, .persons = 1000000}};
    enum parse_result pr = parse_opts(argc, argv, table, &e.o);
    if (pr != PARSE_OK)
        return pr == PARSE_HELP ? (fputs(usage_enrol, stdout), 0) : EXIT_USAGE;
    install_signals();
    if (!(e.marks = calloc(1, sizeof *e.marks)))
        return failure("out of memory");
    int code = enrol_measure(&e);
    if (net_close(&e.n, e.o.keep || (code != 0 && !bench_stop)) != RK_OK && code == 0)
        code = failure("a node did not stop cleanly (see its node.log)");
    cred_free(&e.yokohama);
    enrol_job_free(&e.ej);
    free(e.marks);
    return code;
}

/* ---- dispatcher ---------------------------------------------------------------------------------- */

int rk_cmd_bench(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("missing what to benchmark (codes, cms, http, exchanges or enrol)");
    const char *what = argv[1];
    if (strcmp(what, "--help") == 0 || strcmp(what, "-h") == 0 || strcmp(what, "help") == 0)
        return fputs(usage_main, stdout), 0;
    if (strcmp(what, "codes") == 0)
        return cmd_codes(argc - 1, argv + 1);
    if (strcmp(what, "cms") == 0)
        return cmd_cms(argc - 1, argv + 1);
    if (strcmp(what, "http") == 0)
        return cmd_http(argc - 1, argv + 1);
    if (strcmp(what, "exchanges") == 0)
        return cmd_exchanges(argc - 1, argv + 1);
    if (strcmp(what, "enrol") == 0)
        return cmd_enrol(argc - 1, argv + 1);
    return usage_error("unknown benchmark '%s' (codes, cms, http, exchanges or enrol)", what);
}
