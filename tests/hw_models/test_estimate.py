"""The joined estimate: totals, fit checks and the simulator's counters."""

import numpy as np
import pytest

from aquant_sim.errors import InputError, UnsupportedError
from aquant_sim.simulator import Backend, Simulator
from hw_models.config import AcceleratorConfig, ArrayConfig
from hw_models.estimate import estimate


@pytest.fixture(scope="module")
def counters(small_program):
    x = np.random.default_rng(0).standard_normal((2, *small_program.input_tensor.shape))
    return Simulator(small_program, Backend.REFERENCE).run(x).counters


def test_totals_are_sums(small_program):
    """Network cycles, energy and traffic are the sums over layers; cycles split into compute, stall and border."""
    net = estimate(small_program, AcceleratorConfig())
    assert net.cycles == sum(e.cycles for e in net.layers) == net.compute_cycles + net.stall_cycles + sum(e.border.extra_cycles for e in net.layers)
    assert net.energy_pj == pytest.approx(sum(e.energy.total for e in net.layers))
    assert net.macs == sum(op.weight.size * (np.prod(small_program.tensor(op.output).shape[1:]) if op.kind.value == "conv2d" else 1)
                           for op in small_program.ops if op.kind.value in ("conv2d", "linear"))
    assert 0 < net.utilization <= 1


def test_counters_refine_energy_not_cycles(small_program, counters):
    """Zero activations from the simulator lower the MAC energy of array layers and leave cycles unchanged."""
    plain = estimate(small_program, AcceleratorConfig())
    refined = estimate(small_program, AcceleratorConfig(), counters)
    assert refined.cycles == plain.cycles
    assert refined.energy_pj < plain.energy_pj
    by_name = {e.layer.name: e for e in refined.layers}
    zero = next(c.zero_fraction for c in counters if c.name == "layer1.0.conv1.relu")
    assert by_name["layer1.0.conv2"].zero_fraction == zero > 0
    assert all(e.overflows == 0 for e in refined.layers)


def test_overflows_are_reported_per_inference(narrow_accumulator_program):
    """With a narrow accumulator the simulator's overflow counts appear per layer, per inference."""
    program = narrow_accumulator_program
    x = np.random.default_rng(1).standard_normal((3, *program.input_tensor.shape))
    counters = Simulator(program, Backend.REFERENCE).run(x).counters
    net = estimate(program, AcceleratorConfig(), counters)
    by_name = {e.layer.name: e for e in net.layers}
    overflowing = [c for c in counters if c.overflows]
    assert overflowing
    for c in overflowing:
        assert by_name[c.name].overflows == c.overflows // 3


def test_program_must_fit_the_hardware(small_program, counters):
    """Operands wider than the PEs and counters of another program are clear errors."""
    with pytest.raises(UnsupportedError, match="layer 'stem'.*array.operand_bits"):
        estimate(small_program, AcceleratorConfig(array=ArrayConfig(operand_bits=4)))
    with pytest.raises(UnsupportedError, match="array.accumulator_bits"):
        estimate(small_program, AcceleratorConfig(array=ArrayConfig(accumulator_bits=16)))
    with pytest.raises(InputError, match="counters"):
        estimate(small_program, AcceleratorConfig(), counters[:-1])
