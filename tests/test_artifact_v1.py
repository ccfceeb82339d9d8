"""Files of artifact format version 1 keep loading and keep meaning the same integers."""

from pathlib import Path

import numpy as np
import pytest

from aquant_sim.artifact import load_program
from aquant_sim.program import OpKind
from aquant_sim.simulator import Backend, Simulator

FIXTURE = Path(__file__).parent / "data" / "artifact_v1"


@pytest.fixture(scope="module")
def program():
    return load_program(FIXTURE / "program.aqp")


def test_fixture_covers_every_op_kind_and_granularity(program):
    """The fixture holds every op kind and the four border-table shapes, so that it tests them all."""
    assert {op.kind for op in program.ops} == set(OpKind)
    tables = [program.input_borders] + [op.requant.borders for op in program.ops if getattr(op, "requant", None)]
    assert {(t.values.shape[0] > 1, t.values.shape[1] > 1) for t in tables} == {(a, b) for a in (0, 1) for b in (0, 1)}


@pytest.mark.parametrize("backend", list(Backend))
def test_version1_file_simulates_to_the_stored_integers(program, backend):
    """Every tensor of the stored run, and the output, come out equal on both backends."""
    result = Simulator(program, backend).run(np.load(FIXTURE / "input.npy"), keep_tensors=True)
    np.testing.assert_array_equal(result.output, np.load(FIXTURE / "output.npy"))
    with np.load(FIXTURE / "tensors.npz") as stored:
        assert sorted(stored.files) == sorted(result.tensors)
        for name in stored.files:
            np.testing.assert_array_equal(result.tensors[name], stored[name], err_msg=name)
