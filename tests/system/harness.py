"""harness.py — drives real renkei nodes for the system tests.

A Network is made by `renkei net init` in a temporary folder; each node is
started as its own process (`renkei <role> --config …`) so that a test can
stop, kill and restart one node. Calls go over real mutual TLS with the
credentials `net init` wrote. On stop, every node must exit 0 and no node
log may hold a sanitizer report: a test that leaves one fails.

RENKEI_TEST_STORE=postgres runs the same tests on PostgreSQL: the network is
written with `--store postgres` (one server under DIR/pg, a database per
node), started before the nodes and stopped after (pgserver.py); sql() reads
a node's database on either engine.
"""
import csv
import http.client
import json
import os
import shutil
import signal
import random
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

BIN = os.environ.get("RENKEI_BIN") or os.path.join(os.path.dirname(__file__), "../../build/renkei")
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer")
SLOW = 4 if os.environ.get("RENKEI_SANITIZED") else 1
STORE = os.environ.get("RENKEI_TEST_STORE") or "sqlite"  # or "postgres"
if STORE not in ("sqlite", "postgres"):
    raise SystemExit(f"RENKEI_TEST_STORE must be sqlite or postgres, not {STORE!r}")


def renkei(*args, check=True, timeout=120, input_text=None):
    """Runs the renkei command; returns CompletedProcess with text output."""
    p = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, timeout=timeout, input=input_text)
    if check and p.returncode != 0:
        raise AssertionError(f"renkei {' '.join(map(str, args))} exited {p.returncode}: {p.stderr.strip()}")
    return p


def free_port():
    """A port that can be bound now, below the kernel's ephemeral range (as
    `renkei net init` picks them), so that no outgoing connection takes it."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        port = random.randrange(20000, max(low, 21000))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


class Answer:
    def __init__(self, status, body, headers):
        self.status = status
        self.raw = body
        self.headers = headers
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    @property
    def error(self):
        return (self.json or {}).get("error", {}).get("code") if isinstance(self.json, dict) else None

    def __repr__(self):
        return f"<{self.status} {self.raw[:300]!r}>"


class Network:
    def __init__(self, agencies=3, persons=30, conf_extra=None, store=None, ha=False, core_instances=None,
                 hsm=None):
        self.dir = tempfile.mkdtemp(prefix="renkei-test-")
        self.store = store or STORE  # a test of one engine's own behaviour names it
        self.pg = None  # the PostgreSQL server of the network, while it runs
        self.ha = ha  # under Patroni: started by `renkei net up` or the test, not here
        # RENKEI_TEST_HSM=1: every network's server keys in a token; the tests
        # that act as a node with its key file (ssl_context(("node", id))) then fail
        if hsm is None:
            hsm = os.environ.get("RENKEI_TEST_HSM") == "1"
        self.hsm = hsm
        more = (["--ha"] if ha else []) + (["--core-instances", core_instances] if core_instances else [])
        renkei("net", "init", self.dir, "--agencies", agencies, "--persons", persons, "--store", self.store, *more,
               *(["--hsm"] if hsm else []))
        if hsm:  # every server node's key and the CA key in the network's SoftHSM2 token
            os.environ["SOFTHSM2_CONF"] = os.path.join(self.dir, "hsm", "softhsm2.conf")
        with open(os.path.join(self.dir, "network.json")) as f:
            self.registry = json.load(f)
        self.nodes = {n["id"]: n for n in self.registry["nodes"]}
        self.procs = {}
        self.failures = []
        for node_id, extra in (conf_extra or {}).items():
            self.append_conf(node_id, extra)

    # ---------- layout ----------
    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def append_conf(self, node_id, text):
        with open(self.path("nodes", node_id, "node.conf"), "a") as f:
            f.write("\n" + text + "\n")

    def server_nodes(self):
        order = {"witness": 0, "ppc": 0, "core": 1, "jlis": 2, "gateway": 3, "agency": 4, "portal": 5}
        return sorted((n for n in self.registry["nodes"] if n["role"] in order), key=lambda n: order[n["role"]])

    def agencies(self):
        return [n for n in self.registry["nodes"] if n["role"] == "agency"]

    def residents(self):
        with open(self.path("residents.csv")) as f:
            return list(csv.DictReader(f))

    # ---------- processes ----------
    def start_node(self, node_id, wait=True):
        if self.store == "postgres" and not self.pg and not self.ha:  # the nodes' database server first
            from pgserver import PgServer
            self.pg = PgServer(existing=self.path("pg"))
        node = self.nodes[node_id]
        log = open(self.path("nodes", node_id, "node.log"), "ab")
        p = subprocess.Popen([BIN, node["role"], "--config", self.path("nodes", node_id, "node.conf")],
                             stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs[node_id] = p
        if wait:
            self.wait_healthy(node_id)
        return p

    def start(self):
        for attempt in range(3):
            for n in self.server_nodes():
                self.start_node(n["id"], wait=False)
            try:
                for n in self.server_nodes():
                    self.wait_healthy(n["id"])
                return self
            except AssertionError as e:
                # Another test's node may have taken a port between `net init`
                # and now: new ports for every node, and once more.
                if "cannot listen" not in str(e) or attempt == 2:
                    raise
                for node_id, p in list(self.procs.items()):
                    if p.poll() is None:
                        self.stop_node(node_id)
                self.procs.clear()
                self.move_ports()
        return self

    def move_ports(self):
        """Gives every listening URL of network.json a new free port."""
        for n in self.registry["nodes"]:
            for key in ("url", "backup_url", "person_url"):
                if n.get(key):
                    host = n[key].rsplit(":", 1)[0]
                    n[key] = f"{host}:{free_port()}"
        with open(self.path("network.json"), "w") as f:
            json.dump(self.registry, f, indent=2)
        self.nodes = {n["id"]: n for n in self.registry["nodes"]}
        self.publish()

    def publish(self):
        """Signs network.json as it is into the registry the core serves
        (DESIGN §3); the nodes' last good registries, kept from a run with
        the earlier ports, are dropped (every node is stopped when it runs)."""
        if os.path.exists(self.path("pki", "registry-key.pem")):
            renkei("registry", "publish", self.dir)
        for n in self.registry["nodes"]:
            kept = self.path("nodes", n["id"], "registry-last-good.json")
            if os.path.exists(kept) and n["id"] not in self.procs:
                os.unlink(kept)

    def reload_registry(self):
        """Reads network.json again (after `renkei agency add|remove`)."""
        with open(self.path("network.json")) as f:
            self.registry = json.load(f)
        self.nodes = {n["id"]: n for n in self.registry["nodes"]}

    def wait_healthy(self, node_id, timeout=30):
        deadline = time.time() + timeout * SLOW
        last = None
        while time.time() < deadline:
            p = self.procs.get(node_id)
            if p and p.poll() is not None:
                raise AssertionError(f"{node_id} exited {p.returncode}: {self.log(node_id)[-2000:]}")
            for backup in ((False, True) if self.nodes[node_id].get("backup_url") else (False,)):
                try:
                    a = self.call(node_id, "GET", "/healthz", as_client="operator", timeout=2, backup=backup)
                    if a.status == 200:
                        return
                    last = a
                except (OSError, ssl.SSLError, http.client.HTTPException) as e:
                    last = e
            time.sleep(0.05)
        # a node that runs but does not answer: where its threads are, and what it said
        p = self.procs.get(node_id)
        stacks = thread_stacks(p.pid) if p and p.poll() is None else ""
        raise AssertionError(f"{node_id} not healthy in time: {last}\nits log:\n{self.log(node_id)[-3000:]}"
                             f"\nits threads:\n{stacks[-12000:]}")

    def stop_node(self, node_id, sig=signal.SIGTERM):
        p = self.procs.pop(node_id)
        p.send_signal(sig)
        try:
            rc = p.wait(timeout=60 * SLOW)
        except subprocess.TimeoutExpired:
            # a node that does not stop: its threads' stacks, for whoever reads the failure
            stacks = thread_stacks(p.pid)
            p.kill()
            p.wait()
            raise AssertionError(f"{node_id} did not stop within {60 * SLOW} s of SIGTERM; its threads:\n"
                                 f"{stacks[-8000:]}")
        if sig == signal.SIGTERM and rc != 0:
            self.failures.append(f"{node_id} exited {rc}")
        return rc

    def kill_node(self, node_id):
        return self.stop_node(node_id, signal.SIGKILL)

    def log(self, node_id):
        try:
            with open(self.path("nodes", node_id, "node.log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self, remove=True):
        for node_id in list(self.procs):
            self.stop_node(node_id)
        for n in self.server_nodes():
            text = self.log(n["id"])
            for mark in SANITIZER_MARKS:
                if mark in text:
                    self.failures.append(f"{n['id']}: sanitizer report:\n{text[text.index(mark) - 200:][:3000]}")
        if self.pg:
            self.pg.close()
            self.pg = None
        if self.failures:
            raise AssertionError("; ".join(self.failures))
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)

    # ---------- calls ----------
    def credentials(self, who):
        """who: an agency id (its business system), 'operator', or ('node', id)."""
        if isinstance(who, tuple):
            d = self.path("nodes", who[1])
        else:
            d = self.path("clients", who)
        return os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")

    def ssl_context(self, who, cert=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_verify_locations(self.path("pki", "ca.pem"))
        ctx.check_hostname = False  # certificates name 127.0.0.1 as an IP SAN; the CA is ours alone
        if cert:
            ctx.load_cert_chain(*cert)
        elif who is not None:
            ctx.load_cert_chain(*self.credentials(who))
        return ctx

    def url_of(self, node_id, backup=False):
        n = self.nodes[node_id]
        url = n["backup_url"] if backup else n["url"]
        hostport = url.split("://", 1)[1].rstrip("/")
        host, port = hostport.rsplit(":", 1)
        return host, int(port)

    def call(self, node_id, method, path, body=None, as_client=None, raw=None, timeout=10, cert=None, headers=None,
             backup=False):
        host, port = self.url_of(node_id, backup)
        conn = http.client.HTTPSConnection(host, port, context=self.ssl_context(as_client, cert), timeout=timeout * SLOW)
        try:
            data = raw if raw is not None else (json.dumps(body) if body is not None else None)
            h = {"Content-Type": "application/json"}
            if isinstance(as_client, tuple):  # acting as a node: state when the request was made (第6-8)
                h["X-Renkei-Created"] = str(int(time.time() * 1000))
            h.update(headers or {})
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            return Answer(r.status, r.read().decode("utf-8", "replace"), dict(r.getheaders()))
        finally:
            conn.close()

    # ---------- persons and their cards (DESIGN §2.5) ----------
    def issue_card(self, resident, folder=None):
        """`renkei card issue` for resident number `resident` (1-based): (serial, folder)."""
        folder = folder or self.path("cards", f"resident-{resident}-{random.randrange(1 << 30)}")
        serial = renkei("card", "issue", self.dir, "--resident", resident, "--out", folder).stdout.strip()
        return serial, folder

    def person_call(self, card, method, path, timeout=10, cert=None):
        """A person's browser at the portal's person listener, signed in with
        the card in folder `card` (or with cert=(cert, key), or none when
        both are None)."""
        portal = next(n for n in self.registry["nodes"] if n["role"] == "portal")
        hostport = portal["person_url"].split("://", 1)[1].rstrip("/")
        host, port = hostport.rsplit(":", 1)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_verify_locations(self.path("pki", "ca.pem"))  # the portal's own certificate is a node's
        ctx.check_hostname = False
        if cert:
            ctx.load_cert_chain(*cert)
        elif card:
            ctx.load_cert_chain(os.path.join(card, "cert.pem"), os.path.join(card, "key.pem"))
        conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=timeout * SLOW)
        try:
            conn.request(method, path)
            r = conn.getresponse()
            return Answer(r.status, r.read().decode("utf-8", "replace"), dict(r.getheaders()))
        finally:
            conn.close()

    def agency_call(self, agency, method, path, body=None, **kw):
        """A business system of `agency` calling its own agency node."""
        return self.call(agency, method, path, body, as_client=kw.pop("as_client", agency), **kw)

    def basic_items(self, my_number):
        """The four basic items residents.csv holds for a My Number (sex left
        out where not held), as a business system sends them; made-up ones
        for a number no resident has."""
        cache = getattr(self, "_items", {})
        if my_number not in cache:  # read again: the file may have changed
            cache = self._items = {r["my_number"]: {k: r[k] for k in ("name", "birth_date", "sex", "address") if r[k]}
                                   for r in self.residents()}
        return dict(cache.get(my_number) or
                    {"name": "架空 太郎", "birth_date": "1980-01-01", "address": "東京都千代田区霞が関1-1-1"})

    def person_body(self, person, my_number, **items):
        """A POST /v1/persons body: the resident's items, with `items` put over them."""
        body = {"person": person, "my_number": my_number, **self.basic_items(my_number), **items}
        return {k: v for k, v in body.items() if v is not None}

    def enrol(self, agency, person, my_number, **items):
        return self.agency_call(agency, "POST", "/v1/persons", self.person_body(person, my_number, **items))

    def link(self, pairs, resident=0):
        """Enrols one resident (its index in residents.csv) at each agency of
        pairs ((agency, person), …) and waits until every link is made."""
        number = self.residents()[resident]["my_number"]
        for agency, person in pairs:
            a = self.enrol(agency, person, number)
            assert a.status == 202, a
        for agency, person in pairs:
            self.wait_status(agency, person, "linked")

    def wait_status(self, agency, person, want, timeout=20):
        deadline = time.time() + timeout * SLOW
        a = None
        while time.time() < deadline:
            a = self.agency_call(agency, "GET", f"/v1/persons/{person}")
            if a.status == 200 and a.json["status"] == want:
                return a
            time.sleep(0.05)
        raise AssertionError(f"{agency}/{person} did not become {want}: {a}")

    def sql(self, node_id, sql, args=()):
        """The rows of a query on a node's database, on either engine (`?`
        parameters; on PostgreSQL integers come back as int, NULL as None)."""
        if self.store == "sqlite":
            import sqlite3
            db = sqlite3.connect(self.path("nodes", node_id, "node.db"), timeout=10)
            try:
                return db.execute(sql, args).fetchall()
            finally:
                db.close()
        parts = sql.split("?")
        if len(parts) != len(args) + 1:
            raise ValueError(f"{len(args)} arguments for {len(parts) - 1} parameters")

        def literal(v):
            return "NULL" if v is None else str(v) if isinstance(v, int) else "'" + str(v).replace("'", "''") + "'"
        text = parts[0] + "".join(literal(a) + p for a, p in zip(args, parts[1:]))
        # the columns' types first (\gdesc), so that numbers come back as int and text as str
        p = subprocess.run(["/usr/lib/postgresql/15/bin/psql", "-X", "-q", "--csv", "-t", "-P", "null=\\N",
                            "-v", "ON_ERROR_STOP=1", self.store_uri(node_id)],
                           input=f"{text} \\gdesc\n\\echo @@rows@@\n{text};\n",
                           capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise AssertionError(f"psql on {node_id}: {p.stderr.strip()}")
        lines = p.stdout.splitlines()
        at = lines.index("@@rows@@")
        ints = [t in ("bigint", "integer", "smallint", "numeric") for _, t in csv.reader(lines[:at])]

        def value(v, is_int):
            return None if v == "\\N" else int(v) if is_int else v
        return [tuple(value(v, i) for v, i in zip(row, ints)) for row in csv.reader(lines[at + 1:])]

    sqlite = sql  # the name the tests were written with

    def store_holds(self, node_id, text):
        """Whether a node's store holds these bytes: anywhere in SQLite's
        files (free pages and WAL included); on PostgreSQL in any version,
        live or dead, of any row of its database (pageinspect reads the pages
        as they are; the free space of a page is not searched)."""
        if self.store == "sqlite":
            data = b""
            for suffix in ("", "-wal"):
                try:
                    with open(self.path("nodes", node_id, "node.db" + suffix), "rb") as f:
                        data += f.read()
                except FileNotFoundError:
                    pass
            return text.encode() in data
        literal = "'" + text.replace("'", "''") + "'"
        self.pg.psql("CREATE EXTENSION IF NOT EXISTS pageinspect", db=node_id)
        return int(self.pg.psql(
            "SELECT count(*) FROM pg_class c, generate_series(0, pg_relation_size(c.oid) / 8192 - 1) AS b,"
            " heap_page_items(get_raw_page(c.oid::regclass::text, b)) AS i"
            " WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace"
            f" AND position(convert_to({literal}, 'UTF8') IN coalesce(i.t_data, '')) > 0", db=node_id)) > 0

    def copy_to(self, dst):
        """A copy of the stopped network in dst (a folder) that runs apart
        from it: on PostgreSQL its server's data (owner kept) on a port of
        its own, and its nodes' store URIs with it."""
        if self.store == "sqlite":
            shutil.copytree(self.dir, dst, dirs_exist_ok=True)
            return
        subprocess.run(["cp", "-a", self.dir + "/.", dst], check=True)  # -a: the postgres user's files stay its
        port = free_port()
        with open(os.path.join(dst, "pg", "data", "postgresql.conf"), "a") as f:
            f.write(f"\nport = {port}\nunix_socket_directories = '{os.path.join(dst, 'pg', 'sock')}'\n")
        for n in self.server_nodes():
            conf = os.path.join(dst, "nodes", n["id"], "node.conf")
            with open(conf) as f:
                text = f.read()
            with open(conf, "w") as f:
                # the nodes reach their server through its socket (?host=DIR/pg/sock&port=N)
                sock = os.path.join(dst, "pg", "sock")
                f.write(re.sub(r"(store = postgresql://[^@]*@/[^?\n]*)\?host=[^&\n]*&port=\d+",
                               lambda m: f"{m.group(1)}?host={sock}&port={port}", text))

    @staticmethod
    def tamper(net_dir, node_id, sql):
        """Runs sql on a node's store of the stopped network in net_dir, behind
        the nodes' back (as an attacker with the files would)."""
        if STORE == "sqlite":
            subprocess.run(["sqlite3", os.path.join(net_dir, "nodes", node_id, "node.db"), sql], check=True)
            return
        from pgserver import PgServer
        pg = PgServer(existing=os.path.join(net_dir, "pg"))
        try:
            pg.psql(sql, db=node_id)
        finally:
            pg.close()

    def set_store_read_only(self, node_id, read_only):
        """Makes a node's store refuse writes, or take them again: SQLite's
        file made read-only; on PostgreSQL the server's transactions (every
        node's: they share it), through a reload that open sessions follow."""
        if self.store == "sqlite":
            os.chmod(self.path("nodes", node_id, "node.db"), 0o444 if read_only else 0o600)
            return
        self.pg.psql("ALTER SYSTEM SET default_transaction_read_only = on" if read_only
                     else "ALTER SYSTEM RESET default_transaction_read_only")
        self.pg.psql("SELECT pg_reload_conf()")
        time.sleep(0.5)  # the postmaster signals the sessions after pg_reload_conf returns

    def store_uri(self, node_id):
        with open(self.path("nodes", node_id, "node.conf")) as f:
            return [line.split("=", 1)[1].strip() for line in f if line.startswith("store = ")][-1]


class TcpLine:
    """A TCP relay standing for a network line between two nodes; stop() cuts it."""

    def __init__(self, listen_port, target_port):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", listen_port))
        self.sock.listen(64)
        self.target = target_port
        self.conns = []
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while self.running:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            if not self.running:
                c.close()
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                c.close()
                continue
            self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self):
        self.running = False
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() in the other thread
        except OSError:
            pass
        self.sock.close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass


def thread_stacks(pid):
    """The stacks of a running process's threads (gdb), or "" without gdb."""
    if not shutil.which("gdb"):
        return ""
    try:
        return subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "thread apply all bt"],
                              capture_output=True, text=True, timeout=60).stdout
    except subprocess.TimeoutExpired:
        return "(gdb did not answer within 60 s)"


class NetworkTest(unittest.TestCase):
    """Base class: one running network per test class."""
    AGENCIES = 3
    PERSONS = 30
    CONF_EXTRA = None

    @classmethod
    def setUpClass(cls):
        cls.net = Network(cls.AGENCIES, cls.PERSONS, cls.CONF_EXTRA)
        try:
            cls.net.start()
        except Exception:
            for p in cls.net.procs.values():
                p.kill()
            if cls.net.pg:
                cls.net.pg.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.net.stop()


def main():
    unittest.main(verbosity=2)
