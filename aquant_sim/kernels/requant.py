"""The requantizer with its border lookup unit, equations (6)-(8), the runtimes' variants
(10)-(13) and (14)-(16), and the accumulator width.

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
from aquant_sim.program import QuantParams, Requantizer
from aquant_sim.rounding import RequantVariant, float32_scale


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
        the zero-point."""
        batch, channels, positions = out.shape
        zero_fixed = np.int64(zero_point) << frac_bits
        for t in prange(batch * channels):
            n, c = t // channels, t % channels
            i = c if multiplier.shape[0] > 1 else 0
            g = c if table.shape[0] > 1 else 0
            m, s, b = multiplier[i], shift[i] - frac_bits, bias[c]
            # Two passes over the row, each a loop LLVM vectorizes: the counts first, then
            # (6)-(8); the width is applied element by element only in a row that overflowed.
            top, overflows, zeros = np.int64(0), np.int64(0), np.int64(0)
            for p in range(positions):
                acc = np.int64(sums[c, n, p] if channel_major else sums[n, c, p]) + b
                top = max(top, abs(acc))
                overflows += np.int64(acc < lo) + np.int64(acc > hi)
            if overflows:
                for p in range(positions):
                    acc = np.int64(sums[c, n, p] if channel_major else sums[n, c, p]) + b
                    if acc < lo or acc > hi:
                        acc = wrap_or_saturate(acc, lo, hi, saturate)
                    q = requantize_value(acc, m, s, frac_bits, table, g, zero_fixed, qmin, qmax)
                    zeros += np.int64(q == zero_point)
                    out[n, c, p] = q
            else:
                for p in range(positions):
                    acc = np.int64(sums[c, n, p] if channel_major else sums[n, c, p]) + b
                    q = requantize_value(acc, m, s, frac_bits, table, g, zero_fixed, qmin, qmax)
                    zeros += np.int64(q == zero_point)
                    out[n, c, p] = q
            stats[t, 0], stats[t, 1], stats[t, 2] = top, overflows, zeros

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
    variant without borders (GEMMLOWP or FP32), the same integers as ``rounding.requantize_variant``."""
    if requant.variant is RequantVariant.GEMMLOWP:
        _requantize_rows_gemmlowp(rows, requant.multiplier, requant.shift, quant.zero_point, quant.qmin, quant.qmax, out)
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
