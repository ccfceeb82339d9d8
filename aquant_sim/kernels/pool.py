"""Pooling kernels: max pooling (D.10), average pooling sums (D.11), global average pooling
sums (D.12). Exact integer code; every kernel is parallel over (n, c) planes."""

from __future__ import annotations

import numpy as np

from aquant_sim.kernels.config import parallel_jit, prange
from aquant_sim.program import AvgPool2d, MaxPool2d, window_output_size


@parallel_jit
def _maxpool(x, qmin, kh_, kw_, sh, sw, ph, pw, dh, dw, value, out, counts):
    """``out[n, c, oy, ox]`` = max over the window of the input padded with ``qmin``. Each plane
    is first copied into a scratch plane padded with ``qmin`` on every side the windows reach,
    so the window loops have no bounds tests and run over a row of outputs at a time.
    ``counts[t]`` is the number of outputs of plane ``t`` equal to ``value``."""
    batch, channels, h, w = x.shape
    oh, ow = out.shape[2], out.shape[3]
    hp = max(h + ph, (oh - 1) * sh + (kh_ - 1) * dh + 1)
    wp = max(w + pw, (ow - 1) * sw + (kw_ - 1) * dw + 1)
    for t in prange(batch * channels):
        n, c = t // channels, t % channels
        padded = np.full((hp, wp), qmin, dtype=np.int64)
        for iy in range(h):
            for ix in range(w):
                padded[iy + ph, ix + pw] = x[n, c, iy, ix]
        best = np.empty(ow, dtype=np.int64)
        total = np.int64(0)
        for oy in range(oh):
            best[:] = qmin
            for kh in range(kh_):
                row = oy * sh + kh * dh
                for kw in range(kw_):
                    offset = kw * dw
                    for ox in range(ow):
                        best[ox] = max(best[ox], padded[row, ox * sw + offset])
            for ox in range(ow):
                total += np.int64(best[ox] == value)
                out[n, c, oy, ox] = best[ox]
        counts[t] = total


def maxpool_counted(x: np.ndarray, op: MaxPool2d, qmin: int, value: int, dtype) -> tuple[np.ndarray, int]:
    """D.10 into a new array of ``dtype``, and how many outputs equal ``value``, in one pass. The
    output shape carries ``padding_end``: the kernel pads after the input as far as the windows
    reach."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = op.kernel_size, op.stride, op.padding, op.dilation
    (eh, ew) = op.padding_end
    out = np.empty((n, c, window_output_size(h, kh, sh, ph, dh, eh), window_output_size(w, kw, sw, pw, dw, ew)), dtype=dtype)
    counts = np.empty(n * c, dtype=np.int64)
    _maxpool(x, qmin, kh, kw, sh, sw, ph, pw, dh, dw, value, out, counts)
    return out, int(counts.sum())


def maxpool(x: np.ndarray, op: MaxPool2d, qmin: int) -> np.ndarray:
    """D.10: the window maximum (padding holds ``qmin`` and never wins); int64 levels."""
    return maxpool_counted(x, op, qmin, qmin, np.int64)[0]


@parallel_jit
def _avgpool_sums(x, zero_point, kh_, kw_, sh, sw, ph, pw, out):
    """``out[n, c, oy, ox] = sum over the window of (xp - z)``; padded taps add 0."""
    batch, channels, h, w = x.shape
    oh, ow = out.shape[2], out.shape[3]
    for t in prange(batch * channels):
        n, c = t // channels, t % channels
        for oy in range(oh):
            for ox in range(ow):
                total = np.int64(0)
                for kh in range(kh_):
                    iy = oy * sh - ph + kh
                    if 0 <= iy < h:
                        for kw in range(kw_):
                            ix = ox * sw - pw + kw
                            if 0 <= ix < w:
                                total += np.int64(x[n, c, iy, ix]) - zero_point
                out[n, c, oy, ox] = total


def avgpool_acc(x: np.ndarray, op: AvgPool2d, zero_point: int) -> np.ndarray:
    """D.11: ``acc = sum over the window of (xp - z)``, padding counted (it adds 0); the
    divisor lives in the requantizer. Exact int64."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = op.kernel_size, op.stride, op.padding
    out = np.empty((n, c, window_output_size(h, kh, sh, ph, 1), window_output_size(w, kw, sw, pw, 1)), dtype=np.int64)
    _avgpool_sums(x, zero_point, kh, kw, sh, sw, ph, pw, out)
    return out


@parallel_jit
def _plane_sums(x, zero_point, out):
    """``out[n, c] = sum_{y, x} (x[n, c, y, x] - z)``."""
    batch, channels, h, w = x.shape
    for t in prange(batch * channels):
        n, c = t // channels, t % channels
        total = np.int64(0)
        for iy in range(h):
            for ix in range(w):
                total += np.int64(x[n, c, iy, ix]) - zero_point
        out[n, c] = total


def global_avgpool_acc(x: np.ndarray, zero_point: int) -> np.ndarray:
    """D.12: ``acc[n, c, 0, 0] = sum_{y, x} (x[n, c, y, x] - z)``, exact int64."""
    out = np.empty((x.shape[0], x.shape[1]), dtype=np.int64)
    _plane_sums(x, zero_point, out)
    return out[:, :, None, None]
