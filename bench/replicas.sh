#!/usr/bin/env bash
# bench/replicas.sh - scale-out on this machine, in one run: throughput and p99 latency of one
# replica vs three replicas behind nginx (sessions in Redis, and in PostgreSQL), and the
# per-request cost of the session lookup in each store, reported as ratios. Not a timed test:
# numbers depend on the machine.
#
# Targets, each fronting build/mcpgate-testserver (echo), loaded by build/mcpgate-bench:
#   mem-1          one replica, sessions in memory, direct           (the baseline)
#   redis-1        one replica, sessions in Redis, direct            (+ one Redis round trip/request)
#   redis-1-nginx  one replica, sessions in Redis, behind nginx      (+ the proxy hop)
#   redis-3-nginx  three replicas, sessions in Redis, behind nginx   (round robin, no affinity)
#   pg-1           one replica, sessions in PostgreSQL, direct       (+ one statement/request)
#   pg-3-nginx     three replicas, sessions in PostgreSQL, behind nginx
# PostgreSQL: initdb in the work dir and postgres on a free port (fsync off, as Redis runs without
# persistence here); as root both run as "nobody". Skipped (with a line saying so) when the
# server binaries are missing; PG=0 skips it too.
# For each: saturation (SESSIONS sessions, closed loop, DURATION s) and latency (1 session,
# LAT_CALLS sequential calls). Nothing is pinned: on a 2-core machine the replicas, Redis, nginx
# and the load generator share the cores, which bounds what three replicas can add.
#
# ROUNDS (2) runs the four targets in turn that many times and reports each target's best round
# (other load on the machine only ever makes a round worse).
# Usage: bench/replicas.sh        (BUILD=dir, SESSIONS=64, DURATION=5, LAT_CALLS=3000, ROUNDS=2,
#                                  MCPGATE_LOG_LEVEL=info, NO_BUILD=1)
# Needs redis-server and nginx, and postgresql (scripts/install-deps.sh). Writes
# bench/results/replicas-<date>.md.
# Read next: tools/bench/README.md (the load generator), docs/operations.md (sizing).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$ROOT/$BUILD
: "${SESSIONS:=64}" "${DURATION:=5}" "${LAT_CALLS:=3000}" "${MCPGATE_LOG_LEVEL:=info}" "${ROUNDS:=2}"
BENCH=$BUILD/mcpgate-bench
GW=$BUILD/mcpgate
TS=$BUILD/mcpgate-testserver
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mcpgate-replicas.XXXXXX")
JSONL=$WORK/results.jsonl
STAMP=$(date +%Y-%m-%d-%H%M%S)
PIDS=()
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

log() { printf '[replicas %3ds] %s\n' "$SECONDS" "$*" >&2; }
die() { log "error: $*"; exit 1; }

cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.3
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

for b in redis-server nginx node; do
    command -v "$b" >/dev/null || [[ -x /usr/sbin/$b ]] || die "$b is not installed (scripts/install-deps.sh)"
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [[ ${NO_BUILD:-0} != 1 ]]; then
    log "building ($BUILD)"
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$BUILD" -j "$(nproc)" --target mcpgate mcpgate-testserver mcpgate-bench >/dev/null
fi
for f in "$BENCH" "$GW" "$TS"; do [[ -x $f ]] || die "$f is missing"; done

free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

wait_http() { # url [seconds]
    local end=$((SECONDS + ${2:-10}))
    until curl -fs -o /dev/null "$1" 2>/dev/null || node -e "require('http').get('$1',r=>process.exit(r.statusCode==200?0:1)).on('error',()=>process.exit(1))" 2>/dev/null; do
        ((SECONDS < end)) || die "$1 did not answer 200"
        sleep 0.05
    done
}

# ---- Redis ----
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" \
    >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.05; done

# ---- PostgreSQL ----
PG_BIN=$(pg_config --bindir 2>/dev/null || true)
[[ -x $PG_BIN/initdb ]] || PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
PG_PORT=
if [[ ${PG:-1} = 1 && -x $PG_BIN/initdb && -x $PG_BIN/postgres ]]; then
    AS=()
    if [[ $(id -u) = 0 ]]; then
        chown nobody "$WORK"
        AS=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
    fi
    PG_PORT=$(free_port)
    "${AS[@]}" "$PG_BIN/initdb" -D "$WORK/pgdata" -A trust -U mcpgate -E UTF8 --no-sync >"$WORK/initdb.log" 2>&1 \
        || die "initdb failed: $(tail -3 "$WORK/initdb.log")"
    "${AS[@]}" "$PG_BIN/postgres" -D "$WORK/pgdata" -k "$WORK" -p "$PG_PORT" -h 127.0.0.1 -F \
        -c max_connections=200 >"$WORK/postgres.log" 2>&1 &
    PIDS+=($!)
    until "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U mcpgate -d postgres -Atc 'SELECT 1' >/dev/null 2>&1; do sleep 0.1; done
    "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U mcpgate -d postgres -Atc 'CREATE DATABASE mcpgate' >/dev/null
else
    log "PostgreSQL: skipped (PG=0, or initdb/postgres not installed: scripts/install-deps.sh)"
fi

write_config() { # file store
    cat >"$1" <<EOF
{"mcpServers": {"test": {"command": "$TS"}},
 "gateway": {"logLevel": "$MCPGATE_LOG_LEVEL", "limits": {"maxSessions": 100000},
   "sessions": {"store": "$2", "secret": "bench-cluster-secret-0123456789"}}}
EOF
}
write_config "$WORK/mem.json" memory
write_config "$WORK/redis.json" "redis://127.0.0.1:$REDIS_PORT/0"
[[ -z $PG_PORT ]] || write_config "$WORK/pg.json" "postgres://mcpgate@127.0.0.1:$PG_PORT/mcpgate"

TARGET_PIDS=()
PORT_OUT=
# (not called through $(...): the pids must be recorded in this shell, which stops them)
start_gw() { # config -> PORT_OUT
    local port
    port=$(free_port)
    "$GW" serve --config "$1" --listen "127.0.0.1:$port" >>"$WORK/gateway-$port.log" 2>&1 &
    PIDS+=($!)
    TARGET_PIDS+=($!)
    wait_http "http://127.0.0.1:$port/readyz" 15
    PORT_OUT=$port
}

start_nginx() { # ports... -> PORT_OUT
    local port dir conf servers=""
    port=$(free_port)
    dir=$WORK/nginx-$port
    mkdir -p "$dir"
    for p in "$@"; do servers+="        server 127.0.0.1:$p max_fails=1 fail_timeout=2s;\n"; done
    # deploy/nginx.conf itself, with the upstreams, the port and the writable paths substituted
    sed -e '/server gateway-[0-9]*:8080/d' -e "s#upstream mcpgate {#upstream mcpgate {\n$servers#" \
        -e 's/^worker_processes.*/worker_processes 1;/' -e "s#^pid .*#pid $dir/nginx.pid;#" \
        -e "s#^error_log .*#error_log $dir/error.log warn;#" -e "s#/tmp/nginx-#$dir/#g" \
        -e "s#listen 8080;#listen 127.0.0.1:$port;#" "$ROOT/deploy/nginx.conf" >"$dir/nginx.conf"
    "$NGINX" -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' >"$dir/out.log" 2>&1 &
    PIDS+=($!)
    TARGET_PIDS+=($!)
    wait_http "http://127.0.0.1:$port/readyz" 10
    PORT_OUT=$port
}

stop_targets() {
    for p in "${TARGET_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${TARGET_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    TARGET_PIDS=()
    redis-cli -p "$REDIS_PORT" flushall >/dev/null
    [[ -z $PG_PORT ]] || "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U mcpgate -d mcpgate -Atc \
        'TRUNCATE mcpgate_sessions, mcpgate_values, mcpgate_logs, mcpgate_events' >/dev/null 2>&1 || true
}

measure() { # label url
    log "$1: saturation ($SESSIONS sessions, ${DURATION}s)"
    "$BENCH" --url "$2" --sessions "$SESSIONS" --duration "$DURATION" --label "$1 sat" --json \
        | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);j.target=process.argv[1];j.kind="sat";console.log(JSON.stringify(j))})' "$1" >>"$JSONL"
    log "$1: latency (1 session, $LAT_CALLS calls)"
    "$BENCH" --url "$2" --sessions 1 --calls "$LAT_CALLS" --label "$1 lat" --json \
        | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);j.target=process.argv[1];j.kind="lat";console.log(JSON.stringify(j))})' "$1" >>"$JSONL"
}

warm() { "$BENCH" --url "$1" --sessions 8 --calls 200 >/dev/null 2>&1 || true; }

# ---- the four targets ----
for round in $(seq 1 "$ROUNDS"); do
log "round $round of $ROUNDS"
start_gw "$WORK/mem.json"
warm "http://127.0.0.1:$PORT_OUT/mcp"
measure mem-1 "http://127.0.0.1:$PORT_OUT/mcp"
stop_targets
start_gw "$WORK/redis.json"
warm "http://127.0.0.1:$PORT_OUT/mcp"
measure redis-1 "http://127.0.0.1:$PORT_OUT/mcp"
stop_targets
start_gw "$WORK/redis.json"
start_nginx "$PORT_OUT"
warm "http://127.0.0.1:$PORT_OUT/mcp"
measure redis-1-nginx "http://127.0.0.1:$PORT_OUT/mcp"
stop_targets
ports=()
for _ in 1 2 3; do
    start_gw "$WORK/redis.json"
    ports+=("$PORT_OUT")
done
start_nginx "${ports[@]}"
warm "http://127.0.0.1:$PORT_OUT/mcp"
measure redis-3-nginx "http://127.0.0.1:$PORT_OUT/mcp"
stop_targets
if [[ -n $PG_PORT ]]; then
    start_gw "$WORK/pg.json"
    warm "http://127.0.0.1:$PORT_OUT/mcp"
    measure pg-1 "http://127.0.0.1:$PORT_OUT/mcp"
    stop_targets
    ports=()
    for _ in 1 2 3; do
        start_gw "$WORK/pg.json"
        ports+=("$PORT_OUT")
    done
    start_nginx "${ports[@]}"
    warm "http://127.0.0.1:$PORT_OUT/mcp"
    measure pg-3-nginx "http://127.0.0.1:$PORT_OUT/mcp"
    stop_targets
fi
done

# ---- report ----
mkdir -p "$ROOT/bench/results"
OUT=$ROOT/bench/results/replicas-$STAMP.md
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
node - "$JSONL" "$OUT" "$SESSIONS" "$DURATION" "$LAT_CALLS" "$MCPGATE_LOG_LEVEL" "$LOAD_START" "$LOAD_END" <<'EOF'
const fs = require('fs');
const os = require('os');
const [file, out, sessions, duration, latCalls, logLevel, loadStart, loadEnd] = process.argv.slice(2);
const rows = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
// each target's best round: highest calls/s (saturation), lowest p50 (latency)
const get = (t, k) =>
  rows
    .filter((r) => r.target === t && r.kind === k)
    .sort((a, b) => (k === 'sat' ? b.calls.per_s - a.calls.per_s : a.calls.latency_ms.p50 - b.calls.latency_ms.p50))[0];
const targets = ['mem-1', 'redis-1', 'redis-1-nginx', 'redis-3-nginx', 'pg-1', 'pg-3-nginx'].filter((t) => rows.some((r) => r.target === t));
const f = (x, d = 0) => (x === undefined || x === null ? '-' : Number(x).toFixed(d));
const us = (ms) => (ms * 1000).toFixed(0);
let md = `# Replicas benchmark ${new Date().toISOString()}\n\n`;
md += `Machine: ${os.cpus().length} x ${os.cpus()[0].model}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.release()}. `;
md += `Saturation: ${sessions} sessions, closed loop, ${duration} s. Latency: 1 session, ${latCalls} sequential echo calls. `;
md += `Best of ${rows.length / (2 * targets.length)} rounds per target. Gateway logLevel ${logLevel}. Nothing pinned: replicas, Redis, nginx and the load generator share the cores. Load average before/after: ${loadStart} / ${loadEnd} (other work on the machine counts against every target).\n\n`;
md += '| target | calls/s | p50 ms | p99 ms | errors | 1-session p50 µs | 1-session p99 µs |\n|---|---:|---:|---:|---:|---:|---:|\n';
for (const t of targets) {
  const s = get(t, 'sat'), l = get(t, 'lat');
  const errs = (s?.calls?.failed ?? 0) + (l?.calls?.failed ?? 0);
  md += `| ${t} | ${f(s?.calls?.per_s)} | ${f(s?.calls?.latency_ms?.p50, 2)} | ${f(s?.calls?.latency_ms?.p99, 2)} | ${errs} | ${us(l?.calls?.latency_ms?.p50 ?? 0)} | ${us(l?.calls?.latency_ms?.p99 ?? 0)} |\n`;
}
const r = (a, b) => (b ? (a / b).toFixed(2) : '-');
const sat = (t) => get(t, 'sat')?.calls?.per_s;
const p99 = (t) => get(t, 'sat')?.calls?.latency_ms?.p99;
const lat = (t) => get(t, 'lat')?.calls?.latency_ms?.p50;
md += '\n| ratio | value |\n|---|---:|\n';
md += `| throughput, 3 replicas / 1 replica (both Redis, behind nginx) | ${r(sat('redis-3-nginx'), sat('redis-1-nginx'))} |\n`;
md += `| p99 latency, 3 replicas / 1 replica (behind nginx) | ${r(p99('redis-3-nginx'), p99('redis-1-nginx'))} |\n`;
md += `| throughput, 3 replicas behind nginx / 1 replica in memory, direct | ${r(sat('redis-3-nginx'), sat('mem-1'))} |\n`;
md += `| throughput, Redis session store / memory (1 replica, direct) | ${r(sat('redis-1'), sat('mem-1'))} |\n`;
md += `| 1-session latency, Redis / memory (p50) | ${r(lat('redis-1'), lat('mem-1'))} |\n`;
md += `| Redis session lookup, added per request (1-session p50 difference) | ${us((lat('redis-1') ?? 0) - (lat('mem-1') ?? 0))} µs |\n`;
md += `| nginx hop, added per request (1-session p50 difference, Redis store) | ${us((lat('redis-1-nginx') ?? 0) - (lat('redis-1') ?? 0))} µs |\n`;
if (targets.includes('pg-1')) {
  md += `| throughput, PostgreSQL session store / memory (1 replica, direct) | ${r(sat('pg-1'), sat('mem-1'))} |\n`;
  md += `| throughput, PostgreSQL / Redis session store (1 replica, direct) | ${r(sat('pg-1'), sat('redis-1'))} |\n`;
  md += `| throughput, 3 replicas behind nginx, PostgreSQL / Redis | ${r(sat('pg-3-nginx'), sat('redis-3-nginx'))} |\n`;
  md += `| 1-session latency, PostgreSQL / memory (p50) | ${r(lat('pg-1'), lat('mem-1'))} |\n`;
  md += `| PostgreSQL session lookup, added per request (1-session p50 difference) | ${us((lat('pg-1') ?? 0) - (lat('mem-1') ?? 0))} µs |\n`;
}
md += '\n<details><summary>raw JSON (mcpgate-bench --json)</summary>\n\n```\n' + rows.map((x) => JSON.stringify(x)).join('\n') + '\n```\n</details>\n';
fs.writeFileSync(out, md);
process.stdout.write(md.split('<details>')[0]);
EOF
log "written to ${OUT#$ROOT/}"
