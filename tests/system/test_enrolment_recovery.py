"""An acknowledged enrolment never stays pending for good (DESIGN §2.1): a 202
means J-LIS has the request; a row whose hand-off is uncertain is kept and
sent again by the client's retry under its stored acquisition number (the
agency keeps no My Number), or failed by the agency's sweeper with a reason.

J-LIS is frozen with SIGSTOP: an enrolment is a 503 after the peer timeout,
not a 202, and its retry links it; of two overlapping requests for one
person, the first timing out never turns the second's 202 into a 404. A row
J-LIS never saw (the agency SIGKILLed while J-LIS was frozen) is linked by a
retry, or failed `not_forwarded` by the sweeper when none comes."""
import signal
import threading
import time
import unittest

from harness import SLOW, Network, main

PEER_TIMEOUT_MS = 1500 * SLOW
NEW_AFTER_MS = 4000 * SLOW


class EnrolmentRecovery(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        net = cls.net = Network(agencies=2, persons=20)
        cls.frozen_ag, cls.lost_ag = (a["agency"] for a in net.agencies()[:2])
        net.append_conf(cls.frozen_ag, f"[peer]\ntimeout_ms = {PEER_TIMEOUT_MS}")
        net.append_conf(cls.lost_ag, f"[peer]\ntimeout_ms = {PEER_TIMEOUT_MS}\n"
                                     f"[agency]\npending_new_after_ms = {NEW_AFTER_MS}")
        net.start()
        cls.jlis = next(n["id"] for n in net.registry["nodes"] if n["role"] == "jlis")
        cls.numbers = [r["my_number"] for r in net.residents()]

    @classmethod
    def tearDownClass(cls):
        cls.thaw()
        cls.net.stop()

    @classmethod
    def freeze(cls):
        cls.net.procs[cls.jlis].send_signal(signal.SIGSTOP)

    @classmethod
    def thaw(cls):
        p = cls.net.procs.get(cls.jlis)
        if p:
            p.send_signal(signal.SIGCONT)

    def enrol_later(self, agency, person, number, out, key):
        """Sends an enrolment on a thread; its answer (or error) goes to out[key]."""
        def run():
            try:
                out[key] = self.net.enrol(agency, person, number)
            except Exception as e:  # the agency may be killed under it
                out[key] = e
        t = threading.Thread(target=run)
        t.start()
        return t

    def watch_never_404(self, agency, person, seen, stop):
        """Polls the person until stop is set; every status goes to seen."""
        while not stop.is_set():
            seen.append(self.net.agency_call(agency, "GET", f"/v1/persons/{person}").status)
            time.sleep(0.02)

    def test_1_frozen_jlis_gives_503_and_the_retry_links(self):
        net, ag = self.net, self.frozen_ag
        self.freeze()
        try:
            a = net.enrol(ag, "FROZEN", self.numbers[0])
        finally:
            self.thaw()
        self.assertEqual((a.status, a.error), (503, "jlis_unavailable"), a)
        self.assertEqual(net.agency_call(ag, "GET", "/v1/persons/FROZEN").json["status"], "pending")
        self.assertEqual(net.sqlite(ag, "SELECT state FROM pending WHERE person = 'FROZEN'"), [("new",)])
        again = net.enrol(ag, "FROZEN", self.numbers[0])
        self.assertEqual(again.status, 202, again)
        net.wait_status(ag, "FROZEN", "linked")
        # Another My Number for a person pending here is a conflict, not a second acquisition.
        check = sum(map(int, self.numbers[1][:11])) % 10
        other = next(n for n in self.numbers[15:] if sum(map(int, n[:11])) % 10 != check)
        self.freeze()
        try:
            self.assertEqual(net.enrol(ag, "FROZEN2", self.numbers[1]).status, 503)
            clash = net.enrol(ag, "FROZEN2", other)  # answered by the agency alone
        finally:
            self.thaw()
        self.assertEqual((clash.status, clash.error), (409, "conflict"), clash)
        self.assertEqual(net.enrol(ag, "FROZEN2", self.numbers[1]).status, 202)
        net.wait_status(ag, "FROZEN2", "linked")

    def test_2_overlapping_requests_never_404_after_202(self):
        net, ag = self.net, self.frozen_ag
        answers, seen, stop = {}, [], threading.Event()
        self.freeze()
        try:
            first = self.enrol_later(ag, "OVERLAP", self.numbers[3], answers, "first")
            time.sleep(PEER_TIMEOUT_MS / 2000)
            second = self.enrol_later(ag, "OVERLAP", self.numbers[3], answers, "second")
            first.join()  # timed out against the frozen J-LIS
        finally:
            self.thaw()
        watcher = threading.Thread(target=self.watch_never_404, args=(ag, "OVERLAP", seen, stop))
        watcher.start()
        try:
            second.join()
            self.assertEqual(answers["first"].status, 503, answers["first"])
            self.assertIn(answers["second"].status, (202, 503), answers["second"])
            if answers["second"].status == 503:  # it timed out too: the client retries
                self.assertEqual(net.enrol(ag, "OVERLAP", self.numbers[3]).status, 202)
            net.wait_status(ag, "OVERLAP", "linked")
        finally:
            stop.set()
            watcher.join()
        self.assertNotIn(404, seen)
        self.assertEqual(net.sqlite("core", "SELECT count(*) FROM acquisitions WHERE agency = ?", (ag,))[0][0],
                         len(net.sqlite(ag, "SELECT person FROM persons WHERE status = 'linked'")))

    def test_3_row_jlis_never_saw_is_linked_by_retry_or_failed_by_sweeper(self):
        net, ag = self.net, self.lost_ag
        answers = {}
        self.freeze()
        try:
            threads = [self.enrol_later(ag, p, self.numbers[10 + i], answers, p)
                       for i, p in enumerate(("LOST-A", "LOST-B"))]
            deadline = time.time() + 5 * SLOW
            while time.time() < deadline and net.sqlite(ag, "SELECT count(*) FROM pending")[0][0] < 2:
                time.sleep(0.02)
            time.sleep(0.1)
            net.kill_node(ag)  # SIGKILL while both wait for J-LIS
            for t in threads:
                t.join()
        finally:
            self.thaw()
        rows = dict(net.sqlite(ag, "SELECT person, state FROM pending"))
        self.assertEqual(rows, {"LOST-A": "new", "LOST-B": "new"})
        lost_b = net.sqlite(ag, "SELECT acquisition_no FROM pending WHERE person = 'LOST-B'")[0][0]
        net.start_node(ag)
        a = net.enrol(ag, "LOST-A", self.numbers[10])  # the client retries: sent again
        self.assertEqual(a.status, 202, a)
        net.wait_status(ag, "LOST-A", "linked")
        b = net.wait_status(ag, "LOST-B", "failed", timeout=4 * NEW_AFTER_MS / 1000)
        self.assertEqual(b.json.get("reason"), "not_forwarded", b)
        self.assertEqual(net.sqlite("jlis", "SELECT count(*) FROM relays WHERE acquisition_no = ?", (lost_b,))[0][0],
                         0)  # J-LIS never had it
        # Kept for a late notice; enrolling again starts afresh and links.
        self.assertEqual(net.enrol(ag, "LOST-B", self.numbers[11]).status, 202)
        net.wait_status(ag, "LOST-B", "linked")
        self.assertNotIn("reason", net.agency_call(ag, "GET", "/v1/persons/LOST-B").json)


if __name__ == "__main__":
    main()
