#!/usr/bin/python3
"""Convolution benchmark, nibble against PyTorch on this machine in one run.

For every shape of bench/shapes.h, the two take turns (nibble's bench_conv for that shape, then PyTorch in
this process) for several rounds, and each keeps its fastest repetition: on a shared machine a slow spell
then hits both alike instead of one whole side. Forward + backward (data and weights); threads from
OMP_NUM_THREADS for both. Prints a table and writes JSON lines to bench/out/conv.jsonl.

usage: compare_conv.py BUILD_DIR [REPS [ROUNDS]]
"""
import json
import os
import re
import subprocess
import sys
import time

import torch


def shapes():
    src = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "shapes.h")).read()
    pat = r'\{"([^"]+)",\s*(\d+),\s*(\d+),\s*(\d+),\s*(\d+),\s*(\d+),\s*(\d+),\s*(\d+),\s*(\d+)\}'
    for m in re.finditer(pat, src):
        yield (m.group(1),) + tuple(int(v) for v in m.groups()[1:])


def torch_time(N, C, H, O, k, s, p, g, reps):
    x = torch.randn(N, C, H, H, requires_grad=True)
    conv = torch.nn.Conv2d(C, O, k, s, p, groups=g, bias=False)
    gy, best = None, float("inf")
    for r in range(reps + 2):
        t0 = time.perf_counter()
        y = conv(x)
        if gy is None:
            gy = torch.randn_like(y)
        y.backward(gy)
        t1 = time.perf_counter()
        x.grad = None
        conv.weight.grad = None
        if r >= 2:
            best = min(best, t1 - t0)
    return best * 1e3, y.shape[2]


def main():
    build = sys.argv[1]
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
    torch.set_num_threads(threads)
    os.makedirs("bench/out", exist_ok=True)
    print("convolution forward+backward (data and weights), fastest of %d repetitions x %d alternating rounds, "
          "%d threads" % (reps, rounds, threads))
    print("%-22s %10s %9s %10s %9s %8s" % ("shape", "nibble ms", "GFLOP/s", "torch ms", "GFLOP/s", "speed-up"))
    rows = []
    for i, (name, N, C, H, O, k, s, p, g) in enumerate(shapes()):
        ours = theirs = float("inf")
        for _ in range(rounds):
            out = subprocess.run([os.path.join(build, "bench", "bench_conv"), str(reps), str(i)], check=True,
                                 capture_output=True, text=True).stdout
            ours = min(ours, json.loads(out)["ms"])
            t, Ho = torch_time(N, C, H, O, k, s, p, g, reps)
            theirs = min(theirs, t)
        flops = 6.0 * N * O * Ho * Ho * (C // g) * k * k
        row = {"name": name, "nibble_ms": ours, "torch_ms": theirs, "nibble_gflops": flops / ours / 1e6,
               "torch_gflops": flops / theirs / 1e6, "speedup": theirs / ours, "threads": threads}
        rows.append(row)
        print("%-22s %10.2f %9.1f %10.2f %9.1f %7.2fx" % (name, ours, row["nibble_gflops"], theirs,
                                                          row["torch_gflops"], row["speedup"]), flush=True)
    with open("bench/out/conv.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    dense = [r["speedup"] for r in rows if r["name"].startswith("r18")]
    dw = [r["speedup"] for r in rows if r["name"].startswith("mbv2")]
    print("lowest speed-up: ResNet-18 shapes %.2fx, depthwise %.2fx" % (min(dense), min(dw)))


if __name__ == "__main__":
    main()
