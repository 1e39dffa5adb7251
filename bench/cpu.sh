#!/usr/bin/env bash
# bench/cpu.sh - CPU time per tool call of a target and its children (perf stat task-clock, user +
# kernel), context switches per call, and calls/s, for a fixed-count closed-loop run pinned as
# bench/run.sh pins it. On a shared 2-core machine calls/s mostly measures the load generator and
# the neighbours; CPU per call does not: bare_us / gateway_us is the throughput ratio the two would
# have if the target core were the bottleneck.
# Targets: gateway (build/mcpgate fronting mcpgate-testserver), gateway-instant (fronting
# mcpgate-instant, an upstream that costs ~nothing), bare (mcpgate-bare, --raw-post), and the
# gateway-instant setup with operations features on (the cost of tracing and the journal, #16):
#   traced          gateway.tracing at sampleRatio TRACE_RATIO (default 1) exporting to a local
#                   OTLP/HTTP receiver (mcpgate-bare on the load generator's core: not counted),
#                   protocol TRACE_PROTOCOL (default http/json; http/protobuf), host TRACE_HOST
#                   (default 127.0.0.1; localhost: the collector named by host)
#   journal         gateway.journal on (HMAC checkpoints)
#   traced-journal  both
# Reps are interleaved (A B A B ...: every target once per rep, in the order given) so the
# machine's load drifts over all of them alike. After the last rep a summary gives, per target, the
# median gateway-process CPU per call - utime+stime from /proc/PID/stat (all its threads; the
# upstream child apart) and the same from /proc/PID/task/*/schedstat (nanoseconds: no 10 ms ticks)
# - its ratio to the first target's median, and the median of the per-rep ratios (target over the
# first target in the same rep: the steadier figure when the load drifts), then the loop thread's
# own CPU per call alone (work moved to other threads, e.g. the journal's writer, leaves it). For
# #16's goal run
#   REPS=5 bench/cpu.sh gateway-instant traced journal traced-journal
# Usage: bench/cpu.sh [gateway gateway-instant bare traced journal traced-journal]
#        (default: gateway gateway-instant bare)
#        BUILD=build SESSIONS=50 CALLS=800 LOG_LEVEL=info REPS=1 bench/cpu.sh
#        GATEWAY_JSON='{"journal": {"path": "/tmp/j.jsonl"}}' bench/cpu.sh gateway-instant
#        (GATEWAY_JSON: the config's "gateway" object for gateway and gateway-instant, default {})
#        EVENTS=syscalls:sys_enter_write,syscalls:sys_enter_futex bench/cpu.sh traced   (more perf
#        events, printed per call: where a feature's system calls come from)
#        PERF_RECORD=DIR bench/cpu.sh traced-journal   (also a sampled profile of each run, perf record
#        -e cpu-clock -g, into DIR/<target>.<rep>.data: native, SHA-NI and the kernel included; the
#        profiler's own cost inflates that run's CPU figures)
#        (PERF_CALLGRAPH="--call-graph dwarf" PERF_FREQ=499: whole call chains without frame pointers)
# Needs perf (software events only: works where hardware counters do not) and python3. The
# user/kernel split comes from /proc/PID/stat (10 ms ticks: use enough calls that a run takes a
# second of CPU or more). The traced targets also print spans exported/dropped (/metrics): a drop
# means the export could not keep up, and the figure understates tracing. Read next:
# bench/profile.sh (instructions, repeatable), bench/results/.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$ROOT/$BUILD
: "${SESSIONS:=50}" "${CALLS:=800}" "${LOG_LEVEL:=info}" "${REPS:=1}" "${GATEWAY_JSON:={\}}"
TARGETS=${*:-gateway gateway-instant bare}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mcpgate-cpu.XXXXXX")
TPID=""
RPID=""
trap '[[ -n $TPID ]] && kill -TERM -- "-$TPID" 2>/dev/null; [[ -n $RPID ]] && kill -TERM "$RPID" 2>/dev/null; rm -rf "$WORK"' EXIT

stat_of() { # PIDS(comma-separated) -> "pid:utime:stime:sched_ns:vol:invol:loop_ns ..." (clock ticks; ns on
    local p  # CPU, all threads; the main (loop) thread's voluntary and involuntary context switches, and
             # its own ns on CPU)
    for p in ${1//,/ }; do
        awk '{printf "%s:%d:%d:", $1, $14, $15}' "/proc/$p/stat"
        cat /proc/"$p"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f:", s}'
        awk '/^voluntary_ctxt/ {v = $2} /^nonvoluntary_ctxt/ {n = $2} END {printf "%d:%d:", v, n}' "/proc/$p/task/$p/status"
        awk '{printf "%.0f ", $1}' "/proc/$p/task/$p/schedstat"
    done
}

# The OTLP/HTTP receiver of the traced targets (started once): mcpgate-bare answers every POST with
# 200, natively and fast enough that the export keeps up (a python receiver did not: spans dropped).
receiver() {
    [[ -n $RPID ]] && return 0
    RPORT=$((20000 + RANDOM % 10000))
    taskset -c 1 "$BUILD/mcpgate-bare" --listen "127.0.0.1:$RPORT" >/dev/null 2>&1 &
    RPID=$!
    for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$RPORT/" && break; sleep 0.05; done
}

head -c 32 /dev/urandom | base64 >"$WORK/journal.key"
TRACING='{"endpoint": "http://'"${TRACE_HOST:-127.0.0.1}"':RPORT/v1/traces", "sampleRatio": '"${TRACE_RATIO:-1}"', "protocol": "'"${TRACE_PROTOCOL:-http/json}"'"}'
JOURNAL='{"path": "'$WORK'/journal.jsonl", "hmacKey": "${file:'$WORK'/journal.key}"}'

for rep in $(seq 1 "$REPS"); do
    for t in $TARGETS; do
        port=$((20000 + RANDOM % 10000))
        raw=()
        gw=$GATEWAY_JSON
        up=$BUILD/mcpgate-instant
        case $t in
        gateway | gateway-instant) [[ $t = gateway ]] && up=$BUILD/mcpgate-testserver ;;
        traced) receiver; gw="{\"tracing\": ${TRACING/RPORT/$RPORT}}" ;;
        journal) rm -f "$WORK"/journal.jsonl*; gw="{\"journal\": $JOURNAL}" ;;
        traced-journal) receiver; rm -f "$WORK"/journal.jsonl*; gw="{\"tracing\": ${TRACING/RPORT/$RPORT}, \"journal\": $JOURNAL}" ;;
        bare) ;;
        *) echo "cpu.sh: unknown target '$t' (gateway gateway-instant bare traced journal traced-journal)" >&2; exit 2 ;;
        esac
        if [[ $t = bare ]]; then
            cmd=("$BUILD/mcpgate-bare" --listen "127.0.0.1:$port")
            health=/
            raw=(--raw-post)
        else
            printf '{"mcpServers": {"ts": {"command": "%s"}}, "gateway": %s}\n' "$up" "$gw" >"$WORK/config.json"
            cmd=("$BUILD/mcpgate" serve --config "$WORK/config.json" --listen "127.0.0.1:$port" --log-level "$LOG_LEVEL")
            health=/healthz
        fi
        setsid taskset -c 0 "${cmd[@]}" >"$WORK/$t.log" 2>&1 &
        TPID=$!
        for _ in $(seq 1 200); do curl -fs -o /dev/null "http://127.0.0.1:$port$health" && break; sleep 0.05; done
        url=http://127.0.0.1:$port/mcp
        taskset -c 1 "$BUILD/mcpgate-bench" --url "$url" --sessions 10 --calls 50 "${raw[@]}" >/dev/null 2>&1 # warm-up
        [[ $t = traced* ]] && sleep 1.2 # the first export (it creates the HTTP client) falls before the run
        pids=$(echo "$TPID" $(pgrep -P "$TPID" || true) | tr ' ' ',')
        s0=$(stat_of "$pids")
        PRPID=""
        if [[ -n ${PERF_RECORD:-} ]]; then # a sampled profile of the target's process (not its child)
            mkdir -p "$PERF_RECORD"
            perf record -q -F "${PERF_FREQ:-2999}" -e cpu-clock ${PERF_CALLGRAPH:--g} -p "$TPID" -o "$PERF_RECORD/$t.$rep.data" 2>/dev/null &
            PRPID=$!
            sleep 0.3
        fi
        perf stat -x, -e "task-clock,context-switches${EVENTS:+,$EVENTS}" -p "$pids" -o "$WORK/perf.txt" -- \
            taskset -c 1 "$BUILD/mcpgate-bench" --url "$url" --sessions "$SESSIONS" --calls "$CALLS" \
            --args '{"message":"bench-{n}"}' --json "${raw[@]}" >"$WORK/out.json" 2>/dev/null || true
        s1=$(stat_of "$pids")
        [[ -n $PRPID ]] && { kill -INT "$PRPID"; wait "$PRPID" 2>/dev/null || true; }
        spans=""
        if [[ $t = traced* ]]; then
            sleep 1.2 # the last batch leaves
            spans=$(curl -fs "http://127.0.0.1:$port/metrics" | awk '/^mcpgate_trace_spans_total/ {sub(/.*outcome="/, ""); sub(/"}/, ""); printf "%s=%s ", $1, $2}')
        fi
        python3 - "$t" "$WORK/out.json" "$WORK/perf.txt" "$s0" "$s1" "$spans" <<'EOF' | tee -a "$WORK/lines.txt"
import json, sys
name, out, perf, s0, s1, spans = sys.argv[1:7]
r = json.load(open(out)); c = r["calls"]; n = max(c["ok"], 1)
ev = {}
for line in open(perf):
    f = line.strip().split(",")
    if len(f) > 3 and f[0][:1].isdigit():
        ev[f[2]] = float(f[0])
a = {x.split(":")[0]: x.split(":")[1:] for x in s0.split()}
b = {x.split(":")[0]: x.split(":")[1:] for x in s1.split()}
rows = [(p, [int(v) - int(w) for v, w in zip(b[p], a[p])]) for p in b if p in a]
split = "; ".join("%s user %.1f kernel %.1f" % ("target" if i == 0 else "child", d[0] * 1e4 / n, d[1] * 1e4 / n)
                  for i, (p, d) in enumerate(rows))
g = rows[0][1] + [0, 0, 0, 0]
print("%-16s %6d calls %8.0f calls/s  cpu %5.1f us/call  ctx-switches %.2f/call (loop thread: %.2f voluntary, "
      "%.2f involuntary, %.2f us/call on CPU)  (%s us/call)%s" %
      (name, c["ok"], c["per_s"], ev.get("task-clock", 0) * 1000 / n, ev.get("context-switches", 0) / n,
       g[3] / n, g[4] / n, g[5] / 1e3 / n, split,
       "  spans " + spans if spans else ""))
extra = [k for k in ev if k not in ("task-clock", "context-switches")]
if extra:
    print("  %-14s per call: %s" % (name, ", ".join("%s %.2f" % (k.replace("syscalls:sys_enter_", ""), ev[k] / n) for k in extra)))
print("#RESULT %s %.3f %.3f %d %.3f" % (name, (g[0] + g[1]) * 1e4 / n, g[2] / 1e3 / n, c["ok"], g[5] / 1e3 / n))
EOF
        kill -TERM -- "-$TPID" 2>/dev/null || true
        wait "$TPID" 2>/dev/null || true
        TPID=""
    done
done

# The summary: medians per target and their ratio to the first target's (the same run), and the
# median of the per-rep ratios (each rep's figure over the same rep's first target: the load of the
# moment cancels out, the steadier figure on a shared machine).
python3 - "$WORK/lines.txt" $TARGETS <<'EOF'
import statistics, sys
res = {}
for line in open(sys.argv[1]):
    if line.startswith("#RESULT "):
        _, name, ticks, sched, n, loop = line.split()
        res.setdefault(name, []).append((float(ticks), float(sched), float(loop)))
order = [t for t in dict.fromkeys(sys.argv[2:]) if t in res]
if not order:
    sys.exit(0)
base = order[0]
bt = statistics.median(x[0] for x in res[base]); bs = statistics.median(x[1] for x in res[base])
print("\ngateway process CPU per call, median of %d interleaved reps: utime+stime | schedstat (ratio to %s) | "
      "median of per-rep ratios:" % (len(res[base]), base))
for t in order:
    mt = statistics.median(x[0] for x in res[t]); ms = statistics.median(x[1] for x in res[t])
    pr = [a[1] / b[1] for a, b in zip(res[t], res[base]) if b[1] > 0]
    print("  %-16s %6.2f us  %+6.1f%%  | %6.2f us  %+6.1f%%  | %+6.1f%%   reps: %s" % (
        t, mt, 100 * (mt / bt - 1) if bt else 0, ms, 100 * (ms / bs - 1) if bs else 0,
        100 * (statistics.median(pr) - 1) if pr else 0, " ".join("%.2f" % x[1] for x in res[t])))
print("loop thread alone (schedstat), median of the per-rep ratios:")
for t in order:
    pr = [a[2] / b[2] for a, b in zip(res[t], res[base]) if b[2] > 0]
    print("  %-16s %6.2f us  %+6.1f%%   reps: %s" % (t, statistics.median(x[2] for x in res[t]),
          100 * (statistics.median(pr) - 1) if pr else 0, " ".join("%.2f" % x[2] for x in res[t])))
EOF
