"""A witness of the core's log (DESIGN §4.1; C2SP tlog-witness and
tlog-cosignature): the core sends each checkpoint it signs, with a
consistency proof from the size the witness last cosigned, and serves the
witness's cosignature after its own signature; the cosignature verifies
with the witness's vkey of network.json (checked here with an independent
Ed25519 implementation). The witness's own refusals are the protocol's,
byte for byte (text, not JSON): an unknown origin, a bad signature, a
malformed body, an old size above the new, a stale old size (409
text/x.tlog.size with the size it cosigned), a fork and a proof that does
not verify — the last two incidents at the witness and, seen from the log,
at the core. Only the core may call it."""
import base64
import hashlib
import sqlite3
import time
import unittest

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from harness import SLOW, Network, main, renkei

Y, K = "city-yokohama", "pref-kanagawa"
W = "witness-1"
ORIGIN = "renkei/renkei/core"
Y_ORIGIN = "renkei/renkei/city-yokohama"
DASH = "\u2014"


def parse_vkey(vkey):
    name, key_id, b64 = vkey.split("+", 2)
    raw = base64.b64decode(b64)
    return name, bytes.fromhex(key_id), raw[0], raw[1:]


def note_sign(key, body, name):
    """A C2SP signed note of body under name, as a log with that key signs it."""
    pub = key.public_key().public_bytes_raw()
    key_id = hashlib.sha256(name.encode() + b"\n\x01" + pub).digest()[:4]
    sig = key.sign(body.encode())
    return body + "\n" + f"{DASH} {name} " + base64.b64encode(key_id + sig).decode() + "\n"


class Witness(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        net = cls.net = Network(agencies=3, persons=10, conf_extra={"core": "[records]\nhead_interval_ms = 100\n"})
        net.start()
        net.link(((Y, "Y1"), (K, "K1")))
        assert net.agency_call(Y, "PUT", "/v1/data/Y1/local_tax", {"value": {"tax": 1}, "as_of": "2026-01-01"}).status == 200
        cls.n = 0
        with open(net.path("nodes", "core", "log_key.pem"), "rb") as f:
            cls.log_key = load_pem_private_key(f.read(), None)
        with open(net.path("nodes", Y, "log_key.pem"), "rb") as f:
            cls.y_key = load_pem_private_key(f.read(), None)

    @classmethod
    def tearDownClass(cls):
        cls.net.stop()

    def exchange(self):
        type(self).n += 1
        a = self.net.agency_call(K, "POST", "/v1/queries", {"query_id": f"w-{self.n}", "person": "K1", "business":
                                 "public_assistance", "provider": Y, "item": "local_tax", "operator": "op-1"})
        self.assertEqual(a.status, 200, a)

    def cosigned_checkpoint(self, at_least=1):
        """The core's checkpoint once it carries the witness's cosignature."""
        deadline = time.time() + 15 * SLOW
        while time.time() < deadline:
            text = self.net.call("core", "GET", "/v1/checkpoint", as_client="operator").raw
            lines = text.split("\n")
            if int(lines[1]) >= at_least and f"\n{DASH} {ORIGIN.rsplit('/', 1)[0]}/{W} " in text:
                return text
            time.sleep(0.05)
        self.fail(f"no cosigned checkpoint of size >= {at_least}: {text!r}")

    def add(self, body, who=("node", "core")):
        return self.net.call(W, "POST", "/add-checkpoint", raw=body.encode(), as_client=who)

    def stored_size(self):
        return self.net.sql(W, "SELECT size FROM witnessed WHERE origin = ?", (ORIGIN,))[0][0]

    def test_1_the_core_s_checkpoints_are_cosigned_and_the_cosignature_verifies(self):
        self.exchange()
        text = self.cosigned_checkpoint()
        body, sigs = text.split("\n\n", 1)
        name, key_id, typ, pub = parse_vkey(self.net.nodes[W]["vkey"])
        self.assertEqual((name, typ), ("renkei/renkei/witness-1", 4))
        self.assertEqual(hashlib.sha256(name.encode() + b"\n\x04" + pub).digest()[:4], key_id)
        line = next(x for x in sigs.split("\n") if x.startswith(f"{DASH} {name} "))
        raw = base64.b64decode(line.split(" ")[2])
        self.assertEqual((len(raw), raw[:4]), (4 + 8 + 64, key_id))
        t = int.from_bytes(raw[4:12], "big")
        self.assertLess(abs(t - time.time()), 300)
        message = f"cosignature/v1\ntime {t}\n".encode() + (body + "\n").encode()
        Ed25519PublicKey.from_public_bytes(pub).verify(raw[12:], message)  # raises if it does not verify
        self.assertEqual(self.stored_size(), int(body.split("\n")[1]))
        # later checkpoints too, each from the size before (a consistency proof)
        self.exchange()
        size = int(body.split("\n")[1])
        text = self.cosigned_checkpoint(at_least=size + 1)
        self.assertGreater(int(text.split("\n")[1]), size)

    # An agency's log, which the witness knows from network.json and the core
    # never sends: checkpoints made here with its log key, sizes under the
    # test's control.
    def agency_checkpoint(self, size, seed):
        root = base64.b64encode(hashlib.sha256(seed.encode()).digest()).decode()
        return note_sign(self.y_key, f"{Y_ORIGIN}\n{size}\n{root}\n", Y_ORIGIN)

    def y_size(self):
        rows = self.net.sql(W, "SELECT size FROM witnessed WHERE origin = ?", (Y_ORIGIN,))
        return rows[0][0] if rows else 0

    def test_2_refusals_are_the_protocol_s(self):
        first = self.agency_checkpoint(5, "tree-5")
        a = self.add("old 0\n\n" + first)
        self.assertEqual(a.status, 200, a)
        self.assertTrue(a.raw.startswith(f"{DASH} renkei/renkei/{W} "))
        self.assertEqual(self.y_size(), 5)
        cases = [
            ("old 5\n\n" + first.replace(Y_ORIGIN, "renkei/renkei/nobody"), 404),
            ("old 5\n\n" + first.replace("\n5\n", "\n6\n", 1), 403),
            ("new 0\n\n" + first, 400),
            ("old 5\n" + first, 400),
            ("old 05\n\n" + first, 400),
            ("old 9\n\n" + first, 400),
        ]
        for body, status in cases:
            a = self.add(body)
            self.assertEqual(a.status, status, (body[:60], a))
            self.assertTrue(a.headers.get("Content-Type", "").startswith("text/plain"), a.headers)
        # a stale old size: 409 with the size it cosigned
        a = self.add("old 0\n\n" + first)
        self.assertEqual(a.status, 409, a)
        self.assertEqual(a.headers.get("Content-Type"), "text/x.tlog.size")
        self.assertEqual(a.raw, "5\n")
        # the same checkpoint again: cosigned again, nothing moved
        self.assertEqual(self.add("old 5\n\n" + first).status, 200)
        # only the core may call it
        a = self.add("old 5\n\n" + first, who=("node", "jlis"))
        self.assertEqual((a.status, a.error), (403, "role_not_allowed"))
        self.assertEqual(self.y_size(), 5)

    def test_3_a_fork_and_a_bad_proof_are_refused_and_are_incidents(self):
        before = [r[0] for r in self.net.sql(W, "SELECT kind FROM incidents")].count("unauthorized_access")
        a = self.add("old 5\n\n" + self.agency_checkpoint(5, "another tree"))
        self.assertEqual(a.status, 409, a)  # the same size with another root: a fork
        junk = base64.b64encode(hashlib.sha256(b"junk").digest()).decode()
        a = self.add(f"old 5\n{junk}\n\n" + self.agency_checkpoint(8, "tree-8"))
        self.assertEqual(a.status, 422, a)
        self.assertEqual(self.y_size(), 5)  # nothing moved
        after = [r[0] for r in self.net.sql(W, "SELECT kind FROM incidents")].count("unauthorized_access")
        self.assertEqual(after - before, 2)

    def test_4_a_witness_with_another_view_is_an_incident_at_the_core(self):
        net = self.net
        self.exchange()
        self.cosigned_checkpoint()
        # the witness remembers another root for the size it cosigned: the
        # core's next proof cannot take that tree to its own
        net.stop_node(W)
        sql = "UPDATE witnessed SET root = '" + "ab" * 32 + "'"
        if net.store == "sqlite":
            db = sqlite3.connect(net.path("nodes", W, "node.db"))
            db.execute(sql)
            db.commit()
            db.close()
        else:
            net.pg.psql(sql, db=W)
        net.start_node(W)
        self.exchange()
        deadline = time.time() + 15 * SLOW
        found = []
        while time.time() < deadline and not found:
            found = [i for i in net.call("core", "GET", "/v1/incidents", as_client="operator").json["incidents"]
                     if i["node"] == "core" and "inconsistent" in i["summary"]]
            time.sleep(0.1)
        self.assertTrue(found, "no incident at the core")

    def test_3b_records_verify_checks_the_cosignatures(self):
        net = self.net
        self.exchange()
        self.cosigned_checkpoint()
        v = renkei("records", "verify", net.dir, check=False)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertIn("witness cosignatures verify", v.stdout)
        # a cosignature altered in the core's store is named
        sql = ("UPDATE tree_heads SET cosignatures = replace(cosignatures, substr(cosignatures, 40, 4), 'AAAA')"
               " WHERE size = (SELECT max(size) FROM tree_heads WHERE cosignatures IS NOT NULL)")
        if net.store == "sqlite":
            db = sqlite3.connect(net.path("nodes", "core", "node.db"), timeout=10)
            db.execute(sql)
            db.commit()
            db.close()
        else:
            net.pg.psql(sql, db="core")
        v = renkei("records", "verify", net.dir, check=False)
        self.assertNotEqual(v.returncode, 0, v.stdout)
        self.assertIn("the cosignature of witness witness-1 does not verify", v.stdout)


if __name__ == "__main__":
    main()
