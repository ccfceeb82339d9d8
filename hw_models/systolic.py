"""The analytic cycle model of an R x C systolic array: SCALE-Sim's stall-free compute cycles.

A GEMM ``(P x K) @ (K x N)`` maps onto the array as three numbers per dataflow: Sr (mapped to
rows), Sc (mapped to columns) and T (streamed in time):

    OS: Sr = P (ofmap pixels), Sc = N (filters), T = K (window)
    WS: Sr = K (window),       Sc = N (filters), T = P (ofmap pixels)
    IS: Sr = K (window),       Sc = P (pixels),  T = N (filters)

With folds = ceil(Sr / R) * ceil(Sc / C) (times the conv's groups: one GEMM per group, run back
to back), the stall-free compute time is

    WS, IS:  folds * (2R + C + T - 2) - 1
    OS:      folds * (R + C + T - 2) - 1

A WS/IS fold spends R cycles loading the stationary operand, then streams T vectors that the
array skews by R - 1 rows and C - 1 columns; an OS fold streams T elements skewed the same way
and drains its outputs while the next fold computes. The trailing ``- 1`` is SCALE-Sim's
convention: the count is the index (from 0) of the cycle in which the last output is written.
Every fold uses the full R x C schedule even when it is partly empty (SCALE-Sim pads its operand
matrices; the cycle-stepped model in ``cycle_stepped.py`` shows why: operands travel to the
array's edge whatever the occupancy). ``cycle_stepped.py`` checks these formulas PE by PE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hw_models.config import ArrayConfig, Dataflow
from hw_models.layers import Gemm


@dataclass(frozen=True)
class Mapping:
    """A GEMM on the array: the Sr, Sc, T of its dataflow and its fold counts."""

    sr: int
    sc: int
    t: int
    row_folds: int
    col_folds: int
    groups: int

    @property
    def folds(self) -> int:
        return self.groups * self.row_folds * self.col_folds


def operand_dims(gemm: Gemm, dataflow: Dataflow) -> tuple[int, int, int]:
    """(Sr, Sc, T) of one group's GEMM under ``dataflow``."""
    p, k, n = gemm.pixels, gemm.window, gemm.filters
    if dataflow is Dataflow.OS:
        return p, n, k
    if dataflow is Dataflow.WS:
        return k, n, p
    return k, p, n


def map_gemm(gemm: Gemm, rows: int, cols: int, dataflow: Dataflow) -> Mapping:
    sr, sc, t = operand_dims(gemm, dataflow)
    return Mapping(sr, sc, t, math.ceil(sr / rows), math.ceil(sc / cols), gemm.groups)


def fold_cycles(rows: int, cols: int, t: int, dataflow: Dataflow) -> int:
    """Cycles of one fold, from its first operand to the array being empty again."""
    if dataflow is Dataflow.OS:
        return rows + cols + t - 2
    return 2 * rows + cols + t - 2


def compute_cycles(gemm: Gemm, array: ArrayConfig) -> int:
    """SCALE-Sim's stall-free "Total Cycles" of a GEMM (all groups) on ``array``."""
    mapping = map_gemm(gemm, array.rows, array.cols, array.dataflow)
    return mapping.folds * fold_cycles(array.rows, array.cols, mapping.t, array.dataflow) - 1


def vector_cycles(ops: int, lanes: int) -> int:
    """A vector unit of ``lanes`` lanes does one element operation per lane per cycle."""
    return math.ceil(ops / lanes)
