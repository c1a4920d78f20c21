#!/usr/bin/python3
"""Data-parallel training on this machine: one rank with all the threads against `mpirun -np 2` ranks of half
the threads each, at the same global batch, for the Fashion-MNIST default (ResNet-20) and ResNet-18 at
224x224; the training throughput of each (bin/train's own step metrics, the first window left out as
warm-up) and the share of a step rank 0 spends waiting for the gradient all-reduce.

usage: compare_dist.py BUILD_DIR [--out bench/out/dist.jsonl]"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--mca", "btl_vader_single_copy_mechanism", "none"]


def synthetic_h5(path, n, size, classes):
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f["images"] = rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8)
        f["labels"] = rng.integers(0, classes, n).astype(np.int64)


def run(build, cfg, ranks, threads, steps, log_every, out, extra):
    """bin/train for `steps` steps; the mean img/s and comm share of its step windows after the first"""
    cmd = [f"{build}/bin/train", cfg, f"train.out={out}", f"train.steps={steps}", f"train.log_every={log_every}",
           f"train.threads={threads}", "train.epochs=1000"] + extra
    if ranks > 1:
        cmd = MPIRUN + ["-np", str(ranks)] + cmd
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    lines = [json.loads(l) for l in open(f"{out}/metrics.jsonl") if '"step"' in l]
    lines = [l for l in lines if l["type"] == "step"][1:]  # the first window holds the set-up
    rate = sum(l["img_per_s"] for l in lines) / len(lines)
    comm = sum(l.get("comm_share", 0.0) for l in lines) / len(lines)
    shutil.rmtree(out)
    return rate, comm


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--out", default="bench/out/dist.jsonl")
    a = ap.parse_args()
    if not shutil.which("mpirun"):
        print("data-parallel benchmark not run: no mpirun (scripts/install-deps.sh installs openmpi-bin)")
        return
    cores = os.cpu_count()
    tmp = tempfile.mkdtemp(prefix="nibble-bench-dist-")
    h5 = f"{tmp}/r18.h5"
    synthetic_h5(h5, 128, 224, 1000)
    r18 = f"{tmp}/r18.cfg"
    with open(r18, "w") as f:
        f.write(f"[model]\narch = resnet18\nnum_classes = 1000\nin_channels = 3\ninput_size = 224\n"
                f"[data]\nformat = hdf5\ntrain = {h5}\nval = {h5}\naugment = flip\nmean = 0.485, 0.456, 0.406\n"
                f"std = 0.229, 0.224, 0.225\nworkers = 1\n[train]\nbatch = 32\n"
                f"[optim]\ntype = sgd\nlr = 0.01\nmomentum = 0.9\nwd = 1e-4\n")
    cases = [("fmnist_resnet20", "experiments/fmnist_resnet20.cfg", 60, 10), ("resnet18_224", r18, 8, 2)]
    rows = []
    print(f"data-parallel training on {cores} cores: 1 rank x {cores} threads vs 2 ranks x {cores // 2} threads, "
          f"same global batch")
    print(f"{'model':<18} {'1 rank img/s':>13} {'2 ranks img/s':>14} {'ratio':>6} {'comm share':>11}")
    for name, cfg, steps, log_every in cases:
        # train.steps ends the runs inside their first epoch: no evaluation in the timings
        one, _ = run(a.build, cfg, 1, cores, steps, log_every, f"{tmp}/one", [])
        two, comm = run(a.build, cfg, 2, max(1, cores // 2), steps, log_every, f"{tmp}/two", [])
        rows.append({"model": name, "one_rank_img_per_s": one, "two_ranks_img_per_s": two, "ratio": two / one,
                     "comm_share": comm, "cores": cores})
        print(f"{name:<18} {one:13.1f} {two:14.1f} {two / one:6.2f} {100 * comm:10.1f}%")
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "a") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
