"""Several core instances over one PostgreSQL database (DESIGN §6,
`net init --core-instances 2`): gateways spread their calls over both and
move to the other when one fails; J-LIS's primary and backup lines are the
two instances (第7-1(7)); the same resident reaching both at once is one
person; one instance leads the records log at a time and the other takes
over when it is killed under load, with nothing acknowledged lost, nothing
done twice and `records verify` passing. Per-process state: alert windows
are each instance's own, the incidents they raise are the database's, seen
at either instance."""
import threading
import time
import unittest

from harness import SLOW, Network, main, renkei

Y, K, N = "city-yokohama", "pref-kanagawa", "nenkin-kikou"
CORES = ("core-1", "core-2")
FAST_CORE = ("[core]\nnotice_lease_ms = 2000\noutbox_retry_min_ms = 50\noutbox_retry_max_ms = 400\n"
             "[records]\nhead_interval_ms = 200\n"
             "[alerts]\nnot_permitted_threshold = 2\n")


class CoreInstances(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.net = Network(agencies=3, persons=120, store="postgres", core_instances=2,
                          conf_extra={c: FAST_CORE for c in CORES})
        cls.net.start()
        cls.residents = cls.net.residents()
        net = cls.net
        # linked persons at Y (provider) and K (requester), and values at Y
        for i in range(40):
            number = cls.residents[i]["my_number"]
            for ag in (Y, K):
                assert net.enrol(ag, f"P{i}", number).status == 202
        for i in range(40):
            for ag in (Y, K):
                net.wait_status(ag, f"P{i}", "linked")
            a = net.agency_call(Y, "PUT", f"/v1/data/P{i}/local_tax", {"value": {"tax": i}, "as_of": "2026-01-01"})
            assert a.status == 200, a

    @classmethod
    def tearDownClass(cls):
        cls.net.stop()

    def query(self, qid, i):
        return self.net.agency_call(K, "POST", "/v1/queries", {
            "query_id": qid, "person": f"P{i}", "business": "public_assistance", "provider": Y,
            "item": "local_tax", "operator": "op-1"}, timeout=20)

    def core_records(self, xids):
        """{exchange id: its records at the core} for these exchange ids."""
        rows = self.net.sql("core-1", "SELECT exchange_id, count(*) FROM records WHERE side = 'core'"
                                      " AND exchange_id IN (" + ",".join("?" * len(xids)) + ") GROUP BY exchange_id",
                            tuple(xids))
        return dict(rows)

    def test_1_any_instance_serves_and_the_results_are_one_core_s(self):
        net = self.net
        xids = []
        for i in range(20):
            a = self.query(f"spread-{i}", i)
            self.assertEqual((a.status, a.json.get("status"), a.json.get("value")), (200, "provided", {"tax": i}), a)
            xids.append(a.json["exchange_id"])
        # the requester's gateway spread them over both instances
        for core in CORES:
            self.assertIn("-> city-yokohama public_assistance/local_tax: provided", net.log(core), core)
        rows = self.core_records(xids)
        self.assertEqual(rows, {x: 1 for x in xids})
        # one log: both instances serve the same checkpoint once it is signed
        deadline = time.time() + 10 * SLOW
        while time.time() < deadline:
            c = [net.call(core, "GET", "/v1/checkpoint", as_client="operator").raw for core in CORES]
            if c[0] == c[1] and c[0].startswith("renkei/renkei/core\n"):
                break
            time.sleep(0.1)
        self.assertEqual(c[0], c[1])
        self.assertTrue(c[0].startswith("renkei/renkei/core\n"), c[0])
        # a proof asked at either instance, against the one log
        xid = xids[0]
        for core in CORES:
            p = net.call(core, "GET", f"/v1/records/proof?exchange_id={xid}", as_client="operator")
            self.assertEqual(p.status, 200, p)
        # J-LIS relayed every code request on its primary line: core-1
        self.assertEqual(net.sql("jlis", "SELECT DISTINCT line FROM relays"), [("primary",)])

    def test_2_the_same_resident_at_two_instances_at_once_is_one_person(self):
        net = self.net
        r = self.residents[100]
        results = {}

        def send(core, agency, no):
            results[core] = net.call(core, "POST", "/v1/codes", {
                "agency": agency, "acquisition_no": no, "resident_code": r["resident_code"],
                "previous_resident_codes": [], "check_code": 1}, as_client=("node", "jlis"))
        numbers = []
        for attempt in range(5):  # several rounds, each a race of the two instances
            results.clear()
            nos = [f"{tag * 8}{attempt:02x}" for tag in ("aa", "bb")]
            numbers += nos
            t = [threading.Thread(target=send, args=(core, ag, no)) for core, ag, no in zip(CORES, (Y, N), nos)]
            for x in t:
                x.start()
            for x in t:
                x.join()
            for core in CORES:
                self.assertEqual(results[core].status, 202, results[core])
        serials = net.sql("core-1", "SELECT DISTINCT serial FROM acquisitions WHERE acquisition_no IN ("
                                    + ",".join("?" * len(numbers)) + ")", tuple(numbers))
        self.assertEqual(len(serials), 1, serials)
        self.assertEqual(net.sql("core-1", "SELECT count(*) FROM resident_codes WHERE resident_code = ?",
                                 (r["resident_code"],)), [(1,)])

    def test_3_alert_windows_are_each_instance_s_and_incidents_are_shared(self):
        net = self.net
        for i in range(6):  # not permitted: K may not ask Y for this item under this business
            a = net.agency_call(K, "POST", "/v1/queries", {
                "query_id": f"np-{i}", "person": "P1", "business": "child_allowance", "provider": Y,
                "item": "local_tax", "operator": "op-1"})
            self.assertEqual(a.status, 403, a)
        seen = []
        for core in CORES:
            a = net.call(core, "GET", "/v1/incidents", as_client="operator")
            self.assertEqual(a.status, 200, a)
            seen.append(sorted((i["node"], i["kind"]) for i in a.json["incidents"] if i["kind"] == "unauthorized_access"))
        self.assertEqual(seen[0], seen[1])  # one list, whichever instance is asked
        self.assertTrue(seen[0], "no instance raised the refusals alert")

    def test_4_an_instance_killed_under_load_loses_nothing_and_the_other_leads(self):
        net = self.net
        # core-1 is J-LIS's primary line: make it the leader too, so that one
        # kill tests both takeovers (a leader stopped cleanly hands over)
        if "leads the log" not in net.log("core-1"):
            net.stop_node("core-2")
            deadline = time.time() + 15 * SLOW
            while time.time() < deadline and "leads the log" not in net.log("core-1"):
                time.sleep(0.1)
            net.start_node("core-2")
        self.assertIn("leads the log", net.log("core-1"))
        leader, other = CORES
        acked, unacked, lock = {}, [], threading.Lock()  # query id -> exchange id; (query id, person)
        stop, killed = threading.Event(), threading.Event()

        def load(w):
            n = 0
            while not stop.is_set():
                qid = f"load-{w}-{n}"
                try:
                    a = self.query(qid, n % 40)
                    ok = a.status == 200 and a.json.get("status") == "provided"
                except OSError:
                    ok = False
                with lock:
                    if ok:
                        acked[qid] = a.json["exchange_id"]
                    else:
                        unacked.append((qid, n % 40))
                n += 1
        enrolled = []  # persons whose enrolment was acknowledged (202)

        def enrol():  # J-LIS relays on its primary line, core-1, then on its backup line, core-2
            for i in range(40, 100):
                if stop.is_set():
                    break
                if i == 70:  # the rest after the kill
                    killed.wait()
                try:
                    if net.enrol(N, f"E{i}", self.residents[i]["my_number"]).status == 202:
                        enrolled.append(f"E{i}")
                except OSError:
                    pass
                time.sleep(0.02)
        workers = [threading.Thread(target=load, args=(w,)) for w in range(3)] + [threading.Thread(target=enrol)]
        for w in workers:
            w.start()
        time.sleep(1.5 * SLOW)
        net.kill_node(leader)
        killed.set()
        killed_at = time.time()
        time.sleep(3 * SLOW)
        stop.set()
        for w in workers:
            w.join()
        self.assertGreater(len(acked), 10)
        print(f"killed the leader {leader}: {len(acked)} queries acknowledged, {len(unacked)} not (retried),"
              f" {len(enrolled)} enrolments acknowledged", flush=True)
        for p in enrolled:  # every acknowledged enrolment ends linked, whichever instance took it
            net.wait_status(N, p, "linked", timeout=30)
        self.assertGreater(net.sql("jlis", "SELECT count(*) FROM relays WHERE line = 'backup'")[0][0], 0)
        # a query not acknowledged is retried with its id: it succeeds, once
        for qid, i in unacked:
            a = self.query(qid, i)
            self.assertEqual((a.status, a.json.get("status")), (200, "provided"), a)
            acked[qid] = a.json["exchange_id"]
        rows = self.core_records(list(acked.values()))
        self.assertEqual(rows, {x: 1 for x in acked.values()})  # each there, once
        # the other instance leads the log within seconds, and signs
        deadline = killed_at + 15 * SLOW
        while time.time() < deadline and "leads the log" not in net.log(other):
            time.sleep(0.1)
        self.assertIn("leads the log", net.log(other))
        signers = net.sql("core-1", "SELECT DISTINCT signer FROM tree_heads WHERE signer IS NOT NULL")
        self.assertIn((other,), signers)
        before = len(net.log(leader))
        net.start_node(leader)  # back, and not the leader: the other holds the lock
        time.sleep(1 * SLOW)
        self.assertNotIn("leads the log", net.log(leader)[before:])
        v = renkei("records", "verify", net.dir, check=False, timeout=120)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertIn("the log of core-1", v.stdout)


if __name__ == "__main__":
    main()
