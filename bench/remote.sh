#!/usr/bin/env bash
# bench/remote.sh - the gateway in front of a remote Streamable HTTP upstream, against the same load
# generator sent straight to that upstream, in one run: calls/s ratio and p50/p99 added.
#
# The remote upstream is build/mcpgate fronting build/mcpgate-testserver (a fast Streamable HTTP
# server written in C: what is measured is the hop, not a slow upstream). The gateway under test is
# build/mcpgate with one server entry {"url": ...} (src/upstream/remote.c), loopback allowed by
# gateway.egress.allowCidrs. Each configuration runs ROUNDS times, alternating, and the median
# round is reported. mcp-proxy and supergateway have no HTTP-to-HTTP mode (supergateway turns a
# remote server into stdio, mcp-proxy serves stdio servers): there is nothing of theirs to put here.
#
# Two placements, both in every run (PLACEMENTS="shared pinned" by default):
#   shared  every process on every CPU: the load generator, the upstream, its child and the gateway
#           compete for the same cores, so the gateway's own CPU per call lowers the calls/s
#           (what a gateway on a developer's laptop next to its servers sees);
#   pinned  the gateway alone on CPU 0; the load generator, the upstream and its child on CPU 1, in
#           the direct run as in the via-gateway run, so the upstream side has the same CPU in both
#           (a gateway deployed on its own host or cores: it adds latency, the throughput ceiling is
#           the upstream's). Needs 2 CPUs and taskset; skipped otherwise.
# Usage: bench/remote.sh  (SESSIONS, CALLS, ROUNDS, BUILD, PLACEMENTS from the environment). Prints
# one markdown table per placement. Read next: tools/bench/README.md (the load generator).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
: "${SESSIONS:=20}" "${CALLS:=300}" "${ROUNDS:=3}" "${PLACEMENTS:=shared pinned}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mcpgate-remote-bench.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
wait_ready() {
    for _ in $(seq 200); do
        curl -sf "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "target on port $1 never became ready" >&2
    exit 1
}

UP_PORT=$(free_port)
GW_PORT=$(free_port)
cat >"$WORK/upstream.json" <<JSON
{"mcpServers": {"t": {"command": "$BUILD/mcpgate-testserver"}}, "gateway": {"logLevel": "warn"}}
JSON
cat >"$WORK/gateway.json" <<JSON
{"mcpServers": {"t": {"url": "http://127.0.0.1:$UP_PORT/mcp", "type": "http"}},
 "gateway": {"logLevel": "warn", "egress": {"allowCidrs": ["127.0.0.0/8"]}}}
JSON
"$BUILD/mcpgate" serve --config "$WORK/upstream.json" --listen "127.0.0.1:$UP_PORT" 2>"$WORK/upstream.log" &
PIDS+=($!)
wait_ready "$UP_PORT"
"$BUILD/mcpgate" serve --config "$WORK/gateway.json" --listen "127.0.0.1:$GW_PORT" 2>"$WORK/gateway.log" &
PIDS+=($!)
wait_ready "$GW_PORT"

UP_PID=${PIDS[0]}
GW_PID=${PIDS[1]}
if [[ " $PLACEMENTS " == *" pinned "* ]] && { [ "$(nproc)" -lt 2 ] || ! command -v taskset >/dev/null; }; then
    echo "bench/remote.sh: pinned placement needs 2 CPUs and taskset; shared only" >&2
    PLACEMENTS=shared
fi
# place shared|pinned: sets the CPUs of the running gateway, upstream and the upstream's children
# (every thread), and LG_CPUS for the load generator.
place() {
    local gw up
    if [ "$1" = pinned ]; then gw=0 up=1; else gw=0-1 up=0-1; fi
    taskset -a -p -c "$gw" "$GW_PID" >/dev/null
    for p in "$UP_PID" $(pgrep -P "$UP_PID"); do taskset -a -p -c "$up" "$p" >/dev/null; done
    LG_CPUS=$up
}

cpu_ns() { # PID... -> nanoseconds on CPU so far, every thread of each (/proc/PID/task/*/schedstat)
    local p
    for p in "$@"; do cat /proc/"$p"/task/*/schedstat 2>/dev/null; done | awk '{s += $1} END {printf "%.0f", s}'
}
run() { # label port placement -> one JSON line (and the CPU per call of the gateway and the upstream side)
    local ups g0 u0
    mapfile -t ups < <(echo "$UP_PID"; pgrep -P "$UP_PID")
    g0=$(cpu_ns "$GW_PID")
    u0=$(cpu_ns "${ups[@]}")
    taskset -c "$LG_CPUS" "$BUILD/mcpgate-bench" --url "http://127.0.0.1:$2/mcp" --sessions "$SESSIONS" --calls "$CALLS" --label "$1" --json
    echo "$(($(cpu_ns "$GW_PID") - g0)) $(($(cpu_ns "${ups[@]}") - u0))" >>"$WORK/cpu-$1-$3.txt"
}
for _ in $(seq "$ROUNDS"); do
    for pl in $PLACEMENTS; do
        place "$pl"
        run direct "$UP_PORT" "$pl" >>"$WORK/direct-$pl.jsonl"
        run gateway "$GW_PORT" "$pl" >>"$WORK/gateway-$pl.jsonl"
    done
done

for pl in $PLACEMENTS; do
node - "$WORK/direct-$pl.jsonl" "$WORK/gateway-$pl.jsonl" "$SESSIONS" "$CALLS" "$ROUNDS" "$pl" \
    "$WORK/cpu-gateway-$pl.txt" "$WORK/cpu-direct-$pl.txt" <<'JS'
const fs = require('fs');
const [d, g, sessions, calls, rounds, placement, cg, cd] = process.argv.slice(2);
const cpu = (f, k) => { // median CPU us per call of column k (0 gateway, 1 upstream + child)
  const v = fs.readFileSync(f, 'utf8').trim().split('\n').map((l) => Number(l.split(' ')[k]) / 1000 / (sessions * calls));
  return v.sort((a, b) => a - b)[Math.floor(v.length / 2)].toFixed(1);
};
const load = (f) => fs.readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const median = (rs) => [...rs].sort((a, b) => a.calls.per_s - b.calls.per_s)[Math.floor(rs.length / 2)];
const D = median(load(d)), G = median(load(g));
const fails = (r) => r.calls.failed + r.calls.unsent + r.sessions.failed;
const row = (name, r) => `| ${name} | ${r.calls.per_s.toFixed(0)} | ${r.calls.latency_ms.p50.toFixed(3)} | ${r.calls.latency_ms.p99.toFixed(3)} | ${fails(r)} |`;
const where = placement === 'pinned'
  ? 'pinned: gateway on CPU 0; load generator, upstream and its child on CPU 1 (both runs)'
  : 'shared: every process on every CPU';
console.log(`### ${where}\n\n${sessions} sessions x ${calls} calls (closed loop), median of ${rounds} alternating rounds\n`);
console.log('| target | calls/s | p50 ms | p99 ms | failed |\n|---|---|---|---|---|');
console.log(row('straight to the upstream (mcpgate + testserver)', D));
console.log(row('mcpgate -> remote upstream', G));
console.log(`\nratio ${(G.calls.per_s / D.calls.per_s).toFixed(2)}x of the upstream's calls/s; ` +
  `p50 added ${(G.calls.latency_ms.p50 - D.calls.latency_ms.p50).toFixed(3)} ms, p99 added ${(G.calls.latency_ms.p99 - D.calls.latency_ms.p99).toFixed(3)} ms`);
console.log(`CPU per call (median): gateway ${cpu(cg, 0)} us; upstream + child ${cpu(cd, 1)} us direct, ` +
  `${cpu(cg, 1)} us behind the gateway\n`);
JS
done
