"""The reference ops against an independent implementation (torch's float64 ops, exact for these
small integers) and against hand-computed cases."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aquant_sim import reference
from aquant_sim.program import AvgPool2d, BorderTable, Conv2d, Linear, MaxPool2d, QuantParams, Requantizer

REQUANT = Requantizer(np.array([1 << 30]), np.array([36]), BorderTable.nearest(8))

CONV_CASES = [
    # (in_channels, out_channels, kernel, stride, padding, dilation, groups, size)
    (3, 4, 3, 1, 1, 1, 1, 7),
    (4, 6, 3, 2, 1, 1, 2, 8),
    (6, 6, 3, 1, 1, 1, 6, 6),  # depthwise
    (2, 3, 1, 1, 0, 1, 1, 5),
    (2, 2, 3, 2, 2, 2, 1, 9),  # dilated, padded
    (3, 2, (3, 1), (1, 2), (1, 0), 1, 1, 6),  # rectangular
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_matches_torch(case):
    """D.1: the exact integer conv equals torch's float64 conv of (x - z) with zero padding."""
    cin, cout, k, s, p, d, g, size = case
    rng = np.random.default_rng(len(str(case)))
    kh, kw = (k, k) if isinstance(k, int) else k
    weight = rng.integers(-8, 8, size=(cout, cin // g, kh, kw))
    x = rng.integers(0, 16, size=(2, cin, size, size))
    bias = rng.integers(-100, 100, size=cout)
    op = Conv2d("c", "x", "y", weight, 4, np.ones(cout), bias, REQUANT, stride=s, padding=p, dilation=d, groups=g)
    z = 5
    got = reference.conv2d_acc(x, op, z)
    want = F.conv2d(torch.tensor(x - z, dtype=torch.float64), torch.tensor(weight, dtype=torch.float64),
                    torch.tensor(bias, dtype=torch.float64), stride=op.stride, padding=op.padding,
                    dilation=op.dilation, groups=g).numpy()
    assert got.dtype == np.int64
    assert np.array_equal(got, want.astype(np.int64))


@pytest.mark.parametrize("padding, padding_end, stride", [
    ((0, 0), (1, 1), 2),  # TF "SAME", 3x3 at stride 2 on an even input
    ((1, 0), (2, 1), 1),
    ((0, 2), (0, 0), 1),
    ((2, 1), (0, 0), 2),
])
def test_conv2d_asymmetric_padding_is_the_padded_input(padding, padding_end, stride):
    """D.1 with padding before and after: equals the conv without padding of the input padded
    explicitly with z (top, left by ``padding``, bottom, right by ``padding_end``)."""
    rng = np.random.default_rng(sum(padding + padding_end) + stride)
    weight, x, z = rng.integers(-8, 8, size=(4, 3, 3, 3)), rng.integers(0, 16, size=(2, 3, 6, 7)), 5
    bias = rng.integers(-100, 100, size=4)
    op = Conv2d("c", "x", "y", weight, 4, np.ones(4), bias, REQUANT, stride=stride, padding=padding, padding_end=padding_end)
    padded = np.pad(x, ((0, 0), (0, 0), (padding[0], padding_end[0]), (padding[1], padding_end[1])), constant_values=z)
    plain = Conv2d("c", "x", "y", weight, 4, np.ones(4), bias, REQUANT, stride=stride)
    got = reference.conv2d_acc(x, op, z)
    assert got.shape[2:] == op.output_shape([x.shape[1:]])[1:]
    assert np.array_equal(got, reference.conv2d_acc(padded, plain, z))


def test_concat_by_hand():
    """D.17: the centred levels of the first input's channels, then the second's."""
    a, b = np.array([[[[3]], [[4]]]]), np.array([[[[9]]]])
    assert reference.concat_acc(a, b, 1, 7).tolist() == [[[[2]], [[3]], [[2]]]]


def test_linear_matches_matmul():
    """D.2: linear is bias plus the product with the centred input."""
    rng = np.random.default_rng(1)
    weight, x, bias = rng.integers(-128, 128, (5, 9)), rng.integers(-8, 8, (3, 9)), rng.integers(-9, 9, 5)
    op = Linear("l", "x", "y", weight, 8, np.ones(5), bias, REQUANT)
    assert np.array_equal(reference.linear_acc(x, op, -2), (x + 2) @ weight.T + bias)


@pytest.mark.parametrize("kernel, stride, padding", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_pools_match_torch(kernel, stride, padding):
    """D.10, D.11: max pool equals torch's; avg pool is torch's average (padding counted) times KH*KW."""
    rng = np.random.default_rng(kernel + stride)
    x = rng.integers(-8, 8, size=(2, 3, 7, 7))
    z = -3
    mp = MaxPool2d("m", "x", "y", kernel, stride, padding)
    want = F.max_pool2d(torch.tensor(x, dtype=torch.float64), kernel, stride, padding).numpy()
    assert np.array_equal(reference.maxpool(x, mp, qmin=-8), want.astype(np.int64))
    ap = AvgPool2d("a", "x", "y", kernel, stride, REQUANT, padding)
    mean = F.avg_pool2d(torch.tensor(x - z, dtype=torch.float64), kernel, stride, padding, count_include_pad=True)
    assert np.array_equal(reference.avgpool_acc(x, ap, z), np.rint(mean.numpy() * kernel * kernel).astype(np.int64))


@pytest.mark.parametrize("padding, padding_end, stride", [
    ((0, 0), (1, 1), 2),  # TF "SAME", 3x3 at stride 2 on an even input
    ((1, 0), (0, 1), 1),
    ((0, 1), (1, 0), 2),
])
def test_maxpool_per_side_padding_is_torch_of_the_padded_input(padding, padding_end, stride):
    """D.10 with padding before and after: torch's unpadded max pool of the input padded
    explicitly with -inf (top, left by ``padding``, bottom, right by ``padding_end``)."""
    x = np.random.default_rng(stride + sum(padding)).integers(-8, 8, size=(2, 3, 6, 7))
    op = MaxPool2d("m", "x", "y", 3, stride, padding, padding_end=padding_end)
    padded = F.pad(torch.tensor(x, dtype=torch.float64), (padding[1], padding_end[1], padding[0], padding_end[0]),
                   value=-np.inf)
    want = F.max_pool2d(padded, 3, stride).numpy()
    got = reference.maxpool(x, op, qmin=-8)
    assert got.shape[1:] == op.output_shape([x.shape[1:]]) == want.shape[1:]
    assert np.array_equal(got, want.astype(np.int64))


def test_add_global_pool_and_clamp_by_hand():
    """D.9, D.12, D.13 on hand-computed values."""
    a = np.array([[[[3]], [[0]]]])
    b = np.array([[[[1]], [[5]]]])
    # 3*(3-1) + 2*(1-2) = 4 and 3*(0-1) + 2*(5-2) = 3
    assert reference.add_acc(a, b, 3, 2, 1, 2).ravel().tolist() == [4, 3]
    x = np.arange(8).reshape(1, 2, 2, 2)
    # (0+1+2+3) - 4*1 = 2 and (4+5+6+7) - 4*1 = 18
    assert reference.global_avgpool_acc(x, 1).ravel().tolist() == [2, 18]
    clamped = reference.clamp(x, np.array([1, 5]), np.array([2, 6]))
    assert clamped.ravel().tolist() == [1, 1, 2, 2, 5, 5, 6, 6]


def test_mul_and_lookup_table_by_hand():
    """D.16 with a per-channel operand broadcast over positions, and D.15 with one shared row and
    with a row per channel, on hand-computed values."""
    a = np.array([[[[3, 4]], [[0, 7]]]])  # (1, 2, 1, 2)
    s = np.array([[[[5]], [[1]]]])  # one value per channel
    # (3-2)(5-3) = 2, (4-2)(5-3) = 4; (0-2)(1-3) = 4, (7-2)(1-3) = -10
    assert reference.mul_acc(a, s, 2, 3).ravel().tolist() == [2, 4, 4, -10]
    assert reference.mul_acc(a, a, 0, 1).ravel().tolist() == [6, 12, 0, 42]
    x = np.array([[[[-2, 1]], [[0, -1]]]])  # levels of a signed 2-bit tensor, qmin = -2
    shared = np.array([[10, 11, 12, 13]])
    assert reference.lut(x, shared, -2).ravel().tolist() == [10, 13, 12, 11]
    rows = np.array([[10, 11, 12, 13], [20, 21, 22, 23]])
    assert reference.lut(x, rows, -2).ravel().tolist() == [10, 13, 22, 21]


def test_requantize_uses_the_op_requantizer():
    """The reference requantizer is (6)-(8) with the op's fields: M = 2^-6, round half up."""
    acc = np.array([[31, 32, 33, -32, -33]])
    quant = QuantParams(bits=4, signed=True, scale=1.0, zero_point=0)
    # 31/64 -> 0, 32/64 -> 1 (tie up), 33/64 -> 1, -32/64 -> 0 (tie up), -33/64 -> -1
    assert reference.requantize(acc, REQUANT, quant).tolist() == [[0, 1, 1, 0, -1]]


def test_conv2d_weight_zero_point_matches_torch():
    """Contract (5): with per-channel z_w the conv equals torch's float64 conv of (x - z) with the
    weights (w - z_w[c]) and zero padding, grouped and padded."""
    rng = np.random.default_rng(3)
    weight, z_w = rng.integers(-4, 4, size=(4, 2, 3, 3)), np.array([-4, 3, 0, 1])
    x, bias = rng.integers(0, 16, size=(2, 4, 6, 6)), rng.integers(-9, 9, size=4)
    op = Conv2d("c", "x", "y", weight, 3, np.ones(4), bias, REQUANT, padding=1, groups=2, weight_zero_point=z_w)
    want = F.conv2d(torch.tensor(x - 5, dtype=torch.float64), torch.tensor(weight - z_w[:, None, None, None], dtype=torch.float64),
                    torch.tensor(bias, dtype=torch.float64), padding=1, groups=2).numpy()
    assert np.array_equal(reference.conv2d_acc(x, op, 5), want.astype(np.int64))


def test_linear_weight_zero_point_matches_matmul():
    """Contract (5) for linear: bias plus (w - z_w) times the centred input."""
    rng = np.random.default_rng(4)
    weight, z_w, x = rng.integers(-8, 8, (3, 5)), np.array([-8, 7, 2]), rng.integers(0, 16, (2, 5))
    op = Linear("l", "x", "y", weight, 4, np.ones(3), np.zeros(3, dtype=np.int64), REQUANT, weight_zero_point=z_w)
    assert np.array_equal(reference.linear_acc(x, op, 1), (x - 1) @ (weight - z_w[:, None]).T)
