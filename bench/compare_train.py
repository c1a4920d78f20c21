#!/usr/bin/python3
"""Training throughput on Fashion-MNIST-shaped batches (1x28x28, 10 classes): nibble's bench_train against
PyTorch running the same architecture (scripts/torch_models.py), forward + cross-entropy + backward + SGD
step, same batch and thread count, taking turns for several rounds and keeping each side's best round.
Both sides do the same arithmetic, so each rate is also given as GFLOP/s and as a share of the machine's FMA
ceiling (bench_peak): that share says how much room any implementation has left on this CPU.

usage: compare_train.py BUILD_DIR ARCH[:WIDTH] ... [--batch B] [--steps S] [--rounds R]"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from torch_models import build  # noqa: E402


def torch_rate(arch, width, batch, steps):
    torch.manual_seed(0)
    m = build(arch, num_classes=10, in_channels=1, input_size=28, width=width).train()
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(batch, 1, 28, 28)
    y = torch.arange(batch) % 10
    for s in range(steps + 3):
        if s == 3:
            t0 = time.perf_counter()
        opt.zero_grad()
        F.cross_entropy(m(x), y).backward()
        opt.step()
    return steps * batch / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("models", nargs="+")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    if a.rounds < 1:
        sys.exit("compare_train: --rounds must be at least 1")
    threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
    torch.set_num_threads(threads)
    # the ceiling and nibble's rate at the thread count PyTorch gets, also when run outside make bench
    os.environ["OMP_NUM_THREADS"] = str(threads)
    print("training throughput, batch %d, 1x28x28, %d steps x %d alternating rounds (best), %d threads"
          % (a.batch, a.steps, a.rounds, threads))
    peak = json.loads(subprocess.run([os.path.join(a.build, "bench", "bench_peak")], check=True, capture_output=True,
                                     text=True).stdout)
    print("FMA ceiling: %.0f GFLOP/s (%s, %d threads)" % (peak["peak_gflop_per_s"], peak["isa"], peak["threads"]))
    print("%-16s %12s %12s %9s %15s %15s %14s" % ("model", "nibble img/s", "torch img/s", "speed-up", "nibble GFLOP/s",
                                                 "torch GFLOP/s", "2x torch needs"))
    rows = []
    for spec in a.models:
        arch, _, width = spec.partition(":")
        width = float(width or 1.0)
        ours = theirs = 0.0
        for _ in range(a.rounds):
            out = subprocess.run([os.path.join(a.build, "bench", "bench_train"), arch, str(a.batch), str(a.steps), str(width)],
                                 check=True, capture_output=True, text=True).stdout
            r = json.loads(out)
            ours = max(ours, r["img_per_s"])
            theirs = max(theirs, torch_rate(arch, width, a.batch, a.steps))
        gflop_per_img = 2 * r["train_mmacs_per_img"] / 1e3
        share = lambda img_per_s: img_per_s * gflop_per_img / peak["peak_gflop_per_s"]
        row = {"name": spec, "batch": a.batch, "nibble_img_per_s": ours, "torch_img_per_s": theirs,
               "speedup": ours / theirs, "threads": threads, "train_mmacs_per_img": r["train_mmacs_per_img"],
               "peak_gflop_per_s": peak["peak_gflop_per_s"], "nibble_peak_share": share(ours),
               "torch_peak_share": share(theirs), "twice_torch_peak_share": share(2 * theirs)}
        rows.append(row)
        print("%-16s %12.0f %12.0f %8.2fx %8.0f (%3.0f%%) %8.0f (%3.0f%%) %8.0f%% peak"
              % (spec, ours, theirs, ours / theirs, ours * gflop_per_img, 100 * share(ours), theirs * gflop_per_img,
                 100 * share(theirs), 100 * share(2 * theirs)), flush=True)
    os.makedirs("bench/out", exist_ok=True)
    with open("bench/out/train.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
