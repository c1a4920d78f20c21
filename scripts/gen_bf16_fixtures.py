#!/usr/bin/python3
"""Writes tests/fixtures/bf16.h5: PyTorch 1.13's CPU autocast in bfloat16, the reference for nibble's mixed
precision (train.precision = bf16, tests/test_precision.c).

  /ops/<op>/<case>/   the inputs (float32) and attributes as ops.h5 has them; attribute `lowp` names the inputs
                      that reach the op as bf16 activations (cast from the float32 input inside the graph, as
                      the output of an earlier bf16 layer would be); convolutions and linear layers take their
                      float32 input and autocast casts it. `y`: autocast's output; `gy`: an upstream gradient
                      (rounded to bf16); `grad_<input>`: autocast's gradients (float32 where the input is
                      float32). `y64`, `grad64_<input>`: the same computed in float64, the exact answer.
  /step_resnet18/     one training step of torchvision's ResNet-18 (weights and input drawn by the rule of
                      tests/support/det_weights.c, so none are stored; 4 images of 3x64x64, 10 classes):
                      the loss under autocast and in float64, and for every parameter the gradient at 64
                      sampled positions (`idx`), under autocast (`<name>/bf16`) and in float64 (`<name>/f64`).

Usage: /usr/bin/python3 scripts/gen_bf16_fixtures.py tests/fixtures/bf16.h5
"""
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_model_fixtures import det_values  # noqa: E402

torch.set_num_threads(2)
BF = torch.bfloat16
DT = torch.float64


def rnd(*shape, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(tuple(shape), generator=g) * scale).to(torch.float32)


def away(x, kinks, margin=0.05):
    """x with the values near a kink of a piecewise op moved off it: there bf16's rounding of the input may
    cross the kink, which changes the gradient by a whole step in bf16 (nibble's and autocast's alike) but not
    in float64"""
    for k in kinks:
        x = torch.where((x - k).abs() < margin, x + 2 * margin, x)
    return x


def run(fn, inputs, lowp, dtype, autocast):
    """fn on leaves of `dtype` made from the float32 inputs; the `lowp` inputs enter as bf16 (or stay in
    float64 for the reference). Returns the output and the leaves."""
    leaves = {}
    for k, v in inputs.items():
        if v.dtype == torch.int64:
            leaves[k] = v
        else:
            leaves[k] = v.to(dtype).clone().requires_grad_(True)
    args = {k: (v.to(BF) if autocast and k in lowp else v) for k, v in leaves.items()}
    with torch.autocast("cpu", dtype=BF, enabled=autocast):
        y = fn(**args)
    return y, leaves


def case(f, op, name, inputs, fn, lowp=(), attrs=None, seed=0, grads=True):
    g = f.require_group("ops/" + op).create_group(name)
    for k, v in (attrs or {}).items():
        g.attrs[k] = v
    g.attrs["lowp"] = ",".join(lowp)
    for k, v in inputs.items():
        g[k] = v.numpy()
    y, leaves = run(fn, inputs, lowp, torch.float32, True)
    y64, leaves64 = run(fn, inputs, lowp, DT, False)
    g["y"] = y.float().detach().numpy()
    g["y64"] = y64.float().detach().numpy()
    if grads:
        gy = rnd(*y.shape, seed=seed + 999).to(BF).float()
        g["gy"] = gy.numpy()
        y.backward(gy.to(y.dtype))
        y64.backward(gy.to(DT))
        for k in leaves:
            if inputs[k].dtype != torch.int64 and leaves[k].grad is not None:
                g["grad_" + k] = leaves[k].grad.float().numpy()
                g["grad64_" + k] = leaves64[k].grad.float().numpy()
    print("%-16s %-18s y rms %.3g" % (op, name, y64.double().pow(2).mean().sqrt()))


def ops(f):
    conv = [  # name, N, C, H, W, O, k, stride, pad, groups, bias
        ("basic3x3", 2, 16, 9, 9, 32, 3, 1, 1, 1, True),
        ("stride2_nobias", 2, 32, 10, 10, 64, 3, 2, 1, 1, False),
        ("grouped", 2, 16, 8, 8, 32, 3, 1, 1, 4, True),
        ("depthwise_s2", 2, 32, 12, 12, 32, 3, 2, 1, 32, False),
        ("pointwise", 3, 64, 7, 7, 48, 1, 1, 0, 1, False),
        ("stem7x7", 2, 3, 20, 20, 16, 7, 2, 3, 1, False),
        ("stem_grey", 4, 1, 14, 14, 16, 3, 1, 1, 1, False),  # Fashion-MNIST's one input channel
    ]
    for i, (name, n, c, h, w, o, k, s, p, gr, bias) in enumerate(conv):
        inputs = {"x": rnd(n, c, h, w, seed=10 + i), "w": rnd(o, c // gr, k, k, seed=20 + i, scale=(c // gr * k * k) ** -0.5)}
        if bias:
            inputs["b"] = rnd(o, seed=30 + i, scale=0.1)

        def fn(x, w, b=None, s=s, p=p, gr=gr):
            return F.conv2d(x, w, b, stride=s, padding=p, groups=gr)
        case(f, "conv2d", name, inputs, fn, attrs={"stride": [s, s], "pad": [p, p], "dilation": [1, 1], "groups": gr}, seed=i)
    case(f, "linear", "basic", {"x": rnd(8, 96, seed=40), "w": rnd(10, 96, seed=41, scale=0.1), "b": rnd(10, seed=42)},
         lambda x, w, b: F.linear(x, w, b), seed=1)

    def bn_inputs(seed, c=16):
        return {"x": rnd(4, c, 6, 6, seed=seed, scale=2.0) + 0.5, "weight": 1 + 0.2 * rnd(c, seed=seed + 1),
                "bias": 0.1 * rnd(c, seed=seed + 2), "running_mean": 0.1 * rnd(c, seed=seed + 3),
                "running_var": 1 + 0.2 * rnd(c, seed=seed + 4).abs()}
    for name, training, relu in [("train", 1, 0), ("train_relu", 1, 1), ("eval", 0, 0)]:
        def fn(x, weight, bias, running_mean, running_var, training=training, relu=relu):
            y = F.batch_norm(x, running_mean.detach().clone(), running_var.detach().clone(), weight, bias,
                             bool(training), 0.1, 1e-5)
            return F.relu(y) if relu else y
        case(f, "batchnorm2d", name, bn_inputs(50), fn, lowp=("x",), attrs={"training": training, "relu": relu}, seed=2)
    x = rnd(2, 16, 7, 7, seed=60, scale=3.0)
    case(f, "relu", "basic", {"x": x}, lambda x: F.relu(x), lowp=("x",), seed=3)
    # relu6 as x inside (0, 6), 6 above: torch 1.13 has no bf16 backward for F.relu6 on the CPU; this one has
    # F.relu6's gradient (zero at both bounds)
    def relu6(x):
        inside = ((x > 0) & (x < 6)).to(x.dtype)
        return x * inside + 6 * (x >= 6).to(x.dtype)
    case(f, "relu6", "basic", {"x": away(x * 3, [6.0])}, relu6, lowp=("x",), seed=4)
    case(f, "hardswish", "basic", {"x": away(x, [-3.0, 3.0])}, lambda x: F.hardswish(x), lowp=("x",), seed=5)
    case(f, "silu", "basic", {"x": x}, lambda x: F.silu(x), lowp=("x",), seed=6)
    case(f, "maxpool2d", "k3s2", {"x": x}, lambda x: F.max_pool2d(x, 3, 2, 1), lowp=("x",),
         attrs={"kernel": [3, 3], "stride": [2, 2], "pad": [1, 1], "dilation": [1, 1]}, seed=7)
    case(f, "global_avgpool", "basic", {"x": x}, lambda x: F.adaptive_avg_pool2d(x, 1), lowp=("x",), seed=8)
    y2 = rnd(2, 16, 7, 7, seed=61)
    case(f, "add", "relu", {"a": x, "b": y2}, lambda a, b: F.relu(a + b), lowp=("a", "b"), attrs={"relu": 1}, seed=9)
    case(f, "concat", "channels", {"x0": x, "x1": y2}, lambda x0, x1: torch.cat([x0, x1], 1), lowp=("x0", "x1"),
         attrs={"n": 2, "axis": 1}, seed=10)
    case(f, "channel_shuffle", "g2", {"x": x},
         lambda x: x.view(2, 2, 8, 7, 7).transpose(1, 2).reshape(2, 16, 7, 7), lowp=("x",), attrs={"groups": 2}, seed=11)
    # ops without bf16 kernels: nibble casts their bf16 inputs to f32 (torch's autocast runs these two in bf16;
    # the tolerance covers both)
    case(f, "mul_channel", "fallback", {"x": x, "s": rnd(2, 16, 1, 1, seed=62)}, lambda x, s: x * s, lowp=("x",), seed=12)
    case(f, "hardsigmoid", "fallback", {"x": away(x, [-3.0, 3.0])}, lambda x: F.hardsigmoid(x), lowp=("x",), seed=13)
    # the cast itself: ties, tiny and huge values, both directions of rounding
    edge = torch.tensor([1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8, -1.0 - 2 ** -8, 1e-40, -3e38, 65504.0, 0.1, -0.0, 1.00390625,
                         1.01171875] * 4, dtype=torch.float32).reshape(2, 4, 5)
    case(f, "cast", "edges", {"x": torch.cat([edge, rnd(2, 4, 5, seed=63, scale=100)], 2)}, lambda x: x.to(BF), seed=14)


def step_resnet18(f):
    torch.manual_seed(0)
    m = torchvision.models.resnet18(num_classes=10).train()
    for k, t in m.state_dict().items():
        if t.dtype != torch.int64:
            t.copy_(torch.from_numpy(det_values(k, tuple(t.shape))))
    x = torch.from_numpy(det_values("input", (4, 3, 64, 64)))
    labels = torch.tensor([0, 3, 7, 9])
    g = f.create_group("step_resnet18")
    g["labels"] = labels.numpy()
    res = {}
    for mode in ("bf16", "f64"):
        mm = m if mode == "bf16" else __import__("copy").deepcopy(m).double()
        mm.zero_grad()
        with torch.autocast("cpu", dtype=BF, enabled=mode == "bf16"):
            out = mm(x if mode == "bf16" else x.double())
            loss = F.cross_entropy(out.float() if mode == "bf16" else out, labels)
        loss.backward()
        g["loss_" + mode] = np.array([loss.item()], dtype=np.float32)
        res[mode] = {k: p.grad.detach().double().flatten() for k, p in mm.named_parameters()}
    for k, gb in res["bf16"].items():
        n = gb.numel()
        idx = np.unique(np.linspace(0, n - 1, 64).astype(np.int64))
        h = g.create_group(k)
        h["idx"] = idx
        h["bf16"] = gb[idx].float().numpy()
        h["f64"] = res["f64"][k][idx].float().numpy()
    print("step_resnet18: loss bf16 %.6f, f64 %.6f" % (g["loss_bf16"][0], g["loss_f64"][0]))


def main(path):
    with h5py.File(path + ".tmp", "w") as f:
        ops(f)
        step_resnet18(f)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/bf16.h5")
