#!/usr/bin/python3
"""A CNN that nibble's zoo does not have, defined here in PyTorch, for ONNX import end to end (issue: bring your
own model): squeeze-and-excitation blocks and hard-swish, as MobileNetV3 has them, at Fashion-MNIST's 28x28.

    /usr/bin/python3 scripts/secnn.py export experiments/secnn.onnx   # the ONNX file experiments/secnn*.cfg import
    /usr/bin/python3 scripts/secnn.py train [--epochs N] [--out FILE] # the same network trained by PyTorch with the
                                                                      # recipe of experiments/secnn.cfg

`export` writes the network with PyTorch's initialisation (seed 0) in training mode (batch norms kept as
BatchNormalization nodes under their state_dict names), opset 17, batch symbolic. `train` trains the network
from the same initial weights with configs/sched_fmnist_zoo.cfg's recipe: SGD with Nesterov momentum 0.9, lr 0.2
and weight decay 1e-3 except on batch-norm parameters and biases, cosine per step after half an epoch of
linear warm-up from 0.1 x lr, horizontal flips, label smoothing 0.1, batch 128, inputs normalised by mean 0.2860
and std 0.3530; it prints each epoch's test top-1 and writes them as JSON lines (--out).
"""
import argparse
import gzip
import io
import json
import math
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FMNIST = "/usr/share/datasets/fashion-mnist/"


class SE(nn.Module):
    """Squeeze-and-excitation: the channels scaled by a gate computed from their means"""

    def __init__(self, c, r=4):
        super().__init__()
        self.fc1 = nn.Conv2d(c, c // r, 1)
        self.fc2 = nn.Conv2d(c // r, c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        s = F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))
        return x * s


def conv_bn(cin, cout, k, stride, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout),
                         nn.Hardswish())


class Block(nn.Module):
    """SE-ResNet's basic block with hard-swish: a dense 3x3 (stride s) to `mid` channels, batch norm and
    hard-swish; a 1x1 to `cout`, batch norm; squeeze-and-excitation; the shortcut added when the shape stays;
    hard-swish"""

    def __init__(self, cin, mid, cout, stride):
        super().__init__()
        self.conv1 = conv_bn(cin, mid, 3, stride)
        self.conv2 = nn.Sequential(nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.se = SE(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.se(self.conv2(self.conv1(x)))
        return F.hardswish(x + y if self.residual else y)


class SECNN(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = conv_bn(1, 24, 3, 1)
        self.blocks = nn.Sequential(Block(24, 32, 32, 2), Block(32, 32, 32, 1), Block(32, 64, 64, 2),
                                    Block(64, 64, 64, 1))
        self.head = conv_bn(64, 128, 1, 1)
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def make():
    torch.manual_seed(0)
    return SECNN()


def export(path):
    m = make().train()
    torch.onnx.export(m, torch.zeros(2, 1, 28, 28), path, training=torch.onnx.TrainingMode.TRAINING,
                      do_constant_folding=False, opset_version=17, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    print("wrote %s (%d parameters)" % (path, sum(p.numel() for p in m.parameters())))


def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    magic = int.from_bytes(data[:4], "big")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(magic & 0xFF)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * len(dims)).reshape(dims)


def train(epochs, out):
    torch.set_num_threads(2)
    xs = torch.from_numpy(idx(FMNIST + "train-images-idx3-ubyte.gz").astype(np.float32) / 255)
    ys = torch.from_numpy(idx(FMNIST + "train-labels-idx1-ubyte.gz").astype(np.int64))
    xt = torch.from_numpy(idx(FMNIST + "t10k-images-idx3-ubyte.gz").astype(np.float32) / 255)
    yt = torch.from_numpy(idx(FMNIST + "t10k-labels-idx1-ubyte.gz").astype(np.int64))
    norm = lambda x: ((x - 0.2860) / 0.3530).unsqueeze(1)
    m = make()
    decay = [p for n, p in m.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in m.named_parameters() if p.ndim <= 1]
    lr, batch = 0.2, 128
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 1e-3}, {"params": no_decay, "weight_decay": 0.0}], lr=lr,
                          momentum=0.9, nesterov=True)
    steps_per_epoch = math.ceil(len(xs) / batch)
    total, warm = epochs * steps_per_epoch, int(0.5 * steps_per_epoch)
    g = torch.Generator().manual_seed(1)
    step = 0
    log = open(out, "w") if out else None
    for ep in range(epochs):
        m.train()
        t0 = time.time()
        perm = torch.randperm(len(xs), generator=g)
        for b in range(steps_per_epoch):
            i = perm[b * batch:(b + 1) * batch]
            x = norm(xs[i])
            flip = torch.rand(len(i), generator=g) < 0.5
            x[flip] = x[flip].flip(3)
            if step < warm:
                cur = lr * (0.1 + 0.9 * step / warm)
            else:
                cur = 0.5 * lr * (1 + math.cos(math.pi * (step - warm) / max(total - warm, 1)))
            for pg in opt.param_groups:
                pg["lr"] = cur
            opt.zero_grad()
            F.cross_entropy(m(x), ys[i], label_smoothing=0.1).backward()
            opt.step()
            step += 1
        m.eval()
        with torch.no_grad():
            correct = sum(int((m(norm(xt[k:k + 1000])).argmax(1) == yt[k:k + 1000]).sum()) for k in range(0, 10000, 1000))
        rec = {"epoch": ep + 1, "top1": correct / 100.0, "seconds": round(time.time() - t0, 1)}
        print(json.dumps(rec), flush=True)
        if log:
            log.write(json.dumps(rec) + "\n")
            log.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["export", "train"])
    ap.add_argument("path", nargs="?", default="experiments/secnn.onnx")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    if a.what == "export":
        export(a.path)
    else:
        train(a.epochs, a.out)


if __name__ == "__main__":
    sys.exit(main())
