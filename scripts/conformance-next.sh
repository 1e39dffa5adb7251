#!/usr/bin/env bash
# Runs @modelcontextprotocol/conformance 0.2.0-alpha.12 (server mode; every scenario at each wire it
# applies to: 2025-11-25 and 2026-07-28) against the gateway in BUILD_DIR fronting
# BUILD_DIR/mcpgate-testserver, with the Node 22 pinned in test/conformance-next.
#   scripts/conformance-next.sh [BUILD_DIR] [run.mjs args: --scenario NAME[@WIRE]... --wire V --jobs N --verbose --keep DIR --remote]
# Installs test/conformance-next/node_modules with `npm ci` when it is missing or package-lock.json
# changed. Expected failures (extension scenarios only) are listed in test/conformance-next/baseline.json.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-build}"
[[ $# -gt 0 ]] && shift
if [[ -d "$build" ]]; then build="$(cd "$build" && pwd)"; elif [[ "$build" != /* ]]; then build="$root/$build"; fi
dir="$root/test/conformance-next"

ensure_node_modules() {
    # A copy of the lockfile node_modules was installed from (same scheme as test/e2e).
    local stamp="$dir/node_modules/.mcpgate-lock"
    if [[ ! -d "$dir/node_modules" || ! -f "$stamp" ]] || ! cmp -s "$dir/package-lock.json" "$stamp"; then
        echo "conformance-next: npm ci in test/conformance-next" >&2
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
        cp "$dir/package-lock.json" "$stamp"
    fi
}

ensure_node_modules
export MG_BINARY="$build/mcpgate"
export MG_TESTSERVER="$build/mcpgate-testserver"
cd "$dir"
exec node run.mjs "$@"
