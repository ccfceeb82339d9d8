"""The torch integer emulation against the simulator, bit for bit."""

import numpy as np
import pytest
import torch

from aquant_sim.builder import ProgramBuilder
from aquant_sim.errors import UnsupportedError
from aquant_sim.frontend.emulation import emulate, requantize
from aquant_sim.program import BorderGranularity, BorderTable, QuantParams, Requantizer
from aquant_sim.rounding import OverflowPolicy, RequantVariant
from aquant_sim.simulator import Backend, Simulator
from aquant_sim.synthetic import SyntheticConfig, synthetic_resnet


@pytest.mark.parametrize("granularity", list(BorderGranularity))
@pytest.mark.parametrize("overflow, acc_bits", [(OverflowPolicy.WRAP, 32), (OverflowPolicy.WRAP, 16), (OverflowPolicy.SATURATE, 16)])
def test_emulation_equals_simulator_on_synthetic_programs(granularity, overflow, acc_bits):
    """Every tensor of a random ResNet-shaped program is the same in the emulation and the
    reference simulator, including accumulator wrap-around and saturation."""
    config = SyntheticConfig(input_shape=(3, 8, 8), widths=(4, 8), blocks=(1, 1), weight_bits=3, act_bits=3,
                             granularity=granularity, frac_bits=6, accumulator_bits=acc_bits, overflow=overflow, seed=7)
    program = synthetic_resnet(config)
    x = np.random.default_rng(8).standard_normal((4, 3, 8, 8)).astype(np.float32)
    expected = Simulator(program, Backend.REFERENCE).run(x, keep_tensors=True).tensors
    got = emulate(program, torch.from_numpy(x), keep_tensors=True)
    assert expected.keys() == got.keys()
    for name in expected:
        assert np.array_equal(expected[name], got[name].numpy()), name


def test_runtime_variants_are_not_emulated():
    """The torch form computes (6)-(8) only; a runtime variant's requantizer is refused, named."""
    requant = Requantizer(np.array([1 << 30]), np.array([40]), BorderTable.nearest(4), RequantVariant.GEMMLOWP)
    with pytest.raises(UnsupportedError, match="'gemmlowp'"):
        requantize(torch.zeros((1, 1), dtype=torch.int64), requant, QuantParams(8, True, 1.0, 0))


@pytest.mark.parametrize("features, dtype", [(256, torch.float32), (1024, torch.float64)])
def test_weighted_sums_are_exact_on_both_sides_of_the_float32_bound(features, dtype):
    """8-bit levels and weights: with K * 255 * 128 below 2^24 the sum runs in float32, above it in
    float64; either way it equals numpy's int64 sum (5) exactly, zero-points and bias included."""
    from aquant_sim.frontend.emulation import accumulate, sum_dtype
    from aquant_sim.program import Linear, QuantParams

    rng = np.random.default_rng(features)
    weight = rng.integers(-128, 128, (6, features))
    z_w = rng.integers(-128, 128, 6)
    bias = rng.integers(-1000, 1000, 6)
    op = Linear("fc", "x", "fc", weight, 8, np.ones(6), bias, None, z_w)
    quant = QuantParams(8, False, 0.1, 3)
    x = rng.integers(0, 256, (5, features))
    assert sum_dtype(features, 252, int(np.abs(weight - z_w[:, None]).max()), torch.device("cpu")) == dtype
    expected = (x - 3) @ (weight - z_w[:, None]).T + bias
    assert np.array_equal(accumulate(op, [torch.from_numpy(x)], [quant]).numpy(), expected)


def test_float32_dequantization_is_float64_then_cast():
    """s (q - z) computed in float32 (a float32 scale) equals float64's product cast to float32."""
    from aquant_sim.frontend.emulation import dequantize
    from aquant_sim.program import QuantParams

    rng = np.random.default_rng(3)
    for scale in np.float32(rng.uniform(1e-4, 3.0, 50)):
        quant = QuantParams(16, False, float(scale), int(rng.integers(0, 1 << 16)))
        q = torch.from_numpy(rng.integers(0, 1 << 16, 2000))
        assert torch.equal(dequantize(q, quant, torch.float32), dequantize(q, quant, torch.float64).float())


def test_emulation_equals_simulator_on_concat_and_asymmetric_padding():
    """A program of a TF-"SAME" stride-2 conv, a concat of three tensors (one of them in the
    output's format, so one concat is a copy), an asymmetrically padded conv after it and a max
    pooling padded unequally before and after (TFLite's SAME pooling, D.10): every
    tensor is the same in the emulation and on both simulator backends."""
    rng = np.random.default_rng(3)

    def table(channels):
        return BorderTable(6, rng.integers(1, 65, size=(channels, 7)))

    quant = [QuantParams(3, False, s, z) for s, z in ((0.05, 2), (0.07, 0), (0.04, 3))]
    builder = ProgramBuilder("x", (2, 8, 8), quant[0], table(2))

    def conv(name, x, out, quant_out, **geometry):
        weight = rng.integers(-4, 4, size=(out, builder.tensor(x).shape[0], 3, 3))
        return builder.conv2d(name, x, weight, 3, np.full(out, 0.1), rng.integers(-20, 20, size=out), quant_out,
                              table(out), **geometry)

    a = conv("a", "x", 3, quant[1], stride=2, padding=(0, 0), padding_end=(1, 1))
    b = conv("b", a, 2, quant[2], padding=(1, 1))
    c = conv("c", a, 4, quant[1], padding=(1, 1))
    cat = builder.concat("cat", [a, b, c], quant[1], table(9))
    d = conv("d", cat, 2, quant[0], padding=(1, 0), padding_end=(2, 1))
    builder.maxpool("pool", d, (3, 3), (2, 2), padding=(0, 1), padding_end=(1, 0))
    program = builder.build("pool")
    assert [op.kind.value for op in program.ops].count("concat") == 2
    x = rng.standard_normal((3, 2, 8, 8)).astype(np.float32)
    got = emulate(program, torch.from_numpy(x), keep_tensors=True)
    for backend in Backend:
        expected = Simulator(program, backend).run(x, keep_tensors=True).tensors
        assert expected.keys() == got.keys()
        for name in expected:
            assert np.array_equal(expected[name], got[name].numpy()), (backend, name)
