#!/usr/bin/env python3
"""check_layers.py - keep the source tree's layers honest.

    base/  <-  providers/  <-  cache/  <-  fs/ (core)  <-  fs/ops.c, fs/main.c

Each file may include (with #include "...") only files of its own layer or
below; the FUSE headers may be included by the adapter alone; and the
include graph has no cycle. Run by `meson test` (suite unit) with the
source root as its argument; prints each violation and exits 1.
"""
import os
import re
import sys

LAYERS = ["base", "providers", "cache", "fs core", "fs adapter"]
ADAPTER = {"fs/ops.c", "fs/ops.h", "fs/main.c"}
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^">]+)[">]', re.M)


def layer_of(path):
    if path in ADAPTER:
        return LAYERS.index("fs adapter")
    top = path.split("/", 1)[0]
    return LAYERS.index("fs core") if top == "fs" else LAYERS.index(top)


def sources(root):
    for top in ("base", "providers", "cache", "fs"):
        for name in sorted(os.listdir(os.path.join(root, top))):
            if name.endswith((".c", ".h")):
                yield f"{top}/{name}"


def check(root):
    problems, graph = [], {}
    for path in sources(root):
        with open(os.path.join(root, path), encoding="utf-8") as f:
            text = f.read()
        graph[path] = []
        for kind, inc in INCLUDE.findall(text):
            if kind == "<":
                if inc.startswith("fuse") and path not in ADAPTER:
                    problems.append(f"{path}: includes <{inc}>: FUSE belongs to fs/ops.c and fs/main.c")
                continue
            target = os.path.normpath(os.path.join(os.path.dirname(path), inc))
            if not os.path.exists(os.path.join(root, target)):
                problems.append(f"{path}: includes \"{inc}\", which does not exist")
                continue
            graph[path].append(target)
            if layer_of(target) > layer_of(path):
                problems.append(f"{path} ({LAYERS[layer_of(path)]}) includes {target} "
                                f"({LAYERS[layer_of(target)]}): an upward include")
    problems += cycles(graph)
    return problems


def cycles(graph):
    found, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in graph.get(node, []):
            if state.get(nxt) == "open":
                found.append("include cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [node])
    return found


if __name__ == "__main__":
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
    bad = check(root)
    for line in bad:
        print(line)
    print(f"layers: {len(bad)} problem(s)")
    sys.exit(1 if bad else 0)
