"""Lowering a calibrated fake-quant model to the integer program.

Every number comes from the fake-quant model, so that the program computes what that model
computes (``docs/calibration.md`` C.7): integer weights from the weight quantizers (hard
rounding), weight scales ``s_w[c]`` and zero-points ``z_w[c]``, biases ``round_half_up(b / (s_x s_w[c]))`` (int32, D.1),
activation scales and zero-points, and border tables ``B = encode_borders(beta, F)`` (or the
plain 1/2 table for nearest rounding). ``ProgramBuilder`` derives the requantizers' ``(m, n)``
from ``M = s_x s_w[c] / s_y``, the residual adds' integer weights and ReLU6's level ``q(6)``.
A fused ReLU is the requantizer's clamp at ``qmin = z = 0`` and adds no op.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aquant_sim.builder import ProgramBuilder
from aquant_sim.errors import UnsupportedError
from aquant_sim.frontend.graph import Activation, NodeKind
from aquant_sim.frontend.qmodel import QuantModel
from aquant_sim.frontend.quantizers import BorderMode
from aquant_sim.program import BorderTable, Program, QuantParams


@dataclass(frozen=True)
class Lowered:
    """The program and, for every graph tensor, the program tensor that holds its levels."""

    program: Program
    tensors: dict[str, str]


def _quant(qm: QuantModel, name: str) -> QuantParams:
    act = qm.acts[name]
    return QuantParams(act.bits, False, float(act.scale.detach()), act.zero_point)


def _table(qm: QuantModel, name: str) -> BorderTable:
    act = qm.acts[name]
    if act.mode is BorderMode.NEAREST:
        return BorderTable.nearest(act.frac_bits)
    return BorderTable(act.frac_bits, act.border_integers())


def lower(qm: QuantModel) -> Lowered:
    """Build the integer program of a fake-quant model in its hard (deployed) state."""
    graph, config = qm.graph, qm.config
    first = graph.nodes[0]
    builder = ProgramBuilder(first.name, first.shape, _quant(qm, first.name), _table(qm, first.name))
    names = {first.name: first.name}
    for node in graph.nodes[1:]:
        ins = [names[i] for i in node.inputs]
        kind, name = node.kind, node.name
        quant = _quant(qm, name) if name in qm.acts else None
        table = _table(qm, name) if name in qm.acts else None
        if kind in (NodeKind.CONV, NodeKind.LINEAR):
            wq = qm.weights[name]
            weights = wq.integers().detach().numpy().astype(np.int64)
            scale = wq.scale.detach().double().numpy()
            bias = qm.bias_integers(node).numpy().astype(np.int64)
            zero_point = wq.zero_point.numpy().astype(np.int64)
            if kind is NodeKind.CONV:
                out = builder.conv2d(name, ins[0], weights, wq.bits, scale, bias, quant, table,
                                     stride=node.stride, padding=node.padding, dilation=node.dilation, groups=node.groups,
                                     weight_zero_point=zero_point)
            else:
                out = builder.linear(name, ins[0], weights, wq.bits, scale, bias, quant, table, weight_zero_point=zero_point)
        elif kind is NodeKind.ADD:
            out = builder.add(name, ins[0], ins[1], quant, table)
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
    program = builder.build(names[graph.output], config.accumulator_bits, config.overflow)
    return Lowered(program, names)
