#!/usr/bin/env bash
# Installs what building and checking the Debian package needs: debhelper,
# lintian, fakeroot, dpkg-dev, and the Build-Depends of debian/control.
# Idempotent: when everything is present it installs nothing. Not root:
# prints the line and stops.
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=(build-essential dpkg-dev debhelper fakeroot lintian systemd)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
builddeps_ok=0
[ ${#missing[@]} -eq 0 ] && dpkg-checkbuilddeps >/dev/null 2>&1 && builddeps_ok=1
[ $builddeps_ok -eq 1 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "renkei: missing packages; as root run: apt-get update && apt-get install -y ${missing[*]} && apt-get build-dep -y ./" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
  echo "renkei: installing ${missing[*]}" >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
dpkg-checkbuilddeps >/dev/null 2>&1 || apt-get build-dep -y -qq ./ >/dev/null
