"""The training-time activation fake quantizer (``docs/calibration.md`` C.4-C.6) and QDrop's random
selection, each as an autograd function with two backends that compute the same values:

* ``TORCH``: torch elementwise ops (the reference: short, and what the tests check first);
* ``NUMBA``: fused numba passes over contiguous CPU tensors (the default: the reconstruction
  loop's hot spot); the torch version makes a dozen passes over the activation and its bool masks
  are slow on CPU. The kernels alone, called directly, per 32x16x28x28 float32 tensor, one
  thread, least CPU time of 30 calls (loaded machine): hard forward 0.37-0.40 ms, soft forward
  0.40 ms plus torch's sigmoid (0.16 ms), backward 0.59-0.70 ms hard and 0.83-0.97 ms soft
  (borders per channel and level: 4.2 ms before the table sums became one scatter). Through the
  autograd function, with a given incoming gradient, 1.3 ms (hard) and 2.1 ms (soft) for
  forward+backward: the rest is the wrappers' own work (~0.1 ms forward, ~0.3 ms backward: the
  numpy views, the gradient tensors) and autograd's (~0.2 ms); the 3.6 and 8.0 ms that
  ``tools/bench_calib.py`` once printed were the masked table sums and the tool's harness
  (``docs/benchmarks.md``). Each element loop is free of
  per-element branches on the mode, so that it vectorizes: the earlier single loop took 2.2 ms
  (hard forward), 1.8 ms (soft forward: numba's scalar ``exp``) and 1.6 ms (soft backward: a
  scatter-add per element).

The quantizer, for ``x`` with channels on axis 1 and a (G, L) border table (C.4-C.6,
``docs/contract.md`` (1)-(4)), in the dtype of ``x``::

    u = x / s + z,  k = floor(u),  f = u - k,  j = clamp(k, qmin, qmax - 1) - qmin
    beta = table[g(c), j]  (g(c) = c if G > 1 else 0; j is 0 if L == 1)
    up = [f >= beta] (hard)  or  sigmoid((f - beta) / tau) (soft)
    q = clamp(k + up, qmin, qmax),  out = (q - z) s,  and out = x where an element is kept

Backward, with ``m = [qmin <= k + up <= qmax]`` and ``g' = g`` where not kept, 0 where kept:
``dx = g'm + g [kept]``, ``ds = sum g' ((q - z) - m x / s)``,
``dtable[g, j] = sum g' m s (-up (1 - up) / tau)`` (soft only). Values and ``dx`` are equal in
both backends, hard and soft (both apply torch's sigmoid to the same argument); sums differ by
their order (the fused backend sums in float64, per batch row, the rows in order: the same for
any thread count).

Kept elements (QDrop, ``drop_prob`` p) come from 16-bit random draws (:func:`draw_uniform16`,
SplitMix64): an element is kept when its draw is below :func:`keep_threshold`, so p is realised
to the nearest multiple of 2^-16. :func:`gather_select` is :func:`random_select` of a batch's rows
of two caches that take no gradient, in one pass.
"""

from __future__ import annotations

import enum
import math

import numpy as np
import torch

from aquant_sim.errors import InputError
from aquant_sim.frontend.emulation import table_index
from aquant_sim.kernels.config import inline_jit, parallel_jit, prange


class Backend(enum.Enum):
    NUMBA = "numba"
    """Fused numba kernels over contiguous CPU tensors (the default)."""
    TORCH = "torch"
    """torch elementwise ops (the reference)."""


SPLITMIX_GAMMA, SPLITMIX_MIX1, SPLITMIX_MIX2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
"""SplitMix64's increment and finaliser multipliers (Steele, Lea, Flood 2014)."""


@parallel_jit
def _splitmix_kernel(key, words):
    """``words[i]`` = SplitMix64's output ``i`` from state ``key``: the finaliser of
    ``key + (i + 1) * gamma``. Each word depends only on its index, so the draws are the same for
    any thread count."""
    for i in prange(words.shape[0]):
        z = key + np.uint64(i + 1) * SPLITMIX_GAMMA
        z = (z ^ (z >> np.uint64(30))) * SPLITMIX_MIX1
        z = (z ^ (z >> np.uint64(27))) * SPLITMIX_MIX2
        words[i] = z ^ (z >> np.uint64(31))


def draw_uniform16(shape: tuple[int, ...]) -> torch.Tensor:
    """Uniform int16 draws in [-2^15, 2^15) of ``shape``: four per 64-bit word of SplitMix64,
    seeded by one 64-bit draw from torch's global generator (so ``torch.manual_seed`` fixes
    them). torch's own generator (Mersenne Twister, one call per word) took 0.31 ms for the
    100,352 words of a 32x16x28x28 tensor, this 0.05 ms (one thread, ``docs/benchmarks.md``)."""
    count = math.prod(shape)
    key = int(torch.empty(1, dtype=torch.int64).random_(-(1 << 63), (1 << 63) - 1)) & ((1 << 64) - 1)
    # torch's allocator, not numpy's: a fresh numpy array of this size faults in its pages on
    # every call (0.2 ms here).
    words = torch.empty((count + 3) // 4, dtype=torch.int64)
    _splitmix_kernel(np.uint64(key), words.numpy().view(np.uint64))
    return words.view(torch.int16)[:count].reshape(shape)


def keep_threshold(p: float) -> int:
    """The threshold T such that a draw of :func:`draw_uniform16` is below T with probability
    ``round(p 2^16) / 2^16``."""
    return int(round(p * 65536)) - 32768


@inline_jit
def _row_borders(x, n, c, scale, zero_point, qmin, qmax, one, table, levels, index, beta):
    """``index[i]`` (flat table index) and ``beta[i]`` of every element of row (n, c). The gather
    is a pass of its own so that the element loops around it vectorize."""
    base = c * levels if table.shape[0] > 1 else 0
    for i in range(x.shape[2]):
        j = 0
        if levels > 1:
            j = np.int32(min(max(np.floor(x[n, c, i] / scale + zero_point), qmin), qmax - one) - qmin)
        index[i] = base + j
    flat = table.reshape(-1)
    for i in range(x.shape[2]):
        beta[i] = flat[index[i]]


@inline_jit
def _up(u, k, beta, one):
    """The hard round-up ``[f >= beta]`` of ``f = u - k`` (C.5)."""
    return one if u - k >= beta else one - one


@inline_jit
def _kept(draws, n, c, i, threshold, one):
    """1 where QDrop keeps the element (its draw is below ``threshold``), else 0."""
    if draws.shape[0] == 0:
        return one - one
    return one if draws[n, c, i] < threshold else one - one


@inline_jit
def _hard_row(x, beta, scale, zero_point, qmin, qmax, one, out):
    """``out`` of one row with hard borders. A loop of its own, free of the soft and kept cases'
    branches, so that it vectorizes (one loop for all cases ran 7x slower)."""
    for i in range(x.shape[0]):
        u = x[i] / scale + zero_point
        k = np.floor(u)
        q = min(max(k + _up(u, k, beta[i], one), qmin), qmax)
        out[i] = (q - zero_point) * scale


@inline_jit
def _soft_row(x, ups, scale, zero_point, qmin, qmax, out):
    """``out`` of one row with soft borders, from each element's ``up`` (the sigmoid, C.6)."""
    for i in range(x.shape[0]):
        k = np.floor(x[i] / scale + zero_point)
        q = min(max(k + ups[i], qmin), qmax)
        out[i] = (q - zero_point) * scale


@inline_jit
def _keep_row(x, draws, threshold, out):
    """``out = x`` where the draw is below ``threshold`` (QDrop's kept elements). A conditional
    store: the select ``out[i] = x[i] if ... else out[i]`` does not vectorize and ran 9x slower."""
    for i in range(x.shape[0]):
        if draws[i] < threshold:
            out[i] = x[i]


@parallel_jit
def _soft_argument_kernel(x, scale, zero_point, qmin, qmax, one, table, tau, args):
    """``args = (f - beta) / tau`` of every element, the sigmoid's argument (C.6): the sigmoid
    itself is torch's, vectorized, where numba's scalar ``exp`` was the soft forward's cost."""
    batch, channels, inner = x.shape
    levels = table.shape[1]
    for n in prange(batch):
        index = np.empty(inner, np.int32)
        beta = np.empty(inner, x.dtype)
        for c in range(channels):
            _row_borders(x, n, c, scale, zero_point, qmin, qmax, one, table, levels, index, beta)
            for i in range(inner):
                u = x[n, c, i] / scale + zero_point
                args[n, c, i] = (u - np.floor(u) - beta[i]) / tau


@parallel_jit
def _forward_kernel(x, draws, threshold, scale, zero_point, qmin, qmax, one, table, soft, ups, out):
    """``out`` (module docstring); when soft, from every element's ``up`` in ``ups``."""
    batch, channels, inner = x.shape
    levels = table.shape[1]
    for n in prange(batch):
        index = np.empty(inner, np.int32)
        beta = np.empty(inner, x.dtype)
        for c in range(channels):
            if soft:
                _soft_row(x[n, c], ups[n, c], scale, zero_point, qmin, qmax, out[n, c])
            else:
                _row_borders(x, n, c, scale, zero_point, qmin, qmax, one, table, levels, index, beta)
                _hard_row(x[n, c], beta, scale, zero_point, qmin, qmax, one, out[n, c])
            if draws.shape[0] > 0:
                _keep_row(x[n, c], draws[n, c], threshold, out[n, c])


LANES = 16
"""Partial sums per row of the backward's reductions: fixed, so the order of the additions (and so
the result) does not depend on the machine or the thread count, and the loop vectorizes."""


@inline_jit
def _row_sum(values):
    """Sum of a row in float64, ``LANES`` partial sums in a fixed order."""
    acc = np.zeros(LANES)
    whole = values.shape[0] - values.shape[0] % LANES
    for start in range(0, whole, LANES):
        for lane in range(LANES):
            acc[lane] += values[start + lane]
    for i in range(whole, values.shape[0]):
        acc[0] += values[i]
    return acc.sum()


@inline_jit
def _add_table_terms(terms, index, table_row):
    """``table_row[index[i]] += terms[i]`` over a row, in float64: a scatter into ``LANES`` partial
    sums per entry (element ``start + lane`` of each whole block of ``LANES`` into lane ``lane``,
    the tail into lane 0), each entry's lanes then summed in order: a fixed order. The scatter
    costs the same whatever the number of entries; the masked passes it replaced (one pass over the
    row per entry, a select per element that did not vectorize) took 3.7 ms against 0.47 ms for a
    32x16x28x28 tensor with three entries per row (borders per channel and level, 2 bits)."""
    first = index.min()
    count = index.max() - first + 1
    acc = np.zeros((count, LANES))
    whole = terms.shape[0] - terms.shape[0] % LANES
    for start in range(0, whole, LANES):
        for lane in range(LANES):
            acc[index[start + lane] - first, lane] += terms[start + lane]
    for i in range(whole, terms.shape[0]):
        acc[index[i] - first, 0] += terms[i]
    for j in range(count):
        table_row[first + j] += acc[j].sum()


@parallel_jit
def _backward_kernel(x, draws, threshold, scale, zero_point, qmin, qmax, one, table, soft, tau, ups, grad,
                     grad_x, scale_rows, table_rows):
    """The module docstring's gradients: ``grad_x`` (an empty (0, 1, 1) array when ``x`` takes no
    gradient: each row is then written to a scratch row that stays in cache), per batch row the
    scale's (``scale_rows``) and the table's (``table_rows``, soft only), with the forward's
    ``ups`` when soft."""
    batch, channels, inner = x.shape
    levels = table.shape[1]
    for n in prange(batch):
        index = np.empty(inner, np.int32)
        beta = np.empty(inner, x.dtype)
        scale_terms = np.empty(inner, x.dtype)
        table_terms = np.empty(inner, x.dtype)
        scratch = np.empty(inner, x.dtype)
        total = 0.0
        for c in range(channels):
            _row_borders(x, n, c, scale, zero_point, qmin, qmax, one, table, levels, index, beta)
            grad_row = grad_x[n, c] if grad_x.shape[0] > 0 else scratch
            for i in range(inner):
                v = x[n, c, i]
                g = grad[n, c, i]
                kept = _kept(draws, n, c, i, threshold, one)
                u = v / scale + zero_point
                k = np.floor(u)
                level = k + (ups[n, c, i] if soft else _up(u, k, beta[i], one))
                q = min(max(level, qmin), qmax)
                inside = one if qmin <= level <= qmax else one - one
                g_q = g * (one - kept)
                grad_row[i] = g_q * inside + g * kept
                scale_terms[i] = g_q * ((q - zero_point) - inside * v / scale)
                if soft:
                    table_terms[i] = g_q * inside * scale * (-(ups[n, c, i] * (one - ups[n, c, i])) / tau)
            total += _row_sum(scale_terms)
            if soft:
                _add_table_terms(table_terms, index, table_rows[n])
        scale_rows[n] = total


@parallel_jit
def _select_kernel(a, b, draws, threshold, out):
    """``out = b`` where the draw is below ``threshold``, else ``a`` (flat arrays)."""
    for i in prange(a.shape[0]):
        out[i] = b[i] if draws[i] < threshold else a[i]


@parallel_jit
def _gather_select_kernel(a, b, rows, draws, threshold, out):
    """``out[r] = b[rows[r]]`` where the draw is below ``threshold``, else ``a[rows[r]]`` (rows of
    flat elements)."""
    for r in prange(out.shape[0]):
        source = rows[r]
        for i in range(out.shape[1]):
            out[r, i] = b[source, i] if draws[r, i] < threshold else a[source, i]


def _as_rows(t: torch.Tensor | None, absent_dtype=None) -> np.ndarray:
    """A contiguous (N, C, rest) numpy view of a CPU tensor with channels on axis 1; for None, an
    empty (0, 1, 1) array of ``absent_dtype`` (what the kernels read as "absent")."""
    if t is None:
        return np.empty((0, 1, 1), absent_dtype)
    t = t.detach().contiguous()
    return t.numpy().reshape(t.shape[0], t.shape[1] if t.dim() > 1 else 1, -1)


def _kernel_inputs(x: torch.Tensor, table: torch.Tensor, draws: torch.Tensor | None):
    """``x`` as rows, the draws as rows (or absent) and the border table in the dtype of ``x``."""
    rows = _as_rows(x)
    return rows, _as_rows(draws, np.int16), table.detach().to(x.dtype).contiguous().numpy()


class _Fused(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale, table, zero_point, qmin, qmax, soft, tau, draws, threshold):
        rows, noise, beta = _kernel_inputs(x, table, draws)
        dtype = rows.dtype.type
        consts = (dtype(float(scale)), dtype(zero_point), dtype(qmin), dtype(qmax), dtype(1))
        out = torch.empty_like(x, memory_format=torch.contiguous_format)
        ups = None
        if soft:
            ups = torch.empty_like(out)
            _soft_argument_kernel(rows, *consts, beta, dtype(tau), _as_rows(ups))
            torch.sigmoid(ups, out=ups)
        _forward_kernel(rows, noise, np.int32(threshold), *consts, beta, bool(soft), _as_rows(ups, dtype),
                        _as_rows(out))
        ctx.save_for_backward(x, scale, table, draws, ups)
        ctx.constants = (consts, bool(soft), dtype(tau), threshold)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, scale, table, draws, ups = ctx.saved_tensors
        consts, soft, tau, threshold = ctx.constants
        rows, noise, beta = _kernel_inputs(x, table, draws)
        grad_x = torch.empty_like(x, memory_format=torch.contiguous_format) if ctx.needs_input_grad[0] else None
        scale_rows = np.zeros(rows.shape[0])
        table_rows = np.zeros((rows.shape[0], beta.size) if soft else (rows.shape[0], 1))
        _backward_kernel(rows, noise, np.int32(threshold), *consts, beta, soft, tau,
                         _as_rows(ups, rows.dtype), _as_rows(grad), _as_rows(grad_x, rows.dtype), scale_rows, table_rows)
        grad_scale = torch.tensor(scale_rows.sum(), dtype=scale.dtype).reshape(scale.shape)
        grad_table = None
        if soft and ctx.needs_input_grad[2]:
            grad_table = torch.from_numpy(table_rows.sum(axis=0)).to(table.dtype).reshape(table.shape)
        return grad_x, grad_scale, grad_table, None, None, None, None, None, None, None


class _Torch(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale, table, zero_point, qmin, qmax, soft, tau, draws, threshold):
        keep = None if draws is None else draws.to(torch.int32) < threshold
        u = x / scale + zero_point
        k = torch.floor(u)
        f = u - k
        index = None
        if table.numel() == 1:
            beta = table.reshape(())
        else:
            j = (k.clamp(qmin, qmax - 1) - qmin).long()
            index = table_index(tuple(table.shape), j)
            beta = torch.take(table, index)
        up = torch.sigmoid((f - beta) / tau) if soft else (f >= beta).to(x.dtype)
        level = k + up
        q = level.clamp(qmin, qmax)
        out = (q - zero_point) * scale
        if keep is not None:
            out = torch.where(keep, x, out)
        ctx.save_for_backward(x, scale, q, level, up if soft else None, keep, index)
        ctx.constants = (zero_point, qmin, qmax, soft, tau, tuple(table.shape))
        return out

    @staticmethod
    def backward(ctx, grad):
        x, scale, q, level, up, keep, index = ctx.saved_tensors
        zero_point, qmin, qmax, soft, tau, table_shape = ctx.constants
        inside = ((level >= qmin) & (level <= qmax)).to(grad.dtype)
        g_q = grad if keep is None else grad * (~keep)
        grad_x = g_q * inside if keep is None else g_q * inside + grad * keep
        grad_scale = (g_q * ((q - zero_point) - inside * x / scale)).sum().reshape(scale.shape)
        grad_table = None
        if soft and ctx.needs_input_grad[2]:
            d = g_q * inside * scale * (-(up * (1 - up)) / tau)
            size = table_shape[0] * table_shape[1]
            if index is None:
                grad_table = d.sum().reshape(table_shape)
            else:
                grad_table = torch.zeros(size, dtype=d.dtype, device=d.device).index_add_(0, index.reshape(-1), d.reshape(-1)).reshape(table_shape)
        return grad_x, grad_scale, grad_table, None, None, None, None, None, None, None


class _FusedSelect(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, draws, threshold):
        out = torch.empty_like(a, memory_format=torch.contiguous_format)
        flat = lambda t: t.detach().contiguous().numpy().reshape(-1)
        _select_kernel(flat(a), flat(b.to(a.dtype)), flat(draws), np.int32(threshold), flat(out))
        ctx.save_for_backward(draws)
        ctx.threshold = threshold
        return out

    @staticmethod
    def backward(ctx, grad):
        (draws,) = ctx.saved_tensors
        flat = lambda t: t.detach().contiguous().numpy().reshape(-1)
        zero = torch.zeros_like(grad, memory_format=torch.contiguous_format)
        grad_a = torch.empty_like(zero) if ctx.needs_input_grad[0] else None
        grad_b = torch.empty_like(zero) if ctx.needs_input_grad[1] else None
        threshold = np.int32(ctx.threshold)
        if grad_a is not None:
            _select_kernel(flat(grad), flat(zero), flat(draws), threshold, flat(grad_a))
        if grad_b is not None:
            _select_kernel(flat(zero), flat(grad), flat(draws), threshold, flat(grad_b))
        return grad_a, grad_b, None, None


def random_select(a: torch.Tensor, b: torch.Tensor, draws: torch.Tensor, threshold: int,
                  backend: Backend = Backend.NUMBA) -> torch.Tensor:
    """``b`` where ``draws`` (int16, the shape of ``a``) is below ``threshold``, else ``a``; the
    gradient goes to the operand selected. The values are selected, never computed."""
    if backend is Backend.NUMBA and a.device.type == "cpu":
        return _FusedSelect.apply(a, b, draws, threshold)
    return torch.where(draws.to(torch.int32) < threshold, b.to(a.dtype), a)


def gather_select(a: torch.Tensor, b: torch.Tensor, rows: torch.Tensor, draws: torch.Tensor, threshold: int,
                  backend: Backend = Backend.NUMBA) -> torch.Tensor:
    """``random_select(a[rows], b[rows], draws, threshold)`` for ``a`` and ``b`` that take no
    gradient (same dtype, contiguous on CPU for the fused backend), in one pass: the batch is
    gathered and mixed without the two gathered copies. ``rows`` int64 (B,), ``draws`` int16 of
    shape ``(B, *a.shape[1:])``."""
    if a.requires_grad or b.requires_grad:
        raise InputError("gather_select: a and b must take no gradient (use random_select on gathered rows)")
    if backend is not Backend.NUMBA or a.device.type != "cpu":
        return random_select(a.index_select(0, rows), b.index_select(0, rows), draws, threshold, backend)
    out = torch.empty(draws.shape, dtype=a.dtype)
    flat = lambda t: t.contiguous().numpy().reshape(t.shape[0], -1)
    _gather_select_kernel(flat(a), flat(b.to(a.dtype)), rows.contiguous().numpy(), flat(draws), np.int32(threshold), flat(out))
    return out


def border_round(x: torch.Tensor, scale: torch.Tensor, table: torch.Tensor, zero_point: int, qmin: int, qmax: int,
                 soft: bool, tau: float, draws: torch.Tensor | None = None, threshold: int = 0,
                 backend: Backend = Backend.NUMBA) -> torch.Tensor:
    """Fake-quantize ``x`` (module docstring): ``scale`` a 0-dim tensor, ``table`` (G, L) borders,
    ``draws`` (int16, the shape of ``x``) and ``threshold`` the kept elements, or None."""
    fn = _Fused if backend is Backend.NUMBA and x.device.type == "cpu" else _Torch
    return fn.apply(x, scale, table, zero_point, qmin, qmax, soft, tau, draws, threshold)
