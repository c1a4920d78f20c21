#!/usr/bin/python3
"""Writes tests/fixtures/models.h5: evaluation-mode logits of torchvision's architectures, for nibble's
forward-parity test (tests/test_models.c).

Weights are not stored. Every tensor of the state_dict, and the input, is filled by a rule both sides
implement (tests/support/det_weights.c): element i of the tensor named `name` is drawn from
splitmix64(fnv1a64(name) + i), and scaled by the tensor's role (He-uniform for convolutions and linear
weights, values near 1 for batch-norm scales and running variances, near 0 for biases and running means).
So the file stays a few kilobytes for ResNet-50 and AlexNet alike, and a wrong parameter name, shape or
layout in nibble changes the weights it draws and shows up as a logit mismatch. References are computed in
float64 from the float32-rounded weights and input.

Usage: /usr/bin/python3 scripts/gen_model_fixtures.py tests/fixtures/models.h5
"""
import sys

import h5py
import numpy as np
import torch
import torchvision

MASK = (1 << 64) - 1
# (architecture, input size, batch): small inputs keep the test fast; AlexNet at 64 exercises the general
# adaptive-pooling path (its features are 1x1 there, pooled up to 6x6)
ARCHS = [("resnet18", 64, 2), ("resnet34", 48, 2), ("resnet50", 64, 2), ("alexnet", 64, 2),
         ("mobilenet_v2", 64, 2), ("shufflenet_v2_x0_5", 64, 2), ("shufflenet_v2_x1_0", 64, 2)]


def fnv1a64(s):
    h = 0xcbf29ce484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001b3) & MASK
    return h


def unit_draws(name, n):
    """2u - 1 in [-1, 1) for u the top 24 bits of splitmix64(fnv1a64(name) + i), i < n (float64)."""
    with np.errstate(over="ignore"):
        z = np.uint64(fnv1a64(name)) + np.arange(n, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(40)).astype(np.float64) / float(1 << 24)
    return 2.0 * u - 1.0


def det_values(name, shape):
    n = int(np.prod(shape)) if len(shape) else 1
    v = unit_draws(name, n)
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "weight" and len(shape) >= 2:
        fan_in = int(np.prod(shape[1:]))
        out = v * np.sqrt(6.0 / fan_in)
    elif leaf == "weight":
        out = 1.0 + 0.2 * v
    elif leaf == "running_var":
        out = 1.0 + 0.25 * (v + 1.0)
    else:  # biases, running means, the input
        out = (1.0 if name == "input" else 0.1) * v
    return out.astype(np.float32).reshape(shape)


def main(path):
    torch.set_num_threads(2)
    with h5py.File(path, "w") as f:
        for arch, size, batch in ARCHS:
            m = getattr(torchvision.models, arch)(num_classes=1000).eval()
            sd = m.state_dict()
            for k, t in sd.items():
                if t.dtype == torch.int64:
                    continue
                t.copy_(torch.from_numpy(det_values(k, tuple(t.shape))))
            m = m.double()
            x = torch.from_numpy(det_values("input", (batch, 3, size, size))).double()
            with torch.no_grad():
                y = m(x)
            g = f.create_group(arch)
            g.attrs["input_size"] = size
            g.attrs["batch"] = batch
            g["logits"] = y.float().numpy()
            print("%-20s input %dx3x%dx%d  logits rms %.3g" % (arch, batch, size, size, y.pow(2).mean().sqrt()))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/models.h5")
