"""Shared fixtures of the command tests: a small saved program and a batch for it."""

import numpy as np
import pytest

from aquant_sim.artifact import save_program
from aquant_sim.testing.dyadic import DyadicConfig, dyadic_program


@pytest.fixture
def program():
    """A small program with every op kind whose output is int32 accumulators."""
    return dyadic_program(DyadicConfig(accumulator_output=True))


@pytest.fixture
def saved(tmp_path, program):
    """(artifact path, input .npy path) of a small program with every op kind and a batch of 3."""
    artifact = save_program(program, tmp_path / "p.aqp")
    x = np.random.default_rng(1).standard_normal((3, *program.input_tensor.shape)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    return artifact, tmp_path / "x.npy"
