#!/usr/bin/env bash
# bench/cpu.sh - CPU time per tool call of a target and its children (perf stat task-clock, user +
# kernel), context switches per call, and calls/s, for a fixed-count closed-loop run pinned as
# bench/run.sh pins it. On a shared 2-core machine calls/s mostly measures the load generator and
# the neighbours; CPU per call does not: bare_us / gateway_us is the throughput ratio the two would
# have if the target core were the bottleneck.
# Targets: gateway (build/mcpgate fronting mcpgate-testserver), gateway-instant (fronting
# mcpgate-instant, an upstream that costs ~nothing), bare (mcpgate-bare, --raw-post).
# Usage: bench/cpu.sh [gateway gateway-instant bare]   (default: all three)
#        BUILD=build SESSIONS=50 CALLS=800 LOG_LEVEL=info REPS=1 bench/cpu.sh
#        GATEWAY_JSON='{"journal": {"path": "/tmp/j.jsonl"}}' bench/cpu.sh gateway-instant
#        (GATEWAY_JSON: the config's "gateway" object for the gateway targets, default {})
# Needs perf (software events only: works where hardware counters do not). The user/kernel split
# comes from /proc/PID/stat (10 ms ticks: indicative). Read next: bench/profile.sh (instructions).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$ROOT/$BUILD
: "${SESSIONS:=50}" "${CALLS:=800}" "${LOG_LEVEL:=info}" "${REPS:=1}" "${GATEWAY_JSON:={\}}"
TARGETS=${*:-gateway gateway-instant bare}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mcpgate-cpu.XXXXXX")
TPID=""
trap '[[ -n $TPID ]] && kill -TERM -- "-$TPID" 2>/dev/null; rm -rf "$WORK"' EXIT

stat_of() { # PIDS(comma-separated) -> "pid:utime:stime ..." (clock ticks)
    local p
    for p in ${1//,/ }; do awk '{printf "%s:%d:%d ", $1, $14, $15}' "/proc/$p/stat"; done
}

for rep in $(seq 1 "$REPS"); do
    for t in $TARGETS; do
        port=$((20000 + RANDOM % 10000))
        raw=()
        case $t in
        gateway | gateway-instant)
            up=$BUILD/mcpgate-testserver
            [[ $t = gateway-instant ]] && up=$BUILD/mcpgate-instant
            printf '{"mcpServers": {"ts": {"command": "%s"}}, "gateway": %s}\n' "$up" "$GATEWAY_JSON" >"$WORK/config.json"
            cmd=("$BUILD/mcpgate" serve --config "$WORK/config.json" --listen "127.0.0.1:$port" --log-level "$LOG_LEVEL")
            health=/healthz ;;
        bare)
            cmd=("$BUILD/mcpgate-bare" --listen "127.0.0.1:$port")
            health=/
            raw=(--raw-post) ;;
        *) echo "cpu.sh: unknown target '$t' (gateway gateway-instant bare)" >&2; exit 2 ;;
        esac
        setsid taskset -c 0 "${cmd[@]}" >"$WORK/$t.log" 2>&1 &
        TPID=$!
        for _ in $(seq 1 200); do curl -fs -o /dev/null "http://127.0.0.1:$port$health" && break; sleep 0.05; done
        url=http://127.0.0.1:$port/mcp
        taskset -c 1 "$BUILD/mcpgate-bench" --url "$url" --sessions 10 --calls 50 "${raw[@]}" >/dev/null 2>&1 # warm-up
        pids=$(echo "$TPID" $(pgrep -P "$TPID" || true) | tr ' ' ',')
        s0=$(stat_of "$pids")
        perf stat -x, -e task-clock,context-switches -p "$pids" -o "$WORK/perf.txt" -- \
            taskset -c 1 "$BUILD/mcpgate-bench" --url "$url" --sessions "$SESSIONS" --calls "$CALLS" \
            --args '{"message":"bench-{n}"}' --json "${raw[@]}" >"$WORK/out.json" 2>/dev/null || true
        s1=$(stat_of "$pids")
        python3 - "$t" "$WORK/out.json" "$WORK/perf.txt" "$s0" "$s1" <<'EOF'
import json, sys
name, out, perf, s0, s1 = sys.argv[1:6]
r = json.load(open(out)); c = r["calls"]; n = max(c["ok"], 1)
ev = {}
for line in open(perf):
    f = line.strip().split(",")
    if len(f) > 3 and f[0][:1].isdigit():
        ev[f[2]] = float(f[0])
a = {x.split(":")[0]: x.split(":")[1:] for x in s0.split()}
b = {x.split(":")[0]: x.split(":")[1:] for x in s1.split()}
split = "; ".join("%s user %.1f kernel %.1f" % ("target" if i == 0 else "child", (int(v[0]) - int(a[p][0])) * 1e4 / n,
                  (int(v[1]) - int(a[p][1])) * 1e4 / n) for i, (p, v) in enumerate(b.items()) if p in a)
print("%-16s %6d calls %8.0f calls/s  cpu %5.1f us/call  ctx-switches %.2f/call  (%s us/call)" %
      (name, c["ok"], c["per_s"], ev.get("task-clock", 0) * 1000 / n, ev.get("context-switches", 0) / n, split))
EOF
        kill -TERM -- "-$TPID" 2>/dev/null || true
        wait "$TPID" 2>/dev/null || true
        TPID=""
    done
done
