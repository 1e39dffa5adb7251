#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/fuzz_*.c) with clang into build-fuzz/ and runs each of them.
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s, every target; 0 = only
#                                                         replay the corpus and the committed seeds)
# Env: FUZZ_BUILD (build dir, default build-fuzz), FUZZ_JOBS (parallel targets, default 1),
#      FUZZ_ARGS (extra libFuzzer flags), FUZZ_CORPUS (working corpus root, default
#      $FUZZ_BUILD/corpus: seeded from fuzz/corpus/<target>/, which is never written).
# Every committed seed (including the regress-* inputs of fixed bugs) is replayed first. Crash,
# leak and timeout inputs are saved under $FUZZ_BUILD/artifacts/<target>/. Prints one line of
# figures per target and exits 1 when any target found something. docs/testing.md explains.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
secs="${1:-60}"
[[ $# -gt 0 ]] && shift
build="${FUZZ_BUILD:-build-fuzz}"
corpus_root="${FUZZ_CORPUS:-$build/corpus}"
jobs="${FUZZ_JOBS:-1}"

if ! command -v clang >/dev/null; then
    echo "fuzz: clang not found (scripts/install-deps.sh installs clang and libclang-rt-14-dev)" >&2
    exit 2
fi
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    for f in fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi
targets=("${targets[@]/#/fuzz_}")
targets=("${targets[@]/#fuzz_fuzz_/fuzz_}")

echo "== fuzz: building ${targets[*]} in $build (clang, ASan+UBSan+libFuzzer)"
CC=clang cmake -S . -B "$build" -DMG_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 2
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}" >"$build/fuzz-build.log" 2>&1 || {
    cat "$build/fuzz-build.log"
    exit 2
}

run_one() {
    local t="$1" name="${1#fuzz_}"
    local work="$corpus_root/$name" art="$build/artifacts/$name/" log="$build/logs/$name.log"
    mkdir -p "$work" "$art" "$(dirname "$log")"
    local dict=()
    [[ -f "fuzz/$name.dict" ]] && dict=(-dict="fuzz/$name.dict")
    local seeds=()
    [[ -d "fuzz/corpus/$name" ]] && seeds=("fuzz/corpus/$name")
    # -timeout: one input taking longer is a hang; -rss_limit_mb bounds a memory blow-up.
    local limit=(-max_total_time="$secs")
    [[ "$secs" == 0 ]] && limit=(-runs=0)
    "$build/fuzz/$t" "${limit[@]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$art" "${dict[@]}" ${FUZZ_ARGS:-} "$work" "${seeds[@]}" >"$log" 2>&1
    local rc=$?
    local execs cov ft corp
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    corp=$(ls "$work" | wc -l)
    local found
    found=$(find "$art" -type f | wc -l)
    printf '%-14s %4ss  execs %-10s exec/s %-7s cov %-5s ft %-6s corpus %-5s findings %s%s\n' "$name" "$secs" \
        "${execs:-?}" "$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)" "${cov:-?}" "${ft:-?}" \
        "$corp" "$found" "$([[ $rc -ne 0 ]] && echo "  FAILED (rc $rc, log $log)")"
    if [[ $rc -ne 0 ]]; then
        grep -m1 -A12 -E '^==[0-9]+==ERROR|runtime error|deadly signal|ALARM|out-of-memory' "$log" | sed 's/^/    /'
        return 1
    fi
    return 0
}

status=0
running=0
for t in "${targets[@]}"; do
    if [[ ! -x "$build/fuzz/$t" ]]; then
        echo "fuzz: no target $t" >&2
        status=1
        continue
    fi
    if ((jobs > 1)); then
        run_one "$t" &
        running=$((running + 1))
        if ((running >= jobs)); then
            wait -n || status=1
            running=$((running - 1))
        fi
    else
        run_one "$t" || status=1
    fi
done
while ((running > 0)); do
    wait -n || status=1
    running=$((running - 1))
done
exit $status
