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
# Usage: bench/remote.sh  (SESSIONS, CALLS, ROUNDS, BUILD from the environment). Prints a markdown
# table. Read next: tools/bench/README.md (the load generator).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
: "${SESSIONS:=20}" "${CALLS:=300}" "${ROUNDS:=3}"
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

run() { # label port -> one JSON line
    "$BUILD/mcpgate-bench" --url "http://127.0.0.1:$2/mcp" --sessions "$SESSIONS" --calls "$CALLS" --label "$1" --json
}
for i in $(seq "$ROUNDS"); do
    run direct "$UP_PORT" >>"$WORK/direct.jsonl"
    run gateway "$GW_PORT" >>"$WORK/gateway.jsonl"
done

node - "$WORK/direct.jsonl" "$WORK/gateway.jsonl" "$SESSIONS" "$CALLS" "$ROUNDS" <<'JS'
const fs = require('fs');
const [d, g, sessions, calls, rounds] = process.argv.slice(2);
const load = (f) => fs.readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const median = (rs) => [...rs].sort((a, b) => a.calls.per_s - b.calls.per_s)[Math.floor(rs.length / 2)];
const D = median(load(d)), G = median(load(g));
const fails = (r) => r.calls.failed + r.calls.unsent + r.sessions.failed;
const row = (name, r) => `| ${name} | ${r.calls.per_s.toFixed(0)} | ${r.calls.latency_ms.p50.toFixed(3)} | ${r.calls.latency_ms.p99.toFixed(3)} | ${fails(r)} |`;
console.log(`${sessions} sessions x ${calls} calls (closed loop), median of ${rounds} alternating rounds\n`);
console.log('| target | calls/s | p50 ms | p99 ms | failed |\n|---|---|---|---|---|');
console.log(row('straight to the upstream (mcpgate + testserver)', D));
console.log(row('mcpgate -> remote upstream', G));
console.log(`\nratio ${(G.calls.per_s / D.calls.per_s).toFixed(2)}x of the upstream's calls/s; ` +
  `p50 added ${(G.calls.latency_ms.p50 - D.calls.latency_ms.p50).toFixed(3)} ms, p99 added ${(G.calls.latency_ms.p99 - D.calls.latency_ms.p99).toFixed(3)} ms`);
JS
