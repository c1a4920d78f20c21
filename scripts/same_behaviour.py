#!/usr/bin/python3
"""Compares what two builds wrote for the same experiments (scripts/same_behaviour.sh): A and B are run
directories holding the same file names.

    /usr/bin/python3 scripts/same_behaviour.py A B

- .h5 checkpoints: every dataset bit for bit and every attribute (the resolved configuration among them), except
  /state/seconds, the wall-clock time a run took; where a tensor differs, its largest difference relative to the
  tensor's largest magnitude is printed.
- .onnx, .json: byte for byte.
- metrics.jsonl: the fields that do not measure time (img_per_s, seconds, comm_share are left out).
One line per file; exit status 1 if any file differs, 0 if everything is bit-identical.
"""
import json
import os
import sys

import h5py
import numpy as np

TIMING = {"img_per_s", "seconds", "comm_share"}
SKIP = {"/state/seconds"}


def h5_items(path):
    out = {}
    with h5py.File(path, "r") as f:
        for k, v in f.attrs.items():
            out["@/" + k] = v
        def visit(name, obj):
            full = "/" + name
            for k, v in obj.attrs.items():
                out["@" + full + "/" + k] = v
            if isinstance(obj, h5py.Dataset) and full not in SKIP:
                out[full] = obj[()]
        f.visititems(visit)
    return out


def rel_diff(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = max(np.max(np.abs(a)) if a.size else 0.0, np.max(np.abs(b)) if b.size else 0.0, 1e-30)
    return float(np.max(np.abs(a - b)) / scale) if a.size else 0.0


def compare_h5(a, b):
    ia, ib = h5_items(a), h5_items(b)
    if set(ia) != set(ib):
        return False, "different contents: only in A %s, only in B %s" % (sorted(set(ia) - set(ib))[:5],
                                                                         sorted(set(ib) - set(ia))[:5])
    differ, worst = [], 0.0
    for k in sorted(ia):
        va, vb = ia[k], ib[k]
        if isinstance(va, np.ndarray) and isinstance(vb, np.ndarray):
            same = va.dtype == vb.dtype and va.shape == vb.shape and va.tobytes() == vb.tobytes()
            if not same:
                d = rel_diff(va, vb) if va.shape == vb.shape and va.dtype.kind in "fiu" else float("inf")
                worst = max(worst, d)
                differ.append((d, k))
        elif not (va == vb if not isinstance(va, np.ndarray) else np.array_equal(va, vb)):
            worst = float("inf")
            differ.append((float("inf"), k))
    if not differ:
        return True, "bit-identical (%d tensors and attributes)" % len(ia)
    differ.sort(reverse=True)
    return False, "%d of %d differ, largest relative difference %.3g (%s)" % (
        len(differ), len(ia), worst, ", ".join("%s %.3g" % (k, d) for d, k in differ[:3]))


def metrics(path):
    rows = []
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            rows.append({k: v for k, v in r.items() if k not in TIMING})
    return rows


def main(a_dir, b_dir):
    names = []
    for root, _, files in os.walk(a_dir):
        for fn in files:
            if not fn.endswith((".png", ".cfg", ".txt")):  # charts, and the config (also in each checkpoint)
                names.append(os.path.relpath(os.path.join(root, fn), a_dir))
    bad = 0
    for rel in sorted(names):
        a, b = os.path.join(a_dir, rel), os.path.join(b_dir, rel)
        if not os.path.exists(b):
            ok, what = False, "missing in B"
        elif rel.endswith(".h5"):
            ok, what = compare_h5(a, b)
        elif rel.endswith("metrics.jsonl"):
            ok = metrics(a) == metrics(b)
            what = "identical but for timings" if ok else "differ"
        else:
            ok = open(a, "rb").read() == open(b, "rb").read()
            what = "byte-identical" if ok else "differ"
        bad += not ok
        print("%-40s %s" % (rel, what))
    print("%d of %d files differ" % (bad, len(names)) if bad else "all %d files identical" % len(names))
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
