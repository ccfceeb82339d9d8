"""Small programs shared by the hardware-model tests."""

import dataclasses

import pytest

from aquant_sim.builder import ProgramBuilder
from aquant_sim.lut import Unary, UnaryFunction
from aquant_sim.program import BorderGranularity, BorderTable, Program, QuantParams
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


@pytest.fixture(scope="session")
def gate_program() -> Program:
    """A squeeze-excitation gate on a (4, 6, 6) 8-bit map: SiLU table ``act``, global pool, a
    Hardsigmoid table with one row per channel ``gate`` (4-bit output), and the product ``scale``."""
    q8, q4, nearest = QuantParams(8, False, 0.05, 20), QuantParams(4, False, 1 / 15, 0), BorderTable.nearest(8)
    b = ProgramBuilder("x", (4, 6, 6), q8, nearest)
    x = b.lut("act", "x", Unary(UnaryFunction.SILU), q8, nearest)
    pooled = b.global_avgpool("pool", x, q8, nearest)
    gate = b.lut("gate", pooled, Unary(UnaryFunction.HARDSIGMOID), q4, BorderTable(8, [[128], [100], [128], [64]]))
    return b.build(b.mul("scale", x, gate, q8, nearest))
