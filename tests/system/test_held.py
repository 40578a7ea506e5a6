"""Held answers (手動応答) for protected persons (DESIGN §2.2, §4; issue 15
item 1): a provider's business system flags a person; a provision request
for that person is held, not answered — the person's data never leaves the
provider until its operator answers; the requester's query answers 202
held and can be polled; the provider's operators list, answer and decline
held requests; every step is recorded at the core and both agencies; a held
request not handled within [agency] held_timeout is declined and recorded;
every refusal has a stable code."""
import time
import unittest

from harness import SLOW, Network, main, renkei

Y, K = "city-yokohama", "pref-kanagawa"


def query_body(qid, person="K1"):
    return {"query_id": qid, "person": person, "business": "public_assistance", "provider": Y,
            "item": "local_tax", "operator": "op-k1"}


class Base(unittest.TestCase):
    CONF = None

    @classmethod
    def setUpClass(cls):
        net = cls.net = Network(agencies=3, persons=10, conf_extra=cls.CONF)
        net.start()
        residents = net.residents()
        for i in (0, 1):
            for ag, p in ((Y, f"Y{i + 1}"), (K, f"K{i + 1}")):
                assert net.enrol(ag, p, residents[i]["my_number"]).status == 202
                net.wait_status(ag, p, "linked")

    @classmethod
    def tearDownClass(cls):
        cls.net.stop()

    def flag(self, person, auto_answer, reason="支援措置 (DV): address not to be given"):
        body = {"auto_answer": auto_answer}
        if not auto_answer:
            body["reason"] = reason
        a = self.net.agency_call(Y, "PUT", f"/v1/persons/{person}/handling", body)
        self.assertEqual(a.status, 200, a)
        self.assertEqual(a.json["auto_answer"], auto_answer)

    def store_secret(self, person, tag):
        secret = f"ADDR-{tag}-5550123"
        a = self.net.agency_call(Y, "PUT", f"/v1/data/{person}/local_tax",
                                 {"value": {"address": secret}, "as_of": "2026-01-01"})
        self.assertEqual(a.status, 200, a)
        return secret

    def ask_held(self, qid, person="K1"):
        a = self.net.agency_call(K, "POST", "/v1/queries", query_body(qid, person))
        self.assertEqual((a.status, a.json.get("status")), (202, "held"), a)
        self.assertEqual(a.json["query_id"], qid)
        return a.json["exchange_id"]

    def poll(self, qid, want, timeout=20):
        deadline = time.time() + timeout * SLOW
        while True:
            a = self.net.agency_call(K, "GET", f"/v1/queries/{qid}")
            if a.json.get("status") == want or time.time() > deadline:
                return a
            time.sleep(0.1)

    def outcomes(self, node, who, xid):
        a = self.net.call(node, "GET", f"/v1/records?exchange_id={xid}", as_client=who)
        self.assertEqual(a.status, 200, a)
        return {r["outcome"]: r for r in a.json["records"]}

    def wait_outcome(self, node, who, xid, outcome, timeout=20):
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            got = self.outcomes(node, who, xid)
            if outcome in got:
                return got
            time.sleep(0.1)
        self.fail(f"{node} never recorded {outcome} for {xid}: {sorted(self.outcomes(node, who, xid))}")

    def held_list(self):
        a = self.net.call(Y, "GET", "/v1/held-provisions", as_client=f"{Y}-operator")
        self.assertEqual(a.status, 200, a)
        return {h["exchange_id"]: h for h in a.json["held"]}


class Held(Base):
    def test_answer_after_hold(self):
        secret = self.store_secret("Y1", "answer")
        self.flag("Y1", False)
        xid = self.ask_held("q-held-answer")
        # held: nothing of the value anywhere but the provider
        a = self.net.agency_call(K, "GET", "/v1/queries/q-held-answer")
        self.assertEqual((a.status, a.json.get("status")), (202, "held"), a)
        self.assertNotIn("value", a.json)
        self.assertTrue(self.net.store_holds(Y, secret))  # the check can see it where it is
        for node in (K, "core", f"{K}-gateway", f"{Y}-gateway"):
            self.assertFalse(self.net.store_holds(node, secret), f"{node} holds the held value")
        health = self.net.call(Y, "GET", "/healthz", as_client="operator").json["checks"]
        self.assertGreaterEqual(health["held_requests"], 1)
        held = self.held_list()
        self.assertIn(xid, held)
        self.assertEqual((held[xid]["person"], held[xid]["requester"], held[xid]["item"]), ("Y1", K, "local_tax"))
        self.assertNotIn("value", held[xid])
        for node, who in ((Y, Y), ("core", "operator"), (K, K)):
            self.assertIn("held", self.outcomes(node, who, xid), node)
        # the operator answers: the value goes, sealed, and the query settles
        a = self.net.call(Y, "POST", f"/v1/held-provisions/{xid}/answer", {"operator": "op-y1"},
                          as_client=f"{Y}-operator")
        self.assertEqual((a.status, a.json.get("status"), a.json.get("outcome")), (200, "answered", "provided"), a)
        a = self.poll("q-held-answer", "provided")
        self.assertEqual((a.status, a.json.get("status")), (200, "provided"), a)
        self.assertEqual(a.json["value"], {"address": secret})
        self.assertTrue(self.net.store_holds(K, secret))  # received only now
        self.assertFalse(self.net.store_holds("core", secret))  # the core relays it sealed
        for node, who in ((Y, Y), ("core", "operator"), (K, K)):
            got = self.wait_outcome(node, who, xid, "provided")
            self.assertIn("held", got)
        self.assertIn("op-y1", self.outcomes(Y, Y, xid)["provided"]["reason"])
        self.assertEqual(self.outcomes("core", "operator", xid)["provided"]["payload_sha256"],
                         self.outcomes(K, K, xid)["provided"]["payload_sha256"])
        self.assertNotIn(xid, self.held_list())
        # a retry of the query gets the settled answer; the exchange is not held any more
        again = self.net.agency_call(K, "POST", "/v1/queries", query_body("q-held-answer"))
        self.assertEqual((again.status, again.json.get("status")), (200, "provided"), again)
        for action in ("answer", "decline"):
            a = self.net.call(Y, "POST", f"/v1/held-provisions/{xid}/{action}", {"operator": "op-y1"},
                              as_client=f"{Y}-operator")
            self.assertEqual((a.status, a.error), (409, "not_held"), a)

    def test_decline_recorded_at_three_nodes(self):
        secret = self.store_secret("Y1", "decline")
        self.flag("Y1", False)
        xid = self.ask_held("q-held-decline")
        a = self.net.call(Y, "POST", f"/v1/held-provisions/{xid}/decline", {"operator": "op-y2"},
                          as_client=f"{Y}-operator")
        self.assertEqual((a.status, a.json.get("status")), (200, "declined"), a)
        a = self.poll("q-held-decline", "declined")
        self.assertEqual((a.status, a.json.get("status")), (200, "declined"), a)
        self.assertNotIn("value", a.json)
        for node, who in ((Y, Y), ("core", "operator"), (K, K)):
            got = self.wait_outcome(node, who, xid, "declined")
            self.assertIn("held", got)
            self.assertNotIn("provided", got)
        self.assertIn("op-y2", self.outcomes(Y, Y, xid)["declined"]["reason"])
        self.assertFalse(self.net.store_holds(K, secret))
        self.assertFalse(self.net.store_holds("core", secret))

    def test_late_result_survives_node_outages(self):
        """The late result is kept and sent again: the core down when the operator answers
        (the provider keeps it), the requester's agency killed while the core delivers it
        (the core keeps it), and it settles once both are back."""
        secret = self.store_secret("Y1", "outage")
        self.flag("Y1", False)
        xid = self.ask_held("q-held-outage")
        self.net.stop_node("core")
        a = self.net.call(Y, "POST", f"/v1/held-provisions/{xid}/answer", {"operator": "op-y4"},
                          as_client=f"{Y}-operator")
        self.assertEqual((a.status, a.json.get("outcome")), (200, "provided"), a)
        self.assertIn("provided", self.outcomes(Y, Y, xid))  # recorded at the provider at once
        time.sleep(1 * SLOW)
        self.net.kill_node(K)
        self.net.start_node("core")
        got = self.wait_outcome("core", "operator", xid, "provided")  # sent again until the core had it
        self.assertEqual(set(got), {"held", "provided"})
        health = self.net.call("core", "GET", "/healthz", as_client="operator").json
        self.assertGreaterEqual(health["checks"]["late_results_pending"], 1)  # the requester is down
        time.sleep(1 * SLOW)
        self.net.start_node(K)
        a = self.poll("q-held-outage", "provided")
        self.assertEqual((a.status, a.json.get("value")), (200, {"address": secret}), a)
        got = self.wait_outcome(K, K, xid, "provided")
        self.assertEqual(set(got), {"held", "provided"})
        deadline = time.time() + 10 * SLOW
        while self.net.call("core", "GET", "/healthz", as_client="operator").json["checks"][
                "late_results_pending"] and time.time() < deadline:
            time.sleep(0.1)
        self.assertEqual(self.net.call("core", "GET", "/healthz", as_client="operator").json["checks"][
            "late_results_pending"], 0)

    def test_a_batch_query_is_held_too(self):
        """A query of a batch (一括照会) for a flagged person is held as a single one, and its
        result in the batch shows the late answer."""
        secret = self.store_secret("Y1", "batch")
        self.flag("Y1", False)
        a = self.net.agency_call(K, "POST", "/v1/queries/batch",
                                 {"batch_id": "b-held", "queries": [query_body("q-held-batch")]})
        self.assertEqual(a.status, 202, a)
        deadline = time.time() + 20 * SLOW
        while time.time() < deadline:
            b = self.net.agency_call(K, "GET", "/v1/queries/batch/b-held")
            if b.json.get("pending") == 0 and b.json.get("results"):
                break
            time.sleep(0.1)
        entry = b.json["results"][0]
        self.assertEqual((entry["http_status"], entry["answer"]["status"]), (202, "held"), b)
        self.assertEqual(b.json["by_status"], {"held": 1}, b)
        self.assertFalse(self.net.store_holds(K, secret))
        xid = entry["answer"]["exchange_id"]
        self.assertIn(xid, self.held_list())
        a = self.net.call(Y, "POST", f"/v1/held-provisions/{xid}/answer", {"operator": "op-y5"},
                          as_client=f"{Y}-operator")
        self.assertEqual(a.status, 200, a)
        a = self.poll("q-held-batch", "provided")
        self.assertEqual(a.json.get("value"), {"address": secret}, a)
        b = self.net.agency_call(K, "GET", "/v1/queries/batch/b-held").json
        entry = b["results"][0]
        self.assertEqual((entry["http_status"], entry["answer"]["status"]), (200, "provided"), entry)
        self.assertEqual(b["by_status"], {"provided": 1}, b)  # counted under its late outcome

    def test_lifted_answers_automatically(self):
        secret = self.store_secret("Y2", "lifted")
        self.flag("Y2", False)
        self.ask_held("q-held-lift-1", "K2")
        self.flag("Y2", True)
        a = self.net.agency_call(K, "POST", "/v1/queries", query_body("q-held-lift-2", "K2"))
        self.assertEqual((a.status, a.json.get("status")), (200, "provided"), a)
        self.assertEqual(a.json["value"], {"address": secret})

    def test_refusals(self):
        op = f"{Y}-operator"
        cases = [
            # handling: bad bodies and unknown persons
            (Y, "PUT", "/v1/persons/Y1/handling", {"auto_answer": "no"}, Y, 400, "invalid_field"),
            (Y, "PUT", "/v1/persons/Y1/handling", {"auto_answer": False}, Y, 400, "invalid_field"),
            (Y, "PUT", "/v1/persons/Y1/handling", {"auto_answer": False, "reason": ""}, Y, 400, "invalid_field"),
            (Y, "PUT", "/v1/persons/Y1/handling", {"auto_answer": False, "reason": "x" * 151}, Y, 400,
             "invalid_field"),
            (Y, "PUT", "/v1/persons/nobody/handling", {"auto_answer": False, "reason": "DV"}, Y, 404,
             "unknown_person"),
            (Y, "PUT", "/v1/persons/Y1/other", {"auto_answer": True}, Y, 404, "not_found"),
            # operators: not held, no operator, malformed paths
            (Y, "POST", f"/v1/held-provisions/{K}.nothing/answer", {"operator": "op"}, op, 404, "not_held"),
            (Y, "POST", f"/v1/held-provisions/{K}.nothing/decline", {"operator": "op"}, op, 404, "not_held"),
            (Y, "POST", f"/v1/held-provisions/{K}.nothing/answer", {}, op, 400, "invalid_field"),
            (Y, "POST", f"/v1/held-provisions/{K}.nothing/answer", {"operator": "a b"}, op, 400, "invalid_field"),
            (Y, "POST", f"/v1/held-provisions/{K}.nothing/approve", {"operator": "op"}, op, 404, "not_found"),
            (Y, "GET", "/v1/held-provisions?limit=0", None, op, 400, "invalid_field"),
            # the query's state
            (K, "GET", "/v1/queries/q-never-asked", None, K, 404, "unknown_query"),
            # roles: each route's caller only
            (Y, "GET", "/v1/held-provisions", None, Y, 403, "role_not_allowed"),
            (Y, "GET", "/v1/held-provisions", None, f"{K}-operator", 403, "wrong_agency"),
            (Y, "POST", f"/v1/held-provisions/{K}.x/answer", {"operator": "op"}, Y, 403, "role_not_allowed"),
            (Y, "PUT", "/v1/persons/Y1/handling", {"auto_answer": True}, op, 403, "role_not_allowed"),
            (Y, "PUT", "/v1/persons/Y1/handling", {"auto_answer": True}, K, 403, "wrong_agency"),
            (K, "POST", "/v1/query-results", {"exchange_id": f"{K}.x", "status": "declined"}, K, 403,
             "role_not_allowed"),
            ("core", "POST", "/v1/provision-results", {"exchange_id": f"{K}.x", "status": "declined"}, "operator",
             403, "role_not_allowed"),
        ]
        for node, method, path, body, who, status, code in cases:
            with self.subTest(path=path, who=who, body=body):
                a = self.net.call(node, method, path, body, as_client=who)
                self.assertEqual((a.status, a.error), (status, code), a)

    def test_core_takes_results_from_the_provider_only(self):
        self.store_secret("Y1", "wrong")
        self.flag("Y1", False)
        xid = self.ask_held("q-held-wrong")
        gw = {n["agency"]: n["id"] for n in self.net.registry["nodes"] if n["role"] == "gateway"}
        body = {"exchange_id": xid, "status": "declined", "reason": "x"}
        a = self.net.call(gw[K], "POST", "/v1/provision-results", body, as_client=("node", K))
        self.assertEqual((a.status, a.error), (403, "wrong_agency"), a)  # the requester cannot answer itself
        a = self.net.call(gw[Y], "POST", "/v1/provision-results", {"exchange_id": f"{K}.nothing",
                                                                   "status": "declined"}, as_client=("node", Y))
        self.assertEqual((a.status, a.error), (404, "not_held"), a)
        a = self.net.call(gw[Y], "POST", "/v1/provision-results", {"exchange_id": xid, "status": "provided"},
                          as_client=("node", Y))
        self.assertEqual((a.status, a.error), (400, "invalid_field"), a)
        self.assertEqual(set(self.outcomes("core", "operator", xid)), {"held"})
        a = self.net.call(Y, "POST", f"/v1/held-provisions/{xid}/decline", {"operator": "op-y3"},
                          as_client=f"{Y}-operator")
        self.assertEqual(a.status, 200, a)
        self.poll("q-held-wrong", "declined")


    def test_z_records_verify(self):
        """After every held, answered and declined exchange above, each node's
        records log still verifies (the late outcomes are records like any other)."""
        p = renkei("records", "verify", self.net.dir, timeout=120 * SLOW)
        self.assertIn("intact", p.stdout)


class HeldTimeout(Base):
    CONF = {Y: "[agency]\nheld_timeout = 2"}

    def test_timeout_declines_and_records(self):
        secret = self.store_secret("Y1", "timeout")
        self.flag("Y1", False)
        xid = self.ask_held("q-held-timeout")
        a = self.poll("q-held-timeout", "declined", timeout=30)
        self.assertEqual((a.status, a.json.get("status")), (200, "declined"), a)
        for node, who in ((Y, Y), ("core", "operator"), (K, K)):
            got = self.wait_outcome(node, who, xid, "declined")
            self.assertIn("held", got)
        self.assertIn("held_timeout", self.outcomes(Y, Y, xid)["declined"]["reason"])
        self.assertFalse(self.net.store_holds(K, secret))
        a = self.net.call(Y, "POST", f"/v1/held-provisions/{xid}/answer", {"operator": "op-late"},
                          as_client=f"{Y}-operator")
        self.assertEqual((a.status, a.error), (409, "not_held"), a)


if __name__ == "__main__":
    main()
