#!/usr/bin/env bash
# Runs the Node end-to-end tests (test/e2e/run.mjs) against the binaries in BUILD_DIR.
#   scripts/e2e.sh [BUILD_DIR] [run.mjs args: FILE.test.mjs... --grep TEXT --bail]
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
        echo "e2e: npm ci in test/e2e" >&2
        (cd "$e2e" && npm ci --no-audit --no-fund --loglevel=error)
        cp "$e2e/package-lock.json" "$stamp"
    fi
}

ensure_node_modules
for f in mcpgate mcpgate-testserver; do
    [[ -x "$build/$f" ]] || echo "e2e: warning: $build/$f is missing (build first: make build)" >&2
done
export MG_BINARY="$build/mcpgate"
export MG_TESTSERVER="$build/mcpgate-testserver"
cd "$e2e"
exec node run.mjs "$@"
