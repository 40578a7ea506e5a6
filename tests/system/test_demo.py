"""`renkei demo` (DESIGN §5): builds a whole network in a temporary folder,
runs code acquisition and the refusals, stops every node, and says what
happened in plain words — without ever printing a My Number."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import BIN, SLOW

AGENCIES = ("city-yokohama", "pref-kanagawa", "nenkin-kikou")


class Demo(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Its own TMPDIR, so that the test can see the demo clean up after itself.
        cls.tmp = tempfile.mkdtemp(prefix="renkei-test-demo-")
        env = dict(os.environ, TMPDIR=cls.tmp)
        cls.run_ = subprocess.run([BIN, "demo"], capture_output=True, text=True, timeout=300, env=env)
        cls.out = cls.run_.stdout + cls.run_.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_exits_zero(self):
        self.assertEqual(self.run_.returncode, 0, self.out)
        self.assertRegex(self.run_.stdout, r"demo: all \d+ steps did what they should")

    def test_every_agency_linked(self):
        for agency in AGENCIES:
            self.assertRegex(self.out, rf"{agency}\s+\S+\s+resident #\d+\s+linked", self.out)

    def test_refusals_named(self):
        self.assertIn("invalid_my_number", self.out)
        self.assertIn("unknown_person", self.out)
        self.assertRegex(self.out, r"resident #3 with resident #2's My Number\s+409 basic_info_mismatch")

    def test_no_basic_item_printed(self):
        """Names and addresses of residents.csv stay out of the output (the demo's folder is gone: the
        generator's words are looked for instead)."""
        self.assertIsNone(re.search(r"[都道府県][^\s]*[市区町村]|丁目|\d{4}-\d{2}-\d{2},", self.out), self.out)

    def test_no_my_number_printed(self):
        self.assertIsNone(re.search(r"\b\d{12}\b", self.out), self.out)

    def test_folder_removed(self):
        self.assertEqual(os.listdir(self.tmp), [], "the demo left its folder behind")

    def test_help(self):
        p = subprocess.run([BIN, "demo", "--help"], capture_output=True, text=True, timeout=30 * SLOW)
        self.assertEqual(p.returncode, 0)
        self.assertIn("usage: renkei demo", p.stdout)
        p = subprocess.run([BIN, "demo", "--persons", "2"], capture_output=True, text=True, timeout=30 * SLOW)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--persons", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
