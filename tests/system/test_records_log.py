"""Records nobody can quietly change (standard 第3-1(2); 法23条; RFC 9162):
every node's records form a Merkle log with signed tree heads. Proofs are
checked here by an independent verifier (RFC 9162 §2.1.3.2 and §2.1.4.2
written afresh in Python, signatures checked with the openssl tool), and
records altered, removed or reordered behind the nodes' back (sqlite3, or
psql on PostgreSQL), or a forged head, are found by `renkei records verify`,
which names node and record."""
import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from harness import SLOW, Network, main, renkei

Y, K, N = "city-yokohama", "pref-kanagawa", "nenkin-kikou"


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(leaf: bytes, m: int, n: int, path: list, root: bytes) -> bool:
    """RFC 9162 §2.1.3.2."""
    if m >= n:
        return False
    fn, sn, r = m, n - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(m: int, n: int, root_m: bytes, root_n: bytes, proof: list) -> bool:
    """RFC 9162 §2.1.4.2."""
    if m == n:
        return not proof and root_m == root_n
    if m == 0 or m > n or not proof:
        return False
    if m & (m - 1) == 0:  # a power of two: the first subtree is root_m itself
        proof = [root_m] + proof
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == root_m and sr == root_n and sn == 0


def record_leaf(row: dict) -> bytes:
    """The canonical leaf of a record, as the design states it."""
    fields = {k: row[k] for k in ("exchange_id", "side", "requester", "provider", "business", "item", "subject",
                                  "requested_ms", "provided_ms", "outcome", "reason", "payload_sha256")}
    fields["operator"] = row["operator"]
    if row.get("catalog_version"):  # the core's catalogue version, a key only when set
        fields["catalog_version"] = row["catalog_version"]
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return leaf_hash(text.encode())


def verify_head_signature(cert_path, head) -> bool:
    msg = f"renkei-tree-head/1\n{head['node']}\n{head['size']}\n{head['root']}\n{head['time_ms']}\n".encode()
    with tempfile.TemporaryDirectory() as d:
        pub = os.path.join(d, "pub.pem")
        subprocess.run(["openssl", "x509", "-pubkey", "-noout", "-in", cert_path, "-out", pub], check=True)
        with open(os.path.join(d, "sig"), "wb") as f:
            f.write(base64.b64decode(head["signature"]))
        with open(os.path.join(d, "msg"), "wb") as f:
            f.write(msg)
        p = subprocess.run(["openssl", "dgst", "-sha256", "-verify", pub, "-signature", os.path.join(d, "sig"),
                            os.path.join(d, "msg")], capture_output=True)
        return p.returncode == 0


class RecordsLog(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        net = cls.net = Network(agencies=3, persons=10)
        for n in ("core", Y, K, N):
            net.append_conf(n, "[records]\nhead_interval_ms = 100")
        net.start()
        number = net.residents()[0]["my_number"]
        for ag, p in ((Y, "Y1"), (K, "K1"), (N, "N1")):
            assert net.enrol(ag, p, number).status == 202
        for ag, p in ((Y, "Y1"), (K, "K1"), (N, "N1")):
            net.wait_status(ag, p, "linked")
        net.agency_call(Y, "PUT", "/v1/data/Y1/local_tax", {"value": {"tax": 1}, "as_of": "2026-01-01"})
        cls.exchanges = []
        for i in range(4):
            a = net.agency_call(K, "POST", "/v1/queries", {"query_id": f"log-{i}", "person": "K1",
                                                          "business": "public_assistance", "provider": Y,
                                                          "item": "local_tax", "operator": "op"})
            cls.exchanges.append(a.json["exchange_id"])
            time.sleep(0.15)  # let heads be signed between records
        a = net.agency_call(N, "POST", "/v1/queries", {"query_id": "log-refused", "person": "N1",
                                                      "business": "national_pension", "provider": Y,
                                                      "item": "child_allowance", "operator": "op"})
        cls.exchanges.append(a.json["exchange_id"])
        time.sleep(0.4 * SLOW)

    @classmethod
    def tearDownClass(cls):
        cls.net.stop()

    def get(self, node, path, who):
        a = self.net.call(node, "GET", path, as_client=who)
        self.assertEqual(a.status, 200, a)
        return a.json

    def test_1_inclusion_proofs_check_out_independently(self):
        for node, who in (("core", "operator"), (K, K), (Y, Y)):
            cert = self.net.path("nodes", node, "cert.pem")
            for xid in self.exchanges[:4]:
                p = self.get(node, f"/v1/records/proof?exchange_id={xid}", who)
                head = p["head"]
                self.assertTrue(verify_head_signature(cert, head), head)
                path = [bytes.fromhex(h) for h in p["audit_path"]]
                self.assertTrue(verify_inclusion(bytes.fromhex(p["leaf_hash"]), p["leaf_index"], head["size"],
                                                 path, bytes.fromhex(head["root"])), (node, p))
                # The leaf is the record as the node holds it, recomputed here.
                rows = self.net.sqlite(node, "SELECT exchange_id, side, requester, provider, business, item, operator,"
                                             " subject, requested_ms, provided_ms, outcome, reason, payload_sha256,"
                                             " catalog_version FROM records WHERE exchange_id = ?", (xid,))
                keys = ("exchange_id", "side", "requester", "provider", "business", "item", "operator", "subject",
                        "requested_ms", "provided_ms", "outcome", "reason", "payload_sha256", "catalog_version")
                self.assertEqual(record_leaf(dict(zip(keys, rows[0]))).hex(), p["leaf_hash"])
                # A flipped bit in the path does not verify.
                if path:
                    bad = [bytes([path[0][0] ^ 1]) + path[0][1:]] + path[1:]
                    self.assertFalse(verify_inclusion(bytes.fromhex(p["leaf_hash"]), p["leaf_index"],
                                                      head["size"], bad, bytes.fromhex(head["root"])))

    def test_2_consistency_proofs_check_out_independently(self):
        heads = sorted(self.get("core", "/v1/records/heads", "operator")["heads"], key=lambda h: h["size"])
        heads = [h for h in heads if h["size"] > 0]  # the empty log's head proves nothing
        self.assertGreaterEqual(len(heads), 2, heads)
        cert = self.net.path("nodes", "core", "cert.pem")
        for older, newer in zip(heads, heads[1:]):
            self.assertTrue(verify_head_signature(cert, newer))
            c = self.get("core", f"/v1/records/consistency?from={older['size']}&to={newer['size']}", "operator")
            proof = [bytes.fromhex(h) for h in c["proof"]]
            self.assertTrue(verify_consistency(older["size"], newer["size"], bytes.fromhex(older["root"]),
                                               bytes.fromhex(newer["root"]), proof), (older, newer, c))
            forged = bytes.fromhex(older["root"])[::-1]
            self.assertFalse(verify_consistency(older["size"], newer["size"], forged, bytes.fromhex(newer["root"]),
                                                proof))
        a = self.net.call("core", "GET", "/v1/records/consistency?from=5&to=2", as_client="operator")
        self.assertEqual((a.status, a.error), (400, "invalid_field"))

    def test_3_proof_refusals(self):
        a = self.net.call("core", "GET", "/v1/records/proof?exchange_id=nope", as_client="operator")
        self.assertEqual((a.status, a.error), (404, "not_found"))
        a = self.net.call(Y, "GET", "/v1/records/proof?exchange_id=x", as_client=K)
        self.assertEqual((a.status, a.error), (403, "wrong_agency"))

    def test_9_tampering_is_found(self):
        self.net.stop(remove=False)  # every node signs a last head as it stops
        p = renkei("records", "verify", self.net.dir, check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("intact", p.stdout)
        cases = {
            "altered field": (Y, "UPDATE records SET outcome = 'no_data' WHERE seq = 2",
                              [f"{Y}: record seq 2", "altered"]),
            "altered at the requester": (K, "UPDATE records SET operator = 'someone-else' WHERE seq = 1",
                                         [f"{K}: record seq 1", "altered"]),
            "removed": ("core", "DELETE FROM records WHERE seq = 3", ["core: record seq 3", "missing"]),
            "reordered": ("core", "UPDATE records SET seq = 1000001 WHERE seq = 1; UPDATE records SET seq = 1"
                                  " WHERE seq = 2; UPDATE records SET seq = 2 WHERE seq = 1000001",
                          ["core: record seq 1", "reordered"]),
            "forged head": ("core", "UPDATE tree_heads SET root = '" + "00" * 32 + "'"
                                    " WHERE size = (SELECT max(size) FROM tree_heads)",
                            ["core: tree head of size", "signature does not verify"]),
        }
        for name, (node, sql, expect) in cases.items():
            with self.subTest(name):
                copy = tempfile.mkdtemp(prefix="renkei-tamper-")
                try:
                    self.net.copy_to(copy)
                    Network.tamper(copy, node, sql)
                    p = renkei("records", "verify", copy, check=False)
                    self.assertEqual(p.returncode, 1, p.stdout)
                    for e in expect:
                        self.assertIn(e, p.stdout)
                finally:
                    shutil.rmtree(copy, ignore_errors=True)


if __name__ == "__main__":
    main()
