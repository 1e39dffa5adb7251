#!/usr/bin/env bash
# checksrc: source rules a compiler does not enforce, in the manner of curl's scripts/checksrc.pl.
# Fast (no build) and first in `make test` (scripts/test.sh). Usage: scripts/checksrc.sh [PATH...]
# (default: the repository's src/; a PATH, relative to the current directory, is a directory searched
# for *.c and *.h, or a file; exemptions match the path's end, e.g. src/common/err.h). Prints
# "file:line: rule: message" and the offending line for each violation, then exits 1; exits 0 when
# clean. Comments are not checked; string literals are checked for the -32xxx rule only.
#
# Rules (docs/testing.md):
#   jsonrpc-literal  a JSON-RPC error code written as a number (-32xxx) anywhere but
#                    src/common/err.h: name it in the error table and use MG_E* with
#                    mg_err_jsonrpc_code() / mg_err_http_status(), or a function taking MG_E*.
#   banned-call      sprintf, vsprintf, strcpy, strcat, gets: unbounded writes; use snprintf,
#                    vsnprintf, memcpy with a known length, or a bounded buffer.
#   json-copy        jansson's json_copy() / json_deep_copy() outside src/common/json.c: they return
#                    a partial object on ENOMEM; use mg_json_copy() / mg_json_deep_copy().
set -euo pipefail
if [[ $# -eq 0 ]]; then
    cd "$(dirname "$0")/.."
    set -- src
fi
exec python3 - "$@" <<'PY'
import os
import re
import sys

# path suffix (relative to the repository) -> rules it is exempt from
EXEMPT = {
    "src/common/err.h": {"jsonrpc-literal"},
    "src/common/json.c": {"json-copy"},
}
RULES = [
    ("jsonrpc-literal", re.compile(r"(?<![\w.)\]])-32\d{3}(?!\d)"), False,
     "literal JSON-RPC error code: add a row to src/common/err.h and use its MG_E* name"),
    ("banned-call", re.compile(r"\b(sprintf|vsprintf|strcpy|strcat|gets)\s*\("), True,
     "unbounded write: use snprintf / vsnprintf / memcpy with a known length"),
    ("json-copy", re.compile(r"\bjson_(?:deep_)?copy\s*\("), True,
     "jansson's copies return partial objects on ENOMEM: use mg_json_copy / mg_json_deep_copy"),
]


def strip(text):
    """Returns (code with comments blanked, code with comments and string/char literals blanked),
    newlines kept so that line numbers hold."""
    code, bare = [], []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            blank = re.sub(r"[^\n]", " ", text[i:j])
            code.append(blank)
            bare.append(blank)
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            code.append(" " * (j - i))
            bare.append(" " * (j - i))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            code.append(text[i:j])
            bare.append(c + re.sub(r"[^\n]", " ", text[i + 1:j - 1]) + (c if j - i > 1 else ""))
            i = j
        else:
            code.append(c)
            bare.append(c)
            i += 1
    return "".join(code), "".join(bare)


def files(paths):
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, names in os.walk(p):
                dirs.sort()
                for name in sorted(names):
                    if name.endswith((".c", ".h")):
                        yield os.path.join(root, name)
        else:
            yield p


def main(paths):
    found = 0
    nfiles = 0
    for path in files(paths):
        nfiles += 1
        rel = os.path.normpath(path)
        exempt = set()
        for suffix, rules in EXEMPT.items():
            if rel == suffix or rel.endswith("/" + suffix):
                exempt |= rules
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        lines = text.split("\n")
        code, bare = strip(text)
        code_lines, bare_lines = code.split("\n"), bare.split("\n")
        for name, rx, no_strings, message in RULES:
            if name in exempt:
                continue
            for ln, line in enumerate(bare_lines if no_strings else code_lines, 1):
                if rx.search(line):
                    found += 1
                    print(f"{rel}:{ln}: {name}: {message}")
                    print(f"    {lines[ln - 1].strip()}")
    if found:
        print(f"checksrc: {found} violation(s) in {nfiles} files")
        return 1
    print(f"checksrc: {nfiles} files clean")
    return 0


sys.exit(main(sys.argv[1:]))
PY
