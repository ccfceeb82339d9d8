"""The float model of every requantizing op, to measure what docs/contract.md claims: "the only
differences between the float model and the datapath come from representing M in 31 bits and
from float error in the float model".

For each op that ends in a requantizer, the float model takes the op's integer inputs from a
datapath run (``Simulator.run(x, keep_tensors=True)``), forms the op's REAL pre-rounding grid
position ``u`` in float64 from the real scales, and rounds it with the real-valued border rounding
(1)-(4) (``rounding.border_round`` with ``beta = B / 2^F``):

* conv2d, linear (D.1, D.2): ``u = acc * (s_x * s_w[c] / s_y) + z_y``
* add (D.9): ``u = (s_a * (a - z_a) + s_b * (b - z_b)) / s_y + z_y``, from both input scales
  (not from the datapath's integer input weights, whose 14-bit ratio is a second approximation)
* average pooling (D.11, D.12): ``u = acc * s_x / (N * s_y) + z_y``, N the window (or H * W)
* mul (D.16): ``u = (s_a * (a - z_a)) * (s_b * (b - z_b)) / s_y + z_y``, the real values'
  product (numpy broadcasts the per-channel operand as the datapath does)

``acc`` is the exact integer sum (no accumulator width), so an accumulator overflow, which the
datapath counts, also shows here as a difference. Each op is fed the datapath's own inputs, so
differences do not propagate: every layer is measured on its own. The result counts, per layer,
the elements whose level differs and the largest difference in levels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aquant_sim import reference, rounding
from aquant_sim.program import REQUANTIZING_OPS, OpKind, Program


@dataclass(frozen=True)
class LayerDifference:
    """Float model against datapath for one requantizing op: ``differing`` of ``elements``
    output levels differ, by at most ``max_level_difference`` levels."""

    name: str
    kind: OpKind
    elements: int
    differing: int
    max_level_difference: int

    def as_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind.value, "elements": self.elements,
                "differing": self.differing, "max_level_difference": self.max_level_difference}


def _per_channel(values: np.ndarray, ndim: int) -> np.ndarray:
    shape = [1] * ndim
    shape[1] = values.shape[0]
    return values.reshape(shape)


def real_position(program: Program, op, inputs: list[np.ndarray]) -> np.ndarray:
    """The op's real grid position ``u - z_y`` (float64) before rounding, from its integer inputs."""
    quants = [program.tensor(name).quant for name in op.inputs]
    s_y = program.tensor(op.output).quant.scale
    if op.kind in (OpKind.CONV2D, OpKind.LINEAR):
        acc_fn = reference.conv2d_acc if op.kind is OpKind.CONV2D else reference.linear_acc
        acc = acc_fn(inputs[0], op, quants[0].zero_point)
        multiplier = quants[0].scale * op.weight_scale / s_y
        return acc.astype(np.float64) * _per_channel(multiplier, acc.ndim)
    if op.kind is OpKind.ADD:
        a, b = (x.astype(np.float64) - q.zero_point for x, q in zip(inputs, quants))
        return (quants[0].scale * a + quants[1].scale * b) / s_y
    if op.kind is OpKind.MUL:
        a, b = (q.scale * (x.astype(np.float64) - q.zero_point) for x, q in zip(inputs, quants))
        return a * b / s_y
    if op.kind is OpKind.CONCAT:
        scales = [np.full(x.shape[1], q.scale / s_y) for x, q in zip(inputs, quants)]
        acc = reference.concat_acc(inputs[0], inputs[1], quants[0].zero_point, quants[1].zero_point)
        return acc.astype(np.float64) * _per_channel(np.concatenate(scales), acc.ndim)
    if op.kind is OpKind.AVGPOOL2D:
        acc = reference.avgpool_acc(inputs[0], op, quants[0].zero_point)
        count = op.kernel_size[0] * op.kernel_size[1]
    else:  # GLOBAL_AVGPOOL
        acc = reference.global_avgpool_acc(inputs[0], quants[0].zero_point)
        count = inputs[0].shape[2] * inputs[0].shape[3]
    return acc.astype(np.float64) * (quants[0].scale / (count * s_y))


def float_levels(program: Program, op, inputs: list[np.ndarray]) -> np.ndarray:
    """The float model's output levels of one requantizing op: (1)-(4) of :func:`real_position`."""
    out = program.tensor(op.output).quant
    return rounding.border_round(real_position(program, op, inputs), 1.0, out.zero_point, out.qmin, out.qmax,
                                 op.requant.borders.beta, channel_axis=1)


def measure(program: Program, tensors: dict[str, np.ndarray]) -> list[LayerDifference]:
    """Compare the float model with the datapath's tensors (``SimResult.tensors`` of a run with
    ``keep_tensors=True``) for every requantizing op, in program order."""
    differences = []
    for op in program.ops:
        if op.kind not in REQUANTIZING_OPS or op.requant is None:
            continue
        expected = float_levels(program, op, [tensors[name] for name in op.inputs])
        got = tensors[op.output].astype(np.int64)
        gap = np.abs(expected - got)
        differences.append(LayerDifference(op.name, op.kind, int(got.size), int(np.count_nonzero(gap)),
                                           int(gap.max()) if gap.size else 0))
    return differences
