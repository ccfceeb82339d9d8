"""The contract strategies draw the cases they promise (aquant_sim/testing/strategies.py)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aquant_sim import rounding
from aquant_sim.testing.strategies import double_tie_accumulators, integer_grids, multipliers


def _half_away_high_multiply(acc: int, m: int, n: int) -> int:
    """GEMMLOWP (10)-(12) with the high multiply rounding its ties away from zero (a wrong unit)."""
    product = (acc << max(31 - n, 0)) * m
    high = (abs(product) + (1 << 30)) >> 31
    return int(rounding.rounding_divide_by_pot(high if product >= 0 else -high, max(n - 31, 0)))


@settings(max_examples=100)
@given(integer_grids(bits=16, signed=True), multipliers(), st.integers(16, 30), st.integers(31, 40), st.data())
def test_double_ties_separate_the_two_tie_roundings(grid, m, cleared, n, data):
    """Where one fits 32 bits (a multiplier with at least 16 trailing zeros, n from 31 to 40: no
    left shift, a rounding shift of up to 9 bits), a double-tie accumulator is negative, its product is a tie of the high multiply (11), and the
    level (before any clamp) differs from the one a half-away high multiply gives."""
    m = m >> cleared << cleared
    acc = data.draw(double_tie_accumulators(grid, m, n, 32))
    assert acc < 0 and ((acc << max(31 - n, 0)) * m) % (1 << 31) == 1 << 30
    level = int(rounding.gemmlowp_requantize(np.array([[acc]]), [m], [n], 0, -(1 << 40), 1 << 40)[0, 0])
    assert level != _half_away_high_multiply(acc, m, n)
