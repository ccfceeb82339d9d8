"""The torch integer emulation against the simulator, bit for bit."""

import numpy as np
import pytest
import torch

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
