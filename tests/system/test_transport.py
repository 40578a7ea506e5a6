"""Transport and identity (standard 第5-2(2)-(5), 第5-4(1), 第6-2, 第6-3, 第7-1,
第8-1): TLS 1.3 with a client certificate from the network CA on every call,
registered peers only, each endpoint open to the roles that may call it."""
import http.client
import os
import re
import ssl
import subprocess
import tempfile
import time

from harness import BIN, NetworkTest, main, renkei

REFUSED = (ssl.SSLError, ConnectionError, http.client.HTTPException)


class Transport(NetworkTest):
    def metric(self, node_id, reason):
        text = self.net.call(node_id, "GET", "/metrics", as_client="operator").raw
        m = re.search(r'renkei_refusals_total\{reason="%s"\} (\d+)' % reason, text)
        return int(m.group(1))

    def test_no_client_certificate_is_refused_in_the_handshake(self):
        before = self.metric("core", "tls")
        with self.assertRaises(REFUSED):
            self.net.call("core", "GET", "/healthz", as_client=None)
        time.sleep(0.2)
        self.assertGreater(self.metric("core", "tls"), before)

    def test_certificate_from_another_ca_is_refused(self):
        d = tempfile.mkdtemp()
        renkei("pki", "init", os.path.join(d, "ca"))
        renkei("pki", "issue", "--ca", os.path.join(d, "ca"), "--id", "city-yokohama-system", "--role", "system",
               "--name", "city-yokohama", "--ip", "127.0.0.1", "--out", os.path.join(d, "c"))
        cert = (os.path.join(d, "c", "cert.pem"), os.path.join(d, "c", "key.pem"))
        with self.assertRaises(REFUSED):
            self.net.call("city-yokohama", "GET", "/v1/persons/X", cert=cert)

    def test_expired_certificate_is_refused(self):
        d = tempfile.mkdtemp()
        now = int(time.time())
        renkei("pki", "issue", "--ca", self.net.path("pki"), "--id", "city-yokohama-system", "--role", "system",
               "--name", "city-yokohama", "--not-before", now - 86400 * 10, "--not-after", now - 86400,
               "--out", d)
        with self.assertRaises(REFUSED):
            self.net.call("city-yokohama", "GET", "/v1/persons/X", cert=(os.path.join(d, "cert.pem"),
                                                                          os.path.join(d, "key.pem")))

    def test_unregistered_certificate_of_the_network_ca_is_403(self):
        d = tempfile.mkdtemp()
        renkei("pki", "issue", "--ca", self.net.path("pki"), "--id", "intruder", "--role", "system",
               "--name", "city-yokohama", "--out", d)
        a = self.net.call("city-yokohama", "GET", "/v1/persons/X",
                          cert=(os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")))
        self.assertEqual((a.status, a.error), (403, "unknown_peer"))

    def test_agency_calling_the_cores_codes_endpoint_is_403(self):
        before = self.metric("core", "role")
        body = {"agency": "city-yokohama", "acquisition_no": "00" * 16, "resident_code": "12345678901",
                "check_code": 1}
        a = self.net.call("core", "POST", "/v1/codes", body, as_client=("node", "city-yokohama"))
        self.assertEqual((a.status, a.error), (403, "role_not_allowed"))
        a = self.net.call("core", "POST", "/v1/codes", body, as_client=("node", "city-yokohama-gateway"))
        self.assertEqual((a.status, a.error), (403, "role_not_allowed"))
        self.assertEqual(self.metric("core", "role"), before + 2)
        self.assertEqual(self.net.sqlite("core", "SELECT count(*) FROM acquisitions WHERE acquisition_no = ?",
                                         ("00" * 16,))[0][0], 0)

    def test_business_system_of_another_agency_is_403(self):
        a = self.net.call("city-yokohama", "GET", "/v1/persons/X", as_client="pref-kanagawa")
        self.assertEqual((a.status, a.error), (403, "wrong_agency"))
        a = self.net.call("city-yokohama", "POST", "/v1/code-notices",
                          {"acquisition_no": "00" * 16, "code": "v1-" + "0" * 32, "check_code": 0},
                          as_client=("node", "pref-kanagawa-gateway"))
        self.assertEqual((a.status, a.error), (403, "wrong_agency"))

    def test_business_system_may_not_call_jlis_or_the_core(self):
        a = self.net.call("jlis", "POST", "/v1/code-requests", {"acquisition_no": "00" * 16,
                                                                "my_number": "123456789018"},
                          as_client="city-yokohama")
        self.assertEqual((a.status, a.error), (403, "role_not_allowed"))

    def test_health_and_metrics_for_registered_peers(self):
        a = self.net.call("core", "GET", "/healthz", as_client="operator")
        self.assertEqual(a.status, 200)
        self.assertEqual(a.json["status"], "ok")
        self.assertTrue(a.json["checks"]["store_writable"])
        self.assertIn("X-Renkei-Time", a.headers)
        m = self.net.call("jlis", "GET", "/metrics", as_client="city-yokohama")
        self.assertEqual(m.status, 200)
        self.assertIn("renkei_refusals_total", m.raw)


class KeyProtection(NetworkTest):
    """第5-2(5): private keys 0600, optionally encrypted with a passphrase."""

    def run_node(self, node_id, timeout=5):
        try:
            return subprocess.run([BIN, self.net.nodes[node_id]["role"], "--config",
                                   self.net.path("nodes", node_id, "node.conf")],
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def test_key_readable_by_others_refuses_to_start(self):
        node = "nenkin-kikou-gateway"
        self.net.stop_node(node)
        key = self.net.path("nodes", node, "key.pem")
        os.chmod(key, 0o644)
        p = self.run_node(node)
        os.chmod(key, 0o600)
        self.assertIsNotNone(p)
        self.assertEqual(p.returncode, 1)
        self.assertIn("readable by group or others", p.stderr)
        self.net.start_node(node)

    def test_passphrase_encrypted_key(self):
        node = "pref-kanagawa-gateway"
        self.net.stop_node(node)
        d = self.net.path("nodes", node)
        with open(os.path.join(d, "pass"), "w") as f:
            f.write("correct horse battery staple\n")
        os.chmod(os.path.join(d, "pass"), 0o600)
        subprocess.run(["openssl", "pkcs8", "-topk8", "-in", os.path.join(d, "key.pem"), "-out",
                        os.path.join(d, "key.enc.pem"), "-v2", "aes-256-cbc", "-passout",
                        "file:" + os.path.join(d, "pass")], check=True)
        os.chmod(os.path.join(d, "key.enc.pem"), 0o600)
        with open(os.path.join(d, "node.conf")) as f:
            conf = f.read()
        with open(os.path.join(d, "node.conf"), "w") as f:
            f.write(conf.replace("key = key.pem", "key = key.enc.pem\nkey_passphrase_file = pass"))
        with open(os.path.join(d, "wrong"), "w") as f:
            f.write("wrong\n")
        os.chmod(os.path.join(d, "wrong"), 0o600)
        self.net.start_node(node)  # starts with the right passphrase
        self.net.stop_node(node)
        with open(os.path.join(d, "node.conf"), "w") as f:
            f.write(conf.replace("key = key.pem", "key = key.enc.pem\nkey_passphrase_file = wrong"))
        p = self.run_node(node)
        self.assertIsNotNone(p)
        self.assertEqual(p.returncode, 1)
        self.assertIn("passphrase", p.stderr)
        with open(os.path.join(d, "node.conf"), "w") as f:
            f.write(conf)
        self.net.start_node(node)


if __name__ == "__main__":
    main()
