#!/usr/bin/env bash
# test/image/run.sh - tests the container image's runtime targets without a Docker daemon
# (make image-test; docs/testing.md). For each target of deploy/Dockerfile ("runtime", "node"):
#   1. its root filesystem: mmdebstrap makes the base image's Debian suite (minbase, as
#      debian:SUITE-slim), then the target's own COPY and RUN instructions run in a chroot, exactly as
#      the Dockerfile says (test/image/dockerfile.mjs reads it), so the packages come from
#      deploy/image-packages*.txt, the one list both use. Cached in $MG_IMAGE_TEST_DIR
#      (/var/tmp/mcpgate-image-test) keyed on the Dockerfile and the files it copies.
#   2. the built gateway ($BUILD/mcpgate, mcpgate-testserver) is copied in (COPY --from=build);
#   3. the image's ENTRYPOINT and CMD run with its ENV as uid 10001 under tini as PID 1, in a PID and
#      mount namespace (chroot; host network, listening on 127.0.0.1:free port);
#   4. a tool is called through the gateway with curl: the bundled test server in "runtime", and in
#      "node" the README's example config (npx -y @modelcontextprotocol/server-memory@VERSION,
#      fetched from the npm registry by npx inside the image);
#   5. SIGTERM: the gateway drains and exits 0.
# Needs root, mmdebstrap, node and network access to Debian's mirrors and the npm registry.
#
#   test/image/run.sh [BUILD] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=$(cd "${1:-build}" && pwd)
shift || true
TARGETS=("${@:-runtime node}")
read -r -a TARGETS <<<"${TARGETS[*]}"
CACHE=${MG_IMAGE_TEST_DIR:-/var/tmp/mcpgate-image-test}
DOCKERFILE=deploy/Dockerfile
t0=$SECONDS

die() {
    echo "image-test: $*" >&2
    exit 1
}
[[ $(id -u) == 0 ]] || die "needs root (mmdebstrap, chroot and namespaces)"
command -v mmdebstrap >/dev/null || die "mmdebstrap is missing: apt-get install mmdebstrap"
command -v node >/dev/null || die "node is missing (scripts/install-deps.sh)"
[[ -x $BUILD/mcpgate ]] || die "$BUILD/mcpgate is missing: run make build"

mkdir -p "$CACHE"
WORK=$(mktemp -d "$CACHE/run.XXXXXX")
GW=""
# Stops the running image: SIGKILL to its PID 1 (tini) ends every process of its PID namespace
# (unshare's --kill-child does not reach it: the user switch clears the parent-death signal).
stop_image() {
    local p
    for p in $(pgrep -P "$GW"); do kill -KILL "$p" 2>/dev/null || true; done
    kill -KILL "$GW" 2>/dev/null || true
}
cleanup() {
    [[ -n $GW ]] && stop_image
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# rootfs TARGET: the cached root filesystem of TARGET without the build outputs; prints its path.
rootfs() {
    local target=$1 script key dir
    script=$(node test/image/dockerfile.mjs "$DOCKERFILE" "$target")
    key=$({
        echo "$script"
        cat test/image/dockerfile.mjs deploy/image-packages*.txt deploy/config.json
    } | sha256sum | cut -c1-16)
    dir=$CACHE/$target-$key
    if [[ ! -f $dir/.complete ]]; then
        rm -rf "$dir" "$dir.tmp"
        local suite
        suite=$(eval "$script" && echo "$IMG_SUITE")
        echo "image-test: building the $target root filesystem (mmdebstrap $suite, then the Dockerfile's RUN steps) in $dir" >&2
        local b0=$SECONDS
        mmdebstrap --quiet --mode=root --variant=minbase "$suite" "$dir.tmp" >&2
        # COPY and RUN as root in a chroot with /proc, /dev and the host's resolv.conf (network for
        # apt-get), in a private mount namespace so nothing stays mounted.
        {
            echo "set -euo pipefail"
            echo "ROOTFS=$(printf %q "$dir.tmp")"
            echo "$script"
            cat <<'EOS'
img_copy() {
    local dest=$ROOTFS$2
    if [[ $2 == */ ]]; then mkdir -p "$dest"; else mkdir -p "$(dirname "$dest")"; fi
    cp "$1" "$dest"
}
img_run() {
    echo "image-test:   RUN $1" | tr -s ' ' | cut -c1-160 >&2
    chroot "$ROOTFS" /bin/sh -c "$1" >&2
}
mount -t proc proc "$ROOTFS/proc"
mount --bind /dev "$ROOTFS/dev"
cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
img_prepare
EOS
        } >"$WORK/prepare-$target.sh"
        unshare --mount --propagation private bash "$WORK/prepare-$target.sh"
        touch "$dir.tmp/.complete"
        mv "$dir.tmp" "$dir"
        echo "image-test: $target root filesystem built in $((SECONDS - b0)) s ($(du -sh "$dir" | cut -f1))" >&2
    else
        echo "image-test: $target root filesystem from the cache: $dir" >&2
    fi
    echo "$dir"
}

free_port() {
    node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# mcp PORT SESSION BODY: one POST /mcp; prints the response headers and body.
mcp() {
    local h=()
    [[ -n $2 ]] && h=(-H "Mcp-Session-Id: $2")
    curl -sS -D - --max-time 120 -H 'Content-Type: application/json' \
        -H 'Accept: application/json, text/event-stream' "${h[@]}" \
        --data "$3" "http://127.0.0.1:$1/mcp"
}

# serve TARGET [CONFIG]: starts TARGET's ENTRYPOINT + CMD in its root filesystem (CONFIG replaces
# /etc/mcpgate/config.json, as a mounted config would). Sets GW (the unshare pid), PORT, R.
serve() {
    local target=$1 config=${2:-} cached
    cached=$(rootfs "$target")
    R=$WORK/$target
    cp -a "$cached" "$R"
    local script
    script=$(node test/image/dockerfile.mjs "$DOCKERFILE" "$target")
    eval "$script"
    img_copy() {
        if [[ $2 == */ ]]; then mkdir -p "$R$2"; else mkdir -p "$(dirname "$R$2")"; fi
        cp "$1" "$R$2"
    }
    img_install_build
    [[ -n $config ]] && cp "$config" "$R/etc/mcpgate/config.json"
    local uid=${IMG_USER%%:*} gid=${IMG_USER##*:} home
    # Docker's environment: PATH, HOSTNAME, HOME from the user's passwd entry unless ENV sets it.
    home=$(awk -F: -v u="$uid" '$3 == u {print $6}' "$R/etc/passwd")
    local e
    for e in "${IMG_ENV[@]}"; do [[ $e == HOME=* ]] && home=${e#HOME=}; done
    # A machine whose npm reaches the registry through a TLS-intercepting proxy trusts that proxy's
    # CA through npm's cafile: the image's npm gets the same file, by $HOME/.npmrc (npx reads it;
    # the gateway passes HOME to its children). A CA certificate, nothing secret.
    local cafile
    cafile=$(npm config get cafile 2>/dev/null || true)
    if [[ -f $R/usr/bin/npm && -f $cafile && -d $R$home ]]; then
        cp "$cafile" "$R/etc/ssl/certs/image-test-npm-ca.crt"
        echo "cafile=/etc/ssl/certs/image-test-npm-ca.crt" >"$R$home/.npmrc"
        chown "$uid:$gid" "$R$home/.npmrc"
        echo "image-test: $target: npm's cafile $cafile given to the image's npm ($home/.npmrc)" >&2
    fi
    PORT=$(free_port)
    local env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOSTNAME=mcpgate-image-test
        "HOME=${home:-/}" "${IMG_ENV[@]}" "MCPGATE_LISTEN=127.0.0.1:$PORT")
    touch "$R/etc/resolv.conf"
    unshare --pid --fork --kill-child=SIGTERM --mount --propagation private bash -c '
        R=$1; shift
        mount -t proc proc "$R/proc"
        mount -t tmpfs -o mode=755 tmpfs "$R/dev"
        for n in null zero full random urandom tty; do touch "$R/dev/$n"; mount --bind "/dev/$n" "$R/dev/$n"; done
        mount --bind /etc/resolv.conf "$R/etc/resolv.conf"
        exec chroot --userspec="$1" "$R" env -i "${@:2}"' \
        _ "$R" "$uid:$gid" "${env[@]}" "${IMG_ENTRYPOINT[@]}" "${IMG_CMD[@]}" >"$WORK/$target.log" 2>&1 &
    GW=$!
    echo "image-test: $target: ${IMG_ENTRYPOINT[*]} ${IMG_CMD[*]} as uid $uid, listening on 127.0.0.1:$PORT" >&2
}

fail() {
    echo "image-test: FAIL: $*" >&2
    echo "---- gateway log (last 40 lines)" >&2
    tail -n 40 "$WORK/$TARGET.log" >&2 || true
    exit 1
}

# check TARGET TOOL ARGS EXPECT: waits for readiness, checks the processes, calls TOOL, stops.
check() {
    local target=$1 tool=$2 args=$3 expect=$4 i
    for ((i = 0; i < 1800; i++)); do # npx fetches the server on its first start
        curl -fs -o /dev/null "http://127.0.0.1:$PORT/readyz" && break
        kill -0 "$GW" 2>/dev/null || fail "$target: the gateway exited before it was ready"
        sleep 0.1
    done
    curl -fs -o /dev/null "http://127.0.0.1:$PORT/readyz" || fail "$target: /readyz not ready after 180 s: $(curl -s "http://127.0.0.1:$PORT/readyz")"
    # PID 1 of the namespace is tini; its child is mcpgate; both run as uid 10001.
    local tini gw
    tini=$(pgrep -P "$GW" | head -1)
    gw=$(pgrep -P "$tini" | head -1)
    [[ $(cat "/proc/$tini/comm") == tini ]] || fail "$target: PID 1 is $(cat "/proc/$tini/comm"), not tini"
    [[ $(cat "/proc/$gw/comm") == mcpgate ]] || fail "$target: tini's child is $(cat "/proc/$gw/comm"), not mcpgate"
    for p in "$tini" "$gw"; do
        awk '/^Uid:/ {exit !($2 == 10001 && $3 == 10001)}' "/proc/$p/status" || fail "$target: pid $p does not run as uid 10001"
    done
    local init sid out
    init=$(mcp "$PORT" "" '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"image-test","version":"1"}}}')
    sid=$(printf '%s\n' "$init" | tr -d '\r' | awk -F': ' 'tolower($1) == "mcp-session-id" {print $2}')
    [[ -n $sid ]] || fail "$target: initialize gave no session: $init"
    mcp "$PORT" "$sid" '{"jsonrpc":"2.0","method":"notifications/initialized"}' >/dev/null
    out=$(mcp "$PORT" "$sid" "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"$tool\",\"arguments\":$args}}")
    [[ $out == *"$expect"* ]] || fail "$target: tools/call $tool did not answer with '$expect': $out"
    echo "image-test: $target: tools/call $tool answered through the gateway" >&2
    [[ -n ${5:-} ]] && { eval "$5" || fail "$target: follow-up check failed"; }
    # As `docker stop` does: SIGTERM to the container's PID 1 (tini forwards it to mcpgate). unshare
    # itself ignores SIGTERM while it waits; it exits with PID 1's status.
    kill -TERM "$tini"
    local rc=0
    for ((i = 0; i < 300; i++)); do kill -0 "$GW" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$GW" 2>/dev/null && fail "$target: still running 30 s after SIGTERM"
    wait "$GW" || rc=$?
    GW=""
    [[ $rc == 0 ]] || fail "$target: exit status $rc after SIGTERM (expected a drain and 0)"
    echo "image-test: $target: SIGTERM drained, exit 0" >&2
}

for TARGET in "${TARGETS[@]}"; do
    case $TARGET in
    runtime)
        serve runtime
        check runtime echo '{"message":"hello from the image"}' 'hello from the image'
        ;;
    node)
        test/install/readme-config.sh >"$WORK/readme-config.json"
        serve node "$WORK/readme-config.json"
        check node create_entities \
            '{"entities":[{"name":"image-test","entityType":"test","observations":["served by npx in the node image"]}]}' \
            'image-test' \
            '[[ $(mcp "$PORT" "$sid" "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"read_graph\",\"arguments\":{}}}") == *"served by npx in the node image"* ]]'
        ;;
    *) die "unknown target $TARGET (runtime, node)" ;;
    esac
done
echo "image-test: ${#TARGETS[@]} targets passed (${TARGETS[*]}) in $((SECONDS - t0)) s"
