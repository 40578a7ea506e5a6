"""Certificates revoked and renewed (DESIGN §3; standard 第5-2(2), 第5-2(3)(4)):
`renkei pki revoke` writes the network CA's CRL; a node loads it at start and
on SIGHUP, refuses a revoked peer in the TLS handshake, and a requester refuses
a payload signed with a revoked certificate (`bad_payload`, recorded).
`renkei pki renew` gives a node a new key and certificate; the previous one is
accepted until the end of its overlap and refused after. Every bad input to
the two commands: one line on stderr, a non-zero exit, nothing changed."""
import base64
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import time
import unittest

from harness import SLOW, Network, main, renkei

Y, K, H = "city-yokohama", "pref-kanagawa", "kyokai-kenpo"


def refused(fn):
    """True when the call fails in the TLS handshake (or its first read)."""
    try:
        fn()
    except (ssl.SSLError, ConnectionError, http.client.HTTPException, OSError):
        return True
    return False



def fast_registry(net):
    """Every node fetches the signed registry each second (DESIGN §3)."""
    for n in net.server_nodes():
        net.append_conf(n["id"], "[registry]\nrefresh = 1")


def wait_registry(net, nodes, timeout=15):
    """Until each node applied the registry published last (`renkei pki renew` and
    `renkei records rotate-log-key` publish it)."""
    serial = int(renkei("registry", "show", net.dir).stdout.split("\n")[0].split()[1])
    deadline = time.time() + timeout * SLOW
    for n in nodes:
        while net.call(n, "GET", "/healthz", as_client="operator").json["checks"].get("registry_serial") != serial:
            assert time.time() < deadline, f"{n} did not apply registry serial {serial}"
            time.sleep(0.1)

class Revoke(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        net = cls.net = Network(agencies=4, persons=10)
        fast_registry(net)
        net.start()
        number = net.residents()[0]["my_number"]
        for ag, person in ((Y, "Y1"), (K, "K1"), (H, "H1")):
            assert net.enrol(ag, person, number).status == 202
        for ag, person in ((Y, "Y1"), (K, "K1"), (H, "H1")):
            net.wait_status(ag, person, "linked")
        a = net.agency_call(Y, "PUT", "/v1/data/Y1/local_tax", {"value": {"tax": 120000}, "as_of": "2026-06-01"})
        assert a.status == 200, a

    @classmethod
    def tearDownClass(cls):
        cls.net.stop()

    def query(self, ag, qid, person, provider="city-yokohama", business="public_assistance", item="local_tax"):
        return self.net.agency_call(ag, "POST", "/v1/queries", {
            "query_id": qid, "person": person, "business": business, "provider": provider, "item": item,
            "operator": "op-1"})

    def files(self):
        paths = [self.net.path("pki", "crl.pem"), self.net.path("network.json")]
        for d in ("nodes", "clients"):
            for root, _, names in os.walk(self.net.path(d)):
                paths += [os.path.join(root, n) for n in names if n.endswith(".pem")]
        out = {}
        for p in paths:
            with open(p, "rb") as f:
                out[p] = f.read()
        return out

    def test_1_bad_input_is_refused_and_changes_nothing(self):
        net = self.net
        before = self.files()
        cases = [
            (["pki", "revoke"], 2),
            (["pki", "revoke", net.dir], 2),
            (["pki", "revoke", net.dir, "core", "extra"], 2),
            (["pki", "revoke", net.dir, "no-such-node"], 1),
            (["pki", "revoke", net.dir, "core", "--reason", "compromised"], 2),
            (["pki", "revoke", net.dir, "core", "--reason", ""], 2),
            (["pki", "revoke", net.dir, "core", "--reason"], 2),
            (["pki", "revoke", net.dir, "core", "--bogus"], 2),
            (["pki", "revoke", net.path("nowhere"), "core"], 1),
            (["pki", "renew"], 2),
            (["pki", "renew", net.dir], 2),
            (["pki", "renew", net.dir, "no-such-node"], 1),
            (["pki", "renew", net.dir, "core", "--overlap-days", "-1"], 2),
            (["pki", "renew", net.dir, "core", "--overlap-days", "366"], 2),
            (["pki", "renew", net.dir, "core", "--overlap-days", "7x"], 2),
            (["pki", "renew", net.dir, "core", "--overlap-until", "soon"], 2),
            (["pki", "renew", net.dir, "core", "--overlap-days", "1", "--overlap-until", "1"], 2),
            (["pki", "renew", net.path("nowhere"), "core"], 1),
        ]
        for args, code in cases:
            with self.subTest(args=args[1:]):
                r = renkei(*args, check=False)
                self.assertEqual(r.returncode, code, (r.stdout, r.stderr))
                lines = r.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, r.stderr)
                self.assertTrue(lines[0].startswith("renkei pki: "), r.stderr)
                self.assertEqual(r.stdout, "")
        # a certificate that is not the registered one is neither revoked nor renewed
        cert = net.path("nodes", "jlis", "cert.pem")
        shutil.copy(cert, cert + ".keep")
        try:
            shutil.copy(net.path("nodes", "core", "cert.pem"), cert)
            for args in (["pki", "revoke", net.dir, "jlis"], ["pki", "renew", net.dir, "jlis"]):
                r = renkei(*args, check=False)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn("not the certificate network.json registers", r.stderr)
        finally:
            os.replace(cert + ".keep", cert)
        # a CRL that is not the network CA's is not extended
        crl = net.path("pki", "crl.pem")
        shutil.copy(crl, crl + ".keep")
        try:
            with open(crl, "w") as f:
                f.write("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n")
            r = renkei("pki", "revoke", net.dir, "jlis", check=False)
            self.assertEqual(r.returncode, 1, r.stderr)
        finally:
            os.replace(crl + ".keep", crl)
        self.assertEqual(self.files(), before)
        r = renkei("pki", "revoke", "--help", check=False)
        self.assertEqual(r.returncode, 0)
        self.assertIn("keyCompromise", r.stdout)

    def test_3_revoked_gateway_is_refused_in_the_handshake_after_reload(self):
        net = self.net
        gw = f"{H}-gateway"
        as_gw = lambda: net.call("core", "GET", "/healthz", as_client=("node", gw), timeout=3)
        self.assertEqual(as_gw().status, 200)
        with open(net.path("pki", "crl.pem")) as f:
            older = f.read()
        r = renkei("pki", "revoke", net.dir, gw, "--reason", "keyCompromise")
        self.assertIn(f"revoked {gw} (keyCompromise)", r.stdout)
        r = renkei("pki", "revoke", net.dir, gw, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("revoked already", r.stderr)
        # the core reads the CRL beside the registry it serves within one [registry] refresh
        # (a second here), with no SIGHUP (DESIGN §3)
        deadline = time.time() + 10 * SLOW
        while time.time() < deadline and not refused(as_gw):
            time.sleep(0.1)
        self.assertTrue(refused(as_gw), "the core still accepts a revoked gateway")
        self.assertIn("crl: number", net.log("core"))
        # every other node still reaches the core
        self.assertEqual(net.call("core", "GET", "/healthz", as_client=("node", f"{Y}-gateway")).status, 200)
        # an older CRL (a rollback) on SIGHUP is refused: the newer stays in force
        with open(net.path("pki", "crl.pem")) as f:
            newer = f.read()
        with open(net.path("pki", "crl.pem"), "w") as f:
            f.write(older)
        try:
            net.procs["core"].send_signal(signal.SIGHUP)
            time.sleep(1 * SLOW)
            self.assertTrue(refused(as_gw))
            self.assertIn("refused", net.log("core").split("crl: ")[-1])
        finally:
            with open(net.path("pki", "crl.pem"), "w") as f:
                f.write(newer)
        # a node started with the CRL refuses the gateway from its start
        net.stop_node(f"{Y}-gateway")
        net.start_node(f"{Y}-gateway")
        self.assertTrue(refused(lambda: net.call(f"{Y}-gateway", "GET", "/healthz", as_client=("node", gw), timeout=3)))
        self.assertEqual(net.call(f"{Y}-gateway", "GET", "/healthz", as_client=("node", "core")).status, 200)

    def test_4_payload_signed_with_a_revoked_certificate_is_refused(self):
        net = self.net
        a = self.query(K, "q-rv-before", "K1")
        self.assertEqual((a.status, a.json.get("status")), (200, "provided"), a)
        renkei("pki", "revoke", net.dir, Y, "--reason", "cessationOfOperation")
        # only the requester reloads: the provider still answers, its payload signed with the revoked certificate
        net.procs[K].send_signal(signal.SIGHUP)
        deadline = time.time() + 10 * SLOW
        while time.time() < deadline and "crl: number" not in net.log(K):
            time.sleep(0.1)
        a = self.query(K, "q-rv-after", "K1")
        self.assertEqual((a.status, a.error), (502, "bad_payload"), a)
        self.assertNotIn("value", a.json)
        rec = net.call(K, "GET", f"/v1/records?exchange_id={a.json['exchange_id']}", as_client=K).json
        self.assertEqual(rec["records"][0]["outcome"], "bad_payload")

    def presented(self, node_id):
        """The SHA-256 fingerprint of the certificate node_id presents to a new connection now."""
        host, port = self.net.url_of(node_id)
        ctx = self.net.ssl_context("operator")
        with socket.create_connection((host, port), timeout=5 * SLOW) as sock:
            with ctx.wrap_socket(sock) as tls:
                return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()

    def wait_presented(self, node_id, fp, timeout=15):
        deadline = time.time() + timeout * SLOW
        while self.presented(node_id) != fp:
            self.assertLess(time.time(), deadline, f"{node_id} still presents another certificate than {fp[:16]}")
            time.sleep(0.1)

    def registered(self, node_id):
        with open(self.net.path("network.json")) as f:
            return next(n for n in json.load(f)["nodes"] if n["id"] == node_id)

    def test_2_renewed_node_works_and_its_old_certificate_ends_with_the_overlap(self):
        net = self.net
        gw = f"{K}-gateway"
        old = (net.path("old-cert.pem"), net.path("old-key.pem"))
        shutil.copy(net.path("nodes", gw, "cert.pem"), old[0])
        shutil.copy(net.path("nodes", gw, "key.pem"), old[1])
        old_fp = net.nodes[gw]["fingerprint"]
        self.assertEqual(self.presented(gw), old_fp)
        # a connection open before the renewal (keep-alive)
        host, port = net.url_of(gw)
        kept = http.client.HTTPSConnection(host, port, context=net.ssl_context("operator"), timeout=10 * SLOW)
        self.addCleanup(kept.close)
        kept.request("GET", "/healthz")
        a = kept.getresponse()
        a.read()
        self.assertEqual(a.status, 200)
        until = int(time.time() + 10 + 10 * SLOW)  # room for the steps inside the overlap, then waited out
        r = renkei("pki", "renew", net.dir, gw, "--overlap-until", str(until))
        self.assertIn(f"renewed {gw}", r.stdout)
        self.assertIn("no restart", r.stdout)
        node = self.registered(gw)
        self.assertNotEqual(node["fingerprint"], old_fp)
        self.assertEqual(node["previous_fingerprints"][-1]["fingerprint"], old_fp)
        with open(net.path("nodes", gw, "cert.pem"), "rb") as f, open(old[0], "rb") as g:
            self.assertNotEqual(f.read(), g.read())
        self.assertTrue(os.path.exists(net.path("nodes", gw, f"cert-{old_fp[:16]}.pem")))
        self.assertEqual(os.stat(net.path("nodes", gw, "key.pem")).st_mode & 0o077, 0)
        # no node restarts: each applies the new registry within one refresh, and the
        # renewed one presents its new certificate to new connections (DESIGN §3)
        pid = net.procs[gw].pid
        wait_registry(net, ("core", gw, K, Y, f"{Y}-gateway"))
        self.wait_presented(gw, node["fingerprint"])
        self.assertEqual(net.procs[gw].pid, pid)
        self.assertIsNone(net.procs[gw].poll())
        self.assertIn("certificate renewed", net.log(gw))
        # the connection open before goes on
        kept.request("GET", "/healthz")
        a = kept.getresponse()
        a.read()
        self.assertEqual(a.status, 200)
        self.assertEqual(hashlib.sha256(kept.sock.getpeercert(binary_form=True)).hexdigest(), old_fp)
        kept.close()
        as_old = lambda: net.call("core", "GET", "/healthz", cert=old, timeout=3,
                                  headers={"X-Renkei-Created": str(int(time.time() * 1000))})
        as_new = lambda: net.call("core", "GET", "/healthz", as_client=("node", gw), timeout=3)
        self.assertLess(time.time(), until)
        self.assertEqual(as_old().status, 200)  # within the overlap
        self.assertEqual(as_new().status, 200)
        # an exchange through the renewed gateway
        a = self.query(K, "q-renew-1", "K1")
        self.assertEqual((a.status, a.json.get("status")), (200, "provided"), a)
        time.sleep(max(0, until - time.time()) + 1)
        a = as_old()
        self.assertEqual((a.status, a.error), (403, "unknown_peer"), a)  # the overlap is over
        self.assertEqual(as_new().status, 200)
        # and after it, the gateway's own calls (to the core and its agency node) go
        # out with the new certificate: the old one would be refused now
        a = self.query(K, "q-renew-2", "K1")
        self.assertEqual((a.status, a.json.get("status")), (200, "provided"), a)

    def test_2b_renewed_files_that_are_not_the_registered_ones_are_refused(self):
        net = self.net
        gw = f"{Y}-gateway"
        old_fp = net.nodes[gw]["fingerprint"]
        cert = net.path("nodes", gw, "cert.pem")
        old_cert = net.path("y-old-cert.pem")
        shutil.copy(cert, old_cert)
        # the node stands still while its folder is renewed and its new certificate
        # replaced by the old one: the registry names a certificate its files are not
        net.procs[gw].send_signal(signal.SIGSTOP)
        try:
            r = renkei("pki", "renew", net.dir, gw, "--overlap-days", "1")
            self.assertIn(f"renewed {gw}", r.stdout)
            new_cert = net.path("y-new-cert.pem")
            shutil.copy(cert, new_cert)
            shutil.copy(old_cert, cert)
        finally:
            net.procs[gw].send_signal(signal.SIGCONT)
        new_fp = self.registered(gw)["fingerprint"]
        self.assertNotEqual(new_fp, old_fp)
        wait_registry(net, (gw,))
        deadline = time.time() + 10 * SLOW
        while "renewed certificate refused" not in net.log(gw):
            self.assertLess(time.time(), deadline, "the refusal is not in the log")
            time.sleep(0.1)
        log = net.log(gw)
        self.assertIn("is not the certificate the registry names", log)
        self.assertEqual(log.count("renewed certificate refused"), 1, log)  # once, not at every refresh
        self.assertEqual(self.presented(gw), old_fp)  # the old one stays
        self.assertEqual(net.call(gw, "GET", "/healthz", as_client="operator").status, 200)
        time.sleep(2 * SLOW)  # refreshes go on: the same files are not tried again
        self.assertEqual(net.log(gw).count("renewed certificate refused"), 1)
        self.assertEqual(self.presented(gw), old_fp)
        # the right files put back: taken at the next refresh, no restart
        shutil.copy(new_cert, cert)
        self.wait_presented(gw, new_fp)
        a = self.query(K, "q-renew-y", "K1")
        self.assertEqual((a.status, a.json.get("status")), (200, "provided"), a)


class LogKeys(unittest.TestCase):
    """A node's log key rotated and its certificate renewed (DESIGN §4.1):
    `records verify` checks each head with the key valid at its time; a head
    that falls outside every key's validity is a finding."""

    @classmethod
    def setUpClass(cls):
        net = cls.net = Network(agencies=2, persons=6)
        fast_registry(net)
        for n in ("core", Y, K):
            net.append_conf(n, "[records]\nhead_interval_ms = 100")
        net.start()
        number = net.residents()[0]["my_number"]
        for ag, person in ((Y, "Y1"), (K, "K1")):
            assert net.enrol(ag, person, number).status == 202
        for ag, person in ((Y, "Y1"), (K, "K1")):
            net.wait_status(ag, person, "linked")
        a = net.agency_call(Y, "PUT", "/v1/data/Y1/local_tax", {"value": {"tax": 1}, "as_of": "2026-01-01"})
        assert a.status == 200, a

    @classmethod
    def tearDownClass(cls):
        cls.net.stop()

    def exchange(self, qid):
        a = self.net.agency_call(K, "POST", "/v1/queries", {"query_id": qid, "person": "K1",
                                                          "business": "public_assistance", "provider": Y,
                                                          "item": "local_tax", "operator": "op"})
        self.assertEqual((a.status, a.json.get("status")), (200, "provided"), a)
        time.sleep(0.3 * SLOW)  # heads signed

    def restart(self, *ids):
        for n in ids:
            self.net.stop_node(n)  # a node signs a last head as it stops
        for n in ids:
            self.net.start_node(n, wait=False)
        for n in ids:
            self.net.wait_healthy(n)

    def verify(self):
        return renkei("records", "verify", self.net.dir, check=False)

    def heads(self, node):
        return self.net.sqlite(node, "SELECT size, time_ms FROM tree_heads ORDER BY size")

    def network(self):
        with open(self.net.path("network.json")) as f:
            return json.load(f)

    def test_rotation_and_renewal_keep_old_heads_verifiable(self):
        net = self.net
        self.exchange("lk-1")
        p = self.verify()
        self.assertEqual(p.returncode, 0, p.stdout)
        # the log key: refused for bad input, then rotated with the node stopped
        for args, code in ((["records", "rotate-log-key"], 2), (["records", "rotate-log-key", net.dir], 2),
                           (["records", "rotate-log-key", net.dir, "no-such-node"], 1),
                           (["records", "rotate-log-key", net.dir, f"{Y}-gateway"], 1),
                           (["records", "rotate-log-key", net.dir, Y, "--bogus"], 2)):
            with self.subTest(args=args[1:]):
                before = self.network()
                r = renkei(*args, check=False)
                self.assertEqual(r.returncode, code, r.stderr)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
                self.assertEqual(self.network(), before)
        # a key file that is not the one log_vkey names
        key = net.path("nodes", Y, "log_key.pem")
        os.rename(key, key + ".keep")
        shutil.copy(net.path("nodes", K, "log_key.pem"), key)
        try:
            before = self.network()
            r = renkei("records", "rotate-log-key", net.dir, Y, check=False)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("is not the log key whose vkey network.json names", r.stderr)
            self.assertEqual(self.network(), before)
        finally:
            os.replace(key + ".keep", key)
        old_vkey = net.nodes[Y]["log_vkey"]
        net.stop_node(Y)
        r = renkei("records", "rotate-log-key", net.dir, Y)
        self.assertIn(f"rotated the log key of {Y}", r.stdout)
        node = next(n for n in self.network()["nodes"] if n["id"] == Y)
        self.assertNotEqual(node["log_vkey"], old_vkey)
        self.assertEqual(node["log_vkey_history"][0]["vkey"], old_vkey)
        rotated_at = node["log_vkey_history"][0]["until"]
        net.start_node(Y)
        wait_registry(net, (Y, f"{Y}-gateway", "core", K, f"{K}-gateway"))
        self.exchange("lk-2")
        # the new key signs the node's checkpoint now
        a = net.call(Y, "GET", "/v1/checkpoint", as_client=K)
        self.assertEqual(a.status, 200, a)
        name, key_id = node["log_vkey"].split("+")[:2]
        line = next(ln for ln in a.raw.splitlines() if ln.startswith("\u2014 " + name + " "))
        self.assertEqual(base64.b64decode(line.rsplit(" ", 1)[1])[:4].hex(), key_id)
        # its certificate renewed too, while it runs (no restart): heads signed before with the
        # previous certificate's key, after with the new one's — past the overlap too, and its
        # payloads are accepted then (CMS signed with the new key)
        until = int(time.time() + 8 * SLOW)
        r = renkei("pki", "renew", net.dir, Y, "--overlap-until", str(until))
        wait_registry(net, (Y, f"{Y}-gateway", "core", K, f"{K}-gateway"))
        deadline = time.time() + 10 * SLOW
        while "certificate renewed" not in net.log(Y):
            self.assertLess(time.time(), deadline, f"{Y} did not take its renewed certificate")
            time.sleep(0.1)
        time.sleep(max(0, until - time.time()) + 1)
        self.exchange("lk-3")
        net.stop_node(Y)  # a last head, and the store at rest
        p = self.verify()
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertIn("intact", p.stdout)
        # a head signed with a key outside its validity: the old key's period
        # ended (in network.json) before the heads it signed
        first_ms = self.heads(Y)[0][1]
        early = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(first_ms / 1000 - 3600))
        doc = self.network()
        saved = json.dumps(doc, indent=2)
        for n in doc["nodes"]:
            if n["id"] == Y:
                n["log_vkey_history"][0]["until"] = early
        with open(net.path("network.json"), "w") as f:
            json.dump(doc, f, indent=2)
        try:
            p = self.verify()
            self.assertEqual(p.returncode, 1, p.stdout)
            self.assertIn(f"{Y}: checkpoint of size", p.stdout)
            self.assertIn("valid at its time", p.stdout)
            # and a period that covers no head at all: no key was valid then
            for n in doc["nodes"]:
                if n["id"] == Y:
                    n["log_vkey_history"][0]["from"] = early
                    n["log_vkey_history"][0]["until"] = time.strftime(
                        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(first_ms / 1000 - 60))
                    n["log_vkey_history"].append(dict(n["log_vkey_history"][0]))
                    n["log_vkey_history"][1]["from"] = rotated_at
                    n["log_vkey_history"][1]["until"] = time.strftime(
                        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
            with open(net.path("network.json"), "w") as f:
                json.dump(doc, f, indent=2)
            p = self.verify()
            self.assertEqual(p.returncode, 1, p.stdout)
            self.assertIn("when no log key of network.json was valid", p.stdout)
            # a history out of order is itself a finding
            for n in doc["nodes"]:
                if n["id"] == Y:
                    n["log_vkey_history"][0]["until"] = "2000-01-01T00:00:00Z"
            with open(net.path("network.json"), "w") as f:
                json.dump(doc, f, indent=2)
            p = self.verify()
            self.assertEqual(p.returncode, 1, p.stdout)
            self.assertIn("log_vkey_history", p.stdout)
        finally:
            with open(net.path("network.json"), "w") as f:
                f.write(saved)
        # the previous certificate gone: the heads it signed no longer verify
        kept = net.path("nodes", Y, f"cert-{net.nodes[Y]['fingerprint'][:16]}.pem")
        os.rename(kept, kept + ".away")
        try:
            p = self.verify()
            self.assertEqual(p.returncode, 1, p.stdout)
            self.assertIn("previous certificate", p.stdout)
            self.assertIn("the signature does not verify", p.stdout)
        finally:
            os.rename(kept + ".away", kept)
        self.assertEqual(self.verify().returncode, 0)
        net.start_node(Y)


if __name__ == "__main__":
    main()
