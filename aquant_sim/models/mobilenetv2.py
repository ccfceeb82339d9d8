"""A MobileNetV2-style network (Sandler et al. 2018) sized for small images (28x28, 32x32).

Inverted residual blocks: a 1x1 expansion conv, a 3x3 depthwise conv, both with batch norm and
ReLU6, and a linear 1x1 projection; a residual add when stride is 1 and widths match. The CIFAR
adaptation (as in common CIFAR ports) uses a stride-1 stem and a stride-1 second stage, so a
32x32 input leaves the last stage at 4x4 instead of 1x1. Only Conv2d, BatchNorm2d, ReLU6,
``+``, AdaptiveAvgPool2d(1), flatten and Linear are used (traceable by ``torch.fx``).
"""

from __future__ import annotations

import torch
from torch import nn

# (expansion t, output channels c, blocks n, first stride s) of the paper's Table 2, with the
# second stage's stride set to 1 for small inputs.
_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a scaled width to a multiple of ``divisor``, never more than 10% below ``value``
    (the rule of the reference implementation, so that width multipliers give its widths)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int, groups: int, activation: bool) -> list[nn.Module]:
    layers = [
        nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    return layers + [nn.ReLU6()] if activation else layers


class InvertedResidual(nn.Module):
    """Expand (1x1, ReLU6), depthwise 3x3 (ReLU6), project (1x1, linear), add when shapes match."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        layers = _conv_bn(in_channels, hidden, 1, 1, 1, True) if expansion != 1 else []
        layers += _conv_bn(hidden, hidden, 3, stride, hidden, True)
        layers += _conv_bn(hidden, out_channels, 1, 1, 1, False)
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out + x if self.residual else out


class MobileNetV2(nn.Module):
    """MobileNetV2 with width multiplier ``width_mult``: every width is scaled and rounded by
    :func:`make_divisible`; the last 1x1 conv keeps 1280 channels unless ``width_mult > 1``."""

    def __init__(self, in_channels: int, num_classes: int, width_mult: float = 1.0) -> None:
        super().__init__()
        channels = make_divisible(32 * width_mult)
        last = make_divisible(1280 * max(1.0, width_mult))
        layers = _conv_bn(in_channels, channels, 3, 1, 1, True)
        for expansion, width, blocks, stride in _SETTINGS:
            out_channels = make_divisible(width * width_mult)
            for index in range(blocks):
                layers.append(InvertedResidual(channels, out_channels, stride if index == 0 else 1, expansion))
                channels = out_channels
        layers += _conv_bn(channels, last, 1, 1, 1, True)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))
