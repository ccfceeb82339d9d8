"""Element-wise kernels equal the reference bit for bit."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from aquant_sim import kernels, reference
from aquant_sim.kernels.elementwise import count_equal
from aquant_sim.rounding import RequantVariant
from aquant_sim.testing.programs import add_cases, clamp_cases, concat_cases


@given(add_cases())
def test_add_acc_matches_reference(case):
    """The residual add's weighted sums equal the reference for any weights and zero-points."""
    (a, b), (qa, qb), op = case.inputs, case.in_quants, case.op
    got = kernels.add_acc(a, b, op.weight_a, op.weight_b, qa.zero_point, qb.zero_point)
    want = reference.add_acc(a, b, op.weight_a, op.weight_b, qa.zero_point, qb.zero_point)
    assert got.dtype == want.dtype and np.array_equal(got, want)


@given(add_cases().filter(lambda case: case.op.requant.variant is RequantVariant.FP32_ADD))
def test_add_fp32_matches_reference(case):
    """onnxruntime's float32 add (FP32_ADD, contract (17)-(20)) equals the reference for any ratios,
    zero-points and offset."""
    (a, b), (qa, qb), op = case.inputs, case.in_quants, case.op
    got = kernels.add_fp32(a, b, op, qa, qb, case.out_quant)
    want = reference.add_fp32(a, b, op, qa, qb, case.out_quant)
    assert got.dtype == want.dtype and np.array_equal(got, want)


@given(clamp_cases())
def test_clamp_matches_reference(case):
    """Per-channel and shared clamps equal the reference."""
    (x,), op = case.inputs, case.op
    got, want = kernels.clamp(x, op.lo, op.hi), reference.clamp(x, op.lo, op.hi)
    assert got.dtype == want.dtype and np.array_equal(got, want)


@given(st.integers(0, 2**32 - 1), st.integers(-2, 2))
def test_count_equal_counts(seed, value):
    """count_equal equals numpy's count of matching elements."""
    x = np.random.default_rng(seed).integers(-2, 3, size=(2, 3, 4, 5)).astype(np.int32)
    assert count_equal(x, value) == np.count_nonzero(x == value)


@given(concat_cases())
def test_concat_acc_matches_reference(case):
    """The concat's centred levels (D.17) equal the reference for any channel counts and zero-points."""
    (a, b), (qa, qb) = case.inputs, case.in_quants
    got = kernels.elementwise.concat_acc(a, b, qa.zero_point, qb.zero_point)
    want = reference.concat_acc(a, b, qa.zero_point, qb.zero_point)
    assert got.dtype == want.dtype and np.array_equal(got, want)
