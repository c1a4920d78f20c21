#!/usr/bin/python3
"""Real speed from full-integer quantization on this machine: ONNX Runtime running nibble's float export
(batch norms folded) against the same network exported full-integer by nibble (bin/quantize with
quantize.activations=8, then bin/export: QDQ that ONNX Runtime fuses into QLinearConv and friends), batch 1
latency and batch B throughput, with PyTorch 1.13's own int8 (eager mode, FBGEMM or, in Debian's build, oneDNN;
torchvision's quantizable models) as the peer, in one run, the same thread count. Speed does not depend on the weights: the networks
are freshly initialised and calibrated on a few random images. The file sizes are beside the times.

Without AVX-512 VNNI (or AVX-VNNI, AMX) x86 computes u8 x s8 products in 16-bit pairs and three instructions
where VNNI takes one: the int8 gain is smaller there, and the ratios below hold for this CPU only.

nibble's own integer inference (bench_infer: infer/net.h on oneDNN's int8 kernels) runs the same full-integer
checkpoint on the line below each model, beside nibble's float network on the same inference path (oneDNN
float convolutions, batch norms folded, NHWC), and is set against ONNX Runtime's int8 (a ratio above 1: nibble
faster). An op it has no integer step for is reported instead. resnet18_pruned50 is ResNet-18 with half its
prunable channels removed by channel pruning (no PyTorch peer: torchvision has no such network).

Where MNN is built (scripts/mnn_setup.sh: build/mnn), MNN runs the same two networks too: the float export
and the full-integer one as bin/export --mnn writes it (MNN's forms and its compression-parameter file),
converted by MNNConvert and timed by scripts/mnn_run.cpp.

usage: compare_int8.py BUILD_DIR [--threads T] [--batch B] [--seconds S] [--archs a,b,...]"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ARCHS = [("resnet18", 224), ("resnet18_pruned50", 224), ("mobilenet_v2", 224), ("shufflenet_v2_x1_0", 224),
         ("lrssd_mobilenet_v2", 300)]
# a row that is a zoo network compressed first: its arch and the training overrides that compress it (channel
# pruning of half the prunable channels, gone from both exports and from nibble's networks)
VARIANTS = {"resnet18_pruned50": ("resnet18", ["compress.methods=prune", "compress.granularity=channel",
                                               "compress.sparsity=0.5"])}

TORCH_INT8 = r"""
import sys, time, json, torch, torchvision
from torchvision.models import quantization as tq
arch, size, threads, batch, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
torch.set_num_threads(threads)
# FBGEMM where this build has it; Debian's torch has oneDNN's x86 int8 and QNNPACK instead, and oneDNN 2.6's
# reorder refuses MobileNetV2's depthwise convolutions at batch 32 on AVX-512 machines: the first engine that runs
# both batch sizes counts
def build(engine):
    torch.backends.quantized.engine = engine
    m = getattr(tq, arch)(quantize=False).eval()
    m.fuse_model()
    m.qconfig = torch.quantization.get_default_qconfig(engine)
    torch.quantization.prepare(m, inplace=True)
    with torch.no_grad():
        m(torch.randn(8, 3, size, size))
    torch.quantization.convert(m, inplace=True)
    with torch.no_grad():  # both shapes timed below: oneDNN fails at some batch sizes only
        m(torch.randn(1, 3, size, size))
        m(torch.randn(batch, 3, size, size))
    return m
failed = []
for engine in [e for e in ("fbgemm", "onednn", "qnnpack") if e in torch.backends.quantized.supported_engines]:
    try:
        m = build(engine)
        break
    except RuntimeError as e:
        failed.append(f"{engine}: {str(e).splitlines()[0]}")
else:
    print(json.dumps({"ms_batch1": float("nan"), "img_per_s": float("nan"), "engine": "none", "failed": failed}))
    sys.exit(0)
def timed(x, budget, runs):
    ts = []
    end = time.perf_counter() + budget
    while len(ts) < runs or time.perf_counter() < end:
        t0 = time.perf_counter(); m(x); ts.append(time.perf_counter() - t0)
    return sorted(ts)[len(ts) // 2]
with torch.no_grad():
    one, many = torch.randn(1, 3, size, size), torch.randn(batch, 3, size, size)
    timed(one, 0, 3)
    t1 = timed(one, seconds, 10)
    timed(many, 0, 1)
    tb = timed(many, seconds, 3)
print(json.dumps({"ms_batch1": 1000 * t1, "img_per_s": batch / tb, "engine": engine, "failed": failed}))
"""


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")
    return r.stdout


def last_json(text):
    return json.loads(text.strip().splitlines()[-1])


def classifier_data(d, size):
    import h5py
    rng = np.random.default_rng(0)
    path = os.path.join(d, f"rgb{size}.h5")
    with h5py.File(path, "w") as f:
        f["images"] = rng.integers(0, 256, (16, 3, size, size), dtype=np.uint8)
        f["labels"] = rng.integers(0, 1000, 16).astype(np.int64)
    return (f"[data]\nformat = hdf5\ntrain = {path}\nval = {path}\naugment = none\n"
            "mean = 0.485, 0.456, 0.406\nstd = 0.229, 0.224, 0.225\nworkers = 1\n[model]\nnum_classes = 1000\n")


def detection_data(d, size):
    root = os.path.join(d, "voc")
    run([sys.executable, "scripts/make_synth_voc.py", root, "--train", "16", "--test", "4", "--size", str(size)])
    return (f"[data]\nformat = voc\nroot = {root}\ntrain = SYNTH/trainval\nval = SYNTH/test\n"
            "classes = circle,square,triangle,star,cross,ring\naugment = none\n"
            "mean = 0.485, 0.456, 0.406\nstd = 0.229, 0.224, 0.225\nworkers = 1\n[model]\nnum_classes = 7\n")


def models(build, d, arch, size):
    """A fresh checkpoint of arch, its float export (batch norms folded) and its full-integer export"""
    data = detection_data(d, size) if arch.startswith("lrssd") else classifier_data(d, size)
    cfg = os.path.join(d, f"{arch}.cfg")
    base, overrides = VARIANTS.get(arch, (arch, []))
    with open(cfg, "w") as f:
        f.write(data + f"arch = {base}\nin_channels = 3\ninput_size = {size}\n"
                "[train]\nepochs = 1\nsteps = 1\nbatch = 2\neval_batch = 2\nlog_every = 100\n"
                "[optim]\ntype = sgd\nlr = 0\nwarmup_epochs = 0\n")
    out = os.path.join(d, arch)
    run([f"{build}/bin/train", cfg, f"train.out={out}"] + overrides)
    ckpt, q = os.path.join(out, "last.h5"), os.path.join(d, f"{arch}_w8a8.h5")
    run([f"{build}/bin/quantize", ckpt, q, "quantize.activations=8", "quantize.calibration=8"])
    fl, i8 = os.path.join(d, f"{arch}_float.onnx"), os.path.join(d, f"{arch}_int8.onnx")
    run([f"{build}/bin/export", ckpt, "-o", fl, "--fold-bn"])
    run([f"{build}/bin/export", q, "-o", i8])
    if os.access(MNN_CONVERT, os.X_OK):
        # MNN's int8 adds need zero point 0: symmetric activation grids (README, Export: MNN)
        qs = os.path.join(d, f"{arch}_w8a8_symmetric.h5")
        run([f"{build}/bin/quantize", ckpt, qs, "quantize.activations=8", "quantize.calibration=8",
             "quantize.activation_grid=symmetric"])
        for src, stem, extra in ((ckpt, f"{arch}_float_mnn", ["--fold-bn"]), (qs, f"{arch}_int8_mnn", [])):
            path = os.path.join(d, stem)
            run([f"{build}/bin/export", src, "-o", path + ".onnx", "--mnn"] + extra)
            params = ["--compressionParamsFile", path + ".mnn.json"] if os.path.exists(path + ".mnn.json") else []
            run([MNN_CONVERT, "-f", "ONNX", "--modelFile", path + ".onnx", "--MNNModel", path + ".mnn",
                 "--bizCode", "nibble"] + params)
    return fl, i8


MNN_CONVERT, MNN_RUN = "build/mnn/MNNConvert", "build/mnn/mnn_run"


def mnn_times(path, size, threads, batch, seconds):
    """MNN's median batch-1 milliseconds and batch-B images per second"""
    out = {}
    for b in (1, batch):
        with tempfile.NamedTemporaryFile(suffix=".f32") as x:
            np.random.default_rng(0).standard_normal((b, 3, size, size), dtype=np.float32).tofile(x.name)
            r = last_json(run([MNN_RUN, path, x.name, f"{b},3,{size},{size}", "/dev/null", "--threads", str(threads),
                               "--batch", str(b), "--seconds", str(seconds)]))
        out["ms_batch1" if b == 1 else "img_per_s"] = r["median_ms"] if b == 1 else 1000.0 * b / r["median_ms"]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--archs", default=",".join(a for a, _ in ARCHS))
    a = ap.parse_args()
    env = dict(os.environ, NODE_PATH=os.environ.get("NB_ORT_NODE_PATH", "build/ort/node_modules"))
    wanted = a.archs.split(",")
    print(f"ONNX Runtime float32 vs nibble's full-integer export (W8A8, QDQ fused by ONNX Runtime), "
          f"{a.threads} threads; PyTorch 1.13 eager int8 as the peer; batch 1 ms (median), batch {a.batch} img/s")
    print(f"{'model':20s} {'float ms':>9s} {'int8 ms':>9s} {'x':>5s} {'torch i8':>9s} | "
          f"{'float/s':>8s} {'int8/s':>8s} {'x':>5s} {'torch/s':>8s} | {'float MB':>8s} {'int8 MB':>8s}  torch engine")
    with tempfile.TemporaryDirectory(prefix="nibble-int8-") as d:
        for arch, size in ARCHS:
            if arch not in wanted:
                continue
            fl, i8 = models(a.build, d, arch, size)
            bench = ["node", "bench/ort_bench.js"]
            opts = ["3", str(size), str(size), "--threads", str(a.threads), "--batch", str(a.batch),
                    "--seconds", str(a.seconds)]
            f = last_json(run(bench + [fl] + opts, env=env))
            q = last_json(run(bench + [i8] + opts, env=env))
            t = {"ms_batch1": float("nan"), "img_per_s": float("nan"), "engine": "-"}
            if not arch.startswith("lrssd") and arch not in VARIANTS:
                t = last_json(run([sys.executable, "-c", TORCH_INT8, arch, str(size), str(a.threads), str(a.batch),
                                   str(a.seconds)]))
            mb = lambda p: os.path.getsize(p) / 1e6
            row = {"model": arch, "size": size, "threads": a.threads, "batch": a.batch,
                   "ort_float": f, "ort_int8": q, "torch_int8": t,
                   "speedup_batch1": f["ms_batch1"] / q["ms_batch1"], "speedup_batch": q["img_per_s"] / f["img_per_s"],
                   "float_mb": mb(fl), "int8_mb": mb(i8)}
            print(f"{arch:20s} {f['ms_batch1']:9.2f} {q['ms_batch1']:9.2f} {row['speedup_batch1']:5.2f} "
                  f"{t['ms_batch1']:9.2f} | {f['img_per_s']:8.1f} {q['img_per_s']:8.1f} {row['speedup_batch']:5.2f} "
                  f"{t['img_per_s']:8.1f} | {row['float_mb']:8.2f} {row['int8_mb']:8.2f}  {t.get('engine', '-')}", flush=True)
            if os.access(MNN_RUN, os.X_OK):
                stem = os.path.join(d, arch)
                mf = mnn_times(stem + "_float_mnn.mnn", size, a.threads, a.batch, a.seconds)
                mq = mnn_times(stem + "_int8_mnn.mnn", size, a.threads, a.batch, a.seconds)
                row.update(mnn_float=mf, mnn_int8=mq, mnn_speedup_batch1=mf["ms_batch1"] / mq["ms_batch1"],
                           mnn_speedup_batch=mq["img_per_s"] / mf["img_per_s"],
                           mnn_float_mb=mb(stem + "_float_mnn.mnn"), mnn_int8_mb=mb(stem + "_int8_mnn.mnn"))
                print(f"{'  MNN 3.6':20s} {mf['ms_batch1']:9.2f} {mq['ms_batch1']:9.2f} {row['mnn_speedup_batch1']:5.2f} "
                      f"{'':9s} | {mf['img_per_s']:8.1f} {mq['img_per_s']:8.1f} {row['mnn_speedup_batch']:5.2f} "
                      f"{'':8s} | {row['mnn_float_mb']:8.2f} {row['mnn_int8_mb']:8.2f}", flush=True)
            # nibble's own integer inference (infer/: oneDNN int8) and nibble's float forward of the same network
            nb = os.path.join(a.build, "bench", "bench_infer")
            r = subprocess.run([nb, os.path.join(d, f"{arch}_w8a8.h5"), str(a.batch), str(a.seconds)],
                               capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=str(a.threads)))
            if r.returncode == 0:
                n = last_json(r.stdout)
                row.update(nibble=n, nibble_speedup_batch1=n["float_ms_batch1"] / n["int8_ms_batch1"],
                           nibble_speedup_batch=n["int8_img_per_s"] / n["float_img_per_s"],
                           nibble_vs_ort_batch1=q["ms_batch1"] / n["int8_ms_batch1"],
                           nibble_vs_ort_batch=n["int8_img_per_s"] / q["img_per_s"])
                print(f"{'  nibble':20s} {n['float_ms_batch1']:9.2f} {n['int8_ms_batch1']:9.2f} "
                      f"{row['nibble_speedup_batch1']:5.2f} {'':9s} | {n['float_img_per_s']:8.1f} {n['int8_img_per_s']:8.1f} "
                      f"{row['nibble_speedup_batch']:5.2f} {'':8s} |  int8 vs ONNX Runtime's int8: "
                      f"{row['nibble_vs_ort_batch1']:.2f}x / {row['nibble_vs_ort_batch']:.2f}x", flush=True)
            else:  # an op with no integer step yet: the reason, in one line
                why = (r.stderr.strip().splitlines() or ["failed"])[-1]
                row["nibble_error"] = why
                print(f"{'  nibble':20s} integer inference not run: {why}", flush=True)
            os.makedirs("bench/out", exist_ok=True)
            with open("bench/out/int8.jsonl", "a") as out:
                out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
