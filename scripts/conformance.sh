#!/usr/bin/env bash
# Runs the official MCP conformance suite (server mode, every scenario) against the gateway in
# BUILD_DIR fronting BUILD_DIR/mcpgate-testserver, with the Node 22 from test/e2e/node_modules.
#   scripts/conformance.sh [BUILD_DIR] [conformance.mjs args: --scenario NAME... --url URL --jobs N --verbose --remote]
# Installs test/e2e/node_modules with `npm ci` when it is missing or package-lock.json changed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-build}"
[[ $# -gt 0 ]] && shift
if [[ -d "$build" ]]; then build="$(cd "$build" && pwd)"; elif [[ "$build" != /* ]]; then build="$root/$build"; fi
e2e="$root/test/e2e"

ensure_node_modules() {
    # Same stamp as scripts/install-deps.sh: a copy of the lockfile node_modules was installed from.
    local stamp="$e2e/node_modules/.mcpgate-lock"
    if [[ ! -d "$e2e/node_modules" || ! -f "$stamp" ]] || ! cmp -s "$e2e/package-lock.json" "$stamp"; then
        echo "conformance: npm ci in test/e2e" >&2
        (cd "$e2e" && npm ci --no-audit --no-fund --loglevel=error)
        cp "$e2e/package-lock.json" "$stamp"
    fi
}

ensure_node_modules
export MG_BINARY="$build/mcpgate"
export MG_TESTSERVER="$build/mcpgate-testserver"
cd "$e2e"
exec node conformance.mjs "$@"
