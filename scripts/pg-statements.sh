#!/bin/bash
# Statements per enrolment on PostgreSQL, counted by pg_stat_statements:
# a network of 2 agencies on one PostgreSQL server (net init --store postgres),
# N enrolments at city-yokohama one at a time (agency-ctl enrol --concurrency 1
# --wait), then the statements of every node's database, in all and the core's
# most frequent. Run as root (the server runs as the postgres user).
# Usage: scripts/pg-statements.sh RENKEI-BINARY [N]   (N: 100)
set -euo pipefail
bin=$1 n=${2:-100}
dir=$(mktemp -d "${TMPDIR:-/tmp}/renkei-pgstat.XXXXXX")
chmod 0711 "$dir"
up=
trap '[ -n "$up" ] && kill -TERM $up 2>/dev/null && wait $up 2>/dev/null; rm -rf "$dir"' EXIT
"$bin" net init "$dir/net" --agencies 2 --persons "$n" --store postgres >/dev/null
conf=$dir/net/pg/data/postgresql.conf
printf "shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track = all\n" >>"$conf"
"$bin" net up "$dir/net" >"$dir/up.log" 2>&1 &
up=$!
for _ in $(seq 60); do "$bin" net status "$dir/net" >/dev/null 2>&1 && break; sleep 1; done
port=$(sed -n 's/^ *port *= *\([0-9]*\).*/\1/p' "$conf" | tail -1)
sql() { su postgres -c "psql -h '$dir/net/pg/sock' -p $port -d postgres -Atc \"$1\""; }
sql "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
sleep 3
sql "SELECT pg_stat_statements_reset()" >/dev/null
python3 - "$dir/net/residents.csv" >"$dir/enrol.csv" <<'PY'
import csv, sys
w = csv.writer(sys.stdout)
w.writerow(["person", "my_number", "name", "birth_date", "sex", "address"])
for i, r in enumerate(csv.DictReader(open(sys.argv[1]))):
    w.writerow(["p%05d" % i, r["my_number"], r["name"], r["birth_date"], r["sex"], r["address"]])
PY
"$bin" agency-ctl enrol --net "$dir/net" --agency city-yokohama --csv "$dir/enrol.csv" --concurrency 1 --wait \
  >"$dir/enrol.log" 2>&1
sleep 3
echo "statements per enrolment ($n enrolments):"
sql "SELECT '  ' || d.datname || ' ' || round(sum(calls)::numeric / $n, 1) FROM pg_stat_statements s
     JOIN pg_database d ON d.oid = s.dbid GROUP BY d.datname ORDER BY sum(calls) DESC"
sql "SELECT '  in all ' || round(sum(calls)::numeric / $n, 1) FROM pg_stat_statements"
echo "the core's most frequent:"
sql "SELECT '  ' || round(calls::numeric / $n, 2) || '  ' || left(query, 80) FROM pg_stat_statements s
     JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = 'core' ORDER BY calls DESC LIMIT 8"
