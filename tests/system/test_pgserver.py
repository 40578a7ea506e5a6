"""System test of the throwaway PostgreSQL server of the tests (pgserver.py):
a database and its role reached by their URI, data kept across a stop and
a start, everything gone after close — and after the test process is
killed, by the watchdog."""
import os
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from pgserver import PG_BIN, PgServer  # noqa: E402


def psql_uri(uri, sql):
    p = subprocess.run([f"{PG_BIN}/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", uri, "-c", sql],
                       capture_output=True, text=True)
    return p.returncode, p.stdout.strip(), p.stderr.strip()


def listening(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_gone(path, port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline and (os.path.exists(path) or listening(port)):
        time.sleep(0.1)
    return not os.path.exists(path) and not listening(port)


class PgServerTest(unittest.TestCase):
    def test_database_role_restart_and_close(self):
        with PgServer() as pg:
            uri = pg.create_database("node-a", role="node-a", password="pw-a")
            self.assertEqual(uri, f"postgresql://node-a:pw-a@127.0.0.1:{pg.port}/node-a")
            rc, out, err = psql_uri(uri, "CREATE TABLE t (k BIGINT); INSERT INTO t VALUES (7);"
                                         " SELECT current_user, current_database()")
            self.assertEqual(rc, 0, err)
            self.assertEqual(out, "node-a|node-a")
            self.assertEqual(pg.psql("SHOW lc_collate"), "C")
            pg.stop()
            self.assertFalse(listening(pg.port))
            self.assertNotEqual(psql_uri(uri, "SELECT 1")[0], 0)
            pg.start()
            self.assertEqual(psql_uri(uri, "SELECT k FROM t")[1], "7")
            folder, port = pg.dir, pg.port
            self.assertTrue(os.path.isdir(os.path.join(folder, "data")))
        self.assertFalse(os.path.exists(folder))
        self.assertFalse(listening(port))

    def test_a_killed_test_process_leaves_nothing(self):
        child = subprocess.Popen(
            [sys.executable, "-c",
             "import os, signal, sys; sys.path.insert(0, sys.argv[1]); from pgserver import PgServer;"
             " pg = PgServer(); print(pg.dir, pg.port, flush=True); os.kill(os.getpid(), signal.SIGKILL)",
             os.path.dirname(os.path.abspath(__file__))],
            stdout=subprocess.PIPE, text=True)
        out, _ = child.communicate(timeout=120)
        self.assertEqual(child.returncode, -9)
        folder, port = out.split()
        self.assertTrue(folder.startswith("/tmp/rk-pg-"))
        self.assertTrue(wait_gone(folder, int(port)), f"{folder} or port {port} left behind")


if __name__ == "__main__":
    unittest.main()
