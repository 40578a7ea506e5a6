/* ha.c — `renkei net init DIR --store postgres --ha` (DESIGN §6): the
 * network's database as a primary and a synchronous standby under Patroni,
 * with one etcd member as Patroni's store of the leader lock. Failover is
 * Patroni's (fenced by the lock: a primary that cannot renew it demotes
 * itself); renkei only writes the configuration, starts and stops the
 * daemons and reads their state. No replication of our own.
 *
 *   DIR/pg/ha.json              the ports, for renkei
 *   DIR/pg/etcd/etcd.yml        etcd's configuration; data/, etcd.log, etcd.pid
 *   DIR/pg/pg-N/patroni.yml     Patroni's configuration of server pg-N (N = 1, 2);
 *                               data/ (PostgreSQL's), sock/, patroni.log (Patroni's
 *                               own, rotated), postgres.log, patroni.pid
 *
 * Everything under DIR/pg is the `postgres` user's when renkei runs as root,
 * and etcd and Patroni (hence PostgreSQL) run as that user: PostgreSQL
 * refuses root. They run as daemons (a session of their own, their pids in
 * their .pid files, checked against /proc/PID/cmdline), as pg_ctl's server
 * does in pg.c: `renkei net up` starts them before the nodes and stops them
 * after (rk_net_pg_start and rk_net_pg_stop call here), `renkei records
 * verify` around its reads when they are down.
 *
 * Settings (bootstrap.dcs, kept in etcd): synchronous_mode and
 * synchronous_mode_strict — a commit returns only once the synchronous
 * standby has it, and with no standby left commits wait rather than go
 * through on one server; synchronous_commit on; primary_start_timeout 0 —
 * a primary whose PostgreSQL dies is failed over at once rather than
 * restarted; ttl 10 s, loop_wait 1 s, retry_timeout 4 s; pg_rewind to take
 * a former primary back as a standby. Every port is on 127.0.0.1. Patroni's
 * REST API answers GETs to anyone on the machine and changes only with its
 * password (patroni.yml); etcd has no authentication: the machine is the
 * boundary (docs/runbook.md). */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/util.h"
#include "tools/net/net_internal.h"
#include "tools/toolkit.h"

#define PG_BIN "/usr/lib/postgresql/15/bin"
#define ETCD_BIN "/usr/bin/etcd"
#define PATRONI_BIN "/usr/bin/patroni"
#define HA_SCOPE "renkei"
#define HA_MEMBERS 2
#define HA_ETCD_WAIT_MS 30000
#define HA_READY_WAIT_MS 120000 /* a leader and a synchronous standby (initdb and a base backup at init) */
#define HA_STOP_WAIT_MS 60000
#define HA_POLL_MS 200
#define HA_REST_MS 2000
#define HA_REST_CAP (1u << 20)

typedef struct ha_member {
    char name[8];     /* pg-1, pg-2 */
    int port, api_port;
    char dir[NET_PATH_CAP], conf[NET_PATH_CAP], data[NET_PATH_CAP], sock[NET_PATH_CAP];
    char log[NET_PATH_CAP], pid[NET_PATH_CAP];
} ha_member;

typedef struct ha_layout {
    char root[NET_PATH_CAP]; /* DIR/pg, absolute */
    char json[NET_PATH_CAP];
    char etcd_dir[NET_PATH_CAP], etcd_conf[NET_PATH_CAP], etcd_log[NET_PATH_CAP], etcd_pid[NET_PATH_CAP];
    int etcd_port, etcd_peer_port;
    ha_member m[HA_MEMBERS];
    /* as root: the `postgres` user the daemons run as */
    int drop;
    uid_t uid;
    gid_t gid;
} ha_layout;

static int as_root(void) { return geteuid() == 0; }

/* ---------- the layout ---------- */

static rk_rc layout_paths(const char *dir, ha_layout *L)
{
    char abs[NET_PATH_CAP];
    memset(L, 0, sizeof *L);
    if (!realpath(dir, abs))
        return RK_ERR_IO;
    rk_rc rc = tk_path(L->root, sizeof L->root, "%s/pg", abs);
    if (rc == RK_OK)
        rc = tk_path(L->json, sizeof L->json, "%s/ha.json", L->root);
    if (rc == RK_OK)
        rc = tk_path(L->etcd_dir, sizeof L->etcd_dir, "%s/etcd", L->root);
    if (rc == RK_OK)
        rc = tk_path(L->etcd_conf, sizeof L->etcd_conf, "%s/etcd.yml", L->etcd_dir);
    if (rc == RK_OK)
        rc = tk_path(L->etcd_log, sizeof L->etcd_log, "%s/etcd.log", L->etcd_dir);
    if (rc == RK_OK)
        rc = tk_path(L->etcd_pid, sizeof L->etcd_pid, "%s/etcd.pid", L->etcd_dir);
    for (int i = 0; i < HA_MEMBERS && rc == RK_OK; i++) {
        ha_member *m = &L->m[i];
        snprintf(m->name, sizeof m->name, "pg-%d", i + 1);
        if ((rc = tk_path(m->dir, sizeof m->dir, "%s/%s", L->root, m->name)) == RK_OK &&
            (rc = tk_path(m->conf, sizeof m->conf, "%s/patroni.yml", m->dir)) == RK_OK &&
            (rc = tk_path(m->data, sizeof m->data, "%s/data", m->dir)) == RK_OK &&
            (rc = tk_path(m->sock, sizeof m->sock, "%s/sock", m->dir)) == RK_OK &&
            (rc = tk_path(m->log, sizeof m->log, "%s/postgres.log", m->dir)) == RK_OK)
            rc = tk_path(m->pid, sizeof m->pid, "%s/patroni.pid", m->dir);
        /* a unix socket's path is at most 107 bytes; quotes would break the YAML */
        if (rc == RK_OK && strlen(m->sock) > 80)
            rc = RK_ERR_INVALID;
    }
    if (rc == RK_OK && strchr(L->root, '\''))
        rc = RK_ERR_INVALID;
    return rc;
}

int net_ha_present(const char *dir)
{
    char path[NET_PATH_CAP];
    struct stat st;
    return tk_path(path, sizeof path, "%s/pg/ha.json", dir) == RK_OK && stat(path, &st) == 0;
}

static rk_rc load_layout(const char *dir, ha_layout *L, char *err, size_t errlen)
{
    if (layout_paths(dir, L) != RK_OK) {
        net_set_err(err, errlen, "%s/pg: not a usable folder", dir);
        return RK_ERR_INVALID;
    }
    json_t *j = json_load_file(L->json, 0, NULL);
    json_t *members = json_object_get(j, "members");
    L->etcd_port = (int)json_integer_value(json_object_get(json_object_get(j, "etcd"), "client_port"));
    L->etcd_peer_port = (int)json_integer_value(json_object_get(json_object_get(j, "etcd"), "peer_port"));
    int ok = L->etcd_port > 0 && L->etcd_peer_port > 0 && json_array_size(members) == HA_MEMBERS;
    for (int i = 0; ok && i < HA_MEMBERS; i++) {
        json_t *m = json_array_get(members, (size_t)i);
        L->m[i].port = (int)json_integer_value(json_object_get(m, "port"));
        L->m[i].api_port = (int)json_integer_value(json_object_get(m, "api_port"));
        ok = L->m[i].port > 0 && L->m[i].api_port > 0 &&
             strcmp(json_string_value(json_object_get(m, "name")) ? json_string_value(json_object_get(m, "name")) : "",
                    L->m[i].name) == 0;
    }
    json_decref(j);
    if (!ok) {
        net_set_err(err, errlen, "%s: not a cluster written by renkei net init --ha", L->json);
        return RK_ERR_INVALID;
    }
    if (as_root()) {
        struct stat st;
        if (stat(L->root, &st) != 0) {
            net_set_err(err, errlen, "%s: %s", L->root, strerror(errno));
            return RK_ERR_IO;
        }
        L->drop = 1; /* to the owner of DIR/pg: the postgres user */
        L->uid = st.st_uid;
        L->gid = st.st_gid;
        if (st.st_uid == 0) {
            net_set_err(err, errlen, "%s belongs to root: PostgreSQL refuses to run as root", L->root);
            return RK_ERR_CONFIG;
        }
    }
    return RK_OK;
}

/* ---------- files ---------- */

/* Writes text to path (mode, the daemons' owner when root). */
static rk_rc write_owned(const ha_layout *L, const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return RK_ERR_IO;
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    int ok = off == len && (!L->drop || fchown(fd, L->uid, L->gid) == 0);
    return close(fd) == 0 && ok ? RK_OK : RK_ERR_IO;
}

static rk_rc make_dir(const ha_layout *L, const char *path)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return RK_ERR_IO;
    return !L->drop || chown(path, L->uid, L->gid) == 0 ? RK_OK : RK_ERR_IO;
}

static void random_hex(char out[33])
{
    uint8_t raw[16];
    rk_random(raw, sizeof raw);
    rk_hex(raw, sizeof raw, out);
    rk_wipe(raw, sizeof raw);
}

static rk_rc write_etcd_conf(const ha_layout *L)
{
    char token[33], text[NET_PATH_CAP + 1024];
    random_hex(token);
    snprintf(text, sizeof text,
             "# renkei net init --store postgres --ha: the one etcd member that holds Patroni's leader lock\n"
             "name: etcd\n"
             "data-dir: '%s/data'\n"
             "listen-client-urls: http://" NET_LOOPBACK ":%d\n"
             "advertise-client-urls: http://" NET_LOOPBACK ":%d\n"
             "listen-peer-urls: http://" NET_LOOPBACK ":%d\n"
             "initial-advertise-peer-urls: http://" NET_LOOPBACK ":%d\n"
             "initial-cluster: etcd=http://" NET_LOOPBACK ":%d\n"
             "initial-cluster-state: new\n"
             "initial-cluster-token: renkei-%s\n"
             "enable-grpc-gateway: true\n" /* Patroni's etcd3 client speaks its JSON gateway */
             "logger: zap\n"
             "log-outputs: [stderr]\n"
             "auto-compaction-mode: periodic\n"
             "auto-compaction-retention: '1h'\n",
             L->etcd_dir, L->etcd_port, L->etcd_port, L->etcd_peer_port, L->etcd_peer_port, L->etcd_peer_port, token);
    return write_owned(L, L->etcd_conf, text, 0600);
}

typedef struct ha_secrets {
    char superuser[33], replication[33], rest[33];
} ha_secrets;

static rk_rc write_patroni_conf(const ha_layout *L, const ha_member *m, const ha_secrets *s, size_t servers)
{
    static char text[6 * NET_PATH_CAP + 4096]; /* one thread: net init */
    int n = snprintf(
        text, sizeof text,
        "# renkei net init --store postgres --ha: the PostgreSQL server %s under Patroni\n"
        "scope: " HA_SCOPE "\n"
        "name: %s\n"
        "log:\n"
        "  level: INFO\n"
        "  dir: '%s'\n"
        "  file_size: 16777216\n"
        "  file_num: 4\n"
        "restapi:\n"
        "  listen: " NET_LOOPBACK ":%d\n"
        "  connect_address: " NET_LOOPBACK ":%d\n"
        "  authentication:\n"
        "    username: renkei\n"
        "    password: '%s'\n"
        "etcd3:\n"
        "  hosts: " NET_LOOPBACK ":%d\n"
        "watchdog:\n"
        "  mode: 'off'\n"
        "bootstrap:\n"
        "  dcs:\n"
        "    ttl: 10\n"
        "    loop_wait: 1\n"
        "    retry_timeout: 4\n"
        "    synchronous_mode: true\n"
        "    synchronous_mode_strict: true\n"
        "    primary_start_timeout: 0\n"
        "    postgresql:\n"
        "      use_pg_rewind: true\n"
        "      use_slots: true\n"
        "      parameters:\n"
        "        synchronous_commit: 'on'\n"
        "        wal_log_hints: 'on'\n"
        "        wal_retrieve_retry_interval: 500ms\n" /* a standby streams soon after its slot exists */
        "        max_connections: %zu\n"
        "        password_encryption: scram-sha-256\n"
        "  initdb:\n"
        "    - encoding: UTF8\n"
        "    - locale: C\n"
        "    - auth-local: trust\n"
        "    - auth-host: scram-sha-256\n"
        "postgresql:\n"
        "  listen: " NET_LOOPBACK ":%d\n"
        "  connect_address: " NET_LOOPBACK ":%d\n"
        "  data_dir: '%s'\n"
        "  bin_dir: " PG_BIN "\n"
        "  pgpass: '%s/pgpass'\n"
        "  pg_hba:\n"
        "    - local all all trust\n"
        "    - local replication all trust\n" /* pg_basebackup through the socket (docs/runbook.md) */
        "    - host all all " NET_LOOPBACK "/32 scram-sha-256\n"
        "    - host replication replicator " NET_LOOPBACK "/32 scram-sha-256\n"
        "  authentication:\n"
        "    superuser:\n"
        "      username: postgres\n"
        "      password: '%s'\n"
        "    replication:\n"
        "      username: replicator\n"
        "      password: '%s'\n"
        "  parameters:\n"
        "    unix_socket_directories: '%s'\n",
        m->name, m->name, m->dir, m->api_port, m->api_port, s->rest, L->etcd_port, 2 * servers + 20, m->port,
        m->port, m->data, m->dir, s->superuser, s->replication, m->sock);
    rk_rc rc = n > 0 && (size_t)n < sizeof text ? write_owned(L, m->conf, text, 0600) : RK_ERR_INVALID;
    rk_wipe(text, sizeof text);
    return rc;
}

static rk_rc write_layout_json(const ha_layout *L)
{
    json_t *members = json_array();
    for (int i = 0; i < HA_MEMBERS; i++)
        json_array_append_new(members, json_pack("{s:s,s:i,s:i}", "name", L->m[i].name, "port", L->m[i].port,
                                                 "api_port", L->m[i].api_port));
    json_t *j = json_pack("{s:{s:i,s:i},s:o}", "etcd", "client_port", L->etcd_port, "peer_port",
                          L->etcd_peer_port, "members", members);
    char *text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    json_decref(j);
    rk_rc rc = text ? write_owned(L, L->json, text, 0644) : RK_ERR_NOMEM;
    free(text);
    return rc;
}

/* ---------- daemons ---------- */

/* The pid in pidfile when that process runs with `marker` (its
 * configuration's path) on its command line; 0 otherwise. */
static pid_t daemon_pid(const char *pidfile, const char *marker)
{
    FILE *f = fopen(pidfile, "r");
    long pid = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%ld", &pid) != 1 || pid <= 1 || pid > INT_MAX)
        pid = 0;
    fclose(f);
    if (!pid)
        return 0;
    char path[64], cmd[8192];
    snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, cmd, sizeof cmd - 1);
    close(fd);
    if (n <= 0) /* gone, or a zombie */
        return 0;
    for (ssize_t i = 0; i < n; i++)
        if (cmd[i] == '\0')
            cmd[i] = ' ';
    cmd[n] = '\0';
    return strstr(cmd, marker) ? (pid_t)pid : 0;
}

/* Starts argv as a daemon (a session of its own, its parent init), as the
 * postgres user when root, in home, its output appended to log; its pid in
 * pidfile. RK_OK once it runs argv (argv[2] or argv[1], its configuration,
 * on its command line). */
static rk_rc spawn_daemon(const ha_layout *L, const char *home, const char *log, const char *pidfile,
                          char *const argv[])
{
    const char *marker = argv[2] ? argv[2] : argv[1];
    char env_home[NET_PATH_CAP + 8];
    snprintf(env_home, sizeof env_home, "HOME=%s", home);
    char *const envp[] = {env_home, "PATH=/usr/bin:/bin", "LANG=C.UTF-8", NULL};
    int logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int pidfd = open(pidfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    rk_rc rc = logfd >= 0 && nullfd >= 0 && pidfd >= 0 ? RK_OK : RK_ERR_IO;
    if (rc == RK_OK && L->drop && (fchown(logfd, L->uid, L->gid) != 0 || fchown(pidfd, L->uid, L->gid) != 0))
        rc = RK_ERR_IO;
    pid_t mid = -1;
    if (rc == RK_OK) {
        fflush(NULL);
        mid = fork();
    }
    if (mid == 0) {
        setsid();
        pid_t pid = fork();
        if (pid != 0) { /* the middle one: the daemon's pid, then gone */
            char num[24];
            int len = snprintf(num, sizeof num, "%ld\n", (long)pid);
            _exit(pid > 0 && write(pidfd, num, (size_t)len) == len ? 0 : 1);
        }
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        sigset_t none;
        sigemptyset(&none);
        sigaction(SIGINT, &dfl, NULL);
        sigaction(SIGTERM, &dfl, NULL);
        sigaction(SIGPIPE, &dfl, NULL);
        sigaction(SIGHUP, &dfl, NULL);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (L->drop && (setgroups(0, NULL) != 0 || setgid(L->gid) != 0 || setuid(L->uid) != 0))
            _exit(126);
        if (chdir(home) != 0 || dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
            _exit(127);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    if (logfd >= 0)
        close(logfd);
    if (nullfd >= 0)
        close(nullfd);
    if (pidfd >= 0)
        close(pidfd);
    if (rc == RK_OK && mid < 0)
        rc = RK_ERR_IO;
    if (rc == RK_OK) {
        int status = 0;
        while (waitpid(mid, &status, 0) < 0 && errno == EINTR)
            ;
        rc = WIFEXITED(status) && WEXITSTATUS(status) == 0 ? RK_OK : RK_ERR_IO;
    }
    int64_t deadline = rk_mono_ms() + 5000; /* the pid is known before the exec is done */
    while (rc == RK_OK && !daemon_pid(pidfile, marker))
        if (rk_mono_ms() >= deadline)
            rc = RK_ERR_IO;
        else
            tk_sleep_ms(10);
    return rc;
}

/* SIGTERM, then waits; SIGKILL after wait_ms. RK_OK when it went on SIGTERM
 * (or was not running). */
static rk_rc stop_daemon(const char *pidfile, const char *marker, int wait_ms)
{
    pid_t pid = daemon_pid(pidfile, marker);
    if (!pid)
        return RK_OK;
    kill(pid, SIGTERM);
    int64_t deadline = rk_mono_ms() + wait_ms;
    while (daemon_pid(pidfile, marker) == pid && rk_mono_ms() < deadline)
        tk_sleep_ms(50);
    if (daemon_pid(pidfile, marker) != pid)
        return RK_OK;
    kill(pid, SIGKILL);
    deadline = rk_mono_ms() + 5000;
    while (daemon_pid(pidfile, marker) == pid && rk_mono_ms() < deadline)
        tk_sleep_ms(50);
    return RK_ERR_TIMEOUT;
}

/* ---------- Patroni's REST API and etcd's health (plain HTTP on loopback) ---------- */

typedef struct body_buf {
    char *p;
    size_t n;
    int over;
} body_buf;

static size_t take_body(char *data, size_t size, size_t nmemb, void *arg)
{
    body_buf *b = arg;
    size_t len = size * nmemb;
    if (b->n + len > HA_REST_CAP) {
        b->over = 1;
        return 0;
    }
    char *p = realloc(b->p, b->n + len + 1);
    if (!p)
        return 0;
    memcpy(p + b->n, data, len);
    b->p = p;
    b->n += len;
    b->p[b->n] = '\0';
    return len;
}

/* GET http://127.0.0.1:port/path: its JSON object (any status), or NULL. */
static json_t *rest_get(int port, const char *path)
{
    char url[128];
    snprintf(url, sizeof url, "http://" NET_LOOPBACK ":%d%s", port, path);
    CURL *c = curl_easy_init();
    if (!c)
        return NULL;
    body_buf b = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
#endif
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)HA_REST_MS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, take_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    CURLcode cc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    json_t *j = cc == CURLE_OK && b.p && !b.over ? json_loads(b.p, 0, NULL) : NULL;
    free(b.p);
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

static int etcd_healthy(const ha_layout *L)
{
    json_t *j = rest_get(L->etcd_port, "/health");
    const char *h = json_string_value(json_object_get(j, "health"));
    int ok = h && strcmp(h, "true") == 0;
    json_decref(j);
    return ok;
}

/* The cluster as Patroni sees it (GET /cluster of the first member that
 * answers): the leader's index (-1: none running) and whether a
 * synchronous standby runs. 0 when a member answered. */
static int cluster_view(const ha_layout *L, int *leader, int *sync_ok)
{
    *leader = -1;
    *sync_ok = 0;
    for (int i = 0; i < HA_MEMBERS; i++) {
        json_t *j = rest_get(L->m[i].api_port, "/cluster");
        json_t *members = json_object_get(j, "members");
        if (!json_is_array(members)) {
            json_decref(j);
            continue;
        }
        size_t k;
        json_t *m;
        json_array_foreach(members, k, m) {
            const char *name = json_string_value(json_object_get(m, "name"));
            const char *role = json_string_value(json_object_get(m, "role"));
            const char *state = json_string_value(json_object_get(m, "state"));
            int running = state && (strcmp(state, "running") == 0 || strcmp(state, "streaming") == 0);
            for (int x = 0; name && role && running && x < HA_MEMBERS; x++) {
                if (strcmp(name, L->m[x].name) != 0)
                    continue;
                if (strcmp(role, "leader") == 0)
                    *leader = x;
                else if (strcmp(role, "sync_standby") == 0)
                    *sync_ok = 1;
            }
        }
        json_decref(j);
        return 0;
    }
    return -1;
}

/* ---------- starting and stopping the cluster ---------- */

static int patroni_running(const ha_member *m) { return daemon_pid(m->pid, m->conf) != 0; }

/* After Patroni stopped (or was killed): its PostgreSQL must not stay. */
static void stop_postgres_left(const ha_member *m)
{
    char pidfile[NET_PATH_CAP + 16];
    snprintf(pidfile, sizeof pidfile, "%s/postmaster.pid", m->data);
    if (!daemon_pid(pidfile, m->data))
        return;
    const char *const stop[] = {PG_BIN "/pg_ctl", "stop", "-D", m->data, "-m", "fast", "-w", "-t", "30", NULL};
    if (net_pg_run(1, m->log, NULL, stop) != 0) {
        const char *const now[] = {PG_BIN "/pg_ctl", "stop", "-D", m->data, "-m", "immediate", "-w", NULL};
        net_pg_run(1, m->log, NULL, now);
    }
}

static rk_rc stop_cluster(const ha_layout *L)
{
    rk_rc rc = RK_OK;
    int leader = -1, sync_ok = 0;
    cluster_view(L, &leader, &sync_ok);
    /* the standby first: the primary stopping first would fail over to it */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < HA_MEMBERS; i++) {
            if ((i == leader) != (pass == 1))
                continue;
            if (stop_daemon(L->m[i].pid, L->m[i].conf, HA_STOP_WAIT_MS) != RK_OK)
                rc = RK_ERR_IO;
            stop_postgres_left(&L->m[i]);
        }
    if (stop_daemon(L->etcd_pid, L->etcd_conf, HA_STOP_WAIT_MS) != RK_OK)
        rc = RK_ERR_IO;
    return rc;
}

/* Starts what is down; waits for etcd, then for a leader and a synchronous
 * standby. *started: it started something. */
static rk_rc start_cluster(const ha_layout *L, int *started, char *err, size_t errlen)
{
    *started = 0;
    if (!daemon_pid(L->etcd_pid, L->etcd_conf)) {
        char *const argv[] = {ETCD_BIN, "--config-file", (char *)L->etcd_conf, NULL};
        if (spawn_daemon(L, L->etcd_dir, L->etcd_log, L->etcd_pid, argv) != RK_OK) {
            net_set_err(err, errlen, "cannot start etcd (" ETCD_BIN ": scripts/install-deps.sh installs etcd-server)");
            return RK_ERR_IO;
        }
        *started = 1;
    }
    int64_t deadline = rk_mono_ms() + HA_ETCD_WAIT_MS;
    while (!etcd_healthy(L)) {
        if (rk_mono_ms() >= deadline || !daemon_pid(L->etcd_pid, L->etcd_conf) || net_stop_requested) {
            net_set_err(err, errlen, "etcd is not healthy (see %s)", L->etcd_log);
            return RK_ERR_IO;
        }
        tk_sleep_ms(HA_POLL_MS);
    }
    for (int i = 0; i < HA_MEMBERS; i++) {
        const ha_member *m = &L->m[i];
        if (patroni_running(m))
            continue;
        char *const argv[] = {PATRONI_BIN, (char *)m->conf, NULL};
        if (spawn_daemon(L, m->dir, m->log, m->pid, argv) != RK_OK) {
            net_set_err(err, errlen, "cannot start Patroni for %s (" PATRONI_BIN
                                     ": scripts/install-deps.sh installs patroni)", m->name);
            return RK_ERR_IO;
        }
        *started = 1;
    }
    deadline = rk_mono_ms() + HA_READY_WAIT_MS;
    for (;;) {
        int leader, sync_ok;
        if (cluster_view(L, &leader, &sync_ok) == 0 && leader >= 0 && sync_ok)
            return RK_OK;
        for (int i = 0; i < HA_MEMBERS; i++)
            if (!patroni_running(&L->m[i])) {
                net_set_err(err, errlen, "Patroni for %s exited (see %s/patroni.log and %s)", L->m[i].name,
                            L->m[i].dir, L->m[i].log);
                return RK_ERR_IO;
            }
        if (rk_mono_ms() >= deadline || net_stop_requested) {
            net_set_err(err, errlen, "no primary with a synchronous standby after %d s (see %s/pg-*/patroni.log)",
                        HA_READY_WAIT_MS / 1000, L->root);
            return RK_ERR_TIMEOUT;
        }
        tk_sleep_ms(HA_POLL_MS);
    }
}

rk_rc net_ha_start(const char *dir, int *started, char *err, size_t errlen)
{
    ha_layout L;
    *started = 0;
    rk_rc rc = load_layout(dir, &L, err, errlen);
    if (rc == RK_OK)
        rc = start_cluster(&L, started, err, errlen);
    if (rc != RK_OK && *started) { /* nothing half up left behind */
        stop_cluster(&L);
        *started = 0;
    }
    return rc;
}

rk_rc net_ha_stop(const char *dir)
{
    ha_layout L;
    char err[256];
    return load_layout(dir, &L, err, sizeof err) == RK_OK ? stop_cluster(&L) : RK_ERR_INVALID;
}

/* ---------- init ---------- */

/* Ports for etcd (client, peer) and each server (PostgreSQL, REST API),
 * all different. */
static rk_rc pick_ports(const net_plan *plan, ha_layout *L)
{
    int *slots[2 + 2 * HA_MEMBERS] = {&L->etcd_port, &L->etcd_peer_port};
    for (int i = 0; i < HA_MEMBERS; i++) {
        slots[2 + 2 * i] = &L->m[i].port;
        slots[3 + 2 * i] = &L->m[i].api_port;
    }
    int n = (int)(sizeof slots / sizeof slots[0]);
    for (int s = 0; s < n; s++) {
        int port = -1;
        for (int tries = 0; tries < 50 && port < 0; tries++) {
            port = net_pg_pick_port(plan);
            for (int k = 0; k < s && port >= 0; k++)
                if (*slots[k] == port)
                    port = -1;
        }
        if (port < 0)
            return RK_ERR_IO;
        *slots[s] = port;
    }
    return RK_OK;
}

/* One role and one database per server node, made on the primary through
 * its socket; the passwords go through psql's stdin, never a command line. */
static rk_rc make_databases(const ha_layout *L, const net_plan *plan, char **stores, char *err, size_t errlen)
{
    int leader, sync_ok;
    if (cluster_view(L, &leader, &sync_ok) != 0 || leader < 0) {
        net_set_err(err, errlen, "no primary to make the nodes' databases on (see %s/pg-*/patroni.log)", L->root);
        return RK_ERR_IO;
    }
    /* libpq tries both servers and keeps the one that takes writes (DESIGN §6) */
    char hosts[64], *script = NULL;
    snprintf(hosts, sizeof hosts, NET_LOOPBACK ":%d," NET_LOOPBACK ":%d", L->m[0].port, L->m[1].port);
    rk_rc rc = net_pg_databases_script(plan, hosts, "?target_session_attrs=read-write", stores, &script);
    char port[16], log[NET_PATH_CAP + 16];
    snprintf(port, sizeof port, "%d", L->m[leader].port);
    snprintf(log, sizeof log, "%s/setup.log", L->root);
    const char *const psql[] = {PG_BIN "/psql", "-X", "-q", "-h", L->m[leader].sock, "-p", port, "-U", "postgres",
                                "-d", "postgres", "-f", "-", NULL};
    if (rc == RK_OK && net_pg_run(0, log, script, psql) != 0) {
        net_set_err(err, errlen, "cannot make the nodes' roles and databases (see %s)", log);
        rc = RK_ERR_IO;
    }
    if (script)
        rk_wipe(script, strlen(script));
    free(script);
    return rc;
}

rk_rc net_ha_init(const char *dir, const net_plan *plan, char **stores, char *err, size_t errlen)
{
    ha_layout L;
    if (layout_paths(dir, &L) != RK_OK) {
        net_set_err(err, errlen, "%s: a folder PostgreSQL cannot use (too long, or a quote in it)", dir);
        return RK_ERR_INVALID;
    }
    rk_rc rc;
    if (as_root()) {
        if ((rc = net_pg_reachable(L.root, &L.uid, &L.gid, err, errlen)) != RK_OK)
            return rc;
        L.drop = 1;
    }
    if (access(ETCD_BIN, X_OK) != 0 || access(PATRONI_BIN, X_OK) != 0) {
        net_set_err(err, errlen, "--ha needs etcd and Patroni (" ETCD_BIN ", " PATRONI_BIN
                                 "): scripts/install-deps.sh installs etcd-server and patroni");
        return RK_ERR_CONFIG;
    }
    if (mkdir(L.root, 0700) != 0 || make_dir(&L, L.root) != RK_OK || make_dir(&L, L.etcd_dir) != RK_OK) {
        net_set_err(err, errlen, "%s: cannot create: %s", L.root, strerror(errno));
        return RK_ERR_IO;
    }
    for (int i = 0; i < HA_MEMBERS; i++)
        if (make_dir(&L, L.m[i].dir) != RK_OK || make_dir(&L, L.m[i].sock) != RK_OK) {
            net_set_err(err, errlen, "%s: cannot create: %s", L.m[i].dir, strerror(errno));
            return RK_ERR_IO;
        }
    size_t servers = 0;
    for (size_t i = 0; i < plan->n; i++)
        servers += net_is_server_role(plan->nodes[i].role) ? 1 : 0;
    ha_secrets s;
    random_hex(s.superuser);
    random_hex(s.replication);
    random_hex(s.rest);
    if (pick_ports(plan, &L) != RK_OK) {
        net_set_err(err, errlen, "no free loopback ports for the database servers");
        return RK_ERR_IO;
    }
    rc = write_etcd_conf(&L);
    for (int i = 0; i < HA_MEMBERS && rc == RK_OK; i++)
        rc = write_patroni_conf(&L, &L.m[i], &s, servers);
    if (rc == RK_OK)
        rc = write_layout_json(&L);
    rk_wipe(&s, sizeof s);
    if (rc != RK_OK) {
        net_set_err(err, errlen, "%s: cannot write the cluster's configuration", L.root);
        return rc;
    }
    /* once up (initdb on one server, a base backup on the other), the
     * databases made, and down again */
    int started = 0;
    rc = start_cluster(&L, &started, err, errlen);
    if (rc == RK_OK)
        rc = make_databases(&L, plan, stores, err, errlen);
    if (stop_cluster(&L) != RK_OK && rc == RK_OK) {
        net_set_err(err, errlen, "the database servers did not stop (see %s/pg-*/patroni.log)", L.root);
        rc = RK_ERR_IO;
    }
    return rc;
}

/* ---------- status ---------- */

int net_ha_status(const char *dir, FILE *out, int width)
{
    ha_layout L;
    char err[512] = "";
    if (load_layout(dir, &L, err, sizeof err) != RK_OK) {
        fprintf(stderr, "renkei net: %s\n", err);
        return 1;
    }
    int leader = -1, sync_ok = 0, bad = 0;
    cluster_view(&L, &leader, &sync_ok);
    for (int i = 0; i < HA_MEMBERS; i++) {
        const ha_member *m = &L.m[i];
        json_t *p = rest_get(m->api_port, "/patroni");
        const char *state = json_string_value(json_object_get(p, "state"));
        const char *role = json_string_value(json_object_get(p, "role"));
        int running = state && strcmp(state, "running") == 0;
        int primary = role ? strcmp(role, "master") == 0 || strcmp(role, "primary") == 0 : i == leader;
        const char *health = "down";
        if (running && primary) { /* ok with a synchronous standby streaming: a commit is on both */
            size_t k;
            json_t *r;
            health = "degraded";
            json_array_foreach(json_object_get(p, "replication"), k, r) {
                const char *sync = json_string_value(json_object_get(r, "sync_state"));
                const char *st = json_string_value(json_object_get(r, "state"));
                if (sync && st && strcmp(sync, "sync") == 0 && strcmp(st, "streaming") == 0)
                    health = "ok";
            }
        } else if (running) {
            health = json_is_true(json_object_get(p, "sync_standby")) ? "ok" : "degraded";
        }
        fprintf(out, "%-*s %-7s postgresql://" NET_LOOPBACK ":%d %s %s\n", width, m->name, "store", m->port,
                primary ? "primary" : "standby", health);
        bad |= strcmp(health, "ok") != 0;
        json_decref(p);
    }
    fflush(out);
    return bad;
}
