"""Retention of the 法23条 records (DESIGN §4.1, §5): `renkei records archive`
writes a node's records older than the cutoff to a file and only then prunes
them; the tiles stay, so the tree, later records and every proof of them stay
valid; `records verify` checks the log with its archived prefix, and
`records verify --archive` checks the file against the log it came from.
Every refusal changes nothing. On PostgreSQL the records are partitioned,
here 4 to a partition (a test knob; 6×10⁸ in production), so that the prune
drops whole partitions and deletes the rest, with the records' keys, and
later proofs stay valid."""
import datetime
import json
import os
import stat
import time
import unittest

os.environ["RENKEI_TEST_RECORDS_PARTITION"] = "4"  # read when a node makes its store; nodes inherit it

from harness import SLOW, Network, main, renkei  # noqa: E402

Y, K = "city-yokohama", "pref-kanagawa"
FAST = "[records]\nhead_interval_ms = 100\n"


class Retention(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        net = cls.net = Network(agencies=3, persons=10, conf_extra={"core": FAST, Y: FAST, K: FAST})
        net.start()
        net.link(((Y, "Y1"), (K, "K1")))
        assert net.agency_call(Y, "PUT", "/v1/data/Y1/local_tax", {"value": {"tax": 1}, "as_of": "2026-01-01"}).status == 200
        cls.tomorrow = (datetime.date.today() + datetime.timedelta(days=1)).isoformat()

    @classmethod
    def tearDownClass(cls):
        cls.net.stop()

    def query(self, qid):
        a = self.net.agency_call(K, "POST", "/v1/queries", {"query_id": qid, "person": "K1", "business":
                                 "public_assistance", "provider": Y, "item": "local_tax", "operator": "op-1"})
        self.assertEqual((a.status, a.json.get("status")), (200, "provided"), a)
        return a.json["exchange_id"]

    def core(self, path):
        return self.net.call("core", "GET", path, as_client="operator")

    def signed_size(self):
        return int(self.core("/v1/checkpoint").raw.split("\n")[1])

    def wait_signed(self, n):
        deadline = time.time() + 10 * SLOW
        while time.time() < deadline and self.signed_size() < n:
            time.sleep(0.05)
        self.assertGreaterEqual(self.signed_size(), n)

    def test_archive_prunes_a_prefix_and_the_log_stays_valid(self):
        net = self.net
        old = [self.query(f"ret-old-{i}") for i in range(5)]
        n_old = len(self.core("/v1/records?limit=500").json["records"])
        self.wait_signed(n_old)
        size_before = self.signed_size()
        out = net.path("core-archive-1.jsonl")
        a = renkei("records", "archive", net.dir, "--node", "core", "--out", out, "--before", self.tomorrow)
        self.assertIn(f"{n_old} records of core (seq 1..{n_old}", a.stdout)
        self.assertEqual(stat.S_IMODE(os.stat(out).st_mode), 0o600)
        with open(out) as f:
            lines = [json.loads(x) for x in f]
        self.assertEqual((lines[0]["node"], lines[0]["from"], lines[0]["upto"]), ("core", 1, n_old))
        self.assertTrue(lines[0]["checkpoint"].startswith("renkei/renkei/core\n"))
        self.assertEqual([x["seq"] for x in lines[1:]], list(range(1, n_old + 1)))
        if net.store == "postgres":  # each partition wholly archived dropped; the one past n_old kept
            parts = lambda: {r[0] for r in net.sql("core", "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c"
                                                             " ON c.oid = i.inhrelid WHERE i.inhparent ="
                                                             " CAST('record_rows' AS regclass)")}
            self.assertGreaterEqual(n_old, 4)
            self.assertEqual({f"record_rows_p{k}" for k in range(n_old // 4)} & parts(), set())
            self.assertIn(f"record_rows_p{n_old // 4}", parts())
            # the pruned records' keys went with them: each record kept has its key, no other
            self.assertEqual(net.sql("core", "SELECT COUNT(*), MIN(seq) FROM record_keys"),
                             net.sql("core", "SELECT COUNT(*), MIN(seq) FROM record_rows"))
            self.assertEqual(net.sql("core", "SELECT COUNT(*) FROM record_keys WHERE seq <= ?", (n_old,)), [(0,)])
        # pruned: no longer listed, no proof by exchange id; the tree is the same
        self.assertEqual(self.core("/v1/records?limit=500").json["records"], [])
        self.assertEqual(self.core(f"/v1/records/proof?exchange_id={old[0]}").status, 404)
        self.assertEqual(self.core(f"/v1/records/proof?index=0&tree_size={size_before}").status, 200)
        # later records go on from the pruned prefix, with proofs and consistency
        new = [self.query(f"ret-new-{i}") for i in range(3)]
        rows = self.core("/v1/records?limit=500").json["records"]
        self.assertEqual(min(r["seq"] for r in rows), n_old + 1)
        self.wait_signed(n_old + len(rows))
        p = self.core(f"/v1/records/proof?exchange_id={new[0]}")
        self.assertEqual(p.status, 200, p)
        c = self.core(f"/v1/records/consistency?from={size_before}&to={self.signed_size()}")
        self.assertEqual(c.status, 200, c)
        v = renkei("records", "verify", net.dir, check=False)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertIn(f"({n_old} archived, their tiles kept)", v.stdout)
        v = renkei("records", "verify", net.dir, "--archive", out, check=False)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertIn("the archive is intact", v.stdout)
        # an altered archive is named
        bad = net.path("core-archive-altered.jsonl")
        with open(bad, "w") as f:
            f.write(json.dumps(lines[0]) + "\n")
            for x in lines[1:]:
                if x["seq"] == 2:
                    x["leaf"] = x["leaf"].replace('"provided"', '"no_data"')
                f.write(json.dumps(x) + "\n")
        v = renkei("records", "verify", net.dir, "--archive", bad, check=False)
        self.assertNotEqual(v.returncode, 0)
        self.assertIn("record seq 2 was altered", v.stdout)
        # nothing older than 2000: nothing to do, nothing changed
        v = renkei("records", "archive", net.dir, "--node", "core", "--out", net.path("none.jsonl"), "--before",
                   "2000-01-01")
        self.assertIn("nothing of core to archive", v.stdout)
        self.assertFalse(os.path.exists(net.path("none.jsonl")))

    def test_archive_still_verifies_after_a_log_key_rotation(self):
        # an archive's checkpoint is checked with the log key valid when it was signed:
        # after `records rotate-log-key` it still verifies (log_vkey_history)
        net = self.net
        for i in range(3):
            self.query(f"ret-rot-{i}")
        net.stop_node(Y)  # a last head signed, the store at rest
        self.addCleanup(net.start_node, Y)
        out = net.path("y-archive.jsonl")
        a = renkei("records", "archive", net.dir, "--node", Y, "--out", out, "--before", self.tomorrow)
        self.assertIn(f"records of {Y}", a.stdout)
        v = renkei("records", "verify", net.dir, "--archive", out, check=False)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        with open(net.path("network.json")) as f:
            old_vkey = next(n for n in json.load(f)["nodes"] if n["id"] == Y)["log_vkey"]
        r = renkei("records", "rotate-log-key", net.dir, Y)
        self.assertIn(f"rotated the log key of {Y}", r.stdout)
        with open(net.path("network.json")) as f:
            node = next(n for n in json.load(f)["nodes"] if n["id"] == Y)
        self.assertNotEqual(node["log_vkey"], old_vkey)
        self.assertEqual(node["log_vkey_history"][-1]["vkey"], old_vkey)
        # signed with the previous key, within its validity: intact
        v = renkei("records", "verify", net.dir, "--archive", out, check=False)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertIn("the archive is intact", v.stdout)
        # an altered record is still named
        with open(out) as f:
            lines = [json.loads(x) for x in f]
        bad = net.path("y-archive-altered.jsonl")
        with open(bad, "w") as f:
            f.write(json.dumps(lines[0]) + "\n")
            for x in lines[1:]:
                if x["seq"] == 1:
                    x["leaf"] = x["leaf"][:-2] + ("0" if x["leaf"][-2] != "0" else "1") + x["leaf"][-1]
                f.write(json.dumps(x) + "\n")
        v = renkei("records", "verify", net.dir, "--archive", bad, check=False)
        self.assertEqual(v.returncode, 1, v.stdout)
        self.assertIn("record seq 1 was altered", v.stdout)
        # a checkpoint the log never signed (its size changed) is refused
        hdr = dict(lines[0])
        parts = hdr["checkpoint"].split("\n")
        parts[1] = str(int(parts[1]) + 1)
        hdr["checkpoint"] = "\n".join(parts)
        forged = net.path("y-archive-forged.jsonl")
        with open(forged, "w") as f:
            f.write(json.dumps(hdr) + "\n")
            for x in lines[1:]:
                f.write(json.dumps(x) + "\n")
        v = renkei("records", "verify", net.dir, "--archive", forged, check=False)
        self.assertEqual(v.returncode, 1, v.stdout)
        self.assertIn("its checkpoint is not one of the heads the log signed", v.stdout)
        # the previous key's period moved to long before: the checkpoint's time falls in the
        # new key's, which did not sign it — checked with that key and no other, it is refused
        with open(net.path("network.json")) as f:
            doc = json.load(f)
        saved = json.dumps(doc, indent=2)
        for n in doc["nodes"]:
            if n["id"] == Y:
                n["log_vkey_history"][-1]["until"] = "2001-01-01T00:00:00Z"
                n["log_vkey_history"][-1]["from"] = "2000-01-01T00:00:00Z"
        with open(net.path("network.json"), "w") as f:
            json.dump(doc, f, indent=2)
        try:
            v = renkei("records", "verify", net.dir, "--archive", out, check=False)
            self.assertEqual(v.returncode, 1, v.stdout)
            self.assertIn("does not verify with the log key valid at its time", v.stdout)
        finally:
            with open(net.path("network.json"), "w") as f:
                f.write(saved)

    def test_refusals_change_nothing(self):
        net = self.net
        self.query("ret-refusal")
        count = lambda: net.sql(K, "SELECT count(*) FROM records")[0][0]
        before = count()
        exists = net.path("exists.jsonl")
        open(exists, "w").close()
        cases = [(["--node", K, "--out", exists, "--before", self.tomorrow], 1, "cannot create"),
                 (["--node", "nobody", "--out", net.path("x.jsonl")], 1, "no node of network.json keeps records"),
                 (["--node", "jlis", "--out", net.path("x.jsonl")], 1, "no node of network.json keeps records"),
                 (["--node", K, "--out", net.path("x.jsonl"), "--before", "2026-02-30"], 2, "--before must be a date"),
                 (["--node", K], 2, "needs --node ID and --out FILE")]
        for args, code, text in cases:
            p = renkei("records", "archive", net.dir, *args, check=False)
            self.assertEqual(p.returncode, code, (args, p.stderr))
            self.assertIn(text, p.stderr)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        self.assertEqual(count(), before)
        self.assertFalse(os.path.exists(net.path("x.jsonl")))
        p = renkei("records", "verify", net.dir, "--archive", exists, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("not a records archive", p.stderr)


if __name__ == "__main__":
    main()
