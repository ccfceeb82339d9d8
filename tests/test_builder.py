"""The builder derives the datapath's integers from real scales as docs/datapath.md says."""

import numpy as np
import pytest

from aquant_sim import rounding
from aquant_sim.builder import ADD_WEIGHT_BITS, ProgramBuilder
from aquant_sim.errors import ProgramError
from aquant_sim.program import BorderTable, OpKind, QuantParams

Q8 = QuantParams(bits=8, signed=False, scale=0.05, zero_point=100)
NEAREST = BorderTable.nearest(8)


def builder():
    return ProgramBuilder("x", (2, 4, 4), Q8, NEAREST)


def test_conv_multiplier_is_sx_sw_over_sy():
    """(6): each channel's (m, n) represents s_x * s_w[c] / s_y within 2^-30 relative error."""
    b = builder()
    out = QuantParams(4, False, 0.3, 0)
    w_scale = np.array([0.01, 0.02, 0.5])
    y = b.conv2d("c", "x", np.ones((3, 2, 3, 3), dtype=np.int8), 4, w_scale, np.zeros(3, dtype=np.int64), out, NEAREST, padding=1)
    op = b.build(y).ops[0]
    real = 0.05 * w_scale / 0.3
    assert np.all(np.abs(rounding.dyadic_value(op.requant.multiplier, op.requant.shift) / real - 1) <= 2.0**-30)


def test_add_weights_carry_the_scale_ratio():
    """D.9: the larger input scale gets 2^14, the smaller the rounded ratio; M = s_max / (2^14 s_y)."""
    b = ProgramBuilder("x", (2, 4, 4), Q8, NEAREST)
    y = b.maxpool("p", "x", 1, 1)
    other = b.conv2d("c", "x", np.ones((2, 2, 1, 1), dtype=np.int8), 4, np.full(2, 0.01), np.zeros(2, dtype=np.int64),
                     QuantParams(8, False, 0.0125, 0), NEAREST)
    s = b.add("add", y, other, QuantParams(8, False, 0.1, 0), NEAREST)
    op = b.build(s).ops[-1]
    assert op.kind is OpKind.ADD
    assert (op.weight_a, op.weight_b) == (1 << ADD_WEIGHT_BITS, 1 << (ADD_WEIGHT_BITS - 2))
    assert rounding.dyadic_value(op.requant.multiplier, op.requant.shift)[0] == pytest.approx(0.05 / (2**14 * 0.1), rel=2**-30)


def test_relu6_upper_level_is_six_rounded_with_the_tensor_borders():
    """D.13: ReLU6's upper clamp is q(6) under each channel's own border table."""
    b = builder()
    out = QuantParams(4, False, 0.8, 0)  # 6 / 0.8 = 7.5: a tie, so the border decides
    table = BorderTable(4, np.array([[8], [9]]))  # beta = 1/2 (7.5 -> 8), beta = 9/16 (7.5 -> 7)
    y = b.conv2d("c", "x", np.ones((2, 2, 1, 1), dtype=np.int8), 4, np.full(2, 0.1), np.zeros(2, dtype=np.int64), out, table)
    r = b.relu6("r6", y)
    clamp = b.build(r).ops[-1]
    assert clamp.lo.tolist() == [0, 0]
    assert clamp.hi.tolist() == [8, 7]


def test_pools_fold_the_divisor_into_the_multiplier():
    """D.11, D.12: M = s_x / (window * s_y)."""
    b = builder()
    a = b.avgpool("ap", "x", 2, 2, Q8, NEAREST)
    g = b.global_avgpool("gap", a, Q8, NEAREST)
    ops = b.build(g).ops
    assert rounding.dyadic_value(ops[0].requant.multiplier, ops[0].requant.shift)[0] == pytest.approx(1 / 4, rel=2**-30)
    assert rounding.dyadic_value(ops[1].requant.multiplier, ops[1].requant.shift)[0] == pytest.approx(1 / 4, rel=2**-30)


def test_duplicate_names_are_rejected():
    """Declaring a tensor twice is an error naming it."""
    b = builder()
    b.flatten("f", "x")
    with pytest.raises(ProgramError, match="'f' is declared twice"):
        b.flatten("f", "x")
