"""Limits of the server every node runs: answers libevent would make by
itself (a body over the cap, a malformed request, headers over the cap, a
method not served) are the project's JSON errors; idle and slow
connections are bounded (a cap per address and in total, a handshake
deadline) and do not keep a node from its callers nor make it spin."""
import os
import socket
import ssl
import time

from harness import SLOW, NetworkTest, main

HANDSHAKE_MS = 2000
PER_ADDR = 1024      # RK_SERVER_MAX_CONNS_PER_ADDR
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


class Limits(NetworkTest):
    AGENCIES = 2
    PERSONS = 2

    @classmethod
    def setUpClass(cls):
        os.environ["RENKEI_TEST_HANDSHAKE_MS"] = str(HANDSHAKE_MS)
        try:
            super().setUpClass()
        finally:
            del os.environ["RENKEI_TEST_HANDSHAKE_MS"]

    def raw(self, node_id, data, who="operator"):
        """Sends bytes over mutual TLS; returns (status, headers text, parsed JSON body)."""
        host, port = self.net.url_of(node_id)
        ctx = self.net.ssl_context(who)
        with socket.create_connection((host, port), timeout=10 * SLOW) as tcp:
            with ctx.wrap_socket(tcp) as s:
                try:
                    s.sendall(data)
                except OSError:
                    pass  # the node may answer and close before taking it all
                got = b""
                try:
                    while True:
                        d = s.recv(65536)
                        if not d:
                            break
                        got += d
                except (ConnectionError, ssl.SSLError):
                    pass
        head, _, body = got.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        import json
        return status, head.decode("latin-1"), json.loads(body)

    def assert_error(self, answer, status, code):
        got_status, head, body = answer
        self.assertEqual((got_status, body["error"]["code"]), (status, code), head)
        self.assertIn("Content-Type: application/json", head)
        self.assertIn("X-Renkei-Time:", head)
        self.assertTrue(body["error"]["message"])

    # ---------- answers libevent would make by itself ----------
    def test_body_over_the_cap_is_413_json(self):
        body = b'{"person":"' + b"x" * (2 * 1024 * 1024 + 10) + b'"}'
        a = self.net.call("city-yokohama", "POST", "/v1/persons", raw=body, as_client="city-yokohama")
        self.assertEqual((a.status, a.error), (413, "too_large"), a)
        self.assertEqual(a.headers.get("Content-Type"), "application/json")

    def test_51_mb_batch_is_413_json(self):
        body = b'{"persons":[' + b",".join([b'{"person":"P","my_number":"123456789018"}'] * 1250000) + b"]}"
        self.assertGreater(len(body), 51 * 1000 * 1000)
        a = self.net.call("city-yokohama", "POST", "/v1/persons", raw=body, as_client="city-yokohama")
        self.assertEqual((a.status, a.error), (413, "too_large"), a)

    def test_malformed_request_line_is_400_json(self):
        self.assert_error(self.raw("core", b"GARBAGE\r\n\r\n"), 400, "bad_request")
        self.assert_error(self.raw("core", b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n"), 400, "bad_request")

    def test_malformed_header_is_400_json(self):
        self.assert_error(self.raw("core", b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n"), 400, "bad_request")

    def test_headers_over_the_cap_are_431_json(self):
        req = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n"
        self.assert_error(self.raw("core", req), 431, "headers_too_large")
        req = b"GET /" + b"a" * 40000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        self.assert_error(self.raw("core", req), 431, "headers_too_large")

    def test_methods_not_served_are_405_json(self):
        self.assert_error(self.raw("core", b"FOO /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), 405, "method_not_allowed")
        self.assert_error(self.raw("core", b"DELETE /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
                          405, "method_not_allowed")
        self.assert_error(self.raw("core", b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
                          405, "method_not_allowed")

    def test_node_still_serves_after_refusals(self):
        self.raw("core", b"GARBAGE\r\n\r\n")
        self.assertEqual(self.net.call("core", "GET", "/healthz", as_client="operator").status, 200)

    # ---------- idle and slow connections ----------
    def test_silent_connection_is_closed_after_the_handshake_deadline(self):
        host, port = self.net.url_of("core")
        with socket.create_connection((host, port)) as s:
            s.settimeout(HANDSHAKE_MS / 1000 * SLOW + 5)
            t0 = time.monotonic()
            try:
                self.assertEqual(s.recv(1), b"")
            except ConnectionResetError:
                pass
            elapsed = time.monotonic() - t0
        self.assertGreater(elapsed, HANDSHAKE_MS / 1000 * 0.8)
        self.assertLess(elapsed, HANDSHAKE_MS / 1000 * SLOW + 3)

    def test_idle_connections_over_the_address_cap_do_not_stop_callers(self):
        host, port = self.net.url_of("core")
        pid = self.net.procs["core"].pid
        n = PER_ADDR + 300
        socks = []
        try:
            for _ in range(n):
                s = socket.create_connection((host, port), timeout=5)
                socks.append(s)
            # A caller gets through while they are held (before the handshake deadline)…
            a = self.net.call("core", "GET", "/healthz", as_client="operator")
            self.assertEqual(a.status, 200, a)
            # … the node closed those over its cap from this address at once …
            time.sleep(0.2)
            closed = 0
            for s in socks:
                s.setblocking(False)
                try:
                    if s.recv(1) == b"":
                        closed += 1
                except BlockingIOError:
                    pass
                except OSError:
                    closed += 1
            print(f"\n{n} idle connections: {closed} closed by the node at once", flush=True)
            self.assertGreaterEqual(closed, n - PER_ADDR)
            # … and does not spin meanwhile.
            before, t0 = cpu_seconds(pid), time.monotonic()
            time.sleep(1.5)
            used, wall = cpu_seconds(pid) - before, time.monotonic() - t0
            print(f"node CPU with them held: {used:.2f} s over {wall:.2f} s", flush=True)
            self.assertLess(used / wall, 0.3)
        finally:
            for s in socks:
                s.close()
        self.assertEqual(self.net.call("core", "GET", "/healthz", as_client="operator").status, 200)


if __name__ == "__main__":
    main()
