"""An imported program with this project's BORDER requantizer (docs/contract.md (6)-(8)) in place
of its runtime's rule on every conv and linear: the program that ``aquant tune-borders`` learns
border tables for.

What changes and what does not:

* Weights, weight scales and zero-points, biases, every tensor's scale and zero-point, and every
  multiplier ``M = m * 2^-n`` stay as imported. FP32's and GEMMLOWP's ``(m, n)`` already hold
  ``m`` in ``[2^30, 2^31)`` and are kept bit for bit; FLOAT64's 53-bit ``m`` is rounded to 31 bits
  by ``rounding.quantize_multiplier`` (relative change at most ``2^-31``). A BORDER program's
  requantizers are kept (their tables are replaced).
* The rule changes: (6) floors ``acc * M`` to F fraction bits, (8) rounds up where the fraction
  reaches the border ``B / 2^F``. With every border 1/2 (:func:`to_border_requantizers`'s tables)
  that is round half up of the F-bit fraction, where FP32 rounds the float32 product half to even
  and GEMMLOWP rounds twice: the result runs in the simulator, not in the runtime.
* Every other requantizing op keeps its runtime's rule, and is listed with the reason
  (:class:`Untuned`): residual adds (FP32_ADD and TFLITE_ADD combine the two inputs by the
  runtime's own float32 or gemmlowp arithmetic, with no F-bit fraction), average and global
  average pooling, elementwise products, concats, a conv or linear whose shift leaves BORDER's
  range (D.6), and one that ends in accumulators. The network input's quantizer is kept.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from aquant_sim import rounding
from aquant_sim.errors import InputError
from aquant_sim.program import BorderTable, OpKind, Program, Requantizer
from aquant_sim.rounding import RequantVariant, scaled_shift_range

TUNABLE_KINDS = (OpKind.CONV2D, OpKind.LINEAR)
"""The ops whose requantizer this module switches to BORDER."""

KEPT_REASONS = {
    OpKind.ADD: "a residual add: its variant combines the inputs by the runtime's own arithmetic, no F-bit fraction",
    OpKind.AVGPOOL2D: "average pooling: kept on the runtime's rule (only conv and linear requantizers are tuned)",
    OpKind.GLOBAL_AVGPOOL: "global average pooling: kept on the runtime's rule (only conv and linear requantizers are tuned)",
    OpKind.MUL: "an elementwise product: kept on its rule (only conv and linear requantizers are tuned)",
    OpKind.CONCAT: "a concat: kept on its rule (only conv and linear requantizers are tuned)",
}
"""Why a requantizing op that is not a conv or linear keeps its rule."""


@dataclass(frozen=True)
class Untuned:
    """A requantizing op left on its imported rule, and why."""

    op: str
    kind: OpKind
    variant: RequantVariant | None
    reason: str


@dataclass(frozen=True)
class BorderProgram:
    """The program with BORDER requantizers on ``tuned`` (op names, in program order), every
    border 1/2 (round half up of the F-bit fraction), and the requantizing ops left as imported."""

    program: Program
    tuned: tuple[str, ...]
    untuned: tuple[Untuned, ...]
    frac_bits: int


def _border_requant(requant: Requantizer, frac_bits: int) -> Requantizer:
    m, n = requant.multiplier, requant.shift
    if requant.variant is RequantVariant.FLOAT64:
        m, n = rounding.quantize_multiplier(rounding.dyadic_value(m, n))
    return Requantizer(m, n, BorderTable.nearest(frac_bits), RequantVariant.BORDER)


def _replace_ops(program: Program, ops) -> Program:
    return Program(program.tensors, tuple(ops), program.input, program.output, program.input_borders,
                   program.accumulator_bits, program.overflow)


def to_border_requantizers(program: Program, frac_bits: int) -> BorderProgram:
    """Switch every conv and linear requantizer of ``program`` to BORDER with F = ``frac_bits``
    and borders 1/2 (module docstring); list the requantizing ops that keep their rule."""
    if not 1 <= frac_bits <= rounding.MAX_FRAC_BITS:
        raise InputError(f"frac_bits: F must be in 1..{rounding.MAX_FRAC_BITS}, got {frac_bits}")
    low, high = scaled_shift_range(program.accumulator_bits)
    ops, tuned, untuned = [], [], []
    for op in program.ops:
        requant = getattr(op, "requant", None)
        if op.kind in TUNABLE_KINDS and requant is None:
            untuned.append(Untuned(op.name, op.kind, None, "ends in accumulators (no requantizer to tune)"))
        elif op.kind in TUNABLE_KINDS:
            border = _border_requant(requant, frac_bits)
            scaled = border.shift - frac_bits
            if scaled.min() < low or scaled.max() > high:
                untuned.append(Untuned(op.name, op.kind, requant.variant,
                                       f"n - F in [{scaled.min()}, {scaled.max()}] leaves BORDER's range [{low}, {high}] (D.6)"))
            else:
                op = dataclasses.replace(op, requant=border)
                tuned.append(op.name)
        elif requant is not None:
            untuned.append(Untuned(op.name, op.kind, requant.variant, KEPT_REASONS[op.kind]))
        ops.append(op)
    return BorderProgram(_replace_ops(program, ops), tuple(tuned), tuple(untuned), frac_bits)


def with_border_tables(program: Program, tables: dict[str, np.ndarray]) -> Program:
    """``program`` with the BORDER requantizer of each op named in ``tables`` given that (G, L)
    table of integers ``B`` in ``[1, 2^F]`` (the program validates shape and range). Only the
    tables change: multipliers, shifts and everything else stay."""
    by_name = {op.name: op for op in program.ops}
    for name in tables:
        op = by_name.get(name)
        if op is None or getattr(op, "requant", None) is None or op.requant.variant is not RequantVariant.BORDER:
            raise InputError(f"border table for '{name}': the program has no op of that name with a BORDER requantizer")
    ops = []
    for op in program.ops:
        if op.name in tables:
            table = BorderTable(op.requant.frac_bits, np.asarray(tables[op.name], dtype=np.int64))
            op = dataclasses.replace(op, requant=dataclasses.replace(op.requant, borders=table))
        ops.append(op)
    return _replace_ops(program, ops)
