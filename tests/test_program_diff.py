"""programs_differ: identical programs give "", and a change of any one field (a tensor's scale,
a weight, a multiplier, a shift, a border, a variant, a geometry pair, an op name, a program
setting) is found and named."""

import dataclasses

import numpy as np
import pytest

from aquant_sim.program import BorderTable, QuantParams, Requantizer, Tensor
from aquant_sim.program_diff import programs_differ
from aquant_sim.rounding import OverflowPolicy, RequantVariant
from aquant_sim.synthetic import SyntheticConfig, synthetic_resnet

PROGRAM = synthetic_resnet(SyntheticConfig(input_shape=(3, 8, 8), widths=(4, 8), blocks=(1, 1), num_classes=3))
CONV = next(i for i, op in enumerate(PROGRAM.ops) if op.kind.value == "conv2d")


def _with_op(index: int, **changes):
    ops = list(PROGRAM.ops)
    ops[index] = dataclasses.replace(ops[index], **changes)
    return dataclasses.replace(PROGRAM, ops=tuple(ops))


def _with_requant(**changes):
    requant = PROGRAM.ops[CONV].requant
    fields = dict(multiplier=requant.multiplier, shift=requant.shift, borders=requant.borders, variant=requant.variant)
    return _with_op(CONV, requant=Requantizer(**{**fields, **changes}))


def test_a_program_equals_itself_and_a_copy():
    """The same program, and one rebuilt from its own fields, differ in nothing."""
    assert programs_differ(PROGRAM, PROGRAM) == ""
    assert programs_differ(PROGRAM, dataclasses.replace(PROGRAM, ops=tuple(dataclasses.replace(op) for op in PROGRAM.ops))) == ""


def _weight_changed():
    weight = PROGRAM.ops[CONV].weight.copy()
    weight.flat[0] = -weight.flat[0] if weight.flat[0] else 1
    return _with_op(CONV, weight=weight)


def _scale_changed():
    first = PROGRAM.tensors[0]
    quant = first.quant
    tensor = Tensor(first.name, first.shape, QuantParams(quant.bits, quant.signed, np.nextafter(quant.scale, 1.0), quant.zero_point))
    return dataclasses.replace(PROGRAM, tensors=(tensor, *PROGRAM.tensors[1:]))


def _border_changed():
    borders = PROGRAM.ops[CONV].requant.borders
    values = borders.values.copy()
    values.flat[0] = values.flat[0] - 1 if values.flat[0] > 1 else 2
    return _with_requant(borders=BorderTable(borders.frac_bits, values))


@pytest.mark.parametrize("changed, where", [
    (_weight_changed, "weight"),
    (_scale_changed, "quant"),
    (lambda: _with_requant(multiplier=PROGRAM.ops[CONV].requant.multiplier + 1), "requant"),
    (lambda: _with_requant(shift=PROGRAM.ops[CONV].requant.shift + 1), "requant"),
    (_border_changed, "requant"),
    (lambda: _with_requant(variant=RequantVariant.GEMMLOWP, borders=BorderTable.nearest(1)), "requant"),
    (lambda: _with_op(CONV, padding=(2, 2), padding_end=(0, 0)), "padding"),
    (lambda: _with_op(CONV, name="renamed"), "renamed"),
    (lambda: dataclasses.replace(PROGRAM, overflow=OverflowPolicy.SATURATE), "overflow"),
], ids=["weight", "scale", "multiplier", "shift", "border", "variant", "padding", "name", "overflow"])
def test_every_change_is_found(changed, where):
    """One changed field (of a program that still validates) gives a non-empty difference
    naming where it is."""
    assert where in programs_differ(PROGRAM, changed())
