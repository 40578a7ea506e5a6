"""The stricter identity check when linking (issue 15 item 4; 2023's mislinked
records): an agency's POST /v1/persons carries the person's four basic items
(氏名, 生年月日, 性別 where held, 住所), J-LIS compares them with its registry
(names and addresses normalised, lib/basic_info.h) and refuses a mismatch with
409 basic_info_mismatch: nothing linked, nothing of the items or the My Number
stored, the attempt recorded at the agency (the person failed, with the reason)
and at J-LIS (its lookup log, which every lookup enters). `agency-ctl recheck`
compares linked persons again and links nothing."""
import os
import re
import unicodedata

from harness import NetworkTest, main, renkei

Y = "city-yokohama"
K = "pref-kanagawa"


def halfwidth(text):
    """A business system's spelling of a registry value: ASCII digits and
    letters, no spaces, 1-2-3 for 1丁目2番3号."""
    t = unicodedata.normalize("NFKC", text).replace(" ", "")
    t = re.sub(r"(\d)(丁目|番)", r"\1-", t)
    return re.sub(r"(\d)号", r"\1", t)


class BasicInfo(NetworkTest):
    PERSONS = 60  # resident #50 (index 49) holds no sex

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.rows = cls.net.residents()
        cls.used = set()

    def resident(self, held_sex=True):
        """A resident of residents.csv not used by another test, with a
        Japanese name (姓　名), holding sex or not."""
        for i, r in enumerate(self.rows):
            if i not in self.used and bool(r["sex"]) == held_sex and "\u3000" in r["name"]:
                self.used.add(i)
                return r
        raise AssertionError("no resident left")

    def lookups(self):
        a = self.net.call("jlis", "GET", "/v1/lookups?limit=500", as_client="operator")
        self.assertEqual(a.status, 200, a)
        return a.json["lookups"]

    def assert_kept_nowhere(self, values, nodes=(Y, f"{Y}-gateway", "core")):
        """None of these values is in a node's store, nor in any file of its folder (its log)."""
        for node_id in nodes:
            for v in values:
                self.assertFalse(self.net.store_holds(node_id, v), f"{node_id}'s store holds {v!r}")
            folder = self.net.path("nodes", node_id)
            for name in os.listdir(folder):
                if os.path.isfile(os.path.join(folder, name)):
                    with open(os.path.join(folder, name), "rb") as f:
                        data = f.read()
                    for v in values:
                        self.assertNotIn(v.encode(), data, f"{node_id}/{name} holds {v!r}")

    # ---------- a match links ----------
    def test_matching_items_link_as_written_or_as_a_system_spells_them(self):
        net = self.net
        r = self.resident()
        self.assertEqual(net.enrol(Y, "BI-SAME", r["my_number"]).status, 202)
        net.wait_status(Y, "BI-SAME", "linked")
        r2 = self.resident()
        self.assertIn("\u3000", r2["name"])  # the registry writes 姓　名 with an ideographic space
        a = net.enrol(Y, "BI-VARIANT", r2["my_number"], name=r2["name"].replace("\u3000", ""),
                      address=halfwidth(r2["address"]))
        self.assertEqual(a.status, 202, a)
        net.wait_status(Y, "BI-VARIANT", "linked")
        lookup = [l for l in self.lookups() if l["agency"] == Y and l["outcome"] == "match"]
        self.assertGreaterEqual(len(lookup), 2)

    def test_sex_is_compared_only_where_held(self):
        net = self.net
        unheld = self.resident(held_sex=False)
        self.assertEqual(unheld["sex"], "")
        a = net.enrol(Y, "BI-NOSEX", unheld["my_number"])  # sex left out, as the registry
        self.assertEqual(a.status, 202, a)
        net.wait_status(Y, "BI-NOSEX", "linked")
        a = net.enrol(K, "BI-NOSEX-K", unheld["my_number"], sex="2")  # held here, not at J-LIS: 3 items
        self.assertEqual(a.status, 202, a)
        net.wait_status(K, "BI-NOSEX-K", "linked")
        held = self.resident()
        a = net.enrol(Y, "BI-3ITEMS", held["my_number"], sex=None)  # not held by this agency: 3 items
        self.assertEqual(a.status, 202, a)
        net.wait_status(Y, "BI-3ITEMS", "linked")

    # ---------- a mismatch refuses and stores nothing ----------
    def test_each_mismatching_item_refuses_the_link_and_stores_nothing(self):
        net = self.net
        acquisitions = net.sqlite("core", "SELECT count(*) FROM acquisitions")[0][0]
        before = {l["seq"] for l in self.lookups()}
        sent = []
        for item in ("name", "birth_date", "sex", "address"):
            r = self.resident()
            wrong = {"name": "別人　花子", "birth_date": "1901-02-03", "sex": "1" if r["sex"] == "2" else "2",
                     "address": "北海道札幌市中央区北一条西9丁目9番9号"}[item]
            person = f"BI-WRONG-{item}"
            a = net.enrol(Y, person, r["my_number"], **{item: wrong})
            self.assertEqual((a.status, a.error), (409, "basic_info_mismatch"), (item, a))
            got = net.agency_call(Y, "GET", f"/v1/persons/{person}")
            self.assertEqual((got.status, got.json["status"], got.json.get("reason")),
                             (200, "failed", "basic_info_mismatch"), got)
            self.assertEqual(net.sqlite(Y, "SELECT code, acquisition_no FROM persons WHERE person = ?", (person,)),
                             [(None, None)])
            self.assertEqual(net.sqlite(Y, "SELECT count(*) FROM pending WHERE person = ?", (person,))[0][0], 0)
            sent.append((item, r, wrong))
        # the core never heard of them
        self.assertEqual(net.sqlite("core", "SELECT count(*) FROM acquisitions")[0][0], acquisitions)
        # J-LIS logged each lookup with the item that differed, by name
        new = [l for l in self.lookups() if l["seq"] not in before]
        self.assertEqual(sorted(l["mismatched"] for l in new if l["outcome"] == "mismatch"),
                         sorted(item for item, _, _ in sent))
        for l in new:
            self.assertEqual((l["agency"], l["purpose"]), (Y, "link"))
            self.assertRegex(l["acquisition_no"], r"^[0-9a-f]{32}$")
        # no My Number, no value sent, no value of the registry at the agency, its gateway, the core
        values = [w for _, _, w in sent if len(w) > 1]
        for _, r, _ in sent:
            values += [r["my_number"], r["name"], r["address"]]
        self.assert_kept_nowhere(values)
        # nor in J-LIS's log or its lookup log (its registry holds the registry's own values)
        log = net.log("jlis")
        for v in values:
            self.assertNotIn(v, log)
        self.assertNotIn(sent[0][1]["my_number"], str(self.lookups()))

    def test_after_a_mismatch_the_right_items_link(self):
        net = self.net
        r = self.resident()
        a = net.enrol(Y, "BI-FIXED", r["my_number"], birth_date="1999-12-31")
        self.assertEqual((a.status, a.error), (409, "basic_info_mismatch"))
        a = net.enrol(Y, "BI-FIXED", r["my_number"])
        self.assertEqual(a.status, 202, a)
        net.wait_status(Y, "BI-FIXED", "linked")

    def test_another_residents_number_is_refused(self):
        """2023's case: the items of one person with another's My Number."""
        net = self.net
        mine, theirs = self.resident(), self.resident()
        body = net.person_body("BI-MIXED", theirs["my_number"],
                               **{k: mine[k] for k in ("name", "birth_date", "sex", "address")})
        a = net.agency_call(Y, "POST", "/v1/persons", body)
        self.assertEqual((a.status, a.error), (409, "basic_info_mismatch"))

    # ---------- bad input: a stable 400 each, nothing stored ----------
    def test_bad_items_are_refused_each_with_its_code(self):
        net = self.net
        r = self.resident()
        cases = [
            ({"name": None}, "invalid_name"),
            ({"name": ""}, "invalid_name"),
            ({"name": "\u3000 "}, "invalid_name"),
            ({"name": "山田\n太郎"}, "invalid_name"),
            ({"name": "x" * 301}, "invalid_name"),
            ({"birth_date": None}, "invalid_birth_date"),
            ({"birth_date": "1985-02-30"}, "invalid_birth_date"),
            ({"birth_date": "1985/02/03"}, "invalid_birth_date"),
            ({"birth_date": 19850203}, "invalid_birth_date"),
            ({"sex": "3"}, "invalid_sex"),
            ({"sex": ""}, "invalid_sex"),
            ({"sex": 1}, "invalid_sex"),
            ({"address": None}, "invalid_address"),
            ({"address": "東京都\u0007"}, "invalid_address"),
        ]
        for i, (change, code) in enumerate(cases):
            body = net.person_body(f"BI-BAD{i}", r["my_number"], **change)
            for k, v in change.items():
                if v is not None:
                    body[k] = v
            a = net.agency_call(Y, "POST", "/v1/persons", body)
            self.assertEqual((a.status, a.error), (400, code), (change, a))
            self.assertEqual(net.agency_call(Y, "GET", f"/v1/persons/BI-BAD{i}").status, 404)
        # J-LIS checks them too, for any agency node that would not
        a = net.call("jlis", "POST", "/v1/code-requests",
                     {"acquisition_no": "ab" * 16, "my_number": r["my_number"], "birth_date": "1985-01-01",
                      "address": "x"}, as_client=("node", Y))
        self.assertEqual((a.status, a.error), (400, "invalid_name"))

    # ---------- the batch form ----------
    def test_batch_gives_each_person_its_own_outcome(self):
        net = self.net
        good, wrong, bad = self.resident(), self.resident(), self.resident()
        persons = [net.person_body("BIB-OK", good["my_number"]),
                   net.person_body("BIB-WRONG", wrong["my_number"], name="別人　次郎"),
                   net.person_body("BIB-BAD", bad["my_number"], sex="3"),
                   net.person_body("BIB-ADDR", bad["my_number"], address=halfwidth(bad["address"]))]
        a = net.agency_call(Y, "POST", "/v1/persons/batch", {"persons": persons})
        self.assertEqual(a.status, 202, a)
        got = [(x.get("person"), x.get("status") or x["error"]["code"]) for x in a.json["results"]]
        self.assertEqual(got, [("BIB-OK", "pending"), ("BIB-WRONG", "basic_info_mismatch"),
                               ("BIB-BAD", "invalid_sex"), ("BIB-ADDR", "pending")])
        net.wait_status(Y, "BIB-OK", "linked")
        net.wait_status(Y, "BIB-ADDR", "linked")
        self.assertEqual(net.agency_call(Y, "GET", "/v1/persons/BIB-WRONG").json.get("reason"), "basic_info_mismatch")
        self.assertEqual(net.agency_call(Y, "GET", "/v1/persons/BIB-BAD").status, 404)

    # ---------- J-LIS's lookup log ----------
    def test_lookup_log_is_the_operators_alone(self):
        net = self.net
        self.assertEqual(net.call("jlis", "GET", "/v1/lookups", as_client=Y).status, 403)
        a = net.call("jlis", "GET", "/v1/lookups", as_client=("node", Y))
        self.assertEqual(a.status, 403)
        a = net.call("jlis", "GET", "/v1/lookups?limit=1", as_client="operator")
        self.assertEqual(a.status, 200)
        self.assertLessEqual(len(a.json["lookups"]), 1)

    # ---------- recheck ----------
    def test_recheck_reports_mismatches_and_links_nothing(self):
        net = self.net
        a_row, b_row, c_row = self.resident(), self.resident(), self.resident()
        for p, r in (("RC-A", a_row), ("RC-B", b_row)):
            self.assertEqual(net.enrol(K, p, r["my_number"]).status, 202)
            net.wait_status(K, p, "linked")
        before = {l["seq"] for l in self.lookups()}
        csv_path = net.path("recheck.csv")
        out_path = net.path("recheck-out.csv")
        with open(csv_path, "w") as f:
            f.write("person,my_number,name,birth_date,sex,address\n")
            f.write(f"RC-A,{a_row['my_number']},{halfwidth(a_row['name'])},{a_row['birth_date']},"
                    f"{a_row['sex']},{halfwidth(a_row['address'])}\n")
            f.write(f"RC-B,{b_row['my_number']},{b_row['name']},{b_row['birth_date']},{b_row['sex']},"
                    "沖縄県那覇市泉崎9丁目9番9号\n")  # the person moved: the business system's address is not J-LIS's
            f.write(f"RC-C,{c_row['my_number']},{c_row['name']},{c_row['birth_date']},{c_row['sex']},"
                    f"{c_row['address']}\n")  # never linked here
            f.write(f"RC-D,{c_row['my_number']},{c_row['name']},1985-02-30,,x\n")
        p = renkei("agency-ctl", "recheck", "--net", net.dir, "--agency", K, "--csv", csv_path, "--batch", "2",
                   "--out", out_path, check=False)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("mismatch RC-B\n", p.stdout)
        self.assertNotIn("mismatch RC-A", p.stdout)
        self.assertRegex(p.stdout, r"match:\s+1\n")
        self.assertRegex(p.stdout, r"mismatch:\s+1\n")
        self.assertIn("person_not_linked", p.stdout)
        self.assertIn("line 5:", p.stderr)  # the bad row, by line
        with open(out_path) as f:
            self.assertEqual(f.read(), "person,result\nRC-A,match\nRC-B,mismatch\nRC-C,person_not_linked\n")
        self.assertEqual(os.stat(out_path).st_mode & 0o777, 0o600)
        for text in (p.stdout, p.stderr):
            for r in (a_row, b_row, c_row):
                self.assertNotIn(r["my_number"], text)
        # J-LIS logged the two checks; nothing was linked or changed at the agency
        new = [l for l in self.lookups() if l["seq"] not in before]
        self.assertEqual(sorted((l["purpose"], l["outcome"], l.get("mismatched")) for l in new),
                         [("recheck", "match", None), ("recheck", "mismatch", "address")])
        self.assertEqual(net.agency_call(K, "GET", "/v1/persons/RC-B").json["status"], "linked")
        self.assertEqual(net.agency_call(K, "GET", "/v1/persons/RC-C").status, 404)
        self.assert_kept_nowhere([b_row["my_number"], "沖縄県那覇市泉崎9丁目9番9号", b_row["name"]],
                                 nodes=(K, f"{K}-gateway"))
        # all matching: exit 0
        with open(csv_path, "w") as f:
            f.write("person,my_number,name,birth_date,sex,address\n")
            f.write(f"RC-A,{a_row['my_number']},{a_row['name']},{a_row['birth_date']},,{a_row['address']}\n")
        p = renkei("agency-ctl", "recheck", "--net", net.dir, "--agency", K, "--csv", csv_path, check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        # the route's own refusals
        a = net.agency_call(K, "POST", "/v1/persons/recheck", {"persons": []})
        self.assertEqual((a.status, a.error), (400, "invalid_field"))
        a = net.agency_call(K, "POST", "/v1/persons/recheck", {"persons": [net.person_body("RC-A", "123456789017")]})
        self.assertEqual(a.json["results"][0]["error"]["code"], "invalid_my_number")

    def test_agency_ctl_sends_the_items(self):
        net = self.net
        r = self.resident()
        csv_path = net.path("enrol.csv")
        with open(csv_path, "w") as f:
            f.write("person,my_number,name,birth_date,sex,address,note\n")
            f.write(f"CTL-1,{r['my_number']},{r['name']},{r['birth_date']},{r['sex']},\"{r['address']}\",x\n")
            f.write(f"CTL-2,{r['my_number']},別人,{r['birth_date']},{r['sex']},{r['address']},x\n")
            f.write(f"CTL-3,{r['my_number']},{r['name']},{r['birth_date']},9,{r['address']},x\n")
        p = renkei("agency-ctl", "enrol", "--net", net.dir, "--agency", Y, "--csv", csv_path, "--wait", check=False)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertRegex(p.stdout, r"basic_info_mismatch\s+1")
        self.assertRegex(p.stdout, r"invalid_sex\s+1")
        self.assertRegex(p.stdout, r"linked:\s+1")
        r2, r3 = self.resident(), self.resident()
        with open(csv_path, "w") as f:  # the bulk form
            f.write("person,my_number,name,birth_date,sex,address\n")
            f.write(f"CTL-B1,{r2['my_number']},{r2['name']},{r2['birth_date']},{r2['sex']},{r2['address']}\n")
            f.write(f"CTL-B2,{r3['my_number']},{r3['name']},{r3['birth_date']},{r3['sex']},北海道\n")
        p = renkei("agency-ctl", "enrol", "--net", net.dir, "--agency", Y, "--csv", csv_path, "--batch", "2",
                   "--wait", check=False)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertRegex(p.stdout, r"basic_info_mismatch\s+1")
        self.assertRegex(p.stdout, r"linked:\s+1")
        self.assertEqual(net.agency_call(Y, "GET", "/v1/persons/CTL-B2").json.get("reason"), "basic_info_mismatch")
        p = renkei("agency-ctl", "enrol-one", "--net", net.dir, "--agency", Y, "CTL-4", r["my_number"],
                   "--name", r["name"], "--birth-date", "1900-01-01", "--address", r["address"], check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("basic_info_mismatch", p.stdout + p.stderr)
        p = renkei("agency-ctl", "enrol-one", "--net", net.dir, "--agency", Y, "CTL-5", r["my_number"],
                   "--name", r["name"], "--birth-date", r["birth_date"], check=False)
        self.assertEqual(p.returncode, 2)  # no --address
        with open(csv_path, "w") as f:
            f.write("person,my_number\n")
        p = renkei("agency-ctl", "enrol", "--net", net.dir, "--agency", Y, "--csv", csv_path, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("name,birth_date,sex,address", p.stderr)


if __name__ == "__main__":
    main()
