/* fresh_net.c — a fresh network for a bench: written and started in a
 * temporary folder, stopped and removed; its nodes' counts of linked persons
 * and the load generator's configuration for calls to one of its nodes. */
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"
#include "net/http_client.h"
#include "net/registry.h"
#include "tools/bench/bench.h"
#include "tools/net/net.h"
#include "tools/progress.h"
#include "tools/toolkit.h"

#define HEALTHY_TIMEOUT_MS 60000
#define LINK_STALL_MS 120000   /* linking gives up after this long without progress */
#define LINK_POLL_MS 250
#define CALL_TIMEOUT_MS 10000

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

const rk_peer_node *bench_net_node(const bench_net *n, rk_role role, const char *agency)
{
    return rk_registry_find(n->reg, role, agency);
}

/* Appends "[node] workers = N" to every server node's node.conf (the last
 * value read wins). */
static rk_rc set_workers(const bench_net *n, int workers, char *err, size_t errlen)
{
    for (size_t i = 0; i < n->reg->n_nodes; i++) {
        const rk_peer_node *node = &n->reg->nodes[i];
        if (!node->url[0])
            continue; /* a client */
        char path[TK_PATH_CAP];
        bench_fmt(path, sizeof path, "%s/nodes/%s/node.conf", n->dir, node->id);
        FILE *f = fopen(path, "ae");
        if (!f || fprintf(f, "\n[node]\nworkers = %d\n", workers) < 0 || fclose(f) != 0) {
            bench_fmt(err, errlen, "cannot set workers in %s: %s", path, strerror(errno));
            return RK_ERR_IO;
        }
    }
    return RK_OK;
}

/* The network's PostgreSQL server (its postmaster and backends) counted in
 * the CPU figures: pg_ctl started it outside this process's tree. */
static void count_postgres(const bench_net *n)
{
    char path[TK_PATH_CAP];
    bench_fmt(path, sizeof path, "%s/pg/data/postmaster.pid", n->dir);
    FILE *f = fopen(path, "re");
    long pid = 0;
    if (f) {
        if (fscanf(f, "%ld", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    if (pid > 0)
        bench_procs_also((pid_t)pid, "postgres (server)");
}

/* Writes and starts a network of 3 agencies and `persons` residents in a new
 * temporary folder (o->postgres: its data in a PostgreSQL server of its own;
 * o->core_instances: that many core instances) and waits until every node
 * is healthy. */
rk_rc bench_net_open(bench_net *n, int persons, int workers, const bench_opts *o, char *err, size_t errlen)
{
    memset(n, 0, sizeof *n);
    char exe[PATH_MAX], path[TK_PATH_CAP];
    rk_rc rc = tk_temp_dir("renkei-bench", n->dir, sizeof n->dir, err, errlen);
    if (rc != RK_OK)
        return rc;
    n->made_dir = 1;
    bench_fmt(n->ca, sizeof n->ca, "%s/pki/ca.pem", n->dir);
    rk_net_options opt = {.agencies = 3, .persons = persons, .postgres = o->postgres,
                          .core_instances = o->core_instances};
    rc = rk_net_init(n->dir, &opt, err, errlen);
    if (rc != RK_OK)
        return rc;
    bench_fmt(path, sizeof path, "%s/network.json", n->dir);
    if ((rc = rk_registry_load(path, &n->reg, err, errlen)) != RK_OK)
        return rc;
    if (!bench_net_node(n, RK_ROLE_AGENCY, "city-yokohama") || !bench_net_node(n, RK_ROLE_AGENCY, "pref-kanagawa") ||
        !bench_net_node(n, RK_ROLE_CORE, NULL)) {
        bench_fmt(err, errlen, "%s: no core, city-yokohama or pref-kanagawa node", path);
        return RK_ERR_CONFIG;
    }
    if ((rc = tk_client_open(n->dir, "clients/operator", &n->op, err, errlen)) != RK_OK) {
        if (n->op.failed == TK_STEP_CLIENT)
            bench_fmt(err, errlen, "cannot make a client: %s", rk_strerror(rc));
        return rc;
    }
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) {
        bench_fmt(err, errlen, "cannot find my own executable: %s", strerror(errno));
        return RK_ERR_IO;
    }
    exe[len] = '\0';
    if (workers > 0 && (rc = set_workers(n, workers, err, errlen)) != RK_OK)
        return rc;
    if ((rc = rk_net_start(n->dir, exe, &n->procs, err, errlen)) != RK_OK)
        return rc;
    if ((rc = rk_net_wait_healthy(n->dir, HEALTHY_TIMEOUT_MS)) != RK_OK)
        bench_fmt(err, errlen, "the network did not become healthy within %d s (see %s/nodes/*/node.log)",
                  HEALTHY_TIMEOUT_MS / 1000, n->dir);
    else if (o->postgres)
        count_postgres(n);
    return rc;
}

/* Stops the nodes, removes the folder unless keep. RK_OK when every node
 * exited cleanly. */
rk_rc bench_net_close(bench_net *n, int keep)
{
    rk_rc rc = rk_net_stop(n->procs);
    n->procs = NULL;
    tk_client_close(&n->op);
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
rk_rc bench_agency_counts(bench_net *n, const char *agency, long *linked, long *pending)
{
    const rk_peer_node *node = bench_net_node(n, RK_ROLE_AGENCY, agency);
    char url[RK_URL_MAX + 16];
    rk_http_result res;
    bench_fmt(url, sizeof url, "%s/healthz", node->url);
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
rk_rc bench_wait_linked(bench_net *n, const char *agency, long want, rk_progress *bar, long *linked_out)
{
    long linked = 0, pending = 0, shown = 0;
    double last_progress = rk_mono_s();
    for (;;) {
        rk_rc rc = bench_agency_counts(n, agency, &linked, &pending);
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

/* The load generator's configuration for calls as `who` to `node`. */
bench_load_config bench_net_load_cfg(const bench_net *n, const rk_peer_node *node, const tk_client *who,
                                     int concurrency, int threads)
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
