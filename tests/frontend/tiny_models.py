"""Tiny CNNs for the front-end tests (8x8 inputs, a few channels)."""

import torch
import torch.nn.functional as F
from torch import nn

torch.set_num_threads(2)


class TinyBlock(nn.Module):
    """A basic residual block: conv-bn-relu, conv-bn, optional strided shortcut, add, relu."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class TinyResNet(nn.Module):
    """Stem, max pool, two residual blocks (one strided), global pooling, linear."""

    def __init__(self, in_channels=1, classes=4):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 4, 3, 1, 1), nn.BatchNorm2d(4), nn.ReLU(inplace=True))
        self.pool = nn.MaxPool2d(3, 1, 1)
        self.block1 = TinyBlock(4, 4, 1)
        self.block2 = TinyBlock(4, 8, 2)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes))

    def forward(self, x):
        return self.head(self.block2(self.block1(self.pool(self.stem(x)))))


class TinyMobile(nn.Module):
    """Depthwise separable convs with ReLU6, an average pool, x.mean and a linear."""

    def __init__(self, in_channels=1, classes=4):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_channels, 6, 3, 2, 1, bias=False), nn.BatchNorm2d(6), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(6, 6, 3, 1, 1, groups=6, bias=False), nn.BatchNorm2d(6), nn.ReLU6())
        self.pw = nn.Sequential(nn.Conv2d(6, 6, 1, bias=False), nn.BatchNorm2d(6))
        self.avg = nn.AvgPool2d(2, 1, 1)
        self.fc = nn.Linear(6, classes)

    def forward(self, x):
        y = self.conv(x)
        y = y + self.pw(self.dw(y))
        return self.fc(self.avg(y).mean((2, 3)))


class TinySE(nn.Module):
    """Table activations and a squeeze-excitation product: conv-bn-SiLU, depthwise conv-bn-Hardswish,
    a gate (global pool, 1x1 conv, ReLU, 1x1 conv, Hardsigmoid) multiplied in, conv-bn, x * 0.5,
    then x.mean, GELU on the features and a linear."""

    def __init__(self, in_channels=1, classes=4):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_channels, 6, 3, 2, 1, bias=False), nn.BatchNorm2d(6), nn.SiLU())
        self.dw = nn.Sequential(nn.Conv2d(6, 6, 3, 1, 1, groups=6, bias=False), nn.BatchNorm2d(6), nn.Hardswish())
        self.reduce, self.expand = nn.Conv2d(6, 3, 1), nn.Conv2d(3, 6, 1)
        self.pw = nn.Sequential(nn.Conv2d(6, 6, 1, bias=False), nn.BatchNorm2d(6))
        self.fc = nn.Linear(6, classes)

    def forward(self, x):
        y = self.dw(self.conv(x))
        y = y * F.hardsigmoid(self.expand(F.relu(self.reduce(F.adaptive_avg_pool2d(y, 1)))))
        y = self.pw(y) * 0.5
        return self.fc(F.gelu(y.mean((2, 3))))


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every batch norm non-trivial statistics so that folding is really tested."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()
