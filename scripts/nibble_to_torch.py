#!/usr/bin/python3
"""Read a nibble checkpoint's /model group back into a PyTorch state_dict (torch.save'd to out.pt).

usage: nibble_to_torch.py last.h5 out.pt"""
import sys

import h5py
import torch


def load_state_dict(path):
    with h5py.File(path, "r") as f:
        return {name: torch.from_numpy(d[()]) if d.shape else torch.tensor(d[()]) for name, d in f["model"].items()}


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    torch.save(load_state_dict(sys.argv[1]), sys.argv[2])


if __name__ == "__main__":
    main()
