/* bench.c — `renkei bench WHAT`: the top-level usage and the dispatcher to
 * each benchmark (codes.c, bench_cms.c, http.c, exchanges.c, queries.c, enrol.c, records.c, store.c). */
#include <stdio.h>
#include <string.h>

#include "tools/bench/bench.h"
#include "tools/tools.h"

/* Nothing here passes or fails on time: the figures are printed for a
 * person to read (docs/bench.md). Exit status: 0 when the benchmark ran,
 * 1 when it could not (set-up failed, a node did not stop cleanly), 2 usage
 * error; errors are one line on stderr starting with "renkei bench: ". */

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
    "  queries     the same queries one by one and as batch queries: time to\n"
    "              complete and queries per second each way\n"
    "  enrol       bulk enrolment: time to accept and to link N persons, peak RSS\n"
    "  records     the core's records log from 10^3 to N records: append rate, proof\n"
    "              latency from tiles at each size, bytes per record, records verify\n"
    "  store       durable writes per second on a store (SQLite or PostgreSQL),\n"
    "              group commit against one commit per write\n"
    "\n"
    "Run 'renkei bench WHAT --help' for the options. See docs/bench.md.\n";

int rk_cmd_bench(int argc, char **argv)
{
    if (argc < 2)
        return bench_usage_error("missing what to benchmark (codes, cms, http, exchanges, queries, enrol, records or store)");
    const char *what = argv[1];
    if (strcmp(what, "--help") == 0 || strcmp(what, "-h") == 0 || strcmp(what, "help") == 0)
        return fputs(usage_main, stdout), 0;
    if (strcmp(what, "codes") == 0)
        return bench_cmd_codes(argc - 1, argv + 1);
    if (strcmp(what, "cms") == 0)
        return bench_cmd_cms(argc - 1, argv + 1);
    if (strcmp(what, "http") == 0)
        return bench_cmd_http(argc - 1, argv + 1);
    if (strcmp(what, "exchanges") == 0)
        return bench_cmd_exchanges(argc - 1, argv + 1);
    if (strcmp(what, "enrol") == 0)
        return bench_cmd_enrol(argc - 1, argv + 1);
    if (strcmp(what, "records") == 0)
        return bench_cmd_records(argc - 1, argv + 1);
    if (strcmp(what, "store") == 0)
        return bench_cmd_store(argc - 1, argv + 1);
    if (strcmp(what, "queries") == 0)
        return bench_cmd_queries(argc - 1, argv + 1);
    return bench_usage_error("unknown benchmark '%s' (codes, cms, http, exchanges, queries, enrol, records or store)", what);
}
