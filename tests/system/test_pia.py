"""The PIA gate (法28条, 法21条; DESIGN §1, §4, §5): the `ppc` node keeps each
agency's 特定個人情報保護評価 state per business; the core polls it every
[pia] refresh seconds and refuses an exchange whose requester's or
provider's PIA for the business is not published — 403 pia_not_valid,
recorded at the core and the requester, never heard of at the provider —
and keeps the last known states while the register is unreachable. The
register's operator (DIR/clients/ppc, role ppc-operator) may call PUT
/v1/pia and nothing else; GET /v1/pia is the core's alone."""
import csv
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
import unittest

from harness import BIN, SLOW, Network, main

Y, K, N = "city-yokohama", "pref-kanagawa", "nenkin-kikou"
REFRESH = 1  # [pia] refresh at the core, seconds
BUSINESS = "public_assistance"  # K asks Y for local_tax under it


class PiaGate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        net = cls.net = Network(agencies=3, persons=10, conf_extra={"core": f"[pia]\nrefresh = {REFRESH}"})
        net.start()
        number = net.residents()[0]["my_number"]
        for ag, person in ((Y, "Y1"), (K, "K1"), (N, "N1")):
            assert net.enrol(ag, person, number).status == 202
        for ag, person in ((Y, "Y1"), (K, "K1"), (N, "N1")):
            net.wait_status(ag, person, "linked")
        assert net.agency_call(Y, "PUT", "/v1/data/Y1/local_tax", {"value": {"tax": 1}, "as_of": "2025-06-01"}).status == 200
        assert net.agency_call(N, "PUT", "/v1/data/N1/pension_benefits",
                               {"value": {"annual": 2}, "as_of": "2025-06-01"}).status == 200
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        cls.net.stop()

    def setUp(self):
        """Every test starts with the PIAs it uses published, and the core knowing it."""
        for agency, business in ((Y, BUSINESS), (K, BUSINESS), (Y, "child_allowance"), (N, "child_allowance")):
            self.set_state(agency, "published", business)
        self.wait_outcome((200, "provided"), REFRESH + 5)

    # ---------- helpers ----------

    def query(self, ag=K, person="K1", business=BUSINESS, provider=Y, item="local_tax"):
        PiaGate.n += 1
        return self.net.agency_call(ag, "POST", "/v1/queries", {
            "query_id": f"q-pia-{PiaGate.n}", "person": person, "business": business, "provider": provider,
            "item": item, "operator": "op-pia"})

    def put(self, agency, business, body, who="ppc", raw=None):
        return self.net.call("ppc", "PUT", f"/v1/pia/{agency}/{business}", body, as_client=who, raw=raw)

    def set_state(self, agency, state, business=BUSINESS):
        a = self.put(agency, business, {"state": state, "evaluated_on": "2025-04-01"})
        self.assertEqual(a.status, 200, a)
        self.assertEqual((a.json["agency"], a.json["business"], a.json["state"]), (agency, business, state))
        return a.json

    def changes(self, since=0, limit=None):
        q = f"/v1/pia?since={since}" + (f"&limit={limit}" if limit else "")
        a = self.net.call("ppc", "GET", q, as_client=("node", "core"))
        self.assertEqual(a.status, 200, a)
        return a.json

    def wait_outcome(self, want, timeout, **kw):
        """Queries until the answer is `want` (status, code or status word); the seconds it took."""
        start = time.time()
        deadline = start + timeout * SLOW
        while True:
            a = self.query(**kw)
            got = (a.status, a.error or (a.json or {}).get("status"))
            if got == want:
                return time.time() - start, a
            if time.time() > deadline:
                self.fail(f"not {want} within {timeout} s: {a}")
            time.sleep(0.1)

    def records(self, node_id, exchange_id, who):
        a = self.net.call(node_id, "GET", f"/v1/records?exchange_id={exchange_id}", as_client=who)
        self.assertEqual(a.status, 200, a)
        return a.json["records"]

    def history(self, agency, business=BUSINESS):
        return self.net.sql("ppc", "SELECT state FROM pia_history WHERE agency = ? AND business = ? ORDER BY serial",
                            (agency, business))

    # ---------- the tests ----------

    def test_net_init_writes_the_register_and_its_operator(self):
        roles = {n["id"]: n["role"] for n in self.net.registry["nodes"]}
        self.assertEqual(roles.get("ppc"), "ppc")
        self.assertEqual(roles.get("ppc-operator"), "ppc-operator")
        for f in ("cert.pem", "key.pem"):
            self.assertTrue(os.path.exists(self.net.path("clients", "ppc", f)), f)
        self.assertEqual(os.stat(self.net.path("clients", "ppc", "key.pem")).st_mode & 0o077, 0)
        with open(self.net.path("nodes", "ppc", "pia.csv")) as f:
            rows = list(csv.DictReader(f))
        self.assertTrue(rows)
        self.assertEqual({r["state"] for r in rows}, {"published"})
        # every agency's every business of the permission table its kind asks or answers under
        kinds = {n["agency"]: n["kind"] for n in self.net.agencies()}
        with open(self.net.path("permissions.csv")) as f:
            perms = list(csv.DictReader(f))
        want = {(ag, p["business"]) for ag, kind in kinds.items() for p in perms
                if kind in (p["requester_kind"], p["provider_kind"])}
        self.assertEqual({(r["agency"], r["business"]) for r in rows}, want)
        # and the register starts with them
        entries = self.net.call("ppc", "GET", "/healthz", as_client="operator").json
        self.assertEqual(entries["checks"]["pia_entries"], len(want), entries)

    def test_a_lapsed_pia_refuses_within_the_refresh_and_published_again_works(self):
        a = self.query()
        self.assertEqual((a.status, a.json.get("status")), (200, "provided"), a)
        before = len(self.history(Y))
        # the provider's PIA lapses
        set_to = self.set_state(Y, "lapsed")
        self.assertTrue(set_to["changed"])
        took, a = self.wait_outcome((403, "pia_not_valid"), REFRESH + 5)
        self.assertLess(took, (REFRESH + 5) * SLOW)
        self.assertIn(Y, a.json["error"]["message"])
        xid = a.json["exchange_id"]
        core = self.records("core", xid, "operator")
        self.assertEqual([r["outcome"] for r in core], ["pia_not_valid"])
        self.assertEqual(self.records(K, xid, K)[0]["outcome"], "pia_not_valid")
        self.assertEqual(self.records(Y, xid, Y), [])  # the provider never heard of it
        # the history keeps every change
        self.assertEqual([s for s, in self.history(Y)][before:], ["lapsed"])
        # the requester's breach refuses too, naming the requester
        self.set_state(Y, "published")
        self.wait_outcome((200, "provided"), REFRESH + 5)
        self.set_state(K, "breach")
        took, a = self.wait_outcome((403, "pia_not_valid"), REFRESH + 5)
        self.assertIn(K, a.json["error"]["message"])
        self.assertIn("breach", a.json["error"]["message"])
        self.assertEqual(self.records(Y, a.json["exchange_id"], Y), [])
        # another business of the same agencies is not touched
        ok = self.query(ag=Y, person="Y1", business="child_allowance", provider=N, item="pension_benefits")
        self.assertEqual((ok.status, ok.json.get("status")), (200, "provided"), ok)
        # published again: it works again
        self.set_state(K, "published")
        self.wait_outcome((200, "provided"), REFRESH + 5)
        metrics = self.net.call("core", "GET", "/metrics", as_client="operator").raw
        refused = [l for l in metrics.splitlines() if l.startswith("renkei_pia_refusals_total ")]
        self.assertTrue(refused and int(refused[0].split()[1]) >= 2, refused)

    def test_the_batch_form_is_refused_too(self):
        self.set_state(Y, "lapsed")
        self.wait_outcome((403, "pia_not_valid"), REFRESH + 5)
        qids = [f"b-pia-{i}" for i in range(3)]
        queries = [{"query_id": q, "person": "K1", "business": BUSINESS, "provider": Y, "item": "local_tax",
                    "operator": "op-pia"} for q in qids]
        a = self.net.agency_call(K, "POST", "/v1/queries/batch", {"batch_id": "b-pia", "queries": queries})
        self.assertEqual(a.status, 202, a)
        deadline = time.time() + 60 * SLOW
        while True:
            p = self.net.agency_call(K, "GET", "/v1/queries/batch/b-pia?after=0&limit=100").json
            if p["settled"] == p["total"] or time.time() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(p["settled"], 3, p)
        for r in p["results"]:
            self.assertEqual((r["http_status"], r["answer"]["error"]["code"]), (403, "pia_not_valid"), r)
            xid = r["answer"]["exchange_id"]
            self.assertEqual(self.records("core", xid, "operator")[0]["outcome"], "pia_not_valid")
            self.assertEqual(self.records(Y, xid, Y), [])
        self.set_state(Y, "published")
        self.wait_outcome((200, "provided"), REFRESH + 5)

    def test_the_last_states_are_kept_while_the_register_is_unreachable(self):
        self.set_state(Y, "lapsed")
        self.wait_outcome((403, "pia_not_valid"), REFRESH + 5)
        self.net.stop_node("ppc")
        try:
            time.sleep(3 * REFRESH)  # several polls fail meanwhile
            a = self.query()
            self.assertEqual((a.status, a.error), (403, "pia_not_valid"), a)
            ok = self.query(ag=Y, person="Y1", business="child_allowance", provider=N, item="pension_benefits")
            self.assertEqual((ok.status, ok.json.get("status")), (200, "provided"), ok)
            health = self.net.call("core", "GET", "/healthz", as_client="operator")
            self.assertEqual(health.status, 200, health)
            # a restart of the core meanwhile keeps them too (its store); the first
            # queries after it may meet the gateways' reconnection (503), as any restart
            self.net.stop_node("core")
            self.net.start_node("core")
            self.wait_outcome((403, "pia_not_valid"), 10)
            self.wait_outcome((200, "provided"), 10, ag=Y, person="Y1", business="child_allowance", provider=N,
                              item="pension_benefits")
        finally:
            self.net.start_node("ppc")
        self.set_state(Y, "published")
        self.wait_outcome((200, "provided"), REFRESH + 5)
        self.assertIn("could not be read", self.net.log("core"))

    def test_changes_since_a_serial_are_paged_in_serial_order(self):
        first = self.changes(0)
        latest = first["latest"]
        seen, since, calls = {}, 0, 0
        while True:
            page = self.changes(since, limit=2)
            calls += 1
            self.assertLessEqual(len(page["changes"]), 2)
            serials = [c["serial"] for c in page["changes"]]
            self.assertEqual(serials, sorted(serials))
            self.assertTrue(all(s > since for s in serials))
            for c in page["changes"]:
                seen[(c["agency"], c["business"])] = c
            if not page["more"]:
                break
            since = page["next"]
        self.assertGreater(calls, 2)
        entries = self.net.call("ppc", "GET", "/healthz", as_client="operator").json["checks"]["pia_entries"]
        self.assertEqual(len(seen), entries)
        # a change moves the entry past the last serial; the same state again changes nothing
        c = self.set_state(N, "lapsed", business="child_allowance")
        self.assertGreater(c["serial"], latest)
        again = self.set_state(N, "lapsed", business="child_allowance")
        self.assertEqual((again["changed"], again["serial"]), (False, c["serial"]))
        after = self.changes(latest)["changes"]
        self.assertIn((N, "child_allowance", "lapsed"), [(x["agency"], x["business"], x["state"]) for x in after])
        self.set_state(N, "published", business="child_allowance")
        self.assertEqual(self.changes(self.changes(0)["latest"])["changes"], [])

    def test_bad_input_on_put_is_refused_and_changes_nothing(self):
        latest = self.changes(0)["latest"]
        good = {"state": "lapsed", "evaluated_on": "2025-04-01"}
        cases = [
            (("no-such-agency", BUSINESS, good), 404, "unknown_agency"),
            (("bad agency!", BUSINESS, good), 404, "unknown_agency"),
            ((Y, "no_such_business", good), 404, "unknown_business"),
            ((Y, "Bad-Business", good), 404, "unknown_business"),
            ((Y, BUSINESS, {"state": "expired", "evaluated_on": "2025-04-01"}), 400, "invalid_field"),
            ((Y, BUSINESS, {"state": 1, "evaluated_on": "2025-04-01"}), 400, "invalid_field"),
            ((Y, BUSINESS, {"state": "PUBLISHED", "evaluated_on": "2025-04-01"}), 400, "invalid_field"),
            ((Y, BUSINESS, {"evaluated_on": "2025-04-01"}), 400, "invalid_field"),
            ((Y, BUSINESS, {"state": "lapsed"}), 400, "invalid_field"),
            ((Y, BUSINESS, {"state": "lapsed", "evaluated_on": "2025-13-01"}), 400, "invalid_field"),
            ((Y, BUSINESS, {"state": "lapsed", "evaluated_on": "2025/04/01"}), 400, "invalid_field"),
            ((Y, BUSINESS, {"state": "lapsed", "evaluated_on": "2025-04-01T00:00"}), 400, "invalid_field"),
            ((Y, BUSINESS, {"state": "lapsed", "evaluated_on": 20250401}), 400, "invalid_field"),
        ]
        for (agency, business, body), status, code in cases:
            a = self.put(agency.replace(" ", "%20").replace("!", "%21"), business, body)
            self.assertEqual((a.status, a.error), (status, code), (agency, business, body, a))
        for path in ("/v1/pia/" + Y, "/v1/pia/", f"/v1/pia/{Y}/{BUSINESS}/x", f"/v1/pia//{BUSINESS}"):
            a = self.net.call("ppc", "PUT", path, good, as_client="ppc")
            self.assertEqual((a.status, a.error), (404, "not_found"), (path, a))
        a = self.put(Y, BUSINESS, None, raw="state=lapsed")
        self.assertEqual((a.status, a.error), (400, "invalid_json"), a)
        a = self.put(Y, BUSINESS, None, raw="[1]")
        self.assertEqual(a.status, 400, a)
        self.assertEqual(self.changes(0)["latest"], latest)  # nothing changed
        a = self.query()
        self.assertEqual((a.status, a.json.get("status")), (200, "provided"), a)

    def test_bad_input_on_get_is_refused(self):
        for q in ("", "?since=", "?since=-1", "?since=abc", "?since=1e3", "?since=0&limit=0", "?since=0&limit=1001",
                  "?since=0&limit=x", "?since=1234567890123456789"):
            a = self.net.call("ppc", "GET", "/v1/pia" + q, as_client=("node", "core"))
            self.assertEqual((a.status, a.error), (400, "invalid_field"), (q, a))

    def test_a_bad_first_register_refuses_the_start_and_writes_nothing(self):
        net = self.net
        work = tempfile.mkdtemp(prefix="pia-initial-", dir=os.environ.get("TMPDIR"))
        head = "agency,business,state,evaluated_on\n"
        cases = [("agency,business,state\n", 1, "header"),
                 (head + f"{Y},{BUSINESS},published,2025-04-01\nnobody,{BUSINESS},published,2025-04-01\n", 3,
                  "unknown agency"),
                 (head + f"{Y},no_such_business,published,2025-04-01\n", 2, "unknown business"),
                 (head + f"{Y},{BUSINESS},expired,2025-04-01\n", 2, "state"),
                 (head + f"{Y},{BUSINESS},published,2025-02-30\n", 2, "evaluated_on"),
                 (head + f"{Y},{BUSINESS},published,2025-04-01,x\n", 2, "four fields"),
                 (head + f"{Y},{BUSINESS},published,2025-04-01\n{Y},{BUSINESS},lapsed,2025-04-01\n", None,
                  "given twice"),
                 ("", None, "empty")]
        try:
            for i, (text, line, words) in enumerate(cases):
                db = os.path.join(work, f"ppc-{i}.db")
                csv_path = os.path.join(work, f"initial-{i}.csv")
                conf = os.path.join(work, f"node-{i}.conf")
                with open(csv_path, "w") as f:
                    f.write(text)
                with open(conf, "w") as f:
                    f.write(f"[node]\nid = ppc\nnetwork = {net.path('network.json')}\nca = {net.path('pki', 'ca.pem')}\n"
                            f"cert = {net.path('nodes', 'ppc', 'cert.pem')}\nkey = {net.path('nodes', 'ppc', 'key.pem')}\n"
                            f"db = {db}\n\n[ppc]\npermissions = {net.path('permissions.csv')}\ninitial = {csv_path}\n")
                p = subprocess.run([BIN, "ppc", "--config", conf], capture_output=True, text=True, timeout=30 * SLOW)
                self.assertNotEqual(p.returncode, 0, (words, p.stderr))
                self.assertIn(csv_path + (f":{line}:" if line else ""), p.stderr, words)
                self.assertIn(words, p.stderr)
                if os.path.exists(db):  # nothing was written into the register
                    rows = sqlite3.connect(db).execute("SELECT count(*) FROM pia_history").fetchall()
                    self.assertEqual(rows, [(0,)], words)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def test_wrong_roles_are_refused_on_both_routes(self):
        latest = self.changes(0)["latest"]
        good = {"state": "breach", "evaluated_on": "2025-04-01"}
        for who in ("operator", Y, ("node", "core"), ("node", f"{Y}-gateway"), ("node", Y), ("node", "jlis"),
                    ("node", "witness-1")):
            a = self.put(Y, BUSINESS, good, who=who)
            self.assertEqual((a.status, a.error), (403, "role_not_allowed"), (who, a))
        for who in ("ppc", "operator", K, ("node", f"{K}-gateway"), ("node", K), ("node", "jlis"), ("node", "portal")):
            a = self.net.call("ppc", "GET", "/v1/pia?since=0", as_client=who)
            self.assertEqual((a.status, a.error), (403, "role_not_allowed"), (who, a))
        self.assertEqual(self.changes(0)["latest"], latest)
        a = self.net.call("ppc", "GET", f"/v1/pia/{Y}/{BUSINESS}", as_client="ppc")
        self.assertEqual((a.status, a.error), (405, "method_not_allowed"), a)
        # the register's operator has no other route anywhere
        calls = [("ppc", "GET", "/healthz"), ("ppc", "GET", "/metrics"), ("core", "GET", "/healthz"),
                 ("core", "GET", "/v1/records"), ("core", "GET", "/v1/checkpoint"), ("core", "GET", "/v1/incidents"),
                 ("core", "POST", "/v1/exchanges"), ("jlis", "GET", "/healthz"), (Y, "GET", "/healthz"),
                 (Y, "POST", "/v1/queries"), (Y, "GET", "/v1/records"), (Y, "GET", "/v1/checkpoint"),
                 (f"{Y}-gateway", "GET", "/healthz"), ("witness-1", "GET", "/healthz"), ("portal", "GET", "/healthz")]
        for node, method, path in calls:
            a = self.net.call(node, method, path, {} if method == "POST" else None, as_client="ppc")
            self.assertEqual((a.status, a.error), (403, "role_not_allowed"), (node, method, path, a))


class UnknownPia(unittest.TestCase):
    """Deny by default: a PIA the register never named is not published, and a
    core that never knew any state is degraded (it could pass nothing)."""

    @classmethod
    def setUpClass(cls):
        net = cls.net = Network(agencies=3, persons=5, conf_extra={"core": f"[pia]\nrefresh = {REFRESH}"})
        path = net.path("nodes", "ppc", "pia.csv")
        with open(path) as f:
            lines = f.readlines()
        cls.dropped = f"{Y},{BUSINESS},"
        with open(path, "w") as f:
            f.writelines(l for l in lines if not l.startswith(cls.dropped))
        assert len(lines) > 2

    @classmethod
    def tearDownClass(cls):
        cls.net.stop()

    def test_a_pia_never_named_refuses_and_a_core_that_knows_none_is_degraded(self):
        net = self.net
        others = [n["id"] for n in net.server_nodes() if n["id"] not in ("ppc", "core")]
        net.start_node("core", wait=False)
        for node_id in others:
            net.start_node(node_id, wait=False)
        for node_id in others:
            net.wait_healthy(node_id)
        time.sleep(1)
        h = net.call("core", "GET", "/healthz", as_client="operator")
        self.assertEqual((h.status, h.json["status"]), (503, "degraded"), h)
        self.assertEqual((h.json["checks"]["pia_states"], h.json["checks"]["pia_synced_age_s"]), (0, None), h)
        net.start_node("ppc")
        net.wait_healthy("core")  # once it read the register
        number = net.residents()[0]["my_number"]
        for ag, person in ((Y, "Y1"), (K, "K1")):
            self.assertEqual(net.enrol(ag, person, number).status, 202)
        for ag, person in ((Y, "Y1"), (K, "K1")):
            net.wait_status(ag, person, "linked")
        self.assertEqual(net.agency_call(Y, "PUT", "/v1/data/Y1/local_tax", {"value": {"tax": 1},
                                                                            "as_of": "2025-06-01"}).status, 200)
        body = {"query_id": "q-unknown-1", "person": "K1", "business": BUSINESS, "provider": Y, "item": "local_tax",
                "operator": "op-pia"}
        a = net.agency_call(K, "POST", "/v1/queries", body)
        self.assertEqual((a.status, a.error), (403, "pia_not_valid"), a)
        self.assertIn(f"PIA of {Y} for {BUSINESS} is none", a.json["error"]["message"])
        a = net.call("ppc", "PUT", f"/v1/pia/{Y}/{BUSINESS}", {"state": "published", "evaluated_on": "2025-04-01"},
                     as_client="ppc")
        self.assertEqual((a.status, a.json["changed"]), (200, True), a)
        deadline = time.time() + (REFRESH + 5) * SLOW
        for i in range(2, 1000):
            a = net.agency_call(K, "POST", "/v1/queries", dict(body, query_id=f"q-unknown-{i}"))
            if a.status == 200 or time.time() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual((a.status, a.json.get("status")), (200, "provided"), a)


if __name__ == "__main__":
    main()
