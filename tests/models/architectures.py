"""Architectures people deploy, rewritten without weights at a small width and depth for the
coverage test (``tests/models/test_coverage.py``, table in ``docs/models.md``). Each keeps the
building block of the public definition it names (the layers, their order and the operators),
scaled down: fewer stages and channels, 3x16x16 inputs, 10 classes."""

import torch
import torch.nn.functional as F
from torch import nn

from aquant_sim.models import build_model
from aquant_sim.models.mobilenetv2 import InvertedResidual


def _conv_bn(cin, cout, k=3, stride=1, groups=1, act=nn.ReLU):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, act()) if act else nn.Sequential(*layers)


class _Classifier(nn.Module):
    """``stem``, ``body``, global average pool, linear to 10 classes: the frame around each block."""

    def __init__(self, stem, body, channels):
        super().__init__()
        self.stem, self.body, self.fc = stem, body, nn.Linear(channels, 10)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.body(self.stem(x)), 1), 1))


class VGG(nn.Module):
    """torchvision ``vgg11_bn``'s features (conv-bn-relu, max pool between stages), average-pooled
    to 1x1 before the classifier."""

    def __init__(self):
        super().__init__()
        cfg = [8, "M", 16, "M", 32, 32, "M"]
        layers, cin = [], 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers.append(_conv_bn(cin, v))
                cin = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class Bottleneck(nn.Module):
    """torchvision ``resnet50``'s bottleneck: 1x1 reduce, 3x3 (stride here), 1x1 expand x4, add, ReLU."""

    def __init__(self, cin, width, stride):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(cin, width, 1), _conv_bn(width, width, 3, stride),
                                  _conv_bn(width, width * 4, 1, act=None))
        self.shortcut = nn.Identity() if stride == 1 and cin == width * 4 else _conv_bn(cin, width * 4, 1, stride, act=None)

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


class RegNetXBlock(nn.Module):
    """torchvision ``regnet_x_400mf``'s X block: 1x1, grouped 3x3 (group width 8), 1x1, add, ReLU."""

    def __init__(self, cin, cout, stride, group_width=8):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(cin, cout, 1), _conv_bn(cout, cout, 3, stride, groups=cout // group_width),
                                  _conv_bn(cout, cout, 1, act=None))
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else _conv_bn(cin, cout, 1, stride, act=None)

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


class SqueezeExcite(nn.Module):
    """Squeeze-excitation: global pool, 1x1 reduce, activation, 1x1 expand, gate, multiply."""

    def __init__(self, channels, reduced, act, gate):
        super().__init__()
        self.reduce, self.expand = nn.Conv2d(channels, reduced, 1), nn.Conv2d(reduced, channels, 1)
        self.act, self.gate = act(), gate()

    def forward(self, x):
        return x * self.gate(self.expand(self.act(self.reduce(F.adaptive_avg_pool2d(x, 1)))))


class MobileNetV3Block(nn.Module):
    """torchvision ``mobilenet_v3_small``'s inverted residual with SE: 1x1 expand (Hardswish),
    depthwise 3x3 (Hardswish), SE (ReLU, Hardsigmoid), 1x1 project."""

    def __init__(self, cin, expand, cout):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(cin, expand, 1, act=nn.Hardswish), _conv_bn(expand, expand, 3, groups=expand, act=nn.Hardswish),
                                  SqueezeExcite(expand, expand // 4, nn.ReLU, nn.Hardsigmoid), _conv_bn(expand, cout, 1, act=None))

    def forward(self, x):
        return x + self.body(x)


class MBConv(nn.Module):
    """torchvision ``efficientnet_b0``'s MBConv: 1x1 expand (SiLU), depthwise 3x3 (SiLU), SE (SiLU,
    sigmoid), 1x1 project, residual."""

    def __init__(self, channels, expand):
        super().__init__()
        hidden = channels * expand
        self.body = nn.Sequential(_conv_bn(channels, hidden, 1, act=nn.SiLU), _conv_bn(hidden, hidden, 3, groups=hidden, act=nn.SiLU),
                                  SqueezeExcite(hidden, channels // 4, nn.SiLU, nn.Sigmoid), _conv_bn(hidden, channels, 1, act=None))

    def forward(self, x):
        return x + self.body(x)


class DenseLayer(nn.Module):
    """torchvision ``densenet121``'s ``_DenseLayer``: the features so far concatenated, then
    BN-ReLU-1x1 (4 x growth), BN-ReLU-3x3 (growth); batch norms that follow no conv."""

    def __init__(self, cin, growth):
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, 4 * growth, 1, bias=False),
                                  nn.BatchNorm2d(4 * growth), nn.ReLU(), nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False))

    def forward(self, features):
        return self.body(torch.cat(features, 1))


class DenseBlock(nn.Module):
    """torchvision's ``_DenseBlock``: each layer reads every earlier feature map, and the block
    returns them all concatenated (a concat of ``layers + 1`` tensors)."""

    def __init__(self, cin, growth, layers):
        super().__init__()
        self.layers = nn.ModuleList(DenseLayer(cin + i * growth, growth) for i in range(layers))

    def forward(self, x):
        features = [x]
        for layer in self.layers:
            features.append(layer(features))
        return torch.cat(features, 1)


class DenseNet(nn.Module):
    """torchvision ``densenet121``: conv-BN-ReLU-max pool stem, dense blocks with a transition
    (BN-ReLU-1x1 conv-2x2 average pool) between them, a final BN and ReLU, average pool, linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(_conv_bn(3, 16, 3), nn.MaxPool2d(3, 2, 1))
        self.block1 = DenseBlock(16, 8, 2)
        self.transition = nn.Sequential(nn.BatchNorm2d(32), nn.ReLU(), nn.Conv2d(32, 16, 1, bias=False), nn.AvgPool2d(2, 2))
        self.block2 = DenseBlock(16, 8, 2)
        self.norm = nn.BatchNorm2d(32)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        y = self.block2(self.transition(self.block1(self.stem(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(F.relu(self.norm(y)), 1), 1))


class GhostModule(nn.Module):
    """GhostNet's (Han et al. 2020, huawei-noah's ``ghostnet.py``) ghost module: a 1x1 primary conv,
    a cheap depthwise 3x3 on its output, the two concatenated; ReLU on both, or on neither."""

    def __init__(self, cin, cout, relu=True):
        super().__init__()
        act = nn.ReLU if relu else None
        self.primary = _conv_bn(cin, cout // 2, 1, act=act)
        self.cheap = _conv_bn(cout // 2, cout // 2, 3, groups=cout // 2, act=act)

    def forward(self, x):
        y = self.primary(x)
        return torch.cat([y, self.cheap(y)], 1)


def hard_sigmoid(x):
    """``ghostnet.py``'s gate, spelled as there."""
    return F.relu6(x + 3.0) / 6.0


class GhostSqueezeExcite(nn.Module):
    """``ghostnet.py``'s squeeze-excitation: global pool, 1x1 reduce (with bias), ReLU, 1x1 expand,
    the input times the gate ``hard_sigmoid`` of the result."""

    def __init__(self, channels, reduced):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce, self.act, self.expand = nn.Conv2d(channels, reduced, 1), nn.ReLU(), nn.Conv2d(reduced, channels, 1)

    def forward(self, x):
        return x * hard_sigmoid(self.expand(self.act(self.reduce(self.pool(x)))))


class GhostBottleneck(nn.Module):
    """``ghostnet.py``'s stride-1 bottleneck with SE: ghost module (ReLU) to ``mid`` channels, SE,
    ghost module without ReLU back, identity shortcut."""

    def __init__(self, channels, mid):
        super().__init__()
        self.ghost1, self.se, self.ghost2 = GhostModule(channels, mid), GhostSqueezeExcite(mid, mid // 4), GhostModule(mid, channels, relu=False)

    def forward(self, x):
        return self.ghost2(self.se(self.ghost1(x))) + x


class GhostNet(_Classifier):
    def __init__(self):
        super().__init__(_conv_bn(3, 16, 3, 2), GhostBottleneck(16, 32), 16)


class ConvNeXtBlock(nn.Module):
    """torchvision ``convnext_tiny``'s block (``CNBlock``) as defined: depthwise 7x7, permute to
    channels-last, LayerNorm over channels, linear expand x4, GELU, linear back, permute back,
    the layer scale (a learned per-channel factor, 1e-6 at initialisation as there), residual.
    Stochastic depth is the identity in eval mode and left out."""

    def __init__(self, channels):
        super().__init__()
        self.dw = nn.Conv2d(channels, channels, 7, 1, 3, groups=channels)
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.pw1, self.pw2 = nn.Linear(channels, 4 * channels), nn.Linear(4 * channels, channels)
        self.layer_scale = nn.Parameter(torch.full((channels, 1, 1), 1e-6))

    def forward(self, x):
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.pw2(F.gelu(self.pw1(self.norm(y))))
        return x + self.layer_scale * y.permute(0, 3, 1, 2)


class ConvNeXtConvBlock(nn.Module):
    """The conv parts of torchvision ``convnext_tiny``'s block, with what has no integer op
    replaced: depthwise 7x7, BatchNorm2d in place of the LayerNorm (the ConvNeXt paper's
    ResNet starting point normalises with batch norm), permute to channels-last, linear expand
    x4, GELU (a lookup table on the channels-last tensor), linear back, permute back, residual;
    no layer scale."""

    def __init__(self, channels):
        super().__init__()
        self.dw = nn.Conv2d(channels, channels, 7, 1, 3, groups=channels)
        self.norm = nn.BatchNorm2d(channels)
        self.pw1, self.pw2 = nn.Linear(channels, 4 * channels), nn.Linear(4 * channels, channels)

    def forward(self, x):
        y = self.norm(self.dw(x)).permute(0, 2, 3, 1)
        y = self.pw2(F.gelu(self.pw1(y)))
        return x + y.permute(0, 3, 1, 2)


ARCHITECTURES = {
    "VGG (vgg11_bn)": VGG,
    "ResNet basic block (resnet18/20)": lambda: build_model("resnet20", 3, 10, width=8),
    "ResNet bottleneck (resnet50)": lambda: _Classifier(nn.Sequential(_conv_bn(3, 8, 3), nn.MaxPool2d(3, 2, 1)),
                                                        nn.Sequential(Bottleneck(8, 4, 1), Bottleneck(16, 8, 2)), 32),
    "MobileNetV2 (mobilenet_v2)": lambda: _Classifier(_conv_bn(3, 8, 3, 2, act=nn.ReLU6), nn.Sequential(
        InvertedResidual(8, 8, 1, 6), InvertedResidual(8, 16, 2, 6), InvertedResidual(16, 16, 1, 6)), 16),
    "RegNetX (regnet_x_400mf)": lambda: _Classifier(_conv_bn(3, 16, 3, 2),
                                                    nn.Sequential(RegNetXBlock(16, 16, 1), RegNetXBlock(16, 32, 2)), 32),
    "MobileNetV3 (mobilenet_v3_small)": lambda: _Classifier(_conv_bn(3, 16, 3, 2, act=nn.Hardswish), MobileNetV3Block(16, 48, 16), 16),
    "EfficientNet-B0": lambda: _Classifier(_conv_bn(3, 16, 3, 2, act=nn.SiLU), MBConv(16, 4), 16),
    "DenseNet (densenet121)": DenseNet,
    "GhostNet": GhostNet,
    "ConvNeXt (convnext_tiny)": lambda: _Classifier(nn.Conv2d(3, 16, 4, 4), ConvNeXtBlock(16), 16),
    "ConvNeXt conv parts (convnext_tiny, BatchNorm2d for LayerNorm)":
        lambda: _Classifier(nn.Conv2d(3, 16, 4, 4), ConvNeXtConvBlock(16), 16),
}
"""Name in ``docs/models.md`` -> a constructor of the scaled-down model."""
