#!/usr/bin/env bash
# test/install/run.sh - checks `make install` and what README.md promises a newcomer (a part of
# make test, a few seconds; docs/testing.md):
#   - make install DESTDIR=STAGE PREFIX=/usr/local stages bin/mcpgate, bin/mcpgate-testserver, the
#     systemd unit (ExecStart in the prefix) and the docs;
#   - the installed mcpgate answers --version with the project version;
#   - `mcpgate check` accepts README.md's example config (extracted by readme-config.sh);
#   - the installed mcpgate, without --config, finds the installed mcpgate-testserver beside it
#     (${self_dir}) and gets ready;
#   - a second gateway on a taken port stops with a message naming --listen and MCPGATE_LISTEN;
#   - systemd-analyze verify accepts the installed unit (skipped, saying so, without systemd-analyze).
#
#   test/install/run.sh [BUILD]
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/mcpgate-install.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$STAGE"
}
trap cleanup EXIT
passed=0
failed=0
ok() {
    passed=$((passed + 1))
    echo "  ok   $1"
}
no() {
    failed=$((failed + 1))
    echo "  FAIL $1"
    [[ -n ${2:-} ]] && sed 's/^/       /' <<<"$2"
    return 0
}

echo "== install test (make install DESTDIR=$STAGE PREFIX=/usr/local)"
if out=$(make -s install BUILD="$BUILD" DESTDIR="$STAGE" PREFIX=/usr/local 2>&1); then
    ok "make install DESTDIR PREFIX=/usr/local"
else
    no "make install DESTDIR PREFIX=/usr/local" "$out"
fi
P=$STAGE/usr/local
missing=""
for f in bin/mcpgate bin/mcpgate-testserver lib/systemd/system/mcpgate.service share/doc/mcpgate/README.md \
    share/doc/mcpgate/operations.md; do
    [[ -e $P/$f ]] || missing+=" $f"
done
[[ -z $missing ]] && ok "installed files in <prefix>" || no "installed files in <prefix>" "missing:$missing"

want="mcpgate $(sed -n 's/^project(mcpgate VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)"
got=$("$P/bin/mcpgate" --version 2>&1) || true
[[ $got == "$want" ]] && ok "<prefix>/bin/mcpgate --version: $got" || no "<prefix>/bin/mcpgate --version" "expected '$want', got '$got'"

test/install/readme-config.sh >"$STAGE/servers.json"
if out=$("$P/bin/mcpgate" check --config "$STAGE/servers.json" 2>&1); then
    ok "mcpgate check accepts README.md's example config"
else
    no "mcpgate check accepts README.md's example config" "$out"
fi

# wait_port LOG PID: the port of the gateway's "listening" line.
wait_port() {
    local i port
    for ((i = 0; i < 100; i++)); do
        port=$(grep -o '"msg":"listening".*' "$1" 2>/dev/null | grep -o '"port":[0-9]*' | head -1 | cut -d: -f2) || true
        [[ -n $port ]] && { echo "$port"; return 0; }
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# The embedded default config fronts ${self_dir}/mcpgate-testserver: the installed one.
(cd / && exec env -i PATH=/usr/bin:/bin "$P/bin/mcpgate" serve --listen 127.0.0.1:0) >"$STAGE/serve.log" 2>&1 &
PIDS+=($!)
gw=$!
port=$(wait_port "$STAGE/serve.log" "$gw") || port=""
ready=""
if [[ -n $port ]]; then
    for ((i = 0; i < 100; i++)); do
        ready=$(curl -fs "http://127.0.0.1:$port/readyz" 2>/dev/null) && break
        sleep 0.05
    done
fi
if [[ $ready == *'"state":"ready"'* ]]; then
    ok "installed mcpgate serve (default config) runs <prefix>/bin/mcpgate-testserver"
else
    no "installed mcpgate serve (default config) runs <prefix>/bin/mcpgate-testserver" "readyz: $ready
$(tail -5 "$STAGE/serve.log")"
fi

# A second gateway on the same port: a message that says what to do.
if [[ -n $port ]]; then
    rc=0
    out=$(timeout 10 "$P/bin/mcpgate" serve --listen "127.0.0.1:$port" 2>&1) || rc=$?
    if [[ $rc == 1 && $out == *"address already in use"* && $out == *"--listen 127.0.0.1:"* &&
        $out == *"MCPGATE_LISTEN="* && $out == *"sport = :$port"* ]]; then
        ok "port taken: exit 1, says how to find the other process and how to choose another address"
    else
        no "port taken: exit 1, says how to find the other process and how to choose another address" "exit $rc: $out"
    fi
else
    no "port taken (no first gateway to collide with)"
fi

unit=$P/lib/systemd/system/mcpgate.service
if grep -q "^ExecStart=/usr/local/bin/mcpgate serve" "$unit" 2>/dev/null; then
    ok "installed unit's ExecStart is <prefix>/bin/mcpgate"
else
    no "installed unit's ExecStart is <prefix>/bin/mcpgate" "$(grep ExecStart "$unit" 2>&1)"
fi
if command -v systemd-analyze >/dev/null; then
    # The staged unit, its ExecStart pointed at the staged binary (verify checks it is executable).
    mkdir -p "$STAGE/verify"
    sed "s#=/usr/local/bin/#=$P/bin/#" "$unit" >"$STAGE/verify/mcpgate.service"
    if out=$(systemd-analyze verify "$STAGE/verify/mcpgate.service" 2>&1) && [[ -z $out ]]; then
        ok "systemd-analyze verify mcpgate.service"
    else
        no "systemd-analyze verify mcpgate.service" "$out"
    fi
else
    echo "  skip systemd-analyze verify mcpgate.service: systemd-analyze is not installed"
fi

echo "install test: $passed passed, $failed failed"
((failed == 0))
