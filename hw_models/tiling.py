"""The project's loop-tiling memory model: for each array layer, the loop order and tile sizes
that move the fewest DRAM bytes through the three double-buffered SRAMs, and those bytes.

One group's GEMM ``out[P, N] = in[P, K] @ w[K, N]`` runs as a nest of three tile loops, in one
of the six orders of :class:`LoopOrder` (outer to inner), over tiles ``tp x tk x tn``. Tiles are
whole multiples of what one fold of the array covers (``UNITS``: under OS ``tp`` of R pixels and
``tn`` of C filters, under WS ``tk`` of R window rows and ``tn`` of C, under IS ``tk`` of R and
``tp`` of C pixels; the streamed dimension is free) or the whole dimension, so that the folds of
``systolic.py`` run unchanged inside the tiles (the model keeps its compute cycles).

**Capacity** (half of each buffer works while the other half fills): ``tp tk`` inputs at the
input width fit half the ifmap buffer, ``tk tn`` weights half the filter buffer, and the
``tp tn`` output tile half the ofmap buffer, at the accumulator width when the window is split
(``nk > 1``: partial sums wait there), else at the output width.

**Traffic.** With trip counts ``np = ceil(P/tp)``, ``nk``, ``nn``, an operand's tile is fetched
again each time an index it depends on changes; the loop it does not depend on re-fetches it
only when that loop is outside the innermost loop it depends on (among those that run more than
once: a loop of one trip changes no index):

    inputs  (p, k):  |in| x (nn if n is outside the inner of p, k else 1)
    weights (k, n):  |w|  x (np if p is outside the inner of k, n else 1)
    outputs (p, n):  written once at the output width when k is inside both p and n (the
                     partial sums stay in the ofmap buffer); otherwise every output tile is
                     left nk times: nk - 1 partial-sum writes and nk - 1 read-backs at the
                     accumulator width, and the final write at the output width

(|x| in elements; bytes round up once per operand and direction). ``best_tiling`` searches
every order and every tile size of the family (exactly: per dimension, the smallest tile for
each distinct trip count, which dominates the larger tiles of the same count; and the largest
fitting ``tk`` for each ``tp``, ``tn``), keeps those that fit, and returns the fewest total bytes
(ties: ``LoopOrder`` order, then smaller ``tp``, then smaller ``tn``).
``tests/hw_models/test_tiling.py`` checks the traffic against a loop-by-loop replay of the nest
and the search against a brute-force enumeration of all tilings on small layers.
"""

from __future__ import annotations

import enum
import functools
import math
from dataclasses import dataclass

import numpy as np

from aquant_sim.errors import UnsupportedError
from hw_models.config import Dataflow


class LoopOrder(enum.Enum):
    """The tile loops from outer to inner (P pixels, K window, N filters)."""

    PKN = "pkn"
    PNK = "pnk"
    KPN = "kpn"
    KNP = "knp"
    NPK = "npk"
    NKP = "nkp"

    def outside(self, loop: str, deps: str, trips: dict):
        """Whether ``loop`` is outside the innermost of the loops ``deps`` that run more than
        once (``trips``: trip count per loop letter, ints or arrays; a loop of one trip changes
        nothing). Elementwise on arrays."""
        first, second = sorted(deps, key=self.value.index)
        at = self.value.index(loop)
        return np.where(trips[second] > 1, at < self.value.index(second),
                        np.where(trips[first] > 1, at < self.value.index(first), False))


@dataclass(frozen=True)
class Tiling:
    order: LoopOrder
    tile_p: int
    tile_k: int
    tile_n: int


@dataclass(frozen=True)
class TileTraffic:
    """The DRAM bytes of a layer's groups under a tiling."""

    tiling: Tiling
    input_reads: int
    weight_reads: int
    output_writes: int
    """Final outputs and partial sums written."""
    psum_reads: int
    """Partial sums read back."""

    @property
    def total(self) -> int:
        return self.input_reads + self.weight_reads + self.output_writes + self.psum_reads


@dataclass(frozen=True)
class Widths:
    """Bits of an input, a weight, a final output and a partial sum."""

    input: int
    weight: int
    output: int
    psum: int


def units(rows: int, cols: int, dataflow: Dataflow) -> tuple[int, int, int]:
    """The multiple that ``tp``, ``tk``, ``tn`` must be of (1: free)."""
    return {Dataflow.OS: (rows, 1, cols), Dataflow.WS: (1, rows, cols), Dataflow.IS: (cols, rows, 1)}[dataflow]


def _bytes(elements, bits: int):
    return -(-(elements * bits) // 8)


def traffic(p: int, k: int, n: int, tiling: Tiling, widths: Widths, inputs: int | None = None, groups: int = 1) -> TileTraffic:
    """The traffic equations of the module docstring for one tiling of ``groups`` GEMMs run
    one after the other; ``inputs`` is |in| of all groups (``groups * p * k`` when None; a conv
    passes its unique input elements)."""
    trips_p, trips_k, trips_n = (math.ceil(d / t) for d, t in ((p, tiling.tile_p), (k, tiling.tile_k), (n, tiling.tile_n)))
    order, trips = tiling.order, {"p": trips_p, "k": trips_k, "n": trips_n}
    inputs = (groups * p * k if inputs is None else inputs) * (trips_n if order.outside("n", "pk", trips) else 1)
    weights = groups * k * n * (trips_p if order.outside("p", "kn", trips) else 1)
    spilled = groups * p * n * (trips_k - 1 if order.outside("k", "pn", trips) else 0)
    return TileTraffic(tiling, _bytes(inputs, widths.input), _bytes(weights, widths.weight),
                       _bytes(groups * p * n, widths.output) + _bytes(spilled, widths.psum), _bytes(spilled, widths.psum))


def fits(p: int, k: int, n: int, tiling: Tiling, widths: Widths, buffers: tuple[int, int, int]) -> bool:
    """The capacity rule: each tile in half its buffer (``buffers`` in bytes)."""
    out_bits = widths.psum if tiling.tile_k < k else widths.output
    return (_bytes(tiling.tile_p * tiling.tile_k, widths.input) <= buffers[0] // 2
            and _bytes(tiling.tile_k * tiling.tile_n, widths.weight) <= buffers[1] // 2
            and _bytes(tiling.tile_p * tiling.tile_n, out_bits) <= buffers[2] // 2)


def _candidates(size: int, unit: int) -> np.ndarray:
    """For each distinct trip count, the smallest tile of the family reaching it (ascending)."""
    tiles = np.minimum(size, unit * np.arange(1, math.ceil(size / unit) + 1))
    trips = -(-size // tiles)
    first = np.unique(trips, return_index=True)[1]
    return np.unique(tiles[first])


@functools.lru_cache(maxsize=4096)
def best_tiling(p: int, k: int, n: int, unit: tuple[int, int, int], widths: Widths, buffers: tuple[int, int, int],
                inputs: int | None = None, groups: int = 1) -> TileTraffic:
    """The fitting tiling with the fewest DRAM bytes (``inputs``, ``groups`` as in
    :func:`traffic`; the capacity rule counts a tile's ``tp x tk`` elements either way);
    UnsupportedError when none fits.

    Traffic never grows when a tile grows (fewer trips: smaller factors, and a loop of one trip
    re-fetches nothing), so for each ``tp`` and ``tn`` of the family only the largest fitting
    ``tk`` needs a look: the whole window if it fits at the output width, else the largest
    split one whose partial sums fit."""
    size_in = groups * p * k if inputs is None else inputs
    tp = _candidates(p, unit[0])[:, None]
    tn = _candidates(n, unit[2])[None, :]
    tks = _candidates(k, unit[1])
    halves = [8 * (b // 2) for b in buffers]
    cap = np.minimum(halves[0] // (tp * widths.input), halves[1] // (tn * widths.weight))
    whole = (cap >= k) & (tp * tn * widths.output <= halves[2])
    splits = tks[tks < k]
    at = np.searchsorted(splits, cap, side="right") - 1
    split_ok = (at >= 0) & (tp * tn * widths.psum <= halves[2])
    if not (whole | split_ok).any():
        raise UnsupportedError(f"no tiling of a {p}x{k}x{n} GEMM fits buffers of {buffers} bytes")
    tk = np.where(whole, k, splits[np.maximum(at, 0)] if len(splits) else k)
    ok = whole | split_ok
    np_, nk, nn = -(-p // tp), -(-k // tk), -(-n // tn)
    trips = {"p": np_, "k": nk, "n": nn}
    best = None
    for order in LoopOrder:
        spills = (nk - 1) * order.outside("k", "pn", trips)
        total = (_bytes(size_in * np.where(order.outside("n", "pk", trips), nn, 1), widths.input)
                 + _bytes(groups * k * n * np.where(order.outside("p", "kn", trips), np_, 1), widths.weight)
                 + _bytes(groups * p * n, widths.output) + 2 * _bytes(groups * p * n * spills, widths.psum))
        total = np.where(ok, total, np.iinfo(np.int64).max)
        i, j = np.unravel_index(np.argmin(total), total.shape)
        if best is None or total[i, j] < best[0]:
            best = (total[i, j], Tiling(order, int(tp[i, 0]), int(tk[i, j]), int(tn[0, j])))
    return traffic(p, k, n, best[1], widths, inputs, groups)
