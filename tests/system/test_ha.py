"""The database primary lost under load, with `--store postgres --ha`
(DESIGN §6): PostgreSQL as a primary and a synchronous standby under
Patroni with etcd, started and stopped by `renkei net up`. The primary's
postmaster is SIGKILLed while enrolments, data and exchanges flow; Patroni
promotes the standby; the nodes serve again by themselves within 30 s;
requests that met the failover were answered 503 `store_unavailable` (or a
gateway's or J-LIS's 503 for it) and succeed when retried with the same id;
every acknowledged person, value, exchange and record is there exactly once;
`renkei records verify` passes; `renkei net status` shows the new primary.
The same with two core instances over the cluster (`--core-instances 2`):
each instance serves again by itself. This test sets its store itself (no
`_pg` copy)."""
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

from harness import BIN, SLOW, Network, free_port, main, renkei
from pgserver import PG_BIN, _as_postgres

Y, K = "city-yokohama", "pref-kanagawa"
TRANSIENT = {(503, "store_unavailable"), (503, "jlis_unavailable"), (503, "core_unavailable")}


class NetUp:
    """`renkei net up DIR` in the background; a detached watchdog stops it,
    and then the cluster's daemons, if this process dies first."""

    def __init__(self, net_dir):
        self.dir = net_dir
        self.out = open(os.path.join(net_dir, "net-up.log"), "ab")
        self.proc = subprocess.Popen([BIN, "net", "up", net_dir], stdout=self.out, stderr=subprocess.STDOUT)
        pid = self.proc.pid
        pg = os.path.join(net_dir, "pg")
        runuser = "/usr/sbin/runuser -u postgres -- " if os.geteuid() == 0 else ""
        kill_daemons = " ".join(
            f"p=$(cat {pg}/{f} 2>/dev/null) && grep -q {pg} /proc/$p/cmdline 2>/dev/null && kill -KILL $p;"
            for f in ("pg-1/patroni.pid", "pg-2/patroni.pid", "etcd/etcd.pid"))
        stop_pg = " ".join(f"{runuser}/usr/lib/postgresql/15/bin/pg_ctl stop -D {pg}/pg-{i}/data -m immediate;"
                           for i in (1, 2))
        script = (f"kill -TERM {pid}; i=0; while kill -0 {pid} && [ $i -lt 90 ]; do sleep 1; i=$((i+1)); done;"
                  f" {kill_daemons} {stop_pg}")
        p = subprocess.Popen(["/bin/sh", "-c", f"exec 3<&0; setsid sh -c 'trap \"\" INT HUP; cat >/dev/null;"
                              f" {script}' <&3 >/dev/null 2>&1 &"], stdin=subprocess.PIPE)
        p.wait()
        self.watchdog = p.stdin

    def wait_up(self, timeout):
        deadline = time.time() + timeout
        path = os.path.join(self.dir, "net-up.log")
        while time.time() < deadline:
            with open(path, errors="replace") as f:
                text = f.read()
            if "network up" in text:
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"renkei net up exited {self.proc.returncode}: {text[-2000:]}")
            time.sleep(0.2)
        raise AssertionError("renkei net up: not up in time")

    def stop(self):
        rc = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            rc = self.proc.wait(timeout=120)
        self.out.close()
        if self.watchdog:
            self.watchdog.close()  # it finds nothing left to do
            self.watchdog = None
        return rc if rc is not None else self.proc.returncode


class HighAvailability(unittest.TestCase):
    CORE_INSTANCES = None

    @classmethod
    def setUpClass(cls):
        t0 = time.time()
        cls.net = Network(agencies=2, persons=400, store="postgres", ha=True, core_instances=cls.CORE_INSTANCES)
        cls.up = NetUp(cls.net.dir)
        try:
            cls.up.wait_up(180 * SLOW)
        except Exception:
            cls.up.stop()
            raise
        print(f"net init --ha and net up: {time.time() - t0:.1f} s", flush=True)
        with open(cls.net.path("pg", "ha.json")) as f:
            cls.cluster = json.load(f)

    @classmethod
    def tearDownClass(cls):
        rc = cls.up.stop()
        try:
            cls.net.stop()
        finally:
            if rc != 0:
                raise AssertionError(f"renkei net up exited {rc}: {cls.net.log('core')[-500:]}")

    # ---------- the cluster ----------
    def patroni(self, member):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{member['api_port']}/patroni", timeout=2) as r:
                return json.load(r)
        except (OSError, ValueError):
            return {}

    def primary(self):
        for m in self.cluster["members"]:
            if self.patroni(m).get("role") in ("master", "primary"):
                return m
        return None

    def status_lines(self):
        p = renkei("net", "status", self.net.dir, check=False)
        return p.returncode, {line.split()[0]: line.split() for line in p.stdout.splitlines() if line.strip()}

    # ---------- calls ----------
    def enrol(self, agency, person, number):
        return self.net.enrol(agency, person, number)

    def put(self, rid, value):
        return self.net.agency_call(Y, "PUT", "/v1/data/Y0/local_tax",
                                    {"value": value, "as_of": "2026-06-01", "request_id": rid})

    def query(self, qid, person="K0"):
        return self.net.agency_call(K, "POST", "/v1/queries", {
            "query_id": qid, "person": person, "business": "public_assistance", "provider": Y,
            "item": "local_tax", "operator": "op-001"})

    def until_done(self, send, ok, log, deadline):
        """Sends until an answer that settles (ok) or a definite one; each
        transient answer is noted in log and the same request sent again."""
        while True:
            try:
                a = send()
            except OSError as e:
                a = None
                log.append(("io", str(e)))
            if a is not None:
                if ok(a) or (a.status, a.error) not in TRANSIENT:
                    return a
                log.append((a.status, a.error))
            if time.time() > deadline:
                raise AssertionError(f"not done in time; last answers {log[-5:]}")
            time.sleep(0.1)

    def test_the_primary_killed_under_load(self):
        net = self.net
        residents = net.residents()
        code, lines = self.status_lines()
        self.assertEqual(code, 0, lines)
        first = self.primary()
        self.assertIsNotNone(first)
        self.assertEqual(lines[first["name"]][1:], ["store", f"postgresql://127.0.0.1:{first['port']}", "primary",
                                                    "ok"])
        other = next(m for m in self.cluster["members"] if m is not first)
        self.assertEqual(lines[other["name"]][3:], ["standby", "ok"])
        # a person at both agencies with a value at Y, for the exchanges
        for ag, person in ((Y, "Y0"), (K, "K0")):
            self.assertEqual(self.enrol(ag, person, residents[0]["my_number"]).status, 202)
        for ag, person in ((Y, "Y0"), (K, "K0")):
            net.wait_status(ag, person, "linked", timeout=30)
        self.assertEqual(self.put("base", {"income": 1}).status, 200)
        self.assertEqual(self.query("q-base").json.get("status"), "provided")

        done = {"enrol": {}, "put": {}, "query": {}}  # id -> the settling answer
        met = []  # the transient answers met on the way
        lock = threading.Lock()
        stop = threading.Event()
        errors = []
        deadline = time.time() + 120 * SLOW
        pool = iter(range(1, len(residents)))  # a resident per enrolment (resident 0 is Y0/K0's)

        def worker(kind, w):
            i = 0
            try:
                while not stop.is_set():
                    i += 1
                    log = []
                    if kind == "enrol":
                        with lock:
                            n = next(pool, None)
                        if n is None:
                            return
                        rid = f"E{w}-{i}"
                        a = self.until_done(lambda: self.enrol(Y, rid, residents[n]["my_number"]),
                                            lambda a: a.status == 202, log, deadline)
                    elif kind == "put":
                        rid = f"p{w}-{i}"
                        a = self.until_done(lambda: self.put(rid, {"w": w, "i": i}), lambda a: a.status == 200,
                                            log, deadline)
                    else:
                        rid = f"q{w}-{i}"
                        # settled: provided, or the core's provider_unavailable (502) or
                        # provider_timeout (504) when the provider met the failover
                        a = self.until_done(lambda: self.query(rid), lambda a: a.status in (200, 502, 504), log,
                                            deadline)
                    with lock:
                        done[kind][rid] = (a.status, a.error or (a.json or {}).get("status"))
                        met.extend(log)
                    time.sleep(0.02)  # load, not a flood: the machine runs the cluster too
            except Exception as e:  # reported by the main thread
                errors.append(f"{kind} worker {w}: {e}")

        threads = [threading.Thread(target=worker, args=(kind, w)) for kind, w in
                   (("enrol", 0), ("enrol", 1), ("put", 0), ("put", 1), ("query", 0))]
        for t in threads:
            t.start()
        time.sleep(3)
        # SIGKILL the primary's postmaster: its PostgreSQL dies under Patroni
        with open(net.path("pg", first["name"], "data", "postmaster.pid")) as f:
            postmaster = int(f.readline())
        killed_at = time.time()
        os.kill(postmaster, signal.SIGKILL)
        # the first write that goes through again (a new id each time)
        served_at, n = None, 0
        while served_at is None and time.time() - killed_at < 60 * SLOW:
            n += 1
            try:
                if self.put(f"probe-{n}", {"probe": n}).status == 200:
                    served_at = time.time()
            except OSError:
                pass
            time.sleep(0.05)
        self.assertIsNotNone(served_at, "no write went through within 60 s of the kill")
        recovered = served_at - killed_at
        print(f"failover: first 200 {recovered:.2f} s after the SIGKILL", flush=True)
        t_load = time.time()
        time.sleep(3)
        stop.set()
        for t in threads:
            t.join(timeout=150 * SLOW)
        self.assertEqual(errors, [])
        self.assertLess(recovered, 30 * SLOW)
        print(f"load stopped {time.time() - t_load:.1f} s after the first 200", flush=True)
        t_check = time.time()

        # the failover was met, and only as a transient answer retried with the
        # same id; with no synchronous standby yet (the old primary rejoining),
        # commits wait (synchronous_mode_strict): a request may then go
        # unanswered within the client's timeout, and is sent again likewise
        kinds = {a for a in met if a[0] != "io"}
        self.assertTrue(kinds <= TRANSIENT, kinds)
        self.assertIn((503, "store_unavailable"), kinds, f"no request met the failover: {kinds}")
        self.assertTrue(all(v[0] == 202 for v in done["enrol"].values()), done["enrol"])
        self.assertTrue(all(v[0] == 200 for v in done["put"].values()), done["put"])
        self.assertTrue(all(v in ((200, "provided"), (502, "provider_unavailable"), (504, "provider_timeout"))
                            for v in done["query"].values()), done["query"])
        self.assertGreater(len(done["enrol"]), 0)
        self.assertGreater(len(done["put"]), 0)
        self.assertGreater(len(done["query"]), 0)

        # the standby is the primary now; the old one comes back as its standby
        code, lines = self.status_lines()
        self.assertEqual(lines[other["name"]][3], "primary", lines)
        limit = time.time() + 60 * SLOW
        while code != 0 and time.time() < limit:
            time.sleep(0.5)
            code, lines = self.status_lines()
        self.assertEqual(code, 0, lines)
        self.assertEqual(lines[other["name"]][3:], ["primary", "ok"])
        self.assertEqual(lines[first["name"]][3:], ["standby", "ok"])

        # every acknowledged person, value, exchange and record: there, once
        for person in done["enrol"]:
            net.wait_status(Y, person, "linked", timeout=60)
        rows = dict(net.sql(Y, "SELECT person, COUNT(*) FROM persons WHERE person LIKE 'E%' GROUP BY person"))
        self.assertEqual(rows, {p: 1 for p in done["enrol"]})
        puts = set(done["put"]) | {"base"}
        kept = dict(net.sql(Y, "SELECT key, COUNT(*) FROM answers WHERE side = 'data' AND key NOT LIKE 'probe-%'"
                               " GROUP BY key"))
        self.assertEqual(kept, {rid: 1 for rid in puts})
        versions = net.sql(Y, "SELECT COUNT(*) FROM data WHERE person = 'Y0' AND item = 'local_tax'")[0][0]
        probes = net.sql(Y, "SELECT COUNT(*) FROM answers WHERE side = 'data' AND key LIKE 'probe-%'")[0][0]
        self.assertEqual(versions, len(puts) + probes)  # a version per acknowledged id, none twice
        # an exchange's id: the requester's id, a dot, SHA-256(query_id) cut to 128 bits (docs/api.md)
        xids = {f"{K}." + hashlib.sha256(q.encode()).hexdigest()[:32]: v for q, v in done["query"].items()}
        for qid in sorted(done["query"])[:: max(1, len(done["query"]) // 5)]:
            a = self.query(qid)  # the same id again: the kept answer, the same exchange
            self.assertEqual(a.status, done["query"][qid][0], (qid, a))
            self.assertIn(a.json["exchange_id"], xids)

        def records_per_exchange(node):
            return dict(net.sql(node, "SELECT exchange_id, COUNT(*) FROM records WHERE exchange_id LIKE ?"
                                      " GROUP BY exchange_id", (f"{K}.%",)))
        at_core, at_k, at_y = records_per_exchange("core"), records_per_exchange(K), records_per_exchange(Y)
        for xid, (status, outcome) in xids.items():
            self.assertEqual((at_core.get(xid), at_k.get(xid)), (1, 1), (xid, status, outcome))
            self.assertEqual(at_y.get(xid), 1 if outcome == "provided" else at_y.get(xid), xid)
        self.assertTrue(all(n == 1 for n in at_core.values()) and all(n == 1 for n in at_y.values()))
        provided = sum(1 for v in done["query"].values() if v[1] == "provided")
        self.assertGreater(provided, 0, done["query"])
        settled_otherwise = len(done["query"]) - provided
        p = renkei("records", "verify", net.dir, check=False, timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("records are intact", p.stdout)
        print(f"checks: {time.time() - t_check:.1f} s", flush=True)
        self.backup_restores_and_verifies()
        print(f"acknowledged: {len(done['enrol'])} enrolments, {len(done['put'])} values,"
              f" {len(done['query'])} exchanges ({provided} provided, {settled_otherwise} settled as the"
              f" provider's failure); answers met on the way:"
              f" {sorted((str(k), met.count(k)) for k in kinds)},"
              f" unanswered {sum(1 for x in met if x[0] == 'io')}", flush=True)

    def backup_restores_and_verifies(self):
        """docs/runbook.md §5.8: pg_basebackup of the running cluster (from the
        primary, through its socket), restored on a port of its own, and
        `records verify` on a copy of the folder whose stores name it."""
        t0 = time.time()
        primary = self.primary()
        work = tempfile.mkdtemp(prefix="rk-ha-restore-")
        data, copy = os.path.join(work, "pgdata"), os.path.join(work, "net")
        if os.geteuid() == 0:
            shutil.chown(work, "postgres", "postgres")
        started = False
        try:
            subprocess.run(_as_postgres([f"{PG_BIN}/pg_basebackup", "-h", self.net.path("pg", primary["name"], "sock"),
                                         "-p", str(primary["port"]), "-U", "postgres", "-D", data, "-X", "stream",
                                         "-c", "fast"]),
                           check=True, capture_output=True, timeout=120 * SLOW)
            port = free_port()
            subprocess.run(_as_postgres([f"{PG_BIN}/pg_ctl", "start", "-D", data, "-w", "-l",
                                         os.path.join(work, "restore.log"), "-o",
                                         f"-p {port} -k {work} -c listen_addresses=127.0.0.1"
                                         f" -c hba_file={data}/pg_hba.conf -c ident_file={data}/pg_ident.conf"
                                         " -c synchronous_standby_names= -c cluster_name=restored"]),
                           check=True, capture_output=True, timeout=120 * SLOW)
            started = True
            shutil.copytree(self.net.dir, copy, ignore=lambda d, names: ["pg"] if d == self.net.dir else [])
            for n in self.net.server_nodes():
                conf = os.path.join(copy, "nodes", n["id"], "node.conf")
                with open(conf) as f:
                    text = f.read()
                text, count = re.subn(r"(store = postgresql://[^@]*@)127\.0\.0\.1:\d+,127\.0\.0\.1:\d+/([^?\n]*)"
                                      r"\?target_session_attrs=read-write", rf"\g<1>127.0.0.1:{port}/\g<2>", text)
                self.assertEqual(count, 1, conf)
                with open(conf, "w") as f:
                    f.write(text)
            p = renkei("records", "verify", copy, check=False, timeout=300)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn("records are intact", p.stdout)
            print(f"backup, restore and records verify: {time.time() - t0:.1f} s", flush=True)
        finally:
            if started:
                subprocess.run(_as_postgres([f"{PG_BIN}/pg_ctl", "stop", "-D", data, "-m", "immediate", "-w"]),
                               capture_output=True)
            shutil.rmtree(work, ignore_errors=True)

    def test_ha_needs_postgres(self):
        d = tempfile.mkdtemp(prefix="renkei-ha-")
        try:
            p = renkei("net", "init", d, "--ha", check=False)
            self.assertEqual(p.returncode, 2)
            self.assertEqual(p.stderr.strip().splitlines(), ["renkei net: --ha needs --store postgres (see --help)"])
            self.assertFalse(os.path.exists(os.path.join(d, "network.json")))
        finally:
            shutil.rmtree(d, ignore_errors=True)


class HighAvailabilityWithCoreInstances(HighAvailability):
    """--ha with --core-instances 2: the primary killed under load while both
    instances serve; each serves again by itself; nothing acknowledged lost."""
    CORE_INSTANCES = 2
    test_the_primary_killed_under_load = None  # the class above's; this class has its own

    def code(self, core, no):
        """A code request (J-LIS's call) straight to one core instance."""
        r = self.net.residents()[1]
        return self.net.call(core, "POST", "/v1/codes", {
            "agency": K, "acquisition_no": no, "resident_code": r["resident_code"],
            "previous_resident_codes": [], "check_code": 1}, as_client=("node", "jlis"))

    def test_the_primary_killed_under_load_with_two_core_instances(self):
        net = self.net
        residents = net.residents()
        cores = ("core-1", "core-2")
        for ag, person in ((Y, "Y0"), (K, "K0")):
            self.assertEqual(self.enrol(ag, person, residents[0]["my_number"]).status, 202)
        for ag, person in ((Y, "Y0"), (K, "K0")):
            net.wait_status(ag, person, "linked", timeout=30)
        self.assertEqual(self.put("base", {"income": 1}).status, 200)
        for core in cores:
            self.assertEqual(self.code(core, f"{'ab' * 8}{cores.index(core):02x}").status, 202)

        done = {"enrol": {}, "code": {}, "query": {}}
        met, errors, seen = [], [], []
        lock, stop = threading.Lock(), threading.Event()
        deadline = time.time() + 120 * SLOW
        pool = iter(range(2, len(residents)))

        def worker(kind, w):
            i = 0
            try:
                while not stop.is_set():
                    i += 1
                    log = []
                    if kind == "enrol":
                        with lock:
                            n = next(pool, None)
                        if n is None:
                            return
                        rid = f"E{w}-{i}"
                        a = self.until_done(lambda: self.enrol(Y, rid, residents[n]["my_number"]),
                                            lambda a: a.status == 202, log, deadline)
                    elif kind == "code":  # w: the instance
                        rid = f"{'c' + str(w + 1)}{i:014x}"
                        a = self.until_done(lambda: self.code(cores[w], rid), lambda a: a.status == 202, log,
                                            deadline)
                    else:
                        rid = f"q{w}-{i}"
                        a = self.until_done(lambda: self.query(rid), lambda a: a.status in (200, 502, 504), log,
                                            deadline)
                    with lock:
                        done[kind][rid] = (a.status, a.error or (a.json or {}).get("status"))
                        met.extend(log)
                        seen.extend((kind, x[0], x[1][:40]) for x in log)
                    time.sleep(0.02)
            except Exception as e:
                errors.append(f"{kind} worker {w}: {e}")

        threads = [threading.Thread(target=worker, args=(kind, w)) for kind, w in
                   (("enrol", 0), ("enrol", 1), ("code", 0), ("code", 1), ("query", 0))]
        for t in threads:
            t.start()
        time.sleep(3)
        first = self.primary()
        self.assertIsNotNone(first)
        with open(net.path("pg", first["name"], "data", "postmaster.pid")) as f:
            postmaster = int(f.readline())
        killed_at = time.time()
        os.kill(postmaster, signal.SIGKILL)
        # each instance, by itself, takes a write again (a new id each time)
        for w, core in enumerate(cores):
            served, n = False, 0
            while not served and time.time() - killed_at < 60 * SLOW:
                n += 1
                try:
                    served = self.code(core, f"{'e' + str(w + 1)}{n:014x}").status == 202
                except OSError:
                    pass
                time.sleep(0.05)
            self.assertTrue(served, f"{core}: no write went through within 60 s of the kill")
            print(f"failover: {core} took a write {time.time() - killed_at:.2f} s after the SIGKILL", flush=True)
        time.sleep(3)
        stop.set()
        for t in threads:
            t.join(timeout=150 * SLOW)
        self.assertEqual(errors, [])
        # with no synchronous standby yet (the old primary rejoining), commits
        # wait (synchronous_mode_strict): a request may then go unanswered within
        # the client's 10 s, and is sent again with the same id
        unanswered = sum(1 for x in met if x[0] == "io")
        kinds = {x for x in met if x[0] != "io"}
        self.assertTrue(kinds <= TRANSIENT, sorted(set(seen), key=str))
        self.assertIn((503, "store_unavailable"), kinds, f"no request met the failover: {kinds}")
        self.assertTrue(all(v[0] == 202 for v in done["enrol"].values()), done["enrol"])
        self.assertTrue(all(v[0] == 202 for v in done["code"].values()), done["code"])
        self.assertTrue(all(v in ((200, "provided"), (502, "provider_unavailable"), (504, "provider_timeout"))
                            for v in done["query"].values()), done["query"])
        for kind in done:
            self.assertGreater(len(done[kind]), 0, kind)
        for w in (0, 1):  # each instance took code requests before and after the failover
            self.assertGreater(sum(1 for rid in done["code"] if rid.startswith(f"c{w + 1}")), 0)

        # every acknowledged person, code request and exchange: there, once
        for person in done["enrol"]:
            net.wait_status(Y, person, "linked", timeout=60)
        rows = dict(net.sql(Y, "SELECT person, COUNT(*) FROM persons WHERE person LIKE 'E%' GROUP BY person"))
        self.assertEqual(rows, {p: 1 for p in done["enrol"]})
        # these code requests' numbers: 16 digits (an agency's own are 32), c1… and c2…
        acquired = dict(net.sql("core-1", "SELECT acquisition_no, COUNT(*) FROM acquisitions WHERE agency = ?"
                                          " AND LENGTH(acquisition_no) = 16 AND (acquisition_no LIKE 'c1%' OR"
                                          " acquisition_no LIKE 'c2%') GROUP BY acquisition_no", (K,)))
        self.assertEqual(set(acquired) - set(done["code"]), set(), "recorded, not acknowledged")
        self.assertEqual(set(done["code"]) - set(acquired), set(), "acknowledged, not recorded")
        self.assertEqual(acquired, {rid: 1 for rid in done["code"]})
        xids = {f"{K}." + hashlib.sha256(q.encode()).hexdigest()[:32]: v for q, v in done["query"].items()}
        at_core = dict(net.sql("core-2", "SELECT exchange_id, COUNT(*) FROM records WHERE side = 'core'"
                                         " AND exchange_id LIKE ? GROUP BY exchange_id", (f"{K}.%",)))
        for xid in xids:
            self.assertEqual(at_core.get(xid), 1, (xid, xids[xid]))
        p = renkei("records", "verify", net.dir, check=False, timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("records are intact", p.stdout)
        print(f"acknowledged: {len(done['enrol'])} enrolments, {len(done['code'])} code requests,"
              f" {len(done['query'])} exchanges; answers met on the way:"
              f" {sorted((str(k), met.count(k)) for k in kinds)}, unanswered {unanswered}", flush=True)


if __name__ == "__main__":
    main()
