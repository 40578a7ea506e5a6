"""The records log as outside tooling reads it (DESIGN §4.1; C2SP
tlog-checkpoint, tlog-tiles, signed-note): an outside verifier written with
the Go checksum database's packages (golang.org/x/mod/sumdb/note and
sumdb/tlog, which know nothing of renkei) verifies each log's checkpoint
with the log_vkey of network.json, reads tiles through tlog.TileHashReader
(which checks every tile against the checkpoint), proves inclusion and
consistency and compares with the node's own proof endpoints. Also: the
tile and checkpoint endpoints and their refusals, `records verify --url`,
a core SIGKILLed while its tiles fill, and tampered tiles and records found
by `records verify`."""
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
import unittest

from harness import SLOW, Network, main, renkei

Y, K, N = "city-yokohama", "pref-kanagawa", "nenkin-kikou"
HERE = os.path.dirname(os.path.abspath(__file__))


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def mth(leaves):
    """RFC 9162 MTH, written afresh."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k < len(leaves) - k:
        k <<= 1
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


RECORD_KEYS = ("exchange_id", "side", "requester", "provider", "business", "item", "operator", "subject",
               "requested_ms", "provided_ms", "outcome", "reason", "payload_sha256")


def record_leaf(fields: dict) -> bytes:
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return leaf_hash(text.encode())


def row_leaf(row) -> bytes:
    """The leaf of a stored record, from its fields (RECORD_KEYS, then its
    condition, a key of its own only when set), computed here afresh."""
    fields = dict(zip(RECORD_KEYS, row[:len(RECORD_KEYS)]))
    if row[len(RECORD_KEYS)]:
        fields["condition"] = row[len(RECORD_KEYS)]
    if len(row) > len(RECORD_KEYS) + 1 and row[len(RECORD_KEYS) + 1]:
        fields["catalog_version"] = row[len(RECORD_KEYS) + 1]  # the core's, only when set
    return record_leaf(fields)


LEAF_COLUMNS = ", ".join(RECORD_KEYS) + ", condition, catalog_version"


def synthetic(i: int) -> dict:
    return {"exchange_id": f"{Y}.syn-{i}", "side": "core", "requester": Y, "provider": K,
            "business": "public_assistance", "item": "local_tax", "operator": "op", "subject": str(i % 97),
            "requested_ms": 1700000000000 + i, "provided_ms": None, "outcome": "provided", "reason": "",
            "payload_sha256": "00" * 32}


def append_synthetic(db_path: str, first: int, count: int):
    """Appends records as the records module does (seq = max + 1), from
    another process: the node's signer computes each leaf from the fields
    (the canonical JSON) and tiles them; the test's own leaves must agree."""
    db = sqlite3.connect(db_path, timeout=30)
    try:
        with db:
            for i in range(first, first + count):
                r = synthetic(i)
                db.execute("INSERT INTO records(seq, exchange_id, side, requester, provider, business, item,"
                           " operator, subject, requested_ms, provided_ms, outcome, reason, payload_sha256)"
                           " VALUES ((SELECT COALESCE(MAX(seq), 0) + 1 FROM records),?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           tuple(r[k] for k in RECORD_KEYS))
    finally:
        db.close()


def go_env():
    env = dict(os.environ, GOPATH="/usr/share/gocode", GO111MODULE="off", GOFLAGS="")
    env.setdefault("GOCACHE", os.path.join(tempfile.gettempdir(), "renkei-gocache"))
    return env


class OutsideVerifier(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tool_dir = tempfile.mkdtemp(prefix="renkei-tlogcheck-")
        cls.tlogcheck = os.path.join(cls.tool_dir, "tlogcheck")
        subprocess.run(["go", "build", "-o", cls.tlogcheck, os.path.join(HERE, "tlogcheck", "main.go")],
                       check=True, env=go_env(), cwd=os.path.join(HERE, "tlogcheck"))
        net = cls.net = Network(agencies=3, persons=10)
        for n in ("core", Y, K, N):
            net.append_conf(n, "[records]\nhead_interval_ms = 100")
        net.start()
        # real records first: three enrolments and two exchanges
        net.link(((Y, "Y1"), (K, "K1")))
        net.agency_call(Y, "PUT", "/v1/data/Y1/local_tax", {"value": {"tax": 1}, "as_of": "2026-01-01"})
        for i in range(2):
            a = net.agency_call(K, "POST", "/v1/queries", {"query_id": f"tl-{i}", "person": "K1",
                                                          "business": "public_assistance", "provider": Y,
                                                          "item": "local_tax", "operator": "op"})
            assert a.status == 200, a
        # then enough for full tiles, appended while the core runs
        append_synthetic(net.path("nodes", "core", "node.db"), 0, 700)
        cls.total = cls.wait_size("core", 702)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tool_dir, ignore_errors=True)
        cls.net.stop()

    @classmethod
    def checkpoint(cls, node, who="operator"):
        a = cls.net.call(node, "GET", "/v1/checkpoint", as_client=who)
        assert a.status == 200, a
        lines = a.raw.split("\n")
        return a, int(lines[1])

    @classmethod
    def wait_size(cls, node, at_least, who="operator"):
        deadline = time.time() + 20 * SLOW
        while True:
            _, size = cls.checkpoint(node, who)
            if size >= at_least or time.time() > deadline:
                return size
            time.sleep(0.05)

    def node_entry(self, node):
        return self.net.nodes[node]

    def run_tlogcheck(self, node, who, *extra):
        cert, key = self.net.credentials(who)
        n = self.node_entry(node)
        p = subprocess.run([self.tlogcheck, "-url", n["url"], "-vkey", n["log_vkey"], "-cert", cert, "-key", key,
                            "-ca", self.net.path("pki", "ca.pem"), *extra], capture_output=True, text=True,
                           timeout=120 * SLOW)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)

    def raw_get(self, node, path, who="operator"):
        """GET with the body as bytes (tiles are binary)."""
        import http.client
        host, port = self.net.url_of(node)
        conn = http.client.HTTPSConnection(host, port, context=self.net.ssl_context(who), timeout=10 * SLOW)
        try:
            h = {}
            if isinstance(who, tuple):
                h["X-Renkei-Created"] = str(int(time.time() * 1000))
            conn.request("GET", path, headers=h)
            r = conn.getresponse()
            return r.status, r.read(), dict(r.getheaders())
        finally:
            conn.close()

    def test_1_go_verifies_the_core_log_and_its_proofs(self):
        old = os.path.join(self.tool_dir, "old-checkpoint")
        first = self.run_tlogcheck("core", "operator", "-n", "30", "-save", old)
        self.assertGreaterEqual(first["tree_size"], 702)
        self.assertEqual(first["inclusion_checked"], 30)
        # the log grows; the new checkpoint is consistent with the saved one
        append_synthetic(self.net.path("nodes", "core", "node.db"), 700, 300)
        self.wait_size("core", first["tree_size"] + 300)
        second = self.run_tlogcheck("core", "operator", "-n", "30", "-old", old)
        self.assertEqual(second["consistency_checked"], 1)
        self.assertGreater(second["tree_size"], first["tree_size"])

    def test_2_go_verifies_an_agency_log(self):
        # the agency's proof endpoints answer its own business system
        self.wait_size(Y, 1, who=Y)
        r = self.run_tlogcheck(Y, Y, "-n", "5")
        self.assertGreaterEqual(r["tree_size"], 1)

    def test_3_checkpoint_and_tiles_over_http(self):
        a, size = self.checkpoint("core")
        self.assertTrue(a.headers["Content-Type"].startswith("text/plain"))
        self.assertEqual(a.headers.get("Cache-Control"), "no-cache")
        self.assertEqual(a.raw.split("\n")[0], self.node_entry("core")["log_origin"])
        self.assertIn("\n\n\u2014 " + self.node_entry("core")["log_origin"] + " ", a.raw)
        # any registered caller reads tiles: here a gateway, as a node
        st, body, h = self.raw_get("core", "/v1/tile/0/000", who=("node", f"{Y}-gateway"))
        self.assertEqual((st, len(body)), (200, 8192), body[:200])
        self.assertEqual(h["Content-Type"], "application/octet-stream")
        self.assertIn("immutable", h["Cache-Control"])
        # the first leaf of the log is in it
        first_leaf = row_leaf(self.net.sqlite("core", f"SELECT {LEAF_COLUMNS} FROM records WHERE seq = 1")[0])
        self.assertEqual(body[:32], first_leaf)
        st, body, _ = self.raw_get("core", f"/v1/tile/0/000.p/5")
        self.assertEqual((st, len(body)), (200, 160))
        # beyond every checkpoint: 404; malformed: 400, both the JSON error of DESIGN §4
        for path, status, code in (("/v1/tile/0/x001/000", 404, "not_found"), ("/v1/tile/3/000.p/1", 404, "not_found"),
                                   ("/v1/tile/0/1", 400, "invalid_field"), ("/v1/tile/0/000.p/0", 400, "invalid_field"),
                                   ("/v1/tile/9/000", 400, "invalid_field"), ("/v1/tile/0/x000/001", 400, "invalid_field"),
                                   ("/v1/tile/", 404, "not_found")):
            with self.subTest(path):
                st, body, h = self.raw_get("core", path)
                self.assertEqual(st, status, body)
                self.assertEqual(json.loads(body)["error"]["code"], code)
        # an unregistered caller gets nothing
        try:
            a = self.net.call("core", "GET", "/v1/checkpoint", as_client=None)
            self.assertNotEqual(a.status, 200)
        except OSError:
            pass  # refused in the handshake

    def test_4_proofs_by_index_and_their_refusals(self):
        _, size = self.checkpoint("core")
        a = self.net.call("core", "GET", f"/v1/records/proof?index=300&tree_size={size}", as_client="operator")
        self.assertEqual(a.status, 200, a)
        self.assertEqual((a.json["leaf_index"], a.json["tree_size"]), (300, size))
        self.assertTrue(a.json["checkpoint"].startswith(self.node_entry("core")["log_origin"] + "\n"))
        for q, status, code in (("index=1&exchange_id=x", 400, "invalid_field"), ("tree_size=5", 400, "invalid_field"),
                                ("index=-1", 400, "invalid_field"), ("index=abc", 400, "invalid_field"),
                                (f"index=5&tree_size={size + 1000}", 404, "not_found"),
                                ("index=99999999", 404, "not_found"), ("side=core", 400, "invalid_field")):
            with self.subTest(q):
                a = self.net.call("core", "GET", f"/v1/records/proof?{q}", as_client="operator")
                self.assertEqual((a.status, a.error), (status, code), a)

    def test_5_verify_url_checks_a_running_node_from_tiles_alone(self):
        url = self.node_entry("core")["url"]
        p = renkei("records", "verify", self.net.dir, "--url", url, check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("intact", p.stdout)
        p = renkei("records", "verify", self.net.dir, "--url", "https://127.0.0.1:1", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("no node", p.stderr)

    def test_6_a_core_killed_while_its_tiles_fill_resumes_with_the_same_tree(self):
        db = self.net.path("nodes", "core", "node.db")
        base = self.net.sqlite("core", "SELECT COUNT(*) FROM records")[0][0]
        stop = threading.Event()
        added = [0]

        def writer():
            i = 10000
            while not stop.is_set():
                append_synthetic(db, i, 37)
                i += 37
                added[0] += 37
                time.sleep(0.01)

        t = threading.Thread(target=writer)
        t.start()
        time.sleep(0.5 * SLOW)
        self.net.kill_node("core")
        time.sleep(0.2)
        stop.set()
        t.join()
        total = base + added[0]
        self.net.start_node("core")
        size = self.wait_size("core", total)
        self.assertEqual(size, total)
        leaves = [row_leaf(r) for r in self.net.sqlite("core", f"SELECT {LEAF_COLUMNS} FROM records ORDER BY seq")]
        a, _ = self.checkpoint("core")
        import base64
        self.assertEqual(base64.b64decode(a.raw.split("\n")[2]), mth(leaves))
        tiles = self.net.sqlite("core", "SELECT level, idx, length(hashes) FROM log_tiles WHERE level = 0 ORDER BY idx")
        self.assertEqual([t[1] for t in tiles], list(range(len(tiles))))  # no gap, no duplicate
        self.assertTrue(all(t[2] == 8192 for t in tiles[:-1]))
        self.run_tlogcheck("core", "operator", "-n", "10")

    def test_9_tampering_is_found(self):
        self.net.stop(remove=False)
        p = renkei("records", "verify", self.net.dir, check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

        def flip_tile_hash(db):
            blob = bytearray(db.execute("SELECT hashes FROM log_tiles WHERE level = 0 AND idx = 0").fetchone()[0])
            blob[7 * 32] ^= 1
            db.execute("UPDATE log_tiles SET hashes = ? WHERE level = 0 AND idx = 0", (bytes(blob),))

        def truncate_tile(db):
            db.execute("UPDATE log_tiles SET hashes = substr(hashes, 1, 3200) WHERE level = 0 AND idx = 1")

        def alter_under_full_tile(db):
            db.execute("UPDATE records SET reason = ? WHERE seq = 5", ("rewritten",))

        def alter_upper_tile(db):
            blob = bytearray(db.execute("SELECT hashes FROM log_tiles WHERE level = 1 AND idx = 0").fetchone()[0])
            blob[0] ^= 1
            db.execute("UPDATE log_tiles SET hashes = ? WHERE level = 1 AND idx = 0", (bytes(blob),))

        cases = {
            "a hash in a stored tile": (flip_tile_hash, ["core: tile 0/000: hash 7 was altered"]),
            "a truncated tile": (truncate_tile, ["core: tile 0/001 is truncated"]),
            "a record under a full tile": (alter_under_full_tile,
                                                        ["core: record seq 5", "not the record signed at position 5"]),
            "a tile of level 1": (alter_upper_tile, ["core: tile 1/000", "altered"]),
        }
        for name, (tamper, expect) in cases.items():
            with self.subTest(name):
                copy = tempfile.mkdtemp(prefix="renkei-tamper-")
                try:
                    shutil.copytree(self.net.dir, copy, dirs_exist_ok=True)
                    db = sqlite3.connect(os.path.join(copy, "nodes", "core", "node.db"))
                    with db:
                        tamper(db)
                    db.close()
                    p = renkei("records", "verify", copy, check=False)
                    self.assertEqual(p.returncode, 1, p.stdout)
                    for e in expect:
                        self.assertIn(e, p.stdout)
                finally:
                    shutil.rmtree(copy, ignore_errors=True)


if __name__ == "__main__":
    main()
