"""The fake-quant model: a captured graph with a weight quantizer per conv/linear and an
activation quantizer per requantized tensor, computing what the integer program computes.

Two forward modes (:class:`ForwardMode`, set with ``qm.forward_mode = ...`` or for a block with
``with qm.forward_mode_as(ForwardMode.EXACT): ...``):

* ``EXACT``: the values are the integer program's, bit for bit, with straight-through gradients
  from the float path (``aquant_sim.frontend.exact``, ``docs/calibration.md`` C.9). Needs hard
  quantizers. The figures the project reports use it.
* ``FLOAT``: float fake quantization (C.7), the fast path for training: the same scales,
  zero-points and clamps; conv padding is real 0 (the program pads with ``z``); biases are the
  program's integers ``round_half_up(b / (s_x * s_w[c]))`` times ``s_x * s_w[c]``; a fused ReLU is
  the requantizer's clamp at ``qmin = z = 0``; ReLU6 clamps levels at ``q(6)``; pass-through ops
  (max pooling, flatten, ReLU on levels) act on quantized values. What differs from the program:
  the 31-bit multipliers, the residual add's 14-bit integer input weights, and float error.

Bit widths: the network input and the input of the last conv/linear get ``first_last_bits``, as
do the first and last layers' weights (BRECQ protocol); every other tensor read by a conv or
linear gets ``act_bits``; tensors read by no conv/linear (the conv outputs that feed a residual
add, the feature map before global pooling) get ``internal_bits``.
"""

from __future__ import annotations

import contextlib
import enum
from dataclasses import dataclass

import torch
from torch import nn

from aquant_sim.errors import ConfigError, InputError
from aquant_sim.frontend import exact
from aquant_sim.frontend.graph import WEIGHTED, REQUANTIZED, Graph, Node, NodeKind, apply_node
from aquant_sim.frontend.lowering import quant_params
from aquant_sim.frontend.quantizers import ActQuantizer, WeightQuantizer
from aquant_sim.program import MAX_ACCUMULATOR_BITS, MAX_BITS, MIN_ACCUMULATOR_BITS, MIN_BITS, BorderGranularity
from aquant_sim.rounding import MAX_FRAC_BITS, OverflowPolicy

INIT_SAMPLES = 256
"""Calibration samples used for the activation ranges' error search (each tensor's values)."""


@dataclass(frozen=True)
class QuantConfig:
    """Number formats of the quantized network."""

    weight_bits: int = 4
    act_bits: int = 4
    first_last_bits: int = 8
    """Weights of the first and last conv/linear and their inputs (BRECQ protocol)."""
    internal_bits: int = 8
    """Tensors that no conv/linear reads (pre-add conv outputs, pooled features)."""
    frac_bits: int = 8
    """F: fraction bits that reach the border lookup unit, docs/contract.md (6)-(8)."""
    granularity: BorderGranularity = BorderGranularity.CHANNEL_LEVEL
    accumulator_bits: int = 32
    overflow: OverflowPolicy = OverflowPolicy.WRAP

    def __post_init__(self):
        for name in ("weight_bits", "act_bits", "first_last_bits", "internal_bits"):
            if not MIN_BITS <= getattr(self, name) <= MAX_BITS:
                raise ConfigError(f"quant config: {name} must be in {MIN_BITS}..{MAX_BITS}, got {getattr(self, name)}")
        if not 1 <= self.frac_bits <= MAX_FRAC_BITS:
            raise ConfigError(f"quant config: frac_bits must be in 1..{MAX_FRAC_BITS}, got {self.frac_bits}")
        if not isinstance(self.granularity, BorderGranularity):
            raise ConfigError(f"quant config: granularity must be a BorderGranularity, got {self.granularity!r}")
        # Checked here, not only when the program is built: lowering comes after the whole reconstruction.
        if not MIN_ACCUMULATOR_BITS <= self.accumulator_bits <= MAX_ACCUMULATOR_BITS:
            raise ConfigError(f"quant config: accumulator_bits must be in {MIN_ACCUMULATOR_BITS}..{MAX_ACCUMULATOR_BITS}, got {self.accumulator_bits}")
        if not isinstance(self.overflow, OverflowPolicy):
            raise ConfigError(f"quant config: overflow must be an OverflowPolicy, got {self.overflow!r}")


class ForwardMode(enum.Enum):
    """What the fake-quant model's forward computes (see the module docstring)."""

    FLOAT = "float"
    """Float fake quantization (fast; close to the program, not equal)."""
    EXACT = "exact"
    """The integer program's values, straight-through gradients from the float path."""


class QuantModel(nn.Module):
    """Weight quantizers (``weights[name]``) and activation quantizers (``acts[name]``) over a
    captured graph. ``forward`` is the fake-quant network in ``forward_mode``; :meth:`collect` and
    :meth:`run_nodes` serve the block reconstruction; :meth:`levels` gives every tensor's levels."""

    def __init__(self, graph: Graph, config: QuantConfig, calib: torch.Tensor):
        super().__init__()
        self.graph = graph
        self.config = config
        weighted = graph.weighted
        if not weighted:
            raise InputError("the model has no conv2d or linear layer to quantize")
        edge = {weighted[0].name, weighted[-1].name}
        self.weights = nn.ModuleDict({
            node.name: WeightQuantizer(node.weight, node.bias, config.first_last_bits if node.name in edge else config.weight_bits)
            for node in weighted
        })
        self.acts = nn.ModuleDict()
        self.forward_mode = ForwardMode.FLOAT
        self.exact_overflows: dict[str, int] = {}
        """Accumulator overflows per program tensor in the last exact run."""
        self._init_acts(calib[:INIT_SAMPLES])
        # Only what a reconstruction step trains gets gradients (it switches them on).
        self.requires_grad_(False)
        self.eval()

    @contextlib.contextmanager
    def forward_mode_as(self, mode: ForwardMode):
        """Run a block in ``mode``; the previous mode is restored afterwards."""
        if not isinstance(mode, ForwardMode):
            raise ConfigError(f"forward mode must be a ForwardMode, got {mode!r}")
        previous, self.forward_mode = self.forward_mode, mode
        try:
            yield self
        finally:
            self.forward_mode = previous

    def _exact(self) -> bool:
        if not isinstance(self.forward_mode, ForwardMode):
            raise ConfigError(f"QuantModel.forward_mode must be a ForwardMode, got {self.forward_mode!r}")
        return self.forward_mode is ForwardMode.EXACT

    def act_bits(self, node: Node) -> int:
        """The width of a requantized tensor (see the module docstring)."""
        if node.kind is NodeKind.INPUT:
            return self.config.first_last_bits
        readers = self.graph.weighted_readers(node.name)
        if not readers:
            return self.config.internal_bits
        if any(r.name == self.graph.weighted[-1].name for r in readers):
            return self.config.first_last_bits
        return self.config.act_bits

    def has_quantizer(self, node: Node) -> bool:
        """Every requantized tensor except a conv/linear output left as accumulators."""
        return node.kind in REQUANTIZED and not (node.name == self.graph.output and node.kind in WEIGHTED)

    @torch.no_grad()
    def _init_acts(self, calib: torch.Tensor) -> None:
        env = {self.graph.input: calib}
        for node in self.graph.nodes:
            if node.kind is not NodeKind.INPUT:
                env[node.name] = apply_node(node, [env[i] for i in node.inputs], node.weight, node.bias)
            if self.has_quantizer(node):
                x = env[node.name]
                act = ActQuantizer.from_data(x, self.act_bits(node), self.config.granularity, self.config.frac_bits)
                act.mean_level.copy_(_mean_levels(act, x))
                self.acts[node.name] = act

    def source_scale(self, name: str) -> torch.Tensor:
        """The scale of the quantized tensor ``name`` (through pass-through ops)."""
        return self.acts[self.graph.quant_source(name)].scale

    def bias_integers(self, node: Node) -> torch.Tensor:
        """The program's int32 bias ``round_half_up(b / (s_x * s_w[c]))``, computed in float64
        (the same numbers whatever the model's dtype), as float64 integers."""
        wq = self.weights[node.name]
        step = self.source_scale(node.inputs[0]).detach().double() * wq.scale.double()
        return torch.floor(wq.bias.double() / step + 0.5)

    def _compute(self, node: Node, inputs: list[torch.Tensor], quantized: bool) -> torch.Tensor:
        if node.kind not in WEIGHTED:
            return apply_node(node, inputs)
        wq = self.weights[node.name]
        if not quantized:
            return apply_node(node, inputs, wq.weight, wq.bias)
        s_x = self.source_scale(node.inputs[0])
        bias = self.bias_integers(node).to(inputs[0].dtype) * s_x * wq.scale
        return apply_node(node, inputs, wq(), bias)

    def _run_exact(self, nodes: list[Node], sources: dict, raw: frozenset = frozenset()) -> exact.Exact:
        result = exact.run(self, nodes, sources, raw)
        self.exact_overflows = result.overflows
        return result

    def _sources(self, nodes: list[Node], env: dict) -> dict:
        """Exact sources for ``nodes``: the tensors they read and do not produce, as (levels, value)."""
        produced = {node.name for node in nodes}
        names = dict.fromkeys(i for node in nodes for i in node.inputs if i not in produced)
        sources = {}
        for name in names:
            quant = quant_params(self, self.graph.quant_source(name))
            sources[name] = (exact.grid_levels(env[name], quant, name), env[name])
        return sources

    def run_nodes(self, nodes: list[Node], env: dict, raw: frozenset = frozenset()) -> dict:
        """Run fake-quant nodes over ``env`` (values as read, i.e. quantized); tensors in
        ``raw`` keep their value before their own quantizer. EXACT: the values in ``env`` that the
        nodes read must be their quantizers' levels ``s (q - z)`` (InputError otherwise)."""
        if self._exact():
            result = self._run_exact(nodes, self._sources(nodes, env), raw)
            env.update({node.name: result.raw.get(node.name, result.values[node.name]) for node in nodes})
            return env
        for node in nodes:
            y = self._compute(node, [env[i] for i in node.inputs], quantized=True)
            if node.name in self.acts and node.name not in raw:
                y = self.acts[node.name](y)
            env[node.name] = y
        return env

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._exact():
            result = self._run_exact(self.graph.nodes[1:], {self.graph.input: exact.input_source(self, x)})
            return result.values[self.graph.output]
        env = {self.graph.input: self.acts[self.graph.input](x)}
        return self.run_nodes(self.graph.nodes[1:], env)[self.graph.output]

    @torch.no_grad()
    def collect(self, x: torch.Tensor, names, quantized: bool, after_quantizer: bool = False) -> dict[str, torch.Tensor]:
        """Values of ``names`` before their own quantizer (after it with ``after_quantizer``: the
        values as the next op reads them), in the fake-quant network (``quantized``, in
        ``forward_mode``) or the float one; stops as soon as all are known. EXACT: the value
        before the quantizer is the real value the requantizer rounds (``exact._raw_value``)."""
        wanted, found = set(names), {}
        if quantized and self._exact():
            last = max(i for i, node in enumerate(self.graph.nodes) if node.name in wanted)
            nodes = self.graph.nodes[1 : last + 1]
            raw = frozenset() if after_quantizer else frozenset(wanted)
            result = self._run_exact(nodes, {self.graph.input: exact.input_source(self, x)}, raw)
            if not after_quantizer and self.graph.input in wanted:
                result.raw[self.graph.input] = x
            return {name: (result.values if after_quantizer else result.raw)[name] for name in wanted}
        env = {}
        for node in self.graph.nodes:
            if node.kind is NodeKind.INPUT:
                y = x
            else:
                y = self._compute(node, [env[i] for i in node.inputs], quantized)
            quantizes = quantized and node.name in self.acts
            if node.name in wanted and not (after_quantizer and quantizes):
                found[node.name] = y
            if len(found) == len(wanted):
                break
            if quantizes:
                y = self.acts[node.name](y)
                if node.name in wanted and after_quantizer:
                    found[node.name] = y
                    if len(found) == len(wanted):
                        break
            env[node.name] = y
        return found

    @torch.no_grad()
    def op_levels(self, node: Node, inputs: list[torch.Tensor]) -> torch.Tensor:
        """The levels one node produces from given (quantized, real-valued) inputs: compares a
        single op with the datapath's, free of errors propagated from earlier ops."""
        if self._exact():
            return self._run_exact([node], self._sources([node], dict(zip(node.inputs, inputs)))).levels[node.name]
        y = self._compute(node, inputs, quantized=True)
        if node.name in self.acts:
            return self.acts[node.name].levels(y)
        source = self.acts[self.graph.quant_source(node.name)]
        return torch.round(y / source.scale) + source.zero_point

    @torch.no_grad()
    def levels(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The integer levels of every quantized tensor (pass-through tensors included) for a
        batch, as the fake-quant network produces them; and the output (its value) under
        ``graph.output``."""
        if self._exact():
            result = self._run_exact(self.graph.nodes[1:], {self.graph.input: exact.input_source(self, x)})
            out = {name: result.levels[name] for name in result.levels if name != self.graph.output}
            out[self.graph.output] = result.values[self.graph.output]
            return out
        out, env = {}, {}
        for node in self.graph.nodes:
            y = x if node.kind is NodeKind.INPUT else self._compute(node, [env[i] for i in node.inputs], True)
            if node.name in self.acts:
                act = self.acts[node.name]
                out[node.name] = act.levels(y)
                y = act(y)
            elif node.kind not in WEIGHTED:
                source = self.acts[self.graph.quant_source(node.name)]
                out[node.name] = torch.round(y / source.scale) + source.zero_point
            env[node.name] = y
        out[self.graph.output] = env[self.graph.output]
        return out


def _mean_levels(act: ActQuantizer, x: torch.Tensor) -> torch.Tensor:
    """Per channel, the mean of ``clamp(k, qmin, qmax - 1) - z`` over the data: the level the
    channel-only border of equation (9) is centred on (``docs/calibration.md`` C.8)."""
    u = x.double() / float(act.scale) + act.zero_point
    k = torch.floor(u).clamp(act.qmin, act.qmax - 1) - act.zero_point
    return k.transpose(0, 1).reshape(x.shape[1], -1).mean(dim=1)
