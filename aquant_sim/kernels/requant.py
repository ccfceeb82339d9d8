"""The requantizer with its border lookup unit, equations (6)-(8), the runtimes' variants
(10)-(13) and (14)-(16), TFLite's add, average and mean (21)-(30), and the accumulator width.

The simulator's fused kernels live here too, beside the per-element helpers they inline:
numba's on-disk cache is invalidated only when the file of a cached function changes, not
when a helper it calls changes in another file.

Every function here works on int64 values and is exact: ``acc * m`` of an A-bit accumulator
(A <= 32) and a 31-bit multiplier stays below 2^62, and a left shift by ``-(n - F)`` is bounded
by the program's validation (D.6), so no intermediate overflows int64.
"""

from __future__ import annotations

import numpy as np

from aquant_sim.kernels.config import inline_jit, parallel_jit, prange
from aquant_sim.program import BorderTable, QuantParams, Requantizer
from aquant_sim.rounding import TFLITE_ADD_LEFT_SHIFT, RequantVariant, dyadic_value, float32_scale, tflite_mean_multiplier

_UNCLAMPED = np.int64(1) << 62
"""Bounds that no int32 value reaches: :func:`gemmlowp_value` without the clamp (13)."""


@inline_jit
def requantize_value(acc, m, s, frac_bits, table, g, zero_fixed, qmin, qmax):
    """One element of (6)-(8). ``s = n - F`` (negative shifts left), ``zero_fixed = z * 2^F``,
    ``g`` the table row of the element's channel. Returns the level as int64.

    (6) ``v = floor(acc * m / 2^s) + z * 2^F`` (arithmetic shift: floor);
    (7) ``k = v >> F``, ``f = v & (2^F - 1)``;
    (8) ``q = clamp(k + [f >= B[g, j]], qmin, qmax)``, ``j = clamp(k, qmin, qmax - 1) - qmin``.

    Written without branches so that a loop of it vectorizes: the shift is a left shift by
    ``max(-s, 0)`` then an arithmetic right shift by ``max(s, 0)`` (one of them is 0), and a
    table of one column clamps ``j`` to 0.
    """
    product = np.int64(acc) * np.int64(m)
    v = ((product << max(-s, 0)) >> max(s, 0)) + zero_fixed
    k = v >> frac_bits
    f = v & ((np.int64(1) << frac_bits) - 1)
    last = qmax - 1 if table.shape[1] > 1 else qmin
    border = table[g, min(max(k, qmin), last) - qmin]
    q = k + np.int64(f >= border)
    return min(max(q, qmin), qmax)


@inline_jit
def wrap_or_saturate(acc, lo, hi, saturate):
    """An exact int64 sum outside ``[lo, hi]`` as the A-bit accumulator holds it, as
    ``rounding.apply_overflow`` does: SATURATE clamps, WRAP keeps the low A bits (two's
    complement; ``hi - lo = 2^A - 1`` is the mask). Callers test the range and count first, so
    that the common in-range path is one comparison."""
    if saturate:
        return lo if acc < lo else hi
    return ((acc - lo) & (hi - lo)) + lo


@parallel_jit
def _requantize_rows(acc, multiplier, shift, frac_bits, table, zero_point, qmin, qmax, out):
    """``out[n, c, p]`` = (6)-(8) of ``acc[n, c, p]`` with channel ``c``'s multiplier and row."""
    batch, channels, positions = acc.shape
    zero_fixed = np.int64(zero_point) << frac_bits
    for t in prange(batch * channels):
        n, c = t // channels, t % channels
        i = c if multiplier.shape[0] > 1 else 0
        g = c if table.shape[0] > 1 else 0
        m, s = multiplier[i], shift[i] - frac_bits
        for p in range(positions):
            out[n, c, p] = requantize_value(acc[n, c, p], m, s, frac_bits, table, g, zero_fixed, qmin, qmax)


@inline_jit
def requantize_row(sums, a, b, positions, bias, lo, hi, saturate, multiplier, shift, frac_bits, table, zero_point,
                   qmin, qmax, out, n, c, stats, row):
    """One channel's row of the requantizer: ``out[n, c, p]`` (``p < positions``) is the level
    of the exact sum ``sums[a, b, p]`` (any integer dtype, without the bias) plus ``bias[c]``:
    the A-bit accumulator ``[lo, hi]`` (:func:`wrap_or_saturate`, counted), then (6)-(8)
    (:func:`requantize_value`) with channel ``c``'s multiplier, shift and border row. Sets
    ``stats[row]`` to the row's ``max |acc|`` before the width, its overflows and its levels
    equal to the zero-point. The simulator's separate pass (:func:`_finish_kernels`) and the
    AMX kernel's epilogue (``aquant_sim.kernels.amx.dense``) both run it.

    Two passes over the row, each a loop LLVM vectorizes: the counts first, then (6)-(8); the
    width is applied element by element only in a row that overflowed. The caller's ``prange``
    body must hold no slice, view or tuple: numba counts those as aliases and then compiles the
    body without ``noalias`` arguments, and these loops do not vectorize (measured 5-6x slower)."""
    zero_fixed = np.int64(zero_point) << frac_bits
    i = c if multiplier.shape[0] > 1 else 0
    g = c if table.shape[0] > 1 else 0
    m, s, offset = multiplier[i], shift[i] - frac_bits, bias[c]
    top, overflows, zeros = np.int64(0), np.int64(0), np.int64(0)
    for p in range(positions):
        acc = np.int64(sums[a, b, p]) + offset
        top = max(top, abs(acc))
        overflows += np.int64(acc < lo) + np.int64(acc > hi)
    if overflows:
        for p in range(positions):
            acc = np.int64(sums[a, b, p]) + offset
            if acc < lo or acc > hi:
                acc = wrap_or_saturate(acc, lo, hi, saturate)
            q = requantize_value(acc, m, s, frac_bits, table, g, zero_fixed, qmin, qmax)
            zeros += np.int64(q == zero_point)
            out[n, c, p] = q
    else:
        for p in range(positions):
            q = requantize_value(np.int64(sums[a, b, p]) + offset, m, s, frac_bits, table, g, zero_fixed, qmin, qmax)
            zeros += np.int64(q == zero_point)
            out[n, c, p] = q
    stats[row, 0], stats[row, 1], stats[row, 2] = top, overflows, zeros


def _finish_kernels(channel_major: bool):
    """The fused per-op pass of the simulator: sums plus bias, ``max |acc|``, the A-bit
    accumulator (counted), (6)-(8) and the zero count, for sums stored channel-major, ``S[n, c, p] = sums[c, n, p]``, or
    batch-major, ``sums[n, c, p]``. The layout is a compile-time constant of each kernel (a
    closure variable): choosing it at run time inside one kernel makes numba's loop ~6x slower
    (measured: 25 ns against 4 ns per element), and a transposed view ~10x slower."""

    @parallel_jit
    def finish_requantize(sums, bias, lo, hi, saturate, multiplier, shift, frac_bits, table,
                          zero_point, qmin, qmax, out, stats):
        """``out[n, c, p]`` = (6)-(8) of the A-bit (``[lo, hi]``) ``S[n, c, p] + bias[c]``;
        per-(n, c) counts of ``max |acc|`` (before the width), overflows and outputs equal to
        the zero-point (:func:`requantize_row`)."""
        batch, channels, positions = out.shape
        for t in prange(batch * channels):
            n, c = t // channels, t % channels
            requantize_row(sums, c if channel_major else n, n if channel_major else c, positions, bias, lo, hi,
                           saturate, multiplier, shift, frac_bits, table, zero_point, qmin, qmax, out, n, c, stats, t)

    @parallel_jit
    def finish_accumulate(sums, bias, lo, hi, saturate, out, stats):
        """``out[n, c, p]`` = the A-bit ``S[n, c, p] + bias[c]`` (int64); counts as above,
        zeros being accumulators equal to 0."""
        batch, channels, positions = out.shape
        for t in prange(batch * channels):
            n, c = t // channels, t % channels
            top, overflows, zeros = np.int64(0), 0, 0
            for p in range(positions):
                acc = np.int64(sums[c, n, p] if channel_major else sums[n, c, p]) + bias[c]
                top = max(top, abs(acc))
                if acc < lo or acc > hi:
                    overflows += 1
                    acc = wrap_or_saturate(acc, lo, hi, saturate)
                zeros += acc == 0
                out[n, c, p] = acc
            stats[t, 0], stats[t, 1], stats[t, 2] = top, overflows, zeros

    return finish_requantize, finish_accumulate


FINISH_KERNELS = {layout: _finish_kernels(layout) for layout in (True, False)}
"""``channel_major -> (finish_requantize, finish_accumulate)``: the simulator's fused pass
(:mod:`aquant_sim.kernels.datapath`)."""


def border_epilogue(bias: np.ndarray, requant: Requantizer, quant: QuantParams, lo: int, hi: int, saturate: bool) -> tuple:
    """The requantizer (6)-(8) (BORDER) of an op as the int8 kernels' ``epilogue`` argument:
    ``(bias, lo, hi, saturate, m, n, F, B, z, qmin, qmax)``, the int64 bias per channel, the
    A-bit accumulator's range ``[lo, hi]`` and whether it saturates (else it wraps), the
    requantizer's ``m`` and ``n`` (per channel or shared), its border table and the output
    format. A kernel unpacks it before its ``prange`` loop and hands the parts to
    :func:`requantize_row`: a tuple used inside the loop stops LLVM vectorizing the requantizer
    (:func:`requantize_row`'s text)."""
    return (np.ascontiguousarray(bias, dtype=np.int64), np.int64(lo), np.int64(hi), bool(saturate),
            requant.multiplier, requant.shift, np.int64(requant.frac_bits), requant.borders.values,
            np.int64(quant.zero_point), np.int64(quant.qmin), np.int64(quant.qmax))


NO_EPILOGUE = border_epilogue(np.zeros(1), Requantizer(np.array([1 << 30]), np.array([30]), BorderTable.nearest(8)),
                              QuantParams(8, False, 1.0, 0), -(1 << 31), (1 << 31) - 1, False)
"""An epilogue that a kernel run without one is passed and never reads: the same types as a
real one, so that both runs share a compiled kernel."""

@inline_jit
def gemmlowp_value(acc, m, e, zero_point, qmin, qmax):
    """One element of the GEMMLOWP variant, contract (10)-(13), ``e = 31 - n`` (TFLite's shift):
    (10) ``x = acc << max(e, 0)`` wrapped to int32, (11) ``h = SRDHM(x, m)`` (round half up),
    (12) ``y = RDBPOT(h, max(-e, 0))`` (round half away from zero), (13) clamp(y + z)."""
    x = np.int64(acc) << max(e, 0)
    x = ((x + (np.int64(1) << 31)) & ((np.int64(1) << 32) - 1)) - (np.int64(1) << 31)
    product = x * np.int64(m)
    total = product + (np.int64(1) << 30) if product >= 0 else product + 1 - (np.int64(1) << 30)
    h = total >> 31 if total >= 0 else -((-total) >> 31)
    r = max(-e, 0)
    mask = (np.int64(1) << r) - 1
    threshold = (mask >> 1) + (1 if h < 0 else 0)
    y = (h >> r) + (1 if (h & mask) > threshold else 0)
    return min(max(y + zero_point, qmin), qmax)


@inline_jit
def fp32_value(acc, scale, zero_point, qmin, qmax):
    """One element of the FP32 variant, contract (14)-(16): ``v = float32(float32(acc) * scale)``
    (``scale`` a float32), clamped to ``[qmin - z, qmax - z]``, rounded half to even, plus z."""
    v = np.float32(acc) * scale
    v = min(max(v, np.float32(qmin - zero_point)), np.float32(qmax - zero_point))
    return np.int64(np.rint(v)) + zero_point


@parallel_jit
def _requantize_rows_gemmlowp(acc, multiplier, shift, zero_point, qmin, qmax, out):
    """``out[n, c, p]`` = (10)-(13) of ``acc[n, c, p]`` with channel ``c``'s (or the shared) m, n."""
    batch, channels, positions = acc.shape
    for t in prange(batch * channels):
        n, c = t // channels, t % channels
        i = c if multiplier.shape[0] > 1 else 0
        m, e = multiplier[i], 31 - shift[i]
        for p in range(positions):
            out[n, c, p] = gemmlowp_value(acc[n, c, p], m, e, zero_point, qmin, qmax)


@inline_jit
def float64_value(acc, scale, zero_point, qmin, qmax):
    """One element of the FLOAT64 variant, contract (31)-(32): ``v = float64(acc) * scale`` (one
    IEEE double product), rounded half away from zero (``v - trunc(v)`` is exact), plus z, clamp."""
    v = np.float64(acc) * scale
    whole = np.trunc(v)
    fraction = v - whole
    k = np.int64(whole) + (1 if fraction >= 0.5 else 0) - (1 if fraction <= -0.5 else 0)
    return min(max(k + zero_point, qmin), qmax)


@parallel_jit
def _requantize_rows_float64(acc, scale, zero_point, qmin, qmax, out):
    """``out[n, c, p]`` = (31)-(32) of ``acc[n, c, p]`` with channel ``c``'s (or the shared) double ``E``."""
    batch, channels, positions = acc.shape
    for t in prange(batch * channels):
        n, c = t // channels, t % channels
        s = scale[c if scale.shape[0] > 1 else 0]
        for p in range(positions):
            out[n, c, p] = float64_value(acc[n, c, p], s, zero_point, qmin, qmax)


@parallel_jit
def _requantize_rows_fp32(acc, scale, zero_point, qmin, qmax, out):
    """``out[n, c, p]`` = (14)-(16) of ``acc[n, c, p]`` with channel ``c``'s (or the shared)
    float32 scale."""
    batch, channels, positions = acc.shape
    for t in prange(batch * channels):
        n, c = t // channels, t % channels
        s = scale[c if scale.shape[0] > 1 else 0]
        for p in range(positions):
            out[n, c, p] = fp32_value(acc[n, c, p], s, zero_point, qmin, qmax)


def requantize_rows_variant(rows: np.ndarray, requant: Requantizer, quant: QuantParams, out: np.ndarray) -> None:
    """Write into ``out`` (N, C, P) the levels of int64 accumulators ``rows`` (N, C, P) under a
    variant without borders (GEMMLOWP, FP32 or FLOAT64), the same integers as ``rounding.requantize_variant``."""
    if requant.variant is RequantVariant.GEMMLOWP:
        _requantize_rows_gemmlowp(rows, requant.multiplier, requant.shift, quant.zero_point, quant.qmin, quant.qmax, out)
    elif requant.variant is RequantVariant.FLOAT64:
        scale = dyadic_value(requant.multiplier, requant.shift)
        _requantize_rows_float64(rows, scale, quant.zero_point, quant.qmin, quant.qmax, out)
    else:
        scale = float32_scale(requant.multiplier, requant.shift)
        _requantize_rows_fp32(rows, scale, quant.zero_point, quant.qmin, quant.qmax, out)


def requantize(acc: np.ndarray, requant: Requantizer, quant: QuantParams) -> np.ndarray:
    """The op's requantizer (its variant: (6)-(8), (10)-(13) or (14)-(16)), channel on axis 1;
    int64 levels out, the same integers as ``reference.requantize``."""
    acc = np.asarray(acc, dtype=np.int64)
    rows = np.ascontiguousarray(acc).reshape(acc.shape[0], acc.shape[1], -1)
    out = np.empty(rows.shape, dtype=np.int64)
    if requant.variant is RequantVariant.BORDER:
        _requantize_rows(rows, requant.multiplier, requant.shift, requant.frac_bits, requant.borders.values,
                         quant.zero_point, quant.qmin, quant.qmax, out)
    else:
        requantize_rows_variant(rows, requant, quant, out)
    return out.reshape(acc.shape)


@inline_jit
def rounding_divide_value(t, count):
    """One element of (26): ``t / count`` rounded half away from zero, TFLite's
    ``t > 0 ? (t + count / 2) / count : (t - count / 2) / count`` (C division truncates)."""
    magnitude = (abs(t) + count // 2) // count
    return magnitude if t > 0 else -magnitude


@parallel_jit
def _add_tflite(a, b, zero_a, zero_b, multiplier, exponent, zero_c, qmin, qmax, out):
    """(21)-(24) per element: each centred input shifted left by 20 and scaled by (11)-(12) with its
    own multiplier, the sum scaled by (10)-(13) with the output's."""
    batch, channels, positions = a.shape
    for t in prange(batch * channels):
        n, c = t // channels, t % channels
        for p in range(positions):
            x_a = (np.int64(a[n, c, p]) - zero_a) << TFLITE_ADD_LEFT_SHIFT
            x_b = (np.int64(b[n, c, p]) - zero_b) << TFLITE_ADD_LEFT_SHIFT
            y_a = gemmlowp_value(x_a, multiplier[0], exponent[0], 0, -_UNCLAMPED, _UNCLAMPED)
            y_b = gemmlowp_value(x_b, multiplier[1], exponent[1], 0, -_UNCLAMPED, _UNCLAMPED)
            out[n, c, p] = gemmlowp_value(y_a + y_b, multiplier[2], exponent[2], zero_c, qmin, qmax)


def add_tflite(a: np.ndarray, b: np.ndarray, op, quant_a: QuantParams, quant_b: QuantParams, quant_c: QuantParams,
               dtype=np.int64) -> np.ndarray:
    """An add with the TFLITE_ADD requantizer, contract (21)-(24), into a new array of ``dtype``:
    the same integers as ``reference.add_tflite``."""
    out = np.empty(a.shape, dtype=dtype)
    planes = (lambda x: x.reshape(x.shape[0], x.shape[1], -1))
    _add_tflite(planes(np.ascontiguousarray(a)), planes(np.ascontiguousarray(b)), quant_a.zero_point, quant_b.zero_point,
                op.requant.multiplier, 31 - op.requant.shift, quant_c.zero_point, quant_c.qmin, quant_c.qmax, planes(out))
    return out


@parallel_jit
def _average_rows_tflite(acc, count, mean, multiplier, exponent, zero_in, zero_out, qmin, qmax, out):
    """``out[n, c, p]`` from the centred sums ``acc[n, c, p]`` of ``count`` levels: TFLITE_MEAN
    (30) with the run-time multiplier ``m'`` and exponent ``31 - n'`` when ``mean``, else
    TFLITE_AVGPOOL (25)-(27)."""
    batch, channels, positions = acc.shape
    for t in prange(batch * channels):
        n, c = t // channels, t % channels
        for p in range(positions):
            if mean:
                out[n, c, p] = gemmlowp_value(acc[n, c, p], multiplier, exponent, zero_out, qmin, qmax)
            else:
                d = rounding_divide_value(acc[n, c, p] + count * zero_in, count)
                out[n, c, p] = min(max(d, qmin), qmax)


def average_tflite_into(rows: np.ndarray, op, count: int, in_quant: QuantParams, quant: QuantParams, out: np.ndarray) -> None:
    """Write into ``out`` (N, C, P) the levels of an average pooling (TFLITE_AVGPOOL) or a mean
    (TFLITE_MEAN) of ``count`` levels from its int64 centred sums ``rows`` (N, C, P); the mean's
    multiplier of ``M / count`` is ``rounding.tflite_mean_multiplier`` (28)-(29)."""
    mean = op.requant.variant is RequantVariant.TFLITE_MEAN
    m, n = tflite_mean_multiplier(count, op.requant.multiplier, op.requant.shift)
    _average_rows_tflite(rows, np.int64(count), mean, np.int64(m[0]), np.int64(31 - n[0]),
                         np.int64(in_quant.zero_point), np.int64(quant.zero_point), quant.qmin, quant.qmax, out)


def average_tflite(acc: np.ndarray, op, count: int, in_quant: QuantParams, quant: QuantParams) -> np.ndarray:
    """Average pooling (TFLITE_AVGPOOL, (25)-(27)) or mean (TFLITE_MEAN, (28)-(30)) of ``count``
    levels from the centred sums ``acc`` (N, C, ...): the same integers as
    ``reference.average_tflite``, int64."""
    acc = np.asarray(acc, dtype=np.int64)
    rows = np.ascontiguousarray(acc).reshape(acc.shape[0], acc.shape[1], -1)
    out = np.empty(rows.shape, dtype=np.int64)
    average_tflite_into(rows, op, count, in_quant, quant, out)
    return out.reshape(acc.shape)
