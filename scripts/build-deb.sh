#!/usr/bin/env bash
# Builds the Debian package from this tree (its tracked files and new ones
# git does not ignore) with dpkg-buildpackage, then runs lintian on it, which
# must find no error and no warning. Writes into $DEB_OUT (default build-deb/):
#   renkei_<version>_<arch>.deb, build.log, lintian.txt
# Usage: scripts/build-deb.sh        (make deb)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${DEB_OUT:-build-deb}
scripts/install-deb-deps.sh
rm -rf "$out"
mkdir -p "$out/src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z -co --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$out/src"
else
  tar --exclude='./build*' --exclude='./.git' -cf - . | tar -xf - -C "$out/src"
fi
echo "renkei: dpkg-buildpackage -us -uc -b (log: $out/build.log)" >&2
if ! (cd "$out/src" && dpkg-buildpackage -us -uc -b -j2) >"$out/build.log" 2>&1; then
  tail -40 "$out/build.log" >&2
  echo "renkei: dpkg-buildpackage failed (log: $out/build.log)" >&2
  exit 1
fi
rm -rf "$out/src"
deb=$(ls "$out"/renkei_*.deb)
echo "renkei: built $deb" >&2
echo "renkei: lintian" >&2
if ! lintian --fail-on error,warning --display-info "$out"/renkei_*.changes >"$out/lintian.txt" 2>&1; then
  cat "$out/lintian.txt" >&2
  echo "renkei: lintian found errors or warnings" >&2
  exit 1
fi
cat "$out/lintian.txt"
echo "renkei: lintian: no error, no warning" >&2
