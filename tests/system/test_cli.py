"""The command line as an operator uses it (DESIGN §5): `net init|up|status`,
`mynumber check|checkcode`, `--help` and one-line errors with a non-zero exit."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import BIN, SLOW, main, renkei


class NetCommands(unittest.TestCase):
    def test_up_status_and_a_clean_stop(self):
        for store in ("sqlite", "postgres"):
            with self.subTest(store):
                self.up_status_and_a_clean_stop(store)

    def up_status_and_a_clean_stop(self, store):
        d = tempfile.mkdtemp(prefix="renkei-cli-")
        os.chmod(d, 0o711)  # the postgres user runs the server of DIR/pg: it must pass through
        net = os.path.join(d, "net")
        up = None
        try:
            renkei("net", "init", net, "--agencies", 2, "--persons", 5, "--store", store)
            up = subprocess.Popen([BIN, "net", "up", net], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
            line = up.stdout.readline()
            self.assertIn("network up", line)
            p = renkei("net", "status", net, check=False)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            # core, jlis, a witness, the portal, the ppc, 2 gateways, 2 agency nodes; and the database server
            self.assertEqual(p.stdout.count(" ok"), 9 + (store == "postgres"), p.stdout)
            if store == "postgres":
                self.assertRegex(p.stdout, r"\npg +store +postgresql://127\.0\.0\.1:\d+ primary ok\n")
                self.socket_access(net)
            up.send_signal(signal.SIGTERM)
            self.assertEqual(up.wait(timeout=30 * SLOW), 0, up.stderr.read())
            up.stdout.close()
            up.stderr.close()
            p = renkei("net", "status", net, check=False)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("down", p.stdout)
            if store == "postgres":
                self.assertRegex(p.stdout, r"\npg +store +postgresql://127\.0\.0\.1:\d+ primary down\n")
            if store == "postgres":
                self.postgres_after_up(net)
        finally:
            if up and up.poll() is None:  # a failed step left the network up: it stops with the test
                up.send_signal(signal.SIGTERM)
                up.wait(timeout=60 * SLOW)
            shutil.rmtree(d, ignore_errors=True)

    def socket_access(self, net):
        """On the server's socket a node's role gets in with its password only,
        and `postgres` only as the server's own OS user (peer)."""
        with open(os.path.join(net, "pg", "data", "postgresql.conf")) as f:
            port = [x.split("=")[1].strip() for x in f if x.startswith("port = ")][-1]
        sock = os.path.join(os.path.realpath(net), "pg", "sock")
        psql = ["/usr/lib/postgresql/15/bin/psql", "-X", "-w", "-h", sock, "-p", port, "-tAc", "SELECT 1"]
        p = subprocess.run(psql + ["-U", "core", "-d", "core"], capture_output=True, text=True, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("no password supplied", p.stderr)
        if os.geteuid() == 0:  # root is not the server's user: not `postgres` on the socket
            p = subprocess.run(psql + ["-U", "postgres", "-d", "postgres"], capture_output=True, text=True, timeout=30)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn('Peer authentication failed for user "postgres"', p.stderr)
            p = subprocess.run(["/usr/sbin/runuser", "-u", "postgres", "--", *psql, "-U", "postgres", "-d",
                                "postgres"], capture_output=True, text=True, timeout=30)
            self.assertEqual((p.returncode, p.stdout.strip()), (0, "1"), p.stderr)

    def postgres_after_up(self, net):
        """`net up` stopped its server; `records verify` starts it for its
        reading and stops it after; a node whose database is down does not
        start, in one clear line."""
        with open(os.path.join(net, "pg", "data", "postgresql.conf")) as f:
            port = [int(x.split("=")[1]) for x in f if x.startswith("port = ")][-1]

        def listening():
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0
        self.assertFalse(listening())
        p = renkei("records", "verify", net, check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("all 3 nodes' records are intact", p.stdout)
        self.assertFalse(listening())
        with open(os.path.join(net, "nodes", "core", "node.conf")) as f:
            store = [x.split("=", 1)[1].strip() for x in f if x.startswith("store = ")][-1]
        self.assertTrue(store.startswith("postgresql://core:"), store)
        password = store.split(":")[2].split("@")[0]
        p = subprocess.run([BIN, "core", "--config", os.path.join(net, "nodes", "core", "node.conf")],
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        # the nodes reach the server through its socket, named (and the port) with the password hidden
        sock = os.path.join(os.path.realpath(net), "pg", "sock")
        self.assertIn(f"store: cannot connect to postgresql://core:***@/core?host={sock}&port={port}: ", p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)  # one clear line
        self.assertNotIn(password, p.stderr)

    def test_init_refuses_an_existing_network(self):
        d = tempfile.mkdtemp(prefix="renkei-cli-")
        try:
            renkei("net", "init", d, "--persons", 3)
            p = renkei("net", "init", d, check=False)
            self.assertNotEqual(p.returncode, 0)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        finally:
            shutil.rmtree(d, ignore_errors=True)


class MyNumberCommands(unittest.TestCase):
    def test_check_and_checkcode(self):
        self.assertEqual(renkei("mynumber", "check", "123456789018").returncode, 0)
        p = renkei("mynumber", "check", "123456789018", "123456789017", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("123456789017 invalid", p.stdout)
        self.assertEqual(renkei("mynumber", "checkcode", "123456789018").stdout.strip(), "6")
        p = renkei("mynumber", "checkcode", "12345", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1)


class Help(unittest.TestCase):
    def test_every_command_has_help(self):
        for cmd in (["core"], ["jlis"], ["gateway"], ["agency"], ["demo"], ["net"], ["pki"], ["mynumber"],
                    ["agency-ctl"], ["records"], ["bench"]):
            p = renkei(*cmd, "--help", check=False)
            self.assertEqual(p.returncode, 0, (cmd, p.stderr))
            self.assertIn("usage", (p.stdout + p.stderr).lower(), cmd)

    def test_unknown_command_is_one_line_and_non_zero(self):
        p = renkei("frobnicate", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1)

    def test_node_without_config_is_refused(self):
        p = renkei("core", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--config", p.stderr)
        p = renkei("core", "--config", "/nonexistent/node.conf", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)


class BenchCms(unittest.TestCase):
    def test_seal_and_open_are_timed_and_split(self):
        def left():
            return {f for f in os.listdir(tempfile.gettempdir()) if f.startswith("renkei-bench-cms-")}
        before = left()
        p = renkei("bench", "cms", "--seconds", "0.1")
        rows = {}
        for line in p.stdout.splitlines():
            parts = line.split()
            if len(parts) > 2 and parts[2] == "us/op":
                rows[parts[0]] = float(parts[1])
        self.assertEqual(set(rows), {"seal", "open", "sign", "verify", "keygen", "ecdh", "peer-check"}, p.stdout)
        self.assertTrue(all(v > 0 for v in rows.values()), rows)
        for part in ("one exchange's CMS work", "P-256 arithmetic it needs", "peer-key checks", "the rest"):
            self.assertIn(part, p.stdout)
        self.assertEqual(left() - before, set(), "temporary folder left behind")

    def test_a_bad_option_is_one_line(self):
        p = renkei("bench", "cms", "--seconds", "0", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        p = renkei("bench", "cms", "--help", check=False)
        self.assertEqual(p.returncode, 0)
        self.assertIn("usage", p.stdout)


class BenchEnrol(unittest.TestCase):
    def test_batches_enrol_and_link_everyone_with_cpu_per_node(self):
        p = renkei("bench", "enrol", "--persons", "300", "--batch", "100", "--concurrency", "2")
        self.assertIn("POST /v1/persons/batch", p.stdout)
        self.assertRegex(p.stdout, r"accepted\s+300 of 300")
        self.assertRegex(p.stdout, r"all linked\s+300 ")
        self.assertIn("CPU seconds used from the first request until all linked", p.stdout)
        self.assertRegex(p.stdout, r"total, every process\s+[0-9.]+ s")
        for node in ("city-yokohama", "core", "jlis"):  # every node's peak memory
            self.assertRegex(p.stdout, r"\n\s+%s\s+[0-9.]+ MiB" % node)

    def test_a_bad_batch_is_one_line(self):
        for bad in ("0", "1001", "x"):
            p = renkei("bench", "enrol", "--batch", bad, check=False)
            self.assertEqual(p.returncode, 2, bad)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)


if __name__ == "__main__":
    main()
