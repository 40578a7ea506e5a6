#!/usr/bin/env bash
# Installs the pinned OpenAPI linter (@redocly/cli, tools/openapi/package.json
# and its package-lock.json) into tools/openapi/node_modules with `npm ci`.
# Idempotent: does nothing when the pinned version is there. Without npm it
# says so and stops with 0: tests/system/test_openapi.py then skips the lint.
set -euo pipefail
cd "$(dirname "$0")/../tools/openapi"
want=$(sed -n 's/.*"@redocly\/cli": *"\([^"]*\)".*/\1/p' package.json)
have=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' node_modules/@redocly/cli/package.json 2>/dev/null | head -1 || true)
[ "$have" = "$want" ] && exit 0
if ! command -v npm >/dev/null 2>&1; then
  echo "renkei: npm not found: @redocly/cli $want not installed (docs/openapi.yaml is not linted)" >&2
  exit 0
fi
echo "renkei: installing @redocly/cli $want (tools/openapi)" >&2
npm ci --no-audit --no-fund --loglevel=error >/dev/null
