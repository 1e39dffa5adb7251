#!/usr/bin/env bash
# The `mcpgate audit` score table (README.md, docs/audit.md): mcpgate hardened and default,
# server-everything (streamableHttp), mcp-proxy and supergateway side by side, on loopback.
#   scripts/audit-table.sh [BUILD_DIR] [OUT.md]      (default build/, stdout only)
# Needs the build (mcpgate, mcpgate-testserver) and bench/node_modules (npm ci in bench/).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
if [[ ! -d $root/bench/node_modules/supergateway ]]; then
    (cd "$root/bench" && npm ci --no-audit --no-fund >/dev/null)
fi
exec node "$root/bench/audit.mjs" --build "$build" ${2:+--out "$2"}
