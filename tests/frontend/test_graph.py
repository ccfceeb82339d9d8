"""Capture with torch.fx, batch-norm folding, activation fusion and unsupported-op errors."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aquant_sim.errors import InputError, UnsupportedError
from aquant_sim.frontend.graph import Activation, NodeKind, capture, float_forward

from tiny_models import TinyMobile, TinyResNet, randomize_batchnorm

TOLERANCE = 1e-5
"""Float32 tolerance of folded against unfolded layers, relative to the output's largest value."""


@pytest.mark.parametrize("cls", [TinyResNet, TinyMobile])
def test_capture_matches_model(cls, images):
    """The captured graph computes the model's output to float32 tolerance."""
    torch.manual_seed(3)
    model = randomize_batchnorm(cls())
    graph = capture(model, (1, 8, 8))
    with torch.no_grad():
        expected = model(images)
        got = float_forward(graph, images)
    assert (got - expected).abs().max() <= TOLERANCE * expected.abs().max()


def test_each_folded_conv_matches_conv_then_batchnorm(tiny_resnet):
    """Per layer, the folded conv equals conv followed by batch norm (tolerance 1e-5 relative)."""
    graph = capture(tiny_resnet, (1, 8, 8))
    modules = dict(tiny_resnet.named_modules())
    folded = [n for n in graph.nodes if "+" in n.module]
    assert len(folded) == 6
    for node in folded:
        conv_name, bn_name = node.module.split("+")
        conv, bn = modules[conv_name], modules[bn_name]
        x = torch.randn(4, conv.in_channels, 8, 8, generator=torch.Generator().manual_seed(4))
        with torch.no_grad():
            expected = bn(conv(x))
            got = F.conv2d(x, node.weight, node.bias, node.stride, node.padding, node.dilation, node.groups)
        assert (got - expected).abs().max() <= TOLERANCE * expected.abs().max(), node.name


def test_graph_structure(tiny_resnet, tiny_mobile):
    """ReLU and ReLU6 fuse into their producers; pooling, flatten, x.mean and adds are captured."""
    graph = capture(tiny_resnet, (1, 8, 8))
    kinds = [n.kind for n in graph.nodes]
    assert kinds.count(NodeKind.CONV) == 6 and kinds.count(NodeKind.ADD) == 2
    assert graph["stem_0"].activation is Activation.RELU and graph["add_1"].activation is Activation.RELU
    assert graph.quant_source("pool") == "stem_0"
    assert [r.name for r in graph.weighted_readers("stem_0")] == ["block1_conv1"]
    mobile = capture(tiny_mobile, (1, 8, 8))
    assert mobile["dw_0"].activation is Activation.RELU6 and mobile["dw_0"].groups == 6
    assert [n.kind for n in mobile.nodes[-3:]] == [NodeKind.GAP, NodeKind.FLATTEN, NodeKind.LINEAR]


class ViewNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.fc = nn.Linear(2 * 8 * 8, 3)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        z = y.relu()  # a second ReLU on an already fused tensor stays a clamp
        return self.fc(z.view(z.size(0), -1))


def test_view_flatten_and_unfused_relu(images):
    """x.view(x.size(0), -1) is a flatten; a ReLU that cannot fuse becomes a clamp node."""
    model = ViewNet().eval()
    graph = capture(model, (1, 8, 8))
    assert [n.kind for n in graph.nodes] == [NodeKind.INPUT, NodeKind.CONV, NodeKind.RELU, NodeKind.FLATTEN, NodeKind.LINEAR]
    with torch.no_grad():
        assert torch.allclose(float_forward(graph, images), model(images), atol=1e-6)


class SigmoidNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.act = nn.Sigmoid()

    def forward(self, x):
        return self.act(self.conv(x))


class LonelyBatchNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(1)

    def forward(self, x):
        return self.bn(x)


class MulNet(nn.Module):
    def forward(self, x):
        return x * 2


@pytest.mark.parametrize("model, words", [
    (SigmoidNet(), ["Sigmoid", "'act'"]),
    (LonelyBatchNorm(), ["BatchNorm2d", "'bn'"]),
    (MulNet(), ["mul", "'mul'"]),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2, ceil_mode=True)), ["ceil_mode", "'_1'"]),
])
def test_unsupported_ops_are_named(model, words):
    """An unsupported op raises UnsupportedError naming the op and the graph node."""
    with pytest.raises(UnsupportedError) as error:
        capture(model, (1, 8, 8))
    for word in words:
        assert word in str(error.value)


def test_nan_weight_is_reported(tiny_resnet):
    """A NaN weight raises InputError naming the module and the graph node."""
    with torch.no_grad():
        tiny_resnet.block1.conv2.weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="block1.conv2.*block1_conv2.*NaN"):
        capture(tiny_resnet, (1, 8, 8))
