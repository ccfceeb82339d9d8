"""programs_differ: identical programs give "", and a change of any one field (a tensor's scale,
a weight, a multiplier, a shift, a border, a variant, a geometry pair, an op name, a program
setting) is found and named."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aquant_sim.program import BorderTable, QuantParams, Requantizer, Tensor
from aquant_sim.program_diff import programs_differ
from aquant_sim.rounding import FLOAT32_MANTISSA_BITS, FLOAT64_MULTIPLIER_RANGE, MULTIPLIER_BITS, OverflowPolicy, RequantVariant
from aquant_sim.synthetic import Stem, SyntheticConfig, synthetic_resnet
from aquant_sim.testing.programs import programs

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


def test_max_pooling_padding_end_is_found():
    """The ImageNet stem's max pooling (3x3/2, padded 1) padded 0 after instead, a program of the
    same shapes, differs in padding_end."""
    pooled = synthetic_resnet(SyntheticConfig(input_shape=(3, 16, 16), widths=(4, 8), blocks=(1, 1), num_classes=3,
                                              stem=Stem.IMAGENET))
    ops = list(pooled.ops)
    index = next(i for i, op in enumerate(ops) if op.kind.value == "maxpool2d")
    ops[index] = dataclasses.replace(ops[index], padding_end=(0, 0))
    assert programs_differ(pooled, dataclasses.replace(pooled, ops=tuple(ops))) == "op 'stem.maxpool' (maxpool2d).padding_end differs"


def _moved(multiplier: int, variant: RequantVariant) -> int:
    """``m`` moved by the smallest step that keeps a requantizer of ``variant`` valid (one, or one
    float32 unit, 2^7, where ``M`` must be a float32), down unless that leaves its range."""
    step = 1 << (MULTIPLIER_BITS - FLOAT32_MANTISSA_BITS) if variant in (RequantVariant.FP32, RequantVariant.FP32_ADD) else 1
    lowest = FLOAT64_MULTIPLIER_RANGE[0] if variant is RequantVariant.FLOAT64 else 1 << 30
    return multiplier + step if multiplier - step < lowest else multiplier - step


@settings(max_examples=25)
@given(programs(), st.data())
def test_random_programs_equal_their_copies_and_a_changed_multiplier_is_found(program, data):
    """A drawn program (every op kind and requantizer variant) equals its copy rebuilt from its
    own fields; one multiplier moved by the smallest step its variant allows (any variant but
    TFLITE_AVGPOOL, whose one entry is fixed) is found and names its op."""
    assert programs_differ(program, dataclasses.replace(program, ops=tuple(dataclasses.replace(op) for op in program.ops))) == ""
    changeable = [i for i, op in enumerate(program.ops)
                  if getattr(op, "requant", None) is not None and op.requant.variant is not RequantVariant.TFLITE_AVGPOOL]
    if not changeable:
        return
    index = data.draw(st.sampled_from(changeable))
    op = program.ops[index]
    multiplier = op.requant.multiplier.copy()
    multiplier[0] = _moved(int(multiplier[0]), op.requant.variant)
    ops = list(program.ops)
    ops[index] = dataclasses.replace(op, requant=dataclasses.replace(op.requant, multiplier=multiplier))
    assert f"op '{op.name}' ({op.kind.value}).requant differs" == programs_differ(program, dataclasses.replace(program, ops=tuple(ops)))
