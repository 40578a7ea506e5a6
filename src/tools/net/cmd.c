/* cmd.c — the command line of `renkei net init|up|status`: usage texts,
 * options, the summary after init, and running a network in the foreground. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/util.h"
#include "tools/net/net.h"
#include "tools/net/net_internal.h"
#include "tools/toolkit.h"

/* init writes a network; up runs every server node as a child process, in
 * the foreground, until SIGINT or SIGTERM; status calls each node's /healthz
 * with the operator's credentials. Exit status: 0 success, 1 failure, 2 usage
 * error; errors are one line on stderr starting with "renkei net: ". */

#define EXIT_USAGE TK_EXIT_USAGE
#define NET_UP_HEALTH_MS 30000

enum parse_result { PARSE_OK, PARSE_HELP, PARSE_USAGE };

static const char usage_net[] =
    "usage: renkei net COMMAND DIR [options]\n"
    "\n"
    "A whole renkei network in one folder, on 127.0.0.1.\n"
    "\n"
    "commands:\n"
    "  init DIR [--agencies N] [--persons N] [--base-port P] [--store sqlite|postgres [--ha]]\n"
    "           [--core-instances N] [--hsm]\n"
    "                 write a runnable network (CA, certificates, network.json,\n"
    "                 node configs, permissions.csv, residents.csv) into DIR\n"
    "  up DIR [--only ID...]\n"
    "                 run every node (or the chosen ones) in the foreground until\n"
    "                 SIGINT or SIGTERM\n"
    "  status DIR     print each node's health; exit 0 only when all are ok\n"
    "\n"
    "Run 'renkei net COMMAND --help' for the options of a command.\n";

static const char usage_init[] =
    "usage: renkei net init DIR [--agencies N] [--persons N] [--base-port P]\n"
    "                           [--store sqlite|postgres [--ha]] [--core-instances N] [--hsm]\n"
    "\n"
    "Writes a runnable network into DIR (created if missing; refused when\n"
    "DIR/network.json exists): the CA (DIR/pki), every node's certificate, key\n"
    "and node.conf (DIR/nodes/<id>), the business systems' and the operator's\n"
    "credentials (DIR/clients), DIR/network.json, DIR/permissions.csv and the\n"
    "catalogue DIR/catalogue (copied from $RENKEI_DATA_DIR), a synthetic\n"
    "DIR/residents.csv, and the card CA of persons' cards with its CRL\n"
    "(DIR/pki/card-ca.pem, card-crl.pem; `renkei card`). Besides the core,\n"
    "J-LIS and each agency's gateway and node: a witness and the portal.\n"
    "\n"
    "  --agencies N    number of agencies, 2..5000 (default 3)\n"
    "  --persons N     synthetic residents, 1..5000000 (default 100)\n"
    "  --base-port P   assign ports P, P+1, … (default: free ephemeral ports)\n"
    "  --store S       sqlite: each node's data in its node.db (the default);\n"
    "                  postgres: in one PostgreSQL server under DIR/pg, a\n"
    "                  database and a role per node (run as the postgres user;\n"
    "                  `net up` starts it before the nodes and stops it after)\n"
    "  --ha            with --store postgres: the database as a primary and a\n"
    "                  synchronous standby under Patroni with one etcd member\n"
    "                  (DIR/pg/pg-1, DIR/pg/pg-2, DIR/pg/etcd); a node's store\n"
    "                  names both servers and follows the primary by itself\n"
    "  --core-instances N  N core nodes core-1 … core-N (2..8) over one database,\n"
    "                  with --store postgres: any instance serves any request,\n"
    "                  the others take over when one fails (default 1: \"core\")\n"
    "  --hsm           every server node's key and the CA key in a SoftHSM2 token\n"
    "                  of the network's own (DIR/hsm; PIN in DIR/hsm/pin), named by\n"
    "                  pkcs11: URIs; the core's code master key wrapped to its key\n"
    "  --help          show this help\n";

static const char usage_up[] =
    "usage: renkei net up DIR [--only ID...]\n"
    "\n"
    "Starts every node of the network in DIR (core, jlis, gateways, agency\n"
    "nodes; each one's output appended to DIR/nodes/<id>/node.log), after its\n"
    "PostgreSQL server (DIR/pg) when it has one (under Patroni: etcd, then\n"
    "Patroni on both servers, until one is primary with a synchronous standby),\n"
    "waits until all are healthy and stays in the foreground. SIGINT or SIGTERM\n"
    "stops them all, and then the database servers if it started them; exit 0\n"
    "only when every node stopped cleanly.\n"
    "\n"
    "  --only ID...    run only these nodes (a large network where an operator\n"
    "                  runs a chosen few): node ids, or an agency id for that\n"
    "                  agency's gateway and agency node; the ids follow --only\n"
    "                  (or DIR); an id that names no node is refused\n"
    "  --help          show this help\n";

static const char usage_status[] =
    "usage: renkei net status DIR\n"
    "\n"
    "Calls every node's /healthz with the operator's credentials and prints\n"
    "'<id> <role> <url> ok|degraded|down'; with the database under Patroni also\n"
    "one line per database server: '<id> store <url> primary|standby\n"
    "ok|degraded|down' (ok: the primary has a synchronous standby streaming;\n"
    "the standby is that one); exit 0 only when all are ok.\n";

#define usage_error(...) tk_usage_error("net", __VA_ARGS__)
#define option_error(c, argv) tk_option_error("net", (c), (argv))

/* The one positional DIR after getopt_long. */
static enum parse_result take_dir(int argc, char **argv, const char **dir)
{
    if (optind >= argc) {
        usage_error("missing DIR");
        return PARSE_USAGE;
    }
    if (optind + 1 < argc) {
        usage_error("unexpected argument '%s'", argv[optind + 1]);
        return PARSE_USAGE;
    }
    *dir = argv[optind];
    return PARSE_OK;
}

static enum parse_result parse_init(int argc, char **argv, const char **dir, rk_net_options *o)
{
    static const struct option opts[] = {{"agencies", required_argument, NULL, 'a'},
                                         {"persons", required_argument, NULL, 'p'},
                                         {"base-port", required_argument, NULL, 'b'},
                                         {"store", required_argument, NULL, 's'},
                                         {"core-instances", required_argument, NULL, 'c'},
                                         {"ha", no_argument, NULL, 'H'},
                                         {"hsm", no_argument, NULL, 'K'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    tk_getopt_reset();
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'h')
            return PARSE_HELP;
        if (c == 'a' && !tk_parse_int(optarg, NET_MIN_AGENCIES, NET_MAX_AGENCIES, &o->agencies))
            return usage_error("--agencies must be %d..%d", NET_MIN_AGENCIES, NET_MAX_AGENCIES), PARSE_USAGE;
        if (c == 'p' && !tk_parse_int(optarg, 1, NET_MAX_PERSONS, &o->persons))
            return usage_error("--persons must be 1..%d", NET_MAX_PERSONS), PARSE_USAGE;
        if (c == 'b' && !tk_parse_int(optarg, 1, 65535, &o->base_port))
            return usage_error("--base-port must be 1..65535"), PARSE_USAGE;
        if (c == 's' && strcmp(optarg, "sqlite") != 0 && strcmp(optarg, "postgres") != 0)
            return usage_error("--store must be sqlite or postgres"), PARSE_USAGE;
        if (c == 's')
            o->postgres = strcmp(optarg, "postgres") == 0;
        if (c == 'c' && !tk_parse_int(optarg, 1, NET_MAX_CORE_INSTANCES, &o->core_instances))
            return usage_error("--core-instances must be 1..%d", NET_MAX_CORE_INSTANCES), PARSE_USAGE;
        if (c == 'H')
            o->ha = 1;
        if (c == 'K')
            o->hsm = 1;
        if (c == '?' || c == ':')
            return option_error(c, argv), PARSE_USAGE;
    }
    if (o->ha && !o->postgres)
        return usage_error("--ha needs --store postgres"), PARSE_USAGE;
    return take_dir(argc, argv, dir);
}

static enum parse_result parse_dir_only(int argc, char **argv, const char **dir)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int c;
    tk_getopt_reset();
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'h')
            return PARSE_HELP;
        return option_error(c, argv), PARSE_USAGE;
    }
    return take_dir(argc, argv, dir);
}

/* DIR, then with --only the ids: --only's argument and every positional after DIR. */
static enum parse_result parse_up(int argc, char **argv, const char **dir, const char ***ids, size_t *n_ids)
{
    static const struct option opts[] = {{"only", required_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    *n_ids = 0;
    tk_getopt_reset();
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'h')
            return PARSE_HELP;
        if (c != 'o')
            return option_error(c, argv), PARSE_USAGE;
        if (!optarg[0])
            return usage_error("--only needs a node or agency id"), PARSE_USAGE;
        (*ids)[(*n_ids)++] = optarg; /* at most argc of them */
    }
    if (!*n_ids)
        return take_dir(argc, argv, dir);
    if (optind >= argc) {
        usage_error("missing DIR");
        return PARSE_USAGE;
    }
    *dir = argv[optind];
    for (int i = optind + 1; i < argc; i++)
        (*ids)[(*n_ids)++] = argv[i];
    return PARSE_OK;
}

static void print_summary(const char *dir, const rk_net_options *o)
{
    printf("network written to %s\n", dir);
    if (o->core_instances > 1)
        printf("  nodes:    %d servers (core-1..core-%d over one database, jlis, a witness, the portal, %d gateways,"
               " %d agency nodes), %d clients\n", 3 + o->core_instances + 2 * o->agencies, o->core_instances,
               o->agencies, o->agencies, o->agencies + 1);
    else
        printf("  nodes:    %d servers (core with 2 lines, jlis, a witness, the portal, %d gateways, %d agency nodes),"
               " %d clients\n", 4 + 2 * o->agencies, o->agencies, o->agencies, o->agencies + 1);
    printf("  agencies: %d (", o->agencies);
    for (int i = 1; i <= o->agencies && i <= NET_NAMED_AGENCIES; i++)
        printf("%s%s %s", i > 1 ? ", " : "", net_named_agencies[i - 1].id, net_named_agencies[i - 1].kind);
    if (o->agencies > NET_NAMED_AGENCIES)
        printf(", city-005..city-%03d municipality", o->agencies);
    printf(")\n");
    printf("  persons:  %d\n", o->persons);
    printf("  store:    %s\n", o->ha ? "PostgreSQL, a primary and a synchronous standby under Patroni in DIR/pg"
                                          " (a database and a role per node)"
                             : o->postgres ? "PostgreSQL, one server under DIR/pg (a database and a role per node)"
                                           : "SQLite, nodes/<id>/node.db");
    printf("run it with: renkei net up %s\n", dir);
}

static int cmd_init(int argc, char **argv)
{
    rk_net_options o = {.agencies = NET_DEFAULT_AGENCIES, .persons = NET_DEFAULT_PERSONS, .base_port = 0};
    const char *dir = NULL;
    char err[1024] = "";
    enum parse_result pr = parse_init(argc, argv, &dir, &o);
    if (pr == PARSE_HELP)
        return fputs(usage_init, stdout), 0;
    if (pr != PARSE_OK)
        return EXIT_USAGE;
    rk_rc rc = rk_net_init(dir, &o, err, sizeof err);
    if (rc != RK_OK) {
        fprintf(stderr, "renkei net: %s\n", err[0] ? err : rk_strerror(rc));
        return EXIT_FAILURE;
    }
    print_summary(dir, &o);
    return 0;
}

static void on_stop_signal(int sig)
{
    (void)sig;
    net_stop_requested = 1;
}

static void install_stop_handlers(void)
{
    struct sigaction sa = {.sa_handler = on_stop_signal}; /* no SA_RESTART: sleeps end early */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Foreground until a stop signal or until no node is left. */
static int run_until_stopped(rk_net_procs *p)
{
    int failed = 0;
    while (!net_stop_requested && net_count_running(p) > 0) {
        if (net_reap_unexpected(p) > 0)
            failed = 1;
        if (!net_stop_requested && net_count_running(p) > 0)
            tk_sleep_ms(200);
    }
    if (!net_stop_requested)
        fprintf(stderr, "renkei net: no node is left running\n");
    return failed;
}

static int cmd_up(int argc, char **argv)
{
    const char *dir = NULL;
    char exe[PATH_MAX], err[1024] = "";
    rk_net_procs *p = NULL;
    size_t n_ids = 0;
    const char **ids = calloc((size_t)argc + 1, sizeof *ids);
    if (!ids)
        return fprintf(stderr, "renkei net: out of memory\n"), EXIT_FAILURE;
    enum parse_result pr = parse_up(argc, argv, &dir, &ids, &n_ids);
    if (pr != PARSE_OK) {
        free(ids);
        return pr == PARSE_HELP ? (fputs(usage_up, stdout), 0) : EXIT_USAGE;
    }
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        free(ids);
        return fprintf(stderr, "renkei net: cannot find my own executable: %s\n", strerror(errno)), EXIT_FAILURE;
    }
    exe[n] = '\0';
    net_stop_requested = 0;
    install_stop_handlers();
    rk_rc rc = rk_net_start_only(dir, exe, n_ids ? ids : NULL, n_ids, &p, err, sizeof err);
    free(ids);
    if (rc != RK_OK)
        return fprintf(stderr, "renkei net: %s\n", err), EXIT_FAILURE;
    int failed = 0;
    rc = net_wait_healthy(dir, NET_UP_HEALTH_MS, p, err, sizeof err);
    if (rc == RK_OK) {
        printf("network up: %zu nodes (%s)\n", rk_net_count(p), dir);
        fflush(stdout);
        failed = run_until_stopped(p);
    } else if (!net_stop_requested) {
        failed = 1;
        if (rc == RK_ERR_TIMEOUT)
            fprintf(stderr, "renkei net: the network is not healthy after %d s (%s is not)\n",
                    NET_UP_HEALTH_MS / 1000, err);
        else if (rc == RK_ERR_UPSTREAM)
            fprintf(stderr, "renkei net: a node exited during start-up; stopping the others\n");
        else
            fprintf(stderr, "renkei net: %s\n", err);
    }
    rc = rk_net_stop(p);
    return rc == RK_OK && !failed ? 0 : EXIT_FAILURE;
}

static int cmd_status(int argc, char **argv)
{
    const char *dir = NULL;
    enum parse_result pr = parse_dir_only(argc, argv, &dir);
    if (pr != PARSE_OK)
        return pr == PARSE_HELP ? (fputs(usage_status, stdout), 0) : EXIT_USAGE;
    return rk_net_status(dir, stdout) == 0 ? 0 : EXIT_FAILURE;
}

int rk_cmd_net(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("missing command (init, up or status)");
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0)
        return fputs(usage_net, stdout), 0;
    if (strcmp(cmd, "init") == 0)
        return cmd_init(argc - 1, argv + 1);
    if (strcmp(cmd, "up") == 0)
        return cmd_up(argc - 1, argv + 1);
    if (strcmp(cmd, "status") == 0)
        return cmd_status(argc - 1, argv + 1);
    return usage_error("unknown command '%s'", cmd);
}
