"""browser.py — one headless Chromium (Debian `chromium`) for the page tests,
driven over its DevTools protocol (on the pipe of --remote-debugging-pipe:
JSON messages ended by NUL on fds 3 and 4), with its own profile and NSS
database (libnss3-tools' certutil and pk12util) holding a client
certificate (a person's card.p12, or an operator's credential) that the
profile's auto-select-certificate setting presents to one origin, as the
AutoSelectCertificateForUrls policy would."""
import base64
import json
import os
import select
import shutil
import subprocess
import time

from harness import SLOW

TOOLS = ("chromium", "certutil", "pk12util", "openssl")


def p12_of(cert, key, out):
    """A PKCS#12 file (no password) of a PEM certificate and key, for NSS."""
    subprocess.run(["openssl", "pkcs12", "-export", "-in", cert, "-inkey", key, "-out", out, "-passout", "pass:"],
                   check=True, capture_output=True, timeout=60)
    return out


class Browser:
    """One headless Chromium with its own profile and NSS database, and a
    DevTools session on its page."""

    def __init__(self, folder, p12, ca_pem, origin):
        self.folder = folder
        home = os.path.join(folder, "home")
        nss = os.path.join(home, ".pki", "nssdb")
        os.makedirs(nss)
        run = lambda *a: subprocess.run(a, check=True, capture_output=True, timeout=60)
        run("certutil", "-N", "-d", f"sql:{nss}", "--empty-password")
        run("pk12util", "-i", p12, "-d", f"sql:{nss}", "-W", "")
        run("certutil", "-A", "-d", f"sql:{nss}", "-n", "renkei-network-ca", "-t", "C,,", "-i", ca_pem)
        profile = os.path.join(folder, "profile")
        os.makedirs(os.path.join(profile, "Default"))
        # the certificate for the origin, without asking (what AutoSelectCertificateForUrls sets)
        prefs = {"profile": {"content_settings": {"exceptions": {"auto_select_certificate": {
            f"{origin},*": {"last_modified": "13300000000000000", "setting": {"filters": [{}]}}}}}}}
        with open(os.path.join(profile, "Default", "Preferences"), "w") as f:
            json.dump(prefs, f)
        self.downloads = os.path.join(folder, "downloads")
        os.makedirs(self.downloads)
        self.log = open(os.path.join(folder, "chromium.log"), "wb")
        env = dict(os.environ, HOME=home)
        # DevTools on a pipe: Chromium reads commands on fd 3 and writes answers on fd 4
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()
        argv = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-extensions", f"--user-data-dir={profile}", "--remote-debugging-pipe",
                "--window-size=1400,1000", "about:blank"]
        self.proc = subprocess.Popen(["sh", "-c", f'exec 3<&{to_chrome_r} 4>&{from_chrome_w}; exec "$@"', "sh", *argv],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     pass_fds=(to_chrome_r, from_chrome_w))
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buf = b""
        self.n = 0
        self.session = None
        deadline = time.time() + 60 * SLOW
        pages = []
        while not pages:
            pages = [t for t in self.cmd("Target.getTargets")["targetInfos"] if t["type"] == "page"]
            if time.time() > deadline:
                raise AssertionError(f"chromium has no page: {self.chromium_log()}")
            time.sleep(0.1)
        self.cmd("Browser.setDownloadBehavior", behavior="allow", downloadPath=self.downloads)
        self.session = self.cmd("Target.attachToTarget", targetId=pages[0]["targetId"], flatten=True)["sessionId"]
        self.cmd("Page.enable")

    def chromium_log(self):
        self.log.flush()
        with open(os.path.join(self.folder, "chromium.log"), errors="replace") as f:
            return f.read()[-3000:]

    def cmd(self, method, timeout=120, **params):
        """Sends a command (to the page once attached) and returns its result;
        the events in between are let go."""
        self.n += 1
        msg = {"id": self.n, "method": method, "params": params}
        if self.session and not method.startswith(("Browser.", "Target.")):
            msg["sessionId"] = self.session
        os.write(self.to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + timeout * SLOW
        while True:
            while b"\0" not in self.buf:
                left = deadline - time.time()
                if left <= 0 or not select.select([self.from_chrome], [], [], left)[0]:
                    raise AssertionError(f"{method}: no answer from chromium: {self.chromium_log()}")
                chunk = os.read(self.from_chrome, 1 << 20)
                if not chunk:
                    raise AssertionError(f"{method}: chromium went away: {self.chromium_log()}")
                self.buf += chunk
            raw, self.buf = self.buf.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self.n:
                if "error" in answer:
                    raise AssertionError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    def js(self, expr):
        r = self.cmd("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise AssertionError(f"{expr}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait(self, expr, what, timeout=90):
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            v = self.js(expr)
            if v:
                return v
            time.sleep(0.2)
        raise AssertionError(f"{what}: not within {timeout * SLOW} s; page: {self.js('document.body.innerText')!r}")

    def screenshot(self, name):
        data = base64.b64decode(self.cmd("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"])
        path = os.path.join(self.folder, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def close(self):
        try:
            self.cmd("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        os.close(self.to_chrome)
        os.close(self.from_chrome)
        # the artefacts stay (screenshots, downloads, chromium.log); the profile and the NSS database go
        for d in ("profile", "home"):
            shutil.rmtree(os.path.join(self.folder, d), ignore_errors=True)
