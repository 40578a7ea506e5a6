"""Keys in a PKCS#11 token (DESIGN §3, standard 第5-2(5)): `renkei net init
--hsm` puts every server node's key, the CA key and the registry key in the
network's SoftHSM2 token; the flows run with them (TLS handshakes and CMS signing inside the
token, CMS decryption by ECDH inside it); the core's code master key is
wrapped to the core's token key; `renkei core rotate-code-key` starts a new
code key version while earlier codes still convert; a wrong PIN or a missing
token object stops a node in one clear line."""
import glob
import os
import signal
from concurrent.futures import ThreadPoolExecutor
import subprocess
import time
import unittest

from harness import BIN, SLOW, Network, main, renkei
from portal_verify import verify_answer

Y, K, N = "city-yokohama", "pref-kanagawa", "nenkin-kikou"


class Hsm(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        net = cls.net = Network(agencies=3, persons=20, hsm=True,
                                conf_extra={"core": "[records]\nhead_interval_ms = 100\n"})
        try:
            net.start()
        except Exception:
            net.stop()
            raise
        cls.residents = net.residents()

    @classmethod
    def tearDownClass(cls):
        cls.net.stop()

    def query(self, ag, qid, person, business, provider, item):
        return self.net.agency_call(ag, "POST", "/v1/queries", {
            "query_id": qid, "person": person, "business": business, "provider": provider, "item": item,
            "operator": "op-1"})

    def conf(self, node_id):
        with open(self.net.path("nodes", node_id, "node.conf")) as f:
            return f.read()

    def code_of(self, ag, person):
        (code,), = self.net.sql(ag, "SELECT code FROM persons WHERE person = ?", (person,))
        return code

    def test_1_every_server_key_is_in_the_token(self):
        net = self.net
        roles = set()
        for n in net.server_nodes():
            conf = self.conf(n["id"])
            self.assertIn(f"key = pkcs11:token=renkei;object={n['id']};type=private?module-path=", conf)
            self.assertIn("key_passphrase_file = ../../hsm/pin", conf)
            self.assertFalse(os.path.exists(net.path("nodes", n["id"], "key.pem")), n["id"])
            roles.add(n["role"])
        self.assertEqual(roles, {"core", "jlis", "gateway", "agency", "witness", "portal", "ppc"})
        with open(net.path("pki", "ca-key.pem")) as f:
            self.assertTrue(f.read().startswith("pkcs11:token=renkei;object=network-ca;"))
        with open(net.path("pki", "registry-key.pem")) as f:  # the operator's registry key too
            self.assertTrue(f.read().startswith("pkcs11:token=renkei;object=registry;"))
        with open(net.path("nodes", "core", "master.key")) as f:
            self.assertTrue(f.read().startswith("-----BEGIN CMS-----"))  # wrapped to the core's token key
        self.assertEqual(os.stat(net.path("hsm", "pin")).st_mode & 0o777, 0o600)
        self.assertEqual(glob.glob(net.path("hsm", "*.der")), [])

    def test_2_codes_exchanges_both_ways_and_the_portal(self):
        net = self.net
        number = self.residents[0]["my_number"]
        for ag, person in ((Y, "Y1"), (K, "K1"), (N, "N1")):
            self.assertEqual(net.enrol(ag, person, number).status, 202)
        for ag, person in ((Y, "Y1"), (K, "K1"), (N, "N1")):
            net.wait_status(ag, person, "linked")
            self.assertRegex(self.code_of(ag, person), r"^v1-[0-9a-f]{32}$")
        put = lambda ag, p, item, value: net.agency_call(ag, "PUT", f"/v1/data/{p}/{item}",
                                                         {"value": value, "as_of": "2026-04-01"})
        self.assertEqual(put(Y, "Y1", "local_tax", {"tax": 120000}).status, 200)
        self.assertEqual(put(N, "N1", "pension_benefits", {"annual": 1850000}).status, 200)
        # Y provides to K, and asks N: CMS sealed and opened with token keys at both ends
        a = self.query(K, "h-1", "K1", "public_assistance", Y, "local_tax")
        self.assertEqual((a.status, a.json.get("status")), (200, "provided"), a)
        self.assertEqual(a.json["value"]["tax"], 120000)
        b = self.query(Y, "h-2", "Y1", "child_allowance", N, "pension_benefits")
        self.assertEqual((b.status, b.json.get("status")), (200, "provided"), b)
        self.assertEqual(b.json["value"]["annual"], 1850000)
        # the person sees both at the portal, proven by the core's log and the witness
        _, folder = net.issue_card(1)
        log_vkey = next(n for n in net.registry["nodes"] if n["id"] == "core")["log_vkey"]
        witnesses = [n["vkey"] for n in net.registry["nodes"] if n["role"] == "witness"]
        deadline = time.time() + 20 * SLOW
        while True:
            page = net.person_call(folder, "GET", "/v1/me/exchanges")
            self.assertEqual(page.status, 200, page)
            got = page.json["exchanges"]
            if len(got) == 2 and all("inclusion_proof" in e for e in got):
                break
            self.assertLess(time.time(), deadline, page)
            time.sleep(0.2)
        verify_answer(page.json, log_vkey, witnesses)

    def test_2b_concurrent_exchanges_share_the_token(self):
        # handshakes and CMS at several nodes at once, on worker threads and
        # the event loop, each node with its one token session
        with ThreadPoolExecutor(max_workers=12) as pool:
            answers = list(pool.map(
                lambda i: self.query(K, f"h-c{i}", "K1", "public_assistance", Y, "local_tax"), range(36)))
        for a in answers:
            self.assertEqual((a.status, a.json.get("status")), (200, "provided"), a)

    def test_3_code_key_rotation_keeps_earlier_codes(self):
        net = self.net
        old_code = self.code_of(K, "K1")
        conf = net.path("nodes", "core", "node.conf")
        net.stop_node("core")
        p = renkei("core", "rotate-code-key", "--config", conf)
        self.assertIn("code key version 2 started", p.stdout)
        with open(net.path("nodes", "core", "master.key")) as f:
            self.assertTrue(f.read().startswith("-----BEGIN CMS-----"))  # still wrapped
        net.start_node("core")
        number = self.residents[1]["my_number"]
        for ag, person in ((Y, "Y2"), (K, "K2")):
            self.assertEqual(net.enrol(ag, person, number).status, 202)
        for ag, person in ((Y, "Y2"), (K, "K2")):
            net.wait_status(ag, person, "linked")
            self.assertRegex(self.code_of(ag, person), r"^v2-[0-9a-f]{32}$")
        self.assertEqual(self.code_of(K, "K1"), old_code)
        # a version-1 code still converts: K1's query is answered
        a = self.query(K, "h-3", "K1", "public_assistance", Y, "local_tax")
        self.assertEqual((a.status, a.json.get("status")), (200, "provided"), a)
        self.assertEqual(net.agency_call(Y, "PUT", "/v1/data/Y2/local_tax",
                                         {"value": {"tax": 1}, "as_of": "2026-04-01"}).status, 200)
        b = self.query(K, "h-4", "K2", "public_assistance", Y, "local_tax")
        self.assertEqual((b.status, b.json.get("status")), (200, "provided"), b)

    def test_4_a_wrong_pin_or_a_missing_object_stops_the_node_in_one_line(self):
        net = self.net
        gw = f"{Y}-gateway"
        text = self.conf(gw)
        wrong_pin = net.path("hsm", "wrong-pin")
        with open(wrong_pin, "w") as f:
            f.write("000000\n")
        os.chmod(wrong_pin, 0o600)
        cases = [(text.replace("../../hsm/pin", wrong_pin), "the token refused the PIN"),
                 (text.replace(f"object={gw};", "object=no-such-key;"), "no such private key in the token")]
        for i, (body, want) in enumerate(cases):
            path = net.path("nodes", gw, f"refused-{i}.conf")
            with open(path, "w") as f:
                f.write(body)
            p = subprocess.run([BIN, "gateway", "--config", path], capture_output=True, text=True, timeout=30 * SLOW)
            self.assertNotEqual(p.returncode, 0)
            lines = p.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, p.stderr)
            self.assertIn(want, lines[0])
            self.assertNotIn("000000", lines[0])
        # the running gateway was not disturbed
        self.assertEqual(net.call(gw, "GET", "/healthz", as_client="operator").status, 200)

    def test_4b_the_registry_is_signed_in_the_token(self):
        """`renkei registry publish` signs with the registry key in the network's token (found
        without SOFTHSM2_CONF), and the nodes open what it signed under their anchor."""
        net = self.net
        env = {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}
        p = subprocess.run([BIN, "registry", "publish", net.dir], capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        serial = int(p.stdout.split()[-1])
        for node in ("core", "jlis"):
            net.procs[node].send_signal(signal.SIGHUP)
            deadline = time.time() + 10 * SLOW
            while net.call(node, "GET", "/healthz", as_client="operator").json["checks"]["registry_serial"] != serial:
                self.assertLess(time.time(), deadline, node)
                time.sleep(0.1)
        self.assertIsNone(net.call("jlis", "GET", "/healthz", as_client="operator").json["checks"]["registry_error"])

    def test_5_records_verify_with_token_keys(self):
        net = self.net
        time.sleep(0.5)  # a head after the last exchange
        for n in net.server_nodes():
            net.stop_node(n["id"])
        p = renkei("records", "verify", net.dir, check=False, timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("records are intact", p.stdout)


if __name__ == "__main__":
    main()
