"""Element-wise kernels: the residual add's sums (D.9), per-channel clamps (D.13), and the count
of elements equal to a value (the simulator's zero fraction). Parallel over (n, c) planes."""

from __future__ import annotations

import numpy as np

from aquant_sim.kernels.config import parallel_jit, prange


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
def _clamp(x, lo, hi, out):
    batch, channels, positions = x.shape
    for t in prange(batch * channels):
        n, c = t // channels, t % channels
        i = c if lo.shape[0] > 1 else 0
        low, high = lo[i], hi[i]
        for p in range(positions):
            out[n, c, p] = min(max(np.int64(x[n, c, p]), low), high)


def clamp_into(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, dtype) -> np.ndarray:
    """D.13 into a new array of ``dtype``."""
    out = np.empty(x.shape, dtype=dtype)
    _clamp(_planes(np.ascontiguousarray(x)), lo, hi, _planes(out))
    return out


def clamp(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """D.13: ``clamp(x, lo[c], hi[c])`` with the channel on axis 1 (vectors of length C or 1);
    int64 levels."""
    return clamp_into(x, lo, hi, np.int64)


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
