#!/usr/bin/env python3
"""cgflat.py - flat profile of one callgrind file written with --compress-strings=no.

Prints self and inclusive Ir per function, divided by --per (e.g. the number of tool calls in the
dump), and the callees of --expand functions. callgrind_annotate 3.19 cannot read a dump taken with
callgrind_control -d after -z (it charges everything to one function); this reads the cost lines
itself. Inclusive cost ignores recursion (a function's calls to itself are not added).
Usage: bench/cgflat.py FILE [--per N] [--top N] [--expand fn1,fn2]   (used by bench/profile.sh)
"""
import argparse
import collections

ap = argparse.ArgumentParser()
ap.add_argument("file")
ap.add_argument("--per", type=float, default=1.0)
ap.add_argument("--top", type=int, default=30)
ap.add_argument("--expand", default="")
a = ap.parse_args()

selfc = collections.Counter()
edges = collections.Counter()
obj = {}
fn = ob = cfn = None
in_call = False
for line in open(a.file, errors="replace"):
    if line.startswith("ob="):
        ob = line[3:].strip()
    elif line.startswith("fn="):
        fn = line[3:].strip()
        obj.setdefault(fn, ob)
        in_call = False
    elif line.startswith("cfn="):
        cfn = line[4:].strip()
    elif line.startswith("calls="):
        in_call = True
    elif line[:1].isdigit() or line[:1] in "+-*":
        parts = line.split()
        if len(parts) < 2:
            continue
        v = int(parts[1])
        if in_call:
            edges[(fn, cfn)] += v
            in_call = False
        else:
            selfc[fn] += v

total = sum(selfc.values())
incl = collections.Counter(selfc)
for (caller, callee), v in edges.items():
    if caller.split("'")[0] != callee.split("'")[0]:
        incl[caller] += v
per = a.per


def where(f):
    return (obj.get(f) or "?").rsplit("/", 1)[-1]


print(f"total {total:,} Ir; per unit (/{per:g}): {total / per:,.0f}\n")
print("self Ir per unit, top functions:")
for f, v in selfc.most_common(a.top):
    print(f"{v / per:>10,.0f} {100 * v / total:5.1f}%  {f}  [{where(f)}]")
print("\ninclusive Ir per unit, top functions:")
for f, v in incl.most_common(a.top):
    print(f"{v / per:>10,.0f} {100 * v / total:5.1f}%  {f}  [{where(f)}]")
for f in filter(None, a.expand.split(",")):
    print(f"\n{f}: callees (inclusive Ir per unit)")
    for (caller, callee), v in edges.most_common():
        if caller == f and v / per >= 20:
            print(f"{v / per:>10,.0f}  {callee}")
