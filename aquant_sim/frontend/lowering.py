"""Lowering a calibrated fake-quant model to the integer program.

Every number comes from the fake-quant model, so that the program computes what that model
computes (``docs/calibration.md`` C.7): integer weights from the weight quantizers (hard
rounding), weight scales ``s_w[c]``, biases ``round_half_up(b / (s_x s_w[c]))`` (int32, D.1),
activation scales and zero-points, and border tables ``B = encode_borders(beta, F)`` (or the
plain 1/2 table for nearest rounding). ``ProgramBuilder`` derives the requantizers' ``(m, n)``
from ``M = s_x s_w[c] / s_y``, the residual adds' integer weights, ReLU6's level ``q(6)`` and
the lookup tables of activations (``aquant_sim.lut``, from the input's and the output's
quantizers).
A fused ReLU is the requantizer's clamp at ``qmin = z = 0`` and adds no op.

:func:`lower_node` is the one place that turns a graph node into program ops: :func:`lower`
calls it for the whole graph, the exact forward (``aquant_sim.frontend.exact``) for the nodes it
runs, so that both compute with the same ops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from aquant_sim.builder import ProgramBuilder
from aquant_sim.errors import UnsupportedError
from aquant_sim.frontend.graph import Activation, Node, NodeKind
from aquant_sim.program import BorderTable, Program, QuantParams

if TYPE_CHECKING:
    from aquant_sim.frontend.qmodel import QuantModel


@dataclass(frozen=True)
class Lowered:
    """The program and, for every graph tensor, the program tensor that holds its levels."""

    program: Program
    tensors: dict[str, str]


def quant_params(qm: QuantModel, name: str) -> QuantParams:
    """The program's parameters of the tensor that activation quantizer ``name`` quantizes."""
    act = qm.acts[name]
    return QuantParams(act.bits, False, float(act.scale.detach()), act.zero_point)


def _table(qm: QuantModel, name: str) -> BorderTable:
    return qm.acts[name].border_table()


def declare_source(qm: QuantModel, builder: ProgramBuilder, name: str) -> str:
    """Declare graph tensor ``name`` (a requantized tensor or a pass-through of one) as a tensor
    the builder's ops may read, with its quantizer's parameters and table."""
    source = qm.graph.quant_source(name)
    return builder.declare(name, qm.graph[name].shape, quant_params(qm, source), _table(qm, source))


def source_builder(qm: QuantModel, name: str) -> ProgramBuilder:
    """A builder whose input is graph tensor ``name`` (quantized as its quantizer says)."""
    source = qm.graph.quant_source(name)
    return ProgramBuilder(name, qm.graph[name].shape, quant_params(qm, source), _table(qm, source))


def lower_node(qm: QuantModel, builder: ProgramBuilder, node: Node, names: dict[str, str]) -> None:
    """Emit the op(s) of one graph node (its own op, then the clamp of a fused ReLU6, or of a
    fused ReLU whose zero-point is not ``qmin``); ``names`` maps graph tensors to the program
    tensors that hold their levels and gains ``node``'s."""
    ins = [names[i] for i in node.inputs]
    kind, name = node.kind, node.name
    quant = quant_params(qm, name) if name in qm.acts else None
    table = _table(qm, name) if name in qm.acts else None
    if kind in (NodeKind.CONV, NodeKind.LINEAR):
        wq = qm.weights[name]
        weights = wq.integers().detach().cpu().numpy().astype(np.int64)
        scale = wq.scale.detach().double().cpu().numpy()
        bias = qm.bias_integers(node).cpu().numpy().astype(np.int64)
        zero_point = wq.zero_point.cpu().numpy().astype(np.int64)
        if kind is NodeKind.CONV:
            out = builder.conv2d(name, ins[0], weights, wq.bits, scale, bias, quant, table,
                                 stride=node.stride, padding=node.padding, dilation=node.dilation, groups=node.groups,
                                 weight_zero_point=zero_point, padding_end=node.padding_end)
        else:
            out = builder.linear(name, ins[0], weights, wq.bits, scale, bias, quant, table, weight_zero_point=zero_point)
    elif kind is NodeKind.ADD:
        out = builder.add(name, ins[0], ins[1], quant, table)
    elif kind is NodeKind.CONCAT:
        out = builder.concat(name, ins, quant, table)
    elif kind is NodeKind.AVGPOOL:
        out = builder.avgpool(name, ins[0], node.kernel_size, node.stride, quant, table, node.padding)
    elif kind is NodeKind.GAP:
        out = builder.global_avgpool(name, ins[0], quant, table)
    elif kind is NodeKind.MAXPOOL:
        out = builder.maxpool(name, ins[0], node.kernel_size, node.stride, node.padding, node.dilation)
    elif kind is NodeKind.FLATTEN:
        out = builder.flatten(name, ins[0])
    elif kind is NodeKind.RELU:
        out = builder.relu(name, ins[0])
    elif kind is NodeKind.LUT:
        out = builder.lut(name, ins[0], node.unary, quant, table)
    elif kind is NodeKind.MUL:
        out = builder.mul(name, ins[0], ins[1], quant, table)
    else:
        raise UnsupportedError(f"cannot lower {kind.value} at graph node '{name}'")
    if node.activation is not Activation.NONE:
        if quant is None:
            raise UnsupportedError(f"graph node '{name}': an activation on the unrequantized network output cannot be lowered")
        if node.activation is Activation.RELU6:
            out = builder.relu6(f"{name}_relu6", out)
        elif quant.zero_point != quant.qmin:
            out = builder.relu(f"{name}_relu", out)
    names[name] = out


def lower(qm: QuantModel) -> Lowered:
    """Build the integer program of a fake-quant model in its hard (deployed) state."""
    graph, config = qm.graph, qm.config
    builder = source_builder(qm, graph.input)
    names = {graph.input: graph.input}
    for node in graph.nodes[1:]:
        lower_node(qm, builder, node, names)
    program = builder.build(names[graph.output], config.accumulator_bits, config.overflow)
    return Lowered(program, names)
