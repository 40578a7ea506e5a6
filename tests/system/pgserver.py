"""pgserver.py — a throwaway PostgreSQL server for the system tests (the
Python twin of tests/unit/pg_fixture.c).

PgServer() makes a temporary folder (owned by the `postgres` user when the
tests run as root: PostgreSQL refuses root), runs initdb there and starts a
server on a free loopback port, its unix socket in the folder too, trust
authentication, UTF8, locale C. create_database() makes a database (and its
role); close() stops the server and removes the folder. A detached watchdog
does the same when the test process ends any other way (an exception, a
crash, SIGKILL by a timeout).

    with PgServer() as pg:
        uri = pg.create_database("core")

PgServer(existing=DIR/pg) is the server of a network written by `renkei net
init DIR --store postgres` instead: started here, stopped by close() (and by
the watchdog), its folder left to the network.
"""
import os
import pwd
import shutil
import socket
import subprocess
import tempfile

PG_BIN = "/usr/lib/postgresql/15/bin"


def _as_postgres(argv):
    return ["/usr/sbin/runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self, existing=None):
        self.owned = existing is None  # its folder is ours to remove
        self.dir = existing or tempfile.mkdtemp(prefix="rk-pg-")
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        self.log = os.path.join(self.dir, "server.log")
        self.port = None
        self.up = False
        if not self.owned:
            with open(os.path.join(self.data, "postgresql.conf")) as f:
                self.port = [int(line.split("=")[1]) for line in f if line.startswith("port = ")][-1]
            self._watchdog = self._start_watchdog()
            self.start()
            return
        os.mkdir(self.sock, 0o700)
        self._watchdog = self._start_watchdog()
        try:
            if os.geteuid() == 0:
                pw = pwd.getpwnam("postgres")  # scripts/install-deps.sh installs postgresql-15
                for d in (self.dir, self.sock):
                    os.chown(d, pw.pw_uid, pw.pw_gid)
            self._run(_as_postgres([f"{PG_BIN}/initdb", "-D", self.data, "-U", "postgres", "-A", "trust",
                                    "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]))
            for _ in range(5):  # another process may take the port first
                self.port = _free_port()
                if self._pg_ctl("start", "-l", self.log, "-w", "-t", "60", "-o",
                                f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.sock}"
                                " -c max_connections=60 -c shared_buffers=16MB", check=False) == 0:
                    self.up = True
                    break
            if not self.up:
                raise RuntimeError(f"the PostgreSQL server did not start: {self._tail()}")
        except BaseException:
            self.close()
            raise

    def _start_watchdog(self):
        """Waits, detached, for the end of a pipe only this process holds."""
        stop = " ".join(_as_postgres([f"{PG_BIN}/pg_ctl", "stop", "-D", self.data, "-m", "immediate", "-w"]))
        remove = f"; rm -rf {self.dir}" if self.owned else ""
        script = (f"exec 3<&0; setsid sh -c 'trap \"\" INT HUP; cat >/dev/null; {stop}{remove}'"
                  " <&3 >/dev/null 2>&1 &")
        p = subprocess.Popen(["/bin/sh", "-c", script], stdin=subprocess.PIPE)
        p.wait()  # the shell returns once the watchdog is in the background
        return p.stdin

    def _run(self, argv, check=True):
        p = subprocess.run(argv, capture_output=True, text=True)
        if check and p.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}: {p.stderr.strip() or p.stdout.strip()}")
        return p

    def _pg_ctl(self, *args, check=True):
        return self._run(_as_postgres([f"{PG_BIN}/pg_ctl", args[0], "-D", self.data, *args[1:]]),
                         check=check).returncode

    def _tail(self):
        try:
            with open(self.log) as f:
                return " | ".join(f.read().strip().splitlines()[-5:])
        except OSError:
            return "no server log"

    def psql(self, sql, db="postgres"):
        """Runs sql as the superuser (through the server's unix socket); its
        rows, unaligned, one a line."""
        # as the server's OS user: a network's server lets only it in as postgres on the socket (peer)
        return self._run(_as_postgres([f"{PG_BIN}/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h",
                                       self.sock, "-p", str(self.port), "-U", "postgres", "-d", db, "-c", sql])
                         ).stdout.strip()

    def create_database(self, name, role=None, password=None):
        """A database (owned by `role`, made LOGIN when new); its libpq URI."""
        owner = ""
        if role:
            pw = f" PASSWORD '{password}'" if password else ""
            self.psql(f'CREATE ROLE "{role}" LOGIN{pw}')
            owner = f' OWNER "{role}"'
        self.psql(f'CREATE DATABASE "{name}"{owner}')
        who = f"{role}:{password}@" if role and password else f"{role}@" if role else "postgres@"
        return f"postgresql://{who}127.0.0.1:{self.port}/{name}"

    def stop(self, mode="fast"):
        if self.up:
            self._pg_ctl("stop", "-m", mode, "-w")
            self.up = False

    def start(self):
        if not self.up:
            opts = ["-o", f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.sock}"
                    " -c max_connections=60 -c shared_buffers=16MB"] if self.owned else []  # a network's: its own
            self._pg_ctl("start", "-l", self.log, "-w", "-t", "60", *opts)
            self.up = True

    def close(self):
        """Stops the server and removes its folder (when it made it); safe to call again."""
        if self.up:
            self.stop("immediate" if self.owned else "fast")  # a throwaway server needs no shutdown checkpoint
        if self.owned:
            shutil.rmtree(self.dir, ignore_errors=True)
        if self._watchdog:
            self._watchdog.close()  # it finds nothing left to do
            self._watchdog = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
