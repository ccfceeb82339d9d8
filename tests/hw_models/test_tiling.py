"""The tiling model: its traffic equations equal a loop-by-loop replay of the tile nest, and its
search finds the least traffic of a brute-force enumeration of every tiling, on small layers."""

import itertools
import math

import pytest

from aquant_sim.errors import UnsupportedError
from hw_models.config import Dataflow
from hw_models.tiling import LoopOrder, Tiling, Widths, best_tiling, fits, traffic, units

WIDTHS = Widths(input=4, weight=3, output=8, psum=32)


def replay(p, k, n, tiling, widths):
    """Walk the nest tile by tile: fetch an input or weight tile when it changes, write an
    output tile back when it is left (partial sums until its last window tile), read partial
    sums back when an output tile is revisited. Returns (input, weight, output-write, psum-read) bytes."""
    sizes = {"p": tiling.tile_p, "k": tiling.tile_k, "n": tiling.tile_n}
    dims = {"p": p, "k": k, "n": n}
    trips = {d: math.ceil(dims[d] / sizes[d]) for d in "pkn"}

    def extent(d, i):
        return min(sizes[d], dims[d] - i * sizes[d])

    order = tiling.order.value
    resident = {"in": None, "w": None}
    progress, current = {}, None
    counts = {"in": 0, "w": 0, "final": 0, "psum_w": 0, "psum_r": 0}

    def leave(tile):
        size = extent("p", tile[0]) * extent("n", tile[1])
        counts["final" if progress[tile] == trips["k"] else "psum_w"] += size

    for index in itertools.product(*(range(trips[d]) for d in order)):
        i = dict(zip(order, index))
        for name, deps in (("in", "pk"), ("w", "kn")):
            tile = tuple(i[d] for d in deps)
            if tile != resident[name]:
                resident[name] = tile
                counts[name] += extent(deps[0], tile[0]) * extent(deps[1], tile[1])
        out = (i["p"], i["n"])
        if out != current:
            if current is not None:
                leave(current)
            if progress.get(out, 0):
                counts["psum_r"] += extent("p", out[0]) * extent("n", out[1])
            current = out
        progress[out] = progress.get(out, 0) + 1
    leave(current)

    def b(elements, bits):
        return math.ceil(elements * bits / 8)

    return (b(counts["in"], widths.input), b(counts["w"], widths.weight),
            b(counts["final"], widths.output) + b(counts["psum_w"], widths.psum), b(counts["psum_r"], widths.psum))


def all_tilings(p, k, n, unit):
    def sizes(d, u):
        return sorted({min(d, u * m) for m in range(1, math.ceil(d / u) + 1)})

    for order in LoopOrder:
        for tp, tk, tn in itertools.product(sizes(p, unit[0]), sizes(k, unit[1]), sizes(n, unit[2])):
            yield Tiling(order, tp, tk, tn)


LAYERS = [(5, 7, 4), (9, 6, 5), (3, 11, 7), (8, 8, 8), (1, 13, 6)]


@pytest.mark.parametrize("p, k, n", LAYERS)
@pytest.mark.parametrize("dataflow", list(Dataflow))
def test_equations_equal_the_replay(p, k, n, dataflow):
    """For every tiling of the family, the traffic equations give the replay's bytes."""
    for tiling in all_tilings(p, k, n, units(2, 3, dataflow)):
        t = traffic(p, k, n, tiling, WIDTHS)
        assert (t.input_reads, t.weight_reads, t.output_writes, t.psum_reads) == replay(p, k, n, tiling, WIDTHS), tiling


@pytest.mark.parametrize("p, k, n", LAYERS)
@pytest.mark.parametrize("dataflow", list(Dataflow))
@pytest.mark.parametrize("buffers", [(8, 8, 40), (16, 6, 24), (64, 64, 256), (10, 20, 12)])
def test_search_finds_the_brute_force_minimum(p, k, n, dataflow, buffers):
    """best_tiling returns a fitting tiling whose traffic is the least over every fitting
    tiling of the family (replayed), or UnsupportedError exactly when none fits."""
    unit = units(2, 3, dataflow)
    fitting = [t for t in all_tilings(p, k, n, unit) if fits(p, k, n, t, WIDTHS, buffers)]
    if not fitting:
        with pytest.raises(UnsupportedError, match="no tiling"):
            best_tiling(p, k, n, unit, WIDTHS, buffers)
        return
    least = min(sum(replay(p, k, n, t, WIDTHS)) for t in fitting)
    best = best_tiling(p, k, n, unit, WIDTHS, buffers)
    assert fits(p, k, n, best.tiling, WIDTHS, buffers)
    assert best.total == least == sum(replay(p, k, n, best.tiling, WIDTHS))


def test_partial_sums_stay_on_chip_when_they_fit():
    """Weights too large for the filter buffer split the window; the output tile fits the
    ofmap buffer at the accumulator width, so the partial sums stay there: outputs written once."""
    roomy = best_tiling(16, 64, 16, units(4, 4, Dataflow.WS), WIDTHS, (64, 64, 4096))
    assert roomy.tiling.tile_k < 64 and roomy.psum_reads == 0 and roomy.output_writes == 16 * 16


def test_larger_buffers_never_add_traffic():
    unit = units(4, 4, Dataflow.OS)
    totals = [best_tiling(40, 72, 24, unit, WIDTHS, (size, size, 2 * size)).total for size in (64, 128, 256, 512, 4096)]
    assert totals == sorted(totals, reverse=True) and totals[-1] == math.ceil(40 * 72 * 4 / 8) + 72 * 24 * 3 // 8 + 40 * 24
