/* exch_net.c — the fresh network of the request-and-provision benches
 * (exchanges.c, queries.c): 3 agencies up, N persons enrolled and linked at
 * city-yokohama and pref-kanagawa, a local_tax value stored for each at
 * city-yokohama, and both agencies' business-system credentials. */
#include <stdio.h>

#include "lib/util.h"
#include "tools/bench/bench.h"

#define SETUP_CONCURRENCY 16

/* Enrols every person at city-yokohama and pref-kanagawa and waits until
 * both have linked them all. */
static int enrol_both(bench_exch_net *x, int persons, char *err, size_t errlen)
{
    double t = rk_mono_s();
    bench_load_result r;
    if (bench_enrol_all(&x->n, "city-yokohama", &x->yokohama, &x->ej, SETUP_CONCURRENCY, 1, &r, err, errlen) != RK_OK ||
        bench_enrol_all(&x->n, "pref-kanagawa", &x->kanagawa, &x->ej, SETUP_CONCURRENCY, 1, &r, err, errlen) != RK_OK)
        return bench_failure("enrolment: %s", err);
    long linked = 0;
    static const char *const agencies[] = {"city-yokohama", "pref-kanagawa"};
    for (int i = 0; i < 2; i++) {
        if (bench_wait_linked(&x->n, agencies[i], persons, NULL, &linked) != RK_OK)
            return bench_failure("only %ld of %d persons were linked at %s", linked, persons, agencies[i]);
    }
    bench_note("set-up: %d persons enrolled and linked at city-yokohama and pref-kanagawa in %.1f s", persons,
               rk_mono_s() - t);
    return 0;
}

/* Stores a local_tax value for every person at city-yokohama. */
static int store_values(bench_exch_net *x, int persons, char *err, size_t errlen)
{
    double t = rk_mono_s();
    bench_data_job dj = {.n = (size_t)persons};
    bench_load_config cfg = bench_net_load_cfg(&x->n, bench_net_node(&x->n, RK_ROLE_AGENCY, "city-yokohama"),
                                               &x->yokohama, SETUP_CONCURRENCY, 1);
    cfg.next = bench_data_next;
    cfg.arg = &dj;
    bench_load_result r;
    rk_rc rc = bench_load_run(&cfg, &r, err, errlen);
    if (rc != RK_OK || r.ok != (uint64_t)persons)
        return bench_failure("storing local_tax values: %s", rc != RK_OK ? err : "not every PUT was answered 200");
    bench_note("set-up: %d local_tax values stored at city-yokohama in %.1f s", persons, rk_mono_s() - t);
    return 0;
}

int bench_exch_net_open(bench_exch_net *x, const bench_opts *o, char *err, size_t errlen)
{
    rk_rc rc;
    double t = rk_mono_s();
    if ((rc = bench_net_open(&x->n, o->persons, o->workers, o, err, errlen)) != RK_OK)
        return bench_failure("%s", err[0] ? err : rk_strerror(rc));
    bench_note("network: %s, %zu nodes, up in %.1f s", x->n.dir, rk_net_count(x->n.procs), rk_mono_s() - t);
    if ((rc = tk_client_open(x->n.dir, "clients/city-yokohama", &x->yokohama, err, errlen)) != RK_OK ||
        (rc = tk_client_open(x->n.dir, "clients/pref-kanagawa", &x->kanagawa, err, errlen)) != RK_OK ||
        (rc = bench_enrol_job_init(&x->ej, (size_t)o->persons)) != RK_OK ||
        (rc = bench_read_residents(x->n.dir, &x->ej, err, errlen)) != RK_OK)
        return bench_failure("%s", err[0] ? err : rk_strerror(rc));
    int code = enrol_both(x, o->persons, err, errlen);
    return code ? code : store_values(x, o->persons, err, errlen);
}

int bench_exch_net_close(bench_exch_net *x, int keep, int code)
{
    if (bench_net_close(&x->n, keep || (code != 0 && !bench_stop)) != RK_OK && code == 0)
        code = bench_failure("a node did not stop cleanly (see its node.log)");
    tk_client_close(&x->yokohama);
    tk_client_close(&x->kanagawa);
    bench_enrol_job_free(&x->ej);
    return code;
}
