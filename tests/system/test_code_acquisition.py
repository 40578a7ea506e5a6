"""Code acquisition end to end (DESIGN §2.1, standard 第7-2, 第8-2(1)):
agency → J-LIS → core → gateway → agency, with every refusal leaving
nothing stored."""
import csv
import os
import time

from harness import SLOW, NetworkTest, main


def unknown_valid_number(residents):
    """A valid My Number that no resident has."""
    known = {r["my_number"] for r in residents}
    from itertools import count
    for i in count(10**10):
        first11 = f"{i:011d}"
        s = sum(int(first11[11 - n]) * (n + 1 if n <= 6 else n - 5) for n in range(1, 12))
        r = s % 11
        n = first11 + str(0 if r <= 1 else 11 - r)
        if n not in known:
            return n


class CodeAcquisition(NetworkTest):
    def test_enrol_links_persons_at_every_agency(self):
        net = self.net
        residents = net.residents()
        for i, agency in enumerate(net.agencies()):
            a = net.enrol(agency["agency"], f"P{i}-1", residents[i]["my_number"])
            self.assertEqual(a.status, 202, a)
            self.assertEqual(a.json["person"], f"P{i}-1")
            self.assertIn(a.json["status"], ("pending", "linked"))
        for i, agency in enumerate(net.agencies()):
            net.wait_status(agency["agency"], f"P{i}-1", "linked")

    def test_same_person_gets_unlinkable_codes_per_agency(self):
        net = self.net
        number = net.residents()[5]["my_number"]
        agencies = [a["agency"] for a in net.agencies()]
        for ag in agencies:
            self.assertEqual(net.enrol(ag, "SAME", number).status, 202)
        codes = []
        for ag in agencies:
            net.wait_status(ag, "SAME", "linked")
            (code,), = net.sqlite(ag, "SELECT code FROM persons WHERE person = 'SAME'")
            codes.append(code)
        self.assertEqual(len(set(codes)), len(codes), codes)
        for c in codes:
            self.assertRegex(c, r"^v1-[0-9a-f]{32}$")
        # One person at the core, whatever the number of agencies.
        serials = net.sqlite("core", "SELECT DISTINCT serial FROM acquisitions WHERE agency IN (%s)"
                             % ",".join("?" * len(agencies)), agencies)
        self.assertGreaterEqual(len(serials), 1)

    def test_repeat_gives_first_answer_without_second_effect(self):
        net = self.net
        ag = net.agencies()[0]["agency"]
        number = net.residents()[7]["my_number"]
        self.assertEqual(net.enrol(ag, "REPEAT", number).status, 202)
        net.wait_status(ag, "REPEAT", "linked")
        before = net.sqlite("core", "SELECT count(*) FROM acquisitions")[0][0]
        again = net.enrol(ag, "REPEAT", number)
        self.assertEqual((again.status, again.json["status"]), (202, "linked"))
        self.assertEqual(net.sqlite("core", "SELECT count(*) FROM acquisitions")[0][0], before)

    def test_one_person_under_two_ids_is_refused_not_retried(self):
        net = self.net
        ag = net.agencies()[2]["agency"]
        number = net.residents()[25]["my_number"]
        self.assertEqual(net.enrol(ag, "TWICE-A", number).status, 202)
        net.wait_status(ag, "TWICE-A", "linked")
        self.assertEqual(net.enrol(ag, "TWICE-B", number).status, 202)
        net.wait_status(ag, "TWICE-B", "failed")
        deadline = time.time() + 10 * SLOW
        closed = 0
        while time.time() < deadline and not closed:
            closed = net.sqlite("core", "SELECT count(*) FROM outbox WHERE agency = ?"
                                " AND outcome = 'code_already_linked'", (ag,))[0][0]
            time.sleep(0.05)
        self.assertEqual(closed, 1)
        self.assertEqual(net.sqlite("core", "SELECT count(*) FROM outbox WHERE agency = ? AND done_ms IS NULL",
                                    (ag,))[0][0], 0)  # nothing left retrying

    def test_bulk_enrolment_answers_each_person(self):
        net = self.net
        ag = net.agencies()[0]["agency"]
        rows = net.residents()
        self.assertEqual(net.enrol(ag, "BULK-OLD", rows[26]["my_number"]).status, 202)
        persons = [net.person_body(f"BULK-{i}", rows[27 + i]["my_number"]) for i in range(3)]
        persons += [net.person_body("BULK-BAD", "123456789017"),
                    net.person_body("BULK-NOBODY", unknown_valid_number(rows)),
                    net.person_body("bad id!", rows[2]["my_number"]),
                    net.person_body("BULK-OLD", rows[26]["my_number"])]
        a = net.agency_call(ag, "POST", "/v1/persons/batch", {"persons": persons})
        self.assertEqual(a.status, 202, a)
        got = [(r.get("person"), r.get("status") or r["error"]["code"]) for r in a.json["results"]]
        self.assertEqual(got[:3], [(f"BULK-{i}", "pending") for i in range(3)])
        self.assertEqual(got[3], ("BULK-BAD", "invalid_my_number"))
        self.assertEqual(got[4], ("BULK-NOBODY", "unknown_person"))
        self.assertEqual(got[5], ("bad id!", "invalid_field"))
        self.assertIn(got[6], [("BULK-OLD", "pending"), ("BULK-OLD", "linked")])  # the first answer again
        for i in range(3):
            net.wait_status(ag, f"BULK-{i}", "linked")
        for p in ("BULK-BAD", "BULK-NOBODY"):
            self.assertEqual(net.agency_call(ag, "GET", f"/v1/persons/{p}").status, 404)  # nothing stored
        too_many = {"persons": [{"person": f"X{i}", "my_number": "123456789018"} for i in range(1001)]}
        a = net.agency_call(ag, "POST", "/v1/persons/batch", too_many)
        self.assertEqual((a.status, a.error), (400, "invalid_field"))

    def test_agency_never_stores_or_logs_a_my_number(self):
        net = self.net
        ag = net.agencies()[1]["agency"]
        numbers = [r["my_number"] for r in net.residents()[10:14]]
        for i, n in enumerate(numbers):
            self.assertEqual(net.enrol(ag, f"NOLEAK{i}", n).status, 202)
        for i in range(len(numbers)):
            net.wait_status(ag, f"NOLEAK{i}", "linked")
        for node_id in (ag, f"{ag}-gateway", "core"):
            for name in os.listdir(net.path("nodes", node_id)):
                with open(net.path("nodes", node_id, name), "rb") as f:
                    data = f.read()
                for n in numbers:
                    self.assertNotIn(n.encode(), data, f"{node_id}/{name} holds a My Number")

    def test_invalid_my_number_is_refused_and_nothing_stored(self):
        net = self.net
        ag = net.agencies()[0]["agency"]
        a = net.enrol(ag, "BADNUM", "123456789017")
        self.assertEqual((a.status, a.error), (400, "invalid_my_number"))
        self.assertEqual(net.agency_call(ag, "GET", "/v1/persons/BADNUM").status, 404)

    def test_unknown_resident_is_refused_and_nothing_stored(self):
        net = self.net
        ag = net.agencies()[0]["agency"]
        a = net.enrol(ag, "NOBODY", unknown_valid_number(net.residents()))
        self.assertEqual((a.status, a.error), (404, "unknown_person"), a)
        self.assertEqual(net.agency_call(ag, "GET", "/v1/persons/NOBODY").status, 404)

    def test_malformed_bodies(self):
        net = self.net
        ag = net.agencies()[0]["agency"]
        a = net.agency_call(ag, "POST", "/v1/persons", raw="{not json")
        self.assertEqual((a.status, a.error), (400, "invalid_json"))
        a = net.agency_call(ag, "POST", "/v1/persons", raw="[1,2]")
        self.assertEqual((a.status, a.error), (400, "invalid_json"))
        a = net.agency_call(ag, "POST", "/v1/persons", {"person": "X"})
        self.assertEqual((a.status, a.error), (400, "invalid_field"))
        self.assertIn("my_number", a.json["error"]["message"])
        a = net.agency_call(ag, "POST", "/v1/persons", {"person": "bad id!", "my_number": "123456789018"})
        self.assertEqual((a.status, a.error), (400, "invalid_field"))
        self.assertIn("person", a.json["error"]["message"])
        a = net.agency_call(ag, "POST", "/v1/persons", raw='{"person":"A","person":"B","my_number":"123456789018"}')
        self.assertEqual((a.status, a.error), (400, "invalid_json"))
        self.assertEqual(net.sqlite(ag, "SELECT count(*) FROM persons WHERE person IN ('X','A','B')")[0][0], 0)

    def test_body_over_cap_is_413(self):
        net = self.net
        ag = net.agencies()[0]["agency"]
        over = '{"person":"BIG","my_number":"' + "1" * (3 << 19) + '"}'   # 1.5 MiB, cap 1 MiB
        a = net.agency_call(ag, "POST", "/v1/persons", raw=over)
        self.assertEqual((a.status, a.error), (413, "too_large"))
        far_over = '{"person":"BIG","my_number":"' + "1" * (3 << 20) + '"}'  # past the hard cap
        self.assertEqual(net.agency_call(ag, "POST", "/v1/persons", raw=far_over).status, 413)
        self.assertEqual(net.agency_call(ag, "GET", "/v1/persons/BIG").status, 404)

    def test_unknown_endpoint_and_method(self):
        net = self.net
        ag = net.agencies()[0]["agency"]
        self.assertEqual(net.agency_call(ag, "GET", "/v1/nothing").error, "not_found")
        self.assertEqual(net.agency_call(ag, "PUT", "/v1/persons", {}).error, "method_not_allowed")

    def test_person_with_changed_resident_code_keeps_one_identity(self):
        """A resident whose 住民票コード changed between two acquisitions is one person at the core."""
        net = self.net
        ags = [a["agency"] for a in net.agencies()]
        rows = net.residents()
        target = rows[20]
        self.assertEqual(net.enrol(ags[0], "MOVER", target["my_number"]).status, 202)
        net.wait_status(ags[0], "MOVER", "linked")
        # J-LIS records a new resident code; the old one goes into the history.
        new_code = "9" + target["resident_code"][1:]
        if new_code == target["resident_code"]:
            new_code = "8" + target["resident_code"][1:]
        with open(net.path("residents.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
            w.writeheader()
            for r in rows:
                if r is target:
                    prev = ";".join(filter(None, [r["previous_resident_codes"], r["resident_code"]]))
                    r = dict(r, resident_code=new_code, previous_resident_codes=prev)
                w.writerow(r)
        net.stop_node("jlis")
        net.start_node("jlis")
        self.assertEqual(net.enrol(ags[1], "MOVER", target["my_number"]).status, 202)
        net.wait_status(ags[1], "MOVER", "linked")
        serials = net.sqlite("core", "SELECT DISTINCT a.serial FROM acquisitions a "
                             "JOIN resident_codes r ON r.serial = a.serial WHERE r.resident_code IN (?, ?)",
                             (target["resident_code"], new_code))
        self.assertEqual(len(serials), 1, serials)


if __name__ == "__main__":
    main()
