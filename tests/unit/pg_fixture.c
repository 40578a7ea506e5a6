/* pg_fixture.c — see pg_fixture.h. The server's commands run as `postgres`
 * through runuser when the tests run as root. */
#include "pg_fixture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG_BIN "/usr/lib/postgresql/15/bin"

static struct {
    char dir[64];   /* the temporary folder: data/, sock/, server.log */
    char data[96], sock[96], log[96];
    int port;
    int watchdog;   /* the write end of the watchdog's pipe */
    int up;
    int dbs;        /* databases made so far (their names) */
} fx = {.watchdog = -1};

static int as_root(void) { return geteuid() == 0; }

/* Runs argv (as postgres when root), its output appended to `out` (or
 * dropped); 0 when it exited 0. */
static int run(int as_postgres, const char *out, const char *const argv[])
{
    const char *full[24];
    int n = 0;
    if (as_postgres && as_root()) {
        full[n++] = "/usr/sbin/runuser";
        full[n++] = "-u";
        full[n++] = "postgres";
        full[n++] = "--";
    }
    for (int i = 0; argv[i] && n < 23; i++)
        full[n++] = argv[i];
    full[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(out ? out : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(full[0], (char *const *)full);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(s, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (s >= 0)
        close(s);
    return port;
}

/* A process that outlives the test's: it waits for the end of a pipe whose
 * write end only this process holds, then stops the server and removes the
 * folder. Detached (its own session, not a child of ours), so that killing
 * the test's process tree does not kill it first. */
static int start_watchdog(void)
{
    char script[1024];
    snprintf(script, sizeof script,
             "exec 3<&0; setsid sh -c 'trap \"\" INT HUP; cat >/dev/null; %s " PG_BIN "/pg_ctl stop -D %s -m immediate"
             " -w; rm -rf %s' <&3 >/dev/null 2>&1 &",
             as_root() ? "/usr/sbin/runuser -u postgres --" : "", fx.data, fx.dir);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fds[0], 0); /* without O_CLOEXEC: the shell keeps it */
        execl("/bin/sh", "sh", "-c", script, (char *)NULL);
        _exit(127);
    }
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0); /* the shell returns once the watchdog is in the background */
    fx.watchdog = fds[1];
    return 0;
}

static void show_log(const char *path)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "tail -n 20 %s >&2", path);
    if (system(cmd) != 0)
        fprintf(stderr, "pg_fixture: no log at %s\n", path);
}

static int server_start(void)
{
    char opts[256];
    snprintf(opts, sizeof opts,
             "-c listen_addresses=127.0.0.1 -p %d -k %s -c max_connections=40 -c shared_buffers=16MB", fx.port,
             fx.sock);
    const char *const start[] = {PG_BIN "/pg_ctl", "start", "-D", fx.data, "-l", fx.log, "-w", "-t", "60",
                                 "-o", opts, NULL};
    if (run(1, NULL, start) != 0)
        return -1;
    fx.up = 1;
    return 0;
}

int pg_fixture_start(void)
{
    if (fx.up)
        return 0;
    snprintf(fx.dir, sizeof fx.dir, "/tmp/rk-pg-XXXXXX");
    if (!mkdtemp(fx.dir)) {
        perror("pg_fixture: mkdtemp");
        return -1;
    }
    snprintf(fx.data, sizeof fx.data, "%s/data", fx.dir);
    snprintf(fx.sock, sizeof fx.sock, "%s/sock", fx.dir);
    snprintf(fx.log, sizeof fx.log, "%s/server.log", fx.dir);
    if (mkdir(fx.sock, 0700) != 0 || start_watchdog() != 0) {
        perror("pg_fixture: setting up");
        pg_fixture_end();
        return -1;
    }
    if (as_root()) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw || chown(fx.dir, pw->pw_uid, pw->pw_gid) != 0 || chown(fx.sock, pw->pw_uid, pw->pw_gid) != 0) {
            fprintf(stderr, "pg_fixture: no `postgres` user to run the server as (scripts/install-deps.sh)\n");
            pg_fixture_end();
            return -1;
        }
    }
    char initdb_log[96];
    snprintf(initdb_log, sizeof initdb_log, "%s/initdb.log", fx.dir);
    const char *const initdb[] = {PG_BIN "/initdb", "-D", fx.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                                  "--locale=C", "--no-sync", "--no-instructions", NULL};
    if (run(1, initdb_log, initdb) != 0) {
        fprintf(stderr, "pg_fixture: initdb failed (" PG_BIN ", scripts/install-deps.sh):\n");
        show_log(initdb_log);
        pg_fixture_end();
        return -1;
    }
    /* another process may take the port between our probe and the server's bind: another port then */
    for (int attempt = 0; attempt < 5 && !fx.up; attempt++)
        if ((fx.port = free_port()) > 0 && server_start() != 0)
            show_log(fx.log);
    if (!fx.up) {
        fprintf(stderr, "pg_fixture: the server did not start\n");
        pg_fixture_end();
        return -1;
    }
    return 0;
}

int pg_fixture_port(void) { return fx.dir[0] ? fx.port : 0; }

int pg_fixture_new_db(char *uri, size_t size)
{
    if (!fx.up)
        return -1;
    char name[32], port[16];
    snprintf(name, sizeof name, "rk%d", ++fx.dbs);
    snprintf(port, sizeof port, "%d", fx.port);
    const char *const createdb[] = {PG_BIN "/createdb", "-h", "127.0.0.1", "-p", port, "-U", "postgres", name, NULL};
    if (run(0, fx.log, createdb) != 0) {
        fprintf(stderr, "pg_fixture: createdb %s failed\n", name);
        show_log(fx.log);
        return -1;
    }
    snprintf(uri, size, "postgresql://postgres@127.0.0.1:%d/%s", fx.port, name);
    return 0;
}

int pg_fixture_stop(void)
{
    if (!fx.up)
        return -1;
    const char *const stop[] = {PG_BIN "/pg_ctl", "stop", "-D", fx.data, "-m", "fast", "-w", NULL};
    if (run(1, NULL, stop) != 0)
        return -1;
    fx.up = 0;
    return 0;
}

int pg_fixture_restart(void)
{
    return fx.up ? 0 : fx.dir[0] ? server_start() : -1;
}

void pg_fixture_end(void)
{
    if (fx.up) { /* immediate: nothing of a throwaway server needs a shutdown checkpoint */
        const char *const stop[] = {PG_BIN "/pg_ctl", "stop", "-D", fx.data, "-m", "immediate", "-w", NULL};
        run(1, NULL, stop);
        fx.up = 0;
    }
    if (fx.dir[0]) {
        const char *const rm[] = {"/bin/rm", "-rf", fx.dir, NULL};
        run(0, NULL, rm);
        fx.dir[0] = '\0';
    }
    if (fx.watchdog >= 0) { /* it finds nothing left to do */
        close(fx.watchdog);
        fx.watchdog = -1;
    }
}

int test_store_is_pg(void)
{
    const char *e = getenv("RENKEI_TEST_STORE");
    return e && strcmp(e, "postgres") == 0;
}

int test_store_target(const char *dir, const char *name, char *out, size_t size)
{
    if (!test_store_is_pg()) {
        snprintf(out, size, "sqlite:%s/%s.db", dir, name);
        return 0;
    }
    if (pg_fixture_start() != 0)
        return -1;
    return pg_fixture_new_db(out, size);
}

void test_store_end(void)
{
    pg_fixture_end();
}

int test_store_group_end(void **state)
{
    (void)state;
    test_store_end();
    return 0;
}
