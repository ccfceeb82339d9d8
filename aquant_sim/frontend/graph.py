"""Capture of an ordinary CNN into the front-end's graph, with batch norms folded.

``capture(model, input_shape)`` traces a ``torch.nn.Module`` with ``torch.fx`` and turns it
into a :class:`Graph`: a list of :class:`Node` in execution order, one per tensor, whose ops are
exactly the ops of the integer program (``aquant_sim.program``). Batch norms are folded into the
convolution before them (``w' = w * g / sqrt(v + eps)``, ``b' = (b - mu) * g / sqrt(v + eps) +
beta`` per output channel); a batch norm that follows no conv (pre-activation networks), or
whose conv's output has other readers, becomes that per-channel affine map as a depthwise 1x1
conv node, quantized and calibrated like any conv. A ReLU or ReLU6 whose input has no other
reader is fused into the node that produced it (the requantizer's clamp applies it, D.13). Other
unary activations (sigmoid, tanh, SiLU, Hardswish, Hardsigmoid, GELU, LeakyReLU, ELU, Hardtanh
and a ReLU6 that cannot be fused) and multiplication or division by a constant become
lookup-table nodes (D.15, ``aquant_sim.lut``); the product of two tensors (squeeze-excitation) a
mul node (D.16). Zero padding (``ZeroPad2d``, ``F.pad``, ``padding='same'``) is absorbed by the
conv that reads it, per side. ``torch.cat`` along channels is a concat node (D.17). Relabels that
leave the (C, H, W) layout are followed, not computed: ``permute(0, 2, 3, 1)`` marks a tensor
channels-last, a linear layer over its last dimension is a 1x1 conv, activations, dropout and
adds keep the mark, and ``permute(0, 3, 1, 2)`` returns to (C, H, W). Anything else is an
:class:`UnsupportedError` naming the op, the graph node, the module and the source line.
"""

from __future__ import annotations

import enum
import operator
from dataclasses import dataclass, field

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from aquant_sim.errors import InputError, ProgramError, UnsupportedError
from aquant_sim.lut import Unary, UnaryFunction


class NodeKind(enum.Enum):
    INPUT = "input"
    CONV = "conv2d"
    LINEAR = "linear"
    ADD = "add"
    MAXPOOL = "maxpool2d"
    AVGPOOL = "avgpool2d"
    GAP = "global_avgpool"
    FLATTEN = "flatten"
    RELU = "relu"
    """A ReLU that could not be fused (its input has other readers): an integer clamp at z."""
    LUT = "lut"
    """A unary function (``Node.unary``) as a lookup table of output levels (D.15)."""
    MUL = "mul"
    """The product of two tensors, the second of the first's shape or one value per channel (D.16)."""
    CONCAT = "concat"
    """Inputs joined along channels, each requantized to the node's own quantizer (D.17)."""


WEIGHTED = (NodeKind.CONV, NodeKind.LINEAR)
REQUANTIZED = (NodeKind.INPUT, NodeKind.CONV, NodeKind.LINEAR, NodeKind.ADD, NodeKind.AVGPOOL, NodeKind.GAP,
               NodeKind.LUT, NodeKind.MUL, NodeKind.CONCAT)
"""Kinds whose output gets its own quantizer (the integer program ends them in a requantizer)."""


class Activation(enum.Enum):
    """An activation fused into a requantizing node."""

    NONE = "none"
    RELU = "relu"
    RELU6 = "relu6"


@dataclass
class Node:
    """One op of the captured graph; its output tensor has the node's name.

    ``weight``/``bias`` are the folded float parameters of conv and linear nodes (bias always
    present, zeros when the module had none); geometry fields follow ``torch.nn.functional``,
    except that a conv's ``padding`` is the (top, left) padding and ``padding_end`` the
    (bottom, right) one (None: symmetric, the same as ``padding``).
    ``shape`` (without batch) is filled in by shape propagation. ``module`` names the torch
    module the node came from, for error messages.
    """

    name: str
    kind: NodeKind
    inputs: tuple[str, ...]
    activation: Activation = Activation.NONE
    weight: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    kernel_size: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    shape: tuple[int, ...] = ()
    module: str = ""
    unary: Unary | None = None
    """The function of a LUT node."""
    padding_end: tuple[int, int] | None = None

    @property
    def asymmetric(self) -> bool:
        """A conv padded differently before and after (then ``F.pad`` applies it, not the conv)."""
        return self.padding_end is not None and tuple(self.padding_end) != tuple(self.padding)


@dataclass
class Graph:
    """Nodes in execution order; the first is the input, ``output`` names the result."""

    nodes: list[Node]
    output: str
    _by_name: dict = field(init=False, repr=False)

    def __post_init__(self):
        self._by_name = {node.name: node for node in self.nodes}

    def __getitem__(self, name: str) -> Node:
        return self._by_name[name]

    @property
    def input(self) -> str:
        return self.nodes[0].name

    def readers(self, name: str) -> list[Node]:
        return [node for node in self.nodes if name in node.inputs]

    def quant_source(self, name: str) -> str:
        """The requantized tensor whose quantization ``name`` carries: pass-through ops (max
        pooling, flatten, unfused ReLU) keep their input's integers and scale."""
        node = self[name]
        while node.kind not in REQUANTIZED:
            node = self[node.inputs[0]]
        return node.name

    def weighted_readers(self, name: str) -> list[Node]:
        """Conv and linear nodes that read ``name``, directly or through pass-through ops."""
        found = []
        for reader in self.readers(name):
            if reader.kind in WEIGHTED:
                found.append(reader)
            elif reader.kind not in REQUANTIZED:
                found.extend(self.weighted_readers(reader.name))
        return found

    @property
    def weighted(self) -> list[Node]:
        return [node for node in self.nodes if node.kind in WEIGHTED]


_UNARY_MODULES = {nn.Sigmoid: UnaryFunction.SIGMOID, nn.Tanh: UnaryFunction.TANH, nn.SiLU: UnaryFunction.SILU,
                  nn.Hardsigmoid: UnaryFunction.HARDSIGMOID, nn.Hardswish: UnaryFunction.HARDSWISH}
"""Modules of the parameter-free table functions (GELU, LeakyReLU, ELU, Hardtanh read theirs)."""
_UNARY_FUNCTIONS = {torch.sigmoid: UnaryFunction.SIGMOID, F.sigmoid: UnaryFunction.SIGMOID, torch.tanh: UnaryFunction.TANH,
                    F.tanh: UnaryFunction.TANH, F.silu: UnaryFunction.SILU, F.hardsigmoid: UnaryFunction.HARDSIGMOID,
                    F.hardswish: UnaryFunction.HARDSWISH}
_UNARY_METHODS = {"sigmoid": UnaryFunction.SIGMOID, "sigmoid_": UnaryFunction.SIGMOID, "tanh": UnaryFunction.TANH,
                  "tanh_": UnaryFunction.TANH}


def torch_unary(unary: Unary, x: torch.Tensor) -> torch.Tensor:
    """The float (torch) form of a table function: the float graph and the fake-quant surrogate,
    whose gradient is the function's derivative. The table itself is ``aquant_sim.lut``'s float64
    form; a test compares the two."""
    f, p = unary.function, unary.parameters
    if f is UnaryFunction.SIGMOID:
        return torch.sigmoid(x)
    if f is UnaryFunction.TANH:
        return torch.tanh(x)
    if f is UnaryFunction.SILU:
        return F.silu(x)
    if f is UnaryFunction.HARDSIGMOID:
        return F.hardsigmoid(x)
    if f is UnaryFunction.HARDSWISH:
        return F.hardswish(x)
    if f in (UnaryFunction.GELU, UnaryFunction.GELU_TANH):
        return F.gelu(x, approximate="none" if f is UnaryFunction.GELU else "tanh")
    if f is UnaryFunction.LEAKY_RELU:
        return F.leaky_relu(x, p[0])
    if f is UnaryFunction.ELU:
        return F.elu(x, p[0])
    if f is UnaryFunction.HARDTANH:
        return F.hardtanh(x, p[0], p[1])
    if f is UnaryFunction.OFFSET:
        return x + p[0]
    return x * p[0]  # SCALE


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value), int(value))


def apply_node(node: Node, inputs: list[torch.Tensor], weight=None, bias=None) -> torch.Tensor:
    """The float op of a node (fused activation included) on its input values."""
    x = inputs[0]
    kind = node.kind
    if kind is NodeKind.CONV and node.asymmetric:
        (top, left), (bottom, right) = node.padding, node.padding_end
        y = F.conv2d(F.pad(x, (left, right, top, bottom)), weight, bias, node.stride, 0, node.dilation, node.groups)
    elif kind is NodeKind.CONV:
        y = F.conv2d(x, weight, bias, node.stride, node.padding, node.dilation, node.groups)
    elif kind is NodeKind.LINEAR:
        y = F.linear(x, weight, bias)
    elif kind is NodeKind.ADD:
        y = x + inputs[1]
    elif kind is NodeKind.CONCAT:
        y = torch.cat(inputs, dim=1)
    elif kind is NodeKind.MAXPOOL:
        y = F.max_pool2d(x, node.kernel_size, node.stride, node.padding, node.dilation)
    elif kind is NodeKind.AVGPOOL:
        y = F.avg_pool2d(x, node.kernel_size, node.stride, node.padding, count_include_pad=True)
    elif kind is NodeKind.GAP:
        y = x.mean(dim=(2, 3), keepdim=True)
    elif kind is NodeKind.FLATTEN:
        y = x.flatten(1)
    elif kind is NodeKind.RELU:
        y = F.relu(x)
    elif kind is NodeKind.LUT:
        y = torch_unary(node.unary, x)
    elif kind is NodeKind.MUL:
        y = x * inputs[1]
    else:
        y = x
    if node.activation is Activation.RELU:
        y = F.relu(y)
    elif node.activation is Activation.RELU6:
        y = F.relu6(y)
    return y


def float_forward(graph: Graph, x: torch.Tensor, keep: bool = False):
    """Run the captured float graph (folded weights); returns the output, or every tensor by
    name when ``keep``."""
    env = {graph.input: x}
    for node in graph.nodes[1:]:
        env[node.name] = apply_node(node, [env[i] for i in node.inputs], node.weight, node.bias)
    return env if keep else env[graph.output]


def _where(node: torch.fx.Node) -> str:
    """The module path and the user's source line of an fx node, as far as the trace knows them."""
    parts = []
    stack = node.meta.get("nn_module_stack")
    if stack:
        path = list(stack.values())[-1]
        path, cls = path if isinstance(path, tuple) else (path, None)
        parts.append(f"in module '{path}'" + (f" ({cls.__name__})" if isinstance(cls, type) else ""))
    frames = [line.strip() for line in (node.stack_trace or "").splitlines() if line.strip().startswith("File ")]
    user = [f for f in frames if f"{_TORCH_DIR}" not in f]
    if user:
        parts.append(user[-1].replace("File ", "at ", 1))
    return (", " + ", ".join(parts)) if parts else ""


_TORCH_DIR = __import__("os").path.dirname(torch.__file__)


def _bind(node: torch.fx.Node, names: tuple[str, ...], defaults: dict) -> dict:
    """A functional call's arguments by name (positional or keyword), defaults filled in."""
    bound = {**defaults, **dict(zip(names, node.args)), **node.kwargs}
    missing = [name for name in names if name not in bound]
    if missing:
        raise _unsupported(f"{node.target.__name__} without {missing}", node)
    return bound


def _module_path(node: torch.fx.Node) -> str:
    """The path of the module whose forward made a functional call (for names and errors)."""
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return node.name
    path = list(stack.values())[-1]
    return path[0] if isinstance(path, tuple) else str(path)


def _value_readers(node: torch.fx.Node) -> int:
    """Readers of a node's values; reading only its shape (x.shape, x.ndim) does not count."""
    return sum(1 for user in node.users if not (user.op == "call_function" and user.target is getattr))


def _dims(args, kwargs) -> list[int] | None:
    dims = args[0] if args else kwargs.get("dim")
    return sorted(d % 4 for d in dims) if isinstance(dims, (tuple, list)) else None


def _unsupported(what: str, node: torch.fx.Node) -> UnsupportedError:
    return UnsupportedError(f"unsupported op {what} at graph node '{node.name}'{_where(node)}")


TO_CHANNELS_LAST, TO_CHANNELS_FIRST, IDENTITY = (0, 2, 3, 1), (0, 3, 1, 2), (0, 1, 2, 3)
"""The permutations of a 4-D tensor that capture follows as relabels (module docstring)."""

ELEMENTWISE = (NodeKind.ADD, NodeKind.RELU, NodeKind.LUT)
"""Graph nodes whose meaning does not depend on which axis holds the channels, so that they may
read a channels-last tensor: each output element is a function of the elements at the same place
(a lookup table's row follows the element's channel, which the relabel leaves unchanged)."""

LAYER_NORM = ("a per-position division by the standard deviation over the channels (a square root and a "
              "division of data-dependent integers), which the integer datapath has no op for")


def _permutation(n: torch.fx.Node) -> tuple[int, ...] | None:
    """The dims of a ``x.permute(...)`` or ``torch.permute(x, ...)`` node (negative dims of a 4-D
    tensor made positive), None for any other node."""
    if n.op == "call_method" and n.target == "permute":
        dims = n.args[1:] if len(n.args) > 2 or not n.args[1:] else n.args[1]
        dims = n.kwargs.get("dims", dims)
    elif n.op == "call_function" and n.target is torch.permute:
        dims = n.args[1] if len(n.args) > 1 else n.kwargs.get("dims")
    else:
        return None
    dims = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
    if not all(isinstance(d, int) for d in dims):
        raise _unsupported(f"permute with dims {dims!r} that are not integers", n)
    return tuple(d % 4 for d in dims) if len(dims) == 4 else dims


class _Capture:
    def __init__(self, model: nn.Module):
        tracer = torch.fx.Tracer()
        tracer.record_stack_traces = True  # so that errors can name the user's source line
        self.gm = torch.fx.GraphModule(model, tracer.trace(model))
        self.modules = dict(self.gm.named_modules())
        self.params: dict[str, torch.Tensor] = {}  # get_attr fx nodes -> the parameter or buffer
        self.pads: dict[str, tuple[int, int, int, int]] = {}  # zero-padded fx nodes -> (left, right, top, bottom)
        self.shape_checks: list[tuple[str, tuple[int, ...], torch.fx.Node]] = []  # (graph node, shape it must have, fx node)
        self.nodes: list[Node] = []
        self.alias: dict[str, str] = {}  # fx node name -> graph tensor name
        self.last_fx: dict[str, torch.fx.Node] = {}  # graph tensor -> last fx node mapped to it
        self.shape_nodes: set[str] = set()  # fx nodes that hold x.size(...) results
        self.channels_last: dict[str, str] = {}  # fx nodes whose values are channels-last -> the permute that made them so
        self.same_shape: list[tuple[str, tuple[int, ...], torch.fx.Node]] = []  # (graph tensor, (C, H, W) a view claims, fx node)

    def tensor(self, arg, fx_node, pad_ok: bool = False) -> str:
        if not isinstance(arg, torch.fx.Node) or arg.name not in self.alias:
            raise _unsupported(f"with a non-tensor or unsupported operand {arg!r}", fx_node)
        if arg.name in self.pads and not pad_ok:
            raise _unsupported(f"zero padding {self.pads[arg.name]} read by {fx_node.target} (only a conv2d can absorb it)", fx_node)
        return self.alias[arg.name]

    def param(self, arg, fx_node) -> torch.Tensor | None:
        if arg is None:
            return None
        if not isinstance(arg, torch.fx.Node) or arg.name not in self.params:
            raise _unsupported(f"with a weight that is not a parameter or buffer of the model ({arg!r})", fx_node)
        return self.params[arg.name]

    def emit(self, fx_node, node: Node) -> None:
        self.nodes.append(node)
        self.alias[fx_node.name] = node.name
        self.last_fx[node.name] = fx_node

    def same(self, fx_node, source: str) -> None:
        """The fx node is an alias (dropout, identity, folded batch norm, fused activation)."""
        self.alias[fx_node.name] = source
        self.last_fx[source] = fx_node

    def activation(self, fx_node, source: str, act: Activation) -> None:
        producer = self.nodes[-1] if self.nodes else None
        fusable = (
            producer is not None and producer.name == source and producer.kind in REQUANTIZED
            and producer.kind is not NodeKind.INPUT and producer.activation is Activation.NONE
            and _value_readers(self.last_fx[source]) == 1
        )
        if fusable:
            producer.activation = act
            self.same(fx_node, source)
        elif act is Activation.RELU:
            self.emit(fx_node, Node(fx_node.name, NodeKind.RELU, (source,)))
        else:  # a ReLU6 that no requantizer's clamp can apply: its table
            self.emit(fx_node, Node(fx_node.name, NodeKind.LUT, (source,), unary=Unary(UnaryFunction.HARDTANH, (0.0, 6.0))))

    def unary(self, fx_node, x, function: UnaryFunction, *parameters) -> None:
        """A lookup-table node of ``function`` on tensor ``x``."""
        try:
            unary = Unary(function, parameters)
        except ProgramError as error:
            raise _unsupported(str(error), fx_node) from None
        self.emit(fx_node, Node(fx_node.name, NodeKind.LUT, (self.tensor(x, fx_node),), unary=unary, module=_module_path(fx_node)))

    def multiply(self, fx_node, a, b, divide: bool = False) -> None:
        """``a * b`` of two tensors (a mul node), or a tensor times (divided by) a constant (a
        table of the multiple)."""
        constant = [isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b)]
        if constant == [False, False] and not divide:
            self.emit(fx_node, Node(fx_node.name, NodeKind.MUL, (self.tensor(a, fx_node), self.tensor(b, fx_node)),
                                    module=_module_path(fx_node)))
        elif (constant == [False, True] and not (divide and b == 0)) or (constant == [True, False] and not divide):
            x, c = (a, b) if constant[1] else (b, a)
            self.unary(fx_node, x, UnaryFunction.SCALE, 1.0 / c if divide else c)
        else:
            raise _unsupported(f"{'division' if divide else 'multiplication'} of {a!r:.40} by {b!r:.40} "
                               "(a tensor times a tensor, or a tensor times or divided by a constant)", fx_node)

    def run(self) -> Graph:
        output = None
        for n in self.gm.graph.nodes:
            if n.op != "output" and any(a.name in self.channels_last for a in n.all_input_nodes):
                self.relabelled(n)
            elif _permutation(n) is not None:
                self.permute(n, _permutation(n))
            elif n.op == "placeholder":
                if self.nodes:
                    raise _unsupported("second model input", n)
                self.emit(n, Node(n.name, NodeKind.INPUT, ()))
            elif n.op == "call_module":
                self.call_module(n, self.modules[n.target])
            elif n.op == "call_function":
                self.call_function(n)
            elif n.op == "call_method":
                self.call_method(n)
            elif n.op == "get_attr":
                self.params[n.name] = self.gm.get_parameter(n.target) if n.target in dict(self.gm.named_parameters()) \
                    else self.gm.get_buffer(n.target)
            elif n.op == "output":
                if getattr(n.args[0], "name", None) in self.channels_last:
                    raise _unsupported("a channels-last (permuted) network output; permute it back with (0, 3, 1, 2)", n)
                output = self.tensor(n.args[0], n)
            else:
                raise _unsupported(f"{n.op} {n.target}", n)
        if not self.nodes:
            raise UnsupportedError("the model has no input")
        return Graph(self.nodes, output)

    def dispatch(self, n) -> None:
        if n.op == "call_module":
            self.call_module(n, self.modules[n.target])
        elif n.op == "call_function":
            self.call_function(n)
        elif n.op == "call_method":
            self.call_method(n)
        else:
            raise _unsupported(f"{n.op} {n.target} of a channels-last tensor", n)

    def permute(self, n, dims: tuple[int, ...]) -> None:
        """A permute of a (C, H, W) tensor: to channels-last (followed as a relabel) or the identity."""
        source = self.tensor(n.args[0], n)
        if dims == TO_CHANNELS_LAST:
            self.channels_last[n.name] = n.name
        elif dims != IDENTITY:
            raise _unsupported(f"permute{dims} (only {TO_CHANNELS_LAST} to channels-last and back by {TO_CHANNELS_FIRST} "
                               "are relabels the (C, H, W) datapath can follow)", n)
        self.same(n, source)

    def relabelled(self, n) -> None:
        """An fx node that reads a channels-last tensor: the permute back, a linear layer over the
        channels (a 1x1 conv), or an op whose graph nodes are all elementwise; anything else
        would compute over the wrong axis and is refused."""
        origin = next(self.channels_last[a.name] for a in n.all_input_nodes if a.name in self.channels_last)
        dims = _permutation(n)
        module = self.modules.get(n.target) if n.op == "call_module" else None
        if dims is not None:
            source = self.tensor(n.args[0], n)
            if dims == TO_CHANNELS_FIRST:
                self.same(n, source)
                return
            if dims != IDENTITY:
                raise _unsupported(f"permute{dims} of a channels-last tensor (permuted at graph node '{origin}'; only "
                                   f"{TO_CHANNELS_FIRST} back to (C, H, W) is a relabel)", n)
            self.same(n, source)
        elif isinstance(module, nn.LayerNorm):
            raise _unsupported(f"LayerNorm (module '{n.target}'): {LAYER_NORM}", n)
        elif isinstance(module, nn.Linear) or (n.op == "call_function" and n.target is F.linear):
            if module is not None:
                x, weight, bias, name = n.args[0], module.weight, module.bias, n.target
            else:
                bound = _bind(n, ("input", "weight", "bias"), {"bias": None})
                x, weight, bias, name = bound["input"], self.param(bound["weight"], n), self.param(bound["bias"], n), _module_path(n)
            self.conv(n, x, weight.reshape(*weight.shape, 1, 1), bias, 1, 0, 1, 1, name)
        else:
            what = type(module).__name__ if module is not None else getattr(n.target, "__name__", str(n.target))
            before = len(self.nodes)
            self.dispatch(n)
            made = self.nodes[before:]
            if any(node.kind not in ELEMENTWISE for node in made) or n.name not in self.alias or n.name in self.pads:
                raise _unsupported(f"{what} of a channels-last tensor (permuted at graph node '{origin}'): only linear "
                                   f"layers, elementwise ops and the permute back {TO_CHANNELS_FIRST} read one", n)
            if any(a.name in self.alias and a.name not in self.channels_last for a in n.all_input_nodes):
                raise _unsupported(f"{what} of a channels-last tensor and a (C, H, W) one", n)
        self.channels_last[n.name] = origin

    def call_module(self, n, m: nn.Module) -> None:
        where = f"{type(m).__name__} (module '{n.target}')"
        if isinstance(m, nn.Conv2d):
            if m.padding_mode != "zeros":
                raise _unsupported(f"{where} with padding_mode {m.padding_mode!r} (only zero padding is exact on the datapath)", n)
            self.conv(n, n.args[0], m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups, n.target)
        elif isinstance(m, nn.BatchNorm2d):
            self.fold_batchnorm(n, m)
        elif isinstance(m, nn.Linear):
            self.linear(n, n.args[0], m.weight, m.bias, n.target)
        elif isinstance(m, nn.ReLU):
            self.activation(n, self.tensor(n.args[0], n), Activation.RELU)
        elif isinstance(m, nn.Hardtanh):
            self.hardtanh(n, n.args[0], m.min_val, m.max_val)
        elif type(m) in _UNARY_MODULES:
            self.unary(n, n.args[0], _UNARY_MODULES[type(m)])
        elif isinstance(m, nn.GELU):
            self.unary(n, n.args[0], UnaryFunction.GELU if m.approximate == "none" else UnaryFunction.GELU_TANH)
        elif isinstance(m, nn.LeakyReLU):
            self.unary(n, n.args[0], UnaryFunction.LEAKY_RELU, m.negative_slope)
        elif isinstance(m, nn.ELU):
            self.unary(n, n.args[0], UnaryFunction.ELU, m.alpha)
        elif isinstance(m, nn.ZeroPad2d):
            self.zero_pad(n, n.args[0], m.padding)
        elif isinstance(m, nn.ConstantPad2d) and m.value == 0:
            self.zero_pad(n, n.args[0], m.padding)
        elif isinstance(m, nn.MaxPool2d):
            if m.ceil_mode or m.return_indices:
                raise _unsupported(f"{where} with ceil_mode or return_indices", n)
            self.pool(n, NodeKind.MAXPOOL, m.kernel_size, m.stride, m.padding, m.dilation)
        elif isinstance(m, nn.AvgPool2d):
            if m.ceil_mode or not m.count_include_pad or m.divisor_override is not None:
                raise _unsupported(f"{where} other than count_include_pad=True, ceil_mode=False", n)
            self.pool(n, NodeKind.AVGPOOL, m.kernel_size, m.stride, m.padding, 1)
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            if _pair(m.output_size) != (1, 1):
                raise _unsupported(f"{where} with output size {m.output_size}", n)
            self.emit(n, Node(n.name, NodeKind.GAP, (self.tensor(n.args[0], n),)))
        elif isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                raise _unsupported(f"{where} other than flatten(1)", n)
            self.emit(n, Node(n.name, NodeKind.FLATTEN, (self.tensor(n.args[0], n),)))
        elif isinstance(m, (nn.Identity, nn.modules.dropout._DropoutNd)):  # dropout is the identity in eval
            self.same(n, self.tensor(n.args[0], n))
        elif isinstance(m, nn.LayerNorm):
            raise _unsupported(f"{where}: {LAYER_NORM}", n)
        else:
            raise _unsupported(where, n)

    def fold_batchnorm(self, n, m: nn.BatchNorm2d) -> None:
        if not m.track_running_stats or m.running_mean is None:
            raise _unsupported(f"BatchNorm2d (module '{n.target}') without running statistics", n)
        self.fold(n, n.args[0], m.running_mean, m.running_var, m.weight if m.affine else None, m.bias if m.affine else None, m.eps, n.target)

    def fold(self, n, x, mean, var, gamma, beta, eps: float, name: str) -> None:
        """Fold a batch norm (module or F.batch_norm) into the conv2d before it; a batch norm
        that follows no conv (or a conv whose output has other readers, or already an activation)
        is its per-channel affine map ``y = x * g / sqrt(v + eps) + (beta - mu * g / sqrt(v + eps))``
        as a depthwise 1x1 conv node."""
        source = self.tensor(x, n)
        if mean is None or var is None:
            raise _unsupported(f"batch norm '{name}' without running statistics", n)
        gamma = gamma.detach() if gamma is not None else torch.ones_like(var)
        beta = beta.detach() if beta is not None else torch.zeros_like(var)
        factor = gamma / torch.sqrt(var + eps)
        conv = self.nodes[-1]
        if conv.name == source and conv.kind is NodeKind.CONV and conv.activation is Activation.NONE \
                and _value_readers(self.last_fx[source]) == 1:
            conv.weight = conv.weight * factor.reshape(-1, 1, 1, 1)
            conv.bias = (conv.bias - mean) * factor + beta
            conv.module = f"{conv.module}+{name}"
            self.same(n, source)
            return
        channels = factor.shape[0]
        self.emit(n, Node(n.name, NodeKind.CONV, (source,), weight=factor.reshape(channels, 1, 1, 1).clone(),
                          bias=(beta - mean.detach() * factor).clone(), groups=channels, module=name))

    def conv(self, n, x, weight, bias, stride, padding, dilation, groups, module: str) -> None:
        """A conv2d (module or F.conv2d); ``padding`` may be 'valid', 'same' (torch's: the total
        ``d (k - 1)`` per axis, its larger half after) or ints, plus any zero padding of its input,
        per side (ZeroPad2d, F.pad: TF's "SAME" at stride 2)."""
        kernel, dilation = tuple(weight.shape[2:]), _pair(dilation)
        padding_end = None
        if padding == "valid":
            padding = (0, 0)
        elif padding == "same":
            if _pair(stride) != (1, 1):
                raise _unsupported(f"conv2d padding='same' with stride {stride} (torch defines it for stride 1 only)", n)
            total = [d * (k - 1) for k, d in zip(kernel, dilation)]
            padding, padding_end = tuple(t // 2 for t in total), tuple(t - t // 2 for t in total)
        padding = _pair(padding)
        if isinstance(x, torch.fx.Node) and x.name in self.pads:
            left, right, top, bottom = self.pads[x.name]
            end = padding if padding_end is None else padding_end
            padding, padding_end = (padding[0] + top, padding[1] + left), (end[0] + bottom, end[1] + right)
        source = self.tensor(x, n, pad_ok=True)
        bias = bias.detach().clone() if bias is not None else torch.zeros(weight.shape[0])
        self.emit(n, Node(n.name, NodeKind.CONV, (source,), weight=weight.detach().clone(), bias=bias, kernel_size=kernel,
                          stride=_pair(stride), padding=padding, dilation=dilation, groups=groups, module=module,
                          padding_end=padding_end))

    def linear(self, n, x, weight, bias, module: str) -> None:
        bias = bias.detach().clone() if bias is not None else torch.zeros(weight.shape[0])
        self.emit(n, Node(n.name, NodeKind.LINEAR, (self.tensor(x, n),), weight=weight.detach().clone(), bias=bias, module=module))

    def zero_pad(self, n, x, padding) -> None:
        """Zero padding is remembered and absorbed by the conv2d that reads it (the datapath pads
        with the zero-point, the level of the real 0)."""
        pads = (padding,) * 4 if isinstance(padding, int) else tuple(padding)
        if len(pads) != 4 or any(p < 0 for p in pads):
            raise _unsupported(f"zero padding {padding!r} (only 2-D (left, right, top, bottom) padding is supported)", n)
        if isinstance(x, torch.fx.Node) and x.name in self.pads:
            pads = tuple(a + b for a, b in zip(pads, self.pads[x.name]))
        self.same(n, self.tensor(x, n, pad_ok=True))
        self.pads[n.name] = pads

    def hardtanh(self, n, x, low, high) -> None:
        """hardtanh(0, 6) is ReLU6 (fused where it can be); any other is a table."""
        if (low, high) == (0, 6):
            self.activation(n, self.tensor(x, n), Activation.RELU6)
        else:
            self.unary(n, x, UnaryFunction.HARDTANH, low, high)

    def pool(self, n, kind, kernel, stride, padding, dilation) -> None:
        kernel = _pair(kernel)
        stride = kernel if stride is None else _pair(stride)
        self.emit(n, Node(n.name, kind, (self.tensor(n.args[0], n),), kernel_size=kernel, stride=stride,
                          padding=_pair(padding), dilation=_pair(dilation)))

    def concat(self, n, tensors, dim=0) -> None:
        """torch.cat / torch.concat / torch.concatenate along channels (dim 1 or -3 of NCHW)."""
        if dim not in (1, -3):
            raise _unsupported(f"{n.target.__name__} along dim {dim} (only along channels, dim 1)", n)
        if not isinstance(tensors, (tuple, list)) or not tensors:
            raise _unsupported(f"{n.target.__name__} of {tensors!r} (a list or tuple of tensors)", n)
        names = tuple(self.tensor(t, n) for t in tensors)
        if len(names) == 1:
            self.same(n, names[0])
        else:
            self.emit(n, Node(n.name, NodeKind.CONCAT, names))

    def add(self, n, a, b, alpha=1, subtract: bool = False) -> None:
        """``a + b`` (``a - b``) of two tensors (an add node), or a tensor plus or minus a constant
        (a table of the sum)."""
        constant = [isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b)]
        if alpha != 1:
            raise _unsupported("add with alpha", n)
        if constant == [False, True]:
            self.unary(n, a, UnaryFunction.OFFSET, -b if subtract else b)
        elif constant == [True, False] and not subtract:
            self.unary(n, b, UnaryFunction.OFFSET, a)
        elif constant == [False, False] and not subtract:
            self.emit(n, Node(n.name, NodeKind.ADD, (self.tensor(a, n), self.tensor(b, n))))
        else:
            raise _unsupported(f"{'subtraction' if subtract else 'addition'} of {a!r:.40} and {b!r:.40} "
                               "(a tensor plus a tensor, or a tensor plus or minus a constant)", n)

    def flatten(self, n, x, start_dim=1, end_dim=-1) -> None:
        if start_dim != 1 or end_dim != -1:
            raise _unsupported(f"flatten({start_dim}, {end_dim}) (only flatten(1) is supported)", n)
        self.emit(n, Node(n.name, NodeKind.FLATTEN, (self.tensor(x, n),)))

    def call_function(self, n) -> None:
        f, args, kwargs = n.target, n.args, n.kwargs
        if f in (operator.add, operator.iadd, torch.add):
            self.add(n, *args, **kwargs)
        elif f in (operator.sub, operator.isub) and not kwargs:
            self.add(n, *args, subtract=True)
        elif f in (F.relu, torch.relu):
            self.activation(n, self.tensor(args[0], n), Activation.RELU)
        elif f is F.relu6:
            self.activation(n, self.tensor(args[0], n), Activation.RELU6)
        elif f is torch.flatten:
            self.flatten(n, *args, **kwargs)
        elif f in (torch.cat, torch.concat, torch.concatenate):
            axis = "axis" if f is torch.concatenate else "dim"
            bound = _bind(n, ("tensors", axis), {axis: 0})
            self.concat(n, bound["tensors"], bound[axis])
        elif f in (torch.reshape, torch.squeeze):
            self.call_method(n, {torch.reshape: "reshape", torch.squeeze: "squeeze"}[f])
        elif f is F.layer_norm:
            raise _unsupported(f"F.layer_norm: {LAYER_NORM}", n)
        elif f is F.adaptive_avg_pool2d and _pair(args[1] if len(args) > 1 else kwargs.get("output_size")) == (1, 1):
            self.emit(n, Node(n.name, NodeKind.GAP, (self.tensor(args[0], n),)))
        elif f in (F.conv2d, torch.conv2d):
            bound = _bind(n, ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
                          {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1})
            self.conv(n, bound["input"], self.param(bound["weight"], n), self.param(bound["bias"], n), bound["stride"],
                      bound["padding"], bound["dilation"], bound["groups"], _module_path(n))
        elif f is F.linear:
            bound = _bind(n, ("input", "weight", "bias"), {"bias": None})
            self.linear(n, bound["input"], self.param(bound["weight"], n), self.param(bound["bias"], n), _module_path(n))
        elif f is F.batch_norm:
            bound = _bind(n, ("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps"),
                          {"weight": None, "bias": None, "training": False, "momentum": 0.1, "eps": 1e-5})
            if bound["training"]:
                raise _unsupported("F.batch_norm in training mode (put the model in eval mode)", n)
            self.fold(n, bound["input"], *(self.param(bound[k], n) for k in ("running_mean", "running_var", "weight", "bias")),
                      bound["eps"], _module_path(n))
        elif f in (F.max_pool2d, torch.max_pool2d):
            bound = _bind(n, ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
                          {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False, "return_indices": False})
            if bound["ceil_mode"] or bound["return_indices"]:
                raise _unsupported("max_pool2d with ceil_mode or return_indices", n)
            self.pool(n, NodeKind.MAXPOOL, bound["kernel_size"], bound["stride"] or None, bound["padding"], bound["dilation"])
        elif f in (F.avg_pool2d, torch._C._nn.avg_pool2d):
            bound = _bind(n, ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
                          {"stride": None, "padding": 0, "ceil_mode": False, "count_include_pad": True, "divisor_override": None})
            if bound["ceil_mode"] or not bound["count_include_pad"] or bound["divisor_override"] is not None:
                raise _unsupported("avg_pool2d other than count_include_pad=True, ceil_mode=False", n)
            self.pool(n, NodeKind.AVGPOOL, bound["kernel_size"], bound["stride"] or None, bound["padding"], 1)
        elif f is F.hardtanh:
            bound = _bind(n, ("input", "min_val", "max_val", "inplace"), {"min_val": -1.0, "max_val": 1.0, "inplace": False})
            self.hardtanh(n, bound["input"], bound["min_val"], bound["max_val"])
        elif f in _UNARY_FUNCTIONS:
            self.unary(n, args[0], _UNARY_FUNCTIONS[f])
        elif f is F.gelu:
            approximate = _bind(n, ("input", "approximate"), {"approximate": "none"})["approximate"]
            self.unary(n, args[0], UnaryFunction.GELU if approximate == "none" else UnaryFunction.GELU_TANH)
        elif f is F.leaky_relu:
            bound = _bind(n, ("input", "negative_slope", "inplace"), {"negative_slope": 0.01, "inplace": False})
            self.unary(n, bound["input"], UnaryFunction.LEAKY_RELU, bound["negative_slope"])
        elif f is F.elu:
            bound = _bind(n, ("input", "alpha", "inplace"), {"alpha": 1.0, "inplace": False})
            self.unary(n, bound["input"], UnaryFunction.ELU, bound["alpha"])
        elif f in (operator.mul, operator.imul, torch.mul):
            self.multiply(n, *args)
        elif f in (operator.truediv, operator.itruediv, torch.div) and not kwargs:
            self.multiply(n, *args, divide=True)
        elif f is torch.clamp:
            self.clamp(n, *args, **kwargs)
        elif f in (F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, torch.dropout):
            if (args[2] if len(args) > 2 else kwargs.get("training", f is torch.dropout)) is not False:
                raise _unsupported(f"{f.__name__} in training mode (pass training=self.training and use eval mode)", n)
            self.same(n, self.tensor(args[0], n))
        elif f is F.pad:
            bound = _bind(n, ("input", "pad", "mode", "value"), {"mode": "constant", "value": None})
            if bound["mode"] != "constant" or bound["value"] not in (None, 0, 0.0):
                raise _unsupported(f"F.pad mode {bound['mode']!r}, value {bound['value']!r} (only zero padding is exact on the datapath)", n)
            self.zero_pad(n, bound["input"], bound["pad"])
        elif f is getattr and args[1] in ("shape", "ndim"):
            self.shape_nodes.add(n.name)  # a static shape: used by view/reshape and asserts only
        elif f in (operator.getitem, operator.eq, operator.ne) and getattr(args[0], "name", None) in self.shape_nodes:
            self.shape_nodes.add(n.name)
        elif f is torch._assert and getattr(args[0], "name", None) in self.shape_nodes:
            pass  # an assert on a static shape: checked by shape propagation
        else:
            raise _unsupported(f"function {getattr(f, '__name__', f)}", n)

    def clamp(self, n, x, min=None, max=None) -> None:
        if (min, max) == (0, None):
            act = Activation.RELU
        elif (min, max) == (0, 6):
            act = Activation.RELU6
        else:
            raise _unsupported(f"clamp({min}, {max}) (only clamp(0) as ReLU and clamp(0, 6) as ReLU6)", n)
        self.activation(n, self.tensor(x, n), act)

    def call_method(self, n, method: str | None = None) -> None:
        """A tensor method (or, with ``method``, the torch function spelled like it)."""
        method, args, kwargs = method or n.target, tuple(n.args), dict(n.kwargs)
        if method in ("view", "reshape"):
            shape = kwargs.pop("shape", args[1] if len(args) == 2 else args[1:])
            args = (args[0], *(shape if isinstance(shape, (tuple, list)) else (shape,)))
        if method == "size":
            self.shape_nodes.add(n.name)
        elif method in ("relu", "relu_"):
            self.activation(n, self.tensor(args[0], n), Activation.RELU)
        elif method in ("add", "add_"):
            self.add(n, *args, **kwargs)
        elif method in _UNARY_METHODS and len(args) == 1 and not kwargs:
            self.unary(n, args[0], _UNARY_METHODS[method])
        elif method in ("mul", "mul_") and len(args) == 2 and not kwargs:
            self.multiply(n, *args)
        elif method in ("div", "div_") and len(args) == 2 and not kwargs:
            self.multiply(n, *args, divide=True)
        elif method == "flatten":
            self.flatten(n, *args, **kwargs)
        elif method in ("view", "reshape") and len(args) == 3 and args[2] == -1 \
                and (isinstance(args[1], int) or getattr(args[1], "name", None) in self.shape_nodes):
            self.emit(n, Node(n.name, NodeKind.FLATTEN, (self.tensor(args[0], n),)))
        elif method in ("view", "reshape") and len(args) == 3 and args[1] == -1 and isinstance(args[2], int):
            # x.view(-1, N): a flatten when N is the features per image, checked once shapes are known
            self.emit(n, Node(n.name, NodeKind.FLATTEN, (self.tensor(args[0], n),)))
            self.shape_checks.append((n.name, (args[2],), n))
        elif method == "squeeze" and (len(args) == 1 and not kwargs or _dims(args[1:], kwargs) == [2, 3]):
            # x.squeeze() or x.squeeze((2, 3)) of a (N, C, 1, 1) tensor: a flatten, checked once shapes are known
            self.emit(n, Node(n.name, NodeKind.FLATTEN, (self.tensor(args[0], n),)))
            self.shape_checks.append((n.name, None, n))
        elif method in ("view", "reshape") and len(args) == 5 and all(isinstance(d, int) for d in args[2:]) \
                and (isinstance(args[1], int) or getattr(args[1], "name", None) in self.shape_nodes):
            # x.view(N, C, H, W) that keeps the shape: a relabel, checked once shapes are known
            source = self.tensor(args[0], n)
            self.same(n, source)
            self.same_shape.append((source, tuple(args[2:]), n))
        elif method == "contiguous":
            self.same(n, self.tensor(args[0], n))
        elif method in ("clamp", "clamp_", "clip"):
            self.clamp(n, *args, **kwargs)
        elif method == "mean" and self.is_spatial_mean(args, kwargs):
            x = self.tensor(args[0], n)
            gap = Node(f"{n.name}_pool", NodeKind.GAP, (x,))
            self.nodes.append(gap)
            self.last_fx[gap.name] = n
            if kwargs.get("keepdim", False):
                self.same(n, gap.name)
            else:
                self.emit(n, Node(n.name, NodeKind.FLATTEN, (gap.name,)))
        else:
            raise _unsupported(f"method .{method}()", n)

    def check_shapes(self, graph: Graph) -> None:
        """The flattens that stood for x.view(-1, N) or x.squeeze(), and the views that keep the shape,
        give what the model's op gave."""
        for name, expected, fx_node in self.shape_checks:
            source = graph[graph[name].inputs[0]].shape
            if expected is None:
                expected = (source[0],) if len(source) == 3 and source[1:] == (1, 1) else None
            if graph[name].shape != expected:
                raise _unsupported(f"{fx_node.target} of a tensor {source} that is not a flatten of each image", fx_node)
        for name, expected, fx_node in self.same_shape:
            if graph[name].shape != expected:
                raise _unsupported(f"{getattr(fx_node.target, '__name__', fx_node.target)} of a tensor {graph[name].shape} to "
                                   f"{expected} (only a view that keeps the (C, H, W) shape is a relabel)", fx_node)

    @staticmethod
    def is_spatial_mean(args, kwargs) -> bool:
        dims = args[1] if len(args) > 1 else kwargs.get("dim")
        return isinstance(dims, (tuple, list)) and sorted(d % 4 for d in dims) == [2, 3]


def _check_finite(graph: Graph) -> None:
    for node in graph.weighted:
        for field_name in ("weight", "bias"):
            value = getattr(node, field_name)
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                raise InputError(f"module '{node.module}' (graph node '{node.name}'): {field_name} has {bad} NaN or Inf values after batch-norm folding")


def _propagate_shapes(graph: Graph, input_shape: tuple[int, ...]) -> None:
    env = {graph.input: torch.zeros((1, *input_shape))}
    graph.nodes[0].shape = tuple(input_shape)
    for node in graph.nodes[1:]:
        inputs = [env[i] for i in node.inputs]
        expected = {NodeKind.LINEAR: 2, NodeKind.FLATTEN: 4}.get(node.kind, 4)
        if node.kind not in (NodeKind.ADD, NodeKind.RELU, NodeKind.LUT, NodeKind.MUL) and inputs[0].dim() != expected:
            raise UnsupportedError(f"{node.kind.value} at graph node '{node.name}' reads a tensor of shape {tuple(inputs[0].shape[1:])}")
        try:
            env[node.name] = apply_node(node, inputs, node.weight, node.bias)
        except RuntimeError as error:
            raise UnsupportedError(f"{node.kind.value} at graph node '{node.name}' does not fit its input: {error}") from None
        node.shape = tuple(env[node.name].shape[1:])
        if node.kind is NodeKind.MUL:
            _order_product(graph, node)


def _order_product(graph: Graph, node: Node) -> None:
    """A mul's first input has the product's shape, its second the same or one value per channel
    (C, 1, 1) of a feature map: the operands are swapped if needed (the product commutes)."""
    a, b = (graph[i].shape for i in node.inputs)
    if len(b) == 3 and a == (b[0], 1, 1) and a != b:
        node.inputs, (a, b) = node.inputs[::-1], (b, a)
    if b != a and not (len(a) == 3 and b == (a[0], 1, 1)):
        raise UnsupportedError(f"mul at graph node '{node.name}' (module '{node.module}') of shapes {a} and {b}: the program "
                               "multiplies tensors of one shape, or a (C, H, W) map by one value per channel (C, 1, 1)")


@torch.no_grad()
def capture(model: nn.Module, input_shape: tuple[int, ...]) -> Graph:
    """Trace ``model`` (put in eval mode) for inputs of shape ``(C, H, W)``, fold its batch
    norms and fuse its activations; errors name the op and the graph node."""
    model.eval()
    try:
        captured = _Capture(model)
        graph = captured.run()
    except torch.fx.proxy.TraceError as error:
        raise UnsupportedError(f"the model cannot be traced with torch.fx: {error}") from None
    _check_finite(graph)
    _propagate_shapes(graph, tuple(input_shape))
    captured.check_shapes(graph)
    return graph
