"""Properties of the rounding contract, docs/contract.md, equations (1)-(8)."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aquant_sim import rounding
from aquant_sim.errors import ProgramError
from aquant_sim.testing import strategies as ts


def exact_border_round(u: Fraction, qmin: int, qmax: int, beta_row) -> int:
    """Equations (2)-(4) on an exact rational grid position ``u``; ``beta_row[j]`` is a Fraction
    (a row of one entry serves every level)."""
    k = u.numerator // u.denominator
    f = u - k
    j = min(max(k, qmin), qmax - 1) - qmin
    beta = beta_row[j] if len(beta_row) > 1 else beta_row[0]
    return min(max(k + (f >= beta), qmin), qmax)


@st.composite
def dyadic_reals(draw):
    """Reals ``a / 2^k`` (exact in float64) and a grid to round them on."""
    grid = draw(ts.integer_grids(bits=draw(ts.bit_widths(2, 8))))
    k = draw(st.integers(0, 12))
    span = (grid.qmax - grid.qmin + 4) << k
    numerators = draw(st.lists(st.integers(-span, span), min_size=1, max_size=32))
    return grid, np.array([[a / (1 << k) for a in numerators]])


@given(dyadic_reals())
def test_half_border_is_round_half_up(case):
    """(4) with beta = 1/2 everywhere is round-half-up: clamp(floor(x/s + z + 1/2))."""
    grid, x = case
    q = rounding.border_round(x, 1.0, grid.zero_point, grid.qmin, grid.qmax, np.array([[0.5]]))
    expected = np.clip(np.floor(x + grid.zero_point + 0.5), grid.qmin, grid.qmax)
    assert np.array_equal(q, expected)


@given(dyadic_reals())
def test_unit_border_is_floor(case):
    """(4) with beta = 1 everywhere is floor: clamp(floor(x/s + z))."""
    grid, x = case
    q = rounding.border_round(x, 1.0, grid.zero_point, grid.qmin, grid.qmax, np.array([[1.0]]))
    assert np.array_equal(q, np.clip(np.floor(x + grid.zero_point), grid.qmin, grid.qmax))


@st.composite
def per_channel_requantizers(draw, max_acc_bits: int = 32):
    """Per-channel (m, n), a border table of any granularity and (N, C) accumulators."""
    grid = draw(ts.integer_grids())
    accumulator_bits = draw(ts.accumulator_widths().filter(lambda a: a <= max_acc_bits))
    frac = draw(ts.frac_bits())
    channels = draw(st.integers(1, 3))
    m = draw(st.lists(ts.multipliers(), min_size=channels, max_size=channels))
    n = draw(st.lists(ts.shifts(frac, accumulator_bits), min_size=channels, max_size=channels))
    table = draw(ts.border_tables(frac, channels, grid.bits))
    rows = draw(st.integers(1, 8))
    acc = draw(st.lists(ts.accumulators(accumulator_bits), min_size=rows * channels, max_size=rows * channels))
    return grid, frac, np.array(m), np.array(n), table, np.array(acc, dtype=np.int64).reshape(rows, channels)


@given(per_channel_requantizers())
def test_integer_requantizer_equals_exact_border_rounding(case):
    """(8) equals (4) for every accumulator when M = m * 2^-n and beta = B / 2^F, in exact
    rational arithmetic, for per-channel multipliers and every table granularity."""
    grid, frac, m, n, table, acc = case
    q = rounding.requantize(acc, m, n, frac, table, grid.zero_point, grid.qmin, grid.qmax, channel_axis=1)
    for (row, c), value in np.ndenumerate(acc):
        u = Fraction(int(value) * int(m[c]), 1) / (Fraction(2) ** int(n[c])) + grid.zero_point
        betas = [Fraction(int(b), 1 << frac) for b in table[c if table.shape[0] > 1 else 0]]
        assert q[row, c] == exact_border_round(u, grid.qmin, grid.qmax, betas), (row, c)


@given(per_channel_requantizers(max_acc_bits=21))
def test_integer_requantizer_equals_float_border_round(case):
    """(8) equals rounding.border_round (float64 (1)-(4)) when acc * m fits float64 exactly."""
    grid, frac, m, n, table, acc = case
    q = rounding.requantize(acc, m, n, frac, table, grid.zero_point, grid.qmin, grid.qmax, channel_axis=1)
    real = acc * rounding.dyadic_value(m, n)[None, :]
    beta = table / float(1 << frac)
    assert np.array_equal(q, rounding.border_round(real, 1.0, grid.zero_point, grid.qmin, grid.qmax, beta))


@given(per_channel_requantizers())
def test_requantizer_monotone_and_in_range(case):
    """q is non-decreasing in acc (per channel) and always within [qmin, qmax]."""
    grid, frac, m, n, table, acc = case
    acc = np.sort(acc, axis=0)
    q = rounding.requantize(acc, m, n, frac, table, grid.zero_point, grid.qmin, grid.qmax, channel_axis=1)
    assert q.min() >= grid.qmin and q.max() <= grid.qmax
    assert np.all(np.diff(q, axis=0) >= 0)


@given(st.integers(1, 3).flatmap(lambda c: st.tuples(
    ts.integer_grids(bits=6), st.just(c),
    st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=40),
    st.floats(1e-3, 1e3))), st.data())
def test_border_round_monotone_and_in_range(case, data):
    """(4) is non-decreasing in x for any border table (borders in (0, 1]) and within [qmin, qmax]."""
    grid, channels, values, scale = case
    table = data.draw(ts.border_tables(8, channels, grid.bits)) / 256.0
    x = np.sort(np.array(values))[:, None].repeat(channels, axis=1)
    q = rounding.border_round(x, scale, grid.zero_point, grid.qmin, grid.qmax, table)
    assert q.min() >= grid.qmin and q.max() <= grid.qmax
    assert np.all(np.diff(q, axis=0) >= 0)


@given(ts.quant_params(), st.lists(st.floats(-1e4, 1e4), min_size=1, max_size=16))
def test_border_round_is_nearest_level_with_half_borders(quant, values):
    """With beta = 1/2, (1)-(4) picks a level within half a step of x/s + z unless it clamps."""
    x = np.array([values])
    q = rounding.border_round(x, quant.scale, quant.zero_point, quant.qmin, quant.qmax, np.array([[0.5]]))
    u = x / quant.scale + quant.zero_point
    inside = (u >= quant.qmin) & (u <= quant.qmax)
    assert np.all(np.abs(q - u)[inside] <= 0.5 + 1e-9)
    assert np.all(q[u < quant.qmin] == quant.qmin) and np.all(q[u > quant.qmax + 0.5] == quant.qmax)


@given(st.floats(min_value=1e-200, max_value=1e200, allow_nan=False, allow_infinity=False))
def test_quantize_multiplier_relative_error(real):
    """quantize_multiplier gives m in [2^30, 2^31) with |m 2^-n - M| / M <= 2^-31 (exact check)."""
    m, n = rounding.quantize_multiplier([real])
    m, n = int(m[0]), int(n[0])
    assert (1 << 30) <= m < (1 << 31)
    represented = Fraction(m) / Fraction(2) ** n
    assert abs(represented - Fraction(real)) / Fraction(real) <= Fraction(1, 1 << 31)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_quantize_multiplier_rejects_non_positive(bad):
    """quantize_multiplier refuses multipliers that are not finite and positive."""
    with pytest.raises(ProgramError):
        rounding.quantize_multiplier([bad])


@given(ts.frac_bits().flatmap(lambda f: st.tuples(st.just(f), st.lists(ts.border_values(f), min_size=1, max_size=20))))
def test_encode_borders_round_trip(case):
    """encode_borders(B / 2^F, F) == B for every integer border B in [1, 2^F]."""
    frac, values = case
    values = np.array(values)
    assert np.array_equal(rounding.encode_borders(values / float(1 << frac), frac), values)


@given(ts.frac_bits(), st.floats(0.0, 1.0))
def test_encode_borders_nearest(frac, beta):
    """encode_borders picks the nearest F-bit border (half a step at most) within [1, 2^F]."""
    b = int(rounding.encode_borders([beta], frac)[0])
    assert 1 <= b <= 1 << frac
    if beta >= 1.0 / (1 << frac):
        assert abs(b / (1 << frac) - beta) <= 0.5 / (1 << frac)


@given(ts.accumulator_widths(), st.lists(st.integers(-(1 << 40), 1 << 40), min_size=1, max_size=32))
def test_apply_overflow_wrap(bits, values):
    """WRAP keeps the value modulo 2^A in [-2^(A-1), 2^(A-1)) and counts the values outside."""
    acc = np.array(values, dtype=np.int64)
    lo, hi = rounding.accumulator_range(bits)
    wrapped, count = rounding.apply_overflow(acc, bits, rounding.OverflowPolicy.WRAP)
    assert np.all((wrapped >= lo) & (wrapped <= hi))
    assert np.all((wrapped - acc) % (1 << bits) == 0)
    assert count == int(np.sum((acc < lo) | (acc > hi)))


@given(ts.accumulator_widths(), st.lists(st.integers(-(1 << 40), 1 << 40), min_size=1, max_size=32))
def test_apply_overflow_saturate(bits, values):
    """SATURATE clamps to the A-bit range and counts the values outside."""
    acc = np.array(values, dtype=np.int64)
    lo, hi = rounding.accumulator_range(bits)
    saturated, count = rounding.apply_overflow(acc, bits, rounding.OverflowPolicy.SATURATE)
    assert np.array_equal(saturated, np.clip(acc, lo, hi))
    assert count == int(np.sum((acc < lo) | (acc > hi)))


M_EIGHTH = (1 << 30, 33)  # M = 2^30 * 2^-33 = 1/8
M_QUARTER = (1 << 30, 32)  # M = 1/4

# (acc, (m, n), F, borders row(s), z, qmin, qmax, expected q): computed by hand.
GOLDEN = [
    (3, M_EIGHTH, 4, [8], 0, -8, 7, 0),       # 3/8 = 0.375: v = 6/16, f = 6 < 8 -> 0
    (4, M_EIGHTH, 4, [8], 0, -8, 7, 1),       # 4/8 = 0.5: f = 8 >= 8, a tie rounds up -> 1
    (-4, M_EIGHTH, 4, [8], 0, -8, 7, 0),      # -0.5: v = -8, k = -1, f = 8 >= 8 -> 0 (half up)
    (-5, M_EIGHTH, 4, [8], 0, -8, 7, -1),     # -0.625: v = -10, k = -1, f = 6 -> -1
    (7, M_EIGHTH, 4, [16], 0, -8, 7, 0),      # beta = 1 is floor: 0.875 -> 0
    (-1, M_EIGHTH, 4, [16], 0, -8, 7, -1),    # beta = 1: -0.125 -> floor -1
    (1, M_EIGHTH, 4, [1], 0, 0, 15, 1),       # beta = 1/16: 0.125 = 2/16 >= 1/16 -> 1
    (4, M_EIGHTH, 4, [8], 3, 0, 15, 4),       # zero-point 3: v = 8 + 3*16 = 56, k = 3, f = 8 -> 4
    (100, M_EIGHTH, 4, [8], 0, -8, 7, 7),     # 12.5 -> 13, clamped to qmax 7
    (-100, M_EIGHTH, 4, [8], 0, -8, 7, -8),   # -12.5 -> -12, clamped to qmin -8
    (1, M_QUARTER, 4, [4, 8, 12], 0, 0, 3, 1),   # 0.25: k = 0, f = 4 >= B[0] = 4 -> 1
    (5, M_QUARTER, 4, [4, 8, 12], 0, 0, 3, 1),   # 1.25: k = 1, f = 4 < B[1] = 8 -> 1
    (10, M_QUARTER, 4, [4, 8, 12], 0, 0, 3, 2),  # 2.5: k = 2, f = 8 < B[2] = 12 -> 2
    (11, M_QUARTER, 4, [4, 8, 12], 0, 0, 3, 3),  # 2.75: k = 2, f = 12 >= 12 -> 3
    (1, (1 << 30, 15), 16, [1 << 15], 0, 0, 65535, 32768),  # M = 2^15, n - F = -1 shifts left
    (-1, (1 << 30, 15), 16, [1 << 15], 0, -32768, 32767, -32768),  # -2^15 on a signed 16-bit grid
    (3, (3 << 29, 32), 2, [2], 0, 0, 3, 1),   # M = 3/8: 9/8 = 1.125, F = 2: v = 4, k = 1, f = 0 -> 1
    (-3, (3 << 29, 32), 2, [2], 0, -2, 1, -1),  # -9/8: v = floor(-4.5) = -5, k = -2, f = 3 -> -1
]


@pytest.mark.parametrize("acc, mn, frac, borders, z, qmin, qmax, expected", GOLDEN)
def test_golden_vectors(acc, mn, frac, borders, z, qmin, qmax, expected):
    """The requantizer (6)-(8) gives the hand-computed level for each golden case."""
    table = np.array([borders], dtype=np.int64)
    q = rounding.requantize(np.array([[acc]]), [mn[0]], [mn[1]], frac, table, z, qmin, qmax)
    assert int(q[0, 0]) == expected
