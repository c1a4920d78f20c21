#!/usr/bin/python3
"""The folders of nibble as layers, from the bottom up, and which folder includes which: every #include of a
project header in core/, backend/ ... cli/ must name a folder below the includer's, or its own. Prints the
include graph between folders (with how many includes each arrow carries) and exits 1, naming the file and
the line, for any include that runs up or sideways.

    /usr/bin/python3 scripts/layers.py           # check (make check runs it)
    /usr/bin/python3 scripts/layers.py --graph   # also print the graph
    /usr/bin/python3 scripts/layers.py --graph --root DIR   # another checkout (an older commit's)

Tests, benchmarks, fuzz targets and generated code are not layers: they may include anything.
"""
import os
import re
import sys

# bottom to top; folders on one line are at one level and must not include each other
LAYERS = [
    ["core"],
    ["formats"],
    ["backend"],
    ["layers", "optim", "detect"],
    ["datasets", "models"],
    ["import"],
    ["setup"],
    ["task", "compress"],
    ["train", "deploy"],
    ["infer"],
    ["cli"],
]
LEVEL = {f: i for i, fs in enumerate(LAYERS) for f in fs}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def main(argv):
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    if "--root" in argv:
        root = argv[argv.index("--root") + 1]
    edges, bad = {}, []
    for top in LEVEL:
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for fn in sorted(files):
                if not fn.endswith((".c", ".h", ".cu", ".cuh")):
                    continue
                path = os.path.join(dirpath, fn)
                rel = os.path.relpath(path, root)
                for no, line in enumerate(open(path, encoding="utf-8", errors="replace"), 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    target = m.group(1).split("/")[0]
                    if target not in LEVEL or target == top:
                        continue
                    edges[(top, target)] = edges.get((top, target), 0) + 1
                    if LEVEL[target] >= LEVEL[top]:
                        bad.append("%s:%d: %s includes %s, a folder %s it" % (
                            rel, no, top, m.group(1), "beside" if LEVEL[target] == LEVEL[top] else "above"))
    if "--graph" in argv:
        for level in reversed(LAYERS):
            for f in level:
                outs = ", ".join("%s (%d)" % (t, n) for (s, t), n in sorted(edges.items(), key=lambda e: LEVEL[e[0][1]])
                                 if s == f)
                print("%-9s -> %s" % (f, outs or "-"))
    for b in bad:
        print(b, file=sys.stderr)
    if bad:
        print("%d include(s) run against the layers (scripts/layers.py)" % len(bad), file=sys.stderr)
        return 1
    print("layers: every include of %d folders runs downward" % len(LEVEL))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
