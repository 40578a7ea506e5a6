"""Monitoring and time (standard 第5-4(3), 第6-8): /healthz and /metrics on
every node, the clock offset to the core measured and reported, skewed
requests refused, a read-only store turning health degraded."""
import re
import time
import unittest

from harness import SLOW, STORE, Network, main, renkei

Y, K = "city-yokohama", "pref-kanagawa"


class HealthAndTime(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        net = cls.net = Network(agencies=3, persons=10)
        # pref-kanagawa's node runs 5 s fast; every node checks its clock often.
        for n in net.server_nodes():
            net.append_conf(n["id"], "[clock]\ncheck_ms = 200\nmax_offset_ms = 1000\nmax_skew_ms = 3000")
        net.append_conf(K, "[node]\nclock_offset_ms = 5000")
        net.start_node("ppc", wait=False)  # the core is healthy once it knows the PIA states (法28条)
        net.start_node("core")
        for n in net.server_nodes():
            if n["id"] not in ("core", "ppc"):
                net.start_node(n["id"], wait=(n["id"] != K))

    @classmethod
    def tearDownClass(cls):
        cls.net.stop()

    def health(self, node_id):
        return self.net.call(node_id, "GET", "/healthz", as_client="operator")

    def test_every_node_answers_health_and_metrics(self):
        for n in self.net.server_nodes():
            if n["id"] == K:
                continue
            h = self.health(n["id"])
            self.assertEqual((h.status, h.json["status"]), (200, "ok"), (n["id"], h))
            self.assertTrue(h.json["checks"]["keys_loaded"])
            m = self.net.call(n["id"], "GET", "/metrics", as_client="operator")
            self.assertIn("renkei_refusals_total", m.raw)
        self.assertIn("renkei_outbox_depth", self.net.call("core", "GET", "/metrics", as_client="operator").raw)

    def test_clock_offset_turns_health_degraded_and_raises_an_incident(self):
        deadline = time.time() + 10 * SLOW
        h = None
        while time.time() < deadline:
            try:
                h = self.health(K)  # K was started without waiting: it may not listen yet
            except OSError:
                time.sleep(0.1)
                continue
            if h.status == 503:
                break
            time.sleep(0.1)
        self.assertEqual((h.status, h.json["status"]), (503, "degraded"), h)
        self.assertFalse(h.json["checks"]["clock_ok"])
        self.assertLess(h.json["checks"]["clock_offset_ms"], -4000)
        while time.time() < deadline:
            inc = self.net.call("core", "GET", "/v1/incidents?kind=clock", as_client="operator").json["incidents"]
            if any(i["node"] == K for i in inc):
                break
            time.sleep(0.1)
        self.assertTrue(any(i["node"] == K for i in inc), inc)
        p = renkei("net", "status", self.net.dir, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertRegex(p.stdout, rf"{K}\s.*degraded")

    def test_skewed_request_is_refused(self):
        ahead = str(int(time.time() * 1000) + 60000)
        a = self.net.agency_call(Y, "GET", "/v1/persons/X", headers={"X-Renkei-Created": ahead})
        self.assertEqual((a.status, a.error), (400, "clock_skew"))
        now = str(int(time.time() * 1000))
        self.assertEqual(self.net.agency_call(Y, "GET", "/v1/persons/X", headers={"X-Renkei-Created": now}).status,
                         404)
        m = self.net.call(Y, "GET", "/metrics", as_client="operator").raw
        self.assertGreaterEqual(int(re.search(r'reason="clock_skew"\} (\d+)', m).group(1)), 1)

    def test_node_with_a_fast_clock_is_refused_by_its_peers(self):
        # K's node states creation times 5 s ahead; J-LIS allows 3 s of skew.
        a = self.net.enrol(K, "K-SKEW", self.net.residents()[1]["my_number"])
        self.assertEqual((a.status, a.error), (400, "clock_skew"), a)
        m = self.net.call("jlis", "GET", "/metrics", as_client="operator").raw
        self.assertGreaterEqual(int(re.search(r'reason="clock_skew"\} (\d+)', m).group(1)), 1)
        self.assertEqual(self.net.agency_call(K, "GET", "/v1/persons/K-SKEW").status, 404)  # nothing stored

    def test_read_only_store_turns_health_degraded(self):
        self.net.set_store_read_only(Y, True)
        try:
            h = self.health(Y)
            self.assertEqual((h.status, h.json["status"]), (503, "degraded"))
            self.assertFalse(h.json["checks"]["store_writable"])
        finally:
            self.net.set_store_read_only(Y, False)
        self.assertEqual(self.health(Y).status, 200)

    @unittest.skipUnless(STORE == "postgres", "a database server to lose: PostgreSQL only")
    def test_a_lost_database_turns_health_degraded_then_the_node_recovers(self):
        deadline = time.time() + 30 * SLOW  # K, started without waiting, is up first (its store opened)
        while time.time() < deadline:
            try:
                if self.health(K).status in (200, 503):
                    break
            except OSError:
                pass
            time.sleep(0.05)
        self.net.pg.stop("immediate")  # as a crash would
        try:
            for _ in range(2):  # the first call meets the lost connection, the next one finds no server
                h = self.health(Y)
                self.assertEqual((h.status, h.json["status"]), (503, "degraded"), h)
                self.assertFalse(h.json["checks"]["store_writable"])
        finally:
            self.net.pg.start()
        deadline = time.time() + 10 * SLOW
        while self.health(Y).status != 200 and time.time() < deadline:  # it connects again by itself
            time.sleep(0.1)
        self.assertEqual(self.health(Y).status, 200)
        a = self.net.agency_call(Y, "GET", "/v1/persons/nobody")
        self.assertEqual(a.status, 404, a)  # its store answers again


if __name__ == "__main__":
    main()
