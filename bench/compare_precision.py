#!/usr/bin/python3
"""Mixed-precision training throughput on this machine: nibble bf16 (train.precision = bf16) and fp32 against
PyTorch fp32 and PyTorch's CPU autocast bf16 (torch.autocast("cpu", torch.bfloat16), Debian's python3-torch
1.13 on the same oneDNN), forward + cross-entropy + backward + SGD step with the loss read back, the same batch
and thread count, alternating rounds (best of each side), with each process's peak resident memory. ResNet-20
at Fashion-MNIST's 28x28, the zoo at 224x224. Whether the CPU computes bf16 itself (AVX-512 BF16, AMX) decides
what bf16 can gain: the ISA line above the table says.

usage: compare_precision.py BUILD_DIR [--rounds R] [--steps S] [--models a,b]"""
import argparse
import json
import os
import subprocess
import sys

# (architecture, batch, input channels, size, classes)
MODELS = [("resnet20", 128, 1, 28, 10), ("resnet18", 16, 3, 224, 1000), ("mobilenet_v2", 16, 3, 224, 1000),
          ("shufflenet_v2_x1_0", 32, 3, 224, 1000)]

TORCH_STEP = r"""
import sys, time, resource, json, torch, torchvision, torch.nn.functional as F
sys.path.insert(0, "scripts")
torch.set_num_threads(int(sys.argv[7]))
arch, B, cin, size, classes, steps, bf16 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[8] == "bf16"
if arch == "resnet20":
    import torch_models
    m = torch_models.build("resnet20", num_classes=classes, in_channels=cin)
else:
    m = getattr(torchvision.models, arch)(num_classes=classes)
m.train()
opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
x = torch.randn(B, cin, size, size); y = torch.arange(B) % classes
for s in range(steps + 2):
    if s == 2: t0 = time.perf_counter()
    opt.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = F.cross_entropy(m(x).float(), y)
    loss.backward(); opt.step(); loss.item()
rate = steps * B / (time.perf_counter() - t0)
print(json.dumps({"img_per_s": rate, "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_json(cmd):
    """the program's JSON line, or its error (PyTorch 1.13's CPU autocast has no bf16 backward for ReLU6, so
    MobileNetV2 does not train there)"""
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return {"img_per_s": float("nan"), "max_rss_mib": float("nan"), "error": (p.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def best(a, b):
    if "error" in b:
        return b
    return {"img_per_s": max(a["img_per_s"], b["img_per_s"]), "max_rss_mib": max(a["max_rss_mib"], b["max_rss_mib"])}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--models", default=",".join(m[0] for m in MODELS))
    a = ap.parse_args()
    threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
    py = sys.executable
    want = a.models.split(",")
    print("mixed-precision training throughput (img/s), %d steps x %d alternating rounds (best), %d threads; peak RSS MiB"
          % (a.steps, a.rounds, threads))
    print("%-20s %5s %4s | %9s %9s %9s %9s | %8s %8s | %7s %7s" % (
        "model", "batch", "size", "nb fp32", "nb bf16", "pt fp32", "pt bf16", "bf16/fp32", "nb/pt bf16", "nb MiB", "pt MiB"))
    rows = []
    for arch, batch, cin, size, classes in MODELS:
        if arch not in want:
            continue
        zero = {"img_per_s": 0, "max_rss_mib": 0}
        r = {k: dict(zero) for k in ("nb_fp32", "nb_bf16", "pt_fp32", "pt_bf16")}
        for _ in range(a.rounds):
            for prec in ("fp32", "bf16"):
                r["nb_" + prec] = best(r["nb_" + prec], run_json(
                    [os.path.join(a.build, "bench", "bench_train"), arch, str(batch), str(a.steps), "1.0", str(cin), str(size),
                     "cpu", str(classes), prec]))
                r["pt_" + prec] = best(r["pt_" + prec], run_json(
                    [py, "-c", TORCH_STEP, arch, str(batch), str(cin), str(size), str(classes), str(a.steps), str(threads), prec]))
        row = {"name": arch, "batch": batch, "size": size, "threads": threads}
        for k, v in r.items():
            row[k + "_img_per_s"] = v["img_per_s"]
            row[k + "_max_rss_mib"] = v["max_rss_mib"]
        row["nb_bf16_over_nb_fp32"] = r["nb_bf16"]["img_per_s"] / r["nb_fp32"]["img_per_s"]
        row["nb_bf16_over_pt_bf16"] = r["nb_bf16"]["img_per_s"] / r["pt_bf16"]["img_per_s"]
        errors = ["%s: %s" % (k, v["error"]) for k, v in r.items() if "error" in v]
        if errors:
            row["errors"] = errors
        rows.append(row)
        print("%-20s %5d %4d | %9.1f %9.1f %9.1f %9.1f | %7.2fx %7.2fx | %7.0f %7.0f" % (
            arch, batch, size, r["nb_fp32"]["img_per_s"], r["nb_bf16"]["img_per_s"], r["pt_fp32"]["img_per_s"],
            r["pt_bf16"]["img_per_s"], row["nb_bf16_over_nb_fp32"], row["nb_bf16_over_pt_bf16"],
            r["nb_bf16"]["max_rss_mib"], r["pt_bf16"]["max_rss_mib"]), flush=True)
        for e in errors:
            print("    %s failed: %s" % tuple(e.split(": ", 1)))
    os.makedirs("bench/out", exist_ok=True)
    with open("bench/out/precision.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
