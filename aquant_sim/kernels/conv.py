"""Conv2d (D.1) and linear (D.2) as im2col plus an exact GEMM, with the weight zero-point by
the row-sum trick: the general path, for any operands the contract allows (up to 16 bits). The
simulator takes :mod:`aquant_sim.kernels.int8` instead where the operands fit 8 bits.

Contract (5) is ``acc[c] = bias[c] + sum_i (w[c, i] - z_w[c]) * (x_i - z_x)``; the kernels
compute it as ``S_c - z_w[c] * R`` with ``S_c = sum_i w[c, i] * (x_i - z_x)`` (the GEMM of the
stored weights) and ``R = sum_i (x_i - z_x)`` (the row sum of the im2col matrix over the window
of c's group, shared by every output channel of the group), as hardware does. Padded taps hold
``z_x`` and add 0 to both. ``R`` and the correction are int64 numpy sums: ``|R| <= K * 2^16``
and ``|z_w| <= 2^15``, so ``|z_w * R| < 2^63`` for any ``K < 2^32``; when every ``z_w`` is 0
(symmetric weights) the correction is skipped.

Exactness of the float GEMM paths (docs/datapath.md D.5)
-----------------------------------------------------------
For output channel ``c`` the GEMM sums ``S_c = sum_i w[c, i] * (x_i - z_x)`` over the
``K`` taps of its window (padded taps hold ``z_x`` and contribute 0). Every product and every
partial sum, in whatever order a BLAS library adds them, is an integer of magnitude at most

    bound = max_c sum_i |w[c, i]| * max_i |x_i - z_x|,

because a partial sum is a sum over a subset of the terms and ``|w * (x - z)| <=
|w| * max|x - z|``. An IEEE-754 binary format with a ``p``-bit significand represents every
integer of magnitude at most ``2^p`` exactly, and the sum or product of two such integers is
again such an integer whenever its magnitude is at most ``2^p``; correctly rounded addition
and multiplication (and fused multiply-add) then return it without error. So if
``bound < 2^24`` every operation of a float32 GEMM is exact and it returns ``S_c`` exactly
(float64: ``bound < 2^53``). The bound is computed from the actual weights and the actual
input batch (``max|x - z|`` over the batch), so it holds for this call, not for a typical one.
Otherwise the GEMM runs as an int64 numba loop. The bias is added afterwards in int64, and the
accumulator width A is applied to the exact sum by the caller, so the overflow check is exact
on every path.

The sums are returned without the bias, channel-major: the GEMM's (O, N * P) result as an
(O, N, P) array (``P = OH * OW``), which a fused pass reads contiguously (a transposed view
reads ~10x slower in numba); with a non-zero ``z_w`` they are int64.
"""

from __future__ import annotations

import enum
import weakref

import numpy as np

from aquant_sim.kernels.config import parallel_jit, prange
from aquant_sim.program import Conv2d, Linear, window_output_size

FLOAT32_EXACT = 1 << 24
FLOAT64_EXACT = 1 << 53


class GemmPath(enum.Enum):
    """Which arithmetic computes the integer GEMM; each one is exact for the bounds it gets."""

    FLOAT32 = np.float32
    """BLAS sgemm: every partial sum below 2^24."""
    FLOAT64 = np.float64
    """BLAS dgemm: every partial sum below 2^53."""
    INT64 = np.int64
    """A numba int64 loop: always exact (sums of A <= 32 bit accumulators' inputs fit int64)."""


def gemm_path(weight_row_sum: int, max_abs_input: int) -> GemmPath:
    """The cheapest exact path for weights whose largest ``sum_i |w[c, i]|`` is
    ``weight_row_sum`` against inputs with ``|x - z| <= max_abs_input``: ``bound =
    weight_row_sum * max_abs_input`` (see the module text)."""
    bound = int(weight_row_sum) * int(max_abs_input)
    if bound < FLOAT32_EXACT:
        return GemmPath.FLOAT32
    if bound < FLOAT64_EXACT:
        return GemmPath.FLOAT64
    return GemmPath.INT64


class _PreparedWeights:
    """An op's weights as (G, O/G, K) matrices per GEMM dtype, ``max_c sum_i |w[c, i]|``, and
    its weight zero-points as (G, O/G, 1) int64 (None when all are 0)."""

    def __init__(self, weight: np.ndarray, groups: int, zero_point: np.ndarray):
        out_channels = weight.shape[0]
        self.matrix = weight.reshape(groups, out_channels // groups, -1)
        self.row_sum = int(np.abs(weight.reshape(out_channels, -1).astype(np.int64)).sum(axis=1).max())
        self.zero_point = zero_point.reshape(groups, -1, 1) if np.any(zero_point) else None
        self._by_dtype = {}

    def as_dtype(self, path: GemmPath) -> np.ndarray:
        if path not in self._by_dtype:
            self._by_dtype[path] = np.ascontiguousarray(self.matrix, dtype=path.value)
        return self._by_dtype[path]


_PREPARED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
"""Per-op weight conversions, computed once per op and freed with it. Ops are frozen and their
weights are not modified after validation, which this cache relies on."""


def _prepared(op) -> _PreparedWeights:
    prepared = _PREPARED.get(op)
    if prepared is None:
        prepared = _PREPARED[op] = _PreparedWeights(op.weight, getattr(op, "groups", 1), op.weight_zero_point)
    return prepared


def max_abs_centred(x: np.ndarray, zero_point: int) -> int:
    """``max |x - z|`` over the batch, in exact Python integers."""
    return max(int(x.max()) - zero_point, zero_point - int(x.min()))


@parallel_jit
def _im2col(x, zero_point, kh_, kw_, sh, sw, ph, pw, dh, dw, oh, ow, cols):
    """``cols[(c*KH + kh)*KW + kw, (n*OH + oy)*OW + ox] = xp[n, c, oy*sh + kh*dh, ox*sw + kw*dw]
    - z``, ``xp`` the input padded with ``z`` (so padding writes 0)."""
    batch, channels, h, w = x.shape
    for r in prange(channels * kh_ * kw_):
        c = r // (kh_ * kw_)
        kh = (r // kw_) % kh_
        kw = r % kw_
        # Output columns whose tap ix = ox*sw - pw + kw*dw lies inside the input: [first, stop).
        offset = kw * dw - pw
        first = min(ow, max(0, (-offset + sw - 1) // sw))
        stop = max(first, min(ow, (w - 1 - offset) // sw + 1))
        for n in range(batch):
            for oy in range(oh):
                iy = oy * sh - ph + kh * dh
                base = (n * oh + oy) * ow
                if iy < 0 or iy >= h:
                    for ox in range(ow):
                        cols[r, base + ox] = 0
                    continue
                for ox in range(first):
                    cols[r, base + ox] = 0
                # Explicit loops (not slice assignments) and a unit-stride case that vectorizes:
                # together ~2x faster in numba.
                if sw == 1:
                    for ox in range(first, stop):
                        cols[r, base + ox] = x[n, c, iy, ox + offset] - zero_point
                else:
                    for ox in range(first, stop):
                        cols[r, base + ox] = x[n, c, iy, ox * sw + offset] - zero_point
                for ox in range(stop, ow):
                    cols[r, base + ox] = 0


@parallel_jit
def _int_gemm(weight, cols, out):
    """``out[g, o, j] = sum_k weight[g, o, k] * cols[g, k, j]`` in int64."""
    groups, rows, depth = weight.shape
    width = cols.shape[2]
    for t in prange(groups * rows):
        g, o = t // rows, t % rows
        for j in range(width):
            out[g, o, j] = 0
        for k in range(depth):
            wk = np.int64(weight[g, o, k])
            if wk != 0:
                for j in range(width):
                    out[g, o, j] += wk * cols[g, k, j]


def exact_gemm(weight: np.ndarray, cols: np.ndarray, path: GemmPath) -> np.ndarray:
    """``weight (G, O, K) @ cols (G, K, J)`` with both operands already of the path's dtype."""
    if path is GemmPath.INT64:
        out = np.empty((weight.shape[0], weight.shape[1], cols.shape[2]), dtype=np.int64)
        _int_gemm(weight, cols, out)
        return out
    return np.matmul(weight, cols)


def centred_sums(prepared: _PreparedWeights, cols: np.ndarray, path: GemmPath) -> np.ndarray:
    """Contract (5) without the bias: ``S[g, o, j] - z_w[g, o] * sum_k cols[g, k, j]`` (the
    row-sum trick, int64) for ``cols`` (G, K, J) of centred inputs; the GEMM alone when every
    ``z_w`` is 0."""
    sums = exact_gemm(prepared.as_dtype(path), cols, path)
    if prepared.zero_point is None:
        return sums
    row_sums = cols.sum(axis=1, dtype=np.int64)[:, None, :]
    return sums.astype(np.int64) - prepared.zero_point * row_sums


def conv2d_output_hw(x_shape: tuple[int, ...], op: Conv2d) -> tuple[int, int]:
    """Output height and width of a conv over an (N, C, H, W) input."""
    return tuple(
        window_output_size(x_shape[2 + a], op.weight.shape[2 + a], op.stride[a], op.padding[a], op.dilation[a],
                           op.padding_end[a])
        for a in (0, 1)
    )


def conv2d_sums(x: np.ndarray, op: Conv2d, zero_point: int) -> np.ndarray:
    """D.1 without the bias: ``S[o, n, p]``, channel-major (O, N, OH*OW), of the GEMM path's
    dtype (int64 with weight zero-points)."""
    n, c, _, _ = x.shape
    out_c, cg, kh_, kw_ = op.weight.shape
    (sh, sw), (ph, pw), (dh, dw) = op.stride, op.padding, op.dilation
    oh, ow = conv2d_output_hw(x.shape, op)
    prepared = _prepared(op)
    path = gemm_path(prepared.row_sum, max_abs_centred(x, zero_point))
    cols = np.empty((c * kh_ * kw_, n * oh * ow), dtype=path.value)
    _im2col(x, zero_point, kh_, kw_, sh, sw, ph, pw, dh, dw, oh, ow, cols)
    sums = centred_sums(prepared, cols.reshape(op.groups, cg * kh_ * kw_, n * oh * ow), path)
    return sums.reshape(out_c, n, oh * ow)


def linear_sums(x: np.ndarray, op: Linear, zero_point: int) -> np.ndarray:
    """D.2 without the bias: ``S[o, n, 0]``, channel-major (O, N, 1), of the GEMM path's dtype."""
    prepared = _prepared(op)
    path = gemm_path(prepared.row_sum, max_abs_centred(x, zero_point))
    centred = np.ascontiguousarray((x.astype(np.int64) - zero_point).T, dtype=path.value)
    return centred_sums(prepared, centred[None], path)[0][:, :, None]


@parallel_jit
def _add_bias(sums, bias, out):
    """``out[n, o, p] = int64(sums[o, n, p]) + bias[o]`` (the float sums are exact integers)."""
    channels, batch, positions = sums.shape
    for t in prange(batch * channels):
        n, o = t // channels, t % channels
        for p in range(positions):
            out[n, o, p] = np.int64(sums[o, n, p]) + bias[o]


def with_bias(sums: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Exact int64 accumulators ``sums + bias[o]``, from channel-major (O, N, P) to (N, O, P)."""
    out = np.empty((sums.shape[1], sums.shape[0], sums.shape[2]), dtype=np.int64)
    _add_bias(sums, bias, out)
    return out


def conv2d_acc(x: np.ndarray, op: Conv2d, zero_point: int) -> np.ndarray:
    """D.1: ``acc[n, o, y, x] = bias[o] + sum_{c, kh, kw} (w[o, c, kh, kw] - z_w[o]) * (xp - z)``,
    exact int64, equal to ``reference.conv2d_acc``."""
    acc = with_bias(conv2d_sums(x, op, zero_point), op.bias)
    return acc.reshape(x.shape[0], op.weight.shape[0], *conv2d_output_hw(x.shape, op))


def linear_acc(x: np.ndarray, op: Linear, zero_point: int) -> np.ndarray:
    """D.2: ``acc[n, o] = bias[o] + sum_i (w[o, i] - z_w[o]) * (x[n, i] - z)``, exact int64."""
    return with_bias(linear_sums(x, op, zero_point), op.bias)[:, :, 0]
