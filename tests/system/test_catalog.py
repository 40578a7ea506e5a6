"""The catalogue as versioned, signed documents (DESIGN §2.3, §4; issue 15
item 6, issue 13 "Permission table"): `renkei net init` publishes version
1 signed by the operator's registry key; `renkei catalog publish` signs a
new version with an effective date (施行日); the core applies it at that
time without a restart, names it in every exchange record, serves every
version (GET /v1/catalog), and refuses a bad signature, an older or
repeated version and one effective before the newest (an incident each,
the last good kept)."""
import base64
import datetime
import json
import os
import shutil
import signal
import subprocess
import time
import unittest

from harness import SLOW, Network, main, renkei

Y, K, N = "city-yokohama", "pref-kanagawa", "nenkin-kikou"
ROW = "prefecture,public_assistance,municipality,local_tax"  # K may ask Y for local_tax under it


def moment(seconds_from_now):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds_from_now)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class Catalog(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        net = cls.net = Network(agencies=3, persons=10)
        net.append_conf("core", "[core]\ncatalog_refresh_ms = 300")
        net.start()
        number = net.residents()[0]["my_number"]
        for ag, person in ((Y, "Y1"), (K, "K1")):
            assert net.enrol(ag, person, number).status == 202
        for ag, person in ((Y, "Y1"), (K, "K1")):
            net.wait_status(ag, person, "linked")
        a = net.agency_call(Y, "PUT", "/v1/data/Y1/local_tax", {"value": {"tax": 120000}, "as_of": "2025-06-01"})
        assert a.status == 200, a
        with open(net.path("permissions.csv")) as f:
            cls.table = f.read()
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        cls.net.stop(remove=not os.environ.get("RENKEI_KEEP"))

    # ---------- helpers ----------
    def query(self):
        Catalog.n += 1
        body = {"query_id": f"q-cat-{Catalog.n}", "person": "K1", "business": "public_assistance", "provider": Y,
                "item": "local_tax", "operator": "op-001"}
        return self.net.agency_call(K, "POST", "/v1/queries", body)

    def core_record(self, exchange_id):
        a = self.net.call("core", "GET", f"/v1/records?exchange_id={exchange_id}", as_client="operator")
        self.assertEqual(a.status, 200, a)
        return a.json["records"][0]

    def catalog(self, version=None, who="operator"):
        return self.net.call("core", "GET", "/v1/catalog" + (f"?version={version}" if version else ""),
                             as_client=who)

    def write_table(self, with_row):
        with open(self.net.path("permissions.csv"), "w") as f:
            f.write("".join(l for l in self.table.splitlines(True) if with_row or not l.startswith(ROW)))

    def publish(self, *args):
        return renkei("catalog", "publish", self.net.dir, *args, check=False)

    def wait_version(self, version, timeout=10):
        end = time.time() + timeout * SLOW
        while time.time() < end:
            a = self.catalog()
            if a.status == 200 and a.json["catalog_version"] == version:
                return
            time.sleep(0.1)
        self.fail(f"version {version} not in force: {self.catalog()}")

    def incidents(self):
        a = self.net.call("core", "GET", "/v1/incidents", as_client="operator")
        self.assertEqual(a.status, 200, a)
        return " ".join(i["summary"] for i in a.json["incidents"])

    # ---------- the tests, in order ----------
    def test_1_net_init_publishes_version_1_signed_by_the_registry_key(self):
        self.assertTrue(os.path.exists(self.net.path("catalog", "catalog-1.signed")))
        self.assertEqual(os.stat(self.net.path("pki", "registry-key.pem")).st_mode & 0o777, 0o600)
        for who in ("operator", K, ("node", f"{Y}-gateway")):  # any registered caller
            a = self.catalog(who=who)
            self.assertEqual(a.status, 200, (who, a))
        a = self.catalog()
        self.assertEqual((a.json["catalog_version"], a.json["in_force"]), (1, True))
        cat = a.json["catalog"]
        items = {i["item"]: i for i in cat["items"]}
        self.assertEqual(items["local_tax"]["layout_version"], "2025.07")
        self.assertEqual(items["local_tax"]["name_ja"], "地方税関係情報")
        row = [r for r in cat["permissions"] if (r["requester_kind"], r["business"], r["provider_kind"], r["item"])
               == ("prefecture", "public_assistance", "municipality", "local_tax")]
        self.assertEqual(len(row), 1)
        self.assertEqual((row[0]["layout_version"], row[0]["valid_from"]), ("2025.07", a.json["effective_from"]))
        self.assertIn("fiscal_year", row[0]["conditions"])
        self.assertIn("child_allowance", {b["business"] for b in cat["businesses"]})
        # the envelope as published: the document's exact bytes, signed, kind "catalog"
        env = a.json["signed"]
        self.assertEqual((env["format"], env["kind"]), ("renkei-signed/v1", "catalog"))
        doc = json.loads(base64.b64decode(env["document"]))
        self.assertEqual((doc["catalog_version"], doc["effective_from"]), (1, a.json["effective_from"]))
        with open(self.net.path("catalog", "catalog-1.signed")) as f:
            self.assertEqual(json.loads(f.read()), env)
        self.verify_envelope(env)

    def verify_envelope(self, env):
        """The signature checks out with openssl against DIR/pki/registry.pub alone."""
        msg = b"renkei-signed/v1\ncatalog\n" + base64.b64decode(env["document"])
        d = os.path.join(self.net.dir, "verify")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "msg"), "wb") as f:
            f.write(msg)
        with open(os.path.join(d, "sig"), "wb") as f:
            f.write(base64.b64decode(env["signature"]))
        p = subprocess.run(["openssl", "dgst", "-sha256", "-verify", self.net.path("pki", "registry.pub"),
                            "-signature", os.path.join(d, "sig"), os.path.join(d, "msg")], capture_output=True)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_2_a_future_version_applies_at_its_time_without_a_restart(self):
        core_pid = self.net.procs["core"].pid
        before = self.query()
        self.assertEqual(before.json.get("status"), "provided", before)
        self.assertEqual(self.core_record(before.json["exchange_id"])["catalog_version"], 1)
        # version 2 drops the row, effective in a few seconds
        self.write_table(with_row=False)
        p = self.publish("--effective", moment(4 * SLOW))
        self.assertEqual((p.returncode, p.stdout.strip()), (0, "2"), p.stderr)
        self.net.procs["core"].send_signal(signal.SIGHUP)  # taken in at once (else at the next rescan)
        time.sleep(0.8)
        a = self.catalog(2)
        self.assertEqual((a.status, a.json["in_force"]), (200, False), a)  # held, not yet in force
        mid = self.query()
        self.assertEqual(mid.json.get("status"), "provided", mid)  # not applied before its time
        self.assertEqual(self.core_record(mid.json["exchange_id"])["catalog_version"], 1)
        self.wait_version(2)
        after = self.query()
        self.assertEqual((after.status, after.error), (403, "not_permitted"), after)
        rec = self.core_record(after.json["exchange_id"])
        self.assertEqual((rec["outcome"], rec["catalog_version"]), ("not_permitted", 2))
        self.assertIn("(catalogue version 2)", rec["reason"])  # 法21条2項: the reason names the rows
        m = self.net.call("core", "GET", "/metrics", as_client="operator").raw
        self.assertIn("renkei_catalog_version 2\n", m)
        health = self.net.call("core", "GET", "/healthz", as_client="operator").json
        self.assertEqual(health["checks"]["catalog_version"], 2)
        self.assertEqual(self.net.procs["core"].pid, core_pid)
        self.assertIsNone(self.net.procs["core"].poll())  # no restart
        # each version stays readable, and which one is in force
        one, two = self.catalog(1), self.catalog(2)
        self.assertEqual((one.status, one.json["in_force"], two.json["in_force"]), (200, False, True))
        self.assertEqual(len(one.json["catalog"]["permissions"]), len(two.json["catalog"]["permissions"]) + 1)

    def test_3_refusals_keep_the_last_good_version(self):
        self.write_table(with_row=True)
        # version 4 (the row back), effective now
        p = self.publish("--effective", moment(1), "--version", "4")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.net.procs["core"].send_signal(signal.SIGHUP)
        self.wait_version(4)
        self.assertEqual(self.query().json.get("status"), "provided")
        folder = self.net.path("catalog")
        # an older version, validly signed: refused
        p = self.publish("--effective", moment(-1), "--version", "3", "--out", os.path.join(folder, "catalog-3.signed"))
        self.assertEqual(p.returncode, 0, p.stderr)
        # a version signed by another key: refused
        other = os.path.join(self.net.dir, "other-key.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", other],
                       check=True, capture_output=True)
        os.chmod(other, 0o600)
        self.write_table(with_row=False)
        p = self.publish("--effective", moment(-1), "--version", "5", "--key", other)
        self.assertEqual(p.returncode, 0, p.stderr)
        # a version effective before the newest's date: refused
        p = self.publish("--effective", "2017-01-01", "--version", "6")
        self.assertEqual(p.returncode, 0, p.stderr)
        # a document altered after signing: refused
        with open(os.path.join(folder, "catalog-4.signed")) as f:
            env = json.load(f)
        doc = base64.b64decode(env["document"]).replace(b'"2025.07"', b'"2026.07"', 1)
        env["document"] = base64.b64encode(doc).decode()
        with open(os.path.join(folder, "catalog-7.signed"), "w") as f:
            json.dump(env, f)
        # the version 4 file itself, written again (a repeated version)
        shutil.copy(os.path.join(folder, "catalog-4.signed"), os.path.join(folder, "catalog-8.signed"))
        self.net.procs["core"].send_signal(signal.SIGHUP)
        time.sleep(1.0 * SLOW)
        log = self.net.log("core")
        for name, why in (("catalog-3.signed", "not above 4"), ("catalog-5.signed", "does not verify"),
                          ("catalog-6.signed", "is before"), ("catalog-7.signed", "does not verify"),
                          ("catalog-8.signed", "file name says version 8")):
            self.assertRegex(log, f"catalogue {name} refused: .*{why}")
        self.assertIn("catalogue catalog-5.signed refused", self.incidents())
        self.assertIn("catalogue catalog-3.signed refused", self.incidents())
        a = self.catalog()
        self.assertEqual(a.json["catalog_version"], 4)  # the last good one stays
        for v in (3, 5, 6, 7, 8):
            self.assertEqual((self.catalog(v).status, self.catalog(v).error), (404, "unknown_catalog_version"))
        q = self.query()
        self.assertEqual(q.json.get("status"), "provided", q)  # version 5/6 would refuse it
        self.assertEqual(self.core_record(q.json["exchange_id"])["catalog_version"], 4)
        # refused once, not at every rescan
        seen = self.net.log("core").count("catalogue catalog-5.signed refused")
        time.sleep(1.0 * SLOW)
        self.assertEqual(self.net.log("core").count("catalogue catalog-5.signed refused"), seen)
        # `catalog show` checks a file as the core does
        p = renkei("catalog", "show", self.net.dir, "--version", "4")
        self.assertRegex(p.stdout, r"catalog_version +4\n")
        for v, why in ((5, "does not verify"), (7, "does not verify"), (8, "says version 4")):
            p = renkei("catalog", "show", self.net.dir, "--version", v, check=False)
            self.assertEqual(p.returncode, 1, p)
            self.assertIn(why, p.stderr)
                # the publisher itself refuses a version not above the folder's newest
        p = self.publish("--effective", moment(60), "--version", "2")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("not above", p.stderr)
        self.write_table(with_row=True)

    def test_3b_a_batch_query_names_the_version_too(self):
        queries = [{"query_id": f"q-cat-b{i}", "person": "K1", "business": "public_assistance", "provider": Y,
                    "item": "local_tax", "operator": "op-b"} for i in range(3)]
        a = self.net.agency_call(K, "POST", "/v1/queries/batch", {"batch_id": "b-cat-1", "queries": queries})
        self.assertEqual(a.status, 202, a)
        end = time.time() + 30 * SLOW
        while time.time() < end:
            p = self.net.agency_call(K, "GET", "/v1/queries/batch/b-cat-1").json
            if p["settled"] == p["total"]:
                break
            time.sleep(0.1)
        results = {r["query_id"]: r for r in p["results"]}
        for i in range(3):
            r = results[f"q-cat-b{i}"]["answer"]
            self.assertEqual(r.get("status"), "provided", r)
            self.assertEqual(self.core_record(r["exchange_id"])["catalog_version"], 4)

    def test_4_get_catalog_refuses_unknown_and_malformed_versions(self):
        self.assertEqual((self.catalog(999).status, self.catalog(999).error), (404, "unknown_catalog_version"))
        for bad in ("abc", "0", "-1", "1.5", "01", "9" * 13, ""):
            a = self.net.call("core", "GET", f"/v1/catalog?version={bad}", as_client="operator")
            self.assertEqual((a.status, a.error), (400, "invalid_field"), bad)

    def test_5_records_and_proofs_keep_verifying(self):
        p = renkei("records", "verify", self.net.dir, check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        # the version is in the record's leaf (the log's bytes), only when set
        a = self.net.call("core", "GET", "/v1/records?limit=50", as_client="operator")
        versions = {r["catalog_version"] for r in a.json["records"] if r["side"] == "core"}
        self.assertTrue({1, 2, 4} <= versions, versions)
        agency = self.net.call(K, "GET", "/v1/records?limit=5", as_client=K)
        self.assertNotIn("catalog_version", agency.json["records"][0])  # an agency's records do not name it

    def test_6_publish_usage_errors(self):
        for args, want in ((("--effective", "2026-02-30"), "--effective"), ((), "--effective"),
                           (("--effective", "2030-01-01", "--version", "x"), "--version")):
            p = self.publish(*args)
            self.assertEqual(p.returncode, 2, (args, p.stderr))
            self.assertIn(want, p.stderr)
        p = renkei("catalog", "publish", "--help", check=False)
        self.assertEqual(p.returncode, 0)
        self.assertIn("--effective", p.stdout)
        with open(self.net.path("permissions.csv"), "a") as f:
            f.write("prefecture,public_assistance\n")
        try:
            p = self.publish("--effective", "2030-01-01")
            self.assertEqual(p.returncode, 1)
            self.assertRegex(p.stderr, r"permissions.csv:\d+")
            self.assertFalse(os.path.exists(self.net.path("catalog", "catalog-9.signed")))
        finally:
            self.write_table(with_row=True)

    def test_7_a_core_with_no_version_in_force_yet_is_degraded_and_refuses(self):
        # a core started on a folder whose only version is still to come
        folder = self.net.path("catalog-future")
        os.makedirs(folder)
        p = self.publish("--effective", moment(5 * SLOW), "--version", "1", "--out",
                         os.path.join(folder, "catalog-1.signed"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.net.stop_node("core")
        self.net.append_conf("core", "[core]\ncatalog_dir = ../../catalog-future")
        self.net.start_node("core", wait=False)
        end, h = time.time() + 20 * SLOW, None
        while time.time() < end:
            try:
                h = self.net.call("core", "GET", "/healthz", as_client="operator", timeout=2)
                break
            except OSError:
                time.sleep(0.05)
        self.assertEqual((h.status, h.json["status"], h.json["checks"]["catalog_version"]), (503, "degraded", 0), h)
        self.assertEqual((self.catalog().status, self.catalog().error), (404, "unknown_catalog_version"))
        self.assertEqual(self.catalog(1).json["in_force"], False)
        a = self.query()
        self.assertEqual((a.status, a.error), (403, "not_permitted"), a)  # deny by default
        self.net.wait_healthy("core")  # at its time, without a restart
        self.assertEqual(self.catalog().json["catalog_version"], 1)
        a = self.query()
        self.assertEqual(a.json.get("status"), "provided", a)
        self.assertEqual(self.core_record(a.json["exchange_id"])["catalog_version"], 1)


if __name__ == "__main__":
    main()
