#!/usr/bin/env python3
"""crash.py — the crash-kill suite: nothing acknowledged is lost or doubled
when nodes die at random under load (DESIGN §3 ids, §6 durability; issue 16).

A network from `renkei net init` (tests/system/harness.py) is loaded by
client threads with enrolments (POST /v1/persons and /v1/persons/batch),
data updates (PUT /v1/data/{person}/{item} with a request_id) and queries
(POST /v1/queries). Meanwhile a node of a random role — core, J-LIS, a
gateway, an agency node — is SIGKILLed at a random moment and restarted,
for N rounds; on PostgreSQL the database server is a role too (stopped in
immediate mode, a crash: recovery at the next start). With --ha the
database is a primary and a synchronous standby under Patroni with etcd
(`net init --ha`, DESIGN §6; cluster.py runs the daemons) and two roles
join: `database` SIGKILLs the current primary's postmaster (Patroni promotes
the standby; the round ends when the old primary is back as the synchronous
standby and every node is healthy, so that no database kill finds the
cluster without a standby), and `patroni` SIGKILLs the Patroni daemon of a
member (at times the leader's, left dead until the other member has taken
over while the old primary's PostgreSQL still runs: --patroni-failover) and
starts it again.
A request that
got no answer, or a 5xx/429 that says nothing was settled, is sent again
with the same id, as a business system would, until it is answered.

Then, the network settled, it checks:
- every acknowledged (2xx) enrolment ends `linked`, or `failed` with a
  reason; the core holds one acquisition per enrolled person and agency;
- every acknowledged value is stored once, with the version acknowledged;
- every acknowledged exchange is recorded once at the core, the requester
  and the provider, and a provided value once at the requester; no exchange,
  acknowledged or not, is recorded twice anywhere;
- a sample of acknowledged requests sent again with the same id answers the
  same and changes nothing;
- `renkei records verify DIR` passes.
It prints kills per role, acknowledged operations, lost, doubled and the
longest recovery (restart to healthy), and exits 1 when anything was lost
or doubled, answered differently, left unanswered, or verify failed.

    crash.py --rounds 30 [--seed S] [--threads T] [--agencies A]
    RENKEI_TEST_STORE=postgres crash.py --rounds 30
    crash.py --ha --rounds 30           (PostgreSQL under Patroni)
"""
import argparse
import collections
import csv
import hashlib
import http.client
import json
import os
import random
import shutil
import ssl
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "system"))
from harness import SLOW, STORE, Network, renkei  # noqa: E402
from cluster import HaCluster  # noqa: E402

# Errors that say the request was not settled: the same id may be sent again.
TRANSIENT = {"store_error", "store_unavailable", "internal", "overloaded", "core_unavailable", "jlis_unavailable", "rate_limited",
             "upstream_unavailable", "upstream_timeout", "requester_unavailable", "no_checkpoint"}
ROLES = ("core", "jlis", "gateway", "agency")
DB_ROLES = ("database", "patroni")  # the database server (a primary's under --ha); a Patroni daemon


class LoadNetwork(Network):
    """The harness's network with one TLS context per caller, shared by the
    client threads (a context per call costs a key load each time)."""

    def __init__(self, *args, **kw):
        self._contexts = {}
        self._contexts_lock = threading.Lock()
        super().__init__(*args, **kw)

    def ssl_context(self, who, cert=None):
        if cert is not None:
            return super().ssl_context(who, cert)
        with self._contexts_lock:
            ctx = self._contexts.get(who)
            if ctx is None:
                ctx = self._contexts[who] = super().ssl_context(who)
            return ctx


class Op:
    """One request and what became of it. `final` is its first settled
    answer (2xx or a refusal); `answers` every answer, None for none."""

    def __init__(self, kind, agency, method, path, body, key):
        self.kind, self.agency, self.method, self.path, self.body, self.key = kind, agency, method, path, body, key
        self.answers = []
        self.final = None
        self.due = 0.0

    @property
    def acked(self):
        return self.final is not None and 200 <= self.final.status < 300

    def persons_acked(self):
        """The persons an enrolment acknowledged, in any of its answers."""
        if self.kind == "enrol":
            return {self.body["person"]} if self.acked else set()
        return {r["person"] for a in self.answers if a is not None and a.status == 202 and isinstance(a.json, dict)
                for r in a.json.get("results", []) if "error" not in r}

    @property
    def retried(self):
        return len(self.answers) > 1


def unsettled(a):
    """Whether an answer (None: none came) leaves the request to be sent again."""
    if a is None:
        return True
    if a.status >= 500 or a.status == 429:
        return a.error is None or a.error in TRANSIENT
    if a.status == 202 and isinstance(a.json, dict) and "results" in a.json:  # a batch: each entry its own
        return any((r.get("error") or {}).get("code") in TRANSIENT for r in a.json["results"])
    return False


def exchange_id_of(agency, query_id):
    return f"{agency}.{hashlib.sha256(query_id.encode()).hexdigest()[:32]}"


class Suite:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.lock = threading.Lock()
        self.ops = []                     # every Op, in the order made
        self.persons = collections.defaultdict(list)  # agency -> persons acknowledged there
        self.kills = collections.Counter()
        self.recoveries = []              # (seconds from restart to healthy, node, round, role)
        self.outages = []                 # (seconds from kill to healthy, node, round, role)
        self.failovers = []               # --ha: (seconds from a kill to the other member leading, member, round, role)
        self.write_gaps = []              # --ha: (seconds from a primary's kill to a write acknowledged, member, round)
        self.store = "postgres" if args.ha else STORE
        self.cluster = None               # --ha: the Patroni cluster (cluster.py)
        self.errors = []                  # what went wrong in the driver itself
        self.stop_load = threading.Event()
        self.next_id = 0
        core_conf = "[core]\noutbox_retry_min_ms = 50\noutbox_retry_max_ms = 1000"
        self.net = LoadNetwork(args.agencies, args.persons, {"core": core_conf}, store=self.store, ha=args.ha)
        self.residents = self.net.residents()
        self.agencies = [a["agency"] for a in self.net.agencies()]
        self.kind = {a["agency"]: a["kind"] for a in self.net.agencies()}
        order = list(range(len(self.residents)))  # one order: the agencies enrol the same residents
        self.rng.shuffle(order)
        self.unused = {ag: list(order) for ag in self.agencies}
        self.enrolled = collections.defaultdict(set)   # agency -> the same persons, as a set
        self.with_data = collections.defaultdict(list)  # (agency, item) -> persons with a value acknowledged
        self.rows = self.permitted_rows()
        self.providers = sorted({(r[2], r[3]) for r in self.rows})

    # ---------- the network's shape ----------
    def permitted_rows(self):
        """(requester, business, provider, item) that the permission table
        allows between two different agencies of this network."""
        rows = []
        with open(self.net.path("permissions.csv")) as f:
            for r in csv.DictReader(f):
                for req in self.agencies:
                    for prov in self.agencies:
                        if req != prov and self.kind[req] == r["requester_kind"] and \
                                self.kind[prov] == r["provider_kind"]:
                            rows.append((req, r["business"], prov, r["item"]))
        if not rows:
            raise SystemExit("crash: no permitted exchange between the agencies of this network")
        return sorted(set(rows))

    @staticmethod
    def person_id(index):
        return f"c{index:06d}"

    def fresh_id(self, prefix):
        with self.lock:
            self.next_id += 1
            return f"{prefix}-{self.args.seed}-{self.next_id}"

    # ---------- requests ----------
    def send(self, op, timeout=10):
        try:
            a = self.net.agency_call(op.agency, op.method, op.path, op.body, timeout=timeout)
        except (OSError, ssl.SSLError, http.client.HTTPException):
            a = None
        op.answers.append(a)
        if not unsettled(a) and op.final is None:
            op.final = a
            if op.kind in ("enrol", "batch"):
                self.note_enrolled(op, a)
            elif op.kind == "data" and op.acked:
                person, item = op.path.split("/")[3:5]
                with self.lock:
                    self.with_data[(op.agency, item)].append(person)
        return a

    def note_enrolled(self, op, a):
        if a.status != 202:
            return
        with self.lock:
            new = op.persons_acked() - self.enrolled[op.agency]
            self.persons[op.agency] += sorted(new)
            self.enrolled[op.agency] |= new

    def take_residents(self, agency, n):
        with self.lock:
            left = self.unused[agency]
            taken, self.unused[agency] = left[:n], left[n:]
            return taken

    def new_op(self, rng):
        with self.lock:
            known = {ag: len(p) for ag, p in self.persons.items()}
        r = rng.random()
        if r < 0.35 or not any(known.values()):
            ag = rng.choice(self.agencies)
            batch = r < 0.12
            taken = self.take_residents(ag, rng.randint(2, 12) if batch else 1)
            if taken:
                entries = [dict({"person": self.person_id(i), "my_number": self.residents[i]["my_number"]},
                                **{k: self.residents[i][k] for k in ("name", "birth_date", "sex", "address")
                                   if self.residents[i][k]})  # the basic items J-LIS compares
                           for i in taken]
                if batch:
                    return Op("batch", ag, "POST", "/v1/persons/batch", {"persons": entries}, None)
                return Op("enrol", ag, "POST", "/v1/persons", entries[0], entries[0]["person"])
        if r < 0.65:
            choices = [(ag, item) for ag, item in self.providers if known.get(ag)]
            if choices:
                ag, item = rng.choice(choices)
                with self.lock:
                    person = rng.choice(self.persons[ag])
                rid = self.fresh_id("d")
                body = {"value": {"rid": rid, "amount": rng.randrange(10 ** 7)}, "as_of": "2026-04-01",
                        "request_id": rid}
                return Op("data", ag, "PUT", f"/v1/data/{person}/{item}", body, rid)
        choices = [row for row in self.rows if known.get(row[0])]
        if not choices:
            return None
        req, business, prov, item = rng.choice(choices)
        with self.lock:  # mostly a person the provider holds a value of
            held = self.with_data.get((prov, item), [])
            person = rng.choice(held) if held and rng.random() < 0.8 else None
            if person not in self.enrolled[req]:
                person = rng.choice(self.persons[req])
        qid = self.fresh_id("q")
        body = {"query_id": qid, "person": person, "business": business, "provider": prov, "item": item,
                "operator": "op-crash"}
        return Op("query", req, "POST", "/v1/queries", body, qid)

    def client(self, seed):
        rng = random.Random(seed)
        waiting = []  # ops not settled yet, each sent again when due
        try:
            while not self.stop_load.is_set():
                now = time.time()
                due = [op for op in waiting if op.due <= now]
                if due:
                    op = due[0]
                elif len(waiting) >= 16:
                    time.sleep(0.05)
                    continue
                else:
                    op = self.new_op(rng)
                    if op is None:
                        time.sleep(0.05)
                        continue
                    with self.lock:
                        self.ops.append(op)
                    waiting.append(op)
                self.send(op)
                if op.final is not None and not unsettled(op.answers[-1]):
                    waiting.remove(op)
                else:
                    op.due = time.time() + min(2.0, 0.1 * 2 ** min(len(op.answers), 5)) * rng.uniform(0.5, 1.0)
        except Exception:
            self.errors.append("a client thread failed:\n" + traceback.format_exc())

    # ---------- kills ----------
    def roles(self):
        roles = list(ROLES) + (list(DB_ROLES) if self.args.ha else
                               ["database"] if self.store == "postgres" and self.args.database else [])
        if self.args.roles:
            roles = [r for r in roles if r in self.args.roles]
        while True:  # every role once per cycle, in a random order
            self.rng.shuffle(roles)
            yield from list(roles)

    def nodes_of(self, role):
        return [n["id"] for n in self.net.server_nodes() if n["role"] == role]

    def kill_round(self, rnd, role):
        net = self.net
        if role in DB_ROLES and self.cluster:
            return self.kill_cluster_round(rnd, role)
        if role == "database":
            node = "database"
            t_kill = time.time()
            net.pg.stop("immediate")  # no shutdown checkpoint: crash recovery at the next start
        else:
            node = self.rng.choice(self.nodes_of(role))
            t_kill = time.time()
            net.kill_node(node)
        self.kills[role] += 1
        time.sleep(self.rng.uniform(0, 1.0))
        t_start = time.time()
        if role == "database":
            net.pg.start()
            for n in net.server_nodes():
                net.wait_healthy(n["id"])
        else:
            self.restart(node)
        t_up = time.time()
        self.recoveries.append((t_up - t_start, node, rnd, role))
        self.outages.append((t_up - t_kill, node, rnd, role))
        return node

    def kill_cluster_round(self, rnd, role):
        """--ha: the primary's postmaster or a Patroni daemon SIGKILLed. The
        cluster is whole first (the member killed last back as the
        synchronous standby); the round ends when it is whole again and
        every node healthy (recovery: from the kill, or from Patroni's
        restart, to then)."""
        cl = self.cluster
        cl.wait_whole(180 * SLOW)
        if role == "database":
            m = cl.leader()
            t_kill = time.time()
            cl.kill_postmaster(m)
            node = f"{m.name} (primary)"
            cl.wait_leader(other_than=m, timeout=60 * SLOW)
            self.failovers.append((time.time() - t_kill, m.name, rnd, role))
            self.write_gaps.append((self.first_write(t_kill, 120 * SLOW), m.name, rnd))
            t_start = t_kill  # Patroni restarts it, as a standby
        else:
            m = self.rng.choice(cl.members)
            leader = cl.leader() is m
            t_kill = time.time()
            cl.kill_patroni(m)
            node = f"{m.name} ({'leader' if leader else 'standby'})"
            if leader and self.rng.random() < self.args.patroni_failover:
                # left dead until the other member leads (the leader key's ttl,
                # 10 s): the old primary still runs, cut off from its standby
                cl.wait_leader(other_than=m, timeout=60 * SLOW)
                self.failovers.append((time.time() - t_kill, m.name, rnd, role))
                node += " until failover"
            else:
                time.sleep(self.rng.uniform(0, 1.0))
            t_start = time.time()
            cl.start_patroni(m)
            cl.wait_member(m, 60 * SLOW)
        self.kills[role] += 1
        cl.wait_whole(180 * SLOW)
        for n in self.net.server_nodes():
            self.net.wait_healthy(n["id"], timeout=120)
        t_up = time.time()
        self.recoveries.append((t_up - t_start, node, rnd, role))
        self.outages.append((t_up - t_kill, node, rnd, role))
        return node

    def first_write(self, t_kill, timeout):
        """Seconds from t_kill until a new value is acknowledged (probes of
        their own ids, every one checked like the load's); None: not within
        timeout. With synchronous_mode_strict a commit waits for a standby."""
        while time.time() - t_kill < timeout:
            with self.lock:
                choices = [(ag, item) for ag, item in self.providers if self.persons.get(ag)]
                if not choices:
                    return None
                ag, item = self.rng.choice(choices)
                person = self.rng.choice(self.persons[ag])
            rid = self.fresh_id("w")
            op = Op("data", ag, "PUT", f"/v1/data/{person}/{item}",
                    {"value": {"rid": rid, "amount": 1}, "as_of": "2026-04-01", "request_id": rid}, rid)
            with self.lock:
                self.ops.append(op)
            self.send(op, timeout=2)  # one not settled is sent again by resolve()
            if op.acked:
                return time.time() - t_kill
            time.sleep(0.1)
        return None

    def restart(self, node):
        """Starts a killed node again. Should a node of another test have taken
        its port while it was down, waits for the port (10 s at most)."""
        for attempt in range(20):
            try:
                return self.net.start_node(node)
            except AssertionError as e:
                if "cannot listen" not in str(e) or attempt == 19:
                    raise
                self.net.procs.pop(node, None)
                time.sleep(0.5)

    def run_load(self):
        threads = [threading.Thread(target=self.client, args=(self.rng.randrange(1 << 30),), daemon=True)
                   for _ in range(self.args.threads)]
        for t in threads:
            t.start()
        roles = self.roles()
        try:
            time.sleep(self.args.warmup)
            for rnd in range(1, self.args.rounds + 1):
                time.sleep(self.rng.uniform(0.2, self.args.interval))
                role = next(roles)
                node = self.kill_round(rnd, role)
                if self.args.verbose:
                    print(f"  round {rnd}: {role} {node} killed; back in {self.recoveries[-1][0]:.2f} s "
                          f"({len(self.ops)} requests so far)", flush=True)
            time.sleep(1.0)
        finally:
            self.stop_load.set()
            for t in threads:
                t.join(60 * SLOW)

    # ---------- settling ----------
    def resolve(self):
        """Sends every unsettled request again (same id) until it is answered."""
        left = [op for op in self.ops if op.final is None or unsettled(op.answers[-1])]
        deadline = time.time() + 90 * SLOW
        while left and time.time() < deadline:
            for op in left:
                self.send(op)
            left = [op for op in left if op.final is None or unsettled(op.answers[-1])]
            if left:
                time.sleep(0.2)
        return left

    def person_states(self):
        """agency -> {person: (status, reason)} from each agency's store."""
        return {ag: {p: (s, r) for p, s, r in self.net.sql(ag, "SELECT person, status, reason FROM persons")}
                for ag in self.agencies}

    def acked_persons(self):
        out = collections.defaultdict(set)
        for op in self.ops:
            if op.kind in ("enrol", "batch"):
                out[op.agency] |= op.persons_acked()
        return out

    def wait_enrolments(self, acked):
        """Until no acknowledged person is pending (the core's notices are
        retried), or a deadline."""
        deadline = time.time() + 120 * SLOW
        while True:
            states = self.person_states()
            pending = sum(1 for ag, ps in acked.items() for p in ps if states[ag].get(p, ("",))[0] == "pending")
            if not pending or time.time() > deadline:
                return states
            time.sleep(0.25)

    # ---------- checks ----------
    def check(self, acked, states):
        lost, doubled, notes = collections.Counter(), collections.Counter(), []

        def finding(counter, what, detail):
            counter[what] += 1
            if len(notes) < 20:
                notes.append(detail)

        # Enrolments: linked, or failed with a reason; one acquisition at the core.
        ends = collections.Counter()
        for ag, ps in acked.items():
            for p in ps:
                status, reason = states[ag].get(p, (None, None))
                ends[status if status != "failed" else f"failed ({reason})"] += 1
                if status not in ("linked", "failed") or (status == "failed" and not reason):
                    finding(lost, "enrolments", f"{ag}/{p} acknowledged, now {status} {reason or ''}".strip())
        serial_of = dict(self.net.sql("core", "SELECT resident_code, serial FROM resident_codes"))
        index_of = {serial_of.get(r["resident_code"]): i for i, r in enumerate(self.residents)}
        for ag, serial, n in self.net.sql("core", "SELECT agency, serial, count(*) FROM acquisitions"
                                                  " GROUP BY agency, serial HAVING count(*) > 1"):
            finding(doubled, "acquisitions", f"{ag}/{self.person_id(index_of.get(serial, -1))}: {n} acquisitions")
        # Values: each acknowledged one stored once, as acknowledged; none twice.
        rows = collections.defaultdict(list)
        for ag in {ag for ag, _ in self.providers}:
            for person, item, version, value in self.net.sql(ag, "SELECT person, item, version, value FROM data"):
                try:
                    rid = json.loads(value).get("rid")
                except (ValueError, AttributeError):
                    rid = None
                rows[rid].append((ag, person, item, version))
        for op in self.ops:
            if op.kind != "data":
                continue
            stored = rows.get(op.key, [])
            if len(stored) > 1:
                finding(doubled, "values", f"{op.agency} {op.path} {op.key}: stored {len(stored)} times")
            if op.acked:
                person, item = op.path.split("/")[3:5]
                want = (op.agency, person, item, op.final.json.get("version"))
                if not stored:
                    finding(lost, "values", f"{op.agency} {op.path} {op.key}: acknowledged, not stored")
                elif want not in stored:
                    finding(lost, "values", f"{op.agency} {op.path} {op.key}: acknowledged as {want}, stored {stored}")
        # Exchanges: recorded once at each node; a provided value kept once.
        records = collections.Counter()
        for node in ["core"] + self.agencies:
            for xid, n in self.net.sql(node, "SELECT exchange_id, count(*) FROM records GROUP BY exchange_id"):
                records[(node, xid)] = n
        received = {ag: {x for (x,) in self.net.sql(ag, "SELECT exchange_id FROM received")} for ag in self.agencies}
        for op in self.ops:
            if op.kind != "query":
                continue
            xid = exchange_id_of(op.agency, op.key)
            prov = op.body["provider"]
            for node in ("core", op.agency, prov):
                if records[(node, xid)] > 1:
                    finding(doubled, "exchanges", f"{op.key} ({xid}): {records[(node, xid)]} records at {node}")
            if not op.acked:
                continue
            if op.final.json.get("exchange_id") != xid:
                finding(lost, "exchanges", f"{op.key}: answered for exchange {op.final.json.get('exchange_id')}")
            for node in ("core", op.agency, prov):
                if records[(node, xid)] == 0:
                    finding(lost, "exchanges", f"{op.key} ({xid}): acknowledged, no record at {node}")
            if op.final.json.get("status") != "provided":
                continue
            if xid not in received[op.agency]:
                finding(lost, "exchanges", f"{op.key} ({xid}): provided, the value not kept at {op.agency}")
            value = op.final.json.get("value")
            rid = value.get("rid") if isinstance(value, dict) else None
            if not any(r[:3] == (prov, op.body["person"], op.body["item"]) for r in rows.get(rid, [])):
                finding(lost, "exchanges", f"{op.key} ({xid}): provided a value {prov} does not hold")
        return ends, lost, doubled, notes

    def retry_sample(self):
        """Acknowledged requests sent again with their ids: the same answer.
        An enrolment answers its person's state now (pending, then linked);
        a failed person is left out (enrolling it again starts afresh)."""
        states = self.person_states()
        by_kind = collections.defaultdict(list)
        for op in self.ops:
            if op.acked:
                by_kind[op.kind].append(op)
        sample = []
        for kind, ops in sorted(by_kind.items()):
            if kind in ("enrol", "batch"):
                ops = [op for op in ops
                       if all(states[op.agency].get(e["person"], ("",))[0] != "failed"
                              for e in (op.body["persons"] if kind == "batch" else [op.body]))]
            self.rng.shuffle(ops)
            sample += ops[:self.args.sample]
        differ = []
        for op in sample:
            first = op.final
            try:
                again = self.net.agency_call(op.agency, op.method, op.path, op.body, timeout=10)
            except (OSError, ssl.SSLError, http.client.HTTPException) as e:
                differ.append(f"{op.kind} {op.key or op.path}: no answer to the retry ({e})")
                continue
            if op.kind in ("data", "query"):
                same = again.status == first.status and again.json == first.json
            else:
                persons = [e["person"] for e in op.body["persons"]] if op.kind == "batch" else [op.body["person"]]
                results = again.json.get("results") if op.kind == "batch" and again.json else [again.json]
                got = [(r or {}).get("person") for r in results or []]
                acked_first = ([r["person"] for r in first.json["results"] if "error" not in r]
                               if op.kind == "batch" else persons)
                now = {r.get("person"): r.get("status") for r in results or [] if r and "error" not in r}
                same = again.status == first.status and got == persons and \
                    all(now.get(p) == states[op.agency][p][0] for p in acked_first)
            if not same:
                differ.append(f"{op.kind} {op.key or op.path}: first {first!r}, again {again!r}")
        return len(sample), differ

    # ---------- the run ----------
    def run(self):
        a, net = self.args, self.net
        print(f"crash: {a.rounds} rounds on {self.store}{' under Patroni (--ha)' if a.ha else ''}, seed {a.seed}, "
              f"{a.threads} client threads, {len(self.agencies)} agencies, {len(self.residents)} residents", flush=True)
        t0 = time.time()
        found = None
        try:
            if a.ha:
                self.cluster = HaCluster(net.dir)
                self.cluster.start(180 * SLOW)
                t0 = time.time()
            net.start()
            self.run_load()
            t_load = time.time() - t0
            unresolved = self.resolve()
            acked = self.acked_persons()
            self.wait_enrolments(acked)
            sent, differ = self.retry_sample()
            found = (t_load, unresolved, *self.check(acked, self.person_states()), sent, differ)
        except Exception:
            self.errors.append("the run stopped:\n" + traceback.format_exc())
        try:
            net.stop(remove=False)
        except Exception as e:  # a node did not stop cleanly, or a sanitizer report
            for p in net.procs.values():
                p.kill()
            self.errors.append(f"stopping the network: {e}")
        verify = None
        if found:
            verify = renkei("records", "verify", net.dir, check=False, timeout=600)
        if self.cluster:  # after verify: it reads the stores through the cluster
            try:
                self.cluster.stop()
            except Exception as e:
                self.errors.append(f"stopping the database cluster: {e}")
        ok = not self.errors
        if found:
            t_load, unresolved, ends, lost, doubled, notes, sent, differ = found
            self.report(t_load, unresolved, ends, lost, doubled, notes, sent, differ, verify)
            ok = ok and not (lost or doubled or differ or unresolved or verify.returncode != 0)
        if self.errors:
            print("crash: FAILED\n" + "\n".join(self.errors), flush=True)
        self.finish(ok)
        return ok

    def finish(self, ok):
        if ok or not self.args.keep:
            shutil.rmtree(self.net.dir, ignore_errors=True)
        else:
            print(f"  network kept in {self.net.dir}")

    def report(self, t_load, unresolved, ends, lost, doubled, notes, sent, differ, verify):
        ops = self.ops
        acked = collections.Counter()
        for op in ops:
            if op.kind in ("enrol", "batch"):
                acked[op.kind] += len(op.persons_acked())
            elif op.acked:
                acked[op.kind] += 1
        provided = sum(1 for op in ops if op.kind == "query" and op.acked and op.final.json.get("status") == "provided")
        refused = collections.Counter(f"{op.final.status} {op.final.error}" for op in ops
                                      if op.final is not None and not op.acked)
        retried = [op for op in ops if op.retried]
        no_answer = sum(1 for op in ops for x in op.answers if x is None)
        rec = max(self.recoveries) if self.recoveries else (0, "-", 0, "-")
        out = max(self.outages) if self.outages else (0, "-", 0, "-")
        by_role = ", ".join(f"{r} {max(x[0] for x in self.recoveries if x[3] == r):.2f}"
                            for r in list(ROLES) + list(DB_ROLES) if r in self.kills)
        mean = sum(r[0] for r in self.recoveries) / len(self.recoveries) if self.recoveries else 0
        kills = "  ".join(f"{r} {self.kills[r]}" for r in list(ROLES) + list(DB_ROLES) if r in self.kills)
        print(f"  load         {len(ops)} requests in {t_load:.1f} s")
        print(f"  kills        {kills}  (total {sum(self.kills.values())})")
        print(f"  acknowledged {sum(acked.values())}: enrolments {acked['enrol']} single + {acked['batch']} in "
              f"batches, values {acked['data']}, exchanges {acked['query']} ({provided} provided)")
        print(f"  sent again   {len(retried)} requests ({no_answer} sends got no answer); "
              f"{sum(1 for op in retried if op.acked)} then acknowledged, "
              f"{sum(1 for op in retried if op.final is not None and not op.acked)} refused, {len(unresolved)} unanswered")
        if refused:
            print("  refused      " + ", ".join(f"{k} x{n}" for k, n in refused.most_common()))
        print("  enrolments   " + ", ".join(f"{k} {n}" for k, n in sorted(ends.items(), key=str)))
        print(f"  lost         {sum(lost.values())}" + (f"  ({dict(lost)})" if lost else ""))
        print(f"  doubled      {sum(doubled.values())}" + (f"  ({dict(doubled)})" if doubled else ""))
        print(f"  same id      {sent} acknowledged requests sent again: {sent - len(differ)} answered the same")
        print(f"  verify       `renkei records verify`: " + ("passed" if verify.returncode == 0 else
                                                           f"FAILED ({verify.returncode})"))
        print(f"  recovery     longest {rec[0]:.2f} s ({rec[1]}, round {rec[2]}), mean {mean:.2f} s "
              f"(restart to healthy); longest by role: {by_role}")
        print(f"  outage       longest {out[0]:.2f} s (kill to healthy, {out[1]}, round {out[2]})")
        for role, what in (("database", "the primary's postmaster"), ("patroni", "the leader's Patroni")):
            fo = [x for x in self.failovers if x[3] == role]
            if fo:
                f = max(fo)
                print(f"  failover     {len(fo)} after {what} was killed: the other member led after longest "
                      f"{f[0]:.2f} s ({f[1]} killed, round {f[2]}), mean {sum(x[0] for x in fo) / len(fo):.2f} s")
        gaps = [g for g in self.write_gaps if g[0] is not None]
        if self.write_gaps:
            g = max(gaps) if gaps else (0, "-", 0)
            print(f"  writes       after a primary's kill, the first value acknowledged: longest {g[0]:.2f} s "
                  f"({g[1]} killed, round {g[2]}), mean {sum(x[0] for x in gaps) / max(1, len(gaps)):.2f} s"
                  + (f"; {len(self.write_gaps) - len(gaps)} not within 120 s" if len(gaps) < len(self.write_gaps)
                     else ""))
        for line in notes + differ + [f"unanswered: {op.kind} {op.key or op.path}" for op in unresolved[:10]]:
            print("  ! " + line)
        if verify.returncode != 0:
            print("  ! verify: " + (verify.stdout + verify.stderr).strip()[-3000:])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=30, help="kills (default 30)")
    p.add_argument("--seed", type=int, default=None, help="the random seed (default: from the clock; printed)")
    p.add_argument("--threads", type=int, default=4, help="client threads (default 4)")
    p.add_argument("--agencies", type=int, default=4, help="agencies in the network (default 4)")
    p.add_argument("--persons", type=int, default=10000, help="residents written by net init (default 10000)")
    p.add_argument("--interval", type=float, default=2.0, help="most seconds of load between kills (default 2)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of load before the first kill (default 1)")
    p.add_argument("--sample", type=int, default=25, help="acknowledged requests of each kind sent again (default 25)")
    p.add_argument("--no-database", dest="database", action="store_false",
                   help="on PostgreSQL, do not kill the database server")
    p.add_argument("--ha", action="store_true",
                   help="PostgreSQL under Patroni (net init --ha): kill the primary's postmaster and Patroni daemons too")
    p.add_argument("--roles", type=lambda v: v.split(","), default=None,
                   help="kill only these roles, comma-separated (core,jlis,gateway,agency,database,patroni)")
    p.add_argument("--patroni-failover", type=float, default=0.5, metavar="P",
                   help="--ha: how often a leader's killed Patroni stays dead until the other member leads "
                        "(default 0.5; else it is started again after 0-1 s)")
    p.add_argument("--keep", action="store_true", help="keep the network's folder when something was found")
    p.add_argument("-v", "--verbose", action="store_true", help="a line per round")
    args = p.parse_args()
    if args.rounds < 1 or args.threads < 1 or args.agencies < 2 or not 0 <= args.patroni_failover <= 1:
        p.error("need --rounds >= 1, --threads >= 1, --agencies >= 2, 0 <= --patroni-failover <= 1")
    known = set(ROLES) | ({"database"} if args.ha or STORE == "postgres" else set()) | \
        ({"patroni"} if args.ha else set())
    if args.roles is not None and (not args.roles or not set(args.roles) <= known):
        p.error(f"--roles: each of {','.join(sorted(known))}")
    if args.seed is None:
        args.seed = int(time.time() * 1000) % 1000000
    sys.exit(0 if Suite(args).run() else 1)


if __name__ == "__main__":
    main()
