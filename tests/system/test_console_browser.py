"""The operator console in a real browser (issue 14): headless Chromium
(tests/system/browser.py) with the network operator's credential as its
client certificate opens the core's /console: every node is listed with its
health, the incidents are listed and one's report (cause, prevention) is
saved through the page's form — the core then holds it — and a search by
exchange id finds that exchange's record. Screenshots go to a temporary
folder printed at the end. Chromium missing is a failure, not a skip:
scripts/install-deps.sh installs it."""
import json
import os
import shutil
import tempfile
import unittest

from browser import TOOLS, Browser, p12_of
from harness import Network, main

Y, K = "city-yokohama", "pref-kanagawa"


class ConsolePage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        missing = [t for t in TOOLS if not shutil.which(t)]
        if missing:
            raise AssertionError(f"missing {', '.join(missing)}: run scripts/install-deps.sh")
        cls.shots = tempfile.mkdtemp(prefix="renkei-console-browser-")
        net = cls.net = Network(agencies=3, persons=8, conf_extra={"core": "[core]\nhealth_sweep_s = 1"})
        net.start()
        number = net.residents()[0]["my_number"]
        for ag, p in ((Y, "YA"), (K, "KA")):
            assert net.enrol(ag, p, number).status == 202
        for ag, p in ((Y, "YA"), (K, "KA")):
            net.wait_status(ag, p, "linked")
        assert net.agency_call(Y, "PUT", "/v1/data/YA/local_tax", {"value": {"v": 1}, "as_of": "2026-04-01"}).status == 200
        cls.xid = net.agency_call(K, "POST", "/v1/queries", {
            "query_id": "cb-1", "person": "KA", "business": "public_assistance", "provider": Y, "item": "local_tax",
            "operator": "op-1"}).json["exchange_id"]
        assert net.agency_call(Y, "POST", "/v1/queries", {  # refused: a second record the search leaves out
            "query_id": "cb-2", "person": "YA", "business": "public_assistance", "provider": K, "item": "local_tax",
            "operator": "op-1"}).error == "not_permitted"
        cls.incident = {"incident_id": "inc-page-1", "kind": "outage", "node": f"{Y}-gateway",
                        "summary": "the gateway's line dropped"}
        assert net.call("core", "POST", "/v1/incidents", cls.incident, as_client="operator").status == 200
        host, port = net.url_of("core")
        cls.url = f"https://{host}:{port}"
        try:
            p12 = p12_of(*net.credentials("operator"), os.path.join(cls.shots, "operator.p12"))
            cls.browser = Browser(os.path.join(cls.shots, "chromium"), p12, net.path("pki", "ca.pem"), cls.url)
        except Exception:
            net.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        cls.net.stop()
        print(f"\nscreenshots: {cls.shots}", flush=True)

    def open_page(self):
        b = self.browser
        b.cmd("Page.navigate", url=self.url + "/console")
        b.wait("document.readyState === 'complete' && document.querySelectorAll('#node-list tbody tr').length > 0 &&"
               " !document.querySelector('#node-list .state.unknown')", "the nodes' health")

    def until_state(self, node_id, state):
        """Reloads the nodes' list (the page's own loadNetwork) until node_id shows state (None: every node)."""
        test = (f"r => r.dataset.node === {json.dumps(node_id)} && r.cells[3].innerText === {json.dumps(state)}"
                if node_id else f"r => r.cells[3].innerText === {json.dumps(state)}")
        some = "some" if node_id else "every"
        return self.browser.js(
            f"(async () => {{ for (let i = 0; i < 150; i++) {{ await loadNetwork();"
            f" if (Array.from(document.querySelectorAll('#node-list tbody tr')).{some}({test})) return true;"
            f" await new Promise(ok => setTimeout(ok, 200)); }} return false; }})()")

    def test_nodes_incidents_and_records(self):
        b, net = self.browser, self.net
        self.open_page()
        self.assertTrue(self.until_state(None, "ok"))
        states = b.js("Object.fromEntries(Array.from(document.querySelectorAll('#node-list tbody tr'))"
                      ".map(r => [r.dataset.node, r.cells[3].innerText]))")
        servers = {n["id"] for n in net.server_nodes()}
        self.assertEqual(set(states), servers)
        self.assertEqual(set(states.values()), {"ok"}, states)
        registry = b.js("document.querySelectorAll('#registry-list tbody tr').length")
        self.assertEqual(registry, len(net.registry["nodes"]))
        b.screenshot("console-nodes.png")

        # the incident, and its report written through the form
        b.wait("!!document.querySelector('#incident-list tr[data-incident=\"inc-page-1\"] button.edit')",
               "the incident listed")
        b.js("document.querySelector('#incident-list tr[data-incident=\"inc-page-1\"] button.edit').click()")
        b.js("document.getElementById('report-cause').value = 'a cable cut by works';"
             "document.getElementById('report-prevention').value = 'a second cable on another route';"
             "document.getElementById('report-save').click()")
        b.wait("document.getElementById('incidents-status').innerText.includes('更新しました')", "the report saved")
        held = [i for i in net.call("core", "GET", "/v1/incidents?kind=outage", as_client="operator").json["incidents"]
                if i["incident_id"] == "inc-page-1"]
        self.assertEqual([(i["cause"], i["prevention"], i["node"], i["summary"]) for i in held],
                         [("a cable cut by works", "a second cable on another route", f"{Y}-gateway",
                           self.incident["summary"])])
        cause = b.js("document.querySelector('#incident-list tr[data-incident=\"inc-page-1\"]').cells[5].innerText")
        self.assertEqual(cause, "a cable cut by works")
        b.screenshot("console-incidents.png")

        # a record by its exchange id
        b.js(f"document.getElementById('rec-exchange').value = {json.dumps(self.xid)};"
             "document.querySelector('#record-search button[type=submit]').click()")
        b.wait("document.getElementById('records-status').innerText.startsWith('1 件') &&"
               f" !!document.querySelector('#record-list tr[data-exchange={json.dumps(self.xid)}]')", "the search")
        rows = b.js("Array.from(document.querySelectorAll('#record-list tbody tr')).map(r => r.dataset.exchange)")
        self.assertEqual(len(net.call("core", "GET", "/v1/records", as_client="operator").json["records"]), 2)
        self.assertEqual(rows, [self.xid])
        b.screenshot("console-records.png")

    def test_a_down_node_shows_down(self):
        b, net = self.browser, self.net
        net.stop_node(f"{K}-gateway")
        try:
            self.open_page()
            self.assertTrue(self.until_state(f"{K}-gateway", "down"))
            b.screenshot("console-down.png")
        finally:
            net.start_node(f"{K}-gateway")
        self.assertTrue(self.until_state(f"{K}-gateway", "ok"))


if __name__ == "__main__":
    main()
