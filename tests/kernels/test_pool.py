"""Pooling kernels equal the reference bit for bit."""

import numpy as np
from hypothesis import given

from aquant_sim import kernels, reference
from aquant_sim.testing.programs import avgpool_cases, global_avgpool_cases, maxpool_cases


@given(maxpool_cases())
def test_maxpool_matches_reference(case):
    """Max pooling with padding (holding qmin), stride and dilation equals the reference."""
    (x,), (q,) = case.inputs, case.in_quants
    got, want = kernels.maxpool(x, case.op, q.qmin), reference.maxpool(x, case.op, q.qmin)
    assert got.dtype == want.dtype and np.array_equal(got, want)


@given(maxpool_cases().filter(lambda case: case.op.padding != case.op.padding_end))
def test_maxpool_padded_apart_before_and_after_matches_reference(case):
    """Max pooling padded differently before and after the input (``padding_end``) equals the
    reference, shape included."""
    (x,), (q,) = case.inputs, case.in_quants
    got, want = kernels.maxpool(x, case.op, q.qmin), reference.maxpool(x, case.op, q.qmin)
    assert got.shape[1:] == case.op.output_shape([x.shape[1:]])
    assert got.dtype == want.dtype and np.array_equal(got, want)


@given(avgpool_cases())
def test_avgpool_acc_matches_reference(case):
    """Average-pooling window sums (padding counted as z) equal the reference."""
    (x,), (q,) = case.inputs, case.in_quants
    got, want = kernels.avgpool_acc(x, case.op, q.zero_point), reference.avgpool_acc(x, case.op, q.zero_point)
    assert got.dtype == want.dtype and np.array_equal(got, want)


@given(global_avgpool_cases())
def test_global_avgpool_acc_matches_reference(case):
    """Global average-pooling plane sums equal the reference, shape (N, C, 1, 1) included."""
    (x,), (q,) = case.inputs, case.in_quants
    got, want = kernels.global_avgpool_acc(x, q.zero_point), reference.global_avgpool_acc(x, q.zero_point)
    assert got.shape == want.shape and got.dtype == want.dtype and np.array_equal(got, want)
