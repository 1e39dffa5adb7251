#!/usr/bin/env bash
# The whole test suite: unit tests (CTest), end-to-end tests with real clients, and the official
# MCP conformance suite. Each prints its own closing summary; the script fails if any part fails.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
status=0

echo "== unit tests (ctest)"
(cd "$BUILD" && ctest --output-on-failure -j "$(nproc)") || status=1

echo "== end-to-end tests"
./scripts/e2e.sh "$BUILD" || status=1

echo "== conformance suite"
./scripts/conformance.sh "$BUILD" || status=1

exit $status
