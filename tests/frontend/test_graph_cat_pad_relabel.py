"""Capture of concat, batch norms that follow no conv, per-side zero padding and relabels
(permute, view, reshape, squeeze, contiguous; a lookup table reads a channels-last tensor): each
spelling, what it captures to, the float graph against the model, the refusals, and one model of
all of them lowered bit-exactly."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aquant_sim.errors import UnsupportedError
from aquant_sim.frontend.graph import Activation, NodeKind, capture, float_forward

from tiny_models import randomize_batchnorm

TOLERANCE = 1e-5
"""Float32 tolerance of the captured graph against the model, relative to the output's largest value."""


def _same_output(model, images, shape=(1, 8, 8)):
    graph = capture(model, shape)
    with torch.no_grad():
        expected, got = model(images), float_forward(graph, images)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() <= TOLERANCE * expected.abs().max()
    return graph


def _kinds(graph):
    return [node.kind for node in graph.nodes]


class Cat(nn.Module):
    """Two convs of the input joined by one concat spelling."""

    def __init__(self, join):
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(1, 3, 3, padding=1), nn.Conv2d(1, 1, 1)
        self.join = join

    def forward(self, x):
        return self.join(self.a(x), self.b(x), self.c(x))


@pytest.mark.parametrize("join, inputs", [
    (lambda a, b, c: torch.cat([a, b], 1), 2),
    (lambda a, b, c: torch.cat((a, b), dim=1), 2),
    (lambda a, b, c: torch.cat([a, b], -3), 2),
    (lambda a, b, c: torch.concat([a, b, c], dim=1), 3),
    (lambda a, b, c: torch.concatenate([b, a, c], axis=1), 3),
    (lambda a, b, c: torch.cat([a], 1) + a, 0),
], ids=["cat-list", "cat-tuple-dim", "cat-minus3", "concat-three", "concatenate-axis", "cat-one"])
def test_concat_spellings(join, inputs, images):
    """torch.cat / concat / concatenate along channels is one concat node over its inputs (a
    concat of one tensor is that tensor) and computes the model's output."""
    torch.manual_seed(11)
    graph = _same_output(Cat(join).eval(), images)
    concats = [node for node in graph.nodes if node.kind is NodeKind.CONCAT]
    assert [len(node.inputs) for node in concats] == ([inputs] if inputs else [])


class LonelyBatchNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(1)

    def forward(self, x):
        return self.bn(x)


class PreActivation(nn.Module):
    """DenseNet's and pre-activation ResNet's order: BN-ReLU before the conv; a BN of a conv
    output that the residual add reads too; F.batch_norm and ReLU6 after max pooling (the form of
    timm's fused BatchNormAct2d)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn1, self.conv1 = nn.BatchNorm2d(4), nn.Conv2d(4, 4, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        z = self.conv1(F.relu(self.bn1(y))) + y
        bn = self.bn2
        return F.relu6(F.batch_norm(F.max_pool2d(z, 2), bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.1, bn.eps))


def test_lonely_batchnorm_is_a_depthwise_affine_conv(images):
    """A batch norm that follows no conv is a depthwise 1x1 conv node with weight g / sqrt(v + eps)
    and bias beta - mu g / sqrt(v + eps), named after the module."""
    torch.manual_seed(12)
    model = randomize_batchnorm(LonelyBatchNorm())
    graph = _same_output(model, images)
    (node,) = graph.nodes[1:]
    bn = model.bn
    factor = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    assert node.kind is NodeKind.CONV and node.groups == 1 == node.weight.shape[0] and node.module == "bn"
    assert torch.allclose(node.weight.flatten(), factor.detach()) and node.kernel_size == (1, 1)
    assert torch.allclose(node.bias, (bn.bias - bn.running_mean * factor).detach())


def test_batchnorms_that_follow_no_single_reader_conv_are_affine_convs(images):
    """BN after a conv whose output the add also reads, and BN after max pooling: each a
    depthwise 1x1 conv node with the activation after it fused; the conv itself keeps its weights."""
    torch.manual_seed(13)
    model = randomize_batchnorm(PreActivation())
    graph = _same_output(model, images)
    affine = [node for node in graph.nodes if node.kind is NodeKind.CONV and node.groups == 4]
    assert [(node.module, node.activation) for node in affine] == [("bn1", Activation.RELU), ("batch_norm", Activation.RELU6)]
    assert graph["conv"].module == "conv"


class Padded(nn.Module):
    """One per-side zero padding spelling before a conv."""

    def __init__(self, pad, conv):
        super().__init__()
        self.pad, self.conv = pad, conv

    def forward(self, x):
        return self.conv(self.pad(x))


@pytest.mark.parametrize("pad, conv, padding, padding_end", [
    (nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(1, 2, 3, 2), (0, 0), (1, 1)),  # TF "SAME" at stride 2
    (lambda x: F.pad(x, (1, 2, 0, 1)), nn.Conv2d(1, 2, 3), (0, 1), (1, 2)),
    (nn.ConstantPad2d((2, 0, 1, 0), 0.0), nn.Conv2d(1, 2, 3, padding=1), (2, 3), (1, 1)),
    (nn.Identity(), nn.Conv2d(1, 2, 4, padding="same"), (1, 1), (2, 2)),
    (nn.Identity(), nn.Conv2d(1, 2, (2, 3), padding="same", dilation=(1, 2)), (0, 2), (1, 2)),
    (nn.ZeroPad2d((1, 0, 1, 0)), nn.Conv2d(1, 2, 2, padding="same"), (1, 1), (1, 1)),
], ids=["tf-same-stride2", "F.pad", "constant-pad-plus-padding", "same-even", "same-dilated", "pad-plus-same"])
def test_per_side_padding(pad, conv, padding, padding_end, images):
    """Zero padding before a conv and torch's padding='same' (its larger half after) are the conv's
    padding (top, left) and padding_end (bottom, right)."""
    torch.manual_seed(14)
    graph = _same_output(Padded(pad, conv).eval(), images)
    (node,) = graph.nodes[1:]
    assert (node.padding, node.padding_end or node.padding) == (padding, padding_end)


class ChannelsLast(nn.Module):
    """ConvNeXt's pointwise part: permute to channels-last, linear layers over the channels with an
    activation, permute back, residual; each permute in one spelling."""

    def __init__(self, to_last, to_first, functional=False):
        super().__init__()
        self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.pw1, self.pw2 = nn.Linear(4, 8), nn.Linear(8, 4)
        self.to_last, self.to_first, self.functional = to_last, to_first, functional

    def forward(self, x):
        y = self.to_last(self.dw(x))
        y = F.relu(self.pw1(y))
        y = F.linear(y, self.pw2.weight, self.pw2.bias) if self.functional else self.pw2(F.dropout(y, 0.1, self.training))
        return x + self.to_first(y).contiguous()


class Stem(nn.Module):
    def __init__(self, body):
        super().__init__()
        self.stem, self.body = nn.Conv2d(1, 4, 1), body

    def forward(self, x):
        return self.body(self.stem(x))


@pytest.mark.parametrize("to_last, to_first, functional", [
    (lambda y: y.permute(0, 2, 3, 1), lambda y: y.permute(0, 3, 1, 2), False),
    (lambda y: torch.permute(y, (0, 2, 3, 1)), lambda y: y.permute((0, -1, 1, 2)), True),
    (lambda y: y.permute(dims=(0, 2, 3, 1)).permute(0, 1, 2, 3), lambda y: torch.permute(y, dims=[0, 3, 1, 2]), False),
], ids=["method", "function-negative", "keywords-identity"])
def test_channels_last_relabel(to_last, to_first, functional, images):
    """permute to channels-last and back around linear layers: no permute node, the linears are
    1x1 convs, the activation fused, and the model's output."""
    torch.manual_seed(15)
    graph = _same_output(Stem(ChannelsLast(to_last, to_first, functional)).eval(), images)
    assert _kinds(graph) == [NodeKind.INPUT] + [NodeKind.CONV] * 4 + [NodeKind.ADD]
    assert graph.nodes[3].activation is Activation.RELU and graph.nodes[3].kernel_size == (1, 1)


class ChannelsLastTable(nn.Module):
    """ConvNeXt's pointwise part with its activation (GELU there) between the linear layers."""

    def __init__(self, act):
        super().__init__()
        self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.pw1, self.pw2 = nn.Linear(4, 8), nn.Linear(8, 4)
        self.act = act

    def forward(self, x):
        y = self.act(self.pw1(self.dw(x).permute(0, 2, 3, 1)))
        return x + self.pw2(y).permute(0, 3, 1, 2)


@pytest.mark.parametrize("act", [nn.GELU(), F.silu, lambda y: y * 0.5], ids=["GELU", "F.silu", "constant-multiple"])
def test_table_reads_a_channels_last_tensor(act, images):
    """A table activation (or constant multiple) of a channels-last tensor is one LUT node on the
    (C, H, W) tensor, between the linear layers' 1x1 convs, and the graph computes the model's output."""
    torch.manual_seed(17)
    graph = _same_output(Stem(ChannelsLastTable(act)).eval(), images)
    assert _kinds(graph) == [NodeKind.INPUT] + [NodeKind.CONV] * 3 + [NodeKind.LUT, NodeKind.CONV, NodeKind.ADD]
    assert graph.nodes[4].inputs == (graph.nodes[3].name,) and graph.nodes[4].shape == (8, 8, 8)


class Views(nn.Module):
    """Views that keep the shape, and function spellings of the flatten."""

    def __init__(self, flatten):
        super().__init__()
        self.conv, self.fc, self.flatten = nn.Conv2d(1, 2, 3), nn.Linear(2, 3), flatten

    def forward(self, x):
        y = self.conv(x).view(x.size(0), 2, 6, 6)
        y = y.reshape(-1, 2, 6, 6).reshape((y.shape[0], 2, 6, 6)).contiguous()
        return self.fc(self.flatten(F.adaptive_avg_pool2d(y, 1)))


@pytest.mark.parametrize("flatten", [lambda x: torch.reshape(x, (x.shape[0], -1)), lambda x: torch.squeeze(x),
                                     lambda x: x.view((-1, 2)), lambda x: torch.flatten(x, start_dim=1)],
                         ids=["torch.reshape", "torch.squeeze", "view-tuple", "flatten-keyword"])
def test_relabelling_views(flatten, images):
    """Views and reshapes to the same (C, H, W) are no node; each flatten spelling is one flatten."""
    torch.manual_seed(16)
    graph = _same_output(Views(flatten).eval(), images)
    assert _kinds(graph) == [NodeKind.INPUT, NodeKind.CONV, NodeKind.GAP, NodeKind.FLATTEN, NodeKind.LINEAR]


class Body(nn.Module):
    def __init__(self, forward):
        super().__init__()
        self.conv, self.norm, self.pool = nn.Conv2d(1, 4, 3, padding=1), nn.LayerNorm(4), nn.MaxPool2d(2)
        self.fn = forward

    def forward(self, x):
        return self.fn(self, self.conv(x))


@pytest.mark.parametrize("forward, words", [
    (lambda m, y: torch.cat([y, y], 2), ["cat along dim 2", "only along channels"]),
    (lambda m, y: y.permute(0, 3, 2, 1), ["permute(0, 3, 2, 1)", "test_graph_cat_pad_relabel.py"]),
    (lambda m, y: m.norm(y.permute(0, 2, 3, 1)), ["LayerNorm (module 'norm')", "square root", "no op"]),
    (lambda m, y: m.norm(y), ["LayerNorm (module 'norm')", "per-position division"]),
    (lambda m, y: F.layer_norm(y, (4, 8, 8)), ["F.layer_norm", "square root"]),
    (lambda m, y: m.pool(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2), ["MaxPool2d of a channels-last tensor", "permute"]),
    (lambda m, y: y.permute(0, 2, 3, 1).flatten(1), ["flatten of a channels-last tensor"]),
    (lambda m, y: y.permute(0, 2, 3, 1).permute(0, 2, 1, 3), ["permute(0, 2, 1, 3) of a channels-last tensor"]),
    (lambda m, y: y.permute(0, 2, 3, 1), ["channels-last (permuted) network output"]),
    (lambda m, y: y + y.permute(0, 2, 3, 1), ["add of a channels-last tensor and a (C, H, W) one"]),
    (lambda m, y: F.pad(y.permute(0, 2, 3, 1), (1, 1, 1, 1)).permute(0, 3, 1, 2), ["pad of a channels-last tensor"]),
    (lambda m, y: y.view(y.size(0), 8, 4, 8), ["view of a tensor (4, 8, 8) to (8, 4, 8)"]),
], ids=["cat-dim2", "permute-other", "layernorm-channels-last", "layernorm", "F.layer_norm", "pool-channels-last",
        "flatten-channels-last", "permute-channels-last", "output-channels-last", "add-mixed", "pad-channels-last", "view-other"])
def test_what_has_no_exact_form_is_refused(forward, words):
    """An UnsupportedError naming the op (and why), the module or the user's source line."""
    with pytest.raises(UnsupportedError) as error:
        capture(Body(forward).eval(), (1, 8, 8))
    message = str(error.value)
    assert all(word in message for word in words), message


class Everything(nn.Module):
    """A dense block with pre-activation batch norms, TF-"SAME" padding at stride 2, a channels-last
    pointwise part and relabelling views: every operator of this file in one network."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(1, 8, 3, 2), nn.BatchNorm2d(8), nn.ReLU())
        self.bn1, self.conv1 = nn.BatchNorm2d(8), nn.Conv2d(8, 4, 1)
        self.bn2, self.conv2 = nn.BatchNorm2d(12), nn.Conv2d(12, 4, 2, padding="same")
        self.pw1, self.pw2 = nn.Linear(16, 8), nn.Linear(8, 16)
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        x = self.stem(x)
        a = self.conv1(F.relu(self.bn1(x)))
        b = self.conv2(F.relu(self.bn2(torch.cat([x, a], 1))))
        y = torch.cat([x, a, b], dim=1)
        z = self.pw2(F.relu6(self.pw1(y.permute(0, 2, 3, 1)))).permute(0, 3, 1, 2)
        y = (y + z).view(y.size(0), 16, 4, 4)
        return self.fc(torch.squeeze(F.adaptive_avg_pool2d(y, 1)))


@pytest.mark.parametrize("method, bits", [("rtn", 8), ("aquant", 4)])
def test_every_operator_lowers_bit_exactly(method, bits, images):
    """RTN W8A8 and a short AQuant W4A4 (learned weight rounding, borders and scales, the chained
    concat's raw values in the reconstruction) of Everything: the fake-quant model's exact forward
    and the integer program agree on every tensor, and numba equals the reference."""
    from aquant_sim.evaluation import evaluate
    from aquant_sim.frontend.methods import Method
    from aquant_sim.frontend.pipeline import CalibrationConfig, calibrate
    from aquant_sim.frontend.qmodel import QuantConfig
    from aquant_sim.frontend.reconstruction import ReconstructionConfig
    from aquant_sim.program import OpKind
    from aquant_sim.simulator import Backend, Simulator

    torch.manual_seed(17)
    model = randomize_batchnorm(Everything())
    _same_output(model, images)
    config = CalibrationConfig(Method(method), QuantConfig(bits, bits), ReconstructionConfig(iters=0 if method == "rtn" else 8))
    calibrated = calibrate(model, images, config, progress=False)
    program = calibrated.program
    kinds = [op.kind for op in program.ops]
    assert kinds.count(OpKind.CONCAT) == 3 and any(op.kind is OpKind.CONV2D and op.padding != op.padding_end for op in program.ops)
    fast, slow = (Simulator(program, b).run(images.numpy(), keep_tensors=True).tensors for b in (Backend.NUMBA, Backend.REFERENCE))
    assert all(np.array_equal(fast[name], slow[name]) for name in slow)
    labels = np.zeros(len(images), dtype=np.int64)
    result = evaluate(calibrated, images.numpy(), labels, level_samples=16)
    assert result.agreement == 1.0
    assert all(share == 0 for tensor in result.level_diff.values() for share in tensor.values()), result.level_diff
