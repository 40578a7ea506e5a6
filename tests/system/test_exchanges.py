"""Request and provision end to end (DESIGN §2.2-2.3; 法19条8号, 法21条,
法23条; standard 第6-4, 第8-2(2), 第8-3, 第8-4(1)): permission table, code
conversion, a value only the requester can read, and a record of every
exchange at the core and both agencies."""
import base64
import http.server
import json
import os
import signal
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from harness import SLOW, Network, main, renkei

Y, K, N, H = "city-yokohama", "pref-kanagawa", "nenkin-kikou", "kyokai-kenpo"


class Exchanges(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        net = cls.net = Network(agencies=4, persons=20)
        net.append_conf(f"{N}-gateway", "[peer]\ntimeout_ms = 1500")
        net.append_conf(f"{H}-gateway", "[gateway]\ncaller_rate_per_s = 3")
        net.start()
        number = net.residents()[0]["my_number"]
        for ag, person in ((Y, "Y1"), (K, "K1"), (N, "N1"), (H, "H1")):
            assert net.enrol(ag, person, number).status == 202
        for ag, person in ((Y, "Y1"), (K, "K1"), (N, "N1"), (H, "H1")):
            net.wait_status(ag, person, "linked")
        put = lambda ag, p, item, value, as_of: net.agency_call(ag, "PUT", f"/v1/data/{p}/{item}",
                                                                {"value": value, "as_of": as_of})
        assert put(Y, "Y1", "local_tax", {"income": 3100000, "tax": 120000}, "2025-06-01").status == 200
        cls.newest = {"income": 3350000, "tax": 131000, "note": "令和7年度"}
        a = put(Y, "Y1", "local_tax", cls.newest, "2026-06-01")
        assert a.status == 200 and a.json["version"] == 2, a
        assert put(N, "N1", "pension_benefits", {"annual": 1850000}, "2026-04-01").status == 200

    @classmethod
    def tearDownClass(cls):
        cls.net.stop()

    def query(self, ag, qid, person, business, provider, item, operator="op-001", condition=None):
        body = {"query_id": qid, "person": person, "business": business, "provider": provider, "item": item,
                "operator": operator}
        if condition is not None:
            body["condition"] = condition
        return self.net.agency_call(ag, "POST", "/v1/queries", body)

    def test_fiscal_year_and_date_conditions_answer_the_version_in_force(self):
        # Y1's local_tax: 2025-06-01 (令和7年度's determination) and 2026-06-01
        cases = [({"fiscal_year": 2025}, 200, "provided", 120000),  # in force on 2026-03-31
                 ({"fiscal_year": 2026}, 200, "provided", 131000),
                 ({"fiscal_year": 2024}, 200, "no_data", None),     # before the first version
                 ({"as_of": "2026-05-31"}, 200, "provided", 120000),
                 ({"as_of": "2026-06-01"}, 200, "provided", 131000)]
        for i, (cond, status, outcome, tax) in enumerate(cases):
            a = self.query(K, f"q-cond-{i}", "K1", "public_assistance", Y, "local_tax", condition=cond)
            self.assertEqual((a.status, a.json.get("status")), (status, outcome), (cond, a))
            if tax is not None:
                self.assertEqual(a.json["value"]["tax"], tax, cond)
        # the condition is part of the record at the three nodes
        xid = self.query(K, "q-cond-0", "K1", "public_assistance", Y, "local_tax",
                         condition={"fiscal_year": 2025}).json["exchange_id"]
        for node, who in (("core", "operator"), (K, K), (Y, Y)):
            self.assertEqual(self.records(node, xid, who)[0]["condition"], "fiscal_year=2025", node)
        # a query without one keeps records without it
        plain = self.query(K, "q-cond-none", "K1", "public_assistance", Y, "local_tax").json["exchange_id"]
        self.assertNotIn("condition", self.records("core", plain, "operator")[0])

    def test_a_condition_the_row_does_not_admit_is_refused_and_recorded(self):
        # the row municipality / child_allowance / pension / pension_benefits admits as_of only
        a = self.query(Y, "q-cond-np", "Y1", "child_allowance", N, "pension_benefits", condition={"fiscal_year": 2025})
        self.assertEqual((a.status, a.error), (403, "condition_not_permitted"), a)
        xid = a.json["exchange_id"]
        core = self.records("core", xid, "operator")
        self.assertEqual((core[0]["outcome"], core[0]["condition"]), ("condition_not_permitted", "fiscal_year=2025"))
        self.assertEqual(self.records(N, xid, N), [])  # the provider never heard of it
        ok = self.query(Y, "q-cond-ok", "Y1", "child_allowance", N, "pension_benefits", condition={"as_of": "2026-12-01"})
        self.assertEqual((ok.status, ok.json.get("status")), (200, "provided"), ok)

    def test_malformed_conditions_are_refused_and_change_nothing(self):
        count = lambda: self.net.sql(K, "SELECT count(*) FROM records")[0][0]
        before = count()
        for i, cond in enumerate([{"fiscal_year": "2025"}, {"fiscal_year": 2025, "as_of": "2025-01-01"},
                                  {"as_of": "2025-02-30"}, {"month": 4}, [], "2025", {}]):
            a = self.query(K, f"q-cond-bad-{i}", "K1", "public_assistance", Y, "local_tax", condition=cond)
            self.assertEqual((a.status, a.error), (400, "invalid_field"), (cond, a))
        self.assertEqual(count(), before)  # nothing was recorded, and the id is still free
        a = self.query(K, "q-cond-bad-0", "K1", "public_assistance", Y, "local_tax", condition={"fiscal_year": 2025})
        self.assertEqual((a.status, a.json.get("status")), (200, "provided"), a)

    def records(self, node_id, exchange_id, who):
        a = self.net.call(node_id, "GET", f"/v1/records?exchange_id={exchange_id}", as_client=who)
        self.assertEqual(a.status, 200, a)
        return a.json["records"]

    def test_provided_value_is_the_newest_version(self):
        a = self.query(K, "q-newest", "K1", "public_assistance", Y, "local_tax")
        self.assertEqual(a.status, 200, a)
        self.assertEqual(a.json["status"], "provided")
        self.assertEqual(a.json["value"], self.newest)
        self.assertEqual(a.json["as_of"], "2026-06-01")

    def test_municipality_asks_the_pension_organisation(self):
        a = self.query(Y, "q-pension", "Y1", "child_allowance", N, "pension_benefits")
        self.assertEqual((a.status, a.json.get("status")), (200, "provided"), a)
        self.assertEqual(a.json["value"], {"annual": 1850000})

    def test_not_permitted_never_reaches_the_provider(self):
        a = self.query(N, "q-refused", "N1", "national_pension", Y, "child_allowance")
        self.assertEqual((a.status, a.error), (403, "not_permitted"), a)
        xid = a.json["exchange_id"]
        core = self.records("core", xid, "operator")
        self.assertEqual([r["outcome"] for r in core], ["not_permitted"])
        self.assertIn("permission table", core[0]["reason"])
        self.assertEqual(self.records(N, xid, N)[0]["outcome"], "not_permitted")
        self.assertEqual(self.records(Y, xid, Y), [])  # the provider never saw it

    def test_no_data(self):
        a = self.query(K, "q-nodata", "K1", "public_assistance", Y, "child_allowance")
        self.assertEqual((a.status, a.json.get("status")), (200, "no_data"), a)
        xid = a.json["exchange_id"]
        for node, who in (("core", "operator"), (K, K), (Y, Y)):
            self.assertEqual(self.records(node, xid, who)[0]["outcome"], "no_data")

    def test_person_not_linked(self):
        a = self.query(K, "q-unlinked", "NOBODY", "public_assistance", Y, "local_tax")
        self.assertEqual((a.status, a.error), (409, "person_not_linked"))
        self.assertEqual(self.records(K, a.json["exchange_id"], K)[0]["outcome"], "person_not_linked")

    def exchange_as_gateway(self, gw_agency, code, xid):
        with open(self.net.path("nodes", gw_agency, "cert.pem")) as f:
            cert = f.read()
        return self.net.call("core", "POST", "/v1/exchanges", {
            "exchange_id": xid, "code": code, "business": "child_allowance", "provider": Y, "item": "local_tax",
            "operator": "op-x", "requester_cert": cert}, as_client=("node", f"{gw_agency}-gateway"))

    def test_unknown_code_and_code_not_yours(self):
        a = self.exchange_as_gateway(Y, "v1-" + "0" * 32, f"{Y}.forged-1")
        self.assertEqual((a.status, a.error), (404, "unknown_code"))
        (k_code,), = self.net.sqlite(K, "SELECT code FROM persons WHERE person = 'K1'")
        a = self.exchange_as_gateway(Y, k_code, f"{Y}.stolen-1")
        self.assertEqual((a.status, a.error), (403, "code_not_yours"))
        self.assertEqual(self.records("core", f"{Y}.stolen-1", "operator")[0]["outcome"], "code_not_yours")
        self.assertIn("code issued to another agency", self.net.log("core"))

    def test_exchange_ids_are_the_requesters_own(self):
        a = self.exchange_as_gateway(Y, "v1-" + "0" * 32, f"{K}.squatted")  # Y may not use K's ids
        self.assertEqual((a.status, a.error), (400, "invalid_field"))
        self.assertEqual(self.records("core", f"{K}.squatted", "operator"), [])

    def test_same_query_id_gives_the_first_answer_and_one_record(self):
        first = self.query(K, "q-idem", "K1", "public_assistance", Y, "local_tax")
        again = self.query(K, "q-idem", "K1", "public_assistance", Y, "local_tax")
        self.assertEqual(first.json, again.json)
        xid = first.json["exchange_id"]
        for node, who in (("core", "operator"), (K, K), (Y, Y)):
            self.assertEqual(len(self.records(node, xid, who)), 1)
        other = self.query(K, "q-idem", "K1", "public_assistance", Y, "child_allowance")
        self.assertEqual((other.status, other.error), (409, "conflict"))

    def test_records_agree_across_core_requester_and_provider(self):
        a = self.query(K, "q-agree", "K1", "public_assistance", Y, "local_tax", operator="op-777")
        xid = a.json["exchange_id"]
        rows = [self.records("core", xid, "operator")[0], self.records(K, xid, K)[0], self.records(Y, xid, Y)[0]]
        for field in ("exchange_id", "requester", "provider", "business", "item", "operator", "outcome",
                      "payload_sha256"):
            self.assertEqual(len({r[field] for r in rows}), 1, (field, rows))
        self.assertEqual(rows[0]["operator"], "op-777")
        self.assertEqual(rows[1]["operator"], "op-777")
        self.assertEqual(rows[0]["outcome"], "provided")
        self.assertRegex(rows[0]["payload_sha256"], "^[0-9a-f]{64}$")
        self.assertEqual(rows[2]["subject"], "Y1")
        self.assertEqual(rows[1]["subject"], "K1")
        self.assertRegex(rows[0]["subject"], r"^\d+$")  # the core's serial, never a person's data
        core_text = json.dumps(self.records("core", xid, "operator"))
        self.assertNotIn("3350000", core_text)

    def test_gateways_log_metadata_only(self):
        a = self.query(K, "q-msglog", "K1", "public_assistance", Y, "local_tax")
        self.assertEqual(a.json.get("status"), "provided")
        time.sleep(0.5 * SLOW)  # the log is flushed every 200 ms, off the relay path
        rows = self.net.sqlite(f"{K}-gateway", "SELECT caller, target, path, status FROM messages"
                                               " WHERE path = '/v1/exchanges'")
        self.assertIn((K, "core", "/v1/exchanges", 200), rows)
        rows = self.net.sqlite(f"{Y}-gateway", "SELECT caller, target, path, status FROM messages"
                                               " WHERE path = '/v1/provisions'")
        self.assertIn(("core", Y, "/v1/provisions", 200), rows)
        self.assertFalse(self.net.store_holds(f"{Y}-gateway", "3350000"))  # no content in the gateway's store
        self.assertTrue(self.net.store_holds(f"{Y}-gateway", "/v1/provisions"))  # (the check can fail)
        # GET /v1/records on every node (DESIGN §4): a gateway's records are its message log,
        # for its agency's operator or the network operator, not another agency's.
        log = self.net.call(f"{K}-gateway", "GET", "/v1/records?limit=5", as_client=f"{K}-operator")
        self.assertEqual(log.status, 200, log)
        self.assertTrue(all("body" not in m and "value" not in m for m in log.json["messages"]))
        self.assertEqual(self.net.call(f"{K}-gateway", "GET", "/v1/records", as_client="operator").status, 200)
        a = self.net.call(f"{K}-gateway", "GET", "/v1/records", as_client=f"{Y}-operator")
        self.assertEqual((a.status, a.error), (403, "wrong_agency"))
        relays = self.net.call("jlis", "GET", "/v1/records?limit=3", as_client="operator")
        self.assertEqual(relays.status, 200, relays)
        self.assertTrue(relays.json["relays"] and set(relays.json["relays"][0]) >= {"agency", "acquisition_no", "line"})
        self.assertNotRegex(relays.raw, r"\b\d{12}\b")  # never a My Number

    def test_payload_at_the_core_is_opaque(self):
        a = self.query(K, "q-opaque", "K1", "public_assistance", Y, "local_tax")
        (body,), = self.net.sqlite("core", "SELECT body FROM answers WHERE key = ?", (a.json["exchange_id"],))
        payload = base64.b64decode(json.loads(body)["payload"])
        self.assertNotIn(b"3350000", payload)
        self.assertNotIn("令和7年度".encode(), payload)
        with tempfile.NamedTemporaryFile(suffix=".der") as f:
            f.write(payload)
            f.flush()
            core = self.net.path("nodes", "core")
            p = subprocess.run(["openssl", "cms", "-decrypt", "-inform", "DER", "-in", f.name, "-inkey",
                                os.path.join(core, "key.pem"), "-recip", os.path.join(core, "cert.pem")],
                               capture_output=True)
            self.assertNotEqual(p.returncode, 0)
            self.assertNotIn(b"3350000", p.stdout)
            # …while the requester's own key opens it (the envelope is standard CMS).
            kn = self.net.path("nodes", K)
            p = subprocess.run(["openssl", "cms", "-decrypt", "-inform", "DER", "-in", f.name, "-inkey",
                                os.path.join(kn, "key.pem"), "-recip", os.path.join(kn, "cert.pem")],
                               capture_output=True)
            self.assertEqual(p.returncode, 0, p.stderr)

    def test_provider_unavailable(self):
        self.net.stop_node(N)
        try:
            a = self.query(Y, "q-down", "Y1", "child_allowance", N, "pension_benefits")
            self.assertEqual((a.status, a.error), (502, "provider_unavailable"), a)
            self.assertEqual(self.records("core", a.json["exchange_id"], "operator")[0]["outcome"],
                             "provider_unavailable")
        finally:
            self.net.start_node(N)

    def test_provider_timeout(self):
        p = self.net.procs[N]
        p.send_signal(signal.SIGSTOP)
        try:
            t = time.time()
            a = self.query(Y, "q-slow", "Y1", "child_allowance", N, "pension_benefits")
            self.assertEqual((a.status, a.error), (504, "provider_timeout"), a)
            self.assertLess(time.time() - t, 10 * SLOW)
        finally:
            p.send_signal(signal.SIGCONT)

    def test_sighup_reload_refuses_a_malformed_table_and_applies_a_good_one(self):
        # The table in force is the signed catalogue (DESIGN §2.3): a malformed
        # table is refused by the publisher with file and line; a good one,
        # published, is taken in on SIGHUP.
        path = self.net.path("permissions.csv")
        with open(path) as f:
            original = f.read()
        try:
            with open(path, "w") as f:
                f.write(original + "municipality,child_allowance\n")
            p = renkei("catalog", "publish", self.net.dir, "--effective", "2020-01-01", check=False)
            self.assertEqual(p.returncode, 1)
            self.assertRegex(p.stderr, r"permissions.csv:\d+")
            a = self.query(K, "q-reload-1", "K1", "public_assistance", Y, "local_tax")
            self.assertEqual(a.json.get("status"), "provided")  # the old table stays in force
            with open(path, "w") as f:
                f.write("".join(l for l in original.splitlines(True)
                                if not l.startswith("prefecture,public_assistance,municipality,local_tax")))
            renkei("catalog", "publish", self.net.dir, "--effective", "2020-01-01", "--version", "100")
            self.net.procs["core"].send_signal(signal.SIGHUP)
            time.sleep(0.5 * SLOW)
            a = self.query(K, "q-reload-2", "K1", "public_assistance", Y, "local_tax")
            self.assertEqual((a.status, a.error), (403, "not_permitted"))
        finally:
            with open(path, "w") as f:
                f.write(original)
            renkei("catalog", "publish", self.net.dir, "--effective", "2020-01-01", "--version", "101")
            self.net.procs["core"].send_signal(signal.SIGHUP)
            time.sleep(0.5 * SLOW)

    def test_records_filter_over_its_cap_is_refused_not_ignored(self):
        a = self.net.call(K, "GET", "/v1/records?exchange_id=" + "x" * 200, as_client=K)
        self.assertEqual((a.status, a.error), (400, "invalid_field"))
        a = self.net.call(K, "GET", "/v1/records?limit=100000", as_client=K)
        self.assertEqual((a.status, a.error), (400, "invalid_field"))

    def test_gateway_limits_each_caller(self):
        from concurrent.futures import ThreadPoolExecutor
        ask = lambda i: self.query(H, f"q-rate-{i}", "H1", "health_insurance_benefits", Y, "local_tax")
        with ThreadPoolExecutor(8) as pool:  # 8 at once; the insurer's gateway lets 3 a second through
            answers = list(pool.map(ask, range(8)))
        codes = [a.error or a.json.get("status") for a in answers]
        self.assertIn("rate_limited", codes)
        self.assertGreaterEqual(codes.count("provided"), 3)
        limited = codes.index("rate_limited")
        time.sleep(1.1)
        again = self.query(H, f"q-rate-{limited}", "H1", "health_insurance_benefits", Y, "local_tax")
        self.assertEqual(again.json.get("status"), "provided")  # not settled: the same id goes through later
        m = self.net.call(f"{H}-gateway", "GET", "/metrics", as_client="operator").raw
        self.assertRegex(m, r"renkei_rate_limited_total [1-9]")

    def test_put_data_with_a_request_id_is_stored_once(self):
        body = {"value": {"care_level": 2}, "as_of": "2026-03-01", "request_id": "put-0001"}
        first = self.net.agency_call(Y, "PUT", "/v1/data/Y1/long_term_care_benefits", body)
        again = self.net.agency_call(Y, "PUT", "/v1/data/Y1/long_term_care_benefits", body)
        self.assertEqual(first.status, 200, first)
        self.assertEqual(first.json, again.json)
        (n,), = self.net.sqlite(Y, "SELECT count(*) FROM data WHERE person = 'Y1' AND item = 'long_term_care_benefits'")
        self.assertEqual(n, 1)
        other = dict(body, value={"care_level": 3})
        a = self.net.agency_call(Y, "PUT", "/v1/data/Y1/long_term_care_benefits", other)
        self.assertEqual((a.status, a.error), (409, "conflict"))

    def test_put_data_refusals(self):
        a = self.net.agency_call(Y, "PUT", "/v1/data/NOBODY/local_tax", {"value": 1, "as_of": "2026-01-01"})
        self.assertEqual((a.status, a.error), (404, "unknown_person"))
        a = self.net.agency_call(Y, "PUT", "/v1/data/Y1/local_tax", {"value": 1, "as_of": "yesterday"})
        self.assertEqual((a.status, a.error), (400, "invalid_field"))
        a = self.net.agency_call(Y, "PUT", "/v1/data/Y1/Local-Tax", {"value": 1, "as_of": "2026-01-01"})
        self.assertEqual((a.status, a.error), (400, "invalid_field"))


class TamperingGateway(http.server.BaseHTTPRequestHandler):
    """Stands in the requester's gateway and alters every provided answer
    with `tamper` (a function of the answer's JSON)."""
    net = None
    tamper = None

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        a = self.net.call("core", "POST", self.path, body, as_client=("node", f"{K}-gateway"))
        out = a.json
        if "payload" in out:
            type(self).tamper(out)
        data = json.dumps(out).encode()
        self.send_response(a.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def flip_a_byte(out):
    raw = bytearray(base64.b64decode(out["payload"]))
    raw[len(raw) // 2] ^= 0x01
    out["payload"] = base64.b64encode(bytes(raw)).decode()


class AlteredPayload(unittest.TestCase):
    def test_payload_altered_in_transit_is_rejected(self):
        net = Network(agencies=3, persons=10)
        try:
            net.start()
            number = net.residents()[0]["my_number"]
            for ag, p in ((Y, "Y1"), (K, "K1")):
                self.assertEqual(net.enrol(ag, p, number).status, 202)
                net.wait_status(ag, p, "linked")
            net.agency_call(Y, "PUT", "/v1/data/Y1/local_tax", {"value": {"tax": 5}, "as_of": "2026-01-01"})
            with open(net.path("nodes", N, "cert.pem")) as f:
                other_agency_cert = f.read()  # registered, from the network CA, not the provider's
            tamperings = {
                "payload": flip_a_byte,
                "signer_swapped": lambda out: out.update(provider_cert=other_agency_cert),
                "signer_missing": lambda out: out.pop("provider_cert"),
                "signer_garbled": lambda out: out.update(provider_cert=out["provider_cert"].replace("M", "N", 1)),
            }
            net.stop_node(f"{K}-gateway")
            host, port = net.url_of(f"{K}-gateway")
            srv = http.server.ThreadingHTTPServer((host, port), TamperingGateway)
            TamperingGateway.net = net
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(net.path("nodes", f"{K}-gateway", "cert.pem"),
                                net.path("nodes", f"{K}-gateway", "key.pem"))
            ctx.load_verify_locations(net.path("pki", "ca.pem"))
            ctx.verify_mode = ssl.CERT_REQUIRED
            srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            answers = {}
            try:
                for name, tamper in tamperings.items():
                    TamperingGateway.tamper = staticmethod(tamper)
                    answers[name] = net.agency_call(K, "POST", "/v1/queries", {
                        "query_id": f"q-tamper-{name}", "person": "K1", "business": "public_assistance",
                        "provider": Y, "item": "local_tax", "operator": "op-1"})
            finally:
                srv.shutdown()
                srv.server_close()
            for name, a in answers.items():
                with self.subTest(tampering=name):
                    self.assertEqual((a.status, a.error), (502, "bad_payload"), a)
                    self.assertNotIn("value", a.json)
                    rec = net.call(K, "GET", f"/v1/records?exchange_id={a.json['exchange_id']}", as_client=K).json
                    self.assertEqual(rec["records"][0]["outcome"], "bad_payload")
            self.assertEqual(net.sqlite(K, "SELECT count(*) FROM received")[0][0], 0)
            net.start_node(f"{K}-gateway")
            # the real gateway again: the same person and item are provided
            a = net.agency_call(K, "POST", "/v1/queries", {
                "query_id": "q-after-tamper", "person": "K1", "business": "public_assistance", "provider": Y,
                "item": "local_tax", "operator": "op-1"})
            self.assertEqual((a.status, a.json.get("status"), a.json.get("value")), (200, "provided", {"tax": 5}), a)
        finally:
            net.stop()


if __name__ == "__main__":
    main()
