"""Conv2d (D.1) and linear (D.2) as im2col plus an exact GEMM.

Exactness of the float GEMM paths
---------------------------------
For output channel ``c`` the datapath sums ``S_c = sum_i w[c, i] * (x_i - z_x)`` over the
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

The sums are returned without the bias, as an (N, O, P) view (``P = OH * OW``) of the GEMM's
(O, N * P) result, so that a fused pass can read them without another copy.
"""

from __future__ import annotations

import enum

import numpy as np

from aquant_sim.kernels.config import parallel_jit, prange
from aquant_sim.program import Conv2d, Linear

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


def gemm_path(weight: np.ndarray, max_abs_input: int) -> GemmPath:
    """The cheapest exact path for weights ``(O, K)`` against inputs with ``|x - z| <=
    max_abs_input``: ``bound = max_c sum_i |w[c, i]| * max_abs_input`` (see the module text)."""
    row_sum = int(np.abs(weight.astype(np.int64)).sum(axis=1).max())
    bound = row_sum * int(max_abs_input)
    if bound < FLOAT32_EXACT:
        return GemmPath.FLOAT32
    if bound < FLOAT64_EXACT:
        return GemmPath.FLOAT64
    return GemmPath.INT64


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
        for n in range(batch):
            for oy in range(oh):
                iy = oy * sh - ph + kh * dh
                base = (n * oh + oy) * ow
                if iy < 0 or iy >= h:
                    for ox in range(ow):
                        cols[r, base + ox] = 0
                    continue
                for ox in range(ow):
                    ix = ox * sw - pw + kw * dw
                    if 0 <= ix < w:
                        cols[r, base + ox] = x[n, c, iy, ix] - zero_point
                    else:
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
    """``weight (G, O, K) @ cols (G, K, J)`` with ``cols`` already of the path's dtype."""
    if path is GemmPath.INT64:
        out = np.empty((weight.shape[0], weight.shape[1], cols.shape[2]), dtype=np.int64)
        _int_gemm(weight.astype(np.int64), cols, out)
        return out
    return np.matmul(weight.astype(path.value), cols)


def conv2d_output_hw(x_shape: tuple[int, ...], op: Conv2d) -> tuple[int, int]:
    """Output height and width of a conv over an (N, C, H, W) input."""
    return tuple(
        (x_shape[2 + a] + 2 * op.padding[a] - op.dilation[a] * (op.weight.shape[2 + a] - 1) - 1) // op.stride[a] + 1
        for a in (0, 1)
    )


def conv2d_sums(x: np.ndarray, op: Conv2d, zero_point: int) -> np.ndarray:
    """D.1 without the bias: ``S[n, o, p]`` as an (N, O, OH*OW) view, of the GEMM path's dtype."""
    n, c, _, _ = x.shape
    out_c, cg, kh_, kw_ = op.weight.shape
    (sh, sw), (ph, pw), (dh, dw) = op.stride, op.padding, op.dilation
    oh, ow = conv2d_output_hw(x.shape, op)
    groups = op.groups
    weight = op.weight.reshape(groups, out_c // groups, cg * kh_ * kw_)
    path = gemm_path(op.weight.reshape(out_c, -1), max_abs_centred(x, zero_point))
    cols = np.empty((c * kh_ * kw_, n * oh * ow), dtype=path.value)
    _im2col(x, zero_point, kh_, kw_, sh, sw, ph, pw, dh, dw, oh, ow, cols)
    sums = exact_gemm(weight, cols.reshape(groups, cg * kh_ * kw_, n * oh * ow), path)
    return sums.reshape(out_c, n, oh * ow).transpose(1, 0, 2)


def linear_sums(x: np.ndarray, op: Linear, zero_point: int) -> np.ndarray:
    """D.2 without the bias: ``S[n, o, 0]`` as an (N, O, 1) view, of the GEMM path's dtype."""
    path = gemm_path(op.weight, max_abs_centred(x, zero_point))
    centred = (x.astype(np.int64) - zero_point).astype(path.value)
    sums = exact_gemm(op.weight[None], np.ascontiguousarray(centred.T)[None], path)[0]
    return sums.T[:, :, None]


@parallel_jit
def _add_bias(sums, bias, out):
    """``out[n, o, p] = int64(sums[n, o, p]) + bias[o]`` (the float sums are exact integers)."""
    batch, channels, positions = sums.shape
    for t in prange(batch * channels):
        n, o = t // channels, t % channels
        for p in range(positions):
            out[n, o, p] = np.int64(sums[n, o, p]) + bias[o]


def with_bias(sums: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Exact int64 accumulators ``sums + bias[o]`` of shape (N, O, P)."""
    out = np.empty(sums.shape, dtype=np.int64)
    _add_bias(sums, bias, out)
    return out


def conv2d_acc(x: np.ndarray, op: Conv2d, zero_point: int) -> np.ndarray:
    """D.1: ``acc[n, o, y, x] = bias[o] + sum_{c, kh, kw} w[o, c, kh, kw] * (xp - z)``, exact
    int64, equal to ``reference.conv2d_acc``."""
    acc = with_bias(conv2d_sums(x, op, zero_point), op.bias)
    return acc.reshape(x.shape[0], op.weight.shape[0], *conv2d_output_hw(x.shape, op))


def linear_acc(x: np.ndarray, op: Linear, zero_point: int) -> np.ndarray:
    """D.2: ``acc[n, o] = bias[o] + sum_i w[o, i] * (x[n, i] - z)``, exact int64."""
    return with_bias(linear_sums(x, op, zero_point), op.bias)[:, :, 0]
