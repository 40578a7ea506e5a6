#!/usr/bin/env bash
# Installs the Debian packages renkei needs to build, test and run
# (postgresql-15: the server the tests start, and a node may use as its store;
# it creates the `postgres` user the servers run as; patroni and etcd-server: its
# failover, `renkei net init --ha`).
# Idempotent: when everything is present it installs nothing. Not root: prints the line and stops.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libssl-dev libevent-dev libcurl4-openssl-dev
      libjansson-dev libsqlite3-dev sqlite3 libpq-dev postgresql-15 libinih-dev libcmocka-dev python3
      patroni etcd-server                # renkei net init --store postgres --ha (tests/system/test_ha.py)
      openssl ca-certificates scdoc python3-jsonschema python3-yaml python3-cryptography
      golang-go golang-golang-x-mod-dev  # Go: the outside verifier of the records logs (tests/system/tlogcheck)
      prometheus                         # promtool: tests/system/test_metrics.py checks every node's /metrics
      chromium libnss3-tools fonts-ipafont-gothic  # tests/system/test_portal_browser.py: the portal's page in headless Chromium, the card in an NSS database, Japanese glyphs in its screenshots
      softhsm2 libengine-pkcs11-openssl opensc  # keys in a PKCS#11 token: libp11's engine, SoftHSM2, pkcs11-tool (renkei net init --hsm, tests/unit/test_keys.c, tests/system/test_hsm.py)
      clang-14 libclang-rt-14-dev        # libFuzzer: make fuzz, make check's check-fuzz
      gdb)                               # the system tests print a stuck node's threads (tests/system/harness.py)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# The OpenAPI linter (npm, pinned in tools/openapi): tests/system/test_openapi.py runs it.
"$(dirname "$0")/install-openapi-tools.sh" || echo "renkei: @redocly/cli could not be installed: docs/openapi.yaml is not linted" >&2
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "renkei: missing packages; as root run: apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "renkei: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
