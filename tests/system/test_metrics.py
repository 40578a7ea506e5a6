"""/metrics for a monitoring system (issue 16; standard 第5-4(3)): every
node's page, after real traffic, passes Prometheus' own checker
(`promtool check metrics`: parse and lint), each family has its HELP and
TYPE, counters end in _total, times are in seconds."""
import re
import shutil
import subprocess
import time
import unittest

from harness import SLOW, Network, main

Y, K = "city-yokohama", "pref-kanagawa"


def promtool():
    path = shutil.which("promtool")
    if not path:
        raise AssertionError("promtool is missing: scripts/install-deps.sh installs the Debian package prometheus")
    return path


class Metrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        net = cls.net = Network(agencies=2, persons=5)
        net.append_conf("core", "[records]\nhead_interval_ms = 100")
        net.start()
        # Traffic on every kind of node: an enrolment through J-LIS, the core
        # and a gateway; a query that makes a record at the core; refusals.
        number = net.residents()[0]["my_number"]
        for ag, person in ((Y, "Y1"), (K, "K1")):
            assert net.enrol(ag, person, number).status == 202
        for ag, person in ((Y, "Y1"), (K, "K1")):
            net.wait_status(ag, person, "linked")
        assert net.agency_call(Y, "PUT", "/v1/data/Y1/local_tax",
                               {"value": {"tax": 1}, "as_of": "2025-06-01"}).status == 200
        a = net.agency_call(K, "POST", "/v1/queries", {"query_id": "q1", "person": "K1", "business": "public_assistance",
                                                       "provider": Y, "item": "local_tax", "operator": "op-1"})
        assert a.status == 200, a
        assert net.agency_call(Y, "GET", "/v1/nowhere").status == 404
        assert net.agency_call(Y, "POST", "/v1/persons", {"person": "Y2"}).status == 400

    @classmethod
    def tearDownClass(cls):
        cls.net.stop()

    def page(self, node_id):
        m = self.net.call(node_id, "GET", "/metrics", as_client="operator")
        self.assertEqual(m.status, 200, m)
        self.assertTrue(m.headers.get("Content-Type", "").startswith("text/plain; version=0.0.4"), m.headers)
        return m.raw

    def test_every_node_passes_promtool(self):
        tool = promtool()
        for n in self.net.server_nodes():
            text = self.page(n["id"])
            p = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, f"{n['id']}: {p.stdout}{p.stderr}\n{text}")
            self.assertEqual(p.stdout.strip() + p.stderr.strip(), "", f"{n['id']}: {p.stdout}{p.stderr}")

    def test_families_have_help_and_type_and_base_units(self):
        for n in self.net.server_nodes():
            text = self.page(n["id"])
            helps = set(re.findall(r"^# HELP (\S+) \S", text, re.M))
            types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
            self.assertEqual(helps, set(types), n["id"])
            for line in text.splitlines():
                if line.startswith("#"):
                    continue
                name = re.match(r"[a-z_]+", line).group(0)
                family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
                self.assertIn(family, types, f"{n['id']}: {line}")
                self.assertEqual(name.endswith("_total"), types[family] == "counter", f"{n['id']}: {line}")
                self.assertNotRegex(name, r"_(ms|milliseconds|us)(_|$)", f"{n['id']}: {line}")
            self.assertEqual(types["renkei_request_duration_seconds"], "histogram")

    def test_request_durations_are_in_seconds(self):
        text = self.page(Y)
        # the enrolment route was called: its histogram ends at +Inf, its
        # count equals its +Inf bucket, its sum is a few seconds at most
        ep = 'endpoint="POST /v1/persons"'
        inf = int(re.search(r'renkei_request_duration_seconds_bucket\{%s,le="\+Inf"\} (\d+)' % ep, text).group(1))
        count = int(re.search(r"renkei_request_duration_seconds_count\{%s\} (\d+)" % ep, text).group(1))
        total = float(re.search(r"renkei_request_duration_seconds_sum\{%s\} (\S+)" % ep, text).group(1))
        self.assertEqual(inf, count)
        self.assertGreaterEqual(count, 2)
        self.assertLess(total, 30 * SLOW)
        self.assertIn('le="0.001"', text)
        self.assertIn('le="5"', text)

    def test_tree_head_age_is_in_seconds(self):
        deadline = time.time() + 10 * SLOW
        age = None
        while time.time() < deadline:
            m = re.search(r"^renkei_tree_head_age_seconds (\S+)$", self.page("core"), re.M)
            self.assertIsNotNone(m)
            age = float(m.group(1))
            if age >= 0:
                break
            time.sleep(0.1)
        # a head is signed every 0.1 s while records arrive: the last one a
        # moment ago, in seconds (not milliseconds)
        self.assertGreaterEqual(age, 0)
        self.assertLess(age, 60 * SLOW)
        self.assertNotIn("renkei_tree_head_age_ms", self.page("core"))


if __name__ == "__main__":
    main()
