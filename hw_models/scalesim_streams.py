"""The address streams of SCALE-Sim 3.0's compute model, rebuilt from its documented behaviour:
which operand word each array edge asks for in each cycle (the *demand* matrices), in which
order the read buffers fetch the operands from DRAM (the *prefetch* matrices), and the SRAM
access counts of its reports. ``scalesim_buffers`` replays these streams through its buffers.

Addresses (SCALE-Sim's ``compute/operand_matrix.py``; one word per element, ``-1`` = no
request). For a layer with an ``H x W x Ch`` input, ``FH x FW`` filters, ``N`` filters, stride
``S`` and output ``Ho x Wo`` (``TopologyLayer.ofmap``), P = Ho*Wo pixels and a window of
K = FH*FW*Ch elements:

    ifmap[p, k]  = ((oy*S + fy) * W + ox*S + fx) * Ch + c + ifmap_offset
                   with (oy, ox) = divmod(p, Wo), (fy, r) = divmod(k, FW*Ch), (fx, c) = divmod(r, Ch);
                   -1 where the window leaves the input (SCALE-Sim's ceil output size allows it)
    filter[k, n] = n*K + k + filter_offset
    ofmap[p, n]  = p*N + n + ofmap_offset

Demand matrices (``compute/systolic_compute_{os,ws,is}.py``): the GEMM is cut into folds (column
folds outer, row folds inner, as ``systolic.map_gemm``), every fold is padded to the full array
with ``-1`` and the operands that enter along an edge are skewed (``skew``: column c starts c
cycles later). Per fold, with R x C the array and T the streamed dimension:

    OS  ifmap  (width R): ifmap[rows]^T (T x R), then C-1 empty lines, skewed
        filter (width C): filter[:, cols] (T x C), then R-1 empty lines, skewed
        ofmap  (width C): T-1 empty lines, then ofmap[rows, cols] (R x C, rows reversed), skewed
    WS  ifmap  (width R): R empty lines, ifmap[:, krows] (P x R), C-1 empty lines, skewed
        filter (width C): filter[krows, cols] (R x C, rows reversed), then R+C+P-2 empty lines
        ofmap  (width C): 2R-1 empty lines, then ofmap[:, cols] (P x C), skewed
    IS  ifmap  (width C): ifmap^T[krows, pcols] (R x C, rows reversed), then R+C+N-2 empty lines
        filter (width R): R empty lines, filter[krows, :]^T (N x R), C-1 empty lines, skewed
        ofmap  (width C): 2R-1 empty lines, then ofmap[pcols, :]^T (N x C), skewed

so every fold lasts ``systolic.fold_cycles`` lines. SRAM counts are the elements of the
unpadded fold blocks; OS ofmap writes add ``R + C`` per fold (SCALE-Sim counts the reversed
block's rows plus columns once more).

Prefetch matrices (the order the read buffer fetches, USER bandwidth mode only): the folds'
blocks of one operand stacked, then read either row by row or along anti-diagonals
(``diagonal_order``: increasing row+column, and within one anti-diagonal from the bottom row up):

    OS  ifmap: ifmap[rows]^T per row fold, diagonal;   filter: filter[:, cols] per column fold, diagonal
    WS  ifmap: ifmap[:, krows] per row fold, diagonal; filter: filter[:, cols] per column fold, by rows
    IS  ifmap: ifmap^T[:, pcols] per column fold, by rows; filter: filter[krows, :]^T per row fold, diagonal
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hw_models.config import Dataflow
from hw_models.scalesim import TopologyLayer

EMPTY = -1
"""A demand or prefetch slot with no request."""


@dataclass(frozen=True)
class Offsets:
    """SCALE-Sim's ``IfmapOffset``, ``FilterOffset`` and ``OfmapOffset``: where each operand's
    addresses start."""

    ifmap: int = 0
    filter: int = 10_000_000
    ofmap: int = 20_000_000


@dataclass(frozen=True)
class Streams:
    """One layer's demand matrices (one line per cycle), prefetch orders and SRAM counts."""

    ifmap_demand: np.ndarray
    filter_demand: np.ndarray
    ofmap_demand: np.ndarray
    ifmap_prefetch: np.ndarray
    """Flat, in fetch order, ``EMPTY`` slots included (they occupy fetch bandwidth)."""
    filter_prefetch: np.ndarray
    ifmap_sram_reads: int
    filter_sram_reads: int
    ofmap_sram_writes: int


def operand_addresses(layer: TopologyLayer, offsets: Offsets) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ifmap (P x K), filter (K x N) and ofmap (P x N) address matrices of the module docstring."""
    oh, ow = layer.ofmap
    ch, fw, s = layer.channels, layer.filter_w, layer.stride
    p = np.arange(oh * ow)[:, None]
    k = np.arange(layer.filter_h * fw * ch)[None, :]
    oy, ox = np.divmod(p, ow)
    fy, rest = np.divmod(k, fw * ch)
    fx, c = np.divmod(rest, ch)
    y, x = oy * s + fy, ox * s + fx
    ifmap = np.where((y < layer.ifmap_h) & (x < layer.ifmap_w), (y * layer.ifmap_w + x) * ch + c + offsets.ifmap, EMPTY)
    window = k.shape[1]
    filters = np.arange(layer.filters)[None, :] * window + np.arange(window)[:, None] + offsets.filter
    ofmap = np.arange(oh * ow)[:, None] * layer.filters + np.arange(layer.filters)[None, :] + offsets.ofmap
    return ifmap.astype(np.int64), filters.astype(np.int64), ofmap.astype(np.int64)


def skew(block: np.ndarray) -> np.ndarray:
    """Delay column c by c lines: an (r x c) block becomes (r + c - 1) x c, ``EMPTY`` elsewhere."""
    rows, cols = block.shape
    out = np.full((rows + cols - 1, cols), EMPTY, dtype=np.int64)
    for c in range(cols):
        out[c:c + rows, c] = block[:, c]
    return out


def diagonal_order(matrix: np.ndarray) -> np.ndarray:
    """The elements by anti-diagonal (row + column increasing), bottom row first within one."""
    r, c = np.indices(matrix.shape)
    return matrix.ravel()[np.lexsort(((-r).ravel(), (r + c).ravel()))]


def _pad(block: np.ndarray, rows: int, cols: int) -> np.ndarray:
    out = np.full((rows, cols), EMPTY, dtype=np.int64)
    out[:block.shape[0], :block.shape[1]] = block
    return out


def _empty(lines: int, width: int) -> np.ndarray:
    return np.full((lines, width), EMPTY, dtype=np.int64)


def _slices(total: int, size: int) -> list[slice]:
    return [slice(i * size, min((i + 1) * size, total)) for i in range(math.ceil(total / size))]


def layer_streams(layer: TopologyLayer, rows: int, cols: int, dataflow: Dataflow, offsets: Offsets = Offsets()) -> Streams:
    """The streams of ``layer`` on an ``rows x cols`` array under ``dataflow``."""
    ifmap, filters, ofmap = operand_addresses(layer, offsets)
    p, k = ifmap.shape
    n = filters.shape[1]
    R, C = rows, cols
    demand_i, demand_f, demand_o = [], [], []
    reads_i = reads_f = writes_o = 0
    if dataflow is Dataflow.OS:
        for fc in _slices(n, C):
            for fr in _slices(p, R):
                a, b, o = ifmap[fr].T, filters[:, fc], ofmap[fr, fc]
                reads_i, reads_f, writes_o = reads_i + a.size, reads_f + b.size, writes_o + o.size + R + C
                demand_i.append(skew(np.vstack([_pad(a, k, R), _empty(C - 1, R)])))
                demand_f.append(skew(np.vstack([_pad(b, k, C), _empty(R - 1, C)])))
                demand_o.append(skew(np.vstack([_empty(k - 1, C), _pad(o, R, C)[::-1]])))
        prefetch_i = diagonal_order(np.vstack([_pad(ifmap[fr].T, k, R) for fr in _slices(p, R)]))
        prefetch_f = diagonal_order(np.vstack([_pad(filters[:, fc], k, C) for fc in _slices(n, C)]))
    elif dataflow is Dataflow.WS:
        for fc in _slices(n, C):
            for fr in _slices(k, R):
                a, b, o = ifmap[:, fr], filters[fr, fc], ofmap[:, fc]
                reads_i, reads_f, writes_o = reads_i + a.size, reads_f + b.size, writes_o + o.size
                demand_i.append(skew(np.vstack([_empty(R, R), _pad(a, p, R), _empty(C - 1, R)])))
                demand_f.append(np.vstack([_pad(b, R, C)[::-1], _empty(R + C + p - 2, C)]))
                demand_o.append(skew(np.vstack([_empty(2 * R - 1, C), _pad(o, p, C)])))
        prefetch_i = diagonal_order(np.vstack([_pad(ifmap[:, fr], p, R) for fr in _slices(k, R)]))
        prefetch_f = np.vstack([_pad(filters[:, fc], k, C) for fc in _slices(n, C)]).ravel()
    else:
        for fc in _slices(p, C):
            for fr in _slices(k, R):
                a, b, o = ifmap.T[fr, fc], filters[fr, :].T, ofmap[fc, :].T
                reads_i, reads_f, writes_o = reads_i + a.size, reads_f + b.size, writes_o + o.size
                demand_i.append(np.vstack([_pad(a, R, C)[::-1], _empty(R + C + n - 2, C)]))
                demand_f.append(skew(np.vstack([_empty(R, R), _pad(b, n, R), _empty(C - 1, R)])))
                demand_o.append(skew(np.vstack([_empty(2 * R - 1, C), _pad(o, n, C)])))
        prefetch_i = np.vstack([_pad(ifmap.T[:, fc], k, C) for fc in _slices(p, C)]).ravel()
        prefetch_f = diagonal_order(np.vstack([_pad(filters[fr, :].T, n, R) for fr in _slices(k, R)]))
    return Streams(np.vstack(demand_i), np.vstack(demand_f), np.vstack(demand_o), prefetch_i, prefetch_f,
                   reads_i, reads_f, writes_o)
