#!/usr/bin/env bash
# bench/ratio.sh - closed-loop calls/s of the gateway fronting build/mcpgate-instant (an upstream
# that costs next to nothing) as a fraction of build/mcpgate-bare's (the HTTP stack alone), with
# runs long enough to read on a shared machine: REPS pairs (gateway, bare, gateway, bare, ...),
# each a fresh target pinned to CPU 0 (with its child) and the load generator on CPU 1, as
# bench/run.sh pins them; one warm-up per target, then SESSIONS sessions x CALLS tools/call echo.
# Prints each run (calls/s, p50, p99), each pair's ratio, and the median ratio. bench/run.sh's
# "fraction of bare" is the same figure from much shorter runs (2,000-20,000 calls).
# Usage: bench/ratio.sh   (REPS=5 SESSIONS=20 CALLS=2000 BUILD=build LOG_LEVEL=info)
# Needs build/mcpgate, mcpgate-instant, mcpgate-bare, mcpgate-bench, taskset, curl and node.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$ROOT/$BUILD
: "${REPS:=5}" "${SESSIONS:=20}" "${CALLS:=2000}" "${LOG_LEVEL:=info}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mcpgate-ratio.XXXXXX")
PID=""
cleanup() {
    [[ -n $PID ]] && kill "$PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
printf '{"mcpServers": {"ts": {"command": "%s"}}}\n' "$BUILD/mcpgate-instant" >"$WORK/config.json"

# run NAME: prints "calls/s p50 p99" of one fresh target
run() {
    local port=$((30000 + RANDOM % 10000)) raw=()
    if [[ $1 = bare ]]; then
        taskset -c 0 "$BUILD/mcpgate-bare" --listen "127.0.0.1:$port" >/dev/null 2>&1 &
        raw=(--raw-post)
    else
        taskset -c 0 "$BUILD/mcpgate" serve --config "$WORK/config.json" --listen "127.0.0.1:$port" \
            --log-level "$LOG_LEVEL" >"$WORK/gateway.log" 2>&1 &
    fi
    PID=$!
    for _ in $(seq 1 200); do
        curl -fs -o /dev/null "http://127.0.0.1:$port/healthz" && break
        sleep 0.05
    done
    local url="http://127.0.0.1:$port/mcp"
    taskset -c 1 "$BUILD/mcpgate-bench" --url "$url" --sessions 10 --calls 50 --args '{"message":"w{n}"}' \
        "${raw[@]}" >/dev/null 2>&1 || true
    taskset -c 1 "$BUILD/mcpgate-bench" --url "$url" --json --sessions "$SESSIONS" --calls "$CALLS" \
        --args '{"message":"bench-{n}"}' "${raw[@]}" 2>/dev/null |
        node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
            const r = JSON.parse(s), l = r.calls.latency_ms;
            if (r.calls.failed + r.calls.unsent > 0) console.error(`ratio.sh: ${r.calls.failed + r.calls.unsent} calls failed`);
            console.log(r.calls.per_s.toFixed(0), l.p50.toFixed(3), l.p99.toFixed(2));
        })'
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=""
}

echo "load average $(cut -d' ' -f1-3 /proc/loadavg); $SESSIONS sessions x $CALLS calls, $REPS pairs"
ratios=()
for i in $(seq 1 "$REPS"); do
    read -r g gp50 gp99 < <(run gateway)
    read -r b bp50 bp99 < <(run bare)
    r=$(awk -v g="$g" -v b="$b" 'BEGIN { printf "%.2f", g / b }')
    ratios+=("$r")
    echo "pair $i: gateway-instant $g calls/s (p50 $gp50 ms, p99 $gp99 ms)  bare $b calls/s (p50 $bp50 ms, p99 $bp99 ms)  ratio $r"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
echo "median ratio (gateway-instant / bare): $median   load average $(cut -d' ' -f1-3 /proc/loadavg)"
