#!/usr/bin/python3
"""Writes the fixtures of ONNX import's parity test (tests/test_import.c): torchvision models that nibble's zoo
does not have, exported to ONNX by PyTorch 1.13, and PyTorch's answers for them.

  tests/fixtures/import/<arch>.onnx  the exported graph, with the values of every state_dict tensor removed (its
                                     name, type and dimensions stay): the test fills them by the rule of
                                     tests/support/det_weights.c, so nothing large is stored
  tests/fixtures/import.h5           /<arch>: attributes input_size, batch, opset; the evaluation logits in
                                     float64; then one SGD step (lr 0.05, momentum 0.9, weight decay 5e-4) in
                                     training mode on labels 0..batch-1: the loss, and for every float
                                     state_dict tensor, in state_dict order (`names`, one per line), its change
                                     in the step at a few positions (every element of a tensor of at most 64,
                                     else element j * (n - 1) // 31 for j < 32), float64 results stored as float32
                                     changes (`delta`, one list after another, `counts` long), and how far PyTorch's own
                                     float32 step lands from the float64 one over the whole tensor (`err32`), the
                                     test's yardstick

The models are exported in training mode (torch.onnx.TrainingMode.TRAINING, no constant folding), as a user
who means to train the import should: batch norms stay BatchNormalization nodes under their state_dict names
(an evaluation-mode export folds them into the convolutions). Dropout and stochastic depth are set to 0, so
that PyTorch's step and nibble's draw no random masks. Every tensor and the input are drawn by the rule of
scripts/gen_model_fixtures.py.

Usage: /usr/bin/python3 scripts/gen_import_fixtures.py tests/fixtures
"""
import io
import os
import sys
import warnings

import h5py
import numpy as np
import onnx
import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_model_fixtures import det_values  # noqa: E402

# (architecture, constructor arguments, input size, opset): opsets 13 to 17 between them
ARCHS = [
    ("squeezenet1_1", {}, 64, 13),
    ("googlenet", {"aux_logits": False, "transform_input": False, "init_weights": False}, 64, 14),
    ("mnasnet1_0", {}, 64, 15),
    ("mobilenet_v3_small", {}, 64, 16),
    ("efficientnet_b0", {}, 64, 17),
    ("regnet_x_400mf", {}, 64, 13),
    ("resnext50_32x4d", {}, 64, 14),
    ("densenet121", {}, 64, 17),
    ("resize_pad_deconv", {}, 16, 17),  # not torchvision's: the ops above do not use (see Extra)
]
BATCH = 2
CLASSES = 10
SAMPLES = 32  # positions kept of a tensor larger than SMALL
SMALL = 64
LR, MOMENTUM, WD = 0.05, 0.9, 5e-4


class Extra(torch.nn.Module):
    """Ops the torchvision models above do not export: a zero F.pad before a convolution, nearest and bilinear
    upsampling (Resize), a product with and a sum with per-channel constants, a scalar minus a tensor, a Sub of two
    tensors, a grouped ConvTranspose with stride, padding and output padding"""

    def __init__(self, num_classes):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, stride=2, bias=True)
        self.conv3 = torch.nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn3 = torch.nn.BatchNorm2d(8)
        self.register_buffer("gain", torch.ones(1, 8, 1, 1))
        self.register_buffer("shift", torch.zeros(8, 1, 1))
        self.deconv = torch.nn.ConvTranspose2d(8, 8, 3, stride=2, padding=1, output_padding=1, groups=2)
        self.fc = torch.nn.Linear(8, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        y = self.conv2(F.pad(x, (1, 1, 1, 1)))
        y = F.interpolate(y, scale_factor=2.0, mode="nearest")
        z = F.interpolate(self.bn3(self.conv3(y)), scale_factor=2.0, mode="bilinear", align_corners=False)
        z = F.max_pool2d(z, 2) * self.gain + self.shift
        x = 0.25 - x
        z = F.relu(z - x)
        z = F.relu(self.deconv(z))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(z, 1), 1))


def build(arch, kwargs):
    if arch == "resize_pad_deconv":
        m = Extra(CLASSES)
    else:
        m = getattr(torchvision.models, arch)(num_classes=CLASSES, **kwargs)
    for mod in m.modules():
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.0
        if type(mod).__name__ == "StochasticDepth":
            mod.p = 0.0
    with torch.no_grad():
        for k, t in m.state_dict().items():
            if t.dtype == torch.int64:
                continue
            t.copy_(torch.from_numpy(det_values(k, tuple(t.shape))))
    return m


def export(m, x, opset):
    buf = io.BytesIO()
    torch.onnx.export(m, x, buf, training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False,
                      opset_version=opset, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    return onnx.load_from_string(buf.getvalue())


def strip(model, names):
    """The state_dict tensors' values removed; what the graph computes with stays."""
    kept = 0
    for t in model.graph.initializer:
        if t.name in names and t.data_type == onnx.TensorProto.FLOAT:
            t.ClearField("raw_data")
            del t.float_data[:]
        else:
            kept += 1
    return kept


def one_step(m, x, labels, dtype):
    m = m.to(dtype).train()
    opt = torch.optim.SGD(m.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WD)
    opt.zero_grad()
    loss = F.cross_entropy(m(x.to(dtype)), labels)
    loss.backward()
    opt.step()
    return float(loss), {k: v.detach().to(torch.float64).numpy() for k, v in m.state_dict().items()}


def positions(n):
    if n <= SMALL:
        return np.arange(n, dtype=np.int64)
    return np.arange(SAMPLES, dtype=np.int64) * (n - 1) // (SAMPLES - 1)


def main(out):
    torch.set_num_threads(2)
    warnings.filterwarnings("ignore")
    os.makedirs(os.path.join(out, "import"), exist_ok=True)
    with h5py.File(os.path.join(out, "import.h5"), "w") as f:
        for arch, kwargs, size, opset in ARCHS:
            x = torch.from_numpy(det_values("input", (BATCH, 3, size, size)))
            labels = torch.arange(BATCH) % CLASSES
            m = build(arch, kwargs)
            sd = m.state_dict()
            model = export(m, x, opset)
            names = {k for k, t in sd.items() if t.dtype == torch.float32}
            present = {t.name for t in model.graph.initializer}
            missing = sorted(names - present)
            kept = strip(model, names)
            path = os.path.join(out, "import", arch + ".onnx")
            onnx.save(model, path)
            g = f.create_group(arch)
            g.attrs["input_size"] = size
            g.attrs["batch"] = BATCH
            g.attrs["opset"] = opset
            m64 = build(arch, kwargs).double().eval()
            with torch.no_grad():
                g["logits"] = m64(x.double()).numpy()
            loss64, after64 = one_step(build(arch, kwargs), x, labels, torch.float64)
            loss32, after32 = one_step(build(arch, kwargs), x, labels, torch.float32)
            g.attrs["loss"] = loss64
            g.attrs["loss_err32"] = abs(loss32 - loss64)
            names, delta, err32 = [], [], []
            for k, v in after64.items():
                if sd[k].dtype != torch.float32:
                    continue
                before = det_values(k, tuple(sd[k].shape)).astype(np.float64).reshape(-1)
                flat, flat32 = v.reshape(-1), after32[k].reshape(-1)
                idx = positions(flat.size)
                names.append(k)
                delta.append((flat[idx] - before[idx]).astype(np.float32))
                err32.append(float(np.abs(flat32 - flat).max()) if flat.size else 0.0)
            g["names"] = np.frombuffer("\n".join(names).encode(), dtype=np.uint8)
            g["delta"] = np.concatenate(delta)
            g["counts"] = np.array([len(d) for d in delta], dtype=np.int64)
            g["err32"] = np.array(err32)
            print("%-20s opset %d  %6d bytes, %3d nodes, %3d initializers kept, %d state tensors not initializers%s"
                  "  loss %.6f (float32 off by %.2g)"
                  % (arch, opset, os.path.getsize(path), len(model.graph.node), kept, len(missing),
                     (" (%s)" % ", ".join(missing[:3])) if missing else "", loss64, abs(loss32 - loss64)))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures")
