#!/usr/bin/env bash
# Lints docs/openapi.yaml with the pinned @redocly/cli (tools/openapi),
# recommended-strict rules (tools/openapi/redocly.yaml): exit 0 only when
# it finds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-openapi-tools.sh
exec tools/openapi/node_modules/.bin/redocly lint --config tools/openapi/redocly.yaml docs/openapi.yaml
