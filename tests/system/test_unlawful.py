"""Unlawful requests and provisions (standard 第8-5): marked by a privileged
operator, the value deleted at the requester — gone from its store, its
files (SQLite) or every row version (PostgreSQL) — each step recorded at
every node, and a report at the core with what happened, what was done, the
root cause and the prevention."""
import time
import unittest

from harness import SLOW, Network, main, renkei

Y, K = "city-yokohama", "pref-kanagawa"


class Unlawful(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        net = cls.net = Network(agencies=3, persons=10)
        net.start()
        number = net.residents()[0]["my_number"]
        for ag, p in ((Y, "Y1"), (K, "K1")):
            assert net.enrol(ag, p, number).status == 202
            net.wait_status(ag, p, "linked")

    @classmethod
    def tearDownClass(cls):
        cls.net.stop()

    def ask(self, qid):
        """Stores a fresh secret value at the provider and asks for it; returns (answer, secret)."""
        secret = f"SECRET-{qid}-918273645"
        self.net.agency_call(Y, "PUT", "/v1/data/Y1/local_tax", {"value": {"note": secret}, "as_of": "2026-01-01"})
        a = self.net.agency_call(K, "POST", "/v1/queries", {"query_id": qid, "person": "K1",
                                                           "business": "public_assistance", "provider": Y,
                                                           "item": "local_tax", "operator": "op-5"})
        self.assertEqual(a.json.get("status"), "provided", a)
        self.assertEqual(a.json["value"], {"note": secret})
        return a, secret.encode()

    def assert_held(self, node, secret, held):
        self.assertEqual(self.net.store_holds(node, secret.decode()), held,
                         f"{node}'s store {'lacks' if held else 'still holds'} the value")

    def outcomes(self, node, who, xid):
        a = self.net.call(node, "GET", f"/v1/records?exchange_id={xid}", as_client=who)
        return {r["outcome"] for r in a.json["records"]}

    def incident(self, kind, xid):
        deadline = time.time() + 10 * SLOW
        while time.time() < deadline:
            inc = self.net.call("core", "GET", f"/v1/incidents?kind={kind}", as_client="operator").json["incidents"]
            found = [i for i in inc if xid in i["summary"]]
            if found:
                return found[0]
            time.sleep(0.1)
        self.fail(f"no {kind} incident for {xid}")

    def test_unlawful_provision_round_trip(self):
        a, secret = self.ask("q-unlawful-prov")
        xid = a.json["exchange_id"]
        self.assert_held(K, secret, True)
        r = self.net.call(Y, "POST", "/v1/unlawful", {
            "exchange_id": xid, "kind": "unlawful_provision", "reason": "provided without a lawful basis",
            "cause": "a wrong row was added to the local access list", "prevention": "two-person review of the list"},
            as_client=f"{Y}-operator")
        self.assertEqual((r.status, r.json.get("status")), (200, "deleted_at_requester"), r)
        self.assert_held(K, secret, False)  # gone from the requester's files, free pages included
        again = self.net.agency_call(K, "POST", "/v1/queries", {"query_id": "q-unlawful-prov", "person": "K1",
                                                               "business": "public_assistance", "provider": Y,
                                                               "item": "local_tax", "operator": "op-5"})
        self.assertNotIn("value", again.json)
        self.assertLessEqual({"provided", "deleted_on_request"}, self.outcomes(K, K, xid))
        self.assertLessEqual({"provided", "unlawful_provision", "deletion_confirmed"}, self.outcomes(Y, Y, xid))
        self.assertLessEqual({"provided", "deletion_requested", "deletion_confirmed"},
                             self.outcomes("core", "operator", xid))
        i = self.incident("unlawful_provision", xid)
        self.assertEqual(i["node"], Y)
        self.assertEqual(i["details"], "provided without a lawful basis")
        self.assertIn("confirmed", i["actions"])
        self.assertEqual(i["cause"], "a wrong row was added to the local access list")
        self.assertEqual(i["prevention"], "two-person review of the list")

    def test_unlawful_request_deletes_at_the_requester(self):
        a, secret = self.ask("q-unlawful-req")
        xid = a.json["exchange_id"]
        r = self.net.call(K, "POST", "/v1/unlawful", {"exchange_id": xid, "kind": "unlawful_request",
                                                      "reason": "asked for a person outside the case"},
                          as_client=f"{K}-operator")
        self.assertEqual((r.status, r.json.get("status")), (200, "deleted"), r)
        self.assert_held(K, secret, False)
        self.assertLessEqual({"unlawful_request", "deleted"}, self.outcomes(K, K, xid))
        self.assertEqual(self.incident("unlawful_request", xid)["node"], K)

    def test_refusals(self):
        a, secret = self.ask("q-unlawful-refusals")
        xid = a.json["exchange_id"]
        a = self.net.call(K, "POST", "/v1/unlawful", {"exchange_id": xid, "kind": "unlawful_provision",
                                                      "reason": "r"}, as_client=f"{K}-operator")
        self.assertEqual((a.status, a.error), (404, "not_found"))  # K was the requester, not the provider
        a = self.net.call(K, "POST", "/v1/unlawful", {"exchange_id": xid, "kind": "mistake", "reason": "r"},
                          as_client=f"{K}-operator")
        self.assertEqual((a.status, a.error), (400, "invalid_field"))
        for who in ("operator", f"{Y}-operator"):  # the network operator, another agency's operator
            a = self.net.call(K, "POST", "/v1/unlawful", {"exchange_id": xid, "kind": "unlawful_request",
                                                          "reason": "r"}, as_client=who)
            self.assertEqual((a.status, a.error), (403, "wrong_agency"), who)
        a = self.net.call(K, "POST", "/v1/unlawful", {"exchange_id": xid, "kind": "unlawful_request",
                                                      "reason": "r", "cause": "x" * 5000}, as_client=f"{K}-operator")
        self.assertEqual((a.status, a.error), (400, "invalid_field"))
        a = self.net.call(K, "POST", "/v1/unlawful", {"exchange_id": xid, "kind": "unlawful_request", "reason": "r"},
                          as_client=K)  # a business system is not a privileged operator
        self.assertEqual((a.status, a.error), (403, "role_not_allowed"))
        a = self.net.call("core", "POST", "/v1/deletion-requests", {"exchange_id": xid, "reason": "r"},
                          as_client=("node", f"{K}-gateway"))  # K did not provide in that exchange
        self.assertEqual((a.status, a.error), (404, "not_found"))
        self.assert_held(K, secret, True)  # nothing was deleted by a refused call
        a = self.net.call("core", "GET", "/v1/incidents", as_client=f"{K}-operator")
        self.assertEqual((a.status, a.error), (403, "role_not_allowed"))  # an agency's operator is not the network's

    def test_zz_records_still_verify(self):
        self.net.stop(remove=False)
        p = renkei("records", "verify", self.net.dir, check=False)
        self.assertEqual(p.returncode, 0, p.stdout)


if __name__ == "__main__":
    main()
