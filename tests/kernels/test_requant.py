"""The requantizer (6)-(8) with its border lookup unit, and the A-bit accumulator. (The runtimes'
variants (10)-(16) are checked on every backend by the conformance kit, tests/testing/.)"""

from fractions import Fraction
from math import floor

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aquant_sim import kernels, reference, rounding
from aquant_sim.kernels.requant import wrap_or_saturate
from aquant_sim.testing.programs import ACCUMULATOR_BITS, OVERFLOW, quant_params, requantizers


def _rational_requantize(acc, requant, quant):
    """Equation (4) on exact rationals: ``u = acc * m / 2^n + z``, ``q = clamp(floor(u) +
    [frac(u) >= B / 2^F], qmin, qmax)`` with ``j`` from (3); independent of (6)-(8)."""
    out = np.empty(acc.shape, dtype=np.int64)
    table, one = requant.borders.values, 1 << requant.frac_bits
    for index in np.ndindex(acc.shape):
        c = index[1]
        i = c if requant.multiplier.shape[0] > 1 else 0
        u = Fraction(int(acc[index]) * int(requant.multiplier[i]), 1) / Fraction(2) ** int(requant.shift[i]) + quant.zero_point
        k = floor(u)
        j = min(max(k, quant.qmin), quant.qmax - 1) - quant.qmin
        border = table[c if table.shape[0] > 1 else 0, j if table.shape[1] > 1 else 0]
        q = k + (u - k >= Fraction(int(border), one))
        out[index] = min(max(q, quant.qmin), quant.qmax)
    return out


@st.composite
def requant_cases(draw):
    quant, a = draw(quant_params()), draw(ACCUMULATOR_BITS)
    n, c, p = draw(st.integers(1, 2)), draw(st.integers(1, 4)), draw(st.integers(1, 5))
    requant = draw(requantizers(c, quant, a, variants=st.just(rounding.RequantVariant.BORDER)))
    lo, hi = rounding.accumulator_range(a)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    span = draw(st.sampled_from([1 << 4, 1 << 12, hi]))
    acc = rng.integers(max(lo, -span), min(hi, span) + 1, size=(n, c, p))
    acc.flat[0] = draw(st.sampled_from([lo, hi, 0, -1]))  # the accumulator's limits
    return acc, requant, quant


@pytest.mark.parametrize("backend", [reference, kernels], ids=["reference", "numba"])
@given(requant_cases())
def test_requantize_equals_rational_border_rounding(backend, case):
    """(6)-(8) equal real-valued border rounding (4) of acc * m * 2^-n with beta = B / 2^F."""
    acc, requant, quant = case
    assert np.array_equal(backend.requantize(acc, requant, quant), _rational_requantize(acc, requant, quant))


@given(requant_cases())
def test_requantize_matches_reference_on_feature_maps(case):
    """The kernel equals the reference on (N, C, H, W) accumulators, dtype included."""
    acc, requant, quant = case
    acc4 = acc[:, :, :, None]
    got, want = kernels.requantize(acc4, requant, quant), reference.requantize(acc4, requant, quant)
    assert got.dtype == want.dtype and np.array_equal(got, want)


@given(ACCUMULATOR_BITS, OVERFLOW, st.lists(st.integers(-(1 << 40), 1 << 40), min_size=1, max_size=20))
def test_wrap_or_saturate_matches_apply_overflow(bits, policy, values):
    """Range test plus wrap_or_saturate equal rounding.apply_overflow, count included."""
    acc = np.array(values, dtype=np.int64)
    want, count = rounding.apply_overflow(acc, bits, policy)
    lo, hi = rounding.accumulator_range(bits)
    saturate = policy is rounding.OverflowPolicy.SATURATE
    outside = [int(v) for v in acc if not lo <= v <= hi]
    got = [int(wrap_or_saturate(v, lo, hi, saturate)) if not lo <= v <= hi else int(v) for v in acc]
    assert got == want.tolist() and len(outside) == count
