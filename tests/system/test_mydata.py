"""わたしの情報 (DESIGN §2.5): a person, signed in to the portal with their
card, sees their own data held by agencies — the items the permission table
lets an agency provide to the person themself (rows of requester kind
`self`): 住民票関係情報 from the municipality, 年金給付関係情報 from the
pension service. The core asks each agency holding a code for the person,
as any provision: the agency seals the value to the portal's certificate,
the core relays it unread, the portal opens it. Each ask is a record at the
core and at the agency with requester `portal`. A person never sees another
person's values; no card is refused in the handshake."""
import ssl
import unittest

from harness import Network, main, renkei

Y, K, N, H = "city-yokohama", "pref-kanagawa", "nenkin-kikou", "kyokai-kenpo"


class MyData(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        net = cls.net = Network(agencies=4, persons=6)
        net.start()
        cls.residents = net.residents()
        a, b = cls.residents[0]["my_number"], cls.residents[1]["my_number"]
        for ag, person, number in ((Y, "YA", a), (N, "NA", a), (K, "KA", a), (Y, "YB", b)):
            assert net.enrol(ag, person, number).status == 202
        for ag, person in ((Y, "YA"), (N, "NA"), (K, "KA"), (Y, "YB")):
            net.wait_status(ag, person, "linked")
        put = lambda ag, p, item, value: net.agency_call(ag, "PUT", f"/v1/data/{p}/{item}",
                                                         {"value": value, "as_of": "2026-04-01"})
        assert put(Y, "YA", "resident_record", {"address": "横浜市中区1-1", "who": "A"}).status == 200
        assert put(N, "NA", "pension_benefits", {"annual_yen": 780000, "who": "A"}).status == 200
        assert put(Y, "YB", "resident_record", {"address": "横浜市西区2-2", "who": "B"}).status == 200
        assert put(Y, "YA", "local_tax", {"v": "not for the person here"}).status == 200
        cls.card_a, cls.card_b, cls.card_c = (net.issue_card(i) for i in (1, 2, 3))

    @classmethod
    def tearDownClass(cls):
        cls.net.stop()

    def my_data(self, card):
        a = self.net.person_call(card[1], "GET", "/v1/me/data")
        self.assertEqual(a.status, 200, a)
        return a

    def serial_of(self, index):
        code = self.residents[index]["resident_code"]
        return str(self.net.sql("core", "SELECT serial FROM resident_codes WHERE resident_code = ?", (code,))[0][0])

    def test_1_a_person_sees_their_own_values_and_no_other_s(self):
        a = self.my_data(self.card_a)
        items = {(i["provider"], i["item"]): i for i in a.json["items"]}
        self.assertEqual(set(items), {(Y, "resident_record"), (N, "pension_benefits")}, a.json)
        for i in items.values():
            self.assertEqual(i["status"], "provided", i)
            self.assertEqual(i["value"]["who"], "A")
            self.assertEqual(i["as_of"], "2026-04-01")
        self.assertEqual(items[(Y, "resident_record")]["names"]["item"], "住民票関係情報")
        self.assertEqual(items[(N, "pension_benefits")]["value"]["annual_yen"], 780000)
        self.assertNotIn("local_tax", a.raw)  # no `self` row for it: never asked
        self.assertNotIn("payload", a.raw)    # the portal opened the sealed values
        b = self.my_data(self.card_b)
        self.assertEqual([(i["provider"], i["item"], i["value"]["who"]) for i in b.json["items"]],
                         [(Y, "resident_record", "B")], b.json)
        self.assertNotIn("780000", b.raw)
        self.assertNotIn("中区", b.raw)
        # a person no agency holds a code for: nothing
        c = self.my_data(self.card_c)
        self.assertEqual(c.json["items"], [])

    def test_2_each_ask_is_a_record_at_the_core_and_the_agency(self):
        self.my_data(self.card_a)
        serial = self.serial_of(0)
        core = self.net.sql("core", "SELECT exchange_id, provider, item, outcome, subject, payload_sha256 FROM records"
                            " WHERE requester = 'portal' AND side = 'core' AND subject = ?", (serial,))
        self.assertTrue({(r[1], r[2], r[3]) for r in core} >= {(Y, "resident_record", "provided"),
                                                              (N, "pension_benefits", "provided")}, core)
        for r in core:
            self.assertTrue(r[0].startswith("portal."), r)
            self.assertEqual(len(r[5]), 64, r)
        here = self.net.sql(Y, "SELECT exchange_id, requester, outcome, payload_sha256 FROM records"
                            " WHERE requester = 'portal' AND side = 'provider'")
        core_ids = {r[0]: r[5] for r in core if r[1] == Y}
        mine = [r for r in here if r[0] in core_ids]
        self.assertTrue(mine, here)
        for r in mine:
            self.assertEqual((r[1], r[2], r[3]), ("portal", "provided", core_ids[r[0]]), r)  # the same ciphertext
        # the person's やりとり履歴 lists them too
        a = self.net.person_call(self.card_a[1], "GET", "/v1/me/exchanges")
        self.assertIn(next(iter(core_ids)), a.raw)
        p = renkei("records", "verify", self.net.dir, check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_3_no_card_and_a_node_certificate_are_refused(self):
        for cert in (None, self.net.credentials(("node", Y))):
            with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
                a = self.net.person_call(None, "GET", "/v1/me/data", cert=cert)
                self.fail(f"answered {a}")
        # the core answers persons' data to the portal only
        a = self.net.call("core", "POST", "/v1/persons/data",
                          {"resident_code": self.residents[0]["resident_code"], "portal_cert": "x"},
                          as_client="operator")
        self.assertEqual(a.status, 403, a)
        a = self.net.call("core", "POST", "/v1/persons/data",
                          {"resident_code": self.residents[0]["resident_code"], "portal_cert": "x"},
                          as_client=f"{Y}-operator")
        self.assertEqual(a.status, 403, a)

    def test_4_an_agency_seals_to_no_certificate_but_the_portal_s(self):
        """A provision naming requester `portal` with another certificate is refused by the agency."""
        with open(self.net.path("nodes", "core", "cert.pem")) as f:
            other = f.read()
        a = self.net.call(Y, "POST", "/v1/provisions", {
            "exchange_id": "portal.0000000000000001", "code": "x" * 44, "business": "self_information",
            "requester": "portal", "item": "resident_record", "requester_cert": other}, as_client=("node", f"{Y}-gateway"))
        self.assertEqual(a.status, 400, a)

    def test_5_a_person_held_for_an_operator_is_declined_to_the_portal_never_held(self):
        """手動応答: the agency answers such a person's data through an operator only; a portal
        ask is declined and recorded, and no held request waits for a late answer."""
        flag = lambda auto, **r: self.net.agency_call(N, "PUT", "/v1/persons/NA/handling", {"auto_answer": auto, **r})
        self.assertEqual(flag(False, reason="支援措置").status, 200)
        try:
            a = self.my_data(self.card_a)
            items = {(i["provider"], i["item"]): i for i in a.json["items"]}
            self.assertEqual(items[(N, "pension_benefits")]["status"], "declined", a.json)
            self.assertNotIn("value", items[(N, "pension_benefits")])
            self.assertEqual(items[(Y, "resident_record")]["status"], "provided")
            self.assertNotIn("780000", a.raw)
            held = self.net.call(N, "GET", "/v1/held-provisions", as_client=f"{N}-operator")
            self.assertEqual(held.status, 200, held)
            self.assertNotIn("portal.", held.raw)
            here = self.net.sql(N, "SELECT outcome FROM records WHERE requester = 'portal' AND outcome = 'declined'")
            core = self.net.sql("core", "SELECT outcome FROM records WHERE requester = 'portal' AND side = 'core'"
                                " AND provider = ? AND outcome = 'declined'", (N,))
            self.assertTrue(here and core, (here, core))
        finally:
            self.assertEqual(flag(True).status, 200)


if __name__ == "__main__":
    main()
