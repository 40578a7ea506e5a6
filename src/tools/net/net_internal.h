/* net_internal.h — what the files of `renkei net` share: limits, error lines,
 * the plan of the nodes, and the stop flag and reaping of the node processes. */
#ifndef RK_TOOLS_NET_INTERNAL_H
#define RK_TOOLS_NET_INTERNAL_H

#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "lib/err.h"
#include "net/registry.h"
#include "tools/net/net.h"
#include "tools/toolkit.h"

#define NET_PATH_CAP TK_PATH_CAP
#define NET_MIN_AGENCIES 2
#define NET_MAX_AGENCIES 5000
#define NET_DEFAULT_AGENCIES 3
#define NET_MAX_PERSONS 5000000
#define NET_DEFAULT_PERSONS 100
#define NET_MAX_CORE_INSTANCES 8
#define NET_LOOPBACK "127.0.0.1"
#define NET_PORT_FLOOR 20000 /* listening ports are picked at or above it */

/* Formats one error line into err (nothing when err is NULL or errlen 0). */
__attribute__((format(printf, 3, 4))) static inline void net_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* 1 for the roles that run as a server node (core, jlis, witness, portal, ppc, gateway, agency). */
static inline int net_is_server_role(rk_role role)
{
    return (role & RK_ROLES_SERVER) != 0;
}

/* ---- the plan: every node of the network, before anything is written (plan.c) ---- */

/* One node or client of the plan. */
typedef struct net_node {
    char id[RK_ID_MAX];
    rk_role role;
    char agency[RK_ID_MAX]; /* "" for core, jlis, operator */
    const char *kind;       /* "" where not applicable */
    int port, backup_port;  /* 0 when none */
    int person_port;        /* the portal's listener for persons' cards; 0 for the others */
    int instance;           /* a core of several: 1..N (DESIGN §6), sharing the first's keys and database; else 0 */
} net_node;

/* The core alone listens on two lines (第7-1(7)); instances are each other's. */
static inline int net_has_backup_line(const net_node *n)
{
    return n->role == RK_ROLE_CORE && n->instance == 0;
}

/* Every node, in the order of network.json and of `net up`. */
typedef struct net_plan {
    net_node *nodes;
    size_t n;
} net_plan;

/* An agency with its own name (the others are city-005, city-006, …). */
typedef struct net_named_agency {
    const char *id, *kind;
} net_named_agency;

/* The named agencies, the first ones of every network. */
#define NET_NAMED_AGENCIES 4
extern const net_named_agency net_named_agencies[NET_NAMED_AGENCIES];

/* core, jlis, a witness, the portal, all gateways, all agency nodes, all
 * systems, each agency's privileged operator, the network operator;
 * plan->nodes is the caller's to free. */
rk_rc net_plan_build(int agencies, int core_instances, net_plan *plan);

/* Ports for the server nodes: base_port, base_port+1, … or free ephemeral ones (base_port 0). */
rk_rc net_plan_ports(net_plan *plan, int base_port, char *err, size_t errlen);

/* ---- the residents' basic items (people.c) ----------------------------------------- */

/* ",name,birth_date,sex,address" of resident i (0-based) from four random
 * values, into out; its length, or 0 when it does not fit. */
size_t net_resident_items(long i, const uint64_t r[4], char *out, size_t cap);

/* ---- node processes (procs.c) ------------------------------------------------------ */

/* Set by `net up`'s SIGINT/SIGTERM handler. */
extern volatile sig_atomic_t net_stop_requested;

/* Reports children that exited on their own; returns how many did so
 * uncleanly (or at all, unless a stop was asked for). */
int net_reap_unexpected(rk_net_procs *p);

/* The node id of child i (0..rk_net_count-1), NULL beyond. */
const char *net_proc_id(const rk_net_procs *p, size_t i);

/* The children still running. */
size_t net_count_running(const rk_net_procs *p);

/* ---- the PostgreSQL server of a network (pg.c) ------------------------------------ */

/* 1 when DIR/pg holds a server's data (a network written with --store postgres). */
int net_pg_present(const char *dir);

/* Makes the server under DIR/pg (initdb, its port, one role and database per
 * server node of the plan; stopped again after) and sets stores[i] to the
 * node's `store` URI for every server node i (malloc'ed, the caller's). */
rk_rc net_pg_init(const char *dir, const net_plan *plan, char **stores, char *err, size_t errlen);
/* The psql script that makes a role and a database for each server node
 * (the instances of a core: one, "core"), malloc'ed in *script, and each
 * node's libpq URI in stores[i]: postgresql://ROLE:PASSWORD@hosts/DB params.
 * The passwords go through psql's stdin only, never a command line. */
rk_rc net_pg_databases_script(const net_plan *plan, const char *hosts, const char *params, char **stores,
                              char **script);

/* What ha.c borrows from pg.c: running a PostgreSQL command (as `postgres`
 * when root and as_postgres; 0 when it exited 0), a free loopback port, and
 * the `postgres` user's way to root (DIR/pg) when renkei runs as root. */
int net_pg_run(int as_postgres, const char *log, const char *input, const char *const argv[]);
int net_pg_pick_port(const net_plan *plan);
rk_rc net_pg_reachable(const char *root, uid_t *uid, gid_t *gid, char *err, size_t errlen);

/* ---- the database as a primary and a synchronous standby: --ha (ha.c) -------------- */

/* 1 when DIR/pg holds an HA cluster (written with --store postgres --ha). */
int net_ha_present(const char *dir);

/* Writes the cluster under DIR/pg — one etcd member (DIR/pg/etcd), two
 * PostgreSQL servers under Patroni (DIR/pg/pg-1, DIR/pg/pg-2), each
 * configuration a YAML file of its own — starts it once to make one role
 * and one database per server node of the plan, stops it, and sets
 * stores[i] to each server node's `store` URI (both servers,
 * target_session_attrs=read-write; malloc'ed, the caller's). */
rk_rc net_ha_init(const char *dir, const net_plan *plan, char **stores, char *err, size_t errlen);

/* Starts what of the cluster is down (etcd, then Patroni on both servers)
 * and waits for a leader and a synchronous standby; *started is 1 when it
 * started anything (net_ha_stop stops it all after). */
rk_rc net_ha_start(const char *dir, int *started, char *err, size_t errlen);

/* Stops Patroni on the standby, then on the primary (each stops its
 * PostgreSQL), then etcd. RK_OK when all stopped. */
rk_rc net_ha_stop(const char *dir);

/* One line per database server, "<id> store <url> primary|standby
 * ok|degraded|down", read from Patroni's REST API; width pads the id.
 * Returns 0 when all are ok. */
int net_ha_status(const char *dir, FILE *out, int width);
/* The line of the one PostgreSQL server of DIR/pg in `net status`:
 * `pg store postgresql://127.0.0.1:PORT primary ok|down`; non-zero when down. */
int net_pg_status(const char *dir, FILE *out, int width);

/* ---- health (health.c) ------------------------------------------------------------- */

/* Polls until all server nodes are healthy. procs (optional): only its
 * nodes, and fails early when one of them exits. Stops early when `net up`
 * is asked to stop. */
rk_rc net_wait_healthy(const char *dir, int timeout_ms, rk_net_procs *procs, char *pending, size_t pendlen);

/* hsm.c: --hsm, after the configurations are written; and the token's
 * SOFTHSM2_CONF for the nodes `net up` starts. */
rk_rc net_hsm_init(const char *dir, const net_plan *plan, char *err, size_t errlen);
void net_hsm_env(const char *dir);

#endif
