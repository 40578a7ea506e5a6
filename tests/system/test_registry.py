"""The signed registry and a network whose membership changes while it runs
(DESIGN §3, §5; standard 第5-2(2), 第5-4(1)): `renkei agency add` makes an
agency that works with the running network within one refresh, both ways;
`renkei agency remove` has it refused everywhere; a registry with a bad
signature, an older serial or a truncated file is refused and the last good
one stays, with an incident; SIGHUP fetches at once; a node that cannot reach
the core keeps its last good registry, says so in /healthz, and restarts on it."""
import base64
import http.client
import json
import os
import shutil
import signal
import ssl
import time
import unittest

from harness import SLOW, Network, main, renkei

Y, K, N = "city-yokohama", "pref-kanagawa", "nenkin-kikou"
NEW, LEAVING = "city-shinjuku", "city-leaving"


class Registry(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # replaced registry snapshots are freed 1.5 s after they were replaced, not after an hour:
        # every flow below runs while they are (node/registry_refresh.c)
        os.environ["RENKEI_TEST_REGISTRY_GRACE_MS"] = "1500"
        net = cls.net = Network(agencies=3, persons=20)
        for n in net.server_nodes():  # test networks refresh every second; the portal only on SIGHUP
            net.append_conf(n["id"], "[registry]\nrefresh = %d" % (3600 if n["role"] == "portal" else 1))
        net.append_conf("core", "[pia]\nrefresh = 1")
        net.start()
        cls.number = net.residents()[0]["my_number"]
        cls.published = net.path("registry", "registry.signed")

    @classmethod
    def tearDownClass(cls):
        os.environ.pop("RENKEI_TEST_REGISTRY_GRACE_MS", None)
        cls.net.stop()

    # ---------- helpers ----------
    def health(self, node_id):
        return self.net.call(node_id, "GET", "/healthz", as_client="operator").json["checks"]

    def serial(self, node_id):
        return self.health(node_id)["registry_serial"]

    def published_serial(self):
        out = renkei("registry", "show", self.net.dir).stdout
        return int(out.split("\n")[0].split()[1])

    def wait_serial(self, want, nodes=None, timeout=10):
        deadline = time.time() + timeout * SLOW
        nodes = nodes or [n["id"] for n in self.net.server_nodes() if n["role"] != "portal" and n["id"] in self.net.procs]
        while True:
            behind = {n: s for n in nodes if (s := self.serial(n)) != want}
            if not behind:
                return
            if time.time() > deadline:
                self.fail(f"nodes not at serial {want}: {behind}")
            time.sleep(0.1)

    def add_agency(self, agency, kind="municipality"):
        out = renkei("agency", "add", self.net.dir, "--id", agency, "--kind", kind, "--name", "テスト市").stdout
        self.assertIn("published", out)
        self.net.reload_registry()
        for node in (f"{agency}-gateway", agency):
            self.net.append_conf(node, "[registry]\nrefresh = 1")
        return self.published_serial()

    def incidents_with(self, text):
        a = self.net.call("core", "GET", "/v1/incidents?kind=unauthorized_access", as_client="operator")
        return [i for i in a.json["incidents"] if text in i["summary"]]

    def put(self, agency, person, item, value):
        a = self.net.agency_call(agency, "PUT", f"/v1/data/{person}/{item}", {"value": value, "as_of": "2026-04-01"})
        self.assertEqual(a.status, 200, a)

    def query(self, agency, qid, person, business, provider, item):
        return self.net.agency_call(agency, "POST", "/v1/queries",
                                    {"query_id": qid, "person": person, "business": business, "provider": provider,
                                     "item": item, "operator": "op-001"})

    # ---------- joining ----------
    def test_an_agency_added_while_the_network_runs_exchanges_both_ways(self):
        net = self.net
        before = {n: net.procs[n].pid for n in net.procs}
        serial = self.add_agency(NEW)
        self.assertIn(NEW, renkei("registry", "show", net.dir).stdout)
        # its keys were made in its own folders and nowhere else
        for folder in (f"nodes/{NEW}", f"nodes/{NEW}-gateway", f"clients/{NEW}", f"clients/{NEW}-operator"):
            self.assertEqual(os.stat(net.path(folder, "key.pem")).st_mode & 0o777, 0o600, folder)
        self.wait_serial(serial)
        # the PIA register learns of its evaluations from the committee, not from the registry (法28条):
        # until its operator publishes them the core refuses the agency's exchanges (deny by default)
        businesses = {r["business"] for r in
                      net.call("core", "GET", "/v1/catalog", as_client="operator").json["catalog"]["permissions"]}
        for business in sorted(businesses):
            a = net.call("ppc", "PUT", f"/v1/pia/{NEW}/{business}", {"state": "published", "evaluated_on": "2026-04-01"},
                         as_client="ppc")
            self.assertEqual(a.status, 200, a)
        net.start_node(f"{NEW}-gateway")
        net.start_node(NEW)
        # no other node restarted
        self.assertEqual({n: net.procs[n].pid for n in before}, before)
        net.link([(NEW, "S1"), (Y, "Y1"), (N, "N1"), (K, "K1")])  # code acquisition through J-LIS and the core
        self.put(NEW, "S1", "local_tax", {"income": 2900000, "tax": 110000})
        self.put(N, "N1", "pension_benefits", {"annual": 1500000})
        # the new agency asks (municipality -> pension), once the core polled the register ...
        def once_published(agency, qid, *query):
            """The query, asked again under a new id while the core has not yet polled the
            register for every business published above (a refused id keeps its answer)."""
            deadline, attempt = time.time() + 10 * SLOW, 0
            while (a := self.query(agency, f"{qid}-{attempt}", *query)).error == "pia_not_valid" and \
                    time.time() < deadline:
                attempt += 1
                time.sleep(0.2)
            return a

        a = once_published(NEW, "q-new-out", "S1", "child_allowance", N, "pension_benefits")
        self.assertEqual((a.status, a.json.get("status")), (200, "provided"), a)
        self.assertEqual(a.json["value"]["annual"], 1500000)
        # ... and is asked (prefecture -> municipality)
        a = once_published(K, "q-new-in", "K1", "public_assistance", NEW, "local_tax")
        self.assertEqual((a.status, a.json.get("status")), (200, "provided"), a)
        self.assertEqual(a.json["value"]["tax"], 110000)
        # the portal learns it on SIGHUP (its refresh is an hour here)
        self.wait_serial(serial, ["core"])
        net.procs["portal"].send_signal(signal.SIGHUP)
        self.wait_serial(serial, ["portal"])

    # ---------- leaving ----------
    def test_a_removed_agency_is_refused_everywhere_and_its_records_stay(self):
        net = self.net
        serial = self.add_agency(LEAVING)
        self.wait_serial(serial)
        net.start_node(f"{LEAVING}-gateway")
        net.start_node(LEAVING)
        net.link([(LEAVING, "L1")], resident=1)
        # a connection kept open from before the removal
        host, port = net.url_of("core")
        kept = http.client.HTTPSConnection(host, port, context=net.ssl_context(("node", f"{LEAVING}-gateway")),
                                           timeout=10 * SLOW)
        created = lambda: {"X-Renkei-Created": str(int(time.time() * 1000))}  # a node states it (第6-8)
        kept.request("GET", "/healthz", headers=created())
        r = kept.getresponse()
        r.read()
        self.assertEqual(r.status, 200)
        out = renkei("agency", "remove", net.dir, LEAVING).stdout
        self.assertIn("removed", out)
        serial = self.published_serial()
        self.wait_serial(serial, ["core"])
        net.procs["portal"].send_signal(signal.SIGHUP)  # the core has it: the portal fetches it at once
        self.wait_serial(serial, [n["id"] for n in net.server_nodes() if n["id"] in net.procs
                                  and not n["id"].startswith(LEAVING)])
        self.assertNotIn(LEAVING, renkei("registry", "show", net.dir).stdout)
        # the same connection: refused now
        created = lambda: {"X-Renkei-Created": str(int(time.time() * 1000))}  # a node states it (第6-8)
        kept.request("GET", "/healthz", headers=created())
        r = kept.getresponse()
        self.assertEqual((r.status, json.loads(r.read())["error"]["code"]), (403, "unknown_peer"))
        kept.close()
        # every node refuses each of its certificates
        others = [n["id"] for n in net.server_nodes() if n["id"] in net.procs and not n["id"].startswith(LEAVING)]
        for who in (("node", f"{LEAVING}-gateway"), ("node", LEAVING), LEAVING, f"{LEAVING}-operator"):
            for node in others:
                try:
                    a = net.call(node, "GET", "/healthz", as_client=who)
                except (ssl.SSLError, OSError):
                    continue  # refused in the handshake
                self.assertEqual((a.status, a.error), (403, "unknown_peer"), (who, node, a))
        # an exchange with it is refused; its records stay at its node and the core
        a = self.query(Y, "q-to-leaving", "Y1", "child_allowance", LEAVING, "local_tax")
        self.assertNotEqual(a.json.get("status"), "provided", a)
        self.assertTrue(os.path.exists(net.path("nodes", LEAVING, "node.db")))
        net.stop_node(f"{LEAVING}-gateway")
        net.stop_node(LEAVING)

    # ---------- refused documents ----------
    def test_a_bad_signature_an_older_serial_or_a_truncated_file_is_refused_and_the_last_good_stays(self):
        net = self.net
        renkei("registry", "publish", net.dir)
        good_serial = self.published_serial()
        self.wait_serial(good_serial)
        with open(self.published, "rb") as f:
            good = f.read()
        env = json.loads(good)
        # the document altered under the signature (a member's url changed)
        doc = json.loads(base64.b64decode(env["document"]))
        doc["serial"] = good_serial + 5
        doc["nodes"][0]["url"] = "https://127.0.0.1:1"
        forged = dict(env, document=base64.b64encode(json.dumps(doc).encode()).decode())
        older = None
        renkei("registry", "publish", net.dir)
        newer_serial = self.published_serial()
        self.wait_serial(newer_serial)
        with open(self.published, "rb") as f:
            newer = f.read()
        older = good  # serial good_serial < newer_serial: a rollback
        cases = [("bad signature", json.dumps(forged).encode(), "signature"),
                 ("older serial", older, "rollback"),
                 ("truncated", newer[: len(newer) // 2], "")]
        try:
            for name, data, why in cases:
                with open(self.published + ".tmp", "wb") as f:
                    f.write(data)
                os.replace(self.published + ".tmp", self.published)
                net.procs["core"].send_signal(signal.SIGHUP)
                deadline = time.time() + 10 * SLOW
                while time.time() < deadline:
                    h = self.health("core")
                    if h["registry_error"] and h["registry_error"].startswith("refused"):
                        break
                    time.sleep(0.1)
                self.assertTrue(h["registry_error"].startswith("refused"), (name, h))
                self.assertIn(why, h["registry_error"], name)
                # the last good one stays in force, at the core and everywhere
                self.assertEqual(h["registry_serial"], newer_serial, name)
                time.sleep(1.5)
                self.wait_serial(newer_serial)
                served = net.call("core", "GET", "/v1/registry", as_client=(("node", Y + "-gateway"))).json
                self.assertEqual(served["serial"], newer_serial, name)
                self.assertTrue(self.incidents_with("registry refused"), name)
                # and the flows go on
                self.assertEqual(net.call("jlis", "GET", "/healthz", as_client=("node", "core")).status, 200)
        finally:
            with open(self.published, "wb") as f:
                f.write(newer)
        net.procs["core"].send_signal(signal.SIGHUP)
        deadline = time.time() + 10 * SLOW
        while self.health("core")["registry_error"] is not None and time.time() < deadline:
            time.sleep(0.1)
        self.assertIsNone(self.health("core")["registry_error"])

    def test_get_registry_answers_the_signed_document_and_the_crl(self):
        net = self.net
        a = net.call("core", "GET", "/v1/registry", as_client=("node", "jlis"))
        self.assertEqual(a.status, 200, a)
        env = json.loads(a.json["registry"])
        self.assertEqual((env["format"], env["kind"]), ("renkei-signed/v1", "registry"))
        doc = json.loads(base64.b64decode(env["document"]))
        self.assertEqual(doc["serial"], a.json["serial"])
        self.assertIn("issued_at", doc)
        with open(net.path("pki", "crl.pem")) as f:  # the network CA's CRL, served beside it
            self.assertEqual(a.json["crl"], f.read())
        # a caller that has it gets a few bytes, not the registry again
        b = net.call("core", "GET", "/v1/registry?tag=" + a.json["tag"], as_client=("node", "jlis"))
        self.assertEqual((b.status, b.json), (200, {"serial": a.json["serial"], "tag": a.json["tag"], "unchanged": True}))
        self.assertLess(len(b.raw), 200)
        other = net.call("core", "GET", "/v1/registry?tag=" + "0" * 32, as_client=("node", "jlis"))
        self.assertEqual(other.json["registry"], a.json["registry"])
        for bad in ("tag=xyz", "tag=" + "A" * 32, "serial=1"):
            c = net.call("core", "GET", "/v1/registry?" + bad, as_client=("node", "jlis"))
            self.assertEqual((c.status, c.error), (400, "invalid_field"), bad)
        # a CRL beside it is served as it is
        with open(net.path("pki", "card-crl.pem")) as f:  # a CRL's PEM (the card CA's stands in: nodes refuse it)
            crl = f.read()
        with open(net.path("pki", "crl.pem")) as f:
            network_crl = f.read()
        with open(net.path("pki", "crl.pem"), "w") as f:
            f.write(crl)
        try:
            net.procs["core"].send_signal(signal.SIGHUP)
            deadline = time.time() + 10 * SLOW
            while time.time() < deadline:
                a = net.call("core", "GET", "/v1/registry", as_client=("node", "jlis"))
                if a.json["crl"] == crl:
                    break
                time.sleep(0.1)
            self.assertEqual(a.json["crl"], crl)
        finally:
            with open(net.path("pki", "crl.pem"), "w") as f:
                f.write(network_crl)
        # not to an unregistered caller
        with self.assertRaises((ssl.SSLError, OSError)):
            net.call("core", "GET", "/v1/registry", as_client=None)

    def test_a_publication_travels_as_a_delta(self):
        """A node that holds the registry before a publication gets what changed, not the
        registry again (GET /v1/registry?tag=T&delta=1), and rebuilds the signed document."""
        net = self.net
        full = net.call("core", "GET", "/v1/registry", as_client=("node", "jlis"))
        old_tag = full.json["tag"]
        renkei("registry", "publish", net.dir)
        serial = self.published_serial()
        self.wait_serial(serial)
        new = net.call("core", "GET", "/v1/registry", as_client=("node", "jlis"))
        d = net.call("core", "GET", f"/v1/registry?tag={old_tag}&delta=1", as_client=("node", "jlis"))
        self.assertEqual(d.status, 200, d)
        self.assertTrue(d.raw.startswith('{"delta":'), d.raw[:40])
        self.assertEqual((d.json["delta"]["from"], d.json["tag"], d.json["serial"]), (old_tag, new.json["tag"], serial))
        self.assertLess(len(d.raw), len(new.raw) / 5)
        # the delta rebuilds the document the operator signed, byte for byte
        old_doc = base64.b64decode(json.loads(full.json["registry"])["document"])
        for step in d.json["delta"]["steps"]:
            old_doc = b"".join(old_doc[op[0]:op[0] + op[1]] if isinstance(op, list) else op.encode() for op in step)
        new_env = json.loads(new.json["registry"])
        self.assertEqual(old_doc, base64.b64decode(new_env["document"]))
        self.assertEqual((d.json["key_id"], d.json["signature"]), (new_env["key_id"], new_env["signature"]))
        # the nodes took it so (each says it in its log)
        self.assertIn(f"registry: serial {serial} from a delta of", net.log("jlis"))
        # without &delta=1 (a node of an earlier version), or from a tag the core did not keep: the registry
        a = net.call("core", "GET", f"/v1/registry?tag={old_tag}", as_client=("node", "jlis"))
        self.assertEqual(a.json["registry"], new.json["registry"])
        a = net.call("core", "GET", "/v1/registry?tag=" + "0" * 32 + "&delta=1", as_client=("node", "jlis"))
        self.assertEqual(a.json["registry"], new.json["registry"])
        for bad in ("tag=" + "0" * 32 + "&delta=2", "tag=" + "0" * 32 + "&delta=1&x=1", "delta=1"):
            c = net.call("core", "GET", "/v1/registry?" + bad, as_client=("node", "jlis"))
            self.assertEqual((c.status, c.error), (400, "invalid_field"), bad)

    # ---------- bad input: one line, non-zero, nothing changed ----------
    def test_bad_commands_are_refused_and_change_nothing(self):
        net = self.net
        with open(net.path("network.json"), "rb") as f:
            before = f.read()
        with open(self.published, "rb") as f:
            published = f.read()
        cases = [(["agency", "add", net.dir, "--id", Y, "--kind", "municipality"], 1, "already registered"),
                 (["agency", "add", net.dir, "--id", "Bad_Id", "--kind", "municipality"], 2, "--id"),
                 (["agency", "add", net.dir, "--id", "city-x", "--kind", "no kind!"], 2, "--kind"),
                 (["agency", "add", net.dir, "--id", "city-x"], 2, "--kind"),
                 (["agency", "add", net.dir, "--id", "city-x", "--kind", "insurer", "--colour", "red"], 2, "--colour"),
                 (["agency", "add", net.path("nowhere"), "--id", "city-x", "--kind", "insurer"], 1, "network.json"),
                 (["agency", "remove", net.dir, "city-nobody"], 1, "no agency city-nobody"),
                 (["agency", "remove", net.dir], 2, "remove DIR ID"),
                 (["registry", "publish"], 2, "publish DIR"),
                 (["registry", "show", net.path("nowhere")], 1, "registry"),
                 (["registry", "frobnicate", net.dir], 2, "publish DIR")]
        for args, code, text in cases:
            p = renkei(*args, check=False)
            self.assertEqual(p.returncode, code, (args, p.stderr))
            self.assertIn(text, p.stderr, args)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, (args, p.stderr))
        # a published file that cannot be read: its serial is unknown, so nothing is published
        with open(self.published, "wb") as f:
            f.write(published[:100])
        try:
            p = renkei("registry", "publish", net.dir, check=False)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("restore it before publishing", p.stderr)
            with open(self.published, "rb") as f:
                self.assertEqual(f.read(), published[:100])
        finally:
            with open(self.published, "wb") as f:
                f.write(published)
        with open(net.path("network.json"), "rb") as f:
            self.assertEqual(f.read(), before)
        self.assertFalse(os.path.exists(net.path("nodes", "city-x")))

    # ---------- SIGHUP ----------
    def test_replaced_snapshots_are_freed_while_the_nodes_run(self):
        net = self.net
        gw = f"{Y}-gateway"
        # a connection opened before, kept alive across the swaps and the frees
        host, port = net.url_of(gw)
        kept = http.client.HTTPSConnection(host, port, context=net.ssl_context("operator"), timeout=10 * SLOW)
        self.addCleanup(kept.close)

        def on_kept():
            kept.request("GET", "/healthz")
            a = kept.getresponse()
            a.read()
            return a.status

        self.assertEqual(on_kept(), 200)
        for _ in range(3):
            renkei("registry", "publish", net.dir)
            self.wait_serial(self.published_serial())
            self.assertEqual(on_kept(), 200)
            time.sleep(1.6 * SLOW)  # past the grace: the next swap frees the ones before
        renkei("registry", "publish", net.dir)
        self.wait_serial(self.published_serial())
        deadline = time.time() + 10 * SLOW
        while "replaced snapshot(s) freed" not in net.log(gw) or "replaced snapshot(s) freed" not in net.log("core"):
            self.assertLess(time.time(), deadline, "no replaced snapshot was freed")
            time.sleep(0.1)
        self.assertEqual(on_kept(), 200)
        # the nodes work on: an exchange both ways through the gateways
        number = net.residents()[7]["my_number"]  # a person no other test links
        self.assertEqual(net.enrol(Y, "Y-free", number).status, 202)
        self.assertEqual(net.enrol(K, "K-free", number).status, 202)
        net.wait_status(Y, "Y-free", "linked")
        net.wait_status(K, "K-free", "linked")
        self.put(Y, "Y-free", "local_tax", {"tax": 3})
        a = self.query(K, "q-free-1", "K-free", "public_assistance", Y, "local_tax")
        self.assertEqual((a.status, a.json.get("status")), (200, "provided"), a)
        for n in net.server_nodes():
            if n["id"] in net.procs:
                self.assertIsNone(net.procs[n["id"]].poll(), n["id"])

    def test_sighup_fetches_at_once(self):
        net = self.net
        net.procs["portal"].send_signal(signal.SIGHUP)
        self.wait_serial(self.published_serial(), ["portal"])
        renkei("registry", "publish", net.dir)
        serial = self.published_serial()
        self.wait_serial(serial)  # the others within a second
        time.sleep(1)
        self.assertEqual(self.serial("portal"), serial - 1)  # an hour's refresh: not yet
        net.procs["portal"].send_signal(signal.SIGHUP)
        self.wait_serial(serial, ["portal"], timeout=3)

    # ---------- outage of the core (last: it stops the core) ----------
    def test_z_a_node_without_the_core_keeps_its_last_good_registry_and_says_so(self):
        net = self.net
        serial = self.published_serial()
        self.wait_serial(serial)
        h = self.health("jlis")
        self.assertFalse(h["registry_stale"], h)
        self.assertIsNone(h["registry_error"])
        self.assertGreaterEqual(h["registry_age_s"], 0)
        net.stop_node("core")
        try:
            deadline = time.time() + 15 * SLOW
            while time.time() < deadline and not self.health("jlis")["registry_stale"]:
                time.sleep(0.2)
            h = self.health("jlis")
            self.assertTrue(h["registry_stale"], h)
            self.assertIn("core could not be asked", h["registry_error"])
            self.assertEqual(h["registry_serial"], serial)
            # a restart during the outage starts on the last good one, kept in its folder
            self.assertTrue(os.path.exists(net.path("nodes", Y + "-gateway", "registry-last-good.json")))
            net.stop_node(Y + "-gateway")
            net.start_node(Y + "-gateway")
            self.assertEqual(self.serial(Y + "-gateway"), serial)
        finally:
            net.start_node("core")
        self.wait_serial(serial)
        deadline = time.time() + 10 * SLOW
        while time.time() < deadline and self.health("jlis")["registry_stale"]:
            time.sleep(0.2)
        self.assertFalse(self.health("jlis")["registry_stale"])


if __name__ == "__main__":
    main()
