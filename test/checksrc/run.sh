#!/usr/bin/env bash
# Self-test of scripts/checksrc.sh: plants each violation in a scratch tree and checks that it is
# reported (file:line and rule, exit 1), and that the allowed forms (comments, snprintf, the error
# table, the checked JSON wrappers) pass. Run by scripts/test.sh after checksrc itself.
set -uo pipefail
cd "$(dirname "$0")/../.."
check=$PWD/scripts/checksrc.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
# expect NAME WANT_RC FILE CONTENT [WANT_OUTPUT]: checksrc on a tree holding only FILE.
expect() {
    local name=$1 want=$2 file=$3 content=$4 pattern=${5:-}
    rm -rf "$tmp/src"
    mkdir -p "$(dirname "$tmp/$file")"
    printf '%s\n' "$content" >"$tmp/$file"
    local out rc
    out=$(cd "$tmp" && "$check" src 2>&1)
    rc=$?
    if [[ $rc != "$want" ]] || { [[ -n $pattern ]] && ! grep -qE -- "$pattern" <<<"$out"; }; then
        echo "FAIL $name: exit $rc (want $want)"
        sed 's/^/    /' <<<"$out"
        fails=$((fails + 1))
    else
        echo "ok   $name"
    fi
}
expect "literal code in code" 1 src/a.c $'int f(void)\n{\n    return -32600;\n}' '^src/a.c:3: jsonrpc-literal'
expect "literal code in a string" 1 src/a.c 'const char *s = "{\"code\":-32601}";' 'src/a.c:1: jsonrpc-literal'
expect "literal code in a header" 1 src/a.h '#define X (-32029)' 'src/a.h:1: jsonrpc-literal'
expect "literal code in a comment" 0 src/a.c $'/* answers 400 -32020 */\nint x; // -32602'
expect "literal code in the table" 0 src/common/err.h 'X(EPARSE, -3, -32700, 400, "parse error")'
expect "literal code in err.c" 1 src/common/err.c 'int d = -32603;' 'src/common/err.c:1: jsonrpc-literal'
expect "other numbers" 0 src/a.c $'int a = 32768, b = -3200, c = -320000, d = x-32, e = n-32768, f = a[1]-32000;'
expect "sprintf" 1 src/a.c $'void f(char *b)\n{\n    sprintf(b, "%d", 1);\n}' 'src/a.c:3: banned-call'
expect "vsprintf" 1 src/a.c 'void f(char *b, va_list ap) { vsprintf(b, "%d", ap); }' 'banned-call'
expect "strcpy" 1 src/a.c 'void f(char *b) { strcpy(b, "x"); }' 'src/a.c:1: banned-call'
expect "strcat" 1 src/a.c 'void f(char *b) { strcat (b, "x"); }' 'banned-call'
expect "gets" 1 src/a.c 'void f(char *b) { gets(b); }' 'banned-call'
expect "bounded calls" 0 src/a.c $'void f(char *b, size_t n) { snprintf(b, n, "x"); strncat(b, "y", 1); fgets(b, 2, stdin); }\n/* sprintf( in a comment */\nconst char *m = "use sprintf( never";'
expect "json_deep_copy" 1 src/a.c 'json_t *f(json_t *j) { return json_deep_copy(j); }' 'src/a.c:1: json-copy'
expect "json_copy" 1 src/x/b.c 'json_t *f(json_t *j) { return json_copy(j); }' 'src/x/b.c:1: json-copy'
expect "checked wrappers" 0 src/a.c 'json_t *f(json_t *j) { return mg_json_deep_copy(mg_json_copy(j)); }'
expect "jansson copies in json.c" 0 src/common/json.c 'json_t *mg_json_copy(json_t *j) { return json_copy(j); }'
if [[ $fails -gt 0 ]]; then
    echo "checksrc self-test: $fails failed"
    exit 1
fi
echo "checksrc self-test: all passed"
