/* bench_load.h — a closed-loop HTTPS load generator for `renkei bench`.
 *
 * `concurrency` connections (mutual TLS 1.3, keep-alive), each sending its
 * next request as soon as the previous answer arrived. Built on the curl
 * multi interface: every worker thread drives its share of the connections
 * from one event loop, so the client itself costs little CPU next to the
 * servers it loads. Connections are reused; the number opened is reported
 * (it should stay at `concurrency`).
 *
 * Two modes:
 *   - timed (seconds > 0): warm-up, then a measured window; only answers
 *     that arrive inside the window count; requests still in flight at its
 *     end are drained and not counted;
 *   - until done (seconds == 0): runs until `next` gives no more requests
 *     and none is in flight (bulk jobs such as enrolment).
 *
 * Callbacks are serialised (never two at once), so they need no locking. */
#ifndef RK_TOOLS_BENCH_LOAD_H
#define RK_TOOLS_BENCH_LOAD_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/err.h"

#define BENCH_BODY_CAP (512 * 1024) /* a batch of 1000 enrolments with their basic items */
#define BENCH_PATH_CAP 512
#define BENCH_MAX_STATUSES 16

/* One request, filled by the caller's `next`. body points to a buffer of
 * BENCH_BODY_CAP bytes owned by the generator; path and method may be left
 * empty/NULL for the configured defaults. tag is the caller's own. */
typedef struct bench_request {
    char path[BENCH_PATH_CAP];
    const char *method;
    char *body;
    size_t body_len;
    uint64_t tag;
} bench_request;

/* 1: send req; 0: nothing (more) to send on this connection now. */
typedef int (*bench_next_fn)(void *arg, bench_request *req);
/* An answer (status > 0) or a failure (status 0, body NULL). Returns 1 when
 * it counts as a success. NULL check: 2xx is success. */
typedef int (*bench_check_fn)(void *arg, const bench_request *req, long status, const char *body, size_t len);
/* Called on the coordinating thread when the measured window starts (0)
 * and ends (1), for CPU snapshots. */
typedef void (*bench_mark_fn)(void *arg, int end);

typedef struct bench_load_config {
    const char *base_url; /* "https://127.0.0.1:PORT" */
    const char *path;     /* default path, e.g. "/v1/queries" */
    const char *method;   /* default method; NULL = GET, or POST when a body is given */
    const char *body;     /* static body when next is NULL (may be NULL) */
    size_t body_len;
    X509 *cert;           /* client identity (borrowed) */
    EVP_PKEY *key;
    const char *ca_path;  /* the CA that must have signed the server */
    int concurrency;      /* connections, 1.. */
    int threads;          /* worker threads sharing them; 0 = 1 */
    double seconds;       /* measured window; 0 = until next gives no more */
    double warmup;        /* seconds before the window (timed mode only) */
    int timeout_ms;       /* per request; 0 = 30000 */
    bench_next_fn next;
    bench_check_fn check;
    bench_mark_fn mark;
    void *arg;
    volatile int *stop;   /* optional: set to non-zero to end early (e.g. SIGINT) */
} bench_load_config;

typedef struct bench_status_count {
    long status; /* 0 = no answer */
    uint64_t count;
} bench_status_count;

typedef struct bench_load_result {
    uint64_t ok;       /* successes inside the window */
    uint64_t rejected; /* answered, but not a success (non-2xx, or refused by check) */
    uint64_t errors;   /* no answer: connection, TLS or timeout */
    double elapsed_s;  /* the measured window */
    double rate;       /* ok / elapsed_s */
    double p50_ms, p90_ms, p99_ms, max_ms, mean_ms; /* latencies of the successes */
    long connects;     /* connections opened over the whole run, warm-up included */
    uint64_t sent;     /* requests sent over the whole run */
    bench_status_count statuses[BENCH_MAX_STATUSES]; /* the answers that were not successes */
    int n_statuses;
    char first_error[256]; /* the first transport error, "" if none */
} bench_load_result;

/* Runs the load. RK_OK when the run took place (whatever the answers were);
 * otherwise err holds one line. */
rk_rc bench_load_run(const bench_load_config *cfg, bench_load_result *out, char *err, size_t errlen);

/* Prints a result block: rate, latency percentiles, errors, connections. */
void bench_load_print(FILE *out, const char *label, const char *unit, const bench_load_result *r, int concurrency);

#endif
