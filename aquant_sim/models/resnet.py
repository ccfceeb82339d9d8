"""ResNets built from basic blocks: CIFAR-style ResNet-20 and ImageNet-style ResNet-18.

Only Conv2d, BatchNorm2d, ReLU, residual ``+``, MaxPool2d, AdaptiveAvgPool2d(1), flatten and
Linear are used, so that ``torch.fx.symbolic_trace`` captures every model whole and the
front-end can lower each node to an op of the integer program. A shortcut that changes shape is
a 1x1 convolution with batch norm (He et al.'s option B): option A's zero-padding slice has no
integer op.
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual add and ReLU after the add (He et al. 2016)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU()
        # None (not nn.Identity) when the shapes match: the traced graph then adds x itself.
        self.shortcut = (
            nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels))
            if stride != 1 or in_channels != out_channels
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.relu2(out + identity)


def _stage(in_channels: int, out_channels: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [BasicBlock(in_channels, out_channels, stride)]
    layers += [BasicBlock(out_channels, out_channels, 1) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNet(nn.Module):
    """Stem, stages of basic blocks (the first block of each stage after the first has stride 2),
    global average pooling and a linear classifier. Works for any input size the strides allow."""

    def __init__(self, stem: nn.Sequential, stem_channels: int, widths: tuple[int, ...], blocks: int, num_classes: int) -> None:
        super().__init__()
        self.stem = stem
        stages, channels = [], stem_channels
        for index, width in enumerate(widths):
            stages.append(_stage(channels, width, blocks, 1 if index == 0 else 2))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))


def resnet20(in_channels: int, num_classes: int, width: int = 16) -> ResNet:
    """CIFAR ResNet-20: a 3x3 stem, 3 stages of 3 basic blocks, widths ``width * (1, 2, 4)``."""
    stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
    return ResNet(stem, width, (width, 2 * width, 4 * width), 3, num_classes)


def resnet18(in_channels: int, num_classes: int, width: int = 64) -> ResNet:
    """ImageNet ResNet-18: a 7x7/2 stem and 3x3/2 max pool, 4 stages of 2 basic blocks, widths
    ``width * (1, 2, 4, 8)`` (64 in the original; smaller for quick tests)."""
    stem = nn.Sequential(
        nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1),
    )
    return ResNet(stem, width, (width, 2 * width, 4 * width, 8 * width), 2, num_classes)
