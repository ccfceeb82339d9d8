"""Plain-text tables of a run."""

from aquant_sim.program import OpKind
from aquant_sim.simulator import LayerCounters
from aquant_sim.summary import counters_table


def test_counters_table_totals():
    """The counters table has a row per layer and totals of MACs, requantized, lookups and overflows."""
    counters = [
        LayerCounters("c1", OpKind.CONV2D, (4, 2, 2), 32, macs=1000, requantized=32, border_lookups=32, overflows=1, max_abs_acc=70, zero_fraction=0.25),
        LayerCounters("r", OpKind.CLAMP, (4, 2, 2), 32, zero_fraction=0.5),
        LayerCounters("fc", OpKind.LINEAR, (3,), 6, macs=96, overflows=2, max_abs_acc=900),
    ]
    last = counters_table(counters).splitlines()[-1].split()
    assert last == ["total", "1,096", "32", "32", "3", "900"]
