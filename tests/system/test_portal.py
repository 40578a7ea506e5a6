"""The person's view (法23条; DESIGN §2.5, §3): a person signs in to the
portal with a card of the card CA and sees exactly their own exchanges at
the core — permitted, refused and failed ones — each with its leaf and an
inclusion proof against a checkpoint the log signed and every witness
cosigned, all checked here by the test's own verifier (portal_verify.py:
hashlib and the `cryptography` package). No card, a revoked card, a card
of another CA, a card J-LIS does not know and a node's certificate are
refused; the portal keeps no resident code; J-LIS logs every card lookup.
A record its agency marked not to be disclosed (個人情報保護法78条) keeps
its place in the list — leaf hash and proof — without a detail, until the
agency's operator lifts the marking: then it is shown in detail again."""
import base64
import datetime
import json
import os
import signal
import ssl
import subprocess
import time
import unittest

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from harness import SLOW, Network, main, renkei
from portal_verify import NotVerified, verify_answer

Y, K, N, H = "city-yokohama", "pref-kanagawa", "nenkin-kikou", "kyokai-kenpo"


def make_cert(subject, issuer_name, issuer_key, key, serial, ca=False, expired=False):
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=60 if expired else 0)
    b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
         .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
         .public_key(key.public_key()).serial_number(serial)
         .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=30))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        b = b.add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def write_pair(folder, cert, key):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "cert.pem"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(os.path.join(folder, "key.pem"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return folder


class Portal(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        net = cls.net = Network(agencies=4, persons=12, conf_extra={"core": "[records]\nhead_interval_ms = 200\n"})
        net.start()
        cls.residents = net.residents()
        a, b = cls.residents[0]["my_number"], cls.residents[1]["my_number"]
        for ag, person, number in ((Y, "YA", a), (K, "KA", a), (N, "NA", a), (Y, "YB", b), (K, "KB", b)):
            assert net.enrol(ag, person, number).status == 202
        for ag, person in ((Y, "YA"), (K, "KA"), (N, "NA"), (Y, "YB"), (K, "KB")):
            net.wait_status(ag, person, "linked")
        put = lambda ag, p, item, value: net.agency_call(ag, "PUT", f"/v1/data/{p}/{item}",
                                                         {"value": value, "as_of": "2026-04-01"})
        for ag, p, item in ((Y, "YA", "local_tax"), (N, "NA", "pension_benefits"), (Y, "YB", "local_tax")):
            assert put(ag, p, item, {"v": 1}).status == 200
        q = lambda ag, qid, person, business, provider, item: net.agency_call(
            ag, "POST", "/v1/queries", {"query_id": qid, "person": person, "business": business, "provider": provider,
                                        "item": item, "operator": "op-7"})
        cls.xid = {}
        cls.xid["permitted"] = q(K, "pa-1", "KA", "public_assistance", Y, "local_tax").json["exchange_id"]
        cls.xid["pension"] = q(Y, "pa-2", "YA", "child_allowance", N, "pension_benefits").json["exchange_id"]
        refused = q(N, "pa-3", "NA", "national_pension", Y, "child_allowance")
        assert refused.status == 403, refused
        cls.xid["refused"] = refused.json["exchange_id"]
        net.stop_node(N)  # the provider is down: a failed exchange
        failed = q(Y, "pa-4", "YA", "child_allowance", N, "pension_benefits")
        assert failed.status in (502, 504), failed
        cls.xid["failed"] = failed.json["exchange_id"]
        net.start_node(N)
        cls.xid["other"] = q(K, "pb-1", "KB", "public_assistance", Y, "local_tax").json["exchange_id"]
        cls.card_a, cls.card_b, cls.card_c = (net.issue_card(i) for i in (1, 2, 3))
        keys = {n["id"]: n for n in net.registry["nodes"]}
        cls.log_vkey = keys["core"]["log_vkey"]
        cls.witness_vkeys = [n["vkey"] for n in net.registry["nodes"] if n["role"] == "witness"]

    @classmethod
    def tearDownClass(cls):
        cls.net.stop()

    # ---------- helpers ----------
    def serial_of(self, index):
        code = self.residents[index]["resident_code"]
        rows = self.net.sql("core", "SELECT serial FROM resident_codes WHERE resident_code = ?", (code,))
        return str(rows[0][0])

    def my_exchanges(self, card, query=""):
        a = self.net.person_call(card[1], "GET", "/v1/me/exchanges" + query)
        self.assertEqual(a.status, 200, a)
        return a

    def proven_list(self, card, want=None):
        """The person's list once every entry is in a witnessed checkpoint, checked."""
        deadline = time.time() + 20 * SLOW
        while True:
            a = self.my_exchanges(card)
            body = a.json
            if all("inclusion_proof" in e for e in body["exchanges"]) and (want is None or want(body)):
                return a, verify_answer(body, self.log_vkey, self.witness_vkeys)
            if time.time() > deadline:
                self.fail(f"entries still not in a witnessed checkpoint: {a}")
            time.sleep(0.2)

    # ---------- the list ----------
    def test_a_person_sees_exactly_their_own_exchanges_each_proven(self):
        mine = self.serial_of(0)
        expected = {r[0] for r in self.net.sql("core", "SELECT exchange_id FROM records WHERE subject = ?", (mine,))}
        a, checked = self.proven_list(self.card_a, lambda b: {e.get("exchange_id") for e in b["exchanges"]} >= expected)
        got = [leaf for _, leaf in checked]
        self.assertEqual({l["exchange_id"] for l in got}, expected)
        self.assertTrue({l["subject"] for l in got} == {mine}, got)  # never another person's record
        self.assertNotIn(self.xid["other"], a.raw)
        outcomes = {l["exchange_id"]: l["outcome"] for l in got}
        self.assertEqual(outcomes[self.xid["permitted"]], "provided")
        self.assertEqual(outcomes[self.xid["refused"]], "not_permitted")
        self.assertIn(outcomes[self.xid["failed"]], ("provider_unavailable", "provider_timeout"))
        # newest first
        idx = [e["leaf_index"] for e in a.json["exchanges"]]
        self.assertEqual(idx, sorted(idx, reverse=True))
        # the names of the catalogue
        e = next(e for e, _ in checked if e["exchange_id"] == self.xid["permitted"])
        self.assertEqual(e["names"], {"requester": "都道府県知事等", "provider": "市町村長", "business":
                                      "生活保護法による保護の決定及び実施又は就労自立給付金若しくは進学準備給付金の支給に関する事務",
                                      "item": "地方税関係情報"})
        self.assertEqual((e["names_en"]["item"], e["names_en"]["requester"]),
                         ("Local tax information", "Prefectural governor or other welfare-office authority (都道府県知事等)"))
        # the other person sees theirs, and not A's
        _, b_checked = self.proven_list(self.card_b, lambda b: any(e.get("exchange_id") == self.xid["other"]
                                                                   for e in b["exchanges"]))
        self.assertEqual({l["exchange_id"] for _, l in b_checked}, {self.xid["other"]})
        self.assertEqual({l["subject"] for _, l in b_checked}, {self.serial_of(1)})

    def test_the_verifier_refuses_what_is_wrong(self):
        """The test's verifier is no rubber stamp: each alteration fails it."""
        import copy
        a, _ = self.proven_list(self.card_a)
        good = a.json
        e0 = next(i for i, e in enumerate(good["exchanges"]) if "leaf" in e)

        def altered(fn):
            body = copy.deepcopy(good)
            fn(body)
            return body

        def flip_leaf(b):
            raw = bytearray(base64.b64decode(b["exchanges"][e0]["leaf"]))
            raw[-3] ^= 1
            b["exchanges"][e0]["leaf"] = base64.b64encode(bytes(raw)).decode()

        def flip_proof(b):
            p = bytearray(base64.b64decode(b["exchanges"][e0]["inclusion_proof"][0]))
            p[0] ^= 1
            b["exchanges"][e0]["inclusion_proof"][0] = base64.b64encode(bytes(p)).decode()

        def drop_cosignature(b):
            note = b["tree_head"]["checkpoint"]
            b["tree_head"]["checkpoint"] = "\n".join(l for l in note.split("\n") if "witness-1" not in l)

        def other_field(b):
            b["exchanges"][e0]["exchange_id"] = self.xid["other"]

        self.assertTrue(good["exchanges"][e0]["inclusion_proof"], "a proof of at least one hash")
        for what, fn in (("a leaf", flip_leaf), ("a proof", flip_proof), ("a cosignature", drop_cosignature),
                         ("a field beside its leaf", other_field)):
            with self.assertRaises(NotVerified, msg=what):
                verify_answer(altered(fn), self.log_vkey, self.witness_vkeys)
        with self.assertRaises(NotVerified, msg="another witness's key"):
            verify_answer(good, self.log_vkey, [self.witness_vkeys[0].replace("witness-1", "witness-2")])

    def test_a_resident_the_core_does_not_know_has_an_empty_list(self):
        a = self.my_exchanges(self.card_c)
        self.assertEqual(a.json["exchanges"], [])
        verify_answer(a.json, self.log_vkey, self.witness_vkeys)  # the checkpoint is still the log's

    def test_pages_cover_the_list_once(self):
        full, _ = self.proven_list(self.card_a)
        ids, cursor, pages = [], "", 0
        while True:
            a = self.my_exchanges(self.card_a, f"?limit=2{cursor}")
            pages += 1
            ids += [e["leaf_index"] for e in a.json["exchanges"]]
            if "next_cursor" not in a.json:
                break
            cursor = f"&cursor={a.json['next_cursor']}"
        self.assertGreaterEqual(pages, 2)
        self.assertEqual(ids, [e["leaf_index"] for e in full.json["exchanges"]][:len(ids)])
        self.assertEqual(len(ids), len(set(ids)))
        for q in ("?limit=0", "?limit=101", "?cursor=-1", "?cursor=x", "?limit=1e3"):
            a = self.net.person_call(self.card_a[1], "GET", "/v1/me/exchanges" + q)
            self.assertEqual((a.status, a.error), (400, "invalid_field"), q)

    def test_the_keys_are_network_json_s(self):
        a = self.net.person_call(self.card_a[1], "GET", "/v1/me/keys")
        self.assertEqual(a.status, 200, a)
        self.assertEqual(a.json["log"]["vkey"], self.log_vkey)
        self.assertEqual([w["vkey"] for w in a.json["witnesses"]], self.witness_vkeys)

    def test_the_page_and_its_files_are_served_from_the_node(self):
        page = self.net.person_call(self.card_a[1], "GET", "/")
        self.assertEqual(page.status, 200)
        self.assertIn("text/html", page.headers["Content-Type"])
        self.assertIn("やりとり履歴", page.raw)
        self.assertIn("default-src 'none'", page.headers["Content-Security-Policy"])
        for path in ("/portal.js", "/portal.css"):
            self.assertEqual(self.net.person_call(self.card_a[1], "GET", path).status, 200, path)
        # no outside resource: every src and href of the page is the node's own
        import re
        for ref in re.findall(r'(?:src|href)="([^"]*)"', page.raw):
            self.assertTrue(ref.startswith("/") and not ref.startswith("//"), ref)
        self.assertEqual(self.net.person_call(self.card_a[1], "GET", "/healthz").status, 404)  # no node route here

    # ---------- who may ----------
    def test_no_card_another_ca_and_a_node_certificate_are_refused_in_the_handshake(self):
        other_ca_key = ec.generate_private_key(ec.SECP256R1())
        key = ec.generate_private_key(ec.SECP256R1())
        folder = write_pair(self.net.path("cards", "other-ca"),
                            make_cert("0" * 32, "another-ca", other_ca_key, key, 0x4000000000000000000000000000001),
                            key)
        # a card of the card CA that has expired (its serial known to J-LIS: the handshake alone refuses it)
        with open(self.net.path("pki", "card-ca-key.pem"), "rb") as f:
            ca_key = serialization.load_pem_private_key(f.read(), None)
        serial = 0x4aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
        expired = write_pair(self.net.path("cards", "expired"),
                             make_cert(f"{serial:032x}", "renkei-card-ca", ca_key, key, serial, expired=True), key)
        with open(self.net.path("nodes", "jlis", "cards.csv"), "a") as f:
            f.write(f"{serial:032x},{self.residents[0]['resident_code']},1\n")
        cases = {"no card": (None, None), "another CA's card": (folder, None), "an expired card": (expired, None),
                 "a node's certificate": (None, self.net.credentials(("node", Y))),
                 "the operator's certificate": (None, self.net.credentials("operator"))}
        for what, (card, cert) in cases.items():
            with self.assertRaises((ssl.SSLError, ConnectionError, OSError), msg=what):
                a = self.net.person_call(card, "GET", "/v1/me/exchanges", cert=cert)
                self.fail(f"{what}: answered {a}")
        # and a card is no node's certificate: the network's listeners refuse it
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
            self.net.call("core", "GET", "/healthz", cert=(os.path.join(self.card_a[1], "cert.pem"),
                                                            os.path.join(self.card_a[1], "key.pem")))

    def test_a_card_j_lis_does_not_know_is_refused(self):
        with open(self.net.path("pki", "card-ca-key.pem"), "rb") as f:
            ca_key = serialization.load_pem_private_key(f.read(), None)
        key = ec.generate_private_key(ec.SECP256R1())
        serial = 0x4123456789abcdef0123456789abcdef
        folder = write_pair(self.net.path("cards", "unknown"),
                            make_cert(f"{serial:032x}", "renkei-card-ca", ca_key, key, serial), key)
        a = self.net.person_call(folder, "GET", "/v1/me/exchanges")
        self.assertEqual((a.status, a.error), (404, "unknown_card"), a)

    def test_a_revoked_card_is_refused(self):
        serial, folder = self.net.issue_card(4)
        self.assertEqual(self.net.person_call(folder, "GET", "/v1/me/exchanges").status, 200)
        out = renkei("card", "revoke", self.net.dir, serial).stdout
        self.assertIn("revoked", out)
        # J-LIS refuses it at once, before the portal has the new CRL
        a = self.net.person_call(folder, "GET", "/v1/me/exchanges")
        self.assertEqual((a.status, a.error), (403, "card_revoked"), a)
        # the portal takes the new CRL on SIGHUP; then the handshake refuses the card
        number = self.crl_number()
        self.net.procs["portal"].send_signal(signal.SIGHUP)
        deadline = time.time() + 15 * SLOW
        while self.crl_number() == number and time.time() < deadline:
            time.sleep(0.1)
        self.assertGreater(self.crl_number(), number)
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
            self.net.person_call(folder, "GET", "/v1/me/exchanges")
        self.assertEqual(self.net.person_call(self.card_a[1], "GET", "/v1/me/keys").status, 200)  # others still in
        # revoking again changes nothing; a malformed serial is refused
        self.assertIn("already", renkei("card", "revoke", self.net.dir, serial).stdout)
        p = renkei("card", "revoke", self.net.dir, "xyz", check=False)
        self.assertEqual(p.returncode, 2, p.stderr)
        # J-LIS's lookup log has both outcomes, by card serial, and the portal as the caller
        lookups = self.net.call("jlis", "GET", "/v1/lookups?limit=500", as_client="operator").json["lookups"]
        mine = [l for l in lookups if l["acquisition_no"] == serial]
        self.assertEqual({(l["purpose"], l["outcome"], l["agency"]) for l in mine},
                         {("card", "match", "portal"), ("card", "card_revoked", "portal")})

    def crl_number(self):
        return self.net.call("portal", "GET", "/healthz", as_client="operator").json["checks"]["card_crl_number"]

    def test_card_issue_refuses_bad_input(self):
        for args, code in (((self.net.dir, "--resident", 0, "--out", "/tmp/x"), 2),
                           ((self.net.dir, "--resident", 99, "--out", self.net.path("cards", "none")), 1),
                           ((self.net.dir, "--out", "/tmp/x"), 2),
                           ((self.net.path("nowhere"), "--resident", 1, "--out", "/tmp/x"), 1)):
            p = renkei("card", "issue", *args, check=False)
            self.assertEqual(p.returncode, code, (args, p.stderr))
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)

    def test_only_the_portal_asks_j_lis_for_cards_and_the_core_for_a_person(self):
        a = self.net.call("jlis", "POST", "/v1/card-lookups", {"card_serial": self.card_a[0]}, as_client="operator")
        self.assertEqual((a.status, a.error), (403, "role_not_allowed"))
        a = self.net.call("core", "POST", "/v1/persons/exchanges", {"resident_code": self.residents[0]["resident_code"]},
                          as_client=("node", Y))
        self.assertEqual((a.status, a.error), (403, "role_not_allowed"))
        # as the portal: the malformed are refused
        portal = ("node", "portal")
        for body in ({}, {"card_serial": "ABC"}, {"card_serial": "0" * 33}):
            a = self.net.call("jlis", "POST", "/v1/card-lookups", body, as_client=portal)
            self.assertEqual((a.status, a.error), (400, "invalid_field"), body)
        for body in ({}, {"resident_code": "123"}, {"resident_code": "12345678901", "limit": 0},
                     {"resident_code": "12345678901", "cursor": "1"}):
            a = self.net.call("core", "POST", "/v1/persons/exchanges", body, as_client=portal)
            self.assertEqual((a.status, a.error), (400, "invalid_field"), body)

    def test_the_portal_keeps_no_resident_code(self):
        self.my_exchanges(self.card_a)
        self.my_exchanges(self.card_b)
        for r in self.residents[:2]:
            self.assertFalse(self.net.store_holds("portal", r["resident_code"]))
            self.assertNotIn(r["resident_code"], self.net.log("portal"))
            self.assertNotIn(r["my_number"], self.net.log("portal"))

    # ---------- withheld records (不開示) ----------
    def test_a_withheld_record_shows_its_place_and_no_detail(self):
        xid = self.xid["pension"]
        mark = lambda who, x, body: self.net.call(who, "POST", f"/v1/records/{x}/nondisclosure", body,
                                                  as_client=f"{who}-operator")
        # only a party to the exchange, and its own operator, may mark it; bad bodies change nothing
        self.assertEqual(mark(H, xid, {"basis": "b", "operator": "op-h"}).status, 404)
        a = self.net.call(N, "POST", f"/v1/records/{xid}/nondisclosure", {"basis": "b", "operator": "o"},
                          as_client=f"{Y}-operator")
        self.assertEqual((a.status, a.error), (403, "wrong_agency"))
        for body in ({"operator": "o"}, {"basis": "b"}, {"basis": "b", "operator": "o", "until": "2026-02-30"},
                     {"basis": "x" * 151, "operator": "o"}):
            a = mark(N, xid, body)
            self.assertEqual((a.status, a.error), (400, "invalid_field"), body)
        self.assertEqual(mark(N, "no.such-exchange", {"basis": "b", "operator": "o"}).status, 404)
        # a marking whose date has passed hides nothing
        past = self.xid["refused"]
        a = mark(N, past, {"basis": "個人情報保護法78条1項7号", "operator": "op-n", "until": "2000-01-01"})
        self.assertEqual((a.status, a.json.get("status")), (200, "withheld"), a)
        # the provider marks it, until lifted
        basis = "個人情報保護法78条1項7号（事務の適正な遂行に支障）"
        a = mark(N, xid, {"basis": basis, "operator": "op-n"})
        self.assertEqual((a.status, a.json["status"]), (200, "withheld"), a)
        self.assertEqual(mark(N, xid, {"basis": basis, "operator": "op-n"}).status, 200)  # again: harmless
        ans, checked = self.proven_list(self.card_a, lambda b: sum("withheld" in e for e in b["exchanges"]) >= 2)
        held = [e for e, leaf in checked if leaf is None]
        self.assertGreaterEqual(len(held), 2)  # the exchange's record and the marking's step, both in place
        for e in held:
            self.assertEqual(set(e), {"leaf_index", "leaf_hash", "inclusion_proof", "withheld"}, e)
            self.assertEqual(e["withheld"]["basis"], basis)
        self.assertNotIn(xid, ans.raw)  # neither the exchange nor any of its details
        # the other records stay whole; the one whose marking lapsed is shown
        shown = {leaf["exchange_id"] for _, leaf in checked if leaf}
        self.assertIn(self.xid["permitted"], shown)
        self.assertIn(past, shown)
        # the marking is a step of both logs
        core = self.net.sql("core", "SELECT outcome, reason FROM records WHERE exchange_id = ? AND outcome = 'withheld'",
                            (xid,))
        self.assertEqual(len(core), 1)
        self.assertIn(N, core[0][1])
        self.assertEqual(len(self.net.sql(N, "SELECT 1 FROM records WHERE exchange_id = ? AND outcome = 'withheld'",
                                          (xid,))), 1)

    def test_a_withholding_lifted_early_shows_the_record_again(self):
        xid = self.net.agency_call(K, "POST", "/v1/queries", {
            "query_id": "pa-lift", "person": "KA", "business": "public_assistance", "provider": Y,
            "item": "local_tax", "operator": "op-7"}).json["exchange_id"]
        lift = lambda who, x, body, client=None: self.net.call(who, "POST", f"/v1/records/{x}/nondisclosure/lift",
                                                               body, as_client=client or f"{who}-operator")
        body = {"operator": "op-y", "reason": "不開示事由の消滅"}
        # not withheld yet: nothing to lift, here and at the core
        a = lift(Y, xid, body)
        self.assertEqual((a.status, a.error), (409, "not_withheld"), a)
        basis = "個人情報保護法78条1項7号"
        a = self.net.call(Y, "POST", f"/v1/records/{xid}/nondisclosure", {"basis": basis, "operator": "op-y"},
                          as_client=f"{Y}-operator")
        self.assertEqual((a.status, a.json["status"]), (200, "withheld"), a)
        ans, checked = self.proven_list(self.card_a, lambda b: all(
            e.get("exchange_id") != xid for e in b["exchanges"]) and sum(
            e.get("withheld", {}).get("basis") == basis for e in b["exchanges"]) >= 2)
        self.assertNotIn(xid, ans.raw)
        # refusals, each changing nothing
        a = lift(H, xid, body)
        self.assertEqual((a.status, a.error), (404, "not_found"), a)  # not this agency's record
        self.assertEqual(lift(Y, "no.such-exchange", body).status, 404)
        a = lift(Y, xid, body, client=f"{K}-operator")
        self.assertEqual((a.status, a.error), (403, "wrong_agency"), a)  # another agency's operator
        a = lift(Y, xid, body, client=Y)
        self.assertEqual((a.status, a.error), (403, "role_not_allowed"), a)  # the agency's system: wrong role
        a = lift(Y, xid, body, client="operator")
        self.assertEqual(a.status, 403, a)  # the network's operator
        for bad in ({"reason": "r"}, {"operator": "op-y"}, {"operator": "op y", "reason": "r"},
                    {"operator": "op-y", "reason": "x" * 151}, {"operator": 7, "reason": "r"}):
            a = lift(Y, xid, bad)
            self.assertEqual(a.status, 400, (bad, a))
        a = lift(K, xid, body)  # the requester never marked it
        self.assertEqual((a.status, a.error), (409, "not_withheld"), a)
        self.assertEqual(self.net.sql("core", "SELECT 1 FROM records WHERE exchange_id = ? AND outcome = 'disclosed'",
                                      (xid,)), [])
        # a gateway relays the lifting only from its own agency; the core takes it only from a gateway
        a = self.net.call("core", "POST", "/v1/nondisclosures/lift", {"exchange_id": xid, **body},
                          as_client=f"{Y}-operator")
        self.assertEqual(a.status, 403, a)
        # the provider's operator lifts it: the person sees the record whole again
        a = lift(Y, xid, body)
        self.assertEqual((a.status, a.json), (200, {"exchange_id": xid, "status": "disclosed"}), a)
        a = lift(Y, xid, body)  # again: nothing is withheld any more
        self.assertEqual((a.status, a.error), (409, "not_withheld"), a)
        ans, checked = self.proven_list(self.card_a, lambda b: sum(
            e.get("exchange_id") == xid for e in b["exchanges"]) >= 3)
        steps = {leaf["outcome"] for _, leaf in checked if leaf and leaf["exchange_id"] == xid}
        self.assertTrue({"withheld", "disclosed"} <= steps and len(steps) >= 3, steps)
        self.assertFalse([e for e in ans.json["exchanges"] if e.get("withheld", {}).get("basis") == basis])
        # both steps are in both logs, the operator and the reason named
        core = self.net.sql("core", "SELECT outcome, operator, reason FROM records WHERE exchange_id = ? AND outcome"
                            " IN ('withheld', 'disclosed') ORDER BY seq", (xid,))
        self.assertEqual([r[0] for r in core], ["withheld", "disclosed"], core)
        self.assertEqual(core[1][1], "op-y")
        self.assertIn(Y, core[1][2])
        self.assertIn("不開示事由の消滅", core[1][2])
        here = self.net.sql(Y, "SELECT outcome, operator FROM records WHERE exchange_id = ? AND outcome"
                            " IN ('withheld', 'disclosed') ORDER BY seq", (xid,))
        self.assertEqual([tuple(r) for r in here], [("withheld", "op-y"), ("disclosed", "op-y")], here)
        self.assertEqual(self.net.sql("core", "SELECT 1 FROM nondisclosures WHERE exchange_id = ?", (xid,)), [])
        # the agency's records API shows both steps too
        a = self.net.call(Y, "GET", f"/v1/records?exchange_id={xid}", as_client=f"{Y}-operator")
        self.assertEqual(a.status, 200, a)
        self.assertTrue({"withheld", "disclosed"} <= {r["outcome"] for r in a.json["records"]}, a.json)
        p = renkei("records", "verify", self.net.dir, check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)


if __name__ == "__main__":
    main()
