#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""Fail on an include cycle between user/ modules, a layer crossed, or a
header declaring another module's functions.

A module is X.c with X.h (user/DIR/X.[ch]); it depends on module Y when
X.c or X.h includes Y.h.  Modules must form no cycle (a header owns its
module's types and declares only its own functions: a lower layer calls
up only through a callback it was handed), user/lib includes only
user/lib, user/cli only user/lib and itself, and the daemon's shared
state (daemon/daemon) only user/lib.  Every function X.h
declares (static inline ones aside) is defined in X.c.

  scripts/check-includes.py [ROOT]      (make check-includes)
"""
import glob
import os
import re
import sys

# what a directory (or one module) may include; the rest: acyclic only
ALLOWED = {"lib": {"lib"}, "cli": {"lib", "cli"},
           "daemon/daemon": {"lib"}}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
# a declaration or definition starts a line: "int km_x(", "void *km_y("
FUNC = re.compile(r'^(?!static|typedef|extern|#)[A-Za-z_][\w \t*]*?\b(km_\w+)\(',
                  re.M)


def modules(root):
    """{module: [files]} and {header name: module}, module = 'dir/name'."""
    mods, headers = {}, {}
    for path in sorted(glob.glob(os.path.join(root, "user/*/*.[ch]"))):
        d = os.path.basename(os.path.dirname(path))
        name, ext = os.path.splitext(os.path.basename(path))
        mod = d + "/" + name
        mods.setdefault(mod, []).append(path)
        if ext == ".h":
            if name + ".h" in headers:
                sys.exit("two headers named %s.h" % name)
            headers[name + ".h"] = mod
    return mods, headers


def graph(mods, headers):
    """{module: {module it includes: 'file: line'}}"""
    g = {m: {} for m in mods}
    for mod, files in mods.items():
        for path in files:
            text = open(path, encoding="utf-8").read()
            for inc in INCLUDE.findall(text):
                dep = headers.get(os.path.basename(inc))
                if dep and dep != mod:
                    g[mod].setdefault(dep, "%s: #include \"%s\"" %
                                      (os.path.relpath(path), inc))
    return g


def cycles(g):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def foreign(mods):
    """Functions a header declares that its own .c does not define."""
    out = []
    for mod, files in sorted(mods.items()):
        h = [f for f in files if f.endswith(".h")]
        c = [f for f in files if f.endswith(".c")]
        if not h:
            continue
        defined = set()
        for path in c:
            defined.update(FUNC.findall(open(path, encoding="utf-8").read()))
        for name in FUNC.findall(open(h[0], encoding="utf-8").read()):
            if name not in defined:
                out.append("%s declares %s, not defined in %s.c" %
                           (os.path.relpath(h[0]), name, mod.split("/")[1]))
    return out


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    mods, headers = modules(root)
    g = graph(mods, headers)
    bad = 0
    for comp in cycles(g):
        bad += 1
        print("include cycle: " + " <-> ".join(comp))
        for m in comp:
            for dep, where in sorted(g[m].items()):
                if dep in comp:
                    print("  " + where)
    for mod in sorted(g):
        layer = mod if mod in ALLOWED else mod.split("/")[0]
        if layer not in ALLOWED:
            continue
        for dep, where in sorted(g[mod].items()):
            if dep.split("/")[0] not in ALLOWED[layer]:
                bad += 1
                print("user/%s may not include user/%s: %s" %
                      (layer, dep.split("/")[0], where))
    for msg in foreign(mods):
        bad += 1
        print(msg)
    if bad:
        return 1
    print("check-includes: %d modules, no cycle, layers kept" % len(g))
    return 0


if __name__ == "__main__":
    sys.exit(main())
