/* procs.c — the node processes of a network: starting every server node as a
 * child process, reaping them, and stopping them all; the network's
 * PostgreSQL server (pg.c), when it has one, started before them and
 * stopped after. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/util.h"
#include "net/registry.h"
#include "tools/net/net.h"
#include "tools/net/net_internal.h"
#include "tools/toolkit.h"

#define NET_STOP_WAIT_MS 10000

typedef struct net_child {
    char id[RK_ID_MAX];
    pid_t pid;
    int running;
    int reported; /* its exit was already named on stderr */
    int status;   /* wait status once it exited */
} net_child;

struct rk_net_procs {
    net_child *children;
    size_t n;
    char pg_dir[NET_PATH_CAP]; /* the network whose PostgreSQL server this started, or "" */
};

volatile sig_atomic_t net_stop_requested;

size_t rk_net_count(const rk_net_procs *p)
{
    return p ? p->n : 0;
}

/* In the child between fork and exec: async-signal-safe calls only. */
static void exec_child(char *const *args, int logfd, int nullfd, pid_t parent)
{
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigset_t none;
    sigemptyset(&none);
    sigaction(SIGINT, &dfl, NULL);
    sigaction(SIGTERM, &dfl, NULL);
    sigaction(SIGPIPE, &dfl, NULL);
    sigprocmask(SIG_SETMASK, &none, NULL);
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive `net up` */
    if (getppid() != parent)
        _exit(127);
    if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
        _exit(127);
    execv(args[0], args);
    _exit(127);
}

static rk_rc spawn_node(const char *dir, const char *exe, const rk_peer_node *node, net_child *child)
{
    char conf[NET_PATH_CAP], log[NET_PATH_CAP];
    int logfd = -1, nullfd = -1;
    rk_rc rc = tk_path(conf, sizeof conf, "%s/nodes/%s/node.conf", dir, node->id);
    if (rc == RK_OK)
        rc = tk_path(log, sizeof log, "%s/nodes/%s/node.log", dir, node->id);
    if (rc != RK_OK)
        goto done;
    char *const args[] = {(char *)exe, (char *)rk_role_name(node->role), "--config", conf, NULL};
    logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (logfd < 0 || nullfd < 0) {
        rc = RK_ERR_IO;
        goto done;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        exec_child(args, logfd, nullfd, parent);
    if (pid < 0) {
        rc = RK_ERR_IO;
        goto done;
    }
    snprintf(child->id, sizeof child->id, "%s", node->id);
    child->pid = pid;
    child->running = 1;
done:
    if (logfd >= 0)
        close(logfd);
    if (nullfd >= 0)
        close(nullfd);
    return rc;
}

/* Marks in chosen (one per node of reg) the server nodes that ids name: a
 * node id, or an agency id for that agency's gateway and agency node. */
static rk_rc choose_nodes(const rk_registry *reg, const char *const *ids, size_t n_ids, char *chosen, char *err,
                          size_t errlen)
{
    static const rk_role of_agency[] = {RK_ROLE_GATEWAY, RK_ROLE_AGENCY};
    for (size_t k = 0; k < n_ids; k++) {
        int found = 0;
        for (size_t r = 0; r < sizeof of_agency / sizeof of_agency[0]; r++) {
            const rk_peer_node *n = rk_registry_find(reg, of_agency[r], ids[k]);
            if (n) {
                chosen[n - reg->nodes] = 1;
                found = 1;
            }
        }
        const rk_peer_node *n = found ? NULL : rk_registry_by_id(reg, ids[k]);
        if (n && net_is_server_role(n->role)) {
            chosen[n - reg->nodes] = 1;
            found = 1;
        }
        if (!found) {
            net_set_err(err, errlen, "no node or agency '%s' in the network", ids[k]);
            return RK_ERR_NOT_FOUND;
        }
    }
    return RK_OK;
}

rk_rc rk_net_start(const char *dir, const char *renkei_exe, rk_net_procs **out, char *err, size_t errlen)
{
    return rk_net_start_only(dir, renkei_exe, NULL, 0, out, err, errlen);
}

rk_rc rk_net_start_only(const char *dir, const char *renkei_exe, const char *const *ids, size_t n_ids,
                        rk_net_procs **out, char *err, size_t errlen)
{
    /* the witnesses and the PIA register first: the core sends the ones its
     * first checkpoint and reads the PIA states from the other; the portal
     * after J-LIS, whose card CRL it fetches at its start */
    static const rk_role order[] = {RK_ROLE_WITNESS, RK_ROLE_PPC, RK_ROLE_CORE, RK_ROLE_JLIS, RK_ROLE_GATEWAY,
                                    RK_ROLE_AGENCY, RK_ROLE_PORTAL};
    rk_registry *reg = NULL;
    rk_net_procs *p = NULL;
    char *chosen = NULL; /* with ids: the nodes they name */
    *out = NULL;
    net_hsm_env(dir); /* a network made with --hsm: its token (hsm.c) */
    rk_rc rc = tk_registry_load(dir, &reg, err, errlen);
    if (rc != RK_OK)
        goto done;
    if (!(p = calloc(1, sizeof *p)) || !(p->children = calloc(reg->n_nodes + 1, sizeof *p->children))) {
        rc = RK_ERR_NOMEM;
        goto done;
    }
    if (ids && (!(chosen = calloc(reg->n_nodes + 1, 1)) ||
                (rc = choose_nodes(reg, ids, n_ids, chosen, err, errlen)) != RK_OK)) {
        if (!chosen)
            rc = RK_ERR_NOMEM;
        goto done;
    }
    int pg_started = 0;
    if ((rc = rk_net_pg_start(dir, &pg_started, err, errlen)) != RK_OK)
        goto done;
    if (pg_started)
        snprintf(p->pg_dir, sizeof p->pg_dir, "%s", dir);
    for (size_t r = 0; r < sizeof order / sizeof order[0] && rc == RK_OK; r++) {
        for (size_t i = 0; i < reg->n_nodes && rc == RK_OK; i++) {
            if (reg->nodes[i].role != order[r] || (chosen && !chosen[i]))
                continue;
            if ((rc = spawn_node(dir, renkei_exe, &reg->nodes[i], &p->children[p->n])) != RK_OK)
                net_set_err(err, errlen, "cannot start node %s: %s", reg->nodes[i].id, strerror(errno));
            else
                p->n++;
        }
    }
done:
    if (rc != RK_OK && p) {
        rk_net_stop(p);
        p = NULL;
    }
    free(chosen);
    rk_registry_free(reg);
    *out = p;
    return rc;
}

static int exited_cleanly(int status)
{
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void describe_exit(int status, char *out, size_t outlen)
{
    if (WIFEXITED(status))
        snprintf(out, outlen, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, outlen, "was killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(out, outlen, "ended with wait status %d", status);
}

/* Collects the child if it has exited (block: wait until it does). */
static void reap_child(net_child *c, int block)
{
    int status = 0;
    pid_t r;
    do
        r = waitpid(c->pid, &status, block ? 0 : WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == c->pid || (r < 0 && errno == ECHILD)) {
        c->running = 0;
        c->status = r == c->pid ? status : -1;
    }
}

/* Reports children that exited on their own; returns how many did so
 * uncleanly (or at all, unless a stop was asked for). */
int net_reap_unexpected(rk_net_procs *p)
{
    int count = 0;
    for (size_t i = 0; i < p->n; i++) {
        net_child *c = &p->children[i];
        if (!c->running)
            continue;
        reap_child(c, 0);
        if (c->running || (net_stop_requested && exited_cleanly(c->status)))
            continue;
        char how[96];
        describe_exit(c->status, how, sizeof how);
        fprintf(stderr, "renkei net: node %s %s\n", c->id, how);
        c->reported = 1;
        count++;
    }
    return count;
}

const char *net_proc_id(const rk_net_procs *p, size_t i)
{
    return p && i < p->n ? p->children[i].id : NULL;
}

size_t net_count_running(const rk_net_procs *p)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n; i++)
        n += p->children[i].running ? 1 : 0;
    return n;
}

/* Waits until every child is gone or deadline passes. */
static void await_children(rk_net_procs *p, int64_t deadline)
{
    while (net_count_running(p) > 0 && rk_mono_ms() < deadline) {
        for (size_t i = 0; i < p->n; i++)
            if (p->children[i].running)
                reap_child(&p->children[i], 0);
        if (net_count_running(p) > 0)
            tk_sleep_ms(20);
    }
}

rk_rc rk_net_stop(rk_net_procs *p)
{
    if (!p)
        return RK_OK;
    rk_rc rc = RK_OK;
    for (size_t i = 0; i < p->n; i++)
        if (p->children[i].running)
            kill(p->children[i].pid, SIGTERM);
    await_children(p, rk_mono_ms() + NET_STOP_WAIT_MS);
    for (size_t i = 0; i < p->n; i++) {
        net_child *c = &p->children[i];
        if (c->running) {
            fprintf(stderr, "renkei net: node %s did not stop within %d s: killed\n", c->id, NET_STOP_WAIT_MS / 1000);
            kill(c->pid, SIGKILL);
            reap_child(c, 1);
        } else if (!exited_cleanly(c->status) && !c->reported) {
            char how[96];
            describe_exit(c->status, how, sizeof how);
            fprintf(stderr, "renkei net: node %s %s\n", c->id, how);
        }
        if (!exited_cleanly(c->status))
            rc = RK_ERR_UPSTREAM;
    }
    if (p->pg_dir[0] && rk_net_pg_stop(p->pg_dir) != RK_OK) {
        fprintf(stderr, "renkei net: the PostgreSQL server of %s/pg did not stop\n", p->pg_dir);
        rc = RK_ERR_IO;
    }
    free(p->children);
    free(p);
    return rc;
}
