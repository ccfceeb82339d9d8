"""The float model of requantizing ops against the datapath (docs/contract.md, "Why (6)-(8) is exact")."""

import numpy as np
from hypothesis import given

from aquant_sim.builder import ProgramBuilder
from aquant_sim.float_model import measure
from aquant_sim.program import BorderTable, OpKind, QuantParams
from aquant_sim.rounding import dyadic_value
from aquant_sim.simulator import Backend, Simulator
from aquant_sim.synthetic import SyntheticConfig, synthetic_resnet
from aquant_sim.testing.dyadic import dyadic_configs, dyadic_program


def _run(program, batch, seed=0):
    shape = (batch, *program.input_tensor.shape)
    x = np.random.default_rng(seed).standard_normal(shape)
    return Simulator(program, Backend.REFERENCE).run(x, keep_tensors=True)


@given(dyadic_configs())
def test_dyadic_programs_have_no_differences(config):
    """When every M is exactly dyadic, the float model equals the datapath on every element of
    every requantizing op, (8) == (4) at network level."""
    program = dyadic_program(config)
    differences = measure(program, _run(program, batch=3).tensors)
    requantizing = [op for op in program.ops if getattr(op, "requant", None) is not None]
    assert [d.name for d in differences] == [op.name for op in requantizing]
    assert all(d.elements > 0 for d in differences)
    assert [(d.name, d.differing) for d in differences] == [(d.name, 0) for d in differences]


@given(dyadic_configs())
def test_dyadic_programs_are_exact(config):
    """The dyadic programs are what they claim: every (m, n) equals the real M bit for bit, and
    the add's integer weights equal 2^14 times the scale ratios exactly."""
    program = dyadic_program(config)
    for op in program.ops:
        if getattr(op, "requant", None) is None:
            continue
        s_x, s_y = program.tensor(op.inputs[0]).quant.scale, program.tensor(op.output).quant.scale
        if op.kind in (OpKind.CONV2D, OpKind.LINEAR):
            real = s_x * op.weight_scale / s_y
        elif op.kind is OpKind.ADD:
            s_b = program.tensor(op.input_b).quant.scale
            s_max = max(s_x, s_b)
            assert (op.weight_a * s_max, op.weight_b * s_max) == (2**14 * s_x, 2**14 * s_b)
            real = np.array([s_max / (2**14 * s_y)])
        elif op.kind is OpKind.CONCAT:
            real = np.concatenate([np.full(program.tensor(name).channels, program.tensor(name).quant.scale / s_y)
                                   for name in op.inputs])
        else:
            shape = program.tensor(op.input).shape
            count = op.kernel_size[0] * op.kernel_size[1] if op.kind is OpKind.AVGPOOL2D else shape[1] * shape[2]
            real = np.array([s_x / (count * s_y)])
        assert np.array_equal(dyadic_value(op.requant.multiplier, op.requant.shift), real), op.name


def _one_third_program():
    """x -> linear with M = s_x * s_w / s_y = 1/3 (not dyadic) -> 8-bit levels, floor borders."""
    builder = ProgramBuilder("x", (1,), QuantParams(8, False, 1.0, 0), BorderTable.nearest(8))
    out = builder.linear("third", "x", np.array([[1]]), 2, [1.0 / 3.0], np.array([0]),
                         QuantParams(8, False, 1.0, 0), BorderTable(8, np.array([[256]])))
    return builder.build(out)


def test_31_bit_multiplier_differences_are_measured():
    """With M = 1/3 the 31-bit m is just below 1/3, so floor(3k * M) is k - 1 on the datapath and
    k in the float model: exactly the 85 positive multiples of 3 in 0..255 differ, by one level."""
    program = _one_third_program()
    levels = np.arange(256, dtype=np.int64)[:, None]
    result = Simulator(program, Backend.REFERENCE).run(levels, keep_tensors=True)
    (difference,) = measure(program, result.tensors)
    assert (difference.elements, difference.differing, difference.max_level_difference) == (256, 85, 1)


def test_measure_detects_a_changed_level():
    """A datapath tensor with one level changed by 2 shows as one differing element, 2 levels
    apart, in that layer; only the layer that reads it ("add") may also change."""
    program = dyadic_program()
    tensors = _run(program, batch=2).tensors
    tensors["conv2"] = tensors["conv2"].copy()
    q = program.tensor("conv2").quant
    tensors["conv2"].flat[5] += 2 if tensors["conv2"].flat[5] <= q.qmax - 2 else -2
    by_name = {d.name: d for d in measure(program, tensors)}
    assert (by_name["conv2"].differing, by_name["conv2"].max_level_difference) == (1, 2)
    assert all(d.differing == 0 for name, d in by_name.items() if name not in ("conv2", "add"))


def test_realistic_multipliers_differ_by_at_most_one_level():
    """On a synthetic ResNet (non-dyadic scales) the float model and datapath differ by at most one
    level anywhere, the size of error a 31-bit M and a 14-bit add ratio can cause."""
    program = synthetic_resnet(SyntheticConfig(widths=(8, 16), blocks=(1, 1), input_shape=(3, 16, 16)))
    differences = measure(program, _run(program, batch=4).tensors)
    assert {d.kind for d in differences} == {OpKind.CONV2D, OpKind.ADD, OpKind.GLOBAL_AVGPOOL}
    assert max(d.max_level_difference for d in differences) <= 1


def test_product_of_dyadic_scales_has_no_differences():
    """D.16: with power-of-two scales ``M = s_a s_b / s_y`` is exact, and the float model of the
    product (real values multiplied in float64, then (1)-(4)) equals the datapath on every element,
    with learned per-channel borders; both backends give the same integers."""
    qa, qb, out = QuantParams(8, False, 2.0**-4, 100), QuantParams(6, True, 2.0**-3, 3), QuantParams(8, True, 2.0**-7, -5)
    b = ProgramBuilder("x", (3, 6, 6), qa, BorderTable.nearest(8))
    pooled = b.global_avgpool("pool", "x", qb, BorderTable(8, [[40], [128], [250]]))
    y = b.mul("scale", "x", pooled, out, BorderTable(8, np.random.default_rng(0).integers(1, 257, (3, 255))))
    program = b.build(y)
    result = _run(program, batch=4)
    assert {d.name: d.differing for d in measure(program, result.tensors)} == {"pool": 0, "scale": 0}
    assert np.array_equal(Simulator(program, Backend.NUMBA).run(np.random.default_rng(0).standard_normal((4, 3, 6, 6))).output,
                          result.output)
    assert np.unique(result.output).size > 20
