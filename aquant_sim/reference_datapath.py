"""The REFERENCE backend's datapath: plain numpy, one step at a time, from
:mod:`aquant_sim.reference` (exact sums) and :mod:`aquant_sim.rounding` (accumulator width and
requantizer). It is the oracle that :class:`aquant_sim.kernels.datapath.NumbaDatapath` must
match exactly, values and counts (:class:`aquant_sim.datapath.Datapath`)."""

from __future__ import annotations

import numpy as np

from aquant_sim import reference, rounding
from aquant_sim.datapath import TFLITE_AVERAGES, Accumulated, PassedThrough, average_count
from aquant_sim.program import OpKind
from aquant_sim.rounding import RequantVariant


class ReferenceDatapath:
    """:class:`aquant_sim.datapath.Datapath` in plain numpy."""

    def round_input(self, x, quant, beta) -> np.ndarray:
        """(1)-(4) by ``rounding.border_round``, as int32."""
        return rounding.border_round(x, quant.scale, quant.zero_point, quant.qmin, quant.qmax, beta,
                                     channel_axis=1).astype(np.int32)

    def run_accumulating(self, op, inputs, in_quants, out_quant, out_shape, accumulator_bits, overflow) -> Accumulated:
        """Exact sums, ``max |acc|``, the A-bit accumulator (counted), requantization (6)-(8); an
        FP32_ADD or TFLITE_ADD add has no integer sum (``max |acc|`` and overflows 0)."""
        x, z = inputs[0], in_quants[0].zero_point
        if op.kind is OpKind.ADD and op.requant.variant in (RequantVariant.FP32_ADD, RequantVariant.TFLITE_ADD):
            add = reference.add_fp32 if op.requant.variant is RequantVariant.FP32_ADD else reference.add_tflite
            result = add(x, inputs[1], op, *in_quants, out_quant).astype(np.int32)
            return Accumulated(result, 0, 0, int(np.count_nonzero(result == out_quant.zero_point)))
        if op.kind is OpKind.CONV2D:
            acc = reference.conv2d_acc(x, op, z)
        elif op.kind is OpKind.LINEAR:
            acc = reference.linear_acc(x, op, z)
        elif op.kind is OpKind.ADD:
            acc = reference.add_acc(x, inputs[1], op.weight_a, op.weight_b, z, in_quants[1].zero_point)
        elif op.kind is OpKind.MUL:
            acc = reference.mul_acc(x, inputs[1], z, in_quants[1].zero_point)
        elif op.kind is OpKind.CONCAT:
            acc = reference.concat_acc(x, inputs[1], z, in_quants[1].zero_point)
        elif op.kind is OpKind.AVGPOOL2D:
            acc = reference.avgpool_acc(x, op, z)
        else:
            acc = reference.global_avgpool_acc(x, z)
        max_abs = int(np.abs(acc).max())
        acc, overflows = rounding.apply_overflow(acc, accumulator_bits, overflow)
        if op.requant is None:
            return Accumulated(acc, max_abs, overflows, int(np.count_nonzero(acc == 0)))
        if op.requant.variant in TFLITE_AVERAGES:
            result = reference.average_tflite(acc, op, average_count(op, x.shape[1:]), in_quants[0], out_quant).astype(np.int32)
        else:
            result = reference.requantize(acc, op.requant, out_quant).astype(np.int32)
        return Accumulated(result, max_abs, overflows, int(np.count_nonzero(result == out_quant.zero_point)))

    def run_pass_through(self, op, x, quant) -> PassedThrough:
        """Max pooling, clamp or flatten."""
        if op.kind is OpKind.MAXPOOL2D:
            result = reference.maxpool(x, op, quant.qmin)
        elif op.kind is OpKind.CLAMP:
            result = reference.clamp(x, op.lo, op.hi)
        else:
            result = x.reshape(x.shape[0], -1)
        result = result.astype(np.int32, copy=False)
        return PassedThrough(result, int(np.count_nonzero(result == quant.zero_point)))

    def run_table(self, op, x, in_quant, out_quant) -> PassedThrough:
        """A lookup table (D.15)."""
        result = reference.lut(x, op.table, in_quant.qmin).astype(np.int32)
        return PassedThrough(result, int(np.count_nonzero(result == out_quant.zero_point)))
