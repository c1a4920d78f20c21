#!/usr/bin/python3
"""PyTorch 1.13's own eager-mode int8 quantization of a nibble ResNet-20 checkpoint, post-training or
quantization-aware: the peer that nibble's W8A8 (bin/quantize quantize.activations=8, compress.methods = qat)
is measured against. The checkpoint's weights go into
scripts/torch_models.py's ResNet-20 (the same names), made quantizable the way torchvision's quantizable
ResNets are (QuantStub/DeQuantStub, FloatFunctional for the residual add, conv-bn-relu fused), calibrated on
the same first N training images nibble calibrates on (histogram observers as torch's default qconfig,
per-channel weights), converted, and evaluated on the Fashion-MNIST test set. With --qat E it instead trains E epochs through
torch's own quantization-aware modules (conv-bn-relu fused for QAT, moving-average min-max fake quantizers,
torch's default QAT qconfig) with experiments/fmnist_qat_w8a8.cfg's recipe: SGD with Nesterov momentum 0.9,
lr 0.002 cosine-decayed per step to 0, weight decay 1e-3 on weights only, label smoothing 0.1, horizontal
flips, batch 128; batch-norm statistics and observers frozen for the last epoch (freeze_bn_stats,
disable_observer), as the nibble recipe freezes its batch norms. Then converted and evaluated the same way. The engine is FBGEMM where the
build has it; Debian's torch has oneDNN's x86 int8 instead (the same default qconfig recipe, reduce_range
off). Prints one JSON line.

usage: torch_quant_peer.py CKPT [--calibration N] [--qat EPOCHS] [--seed S] [--engine fbgemm|onednn|qnnpack]"""
import argparse
import gzip
import json
import os
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import torch_models  # noqa: E402
from nibble_to_torch import load_state_dict  # noqa: E402

FMNIST = "/usr/share/datasets/fashion-mnist/"


def idx(path):
    raw = gzip.open(path).read()
    if raw[2] == 8 and raw[3] == 3:
        return np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 1, 28, 28)
    return np.frombuffer(raw, np.uint8, offset=8).astype(np.int64)


class QBlock(nn.Module):
    def __init__(self, b):
        super().__init__()
        self.conv1, self.bn1, self.relu1 = b.conv1, b.bn1, nn.ReLU()
        self.conv2, self.bn2 = b.conv2, b.bn2
        self.downsample = b.downsample
        self.add = nn.quantized.FloatFunctional()

    def forward(self, x):
        h = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.add.add_relu(h, self.downsample(x) if self.downsample is not None else x)

    def fuse(self, fuse):
        fuse(self, [["conv1", "bn1", "relu1"], ["conv2", "bn2"]], inplace=True)
        if self.downsample is not None:
            fuse(self.downsample, [["0", "1"]], inplace=True)


class QResNet(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.quant, self.dequant = torch.ao.quantization.QuantStub(), torch.ao.quantization.DeQuantStub()
        self.conv1, self.bn1, self.relu = m.conv1, m.bn1, nn.ReLU()
        self.blocks = nn.Sequential(*[QBlock(b) for s in (m.layer1, m.layer2, m.layer3) for b in s])
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), m.fc

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(self.quant(x))))
        x = self.pool(self.blocks(x))
        return self.dequant(self.fc(torch.flatten(x, 1)))

    def fuse(self, fuse=torch.ao.quantization.fuse_modules):
        """fuse: fuse_modules for post-training quantization, fuse_modules_qat for training"""
        fuse(self, [["conv1", "bn1", "relu"]], inplace=True)
        for b in self.blocks:
            b.fuse(fuse)


def qat_train(q, train_x, train_y, epochs, norm, seed):
    """torch's quantization-aware training of the prepared model q, nibble's W8A8 QAT recipe (see above)"""
    g = torch.Generator().manual_seed(seed)
    decay = [p for n, p in q.named_parameters() if p.dim() > 1]
    rest = [p for n, p in q.named_parameters() if p.dim() <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 1e-3}, {"params": rest, "weight_decay": 0.0}],
                          lr=0.002, momentum=0.9, nesterov=True)
    batch = 128
    steps = epochs * (len(train_x) // batch + (len(train_x) % batch > 0))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + np.cos(np.pi * k / steps)))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        q.train()
        if epoch == epochs - 1:  # the last epoch trains the network that is deployed: statistics frozen
            q.apply(torch.nn.intrinsic.qat.freeze_bn_stats)
            q.apply(torch.ao.quantization.disable_observer)
        order = torch.randperm(len(train_x), generator=g)
        for i in range(0, len(train_x), batch):
            idx_b = order[i:i + batch]
            x = norm(train_x[idx_b.numpy()])
            flip = torch.rand(len(idx_b), generator=g) < 0.5
            x[flip] = x[flip].flip(-1)
            loss = loss_fn(q(x), torch.from_numpy(train_y[idx_b.numpy()]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if (i // batch) % 50 == 0:
                print(f"torch qat: epoch {epoch + 1} step {i // batch} loss {loss.item():.4f} "
                      f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        print(f"torch qat: epoch {epoch + 1}/{epochs} loss {loss.item():.4f}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt")
    ap.add_argument("--calibration", type=int, default=512)
    ap.add_argument("--qat", type=int, default=0, help="epochs of quantization-aware training (0: post-training)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--engine", default=None)
    ap.add_argument("--mean", type=float, default=0.2860)
    ap.add_argument("--std", type=float, default=0.3530)
    a = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    engine = a.engine or ("fbgemm" if "fbgemm" in torch.backends.quantized.supported_engines else "onednn")
    torch.backends.quantized.engine = engine
    with h5py.File(a.ckpt, "r") as f:
        arch = "resnet20"
        for line in f.attrs["config"].decode().splitlines() if isinstance(f.attrs["config"], bytes) else f.attrs["config"].splitlines():
            if line.strip().startswith("arch"):
                arch = line.split("=")[1].split("#")[0].strip()
    m = torch_models.build(arch, num_classes=10, in_channels=1)
    m.load_state_dict(load_state_dict(a.ckpt), strict=False)
    m.eval()
    norm = lambda u8: (torch.from_numpy(u8.astype(np.float32)) / 255.0 - a.mean) / a.std
    all_x, all_y = idx(FMNIST + "train-images-idx3-ubyte.gz"), idx(FMNIST + "train-labels-idx1-ubyte.gz")
    train_x = all_x[: a.calibration]
    test_x, test_y = idx(FMNIST + "t10k-images-idx3-ubyte.gz"), idx(FMNIST + "t10k-labels-idx1-ubyte.gz")

    def top1(model):
        right = 0
        with torch.no_grad():
            for i in range(0, len(test_x), 500):
                right += (model(norm(test_x[i:i + 500])).argmax(1).numpy() == test_y[i:i + 500]).sum()
        return right / len(test_x)

    float_top1 = top1(m)
    torch.manual_seed(a.seed)
    if a.qat:
        q = QResNet(m).train()
        q.fuse(torch.ao.quantization.fuse_modules_qat)
        q.qconfig = torch.ao.quantization.get_default_qat_qconfig(engine)
        torch.ao.quantization.prepare_qat(q, inplace=True)
        qat_train(q, all_x, all_y, a.qat, norm, a.seed)
        q.eval()
    else:
        q = QResNet(m).eval()
        q.fuse()
        q.qconfig = torch.ao.quantization.get_default_qconfig(engine)
        torch.ao.quantization.prepare(q, inplace=True)
        with torch.no_grad():
            for i in range(0, len(train_x), 128):
                q(norm(train_x[i:i + 128]))
    torch.ao.quantization.convert(q, inplace=True)
    out = {"checkpoint": a.ckpt, "engine": engine, "float_top1": float_top1, "int8_top1": top1(q),
           "torch": torch.__version__}
    out.update({"qat_epochs": a.qat, "seed": a.seed} if a.qat else {"calibration_images": len(train_x)})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
