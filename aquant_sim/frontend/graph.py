"""Capture of an ordinary CNN into the front-end's graph, with batch norms folded.

``capture(model, input_shape)`` traces a ``torch.nn.Module`` with ``torch.fx`` and turns it
into a :class:`Graph`: a list of :class:`Node` in execution order, one per tensor, whose ops are
exactly the ops of the integer program (``aquant_sim.program``). Batch norms are folded into the
convolution before them (``w' = w * g / sqrt(v + eps)``, ``b' = (b - mu) * g / sqrt(v + eps) +
beta`` per output channel); a ReLU or ReLU6 whose input has no other reader is fused into the
node that produced it (the requantizer's clamp applies it, D.13). Anything else is an
:class:`UnsupportedError` naming the op and the graph node.
"""

from __future__ import annotations

import enum
import operator
from dataclasses import dataclass, field

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from aquant_sim.errors import InputError, UnsupportedError


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


WEIGHTED = (NodeKind.CONV, NodeKind.LINEAR)
REQUANTIZED = (NodeKind.INPUT, NodeKind.CONV, NodeKind.LINEAR, NodeKind.ADD, NodeKind.AVGPOOL, NodeKind.GAP)
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


def _unsupported(what: str, node: torch.fx.Node) -> UnsupportedError:
    return UnsupportedError(f"unsupported op {what} at graph node '{node.name}'")


class _Capture:
    def __init__(self, model: nn.Module):
        self.gm = torch.fx.symbolic_trace(model)
        self.modules = dict(self.gm.named_modules())
        self.nodes: list[Node] = []
        self.alias: dict[str, str] = {}  # fx node name -> graph tensor name
        self.last_fx: dict[str, torch.fx.Node] = {}  # graph tensor -> last fx node mapped to it
        self.shape_nodes: set[str] = set()  # fx nodes that hold x.size(...) results

    def tensor(self, arg, fx_node) -> str:
        if not isinstance(arg, torch.fx.Node) or arg.name not in self.alias:
            raise _unsupported(f"with a non-tensor or unsupported operand {arg!r}", fx_node)
        return self.alias[arg.name]

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
            and len(self.last_fx[source].users) == 1
        )
        if fusable:
            producer.activation = act
            self.same(fx_node, source)
        elif act is Activation.RELU:
            self.emit(fx_node, Node(fx_node.name, NodeKind.RELU, (source,)))
        else:
            raise _unsupported("relu6 whose input has other readers or comes from a pass-through op (fuse it into a conv, linear or add)", fx_node)

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
            if m.padding_mode != "zeros" or isinstance(m.padding, str):
                raise _unsupported(f"{where} with padding {m.padding!r}/{m.padding_mode}", n)
            bias = m.bias.detach().clone() if m.bias is not None else torch.zeros(m.out_channels)
            self.emit(n, Node(n.name, NodeKind.CONV, (self.tensor(n.args[0], n),), weight=m.weight.detach().clone(),
                              bias=bias, kernel_size=_pair(m.kernel_size), stride=_pair(m.stride), padding=_pair(m.padding),
                              dilation=_pair(m.dilation), groups=m.groups, module=n.target))
        elif isinstance(m, nn.BatchNorm2d):
            self.fold_batchnorm(n, m)
        elif isinstance(m, nn.Linear):
            bias = m.bias.detach().clone() if m.bias is not None else torch.zeros(m.out_features)
            self.emit(n, Node(n.name, NodeKind.LINEAR, (self.tensor(n.args[0], n),), weight=m.weight.detach().clone(),
                              bias=bias, module=n.target))
        elif isinstance(m, (nn.ReLU, nn.ReLU6)):
            act = Activation.RELU6 if isinstance(m, nn.ReLU6) else Activation.RELU
            self.activation(n, self.tensor(n.args[0], n), act)
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
        elif isinstance(m, (nn.Identity, nn.Dropout)):
            self.same(n, self.tensor(n.args[0], n))
        else:
            raise _unsupported(where, n)

    def fold_batchnorm(self, n, m: nn.BatchNorm2d) -> None:
        source = self.tensor(n.args[0], n)
        conv = self.nodes[-1]
        if conv.name != source or conv.kind is not NodeKind.CONV or conv.activation is not Activation.NONE \
                or len(self.last_fx[source].users) != 1:
            raise _unsupported(f"BatchNorm2d (module '{n.target}') that does not directly follow a conv2d read by nothing else", n)
        if not m.track_running_stats or m.running_mean is None:
            raise _unsupported(f"BatchNorm2d (module '{n.target}') without running statistics", n)
        gamma = m.weight.detach() if m.affine else torch.ones_like(m.running_var)
        beta = m.bias.detach() if m.affine else torch.zeros_like(m.running_var)
        factor = gamma / torch.sqrt(m.running_var + m.eps)
        conv.weight = conv.weight * factor.reshape(-1, 1, 1, 1)
        conv.bias = (conv.bias - m.running_mean) * factor + beta
        conv.module = f"{conv.module}+{n.target}"
        self.same(n, source)

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
        else:
            raise _unsupported(f"function {getattr(f, '__name__', f)}", n)

    def call_method(self, n) -> None:
        method, args, kwargs = n.target, n.args, n.kwargs
        if method == "size":
            self.shape_nodes.add(n.name)
        elif method in ("relu", "relu_"):
            self.activation(n, self.tensor(args[0], n), Activation.RELU)
        elif method in ("add", "add_"):
            self.add(n, *args, **kwargs)
        elif method == "flatten":
            self.flatten(n, *args, **kwargs)
        elif method in ("view", "reshape") and len(args) == 3 and args[2] == -1 \
                and (isinstance(args[1], int) or getattr(args[1], "name", None) in self.shape_nodes):
            self.emit(n, Node(n.name, NodeKind.FLATTEN, (self.tensor(args[0], n),)))
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
        if node.kind is not NodeKind.ADD and node.kind is not NodeKind.RELU and inputs[0].dim() != expected:
            raise UnsupportedError(f"{node.kind.value} at graph node '{node.name}' reads a tensor of shape {tuple(inputs[0].shape[1:])}")
        try:
            env[node.name] = apply_node(node, inputs, node.weight, node.bias)
        except RuntimeError as error:
            raise UnsupportedError(f"{node.kind.value} at graph node '{node.name}' does not fit its input: {error}") from None
        node.shape = tuple(env[node.name].shape[1:])


@torch.no_grad()
def capture(model: nn.Module, input_shape: tuple[int, ...]) -> Graph:
    """Trace ``model`` (put in eval mode) for inputs of shape ``(C, H, W)``, fold its batch
    norms and fuse its activations; errors name the op and the graph node."""
    model.eval()
    try:
        graph = _Capture(model).run()
    except torch.fx.proxy.TraceError as error:
        raise UnsupportedError(f"the model cannot be traced with torch.fx: {error}") from None
    _check_finite(graph)
    _propagate_shapes(graph, tuple(input_shape))
    return graph
