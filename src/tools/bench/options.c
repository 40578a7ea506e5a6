/* options.c — what every `renkei bench` shares at run time: option parsing,
 * bounded formatting, messages on stdout and the SIGINT/SIGTERM handling. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/http_server.h"
#include "tools/bench/bench.h"
#include "tools/toolkit.h"

#define MAX_CONCURRENCY 1024
#define MAX_THREADS 64
#define MAX_PERSONS 5000000

volatile int bench_stop;

int bench_fmt(char *out, size_t outlen, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(out, outlen, f, ap);
    va_end(ap);
    return n;
}

void bench_note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

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
    case BENCH_OPT_SECONDS:
        if (!parse_seconds(optarg, 0.1, &o->seconds))
            return bench_usage_error("--seconds must be a number of seconds, at least 0.1"), 0;
        return 1;
    case BENCH_OPT_WARMUP:
        if (!parse_seconds(optarg, 0, &o->warmup))
            return bench_usage_error("--warmup must be a number of seconds, 0 or more"), 0;
        return 1;
    case BENCH_OPT_CONCURRENCY:
        if (!tk_parse_int(optarg, 1, MAX_CONCURRENCY, &o->concurrency))
            return bench_usage_error("--concurrency must be 1..%d", MAX_CONCURRENCY), 0;
        return 1;
    case BENCH_OPT_THREADS:
        if (!tk_parse_int(optarg, 1, MAX_THREADS, &o->threads))
            return bench_usage_error("--threads must be 1..%d", MAX_THREADS), 0;
        return 1;
    case BENCH_OPT_PERSONS:
        if (!tk_parse_int(optarg, 1, MAX_PERSONS, &o->persons))
            return bench_usage_error("--persons must be 1..%d", MAX_PERSONS), 0;
        return 1;
    case BENCH_OPT_BASELINE_WORKERS:
        if (!tk_parse_int(optarg, 1, 64, &o->baseline_workers))
            return bench_usage_error("--baseline-workers must be 1..64"), 0;
        return 1;
    case BENCH_OPT_WORKERS:
        if (!tk_parse_int(optarg, 1, 64, &o->workers))
            return bench_usage_error("--workers must be 1..64"), 0;
        return 1;
    case BENCH_OPT_RECORDS: {
        long v = 0;
        if (!tk_parse_long(optarg, 1000, 1000000000L, &v))
            return bench_usage_error("--records must be 1000..1000000000"), 0;
        o->records = v;
        return 1;
    }
    case BENCH_OPT_BATCH:
        if (!tk_parse_int(optarg, 1, RK_BATCH_MAX, &o->batch))
            return bench_usage_error("--batch must be 1..%d", RK_BATCH_MAX), 0;
        return 1;
    case BENCH_OPT_QUERIES:
        if (!tk_parse_int(optarg, 1, 10000000, &o->queries))
            return bench_usage_error("--queries must be 1..10000000"), 0;
        return 1;
    case BENCH_OPT_STORE:
        if (strcmp(optarg, "sqlite") != 0 && strcmp(optarg, "postgres") != 0)
            return bench_usage_error("--store must be sqlite or postgres"), 0;
        o->postgres = strcmp(optarg, "postgres") == 0;
        return 1;
    case BENCH_OPT_CORE_INSTANCES:
        if (!tk_parse_int(optarg, 1, 8, &o->core_instances))
            return bench_usage_error("--core-instances must be 1..8"), 0;
        return 1;
    default:
        return -1;
    }
}

/* Stores a flag or a text option c in o; 0 when c is neither. */
static int set_text_opt(int c, bench_opts *o)
{
    switch (c) {
    case BENCH_OPT_BASELINE:
        o->baseline = 1;
        break;
    case BENCH_OPT_KEEP:
        o->keep = 1;
        break;
    case BENCH_OPT_URL:
        o->url = optarg;
        break;
    case BENCH_OPT_CERT:
        o->cert = optarg;
        break;
    case BENCH_OPT_KEY:
        o->key = optarg;
        break;
    case BENCH_OPT_CA:
        o->ca = optarg;
        break;
    case BENCH_OPT_PATH:
        o->path = optarg;
        break;
    case BENCH_OPT_BODY:
        o->body_file = optarg;
        break;
    case BENCH_OPT_METHOD:
        o->method = optarg;
        break;
    case BENCH_OPT_PASSPHRASE:
        o->passphrase_file = optarg;
        break;
    case BENCH_OPT_TARGET:
        o->target = optarg;
        break;
    default:
        return 0;
    }
    return 1;
}

/* The usage error for what getopt_long rejected (c is ':' for a missing value). */
static enum bench_parse_result bad_opt(int c, char **argv)
{
    if (c == ':')
        return bench_usage_error("option '%s' needs a value", argv[optind - 1]), BENCH_PARSE_USAGE;
    if (optopt && optopt < 256)
        return bench_usage_error("unknown option '-%c'", optopt), BENCH_PARSE_USAGE;
    return bench_usage_error("unknown option '%s'", argv[optind - 1]), BENCH_PARSE_USAGE;
}

enum bench_parse_result bench_parse_opts(int argc, char **argv, const struct option *table, bench_opts *o)
{
    int c;
    tk_getopt_reset();
    while ((c = getopt_long(argc, argv, ":h", table, NULL)) != -1) {
        if (c == 'h')
            return BENCH_PARSE_HELP;
        int number = parse_number_opt(c, o);
        if (number == 0)
            return BENCH_PARSE_USAGE;
        if (number < 0 && !set_text_opt(c, o))
            return bad_opt(c, argv);
    }
    if (optind < argc)
        return bench_usage_error("unexpected argument '%s'", argv[optind]), BENCH_PARSE_USAGE;
    return BENCH_PARSE_OK;
}

static void on_stop(int sig)
{
    (void)sig;
    bench_stop = 1;
}

void bench_install_signals(void)
{
    struct sigaction sa = {.sa_handler = on_stop};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}
