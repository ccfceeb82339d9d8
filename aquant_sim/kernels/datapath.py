"""The simulator's fused hot path: one op from its inputs to its output levels and counters.

A conv2d or linear that the AMX kernel takes (``int8.conv2d_levels``) and whose requantizer is
(6)-(8) (BORDER) runs the requantizer in that kernel's epilogue: each block of 32 channels of
one image is requantized as soon as it is accumulated (``requant.requantize_row``: the bias,
the A-bit accumulator, (6)-(8), the counts), so the layer's sums are never stored. For any other
accumulating op (conv2d, linear, add, concat, average pooling, mul) one parallel numba pass reads the
exact sums (for conv2d and linear from the int8 kernels where the operands fit, else from
the general exact GEMM), adds the bias in int64, records ``max |acc|``, applies the A-bit accumulator
(``rounding.apply_overflow``: WRAP or SATURATE, counted), requantizes (6)-(8) and counts outputs
at the zero-point, writing int32 levels in NCHW order (a requantizer of a runtime's variant,
GEMMLOWP or FP32, takes a second pass over the A-bit accumulators; an add with the FP32_ADD
variant is one pass of ``elementwise.add_fp32`` over its two inputs, one with TFLITE_ADD of
``requant.add_tflite``; TFLite's average and mean divide in ``requant.average_tflite_into``). Per-(n, c) counts are reduced afterwards
in a fixed order, so the counters do not depend on the thread count. The REFERENCE backend does
the same steps one numpy pass at a time (:mod:`aquant_sim.reference_datapath`); the tests
require identical integers and counters.
"""

from __future__ import annotations

import numpy as np

from aquant_sim.datapath import TFLITE_AVERAGES, Accumulated, PassedThrough, average_count
from aquant_sim.kernels import int8
from aquant_sim.kernels.conv import conv2d_sums, linear_sums
from aquant_sim.kernels.elementwise import add_acc, add_fp32, clamp_counted, concat_acc, count_equal, lut_into, mul_acc
from aquant_sim.kernels.input import border_round_levels
from aquant_sim.kernels.pool import avgpool_acc, global_avgpool_acc, maxpool_counted
from aquant_sim.kernels.requant import (
    FINISH_KERNELS, add_tflite, average_tflite_into, border_epilogue, requantize_rows_variant,
)
from aquant_sim.program import OpKind, QuantParams
from aquant_sim.rounding import OverflowPolicy, RequantVariant, accumulator_range

_MAX_ABS, _OVERFLOWS, _ZEROS = range(3)


def _sums_and_bias(op, inputs: list[np.ndarray], in_quants: list[QuantParams]):
    """Exact sums (any exact dtype, C-contiguous), whether they are channel-major (C, N, P) or
    batch-major (N, C, P), and the int64 bias per channel. Conv2d and linear take the int8
    kernels where their operands fit (:mod:`aquant_sim.kernels.int8`), else the general path."""
    x, z = inputs[0], in_quants[0].zero_point
    levels = (in_quants[0].qmin, in_quants[0].qmax)  # the format bounds every level: no pass to measure them
    if op.kind is OpKind.CONV2D:
        sums = int8.conv2d_sums(x, op, z, levels)
        return (conv2d_sums(x, op, z), True, op.bias) if sums is None else (sums, False, op.bias)
    if op.kind is OpKind.LINEAR:
        sums = int8.linear_sums(x, op, z, levels)
        return (linear_sums(x, op, z) if sums is None else sums), True, op.bias
    if op.kind is OpKind.ADD:
        acc = add_acc(x, inputs[1], op.weight_a, op.weight_b, z, in_quants[1].zero_point)
    elif op.kind is OpKind.MUL:
        acc = mul_acc(x, inputs[1], z, in_quants[1].zero_point)
    elif op.kind is OpKind.CONCAT:
        acc = concat_acc(x, inputs[1], z, in_quants[1].zero_point)
    elif op.kind is OpKind.AVGPOOL2D:
        acc = avgpool_acc(x, op, z)
    else:
        acc = global_avgpool_acc(x, z)
    return acc.reshape(acc.shape[0], acc.shape[1], -1), False, np.zeros(acc.shape[1], dtype=np.int64)


def _epilogue_levels(op, x: np.ndarray, in_quant: QuantParams, out_quant: QuantParams, accumulator_bits: int,
                     overflow: OverflowPolicy):
    """A conv2d's or linear's output levels and counts from the AMX kernel with the BORDER
    requantizer in its epilogue (:func:`int8.conv2d_levels`), or None where it declines."""
    lo, hi = accumulator_range(accumulator_bits)
    epilogue = border_epilogue(op.bias, op.requant, out_quant, lo, hi, overflow is OverflowPolicy.SATURATE)
    levels = (in_quant.qmin, in_quant.qmax)
    run = int8.conv2d_levels if op.kind is OpKind.CONV2D else int8.linear_levels
    return run(x, op, in_quant.zero_point, epilogue, levels)


class NumbaDatapath:
    """:class:`aquant_sim.datapath.Datapath` in fused numba passes."""

    def round_input(self, x, quant, beta) -> np.ndarray:
        """(1)-(4) in one parallel pass (:mod:`aquant_sim.kernels.input`), int32 levels."""
        return border_round_levels(x, quant.scale, quant.zero_point, quant.qmin, quant.qmax, beta)

    def run_accumulating(self, op, inputs, in_quants, out_quant, out_shape, accumulator_bits: int,
                         overflow: OverflowPolicy) -> Accumulated:
        """Run an accumulating op: int32 levels of shape ``(N, *out_shape)`` (int64 accumulators
        when ``op.requant`` is None) and the counts; an FP32_ADD add has no integer sum (``max |acc|``
        and overflows 0)."""
        if op.kind is OpKind.ADD and op.requant.variant in (RequantVariant.FP32_ADD, RequantVariant.TFLITE_ADD):
            add = add_fp32 if op.requant.variant is RequantVariant.FP32_ADD else add_tflite
            values = add(inputs[0], inputs[1], op, *in_quants, out_quant, dtype=np.int32)
            return Accumulated(values, 0, 0, count_equal(values, out_quant.zero_point))
        batch = inputs[0].shape[0]
        if op.kind in (OpKind.CONV2D, OpKind.LINEAR) and op.requant is not None \
                and op.requant.variant is RequantVariant.BORDER:
            fused = _epilogue_levels(op, inputs[0], in_quants[0], out_quant, accumulator_bits, overflow)
            if fused is not None:
                levels, stats = fused
                return Accumulated(levels.reshape((batch, *out_shape)), int(stats[:, _MAX_ABS].max()),
                                   int(stats[:, _OVERFLOWS].sum()), int(stats[:, _ZEROS].sum()))
        sums, channel_major, bias = _sums_and_bias(op, inputs, in_quants)
        shape = (batch, out_shape[0], sums.shape[2])
        stats = np.empty((batch * out_shape[0], 3), dtype=np.int64)
        lo, hi = accumulator_range(accumulator_bits)
        saturate = overflow is OverflowPolicy.SATURATE
        finish_requantize, finish_accumulate = FINISH_KERNELS[channel_major]
        if op.requant is None:
            out = np.empty(shape, dtype=np.int64)
            finish_accumulate(sums, bias, lo, hi, saturate, out, stats)
        elif op.requant.variant is not RequantVariant.BORDER:
            acc = np.empty(shape, dtype=np.int64)
            finish_accumulate(sums, bias, lo, hi, saturate, acc, stats)
            out = np.empty(shape, dtype=np.int32)
            if op.requant.variant in TFLITE_AVERAGES:
                average_tflite_into(acc, op, average_count(op, inputs[0].shape[1:]), in_quants[0], out_quant, out)
            else:
                requantize_rows_variant(acc, op.requant, out_quant, out)
            values = out.reshape((batch, *out_shape))
            return Accumulated(values, int(stats[:, _MAX_ABS].max()), int(stats[:, _OVERFLOWS].sum()),
                               count_equal(values, out_quant.zero_point))
        else:
            r = op.requant
            out = np.empty(shape, dtype=np.int32)
            finish_requantize(sums, bias, lo, hi, saturate, r.multiplier, r.shift, r.frac_bits,
                               r.borders.values, out_quant.zero_point, out_quant.qmin, out_quant.qmax, out, stats)
        values = out.reshape((batch, *out_shape))
        return Accumulated(values, int(stats[:, _MAX_ABS].max()), int(stats[:, _OVERFLOWS].sum()), int(stats[:, _ZEROS].sum()))

    def run_pass_through(self, op, x: np.ndarray, quant: QuantParams) -> PassedThrough:
        """Run max pooling, a clamp or flatten: int32 values and the zero count."""
        if op.kind is OpKind.MAXPOOL2D:
            return PassedThrough(*maxpool_counted(x, op, quant.qmin, quant.zero_point, np.int32))
        if op.kind is OpKind.CLAMP:
            if x.dtype == np.int32 and int(op.lo.max()) <= quant.qmin and int(op.hi.min()) >= quant.qmax:
                # Every level lies in [qmin, qmax] (the program's invariant), so this clamp (a
                # ReLU at the zero-point qmin of an unsigned format) is the identity: the input
                # is returned, not copied.
                return PassedThrough(x, count_equal(x, quant.zero_point))
            return PassedThrough(*clamp_counted(x, op.lo, op.hi, quant.zero_point, np.int32))
        values = x.reshape(x.shape[0], -1)
        return PassedThrough(values, count_equal(values, quant.zero_point))

    def run_table(self, op, x: np.ndarray, in_quant: QuantParams, out_quant: QuantParams) -> PassedThrough:
        """Run a lookup table: int32 levels and the count at the output's zero-point."""
        values = lut_into(x, op.table, in_quant.qmin, np.int32)
        return PassedThrough(values, count_equal(values, out_quant.zero_point))
