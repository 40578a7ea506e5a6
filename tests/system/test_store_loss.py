"""The database lost under a running network, and back (DESIGN §6; PostgreSQL
only: SQLite has no server to lose, so this test sets its store itself and
has no `_pg` copy). While the server is down every node answers what needs
its store 503 `store_unavailable` — never a success, never a bare 500 — and
its /healthz is degraded; when the server is back the nodes serve again
without a restart, and a request retried with the same id is done once."""
import threading
import time
import unittest

from harness import SLOW, Network, main

Y, K = "city-yokohama", "pref-kanagawa"


class StoreLoss(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.net = Network(agencies=2, persons=10, store="postgres")
        try:
            cls.net.start()
        except Exception:
            for p in cls.net.procs.values():
                p.kill()
            if cls.net.pg:
                cls.net.pg.close()
            raise
        number = cls.net.residents()[0]["my_number"]
        assert cls.net.enrol(Y, "Y1", number).status == 202
        cls.net.wait_status(Y, "Y1", "linked")

    @classmethod
    def tearDownClass(cls):
        cls.net.stop()

    def put(self, request_id, value):
        return self.net.agency_call(Y, "PUT", "/v1/data/Y1/local_tax",
                                    {"value": value, "as_of": "2026-06-01", "request_id": request_id})

    def records_call(self, node):
        """GET /v1/records of a node, as the caller it allows: every node reads its store for it."""
        who = node["agency"] if node["role"] == "agency" else "operator"
        return self.net.call(node["id"], "GET", "/v1/records?limit=1", as_client=who)

    def wait_all_healthy(self):
        deadline = time.time() + 15 * SLOW
        for n in self.net.server_nodes():
            while True:
                h = self.net.call(n["id"], "GET", "/healthz", as_client="operator")
                if h.status == 200:
                    break
                self.assertLess(time.time(), deadline, f"{n['id']} did not recover by itself: {h}")
                time.sleep(0.1)

    def versions(self, request_prefix):
        return self.net.sql(Y, "SELECT COUNT(*) FROM answers WHERE side = 'data' AND key LIKE ?",
                            (request_prefix + "%",))[0][0]

    def test_1_every_node_answers_503_while_the_database_is_down_then_recovers(self):
        number = self.net.residents()[1]["my_number"]
        self.net.pg.stop("immediate")  # as a crash would
        try:
            for n in self.net.server_nodes():
                for _ in range(2):  # the first call meets the lost connection, the next finds no server
                    if n["role"] not in ("witness", "portal", "ppc"):  # (they keep no records: their health says it)
                        a = self.records_call(n)
                        self.assertEqual((a.status, a.error), (503, "store_unavailable"), (n["id"], a))
                    h = self.net.call(n["id"], "GET", "/healthz", as_client="operator")
                    self.assertEqual((h.status, h.json["status"]), (503, "degraded"), (n["id"], h))
                    self.assertFalse(h.json["checks"]["store_writable"])
            a = self.net.enrol(Y, "Y2", number)
            self.assertEqual((a.status, a.error), (503, "store_unavailable"), a)
            self.assertIn("retry with the same id", a.json["error"]["message"])
            a = self.put("loss-put-1", {"income": 1})
            self.assertEqual((a.status, a.error), (503, "store_unavailable"), a)
            a = self.net.agency_call(Y, "GET", "/v1/persons/Y1")
            self.assertEqual((a.status, a.error), (503, "store_unavailable"), a)
            m = self.net.call(Y, "GET", "/metrics", as_client="operator")
            self.assertEqual(m.status, 200)  # no store needed
        finally:
            self.net.pg.start()
        self.wait_all_healthy()  # no node was restarted
        for n in self.net.server_nodes():
            self.assertIsNone(self.net.procs[n["id"]].poll(), n["id"])
            if n["role"] not in ("witness", "portal", "ppc"):
                self.assertEqual(self.records_call(n).status, 200, n["id"])
        # the same requests again, with the same ids: done, once
        a = self.net.enrol(Y, "Y2", number)
        self.assertEqual(a.status, 202, a)
        self.net.wait_status(Y, "Y2", "linked")
        self.assertEqual(self.net.enrol(Y, "Y2", number).status, 202)
        self.assertEqual(self.net.sql(Y, "SELECT COUNT(*) FROM persons WHERE person = ?", ("Y2",)), [(1,)])
        first = self.put("loss-put-1", {"income": 1})
        self.assertEqual(first.status, 200, first)
        again = self.put("loss-put-1", {"income": 1})
        self.assertEqual((again.status, again.json), (200, first.json))  # the first answer, no second version
        self.assertEqual(self.net.sql(Y, "SELECT COUNT(*) FROM data WHERE person = ? AND item = ? AND version = ?",
                                      ("Y1", "local_tax", first.json["version"])), [(1,)])
        self.assertIn("store: the database is unavailable", self.net.log(Y))
        self.assertIn("store: connected to the database again", self.net.log(Y))

    def test_2_writes_under_way_when_the_database_dies_are_never_a_false_success(self):
        """PUTs from several threads while the server is killed: each answer is
        200 or 503 store_unavailable; after the restart every one retried with
        its id is 200, and the versions stored are exactly the ids sent."""
        answers, lock, stop = {}, threading.Lock(), threading.Event()

        def writer(w):
            i = 0
            while not stop.is_set():
                rid = f"load-{w}-{i}"
                try:
                    a = self.put(rid, {"w": w, "i": i})
                    got = (a.status, a.error)
                except OSError as e:  # never expected: the node stays up
                    got = ("io", str(e))
                with lock:
                    answers[rid] = got
                i += 1

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(1.0)
            self.net.pg.stop("immediate")
            time.sleep(1.5)
        finally:
            self.net.pg.start()
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(timeout=60 * SLOW)
        kinds = {}
        for got in answers.values():
            kinds[got] = kinds.get(got, 0) + 1
        self.assertTrue(set(kinds) <= {(200, None), (503, "store_unavailable")}, kinds)
        self.assertGreater(kinds.get((503, "store_unavailable"), 0), 0, kinds)
        self.assertGreater(kinds.get((200, None), 0), 0, kinds)
        self.wait_all_healthy()
        for rid, got in sorted(answers.items()):
            if got != (200, None):
                w, i = (int(x) for x in rid.split("-")[1:])
                a = self.put(rid, {"w": w, "i": i})
                self.assertEqual(a.status, 200, (rid, a))
        # every id sent is one version: none lost, none twice
        self.assertEqual(self.versions("load-"), len(answers))
        # and every version stored is one id's, answered (a version and its kept answer are one commit)
        self.assertEqual(self.net.sql(Y, "SELECT COUNT(*) FROM data WHERE person = ? AND item = ?", ("Y1", "local_tax")),
                         self.net.sql(Y, "SELECT COUNT(*) FROM answers WHERE side = 'data'"))

    def test_3_a_provider_whose_database_is_lost_settles_nothing(self):
        """Only the provider's database is lost to writes, as when the
        primary it was on is demoted by a failover (SQLSTATE 25006): the
        exchange is answered 503 store_unavailable, settled nowhere, and the
        same query_id succeeds once the provider's database is back."""
        K = "pref-kanagawa"
        number = self.net.residents()[0]["my_number"]
        self.assertEqual(self.net.enrol(K, "K1", number).status, 202)
        self.net.wait_status(K, "K1", "linked")
        self.assertEqual(self.put("loss-provider-data", {"tax": 7}).status, 200)
        query = {"query_id": "loss-provider-q", "person": "K1", "business": "public_assistance", "provider": Y,
                 "item": "local_tax", "operator": "op-1"}
        cut = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'city-yokohama'"
        self.net.pg.psql('ALTER DATABASE "city-yokohama" SET default_transaction_read_only = on')
        self.net.pg.psql(cut)  # its sessions start again read-only
        try:
            a = self.net.agency_call(K, "POST", "/v1/queries", query)
            self.assertEqual((a.status, a.error), (503, "store_unavailable"), a)
            core = self.net.sql("core", "SELECT count(*) FROM records WHERE exchange_id LIKE 'pref-kanagawa.%'")
            self.assertEqual(core[0][0], 0)  # settled nowhere
        finally:
            self.net.pg.psql('ALTER DATABASE "city-yokohama" RESET default_transaction_read_only')
            self.net.pg.psql(cut)
        a = self.net.agency_call(K, "POST", "/v1/queries", query)
        self.assertEqual((a.status, a.json.get("status"), a.json.get("value")), (200, "provided", {"tax": 7}), a)
        xid = a.json["exchange_id"]
        for node in ("core", K, Y):
            self.assertEqual(self.net.sql(node, "SELECT count(*) FROM records WHERE exchange_id = ?", (xid,))[0][0], 1,
                             node)

if __name__ == "__main__":
    main()
