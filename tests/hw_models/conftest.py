"""Small programs shared by the hardware-model tests."""

import dataclasses

import pytest

from aquant_sim.program import BorderGranularity, BorderTable, Program
from aquant_sim.synthetic import SyntheticConfig, synthetic_resnet

SMALL = SyntheticConfig(input_shape=(3, 12, 12), widths=(8, 16), blocks=(1, 1))


def with_nearest_borders(program: Program) -> Program:
    """The same program with every requantizer's table replaced by round-to-nearest (1/2)."""
    ops = []
    for op in program.ops:
        requant = getattr(op, "requant", None)
        if requant is not None:
            op = dataclasses.replace(op, requant=dataclasses.replace(requant, borders=BorderTable.nearest(requant.frac_bits)))
        ops.append(op)
    return Program(program.tensors, ops, program.input, program.output, program.input_borders,
                   program.accumulator_bits, program.overflow)


@pytest.fixture(scope="session")
def small_program() -> Program:
    return synthetic_resnet(SMALL)


@pytest.fixture(scope="session")
def nearest_program(small_program) -> Program:
    """``small_program`` with round-to-nearest tables everywhere."""
    return with_nearest_borders(small_program)


@pytest.fixture(scope="session")
def tensor_border_program() -> Program:
    """``small_program``'s shape with one border per tensor."""
    return synthetic_resnet(dataclasses.replace(SMALL, granularity=BorderGranularity.TENSOR))


@pytest.fixture(scope="session")
def narrow_accumulator_program() -> Program:
    """``small_program``'s shape with a 12-bit accumulator, so that sums overflow."""
    return synthetic_resnet(dataclasses.replace(SMALL, accumulator_bits=12))
