/* plan.c — the plan of a network: every node (core, jlis, gateways, agency
 * nodes, systems, operators) with its agency, kind and ports, before anything is written. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/util.h"
#include "net/registry.h"
#include "tools/net/net_internal.h"
#include "tools/toolkit.h"

/* The first agencies of every network, in this order. */
const net_named_agency net_named_agencies[] = {
    {"city-yokohama", "municipality"},
    {"pref-kanagawa", "prefecture"},
    {"nenkin-kikou", "pension"},
    {"kyokai-kenpo", "insurer"},
};

/* Agency i (1-based): the four named ones, then city-005, city-006, … */
static rk_rc agency_identity(int i, char *id, size_t idlen, const char **kind)
{
    if (i <= NET_NAMED_AGENCIES) {
        *kind = net_named_agencies[i - 1].kind;
        return tk_path(id, idlen, "%s", net_named_agencies[i - 1].id);
    }
    *kind = "municipality";
    return tk_path(id, idlen, "city-%03d", i);
}

static net_node *plan_add(net_plan *plan, rk_role role, const char *agency, const char *kind)
{
    net_node *n = &plan->nodes[plan->n++];
    n->role = role;
    snprintf(n->agency, sizeof n->agency, "%s", agency);
    n->kind = kind;
    return n;
}

/* core, jlis, a witness, the portal, the PIA register, all gateways, all
 * agency nodes, all systems, each agency's privileged operator (第8-5
 * markings at its own node only), the network operator, the PIA register's
 * operator: the order of network.json. */
rk_rc net_plan_build(int agencies, int core_instances, net_plan *plan)
{
    static const rk_role per_agency[] = {RK_ROLE_GATEWAY, RK_ROLE_AGENCY, RK_ROLE_SYSTEM, RK_ROLE_OPERATOR};
    static const char *const suffix[] = {"-gateway", "", "-system", "-operator"};
    rk_rc rc = RK_OK;
    int cores = core_instances > 1 ? core_instances : 1;
    plan->nodes = calloc(6 + (size_t)cores + 4 * (size_t)agencies, sizeof *plan->nodes);
    if (!plan->nodes)
        return RK_ERR_NOMEM;
    if (cores == 1)
        snprintf(plan_add(plan, RK_ROLE_CORE, "", "")->id, RK_ID_MAX, "core");
    for (int i = 1; cores > 1 && i <= cores; i++) { /* one core over one database (DESIGN §6) */
        net_node *n = plan_add(plan, RK_ROLE_CORE, "", "");
        n->instance = i;
        snprintf(n->id, RK_ID_MAX, "core-%d", i);
    }
    snprintf(plan_add(plan, RK_ROLE_JLIS, "", "")->id, RK_ID_MAX, "jlis");
    snprintf(plan_add(plan, RK_ROLE_WITNESS, "", "")->id, RK_ID_MAX, "witness-1"); /* cosigns the core's log */
    snprintf(plan_add(plan, RK_ROLE_PORTAL, "", "")->id, RK_ID_MAX, "portal");     /* persons see their exchanges */
    snprintf(plan_add(plan, RK_ROLE_PPC, "", "")->id, RK_ID_MAX, "ppc");           /* the PIA register (法28条) */
    for (size_t r = 0; r < 4 && rc == RK_OK; r++) {
        for (int i = 1; i <= agencies && rc == RK_OK; i++) {
            char agency[RK_ID_MAX];
            const char *kind;
            if ((rc = agency_identity(i, agency, sizeof agency, &kind)) != RK_OK)
                break;
            net_node *n = plan_add(plan, per_agency[r], agency, kind);
            rc = tk_path(n->id, sizeof n->id, "%s%s", agency, suffix[r]);
        }
    }
    if (rc == RK_OK)
        snprintf(plan_add(plan, RK_ROLE_OPERATOR, "", "")->id, RK_ID_MAX, "operator");
    if (rc == RK_OK) /* the PIA register's operator: DIR/clients/ppc */
        snprintf(plan_add(plan, RK_ROLE_PPC_OPERATOR, "", "")->id, RK_ID_MAX, "ppc-operator");
    return rc;
}

/* The first port the kernel hands out to outgoing connections and to
 * bind(…, 0): listening ports are picked below it, so that no connection
 * a node makes meanwhile can take a port chosen for another node. */
static int ephemeral_start(void)
{
    int lo = 32768, hi = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
    if (f) {
        if (fscanf(f, "%d %d", &lo, &hi) != 2 || lo <= NET_PORT_FLOOR + 1000)
            lo = 32768;
        fclose(f);
    }
    return lo;
}

/* count different ports that can be bound on the loopback now, drawn at
 * random between NET_PORT_FLOOR and the ephemeral range; each socket stays
 * open until all are bound, so that the ports differ. */
static rk_rc pick_free_ports(int *ports, size_t count)
{
    rk_rc rc = RK_OK;
    int *fds = malloc(count * sizeof *fds);
    if (!fds)
        return RK_ERR_NOMEM;
    for (size_t i = 0; i < count; i++)
        fds[i] = -1;
    int span = ephemeral_start() - NET_PORT_FLOOR;
    for (size_t i = 0; i < count && rc == RK_OK; i++) {
        rc = RK_ERR_IO;
        for (int tries = 0; tries < 200 && rc != RK_OK; tries++) {
            uint32_t r = 0;
            rk_random(&r, sizeof r);
            struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(NET_PORT_FLOOR + r % span))};
            inet_pton(AF_INET, NET_LOOPBACK, &sa.sin_addr);
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd < 0)
                break;
            if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
                fds[i] = fd;
                ports[i] = ntohs(sa.sin_port);
                rc = RK_OK;
            } else {
                close(fd);
            }
        }
    }
    for (size_t i = 0; i < count; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
    return rc;
}

/* The core gets two ports (primary and backup line), the portal two (the
 * network's and persons'), every other server one; the instances of a core
 * one each: J-LIS's lines are two of them. */
rk_rc net_plan_ports(net_plan *plan, int base_port, char *err, size_t errlen)
{
    size_t count = 0, k = 0;
    for (size_t i = 0; i < plan->n; i++)
        count += net_is_server_role(plan->nodes[i].role)
                     ? (net_has_backup_line(&plan->nodes[i]) || plan->nodes[i].role == RK_ROLE_PORTAL ? 2 : 1) : 0;
    if (base_port && (size_t)base_port + count - 1 > 65535) {
        net_set_err(err, errlen, "--base-port %d: the network needs %zu ports, beyond 65535", base_port, count);
        return RK_ERR_INVALID;
    }
    int *ports = calloc(count, sizeof *ports);
    if (!ports)
        return RK_ERR_NOMEM;
    rk_rc rc = RK_OK;
    for (size_t i = 0; base_port && i < count; i++)
        ports[i] = base_port + (int)i;
    if (!base_port && (rc = pick_free_ports(ports, count)) != RK_OK)
        net_set_err(err, errlen, "cannot find free ports on %s: %s", NET_LOOPBACK, strerror(errno));
    for (size_t i = 0; rc == RK_OK && i < plan->n; i++) {
        net_node *n = &plan->nodes[i];
        if (!net_is_server_role(n->role))
            continue;
        n->port = ports[k++];
        if (net_has_backup_line(n))
            n->backup_port = ports[k++];
        if (n->role == RK_ROLE_PORTAL)
            n->person_port = ports[k++];
    }
    free(ports);
    return rc;
}
