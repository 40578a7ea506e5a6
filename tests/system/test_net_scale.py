"""A large network (issue 13, Scale): `net init --agencies 300` writes it,
`net up --only ID…` runs a chosen few of its nodes and nothing else, and an
id that names no node that runs is refused with one line and nothing
started. The 5,000-agency figures are in docs/scale.md."""
import os
import shutil
import signal
import subprocess
import tempfile
import unittest

from harness import BIN, SLOW, main, renkei

AGENCIES = 300


class NetScale(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="renkei-scale-")
        cls.net = os.path.join(cls.tmp, "net")
        renkei("net", "init", cls.net, "--agencies", AGENCIES, "--persons", 20, timeout=300 * SLOW)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def status(self):
        """{node id: ok|degraded|down} from `net status`."""
        p = renkei("net", "status", self.net, check=False, timeout=300 * SLOW)
        return {line.split()[0]: line.split()[-1] for line in p.stdout.splitlines() if line.strip()}

    def test_written(self):
        with open(os.path.join(self.net, "permissions.csv")):
            pass
        nodes = os.listdir(os.path.join(self.net, "nodes"))
        # core, jlis, a witness, the portal, the ppc, and a gateway and a node per agency
        self.assertEqual(len(nodes), 5 + 2 * AGENCIES)
        for n in ("core", "city-150", "city-150-gateway", f"city-{AGENCIES:03d}"):
            self.assertTrue(os.path.isfile(os.path.join(self.net, "nodes", n, "key.pem")), n)

    def test_only_a_chosen_few(self):
        up = subprocess.Popen([BIN, "net", "up", self.net, "--only", "core", "jlis", "ppc", "witness-1",
                               "city-150"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = up.stdout.readline()
            # city-150: the agency's gateway and its agency node
            self.assertEqual(line.strip(), f"network up: 6 nodes ({self.net})", up.stderr.read() if not line else "")
            with open(f"/proc/{up.pid}/task/{up.pid}/children") as f:
                self.assertEqual(len(f.read().split()), 6)
            health = self.status()
            chosen = {"core", "jlis", "ppc", "witness-1", "city-150-gateway", "city-150"}
            self.assertEqual({n for n, h in health.items() if h == "ok"}, chosen, health)
            self.assertEqual(len(health), 5 + 2 * AGENCIES)
            for n in ("portal", "city-yokohama", "city-151-gateway", f"city-{AGENCIES:03d}"):
                self.assertEqual(health[n], "down", n)
            up.send_signal(signal.SIGTERM)
            self.assertEqual(up.wait(timeout=30 * SLOW), 0)
        finally:
            if up.poll() is None:
                up.send_signal(signal.SIGTERM)
                up.wait(timeout=60 * SLOW)
            up.stdout.close()
            up.stderr.close()

    def test_unknown_id_refused(self):
        # no such node; a client (a business system) is not a node that runs
        for bad in ("city-999", "city-150-system", "operator"):
            with self.subTest(bad):
                p = renkei("net", "up", self.net, "--only", "core", bad, check=False, timeout=60 * SLOW)
                self.assertNotEqual(p.returncode, 0)
                self.assertEqual(p.stdout, "")
                self.assertEqual(p.stderr, f"renkei net: no node or agency '{bad}' in the network\n")
        self.assertEqual(self.status()["core"], "down")  # nothing started
        p = renkei("net", "up", self.net, "--only", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertEqual(len(p.stderr.splitlines()), 1, p.stderr)


if __name__ == "__main__":
    main()
