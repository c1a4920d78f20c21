#!/usr/bin/python3
"""Write a PyTorch state_dict as a nibble weights file (/model/<name>, the layout model.init reads).

usage: torch_to_nibble.py model.pt out.h5      (a file saved with torch.save(model.state_dict(), ...))
       torch_to_nibble.py --torchvision ARCH [--pretrained] out.h5
                                               (torchvision.models.ARCH, e.g. resnet18, shufflenet_v2_x1_0;
                                               --pretrained downloads torchvision's ImageNet weights)
Then: bin/train experiments/r18_imagenet.cfg model.init=out.h5
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
    args = sys.argv[1:]
    if len(args) >= 3 and args[0] == "--torchvision":
        import torchvision
        pretrained = "--pretrained" in args
        m = getattr(torchvision.models, args[1])(weights="DEFAULT" if pretrained else None)
        save_state_dict(m.state_dict(), args[-1])
        return
    if len(args) != 2:
        sys.exit(__doc__)
    save_state_dict(torch.load(args[0], map_location="cpu"), args[1])


if __name__ == "__main__":
    main()
