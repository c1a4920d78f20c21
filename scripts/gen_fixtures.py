#!/usr/bin/python3
"""Writes the PyTorch reference fixtures that the C tests compare against (committed, so CI needs no torch).

  ops.h5      every op, forward and backward: /<op>/<case>/ holds the inputs, the output `y`, an upstream
              gradient `gy` and the input gradients `grad_<input>`, with the op's attributes as attributes.
              References are computed in float64 from float32 inputs, so they are the exact answer that a
              float32 implementation should approach.
  optim.h5    SGD (momentum, Nesterov, weight decay), Adam and AdamW trajectories; LR schedules; clipping.
  smallcnn.h5 a conv-BN-ReLU-pool x2 + linear network trained on a fixed batch with torch.optim: initial
              weights, the batch, the per-step losses of PyTorch's float32 run, and the parameters after the
              first step and at the end of the same run in float64.

Usage: /usr/bin/python3 scripts/gen_fixtures.py tests/fixtures
"""
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(2)
DT = torch.float64


def f32(t):
    return t.detach().to(torch.float32).numpy()


def rnd(*shape, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    # round to float32 first, so the float32 inputs and the float64 reference see the same numbers
    return (torch.randn(tuple(shape), generator=g) * scale).to(torch.float32).to(DT)


class Writer:
    def __init__(self, f):
        self.f = f

    def case(self, op, name, inputs, fn, attrs=None, grads=True, seed=0, extra=None):
        """inputs: dict name -> tensor (float64 or int64). fn(**inputs) -> output tensor."""
        g = self.f.require_group(op).create_group(name)
        for k, v in (attrs or {}).items():
            g.attrs[k] = v
        leaves = {}
        for k, v in inputs.items():
            if v is None:
                continue
            if v.dtype == torch.int64:
                g[k] = v.numpy()
                leaves[k] = v
            else:
                g[k] = f32(v)
                leaves[k] = v.clone().requires_grad_(grads and v.dtype == DT)
        y = fn(**leaves)
        g["y"] = f32(y)
        if grads:
            gy = rnd(*y.shape, seed=seed + 999)
            g["gy"] = f32(gy)
            y.backward(gy)
            for k, v in leaves.items():
                if v.dtype == DT and v.grad is not None:
                    g["grad_" + k] = f32(v.grad)
        if extra:
            for k, v in extra(leaves).items():
                g[k] = f32(v)
        return g


def conv_cases(w):
    cases = [
        # name, N, C, H, W, O, kh, kw, stride, pad, dilation, groups, bias
        ("basic3x3", 2, 4, 9, 9, 6, 3, 3, (1, 1), (1, 1), (1, 1), 1, True),
        ("stride2_nobias", 2, 8, 10, 10, 16, 3, 3, (2, 2), (1, 1), (1, 1), 1, False),
        ("grouped_dilated", 2, 8, 11, 11, 12, 3, 3, (1, 1), (2, 2), (2, 2), 2, True),
        ("depthwise_s2", 2, 16, 12, 12, 16, 3, 3, (2, 2), (1, 1), (1, 1), 16, False),
        ("depthwise_mult2", 1, 8, 8, 8, 16, 3, 3, (1, 1), (1, 1), (1, 1), 8, True),
        ("pointwise", 3, 16, 7, 7, 24, 1, 1, (1, 1), (0, 0), (1, 1), 1, False),
        ("stem7x7", 2, 3, 20, 20, 8, 7, 7, (2, 2), (3, 3), (1, 1), 1, False),
        ("odd_channels_rect", 2, 5, 9, 12, 6, 3, 5, (1, 2), (1, 2), (1, 1), 1, True),
        ("gray_stem", 4, 1, 28, 28, 8, 3, 3, (1, 1), (1, 1), (1, 1), 1, False),
    ]
    for i, (name, N, C, H, W, O, kh, kw, s, p, d, g, bias) in enumerate(cases):
        x = rnd(N, C, H, W, seed=100 + i)
        wt = rnd(O, C // g, kh, kw, seed=200 + i, scale=0.3)
        b = rnd(O, seed=300 + i) if bias else None
        w.case("conv2d", name, {"x": x, "w": wt, "b": b},
               lambda x, w, b=None, s=s, p=p, d=d, g=g: F.conv2d(x, w, b, s, p, d, g),
               {"stride": s, "pad": p, "dilation": d, "groups": g}, seed=i)


def f32_tensor(values):
    """a float64 tensor of values that float32 holds exactly"""
    return torch.tensor(values, dtype=torch.float32).to(DT)


def fake_quant_cases(w):
    """Fake quantization in torch's float32 arithmetic (the references are its float32 results, held in
    float64): fixed grids per tensor and per channel, and the learned step sizes and zero points of LSQ with
    torch's grad_factor."""
    def fixed(qmin, qmax, axis):
        def fn(x, scale, zero_point):
            if axis < 0:
                return torch.fake_quantize_per_tensor_affine(x.float(), float(scale), int(zero_point), qmin, qmax).to(DT)
            return torch.fake_quantize_per_channel_affine(x.float(), scale.detach().float(),
                                                          zero_point.detach().to(torch.int32), axis, qmin, qmax).to(DT)
        return fn

    def learned(qmin, qmax, axis, gf):
        def fn(x, scale, zero_point):
            if axis < 0:
                return torch._fake_quantize_learnable_per_tensor_affine(x.float(), scale.float(), zero_point.float(),
                                                                        qmin, qmax, gf).to(DT)
            return torch._fake_quantize_learnable_per_channel_affine(x.float(), scale.float(), zero_point.float(),
                                                                     axis, qmin, qmax, gf).to(DT)
        return fn

    def attrs(qmin, qmax, axis, gf=1.0):
        return {"qmin": qmin, "qmax": qmax, "axis": axis, "grad_factor": gf}

    fixed_cases = [  # name, x, scale, zero point, qmin, qmax, axis
        ("u8", rnd(2, 6, 5, 5, seed=940) * 3, [0.05], [128], 0, 255, -1),
        ("s8", rnd(3, 17, seed=941) * 2, [0.02], [0], -128, 127, -1),
        ("u4", rnd(2, 12, 5, 5, seed=942).abs() * 2, [0.3], [0], 0, 15, -1),
        ("channel_s8", rnd(6, 4, 3, 3, seed=943) * 0.3, [0.002, 0.004, 0.003, 0.005, 0.0025, 0.0035], [0] * 6, -128,
         127, 0),
        ("channel_axis1_u8", rnd(2, 6, 4, 4, seed=944), [0.01, 0.02, 0.015, 0.012, 0.018, 0.01], [120, 128, 100, 140, 128,
                                                                                                  90], 0, 255, 1),
    ]
    for i, (name, x, sc, zp, qmin, qmax, axis) in enumerate(fixed_cases):
        w.case("fake_quant", name, {"x": x, "scale": f32_tensor(sc), "zero_point": f32_tensor(zp)},
               fixed(qmin, qmax, axis), attrs(qmin, qmax, axis), seed=140 + i)
    learned_cases = [  # name, x, scale, zero point, qmin, qmax, axis
        ("lsq_u8", rnd(2, 12, 5, 5, seed=950) * 2, [0.04], [120], 0, 255, -1),
        ("lsq_s4", rnd(4, 9, seed=951), [0.25], [0], -8, 7, -1),
        ("lsq_u2", rnd(3, 8, 4, 4, seed=952).abs(), [0.4], [0], 0, 3, -1),
        ("lsq_channel_s4", rnd(6, 4, 3, 3, seed=953) * 0.3, [0.05, 0.08, 0.06, 0.1, 0.04, 0.07], [0] * 6, -8, 7, 0),
    ]
    for i, (name, x, sc, zp, qmin, qmax, axis) in enumerate(learned_cases):
        n = x.numel() if axis < 0 else x.numel() // x.shape[axis]
        gf = 1.0 / (n * qmax) ** 0.5  # LSQ's gradient scale
        w.case("fake_quant", name, {"x": x, "scale": f32_tensor(sc), "zero_point": f32_tensor(zp)},
               learned(qmin, qmax, axis, gf), attrs(qmin, qmax, axis, gf), seed=150 + i)


def main(out):
    os.makedirs(out, exist_ok=True)
    with h5py.File(os.path.join(out, "ops.h5"), "w") as f:
        w = Writer(f)
        conv_cases(w)

        for i, bias in enumerate([True, False]):
            w.case("linear", "bias" if bias else "nobias",
                   {"x": rnd(5, 12, seed=400 + i), "w": rnd(7, 12, seed=410 + i, scale=0.3),
                    "b": rnd(7, seed=420 + i) if bias else None},
                   lambda x, w, b=None: F.linear(x, w, b), seed=10 + i)

        # batch norm: training updates running stats (unbiased variance), eval uses them
        for i, (name, training, affine) in enumerate([("train", 1, True), ("eval", 0, True), ("train_noaffine", 1, False),
                                                      ("train_wide", 1, True), ("train_relu", 1, True),
                                                      ("eval_relu", 0, True), ("noaffine_relu", 1, False)]):
            relu = int(name.endswith("relu"))
            C = 16 if name == "train_wide" else 6
            x = rnd(4, C, 5, 5, seed=500 + i) * 2 + 0.5
            rm, rv = rnd(C, seed=510 + i) * 0.1, rnd(C, seed=520 + i).abs() + 0.5
            wt = rnd(C, seed=530 + i) if affine else None
            b = rnd(C, seed=540 + i) if affine else None
            rm_out, rv_out = rm.clone(), rv.clone()

            def fn(x, weight=None, bias=None, running_mean=None, running_var=None, training=training, rm_out=rm_out,
                   rv_out=rv_out, relu=relu):
                y = F.batch_norm(x, rm_out, rv_out, weight, bias, training=bool(training), momentum=0.1, eps=1e-5)
                return F.relu(y) if relu else y

            g = w.case("batchnorm2d", name, {"x": x, "weight": wt, "bias": b, "running_mean": rm, "running_var": rv}, fn,
                       {"training": training, "momentum": 0.1, "eps": 1e-5, "relu": relu}, seed=20 + i)
            g["running_mean_out"] = f32(rm_out)
            g["running_var_out"] = f32(rv_out)

        acts = {
            "relu": lambda x: F.relu(x),
            "relu6": lambda x: F.relu6(x),
            "leaky_relu": lambda x: F.leaky_relu(x, 0.1),
            "sigmoid": lambda x: torch.sigmoid(x),
            "hardswish": lambda x: F.hardswish(x),
            "hardsigmoid": lambda x: F.hardsigmoid(x),
            "square": lambda x: torch.square(x),
            "silu": lambda x: F.silu(x),
        }
        for i, (name, fn) in enumerate(acts.items()):
            x = rnd(2, 12, 5, 5, seed=600 + i) * 4
            w.case(name, "nchw", {"x": x}, fn, {"alpha": 0.1}, seed=30 + i)
            w.case(name, "flat", {"x": rnd(3, 17, seed=610 + i) * 4}, fn, {"alpha": 0.1}, seed=40 + i)

        pools = [
            ("maxpool2d", "k3s2p1", dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), dilation=(1, 1), ceil_mode=0), 9),
            ("maxpool2d", "k2s2", dict(kernel=(2, 2), stride=(2, 2), pad=(0, 0), dilation=(1, 1), ceil_mode=0), 8),
            ("maxpool2d", "k3s2_ceil", dict(kernel=(3, 3), stride=(2, 2), pad=(0, 0), dilation=(1, 1), ceil_mode=1), 10),
            ("maxpool2d", "k3_dil2", dict(kernel=(3, 3), stride=(1, 1), pad=(1, 1), dilation=(2, 2), ceil_mode=0), 9),
            ("avgpool2d", "k3s1p1_incl", dict(kernel=(3, 3), stride=(1, 1), pad=(1, 1), exclude_pad=0), 7),
            ("avgpool2d", "k3s2p1_excl", dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), exclude_pad=1), 9),
            ("avgpool2d", "k2s2", dict(kernel=(2, 2), stride=(2, 2), pad=(0, 0), exclude_pad=0), 8),
        ]
        for i, (op, name, a, H) in enumerate(pools):
            x = rnd(2, 10, H, H, seed=700 + i)
            if op == "maxpool2d":
                fn = lambda x, a=a: F.max_pool2d(x, a["kernel"], a["stride"], a["pad"], a["dilation"], bool(a["ceil_mode"]))
            else:
                fn = lambda x, a=a: F.avg_pool2d(x, a["kernel"], a["stride"], a["pad"], count_include_pad=not a["exclude_pad"])
            w.case(op, name, {"x": x}, fn, a, seed=50 + i)
        w.case("global_avgpool", "basic", {"x": rnd(3, 12, 7, 6, seed=750)}, lambda x: F.adaptive_avg_pool2d(x, 1), seed=60)

        w.case("add", "basic", {"a": rnd(2, 8, 4, 4, seed=800), "b": rnd(2, 8, 4, 4, seed=801)},
               lambda a, b: a + b, {"alpha": 1.0, "beta": 1.0}, seed=61)
        w.case("add", "scaled", {"a": rnd(3, 5, seed=802), "b": rnd(3, 5, seed=803)},
               lambda a, b: 0.7 * a - 1.5 * b, {"alpha": 0.7, "beta": -1.5}, seed=62)
        w.case("add", "relu", {"a": rnd(2, 8, 4, 4, seed=805), "b": rnd(2, 8, 4, 4, seed=806)},
               lambda a, b: F.relu(a + b), {"alpha": 1.0, "beta": 1.0, "relu": 1}, seed=73)
        w.case("scale", "basic", {"x": rnd(2, 8, 3, 3, seed=804)}, lambda x: -2.5 * x, {"alpha": -2.5}, seed=63)
        w.case("mul_channel", "per_sample", {"x": rnd(2, 6, 4, 4, seed=810), "s": rnd(2, 6, 1, 1, seed=811)},
               lambda x, s: x * s, seed=64)
        w.case("mul_channel", "shared", {"x": rnd(3, 6, 4, 5, seed=812), "s": rnd(1, 6, 1, 1, seed=813)},
               lambda x, s: x * s, seed=65)
        w.case("concat", "channels3", {"x0": rnd(2, 3, 4, 4, seed=820), "x1": rnd(2, 5, 4, 4, seed=821),
                                       "x2": rnd(2, 8, 4, 4, seed=822)},
               lambda x0, x1, x2: torch.cat([x0, x1, x2], 1), {"axis": 1, "n": 3}, seed=66)
        w.case("concat", "batch2", {"x0": rnd(2, 3, 4, seed=823), "x1": rnd(1, 3, 4, seed=824)},
               lambda x0, x1: torch.cat([x0, x1], 0), {"axis": 0, "n": 2}, seed=67)
        w.case("slice", "channels", {"x": rnd(2, 10, 3, 3, seed=830)}, lambda x: x[:, 3:8], {"axis": 1, "start": 3, "len": 5}, seed=68)
        w.case("slice", "last", {"x": rnd(4, 9, seed=831)}, lambda x: x[:, 2:9], {"axis": -1, "start": 2, "len": 7}, seed=69)

        def shuffle(x, g):
            n, c, h, ww = x.shape
            return x.view(n, g, c // g, h, ww).transpose(1, 2).contiguous().view(n, c, h, ww)
        w.case("channel_shuffle", "g2", {"x": rnd(2, 8, 3, 3, seed=840)}, lambda x: shuffle(x, 2), {"groups": 2}, seed=70)
        w.case("channel_shuffle", "g3", {"x": rnd(2, 12, 2, 4, seed=841)}, lambda x: shuffle(x, 3), {"groups": 3}, seed=71)
        w.case("reshape", "flatten", {"x": rnd(3, 4, 5, 2, seed=850)}, lambda x: x.reshape(3, -1), {"shape": (3, -1)}, seed=72)

        for i, (name, shape, axis) in enumerate([("rows", (4, 10), 1), ("nchw_channels", (2, 6, 3, 3), 1), ("last", (3, 4, 5), -1)]):
            x = rnd(*shape, seed=860 + i) * 3
            w.case("softmax", name, {"x": x}, lambda x, a=axis: F.softmax(x, a), {"axis": axis}, seed=80 + i)
            w.case("log_softmax", name, {"x": x}, lambda x, a=axis: F.log_softmax(x, a), {"axis": axis}, seed=90 + i)

        for i, ls in enumerate([0.0, 0.1]):
            logits = rnd(8, 10, seed=870 + i) * 3
            labels = torch.randint(0, 10, (8,), generator=torch.Generator().manual_seed(880 + i))
            w.case("cross_entropy", "ls%g" % ls, {"logits": logits, "labels": labels},
                   lambda logits, labels, ls=ls: F.cross_entropy(logits, labels, label_smoothing=ls),
                   {"label_smoothing": ls}, seed=100 + i)
        s_logits, t_logits = rnd(6, 10, seed=890) * 3, rnd(6, 10, seed=891) * 3
        w.case("kl_div", "T4", {"student": s_logits, "teacher": t_logits},
               lambda student, teacher: F.kl_div(F.log_softmax(student / 4, 1), F.softmax(teacher.detach() / 4, 1),
                                                 reduction="batchmean") * 16,
               {"temperature": 4.0}, seed=110)
        for i, beta in enumerate([1.0, 0.5]):
            w.case("smooth_l1", "beta%g" % beta, {"x": rnd(4, 6, seed=900 + i) * 2, "target": rnd(4, 6, seed=910 + i)},
                   lambda x, target, b=beta: F.smooth_l1_loss(x, target, beta=b), {"beta": beta}, seed=120 + i)
        w.case("mse", "basic", {"x": rnd(4, 6, seed=920), "target": rnd(4, 6, seed=921)},
               lambda x, target: F.mse_loss(x, target), seed=130)

        fake_quant_cases(w)

    write_optim(os.path.join(out, "optim.h5"))
    write_kd(os.path.join(out, "kd.h5"))
    write_smallcnn(os.path.join(out, "smallcnn.h5"))
    for arch, width in (("resnet20", 1.0), ("smallcnn", 0.5)):
        write_one_step(os.path.join(out, "step_%s.h5" % arch), arch, width)


def write_kd(path):
    """The distillation loss alpha * CE(y, s; label smoothing) + (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T))
    (batch mean) on fixed logits, and its gradient with respect to the student's logits."""
    s = rnd(8, 10, seed=71, scale=2.0).requires_grad_(True)
    t = rnd(8, 10, seed=72, scale=2.0)
    y = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6])
    alpha, T, eps = 0.3, 3.0, 0.1
    ce = F.cross_entropy(s, y, label_smoothing=eps)
    kl = F.kl_div(F.log_softmax(s / T, dim=1), F.log_softmax(t / T, dim=1), reduction="batchmean", log_target=True) * T * T
    loss = alpha * ce + (1 - alpha) * kl
    loss.backward()
    with h5py.File(path, "w") as f:
        f["student"] = f32(s)
        f["teacher"] = f32(t)
        f["labels"] = y.numpy()
        f["loss"] = np.array([loss.item()], dtype=np.float32)
        f["grad_student"] = f32(s.grad)
        f.attrs["alpha"] = alpha
        f.attrs["temperature"] = T
        f.attrs["label_smoothing"] = eps


def write_optim(path):
    """Parameter trajectories of torch.optim on a fixed synthetic problem, and LR schedule values."""
    with h5py.File(path, "w") as f:
        p0 = rnd(2, 3, 4, seed=1, scale=1.0).to(torch.float32)
        b0 = rnd(5, seed=2).to(torch.float32)
        target = rnd(2, 3, 4, seed=3).to(torch.float32)
        f["p0"], f["b0"], f["target"] = p0.numpy(), b0.numpy(), target.numpy()
        configs = {
            "sgd_momentum_wd": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-2),
            "sgd_nesterov": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4),
            "sgd_dampening": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.5, dampening=0.3),
            "sgd_plain": lambda ps: torch.optim.SGD(ps, lr=0.05),
            "adam_wd": lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=1e-2),
            "adamw": lambda ps: torch.optim.AdamW(ps, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
        }
        for name, make in configs.items():
            p, b = p0.clone().requires_grad_(), b0.clone().requires_grad_()
            opt = make([p, b])
            traj_p, traj_b = [], []
            for step in range(10):
                opt.zero_grad()
                # a loss with curvature so that momentum and Adam's moments matter
                loss = ((p - target) ** 2 * (1 + 0.1 * step)).sum() + (b ** 4).sum() * 0.05 + 0.1 * (p.sum() * b.sum())
                loss.backward()
                opt.step()
                traj_p.append(p.detach().clone().numpy())
                traj_b.append(b.detach().clone().numpy())
            g = f.create_group(name)
            g["p"], g["b"] = np.stack(traj_p), np.stack(traj_b)

        sched = f.create_group("schedules")
        def record(name, make, epochs=30):
            p = torch.zeros(1, requires_grad=True)
            opt = torch.optim.SGD([p], lr=0.1)
            s = make(opt)
            lrs = []
            for _ in range(epochs):
                lrs.append(opt.param_groups[0]["lr"])
                opt.step()
                s.step()
            sched[name] = np.array(lrs, dtype=np.float64)
        record("step", lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=7, gamma=0.5))
        record("multistep", lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[5, 12, 20], gamma=0.1))
        record("cosine", lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=30, eta_min=0.001))
        record("poly", lambda o: torch.optim.lr_scheduler.PolynomialLR(o, total_iters=25, power=2.0))
        record("warmup_cosine", lambda o: torch.optim.lr_scheduler.SequentialLR(
            o, [torch.optim.lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=5),
                torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=25)], milestones=[5]))

        clip = f.create_group("clip")
        g1, g2 = rnd(3, 4, seed=11).to(torch.float32), rnd(7, seed=12).to(torch.float32) * 3
        clip["g1"], clip["g2"] = g1.numpy(), g2.numpy()
        a, b = torch.zeros(3, 4, requires_grad=True), torch.zeros(7, requires_grad=True)
        a.grad, b.grad = g1.clone(), g2.clone()
        norm = torch.nn.utils.clip_grad_norm_([a, b], max_norm=2.0)
        clip["norm"] = np.array([float(norm)])
        clip["g1_out"], clip["g2_out"] = a.grad.numpy(), b.grad.numpy()


class SmallCNN(torch.nn.Module):
    """conv-BN-ReLU-maxpool x2, then linear: the network of the engine's end-to-end parity test."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(16)
        self.fc = torch.nn.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        return self.fc(torch.flatten(x, 1))


def write_smallcnn(path):
    torch.manual_seed(0)
    model0 = SmallCNN()
    g = torch.Generator().manual_seed(5)
    x = torch.randn(16, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (16,), generator=g)
    with h5py.File(path, "w") as f:
        f["x"], f["labels"] = x.numpy(), y.numpy()
        init = f.create_group("init")
        for k, v in model0.state_dict().items():
            init[k] = v.numpy()
        runs = {
            "sgd": (20, lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=5e-4)),
            "nesterov": (10, lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)),
            "adamw": (10, lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.01)),
        }
        for name, (steps, make) in runs.items():
            gr = f.create_group(name)
            # losses as PyTorch's float32 training reports them; final parameters from the same run in
            # float64, the exact trajectory (float32 runs of PyTorch itself drift up to ~1e-3 from it)
            for dtype in (torch.float32, torch.float64):
                model = SmallCNN().to(dtype)
                model.load_state_dict(model0.state_dict())
                model.train()
                opt = make(model.parameters())
                losses = []
                for step in range(steps):
                    opt.zero_grad()
                    loss = F.cross_entropy(model(x.to(dtype)), y)
                    loss.backward()
                    opt.step()
                    losses.append(loss.item())
                    if step == 0 and dtype == torch.float64:
                        after1 = gr.create_group("after1")
                        for k, v in model.state_dict().items():
                            after1[k] = v.to(torch.float32).numpy() if v.is_floating_point() else v.numpy()
                if dtype == torch.float32:
                    gr["losses"] = np.array(losses, dtype=np.float32)
                else:
                    gr["losses_f64"] = np.array(losses, dtype=np.float64)
                    fin = gr.create_group("final")
                    for k, v in model.state_dict().items():
                        fin[k] = v.to(torch.float32).numpy() if v.is_floating_point() else v.numpy()

def relu_inputs(model, x):
    """Every value that enters a ReLU in a forward pass of model (float64)."""
    vals = []
    hooks = [m.register_forward_hook(lambda mod, i, o: vals.append(o.detach().flatten()) and None)
             for name, m in model.named_modules()
             if isinstance(m, torch.nn.BatchNorm2d) and (name.split(".")[-1] == "bn1" or "." not in name)]
    model(x)
    for h in hooks:
        h.remove()
    vals += [m.preact.detach().flatten() for m in model.modules() if hasattr(m, "preact")]
    return torch.cat(vals)


def write_one_step(path, arch, width):
    """One SGD step (momentum 0.9, weight decay 5e-4, lr 0.1) of a nibble architecture written in PyTorch,
    from weights saved in nibble's checkpoint layout. The step is taken in float64 from the float32 weights,
    so the reference is exact. The batch is drawn so that no ReLU input lies within 5e-6 of zero: float32
    rounding moves activations by about 1e-6, and a value that crosses zero flips its ReLU and moves the
    gradients by percents in any float32 implementation (PyTorch's own included), which would make the
    comparison a coin toss rather than a test."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_models import build
    from torch_to_nibble import save_state_dict
    torch.manual_seed(7)
    model = build(arch, num_classes=10, in_channels=1, input_size=28, width=width)
    save_state_dict(model.state_dict(), path)
    m = model.double().train()
    for seed in range(8, 1000):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(4, 1, 28, 28, generator=g)
        y = torch.randint(0, 10, (4,), generator=g)
        saved = {k: v.clone() for k, v in m.state_dict().items()}
        margin = relu_inputs(m, x.double()).abs().min().item()
        m.load_state_dict(saved)  # the probe's forward pass moved the running statistics
        if margin > 5e-6:
            break
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    opt.zero_grad()
    loss = F.cross_entropy(m(x.double()), y)
    loss.backward()
    opt.step()
    with h5py.File(path, "a") as f:
        f["batch/x"], f["batch/labels"] = x.numpy(), y.numpy()
        f["batch/loss"] = np.array([loss.item()])
        f["batch"].attrs["relu_margin"] = margin
        after = f.create_group("after")
        for k, v in m.state_dict().items():
            after[k] = v.to(torch.float32).numpy() if v.is_floating_point() else v.numpy()

if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[2] == "kd":  # just the distillation fixture
        write_kd(os.path.join(sys.argv[1], "kd.h5"))
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures")
