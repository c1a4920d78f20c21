#!/usr/bin/python3
"""Writes a synthetic detection dataset in Pascal VOC's layout, so that detection trains and is tested on
machines without VOC: <out>/SYNTH/{JPEGImages,Annotations,ImageSets/Main/{trainval,test}.txt} and
<out>/classes.txt.

Each image (sides of 0.75 to 1.25 times --size) has a textured background (low-frequency colour noise, faint
stripes or checks, pixel noise) and 1 to 6 objects of six classes (circle, square, triangle, star, cross,
ring) of log-uniform size (8% to 65% of the shorter side), aspect 1:2 to 2:1, random rotation, colour and
a little texture of their own. Objects are painted in order, so later ones occlude earlier ones; boxes are
those of the visible pixels, as VOC's annotators draw them. An object less than 15% visible is not
annotated, one less than 50% visible (or under 8 pixels across) is marked difficult, one cut by the image
border is marked truncated. The same seed writes the same files.

    /usr/bin/python3 scripts/make_synth_voc.py data/synth_voc --train 3000 --test 600
"""
import argparse
import math
import os

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ["circle", "square", "triangle", "star", "cross", "ring"]


def background(rng, w, h):
    base = rng.uniform(40, 215, size=3)
    # low-frequency colour noise: a coarse random grid, bilinearly enlarged
    g = rng.normal(0, 28, size=(rng.integers(3, 7), rng.integers(3, 7), 3)).astype(np.float32)
    low = np.stack([np.asarray(Image.fromarray(g[:, :, c]).resize((w, h), Image.BILINEAR)) for c in range(3)], -1)
    img = base + low
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = rng.integers(0, 3)
    if kind == 0:  # stripes at a random angle
        a, period = rng.uniform(0, math.pi), rng.uniform(6, 24)
        img += rng.uniform(8, 25) * np.sin((xx * math.cos(a) + yy * math.sin(a)) * 2 * math.pi / period)[..., None]
    elif kind == 1:  # checks
        p = rng.integers(6, 20)
        img += rng.uniform(8, 25) * (((xx // p + yy // p) % 2) * 2 - 1)[..., None]
    img += rng.normal(0, 6, size=img.shape)
    return img


def shape_mask(rng, cls, w, h, cx, cy, bw, bh):
    """A mask of the object: its outline in a unit frame, stretched to bw x bh, rotated, centred at cx, cy."""
    m = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(m)
    rot = rng.uniform(0, 2 * math.pi) if cls in ("square", "triangle", "star", "cross") else 0.0

    def place(pts):
        out = []
        for x, y in pts:
            x, y = x * bw / 2, y * bh / 2
            out.append((cx + x * math.cos(rot) - y * math.sin(rot), cy + x * math.sin(rot) + y * math.cos(rot)))
        return out

    if cls == "circle":
        d.ellipse([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], fill=255)
    elif cls == "ring":
        d.ellipse([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], fill=255)
        d.ellipse([cx - bw / 4, cy - bh / 4, cx + bw / 4, cy + bh / 4], fill=0)
    elif cls == "square":
        d.polygon(place([(-1, -1), (1, -1), (1, 1), (-1, 1)]), fill=255)
    elif cls == "triangle":
        d.polygon(place([(0, -1), (1, 0.8), (-1, 0.8)]), fill=255)
    elif cls == "star":
        pts = []
        for k in range(10):
            r = 1.0 if k % 2 == 0 else 0.42
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((r * math.cos(a), r * math.sin(a)))
        d.polygon(place(pts), fill=255)
    else:  # cross
        t = 0.33
        d.polygon(place([(-t, -1), (t, -1), (t, -t), (1, -t), (1, t), (t, t), (t, 1), (-t, 1), (-t, t), (-1, t),
                         (-1, -t), (-t, -t)]), fill=255)
    return np.asarray(m) > 127


def make_image(rng, size):
    w, h = (int(size * rng.uniform(0.75, 1.25)) for _ in range(2))
    img = background(rng, w, h)
    masks, labels = [], []
    for _ in range(rng.integers(1, 7)):
        cls = CLASSES[rng.integers(len(CLASSES))]
        s = math.exp(rng.uniform(math.log(0.08), math.log(0.65))) * min(w, h)
        ar = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
        bw, bh = s * math.sqrt(ar), s / math.sqrt(ar)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        m = shape_mask(rng, cls, w, h, cx, cy, bw, bh)
        if m.sum() < 4:
            continue
        # a colour that stands out from the background under it
        under = img[m].mean(0)
        for _ in range(20):
            col = rng.uniform(0, 255, size=3)
            if np.abs(col - under).sum() > 120:
                break
        tex = rng.normal(0, rng.uniform(0, 14), size=(h, w, 1))
        img[m] = (col + tex[m]).reshape(-1, 3)
        # what was visible of earlier objects is now partly covered
        masks = [pm & ~m for pm in masks]
        masks.append(m)
        labels.append((cls, int(m.sum()), (cx - bw / 2 < 0 or cy - bh / 2 < 0 or cx + bw / 2 > w or cy + bh / 2 > h)))
    objects = []
    for m, (cls, full, truncated) in zip(masks, labels):
        vis = int(m.sum())
        if vis < 0.15 * full or vis < 4:
            continue
        ys, xs = np.nonzero(m)
        x1, y1, x2, y2 = xs.min(), ys.min(), xs.max(), ys.max()
        difficult = vis < 0.5 * full or min(x2 - x1, y2 - y1) + 1 < 8
        objects.append((cls, truncated, difficult, (x1 + 1, y1 + 1, x2 + 1, y2 + 1)))
    return np.clip(img, 0, 255).astype(np.uint8), objects


def annotation(name, w, h, objects):
    lines = ["<annotation>", "\t<folder>SYNTH</folder>", f"\t<filename>{name}.jpg</filename>",
             "\t<source><database>nibble synthetic shapes</database></source>",
             f"\t<size><width>{w}</width><height>{h}</height><depth>3</depth></size>", "\t<segmented>0</segmented>"]
    for cls, truncated, difficult, (x1, y1, x2, y2) in objects:
        lines += ["\t<object>", f"\t\t<name>{cls}</name>", "\t\t<pose>Unspecified</pose>",
                  f"\t\t<truncated>{int(truncated)}</truncated>", f"\t\t<difficult>{int(difficult)}</difficult>",
                  f"\t\t<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox>",
                  "\t</object>"]
    lines.append("</annotation>")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--train", type=int, default=3000)
    ap.add_argument("--test", type=int, default=600)
    ap.add_argument("--size", type=int, default=160, help="typical image side in pixels")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    root = os.path.join(a.out, "SYNTH")
    for d in ("JPEGImages", "Annotations", "ImageSets/Main"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    rng = np.random.default_rng(a.seed)
    counts = {c: 0 for c in CLASSES}
    n_difficult = 0
    for split, n, start in (("trainval", a.train, 0), ("test", a.test, a.train)):
        ids = []
        for i in range(start, start + n):
            name = f"{i:06d}"
            img, objects = make_image(rng, a.size)
            Image.fromarray(img).save(os.path.join(root, "JPEGImages", name + ".jpg"), quality=90)
            with open(os.path.join(root, "Annotations", name + ".xml"), "w") as f:
                f.write(annotation(name, img.shape[1], img.shape[0], objects))
            for o in objects:
                counts[o[0]] += 1
                n_difficult += o[2]
            ids.append(name)
        with open(os.path.join(root, "ImageSets/Main", split + ".txt"), "w") as f:
            f.write("\n".join(ids) + "\n")
    with open(os.path.join(a.out, "classes.txt"), "w") as f:
        f.write(",".join(CLASSES) + "\n")
    print(f"make_synth_voc: {a.train} + {a.test} images in {root}; objects per class {counts}, "
          f"{n_difficult} difficult")


if __name__ == "__main__":
    main()
