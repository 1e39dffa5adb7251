#!/usr/bin/env bash
# bench/run.sh - mcpgate against its peers on this machine: throughput, latency, RSS per idle
# session, cold start. Targets: mcpgate, mcp-proxy (punkpeye) and supergateway (stateful streamable
# HTTP), each fronting build/mcpgate-testserver, plus mcpgate-instant (mcpgate fronting
# build/mcpgate-instant, an upstream that costs next to nothing: the gateway's own share) and
# build/mcpgate-bare (raw POST: the limit of mcpgate's HTTP stack); the report gives calls/s of
# both gateways as a fraction of bare's, measured in the same run. Each target runs pinned to CPU 0, the load generator (build/mcpgate-bench)
# to CPU 1, traffic on 127.0.0.1 only. Sizes come from the environment (SIZES below); QUICK=1 is a
# smoke run under 2 minutes, the full run stays under 15. Prints the tables and writes them, with
# the machine, the exact commands and the raw JSON, to bench/results/<date>[-quick].md.
# Usage: bench/run.sh  (or: make bench; QUICK=1 make bench; TARGETS="mcpgate bare" bench/run.sh;
# NO_BUILD=1 BUILD=dir bench/run.sh to use binaries already built in dir; KEEP_LOGS=1 keeps target logs)
# Read next: tools/bench/README.md (the load generator), bench/report.mjs (the tables).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_DIR=$ROOT/bench
BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$ROOT/$BUILD
QUICK=${QUICK:-0}

# ---- SIZES (each overridable from the environment) ----
if [[ $QUICK = 1 ]]; then
    : "${SMALL_SESSIONS:=20}" "${SMALL_CALLS:=100}" "${SAT_SESSIONS:=50}" "${SAT_DURATION:=2}"
    : "${BIG_SESSIONS:=200}" "${BIG_CALLS:=10}"
    : "${OPEN_SESSIONS:=200}" "${OPEN_RATE:=500}" "${OPEN_DURATION:=3}"
    : "${HOLD_SESSIONS:=1000}" "${HOLD_SECONDS:=2}"
    : "${SG_MAX_SESSIONS:=50}" "${COLD_REPS:=1}"
else
    : "${SMALL_SESSIONS:=50}" "${SMALL_CALLS:=200}" "${SAT_SESSIONS:=50}" "${SAT_DURATION:=5}"
    : "${BIG_SESSIONS:=1000}" "${BIG_CALLS:=20}"
    : "${OPEN_SESSIONS:=1000}" "${OPEN_RATE:=1000}" "${OPEN_DURATION:=10}"
    : "${HOLD_SESSIONS:=1000 10000}" "${HOLD_SECONDS:=3}"
    : "${SG_MAX_SESSIONS:=200}" "${COLD_REPS:=3}"
fi
# HUGE_SESSIONS=10000 (off by default) adds a closed-loop run with that many sessions x HUGE_CALLS;
# mcpgate's default gateway.limits.maxInflightPerUpstream (1024) then sheds the excess with -32603.
: "${HUGE_SESSIONS:=0}" "${HUGE_CALLS:=5}"
# supergateway --stateful spawns one child per session (sh + the server): SG_MAX_SESSIONS caps its
# session counts so memory stays bounded.
: "${TARGETS:=mcpgate mcpgate-instant mcp-proxy supergateway bare}"
: "${MCPGATE_LOG_LEVEL:=info}" # mcpgate's default: one access-log line per request (to a file here)
: "${SG_LOG_LEVEL:=none}"      # supergateway's default "info" logs every message body (-15% calls/s)
: "${TARGET_CPU:=0}" "${BENCH_CPU:=1}"

BENCH=$BUILD/mcpgate-bench
TS=$BUILD/mcpgate-testserver
NODEBIN=$BENCH_DIR/node_modules/.bin
STAMP=$(date +%Y-%m-%d-%H%M%S)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mcpgate-bench.XXXXXX")
JSONL=$WORK/results.jsonl
COMMANDS=()
T_START=$SECONDS
TPID=""
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

log() { printf '[bench %3ds] %s\n' $((SECONDS - T_START)) "$*" >&2; }
note() { printf '{"note":%s}\n' "$(node -e 'process.stdout.write(JSON.stringify(process.argv[1]))' "$1")" >>"$JSONL"; log "note: $1"; }

cleanup() {
    if [[ -n $TPID ]]; then stop_target; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- build and peers ----
if [[ ${NO_BUILD:-0} = 1 ]]; then
    log "NO_BUILD=1: using the binaries in $BUILD"
elif log "building ($BUILD)" && ! make -C "$ROOT" build BUILD="$BUILD" >"$WORK/build.log" 2>&1; then
    if [[ -x $BENCH && -x $BUILD/mcpgate-bare && -x $BUILD/mcpgate && -x $TS ]]; then
        log "warning: the build failed (see $WORK/build.log); using the binaries already in $BUILD"
    else
        cat "$WORK/build.log" >&2
        exit 1
    fi
fi
PEERS_OK=1
if [[ -f $BENCH_DIR/node_modules/.package-lock.json && $BENCH_DIR/node_modules/.package-lock.json -nt $BENCH_DIR/package-lock.json ]]; then
    log "peers already installed (bench/node_modules matches package-lock.json)"
elif ! (cd "$BENCH_DIR" && npm ci --no-audit --no-fund --loglevel=error >"$WORK/npm.log" 2>&1); then
    PEERS_OK=0
    log "warning: npm ci failed (see $WORK/npm.log): mcp-proxy and supergateway are skipped"
fi

# ---- targets ----
# Prints a free loopback TCP port: below the ephemeral range (the load generator's thousands of
# client ports, live or in TIME_WAIT, would collide with a listener there) and not accepting.
free_port() {
    local p lo
    lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    ((lo > 12000)) || lo=32768
    for _ in $(seq 1 200); do
        p=$((10000 + RANDOM % (lo - 10000)))
        if ! { exec 9<>"/dev/tcp/127.0.0.1/$p"; } 2>/dev/null; then
            echo "$p"
            return 0
        fi
        exec 9<&- 9>&-
    done
    return 1
}

# http_ok PORT PATH: GET answers 200.
http_ok() {
    local line
    { exec 8<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
    printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$2" "$1" >&8
    IFS= read -r -t 2 line <&8 || line=""
    exec 8<&- 8>&-
    [[ $line == "HTTP/1."?" 200"* ]]
}

# target_cmd NAME PORT: sets CMD (the command line) and HEALTH (its readiness path).
target_cmd() {
    case $1 in
    mcpgate)
        CMD=("$BUILD/mcpgate" serve --config "$WORK/mcpgate.json" --listen "127.0.0.1:$2" --log-level "$MCPGATE_LOG_LEVEL")
        HEALTH=/healthz ;;
    mcpgate-instant)
        CMD=("$BUILD/mcpgate" serve --config "$WORK/mcpgate-instant.json" --listen "127.0.0.1:$2" --log-level "$MCPGATE_LOG_LEVEL")
        HEALTH=/healthz ;;
    mcp-proxy)
        CMD=("$NODEBIN/mcp-proxy" --port "$2" --host 127.0.0.1 --server stream -- "$TS")
        HEALTH=/ping ;;
    supergateway)
        CMD=("$NODEBIN/supergateway" --stdio "$TS" --outputTransport streamableHttp --stateful --port "$2"
            --healthEndpoint /healthz --logLevel "$SG_LOG_LEVEL")
        HEALTH=/healthz ;;
    bare)
        CMD=("$BUILD/mcpgate-bare" --listen "127.0.0.1:$2")
        HEALTH=/ ;;
    esac
}

quote() { printf '%q ' "$@"; }

# start_target NAME: runs it pinned to TARGET_CPU in its own process group; sets TPID, TPORT, TURL.
start_target() {
    TNAME=$1
    TPORT=$(free_port)
    target_cmd "$1" "$TPORT"
    TURL=http://127.0.0.1:$TPORT/mcp
    COMMANDS+=("taskset -c $TARGET_CPU $(quote "${CMD[@]}")")
    setsid taskset -c "$TARGET_CPU" "${CMD[@]}" >>"$WORK/$1.log" 2>&1 &
    TPID=$!
    local t0=$SECONDS
    until http_ok "$TPORT" "$HEALTH"; do
        if ! kill -0 "$TPID" 2>/dev/null; then
            note "$1 exited during startup (log: $WORK/$1.log)"
            wait "$TPID" 2>/dev/null || true
            TPID=""
            return 1
        fi
        if ((SECONDS - t0 > 60)); then
            note "$1 not ready after 60 s"
            stop_target
            return 1
        fi
        sleep 0.05
    done
}

# stop_target: SIGTERM to the group, SIGKILL after 5 s; waits until the group is gone.
stop_target() {
    [[ -n $TPID ]] || return 0
    kill -TERM -- "-$TPID" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 -- "-$TPID" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL -- "-$TPID" 2>/dev/null || true
    wait "$TPID" 2>/dev/null || true
    TPID=""
}

# bench LABEL ARGS...: runs the load generator on BENCH_CPU against TURL, appends its JSON line.
bench() {
    local label=$1 rc=0
    shift
    COMMANDS+=("taskset -c $BENCH_CPU $(quote "$BENCH" --url "$TURL" --json --label "$label" "$@")")
    timeout 600 taskset -c "$BENCH_CPU" "$BENCH" --url "$TURL" --json --label "$label" "$@" \
        >"$WORK/out.json" 2>>"$WORK/bench-stderr.log" || rc=$?
    if [[ -s $WORK/out.json ]]; then
        cat "$WORK/out.json" >>"$JSONL"
        node -e '
            const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
            const c = r.calls, l = c.latency_ms, s = r.sessions;
            console.error(`    ${r.label}: sessions ${s.ok}/${s.requested}` +
              (r.mode === "hold" ? `, ${r.rss ? r.rss.per_session_kb.toFixed(1) + " KiB/session" : ""}`
               : r.mode === "cold-start" ? `, healthz ${r.cold_start_ms.healthz.toFixed(1)} ms, first call ${r.cold_start_ms.first_call.toFixed(1)} ms`
               : `, ${c.per_s.toFixed(0)} calls/s, p50 ${l.p50.toFixed(2)} ms, p99 ${l.p99.toFixed(2)} ms, failed ${c.failed + c.unsent}`) +
              (Object.keys(r.errors).length ? ", errors " + JSON.stringify(r.errors) : ""));
        ' "$WORK/out.json" || true
    else
        note "$label: mcpgate-bench produced no result (exit $rc; stderr in $WORK/bench-stderr.log)"
    fi
}

available() {
    case $1 in
    mcp-proxy | supergateway) [[ $PEERS_OK = 1 && -x $NODEBIN/$1 ]] ;;
    *) return 0 ;;
    esac
}

cap_sessions() { # NAME N: N, or SG_MAX_SESSIONS for supergateway
    if [[ $1 = supergateway && $2 -gt $SG_MAX_SESSIONS ]]; then echo "$SG_MAX_SESSIONS"; else echo "$2"; fi
}

printf '{"mcpServers": {"ts": {"command": "%s"}}}\n' "$TS" >"$WORK/mcpgate.json"
printf '{"mcpServers": {"ts": {"command": "%s"}}}\n' "$BUILD/mcpgate-instant" >"$WORK/mcpgate-instant.json"
ARGS='{"message":"bench-{n}"}'

# ---- load: one instance per target for the closed- and open-loop runs ----
for t in $TARGETS; do
    available "$t" || { note "$t skipped (not installed)"; continue; }
    log "$t: load"
    start_target "$t" || continue
    raw=()
    [[ $t = bare ]] && raw=(--raw-post)
    # warm-up (JIT, allocator), not recorded
    timeout 120 taskset -c "$BENCH_CPU" "$BENCH" --url "$TURL" --sessions 10 --calls 50 --args "$ARGS" "${raw[@]}" \
        >/dev/null 2>&1 || true
    bench "$t:load-small" --sessions "$(cap_sessions "$t" "$SMALL_SESSIONS")" --calls "$SMALL_CALLS" \
        --args "$ARGS" "${raw[@]}"
    bench "$t:sat" --sessions "$(cap_sessions "$t" "$SAT_SESSIONS")" --duration "$SAT_DURATION" \
        --args "$ARGS" "${raw[@]}"
    bench "$t:load-big" --sessions "$(cap_sessions "$t" "$BIG_SESSIONS")" --calls "$BIG_CALLS" \
        --args "$ARGS" "${raw[@]}"
    if ((HUGE_SESSIONS > 0)); then
        bench "$t:huge" --sessions "$(cap_sessions "$t" "$HUGE_SESSIONS")" --calls "$HUGE_CALLS" \
            --args "$ARGS" --timeout 120 "${raw[@]}"
    fi
    bench "$t:open" --sessions "$(cap_sessions "$t" "$OPEN_SESSIONS")" --rate "$OPEN_RATE" \
        --duration "$OPEN_DURATION" --args "$ARGS" "${raw[@]}"
    stop_target
done

# ---- memory per idle session: a fresh instance per measurement ----
for t in $TARGETS; do
    [[ $t = bare || $t = mcpgate-instant ]] && continue # no sessions / the same gateway as mcpgate
    available "$t" || continue
    done_n=""
    for n in $HOLD_SESSIONS; do
        n=$(cap_sessions "$t" "$n")
        [[ " $done_n " == *" $n "* ]] && continue
        done_n="$done_n $n"
        log "$t: $n idle sessions"
        start_target "$t" || continue
        bench "$t:hold-$n" --sessions "$n" --hold "$HOLD_SECONDS" --rss-pid "$TPID" --timeout 120
        stop_target
    done
done

# ---- cold start: the load generator spawns the target itself ----
for t in $TARGETS; do
    available "$t" || continue
    log "$t: cold start x$COLD_REPS"
    for _ in $(seq 1 "$COLD_REPS"); do
        TPORT=$(free_port)
        target_cmd "$t" "$TPORT"
        TURL=http://127.0.0.1:$TPORT/mcp
        raw=()
        [[ $t = bare ]] && raw=(--raw-post)
        bench "$t:cold" --cold-start --health-url "http://127.0.0.1:$TPORT$HEALTH" --timeout 60 "${raw[@]}" \
            -- taskset -c "$TARGET_CPU" "${CMD[@]}"
    done
done

# ---- report ----
mkdir -p "$BENCH_DIR/results"
SUFFIX=""
if [[ $QUICK = 1 ]]; then SUFFIX=-quick; fi
OUT=$BENCH_DIR/results/$STAMP$SUFFIX.md
pkgver() { node -p "require('$BENCH_DIR/node_modules/$1/package.json').version" 2>/dev/null || echo n/a; }
{
    echo "# mcpgate benchmark, $(date '+%Y-%m-%d %H:%M:%S %Z')${SUFFIX:+ (QUICK=1)}"
    echo
    echo "## Machine"
    echo
    echo "- nproc: $(nproc); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "- memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); kernel: $(uname -sr); $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
    echo "- load average at the start: $LOAD_START, at the end: $(cut -d' ' -f1-3 /proc/loadavg) (shared machine: figures are noisy)"
    echo "- targets pinned to CPU $TARGET_CPU (with their stdio children), load generator to CPU $BENCH_CPU; loopback only"
    echo "- mcpgate $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)'), log level $MCPGATE_LOG_LEVEL;" \
        "node $(node --version); mcp-proxy $(pkgver mcp-proxy); supergateway $(pkgver supergateway) (--logLevel $SG_LOG_LEVEL)"
    echo "- sizes: SMALL=${SMALL_SESSIONS}x$SMALL_CALLS SAT=${SAT_SESSIONS} sessions for ${SAT_DURATION}s BIG=${BIG_SESSIONS}x$BIG_CALLS OPEN=${OPEN_SESSIONS} sessions @ $OPEN_RATE/s for ${OPEN_DURATION}s" \
        "HOLD=[$HOLD_SESSIONS] for ${HOLD_SECONDS}s HUGE=${HUGE_SESSIONS}x$HUGE_CALLS SG_MAX_SESSIONS=$SG_MAX_SESSIONS COLD_REPS=$COLD_REPS; run took $((SECONDS - T_START)) s"
    echo
    echo "## Results"
    echo
    node "$BENCH_DIR/report.mjs" "$JSONL"
    echo
    echo "## Commands"
    echo
    echo "mcpgate.json: \`$(sed "s#$ROOT/##g" "$WORK/mcpgate.json")\`"
    echo
    echo '```'
    printf '%s\n' "${COMMANDS[@]}" | sed "s#$ROOT/##g"
    echo '```'
    echo
    echo "<details><summary>raw mcpgate-bench JSON</summary>"
    echo
    echo '```json'
    cat "$JSONL"
    echo '```'
    echo "</details>"
} >"$OUT"
node "$BENCH_DIR/report.mjs" "$JSONL"
if [[ ${KEEP_LOGS:-0} = 1 ]] || grep -q '"note"' "$JSONL"; then
    log "written $OUT (target logs kept in $WORK)"
else
    rm -rf "$WORK" # the access logs reach ~40 MB; KEEP_LOGS=1 keeps them
    log "written $OUT"
fi
