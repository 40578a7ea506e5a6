"""cluster.py — the database of a network written with `renkei net init
--store postgres --ha` (DESIGN §6), run by the crash-kill suite itself: one
etcd member and Patroni on each of the two PostgreSQL servers (pg-1, pg-2),
started from the configuration `net init` wrote, as `renkei net up` starts
them (src/tools/net/ha.c: the same commands, the same .pid files, as the
`postgres` user when run as root), so that `renkei net status` and `renkei
records verify` see them as theirs.

`renkei net up` starts the cluster and the nodes together and restarts
neither; the suite needs to SIGKILL a primary's postmaster or a Patroni
daemon and bring the member back, so it runs the daemons here, and the nodes
through the harness. A detached watchdog stops them all should this process
end any other way (an exception, SIGKILL by a timeout).
"""
import json
import os
import pwd
import signal
import subprocess
import time
import urllib.error
import urllib.request

PG_BIN = "/usr/lib/postgresql/15/bin"
ETCD_BIN = "/usr/bin/etcd"
PATRONI_BIN = "/usr/bin/patroni"


def _pid_running(pidfile, marker):
    """The pid in pidfile when that process runs with marker on its command
    line (as ha.c's daemon_pid); 0 otherwise."""
    try:
        with open(pidfile) as f:
            pid = int(f.readline())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ValueError):
        return 0
    return pid if cmd and marker in cmd else 0


class Member:
    def __init__(self, root, m):
        self.name, self.port, self.api_port = m["name"], m["port"], m["api_port"]
        self.dir = os.path.join(root, self.name)
        self.conf = os.path.join(self.dir, "patroni.yml")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgres.log")
        self.pidfile = os.path.join(self.dir, "patroni.pid")
        self.proc = None  # Patroni, when started here

    def rest(self, path, timeout=2):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}{path}", timeout=timeout) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:  # /patroni answers 503 with its state when PostgreSQL is down
            try:
                return json.load(e)
            except ValueError:
                return {}
        except (OSError, ValueError):
            return {}

    def postmaster(self):
        return _pid_running(os.path.join(self.data, "postmaster.pid"), self.data)

    def patroni(self):
        return _pid_running(self.pidfile, self.conf)


class HaCluster:
    def __init__(self, net_dir):
        self.root = os.path.join(os.path.abspath(net_dir), "pg")
        with open(os.path.join(self.root, "ha.json")) as f:
            layout = json.load(f)
        self.etcd_port = layout["etcd"]["client_port"]
        self.etcd_dir = os.path.join(self.root, "etcd")
        self.etcd_conf = os.path.join(self.etcd_dir, "etcd.yml")
        self.etcd_pidfile = os.path.join(self.etcd_dir, "etcd.pid")
        self.etcd = None
        self.members = [Member(self.root, m) for m in layout["members"]]
        self.by_name = {m.name: m for m in self.members}
        self.drop = os.geteuid() == 0
        self.pw = pwd.getpwnam("postgres") if self.drop else None
        self._watchdog = self._start_watchdog()

    # ---------- daemons ----------
    def _spawn(self, argv, home, log, pidfile):
        out = open(log, "ab")
        kw = dict(user=self.pw.pw_uid, group=self.pw.pw_gid, extra_groups=[]) if self.drop else {}
        try:
            p = subprocess.Popen(argv, cwd=home, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True, env={"HOME": home, "PATH": "/usr/bin:/bin",
                                                              "LANG": "C.UTF-8"}, **kw)
        finally:
            out.close()
        with open(pidfile, "w") as f:
            f.write(f"{p.pid}\n")
        if self.drop:
            os.chown(pidfile, self.pw.pw_uid, self.pw.pw_gid)
        return p

    def _start_watchdog(self):
        """Waits, detached, for the end of a pipe only this process holds; then
        stops what is left of the cluster (Patroni, etcd, PostgreSQL)."""
        runuser = "/usr/sbin/runuser -u postgres -- " if os.geteuid() == 0 else ""
        kills = " ".join(f"p=$(cat {pidfile} 2>/dev/null) && grep -q {marker} /proc/$p/cmdline 2>/dev/null &&"
                         f" kill -KILL $p;" for pidfile, marker in
                         [(m.pidfile, m.conf) for m in self.members] + [(self.etcd_pidfile, self.etcd_conf)])
        stops = " ".join(f"{runuser}{PG_BIN}/pg_ctl stop -D {m.data} -m immediate;" for m in self.members)
        script = (f"exec 3<&0; setsid sh -c 'trap \"\" INT HUP; cat >/dev/null; {kills} {stops}'"
                  " <&3 >/dev/null 2>&1 &")
        p = subprocess.Popen(["/bin/sh", "-c", script], stdin=subprocess.PIPE)
        p.wait()
        return p.stdin

    def etcd_healthy(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.etcd_port}/health", timeout=2) as r:
                return json.load(r).get("health") == "true"
        except (OSError, ValueError):
            return False

    def start(self, timeout=180):
        if not _pid_running(self.etcd_pidfile, self.etcd_conf):
            self.etcd = self._spawn([ETCD_BIN, "--config-file", self.etcd_conf], self.etcd_dir,
                                    os.path.join(self.etcd_dir, "etcd.log"), self.etcd_pidfile)
        deadline = time.time() + 30
        while not self.etcd_healthy():
            if time.time() > deadline:
                raise AssertionError("etcd is not healthy (see pg/etcd/etcd.log)")
            time.sleep(0.2)
        for m in self.members:
            if not m.patroni():
                self.start_patroni(m)
        self.wait_whole(timeout)

    def start_patroni(self, m):
        m.proc = self._spawn([PATRONI_BIN, m.conf], m.dir, m.log, m.pidfile)

    def kill_patroni(self, m):
        """SIGKILL to member m's Patroni (its PostgreSQL stays, as after a
        crash of Patroni alone)."""
        pid = m.patroni()
        if pid:
            os.kill(pid, signal.SIGKILL)
        if m.proc:
            m.proc.wait()
            m.proc = None

    def kill_postmaster(self, m):
        """SIGKILL to member m's postmaster; its pid."""
        pid = m.postmaster()
        if not pid:
            raise AssertionError(f"{m.name}: no postmaster running")
        os.kill(pid, signal.SIGKILL)
        return pid

    def stop(self):
        """As `renkei net up` stops it: the standby first, then the primary,
        then etcd; SIGKILL after a minute."""
        leader = self.leader()
        for m in sorted(self.members, key=lambda m: m is leader):
            pid = m.patroni()
            if pid:
                os.kill(pid, signal.SIGTERM)
                deadline = time.time() + 60
                while m.patroni() == pid and time.time() < deadline:
                    time.sleep(0.1)
                if m.patroni() == pid:
                    os.kill(pid, signal.SIGKILL)
            if m.proc:
                m.proc.wait()
                m.proc = None
            if m.postmaster():
                argv = [f"{PG_BIN}/pg_ctl", "stop", "-D", m.data, "-m", "fast", "-w", "-t", "30"]
                subprocess.run(["/usr/sbin/runuser", "-u", "postgres", "--", *argv] if self.drop else argv,
                               capture_output=True)
        pid = _pid_running(self.etcd_pidfile, self.etcd_conf)
        if pid:
            os.kill(pid, signal.SIGTERM)
            if self.etcd:
                try:
                    self.etcd.wait(60)
                except subprocess.TimeoutExpired:
                    self.etcd.kill()
                    self.etcd.wait()
        self.etcd = None
        if self._watchdog:
            self._watchdog.close()
            self._watchdog = None

    # ---------- state (Patroni's REST API) ----------
    def view(self):
        """name -> (role, state) as GET /cluster of the first member that answers."""
        for m in self.members:
            j = m.rest("/cluster")
            if isinstance(j, dict) and isinstance(j.get("members"), list):
                return {x.get("name"): (x.get("role"), x.get("state")) for x in j["members"]}
        return {}

    def leader(self):
        """The member whose PostgreSQL runs as the leader, or None."""
        for name, (role, state) in self.view().items():
            if role == "leader" and state == "running" and name in self.by_name:
                return self.by_name[name]
        return None

    def whole(self):
        """A running leader and a synchronous standby streaming (what
        `renkei net up` waits for; net status prints both ok then)."""
        v = self.view()
        return any(r == "leader" and s == "running" for r, s in v.values()) and \
            any(r == "sync_standby" and s in ("running", "streaming") for r, s in v.values())

    def wait_whole(self, timeout):
        deadline = time.time() + timeout
        while not self.whole():
            if time.time() > deadline:
                raise AssertionError(f"the database cluster is not whole after {timeout} s: {self.view()}")
            for m in self.members:
                if m.proc and m.proc.poll() is not None:
                    raise AssertionError(f"Patroni for {m.name} exited {m.proc.returncode} (see {m.log})")
            time.sleep(0.2)

    def wait_member(self, m, timeout):
        """Until member m's Patroni answers on its REST API with its PostgreSQL running."""
        deadline = time.time() + timeout
        while m.rest("/patroni").get("state") != "running":
            if time.time() > deadline:
                raise AssertionError(f"Patroni for {m.name} not running after {timeout} s: {m.rest('/patroni')}")
            if m.proc and m.proc.poll() is not None:
                raise AssertionError(f"Patroni for {m.name} exited {m.proc.returncode} (see {m.log})")
            time.sleep(0.1)

    def wait_leader(self, other_than=None, timeout=60):
        deadline = time.time() + timeout
        while True:
            m = self.leader()
            if m is not None and m is not other_than:
                return m
            if time.time() > deadline:
                raise AssertionError(f"no new leader after {timeout} s: {self.view()}")
            time.sleep(0.1)
