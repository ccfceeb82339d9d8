"""The backend protocol: what one implementation of the datapath gives the simulator.

The simulator (:mod:`aquant_sim.simulator`) walks the program and keeps the counters; a
:class:`Datapath` computes one op. Two implementations exist and must return identical integers
and counts for every op: :class:`aquant_sim.reference_datapath.ReferenceDatapath` (plain numpy,
the oracle) and :class:`aquant_sim.kernels.datapath.NumbaDatapath` (fused numba passes). The
simulator picks one by :class:`aquant_sim.simulator.Backend`.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, Sequence, runtime_checkable

import numpy as np

from aquant_sim.program import OpKind, QuantParams
from aquant_sim.rounding import OverflowPolicy, RequantVariant

TFLITE_AVERAGES = (RequantVariant.TFLITE_AVGPOOL, RequantVariant.TFLITE_MEAN)
"""The variants that divide an average's sum by its count (contract (25)-(30))."""


def average_count(op, input_shape: tuple[int, ...]) -> int:
    """How many levels one output of an average pooling (its window, ``KH * KW``) or a global
    average pooling (``H * W`` of its (C, H, W) input) sums."""
    if op.kind is OpKind.AVGPOOL2D:
        return op.kernel_size[0] * op.kernel_size[1]
    return input_shape[1] * input_shape[2]


class Accumulated(NamedTuple):
    """What an accumulating op produced: int32 ``values`` of shape ``(N, *out_shape)`` (int64
    A-bit accumulators when the op has no requantizer), the largest exact ``|acc|`` before the
    accumulator width, the count of sums that did not fit A bits, and the count of outputs at
    the zero-point (zero accumulators when unrequantized)."""

    values: np.ndarray
    max_abs_acc: int
    overflows: int
    zeros: int


class PassedThrough(NamedTuple):
    """What an exact op (max pooling, clamp, flatten, lookup table) produced: int32 ``values``
    and the count of outputs at the (output's) zero-point."""

    values: np.ndarray
    zeros: int


@runtime_checkable
class Datapath(Protocol):
    """One implementation of every op of the integer program (``docs/datapath.md``)."""

    def round_input(self, x: np.ndarray, quant: QuantParams, beta: np.ndarray) -> np.ndarray:
        """The float network input ``x`` (finite, channel on axis 1) as int32 levels of
        ``quant``: real-valued border rounding (1)-(4) with the real borders ``beta`` (G, J)."""
        ...

    def run_accumulating(self, op, inputs: Sequence[np.ndarray], in_quants: Sequence[QuantParams], out_quant,
                         out_shape: tuple[int, ...], accumulator_bits: int, overflow: OverflowPolicy) -> Accumulated:
        """Conv2d, linear, add, average pooling, mul: exact sums (D.1-D.12, D.16), the A-bit accumulator with
        ``overflow`` (D.4, counted), then the requantizer (6)-(8) unless ``op.requant`` is None."""
        ...

    def run_pass_through(self, op, x: np.ndarray, quant: QuantParams) -> PassedThrough:
        """Max pooling, clamp or flatten of levels ``x`` of format ``quant`` (D.10, D.13, D.14)."""
        ...

    def run_table(self, op, x: np.ndarray, in_quant: QuantParams, out_quant: QuantParams) -> PassedThrough:
        """A lookup table (D.15): levels ``x`` of format ``in_quant`` to int32 levels of
        ``out_quant``, and the count of outputs at ``out_quant``'s zero-point."""
        ...
