"""The exact forward of the fake-quant model (``docs/calibration.md`` C.9, contract 2.2).

Values are the integer program's, bit for bit; gradients are the float fake-quant path's.

For the graph nodes it runs, :func:`run` builds the very ops that lowering writes
(:func:`aquant_sim.frontend.lowering.lower_node` on a :class:`~aquant_sim.builder.ProgramBuilder`
that holds the nodes' input tensors: the same ``(m, n)``, add weights, ReLU6 levels, int32 biases
and F-bit border tables) from the model's current quantizers, and executes them with the torch
backend of the datapath (:func:`aquant_sim.frontend.emulation.run_op`): exact integer sums,
the accumulator width and overflow policy, the requantizer (6)-(8). The value of a tensor is
its dequantized levels ``s (q - z)`` (or ``acc s_x s_w[c]`` for the accumulators of the network
output), computed as the simulator's ``dequantize`` computes them.

Gradients (when autograd records): every node also runs its float fake-quant op (the surrogate,
``QuantModel``'s FLOAT path) on the exact input values, and its output carries the exact value
forward and the surrogate's gradient backward (:class:`_StraightThrough`): so scales get their
LSQ gradients through values that are the program's. Without autograd the surrogate is skipped.

The program is defined only for hard quantizers: soft AdaRound weights, soft borders, or QDrop
dropping while training make :func:`check_hard` raise a :class:`ConfigError` naming the
quantizer; harden them first (``docs/calibration.md`` C.9).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from aquant_sim.errors import ConfigError, InputError
from aquant_sim.frontend import emulation
from aquant_sim.frontend.graph import Activation, Node, NodeKind, apply_node
from aquant_sim.frontend.lowering import declare_source, lower_node, quant_params, source_builder
from aquant_sim.frontend.quantizers import BorderMode, WeightRounding
from aquant_sim.program import OpKind, QuantParams

if TYPE_CHECKING:
    from aquant_sim.frontend.qmodel import QuantModel


class _StraightThrough(torch.autograd.Function):
    """Forward: the exact value; backward: the gradient goes to the surrogate unchanged."""

    @staticmethod
    def forward(ctx, surrogate: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
        return exact.view_as(exact)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


def check_hard(qm: QuantModel, names) -> None:
    """ConfigError unless the quantizers of graph tensors ``names`` (weights and activations) are
    in a state the program represents."""
    for name in names:
        wq = qm.weights[name] if name in qm.weights else None
        if wq is not None and wq.rounding is WeightRounding.ADAROUND and wq.soft:
            raise ConfigError(f"exact forward: the weights of graph node '{name}' are soft AdaRound weights; "
                              "harden them (soft = False) before running exact")
        act = qm.acts[name] if name in qm.acts else None
        if act is None:
            continue
        if act.mode is BorderMode.SOFT:
            raise ConfigError(f"exact forward: the activation quantizer of '{name}' has soft borders; "
                              "switch it to BorderMode.HARD before running exact")
        if act.training and act.drop_prob > 0:
            raise ConfigError(f"exact forward: the activation quantizer of '{name}' drops quantization "
                              f"(drop_prob = {act.drop_prob}) while training; the program has no such op")


def grid_levels(value: torch.Tensor, quant: QuantParams, name: str) -> torch.Tensor:
    """The int64 levels of a tensor held as dequantized levels ``s (q - z)``; InputError if a value
    is not one (a value before its quantizer, or a QDrop mix)."""
    levels = torch.round(value.detach().double() / quant.scale).to(torch.int64) + quant.zero_point
    if not torch.equal(emulation.dequantize(levels, quant, value.dtype), value.detach()):
        raise InputError(f"exact forward: tensor '{name}' holds values that are not levels of its quantizer "
                         f"(scale {quant.scale}, zero-point {quant.zero_point}); pass values as read, after the quantizer")
    return levels


@dataclass
class Exact:
    """The outcome of :func:`run`: int64 levels (accumulators for an unrequantized output) and
    values of every graph tensor it holds, ``raw`` values of the requested tensors, and the
    accumulator overflows per program op."""

    levels: dict[str, torch.Tensor] = field(default_factory=dict)
    values: dict[str, torch.Tensor] = field(default_factory=dict)
    raw: dict[str, torch.Tensor] = field(default_factory=dict)
    overflows: dict[str, int] = field(default_factory=dict)


def _raw_value(node: Node, acc: torch.Tensor, op, quant, dtype) -> torch.Tensor:
    """The real value the requantizer rounds, ``s_y (v / 2^F - z_y)`` with ``v`` of (6) (the
    dequantized accumulators when there is no requantizer), with the fused activation applied."""
    if op.requant is None:
        return emulation.dequantize(acc, quant, dtype)
    v = emulation.scale_to_fixed_point(acc, op.requant, quant.zero_point)
    one = float(1 << op.requant.frac_bits)
    value = (quant.scale * (v.double() / one - quant.zero_point)).to(dtype)
    if node.activation is Activation.RELU:
        return F.relu(value)
    return F.relu6(value) if node.activation is Activation.RELU6 else value


def run(qm: QuantModel, nodes: list[Node], sources: dict[str, tuple[torch.Tensor, torch.Tensor]],
        raw: frozenset = frozenset()) -> Exact:
    """Run ``nodes`` exactly from ``sources`` (graph tensor -> (int64 levels, value)); nodes in
    ``raw`` also get their value before their own quantizer (:func:`_raw_value`) in ``raw``.

    When autograd records, each node's value takes the gradient of its float fake-quant op on the
    exact input values (``QuantModel``'s FLOAT path: the op, then the node's quantizer); a node
    in ``raw`` gives that gradient to its raw value (the op without the quantizer) instead, and
    its quantized value has none.
    """
    check_hard(qm, [*sources, *(node.name for node in nodes)])
    config = qm.config
    gradients = torch.is_grad_enabled()
    dtype = next(iter(qm.acts.values())).scale.dtype
    result = Exact()
    names = {}
    builder = None
    for name, (levels, value) in sources.items():
        if builder is None:
            builder = source_builder(qm, name)
        else:
            declare_source(qm, builder, name)
        names[name] = name
        result.levels[name], result.values[name] = levels, value
    program_levels = dict(result.levels)
    for node in nodes:
        first = len(builder.ops)
        lower_node(qm, builder, node, names)
        node_raw = None
        for op in builder.ops[first:]:
            out_quant = builder.tensor(op.output).quant
            ins = [program_levels[i] for i in op.inputs]
            quants = [builder.tensor(i).quant for i in op.inputs]
            if op.kind in emulation.REQUANTIZING_KINDS:
                acc, count = emulation.apply_overflow(emulation.accumulate(op, ins, quants), config.accumulator_bits, config.overflow)
                result.overflows[op.output] = count
                if node.name in raw:
                    value_raw = _raw_value(node, acc, op, out_quant, dtype)
                    if op.kind is OpKind.CONCAT and node_raw is not None:
                        # A chained concat (more than two inputs): its first channels are the
                        # partial result, copied (M = 1); their raw values are the partial's.
                        value_raw = torch.cat([node_raw, value_raw[:, node_raw.shape[1]:]], dim=1)
                    node_raw = value_raw
                out = acc if op.requant is None else emulation.requantize(acc, op.requant, out_quant)
            else:
                out, _ = emulation.run_op(op, ins, quants, out_quant, config.accumulator_bits, config.overflow)
            program_levels[op.output] = out
        if node.name in raw and node.kind is NodeKind.LUT:
            # The real value the table rounds: the function of the exact input value.
            node_raw = apply_node(node, [result.values[i] for i in node.inputs])
        levels = program_levels[names[node.name]]
        value = emulation.dequantize(levels, builder.tensor(names[node.name]).quant, dtype)
        if gradients:
            before = qm._compute(node, [result.values[i] for i in node.inputs], quantized=True)
            if node_raw is not None:
                # The raw value is what a caller of raw reads; the quantized value stays
                # without gradient (its quantizer's surrogate would be work for nothing).
                node_raw = _StraightThrough.apply(before, node_raw)
            else:
                value = _StraightThrough.apply(qm.acts[node.name](before) if node.name in qm.acts else before, value)
        if node.name in raw:
            result.raw[node.name] = value if node_raw is None else node_raw
        result.levels[node.name], result.values[node.name] = levels, value
    return result


def input_source(qm: QuantModel, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The network input's levels ((1)-(4) in float64, as the simulator quantizes it) and value."""
    name = qm.graph.input
    check_hard(qm, [name])
    act, quant = qm.acts[name], quant_params(qm, name)
    levels = emulation.quantize_input(x, quant, act.border_table())
    value = emulation.dequantize(levels, quant, act.scale.dtype)
    if torch.is_grad_enabled():
        value = _StraightThrough.apply(act(x.to(act.scale.dtype)), value)
    return levels, value
