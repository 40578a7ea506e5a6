/* net.h — `renkei net`: a whole runnable network in one folder (DESIGN §5).
 *
 *   renkei net init DIR [--agencies N] [--persons N] [--base-port P] [--store sqlite|postgres [--ha]]
 *   renkei net up DIR [--only ID…]
 *   renkei net status DIR
 *
 * The functions below are the same steps as a library, for `renkei demo`
 * and the tests: write a network (CA, certificates, registry, node configs,
 * synthetic residents, permission table), start its server nodes as child
 * processes, wait until every one answers /healthz, and stop them. */
#ifndef RK_TOOLS_NET_H
#define RK_TOOLS_NET_H

#include <stddef.h>
#include <stdio.h>

#include "lib/err.h"

typedef struct rk_net_options {
    int agencies;  /* 2..5000; 0 = default 3 */
    int persons;   /* 1..5,000,000; 0 = default 100 */
    int base_port; /* first port, assigned sequentially; 0 = pick free ephemeral ports */
    int postgres;  /* 1: every node's store in one PostgreSQL server under DIR/pg (pg.c); 0: SQLite */
    int core_instances; /* 0 or 1: one core ("core"); 2..8: core-1 … core-N over one database (PostgreSQL only) */
    int ha;        /* with postgres: a primary and a synchronous standby under Patroni and etcd (ha.c) */
    int hsm;       /* every server node's key and the CA key in a SoftHSM2 token under DIR/hsm (hsm.c) */
} rk_net_options;

/* Writes a network into dir (created if missing). opt NULL = defaults.
 * Refuses (RK_ERR_EXISTS) when dir/network.json exists. On error err holds
 * one line for the operator. */
rk_rc rk_net_init(const char *dir, const rk_net_options *opt, char *err, size_t errlen);

/* Running node processes. */
typedef struct rk_net_procs rk_net_procs;

/* Starts every server node of dir/network.json as a child process
 * `renkei_exe <role> --config dir/nodes/<id>/node.conf`, stdout and stderr
 * appended to dir/nodes/<id>/node.log, in the order core, jlis, gateways,
 * agency nodes; the PostgreSQL server of dir/pg first, when there is one.
 * The children get SIGTERM if the calling thread dies. On failure the nodes
 * already started are stopped and *out is NULL. */
rk_rc rk_net_start(const char *dir, const char *renkei_exe, rk_net_procs **out, char *err, size_t errlen);
/* The same for the server nodes that ids[0..n_ids) name only (ids NULL:
 * all): a node id, or an agency id for its gateway and agency node. An id
 * that names none: RK_ERR_NOT_FOUND, err names it, nothing started. */
rk_rc rk_net_start_only(const char *dir, const char *renkei_exe, const char *const *ids, size_t n_ids,
                        rk_net_procs **out, char *err, size_t errlen);

/* Polls every server node's /healthz (and the core's backup line) with the
 * operator credentials until all answer 200: RK_OK, or RK_ERR_TIMEOUT. */
rk_rc rk_net_wait_healthy(const char *dir, int timeout_ms);

/* Number of node processes in p. */
size_t rk_net_count(const rk_net_procs *p);

/* SIGTERM to all, waits up to 10 s for each, then SIGKILL; then stops the
 * PostgreSQL server that rk_net_start started. RK_OK only if every node
 * exited with status 0 (earlier unexpected exits included) and the server
 * stopped. Names every node that did not on stderr. Frees p; NULL is RK_OK. */
rk_rc rk_net_stop(rk_net_procs *p);

/* A network written with --store postgres: starts its server (DIR/pg)
 * when it is down; *started is then 1 and the caller stops it with
 * rk_net_pg_stop. RK_OK with *started 0 when it runs already or the network
 * has none. On error err holds one line. */
rk_rc rk_net_pg_start(const char *dir, int *started, char *err, size_t errlen);
/* Stops the server of DIR/pg (fast: sessions ended, a checkpoint). */
rk_rc rk_net_pg_stop(const char *dir);

/* One line per server node: "<id> <role> <url> ok|degraded|down", then,
 * under --ha, one per database server: "<id> store <url> primary|standby
 * ok|degraded|down". Returns 0 when all are ok, 1 otherwise (errors on
 * stderr). */
int rk_net_status(const char *dir, FILE *out);

/* `renkei net …`, argv[0] == "net"; returns the exit code (0, 1 failure,
 * 2 usage error). */
int rk_cmd_net(int argc, char **argv);

#endif
