#!/usr/bin/python3
"""What a distillation teacher's soft targets carry beyond the label: each checkpoint's logits on the
Fashion-MNIST test set (bin/predict, preprocessed as in training), softened at temperature T as the KD loss
softens them, and summarised as
  - top1: the teacher's own accuracy;
  - target_prob: the mean probability of the true class at T;
  - wrong_class_entropy: the entropy of the distribution over the 9 wrong classes at T, as a fraction of
    log 9 (1.0: every wrong class equally likely, nothing for the student to learn about which classes look
    alike);
  - wrong_logit_spread: the standard deviation of the wrong-class logits over the gap between the true class
    and their mean (label smoothing pulls the wrong classes to one distance, Mueller et al. 2019), on the
    images the teacher classifies correctly (elsewhere the gap can be near zero or negative).
One JSON line per checkpoint, written to --out once every checkpoint has been measured.

usage: teacher_targets.py [--bin bin] [--temperature 4] [--out runs/teacher_targets.jsonl]
                          [--images IDX_GZ --labels IDX_GZ] CKPT ..."""
import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

TEST = "/usr/share/datasets/fashion-mnist/t10k-%s-idx%d-ubyte.gz"  # where configs/data_fmnist.cfg reads it


def read_idx(path, header):
    with gzip.open(path) as f:
        return np.frombuffer(f.read(), np.uint8, offset=header)


def summarise(logits, labels, temperature):
    z = logits.astype(np.float64)
    n, classes = z.shape
    rows = np.arange(n)
    p = np.exp((z - z.max(1, keepdims=True)) / temperature)
    p /= p.sum(1, keepdims=True)
    wrong = np.ones_like(z, bool)
    wrong[rows, labels] = False
    q = p[wrong].reshape(n, classes - 1)
    q /= q.sum(1, keepdims=True)
    entropy = -(q * np.log(np.maximum(q, 1e-300))).sum(1).mean() / np.log(classes - 1)
    zw = z[wrong].reshape(n, classes - 1)
    gap = z[rows, labels] - zw.mean(1)
    right = z.argmax(1) == labels
    return {"top1": float(right.mean()), "target_prob": float(p[rows, labels].mean()),
            "wrong_class_entropy": float(entropy), "wrong_logit_spread": float((zw.std(1)[right] / gap[right]).mean())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--temperature", type=float, default=4.0)
    ap.add_argument("--out", default="runs/teacher_targets.jsonl")
    ap.add_argument("--images", default=TEST % ("images", 3), help="gzipped idx images, 28x28")
    ap.add_argument("--labels", default=TEST % ("labels", 1), help="gzipped idx labels")
    a = ap.parse_args()
    images = read_idx(a.images, 16).reshape(-1, 1, 28, 28)
    labels = read_idx(a.labels, 8).astype(np.int64)
    if len(images) != len(labels):
        sys.exit("teacher_targets: %s has %d images but %s has %d labels" % (a.images, len(images), a.labels, len(labels)))
    with tempfile.TemporaryDirectory() as tmp:
        inp = os.path.join(tmp, "test.h5")
        with h5py.File(inp, "w") as f:
            f["images"] = images
        # a failed bin/predict leaves the previous file whole rather than a table with teachers missing
        partial = a.out + ".tmp"
        with open(partial, "w") as out:
            for ckpt in a.checkpoints:
                logits_path = os.path.join(tmp, "logits.h5")
                subprocess.run([os.path.join(a.bin, "predict"), ckpt, inp, logits_path], check=True)
                with h5py.File(logits_path, "r") as f:
                    row = {"checkpoint": ckpt, "temperature": a.temperature}
                    row.update(summarise(f["logits"][:], labels, a.temperature))
                out.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
        os.replace(partial, a.out)


if __name__ == "__main__":
    main()
