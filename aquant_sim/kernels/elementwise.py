"""Element-wise kernels: the residual add's sums (D.9), the concat's centred levels (D.17),
onnxruntime's float32 add (the FP32_ADD variant, contract (17)-(20)), per-channel clamps (D.13),
the elementwise product's sums (D.16), lookup tables (D.15), and the count of elements equal to a value (the simulator's zero
fraction). Parallel over (n, c) planes."""

from __future__ import annotations

import math

import numpy as np

from aquant_sim.kernels.config import inline_jit, parallel_jit, prange
from aquant_sim.program import Add, QuantParams
from aquant_sim.rounding import float32_scale, fp32_add_fixed

_TWO_53 = 2.0**53


def _planes(x: np.ndarray) -> np.ndarray:
    """View an (N, C, ...) array as (N, C, P)."""
    return x.reshape(x.shape[0], x.shape[1], -1)


@parallel_jit
def _add(a, b, weight_a, weight_b, zero_a, zero_b, out):
    batch, channels, positions = a.shape
    for t in prange(batch * channels):
        n, c = t // channels, t % channels
        for p in range(positions):
            out[n, c, p] = weight_a * (np.int64(a[n, c, p]) - zero_a) + weight_b * (np.int64(b[n, c, p]) - zero_b)


def add_acc(a: np.ndarray, b: np.ndarray, weight_a: int, weight_b: int, zero_a: int, zero_b: int) -> np.ndarray:
    """D.9: ``acc = w_a * (a - z_a) + w_b * (b - z_b)``, exact int64 (|w| < 2^16, 16-bit levels)."""
    out = np.empty(a.shape, dtype=np.int64)
    _add(_planes(np.ascontiguousarray(a)), _planes(np.ascontiguousarray(b)), weight_a, weight_b, zero_a, zero_b, _planes(out))
    return out


@parallel_jit
def _concat(a, b, zero_a, zero_b, out):
    batch, channels_a, positions = a.shape
    channels = out.shape[1]
    for t in prange(batch * channels):
        n, c = t // channels, t % channels
        if c < channels_a:
            for p in range(positions):
                out[n, c, p] = np.int64(a[n, c, p]) - zero_a
        else:
            for p in range(positions):
                out[n, c, p] = np.int64(b[n, c - channels_a, p]) - zero_b


def concat_acc(a: np.ndarray, b: np.ndarray, zero_a: int, zero_b: int) -> np.ndarray:
    """D.17: ``acc = (a - z_a)`` on the first channels, ``(b - z_b)`` on the rest, exact int64."""
    out = np.empty((a.shape[0], a.shape[1] + b.shape[1], *a.shape[2:]), dtype=np.int64)
    _concat(_planes(np.ascontiguousarray(a)), _planes(np.ascontiguousarray(b)), zero_a, zero_b, _planes(out))
    return out


@inline_jit
def float32_fma(x, y, z):
    """``rounding.float32_fma`` on float32 scalars: the float64 product (exact), TwoSum's exact
    error of the float64 sum, round to odd (a nonzero error and an even last significand bit,
    read from ``frexp``'s 53-bit significand, move the sum one float64 step toward the error),
    then one rounding to float32; the proof is in ``rounding.float32_fma``."""
    p = np.float64(x) * np.float64(y)
    w = np.float64(z)
    s = p + w
    virtual = s - p
    error = (p - (s - virtual)) + (w - virtual)
    if error != 0.0:
        significand, _ = math.frexp(s)
        if (np.int64(significand * _TWO_53) & 1) == 0:
            s = np.nextafter(s, np.inf if error > 0.0 else -np.inf)
    return np.float32(s)


@parallel_jit
def _add_fp32(a, b, ratio_a, ratio_b, fixed, offset, lo, hi, out):
    """(18)-(20) per element: ``v = fma(A, r_a, fma(B, r_b, F))`` with ``A = a + o``, ``B = b + o``,
    rounded half to even, clamped to ``[lo, hi]`` (the output range plus ``o``), minus ``o``."""
    batch, channels, positions = a.shape
    for t in prange(batch * channels):
        n, c = t // channels, t % channels
        for p in range(positions):
            big_a = np.float32(np.int64(a[n, c, p]) + offset)
            big_b = np.float32(np.int64(b[n, c, p]) + offset)
            v = float32_fma(big_a, ratio_a, float32_fma(big_b, ratio_b, fixed))
            out[n, c, p] = min(max(np.int64(np.rint(v)), lo), hi) - offset


def add_fp32(a: np.ndarray, b: np.ndarray, op: Add, quant_a: QuantParams, quant_b: QuantParams, quant_c: QuantParams,
             dtype=np.int64) -> np.ndarray:
    """An add with the FP32_ADD requantizer, contract (17)-(20), into a new array of ``dtype``:
    the same integers as ``reference.add_fp32``. The fixed part (17) is ``rounding.fp32_add_fixed``."""
    ratio_a, ratio_b = float32_scale(op.requant.multiplier, op.requant.shift)
    o = op.zero_offset
    fixed = fp32_add_fixed(ratio_a, ratio_b, quant_a.zero_point, quant_b.zero_point, quant_c.zero_point, o)
    out = np.empty(a.shape, dtype=dtype)
    _add_fp32(_planes(np.ascontiguousarray(a)), _planes(np.ascontiguousarray(b)), ratio_a, ratio_b, fixed, o,
              quant_c.qmin + o, quant_c.qmax + o, _planes(out))
    return out


@parallel_jit
def _clamp(x, lo, hi, value, out, counts):
    """``out = clamp(x, lo[c], hi[c])``, and ``counts[t]`` the outputs of plane ``t`` equal to ``value``."""
    batch, channels, positions = x.shape
    for t in prange(batch * channels):
        n, c = t // channels, t % channels
        i = c if lo.shape[0] > 1 else 0
        low, high = lo[i], hi[i]
        total = np.int64(0)
        for p in range(positions):
            q = min(max(np.int64(x[n, c, p]), low), high)
            total += np.int64(q == value)
            out[n, c, p] = q
        counts[t] = total


def clamp_counted(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, value: int, dtype) -> tuple[np.ndarray, int]:
    """D.13 into a new array of ``dtype``, and how many outputs equal ``value``, in one pass."""
    out = np.empty(x.shape, dtype=dtype)
    counts = np.empty(x.shape[0] * x.shape[1], dtype=np.int64)
    _clamp(_planes(np.ascontiguousarray(x)), lo, hi, value, _planes(out), counts)
    return out, int(counts.sum())


def clamp(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """D.13: ``clamp(x, lo[c], hi[c])`` with the channel on axis 1 (vectors of length C or 1);
    int64 levels."""
    return clamp_counted(x, lo, hi, 0, np.int64)[0]


@parallel_jit
def _mul(a, b, zero_a, zero_b, out):
    batch, channels, positions = a.shape
    per_channel = b.shape[2] == 1
    for t in prange(batch * channels):
        n, c = t // channels, t % channels
        for p in range(positions):
            other = b[n, c, 0] if per_channel else b[n, c, p]
            out[n, c, p] = (np.int64(a[n, c, p]) - zero_a) * (np.int64(other) - zero_b)


def mul_acc(a: np.ndarray, b: np.ndarray, zero_a: int, zero_b: int) -> np.ndarray:
    """D.16: ``acc = (a - z_a) * (b - z_b)``, exact int64 (16-bit levels: |acc| <= 2^32); ``b``
    of ``a``'s shape, or (N, C, 1, 1) for an (N, C, H, W) ``a`` (one value per channel)."""
    out = np.empty(a.shape, dtype=np.int64)
    _mul(_planes(np.ascontiguousarray(a)), _planes(np.ascontiguousarray(b)), zero_a, zero_b, _planes(out))
    return out


@parallel_jit
def _lut(x, table, qmin, out):
    batch, channels, positions = x.shape
    for t in prange(batch * channels):
        n, c = t // channels, t % channels
        row = c if table.shape[0] > 1 else 0
        for p in range(positions):
            out[n, c, p] = table[row, np.int64(x[n, c, p]) - qmin]


def lut_into(x: np.ndarray, table: np.ndarray, qmin: int, dtype) -> np.ndarray:
    """D.15: ``table[g(c), x - qmin]`` with the channel on axis 1 into a new array of ``dtype``
    (the program guarantees every level indexes the table)."""
    out = np.empty(x.shape, dtype=dtype)
    _lut(_planes(np.ascontiguousarray(x)), table, qmin, _planes(out))
    return out


@parallel_jit
def _count_equal(x, value, counts):
    batch, channels, positions = x.shape
    for t in prange(batch * channels):
        n, c = t // channels, t % channels
        total = 0
        for p in range(positions):
            if x[n, c, p] == value:
                total += 1
        counts[t] = total


def count_equal(x: np.ndarray, value: int) -> int:
    """How many elements of an (N, C, ...) array equal ``value``."""
    counts = np.empty(x.shape[0] * x.shape[1], dtype=np.int64)
    _count_equal(_planes(np.ascontiguousarray(x)), value, counts)
    return int(counts.sum())
