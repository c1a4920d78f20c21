#!/usr/bin/env python3
"""GPU training throughput: nibble's bench_train on the CUDA backend against PyTorch (torchvision's models) on
the same GPU, ImageNet-shaped batches (3x224x224, 1000 classes), forward + cross-entropy + backward + SGD
step with the loss read back every step, FP32 storage with TF32 convolutions (PyTorch's default). PyTorch
runs twice: with cudnn.benchmark off (its default: cuDNN's heuristics, as nibble) and on (timed algorithm
search). Rounds alternate between the two programs; each side keeps its best round.

usage: compare_train_gpu.py BUILD_DIR [--models resnet18,shufflenet_v2_x1_0] [--batch 256] [--steps 30]
       [--rounds 2] [--out bench/out/train_gpu.jsonl]"""
import argparse
import json
import os
import subprocess
import time

import torch
import torch.nn.functional as F
import torchvision


def torch_rate(arch, batch, steps, size, benchmark):
    torch.backends.cudnn.benchmark = benchmark
    torch.manual_seed(0)
    m = getattr(torchvision.models, arch)(num_classes=1000).cuda().train()
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(batch, 3, size, size, device="cuda")
    y = (torch.arange(batch, device="cuda") % 1000)
    for s in range(steps + 5):
        if s == 5:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        loss.item()
    torch.cuda.synchronize()
    rate = steps * batch / (time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**20
    del m, opt, x, y
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    return rate, peak


def nibble_rate(build, arch, batch, steps, size):
    out = subprocess.run([os.path.join(build, "bench", "bench_train"), arch, str(batch), str(steps), "1.0", "3",
                          str(size), "cuda", "1000"], check=True, capture_output=True, text=True).stdout
    r = json.loads(out)
    return r["img_per_s"], r["peak_mem_mib"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--models", default="resnet18,shufflenet_v2_x1_0")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default="bench/out/train_gpu.jsonl")
    a = ap.parse_args()
    dev = torch.cuda.get_device_name(0)
    print("GPU training throughput on %s, batch %d, 3x%dx%d, 1000 classes, %d steps x %d alternating rounds "
          "(best), PyTorch %s" % (dev, a.batch, a.size, a.size, a.steps, a.rounds, torch.__version__))
    print("%-20s %12s %14s %14s %10s %10s" % ("model", "nibble img/s", "torch img/s", "torch bench.", "vs torch",
                                               "vs bench."))
    rows = []
    for arch in a.models.split(","):
        ours = theirs = theirs_b = 0.0
        mem = {}
        for _ in range(a.rounds):
            r, mem["nibble"] = nibble_rate(a.build, arch, a.batch, a.steps, a.size)
            ours = max(ours, r)
            r, mem["torch"] = torch_rate(arch, a.batch, a.steps, a.size, False)
            theirs = max(theirs, r)
            r, mem["torch_benchmark"] = torch_rate(arch, a.batch, a.steps, a.size, True)
            theirs_b = max(theirs_b, r)
        row = {"name": arch, "device": dev, "batch": a.batch, "size": a.size, "nibble_img_per_s": ours,
               "torch_img_per_s": theirs, "torch_benchmark_img_per_s": theirs_b, "speedup": ours / theirs,
               "speedup_vs_benchmark": ours / theirs_b, "peak_mem_mib": mem, "torch": torch.__version__}
        rows.append(row)
        print("%-20s %12.0f %14.0f %14.0f %9.2fx %9.2fx" % (arch, ours, theirs, theirs_b, ours / theirs,
                                                            ours / theirs_b), flush=True)
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
