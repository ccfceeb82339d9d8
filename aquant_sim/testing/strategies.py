"""Hypothesis strategies for the rounding and requantization contract (docs/contract.md).

Every strategy favours the values where integer code breaks: the limits of each type, zero,
powers of two and their neighbours, ties exactly on a border. The suite's tests and the public
conformance kit (:mod:`aquant_sim.testing.conformance`) draw from here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from aquant_sim import rounding
from aquant_sim.rounding import accumulator_range
from aquant_sim.program import (
    MAX_ACCUMULATOR_BITS, MAX_BITS, MIN_ACCUMULATOR_BITS, MIN_BITS, BorderGranularity, QuantParams,
)


def edge_integers(lo: int, hi: int) -> st.SearchStrategy[int]:
    """Integers in ``[lo, hi]``, often one of: the limits, 0, +-1, +-2^k and +-2^k +- 1."""
    edges = {lo, hi, lo + 1, hi - 1, 0, 1, -1}
    k = 0
    while (1 << k) <= max(abs(lo), abs(hi)) + 1:
        for base in (1 << k, -(1 << k)):
            edges.update((base - 1, base, base + 1))
        k += 1
    edges = sorted(e for e in edges if lo <= e <= hi)
    return st.one_of(st.sampled_from(edges), st.integers(lo, hi))


def bit_widths(min_bits: int = MIN_BITS, max_bits: int = MAX_BITS) -> st.SearchStrategy[int]:
    """Operand widths b, every one from ``min_bits`` to ``max_bits``."""
    return st.integers(min_bits, max_bits)


@dataclass(frozen=True)
class IntegerGrid:
    """The levels of a b-bit tensor and its zero-point."""

    bits: int
    signed: bool
    qmin: int
    qmax: int
    zero_point: int


@st.composite
def integer_grids(draw, bits: int | None = None, signed: bool | None = None) -> IntegerGrid:
    """A b-bit signed or unsigned grid with a zero-point anywhere on it (often at an end or 0)."""
    bits = draw(bit_widths()) if bits is None else bits
    signed = draw(st.booleans()) if signed is None else signed
    qmin, qmax = rounding.integer_range(bits, signed)
    zero_point = draw(st.one_of(st.sampled_from(sorted({qmin, qmax, max(qmin, 0), qmin + (qmax - qmin + 1) // 2})),
                                st.integers(qmin, qmax)))
    return IntegerGrid(bits, signed, qmin, qmax, zero_point)


@st.composite
def quant_params(draw, bits: int | None = None, signed: bool | None = None) -> QuantParams:
    """Quantization parameters of a b-bit tensor: a drawn grid and a positive scale, often a
    power of two (where float error vanishes), otherwise any value from 2^-20 to 2^10."""
    grid = draw(integer_grids(bits, signed))
    scale = draw(st.one_of(st.integers(-20, 10).map(lambda e: 2.0**e), st.floats(2.0**-20, 2.0**10)))
    return QuantParams(grid.bits, grid.signed, scale, grid.zero_point)


def accumulator_widths() -> st.SearchStrategy[int]:
    """Accumulator widths A that programs allow (8..32)."""
    return st.integers(MIN_ACCUMULATOR_BITS, MAX_ACCUMULATOR_BITS)


def accumulators(bits: int) -> st.SearchStrategy[int]:
    """Values of an A-bit signed accumulator, with edge values at its limits and powers of two."""
    lo, hi = rounding.accumulator_range(bits)
    return edge_integers(lo, hi)


def multipliers() -> st.SearchStrategy[int]:
    """Fixed-point multipliers m in ``[2^30, 2^31)``, often at the ends or at 3 * 2^29."""
    lo, hi = 1 << 30, (1 << 31) - 1
    return st.one_of(st.sampled_from([lo, lo + 1, 3 << 29, hi - 1, hi]), st.integers(lo, hi))


def frac_bits() -> st.SearchStrategy[int]:
    """Border fraction bits F, 1..16."""
    return st.integers(1, rounding.MAX_FRAC_BITS)


def shifts(frac_bits: int, accumulator_bits: int) -> st.SearchStrategy[int]:
    """Shifts n with ``n - F`` in ``rounding.scaled_shift_range(A)`` (D.6: nothing overflows
    int64), favouring the ends and the band ``n - F`` near 31, where one accumulator step is
    about one fraction step."""
    lo, hi = (end + frac_bits for end in rounding.scaled_shift_range(accumulator_bits))
    return st.one_of(st.sampled_from([lo, hi, frac_bits, 31 + frac_bits]), st.integers(lo, hi),
                     st.integers(max(lo, 24 + frac_bits), min(hi, 40 + frac_bits)))


def border_values(frac: int) -> st.SearchStrategy[int]:
    """One border B in ``[1, 2^F]``: often 1, 2^(F-1) (one half) or 2^F (floor)."""
    one = 1 << frac
    return st.one_of(st.sampled_from(sorted({1, max(1, one >> 1), one})), st.integers(1, one))


MAX_DRAWN_BORDERS = 64
"""Larger tables (per level of a wide grid: up to 2^16 - 1 borders) are filled from a drawn seed,
with a few drawn edge values placed at drawn positions."""


@st.composite
def border_arrays(draw, frac: int, size: int) -> np.ndarray:
    """``size`` borders B in ``[1, 2^F]`` as an int64 vector."""
    if size <= MAX_DRAWN_BORDERS:
        return np.array(draw(st.lists(border_values(frac), min_size=size, max_size=size)), dtype=np.int64)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = rng.integers(1, (1 << frac) + 1, size=size, dtype=np.int64)
    for _ in range(draw(st.integers(0, 4))):
        values[draw(st.integers(0, size - 1))] = draw(border_values(frac))
    return values


def granularities() -> st.SearchStrategy[BorderGranularity]:
    """Each of docs/contract.md's four border granularities."""
    return st.sampled_from(list(BorderGranularity))


@st.composite
def border_tables(draw, frac: int, channels: int, bits: int, granularity: BorderGranularity | None = None) -> np.ndarray:
    """An int64 border table ``(G, L)`` of the given (or a drawn) granularity."""
    granularity = draw(granularities()) if granularity is None else granularity
    groups, levels = granularity.table_shape(channels, bits)
    return draw(border_arrays(frac, groups * levels)).reshape(groups, levels)


@dataclass(frozen=True)
class RequantizerCase:
    """One per-tensor requantizer and a vector of accumulators to run through it: the inputs of
    the conformance kit's callable (see :mod:`aquant_sim.testing.conformance`)."""

    acc: np.ndarray
    multiplier: int
    shift: int
    frac_bits: int
    borders: np.ndarray
    zero_point: int
    qmin: int
    qmax: int
    accumulator_bits: int

    def args(self) -> tuple:
        """The positional arguments of a conformance-kit requantizer."""
        return (self.acc.copy(), self.multiplier, self.shift, self.frac_bits, self.borders.copy(),
                self.zero_point, self.qmin, self.qmax)

    def describe(self, index: int | None = None) -> str:
        """The inputs as text; with ``index``, only that accumulator (and, for a long table,
        only the border that decides it)."""
        acc = self.acc.tolist() if index is None else int(self.acc[index])
        borders = self.borders.tolist()
        if len(borders) > 16:
            borders = f"<{len(borders)} values>"
            if index is not None:
                k = fixed_point(int(self.acc[index]), self.multiplier, self.shift, self.frac_bits, self.zero_point) >> self.frac_bits
                j = min(max(k, self.qmin), self.qmax - 1) - self.qmin
                borders += f" with borders[{j}]={int(self.borders[j])}"
        return (f"acc={acc}, multiplier={self.multiplier}, shift={self.shift}, frac_bits={self.frac_bits}, "
                f"borders={borders}, zero_point={self.zero_point}, qmin={self.qmin}, qmax={self.qmax}")


def fixed_point(acc: int, multiplier: int, shift: int, frac: int, zero_point: int) -> int:
    """Equation (6) on one Python integer (exact, no width limit)."""
    s = shift - frac
    product = acc * multiplier
    return (product >> s if s >= 0 else product << -s) + (zero_point << frac)


@st.composite
def on_grid_accumulators(draw, grid: IntegerGrid, multiplier: int, shift: int, frac: int, accumulator_bits: int) -> int:
    """Accumulators whose output lands on the grid (not clamped): the inverse of (6) applied to
    a drawn level and fraction, clamped to the A-bit range. Edge values alone mostly saturate."""
    level = draw(st.integers(grid.qmin - 1, grid.qmax))
    fraction = draw(st.one_of(st.sampled_from([0, 1, (1 << frac) >> 1, (1 << frac) - 1]), st.integers(0, (1 << frac) - 1)))
    target = ((level - grid.zero_point) << frac) + fraction
    s = shift - frac
    acc = -((-(target << s)) // multiplier) if s >= 0 else -((-target) // (multiplier << -s))  # ceil
    lo, hi = accumulator_range(accumulator_bits)
    return min(max(acc + draw(st.integers(-1, 1)), lo), hi)


@st.composite
def requantizer_cases(draw, max_size: int = 32, border: int | None = None) -> RequantizerCase:
    """A per-tensor requantizer case. ``border`` fixes every B (e.g. ``2^(F-1)``, given as the
    exponent offset: -1 for one half, 0 for floor); otherwise the table is drawn per tensor or
    per level. Often the borders are moved onto the fraction of a drawn accumulator, so that
    ``f == B`` ties (where ``>`` and ``>=`` differ) occur in most cases, not one in 2^F."""
    grid = draw(integer_grids())
    accumulator_bits = draw(accumulator_widths())
    frac = draw(frac_bits())
    multiplier = draw(multipliers())
    shift = draw(shifts(frac, accumulator_bits))
    acc = draw(st.lists(st.one_of(accumulators(accumulator_bits),
                                  on_grid_accumulators(grid, multiplier, shift, frac, accumulator_bits)),
                        min_size=1, max_size=max_size))
    levels = draw(st.sampled_from([1, grid.qmax - grid.qmin]))
    if border is not None:
        borders = np.full(levels, (1 << frac) >> -border, dtype=np.int64)
    else:
        borders = draw(border_arrays(frac, levels))
        if draw(st.booleans()):
            # Align borders with drawn accumulators: B[j] = f of that accumulator when f >= 1.
            for value in acc[: draw(st.integers(1, len(acc)))]:
                v = fixed_point(value, multiplier, shift, frac, grid.zero_point)
                f, k = v & ((1 << frac) - 1), v >> frac
                j = 0 if levels == 1 else min(max(k, grid.qmin), grid.qmax - 1) - grid.qmin
                if f >= 1:
                    borders[j] = f
    return RequantizerCase(
        acc=np.array(acc, dtype=np.int64), multiplier=multiplier, shift=shift, frac_bits=frac,
        borders=borders, zero_point=grid.zero_point, qmin=grid.qmin,
        qmax=grid.qmax, accumulator_bits=accumulator_bits,
    )


@dataclass(frozen=True)
class VariantCase:
    """One per-tensor requantizer of a runtime's variant (GEMMLOWP or FP32, no borders) and a
    vector of accumulators: the inputs of the conformance kit's variant callable."""

    variant: rounding.RequantVariant
    acc: np.ndarray
    multiplier: int
    shift: int
    zero_point: int
    qmin: int
    qmax: int
    accumulator_bits: int

    def args(self) -> tuple:
        """The positional arguments of a conformance-kit variant requantizer."""
        return (self.acc.copy(), self.multiplier, self.shift, self.zero_point, self.qmin, self.qmax)

    def describe(self, index: int | None = None) -> str:
        acc = self.acc.tolist() if index is None else int(self.acc[index])
        return (f"variant={self.variant.value}, acc={acc}, multiplier={self.multiplier}, shift={self.shift}, "
                f"zero_point={self.zero_point}, qmin={self.qmin}, qmax={self.qmax}, A={self.accumulator_bits}")


def variant_shifts(variant: rounding.RequantVariant, accumulator_bits: int) -> st.SearchStrategy[int]:
    """Shifts n that ``variant`` allows for A-bit accumulators, favouring the ends and the band
    where one accumulator step is about one output level (n near 31)."""
    if variant is rounding.RequantVariant.GEMMLOWP:
        lo, hi = rounding.gemmlowp_shift_range(accumulator_bits)
    elif variant is rounding.RequantVariant.FLOAT64:
        lo, hi = rounding.FLOAT64_SHIFT_RANGE
        return st.one_of(st.sampled_from([lo, hi]), st.integers(lo, hi), st.integers(lo, lo + 30))  # m has 53 bits: n near 53 + 22
    else:
        lo, hi = rounding.FLOAT32_SHIFT_RANGE
    return st.one_of(st.sampled_from([lo, hi]), st.integers(lo, hi), st.integers(max(lo, 28), min(hi, 50)))


@st.composite
def tie_accumulators(draw, grid: IntegerGrid, multiplier: int, shift: int, accumulator_bits: int) -> int:
    """Accumulators next to a half level, ``acc * m / 2^n`` close to ``level - z + 1/2``, where
    round half up, half away from zero and half to even part ways; clamped to the A-bit range."""
    level = draw(st.integers(grid.qmin - 1, grid.qmax))
    half = 2 * (level - grid.zero_point) + 1  # twice the target value
    acc = (half << (shift - 1)) // multiplier if shift >= 1 else half // (multiplier << (1 - shift))
    lo, hi = accumulator_range(accumulator_bits)
    return min(max(acc + draw(st.integers(-1, 1)), lo), hi)


@st.composite
def product_tie_accumulators(draw, grid: IntegerGrid, multiplier: int, shift: int, accumulator_bits: int) -> int:
    """Accumulators next to a half level whose ``acc * m`` is also an odd multiple of 2^30, where
    gemmlowp's high multiply (11) rounds a tie (half up: -1.5 becomes -1) and the rounding shift
    (12) then decides a second one. ``m = 2^t * odd`` needs ``acc = 2^(30 - t) * odd``."""
    target = draw(tie_accumulators(grid, multiplier, shift, accumulator_bits))
    t = (multiplier & -multiplier).bit_length() - 1
    step = 1 << max(30 - t, 0)
    lo, hi = accumulator_range(accumulator_bits)
    k = target // step
    acc = (k if k % 2 else k + 1) * step
    return acc if lo <= acc <= hi else target


@st.composite
def double_tie_accumulators(draw, grid: IntegerGrid, multiplier: int, shift: int, accumulator_bits: int) -> int:
    """Negative accumulators on a tie of gemmlowp's high multiply (11) whose two roundings (half up
    there: -1.5 becomes -1; half away from zero would give -2) then stay apart through the rounding
    shift (12) by ``r = max(n - 31, 0)``: ``h mod 2^r = 2^(r-1) + 1`` for r >= 2, h even for r = 1,
    any h for r = 0. With ``x = acc * 2^l`` (``l = max(31 - n, 0)``) and ``m * 2^l = 2^t * o``
    (o odd), ``acc = -2^(30 - t) * v`` for an odd ``v`` with ``-v o = 2^r + 1 (mod 2^(r+1))``,
    which gives ``2h - 1 = -v o``. Where no such accumulator fits A bits (``m`` with few trailing
    zeros, a large ``r``), one next to a half level (:func:`tie_accumulators`)."""
    left, r = max(31 - shift, 0), max(shift - 31, 0)
    t = ((multiplier & -multiplier).bit_length() - 1) + left
    lo, hi = accumulator_range(accumulator_bits)
    if t <= 30:
        modulus = 1 << (r + 1)
        odd = (multiplier << left) >> t
        residue = 1 if r == 0 else ((1 << r) + 1) * pow(odd, -1, modulus) % modulus  # u = residue (mod 2^(r+1))
        acc = (residue - modulus * draw(st.integers(1, 8))) << (30 - t)
        if lo <= acc <= hi:
            return acc
    return draw(tie_accumulators(grid, multiplier, shift, accumulator_bits))


@st.composite
def variant_cases(draw, variant: rounding.RequantVariant, max_size: int = 32) -> VariantCase:
    """A per-tensor case of ``variant``: multipliers half the time with their low ``k`` bits
    cleared (k from 1 to 30, often 24 or more: ``acc * m`` of an accumulator of A < 32 bits can be
    an odd multiple of 2^30, a tie of gemmlowp's high multiply (11), only when ``m`` has 31 - A or
    more trailing zeros, and the level of such a tie is small only when ``m`` has few significant
    bits); an FP32 multiplier has 24 significant bits (its low 7 bits zero), so that
    ``m * 2^-n`` is a float32; accumulators at the type limits, powers of two, next to half levels
    and on ties of the high multiply."""
    grid = draw(integer_grids())
    accumulator_bits = draw(accumulator_widths())
    cleared = st.one_of(st.integers(1, 30), st.integers(24, 30))  # few significant bits: small outputs of ties
    multiplier = draw(st.one_of(multipliers(), st.builds(lambda m, k: m >> k << k, multipliers(), cleared)))
    if variant is rounding.RequantVariant.FP32:
        multiplier &= ~((1 << (rounding.MULTIPLIER_BITS - rounding.FLOAT32_MANTISSA_BITS)) - 1)
    if variant is rounding.RequantVariant.FLOAT64:  # a double's 53-bit significand: the 31-bit one below it, or any
        multiplier = draw(st.one_of(st.just(multiplier << 22), st.integers(*rounding.FLOAT64_MULTIPLIER_RANGE).filter(
            lambda m: m < rounding.FLOAT64_MULTIPLIER_RANGE[1])))
    shift = draw(variant_shifts(variant, accumulator_bits))
    acc = draw(st.lists(st.one_of(accumulators(accumulator_bits), tie_accumulators(grid, multiplier, shift, accumulator_bits),
                                  product_tie_accumulators(grid, multiplier, shift, accumulator_bits),
                                  double_tie_accumulators(grid, multiplier, shift, accumulator_bits)),
                        min_size=1, max_size=max_size))
    return VariantCase(variant, np.array(acc, dtype=np.int64), multiplier, shift, grid.zero_point, grid.qmin,
                       grid.qmax, accumulator_bits)


@dataclass(frozen=True)
class AddCase:
    """One FP32_ADD add (onnxruntime's ``QLinearAdd``, contract (17)-(20)) and two level vectors:
    the inputs of the conformance kit's add callable."""

    a: np.ndarray
    b: np.ndarray
    ratio_a: np.float32
    ratio_b: np.float32
    zero_a: int
    zero_b: int
    zero_c: int
    qmin: int
    qmax: int
    offset: int

    def describe(self, i: int) -> str:
        return (f"a={int(self.a[i])} b={int(self.b[i])} r_a={float(self.ratio_a)!r} r_b={float(self.ratio_b)!r} "
                f"z_a={self.zero_a} z_b={self.zero_b} z_c={self.zero_c} range=[{self.qmin}, {self.qmax}] offset={self.offset}")


@st.composite
def add_cases(draw, max_size: int = 32) -> AddCase:
    """An 8-bit (uint8 or int8) FP32_ADD case: ratios from simple dyadic values (which make exact
    ties) to any float32 in ``[2^-12, 2^12)``, zero-points at the limits or anywhere, offset 0 or 128."""
    grid = draw(integer_grids(bits=8))
    ratio = st.one_of(st.sampled_from([0.25, 0.5, 0.75, 1.0, 1.5, 2.0]), st.floats(2.0**-12, 2.0**12, exclude_max=True, width=32))
    zeros = [draw(edge_integers(grid.qmin, grid.qmax)) for _ in range(2)]
    levels = st.lists(edge_integers(grid.qmin, grid.qmax), min_size=1, max_size=max_size)
    a = draw(levels)
    b = draw(st.lists(edge_integers(grid.qmin, grid.qmax), min_size=len(a), max_size=len(a)))
    return AddCase(np.array(a, dtype=np.int64), np.array(b, dtype=np.int64), np.float32(draw(ratio)), np.float32(draw(ratio)),
                   *zeros, grid.zero_point, grid.qmin, grid.qmax, draw(st.sampled_from([0, 128])))


@dataclass(frozen=True)
class TfliteAddCase:
    """One TFLITE_ADD add (TFLite's int8 ``ADD``, contract (21)-(24)): its three ``(m, n)`` pairs,
    the formats' zero-points and two int8 level vectors."""

    a: np.ndarray
    b: np.ndarray
    multiplier: tuple[int, int, int]
    shift: tuple[int, int, int]
    zero_a: int
    zero_b: int
    zero_c: int
    qmin: int
    qmax: int

    def describe(self, i: int) -> str:
        return (f"a={int(self.a[i])} b={int(self.b[i])} m={list(self.multiplier)} n={list(self.shift)} "
                f"z_a={self.zero_a} z_b={self.zero_b} z_c={self.zero_c} range=[{self.qmin}, {self.qmax}]")


@st.composite
def tflite_add_pairs(draw) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """The three ``(m, n)`` pairs of a TFLITE_ADD requantizer (inputs a, b, output) as TFLite's
    ``ADD`` prepares them, as ``(multipliers, shifts)``: one input's multiplier is exactly 1/2
    (``m = 2^30, n = 31``, the input of the larger scale), the other's at most 1/2, the output's
    anywhere in the shift range, often where ``2^-20`` of the inputs' shift lands on the grid."""
    lo, hi = rounding.TFLITE_ADD_SHIFT_RANGE
    pairs = [(1 << 30, lo), (draw(multipliers()), draw(st.integers(lo, 44)))]
    if draw(st.booleans()):
        pairs.reverse()
    pairs.append((draw(multipliers()), draw(st.one_of(st.integers(lo, hi), st.integers(48, 54)))))
    return tuple(m for m, _ in pairs), tuple(n for _, n in pairs)


@st.composite
def tflite_add_cases(draw, max_size: int = 32) -> TfliteAddCase:
    """An int8 TFLITE_ADD case with the pairs of :func:`tflite_add_pairs`; levels and zero-points
    at the int8 limits or anywhere."""
    multiplier, shift = draw(tflite_add_pairs())
    levels = st.lists(edge_integers(-128, 127), min_size=1, max_size=max_size)
    a = draw(levels)
    b = draw(st.lists(edge_integers(-128, 127), min_size=len(a), max_size=len(a)))
    zeros = [draw(edge_integers(-128, 127)) for _ in range(3)]
    return TfliteAddCase(np.array(a, dtype=np.int64), np.array(b, dtype=np.int64), multiplier, shift, *zeros, -128, 127)


@dataclass(frozen=True)
class TfliteAverageCase:
    """One TFLite average: ``values`` (K, count) int8 levels, each row averaged into one output,
    by the TFLITE_MEAN rule (``mean``, (28)-(30), with the ``(m, n)`` of ``s_x / s_y``) or the
    TFLITE_AVGPOOL rule ((25)-(27), input and output zero-point ``zero_in``)."""

    values: np.ndarray
    mean: bool
    multiplier: int
    shift: int
    zero_in: int
    zero_out: int
    qmin: int
    qmax: int

    def describe(self, i: int) -> str:
        return (f"values={self.values[i].tolist()} mean={self.mean} m={self.multiplier} n={self.shift} "
                f"z_in={self.zero_in} z_out={self.zero_out} range=[{self.qmin}, {self.qmax}]")


@st.composite
def tflite_average_cases(draw, max_rows: int = 3) -> TfliteAverageCase:
    """Averages of 1 to 64 int8 levels (odd and even counts, powers of two), by the mean rule with
    ``M = s_x / s_y`` from 2^-4 to 2^4 or by the pooling rule."""
    count = draw(st.one_of(st.sampled_from([1, 2, 4, 9, 16, 49, 64]), st.integers(1, 64)))
    rows = draw(st.integers(1, max_rows))
    values = np.array([[draw(edge_integers(-128, 127)) for _ in range(count)] for _ in range(rows)], dtype=np.int64)
    mean = draw(st.booleans())
    zero_in = draw(edge_integers(-128, 127))
    if mean:
        multiplier, shift = draw(multipliers()), draw(st.integers(27, 35))
        zero_out = draw(edge_integers(-128, 127))
    else:
        (multiplier, shift), zero_out = rounding.TFLITE_AVGPOOL_MULTIPLIER, zero_in
    return TfliteAverageCase(values, mean, multiplier, shift, zero_in, zero_out, -128, 127)
