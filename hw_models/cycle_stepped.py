"""A cycle-stepped reference model of the systolic array: operands move PE by PE, one hop a
cycle, and the array computes the actual GEMM. It is slow (a Python loop over cycles) and exists
to check the analytic model (``systolic.py``) and the SRAM access counts (``memory.py``) on small
layers: the tests require exact agreement, and that the product equals ``a @ b``.

Timing rules (what the model simulates; the cycle counts follow from them, not from a formula):

- One fold at a time, folds back to back (no overlap between folds, as in SCALE-Sim).
- The controller runs one static schedule per fold: every row and column of the R x C array
  takes part, unused lanes carry zeros (a partly filled fold takes as long as a full one).
- WS / IS: the stationary operand enters at the top row and shifts down one row a cycle (R
  cycles). Then streamed vector t enters row r at the left edge in cycle t + r (skew), moves one
  column right each cycle, and PE (r, c) adds ``w * x`` to the partial sum arriving from the PE
  above; the bottom PE of column c writes output (t, c). The fold ends when the last operand has
  left the array's right edge.
- OS: element k of the ifmap row of PE row r enters at the left in cycle k + r, element k of the
  filter column of PE column c at the top in cycle k + c; each PE accumulates its own output. The
  fold ends when the last operand has left the array, and its outputs are written in that cycle
  (the drain overlaps the next fold).
- ``cycles`` is the index (from 0) of the cycle that writes the last output: SCALE-Sim's count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw_models.config import Dataflow


@dataclass
class SteppedResult:
    """The product and what the run did. Access counts are in elements of real (not padded)
    operands: ``ifmap_reads`` of ``a``, ``filter_reads`` of ``b``, ``ofmap_writes`` of outputs
    and partial sums, ``psum_reads`` of partial sums read back to accumulate."""

    output: np.ndarray
    cycles: int
    ifmap_reads: int = 0
    filter_reads: int = 0
    ofmap_writes: int = 0
    psum_reads: int = 0
    busy_macs: int = 0


def _stationary_fold(stat: np.ndarray, stream: np.ndarray, real: np.ndarray, start: int):
    """One WS/IS fold. ``stat`` (R x C) is held in the PEs, ``stream`` (T x R) flows in from the
    left. Returns the outputs (T x C), the index of the last busy cycle and the real MACs."""
    rows, cols = stat.shape
    t_len = stream.shape[0]
    held = np.zeros_like(stat)
    cycle = start
    for k in range(rows):  # The stationary operand shifts down one row a cycle.
        held[1:] = held[:-1]
        held[0] = stat[rows - 1 - k]
        cycle += 1
    x = np.zeros((rows, cols), dtype=np.int64)
    live = np.zeros((rows, cols), dtype=bool)
    psum = np.zeros((rows, cols), dtype=np.int64)
    out = np.zeros((t_len, cols), dtype=np.int64)
    lanes = np.arange(rows)
    busy, last, s = 0, None, 0
    while True:
        x[:, 1:], live[:, 1:] = x[:, :-1].copy(), live[:, :-1].copy()
        t = s - lanes
        entering = (t >= 0) & (t < t_len)
        x[:, 0] = np.where(entering, stream[np.clip(t, 0, t_len - 1), lanes], 0)
        live[:, 0] = entering
        if not live.any() and s >= t_len:
            break
        # Partial sums move down one row a cycle and pick up this PE's product on the way.
        psum[1:] = psum[:-1] + held[1:] * x[1:]
        psum[0] = held[0] * x[0]
        bottom = live[rows - 1]
        out[(s - (rows - 1) - np.arange(cols))[bottom], np.arange(cols)[bottom]] = psum[rows - 1][bottom]
        busy += int((live & real).sum())
        last = cycle + s
        s += 1
    return out, last, busy


def _output_fold(a: np.ndarray, b: np.ndarray, real: np.ndarray, start: int):
    """One OS fold: ``a`` (R x T) streams in from the left, ``b`` (T x C) from the top."""
    rows, t_len = a.shape
    cols = b.shape[1]
    xa = np.zeros((rows, cols), dtype=np.int64)
    xb = np.zeros((rows, cols), dtype=np.int64)
    live_a = np.zeros((rows, cols), dtype=bool)
    live_b = np.zeros((rows, cols), dtype=bool)
    acc = np.zeros((rows, cols), dtype=np.int64)
    busy, last, s = 0, None, 0
    while True:
        xa[:, 1:], live_a[:, 1:] = xa[:, :-1].copy(), live_a[:, :-1].copy()
        xb[1:], live_b[1:] = xb[:-1].copy(), live_b[:-1].copy()
        ka, kb = s - np.arange(rows), s - np.arange(cols)
        in_a, in_b = (ka >= 0) & (ka < t_len), (kb >= 0) & (kb < t_len)
        xa[:, 0] = np.where(in_a, a[np.arange(rows), np.clip(ka, 0, t_len - 1)], 0)
        xb[0] = np.where(in_b, b[np.clip(kb, 0, t_len - 1), np.arange(cols)], 0)
        live_a[:, 0], live_b[0] = in_a, in_b
        if not (live_a.any() or live_b.any()) and s >= t_len:
            break
        meet = live_a & live_b
        acc += np.where(meet, xa * xb, 0)
        busy += int((meet & real).sum())
        last = start + s
        s += 1
    return acc, last, busy


def _pad(tile: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    padded = np.zeros(shape, dtype=np.int64)
    padded[: tile.shape[0], : tile.shape[1]] = tile
    return padded


def simulate_gemm(a: np.ndarray, b: np.ndarray, rows: int, cols: int, dataflow: Dataflow) -> SteppedResult:
    """Run ``a @ b`` for every group (``a``: (G, P, K), ``b``: (G, K, N)) on an R x C array."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    groups, pixels, window = a.shape
    filters = b.shape[2]
    result = SteppedResult(np.zeros((groups, pixels, filters), dtype=np.int64), cycles=-1)
    start = 0
    for g in range(groups):
        if dataflow is Dataflow.OS:
            start = _run_os(a[g], b[g], rows, cols, result, g, start)
        elif dataflow is Dataflow.WS:
            start = _run_stationary(b[g], a[g], rows, cols, result, g, start, transpose=False)
        else:  # IS: the same machine with a^T held and b^T streamed; it produces (a @ b)^T.
            start = _run_stationary(a[g].T, b[g].T, rows, cols, result, g, start, transpose=True)
    return result


def _run_stationary(stat, stream, rows, cols, result, g, start, transpose) -> int:
    """Folds of a stationary dataflow: ``stat`` (Sr x Sc) held, ``stream`` (T x Sr) streamed;
    each fold's (T x columns) outputs accumulate into group g's product (transposed for IS)."""
    sr, sc = stat.shape
    for j0 in range(0, sc, cols):
        for i0 in range(0, sr, rows):
            tile = stat[i0:i0 + rows, j0:j0 + cols]
            real = np.zeros((rows, cols), dtype=bool)
            real[: tile.shape[0], : tile.shape[1]] = True
            out, last, busy = _stationary_fold(_pad(tile, (rows, cols)), _pad(stream[:, i0:i0 + rows], (stream.shape[0], rows)), real, start)
            part = out[:, : tile.shape[1]]
            if transpose:
                result.output[g][j0:j0 + tile.shape[1], :] += part.T
            else:
                result.output[g][:, j0:j0 + tile.shape[1]] += part
            held_reads, streamed_reads = tile.size, stream.shape[0] * tile.shape[0]
            result.filter_reads += streamed_reads if transpose else held_reads
            result.ifmap_reads += held_reads if transpose else streamed_reads
            result.ofmap_writes += part.size
            result.psum_reads += part.size if i0 > 0 else 0
            result.busy_macs += busy
            result.cycles = last
            start = last + 1
    return start


def _run_os(a, b, rows, cols, result, g, start) -> int:
    pixels, filters = a.shape[0], b.shape[1]
    for i0 in range(0, pixels, rows):
        for j0 in range(0, filters, cols):
            a_tile, b_tile = a[i0:i0 + rows], b[:, j0:j0 + cols]
            real = np.zeros((rows, cols), dtype=bool)
            real[: a_tile.shape[0], : b_tile.shape[1]] = True
            acc, last, busy = _output_fold(_pad(a_tile, (rows, a.shape[1])), _pad(b_tile, (b.shape[0], cols)), real, start)
            result.output[g][i0:i0 + rows, j0:j0 + cols] = acc[: a_tile.shape[0], : b_tile.shape[1]]
            result.ifmap_reads += a_tile.size
            result.filter_reads += b_tile.size
            result.ofmap_writes += a_tile.shape[0] * b_tile.shape[1]
            result.busy_macs += busy
            result.cycles = last
            start = last + 1
    return start
