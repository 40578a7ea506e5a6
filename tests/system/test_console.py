"""The network operator's console at the core (issue 14), through its API:
GET /v1/network lists every node of the registry with its health as the
core's sweeper last saw it (ok, degraded when a node answers not ok, down
when it does not answer); the console's pages and /v1/network are the
network operator's alone; GET /v1/records searches by agency, outcome and
time, each malformed filter refused; an incident's report (actions, cause,
prevention) is updated by the operator. The page itself, in a browser:
test_console_browser.py."""
import time
import unittest

from harness import SLOW, Network, main

Y, K, N = "city-yokohama", "pref-kanagawa", "nenkin-kikou"


class Console(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        net = cls.net = Network(agencies=3, persons=20, conf_extra={"core": "[core]\nhealth_sweep_s = 1"})
        net.start()
        number = net.residents()[0]["my_number"]
        for ag, p in ((Y, "Y1"), (K, "K1")):
            assert net.enrol(ag, p, number).status == 202
        for ag, p in ((Y, "Y1"), (K, "K1")):
            net.wait_status(ag, p, "linked")
        assert net.agency_call(Y, "PUT", "/v1/data/Y1/local_tax", {"value": {"income": 3}, "as_of": "2026-01-01"}
                               ).status == 200
        cls.provided = net.agency_call(K, "POST", "/v1/queries", {
            "query_id": "c-1", "person": "K1", "business": "public_assistance", "provider": Y, "item": "local_tax",
            "operator": "op-1"})
        cls.refused = net.agency_call(Y, "POST", "/v1/queries", {
            "query_id": "c-2", "person": "Y1", "business": "public_assistance", "provider": K, "item": "local_tax",
            "operator": "op-1"})

    @classmethod
    def tearDownClass(cls):
        cls.net.stop()

    def operator(self, method, path, body=None, who="operator"):
        return self.net.call("core", method, path, body, as_client=who)

    def network(self):
        a = self.operator("GET", "/v1/network")
        self.assertEqual(a.status, 200, a)
        return {n["id"]: n for n in a.json["nodes"]}

    def wait_state(self, node_id, want, timeout=20):
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            n = self.network()[node_id]
            if n["health"]["state"] == want:
                return n
            time.sleep(0.2)
        self.fail(f"{node_id} never {want}: {self.network()[node_id]}")

    def test_every_node_with_its_health(self):
        nodes = self.network()
        self.assertEqual(set(nodes), set(self.net.nodes))
        for node_id, n in nodes.items():
            reg = self.net.nodes[node_id]
            self.assertEqual((n["role"], n["url"]), (reg["role"], reg.get("url", "")))
            if reg.get("url"):
                self.wait_state(node_id, "ok")
            else:  # a client (business system, operator) has no health
                self.assertNotIn("health", n)
        self.assertEqual(self.network()[Y]["health"]["healthz"]["status"], "ok")

    def test_a_stopped_node_shows_down_then_ok(self):
        self.net.stop_node(f"{N}-gateway")
        try:
            n = self.wait_state(f"{N}-gateway", "down")
            self.assertEqual(n["health"]["http_status"], 0)
        finally:
            self.net.start_node(f"{N}-gateway")
        self.wait_state(f"{N}-gateway", "ok")

    def test_pages_and_network_are_the_network_operators(self):
        for path, ctype in (("/console", "text/html"), ("/console/console.js", "text/javascript"),
                            ("/console/console.css", "text/css")):
            a = self.operator("GET", path)
            self.assertEqual(a.status, 200, a)
            self.assertTrue(a.headers["Content-Type"].startswith(ctype), a.headers)
            self.assertIn("default-src 'none'", a.headers.get("Content-Security-Policy", ""))  # nothing from outside
            self.assertEqual(a.headers.get("X-Frame-Options"), "DENY")
        page = self.operator("GET", "/console").raw
        self.assertNotIn("http://", page.replace("http://www.w3.org", ""))  # nothing from outside
        self.assertEqual(self.operator("GET", "/console/nothing").status, 404)
        for path in ("/console", "/v1/network"):
            a = self.operator("GET", path, who=f"{Y}-operator")  # an agency's operator
            self.assertEqual((a.status, a.error), (403, "role_not_allowed"), a)
            a = self.operator("GET", path, who=Y)  # a business system
            self.assertEqual(a.status, 403, a)
            a = self.net.call("core", "GET", path, as_client=("node", f"{Y}-gateway"))
            self.assertEqual(a.status, 403, a)
        self.assertEqual(self.operator("POST", "/v1/network", {}).status, 405)

    def records(self, query):
        a = self.operator("GET", "/v1/records?" + query)
        self.assertEqual(a.status, 200, a)
        return a.json["records"]

    def test_records_by_agency_outcome_and_time(self):
        self.assertEqual(self.provided.json.get("status"), "provided", self.provided)
        self.assertEqual(self.refused.error, "not_permitted", self.refused)
        by_y = self.records(f"agency={Y}")
        self.assertTrue(by_y and all(Y in (r["requester"], r["provider"]) for r in by_y), by_y)
        self.assertEqual({r["outcome"] for r in self.records(f"agency={Y}&outcome=not_permitted")},
                         {"not_permitted"})
        self.assertEqual(self.records(f"agency={N}"), [])
        today = time.strftime("%Y-%m-%d", time.gmtime())
        tomorrow = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 86400))
        self.assertEqual(len(self.records(f"since={today}&until={tomorrow}")), len(self.records("limit=500")))
        self.assertEqual(self.records(f"since={tomorrow}"), [])
        self.assertEqual(self.records(f"until={today}T00:00:00Z"), [])
        for bad in ("since=2026-13-01", "until=yesterday", f"since={tomorrow}&until={today}", "since=2026-01-01T25:00:00Z",
                    "agency=" + "a" * 80, "outcome=" + "o" * 40, "since=2026-01-01T00:00:00"):
            a = self.operator("GET", "/v1/records?" + bad)
            self.assertEqual((a.status, a.error), (400, "invalid_field"), bad)

    def test_an_incident_report_updated(self):
        inc = {"incident_id": "inc-console-1", "kind": "outage", "node": "core", "summary": "a line was down"}
        self.assertEqual(self.operator("POST", "/v1/incidents", inc).status, 200)
        report = dict(inc, actions="switched lines", cause="a cable", prevention="two cables")
        self.assertEqual(self.operator("POST", "/v1/incidents", report).status, 200)
        got = [i for i in self.operator("GET", "/v1/incidents?kind=outage").json["incidents"]
               if i["incident_id"] == "inc-console-1"]
        self.assertEqual([(i["cause"], i["prevention"], i["actions"]) for i in got],
                         [("a cable", "two cables", "switched lines")])
        a = self.operator("POST", "/v1/incidents", dict(report, cause="x" * 4001))
        self.assertEqual((a.status, a.error), (400, "invalid_field"))


if __name__ == "__main__":
    main()
