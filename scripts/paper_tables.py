#!/usr/bin/python3
"""Regenerates paper/fmnist_tables.md and its plots (paper/fmnist_quant.png, paper/fmnist_prune.png) from the
runs of scripts/paper_fmnist.sh: every number comes from a run's metrics.jsonl or a bin/eval JSON, never from
this file. Accuracies are Fashion-MNIST test top-1 of the final (deployable) weights; the best epoch is given
beside where it differs.

usage: paper_tables.py [--runs runs] [--out paper] [--bin bin]"""
import argparse
import collections
import json
import os
import subprocess

BOOKS = [("binary", "1 bit {±1}", 1), ("ternary", "2 bits {0,±1}", 2), ("pm2", "3 bits {0,±1,±2}", 3),
         ("pm4", "3 bits {0,±1,±2,±4}", 3)]
BOOK_LABEL = {name: label for name, label, _ in BOOKS}


def epochs(runs, name):
    path = os.path.join(runs, name, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    return [json.loads(l) for l in open(path) if '"type": "epoch"' in l]


def planned_value(runs, name, section, key):
    """a key's value (a string) from the run's resolved config.cfg, or None"""
    path, current = os.path.join(runs, name, "config.cfg"), None
    if not os.path.exists(path):
        return None
    for line in open(path):
        line = line.split("#")[0].strip()
        if line.startswith("["):
            current = line.strip("[]")
        elif current == section and "=" in line and line.split("=")[0].strip() == key:
            return line.split("=", 1)[1].strip()
    return None


def planned_epochs(runs, name):
    """train.epochs from the run's resolved config.cfg, or None"""
    v = planned_value(runs, name, "train", "epochs")
    return None if v is None else int(v)


def final(runs, name):
    """the last epoch's metrics of a finished run; None while it is still running (a half-trained number in a
    table would look like a result)"""
    e = epochs(runs, name)
    if not e:
        return None
    planned = planned_epochs(runs, name)
    return e[-1] if planned is None or e[-1]["epoch"] >= planned else None


def pct(v):
    return "—" if v is None else "%.2f" % (100 * v)


def top1(runs, name):
    f = final(runs, name)
    return f["val_top1"] if f else None


def best_top1(runs, name):
    """the score of the run's best.h5, the checkpoint a teacher is loaded from"""
    e = epochs(runs, name)
    return max(x["val_top1"] for x in e) if e else None


def seeded(name, seed):
    """the run of experiment `name` with train.seed = seed: seed 1 is the cfg's own run, others are runs/<name>_s<seed>
    (scripts/paper_fmnist.sh's reseeded)"""
    return name if seed == 1 else "%s_s%d" % (name, seed)


def mean_sd(values):
    """mean and sample standard deviation (two or more values)"""
    mean = sum(values) / len(values)
    return mean, (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5


Seeds = collections.namedtuple("Seeds", "runs spread mean")


def over_seeds(runs, name, seeds):
    """a run's top-1 over seeds: runs "a / b / c" and spread "mean ± sd" as table text ("" and mean None until
    two have finished)"""
    values = [top1(runs, seeded(name, seed)) for seed in seeds]
    done = [v for v in values if v is not None]
    text = " / ".join(pct(v) for v in values)
    if len(done) < 2:
        return Seeds(text, "", None)
    mean, sd = mean_sd(done)
    return Seeds(text, "%.2f ± %.2f" % (100 * mean, 100 * sd), mean)


def seeds_cell(s):
    """one table cell: the runs, and under them their mean ± sd"""
    return s.runs + ("<br>" + s.spread if s.spread else "")


def ptq(runs, name):
    path = os.path.join(runs, "fmnist_ptq", name + ".eval.json")
    return json.load(open(path))["top1"] if os.path.exists(path) else None


def difference(v, ref):
    """v - ref in points of top-1, as table text ("" while either is missing)"""
    return "" if v is None or ref is None else "%+.2f" % (100 * (v - ref))


def delta(v, ref):
    d = difference(v, ref)
    return " (%s)" % d if d else ""


def int8_rows(R):
    """The full-integer rows: (label, bits, method, name) whose results runs/fmnist_int8/<name>.* hold"""
    return [("W8A8", "post-training, min-max ranges, 512 images", "w8a8_minmax"),
            ("W8A8", "post-training, 99.99th-percentile ranges", "w8a8_percentile"),
            ("W8A8", "post-training, least-squared-error ranges", "w8a8_mse"),
            ("W8A8", "data-free: 64 ZeroQ-distilled images, no real one", "w8a8_zeroq"),
            ("W8A8", "data-free: ranges from batch-norm statistics, no image at all", "w8a8_bn"),
            ("W8A8", "post-training, symmetric int8 activations (MNN's form)", "w8a8_symmetric"),
            ("W8A8", "post-training, one step size per layer (not per channel)", "w8a8_layer"),
            ("W8A8", "post-training, full int8 weight range (no reduce_range)", "w8a8_fullrange"),
            ("W8A8", "LSQ quantization-aware, 2 epochs", "qat_w8a8"),
            ("W4A4", "LSQ quantization-aware, 6 epochs", "qat_w4a4"),
            ("W3A3", "LSQ quantization-aware, 6 epochs", "qat_w3a3"),
            ("W2A2", "LSQ quantization-aware, 6 epochs", "qat_w2a2"),
            ("{0,±1,±2,±4} A8", "ADMM 3 + 3 weights, LSQ 8-bit activations", "admm_pm4_a8")]


def int8_speed(R, name):
    """(float ms, int8 ms at batch 1, float img/s, int8 img/s at 256) from runs/fmnist_int8/<name>.speed.jsonl"""
    path = os.path.join(R, "fmnist_int8", name + ".speed.jsonl")
    if not os.path.exists(path):
        return None
    t = {}
    for line in open(path):
        r = json.loads(line)
        t[("float" if r["model"].endswith("float.onnx") else "int8", r["batch"])] = r
    try:
        return (t[("float", 1)]["ms_batch1"], t[("int8", 1)]["ms_batch1"], t[("float", 256)]["img_per_s"],
                t[("int8", 256)]["img_per_s"])
    except KeyError:
        return None


def speed_cells(R, name):
    """The table's two speed cells for runs/fmnist_int8/<name>: batch 1 ms and batch 256 img/s, float → int8"""
    sp = int8_speed(R, name)
    if not sp:
        return ("—", "—")
    return ("%.3f → %.3f (%.2fx)" % (sp[0], sp[1], sp[0] / sp[1]), "%.0f → %.0f (%.2fx)" % (sp[2], sp[3], sp[3] / sp[2]))


def mbv2_int8_rows(R):
    """MobileNetV2's W8A8 post-training rows, per-channel and per-tensor weights, after the ResNet-20's"""
    path = os.path.join(R, "fmnist_int8", "mbv2_float.eval.json")
    if not os.path.exists(path):
        return []
    fp = json.load(open(path))["top1"]
    L = ["| | **MobileNetV2** (`experiments/fmnist_mobilenetv2.cfg`), full precision | %s | | | | | |" % pct(fp)]
    for scale, what in (("channel", "per-channel"), ("layer", "per-tensor")):
        e_path = os.path.join(R, "fmnist_int8", "mbv2_w8a8_%s.eval.json" % scale)
        if not os.path.exists(e_path):
            L.append("| W8A8 | MobileNetV2, post-training min-max, %s weights | — | — | — | — | — | — |" % what)
            continue
        e = json.load(open(e_path))
        o = e.get("onnxruntime", {})
        speed = speed_cells(R, "mbv2_w8a8_" + scale)
        L.append("| W8A8 | MobileNetV2, post-training min-max, %s weights | %s%s | %s | %s | %s | %s | %s |" % (
            what, pct(e["top1"]), delta(e["top1"], fp), pct(o.get("top1")), pct(o.get("top1_agreement")),
            pct(o.get("within_one_step")), speed[0], speed[1]))
    return L


def int8_table(R, fp):
    L = ["## Full integer: weights and activations, run in ONNX Runtime's integer kernels\n",
         "| W / A | method | simulated top-1 | ONNX Runtime top-1 | top-1 agreement | logits within one step | "
         "batch 1 ms, float → int8 | batch 256 img/s, float → int8 |",
         "|---|---|---|---|---|---|---|---|",
         "| W32A32 | full precision: the checkpoint every row starts from | %s | | | | | |" % pct(fp)]
    for bits, method, name in int8_rows(R):
        path = os.path.join(R, "fmnist_int8", name + ".eval.json")
        if not os.path.exists(path):
            L.append("| %s | %s | — | — | — | — | — | — |" % (bits, method))
            continue
        e = json.load(open(path))
        o = e.get("onnxruntime", {})
        speed = speed_cells(R, name)
        # a row run with more seeds (runs/fmnist_int8/<name>_s<seed>.eval.json) shows them and their mean
        others = [os.path.join(R, "fmnist_int8", "%s_s%d.eval.json" % (name, k)) for k in (2, 3)]
        seeds = [e["top1"]] + [json.load(open(q))["top1"] for q in others if os.path.exists(q)]
        top = pct(e["top1"]) + delta(e["top1"], fp)
        if len(seeds) > 1:
            mean, sd = mean_sd(seeds)
            top = "%s = %.2f ± %.2f%s" % (" / ".join(pct(v) for v in seeds), 100 * mean, 100 * sd, delta(mean, fp))
        L.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            bits, method, top, pct(o.get("top1")),
            pct(o.get("top1_agreement")), pct(o.get("within_one_step")), speed[0], speed[1]))
    peer = os.path.join(R, "fmnist_int8", "torch_ptq.json")
    if os.path.exists(peer):
        t = json.load(open(peer))
        L.append("| W8A8 | PyTorch %s eager-mode post-training (%s engine, histogram observers, the same 512 images) "
                 "| %s%s | | | | | |" % (t["torch"], t["engine"], pct(t["int8_top1"]), delta(t["int8_top1"], fp)))
    peer = os.path.join(R, "fmnist_int8", "torch_qat.json")
    if os.path.exists(peer):
        t = json.load(open(peer))
        L.append("| W8A8 | PyTorch %s eager-mode quantization-aware, %d epochs (%s engine, moving-average min-max fake "
                 "quantizers, the W8A8 LSQ row's recipe) | %s%s | | | | | |"
                 % (t["torch"], t["qat_epochs"], t["engine"], pct(t["int8_top1"]), delta(t["int8_top1"], fp)))
    L.extend(mbv2_int8_rows(R))
    machine = os.path.join(R, "fmnist_int8", "machine.txt")
    cpu = open(machine).read().strip() if os.path.exists(machine) else "not recorded"
    L.append("\nFrom the full-precision ResNet-20's best.h5 (or, for the quantization-aware rows, its fine-tuned runs "
             "`experiments/fmnist_qat_*.cfg`, `fmnist_admm_pm4_a8.cfg`): every convolution and linear layer's "
             "weight (per output channel, batch norms folded in) and every activation quantized, the first "
             "convolution and the classifier at 8 bits. Simulated top-1: bin/eval on the checkpoint (the integer "
             "network run in float); ONNX Runtime: the same network exported (`bin/export`) and run by ONNX Runtime "
             "1.30 with every optimization on, which turns it into QLinearConv, QLinearAdd, "
             "QLinearGlobalAveragePool and QGemm, on the same 10,000 test images (`bin/eval --onnx`); a logit is "
             "within one step when it is within 1/255 of the logits' range. 8-bit weights are on [-64, 63] "
             "(`quantize.reduce_range`) but in the full-range row: x86 CPUs without VNNI saturate 16-bit pair sums "
             "with full int8 weights, and then the engine no longer computes the simulation (on one such CPU, an "
             "AVX2 EPYC, a full-range export agreed within one step on 73.6%% of the logits); with VNNI it makes no "
             "difference. Times: ONNX Runtime, 2 threads, the int8 export against the float one (batch norms "
             "folded), 28x28 inputs. Activation grids narrower than 8 bits (W4A4, W2A2) are uint8 QuantizeLinear "
             "outputs clipped on the integers (a uint8 Clip to the grid's ends before DequantizeLinear), which is "
             "the simulation's saturation exactly; ONNX Runtime runs them in the same int8 kernels as W8A8, and "
             "the uint8 Clips, which it runs on one thread, cost their share at batch 256. The machine these ran "
             "on: %s.\n" % cpu)
    return L


def plot(binary, spec, png):
    path = png + ".spec"
    with open(path, "w") as f:
        f.write(spec)
    subprocess.run([os.path.join(binary, "plot"), path, png], check=True)
    os.remove(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="runs")
    ap.add_argument("--out", default="paper")
    ap.add_argument("--bin", default="bin")
    a = ap.parse_args()
    R = a.runs
    os.makedirs(a.out, exist_ok=True)
    fp = top1(R, "fmnist_resnet20")
    fp_run = final(R, "fmnist_resnet20")
    L = []
    L.append("# Fashion-MNIST compression tables\n")
    L.append("Regenerated by `make paper` (`scripts/paper_fmnist.sh`, then `scripts/paper_tables.py`) from the runs in "
             "`runs/`. Model: CIFAR-style ResNet-20 (272k parameters); full precision (FP) is "
             "`experiments/fmnist_resnet20.cfg` (%s epochs); every compressed row starts from its best.h5 and "
             "fine-tunes 6 epochs (`configs/compress_fmnist_finetune.cfg`) unless it says otherwise. Test top-1 in %%, "
             "of the final, deployable weights; differences to FP in parentheses. The first convolution and the "
             "classifier stay in full precision in every quantized row, as is usual.\n"
             % (fp_run["epoch"] if fp_run else "?"))
    L.append("**Full precision: %s%%**\n" % pct(fp))

    L.append("## Quantization\n")
    L.append("| codebook | ADMM | round-to-nearest, per layer | round-to-nearest, per channel | optimal projection, per layer "
             "| BN folded, round, per layer | DFQ (folded + equalized + bias-corrected) | TWN / BWN |")
    L.append("|---|---|---|---|---|---|---|---|")
    quant_series = {"admm": [], "round per layer": [], "round per channel": [], "dfq": []}
    for cb, label, bits in BOOKS:
        admm = top1(R, "fmnist_admm_" + cb)
        base = {"binary": top1(R, "fmnist_bwn"), "ternary": top1(R, "fmnist_twn")}.get(cb)
        row = [label, pct(admm) + delta(admm, fp)]
        for k in ("round_layer", "round_channel", "optimal_layer", "folded_layer", "dfq_layer"):
            v = ptq(R, "%s_%s" % (k, cb))
            row.append(pct(v) + delta(v, fp))
        row.append((pct(base) + delta(base, fp)) if base is not None else "")
        L.append("| " + " | ".join(row) + " |")
        x = {"binary": 1, "ternary": 2, "pm2": 3, "pm4": 4}[cb]
        for key, v in (("admm", admm), ("round per layer", ptq(R, "round_layer_" + cb)),
                       ("round per channel", ptq(R, "round_channel_" + cb)), ("dfq", ptq(R, "dfq_layer_" + cb))):
            if v is not None:
                quant_series[key].append((x, v))
    L.append("\nColumns: ADMM (Leng et al. 2018, `experiments/fmnist_admm_*.cfg`: rho 0.05 growing 1.2x at each of four "
             "G/U updates an epoch, one alpha per layer; a binary run with rho 0.005 growing 1.3x ended within 0.05 of "
             "this one; the variants below narrow the gap to BWN and TWN); post-training baselines from "
             "`bin/quantize` on the FP checkpoint with no data (`runs/fmnist_ptq/`); TWN/BWN train with quantized "
             "forward passes and straight-through gradients for the same 6 epochs. The BN-folded columns quantize "
             "weights with the batch norms folded in, as deployment does; the others keep batch norm in float.\n")

    L.append("### ADMM against BWN and TWN: variants and seeds\n")
    L.append("| codebook | ADMM (float W-step) | ADMM, quantized forward | ADMM 3 + 3, seeds 1 / 2 / 3 | "
             "ADMM 3 + 3, rho held, seeds 1 / 2 / 3 | TWN / BWN, seeds 1 / 2 / 3 |")
    L.append("|---|---|---|---|---|---|")
    # the seeded rows, read once for this table and the later ones that cite them
    seeded_runs = {name: over_seeds(R, name, (1, 2, 3))
                   for name in ("fmnist_bwn", "fmnist_twn", "fmnist_admm_final3_binary", "fmnist_admm_final3_ternary",
                                "fmnist_admm_const3_binary", "fmnist_admm_const3_ternary")}
    gaps = {"final3": [], "const3": []}
    for cb, base in (("binary", "fmnist_bwn"), ("ternary", "fmnist_twn")):
        variants = [top1(R, "fmnist_admm_%s%s" % (kind, cb)) for kind in ("", "ste_")]
        baseline = seeded_runs[base]
        for kind in gaps:
            gap = difference(seeded_runs["fmnist_admm_%s_%s" % (kind, cb)].mean, baseline.mean)
            if gap:
                gaps[kind].append("%s at %s" % (gap, BOOK_LABEL[cb]))
        L.append("| %s | %s | %s | %s | %s |" % (
            BOOK_LABEL[cb], " | ".join(pct(v) + delta(v, fp) for v in variants),
            seeds_cell(seeded_runs["fmnist_admm_final3_" + cb]), seeds_cell(seeded_runs["fmnist_admm_const3_" + cb]),
            seeds_cell(baseline)))
    L.append("\nThe same 6 epochs from the FP checkpoint in every column; under three seeds, their mean ± sd. ADMM, "
             "quantized forward (`experiments/fmnist_admm_ste_*.cfg`): the W-step's loss gradient is taken at "
             "Proj(W) and passed straight through to W, as BWN/TWN do, with ADMM's penalty and G/U steps kept. "
             "ADMM 3 + 3 (`experiments/fmnist_admm_final3_*.cfg`): ADMM with rho growing 1.45x per update, so that W "
             "is on the codebook after 3 epochs, then 3 epochs of quantized forward passes with straight-through "
             "gradients and no penalty (`compress.admm_final_epochs`). Rho held "
             "(`experiments/fmnist_admm_const3_*.cfg`): the same with rho kept at 0.05, so that W ends the ADMM "
             "epochs near the codebook but not on it, free to cross a code boundary in the retraining. Seeds 2 and "
             "3 override `train.seed` (sample order and flips; the starting weights are the same checkpoint). "
             "Mean differences to TWN / BWN: ADMM 3 + 3 %s; rho held %s.\n"
             % tuple(", ".join(gaps[k]) or "—" for k in ("final3", "const3")))

    L.append("### Twice as long: 12 epochs\n")
    L.append("| codebook | ADMM 6 epochs, then 6 quantized | TWN / BWN, 12 epochs | ADMM − TWN / BWN |")
    L.append("|---|---|---|---|")
    for cb, base in (("binary", "fmnist_bwn_e12"), ("ternary", "fmnist_twn_e12")):
        admm, ste = top1(R, "fmnist_admm_e12_%s" % cb), top1(R, base)
        gap = difference(admm, ste)
        L.append("| %s | %s | %s | %s |" % (BOOK_LABEL[cb], pct(admm) + delta(admm, fp),
                                           pct(ste) + delta(ste, fp), gap))
    L.append("\nFrom the same FP checkpoint, the cosine schedule stretched over 12 epochs "
             "(`experiments/fmnist_admm_e12_*.cfg`, `fmnist_bwn_e12.cfg`, `fmnist_twn_e12.cfg`). ADMM keeps the "
             "6-epoch run's rho schedule (0.05 growing 1.2x per update), which puts W on the codebook by epoch 6, "
             "then retrains the quantized network for 6 epochs as the 3 + 3 variant does.\n")

    L.append("### As the ADMM paper compared: TWN / BWN trained from scratch\n")
    L.append("| codebook | ADMM (float W-step) | ADMM 3 + 3, rho held, mean | TWN / BWN from scratch, 18 epochs | "
             "ADMM rho held − from scratch | TWN / BWN fine-tuned, mean |")
    L.append("|---|---|---|---|---|---|")
    for cb, base in (("binary", "fmnist_bwn"), ("ternary", "fmnist_twn")):
        admm = top1(R, "fmnist_admm_" + cb)
        admm_mean = seeded_runs["fmnist_admm_const3_" + cb].mean
        scratch = top1(R, base + "_scratch")
        gap = difference(admm_mean, scratch)
        L.append("| %s | %s | %s | %s | %s | %s |" % (
            BOOK_LABEL[cb], pct(admm) + delta(admm, fp), pct(admm_mean) + delta(admm_mean, fp),
            pct(scratch) + delta(scratch, fp), gap, seeded_runs[base].spread))
    L.append("\nLeng et al. set ADMM, fine-tuned from a full-precision model, beside the TWN and BWN numbers of their "
             "own papers, which were trained from scratch. `experiments/fmnist_bwn_scratch.cfg` and "
             "`fmnist_twn_scratch.cfg` do that here: the FP recipe with quantized forward passes from random "
             "weights, over 18 epochs, the FP run's 12 plus ADMM's 6, so both see as many steps. The last column "
             "is the fine-tuned baseline of the table above.\n")

    L.append("### A smaller network: ResNet-8\n")
    fp8 = top1(R, "fmnist_r8")
    L.append("Full precision (`experiments/fmnist_r8.cfg`, 78k parameters): **%s%%**\n" % pct(fp8))
    L.append("| codebook | ADMM (float W-step), seeds 1 / 2 / 3 | ADMM 3 + 3, seeds 1 / 2 / 3 | "
             "ADMM 1 + 5, seeds 1 / 2 / 3 | TWN / BWN, seeds 1 / 2 / 3 | ADMM 3 + 3 − TWN / BWN | "
             "ADMM 1 + 5 − TWN / BWN |")
    L.append("|---|---|---|---|---|---|---|")
    for cb, base in (("binary", "fmnist_r8_bwn"), ("ternary", "fmnist_r8_twn")):
        admm, final3, final5, ste = (over_seeds(R, name, (1, 2, 3)) for name in (
            "fmnist_r8_admm_" + cb, "fmnist_r8_admm_final3_" + cb, "fmnist_r8_admm_1p5_" + cb, base))
        if cb == "binary":
            bwn8 = ste
        L.append("| %s | %s | %s | %s |" % (
            BOOK_LABEL[cb], " | ".join(seeds_cell(v) for v in (admm, final3, final5, ste)),
            difference(final3.mean, ste.mean), difference(final5.mean, ste.mean)))
    L.append("\nThe ResNet-20's binary and ternary baselines end within 0.2 pt of full precision, which leaves a "
             "better method little room to show. ResNet-8 (three residual blocks against nine, 78k parameters "
             "against 272k) loses more to 1-bit weights (BWN %s pt against %s on the ResNet-20), so it asks whether "
             "ADMM's edge appears where there is more to win back. The same recipes (`experiments/fmnist_r8_*.cfg`) "
             "start from its best.h5 and the seeds are as above. ADMM 1 + 5 (`experiments/fmnist_r8_admm_1p5_*.cfg`) "
             "shortens the ADMM phase to one epoch (rho growing 1.32x at updates every 29 steps, W on the codebook "
             "by its end) and retrains the quantized network for five.\n"
             % (difference(bwn8.mean, fp8) or "?", difference(seeded_runs["fmnist_bwn"].mean, fp) or "?"))

    L.append("## Pruning\n")
    L.append("| sparsity | progressive (cubic schedule) | one-shot + fine-tuning | measured sparsity |")
    L.append("|---|---|---|---|")
    prune_series = {"progressive": [], "one-shot": []}
    for s in (50, 75, 90):
        p, o = final(R, "fmnist_prune%d" % s), final(R, "fmnist_prune%d_oneshot" % s)
        pv, ov = (p["val_top1"] if p else None), (o["val_top1"] if o else None)
        meas = ("%.1f%%" % (100 * p["sparsity"])) if p and "sparsity" in p else "—"
        L.append("| %d%% | %s%s | %s%s | %s |" % (s, pct(pv), delta(pv, fp), pct(ov), delta(ov, fp), meas))
        if pv is not None:
            prune_series["progressive"].append((s / 100.0, pv))
        if ov is not None:
            prune_series["one-shot"].append((s / 100.0, ov))
    L.append("\nUnstructured magnitude pruning of every convolution but the first (`experiments/fmnist_prune*.cfg`); "
             "progressive: Zhu & Gupta's cubic schedule over 4 epochs, then 2 at the final sparsity; one-shot: all "
             "at once before the same 6 epochs. Measured sparsity counts the zeros of the pruned weights.\n")

    L.append("## Knowledge distillation\n")
    L.append("| student | teacher | seed | without teacher | with teacher | gain |")
    L.append("|---|---|---|---|---|---|")
    r20_label = "ResNet-20 (%s%%)" % pct(best_top1(R, "fmnist_resnet20"))
    wide_label = "ResNet-20x2 (%s%%)" % pct(best_top1(R, "fmnist_wrn20x2"))
    nols_label = "ResNet-20 without label smoothing (%s%%)" % pct(best_top1(R, "fmnist_resnet20_nols"))
    for label, teacher, kd_run in (("alpha 0.5, T = 4", r20_label, "fmnist_kd_r8"),
                                   ("alpha 0.5, T = 2", r20_label, "fmnist_kd_r8_t2"),
                                   ("alpha 0.5, T = 4", wide_label, "fmnist_kd_r8_wrn"),
                                   ("alpha 0.5, T = 4", nols_label, "fmnist_kd_r8_nols")):
        gains = []
        for seed in (1, 2, 3, 4, 5):
            r8, kd = top1(R, seeded("fmnist_r8", seed)), top1(R, seeded(kd_run, seed))
            if kd is None:
                continue
            gain = None if r8 is None else 100 * (kd - r8)
            if gain is not None:
                gains.append(gain)
            L.append("| ResNet-8 (78k parameters), %s | %s | %d | %s | %s | %s |"
                     % (label, teacher, seed, pct(r8), pct(kd), "" if gain is None else "%+.2f" % gain))
        if len(gains) > 1:
            mean, sd = mean_sd(gains)
            L.append("| %s, %s: mean gain over %d seeds | | | | | **%+.2f ± %.2f** |"
                     % (label, teacher, len(gains), mean, sd))
    # the teacher's label smoothing, seed by seed: the same student, alpha, T and seeds, only the teacher differs
    paired = []
    for seed in (1, 2, 3, 4, 5):
        smooth, sharp = top1(R, seeded("fmnist_kd_r8", seed)), top1(R, seeded("fmnist_kd_r8_nols", seed))
        if smooth is not None and sharp is not None:
            paired.append(100 * (sharp - smooth))
    if len(paired) > 1:
        mean, sd = mean_sd(paired)
        L.append("| alpha 0.5, T = 4: teacher without label smoothing minus teacher with it, same seeds (%s) "
                 "| | | | | **%+.2f ± %.2f** |" % (", ".join("%+.2f" % d for d in paired), mean, sd))
    r8, kd01 = top1(R, "fmnist_r8"), top1(R, "fmnist_kd_r8_alpha01")
    if kd01 is not None:
        gain01 = difference(kd01, r8)
        L.append("| ResNet-8, alpha 0.1, T = 4 | %s | 1 | %s | %s | %s |" % (r20_label, pct(r8), pct(kd01), gain01))
    L.append("\nAll trained from scratch with the FP recipe (`experiments/fmnist_r8.cfg`, `fmnist_kd_r8.cfg`, "
             "`fmnist_kd_r8_t2.cfg`, `fmnist_kd_r8_alpha01.cfg`, `fmnist_kd_r8_wrn.cfg`, `fmnist_kd_r8_nols.cfg`: "
             "loss alpha CE + (1 - alpha) T^2 KL, label smoothing 0.1 on the student's CE as without a teacher); "
             "the ResNet-20x2 teacher is `fmnist_wrn20x2.cfg` (twice the width, 30 epochs with crops and flips); "
             "the teacher without label smoothing is `fmnist_resnet20_nols.cfg`, the FP recipe with "
             "`train.label_smoothing = 0` (every other teacher and student was trained with 0.1). "
             "Seeds 2 to 5 are the same "
             "cfgs with `train.seed` (initialisation, sample order, augmentation) overridden (runs/*_s2 ... *_s5; "
             "seeds 4 and 5 for the alpha 0.5, T = 4 rows only), "
             "± is the standard deviation over seeds; a teacher's score is its test top-1.\n")

    targets_path = os.path.join(R, "teacher_targets.jsonl")
    if os.path.exists(targets_path):
        L.append("### What the teachers' soft targets carry\n")
        L.append("| teacher | label smoothing | top-1 | true-class probability at T | wrong-class entropy at T "
                 "(of log 9) | wrong-class logit spread |")
        L.append("|---|---|---|---|---|---|")
        for line in open(targets_path):
            t = json.loads(line)
            name = os.path.basename(os.path.dirname(t["checkpoint"]))
            smoothing = planned_value(R, name, "train", "label_smoothing")
            L.append("| `%s` (T = %g) | %s | %s | %.3f | %.3f | %.3f |"
                     % (name, t["temperature"], smoothing or "—", pct(t["top1"]), t["target_prob"],
                        t["wrong_class_entropy"], t["wrong_logit_spread"]))
        L.append("\nEach teacher's best.h5 on the 10,000 test images (`scripts/teacher_targets.py`): the mean "
                 "softened probability of the true class, the entropy of the softened distribution over the 9 wrong "
                 "classes as a fraction of its maximum (1: uniform), and the standard deviation of the wrong-class "
                 "logits over their mean distance to the true class (on the images the teacher gets right). The "
                 "teachers trained with label smoothing put their wrong classes at nearly one distance and leave "
                 "the true class a quarter of the softened probability; their soft targets are close to more "
                 "label smoothing, which is consistent with (not proof of) their smaller gains above.\n")

    L.append("## Quantization, pruning and distillation together\n")
    c = final(R, "fmnist_combined")
    if c:
        L.append("| method | top-1 | sparsity | weights |")
        L.append("|---|---|---|---|")
        L.append("| prune 50%% + ADMM {0,±1,±2,±4} + KD from FP (`experiments/fmnist_combined.cfg`) | %s%s | %.1f%% | "
                 "3-bit codes, half of them zero |" % (pct(c["val_top1"]), delta(c["val_top1"], fp), 100 * c.get("sparsity", 0)))
    else:
        L.append("(not run yet)")
    L.append("")

    L.extend(int8_table(R, fp))

    L.append("## Plots\n")
    L.append("![top-1 against bits per weight](fmnist_quant.png)\n")
    L.append("![top-1 against sparsity](fmnist_prune.png)\n")
    with open(os.path.join(a.out, "fmnist_tables.md"), "w") as f:
        f.write("\n".join(L) + "\n")

    colours = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14)]
    spec = "panel top-1 by codebook|codebook: 1 binary, 2 ternary, 3 {0,+-1,+-2}, 4 {0,+-1,+-2,+-4}|percent\n"
    for (name, pts), (r, g, b) in zip(quant_series.items(), colours):
        if pts:
            spec += "series %s %d %d %d\n" % (name.replace(" ", "_"), r, g, b)
            spec += "".join("%g %g\n" % p for p in pts)
    plot(a.bin, spec, os.path.join(a.out, "fmnist_quant.png"))
    spec = "panel top-1 against sparsity|sparsity|percent\n"
    for (name, pts), (r, g, b) in zip(prune_series.items(), colours):
        if pts:
            spec += "series %s %d %d %d\n" % (name, r, g, b)
            spec += "".join("%g %g\n" % p for p in pts)
    plot(a.bin, spec, os.path.join(a.out, "fmnist_prune.png"))
    print("wrote %s/fmnist_tables.md and plots" % a.out)


if __name__ == "__main__":
    main()
