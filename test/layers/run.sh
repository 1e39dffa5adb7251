#!/usr/bin/env bash
# test/layers/run.sh - proves scripts/check-layers.sh catches what it promises: on a copy of src/ and
# docs/architecture.md, each planted violation alone must make it exit 1 with its message, and the
# untouched copy must pass. Cases: an include of a higher layer, gateway_int.h outside gateway/, a
# hand-written prototype of another directory's function, a stale exception, an unknown directory;
# the cycle an upward include makes is reported as not allowed.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fresh() {
    rm -rf "$tmp/w" && mkdir -p "$tmp/w/docs" "$tmp/w/scripts"
    cp -r "$root/src" "$tmp/w/src"
    cp "$root/docs/architecture.md" "$tmp/w/docs/"
    cp "$root/scripts/check-layers.sh" "$tmp/w/scripts/"
}
# expect NAME WANT_RC PATTERN: runs the check on the copy.
expect() {
    local out rc
    out=$("$tmp/w/scripts/check-layers.sh" 2>&1)
    rc=$?
    if [[ $rc != "$2" ]] || ! grep -qE -- "$3" <<<"$out"; then
        echo "FAIL $1: exit $rc (want $2), output lacks /$3/:"
        sed 's/^/    /' <<<"$out"
        fails=$((fails + 1))
    else
        echo "ok   $1"
    fi
}

fresh
expect "clean tree passes" 0 "0 problems"

fresh
printf '#include "../gateway/gateway.h"\n' >>"$tmp/w/src/upstream/framing.c"
expect "upstream includes a gateway header" 1 "src/upstream/framing.c:[0-9]+: includes gateway/gateway.h: layer 'gateway' is above 'upstream'"
expect "the cycle it makes is reported" 1 "gateway <-> upstream +NOT ALLOWED"

fresh
printf '#include "../gateway/gateway_int.h"\n' >>"$tmp/w/src/cli/commands.c"
expect "gateway_int.h outside gateway/" 1 "src/cli/commands.c:[0-9]+: includes gateway's private header"

fresh
printf 'int mg_config_enabled_count_twin(void);\nvoid mg_log_write_hand(int x);\nsize_t mg_config_enabled_count(const void *cfg);\n' >>"$tmp/w/src/upstream/framing.c"
expect "hand-written prototype of another directory's function" 1 "src/upstream/framing.c:[0-9]+: declares mg_config_enabled_count by hand, but it is defined in src/config/"

fresh
sed -i '/<!-- layer-exceptions:begin -->/a\    src/common/log.c includes gateway/gateway.h -- planted' "$tmp/w/docs/architecture.md"
expect "stale exception" 1 "the exception 'includes gateway/gateway.h' matches nothing"

fresh
mkdir -p "$tmp/w/src/newdir" && printf 'int x;\n' >"$tmp/w/src/newdir/a.c"
expect "directory missing from the order" 1 "directory 'newdir' is not in the layer list"

echo "layer check self-test: $((7 - fails)) passed, $fails failed"
[[ $fails == 0 ]]
