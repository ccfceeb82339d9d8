"""Switching an imported program's conv and linear requantizers to BORDER: only the rule changes,
borders 1/2 are round half up of the exact product, and the ops left on their rule are named."""

import numpy as np
import pytest

from aquant_sim import reference
from aquant_sim.errors import InputError, ProgramError
from aquant_sim.importers.border_requant import to_border_requantizers, with_border_tables
from aquant_sim.importers.onnx_qdq import import_onnx
from aquant_sim.importers.tflite_model import import_tflite
from aquant_sim.program import OpKind
from aquant_sim.rounding import RequantVariant, dyadic_value
from aquant_sim.simulator import Backend, Simulator
from aquant_sim.testing.tflite_models import small_cnn

F = 8


@pytest.fixture(scope="module")
def imported(fashion_model):
    return import_onnx(fashion_model[0]).program


def test_only_the_rule_changes(imported):
    """Weights, scales, zero-points, biases, multipliers, shifts and tensors are the import's; every
    conv and linear is BORDER with the nearest table; adds and the pooling keep their variant."""
    converted = to_border_requantizers(imported, F)
    assert converted.program.tensors == imported.tensors
    kinds = {op.name: op.kind for op in imported.ops}
    assert set(converted.tuned) == {name for name, kind in kinds.items() if kind in (OpKind.CONV2D, OpKind.LINEAR)}
    assert {u.kind for u in converted.untuned} == {OpKind.ADD, OpKind.GLOBAL_AVGPOOL}
    assert all(u.variant in (RequantVariant.FP32_ADD, RequantVariant.FP32) and u.reason for u in converted.untuned)
    for before, after in zip(imported.ops, converted.program.ops):
        if before.name not in converted.tuned:
            assert after is before
            continue
        for field in ("weight", "weight_scale", "weight_zero_point", "bias"):
            assert np.array_equal(getattr(after, field), getattr(before, field)), field
        assert np.array_equal(after.requant.multiplier, before.requant.multiplier)
        assert np.array_equal(after.requant.shift, before.requant.shift)
        assert before.requant.variant is RequantVariant.FP32 and after.requant.variant is RequantVariant.BORDER
        assert after.requant.borders.is_nearest and after.requant.frac_bits == F


def test_half_borders_round_the_exact_product_half_up(imported, fashion_model):
    """With borders 1/2 every tuned conv/linear output is clamp(floor(acc * m / 2^n + 1/2) + z),
    computed here in Python integers from the op's input levels (D.8 with beta = 1/2)."""
    converted = to_border_requantizers(imported, F)
    program = converted.program
    tensors = Simulator(program, Backend.NUMBA).run(fashion_model[1][:4], keep_tensors=True).tensors
    checked = 0
    for op in program.ops:
        if op.name not in converted.tuned:
            continue
        x = tensors[op.input]
        z_x = program.tensor(op.input).quant.zero_point
        acc = reference.conv2d_acc(x, op, z_x) if op.kind is OpKind.CONV2D else reference.linear_acc(x, op, z_x)
        quant = program.tensor(op.output).quant
        m = np.broadcast_to(op.requant.multiplier.reshape((1, -1) + (1,) * (acc.ndim - 2)), acc.shape)
        n = np.broadcast_to(op.requant.shift.reshape((1, -1) + (1,) * (acc.ndim - 2)), acc.shape)
        expected = [min(max(((int(a) * int(mm) + (1 << (int(nn) - 1))) >> int(nn)) + quant.zero_point, quant.qmin), quant.qmax)
                    for a, mm, nn in zip(acc.ravel(), m.ravel(), n.ravel())]
        assert np.array_equal(tensors[op.output].ravel(), np.array(expected)), op.name
        checked += 1
    assert checked == len(converted.tuned)


def test_tables_and_bad_input(imported):
    """with_border_tables writes only the named tables; an unknown op, a kept op, a table out of
    [1, 2^F] and a bad F are one-line errors naming what is wrong."""
    converted = to_border_requantizers(imported, F)
    first = converted.tuned[0]
    channels = converted.program.tensor(converted.program.ops[0].output).channels
    table = np.arange(1, channels + 1).reshape(-1, 1)
    tuned = with_border_tables(converted.program, {first: table})
    assert np.array_equal(tuned.ops[0].requant.borders.values, table)
    assert all(a is b for a, b in zip(tuned.ops[1:], converted.program.ops[1:]))
    with pytest.raises(InputError, match="'nowhere'"):
        with_border_tables(converted.program, {"nowhere": table})
    with pytest.raises(InputError, match=converted.untuned[0].op):
        with_border_tables(converted.program, {converted.untuned[0].op: table})
    with pytest.raises(ProgramError, match="borders.values"):
        with_border_tables(converted.program, {first: np.full((1, 1), (1 << F) + 1)})
    with pytest.raises(InputError, match="frac_bits"):
        to_border_requantizers(imported, 0)


def test_tflite_rules(tmp_path):
    """A TFLite model: GEMMLOWP convs keep (m, n); the FLOAT64 fully connected's 53-bit m becomes
    31 bits within 2^-31 of E; the TFLite add, average and mean keep their rules."""
    data, _ = small_cnn(per_channel=True, batch=2)
    path = tmp_path / "cnn.tflite"
    path.write_bytes(data)
    program = import_tflite(path).program
    converted = to_border_requantizers(program, F)
    kept = {u.variant for u in converted.untuned}
    assert kept == {RequantVariant.TFLITE_ADD, RequantVariant.TFLITE_AVGPOOL, RequantVariant.TFLITE_MEAN}
    for before, after in zip(program.ops, converted.program.ops):
        if before.name not in converted.tuned:
            continue
        if before.requant.variant is RequantVariant.GEMMLOWP:
            assert np.array_equal(after.requant.multiplier, before.requant.multiplier)
            assert np.array_equal(after.requant.shift, before.requant.shift)
        else:
            assert before.requant.variant is RequantVariant.FLOAT64
            exact = dyadic_value(before.requant.multiplier, before.requant.shift)
            assert np.all(np.abs(dyadic_value(after.requant.multiplier, after.requant.shift) / exact - 1) <= 2.0**-31)
