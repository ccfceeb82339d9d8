"""Capture of an ordinary CNN into the front-end's graph, with batch norms folded.

``capture(model, input_shape)`` traces a ``torch.nn.Module`` with ``torch.fx`` and turns it
into a :class:`Graph`: a list of :class:`Node` in execution order, one per tensor, whose ops are
exactly the ops of the integer program (``aquant_sim.program``). Batch norms are folded into the
convolution before them (``w' = w * g / sqrt(v + eps)``, ``b' = (b - mu) * g / sqrt(v + eps) +
beta`` per output channel); a ReLU or ReLU6 whose input has no other reader is fused into the
node that produced it (the requantizer's clamp applies it, D.13). Other unary activations
(sigmoid, tanh, SiLU, Hardswish, Hardsigmoid, GELU, LeakyReLU, ELU, Hardtanh and a ReLU6 that
cannot be fused) and multiplication or division by a constant become lookup-table nodes (D.15,
``aquant_sim.lut``); the product of two tensors (squeeze-excitation) a mul node (D.16). Anything
else is an :class:`UnsupportedError` naming the op and the graph node.
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


WEIGHTED = (NodeKind.CONV, NodeKind.LINEAR)
REQUANTIZED = (NodeKind.INPUT, NodeKind.CONV, NodeKind.LINEAR, NodeKind.ADD, NodeKind.AVGPOOL, NodeKind.GAP,
               NodeKind.LUT, NodeKind.MUL)
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
    present, zeros when the module had none); geometry fields follow ``torch.nn.functional``.
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
    return x * p[0]  # SCALE


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value), int(value))


def apply_node(node: Node, inputs: list[torch.Tensor], weight=None, bias=None) -> torch.Tensor:
    """The float op of a node (fused activation included) on its input values."""
    x = inputs[0]
    kind = node.kind
    if kind is NodeKind.CONV:
        y = F.conv2d(x, weight, bias, node.stride, node.padding, node.dilation, node.groups)
    elif kind is NodeKind.LINEAR:
        y = F.linear(x, weight, bias)
    elif kind is NodeKind.ADD:
        y = x + inputs[1]
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
            if n.op == "placeholder":
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
                output = self.tensor(n.args[0], n)
            else:
                raise _unsupported(f"{n.op} {n.target}", n)
        if not self.nodes:
            raise UnsupportedError("the model has no input")
        return Graph(self.nodes, output)

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
        else:
            raise _unsupported(where, n)

    def fold_batchnorm(self, n, m: nn.BatchNorm2d) -> None:
        if not m.track_running_stats or m.running_mean is None:
            raise _unsupported(f"BatchNorm2d (module '{n.target}') without running statistics", n)
        self.fold(n, n.args[0], m.running_mean, m.running_var, m.weight if m.affine else None, m.bias if m.affine else None, m.eps, n.target)

    def fold(self, n, x, mean, var, gamma, beta, eps: float, name: str) -> None:
        """Fold a batch norm (module or F.batch_norm) into the conv2d before it."""
        source = self.tensor(x, n)
        conv = self.nodes[-1]
        if conv.name != source or conv.kind is not NodeKind.CONV or conv.activation is not Activation.NONE \
                or _value_readers(self.last_fx[source]) != 1:
            raise _unsupported(f"batch norm '{name}' that does not directly follow a conv2d read by nothing else", n)
        if mean is None or var is None:
            raise _unsupported(f"batch norm '{name}' without running statistics", n)
        gamma = gamma.detach() if gamma is not None else torch.ones_like(var)
        beta = beta.detach() if beta is not None else torch.zeros_like(var)
        factor = gamma / torch.sqrt(var + eps)
        conv.weight = conv.weight * factor.reshape(-1, 1, 1, 1)
        conv.bias = (conv.bias - mean) * factor + beta
        conv.module = f"{conv.module}+{name}"
        self.same(n, source)

    def conv(self, n, x, weight, bias, stride, padding, dilation, groups, module: str) -> None:
        """A conv2d (module or F.conv2d); ``padding`` may be 'valid', 'same' (when the total
        padding is even per axis) or ints, plus any zero padding of its input (left == right,
        top == bottom)."""
        kernel, dilation = tuple(weight.shape[2:]), _pair(dilation)
        if padding == "valid":
            padding = (0, 0)
        elif padding == "same":
            total = [d * (k - 1) for k, d in zip(kernel, dilation)]
            if any(t % 2 for t in total) or _pair(stride) != (1, 1):
                raise _unsupported(f"conv2d padding='same' with kernel {kernel} (its padding is asymmetric; the program pads symmetrically)", n)
            padding = tuple(t // 2 for t in total)
        padding = _pair(padding)
        if isinstance(x, torch.fx.Node) and x.name in self.pads:
            left, right, top, bottom = self.pads[x.name]
            if left != right or top != bottom:
                raise _unsupported(f"asymmetric zero padding {(left, right, top, bottom)} before a conv2d (the program pads symmetrically)", n)
            padding = (padding[0] + top, padding[1] + left)
        source = self.tensor(x, n, pad_ok=True)
        bias = bias.detach().clone() if bias is not None else torch.zeros(weight.shape[0])
        self.emit(n, Node(n.name, NodeKind.CONV, (source,), weight=weight.detach().clone(), bias=bias, kernel_size=kernel,
                          stride=_pair(stride), padding=padding, dilation=dilation, groups=groups, module=module))

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

    def add(self, n, a, b, alpha=1) -> None:
        if alpha != 1:
            raise _unsupported("add with alpha", n)
        self.emit(n, Node(n.name, NodeKind.ADD, (self.tensor(a, n), self.tensor(b, n))))

    def flatten(self, n, x, start_dim=1, end_dim=-1) -> None:
        if start_dim != 1 or end_dim != -1:
            raise _unsupported(f"flatten({start_dim}, {end_dim}) (only flatten(1) is supported)", n)
        self.emit(n, Node(n.name, NodeKind.FLATTEN, (self.tensor(x, n),)))

    def call_function(self, n) -> None:
        f, args, kwargs = n.target, n.args, n.kwargs
        if f in (operator.add, operator.iadd, torch.add):
            self.add(n, *args, **kwargs)
        elif f in (F.relu, torch.relu):
            self.activation(n, self.tensor(args[0], n), Activation.RELU)
        elif f is F.relu6:
            self.activation(n, self.tensor(args[0], n), Activation.RELU6)
        elif f is torch.flatten:
            self.flatten(n, *args, **kwargs)
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

    def call_method(self, n) -> None:
        method, args, kwargs = n.target, n.args, n.kwargs
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
        """The flattens that stood for x.view(-1, N) or x.squeeze() give what the model's op gave."""
        for name, expected, fx_node in self.shape_checks:
            source = graph[graph[name].inputs[0]].shape
            if expected is None:
                expected = (source[0],) if len(source) == 3 and source[1:] == (1, 1) else None
            if graph[name].shape != expected:
                raise _unsupported(f"{fx_node.target} of a tensor {source} that is not a flatten of each image", fx_node)

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
