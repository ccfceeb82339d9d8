"""Quantizing the float network input: real-valued border rounding, equations (1)-(4), as one
parallel numba pass over (n, c) planes.

Exactness: the kernel performs the float64 operations of ``rounding.border_round`` in the same
order (``u = float64(x) / s + z``, ``k = floor(u)``, ``f = u - k``, the clamp of ``k`` to
``[qmin - 1, qmax + 1]`` before the integer cast, ``f >= beta[g, j]``); numba compiles them
without ``fastmath`` (``kernels/config.py``), so each is the IEEE-754 operation numpy performs
and the levels are identical. Inputs must be finite (the simulator checks before calling).
"""

from __future__ import annotations

import numpy as np

from aquant_sim.kernels.config import parallel_jit, prange


@parallel_jit
def _border_round(x, scale, zero_point, qmin, qmax, beta, out):
    """``out[n, c, p]`` = (1)-(4) of ``x[n, c, p]`` with border row ``g(c)`` of ``beta``."""
    batch, channels, positions = x.shape
    last = qmax - 1 if beta.shape[1] > 1 else qmin  # one column: every level uses border 0
    for t in prange(batch * channels):
        n, c = t // channels, t % channels
        g = c if beta.shape[0] > 1 else 0
        for p in range(positions):
            u = np.float64(x[n, c, p]) / scale + zero_point
            k_float = np.floor(u)
            f = u - k_float
            k = np.int64(min(max(k_float, qmin - 1.0), qmax + 1.0))
            up = np.int64(f >= beta[g, min(max(k, qmin), last) - qmin])
            out[n, c, p] = min(max(k + up, qmin), qmax)


def border_round_levels(x: np.ndarray, scale: float, zero_point: int, qmin: int, qmax: int,
                        beta: np.ndarray) -> np.ndarray:
    """``rounding.border_round(x, ..., channel_axis=1)`` for a finite float array ``x`` of shape
    ``(N, C, ...)``, as int32 levels of the same shape."""
    x = np.ascontiguousarray(x)
    out = np.empty(x.shape, dtype=np.int32)
    _border_round(x.reshape(x.shape[0], x.shape[1], -1), float(scale), int(zero_point), int(qmin), int(qmax),
                  np.ascontiguousarray(beta, dtype=np.float64), out.reshape(x.shape[0], x.shape[1], -1))
    return out
