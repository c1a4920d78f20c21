#!/usr/bin/python3
"""Writes the fuzz targets' seed corpora, fuzz/seeds/<target>/: a few small, valid inputs of each format (so the
fuzzer starts from files that get deep into each reader) made by the libraries that write these formats
(h5py, PIL, zlib, torch.onnx) and by nibble itself (bin/train, bin/quantize and bin/export for checkpoints and
ONNX exports). Run from the repository root after `make`:

    /usr/bin/python3 scripts/gen_fuzz_seeds.py

Deterministic apart from what HDF5 and PIL write; small (tens of KB per target) and committed.
"""
import io
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np
from PIL import Image

SEP = b"\n--\n"
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "fuzz", "seeds")
rng = np.random.RandomState(7)


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def cfg_seeds():
    inc = open(os.path.join(ROOT, "configs", "model_smallcnn.cfg"), "rb").read()
    main = b"# a cfg that includes another\ninclude = inc.cfg\n[train]\nbatch = 32\nepochs = 2\n[data]\nmean = 0.5, 0.4, 0.3\n"
    put("cfg", "include", main + SEP + inc + SEP + b"train.batch=64\noptim.lr=0.05\ncompress.methods=admm\n")
    for name in ("fmnist_resnet20.cfg", "secnn.cfg"):
        p = os.path.join(ROOT, "experiments", name)
        if os.path.exists(p):
            put("cfg", name, open(p, "rb").read())
    put("cfg", "sections", b"[model]\narch = resnet20\nwidth = 0.5\n[optim]\nkind = adamw\nlr = 1e-3\n"
        b"[compress]\nmethods = prune, kd\nlayers = conv=4, fc=8\n")


def idx(images, labels):
    n, h, w = images.shape
    img = b"\x00\x00\x08\x03" + np.array([n, h, w], ">u4").tobytes() + images.astype(np.uint8).tobytes()
    lab = b"\x00\x00\x08\x01" + np.array([n], ">u4").tobytes() + labels.astype(np.uint8).tobytes()
    return img, lab


def idx_seeds():
    img, lab = idx(rng.randint(0, 256, (3, 4, 4)), np.array([1, 0, 9]))
    put("idx", "raw", b"\x00" + img + SEP + lab)
    put("idx", "gzip", b"\x03" + img + SEP + lab)
    put("idx", "limit", b"\x05" + img + SEP + lab)


def h5_bytes(build):
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "x.h5")
        with h5py.File(p, "w") as f:
            build(f)
        return open(p, "rb").read()


def data_file(path, n=16, size=8):
    with h5py.File(path, "w") as f:
        f["images"] = rng.randint(0, 256, (n, 1, size, size)).astype(np.uint8)
        f["labels"] = (np.arange(n) % 10).astype(np.int64)


def hdf5_seeds():
    def u8(f):
        f["images"] = rng.randint(0, 256, (4, 1, 4, 4)).astype(np.uint8)
        f["labels"] = np.array([0, 1, 2, 3], np.int64)

    def f32(f):
        f["images"] = rng.rand(3, 3, 2, 2).astype(np.float32)
        f["labels"] = np.array([5, 6, 7], np.uint8)

    def nolabels(f):
        f["images"] = rng.randint(0, 256, (2, 3, 3)).astype(np.uint8)

    put("hdf5_data", "u8", b"\x00" + h5_bytes(u8))
    put("hdf5_data", "f32", b"\x02" + h5_bytes(f32))
    put("hdf5_data", "nolabels", b"\x01" + h5_bytes(nolabels))


def nibble_seeds():
    """A tiny smallcnn trained one step by bin/train, then made full-integer by bin/quantize, each exported:
    checkpoints for the checkpoint target (its cfg), ONNX files for the ONNX targets."""
    with tempfile.TemporaryDirectory() as d:
        data = os.path.join(d, "data.h5")
        data_file(data)
        cfg = os.path.join(d, "tiny.cfg")
        with open(cfg, "w") as f:
            f.write("[model]\narch = smallcnn\nwidth = 0.125\ninput_size = 8\n[optim]\nmomentum = 0.9\n"
                    "[data]\nformat = hdf5\ntrain = %s\nval = %s\n[train]\nbatch = 8\nsteps = 1\nepochs = 1\n"
                    "out = %s\n" % (data, data, os.path.join(d, "run")))
        env = dict(os.environ, OMP_NUM_THREADS="1")
        run = lambda *a: subprocess.run([os.path.join(ROOT, "bin", a[0])] + list(a[1:]), check=True, env=env,
                                        stdout=subprocess.DEVNULL)
        run("train", cfg)
        last = os.path.join(d, "run", "last.h5")
        put("checkpoint", "trained.h5", open(last, "rb").read())
        q = os.path.join(d, "q.h5")
        run("quantize", last, q, cfg, "quantize.activations=8", "quantize.calibration=8")
        put("checkpoint", "full_integer.h5", open(q, "rb").read())
        for name, ck, extra in (("float.onnx", last, []), ("qdq.onnx", q, []), ("fold_bn.onnx", last, ["--fold-bn"])):
            o = os.path.join(d, name)
            run("export", ck, "-o", o, *extra)
            put("onnx_check", name, open(o, "rb").read())
            if ck == last:  # the importer reads float graphs; a QDQ graph is refused, with the node named
                put("onnx_import", name, open(o, "rb").read())


def torch_onnx_seed():
    """A small PyTorch network with the ops the importer maps beyond the zoo's (Resize, ConvTranspose, Pad,
    Concat, Split, Slice, SiLU, hard-swish, ShuffleNet's Transpose), exported with its weights."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(1, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4)
            self.up = nn.ConvTranspose2d(4, 4, 2, stride=2, groups=2)
            self.c2 = nn.Conv2d(8, 4, 3, stride=2)
            self.fc = nn.Linear(4, 10)

        def forward(self, x):
            h = F.relu(self.bn(self.c1(x)))
            a, b = torch.split(h, 2, dim=1)
            h = torch.cat([b, a * torch.sigmoid(a)], 1)
            n, c, hh, ww = h.shape
            h = h.view(n, 2, c // 2, hh, ww).transpose(1, 2).reshape(n, c, hh, ww)
            u = F.interpolate(F.hardswish(h), scale_factor=2, mode="nearest")
            h = torch.cat([u, self.up(h)], 1)
            h = self.c2(F.pad(h, (1, 1, 1, 1)))
            h = F.max_pool2d(h[:, :, 1:, 1:], 2)
            return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))

    torch.manual_seed(0)
    buf = io.BytesIO()
    torch.onnx.export(Net().eval(), torch.zeros(1, 1, 8, 8), buf, opset_version=14, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    put("onnx_import", "torch_ops.onnx", buf.getvalue())
    put("onnx_check", "torch_ops.onnx", buf.getvalue())


def image_seeds():
    def enc(im, fmt, **kw):
        b = io.BytesIO()
        im.save(b, fmt, **kw)
        return b.getvalue()

    rgb = Image.fromarray(rng.randint(0, 256, (12, 16, 3)).astype(np.uint8), "RGB")
    put("image", "rgb.jpg", b"\x00" + enc(rgb, "JPEG", quality=50))
    put("image", "grey_scaled.jpg", b"\x60" + enc(rgb.convert("L"), "JPEG", quality=50))
    put("image", "progressive.jpg", b"\x00" + enc(rgb, "JPEG", quality=30, progressive=True))
    put("image", "rgb.png", b"\x00" + enc(rgb, "PNG"))
    put("image", "palette.png", b"\x00" + enc(rgb.convert("P"), "PNG"))
    put("image", "la.png", b"\x00" + enc(rgb.convert("LA"), "PNG"))
    put("image", "grey16.png", b"\x00" + enc(Image.fromarray((rng.rand(5, 7) * 65535).astype(np.uint16)), "PNG"))
    put("image", "header_only.png", b"\x01" + enc(rgb, "PNG"))


def cifar_seeds():
    c10 = b"".join(bytes([k]) + rng.randint(0, 256, 3072).astype(np.uint8).tobytes() for k in (3, 8))
    put("cifar", "cifar10", b"\x00" + c10)
    c100 = b"".join(bytes([k // 10, k]) + rng.randint(0, 256, 3072).astype(np.uint8).tobytes() for k in (42, 99))
    put("cifar", "cifar100", b"\x01" + c100)


def voc_seeds():
    xml = b"""<annotation><folder>VOC2007</folder><filename>000001.jpg</filename>
<size><width>353</width><height>500</height><depth>3</depth></size>
<object><name>dog</name><pose>Left</pose><truncated>1</truncated><difficult>0</difficult>
<bndbox><xmin>48</xmin><ymin>240</ymin><xmax>195</xmax><ymax>371</ymax></bndbox></object>
<object><name>person</name><difficult>1</difficult>
<bndbox><xmin>8</xmin><ymin>12</ymin><xmax>352</xmax><ymax>498</ymax></bndbox></object>
</annotation>
"""
    put("voc", "voc_classes", xml)
    put("voc", "own_classes", xml + SEP + b"dog, cat , person")


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    for f in (cfg_seeds, idx_seeds, hdf5_seeds, image_seeds, cifar_seeds, voc_seeds, nibble_seeds, torch_onnx_seed):
        f()
    for t in sorted(os.listdir(OUT)):
        files = os.listdir(os.path.join(OUT, t))
        print("%-12s %2d seeds, %6d bytes" % (t, len(files), sum(os.path.getsize(os.path.join(OUT, t, x)) for x in files)))


if __name__ == "__main__":
    sys.exit(main())
