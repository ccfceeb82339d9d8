"""Plain-text tables of a run: the per-layer counters and the float-model measurement.

Used by the ``simulate``, ``verify`` and ``demo`` commands; columns are right-aligned numbers and
left-aligned names, one row per op in program order, and a totals row for the counters, laid
out by the one formatter, :func:`aquant_sim.table.format_table`.
"""

from __future__ import annotations

from typing import Sequence

from aquant_sim.float_model import LayerDifference
from aquant_sim.simulator import LayerCounters
from aquant_sim.table import format_table


COUNTER_HEADER = ("layer", "kind", "output shape", "MACs", "requantized", "border lookups", "overflows",
                  "max |acc|", "zero fraction")


def counters_table(counters: Sequence[LayerCounters]) -> str:
    """The per-layer summary: what each op did over the whole batch, and the totals."""
    rows = [(c.name, c.kind.value, "x".join(map(str, c.output_shape)), f"{c.macs:,}", f"{c.requantized:,}",
             f"{c.border_lookups:,}", f"{c.overflows:,}", f"{c.max_abs_acc:,}", f"{c.zero_fraction:.3f}")
            for c in counters]
    rows.append(("total", "", "", f"{sum(c.macs for c in counters):,}", f"{sum(c.requantized for c in counters):,}",
                 f"{sum(c.border_lookups for c in counters):,}", f"{sum(c.overflows for c in counters):,}",
                 f"{max((c.max_abs_acc for c in counters), default=0):,}", ""))
    return format_table(COUNTER_HEADER, rows)


def float_model_table(differences: Sequence[LayerDifference]) -> str:
    """Per requantizing op: elements whose level differs between the float model and the
    datapath, and the largest difference in levels."""
    rows = [(d.name, d.kind.value, f"{d.elements:,}", f"{d.differing:,}", d.max_level_difference) for d in differences]
    return format_table(("layer", "kind", "elements", "differing", "max |diff| (levels)"), rows)
