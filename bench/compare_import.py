#!/usr/bin/python3
"""What ONNX import costs in training throughput: a zoo model against the same model exported to ONNX
(bin/export's code) and imported again (model.arch = onnx), both by bench_train (forward, cross-entropy,
backward, SGD step), taking turns for several rounds and keeping each side's best round. The imported model runs
the same nibble ops in the same layouts, so the ratio should be 1 (the issue asks for at most 5% off).

usage: compare_import.py BUILD_DIR [ARCH ...] [--batch B] [--size S] [--steps N] [--rounds R]"""
import argparse
import json
import os
import subprocess
import sys


def rate(build, arch, a):
    out = subprocess.run([os.path.join(build, "bench", "bench_train"), arch, str(a.batch), str(a.steps), "1.0", "3",
                          str(a.size), "cpu", "10"], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["img_per_s"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("archs", nargs="*", default=["resnet18"])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    os.makedirs("bench/out", exist_ok=True)
    print("Training throughput, zoo model against its ONNX export imported again (img/s, 3x%dx%d, batch %d, best of %d)"
          % (a.size, a.size, a.batch, a.rounds))
    print("%-14s %10s %10s %8s" % ("model", "zoo", "imported", "ratio"))
    with open("bench/out/import.jsonl", "a") as log:
        for arch in a.archs:
            zoo, imp = 0.0, 0.0
            for r in range(a.rounds):  # taking turns at going first: the machine's drift falls on both
                if r % 2:
                    imp = max(imp, rate(a.build, "import:" + arch, a))
                zoo = max(zoo, rate(a.build, arch, a))
                if r % 2 == 0:
                    imp = max(imp, rate(a.build, "import:" + arch, a))
            print("%-14s %10.1f %10.1f %8.3f" % (arch, zoo, imp, imp / zoo))
            log.write(json.dumps({"model": arch, "batch": a.batch, "size": a.size, "zoo_img_per_s": zoo,
                                  "imported_img_per_s": imp, "ratio": imp / zoo}) + "\n")


if __name__ == "__main__":
    sys.exit(main())
