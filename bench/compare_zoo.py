#!/usr/bin/python3
"""The model zoo's training throughput at 224x224 on this machine, nibble against PyTorch (torchvision's models,
Debian's python3-torch: the same oneDNN), forward + cross-entropy + backward + SGD step with the loss read
back, the same batch and thread count, alternating rounds (best of each side), with each process's peak
resident memory. Then image-folder input throughput on one thread: nibble's decode + RandomResizedCrop +
flip + normalise against PIL + torchvision.transforms on the same JPEG files.

usage: compare_zoo.py BUILD_DIR [--rounds R] [--steps S]"""
import argparse
import glob
import json
import os
import resource
import subprocess
import sys
import time

MODELS = [("resnet18", 16), ("shufflenet_v2_x1_0", 32), ("mobilenet_v2", 16), ("alexnet", 32)]

TORCH_STEP = r"""
import sys, time, resource, json, torch, torchvision, torch.nn.functional as F
torch.set_num_threads(int(sys.argv[4]))
arch, B, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
m = getattr(torchvision.models, arch)(num_classes=1000).train()
opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
x = torch.randn(B, 3, 224, 224); y = torch.arange(B) % 1000
for s in range(steps + 1):
    if s == 1: t0 = time.perf_counter()
    opt.zero_grad(); loss = F.cross_entropy(m(x), y); loss.backward(); opt.step(); loss.item()
rate = steps * B / (time.perf_counter() - t0)
print(json.dumps({"img_per_s": rate, "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

TORCH_DECODE = r"""
import sys, time, json, torch
from PIL import Image
import torchvision.transforms as T
torch.set_num_threads(1)
size, passes, files = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
tf = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ToTensor(),
                T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
t0 = time.perf_counter()
for p in range(passes):
    for f in files:
        with open(f, "rb") as fh:
            tf(Image.open(fh).convert("RGB"))
print(json.dumps({"img_per_s": passes * len(files) / (time.perf_counter() - t0)}))
"""


def run_json(cmd):
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    a = ap.parse_args()
    threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
    py = sys.executable
    print("model zoo training throughput at 224x224, %d steps x %d alternating rounds (best), %d threads"
          % (a.steps, a.rounds, threads))
    print("%-20s %5s %12s %12s %9s %11s %11s" % ("model", "batch", "nibble img/s", "torch img/s", "speed-up",
                                                 "nibble MiB", "torch MiB"))
    rows = []
    for arch, batch in MODELS:
        ours, theirs = {"img_per_s": 0, "max_rss_mib": 0}, {"img_per_s": 0, "max_rss_mib": 0}
        for _ in range(a.rounds):
            r = run_json([os.path.join(a.build, "bench", "bench_train"), arch, str(batch), str(a.steps), "1.0", "3",
                          "224", "cpu", "1000"])
            ours = {"img_per_s": max(ours["img_per_s"], r["img_per_s"]), "max_rss_mib": max(ours["max_rss_mib"], r["max_rss_mib"])}
            r = run_json([py, "-c", TORCH_STEP, arch, str(batch), str(a.steps), str(threads)])
            theirs = {"img_per_s": max(theirs["img_per_s"], r["img_per_s"]), "max_rss_mib": max(theirs["max_rss_mib"], r["max_rss_mib"])}
        row = {"name": arch, "batch": batch, "nibble_img_per_s": ours["img_per_s"], "torch_img_per_s": theirs["img_per_s"],
               "speedup": ours["img_per_s"] / theirs["img_per_s"], "nibble_max_rss_mib": ours["max_rss_mib"],
               "torch_max_rss_mib": theirs["max_rss_mib"], "threads": threads}
        rows.append(row)
        print("%-20s %5d %12.1f %12.1f %8.2fx %11.0f %11.0f" % (arch, batch, row["nibble_img_per_s"], row["torch_img_per_s"],
                                                            row["speedup"], row["nibble_max_rss_mib"], row["torch_max_rss_mib"]),
              flush=True)
    # input pipeline: JPEGs of ImageNet-like sizes from a synthetic tree
    tree = "bench/out/images"
    if not os.path.isdir(tree):
        subprocess.run([os.path.join(a.build, "bin", "synth_images"), tree, "4", "48", "1", "300", "500"], check=True,
                       capture_output=True)
    files = sorted(f for f in glob.glob(tree + "/train/*/*") if f.lower().endswith((".jpg", ".jpeg")))
    ours = max(run_json([os.path.join(a.build, "bench", "bench_decode"), "224", "3"] + files)["img_per_s"] for _ in range(a.rounds))
    theirs = max(run_json([py, "-c", TORCH_DECODE, "224", "3"] + files)["img_per_s"] for _ in range(a.rounds))
    print()
    print("JPEG decode + RandomResizedCrop(224) + flip + normalise, one thread, %d files of 300-500 px" % len(files))
    print("nibble (libjpeg-turbo, DCT scaling) %.0f img/s, PIL + torchvision %.0f img/s: %.2fx" % (ours, theirs, ours / theirs))
    rows.append({"name": "decode_rrc_224", "files": len(files), "nibble_img_per_s": ours, "torch_img_per_s": theirs,
                 "speedup": ours / theirs, "threads": 1})
    os.makedirs("bench/out", exist_ok=True)
    with open("bench/out/zoo.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
