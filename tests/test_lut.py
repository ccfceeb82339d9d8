"""The lookup table's one definition (aquant_sim/lut.py, equation (T) of D.15): the float64
functions, the table they make, and its validation."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from aquant_sim.errors import ProgramError
from aquant_sim.frontend.graph import torch_unary
from aquant_sim.lut import Unary, UnaryFunction, lookup_table
from aquant_sim.program import BorderTable, QuantParams
from aquant_sim.testing.programs import quant_params

UNARIES = [
    Unary(UnaryFunction.SIGMOID), Unary(UnaryFunction.TANH), Unary(UnaryFunction.SILU), Unary(UnaryFunction.HARDSIGMOID),
    Unary(UnaryFunction.HARDSWISH), Unary(UnaryFunction.GELU), Unary(UnaryFunction.GELU_TANH),
    Unary(UnaryFunction.LEAKY_RELU, (0.1,)), Unary(UnaryFunction.ELU, (0.7,)), Unary(UnaryFunction.HARDTANH, (-1.0, 2.5)),
    Unary(UnaryFunction.SCALE, (-0.375,)), Unary(UnaryFunction.OFFSET, (3.0,)),
]
MONOTONE = [u for u in UNARIES if u.function not in (UnaryFunction.SILU, UnaryFunction.HARDSWISH, UnaryFunction.GELU,
                                                     UnaryFunction.GELU_TANH, UnaryFunction.SCALE)]
"""The non-decreasing ones (SiLU, Hardswish and GELU dip below 0; the drawn scale is negative)."""


@pytest.mark.parametrize("unary", UNARIES, ids=lambda u: u.function.value)
def test_float64_function_is_torchs(unary):
    """The table's float64 function equals the front-end's torch function in float64 within 1e-15
    relative (4e-16 absolute near 0) on [-12, 12], the tails and the exact points of the piecewise
    ones included."""
    x = np.concatenate([np.linspace(-12, 12, 4801), [-3.0, 3.0, -1.0, 2.5, 0.0, -700.0, 700.0]])
    ours = unary.apply(x)
    theirs = torch_unary(unary, torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-15, atol=4e-16)


def test_known_values():
    """Exact points: sigmoid(0) = 1/2, hardsigmoid(3) = 1, hardswish(-3) = 0, gelu(0) = 0,
    leaky(-2) = -2 slope, elu(-inf side) -> -alpha, hardtanh clamps, scale multiplies, offset adds."""
    assert Unary(UnaryFunction.SIGMOID).apply(0.0) == 0.5
    assert Unary(UnaryFunction.HARDSIGMOID).apply(3.0) == 1.0
    assert Unary(UnaryFunction.HARDSWISH).apply(-3.0) == 0.0
    assert Unary(UnaryFunction.GELU).apply(0.0) == 0.0
    assert Unary(UnaryFunction.LEAKY_RELU, (0.25,)).apply(-2.0) == -0.5
    assert Unary(UnaryFunction.ELU, (0.5,)).apply(-50.0) == -0.5
    assert Unary(UnaryFunction.HARDTANH, (-1.0, 1.0)).apply(np.array([-3.0, 0.5, 3.0])).tolist() == [-1.0, 0.5, 1.0]
    assert Unary(UnaryFunction.SCALE, (0.5,)).apply(3.0) == 1.5
    assert Unary(UnaryFunction.OFFSET, (3.0,)).apply(-3.0) == 0.0


@given(quant_params(), quant_params(), st.sampled_from(UNARIES))
def test_nearest_table_rounds_each_dequantized_level(in_quant, out_quant, unary):
    """(T) with the round-to-nearest border: entry i is ``clamp(floor(f(s_x (i + qmin - z_x)) / s_y
    + z_y + 1/2))``, computed here element by element in Python floats."""
    table = lookup_table(unary, in_quant, out_quant, BorderTable.nearest(8).beta)
    assert table.shape == (1, in_quant.levels + 1)
    for i, entry in enumerate(table[0]):
        value = float(unary.apply(in_quant.scale * (in_quant.qmin + i - in_quant.zero_point)))
        level = math.floor(value / out_quant.scale + out_quant.zero_point + 0.5)
        assert entry == min(max(level, out_quant.qmin), out_quant.qmax)


def test_per_channel_borders_give_one_row_each():
    """A per-channel output table gives one table row per channel, each rounded with its row's
    border: floor (border 1), round-to-nearest (1/2), and 1/4."""
    q_in, q_out = QuantParams(4, True, 0.25, 0), QuantParams(6, False, 0.1, 10)
    beta = np.array([[1.0], [0.5], [0.25]])
    table = lookup_table(Unary(UnaryFunction.SILU), q_in, q_out, beta)
    u = Unary(UnaryFunction.SILU).apply(0.25 * np.arange(-8, 8)) / 0.1 + 10
    k = np.floor(u)
    for row, border in zip(table, beta[:, 0]):
        assert np.array_equal(row, np.clip(k + (u - k >= border), 0, 63))
    assert not np.array_equal(table[0], table[1])


@given(quant_params(), quant_params(), st.sampled_from(MONOTONE))
def test_monotone_functions_give_monotone_tables(in_quant, out_quant, unary):
    """Border rounding is monotone, so a non-decreasing function's table never decreases."""
    table = lookup_table(unary, in_quant, out_quant, BorderTable.nearest(4).beta)
    assert np.all(np.diff(table[0]) >= 0)


@pytest.mark.parametrize("function, parameters, words", [
    (UnaryFunction.SILU, (1.0,), "expected 0 finite parameters"),
    (UnaryFunction.LEAKY_RELU, (), "expected 1 finite parameters"),
    (UnaryFunction.ELU, (math.inf,), "expected 1 finite parameters"),
    (UnaryFunction.HARDTANH, (1.0, 1.0), "low must be below high"),
    (UnaryFunction.SCALE, (0.0,), "must not be 0"),
    ("silu", (), "expected a UnaryFunction"),
])
def test_invalid_functions_are_refused(function, parameters, words):
    """Wrong parameters are a ProgramError naming the function."""
    with pytest.raises(ProgramError, match=words):
        Unary(function, parameters)


def test_non_finite_table_is_refused():
    """A function that overflows float64 on the input grid has no table."""
    with pytest.raises(ProgramError, match="'scale' is not finite"):
        lookup_table(Unary(UnaryFunction.SCALE, (1e308,)), QuantParams(8, False, 1.0, 0), QuantParams(8, False, 1.0, 0),
                     BorderTable.nearest(8).beta)
