#!/usr/bin/env bash
# check-layers.sh - the layer order of src/ enforced on the code (docs/architecture.md "Layers").
#
# Reads the layer order and the kept exceptions from the two marked blocks of docs/architecture.md
# (the one source: nothing here repeats them), then every `#include "..."` of src/**/*.c|h and every
# file-scope prototype or `extern` written in a .c file. Fails when:
#   - a file includes a header of a directory above its own in the order;
#   - a file outside src/gateway/ includes gateway's private header (gateway_int.h);
#   - a .c file declares by hand a function or variable defined in another directory (the caller
#     must include that directory's header, or receive an event from it, never re-declare it);
#   - an exception is listed that no longer matches anything (a stale entry hides nothing).
# Also prints the include cycles between directories (A includes B and B includes A); with a total
# order each cycle has an upward edge, so a cycle remains only through a listed exception.
# Usage: scripts/check-layers.sh [SRC_DIR [ARCH_DOC]]   (defaults: src, docs/architecture.md).
# Exit 0 when clean, 1 on a violation, 2 when the doc's blocks cannot be read.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 - "${1:-src}" "${2:-docs/architecture.md}" <<'PY'
import os, re, sys

src, doc = sys.argv[1], sys.argv[2]

def block(text, name):
    m = re.search(r'<!-- %s:begin -->\n(.*?)<!-- %s:end -->' % (name, name), text, re.S)
    if not m:
        sys.exit("check-layers: no '<!-- %s:begin -->' block in %s" % (name, doc))
    out = []
    for line in m.group(1).splitlines():
        line = line.strip().strip('`').strip()
        if line and not line.startswith('#') and not line.startswith('```'):
            out.append(line)
    return out

try:
    text = open(doc, encoding='utf-8').read()
except OSError as e:
    print("check-layers: cannot read %s: %s" % (doc, e), file=sys.stderr)
    sys.exit(2)

# Layers, highest first in the doc ("main.c" stands for the files directly in src/).
order = [l.split()[0] for l in block(text, 'layers')]
rank = {name: len(order) - i for i, name in enumerate(order)}  # higher number = higher layer
# Exceptions: "<file> includes <dir/header.h> -- reason" or "<file> declares <name> -- reason".
exceptions = {}
for l in block(text, 'layer-exceptions'):
    m = re.match(r'(\S+)\s+(includes|declares)\s+(\S+)\s+--\s+(.+)$', l)
    if not m:
        print("check-layers: cannot read exception line: %s" % l, file=sys.stderr)
        sys.exit(2)
    exceptions[(m.group(1), m.group(2), m.group(3))] = m.group(4)
used = set()

def layer_of(path):
    rel = os.path.relpath(path, src)
    d = os.path.dirname(rel)
    return 'main.c' if d == '' else d.split(os.sep)[0]

files = []
for root, dirs, names in os.walk(src):
    dirs.sort()
    for n in sorted(names):
        if n.endswith(('.c', '.h')):
            files.append(os.path.join(root, n))

problems = []
for f in files:
    if layer_of(f) not in rank:
        problems.append("%s: directory '%s' is not in the layer list of %s; add it there"
                        % (f, layer_of(f), doc))

def strip_comments(s):
    # Comments and string/char literals out, newlines kept (line numbers stay right).
    def rep(m):
        t = m.group(0)
        if t.startswith('/'):
            return re.sub(r'[^\n]', ' ', t)
        return t[0] + ' ' * (len(t) - 2) + t[-1]
    return re.sub(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', rep, s, flags=re.S)

# ---- includes
edges = {}  # (dir, dir) -> [(file, line, header)]
for f in files:
    me = layer_of(f)
    for no, line in enumerate(open(f, encoding='utf-8', errors='replace'), 1):
        m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
        if not m:
            continue
        target = os.path.normpath(os.path.join(os.path.dirname(f), m.group(1)))
        if not os.path.exists(target):
            continue  # generated or system header found through the include path
        if os.path.commonpath([os.path.abspath(target), os.path.abspath(src)]) != os.path.abspath(src):
            continue
        them = layer_of(target)
        relt = os.path.relpath(target, src)
        key_file = os.path.relpath(f, '.') if not os.path.isabs(f) else f
        if them != me:
            edges.setdefault((me, them), []).append((key_file, no, relt))
        bad = []
        if os.path.basename(target) == 'gateway_int.h' and them == 'gateway' and me != 'gateway':
            bad.append("includes gateway's private header %s (only src/gateway/ may)" % relt)
        if them in rank and me in rank and rank[them] > rank[me]:
            bad.append("includes %s: layer '%s' is above '%s'" % (relt, them, me))
        if bad:
            k = (key_file, 'includes', relt)
            if k in exceptions:
                used.add(k)
            else:
                for b in bad:
                    problems.append("%s:%d: %s" % (key_file, no, b))

# ---- hand-written prototypes and externs in .c files
defined = {}   # name -> set of layers defining it
declared = []  # (file, line, name)
decl_re = re.compile(r'([A-Za-z_]\w*)\s*\(')
for f in files:
    code = strip_comments(open(f, encoding='utf-8', errors='replace').read())
    code = re.sub(r'(?m)^[ \t]*#(?:[^\n]*\\\n)*[^\n]*', lambda m: re.sub(r'[^\n]', ' ', m.group(0)), code)
    depth, start = 0, 0
    for i, ch in enumerate(code):
        if ch == '{':
            if depth == 0:
                stmt = code[start:i]
                m = decl_re.search(stmt)
                if m and not re.match(r'\s*(typedef|struct|union|enum)\b', stmt) and '=' not in stmt:
                    defined.setdefault(m.group(1), set()).add(layer_of(f))
                elif '=' in stmt:
                    m = re.search(r'([A-Za-z_]\w*)\s*(\[[^\]]*\]\s*)*=', stmt)
                    if m:
                        defined.setdefault(m.group(1), set()).add(layer_of(f))
            depth += 1
        elif ch == '}':
            depth -= 1
            if depth == 0:
                start = i + 1
        elif ch == ';' and depth == 0:
            stmt = code[start:i]
            first = start + len(stmt) - len(stmt.lstrip())
            start = i + 1
            s = stmt.strip()
            if not s or re.match(r'(typedef|struct|union|enum|static)\b', s):
                continue
            if '=' in s:  # a variable definition with an initializer
                m = re.search(r'([A-Za-z_]\w*)\s*(\[[^\]]*\]\s*)*=', s)
                if m and not s.startswith('extern'):
                    defined.setdefault(m.group(1), set()).add(layer_of(f))
                continue
            line = code.count('\n', 0, first) + 1
            if '(' in s and not re.search(r'\(\s*\*', s):
                m = decl_re.search(s)
                if m and f.endswith('.c'):
                    declared.append((f, line, m.group(1)))
            elif s.startswith('extern') and f.endswith('.c'):
                m = re.search(r'([A-Za-z_]\w*)\s*(\[[^\]]*\]\s*)*$', s)
                if m:
                    declared.append((f, line, m.group(1)))
            elif not s.startswith('extern') and '(' not in s:
                m = re.search(r'([A-Za-z_]\w*)\s*(\[[^\]]*\]\s*)*$', s)
                if m:
                    defined.setdefault(m.group(1), set()).add(layer_of(f))

for f, line, name in declared:
    where = defined.get(name, set())
    me = layer_of(f)
    if where and me not in where:
        k = (f, 'declares', name)
        if k in exceptions:
            used.add(k)
        else:
            problems.append("%s:%d: declares %s by hand, but it is defined in src/%s/: include that "
                            "directory's header (or, for a call upward, emit an event the upper layer "
                            "registered)" % (f, line, name, '/'.join(sorted(where))))

for k, why in sorted(exceptions.items()):
    if k not in used:
        problems.append("%s: the exception '%s %s' matches nothing any more; remove it from %s"
                        % (k[0], k[1], k[2], doc))

# ---- cycles between directories
cycles = sorted({tuple(sorted(p)) for p in edges if (p[1], p[0]) in edges})
if cycles:
    print("check-layers: include cycles between directories:")
    for a, b in cycles:
        up = edges[(a, b)] if rank.get(b, 0) > rank.get(a, 0) else edges[(b, a)]
        kept = all((x[0], 'includes', x[2]) in exceptions for x in up)
        print("  %s <-> %s   %s (upward: %s)" % (a, b, "kept, listed exception" if kept else "NOT ALLOWED",
                                              ", ".join("%s -> %s" % (x[0], x[2]) for x in up)))

for p in problems:
    print("check-layers: " + p)
print("check-layers: %d files, %d directories, %d exceptions kept, %d cycles, %d problems"
      % (len(files), len(order), len(used), len(cycles), len(problems)))
sys.exit(1 if problems else 0)
PY
