"""Conv2d and linear kernels: bit-exact against the reference, and exact on every GEMM path."""

import numpy as np
import pytest
from hypothesis import given

from aquant_sim import kernels, reference
from aquant_sim.kernels import conv
from aquant_sim.kernels.conv import FLOAT32_EXACT, GemmPath, exact_gemm, gemm_path, linear_sums
from aquant_sim.program import Conv2d, Linear
from aquant_sim.testing.programs import conv_cases, linear_cases


@given(conv_cases())
def test_conv2d_matches_reference(case):
    """conv2d_acc equals the reference for any stride, padding, dilation, groups and formats."""
    (x,), (q,) = case.inputs, case.in_quants
    got = kernels.conv2d_acc(x, case.op, q.zero_point)
    want = reference.conv2d_acc(x, case.op, q.zero_point)
    assert got.dtype == want.dtype and np.array_equal(got, want)


@pytest.mark.parametrize("path", [GemmPath.FLOAT64, GemmPath.INT64])
@given(case=conv_cases())
def test_conv2d_forced_wide_paths_match_reference(path, case):
    """With the GEMM forced to float64 or int64 (which real layers reach only with huge bounds),
    grouped and depthwise convs, with or without weight zero-points, still equal the reference."""
    (x,), (q,) = case.inputs, case.in_quants
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv, "gemm_path", lambda row_sum, max_abs: path)
        sums = conv.conv2d_sums(x, case.op, q.zero_point)
        got = kernels.conv2d_acc(x, case.op, q.zero_point)
    # The GEMM's dtype, or int64 after the row-sum correction of non-zero weight zero-points.
    assert sums.dtype == (np.int64 if np.any(case.op.weight_zero_point) else path.value)
    assert np.array_equal(got, reference.conv2d_acc(x, case.op, q.zero_point))


@given(linear_cases())
def test_linear_matches_reference(case):
    """linear_acc equals the reference."""
    (x,), (q,) = case.inputs, case.in_quants
    got = kernels.linear_acc(x, case.op, q.zero_point)
    want = reference.linear_acc(x, case.op, q.zero_point)
    assert got.dtype == want.dtype and np.array_equal(got, want)


def _ones_linear(features: int) -> Linear:
    """A 1-output linear layer of weight 127 everywhere (8-bit), no bias."""
    weight = np.full((1, features), 127)
    return Linear("fc", "x", "y", weight, 8, np.ones(1), np.zeros(1, dtype=np.int64), None)


def _near_max_input(features: int) -> np.ndarray:
    """Unsigned 8-bit levels at 255 except one 254, so the exact sum is odd."""
    x = np.full((1, features), 255, dtype=np.int32)
    x[0, 0] = 254
    return x


def test_float32_path_exact_just_below_bound():
    """Sums just below 2^24 take the float32 path and are exact."""
    features = FLOAT32_EXACT // (127 * 255)  # 518: bound 16,775,430 < 2^24
    op, x = _ones_linear(features), _near_max_input(features)
    assert gemm_path(127 * features, 255) is GemmPath.FLOAT32
    sums = linear_sums(x, op, 0)
    assert sums.dtype == np.float32
    exact = reference.linear_acc(x, op, 0)
    assert exact[0, 0] == 127 * (255 * features - 1) and exact[0, 0] > FLOAT32_EXACT - 127 * 255
    assert np.array_equal(kernels.linear_acc(x, op, 0), exact)


def test_sums_above_float32_bound_leave_float32_and_stay_exact():
    """Sums above 2^24 (where float32 would round) take another path and are exact."""
    features = FLOAT32_EXACT // (127 * 255) + 100
    op, x = _ones_linear(features), _near_max_input(features)
    exact = reference.linear_acc(x, op, 0)
    assert exact[0, 0] > FLOAT32_EXACT and exact[0, 0] % 2 == 1
    # The case discriminates: a float32 GEMM would get this sum wrong.
    assert int(np.float32(x.astype(np.float32) @ op.weight.T.astype(np.float32))[0, 0]) != exact[0, 0]
    assert gemm_path(127 * features, 255) in (GemmPath.FLOAT64, GemmPath.INT64)
    assert np.array_equal(kernels.linear_acc(x, op, 0), exact)


def test_gemm_path_thresholds():
    """The path follows bound = max_c sum_i |w[c, i]| * max|x - z| against 2^24 and 2^53."""
    row_sum = 8
    assert gemm_path(row_sum, (1 << 21) - 1) is GemmPath.FLOAT32
    assert gemm_path(row_sum, 1 << 21) is GemmPath.FLOAT64
    assert gemm_path(row_sum, (1 << 50) - 1) is GemmPath.FLOAT64
    assert gemm_path(row_sum, 1 << 50) is GemmPath.INT64


@pytest.mark.parametrize("path", list(GemmPath))
def test_exact_gemm_every_path(path):
    """Every GEMM path returns the exact int64 product for operands within its bound."""
    rng = np.random.default_rng(7)
    weight = rng.integers(-8, 8, size=(2, 5, 30))
    cols = rng.integers(-15, 16, size=(2, 30, 11))
    want = np.einsum("gok,gkj->goj", weight, cols)
    got = exact_gemm(weight.astype(path.value), cols.astype(path.value), path)
    assert np.array_equal(got.astype(np.int64), want)


@pytest.mark.parametrize("path", list(GemmPath))
@pytest.mark.parametrize("groups", [1, 2, 4], ids=["dense", "grouped", "depthwise"])
def test_conv2d_weight_zero_points_match_reference(groups, path):
    """Non-zero z_w (the limits of the 4-bit range included) on a padded, strided conv: the
    row-sum trick of the kernels equals contract (5) as the reference computes it, on every
    GEMM path; padding holds z_x and adds nothing to either term."""
    rng = np.random.default_rng(groups)
    weight = rng.integers(-8, 8, size=(4, 4 // groups, 3, 3))
    op = Conv2d("c", "x", "y", weight, 4, np.ones(4), rng.integers(-50, 50, 4), None, stride=2, padding=2,
                groups=groups, weight_zero_point=np.array([-8, 7, 3, -1]))
    x = rng.integers(0, 16, size=(2, 4, 7, 6), dtype=np.int32)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv, "gemm_path", lambda row_sum, max_abs: path)
        got = kernels.conv2d_acc(x, op, 3)
    assert np.array_equal(got, reference.conv2d_acc(x, op, 3))


@pytest.mark.parametrize("path", list(GemmPath))
def test_linear_weight_zero_points_match_reference(path):
    """Linear with non-zero z_w: the kernels' row-sum trick equals the reference on every path."""
    rng = np.random.default_rng(5)
    op = Linear("fc", "x", "y", rng.integers(-2, 2, size=(3, 17)), 2, np.ones(3), np.zeros(3, dtype=np.int64), None,
                weight_zero_point=np.array([-2, 1, 0]))
    x = rng.integers(-8, 8, size=(4, 17), dtype=np.int32)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv, "gemm_path", lambda row_sum, max_abs: path)
        got = kernels.linear_acc(x, op, -3)
    assert np.array_equal(got, reference.linear_acc(x, op, -3))
