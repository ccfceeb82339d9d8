"""Capture with torch.fx, batch-norm folding, activation fusion and unsupported-op errors."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aquant_sim.errors import InputError, UnsupportedError
from aquant_sim.frontend.graph import Activation, NodeKind, capture, float_forward
from aquant_sim.lut import Unary, UnaryFunction

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


@pytest.mark.parametrize("model, words", [
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


class BatchNormAct2d(nn.BatchNorm2d):
    """timm's BatchNormAct2d form (timm/layers/norm_act.py): a BatchNorm2d subclass whose forward
    asserts on x.ndim, calls F.batch_norm with its buffers, then dropout and the activation."""

    def __init__(self, channels):
        super().__init__(channels)
        self.drop = nn.Identity()
        self.act = nn.ReLU6()

    def forward(self, x):
        torch._assert(x.ndim == 4, "expected a 4-D input")
        x = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, self.training, 0.1, self.eps)
        return self.act(self.drop(x))


class FunctionalNet(nn.Module):
    """The spellings users write: F.conv2d with a Parameter, ZeroPad2d and F.pad, padding='same',
    F.max_pool2d, F.avg_pool2d, hardtanh, clamp, Dropout2d, F.dropout, the fused BN+act module,
    x.view(-1, N) and F.linear with Parameters."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 1, 3, 3) * 0.3)
        self.pad = nn.ZeroPad2d(1)
        self.conv2 = nn.Conv2d(4, 6, 3, padding="same")
        self.bnact = BatchNormAct2d(6)
        self.conv3 = nn.Conv2d(6, 6, 3)
        self.hardtanh = nn.Hardtanh(0.0, 6.0)
        self.drop = nn.Dropout2d(0.2)
        self.fc_weight = nn.Parameter(torch.randn(3, 6) * 0.3)
        self.fc_bias = nn.Parameter(torch.randn(3) * 0.1)

    def forward(self, x):
        x = F.hardtanh(F.conv2d(self.pad(x), self.weight), 0.0, 6.0)
        x = F.max_pool2d(x, 2, 1, 1)
        x = self.bnact(self.conv2(x))
        x = self.hardtanh(self.conv3(F.pad(x, (1, 1, 1, 1))))
        x = F.avg_pool2d(self.drop(x), 2)
        x = F.dropout(torch.clamp(x, 0, 6), 0.5, self.training)
        return F.linear(F.adaptive_avg_pool2d(x, 1).view(-1, 6), self.fc_weight, self.fc_bias)


@pytest.fixture
def functional_net():
    torch.manual_seed(7)
    return randomize_batchnorm(FunctionalNet()).eval()


def test_functional_spellings_are_captured(functional_net, images):
    """Every spelling of FunctionalNet captures to the program's ops (the padding absorbed by the
    convs, the BN+act module folded) and computes the model's output to float32 tolerance."""
    graph = capture(functional_net, (1, 8, 8))
    kinds = [node.kind for node in graph.nodes]
    assert kinds.count(NodeKind.CONV) == 3 and kinds.count(NodeKind.LINEAR) == 1
    convs = [node for node in graph.nodes if node.kind is NodeKind.CONV]
    assert [c.padding for c in convs] == [(1, 1), (1, 1), (1, 1)]
    assert convs[1].module == "conv2+bnact" and convs[1].activation is Activation.RELU6
    with torch.no_grad():
        expected = functional_net(images)
        got = float_forward(graph, images)
    assert (got - expected).abs().max() <= TOLERANCE * expected.abs().max()


def test_functional_spellings_lower_bit_exactly(functional_net, images):
    """RTN W8A8 of FunctionalNet lowers, and numba equals the reference on every tensor."""
    import numpy as np

    from aquant_sim.frontend.methods import Method
    from aquant_sim.frontend.pipeline import CalibrationConfig, calibrate
    from aquant_sim.frontend.qmodel import QuantConfig
    from aquant_sim.frontend.reconstruction import ReconstructionConfig
    from aquant_sim.simulator import Backend, Simulator

    config = CalibrationConfig(Method.RTN, QuantConfig(8, 8), ReconstructionConfig(iters=0))
    program = calibrate(functional_net, images, config, progress=False).program
    fast, slow = (Simulator(program, b).run(images.numpy(), keep_tensors=True).tensors for b in (Backend.NUMBA, Backend.REFERENCE))
    assert all(np.array_equal(fast[name], slow[name]) for name in slow)


class Head(nn.Module):
    """conv, global pooling, one flatten spelling, linear."""

    def __init__(self, flatten):
        super().__init__()
        self.conv, self.fc, self.flatten = nn.Conv2d(1, 2, 3), nn.Linear(2, 3), flatten

    def forward(self, x):
        return self.fc(self.flatten(F.adaptive_avg_pool2d(self.conv(x), 1)))


@pytest.mark.parametrize("flatten", [lambda x: x.reshape(x.shape[0], -1), lambda x: x.view(-1, 2), lambda x: x.squeeze(),
                                     lambda x: x.squeeze((2, 3)), lambda x: x.flatten(1), lambda x: x.view(x.size(0), -1)],
                         ids=["reshape-shape0", "view-minus1", "squeeze", "squeeze-23", "flatten1", "view-size0"])
def test_flatten_spellings(flatten, images):
    """Each flatten spelling of a pooled (N, C, 1, 1) tensor is one flatten node and computes the
    model's output."""
    torch.manual_seed(8)
    model = Head(flatten).eval()
    graph = capture(model, (1, 8, 8))
    assert [node.kind for node in graph.nodes].count(NodeKind.FLATTEN) == 1
    with torch.no_grad():
        assert torch.allclose(float_forward(graph, images), model(images), atol=1e-6)


class Activated(nn.Module):
    """A conv, then one spelling of an activation (a module, or a function of the conv output)."""

    def __init__(self, act):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.act = act

    def forward(self, x):
        return self.act(self.conv(x))


SPELLINGS = [
    (nn.SiLU(), UnaryFunction.SILU, ()), (F.silu, UnaryFunction.SILU, ()),
    (nn.Hardswish(), UnaryFunction.HARDSWISH, ()), (F.hardswish, UnaryFunction.HARDSWISH, ()),
    (nn.Hardsigmoid(), UnaryFunction.HARDSIGMOID, ()), (F.hardsigmoid, UnaryFunction.HARDSIGMOID, ()),
    (nn.Sigmoid(), UnaryFunction.SIGMOID, ()), (torch.sigmoid, UnaryFunction.SIGMOID, ()),
    (F.sigmoid, UnaryFunction.SIGMOID, ()), (lambda x: x.sigmoid(), UnaryFunction.SIGMOID, ()),
    (nn.Tanh(), UnaryFunction.TANH, ()), (torch.tanh, UnaryFunction.TANH, ()), (lambda x: x.tanh(), UnaryFunction.TANH, ()),
    (nn.GELU(), UnaryFunction.GELU, ()), (F.gelu, UnaryFunction.GELU, ()),
    (nn.GELU("tanh"), UnaryFunction.GELU_TANH, ()), (lambda x: F.gelu(x, approximate="tanh"), UnaryFunction.GELU_TANH, ()),
    (nn.LeakyReLU(0.2), UnaryFunction.LEAKY_RELU, (0.2,)), (lambda x: F.leaky_relu(x, 0.3), UnaryFunction.LEAKY_RELU, (0.3,)),
    (F.leaky_relu, UnaryFunction.LEAKY_RELU, (0.01,)),
    (nn.ELU(0.5), UnaryFunction.ELU, (0.5,)), (lambda x: F.elu(x, alpha=0.7), UnaryFunction.ELU, (0.7,)),
    (nn.Hardtanh(-1, 1), UnaryFunction.HARDTANH, (-1.0, 1.0)), (lambda x: F.hardtanh(x, -2.0, 0.5), UnaryFunction.HARDTANH, (-2.0, 0.5)),
    (lambda x: x * 0.5, UnaryFunction.SCALE, (0.5,)), (lambda x: 3 * x, UnaryFunction.SCALE, (3.0,)),
    (lambda x: x / 4, UnaryFunction.SCALE, (0.25,)), (lambda x: x.mul(-2.0), UnaryFunction.SCALE, (-2.0,)),
    (lambda x: torch.mul(x, 1.5), UnaryFunction.SCALE, (1.5,)), (lambda x: x.div(8), UnaryFunction.SCALE, (0.125,)),
    (lambda x: x + 3.0, UnaryFunction.OFFSET, (3.0,)), (lambda x: 2 + x, UnaryFunction.OFFSET, (2.0,)),
    (lambda x: x - 0.5, UnaryFunction.OFFSET, (-0.5,)), (lambda x: torch.add(x, 1.5), UnaryFunction.OFFSET, (1.5,)),
    (lambda x: x.add(-1.0), UnaryFunction.OFFSET, (-1.0,)),
]


@pytest.mark.parametrize("act, function, parameters", SPELLINGS)
def test_activation_spellings_become_tables(act, function, parameters, images):
    """Every module, function and method spelling of a table activation captures to one LUT
    node of its function and parameters, whose float form computes the model's output."""
    model = Activated(act).eval()
    graph = capture(model, (1, 8, 8))
    (node,) = [n for n in graph.nodes if n.kind is NodeKind.LUT]
    assert node.unary == Unary(function, parameters) and node.inputs == ("conv",)
    with torch.no_grad():
        assert torch.allclose(float_forward(graph, images), model(images), rtol=1e-6, atol=1e-7)


def test_unfusable_relu6_is_a_table():
    """A ReLU6 whose input has another reader cannot be the requantizer's clamp: it is the table
    of hardtanh(0, 6); a fusable one still fuses."""
    class TwoReaders(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)

        def forward(self, x):
            y = self.conv(x)
            return F.relu6(y) + y

    graph = capture(TwoReaders(), (1, 8, 8))
    assert graph["relu6"].kind is NodeKind.LUT and graph["relu6"].unary == Unary(UnaryFunction.HARDTANH, (0.0, 6.0))
    assert capture(Activated(nn.ReLU6()), (1, 8, 8))["conv"].activation is Activation.RELU6


class Gate(nn.Module):
    """A conv ``x`` and its global average ``s`` (one value per channel), combined by ``combine``."""

    def __init__(self, combine):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.combine = combine

    def forward(self, x):
        x = self.conv(x)
        return self.combine(x, F.adaptive_avg_pool2d(x, 1))


@pytest.mark.parametrize("combine", [lambda x, s: x * s, lambda x, s: s * x, lambda x, s: torch.mul(x, s),
                                     lambda x, s: x.mul(s), lambda x, s: x * x])
def test_tensor_products_become_mul_nodes(combine, images):
    """x * s, s * x (operands swapped so that the full map comes first), torch.mul, .mul and x * x
    capture to one MUL node and compute the model's output."""
    model = Gate(combine).eval()
    graph = capture(model, (1, 8, 8))
    (node,) = [n for n in graph.nodes if n.kind is NodeKind.MUL]
    assert node.inputs[0] == "conv" and graph[node.inputs[1]].shape in ((2, 1, 1), (2, 6, 6)) and node.shape == (2, 6, 6)
    with torch.no_grad():
        assert torch.equal(float_forward(graph, images), model(images))


class WrongView(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        return self.conv(x).view(-1, 2)


def test_constant_minus_tensor_is_refused_naming_both():
    """``c - x`` is no table of ``x + c``: refused, naming the operands, before any calibration."""
    with pytest.raises(UnsupportedError, match=r"subtraction of 1.0 and conv .*a tensor plus or minus a constant"):
        capture(Activated(lambda x: 1.0 - x), (1, 8, 8))


@pytest.mark.parametrize("model, words", [
    (nn.Sequential(nn.ZeroPad2d(1), nn.MaxPool2d(2)), ["zero padding (1, 1, 1, 1) read by 1", "only a conv2d"]),
    (nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect")), ["padding_mode 'reflect'"]),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Softplus()), ["Softplus (module '1')"]),
    (Gate(lambda x, s: x * s[:, :, :1]), ["function getitem"]),
    (Gate(lambda x, s: x * F.avg_pool2d(x, (1, 6))), ["mul at graph node 'mul'", "shapes (2, 6, 6) and (2, 6, 1)"]),
    (Gate(lambda x, s: x / s), ["division of conv by adaptive_avg_pool2d"]),
    (Gate(lambda x, s: x * 0), ["'scale': the constant must not be 0", "test_graph.py"]),
    (WrongView(), ["view of a tensor (2, 6, 6)"]),
])
def test_unsupported_forms_name_module_and_line(model, words):
    """What the program cannot express is an UnsupportedError naming the op, the module and,
    for functional calls, the user's source line."""
    with pytest.raises(UnsupportedError) as error:
        capture(model, (1, 8, 8))
    for word in words:
        assert word in str(error.value)
