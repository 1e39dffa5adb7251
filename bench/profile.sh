#!/usr/bin/env bash
# bench/profile.sh - instructions per tool call (valgrind callgrind: repeatable on a shared machine,
# unlike wall-clock figures) in each process on the path of one call, and where they go.
#
# What is measured (the target under callgrind, everything else native):
#   gateway      build/mcpgate fronting build/mcpgate-testserver (the bench/run.sh setup)
#   journal      the same with gateway.journal on (compare with gateway: the journal's cost per call)
#   testserver   build/mcpgate-testserver behind a native mcpgate (the upstream's own share)
#   instant      build/mcpgate fronting build/mcpgate-instant (an upstream that costs ~nothing)
#   instant-child  build/mcpgate-instant itself, behind a native mcpgate
#   bare         build/mcpgate-bare with --raw-post (no MCP, no upstream: the HTTP stack alone)
#   instant-traced, gateway-traced
#                instant / gateway with gateway.tracing at sampleRatio 1 exporting to a local OTLP
#                receiver (python3, answers 200): the cost of tracing is the difference per call
#                (TRACE_RATIO=0.1 bench/profile.sh instant-traced: another ratio;
#                TRACE_PROTOCOL=http/protobuf: the protobuf export, default http/json;
#                TRACE_HOST=localhost: the collector named by host, default 127.0.0.1)
#   traced-journal the gateway target with tracing (as gateway-traced) and the journal both on
#   remote       build/mcpgate fronting a remote Streamable HTTP upstream (a native mcpgate serving
#                build/mcpgate-testserver, as bench/remote.sh): the remote hop's cost per call
#                (REMOTE_HOST=localhost: the upstream's URL names a host, so its requests are pinned
#                to the resolved address, as for any upstream not given by IP)
# Method: warm up, then callgrind_control -z / -d around two closed-loop runs of SESSIONS sessions
# x K1 and x K2 calls; Ir per call = (Ir(K2) - Ir(K1)) / (SESSIONS x (K2 - K1)), so session setup
# and teardown cancel out. Prints one line per target, writes the profiles (flat, self and
# inclusive, per call) to $OUT/<target>.txt and the raw callgrind files to $OUT/.
# Usage: bench/profile.sh [gateway testserver instant instant-child bare instant-traced gateway-traced remote]
#        (default: the first five)
#        BUILD=build-perf SESSIONS=10 K1=100 K2=300 LOG_LEVEL=info OUT=/tmp/prof bench/profile.sh
# Needs valgrind and python3. Read next: bench/results/ (figures recorded with this script).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$ROOT/$BUILD
: "${SESSIONS:=10}" "${K1:=100}" "${K2:=300}" "${LOG_LEVEL:=info}" "${TOP:=30}"
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/mcpgate-profile.XXXXXX")}
mkdir -p "$OUT"
TARGETS=${*:-gateway testserver instant instant-child bare}
GW_EXTRA='{}' # the config's "gateway" object (gateway_with)
VG=(valgrind --tool=callgrind --compress-strings=no --compress-pos=no)
ARGS='{"message":"bench-{n}"}'
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

port() { echo $((20000 + RANDOM % 10000)); }

wait_http() { # PORT PATH
    for _ in $(seq 1 300); do
        if curl -fs -o /dev/null "http://127.0.0.1:$1$2"; then return 0; fi
        sleep 0.1
    done
    echo "profile.sh: nothing answers on port $1" >&2
    return 1
}

load() { # URL CALLS [extra args]
    local url=$1 calls=$2
    shift 2
    "$BUILD/mcpgate-bench" --url "$url" --sessions "$SESSIONS" --calls "$calls" --args "$ARGS" --timeout 120 "$@" \
        >"$OUT/bench.log" 2>&1 || { cat "$OUT/bench.log" >&2; return 1; }
}

totals() { # callgrind file -> total Ir
    awk '/^(totals|summary):/ {v=$2} END {print v}' "$1"
}

# measure NAME VGPID URL [bench args]: the two runs around zero/dump of callgrind process VGPID.
measure() {
    local name=$1 pid=$2 url=$3
    shift 3
    load "$url" 20 "$@"
    sleep 1.5 # periodic work that starts once (the first trace export creates its HTTP client) is done
    callgrind_control -z "$pid" >/dev/null
    load "$url" "$K1" "$@"
    callgrind_control -d "k1" "$pid" >/dev/null
    callgrind_control -z "$pid" >/dev/null
    load "$url" "$K2" "$@"
    callgrind_control -d "k2" "$pid" >/dev/null
    local f1 f2 i1 i2
    f1=$(ls -t "$OUT"/cg."$name"."$pid".* | sed -n 2p)
    f2=$(ls -t "$OUT"/cg."$name"."$pid".* | sed -n 1p)
    i1=$(totals "$f1")
    i2=$(totals "$f2")
    local per=$(((i2 - i1) / (SESSIONS * (K2 - K1))))
    printf '%-11s %9d Ir per call   (%d calls: %d Ir, %d calls: %d Ir)\n' "$name" "$per" \
        $((SESSIONS * K1)) "$i1" $((SESSIONS * K2)) "$i2" | tee -a "$OUT/summary.txt"
    python3 "$ROOT/bench/cgflat.py" "$f2" --per $((SESSIONS * K2)) --top "$TOP" >"$OUT/$name.txt"
}

gateway_with() { # NAME UPSTREAM_COMMAND...   (GW_EXTRA: the config's "gateway" object, default {})
    local name=$1
    shift
    local p cfg
    p=$(port)
    cfg=$OUT/$name.json
    GW_EXTRA=$GW_EXTRA python3 -c 'import json,os,sys; print(json.dumps({"mcpServers": {"ts": {"command": sys.argv[1], "args": sys.argv[2:]}}, "gateway": json.loads(os.environ["GW_EXTRA"])}))' \
        "$@" >"$cfg"
    "${VG[@]}" --callgrind-out-file="$OUT/cg.$name.%p" "$BUILD/mcpgate" serve --config "$cfg" \
        --listen "127.0.0.1:$p" --log-level "$LOG_LEVEL" >"$OUT/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_http "$p" /healthz
    measure "$name" "$pid" "http://127.0.0.1:$p/mcp"
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
}

remote_target() { # the gateway under callgrind with one {"url": ...} entry; its upstream native
    local up gw cfg upid
    up=$(port)
    gw=$(port)
    python3 -c 'import json,sys; print(json.dumps({"mcpServers": {"ts": {"command": sys.argv[1]}}, "gateway": {"logLevel": "warn"}}))' \
        "$BUILD/mcpgate-testserver" >"$OUT/remote-upstream.json"
    "$BUILD/mcpgate" serve --config "$OUT/remote-upstream.json" --listen "127.0.0.1:$up" --log-level warn \
        >"$OUT/remote-upstream.log" 2>&1 &
    upid=$!
    PIDS+=("$upid")
    wait_http "$up" /healthz
    cfg=$OUT/remote.json
    python3 -c 'import json,sys; print(json.dumps({"mcpServers": {"ts": {"url": sys.argv[1], "type": "http"}}, "gateway": {"egress": {"allowCidrs": ["127.0.0.0/8"]}}}))' \
        "http://${REMOTE_HOST:-127.0.0.1}:$up/mcp" >"$cfg"
    "${VG[@]}" --callgrind-out-file="$OUT/cg.remote.%p" "$BUILD/mcpgate" serve --config "$cfg" \
        --listen "127.0.0.1:$gw" --log-level "$LOG_LEVEL" >"$OUT/remote.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_http "$gw" /healthz
    measure remote "$pid" "http://127.0.0.1:$gw/mcp"
    kill -TERM "$pid" "$upid"
    wait "$pid" "$upid" 2>/dev/null || true
}

child_target() { # NAME BINARY: the upstream child under callgrind, behind a native mcpgate
    local name=$1 bin=$2 p gpid tpid
    p=$(port)
    python3 -c 'import json,sys; print(json.dumps({"mcpServers": {"ts": {"command": sys.argv[1], "args": sys.argv[2:]}}}))' \
        "$(command -v valgrind)" --tool=callgrind --compress-strings=no --compress-pos=no \
        "--callgrind-out-file=$OUT/cg.$name.%p" "$bin" >"$OUT/$name.json"
    "$BUILD/mcpgate" serve --config "$OUT/$name.json" --listen "127.0.0.1:$p" --log-level warn \
        >"$OUT/$name.log" 2>&1 &
    gpid=$!
    PIDS+=("$gpid")
    wait_http "$p" /healthz
    load "http://127.0.0.1:$p/mcp" 5 # the child is running and initialized
    tpid=$(pgrep -f -- "--callgrind-out-file=$OUT/cg.$name" | head -1)
    measure "$name" "$tpid" "http://127.0.0.1:$p/mcp"
    kill -TERM "$gpid"
    wait "$gpid" 2>/dev/null || true
}

# A local OTLP/HTTP receiver that answers 200 to every POST (the *-traced targets).
receiver() {
    local p
    p=$(port)
    python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.send_header("content-length", "2"); self.end_headers(); self.wfile.write(b"{}")
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()' "$p" >/dev/null 2>&1 &
    PIDS+=("$!")
    GW_EXTRA="{\"tracing\": {\"endpoint\": \"http://${TRACE_HOST:-127.0.0.1}:$p/v1/traces\", \"sampleRatio\": ${TRACE_RATIO:-1}, \"protocol\": \"${TRACE_PROTOCOL:-http/json}\"}}"
}

for t in $TARGETS; do
    GW_EXTRA='{}'
    case $t in
    instant-traced) receiver; gateway_with instant-traced "$BUILD/mcpgate-instant" ;;
    gateway-traced) receiver; gateway_with gateway-traced "$BUILD/mcpgate-testserver" ;;
    gateway) gateway_with gateway "$BUILD/mcpgate-testserver" ;;
    traced-journal) # the gateway target with tracing (TRACE_RATIO, default 1) and the journal both on
        receiver
        head -c 32 /dev/urandom | base64 >"$OUT/journal.key"
        GW_EXTRA="${GW_EXTRA%\}}, \"journal\": {\"path\": \"$OUT/journal.jsonl\", \"hmacKey\": \"\${file:$OUT/journal.key}\"}}"
        gateway_with traced-journal "$BUILD/mcpgate-testserver" ;;
    journal) # the gateway target with the call journal on (HMAC checkpoints; its writer thread counts)
        head -c 32 /dev/urandom | base64 >"$OUT/journal.key"
        GW_EXTRA="{\"journal\": {\"path\": \"$OUT/journal.jsonl\", \"hmacKey\": \"\${file:$OUT/journal.key}\"}}"
        gateway_with journal "$BUILD/mcpgate-testserver" ;;
    instant) gateway_with instant "$BUILD/mcpgate-instant" ;;
    remote) remote_target ;;
    testserver) child_target testserver "$BUILD/mcpgate-testserver" ;;
    instant-child) child_target instant-child "$BUILD/mcpgate-instant" ;;
    bare)
        p=$(port)
        "${VG[@]}" --callgrind-out-file="$OUT/cg.bare.%p" "$BUILD/mcpgate-bare" --listen "127.0.0.1:$p" \
            >"$OUT/bare.log" 2>&1 &
        pid=$!
        PIDS+=("$pid")
        wait_http "$p" /
        measure bare "$pid" "http://127.0.0.1:$p/mcp" --raw-post
        kill -TERM "$pid"
        wait "$pid" 2>/dev/null || true
        ;;
    *) echo "profile.sh: unknown target '$t' (gateway journal traced-journal remote testserver instant instant-child bare instant-traced gateway-traced)" >&2; exit 2 ;;
    esac
done
echo "profiles: $OUT/<target>.txt"
