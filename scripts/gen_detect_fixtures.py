#!/usr/bin/python3
"""Writes tests/fixtures/multibox.h5: SSD's multibox loss and its gradients computed by PyTorch, written the
way ssd.pytorch's MultiBoxLoss computes it (background loss of the negatives, sorted per image, the top
ratio x #positives kept; smooth-L1 summed over the positives' boxes; both divided by the batch's positives).
Each case /<name>/ holds pred [N,4+C,P] (box offsets, then class scores, along axis 1), target [N,P,5] (class, then
the 4 encoded offsets), the loss `y` and `grad_pred` for an upstream gradient `gy`, with neg_pos_ratio and
beta as attributes. References are
computed in float64 from the float32 inputs.

Usage: /usr/bin/python3 scripts/gen_detect_fixtures.py tests/fixtures/multibox.h5
"""
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F


def multibox(loc, conf, loc_t, conf_t, ratio, beta):
    N, P, C = conf.shape
    pos = conf_t > 0
    num_pos = pos.sum(1, keepdim=True)
    loss_l = F.smooth_l1_loss(loc[pos], loc_t[pos], reduction="sum", beta=beta)
    with torch.no_grad():
        mining = torch.logsumexp(conf, 2) - conf[:, :, 0]
        mining[pos] = -1.0  # below every negative's loss, which is > 0
        order = torch.argsort(-mining, dim=1, stable=True)
        rank = torch.argsort(order, dim=1)
        num_neg = torch.clamp((ratio * num_pos).floor().long(), max=P) - 0
        num_neg = torch.minimum(num_neg, (~pos).sum(1, keepdim=True))
        neg = rank < num_neg
    sel = pos | neg
    loss_c = F.cross_entropy(conf[sel], conf_t[sel], reduction="sum")
    return (loss_l + loss_c) / max(int(num_pos.sum()), 1)


def case(g, name, N, P, C, pos_frac, ratio, beta, seed, empty_image=None):
    rng = np.random.default_rng(seed)
    loc = rng.normal(0, 1, size=(N, P, 4)).astype(np.float32)
    conf = rng.normal(0, 2, size=(N, P, C)).astype(np.float32)
    loc_t = rng.normal(0, 1, size=(N, P, 4)).astype(np.float32)
    conf_t = np.where(rng.uniform(size=(N, P)) < pos_frac, rng.integers(1, C, size=(N, P)), 0).astype(np.int64)
    if empty_image is not None:
        conf_t[empty_image] = 0
    loc_t[conf_t == 0] = 0
    gy = np.float32(0.7)
    tl = torch.tensor(loc, dtype=torch.float64, requires_grad=True)
    tc = torch.tensor(conf, dtype=torch.float64, requires_grad=True)
    y = multibox(tl, tc, torch.tensor(loc_t, dtype=torch.float64), torch.tensor(conf_t), ratio, beta)
    (y * float(gy)).backward()
    grp = g.create_group(name)
    grp["pred"] = np.ascontiguousarray(np.concatenate([loc, conf], 2).transpose(0, 2, 1))
    grp["target"] = np.concatenate([conf_t[:, :, None].astype(np.float32), loc_t], 2)
    grp["y"] = np.float32(y.item())
    grp["gy"] = gy
    grp["grad_pred"] = np.ascontiguousarray(np.concatenate([tl.grad.numpy(), tc.grad.numpy()], 2).transpose(0, 2, 1)).astype(np.float32)
    grp.attrs["neg_pos_ratio"] = ratio
    grp.attrs["beta"] = beta
    return conf_t


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/multibox.h5"
    with h5py.File(out, "w") as f:
        # a typical batch: few positives, many candidate negatives, one image without objects
        case(f, "sparse", 3, 60, 5, 0.08, 3.0, 1.0, 1, empty_image=1)
        # so many positives that fewer negatives exist than 3x: all of them are taken
        case(f, "dense", 2, 24, 3, 0.6, 3.0, 1.0, 2)
        # another ratio and smooth-L1 beta
        case(f, "ratio2", 2, 40, 4, 0.1, 2.0, 0.5, 3)
        # no positive anywhere: the loss is 0, divided by 1
        case(f, "empty", 2, 10, 3, 0.0, 3.0, 1.0, 4)
    print("wrote", out)


if __name__ == "__main__":
    main()
