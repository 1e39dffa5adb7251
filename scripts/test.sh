#!/usr/bin/env bash
# The whole test suite: the source checks (scripts/checksrc.sh, scripts/check-layers.sh: seconds,
# first), unit tests (CTest), the install test, end-to-end tests with real clients, the official MCP
# conformance suites (0.1.16 and 0.2.0-alpha.12), then the unit and e2e tests again under ASan+UBSan+LSan (scripts/asan.sh) and
# a fuzz smoke run (scripts/fuzz.sh). Each prints its own closing summary; the script fails if any
# part fails. docs/testing.md describes every part.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
status=0
passed=0
failed=0
# Records one part's outcome: part NAME CMD... (the part's own summary is printed by CMD).
part() {
    local name=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        status=1
        echo "== $name: FAILED"
    fi
}

# Source rules the compiler does not enforce (no literal -32xxx outside the error table, no sprintf
# and friends, jansson's copies only through the checked wrappers), then checksrc's own self-test.
echo "== source check (checksrc)"
part "source check" ./scripts/checksrc.sh
part "source check self-test" ./test/checksrc/run.sh

# The layer order of src/ (docs/architecture.md "Layers"), and its self-test.
echo "== layer check"
part "layer check" ./scripts/check-layers.sh
part "layer check self-test" ./test/layers/run.sh

echo "== unit tests (ctest)"
part "unit tests" bash -c "cd '$BUILD' && ctest --output-on-failure -j $(nproc)"

# make install into a temporary DESTDIR, the installed binary, README.md's example config, the
# systemd unit (test/install/run.sh, a few seconds).
part "install test" ./test/install/run.sh "$BUILD"

echo "== end-to-end tests"
part "end-to-end tests" ./scripts/e2e.sh "$BUILD"

# While the conformance suites run (mostly waiting on their scenarios), the sanitizer and fuzz trees
# are built at nice 19, on the CPU those leave idle (about 3 minutes off the run on 2 cores). Their
# own parts below wait for it and build again (a no-op when this finished), so a failure here is
# reported there, with its log.
fuzz_secs="${MG_TEST_FUZZ_SECONDS:-10}"
prebuild() {
    renice -n 19 "$BASHPID" >/dev/null 2>&1
    if [[ "${MG_TEST_ASAN:-1}" != 0 ]]; then
        cmake -S . -B build-asan -DMG_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null 2>&1 &&
            cmake --build build-asan -j "$(nproc)" >/dev/null 2>&1
    fi
    if [[ "$fuzz_secs" != 0 ]] && command -v clang >/dev/null; then
        local targets=() f
        for f in fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
        CC=clang cmake -S . -B "${FUZZ_BUILD:-build-fuzz}" -DMG_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null 2>&1 &&
            cmake --build "${FUZZ_BUILD:-build-fuzz}" -j "$(nproc)" --target "${targets[@]}" >/dev/null 2>&1
    fi
    return 0
}
prebuild &
prebuild_pid=$!

echo "== conformance suite"
part "conformance suite" ./scripts/conformance.sh "$BUILD"

echo "== conformance suite, next (0.2.0-alpha.12: 2025-11-25 and 2026-07-28 wires)"
part "conformance suite, next" ./scripts/conformance-next.sh "$BUILD"

# Both wires again through a remote upstream: the test server behind a second mcpgate, reached by url
# (src/upstream/remote.c). About 2.5 min with 2 jobs; then the 0.1.16 suite the same way (about 50 s
# with 2 jobs on a loaded 2-core machine).
echo "== conformance suite, next, through a remote upstream"
part "conformance suite, next, remote upstream" ./scripts/conformance-next.sh "$BUILD" --remote --jobs 2
echo "== conformance suite (0.1.16) through a remote upstream"
part "conformance suite, remote upstream" ./scripts/conformance.sh "$BUILD" --remote --jobs 2

wait "$prebuild_pid"

# Sanitizers: the unit tests and the e2e suite again on an ASan+UBSan build, LeakSanitizer checking
# the gateway at every exit (MG_TEST_ASAN=0 skips it).
if [[ "${MG_TEST_ASAN:-1}" != 0 ]]; then
    echo "== sanitizers (ASan, UBSan, LSan): unit and end-to-end tests on build-asan"
    part "sanitizers" ./scripts/asan.sh build-asan
fi

# Fuzz smoke: every libFuzzer target for a few seconds, committed seeds replayed first (needs clang;
# MG_TEST_FUZZ_SECONDS sets the time per target, 0 skips it). The long run: make fuzz.
if [[ "$fuzz_secs" != 0 ]]; then
    if command -v clang >/dev/null; then
        echo "== fuzz smoke (${fuzz_secs} s per target)"
        export FUZZ_JOBS="${FUZZ_JOBS:-$(nproc)}"
        part "fuzz smoke" ./scripts/fuzz.sh "$fuzz_secs"
    else
        echo "== fuzz smoke: skipped (clang not installed; scripts/install-deps.sh installs it)"
    fi
fi

# One closing line for the whole run: each part above printed its own counts.
echo "test parts: $passed passed, $failed failed"
exit $status
