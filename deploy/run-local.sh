#!/usr/bin/env bash
# deploy/run-local.sh - three mcpgate replicas sharing one Redis behind nginx, on this machine, in
# the foreground (Ctrl-C stops everything). The same topology as deploy/docker-compose.yml,
# without containers: a way to see round-robin balancing with no affinity work.
#
#   make build && deploy/run-local.sh [CONFIG]      MCP endpoint: http://127.0.0.1:8080/mcp
#
# CONFIG: an mcpServers config (default: the bundled test server, plus a second copy with
# "isolation": "session"). Ports: PORT (nginx, 8080), REPLICA_PORTS ("8081 8082 8083"),
# REDIS_PORT (6380). Logs go to $STATE/ (printed at start). Needs redis-server and nginx
# (scripts/install-deps.sh). docs/operations.md walks through it.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
PORT=${PORT:-8080}
REPLICA_PORTS=${REPLICA_PORTS:-"8081 8082 8083"}
REDIS_PORT=${REDIS_PORT:-6380}
STATE=$(mktemp -d "${TMPDIR:-/tmp}/mcpgate-local.XXXXXX")
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
PIDS=()

stop() {
    trap - INT TERM EXIT
    echo "run-local: stopping (SIGTERM: the replicas drain)" >&2
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "run-local: logs kept in $STATE" >&2
}
trap stop INT TERM EXIT

[[ -x $BUILD/mcpgate ]] || { echo "run-local: $BUILD/mcpgate is missing: run make build" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "run-local: redis-server is missing (scripts/install-deps.sh)" >&2; exit 1; }
[[ -x $NGINX ]] || { echo "run-local: nginx is missing (scripts/install-deps.sh)" >&2; exit 1; }

CONFIG=${1:-$STATE/config.json}
if [[ -z ${1:-} ]]; then
    cat >"$CONFIG" <<EOF
{
  "mcpServers": {
    "testserver": {"command": "$BUILD/mcpgate-testserver"},
    "notes": {"command": "$BUILD/mcpgate-testserver", "isolation": "session"}
  },
  "gateway": {
    "sessions": {"secret": "$(openssl rand -hex 24)"},
    "requestStateKey": "$(openssl rand -hex 32)"
  }
}
EOF
fi

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$STATE" --appendonly yes --save '' \
    >"$STATE/redis.log" 2>&1 &
PIDS+=($!)
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.05; done

servers=""
REPLICA_PIDS=""
for p in $REPLICA_PORTS; do
    MCPGATE_SESSION_STORE="redis://127.0.0.1:$REDIS_PORT/0" \
        "$BUILD/mcpgate" serve --config "$CONFIG" --listen "127.0.0.1:$p" >"$STATE/replica-$p.log" 2>&1 &
    PIDS+=($!)
    REPLICA_PIDS+="$! "
    servers+="        server 127.0.0.1:$p max_fails=1 fail_timeout=2s;\n"
done

mkdir -p "$STATE/nginx"
sed -e '/server gateway-[0-9]*:8080/d' -e "s#upstream mcpgate {#upstream mcpgate {\n$servers#" \
    -e "s#^pid .*#pid $STATE/nginx/nginx.pid;#" -e "s#^error_log .*#error_log $STATE/nginx/error.log warn;#" \
    -e "s#/tmp/nginx-#$STATE/nginx/#g" -e "s#listen 8080;#listen 127.0.0.1:$PORT;#" \
    "$ROOT/deploy/nginx.conf" >"$STATE/nginx/nginx.conf"
"$NGINX" -p "$STATE/nginx" -c "$STATE/nginx/nginx.conf" -g 'daemon off;' >"$STATE/nginx/out.log" 2>&1 &
PIDS+=($!)

for p in $REPLICA_PORTS; do
    until curl -fs -o /dev/null "http://127.0.0.1:$p/readyz" 2>/dev/null; do sleep 0.1; done
done
cat >&2 <<EOF
run-local: ready.
  MCP endpoint   http://127.0.0.1:$PORT/mcp   (nginx, round robin over $REPLICA_PORTS)
  readiness      curl -s http://127.0.0.1:${REPLICA_PORTS%% *}/readyz | jq .store
  redis          redis-cli -p $REDIS_PORT --scan --pattern 'mcpgate:*'
  logs           $STATE
Kill a replica (kill -9 one of the pids ${REPLICA_PIDS}) and watch the sessions carry on.
EOF
wait -n "${PIDS[@]}" || true
