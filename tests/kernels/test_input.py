"""Quantizing the float input in numba: the same levels as ``rounding.border_round`` (1)-(4)."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from aquant_sim import rounding
from aquant_sim.kernels.input import border_round_levels
from aquant_sim.testing.programs import border_tables, quant_params


@st.composite
def input_cases(draw):
    """A format, a border table of any granularity, and a float batch whose values include the
    exact borders ``s * (k - z + beta)``, the grid's ends, huge magnitudes and signed zeros."""
    quant = draw(quant_params())
    shape = draw(st.sampled_from([(2, 3), (1, 2, 3, 4), (2, 1, 5, 1)]))
    table = draw(border_tables(shape[1], quant)).beta
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    span = (quant.qmax - quant.qmin + 4) * quant.scale
    x = rng.uniform(-span, span, size=shape)
    levels = rng.integers(quant.qmin - 2, quant.qmax + 2, size=shape)
    borders = table[np.zeros(shape, dtype=np.int64) if table.shape[0] == 1 else
                    np.arange(shape[1]).reshape(1, -1, *([1] * (len(shape) - 2))) + np.zeros(shape, dtype=np.int64),
                    rng.integers(0, table.shape[1], size=shape)]
    on_border = quant.scale * (levels - quant.zero_point + borders)
    x = np.where(rng.random(shape) < 0.5, on_border, x)
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    huge = float(np.finfo(dtype).max) / 512  # x / s stays finite for every drawn scale (>= 2^-8)
    special = np.array([0.0, -0.0, huge, -huge, quant.scale * (quant.qmax - quant.zero_point),
                        quant.scale * (quant.qmin - quant.zero_point)])
    x.flat[: special.size] = special[: x.size]
    return x.astype(dtype), quant, table


@given(input_cases())
def test_border_round_levels_equal_the_contract(case):
    """The numba pass returns rounding.border_round's levels, as int32, for float64 and float32
    input of any rank, every border granularity and values on the borders themselves."""
    x, quant, beta = case
    got = border_round_levels(x, quant.scale, quant.zero_point, quant.qmin, quant.qmax, beta)
    want = rounding.border_round(x, quant.scale, quant.zero_point, quant.qmin, quant.qmax, beta, channel_axis=1)
    assert got.dtype == np.int32 and got.shape == x.shape and np.array_equal(got, want)
