"""Batch queries (一括照会; DESIGN §4; issue 15 item 3): POST /v1/queries/batch
answers 202 once the batch is stored, its queries settle one by one as single
queries would (one record per exchange at the requester, the core and the
provider, 法23条; the same answer kept under each query_id), through the core
and the provider in groups (POST /v1/exchanges/batch, /v1/provisions/batch);
a batch survives the provider's agency node killed (SIGKILL) half-way, and the
requester, the core and the requester's gateway killed and restarted; its id is idempotent; bad batches are refused with
stable codes and store nothing; `renkei agency-ctl query --csv` end to end.

The requester's gateway lets its agency node send 4 requests a second to the
core ([gateway] caller_rate_per_s): a batch's groups then take seconds, so
that a node can be killed while the batch is half done."""
import csv
import io
import os
import time
import unittest

from harness import SLOW, Network, main, renkei

Y, K, N = "city-yokohama", "pref-kanagawa", "nenkin-kikou"
PERSONS = 40


def tax_of(i):
    return 100000 + i


class BatchQueries(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        net = cls.net = Network(agencies=3, persons=PERSONS)
        net.append_conf(f"{K}-gateway", "[gateway]\ncaller_rate_per_s = 4")
        net.start()
        res = net.residents()
        for i in range(PERSONS):
            for ag, p in ((Y, "Y"), (K, "K")):
                a = net.enrol(ag, f"{p}{i}", res[i]["my_number"])
                assert a.status == 202, a
        for i in range(PERSONS):
            net.wait_status(Y, f"Y{i}", "linked")
            net.wait_status(K, f"K{i}", "linked")
        for i in range(PERSONS):
            a = net.agency_call(Y, "PUT", f"/v1/data/Y{i}/local_tax", {"value": {"tax": tax_of(i)},
                                                                       "as_of": "2025-06-01"})
            assert a.status == 200, a

    @classmethod
    def tearDownClass(cls):
        cls.net.stop()

    # ---------- helpers ----------

    @staticmethod
    def q(qid, i, **kw):
        body = {"query_id": qid, "person": f"K{i % PERSONS}", "business": "public_assistance", "provider": Y,
                "item": "local_tax", "operator": "op-b"}
        body.update(kw)
        return body

    def submit(self, batch_id, queries, want=202):
        a = self.net.agency_call(K, "POST", "/v1/queries/batch", {"batch_id": batch_id, "queries": queries})
        self.assertEqual(a.status, want, a)
        return a

    def progress(self, batch_id, after=0, limit=500):
        a = self.net.agency_call(K, "GET", f"/v1/queries/batch/{batch_id}?after={after}&limit={limit}")
        self.assertEqual(a.status, 200, a)
        return a.json

    def wait_settled(self, batch_id, at_least=None, timeout=120):
        deadline = time.time() + timeout * SLOW
        p = None
        while time.time() < deadline:
            p = self.progress(batch_id, limit=1)
            if p["settled"] >= (p["total"] if at_least is None else at_least):
                return p
            time.sleep(0.05)
        self.fail(f"batch {batch_id} did not settle in time: {p}")

    def results(self, batch_id):
        """Every result, read page by page in the order they settled."""
        out, after = [], 0
        while True:
            p = self.progress(batch_id, after=after, limit=300)
            out += p["results"]
            if not p["results"]:
                return out
            self.assertGreater(p["next_after"], after)
            after = p["next_after"]

    def single(self, body):
        """POST /v1/queries, sent again on 429 (the gateway's rate), as a business system would."""
        for _ in range(100):
            a = self.net.agency_call(K, "POST", "/v1/queries", body)
            if a.status != 429:
                return a
            time.sleep(0.3)
        return a

    def records_per_exchange(self, node, xids):
        rows = self.net.sql(node, "SELECT exchange_id, count(*) FROM records WHERE exchange_id LIKE ?"
                                  " GROUP BY exchange_id", (f"{K}.%",))
        counts = {x: n for x, n in rows}
        return {x: counts.get(x, 0) for x in xids}

    def assert_one_record_each(self, xids, nodes=("core", K, Y)):
        for node in nodes:
            counts = self.records_per_exchange(node, xids)
            bad = {x: n for x, n in counts.items() if n != 1}
            self.assertEqual(bad, {}, f"{node}: exchanges without exactly one record")

    def assert_all_provided(self, results, qids):
        self.assertEqual(sorted(r["query_id"] for r in results), sorted(qids))
        for r in results:
            self.assertEqual((r["http_status"], r["answer"].get("status")), (200, "provided"), r)
            i = int(r["query_id"].rsplit("-", 1)[1])
            self.assertEqual(r["answer"]["value"], {"tax": tax_of(i % PERSONS)}, r)
            self.assertEqual(r["answer"]["query_id"], r["query_id"])

    # ---------- the tests ----------

    def test_a_batch_of_1000_survives_the_provider_killed_half_way(self):
        qids = [f"kill-{i}" for i in range(1000)]
        self.submit("kill", [self.q(qid, i) for i, qid in enumerate(qids)])
        half = self.wait_settled("kill", at_least=300)
        self.assertLess(half["settled"], 1000, "the batch ended before the provider could be killed")
        self.net.kill_node(Y)
        # down until a group has met it so (its gateway logs the call failing, every 200 ms)
        failed = lambda: self.net.sql(f"{Y}-gateway", "SELECT count(*) FROM messages"
                                                      " WHERE path = '/v1/provisions/batch' AND status <> 200")[0][0]
        deadline = time.time() + 30 * SLOW
        while failed() == 0 and time.time() < deadline:
            time.sleep(0.2)
        self.assertGreater(failed(), 0)
        during = self.progress("kill", limit=1)
        self.assertGreater(during["pending"], 0)
        self.net.start_node(Y)
        done = self.wait_settled("kill", timeout=240)
        self.assertEqual((done["total"], done["settled"], done["pending"]), (1000, 1000, 0))
        self.assertEqual(done["by_status"], {"provided": 1000}, done)
        results = self.results("kill")
        self.assert_all_provided(results, qids)
        xids = {r["answer"]["exchange_id"] for r in results}
        self.assertEqual(len(xids), 1000)
        self.assert_one_record_each(xids)
        # the same answers a single query gets for these query_ids (its first answer)
        by_id = {r["query_id"]: r["answer"] for r in results}
        for i in (0, 499, 999):
            a = self.single(self.q(f"kill-{i}", i))
            self.assertEqual((a.status, a.json), (200, by_id[f"kill-{i}"]))
            self.assertEqual(self.net.agency_call(K, "GET", f"/v1/queries/kill-{i}").json, by_id[f"kill-{i}"])
        self.assert_one_record_each(xids)

    def test_a_restart_of_the_requester_resumes_its_batch(self):
        qids = [f"rs-{i}" for i in range(400)]
        self.submit("restart", [self.q(qid, i) for i, qid in enumerate(qids)])
        half = self.wait_settled("restart", at_least=100)
        self.assertLess(half["settled"], 400, "the batch ended before its node could be restarted")
        self.net.kill_node(K)
        self.net.start_node(K)
        done = self.wait_settled("restart", timeout=240)
        self.assertEqual(done["by_status"], {"provided": 400}, done)
        results = self.results("restart")
        self.assert_all_provided(results, qids)
        self.assert_one_record_each({r["answer"]["exchange_id"] for r in results})

    def test_a_restart_of_the_core_and_the_requesters_gateway_resumes_its_batch(self):
        qids = [f"cg-{i}" for i in range(600)]
        self.submit("core-gw", [self.q(qid, i) for i, qid in enumerate(qids)])
        half = self.wait_settled("core-gw", at_least=100)
        self.assertLess(half["settled"], 600, "the batch ended before the core could be killed")
        self.net.kill_node("core")
        self.net.kill_node(f"{K}-gateway")
        time.sleep(0.5 * SLOW)
        self.assertGreater(self.progress("core-gw", limit=1)["pending"], 0)
        self.net.start_node("core")
        self.net.start_node(f"{K}-gateway")
        done = self.wait_settled("core-gw", timeout=240)
        self.assertEqual(done["by_status"], {"provided": 600}, done)
        results = self.results("core-gw")
        self.assert_all_provided(results, qids)
        self.assert_one_record_each({r["answer"]["exchange_id"] for r in results})

    def test_the_same_batch_id_is_one_batch(self):
        queries = [self.q(f"idem-{i}", i) for i in range(5)]
        first = self.submit("idem", queries)
        self.assertEqual(first.json, {"batch_id": "idem", "total": 5})
        self.assertEqual(self.submit("idem", queries).json, first.json)
        self.wait_settled("idem")
        self.assertEqual(self.submit("idem", list(queries)).json, first.json)  # after it settled too
        other = self.submit("idem", queries[:4], want=409)
        self.assertEqual(other.error, "conflict")
        p = self.progress("idem")
        self.assertEqual((p["total"], p["settled"], len(p["results"])), (5, 5, 5))
        self.assert_one_record_each({r["answer"]["exchange_id"] for r in p["results"]})
        # the queries' answers are kept as a single query's: its first answer, one record
        single = self.single(queries[2])
        self.assertEqual(single.json, next(r["answer"] for r in p["results"] if r["query_id"] == "idem-2"))

    def test_bad_batches_are_refused_and_store_nothing(self):
        count = lambda: self.net.sql(K, "SELECT count(*) FROM batch_queries")[0][0]
        before = count()
        cases = [
            ({"batch_id": "r0", "queries": []}, 400, "invalid_field", "1 to 1000"),
            ({"batch_id": "r0", "queries": [self.q(f"r-{i}", i) for i in range(1001)]}, 400, "invalid_field",
             "1 to 1000"),
            ({"batch_id": "r0", "queries": [self.q("r-a", 0), self.q("r-b", 1), {"query_id": "r-c"}]}, 400,
             "invalid_field", "queries[2]"),
            ({"batch_id": "r0", "queries": [self.q("r-a", 0), "r-b"]}, 400, "invalid_field", "queries[1]"),
            ({"batch_id": "r0", "queries": [self.q("r-a", 0, condition={"fiscal_year": "2025"})]}, 400,
             "invalid_field", "queries[0]"),
            ({"batch_id": "r0", "queries": [self.q("r-a", 0), self.q("r-b", 1), self.q("r-a", 2)]}, 400,
             "duplicate_query_id", "r-a"),
            ({"batch_id": "r 0", "queries": [self.q("r-a", 0)]}, 400, "invalid_field", "batch_id"),
            ({"queries": [self.q("r-a", 0)]}, 400, "invalid_field", "batch_id"),
        ]
        for body, status, code, said in cases:
            a = self.net.agency_call(K, "POST", "/v1/queries/batch", body)
            self.assertEqual((a.status, a.error), (status, code), (body.get("batch_id"), a))
            self.assertIn(said, a.json["error"]["message"])
        self.assertEqual(count(), before)
        for path, status, code in (("/v1/queries/batch/r0", 404, "unknown_batch"),
                                   ("/v1/queries/batch/no-such-batch", 404, "unknown_batch"),
                                   ("/v1/queries/r-a", 404, "unknown_query"),
                                   ("/v1/queries/batch/r0?limit=0", 400, "invalid_field")):
            a = self.net.agency_call(K, "GET", path)
            self.assertEqual((a.status, a.error), (status, code), (path, a))
        # a batch is its agency's business system's own
        self.submit("mine", [self.q("mine-0", 0)])
        a = self.net.call(K, "GET", "/v1/queries/batch/mine", as_client=Y)
        self.assertEqual((a.status, a.error), (403, "wrong_agency"))
        a = self.net.agency_call(Y, "GET", "/v1/queries/batch/mine")
        self.assertEqual((a.status, a.error), (404, "unknown_batch"))

    def test_each_query_of_a_batch_is_settled_as_a_single_one(self):
        first = self.single(self.q("mix-before", 3))
        self.assertEqual(first.json.get("status"), "provided", first)
        taken = self.single(self.q("mix-taken", 4))
        queries = [
            self.q("mix-before", 3),                                  # asked before: its first answer
            self.q("mix-taken", 5),                                   # the id asked before with another body
            self.q("mix-np", 6, business="national_pension", item="child_allowance"),  # not permitted
            self.q("mix-prov", 7, provider=N, item="pension_benefits"),  # another provider, not permitted
            self.q("mix-unlinked", 0, person="NOBODY"),               # no code here
            self.q("mix-fy", 8, condition={"fiscal_year": 2024}),     # before the first version: no data
            self.q("mix-fy2", 9, condition={"fiscal_year": 2025}),    # that year's version
            self.q("mix-plain", 10),
        ]
        self.submit("mix", queries)
        state = self.net.agency_call(K, "GET", "/v1/queries/mix-plain")
        self.assertIn(state.status, (200, 202), state)
        if state.status == 202:
            self.assertEqual((state.json["status"], state.json["batch_id"]), ("pending", "mix"))
        done = self.wait_settled("mix")
        got = {r["query_id"]: (r["http_status"], r["answer"]) for r in self.results("mix")}
        self.assertEqual(got["mix-before"], (200, first.json))
        self.assertEqual((got["mix-taken"][0], got["mix-taken"][1]["error"]["code"]), (409, "conflict"))
        self.assertEqual((got["mix-np"][0], got["mix-np"][1]["error"]["code"]), (403, "not_permitted"))
        self.assertEqual((got["mix-prov"][0], got["mix-prov"][1]["error"]["code"]), (403, "not_permitted"))
        self.assertEqual((got["mix-unlinked"][0], got["mix-unlinked"][1]["error"]["code"]), (409, "person_not_linked"))
        self.assertEqual((got["mix-fy"][0], got["mix-fy"][1]["status"]), (200, "no_data"))
        self.assertEqual((got["mix-fy2"][0], got["mix-fy2"][1]["value"]), (200, {"tax": tax_of(9)}))
        self.assertEqual((got["mix-plain"][0], got["mix-plain"][1]["value"]), (200, {"tax": tax_of(10)}))
        self.assertEqual(done["by_status"], {"provided": 3, "conflict": 1, "not_permitted": 2,
                                             "person_not_linked": 1, "no_data": 1})
        # records: a refusal at the core and the requester only, the provider never hears of it
        np = got["mix-np"][1]["exchange_id"]
        self.assertEqual(self.records_per_exchange("core", [np]), {np: 1})
        self.assertEqual(self.records_per_exchange(K, [np]), {np: 1})
        self.assertEqual(self.records_per_exchange(Y, [np]), {np: 0})
        self.assertEqual(self.net.sql("core", "SELECT condition FROM records WHERE exchange_id = ?",
                                      (got["mix-fy2"][1]["exchange_id"],)), [("fiscal_year=2025",)])
        # the id taken before keeps its own answer; the batch's answer is the conflict
        self.assertEqual(self.net.agency_call(K, "GET", "/v1/queries/mix-taken").json, taken.json)
        # a query of the batch asked again alone: its first answer, no second record
        again = self.single(self.q("mix-plain", 10))
        self.assertEqual((again.status, again.json), (200, got["mix-plain"][1]))
        xid = got["mix-plain"][1]["exchange_id"]
        self.assert_one_record_each([xid])

    def test_agency_ctl_query_csv(self):
        path = self.net.path("queries.csv")
        rows = [[f"ctl-{i}", f"K{i}", "public_assistance", Y, "local_tax", "op-ctl", "2025" if i == 3 else ""]
                for i in range(25)]
        rows.append(["ctl-np", "K1", "national_pension", Y, "child_allowance", "op-ctl", ""])
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["query_id", "person", "business", "provider", "item", "operator", "fiscal_year"])
            w.writerows(rows)
        out = self.net.path("results.csv")
        args = ("agency-ctl", "query", "--net", self.net.dir, "--agency", K, "--csv", path, "--batch", "10")
        p = renkei(*args, "--out", out, timeout=300 * SLOW)
        self.assertIn("query", p.stderr)  # the progress bar
        self.assertIn("26 sent in 3 batches, 26 settled (1 answered with an error), 0 pending", p.stderr)
        with open(out) as f:
            got = list(csv.DictReader(f))
        self.assertEqual([r["query_id"] for r in got], [r[0] for r in rows])  # the file's order
        for r in got[:25]:
            i = int(r["query_id"].split("-")[1])
            self.assertEqual((r["status"], r["as_of"], r["error"]), ("provided", "2025-06-01", ""), r)
            self.assertEqual(r["value"], '{"tax":%d}' % tax_of(i))
        self.assertEqual((got[25]["status"], got[25]["error"], got[25]["value"]), ("error", "not_permitted", ""))
        # the condition went with the query
        xid = self.single(self.q("ctl-3", 3, operator="op-ctl", condition={"fiscal_year": 2025})).json["exchange_id"]
        self.assertEqual(self.net.sql(K, "SELECT condition FROM records WHERE exchange_id = ?", (xid,)),
                         [("fiscal_year=2025",)])
        # the same file again: the same batches, nothing asked twice, the same results on stdout
        again = renkei(*args, timeout=300 * SLOW)
        self.assertEqual(list(csv.DictReader(io.StringIO(again.stdout))), got)
        self.assertEqual(self.net.sql(K, "SELECT count(*) FROM query_batches WHERE batch_id LIKE 'csv-%'"), [(3,)])
        self.assertEqual(self.net.sql(K, "SELECT count(*) FROM records WHERE operator = 'op-ctl'"), [(26,)])
        # a bad row is named by its line and not sent; the rest run
        with open(path, "a") as f:
            f.write("ctl-bad,K1,Public Assistance,%s,local_tax,op-ctl,\n" % Y)
        bad = renkei(*args, check=False, timeout=300 * SLOW)
        self.assertEqual(bad.returncode, 1)
        self.assertIn("line 28: business and item", bad.stderr)
        self.assertEqual(len(list(csv.DictReader(io.StringIO(bad.stdout)))), 26)
        # usage errors
        for extra, said in (((), "query needs --net DIR, --agency ID and --csv FILE"),
                            (("--csv", path, "--batch", "1001"), "--batch must be")):
            u = renkei("agency-ctl", "query", "--net", self.net.dir, "--agency", K, *extra, check=False)
            self.assertEqual(u.returncode, 2)
            self.assertIn(said, u.stderr)
        with open(self.net.path("header.csv"), "w") as f:
            f.write("person,my_number\n")
        h = renkei("agency-ctl", "query", "--net", self.net.dir, "--agency", K, "--csv", self.net.path("header.csv"),
                   check=False)
        self.assertEqual(h.returncode, 1)
        self.assertIn("line 1 must be the header query_id,person,business,provider,item,operator", h.stderr)


if __name__ == "__main__":
    main()
