/* bench.h — what the files of `renkei bench` share: options, messages,
 * signals, a fresh network, bulk jobs through the load generator, and the CPU
 * seconds and peak RSS of the processes under a bench. */
#ifndef RK_TOOLS_BENCH_H
#define RK_TOOLS_BENCH_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/err.h"
#include "net/http_server.h"
#include "net/registry.h"
#include "tools/bench/bench_load.h"
#include "tools/net/net.h"
#include "tools/progress.h"
#include "tools/toolkit.h"

/* ---- the benchmarks (argv[0] is the bench's name; they return the exit code) ---- */

int bench_cmd_codes(int argc, char **argv);
int bench_cmd_cms(int argc, char **argv);
int bench_cmd_http(int argc, char **argv);
int bench_cmd_exchanges(int argc, char **argv);
int bench_cmd_enrol(int argc, char **argv);
int bench_cmd_records(int argc, char **argv);
int bench_cmd_store(int argc, char **argv);
int bench_cmd_queries(int argc, char **argv);

/* ---- messages and signals (options.c) -------------------------------------------- */

/* Set by SIGINT/SIGTERM: the run ends early and cleans up. */
extern volatile int bench_stop;

/* snprintf whose truncation is accepted (paths and messages are cut, never
 * overflowed); returns what snprintf returns. */
int bench_fmt(char *out, size_t outlen, const char *f, ...) __attribute__((format(printf, 3, 4)));

/* One line on stdout, flushed. */
void bench_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One-line usage error (returns the usage exit code) or failure (returns 1) on stderr. */
#define bench_usage_error(...) tk_usage_error("bench", __VA_ARGS__)
#define bench_failure(...) tk_failure("bench", __VA_ARGS__)

/* SIGINT and SIGTERM set bench_stop; SIGPIPE is ignored. */
void bench_install_signals(void);

/* ---- options (options.c) --------------------------------------------------------- */

/* Every option of every bench; each bench reads those it offers. */
typedef struct bench_opts {
    double seconds, warmup;
    int concurrency, threads, persons, baseline, keep, baseline_workers, workers;
    int batch; /* bench enrol: persons per POST /v1/persons/batch; 0: one POST /v1/persons each;
                  bench queries: queries per POST /v1/queries/batch */
    int queries; /* bench queries: queries each way */
    long long records; /* bench records: records appended to the core's log */
    const char *url, *cert, *key, *ca, *path, *body_file, *method, *passphrase_file;
    const char *target; /* bench store: the store's target */
    int postgres;       /* --store postgres: the fresh network's data in PostgreSQL */
    int core_instances; /* --core-instances N: the fresh network's core as N instances (PostgreSQL) */
} bench_opts;

/* The getopt_long values of the long options. */
enum {
    BENCH_OPT_SECONDS = 1000,
    BENCH_OPT_WARMUP,
    BENCH_OPT_CONCURRENCY,
    BENCH_OPT_THREADS,
    BENCH_OPT_PERSONS,
    BENCH_OPT_BASELINE,
    BENCH_OPT_BASELINE_WORKERS,
    BENCH_OPT_WORKERS,
    BENCH_OPT_BATCH,
    BENCH_OPT_KEEP,
    BENCH_OPT_URL,
    BENCH_OPT_CERT,
    BENCH_OPT_KEY,
    BENCH_OPT_CA,
    BENCH_OPT_PATH,
    BENCH_OPT_BODY,
    BENCH_OPT_METHOD,
    BENCH_OPT_PASSPHRASE,
    BENCH_OPT_RECORDS,
    BENCH_OPT_STORE,
    BENCH_OPT_CORE_INSTANCES,
    BENCH_OPT_TARGET,
    BENCH_OPT_QUERIES,
};

/* What bench_parse_opts found: options to run with, --help, or a usage error (already said). */
enum bench_parse_result { BENCH_PARSE_OK, BENCH_PARSE_HELP, BENCH_PARSE_USAGE };

/* Parses argv (argv[0] is the bench's name) with table into o, which holds the defaults. */
enum bench_parse_result bench_parse_opts(int argc, char **argv, const struct option *table, bench_opts *o);

/* Entries of an option table: --help, the end, and the options of a timed load. */
#define BENCH_O_HELP {"help", no_argument, NULL, 'h'}
#define BENCH_O_END {NULL, 0, NULL, 0}
#define BENCH_O_LOAD                                                                                                \
    {"concurrency", required_argument, NULL, BENCH_OPT_CONCURRENCY},                                                \
        {"threads", required_argument, NULL, BENCH_OPT_THREADS},                                                    \
        {"seconds", required_argument, NULL, BENCH_OPT_SECONDS}, {"warmup", required_argument, NULL, BENCH_OPT_WARMUP}

/* ---- processes: CPU seconds and peak RSS of this process's descendants (procs.c) -- */

#define BENCH_MAX_PROCS 256

/* One process of a snapshot. */
typedef struct bench_proc_entry {
    pid_t pid;
    char name[64];
    double cpu_s; /* utime + stime */
} bench_proc_entry;

/* The CPU seconds of every descendant, of this process and of the machine at one moment. */
typedef struct bench_proc_snap {
    bench_proc_entry p[BENCH_MAX_PROCS];
    int n;
    double self_cpu_s;
    double at;                /* mono seconds */
    double machine_busy_s;    /* all CPUs, every process (from /proc/stat) */
    double machine_total_s;
} bench_proc_snap;

/* Takes a snapshot of every living descendant (children, grandchildren, …) and of this process. */
void bench_snap_take(bench_proc_snap *s);
/* Counts root and its descendants too, as one row named `name`, in the CPU
 * of later snapshots (not in peak RSS): a server the bench's network runs
 * outside its own process tree. A process that ends between two snapshots
 * is not counted. */
void bench_procs_also(pid_t root, const char *name);

/* CPU seconds used between two snapshots, busiest first; with `ops` > 0
 * (the successes counted in the window) also the CPU per operation (`one`
 * names it), which is the cost of each hop (docs/bench.md). */
void bench_cpu_print(const bench_proc_snap *a, const bench_proc_snap *b, const char *title, uint64_t ops,
                     const char *one);

/* The peak RSS (VmHWM) of every descendant and of this process. */
void bench_rss_print(void);

/* ---- a fresh network (fresh_net.c) ------------------------------------------------- */

/* A network of 3 agencies running in a temporary folder. */
typedef struct bench_net {
    char dir[TK_PATH_CAP];
    char ca[TK_PATH_CAP];
    rk_registry *reg;
    rk_net_procs *procs;
    int made_dir;
    tk_client op;       /* the operator console, with its client */
} bench_net;

/* Writes and starts a network of 3 agencies and `persons` residents in a new
 * temporary folder (workers > 0: handler threads of every node) and waits
 * until every node is healthy. */
rk_rc bench_net_open(bench_net *n, int persons, int workers, const bench_opts *o, char *err, size_t errlen);

/* Stops the nodes, removes the folder unless keep. RK_OK when every node
 * exited cleanly. */
rk_rc bench_net_close(bench_net *n, int keep);

/* The node of that role (and agency) in n's registry. */
const rk_peer_node *bench_net_node(const bench_net *n, rk_role role, const char *agency);

/* persons_linked and persons_pending from an agency node's /healthz. */
rk_rc bench_agency_counts(bench_net *n, const char *agency, long *linked, long *pending);

/* Polls until `want` persons are linked at agency; RK_ERR_TIMEOUT when no
 * progress for a while, RK_ERR_CONFLICT when none is pending any more but
 * fewer are linked (some failed). bar: optional progress. */
rk_rc bench_wait_linked(bench_net *n, const char *agency, long want, rk_progress *bar, long *linked_out);

/* The load generator's configuration for calls as `who` to `node`. */
bench_load_config bench_net_load_cfg(const bench_net *n, const rk_peer_node *node, const tk_client *who,
                                     int concurrency, int threads);

/* ---- bulk jobs through the load generator (jobs.c) --------------------------------- */

/* Enrolling persons: who is still to send, and how the answers went. */
typedef struct bench_enrol_job {
    char (*numbers)[16];  /* My Numbers, NUL-terminated */
    size_t n;
    int residents_fd;     /* DIR/residents.csv, read again for each person's basic items */
    uint64_t *line_at;    /* where each person's row starts in it */
    uint16_t *line_len;   /* and its length */
    int col_name, col_birth_date, col_sex, col_address; /* the items' columns */
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
} bench_enrol_job;

/* An enrol job for n persons; bench_enrol_job_free frees it, also after a failure. */
rk_rc bench_enrol_job_init(bench_enrol_job *j, size_t n);

/* --batch N with up to `under_way` requests at once. */
rk_rc bench_enrol_job_batches(bench_enrol_job *j, int batch, int under_way);

/* Every person to send again, none accepted yet. */
void bench_enrol_job_reset(bench_enrol_job *j);

/* Frees (and wipes the My Numbers of) j. */
void bench_enrol_job_free(bench_enrol_job *j);

/* The first j->n My Numbers of DIR/residents.csv, and where their rows
 * are: each request reads its person's four basic items from the file (a
 * million persons' items are not held in memory). */
rk_rc bench_read_residents(const char *dir, bench_enrol_job *j, char *err, size_t errlen);

/* The generator's callbacks for POST /v1/persons, one person a request (arg: the job). */
int bench_enrol_next(void *arg, bench_request *req);
int bench_enrol_check(void *arg, const bench_request *req, long status, const char *body, size_t len);

/* The generator's callbacks for POST /v1/persons/batch (arg: the job, after bench_enrol_job_batches). */
int bench_enrol_next_batch(void *arg, bench_request *req);
int bench_enrol_check_batch(void *arg, const bench_request *req, long status, const char *body, size_t len);

/* Enrols every person of j at agency (credential who); RK_OK when all were
 * accepted. */
rk_rc bench_enrol_all(bench_net *n, const char *agency, const tk_client *who, bench_enrol_job *j, int concurrency,
                      int threads, bench_load_result *r, char *err, size_t errlen);

/* Storing a local_tax value for persons 0..n-1 (PUT /v1/data/…). */
typedef struct bench_data_job {
    size_t n, next_i;
} bench_data_job;

/* The generator's `next` for a bench_data_job. */
int bench_data_next(void *arg, bench_request *req);

/* ---- the request-and-provision benches' network (exch_net.c) ---------------------- */

/* A fresh network (bench_net_open with o) with o->persons enrolled and
 * linked at city-yokohama and pref-kanagawa and a local_tax value stored for
 * each at city-yokohama; both agencies' business-system credentials. */
typedef struct bench_exch_net {
    bench_net n;
    tk_client yokohama, kanagawa;
    bench_enrol_job ej;
} bench_exch_net;

/* 0, or the exit code of a failure (said on stderr); err is scratch. */
int bench_exch_net_open(bench_exch_net *x, const bench_opts *o, char *err, size_t errlen);
/* Stops and frees it (the folder kept with keep, or after a failure);
 * returns code, or a failure's when a node did not stop cleanly. */
int bench_exch_net_close(bench_exch_net *x, int keep, int code);

#endif
