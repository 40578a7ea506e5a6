/* pg.c — the PostgreSQL server of a network written with `--store postgres`
 * (DESIGN §6): one server under DIR/pg/ (data/, sock/, server.log), one role
 * and one database per server node, named by the node's id, each role with a
 * random password that only its node.conf holds (`store = postgresql://…`).
 * `renkei net up` starts the server before the nodes and stops it after
 * (rk_net_start, rk_net_stop), `renkei records verify` around its reads.
 *
 * The server's commands run as the `postgres` user that the Debian package
 * creates (runuser) when renkei runs as root, since PostgreSQL refuses root;
 * DIR/pg/ is then that user's. The nodes connect through the server's unix
 * socket (DIR/pg/sock, a folder closed to others) with their passwords
 * (scram-sha-256): no TCP on the path of every statement. On the socket
 * only the server's own OS user gets in as `postgres` (peer, mapped in
 * pg_ident.conf): renkei makes the roles that way with psql. The server also
 * listens on 127.0.0.1 (password only), for operators' tools. */
#include <errno.h>
#include <fcntl.h>
#include <ctype.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "lib/util.h"
#include "tools/net/net_internal.h"
#include "tools/toolkit.h"

#define PG_BIN "/usr/lib/postgresql/15/bin"
#define PG_START_WAIT "60"

static int as_root(void) { return geteuid() == 0; }

/* Runs argv (as `postgres` when root and as_postgres), stdin from `input`
 * (or /dev/null), its output appended to `log`; 0 when it exited 0. */
static int run(int as_postgres, const char *log, const char *input, const char *const argv[])
{
    const char *full[32];
    int n = 0;
    if (as_postgres && as_root()) {
        full[n++] = "/usr/sbin/runuser";
        full[n++] = "-u";
        full[n++] = "postgres";
        full[n++] = "--";
    }
    for (int i = 0; argv[i] && n < 31; i++)
        full[n++] = argv[i];
    full[n] = NULL;
    int in[2] = {-1, -1};
    if (input && pipe2(in, O_CLOEXEC) != 0)
        return -1;
    int logfd = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    fflush(NULL);
    pid_t pid = logfd >= 0 && nullfd >= 0 ? fork() : -1;
    if (pid == 0) {
        if (dup2(input ? in[0] : nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
            _exit(127);
        execv(full[0], (char *const *)full);
        _exit(127);
    }
    if (logfd >= 0)
        close(logfd);
    if (nullfd >= 0)
        close(nullfd);
    if (input) {
        close(in[0]);
        if (pid > 0) { /* the script is small: one write, then EOF */
            size_t len = strlen(input), off = 0;
            while (off < len) {
                ssize_t w = write(in[1], input + off, len - off);
                if (w <= 0 && errno != EINTR)
                    break;
                off += w > 0 ? (size_t)w : 0;
            }
        }
        close(in[1]);
    }
    if (pid < 0)
        return -1;
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

typedef struct pg_paths {
    char root[NET_PATH_CAP]; /* DIR/pg, absolute */
    char data[NET_PATH_CAP], sock[NET_PATH_CAP], log[NET_PATH_CAP], setup_log[NET_PATH_CAP];
} pg_paths;

static rk_rc paths_of(const char *dir, pg_paths *p)
{
    char abs[NET_PATH_CAP];
    if (!realpath(dir, abs))
        return RK_ERR_IO;
    rk_rc rc = tk_path(p->root, sizeof p->root, "%s/pg", abs);
    if (rc == RK_OK)
        rc = tk_path(p->data, sizeof p->data, "%s/data", p->root);
    if (rc == RK_OK)
        rc = tk_path(p->sock, sizeof p->sock, "%s/sock", p->root);
    if (rc == RK_OK)
        rc = tk_path(p->log, sizeof p->log, "%s/server.log", p->root);
    if (rc == RK_OK)
        rc = tk_path(p->setup_log, sizeof p->setup_log, "%s/setup.log", p->root);
    /* a unix socket's path is at most 107 bytes; quotes would break postgresql.conf */
    if (rc == RK_OK && (strlen(p->sock) > 80 || strchr(p->root, '\'')))
        rc = RK_ERR_INVALID;
    return rc;
}

int net_pg_present(const char *dir)
{
    char path[NET_PATH_CAP];
    struct stat st;
    return tk_path(path, sizeof path, "%s/pg/data/PG_VERSION", dir) == RK_OK && stat(path, &st) == 0;
}

/* As root: the `postgres` user must reach DIR/pg. DIR gets o+x (traverse
 * only) when it lacks it; a folder above it that lacks it is an error. */
static rk_rc reachable_by_postgres(const pg_paths *p, uid_t *uid, gid_t *gid, char *err, size_t errlen)
{
    struct passwd *pw = getpwnam("postgres");
    if (!pw) {
        net_set_err(err, errlen, "no `postgres` user to run PostgreSQL as (install postgresql-15: scripts/install-deps.sh)");
        return RK_ERR_CONFIG;
    }
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    char path[NET_PATH_CAP];
    snprintf(path, sizeof path, "%s", p->root);
    char *slash = strrchr(path, '/');
    if (slash)
        *slash = '\0'; /* DIR */
    struct stat st;
    if (stat(path, &st) == 0 && !(st.st_mode & S_IXOTH) && chmod(path, (st.st_mode & 07777) | S_IXOTH) != 0) {
        net_set_err(err, errlen, "%s: cannot let the postgres user through: %s", path, strerror(errno));
        return RK_ERR_IO;
    }
    while ((slash = strrchr(path, '/')) != NULL && slash != path) {
        *slash = '\0';
        if (stat(path, &st) == 0 && !(st.st_mode & S_IXOTH) && st.st_uid != *uid) {
            net_set_err(err, errlen, "the postgres user cannot reach %s (%s is closed to others): choose a folder it"
                        " can reach, e.g. under /tmp or /srv", p->root, path);
            return RK_ERR_CONFIG;
        }
    }
    return RK_OK;
}

/* A free loopback port at or above NET_PORT_FLOOR that no node of the plan has. */
static int pick_port(const net_plan *plan)
{
    for (int tries = 0; tries < 200; tries++) {
        uint32_t r = 0;
        rk_random(&r, sizeof r);
        int port = NET_PORT_FLOOR + (int)(r % 12000);
        int taken = 0;
        for (size_t i = 0; i < plan->n && !taken; i++)
            taken = plan->nodes[i].port == port || plan->nodes[i].backup_port == port;
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        inet_pton(AF_INET, NET_LOOPBACK, &sa.sin_addr);
        int fd = taken ? -1 : socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
        if (fd >= 0)
            close(fd);
        if (ok)
            return port;
    }
    return -1;
}

static void say_log(const char *what, const char *log, char *err, size_t errlen)
{
    net_set_err(err, errlen, "%s (see %s)", what, log);
}

/* opts: the server's own options for this start (pg_ctl -o), or NULL. */
static rk_rc pg_ctl_start(const pg_paths *p, const char *opts, char *err, size_t errlen)
{
    const char *const start[] = {PG_BIN "/pg_ctl", "start", "-D", p->data, "-l", p->log, "-w", "-t", PG_START_WAIT,
                                 opts ? "-o" : NULL, opts, NULL};
    if (run(1, p->setup_log, NULL, start) != 0) {
        say_log("the PostgreSQL server did not start", p->log, err, errlen);
        return RK_ERR_IO;
    }
    return RK_OK;
}

static rk_rc pg_ctl_stop(const pg_paths *p)
{
    const char *const stop[] = {PG_BIN "/pg_ctl", "stop", "-D", p->data, "-m", "fast", "-w", "-t", "60", NULL};
    return run(1, p->setup_log, NULL, stop) == 0 ? RK_OK : RK_ERR_IO;
}

/* The server's settings, after initdb's: where it listens, enough
 * connections for every node's two (writer and reader). */
static rk_rc write_settings(const pg_paths *p, int port, size_t servers)
{
    char path[NET_PATH_CAP];
    if (tk_path(path, sizeof path, "%s/postgresql.conf", p->data) != RK_OK)
        return RK_ERR_INVALID;
    FILE *f = fopen(path, "a");
    if (!f)
        return RK_ERR_IO;
    fprintf(f,
            "\n# renkei net init --store postgres\n"
            "listen_addresses = '" NET_LOOPBACK "'\nport = %d\nunix_socket_directories = '%s'\n"
            "max_connections = %zu\npassword_encryption = 'scram-sha-256'\n",
            port, p->sock, 2 * servers + 20);
    return fclose(f) == 0 ? RK_OK : RK_ERR_IO;
}

/* Who gets in (after initdb's file, which is replaced): on the socket the
 * server's OS user as `postgres` (peer; the map names that user, `postgres`
 * when renkei runs as root), every other role with its password; on
 * loopback TCP passwords only. */
static rk_rc write_access(const pg_paths *p)
{
    struct passwd *pw = as_root() ? getpwnam("postgres") : getpwuid(geteuid());
    if (!pw || strpbrk(pw->pw_name, " \t\"#'"))
        return RK_ERR_CONFIG;
    char hba[NET_PATH_CAP], ident[NET_PATH_CAP];
    if (tk_path(hba, sizeof hba, "%s/pg_hba.conf", p->data) != RK_OK ||
        tk_path(ident, sizeof ident, "%s/pg_ident.conf", p->data) != RK_OK)
        return RK_ERR_INVALID;
    FILE *f = fopen(hba, "w");
    if (!f)
        return RK_ERR_IO;
    fprintf(f, "# renkei net init --store postgres\n"
               "local all postgres peer map=renkei\n"
               "local all all scram-sha-256\n"
               "host all all 127.0.0.1/32 scram-sha-256\n");
    if (fclose(f) != 0 || !(f = fopen(ident, "w")))
        return RK_ERR_IO;
    fprintf(f, "# renkei net init --store postgres\nrenkei %s postgres\n", pw->pw_name);
    return fclose(f) == 0 ? RK_OK : RK_ERR_IO;
}

/* `postgresql://` … `?host=SOCK&port=N`: the socket folder as a libpq URI's
 * parameter (RFC 3986: unreserved and `/` as they are, the rest %XX). */
static rk_rc socket_params(const char *sock, int port, char *out, size_t size)
{
    size_t len = (size_t)snprintf(out, size, "?host=");
    for (const unsigned char *c = (const unsigned char *)sock; *c && len + 4 < size; c++)
        len += isalnum(*c) || strchr("/-._~", *c) ? (size_t)snprintf(out + len, size - len, "%c", *c)
                                                  : (size_t)snprintf(out + len, size - len, "%%%02X", *c);
    int n = snprintf(out + len, size - len, "&port=%d", port);
    return n > 0 && len + (size_t)n < size ? RK_OK : RK_ERR_INVALID;
}

rk_rc net_pg_databases_script(const net_plan *plan, const char *hosts, const char *params, char **stores,
                              char **script_out)
{
    size_t cap = plan->n * 512 + 64, len = 0;
    char *script = malloc(cap);
    *script_out = NULL;
    if (!script)
        return RK_ERR_NOMEM;
    len += (size_t)snprintf(script + len, cap - len, "\\set ON_ERROR_STOP 1\n");
    rk_rc rc = RK_OK;
    size_t first_instance = plan->n;
    for (size_t i = 0; i < plan->n && rc == RK_OK; i++) {
        const net_node *n = &plan->nodes[i];
        if (!net_is_server_role(n->role))
            continue;
        if (n->instance > 1) { /* the instances of a core share one database and role, "core" (DESIGN §6) */
            if (first_instance == plan->n || !(stores[i] = strdup(stores[first_instance])))
                rc = RK_ERR_NOMEM;
            continue;
        }
        if (n->instance == 1)
            first_instance = i;
        const char *db = n->instance ? "core" : n->id;
        uint8_t raw[16];
        char pw[33], uri[512];
        if ((rc = rk_random(raw, sizeof raw)) != RK_OK)
            break;
        rk_hex(raw, sizeof raw, pw);
        len += (size_t)snprintf(script + len, cap - len,
                                "CREATE ROLE \"%s\" LOGIN PASSWORD '%s';\nCREATE DATABASE \"%s\" OWNER \"%s\";\n"
                                "REVOKE ALL ON DATABASE \"%s\" FROM PUBLIC;\n",
                                db, pw, db, db, db);
        snprintf(uri, sizeof uri, "postgresql://%s:%s@%s/%s%s", db, pw, hosts, db, params);
        if (!(stores[i] = strdup(uri)))
            rc = RK_ERR_NOMEM;
        rk_wipe(pw, sizeof pw);
        rk_wipe(uri, sizeof uri);
    }
    if (rc != RK_OK) {
        rk_wipe(script, cap);
        free(script);
        return rc;
    }
    *script_out = script;
    return RK_OK;
}

rk_rc net_pg_init(const char *dir, const net_plan *plan, char **stores, char *err, size_t errlen)
{
    pg_paths p;
    rk_rc rc = paths_of(dir, &p);
    if (rc != RK_OK) {
        net_set_err(err, errlen, "%s: a folder PostgreSQL cannot use (too long, or a quote in it)", dir);
        return rc;
    }
    uid_t uid = 0;
    gid_t gid = 0;
    if (as_root() && (rc = reachable_by_postgres(&p, &uid, &gid, err, errlen)) != RK_OK)
        return rc;
    if (mkdir(p.root, 0700) != 0 || mkdir(p.sock, 0700) != 0 ||
        (as_root() && (chown(p.root, uid, gid) != 0 || chown(p.sock, uid, gid) != 0))) {
        net_set_err(err, errlen, "%s: cannot create: %s", p.root, strerror(errno));
        return RK_ERR_IO;
    }
    /* trust only until write_access replaces pg_hba.conf, before the start.
     * The cluster is written without a sync of each file (-N) and the setup
     * below runs with fsync off; one syncfs after the server's clean stop
     * makes all of it durable at once (what a sync per file and per
     * checkpoint would have made, a few seconds sooner). */
    const char *const initdb[] = {PG_BIN "/initdb", "-N", "-D", p.data, "-U", "postgres", "--auth-local=trust",
                                  "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", NULL};
    if (run(1, p.setup_log, NULL, initdb) != 0) {
        say_log("initdb failed (" PG_BIN ": scripts/install-deps.sh installs postgresql-15)", p.setup_log, err,
                errlen);
        return RK_ERR_IO;
    }
    size_t servers = 0;
    for (size_t i = 0; i < plan->n; i++)
        servers += net_is_server_role(plan->nodes[i].role) ? 1 : 0;
    int port = pick_port(plan);
    if (port < 0 || write_settings(&p, port, servers) != RK_OK || write_access(&p) != RK_OK) {
        net_set_err(err, errlen, "cannot configure the PostgreSQL server in %s", p.data);
        return RK_ERR_IO;
    }
    /* the nodes' URIs: `postgresql://db:pw@/db?host=DIR/pg/sock&port=N` */
    char params[3 * NET_PATH_CAP + 32], *script = NULL;
    rc = socket_params(p.sock, port, params, sizeof params);
    if (rc == RK_OK)
        rc = net_pg_databases_script(plan, "", params, stores, &script);
    if (rc == RK_OK && (rc = pg_ctl_start(&p, "-c fsync=off -c full_page_writes=off", err, errlen)) == RK_OK) {
        char port_text[16];
        snprintf(port_text, sizeof port_text, "%d", port);
        const char *const psql[] = {PG_BIN "/psql", "-X", "-q", "-h", p.sock, "-p", port_text, "-U", "postgres",
                                    "-d", "postgres", "-f", "-", NULL};
        if (run(1, p.setup_log, script, psql) != 0) { /* as the server's user: peer */
            say_log("cannot make the nodes' roles and databases", p.setup_log, err, errlen);
            rc = RK_ERR_IO;
        }
        if (pg_ctl_stop(&p) != RK_OK && rc == RK_OK) {
            say_log("the PostgreSQL server did not stop", p.log, err, errlen);
            rc = RK_ERR_IO;
        }
        if (rc == RK_OK && rk_sync_folder(p.data) != RK_OK) {
            net_set_err(err, errlen, "%s: cannot sync to disk: %s", p.data, strerror(errno));
            rc = RK_ERR_IO;
        }
    }
    if (script)
        rk_wipe(script, strlen(script));
    free(script);
    return rc;
}

/* 1 when the server of DIR/pg runs (pg_ctl status). */
static int running(const pg_paths *p)
{
    const char *const status[] = {PG_BIN "/pg_ctl", "status", "-D", p->data, NULL};
    return run(1, NULL, NULL, status) == 0;
}

rk_rc rk_net_pg_start(const char *dir, int *started, char *err, size_t errlen)
{
    pg_paths p;
    *started = 0;
    if (net_ha_present(dir)) /* --ha: etcd and Patroni (ha.c) */
        return net_ha_start(dir, started, err, errlen);
    if (!net_pg_present(dir))
        return RK_OK; /* its nodes' data is in SQLite */
    if (paths_of(dir, &p) != RK_OK) {
        net_set_err(err, errlen, "%s/pg: not a usable folder", dir);
        return RK_ERR_INVALID;
    }
    if (running(&p))
        return RK_OK; /* someone else's: left running after */
    rk_rc rc = pg_ctl_start(&p, NULL, err, errlen);
    *started = rc == RK_OK;
    return rc;
}

/* The port net init gave the server (the last `port = N` of postgresql.conf). */
static int configured_port(const pg_paths *p)
{
    char path[NET_PATH_CAP], line[256];
    int port = 0;
    if (tk_path(path, sizeof path, "%s/postgresql.conf", p->data) != RK_OK)
        return 0;
    FILE *f = fopen(path, "re");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "port = ", 7) == 0)
            port = atoi(line + 7);
    if (f)
        fclose(f);
    return port;
}

int net_pg_status(const char *dir, FILE *out, int width)
{
    pg_paths p;
    if (paths_of(dir, &p) != RK_OK)
        return 1;
    int up = running(&p);
    /* one server, no standby: ok while it runs */
    fprintf(out, "%-*s %-7s postgresql://" NET_LOOPBACK ":%d primary %s\n", width, "pg", "store", configured_port(&p),
            up ? "ok" : "down");
    return !up;
}

rk_rc rk_net_pg_stop(const char *dir)
{
    pg_paths p;
    if (net_ha_present(dir))
        return net_ha_stop(dir);
    return paths_of(dir, &p) == RK_OK ? pg_ctl_stop(&p) : RK_ERR_INVALID;
}

/* ---- for ha.c ---- */

int net_pg_run(int as_postgres, const char *log, const char *input, const char *const argv[])
{
    return run(as_postgres, log, input, argv);
}

int net_pg_pick_port(const net_plan *plan)
{
    return pick_port(plan);
}

rk_rc net_pg_reachable(const char *root, uid_t *uid, gid_t *gid, char *err, size_t errlen)
{
    pg_paths p = {0};
    snprintf(p.root, sizeof p.root, "%s", root);
    return reachable_by_postgres(&p, uid, gid, err, errlen);
}
