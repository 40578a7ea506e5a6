"""docs/openapi.yaml tells the truth about the nodes' HTTP API:
- every route that a node's route table in src/ registers is an operation of
  openapi.yaml for that node (`x-renkei-nodes`), with the same callers,
  same-agency rule and clock rule, and every documented route is registered;
- every error code the C sources answer with is in its ErrorCode enum, and
  every code of the enum is one the sources know;
- every operation's error answers are the JSON error object; the security is
  mutual TLS;
- real answers of a running network (every role, successes and refusals)
  validate against the schema of their operation and status, and the
  requests that were accepted validate against the request schemas;
- redocly lint (pinned in tools/openapi) finds nothing.
Each comparison also runs once on a description with a difference put in,
which it must find."""
import copy
import glob
import os
import re
import subprocess
import sys
import time
import unittest

try:
    import jsonschema
    import yaml
except ImportError:  # an interpreter of its own (pyenv): Debian's python3-jsonschema and python3-yaml
    sys.path.append("/usr/lib/python3/dist-packages")
    import jsonschema
    import yaml

from harness import SLOW, NetworkTest, main

SRC = os.environ.get("RENKEI_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "../..")
OPENAPI = os.path.join(SRC, "docs", "openapi.yaml")
REDOCLY = os.path.join(SRC, "tools", "openapi", "node_modules", ".bin", "redocly")
ROLE_FILES = {"core": "src/core/core.c", "jlis": "src/jlis/jlis.c", "gateway": "src/gateway/gateway.c",
              "agency": "src/agency/agency.c", "witness": "src/witness/witness.c", "portal": "src/portal/portal.c",
              "ppc": "src/ppc/ppc.c"}
BUILTIN_FILE = "src/net/authz.c"
ROLE_BITS = {"RK_ROLE_CORE": "core", "RK_ROLE_JLIS": "jlis", "RK_ROLE_GATEWAY": "gateway",
             "RK_ROLE_AGENCY": "agency", "RK_ROLE_SYSTEM": "system", "RK_ROLE_OPERATOR": "operator",
             "RK_ROLE_WITNESS": "witness", "RK_ROLE_PORTAL": "portal", "RK_ROLE_PERSON": "person",
             "RK_ROLE_PPC": "ppc", "RK_ROLE_PPC_OPERATOR": "ppc-operator"}
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def read(rel):
    with open(os.path.join(SRC, rel), encoding="utf-8") as f:
        return f.read()


def load_openapi():
    with open(OPENAPI, encoding="utf-8") as f:
        return yaml.safe_load(f)


# ---------- the route tables of the C sources ----------

def split_top(text):
    """Splits a C initialiser's fields at the commas outside parentheses."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "({":
            depth += 1
        elif ch in ")}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def strip_comments(text):
    """C text without its comments; string literals ("/v1/persons/*") kept whole."""
    return re.sub(r'("(?:\\.|[^"\\\n])*")|/\*.*?\*/|//[^\n]*',
                  lambda m: m.group(1) or " ", text, flags=re.S)


def roles_of(expr):
    expr = expr.strip()
    if expr == "RK_ROLES_ANY":
        return {"any"}
    names = {p.strip() for p in expr.split("|")}
    unknown = names - set(ROLE_BITS)
    if unknown:
        raise AssertionError(f"unknown role expression {expr!r}")
    return {ROLE_BITS[n] for n in names}


def route_tables(text):
    """{table name: [(method, path, callers, same_agency, any_clock)]} of every rk_route array in text."""
    text = strip_comments(text)
    tables = {}
    for m in re.finditer(r"static\s+const\s+rk_route\s+(\w+)\s*\[\s*\]\s*=\s*\{(.*?)\};", text, re.S):
        rows = []
        for entry in re.finditer(r"\{([^{}]*)\}", m.group(2)):
            f = split_top(entry.group(1))
            method, path = f[0].strip('"'), f[1].strip('"')
            same = len(f) > 3 and f[3] not in ("0", "")
            any_clock = len(f) > 5 and f[5] not in ("0", "")
            rows.append((method, path, frozenset(roles_of(f[2])), bool(same), bool(any_clock)))
        tables[m.group(1)] = rows
    return tables


def c_routes():
    """{(node, METHOD, path): (callers, same_agency, any_clock)} registered by the sources."""
    routes = {}
    builtin = route_tables(read(BUILTIN_FILE))["builtin"]
    for node, rel in ROLE_FILES.items():
        tables = route_tables(read(rel))
        # 'routes' on the node's url (with /healthz and /metrics), 'person_routes' on a
        # portal's person_url (persons' cards, DESIGN §3); a node may have none of its own
        if not tables or set(tables) - {"routes", "person_routes"}:
            raise AssertionError(f"{rel}: expected the tables 'routes' and/or 'person_routes', found {list(tables)}")
        for method, path, callers, same, clock in tables.get("routes", []) + builtin + tables.get("person_routes", []):
            routes[(node, method, path)] = (callers, same, clock)
    # a route table anywhere else is one this test does not know how to place
    for path in glob.glob(os.path.join(SRC, "src", "**", "*.c"), recursive=True):
        rel = os.path.relpath(path, SRC)
        if rel in ROLE_FILES.values() or rel == BUILTIN_FILE:
            continue
        with open(path, encoding="utf-8") as f:
            if route_tables(f.read()):
                raise AssertionError(f"{rel} has a route table: name its node in test_openapi.py's ROLE_FILES")
    return routes


# ---------- the operations of openapi.yaml ----------

def doc_routes(doc):
    """{(node, METHOD, path): (callers, same_agency, any_clock)} as openapi.yaml documents them."""
    out = {}
    for path, item in doc["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            nodes = op.get("x-renkei-nodes")
            if not nodes:
                raise AssertionError(f"{method.upper()} {path}: no x-renkei-nodes")
            for node, rule in nodes.items():
                out[(node, method.upper(), path)] = (frozenset(rule.get("callers", [])),
                                                     bool(rule.get("same_agency", False)),
                                                     bool(rule.get("any_clock", False)))
    return out


def path_matches(c_path, doc_path):
    """A C path is exact, or ends in '*' (any suffix): then the documented path
    is its prefix followed by path parameters only."""
    if not c_path.endswith("*"):
        return c_path == doc_path
    prefix = c_path[:-1]
    rest = doc_path[len(prefix):]
    # path parameters, and words after the first (/v1/records/{exchange_id}/nondisclosure)
    return doc_path.startswith(prefix) and bool(re.fullmatch(r"\{\w+\}(/(\{\w+\}|[a-z][a-z-]*))*", rest))


def compare_routes(c, d):
    diffs = []
    matched_doc = set()
    for (node, method, cpath), rule in sorted(c.items()):
        hits = [k for k in d if k[0] == node and k[1] == method and path_matches(cpath, k[2])]
        if not hits:
            diffs.append(f"{node} registers {method} {cpath}; openapi.yaml does not document it for {node}")
        for k in hits:
            matched_doc.add(k)
            if d[k] != rule:
                diffs.append(f"{node} {method} {k[2]}: the sources say callers={sorted(rule[0])} "
                             f"same_agency={rule[1]} any_clock={rule[2]}, openapi.yaml says "
                             f"callers={sorted(d[k][0])} same_agency={d[k][1]} any_clock={d[k][2]}")
    for k in sorted(set(d) - matched_doc):
        diffs.append(f"openapi.yaml documents {k[1]} {k[2]} at {k[0]}, which {k[0]} does not register")
    return diffs


# ---------- error codes ----------

def c_error_codes():
    """The codes the sources answer with: a literal after a 4xx/5xx status, and
    the codes of the answers the server writes for libevent (src/net/conns.c)."""
    codes = set()
    for path in glob.glob(os.path.join(SRC, "src", "**", "*.c"), recursive=True):
        if os.sep + "tools" + os.sep in path:
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        codes.update(re.findall(r"\b[45]\d\d,\s*\"([a-z][a-z0-9_]*)\"", text))
        if path.endswith(os.path.join("net", "conns.c")):
            codes.update(re.findall(r"\bcode\s*=\s*\"([a-z][a-z0-9_]*)\"", text))
    return codes


def source_literals():
    found = set()
    for path in glob.glob(os.path.join(SRC, "src", "**", "*.c"), recursive=True):
        with open(path, encoding="utf-8") as f:
            found.update(re.findall(r"\"([a-z][a-z0-9_]*)\"", f.read()))
    return found


def compare_codes(enum, from_c, literals):
    diffs = [f"the sources answer error code {c!r}, which ErrorCode does not list" for c in sorted(from_c - enum)]
    diffs += [f"ErrorCode lists {c!r}, which no source file names" for c in sorted(enum - literals)]
    return diffs


# ---------- schemas ----------

def resolve(doc, node):
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        target = doc
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def validator(doc, schema):
    root = dict(schema)
    root["components"] = doc["components"]  # '#/components/…' resolves inside this root
    cls = jsonschema.Draft202012Validator
    cls.check_schema(root)
    return cls(root)


def error_shape_problems(doc):
    """Operations whose 4xx/5xx JSON answers are not the error object."""
    problems = []
    for path, item in doc["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if not op:
                continue
            statuses = list(op["responses"])
            if not any(s.startswith("2") for s in statuses):
                problems.append(f"{method.upper()} {path}: no 2xx answer")
            for status, resp in op["responses"].items():
                if not status[0] in "45" or op.get("x-renkei-text-errors"):
                    continue  # (a C2SP route answers its errors in text, by its spec: DESIGN §4)
                schema = resolve(doc, resolve(doc, resp).get("content", {}).get("application/json", {}).get("schema"))
                if schema is None:
                    problems.append(f"{method.upper()} {path} {status}: no JSON schema")
                    continue
                shapes = [resolve(doc, s) for s in schema.get("oneOf", [schema])]
                errs = [s for s in shapes if resolve(doc, s.get("properties", {}).get("error")) ==
                        doc["components"]["schemas"]["EntryError"] and "error" in s.get("required", [])]
                if not errs:
                    problems.append(f"{method.upper()} {path} {status}: not the error object")
    return problems


def find_operation(doc, method, path):
    """(doc path, operation) for a real request path (without the query)."""
    for doc_path, item in doc["paths"].items():
        pattern = "^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(doc_path)) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return doc_path, item[method.lower()]
    return None, None


class Description(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.doc = load_openapi()

    def test_it_is_openapi_3_1_with_mutual_tls(self):
        self.assertTrue(self.doc["openapi"].startswith("3.1"))
        self.assertEqual(self.doc["security"], [{"mutualTLS": []}])
        self.assertEqual(self.doc["components"]["securitySchemes"]["mutualTLS"]["type"], "mutualTLS")
        err = self.doc["components"]["schemas"]["Error"]
        v = validator(self.doc, err)
        v.validate({"error": {"code": "not_found", "message": "no such endpoint"}})
        with self.assertRaises(jsonschema.ValidationError):
            v.validate({"error": {"code": "no_such_code", "message": "x"}})
        with self.assertRaises(jsonschema.ValidationError):
            v.validate({"error": "not_found"})

    def test_the_route_tables_are_read(self):
        c = c_routes()
        self.assertGreaterEqual(len(c), 40)
        self.assertEqual(c[("agency", "GET", "/v1/persons/*")], (frozenset({"system"}), True, False))
        self.assertEqual(c[("core", "POST", "/v1/incidents")],
                         (frozenset({"gateway", "jlis", "operator", "witness", "portal", "ppc"}), False, True))
        self.assertEqual(c[("ppc", "PUT", "/v1/pia/*")], (frozenset({"ppc-operator"}), False, False))
        self.assertEqual(c[("portal", "GET", "/v1/me/exchanges")], (frozenset({"person"}), False, False))
        self.assertEqual(c[("portal", "GET", "/healthz")], (frozenset({"any"}), False, False))
        self.assertEqual(c[("jlis", "GET", "/healthz")], (frozenset({"any"}), False, False))

    def test_every_route_is_documented_and_every_documented_route_exists(self):
        diffs = compare_routes(c_routes(), doc_routes(self.doc))
        self.assertEqual(diffs, [], "\n".join(diffs))

    def test_a_route_difference_is_found(self):
        c = c_routes()
        doc = copy.deepcopy(self.doc)
        del doc["paths"]["/v1/unlawful"]
        doc["paths"]["/v1/codes"]["post"]["x-renkei-nodes"]["core"]["callers"] = ["jlis", "operator"]
        doc["paths"]["/v1/records/heads"]["get"]["x-renkei-nodes"]["jlis"] = {"callers": ["operator"]}
        diffs = compare_routes(c, doc_routes(doc))
        self.assertIn("agency registers POST /v1/unlawful; openapi.yaml does not document it for agency", diffs)
        self.assertIn("openapi.yaml documents GET /v1/records/heads at jlis, which jlis does not register", diffs)
        self.assertTrue(any(d.startswith("core POST /v1/codes: the sources say callers=['jlis']") for d in diffs),
                        diffs)
        self.assertEqual(len(diffs), 3, diffs)

    def test_every_error_code_of_the_sources_is_in_the_enum_and_back(self):
        enum = set(self.doc["components"]["schemas"]["ErrorCode"]["enum"])
        from_c = c_error_codes()
        self.assertGreaterEqual(from_c, {"not_found", "bad_request", "headers_too_large", "not_permitted"})
        diffs = compare_codes(enum, from_c, source_literals())
        self.assertEqual(diffs, [], "\n".join(diffs))
        self.assertEqual(compare_codes(enum - {"too_large"} | {"gone_away"}, from_c, source_literals()),
                         ["the sources answer error code 'too_large', which ErrorCode does not list",
                          "ErrorCode lists 'gone_away', which no source file names"])

    def test_every_error_answer_is_the_error_object(self):
        problems = error_shape_problems(self.doc)
        self.assertEqual(problems, [], "\n".join(problems))
        doc = copy.deepcopy(self.doc)
        doc["paths"]["/v1/persons"]["post"]["responses"]["418"] = {
            "description": "x", "content": {"application/json": {"schema": {"type": "object"}}}}
        self.assertEqual(error_shape_problems(doc), ["POST /v1/persons 418: not the error object"])

    @unittest.skipUnless(os.path.exists(REDOCLY), "@redocly/cli not installed (scripts/install-openapi-tools.sh)")
    def test_redocly_lint_finds_nothing(self):
        p = subprocess.run([REDOCLY, "lint", "--config", os.path.join(SRC, "tools", "openapi", "redocly.yaml"),
                            OPENAPI], capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("valid", p.stdout + p.stderr)


Y, K = "city-yokohama", "pref-kanagawa"


class RealAnswers(NetworkTest):
    """Calls every kind of node as its callers would and validates each answer."""
    AGENCIES = 3
    PERSONS = 10

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.doc = load_openapi()
        cls.checked = []

    def check(self, node_id, method, path, body=None, as_client=None, want=None, example=True):
        """Calls, checks the status (want) and validates the answer; a body the node
        took whole (2xx, no entry refused) is validated against the request schema,
        unless example=False (a batch some of whose entries are bad on purpose)."""
        a = self.net.call(node_id, method, path, body, as_client=as_client)
        node = self.net.nodes[node_id]["role"]
        if want is not None:
            self.assertEqual(a.status, want, (node, method, path, a))
        bare = path.split("?", 1)[0]
        doc_path, op = find_operation(self.doc, method, bare)
        if op is None:  # a refusal before any route: the error object
            self.assertGreaterEqual(a.status, 400, (method, path, a))
            schema = {"$ref": "#/components/schemas/Error"}
        else:
            self.assertIn(node, op["x-renkei-nodes"], f"{method} {doc_path} is not documented at {node}")
            resp = op["responses"].get(str(a.status))
            self.assertIsNotNone(resp, f"{node} {method} {path} answered {a.status}, not documented: {a}")
            resp = resolve(self.doc, resp)
            content = resp["content"]
            if "application/json" not in content:
                self.assertIn(a.headers.get("Content-Type", "").split(";")[0], content)
                self.checked.append((node, method, path, a.status))
                return a
            schema = content["application/json"]["schema"]
            entry_errors = isinstance(a.json, dict) and any(
                isinstance(r, dict) and "error" in r for r in a.json.get("results", []))
            if example and body is not None and 200 <= a.status < 300 and not entry_errors:
                # a request the node took whole is an example of its request schema
                validator(self.doc, op["requestBody"]["content"]["application/json"]["schema"]).validate(body)
        self.assertIsNotNone(a.json, (node, method, path, a))
        try:
            validator(self.doc, schema).validate(a.json)
        except jsonschema.ValidationError as e:
            self.fail(f"{node} {method} {path} {a.status}: {e.message} in {a.raw[:500]}")
        self.checked.append((node, method, path, a.status))
        return a

    def test_answers_validate_against_the_schemas(self):
        net = self.net
        res = net.residents()
        op = "operator"
        gw_y, gw_k = f"{Y}-gateway", f"{K}-gateway"
        # every node: health and metrics
        for n in net.server_nodes():
            self.check(n["id"], "GET", "/healthz", as_client=op, want=200)
            self.check(n["id"], "GET", "/metrics", as_client=op, want=200)
        # the business API of an agency node
        body = net.person_body
        self.check(Y, "POST", "/v1/persons", body("Y1", res[0]["my_number"]), as_client=Y, want=202)
        self.check(K, "POST", "/v1/persons", body("K1", res[0]["my_number"]), as_client=K, want=202)
        self.check(Y, "POST", "/v1/persons/batch", {"persons": [
            body("Y2", res[1]["my_number"]), body("Y3", "123456789017"), body(3, res[2]["my_number"]),
            body("Y4", res[3]["my_number"], name="別人 次郎")]},
            as_client=Y, want=202)
        self.check(Y, "POST", "/v1/persons", body("Y9", "123456789017"), as_client=Y, want=400)
        self.check(Y, "POST", "/v1/persons", body("Y9", res[4]["my_number"], sex="3"), as_client=Y, want=400)
        self.check(Y, "POST", "/v1/persons", body("Y8", res[5]["my_number"], birth_date="1900-01-01"),
                   as_client=Y, want=409)
        net.wait_status(Y, "Y1", "linked")
        net.wait_status(K, "K1", "linked")
        self.check(Y, "GET", "/v1/persons/Y8", as_client=Y, want=200)  # failed: basic_info_mismatch
        self.check(Y, "POST", "/v1/persons/recheck", {"persons": [
            body("Y1", res[0]["my_number"]), body("Y1", res[0]["my_number"], address="北海道"),
            body("Y8", res[5]["my_number"]), body("Y7", "123456789017")]},
            as_client=Y, want=200, example=False)
        self.check(Y, "POST", "/v1/persons/recheck", {"persons": [body("Y1", res[0]["my_number"])]},
                   as_client=Y, want=200)
        self.check(Y, "POST", "/v1/persons/recheck", {"persons": []}, as_client=Y, want=400)
        self.check(Y, "GET", "/v1/persons/Y1", as_client=Y, want=200)
        self.check(Y, "GET", "/v1/persons/nobody", as_client=Y, want=404)
        self.check(Y, "PUT", "/v1/data/Y1/local_tax", {"value": {"tax": 120000}, "as_of": "2026-06-01"},
                   as_client=Y, want=200)
        q = {"query_id": "oa-1", "person": "K1", "business": "public_assistance", "provider": Y,
             "item": "local_tax", "operator": "op-1"}
        provided = self.check(K, "POST", "/v1/queries", q, as_client=K, want=200)
        self.assertEqual(provided.json["status"], "provided")
        self.check(K, "POST", "/v1/queries", dict(q, query_id="oa-2", item="child_allowance"), as_client=K, want=200)
        self.check(Y, "POST", "/v1/queries", {"query_id": "oa-3", "person": "Y1", "business": "national_pension",
                                              "provider": K, "item": "child_allowance", "operator": "op-1"},
                   as_client=Y, want=403)
        self.check(K, "POST", "/v1/queries", dict(q, query_id="oa-4", item="local tax"), as_client=K, want=400)
        self.check(K, "POST", "/v1/queries", dict(q, operator="op-2"), as_client=K, want=409)
        # batch queries (一括照会)
        batch = {"batch_id": "oa-b", "queries": [dict(q, query_id="oa-b1"), dict(q, query_id="oa-b2",
                                                                                  item="child_allowance")]}
        self.check(K, "POST", "/v1/queries/batch", batch, as_client=K, want=202)
        self.check(K, "POST", "/v1/queries/batch", {"batch_id": "oa-b0", "queries": []}, as_client=K, want=400)
        self.check(K, "POST", "/v1/queries/batch", dict(batch, queries=batch["queries"][:1]), as_client=K, want=409)
        deadline = time.time() + 60 * SLOW
        while net.agency_call(K, "GET", "/v1/queries/batch/oa-b").json["pending"] and time.time() < deadline:
            time.sleep(0.05)
        self.check(K, "GET", "/v1/queries/batch/oa-b?limit=10", as_client=K, want=200)
        self.check(K, "GET", "/v1/queries/batch/oa-nothing", as_client=K, want=404)
        self.check(K, "GET", "/v1/queries/oa-b1", as_client=K, want=200)
        self.check(K, "GET", "/v1/queries/oa-nothing", as_client=K, want=404)
        self.check(Y, "GET", "/v1/queries/oa-3", as_client=Y, want=403)  # the refusal it settled with
        # records, proofs and heads
        xid = provided.json["exchange_id"]
        self.check("core", "GET", "/v1/records?limit=5", as_client=op, want=200)
        self.check(Y, "GET", f"/v1/records?exchange_id={xid}", as_client=Y, want=200)
        self.check(gw_y, "GET", "/v1/records?limit=3", as_client=op, want=200)
        self.check("jlis", "GET", "/v1/records", as_client=op, want=200)
        self.check("jlis", "GET", "/v1/lookups?limit=20", as_client=op, want=200)
        self.check("jlis", "GET", "/v1/lookups?limit=0", as_client=op, want=400)
        self.check("core", "GET", "/v1/records?limit=0", as_client=op, want=400)
        self.check("core", "GET", f"/v1/records/proof?exchange_id={xid}", as_client=op, want=200)
        self.check(K, "GET", f"/v1/records/proof?exchange_id={xid}", as_client=K, want=200)
        self.check("core", "GET", "/v1/records/proof?exchange_id=nobody.0", as_client=op, want=404)
        self.check("core", "GET", "/v1/records/consistency?from=1&to=1", as_client=op, want=200)
        self.check("core", "GET", "/v1/records/heads", as_client=op, want=200)
        self.check(Y, "GET", "/v1/records/heads", as_client=Y, want=200)
        # the PIA register (法28条)
        pia = {"state": "published", "evaluated_on": "2026-04-01"}
        self.check("ppc", "PUT", f"/v1/pia/{Y}/public_assistance", pia, as_client="ppc", want=200)
        self.check("ppc", "PUT", f"/v1/pia/{Y}/public_assistance", dict(pia, state="gone"), as_client="ppc", want=400)
        self.check("ppc", "PUT", "/v1/pia/nobody/public_assistance", pia, as_client="ppc", want=404)
        self.check("ppc", "PUT", f"/v1/pia/{Y}/public_assistance", pia, as_client=op, want=403)
        self.check("ppc", "GET", "/v1/pia?since=0&limit=3", as_client=("node", "core"), want=200)
        self.check("ppc", "GET", "/v1/pia?since=x", as_client=("node", "core"), want=400)
        # incidents
        self.check("core", "POST", "/v1/incidents", {"incident_id": "oa-leak-1", "kind": "leak", "summary": "a test"},
                   as_client=op, want=200)
        self.check("core", "POST", "/v1/incidents", {"incident_id": "oa-leak-2", "kind": "spill", "summary": "x"},
                   as_client=op, want=400)
        self.check("core", "GET", "/v1/incidents", as_client=op, want=200)
        self.check(gw_y, "POST", "/v1/incidents", {"incident_id": "oa-out-1", "kind": "outage", "summary": "a test"},
                   as_client=("node", Y), want=200)
        # unlawful request at the requester
        self.check(K, "POST", "/v1/unlawful", {"exchange_id": xid, "kind": "unlawful_request", "reason": "a test"},
                   as_client=f"{K}-operator", want=200)
        self.check(K, "POST", "/v1/unlawful", {"exchange_id": xid, "kind": "unlawful_request", "reason": "a test"},
                   as_client=op, want=403)
        # node-to-node routes, called as the calling node
        self.check("jlis", "POST", "/v1/code-requests", {"acquisition_no": "ab" * 16, "my_number": "123456789017"},
                   as_client=("node", Y), want=400)
        items = net.basic_items(res[6]["my_number"])
        self.check("jlis", "POST", "/v1/code-requests",
                   dict(items, acquisition_no="ab" * 16, my_number=res[6]["my_number"], name="別人"),
                   as_client=("node", Y), want=409)
        self.check("jlis", "POST", "/v1/code-requests/batch", {"requests": [
            {"acquisition_no": "cd" * 16, "my_number": "123456789017"}, {"acquisition_no": 7}]},
            as_client=("node", Y), want=200)
        self.check("jlis", "POST", "/v1/basic-info-checks", {"checks": [
            dict(items, check_no="ef" * 16, my_number=res[6]["my_number"]),
            dict(items, check_no="ee" * 16, my_number=res[6]["my_number"], birth_date="1901-01-01")]},
            as_client=("node", Y), want=200)
        self.check("jlis", "POST", "/v1/basic-info-checks", {"checks": [{"check_no": "x"}]},
                   as_client=("node", Y), want=200, example=False)
        self.check("core", "POST", "/v1/codes", {"agency": Y}, as_client=("node", "jlis"), want=400)
        self.check("core", "POST", "/v1/codes/batch", {"codes": [{"agency": Y}]}, as_client=("node", "jlis"), want=200)
        notice = {"acquisition_no": "ef" * 16, "code": "v1-" + "0" * 32, "check_code": 3}
        self.check(Y, "POST", "/v1/code-notices", notice, as_client=("node", gw_y), want=404)
        self.check(gw_y, "POST", "/v1/code-notices/batch", {"notices": [notice, {"acquisition_no": 5}]},
                   as_client=("node", "core"), want=200, example=False)
        self.check(Y, "POST", "/v1/provisions", {"exchange_id": "oa"}, as_client=("node", gw_y), want=400)
        with open(net.path("nodes", K, "cert.pem")) as f:
            k_cert = f.read()
        unknown = {"exchange_id": f"{K}.oa-xb", "code": "v1-" + "0" * 32, "business": "public_assistance",
                   "provider": Y, "item": "local_tax", "operator": "op-1", "requester_cert": k_cert}
        self.check("core", "POST", "/v1/exchanges/batch", {"exchanges": [unknown]}, as_client=("node", gw_k), want=200)
        self.check("core", "POST", "/v1/exchanges/batch", {"exchanges": [{"exchange_id": "oa"}]},
                   as_client=("node", gw_k), want=400)
        self.check(gw_k, "POST", "/v1/exchanges/batch", {"exchanges": [{"exchange_id": "oa"}]}, as_client=("node", K),
                   want=400)
        provision = {"exchange_id": f"{K}.oa-pb", "code": "v1-" + "0" * 32, "business": "public_assistance",
                     "requester": K, "item": "local_tax", "operator": "op-1", "requester_cert": k_cert}
        self.check(Y, "POST", "/v1/provisions/batch", {"provisions": [provision]}, as_client=("node", gw_y), want=200)
        self.check(gw_y, "POST", "/v1/provisions/batch", {"provisions": [{"exchange_id": "oa"}]},
                   as_client=("node", "core"), want=400)
        self.check("core", "POST", "/v1/exchanges", {"exchange_id": "oa"}, as_client=("node", gw_k), want=400)
        self.check(gw_k, "POST", "/v1/exchanges", {"exchange_id": "oa"}, as_client=("node", K), want=400)
        self.check("core", "POST", "/v1/deletion-requests", {"exchange_id": xid, "reason": "a test"},
                   as_client=("node", gw_k), want=404)
        self.check(K, "POST", "/v1/deletions", {"exchange_id": "x"}, as_client=("node", gw_k), want=400)
        # persons (DESIGN §2.5): J-LIS and the core for the portal, the marking of a record
        portal = ("node", "portal")
        serial, card = net.issue_card(1)
        self.check("jlis", "POST", "/v1/card-lookups", {"card_serial": serial}, as_client=portal, want=200)
        self.check("jlis", "POST", "/v1/card-lookups", {"card_serial": "0" * 32}, as_client=portal, want=404)
        self.check("jlis", "POST", "/v1/card-lookups", {"card_serial": "x"}, as_client=portal, want=400)
        self.check("jlis", "GET", "/v1/card-crl", as_client=portal, want=200)
        self.check("core", "POST", "/v1/persons/exchanges", {"resident_code": res[0]["resident_code"], "limit": 5},
                   as_client=portal, want=200)
        self.check("core", "POST", "/v1/persons/exchanges", {"resident_code": "1"}, as_client=portal, want=400)
        self.check(Y, "POST", f"/v1/records/{xid}/nondisclosure", {"basis": "個人情報保護法78条1項7号",
                                                                  "operator": "op-9", "until": "2099-12-31"},
                   as_client=f"{Y}-operator", want=200)
        self.check(Y, "POST", "/v1/records/nobody.1/nondisclosure", {"basis": "b", "operator": "op-9"},
                   as_client=f"{Y}-operator", want=404)
        self.check(Y, "POST", f"/v1/records/{xid}/nondisclosure", {"basis": "b"}, as_client=f"{Y}-operator", want=400)
        self.check("core", "POST", "/v1/nondisclosures", {"exchange_id": xid, "basis": "b", "operator": "o"},
                   as_client=("node", gw_k), want=200)  # K requested it
        # the portal's person routes, as a person's browser calls them
        for path, want in (("/", 200), ("/portal.js", 200), ("/portal.css", 200), ("/v1/me/keys", 200),
                           ("/v1/me/exchanges", 200), ("/v1/me/exchanges?limit=0", 400)):
            self.check_person(card, path, want)
        # refusals before any handler
        self.check("core", "GET", "/v1/nothing-here", as_client=op, want=404)
        self.check(Y, "GET", "/v1/persons", as_client=Y, want=405)
        self.check("core", "POST", "/v1/codes", {}, as_client=op, want=403)
        self.check(Y, "GET", "/v1/persons/Y1", as_client=K, want=403)
        a = self.net.call(Y, "POST", "/v1/persons", raw="{not json", as_client=Y)
        self.assertEqual((a.status, a.error), (400, "invalid_json"))
        validator(self.doc, {"$ref": "#/components/schemas/Error"}).validate(a.json)
        statuses = {s for *_, s in self.checked}
        self.assertGreaterEqual(statuses, {200, 202, 400, 403, 404, 405})
        self.assertGreaterEqual(len(self.checked), 50)

    def check_person(self, card, path, want):
        """A person route, called with a card, its answer checked as check() does."""
        a = self.net.person_call(card, "GET", path)
        self.assertEqual(a.status, want, (path, a))
        doc_path, op = find_operation(self.doc, "GET", path.split("?", 1)[0])
        self.assertIsNotNone(op, path)
        self.assertIn("portal", op["x-renkei-nodes"], path)
        resp = resolve(self.doc, op["responses"][str(a.status)])
        ctype = a.headers.get("Content-Type", "").split(";")[0]
        self.assertIn(ctype, resp["content"], (path, ctype))
        if ctype == "application/json":
            validator(self.doc, resp["content"][ctype]["schema"]).validate(a.json)
        self.checked.append(("portal", "GET", path, a.status))

    def test_a_wrong_schema_fails(self):
        a = self.net.call("core", "GET", "/healthz", as_client="operator")
        doc = copy.deepcopy(self.doc)
        health = doc["components"]["schemas"]["Health"]
        health["properties"]["status"] = {"enum": ["healthy"]}
        with self.assertRaises(jsonschema.ValidationError):
            validator(doc, doc["paths"]["/healthz"]["get"]["responses"]["200"]["content"]["application/json"]
                      ["schema"]).validate(a.json)


if __name__ == "__main__":
    main()
