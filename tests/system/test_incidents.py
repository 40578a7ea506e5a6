"""Incidents and early detection (standard 第3-5(1)-(4), 第5-4(3)): nodes
raise incidents themselves and every one reaches the core, which lists them
with the fields the standard's reports ask for."""
import time
import unittest

from harness import SLOW, Network, main

Y, K, N = "city-yokohama", "pref-kanagawa", "nenkin-kikou"


class Incidents(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        net = cls.net = Network(agencies=3, persons=20)
        net.append_conf("core", "[alerts]\nnot_permitted_threshold = 3\nrate_window_ms = 1000\nrate_factor = 4\n"
                                "rate_min = 12\nunreachable_ms = 600\n"
                                "[core]\noutbox_retry_min_ms = 50\noutbox_retry_max_ms = 200")
        net.append_conf(Y, "[alerts]\nrefusal_threshold = 3\nrefusal_window_ms = 60000")
        net.start()
        number = net.residents()[0]["my_number"]
        for ag, p in ((Y, "Y1"), (K, "K1"), (N, "N1")):
            assert net.enrol(ag, p, number).status == 202
        for ag, p in ((Y, "Y1"), (K, "K1"), (N, "N1")):
            net.wait_status(ag, p, "linked")

    @classmethod
    def tearDownClass(cls):
        cls.net.stop()

    def incidents(self, kind=None):
        path = "/v1/incidents" + (f"?kind={kind}" if kind else "")
        a = self.net.call("core", "GET", path, as_client="operator")
        self.assertEqual(a.status, 200, a)
        return a.json["incidents"]

    def wait_incident(self, kind, text, node=None, timeout=15):
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            for i in self.incidents(kind):
                if text in i["summary"] and (node is None or i["node"] == node):
                    return i
            time.sleep(0.1)
        self.fail(f"no {kind} incident with {text!r} at the core: {self.incidents()}")

    def query(self, ag, qid, person, business, provider, item):
        return self.net.agency_call(ag, "POST", "/v1/queries", {
            "query_id": qid, "person": person, "business": business, "provider": provider, "item": item,
            "operator": "op-1"})

    def test_check_code_mismatch_reaches_the_core(self):
        net = self.net
        net.stop_node(f"{K}-gateway")
        self.assertEqual(net.enrol(K, "MIS", net.residents()[3]["my_number"]).status, 202)
        (acq, check), = net.sqlite(K, "SELECT acquisition_no, check_code FROM pending WHERE person = 'MIS'")
        r = net.call(K, "POST", "/v1/code-notices", {"acquisition_no": acq, "code": "v1-" + "cd" * 16,
                                                     "check_code": (check + 1) % 10},
                     as_client=("node", f"{K}-gateway"))
        self.assertEqual(r.error, "check_code_mismatch")
        net.start_node(f"{K}-gateway")
        i = self.wait_incident("check_code_mismatch", acq, node=K)
        self.assertNotIn("MIS", i["summary"])  # the core learns no person id
        self.assertTrue(i["incident_id"])

    def test_burst_of_refused_calls_raises_unauthorized_access(self):
        for _ in range(3):
            a = self.net.call(Y, "GET", "/v1/persons/Y1", as_client=K)  # another agency's system
            self.assertEqual(a.error, "wrong_agency")
        self.wait_incident("unauthorized_access", "role or agency not allowed", node=Y)

    def test_handshake_refusals_raise_unauthorized_access(self):
        for _ in range(3):
            try:
                self.net.call(Y, "GET", "/healthz", as_client=None)
            except Exception:
                pass
        self.wait_incident("unauthorized_access", "TLS handshake", node=Y)

    def test_code_not_yours_is_an_incident(self):
        with open(self.net.path("nodes", Y, "cert.pem")) as f:
            cert = f.read()
        (k_code,), = self.net.sqlite(K, "SELECT code FROM persons WHERE person = 'K1'")
        a = self.net.call("core", "POST", "/v1/exchanges", {
            "exchange_id": f"{Y}.steal-1", "code": k_code, "business": "child_allowance", "provider": Y,
            "item": "local_tax", "operator": "op-x", "requester_cert": cert}, as_client=("node", f"{Y}-gateway"))
        self.assertEqual(a.error, "code_not_yours")
        self.wait_incident("unauthorized_access", "code issued to another agency")
        # A flood of them is refused and recorded one by one, but raises no
        # second incident within the window (each would be a write on the
        # core's event loop).
        for i in range(2, 6):
            b = self.net.call("core", "POST", "/v1/exchanges", {
                "exchange_id": f"{Y}.steal-{i}", "code": k_code, "business": "child_allowance", "provider": Y,
                "item": "local_tax", "operator": "op-x", "requester_cert": cert}, as_client=("node", f"{Y}-gateway"))
            self.assertEqual(b.error, "code_not_yours")
        outcomes = self.net.sqlite("core", "SELECT outcome FROM records WHERE exchange_id LIKE ?", (f"{Y}.steal-%",))
        self.assertEqual([o for (o,) in outcomes], ["code_not_yours"] * 5)
        raised = [i for i in self.incidents("unauthorized_access") if "code issued to another agency" in i["summary"]]
        self.assertEqual(len(raised), 1)

    def test_burst_of_not_permitted(self):
        for i in range(3):
            a = self.query(N, f"np-{i}", "N1", "national_pension", Y, "child_allowance")
            self.assertEqual(a.error, "not_permitted")
        self.wait_incident("unauthorized_access", f"refuses from {N}")

    def test_request_rate_jump(self):
        for second in range(3):  # a quiet baseline: two requests a second
            for i in range(2):
                self.query(K, f"base-{second}-{i}", "K1", "public_assistance", Y, "local_tax")
            time.sleep(1.0)
        # then a jump: 48 at once from 8 threads, so that neither a window boundary nor a slow
        # (sanitized) build can spread it below the threshold
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: self.query(K, f"jump-{i}", "K1", "public_assistance", Y, "local_tax"), range(48)))
        self.wait_incident("unauthorized_access", f"request rate of {K} jumped")

    def test_peer_unreachable_is_an_outage(self):
        net = self.net
        net.stop_node(f"{N}-gateway")
        try:
            self.assertEqual(net.enrol(N, "GONE", net.residents()[5]["my_number"]).status, 202)
            self.wait_incident("outage", f"code notices to {N} undelivered")
        finally:
            net.start_node(f"{N}-gateway")
        net.wait_status(N, "GONE", "linked")

    def test_incident_report_and_update(self):
        gw = ("node", f"{Y}-gateway")
        first = {"incident_id": "leak-2026-001", "kind": "leak", "summary": "a printout left on a desk",
                 "details": "found by the night guard", "actions": "collected and locked away"}
        a = self.net.call("core", "POST", "/v1/incidents", first, as_client=gw)
        self.assertEqual(a.status, 200, a)
        update = {"incident_id": "leak-2026-001", "kind": "leak", "summary": "a printout left on a desk",
                  "cause": "no clean-desk check at closing", "prevention": "closing checklist, signed daily"}
        self.assertEqual(self.net.call("core", "POST", "/v1/incidents", update, as_client=gw).status, 200)
        i = [x for x in self.incidents("leak") if x["incident_id"] == "leak-2026-001"]
        self.assertEqual(len(i), 1)
        self.assertEqual(i[0]["actions"], "collected and locked away")
        self.assertEqual(i[0]["cause"], "no clean-desk check at closing")
        self.assertEqual(i[0]["prevention"], "closing checklist, signed daily")
        self.assertEqual(i[0]["node"], f"{Y}-gateway")

    def test_incident_refusals(self):
        gw = ("node", f"{Y}-gateway")
        a = self.net.call("core", "POST", "/v1/incidents", {"incident_id": "x1", "kind": "gossip",
                                                           "summary": "?"}, as_client=gw)
        self.assertEqual((a.status, a.error), (400, "invalid_field"))
        a = self.net.call("core", "POST", "/v1/incidents", {"incident_id": "x2", "kind": "leak", "summary": "s"},
                          as_client=Y)  # a business system may not report to the core directly
        self.assertEqual((a.status, a.error), (403, "role_not_allowed"))
        a = self.net.call("core", "GET", "/v1/incidents", as_client=Y)
        self.assertEqual((a.status, a.error), (403, "role_not_allowed"))


if __name__ == "__main__":
    main()
