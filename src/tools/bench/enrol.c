/* enrol.c — `renkei bench enrol`: bulk enrolment of N persons at one agency,
 * the time to accept and to link them all, CPU and peak RSS per node. */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/util.h"
#include "net/registry.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_load.h"
#include "tools/net/net.h"
#include "tools/progress.h"
#include "tools/toolkit.h"

static const char usage_enrol[] =
    "usage: renkei bench enrol [--persons N] [--batch N] [--concurrency N] [--workers N] [--keep]\n"
    "                          [--store sqlite|postgres]\n"
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
    "  --keep               keep the network folder\n"
    "  --store S            sqlite (default) or postgres: the nodes' data in one\n"
    "                       PostgreSQL server of the network (net init --store)\n";

typedef struct enrol_marks {
    bench_proc_snap before, after;
} enrol_marks;

/* The state of one `bench enrol` run. */
typedef struct enrol_bench {
    bench_opts o;
    bench_net n;
    tk_client yokohama;
    bench_enrol_job ej;
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
    printf("renkei bench enrol: %d persons at city-yokohama, %d connections, %d client thread(s), "
           "node workers %s, %s\n",
           e->o.persons, e->o.concurrency, e->o.threads, e->o.workers ? "set" : "default",
           e->o.batch ? "POST /v1/persons/batch" : "one POST /v1/persons per person");
    if (e->o.batch)
        printf("  (%d persons per batch)\n", e->o.batch);
    if (e->o.workers)
        printf("  (every node: [node] workers = %d)\n", e->o.workers);
    fflush(stdout);
    double t = rk_mono_s();
    if ((rc = bench_net_open(&e->n, e->o.persons, e->o.workers, &e->o, e->err, sizeof e->err)) != RK_OK)
        return bench_failure("%s", e->err[0] ? e->err : rk_strerror(rc));
    bench_note("network: %s, %zu nodes, written and up in %.1f s", e->n.dir, rk_net_count(e->n.procs), rk_mono_s() - t);
    if ((rc = tk_client_open(e->n.dir, "clients/city-yokohama", &e->yokohama, e->err, sizeof e->err)) != RK_OK ||
        (rc = bench_enrol_job_init(&e->ej, (size_t)e->o.persons)) != RK_OK ||
        (e->o.batch && (rc = bench_enrol_job_batches(&e->ej, e->o.batch, e->o.concurrency * e->o.threads)) != RK_OK) ||
        (rc = bench_read_residents(e->n.dir, &e->ej, e->err, sizeof e->err)) != RK_OK)
        return bench_failure("%s", e->err[0] ? e->err : rk_strerror(rc));
    return 0;
}

/* Enrols every person at city-yokohama (POST /v1/persons) with a progress bar. */
static int enrol_accept(enrol_bench *e)
{
    bench_snap_take(&e->marks->before);
    e->start = rk_mono_s();
    e->ej.bar = rk_progress_new("accepted", (uint64_t)e->o.persons, stderr);
    bench_load_config cfg = bench_net_load_cfg(&e->n, bench_net_node(&e->n, RK_ROLE_AGENCY, "city-yokohama"),
                                               &e->yokohama, e->o.concurrency, e->o.threads);
    cfg.path = e->o.batch ? "/v1/persons/batch" : "/v1/persons";
    cfg.method = "POST";
    cfg.next = e->o.batch ? bench_enrol_next_batch : bench_enrol_next;
    cfg.check = e->o.batch ? bench_enrol_check_batch : bench_enrol_check;
    cfg.arg = &e->ej;
    bench_enrol_job_reset(&e->ej);
    rk_rc rc = bench_load_run(&cfg, &e->r, e->err, sizeof e->err);
    e->accepted_at = rk_mono_s();
    rk_progress_finish(e->ej.bar);
    e->ej.bar = NULL;
    if (rc != RK_OK)
        return bench_failure("%s", e->err);
    return 0;
}

/* Waits until every accepted person is linked (a progress bar unless they
 * already are); the outcome is in e->link_rc. */
static void enrol_wait_linked(enrol_bench *e)
{
    long pending = 0;
    rk_progress *bar = NULL;
    e->linked = 0;
    if (bench_agency_counts(&e->n, "city-yokohama", &e->linked, &pending) != RK_OK || e->linked < (long)e->ej.accepted)
        bar = rk_progress_new("linked", (uint64_t)e->ej.accepted, stderr); /* none when all are linked already */
    e->link_rc = bench_wait_linked(&e->n, "city-yokohama", (long)e->ej.accepted, bar, &e->linked);
    e->linked_at = rk_mono_s();
    rk_progress_finish(bar);
    bench_snap_take(&e->marks->after);
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
    bench_cpu_print(&e->marks->before, &e->marks->after, "CPU seconds used from the first request until all linked", 0,
                    "");
    bench_rss_print();
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
        return bench_failure("interrupted");
    if (e->link_rc != RK_OK || e->ej.accepted < (uint64_t)e->o.persons)
        return bench_failure("not every person was accepted and linked (see above)");
    return 0;
}

int bench_cmd_enrol(int argc, char **argv)
{
    static const struct option table[] = {
        {"persons", required_argument, NULL, BENCH_OPT_PERSONS},
        {"concurrency", required_argument, NULL, BENCH_OPT_CONCURRENCY},
        {"threads", required_argument, NULL, BENCH_OPT_THREADS},
        {"keep", no_argument, NULL, BENCH_OPT_KEEP},
        {"workers", required_argument, NULL, BENCH_OPT_WORKERS},
        {"batch", required_argument, NULL, BENCH_OPT_BATCH},
        {"store", required_argument, NULL, BENCH_OPT_STORE},
        BENCH_O_HELP,
        BENCH_O_END,
    };
    enrol_bench e = {.o = {.concurrency = 64, .threads = 1, .persons = 1000000}};
    enum bench_parse_result pr = bench_parse_opts(argc, argv, table, &e.o);
    if (pr != BENCH_PARSE_OK)
        return pr == BENCH_PARSE_HELP ? (fputs(usage_enrol, stdout), 0) : TK_EXIT_USAGE;
    bench_install_signals();
    if (!(e.marks = calloc(1, sizeof *e.marks)))
        return bench_failure("out of memory");
    int code = enrol_measure(&e);
    if (bench_net_close(&e.n, e.o.keep || (code != 0 && !bench_stop)) != RK_OK && code == 0)
        code = bench_failure("a node did not stop cleanly (see its node.log)");
    tk_client_close(&e.yokohama);
    bench_enrol_job_free(&e.ej);
    free(e.marks);
    return code;
}
