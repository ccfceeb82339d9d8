"""Exact tensor comparison in program order."""

import numpy as np
import pytest

from aquant_sim.compare import check_dumps, compare_tensors, first_difference, tensor_order
from aquant_sim.errors import InputError
from aquant_sim.simulator import Backend, Simulator
from aquant_sim.testing.dyadic import dyadic_program


@pytest.fixture
def run():
    program = dyadic_program()
    x = np.random.default_rng(0).standard_normal((2, *program.input_tensor.shape))
    return program, Simulator(program, Backend.REFERENCE).run(x, keep_tensors=True).tensors


def test_equal_runs(run):
    """Identical tensors compare equal everywhere, one entry per tensor in program order."""
    program, tensors = run
    comparisons = compare_tensors(program, tensors, dict(tensors))
    assert [c.tensor for c in comparisons] == [t for t, _, _ in tensor_order(program)]
    assert first_difference(comparisons) is None


def test_first_difference_in_program_order(run):
    """With changes in two layers, the first in program order is named with its first index (C order) and values."""
    program, tensors = run
    other = {name: value.copy() for name, value in tensors.items()}
    other["gap"][1, 2, 0, 0] += 3
    other["conv2"][0, 1, 2, 3] -= 1
    other["conv2"][1, 0, 0, 0] -= 1
    comparisons = compare_tensors(program, tensors, other)
    first = first_difference(comparisons)
    assert (first.layer, first.first_index, first.differing) == ("conv2", (0, 1, 2, 3), 2)
    assert first.first_values == (int(tensors["conv2"][0, 1, 2, 3]), int(tensors["conv2"][0, 1, 2, 3]) - 1)
    assert {c.tensor: c.differing for c in comparisons if not c.equal} == {"conv2": 2, "gap": 1}


def test_check_dumps(run):
    """check_dumps accepts the run's own tensors and names a tensor with the wrong batch."""
    program, tensors = run
    check_dumps(program, tensors, 2)
    with pytest.raises(InputError, match="tensor 'input' has shape"):
        check_dumps(program, tensors, 3)
