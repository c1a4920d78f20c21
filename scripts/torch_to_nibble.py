#!/usr/bin/python3
"""Write a PyTorch state_dict as a nibble weights file (/model/<name>, the layout model.init reads).

usage: torch_to_nibble.py model.pt out.h5      (a file saved with torch.save(model.state_dict(), ...))
As a library: save_state_dict(state_dict, path)."""
import sys

import h5py
import numpy as np
import torch


def save_state_dict(state_dict, path, config=None):
    with h5py.File(path, "w") as f:
        g = f.create_group("model")
        for name, t in state_dict.items():
            a = t.detach().cpu().numpy()
            g.create_dataset(name, data=a.astype(np.float32) if a.dtype.kind == "f" else a.astype(np.int64))
        f.attrs["format"] = "nibble checkpoint v1"
        if config:
            f.attrs["config"] = config


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    save_state_dict(torch.load(sys.argv[1], map_location="cpu"), sys.argv[2])


if __name__ == "__main__":
    main()
