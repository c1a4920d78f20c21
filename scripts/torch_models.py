"""PyTorch definitions of nibble's architectures, with the same state_dict names and layouts, so weights move
both ways (scripts/torch_to_nibble.py, scripts/nibble_to_torch.py) and the fixtures can check one against
the other."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class SmallCNN(nn.Module):
    """models/smallcnn.c: conv3x3-BN-ReLU-maxpool2 twice, then a linear classifier."""

    def __init__(self, num_classes=10, in_channels=1, input_size=28, width=1.0):
        super().__init__()
        c1, c2 = int(32 * width + 0.5), int(64 * width + 0.5)
        self.conv1 = nn.Conv2d(in_channels, c1, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c2)
        self.fc = nn.Linear(c2 * (input_size // 4) ** 2, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        return self.fc(torch.flatten(x, 1))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        self.preact = h + (self.downsample(x) if self.downsample is not None else x)  # the join's ReLU input
        return F.relu(self.preact)


class ResNetCifar(nn.Module):
    """models/resnet_cifar.c: depth 6n+2, stages of 16/32/64 channels, option-B shortcuts."""

    def __init__(self, depth=20, num_classes=10, in_channels=1, width=1.0):
        super().__init__()
        n = (depth - 2) // 6
        widths = [int((16 << s) * width + 0.5) for s in range(3)]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        cin = widths[0]
        for s in range(3):
            blocks = []
            for b in range(n):
                blocks.append(BasicBlock(cin, widths[s], 2 if b == 0 and s > 0 else 1))
                cin = widths[s]
            setattr(self, "layer%d" % (s + 1), nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def build(arch, **kw):
    if arch == "smallcnn":
        return SmallCNN(**kw)
    if arch.startswith("resnet"):
        kw.pop("input_size", None)
        return ResNetCifar(depth=int(arch[6:]), **kw)
    raise ValueError("unknown architecture " + arch)
