#!/usr/bin/python3
"""Writes a classification set cut from the synthetic VOC-format shapes (scripts/make_synth_voc.py): every
non-difficult object cropped with a 10% margin, and one background crop per picture that overlaps no object
by more than 0.1 IoU, each resized to --size pixels; labels are the class index, background the last. It
stands in for ImageNet pretraining, which SSD's recipes assume and these machines cannot provide: the
detector's backbone starts from a MobileNetV2 trained on these crops (experiments/mbv2_synth_crops.cfg).

    /usr/bin/python3 scripts/make_synth_crops.py data/synth_voc
writes data/synth_voc/crops_train.h5 and crops_test.h5 (datasets `images` uint8 [N,3,S,S], `labels` int64).
"""
import argparse
import os
import xml.etree.ElementTree as ET

import h5py
import numpy as np
from PIL import Image


def iou(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / u if u > 0 else 0.0


def crops(root, split, size, rng):
    classes = open(os.path.join(root, "classes.txt")).read().strip().split(",")
    ids = open(os.path.join(root, "SYNTH/ImageSets/Main", split + ".txt")).read().split()
    xs, ys = [], []
    for i in ids:
        ann = ET.parse(os.path.join(root, "SYNTH/Annotations", i + ".xml")).getroot()
        im = Image.open(os.path.join(root, "SYNTH/JPEGImages", ann.find("filename").text)).convert("RGB")
        W, H = im.size
        boxes = []
        for o in ann.findall("object"):
            b = [int(o.find("bndbox").find(k).text) - 1 for k in ("xmin", "ymin", "xmax", "ymax")]
            boxes.append(b)
            if o.find("difficult").text == "1":
                continue
            mx, my = 0.1 * (b[2] - b[0] + 1), 0.1 * (b[3] - b[1] + 1)
            c = (max(0, b[0] - mx), max(0, b[1] - my), min(W, b[2] + 1 + mx), min(H, b[3] + 1 + my))
            xs.append(np.asarray(im.crop(c).resize((size, size), Image.BILINEAR)))
            ys.append(classes.index(o.find("name").text))
        for _ in range(20):
            s = rng.uniform(0.15, 0.5) * min(W, H)
            x0, y0 = rng.uniform(0, W - s), rng.uniform(0, H - s)
            c = (x0, y0, x0 + s, y0 + s)
            if all(iou(c, b) < 0.1 for b in boxes):
                xs.append(np.asarray(im.crop(c).resize((size, size), Image.BILINEAR)))
                ys.append(len(classes))
                break
    return np.stack(xs).transpose(0, 3, 1, 2), np.array(ys, dtype=np.int64)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root")
    ap.add_argument("--size", type=int, default=64)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    for split, name in (("trainval", "crops_train.h5"), ("test", "crops_test.h5")):
        x, y = crops(a.root, split, a.size, rng)
        with h5py.File(os.path.join(a.root, name), "w") as f:
            f["images"] = x
            f["labels"] = y
        print(f"make_synth_crops: {len(y)} crops of {split} -> {a.root}/{name}; per class {np.bincount(y).tolist()}")


if __name__ == "__main__":
    main()
