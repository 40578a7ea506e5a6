"""The systemd units of the Debian package (debian/renkei@.service,
debian/renkei.target) load without a complaint from `systemd-analyze verify`,
keep the sandboxing an operator is promised (README.Debian) and rate an
exposure of 2.0 or less in `systemd-analyze security`. The whole package is
built, installed and run by scripts/check-deb.sh (make check-deb), which
needs root and changes the machine."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import BIN, main

SRC = os.environ.get("RENKEI_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "../..")
UNIT = os.path.join(SRC, "debian", "renkei@.service")
TARGET = os.path.join(SRC, "debian", "renkei.target")

PROMISED = {
    "User": "renkei", "Restart": "on-failure", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
    "PrivateTmp": "yes", "ReadWritePaths": "/var/lib/renkei/%i", "StateDirectory": "renkei/%i",
    "WorkingDirectory": "/var/lib/renkei/%i", "EnvironmentFile": "/etc/renkei/%i/node.env",
    "ExecStart": "/usr/bin/renkei ${RENKEI_ROLE} --config /etc/renkei/%i/node.conf",
    "CapabilityBoundingSet": "", "PartOf": "renkei.target", "WantedBy": "renkei.target",
}


def settings(text):
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z]+)=(.*)$", line)
        if m:
            out.setdefault(m.group(1), []).append(m.group(2))
    return out


def broken_promises(text):
    s = settings(text)
    return [f"{k}={v}" for k, v in PROMISED.items() if v not in s.get(k, [])]


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


class Units(unittest.TestCase):
    def test_the_promised_settings(self):
        self.assertEqual(broken_promises(read(UNIT)), [])
        weaker = read(UNIT).replace("ProtectSystem=strict", "ProtectSystem=full")
        self.assertEqual(broken_promises(weaker), ["ProtectSystem=strict"])

    @unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze is not installed")
    def test_verify_and_security(self):
        d = tempfile.mkdtemp(prefix="renkei-units-")
        try:
            def place(text, name="renkei@core.service"):
                # the binary of this build stands for /usr/bin/renkei, which may not be installed
                path = os.path.join(d, name)
                with open(path, "w") as f:
                    f.write(text.replace("/usr/bin/renkei", os.path.abspath(BIN)))
                return path

            unit = place(read(UNIT))
            target = place(read(TARGET), "renkei.target")
            p = subprocess.run(["systemd-analyze", "verify", "--man=no", unit, target],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""))
            p = subprocess.run(["systemd-analyze", "security", "--offline=true", "--threshold=20", unit],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stdout[-1500:] + p.stderr)
            # both checks can fail: a misspelt key, and a unit without its sandbox
            bad = place(read(UNIT).replace("PrivateTmp=yes", "PrivateTmpp=yes"), "renkei@bad.service")
            p = subprocess.run(["systemd-analyze", "verify", "--man=no", bad], capture_output=True, text=True,
                               timeout=60)
            self.assertIn("Unknown key", p.stdout + p.stderr)
            bare = "\n".join(l for l in read(UNIT).splitlines()
                             if not re.match(r"^(Protect|Private|Restrict|System|Capability|NoNew|Memory|Lock)", l))
            bare = place(bare, "renkei@bare.service")
            p = subprocess.run(["systemd-analyze", "security", "--offline=true", "--threshold=20", bare],
                               capture_output=True, text=True, timeout=60)
            self.assertNotEqual(p.returncode, 0)
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
