"""Nothing acknowledged is lost: the core's backup line (第7-1(7)), durable
code notices across outages and restarts, and the check-code rule
(第8-2(1)イ) refusing a mismatched notice. A gateway reaches only the real
core: a server on the core's line with another node's certificate (same
CA) is refused in the handshake, and the exchange goes the backup line."""
import http.server
import ssl
import threading
import time
import unittest

from harness import SLOW, Network, TcpLine, free_port, main


class Resilience(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        net = cls.net = Network(agencies=3, persons=40)
        # The core's primary line runs through a relay that the test can cut.
        primary = net.url_of("core")[1]
        cls.core_port = free_port()
        backup = net.nodes["core"]["backup_url"]
        net.append_conf("core", f"[node]\nlisten = https://127.0.0.1:{cls.core_port}, {backup}\n"
                                "[core]\noutbox_retry_min_ms = 50\noutbox_retry_max_ms = 400")
        cls.line = TcpLine(primary, cls.core_port)
        net.start()
        cls.residents = net.residents()

    @classmethod
    def tearDownClass(cls):
        cls.line.stop()
        cls.net.stop()

    def test_1_primary_line_down_uses_backup_and_loses_nothing(self):
        net, ag = self.net, "city-yokohama"
        for i in range(5):
            self.assertEqual(net.enrol(ag, f"LINE{i}", self.residents[i]["my_number"]).status, 202)
        self.line.stop()  # the primary line is cut
        for i in range(5, 10):
            a = net.enrol(ag, f"LINE{i}", self.residents[i]["my_number"])
            self.assertEqual(a.status, 202, a)
        for i in range(10):
            net.wait_status(ag, f"LINE{i}", "linked")
        lines = dict(net.sqlite("jlis", "SELECT line, count(*) FROM relays GROUP BY line"))
        self.assertGreaterEqual(lines.get("primary", 0), 5)
        self.assertGreaterEqual(lines.get("backup", 0), 5)
        self.assertIn("trying the backup line", net.log("jlis"))

    def test_2_notice_survives_agency_and_gateway_outage_and_core_kill(self):
        net, ag = self.net, "nenkin-kikou"
        net.stop_node(f"{ag}-gateway")
        for i in range(3):
            a = net.enrol(ag, f"LATE{i}", self.residents[20 + i]["my_number"])
            self.assertEqual((a.status, a.json["status"]), (202, "pending"))
        net.stop_node(ag)                      # the agency goes down with notices pending
        net.start_node(f"{ag}-gateway")        # its gateway is back, the agency is not
        time.sleep(0.5 * SLOW)
        pending = net.sqlite("core", "SELECT count(*) FROM outbox WHERE agency = ? AND done_ms IS NULL", (ag,))[0][0]
        self.assertEqual(pending, 3)
        net.kill_node("core")                  # SIGKILL: the outbox is on disk
        net.start_node("core")
        net.start_node(ag)
        for i in range(3):
            net.wait_status(ag, f"LATE{i}", "linked")
        attempts = net.sqlite("core", "SELECT min(attempts) FROM outbox WHERE agency = ?", (ag,))[0][0]
        self.assertGreater(attempts, 1)

    def test_3_check_code_mismatch_is_not_linked_and_is_an_incident(self):
        net, ag = self.net, "pref-kanagawa"
        net.stop_node(f"{ag}-gateway")         # hold the real notice back
        a = net.enrol(ag, "MISMATCH", self.residents[30]["my_number"])
        self.assertEqual(a.status, 202)
        (acq, check), = net.sqlite(ag, "SELECT acquisition_no, check_code FROM pending WHERE person = 'MISMATCH'")
        forged = {"acquisition_no": acq, "code": "v1-" + "ab" * 16, "check_code": (check + 1) % 10}
        r = net.call(ag, "POST", "/v1/code-notices", forged, as_client=("node", f"{ag}-gateway"))
        self.assertEqual((r.status, r.error), (409, "check_code_mismatch"))
        self.assertEqual(net.agency_call(ag, "GET", "/v1/persons/MISMATCH").json["status"], "failed")
        incidents = net.sqlite(ag, "SELECT kind FROM incidents")
        self.assertIn(("check_code_mismatch",), incidents)
        self.assertEqual(net.sqlite(ag, "SELECT code FROM persons WHERE person = 'MISMATCH'"), [(None,)])
        net.start_node(f"{ag}-gateway")        # the real notice now finds no pending acquisition
        deadline = time.time() + 10 * SLOW
        while time.time() < deadline:
            done = net.sqlite("core", "SELECT outcome FROM outbox WHERE acquisition_no = ?", (acq,))
            if done and done[0][0]:
                break
            time.sleep(0.05)
        self.assertEqual(done, [("unknown_acquisition",)])
        self.assertEqual(net.agency_call(ag, "GET", "/v1/persons/MISMATCH").json["status"], "failed")


class Impostor(http.server.BaseHTTPRequestHandler):
    """Answers 503 to anything; counts the POSTs that reached it."""
    posts = 0

    def do_GET(self):
        self.answer()

    def do_POST(self):
        type(self).posts += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.answer()

    def answer(self):
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class GatewayLines(unittest.TestCase):
    def test_impostor_on_the_cores_line_is_refused_and_the_backup_line_serves(self):
        net = Network(agencies=3, persons=10)
        Y, K = "city-yokohama", "pref-kanagawa"
        try:
            # The core listens on its backup line only; on its primary line
            # sits a server with J-LIS's certificate: the network CA's, but
            # not the core's key (the registry's pin).
            host, port = net.url_of("core")
            net.append_conf("core", f"[node]\nlisten = {net.nodes['core']['backup_url']}\n")
            srv = http.server.ThreadingHTTPServer((host, port), Impostor)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(net.path("nodes", "jlis", "cert.pem"), net.path("nodes", "jlis", "key.pem"))
            ctx.load_verify_locations(net.path("pki", "ca.pem"))
            ctx.verify_mode = ssl.CERT_REQUIRED
            srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            try:
                net.start()
                number = net.residents()[0]["my_number"]
                for ag, p in ((Y, "Y1"), (K, "K1")):
                    self.assertEqual(net.enrol(ag, p, number).status, 202)
                    net.wait_status(ag, p, "linked")
                net.agency_call(Y, "PUT", "/v1/data/Y1/local_tax", {"value": {"tax": 7}, "as_of": "2026-01-01"})
                a = net.agency_call(K, "POST", "/v1/queries", {
                    "query_id": "q-lines", "person": "K1", "business": "public_assistance", "provider": Y,
                    "item": "local_tax", "operator": "op-1"})
            finally:
                srv.shutdown()
                srv.server_close()
            self.assertEqual((a.status, a.json.get("status"), a.json.get("value")), (200, "provided", {"tax": 7}), a)
            self.assertEqual(Impostor.posts, 0)
            self.assertIn("trying the backup line", net.log(f"{K}-gateway"))
        finally:
            net.stop()


if __name__ == "__main__":
    main()
