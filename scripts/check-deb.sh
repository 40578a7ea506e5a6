#!/usr/bin/env bash
# Checks the Debian package the way an operator would use it:
#  1. builds it (scripts/build-deb.sh: dpkg-buildpackage -us -uc -b, then
#     lintian, which must find no error and no warning);
#  2. checks its systemd units: `systemd-analyze verify` says nothing, and
#     `systemd-analyze security` rates renkei@.service's exposure 2.0 or less;
#  3. installs it with dpkg -i: the user renkei, /etc/renkei (root:renkei
#     0750), /var/lib/renkei (renkei:renkei 0750), both man pages, the
#     permission table;
#  4. runs the installed `renkei demo` as user renkei;
#  5. lays a network written by `renkei net init` out under /etc/renkei as
#     README.Debian says, starts every node as renkei@ID.service would (user
#     renkei, in /var/lib/renkei/ID, RENKEI_ROLE from node.env, the unit's
#     own ExecStart line), waits until `renkei net status` says all are ok,
#     stops them with SIGTERM and wants exit 0 from each;
#  6. purges the package (unless --keep) and removes what it laid out.
# It changes this machine (installs the package, adds the user renkei): run it
# as root on a test machine. It refuses to touch a node folder that exists.
# Usage: scripts/check-deb.sh [--no-build] [--keep]
set -euo pipefail
cd "$(dirname "$0")/.."
build=1 keep=0
for a in "$@"; do
  case "$a" in
    --no-build) build=0 ;;
    --keep) keep=1 ;;
    *) echo "usage: scripts/check-deb.sh [--no-build] [--keep]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "check-deb: run as root (it installs the package)" >&2; exit 1; }
out=${DEB_OUT:-build-deb}
step() { echo "check-deb: $*" >&2; }
fail() { echo "check-deb: FAILED: $*" >&2; exit 1; }

[ $build -eq 1 ] && scripts/build-deb.sh >/dev/null
deb=$(ls "$out"/renkei_*.deb 2>/dev/null | head -1 || true)
[ -n "$deb" ] || fail "no package in $out (run without --no-build)"

work=$(mktemp -d /tmp/renkei-check-deb.XXXXXX)
chmod 0755 "$work"
pids=() ids=() laid=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for f in "${laid[@]}"; do rm -rf "$f"; done
  rm -rf "$work"
  if [ $keep -eq 0 ] && dpkg-query -W -f='${Status}' renkei 2>/dev/null | grep -q 'ok installed'; then
    dpkg --purge renkei >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

# ---- 2. units
step "systemd-analyze verify"
mkdir "$work/units"
dpkg-deb -x "$deb" "$work/root"
cp "$work/root/lib/systemd/system/renkei@.service" "$work/units/renkei@core.service"
cp "$work/root/lib/systemd/system/renkei.target" "$work/units/"
say=$(systemd-analyze verify --man=no "$work/units/renkei@core.service" "$work/units/renkei.target" 2>&1 |
      grep -v "renkei: command not found\|/usr/bin/renkei" || true)
# (before the install, /usr/bin/renkei may be missing: verified again after it)
[ -z "$say" ] || fail "systemd-analyze verify: $say"
systemd-analyze security --offline=true --threshold=20 "$work/units/renkei@core.service" >"$work/security.txt" 2>&1 ||
  { tail -3 "$work/security.txt" >&2; fail "renkei@.service exposure above 2.0"; }
step "  $(grep 'Overall exposure' "$work/security.txt")"

# ---- 3. install
step "dpkg -i $deb"
dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -i"; }
say=$(systemd-analyze verify --man=no "$work/units/renkei@core.service" "$work/units/renkei.target" 2>&1 || true)
[ -z "$say" ] || fail "systemd-analyze verify, installed: $say"
id renkei >/dev/null || fail "no user renkei"
[ "$(stat -c '%U:%G %a' /etc/renkei)" = "root:renkei 750" ] || fail "/etc/renkei is $(stat -c '%U:%G %a' /etc/renkei)"
[ "$(stat -c '%U:%G %a' /var/lib/renkei)" = "renkei:renkei 750" ] || fail "/var/lib/renkei is $(stat -c '%U:%G %a' /var/lib/renkei)"
for page in renkei node.conf; do man -w "$page" >/dev/null 2>&1 || fail "man $page: not installed"; done
[ -f /usr/share/renkei/permissions.csv ] || fail "no /usr/share/renkei/permissions.csv"
/usr/bin/renkei --help >/dev/null || fail "renkei --help"

as_renkei() { setpriv --reuid=renkei --regid=renkei --init-groups --no-new-privs "$@"; }

# ---- 4. the demo, as user renkei
step "renkei demo, as user renkei"
mkdir "$work/tmp" && chown renkei:renkei "$work/tmp"
as_renkei env -i PATH=/usr/bin:/bin TMPDIR="$work/tmp" /usr/bin/renkei demo --persons 20 >"$work/demo.txt" 2>&1 ||
  { tail -20 "$work/demo.txt" >&2; fail "renkei demo"; }
step "  $(tail -1 "$work/demo.txt")"

# ---- 5. a network laid out under /etc/renkei, run as the unit runs it
step "a network under /etc/renkei, each node as renkei@ID.service runs it"
net="$work/net"
/usr/bin/renkei net init "$net" --agencies 2 --persons 10 >/dev/null
mapfile -t nodes < <(python3 -c '
import json, sys
for n in json.load(open(sys.argv[1]))["nodes"]:
    if n["role"] in ("ppc", "core", "jlis", "gateway", "agency"):
        print(n["id"], n["role"])' "$net/network.json")
for f in network.json ca.pem permissions.csv; do
  [ -e "/etc/renkei/$f" ] && fail "/etc/renkei/$f exists: not a test machine?"
done
for line in "${nodes[@]}"; do
  id=${line% *}
  [ -e "/etc/renkei/$id" ] || [ -e "/var/lib/renkei/$id" ] && fail "/etc/renkei/$id or /var/lib/renkei/$id exists"
done
laid+=(/etc/renkei/network.json /etc/renkei/ca.pem /etc/renkei/permissions.csv)
install -o root -g renkei -m 0640 "$net/network.json" "$net/pki/ca.pem" "$net/permissions.csv" /etc/renkei/
exec_start=$(sed -n 's/^ExecStart=//p' /lib/systemd/system/renkei@.service)
workdir=$(sed -n 's/^WorkingDirectory=//p' /lib/systemd/system/renkei@.service)
for line in "${nodes[@]}"; do
  id=${line% *} role=${line#* }
  src="$net/nodes/$id" etc="/etc/renkei/$id" var="/var/lib/renkei/$id"
  laid+=("$etc" "$var")
  install -d -o root -g renkei -m 0750 "$etc"
  install -o root -g renkei -m 0640 "$src/cert.pem" "$etc/"
  install -o renkei -g renkei -m 0600 "$src/key.pem" "$etc/"
  echo "RENKEI_ROLE=$role" >"$etc/node.env"
  {
    printf '[node]\nid = %s\nnetwork = /etc/renkei/network.json\nca = /etc/renkei/ca.pem\n' "$id"
    printf 'store = /var/lib/renkei/%s/node.db\n' "$id"
    case "$role" in
      core) install -o renkei -g renkei -m 0600 "$src/master.key" "$etc/"
            printf '\n[core]\nmaster_key_file = master.key\npermissions = /etc/renkei/permissions.csv\n' ;;
      jlis) install -o renkei -g renkei -m 0600 "$net/residents.csv" "$etc/"
            printf '\n[jlis]\nresidents = residents.csv\n' ;;
      ppc)  install -o root -g renkei -m 0640 "$src/pia.csv" "$etc/"
            printf '\n[ppc]\npermissions = /etc/renkei/permissions.csv\ninitial = pia.csv\n' ;;
    esac
  } >"$etc/node.conf"
  # what StateDirectory=renkei/%i makes
  install -d -o renkei -g renkei -m 0750 "$var"
  set -a; . "$etc/node.env"; set +a
  cmd=${exec_start//%i/$id}
  cmd=${cmd//\$\{RENKEI_ROLE\}/$RENKEI_ROLE}
  dir=${workdir//%i/$id}
  # shellcheck disable=SC2086 # the unit's ExecStart, split as systemd splits it
  (cd "$dir" && umask 0077 && exec setpriv --reuid=renkei --regid=renkei --init-groups --no-new-privs \
      env -i PATH=/usr/bin:/bin RENKEI_ROLE="$RENKEI_ROLE" $cmd) >"$work/$id.log" 2>&1 &
  pids+=($!)
  ids+=("$id")
done
ok=0
for _ in $(seq 1 100); do
  if /usr/bin/renkei net status "$net" >"$work/status.txt" 2>&1; then ok=1; break; fi
  sleep 0.2
done
if [ $ok -ne 1 ]; then
  cat "$work/status.txt" >&2
  for id in "${ids[@]}"; do echo "--- $id" >&2; tail -5 "$work/$id.log" >&2; done
  fail "the nodes laid out under /etc/renkei did not all become healthy"
fi
step "  $(wc -l <"$work/status.txt") nodes ok"
for i in "${!pids[@]}"; do kill -TERM "${pids[$i]}"; done
for i in "${!pids[@]}"; do
  rc=0; wait "${pids[$i]}" || rc=$?
  [ $rc -eq 0 ] || { tail -5 "$work/${ids[$i]}.log" >&2; fail "${ids[$i]} exited $rc on SIGTERM"; }
done
pids=()
for id in "${ids[@]}"; do
  [ "$(stat -c %U "/var/lib/renkei/$id/node.db")" = renkei ] || fail "$id: node.db is not renkei's"
done
step "  every node stopped cleanly; its database is in /var/lib/renkei/ID"
step "all passed"
