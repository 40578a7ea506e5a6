/* store.c — `renkei bench store`: writes per second through the store's
 * group commit (rk_db_write from many threads) against one commit per write,
 * on a given store (SQLite or PostgreSQL). */
#include <getopt.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/util.h"
#include "store/db.h"
#include "tools/bench/bench.h"
#include "tools/toolkit.h"

static const char usage_store[] =
    "usage: renkei bench store [--target TARGET] [--threads N] [--seconds S]\n"
    "\n"
    "N threads (default 16) each write for S seconds (default 5), every write\n"
    "two inserts in one transaction (a record and a kept answer, as an\n"
    "exchange's settlement), first through group commit (rk_db_write: writes\n"
    "waiting meanwhile share a commit), then one commit per write (the same\n"
    "threads, a write at a time). Prints writes/s, writes per commit and the\n"
    "p50 and p99 latency of each. Every commit is durable (SQLite FULL,\n"
    "PostgreSQL synchronous_commit on).\n"
    "\n"
    "  --target TARGET  sqlite:PATH or a postgresql:// URI of a scratch database\n"
    "                   (the bench adds two tables to it); default: a SQLite\n"
    "                   file in a new temporary folder, removed after\n";

#define STORE_MAX_SAMPLES 200000

static const char *const store_steps[] = {
    "CREATE TABLE bench_records (seq {id}, exchange_id TEXT NOT NULL, body TEXT NOT NULL);"
    "CREATE TABLE bench_answers (id {id}, key TEXT NOT NULL UNIQUE, body TEXT NOT NULL);",
};

typedef struct store_run {
    rk_db *db;
    int one_at_a_time;
    pthread_mutex_t one; /* held around each write when one_at_a_time */
    double end;
    uint64_t failed;
} store_run;

typedef struct store_worker {
    store_run *run;
    int index;
    uint64_t writes;
    float *ms; /* latency of each write, up to STORE_MAX_SAMPLES */
    size_t n_ms;
} store_worker;

typedef struct store_write {
    char key[48];
} store_write;

static const char store_body[] =
    "{\"exchange_id\":\"bench.0000000000\",\"status\":\"provided\",\"value\":\"0123456789abcdef0123456789abcdef"
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\",\"as_of\":\"2024-04-01\","
    "\"provider\":\"city-bench\",\"item\":\"local_tax\"}";

static rk_rc store_write_fn(rk_db *db, void *arg)
{
    store_write *w = arg;
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO bench_records(exchange_id, body) VALUES (?, ?)");
    rk_bind_text(st, 1, w->key);
    rk_bind_text(st, 2, store_body);
    rk_rc rc = rk_stmt_exec(st);
    if (rc != RK_OK)
        return rc;
    st = rk_db_stmt(db, "INSERT INTO bench_answers(key, body) VALUES (?, ?)");
    rk_bind_text(st, 1, w->key);
    rk_bind_text(st, 2, store_body);
    return rk_stmt_exec(st);
}

static void *store_worker_main(void *arg)
{
    store_worker *k = arg;
    store_run *r = k->run;
    unsigned char rnd[8];
    rk_random(rnd, sizeof rnd);
    char tag[17];
    rk_hex(rnd, sizeof rnd, tag);
    for (uint64_t i = 0; rk_mono_s() < r->end && !bench_stop; i++) {
        store_write w;
        snprintf(w.key, sizeof w.key, "bench-%s-%d-%llu", tag, k->index, (unsigned long long)i);
        double t0 = rk_mono_s();
        if (r->one_at_a_time)
            pthread_mutex_lock(&r->one);
        rk_rc rc = rk_db_write(r->db, store_write_fn, &w);
        if (r->one_at_a_time)
            pthread_mutex_unlock(&r->one);
        if (rc != RK_OK) {
            __atomic_add_fetch(&r->failed, 1, __ATOMIC_RELAXED);
            continue;
        }
        k->writes++;
        if (k->n_ms < STORE_MAX_SAMPLES)
            k->ms[k->n_ms++] = (float)((rk_mono_s() - t0) * 1000);
    }
    return NULL;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* One timed run of `threads` writers; prints its line. 0, or -1 when a thread could not start. */
static int store_measure(rk_db *db, int threads, double seconds, int one_at_a_time)
{
    store_run r = {.db = db, .one_at_a_time = one_at_a_time};
    pthread_mutex_init(&r.one, NULL);
    store_worker *k = calloc((size_t)threads, sizeof *k);
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    int started = 0, ok = k && t;
    unsigned long long writes0, batches0, writes1, batches1;
    rk_db_write_stats(db, &writes0, &batches0);
    double t0 = rk_mono_s();
    r.end = t0 + seconds;
    for (int i = 0; ok && i < threads; i++) {
        k[i] = (store_worker){.run = &r, .index = i, .ms = malloc(STORE_MAX_SAMPLES * sizeof(float))};
        ok = k[i].ms && pthread_create(&t[i], NULL, store_worker_main, &k[i]) == 0;
        started += ok;
    }
    if (!ok)
        r.end = 0; /* the started ones stop at once */
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    double took = rk_mono_s() - t0;
    rk_db_write_stats(db, &writes1, &batches1);
    size_t n = 0;
    uint64_t writes = 0;
    for (int i = 0; i < started; i++) {
        n += k[i].n_ms;
        writes += k[i].writes;
    }
    float *all = ok ? malloc((n ? n : 1) * sizeof *all) : NULL;
    if (all) {
        size_t at = 0;
        for (int i = 0; i < started; i++) {
            memcpy(all + at, k[i].ms, k[i].n_ms * sizeof *all);
            at += k[i].n_ms;
        }
        qsort(all, n, sizeof *all, cmp_float);
        unsigned long long commits = batches1 - batches0;
        printf("  %-22s %9.0f writes/s  %6.1f writes/commit  p50 %7.2f ms  p99 %7.2f ms  (%llu writes, %llu failed)\n",
               one_at_a_time ? "one commit per write" : "group commit", (double)writes / took,
               commits ? (double)(writes1 - writes0) / (double)commits : 0, n ? all[n / 2] : 0,
               n ? all[(size_t)((double)(n - 1) * 0.99)] : 0, (unsigned long long)writes,
               (unsigned long long)r.failed);
        fflush(stdout);
    }
    free(all);
    for (int i = 0; i < threads && k; i++)
        free(k[i].ms);
    free(k);
    free(t);
    pthread_mutex_destroy(&r.one);
    return ok ? 0 : -1;
}

int bench_cmd_store(int argc, char **argv)
{
    static const struct option table[] = {
        {"target", required_argument, NULL, BENCH_OPT_TARGET},
        {"threads", required_argument, NULL, BENCH_OPT_THREADS},
        {"seconds", required_argument, NULL, BENCH_OPT_SECONDS},
        BENCH_O_HELP,
        BENCH_O_END,
    };
    bench_opts o = {.threads = 16, .seconds = 5};
    switch (bench_parse_opts(argc, argv, table, &o)) {
    case BENCH_PARSE_HELP:
        return fputs(usage_store, stdout), 0;
    case BENCH_PARSE_USAGE:
        return 2;
    case BENCH_PARSE_OK:
        break;
    }
    bench_install_signals();
    char dir[64] = "", target[TK_PATH_CAP];
    if (!o.target) {
        snprintf(dir, sizeof dir, "/tmp/renkei-bench-store-XXXXXX");
        if (!mkdtemp(dir))
            return bench_failure("cannot make a temporary folder");
        snprintf(target, sizeof target, "sqlite:%s/bench.db", dir);
    } else {
        snprintf(target, sizeof target, "%s", o.target);
    }
    rk_db *db = NULL;
    rk_rc rc = rk_db_open(target, 0, &db);
    if (rc == RK_OK)
        rc = rk_db_migrate(db, "bench_store", store_steps, 1);
    int status = 0;
    if (rc != RK_OK) {
        status = bench_failure("the store could not be opened: %s", rk_strerror(rc));
    } else {
        printf("bench store: %s, %d threads, %.1f s each, 2 inserts per write\n", rk_db_engine(db), o.threads,
               o.seconds);
        if (store_measure(db, o.threads, o.seconds, 0) != 0 || store_measure(db, o.threads, o.seconds, 1) != 0)
            status = bench_failure("a writer thread could not start");
    }
    rk_db_close(db);
    if (dir[0]) {
        char file[TK_PATH_CAP];
        const char *const suffixes[] = {"", "-wal", "-shm"};
        for (int i = 0; i < 3; i++) {
            snprintf(file, sizeof file, "%s/bench.db%s", dir, suffixes[i]);
            unlink(file);
        }
        rmdir(dir);
    }
    return status;
}
