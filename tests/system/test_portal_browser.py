"""The やりとり履歴 page in a real browser (DESIGN §2.5): headless Chromium
(Debian `chromium`), driven over its DevTools protocol (on the pipe of
--remote-debugging-pipe: JSON messages ended by NUL on fds 3 and 4),
signs in to the portal with a person's card — card.p12 in an NSS database
(libnss3-tools' certutil and pk12util), chosen for the portal by the
profile's auto-select-certificate setting, as the AutoSelectCertificateForUrls
policy would — and the page lists the person's exchanges, each marked
verified by the browser's own WebCrypto checks; the English toggle and the
CSV and JSON downloads work; a record altered in the core's store turns its
entry "not verified" and leaves the others verified. Screenshots go to a
temporary folder printed at the end (not the repository). Chromium missing
is a failure, not a skip: scripts/install-deps.sh installs it."""
import csv
import json
import os
import shutil
import sqlite3
import tempfile
import time
import unittest

from browser import TOOLS, Browser
from harness import SLOW, STORE, Network, main

Y, K, N = "city-yokohama", "pref-kanagawa", "nenkin-kikou"


class PortalPage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        missing = [t for t in TOOLS if not shutil.which(t)]
        if missing:  # not a skip: scripts/install-deps.sh installs them
            raise AssertionError(f"missing {', '.join(missing)}: run scripts/install-deps.sh")
        cls.shots = tempfile.mkdtemp(prefix="renkei-portal-browser-")
        net = cls.net = Network(agencies=3, persons=8, conf_extra={"core": "[records]\nhead_interval_ms = 200\n"})
        net.start()
        number = net.residents()[0]["my_number"]
        for ag, p in ((Y, "YA"), (K, "KA"), (N, "NA")):
            assert net.enrol(ag, p, number).status == 202
        for ag, p in ((Y, "YA"), (K, "KA"), (N, "NA")):
            net.wait_status(ag, p, "linked")
        assert net.agency_call(Y, "PUT", "/v1/data/YA/local_tax", {"value": {"v": 1}, "as_of": "2026-04-01"}).status == 200
        assert net.agency_call(Y, "PUT", "/v1/data/YA/resident_record", {"value": {"address": "横浜市中区本町1-1"},
                                                                       "as_of": "2026-04-01"}).status == 200
        q = lambda qid, ag, person, business, provider, item: net.agency_call(
            ag, "POST", "/v1/queries", {"query_id": qid, "person": person, "business": business, "provider": provider,
                                        "item": item, "operator": "op-1"}).json["exchange_id"]
        cls.xids = [q("b-1", K, "KA", "public_assistance", Y, "local_tax"),
                    q("b-2", N, "NA", "national_pension", Y, "child_allowance"),  # refused
                    q("b-3", K, "KA", "public_assistance", Y, "local_tax")]
        cls.card = net.issue_card(1)[1]
        portal = next(n for n in net.registry["nodes"] if n["role"] == "portal")
        cls.url = portal["person_url"]
        # the list as the API gives it, once every entry is in a witnessed checkpoint
        deadline = time.time() + 30 * SLOW
        while True:
            body = net.person_call(cls.card, "GET", "/v1/me/exchanges").json
            if len(body["exchanges"]) >= 3 and all("inclusion_proof" in e for e in body["exchanges"]):
                break
            assert time.time() < deadline, body
            time.sleep(0.2)
        cls.entries = body["exchanges"]
        try:
            cls.browser = Browser(os.path.join(cls.shots, "chromium"), os.path.join(cls.card, "card.p12"),
                                  net.path("pki", "ca.pem"), cls.url)
        except Exception:
            net.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        cls.net.stop()
        print(f"\nscreenshots and downloads: {cls.shots}", flush=True)

    def open_page(self):
        self.browser.cmd("Page.navigate", url=self.url + "/")
        self.browser.wait("document.readyState === 'complete' && document.body && document.body.dataset.done === '1'",
                          "the page's checks")
        return self.browser.js("Array.from(document.querySelectorAll('#list tbody tr'))"
                               ".map(tr => [Number(tr.dataset.leafIndex), tr.dataset.verify])")

    def test_1_every_entry_turns_verified(self):
        rows = self.open_page()
        shot = self.browser.screenshot("1-verified-ja.png")
        self.assertEqual([i for i, _ in rows], [e["leaf_index"] for e in self.entries], rows)
        self.assertEqual({v for _, v in rows}, {"verified"}, rows)
        text = self.browser.js("document.body.innerText")
        self.assertIn("やりとり履歴", text)
        self.assertIn("検証済み", text)
        self.assertIn("地方税関係情報", text)  # names from the catalogue
        self.assertIn("拒否", text)  # the refused exchange is listed as such
        self.assertTrue(os.path.getsize(shot) > 1000)
        # the explanation of what verified means is on the page
        self.assertIn("包含証明", self.browser.js("document.querySelector('#about').textContent"))

    def test_2_english_toggle(self):
        self.open_page()
        self.browser.js("document.querySelector('#lang').click()")
        self.browser.wait("document.documentElement.lang === 'en'", "the English page")
        text = self.browser.js("document.body.innerText")
        self.assertIn("Exchange history", text)
        self.assertIn("Verified", text)
        self.assertIn("Local tax information", text)  # the catalogue's English names
        self.browser.screenshot("2-verified-en.png")
        self.browser.js("document.querySelector('#lang').click()")
        self.browser.wait("document.documentElement.lang === 'ja'", "back to Japanese")

    def test_3_downloads(self):
        self.open_page()
        for button, name in (("#csv", "yaritori-rireki.csv"), ("#json", "yaritori-rireki.json")):
            self.browser.js(f"document.querySelector('{button}').click()")
            path = os.path.join(self.browser.downloads, name)
            deadline = time.time() + 30 * SLOW
            while not os.path.exists(path) and time.time() < deadline:
                time.sleep(0.1)
            self.assertTrue(os.path.exists(path), name)
        with open(os.path.join(self.browser.downloads, "yaritori-rireki.csv"), encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
        self.assertEqual(sorted(r["exchange_id"] for r in rows), sorted(e["exchange_id"] for e in self.entries))
        self.assertEqual({r["verification"] for r in rows}, {"verified"})
        with open(os.path.join(self.browser.downloads, "yaritori-rireki.json"), encoding="utf-8") as f:
            data = json.load(f)
        self.assertEqual(len(data["pages"][0]["exchanges"]), len(self.entries))

    def test_4_an_altered_record_is_not_verified(self):
        victim = self.xids[0]
        sql = f"UPDATE records SET item = 'resident_record' WHERE exchange_id = '{victim}' AND side = 'core'"
        if STORE == "sqlite":  # behind the core's back, as someone with the files would
            db = sqlite3.connect(self.net.path("nodes", "core", "node.db"), timeout=30)
            db.execute(sql)
            db.commit()
            db.close()
        else:
            self.net.pg.psql(sql, db="core")
        rows = dict(self.open_page())
        self.browser.screenshot("4-altered.png")
        index = next(e["leaf_index"] for e in self.entries if e["exchange_id"] == victim)
        self.assertEqual(rows[index], "failed", rows)
        self.assertEqual({v for i, v in rows.items() if i != index}, {"verified"}, rows)
        self.assertIn("検証できません", self.browser.js("document.body.innerText"))

    def test_5_my_information(self):
        """わたしの情報: the page asks the portal on the person's click and lists item, agency, value."""
        self.open_page()
        self.browser.js("document.querySelector('#mydata-load').click()")
        self.browser.wait("document.body.dataset.mydata !== undefined", "わたしの情報")
        text = self.browser.js("document.querySelector('#mydata').innerText")
        self.browser.screenshot("5-mydata.png")
        self.assertIn("わたしの情報", text)
        self.assertIn("住民票関係情報", text)
        self.assertIn("横浜市中区本町1-1", text)
        self.assertIn(Y, text)
        self.assertIn("該当する情報なし", text)  # the pension service holds no value for the person
        self.assertEqual(self.browser.js("document.body.dataset.mydata"), "2")


if __name__ == "__main__":
    main()
