"""The fused per-op pass equals the REFERENCE backend's numpy steps: values and counters."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aquant_sim.kernels.datapath import NumbaDatapath
from aquant_sim.datapath import Datapath
from aquant_sim.program import BorderTable, Clamp, Conv2d, QuantParams, Requantizer
from aquant_sim.rounding import OverflowPolicy
from aquant_sim.simulator import Backend
from aquant_sim.reference_datapath import ReferenceDatapath
from aquant_sim.testing.programs import (
    OVERFLOW, OpCase, add_cases, avgpool_cases, clamp_cases, concat_cases, conv_cases, global_avgpool_cases,
    linear_cases, lut_cases, maxpool_cases, mul_cases, random_levels,
)

REFERENCE, NUMBA = ReferenceDatapath(), NumbaDatapath()
ACCUMULATING = st.one_of(
    conv_cases(), conv_cases(requant=False), linear_cases(), linear_cases(requant=False), add_cases(),
    avgpool_cases(), global_avgpool_cases(), mul_cases(), concat_cases(),
)


def _output_shape(case: OpCase):
    values, *_ = REFERENCE.run_accumulating(
        case.op, list(case.inputs), list(case.in_quants), case.out_quant, None, case.accumulator_bits, OverflowPolicy.WRAP)
    return values.shape[1:]


def _both(case: OpCase, policy: OverflowPolicy):
    args = (case.op, list(case.inputs), list(case.in_quants), case.out_quant, _output_shape(case), case.accumulator_bits, policy)
    return NUMBA.run_accumulating(*args), REFERENCE.run_accumulating(*args)


def _assert_same(got, want):
    (got_values, *got_counts), (want_values, *want_counts) = got, want
    assert got_values.dtype == want_values.dtype and np.array_equal(got_values, want_values)
    assert got_counts == want_counts


@given(ACCUMULATING, OVERFLOW)
def test_accumulating_ops_match_reference(case, policy):
    """Levels (or accumulators), max |acc|, overflow count and zero count equal the reference."""
    _assert_same(*_both(case, policy))


@given(st.one_of(maxpool_cases(), clamp_cases()))
def test_pass_through_ops_match_reference(case):
    """Max pooling and clamps give the same int32 levels and zero count as the reference."""
    (x,), (q,) = case.inputs, case.in_quants
    got, want = NUMBA.run_pass_through(case.op, x, q), REFERENCE.run_pass_through(case.op, x, q)
    _assert_same(got, want)


@given(lut_cases())
def test_lookup_tables_match_reference(case):
    """A lookup table (one row or one per channel) gives the same int32 levels and count of
    outputs at the output's zero-point as the reference."""
    (x,), (q,) = case.inputs, case.in_quants
    got, want = NUMBA.run_table(case.op, x, q, case.out_quant), REFERENCE.run_table(case.op, x, q, case.out_quant)
    _assert_same(got, want)


@given(mul_cases(), OVERFLOW)
def test_products_match_reference(case, policy):
    """Elementwise products, same shape or broadcast per channel, equal the reference in levels
    and counters (the mul cases are also among the accumulating ops above; here every draw is one)."""
    _assert_same(*_both(case, policy))


@pytest.mark.parametrize("policy", list(OverflowPolicy))
def test_overflow_counted_and_applied(policy):
    """A 12-bit accumulator that overflows wraps or saturates exactly as apply_overflow does."""
    quant = QuantParams(8, False, 1.0, 0)
    weight = np.full((2, 3, 3, 3), 127)
    weight[1] = -128
    requant = Requantizer(np.array([1 << 30]), np.array([30]), BorderTable.nearest(8))
    op = Conv2d("conv", "x", "y", weight, 8, np.ones(2), np.array([5, -5]), requant, padding=(1, 1))
    case = OpCase(op, (random_levels(3, (2, 3, 5, 5), quant),), (quant,), QuantParams(8, True, 1.0, 0), 12)
    got, want = _both(case, policy)
    _assert_same(got, want)
    assert got[2] > 0 and got[1] > 1 << 11  # it did overflow, and max |acc| is the exact sum


def _is_copy(case: OpCase) -> bool:
    requant = case.op.requant
    # The accumulator must hold x - z (bits + 1 signed bits), or the copy wraps first.
    return (requant.multiplier.tolist(), requant.shift.tolist()) == ([1 << 30], [30]) \
        and case.in_quants[0] == case.in_quants[1] == case.out_quant and case.accumulator_bits > case.out_quant.bits


@given(concat_cases().filter(_is_copy))
def test_concat_of_inputs_in_the_output_format_is_a_copy(case):
    """Where both inputs already have the output's scale and zero-point, the requantizer's M = 1
    returns the input levels unchanged on both backends, whatever the border table, when the
    accumulator holds the centred levels."""
    want = np.concatenate(case.inputs, axis=1)
    for got in _both(case, OverflowPolicy.WRAP):
        assert np.array_equal(got.values, want)


def test_both_backends_implement_the_protocol():
    """Backend.datapath() gives the reference and numba implementations of Datapath."""
    assert isinstance(Backend.REFERENCE.datapath(), ReferenceDatapath)
    assert isinstance(Backend.NUMBA.datapath(), NumbaDatapath)
    assert all(isinstance(backend.datapath(), Datapath) for backend in Backend)


@pytest.mark.parametrize("lo_above_qmin", [0, 1], ids=["identity", "clamping"])
def test_clamp_at_the_format_ends_matches_reference(lo_above_qmin):
    """A ReLU at the zero-point qmin of an unsigned format (bounds at the format's ends, which
    the NUMBA datapath returns without copying) and one a level above it: the same levels and
    zero count as the reference."""
    quant = QuantParams(4, False, 1.0, 0)
    x = random_levels(7, (2, 3, 5, 5), quant)
    op = Clamp("relu", "x", "y", np.array([quant.qmin + lo_above_qmin]), np.array([quant.qmax]))
    got, want = NUMBA.run_pass_through(op, x, quant), REFERENCE.run_pass_through(op, x, quant)
    _assert_same(got, want)
    assert np.count_nonzero(x == quant.zero_point) > 0  # levels at the zero-point were there to count (or to clamp)
