"""Validation of the integer program: every malformed field raises ProgramError naming it."""

import dataclasses

import numpy as np
import pytest

from aquant_sim.errors import ProgramError
from aquant_sim.program import (
    OP_TYPES, AccumulatorParams, Add, AvgPool2d, BorderGranularity, BorderTable, Clamp, Conv2d, FieldKind, Flatten,
    GlobalAvgPool, Linear, Lut, MaxPool2d, Mul, Program, QuantParams, Requantizer, Tensor, op_fields,
)
from aquant_sim import rounding
from aquant_sim.rounding import OverflowPolicy, RequantVariant

Q4 = QuantParams(bits=4, signed=False, scale=0.1, zero_point=0)
Q8 = QuantParams(bits=8, signed=False, scale=1 / 32, zero_point=128)
NEAREST = BorderTable.nearest(8)


def requant(channels=1, multiplier=1 << 30, shift=36, borders=NEAREST):
    return Requantizer(np.full(channels, multiplier), np.full(channels, shift), borders)


def conv(**overrides):
    fields = dict(
        name="conv", input="x", output="y", weight=np.ones((4, 2, 3, 3), dtype=np.int8), weight_bits=4,
        weight_scale=np.full(4, 0.01), bias=np.zeros(4, dtype=np.int64), requant=requant(4), padding=1,
    )
    fields.update(overrides)
    return Conv2d(**fields)


def program(ops=None, tensors=None, **overrides):
    tensors = tensors or (Tensor("x", (2, 5, 5), Q8), Tensor("y", (4, 5, 5), Q4))
    fields = dict(tensors=tensors, ops=ops or (conv(),), input="x", output="y", input_borders=NEAREST)
    fields.update(overrides)
    return Program(**fields)


def test_valid_program_builds():
    """A well-formed one-conv program passes validation and resolves its tensors."""
    p = program()
    assert p.output_tensor.shape == (4, 5, 5)
    assert p.ops[0].padding == (1, 1)


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: QuantParams(bits=1, signed=False, scale=1.0, zero_point=0), "quant.bits"),
        (lambda: QuantParams(bits=17, signed=False, scale=1.0, zero_point=0), "quant.bits"),
        (lambda: QuantParams(bits=4, signed=False, scale=0.0, zero_point=0), "quant.scale"),
        (lambda: QuantParams(bits=4, signed=False, scale=float("nan"), zero_point=0), "quant.scale"),
        (lambda: QuantParams(bits=4, signed=True, scale=1.0, zero_point=8), "quant.zero_point"),
        (lambda: BorderTable(8, np.array([[0]])), "borders.values"),
        (lambda: BorderTable(8, np.array([[257]])), "borders.values"),
        (lambda: BorderTable(0, np.array([[1]])), "borders.frac_bits"),
        (lambda: BorderTable(8, np.array([0.5])), "borders.values"),
        (lambda: requant(multiplier=(1 << 30) - 1), "requant.multiplier"),
        (lambda: requant(multiplier=1 << 31), "requant.multiplier"),
        (lambda: conv(weight=np.full((4, 2, 3, 3), 8)), "weight"),
        (lambda: conv(weight=np.ones((4, 2, 3, 3), dtype=np.float32)), "weight"),
        (lambda: conv(weight_bits=1), "weight_bits"),
        (lambda: conv(weight_scale=np.full(3, 0.01)), "weight_scale"),
        (lambda: conv(bias=np.zeros(5, dtype=np.int64)), "bias"),
        (lambda: conv(groups=3), "groups"),
        (lambda: conv(stride=0), "stride"),
        (lambda: Clamp("c", "x", "y", np.array([3]), np.array([2])), "lo"),
        (lambda: MaxPool2d("m", "x", "y", 2, 2, padding=2), "padding"),
        (lambda: MaxPool2d("m", "x", "y", 3, 2, padding=1, padding_end=2), "padding_end"),
    ],
)
def test_malformed_fields_are_named(make, field):
    """Each malformed field raises ProgramError whose message names that field."""
    with pytest.raises(ProgramError, match=field.replace(".", r"\.")):
        make()


def test_dangling_tensor_reference_is_named():
    """An op reading an undeclared tensor names the op and the missing tensor."""
    with pytest.raises(ProgramError, match=r"op 'conv' \(conv2d\)\.input.*'ghost'"):
        program(ops=(conv(input="ghost"),))


def test_declared_shape_must_match_the_op():
    """A tensor declared with another shape than its op produces is rejected."""
    tensors = (Tensor("x", (2, 5, 5), Q8), Tensor("y", (4, 4, 4), Q4))
    with pytest.raises(ProgramError, match=r"declared \(4, 4, 4\)"):
        program(tensors=tensors)


def test_channel_mismatch_is_named():
    """A conv whose weight expects other input channels names its weight field."""
    tensors = (Tensor("x", (3, 5, 5), Q8), Tensor("y", (4, 5, 5), Q4))
    with pytest.raises(ProgramError, match=r"conv2d\)\.weight.*3"):
        program(tensors=tensors)


def test_border_table_shape_must_fit_channels_and_levels():
    """A border table must have 1 or C rows and 1 or 2^b - 1 columns."""
    bad_rows = BorderTable(8, np.full((3, 1), 128))
    with pytest.raises(ProgramError, match="requant.borders.values.*3 rows"):
        program(ops=(conv(requant=requant(4, borders=bad_rows)),))
    bad_levels = BorderTable(8, np.full((1, 7), 128))
    with pytest.raises(ProgramError, match="7 columns"):
        program(ops=(conv(requant=requant(4, borders=bad_levels)),))
    for granularity in BorderGranularity:
        table = BorderTable(8, np.full(granularity.table_shape(4, 4), 100))
        assert program(ops=(conv(requant=requant(4, borders=table)),)).ops[0].requant.borders.granularity is granularity


def test_shift_bounds_follow_the_accumulator_width():
    """n - F below A - 32 could overflow int64 in (6) and is rejected (D.6)."""
    with pytest.raises(ProgramError, match=r"requant\.shift.*\[0, 62\]"):
        program(ops=(conv(requant=requant(4, shift=7)),))
    assert program(ops=(conv(requant=requant(4, shift=0)),), accumulator_bits=24)


def test_bias_must_fit_the_accumulator():
    """A bias outside the A-bit range is rejected."""
    with pytest.raises(ProgramError, match="bias.*16-bit"):
        program(ops=(conv(bias=np.full(4, 1 << 15)),), accumulator_bits=16)


def test_program_settings_are_checked():
    """Accumulator widths outside 8..32 and non-enum overflow policies are rejected."""
    with pytest.raises(ProgramError, match="accumulator_bits"):
        program(accumulator_bits=40)
    with pytest.raises(ProgramError, match="overflow"):
        program(overflow="wrap")
    assert program(overflow=OverflowPolicy.SATURATE).overflow is OverflowPolicy.SATURATE


def test_graph_rules():
    """Tensors are produced once, read after being produced, and accumulators end the program."""
    with pytest.raises(ProgramError, match="never used"):
        program(tensors=(Tensor("x", (2, 5, 5), Q8), Tensor("y", (4, 5, 5), Q4), Tensor("z", (1,), Q4)))
    with pytest.raises(ProgramError, match="produced twice"):
        program(ops=(conv(), conv(name="conv2")))
    acc = Tensor("y", (4, 5, 5), AccumulatorParams(np.full(4, 0.1)))
    assert not program(tensors=(Tensor("x", (2, 5, 5), Q8), acc), ops=(conv(requant=None),)).output_tensor.is_quantized
    with pytest.raises(ProgramError, match="requant.*missing"):
        program(ops=(conv(requant=None),))


def test_pass_through_ops_keep_quantization():
    """Max pooling, flatten and clamp must declare the same quantization as their input."""
    tensors = (Tensor("x", (2, 4, 4), Q4), Tensor("y", (2, 2, 2), Q8))
    with pytest.raises(ProgramError, match="keeps its input's quantization"):
        program(tensors=tensors, ops=(MaxPool2d("pool", "x", "y", 2, 2),), input="x")


def test_max_pooling_pads_each_side_apart():
    """A max pooling's padding_end (None: its padding) pads after the input: TF's "SAME" 3x3/2 of a
    16 x 16 map, 0 before and 1 after, gives 8 x 8 (7 x 7 without the row and column after)."""
    same = MaxPool2d("m", "x", "y", 3, 2, padding=0, padding_end=(1, 1))
    assert same.output_shape([(2, 16, 16)]) == (2, 8, 8)
    assert MaxPool2d("m", "x", "y", 3, 2).output_shape([(2, 16, 16)]) == (2, 7, 7)
    assert MaxPool2d("m", "x", "y", 3, 2, padding=(1, 0)).padding_end == (1, 0)


def test_max_pooling_window_of_padding_alone_is_refused():
    """A dilated window wider than the input can skip it (taps -1 and 1 of a 1-row input padded
    1 on each side): refused, so that padding never wins; the same pooling of 3 rows is valid."""
    op = MaxPool2d("m", "x", "y", (2, 1), 1, padding=(1, 0), dilation=(2, 1))
    with pytest.raises(ProgramError, match=r"op 'm' \(maxpool2d\)\.dilation: window 0 along H reads only padding of an input of size 1"):
        op.output_shape([(1, 1, 4)])
    assert op.output_shape([(1, 3, 4)]) == (1, 3, 4)


def test_a_small_classifier_validates():
    """Global pooling, flatten and an accumulator-output linear chain together."""
    tensors = (
        Tensor("x", (2, 3, 3), Q8), Tensor("p", (2, 1, 1), Q4), Tensor("f", (2,), Q4),
        Tensor("logits", (3,), AccumulatorParams(np.full(3, 0.5))),
    )
    ops = (
        GlobalAvgPool("gap", "x", "p", requant()),
        Flatten("flat", "p", "f"),
        Linear("fc", "f", "logits", np.ones((3, 2), dtype=np.int8), 4, np.full(3, 0.1), np.zeros(3, dtype=np.int64), None),
    )
    p = Program(tensors, ops, "x", "logits", NEAREST)
    assert [op.kind.value for op in p.ops] == ["global_avgpool", "flatten", "linear"]


@pytest.mark.parametrize("frac_bits", [1, 8, 16])
def test_nearest_table_is_one_half_border(frac_bits):
    """BorderTable.nearest(F) is one per-tensor border B = 2^(F-1), i.e. beta = 1/2, and is_nearest."""
    table = BorderTable.nearest(frac_bits)
    assert table.values.shape == (1, 1) and int(table.values[0, 0]) == 1 << (frac_bits - 1)
    assert table.beta[0, 0] == 0.5 and table.is_nearest and table.granularity is BorderGranularity.TENSOR


def test_every_op_field_declares_its_kind():
    """Every op type declares a FieldKind for each field but name (the artifact schema is derived
    from these declarations), and the kinds cover every op's constructor arguments."""
    for op_type in OP_TYPES.values():
        declared = [spec.name for spec in op_fields(op_type)]
        assert declared == [f.name for f in dataclasses.fields(op_type) if f.name != "name"]
        assert all(isinstance(spec.kind, FieldKind) for spec in op_fields(op_type))


@pytest.mark.parametrize("field_name, value, message", [
    ("stride", (0, 1), r"stride: expected integers >= 1"),
    ("groups", 1.0, r"groups: expected an integer"),
    ("input", "", r"input: expected a tensor name"),
    ("requant", "none", r"requant: must be a Requantizer or None"),
])
def test_declared_field_kinds_are_checked(field_name, value, message):
    """The one field validator rejects a wrong type or bound, naming the op and the field."""
    conv = Conv2d("c", "x", "y", np.ones((1, 1, 1, 1), dtype=np.int8), 4, np.ones(1), np.zeros(1, dtype=np.int64), None)
    with pytest.raises(ProgramError, match=rf"op 'c' \(conv2d\)\.{message}"):
        dataclasses.replace(conv, **{field_name: value})


@pytest.mark.parametrize("z_w, message", [
    (np.array([0, 0, 0, 8]), r"weight_zero_point: values must lie in the 4-bit weight range \[-8, 7\]"),
    (np.zeros(3, dtype=np.int64), r"weight_zero_point: must have 4 entries"),
    (np.zeros(4), r"weight_zero_point: expected an integer array"),
])
def test_weight_zero_point_checked(z_w, message):
    """z_w is one integer per output channel within the weight's range."""
    with pytest.raises(ProgramError, match=message):
        conv(weight_zero_point=z_w)


def test_weight_zero_point_defaults_to_symmetric():
    """Without z_w a conv has zeros: the symmetric grid."""
    assert conv().weight_zero_point.tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("make, field", [
    (lambda: Linear("fc", "x", "y", np.ones((2, 3), dtype=np.int64), 4, np.ones(2), None, None), r"\(linear\)\.bias"),
    (lambda: Clamp("c", "x", "y", None, np.ones(2, dtype=np.int64)), r"\(clamp\)\.lo"),
])
def test_none_for_a_required_vector_is_a_program_error(make, field):
    """A vector field without a filled-in default (bias, clamp bounds) refuses None with a
    ProgramError naming the field (regression: it passed validation and raised AttributeError)."""
    with pytest.raises(ProgramError, match=field):
        make()


def test_runtime_variants_carry_no_borders():
    """GEMMLOWP and FP32 have no fraction for borders: only the single round-to-nearest border is
    accepted (and not read), any other table is refused naming the variant."""
    for variant in (RequantVariant.GEMMLOWP, RequantVariant.FP32):
        assert Requantizer(np.array([1 << 30]), np.array([40]), BorderTable.nearest(4), variant).variant is variant
        with pytest.raises(ProgramError, match=f"requant.borders.*'{variant.value}' has no fraction"):
            Requantizer(np.array([1 << 30]), np.array([40]), BorderTable(4, np.array([[3]])), variant)
        with pytest.raises(ProgramError, match="no fraction"):
            Requantizer(np.array([1 << 30]), np.array([40]), BorderTable(4, np.full((1, 15), 8)), variant)


def test_fp32_variant_needs_an_exact_float32_scale():
    """FP32 multiplies by float32(M): m must have 24 significant bits and n keep M a normal float32."""
    with pytest.raises(ProgramError, match="low 7 bits"):
        Requantizer(np.array([(1 << 30) + 1]), np.array([40]), NEAREST, RequantVariant.FP32)
    with pytest.raises(ProgramError, match=r"n in \[-97, 156\]"):
        Requantizer(np.array([1 << 30]), np.array([157]), NEAREST, RequantVariant.FP32)
    m, n = rounding.float32_multiplier(np.float32(0.0123))
    assert rounding.float32_scale(m, n)[()] == np.float32(0.0123)


def test_gemmlowp_shift_keeps_the_left_shift_within_int32():
    """GEMMLOWP's left shift of an A-bit accumulator must stay within int32 (n >= A - 1) and its
    rounding shift within 31 bits (n <= 62), contract (10) and (12)."""
    gemmlowp = lambda shift: Requantizer(np.full(4, 1 << 30), np.full(4, shift), NEAREST, RequantVariant.GEMMLOWP)
    with pytest.raises(ProgramError, match=r"'gemmlowp' needs n in \[31, 62\]"):
        program(ops=(conv(requant=gemmlowp(30)),))
    with pytest.raises(ProgramError, match=r"\[31, 62\]"):
        program(ops=(conv(requant=gemmlowp(63)),))
    assert program(ops=(conv(requant=gemmlowp(23)),), accumulator_bits=24)


def fp32_add_requant(ratios=(0.5, 0.25)) -> Requantizer:
    m, n = rounding.float32_multiplier(np.array(ratios, dtype=np.float32))
    return Requantizer(m, n, NEAREST, RequantVariant.FP32_ADD)


def test_fp32_add_variant_is_checked():
    """FP32_ADD holds exactly the two float32 ratios, each below 2^12; its add has weights 1 and
    may carry an offset up to 2^8; an offset needs the variant; no other op takes it."""
    tensors = (Tensor("x", (4, 5, 5), Q8), Tensor("b", (4, 5, 5), Q4), Tensor("y", (4, 5, 5), Q4))
    residual = (conv(name="c", output="b", weight=np.ones((4, 4, 3, 3), dtype=np.int8)),)
    add = Add("add", "b", "x", "y", 1, 1, fp32_add_requant(), zero_offset=128)
    assert program(ops=residual + (add,), tensors=(*tensors[:2], tensors[2]))
    with pytest.raises(ProgramError, match="two ratios r_a, r_b; got 1 entries"):
        Requantizer(np.array([1 << 30]), np.array([31]), NEAREST, RequantVariant.FP32_ADD)
    with pytest.raises(ProgramError, match=r"'fp32_add' needs n in \[19, 156\]"):
        fp32_add_requant((4096.0, 1.0))
    with pytest.raises(ProgramError, match="low 7 bits"):
        Requantizer(np.array([1 << 30, (1 << 30) + 1]), np.array([31, 31]), NEAREST, RequantVariant.FP32_ADD)
    with pytest.raises(ProgramError, match="weight_a: variant 'fp32_add' reads no input weights"):
        Add("add", "b", "x", "y", 2, 1, fp32_add_requant())
    with pytest.raises(ProgramError, match="zero_offset: only variant 'fp32_add' reads an offset"):
        Add("add", "b", "x", "y", 1, 1, requant(), zero_offset=128)
    with pytest.raises(ProgramError, match="zero_offset: expected integers >= 0 and <= 256"):
        Add("add", "b", "x", "y", 1, 1, fp32_add_requant(), zero_offset=257)
    with pytest.raises(ProgramError, match="requant.variant: variant 'fp32_add' requantizes only an add"):
        program(ops=(conv(requant=fp32_add_requant()),))
    with pytest.raises(ProgramError, match="requantizes no accumulator"):
        rounding.requantize_variant(RequantVariant.FP32_ADD, np.zeros((1, 1)), [1 << 30], [31], 1, None, 0, 0, 255)


def _lut_program(table, out_quant=Q4, out_shape=(2, 5, 5)):
    tensors = (Tensor("x", (2, 5, 5), Q4), Tensor("y", out_shape, out_quant))
    return program(ops=(Lut("lut", "x", "y", table),), tensors=tensors)


def test_lut_validates_and_maps_levels():
    """A lookup table with one entry per input level, one row or one per channel, on the output
    grid, builds; the op keeps the input's shape."""
    assert _lut_program(np.arange(16)[None, ::-1]).ops[0].table.shape == (1, 16)
    assert _lut_program(np.full((2, 16), 255), out_quant=Q8).ops[0].table.shape == (2, 16)


@pytest.mark.parametrize("table, out_quant, message", [
    (np.zeros((1, 15), dtype=np.int64), Q4, "has 15 entries per row; must be 2^b = 16 for the 4-bit input 'x'"),
    (np.zeros((3, 16), dtype=np.int64), Q4, "has 3 rows; must be 1 or the channel count 2"),
    (np.full((1, 16), 16), Q4, "entries must be levels of the output in [0, 15], got [16, 16]"),
    (np.zeros(16, dtype=np.int64), Q4, "expected 2 dimensions"),
    (np.zeros((1, 16)), Q4, "expected an integer array"),
    (np.zeros((1, 16), dtype=np.int64), AccumulatorParams(np.ones(2)), "tensor 'y' must be quantized"),
])
def test_lut_table_is_checked(table, out_quant, message):
    """Each malformed table is a ProgramError naming the op, the field and what is wrong."""
    with pytest.raises(ProgramError) as error:
        _lut_program(table, out_quant)
    assert "op 'lut' (lut)" in str(error.value) and message in str(error.value)


def _mul_program(shape_b, shape_a=(2, 5, 5)):
    tensors = (Tensor("x", shape_a, Q4), Tensor("s", shape_b, Q8), Tensor("y", shape_a, Q4))
    ops = (GlobalAvgPool("pool", "x", "s", requant()) if shape_b == (2, 1, 1) else Lut("s", "x", "s", np.zeros((1, 16), dtype=np.int64)),
           Mul("mul", "x", "s", "y", requant()))
    return program(ops=ops, tensors=tensors)


def test_mul_takes_the_same_shape_or_one_value_per_channel():
    """``b`` of ``a``'s shape, or (C, 1, 1) of a (C, H, W) ``a``: the squeeze-excitation gate."""
    assert _mul_program((2, 5, 5)).tensor("y").shape == (2, 5, 5)
    assert _mul_program((2, 1, 1)).ops[1].inputs == ("x", "s")


def test_mul_of_other_shapes_is_refused():
    """A broadcast the datapath does not do (here a row vector) is named with both shapes."""
    tensors = (Tensor("x", (2, 5, 5), Q4), Tensor("s", (2, 5, 1), Q8), Tensor("y", (2, 5, 5), Q4))
    ops = (AvgPool2d("pool", "x", "s", (1, 5), (1, 5), requant()), Mul("mul", "x", "s", "y", requant()))
    with pytest.raises(ProgramError, match=r"op 'mul' \(mul\).input_b: shape \(2, 5, 1\) must equal input_a's \(2, 5, 5\)"):
        program(ops=ops, tensors=tensors)


NEAREST_1 = BorderTable.nearest(1)
S8 = QuantParams(bits=8, signed=True, scale=0.05, zero_point=-3)


def test_tflite_variants_are_checked():
    """TFLite's variants (contract (21)-(32)) each requantize only their op, within the ranges their
    int32 arithmetic needs: TFLITE_ADD three pairs on an 8-bit add, TFLITE_AVGPOOL an unread M = 1
    on an unpadded pool keeping the zero-point, TFLITE_MEAN a left shift that keeps the sum within
    int32, FLOAT64 a 53-bit significand with E <= 1."""
    add_requant = Requantizer(np.array([1 << 30] * 3), np.array([31, 32, 50]), NEAREST_1, RequantVariant.TFLITE_ADD)
    tensors = (Tensor("x", (4, 5, 5), S8), Tensor("b", (4, 5, 5), S8), Tensor("y", (4, 5, 5), S8))
    gemmlowp = Requantizer(np.full(4, 1 << 30), np.full(4, 40), NEAREST_1, RequantVariant.GEMMLOWP)
    residual = (conv(name="c", output="b", weight=np.ones((4, 4, 3, 3), dtype=np.int8), requant=gemmlowp),)
    assert program(ops=residual + (Add("add", "b", "x", "y", 1, 1, add_requant),), tensors=tensors)
    with pytest.raises(ProgramError, match="'tflite_add' holds three pairs"):
        Requantizer(np.array([1 << 30] * 3), np.array([31, 30, 50]), NEAREST_1, RequantVariant.TFLITE_ADD)
    with pytest.raises(ProgramError, match="weight_a: variant 'tflite_add' reads no input weights"):
        Add("add", "b", "x", "y", 2, 1, add_requant)
    with pytest.raises(ProgramError, match="inputs and output must be 8-bit"):
        program(ops=residual + (Add("add", "b", "x", "y", 1, 1, add_requant),),
                tensors=(*tensors[:2], Tensor("y", (4, 5, 5), Q4)))
    with pytest.raises(ProgramError, match="variant 'tflite_add' requantizes only a add"):
        program(ops=(conv(requant=add_requant),))

    pool_requant = Requantizer(np.array([1 << 30]), np.array([30]), NEAREST_1, RequantVariant.TFLITE_AVGPOOL)
    pooled = (Tensor("x", (4, 4, 4), S8), Tensor("y", (4, 2, 2), S8))
    assert program(ops=(AvgPool2d("p", "x", "y", (2, 2), (2, 2), pool_requant),), tensors=pooled)
    with pytest.raises(ProgramError, match="'tflite_avgpool' reads no multiplier"):
        Requantizer(np.array([1 << 30]), np.array([31]), NEAREST_1, RequantVariant.TFLITE_AVGPOOL)
    with pytest.raises(ProgramError, match="padding: variant 'tflite_avgpool' divides by the window size"):
        program(ops=(AvgPool2d("p", "x", "y", (3, 3), (2, 2), pool_requant, padding=(1, 1)),), tensors=pooled)
    with pytest.raises(ProgramError, match="keeps the input's zero-point"):
        program(ops=(AvgPool2d("p", "x", "y", (2, 2), (2, 2), pool_requant),),
                tensors=(pooled[0], Tensor("y", (4, 2, 2), dataclasses.replace(S8, zero_point=0))))

    mean = lambda shift: Requantizer(np.array([1 << 30]), np.array([shift]), NEAREST_1, RequantVariant.TFLITE_MEAN)
    averaged = (Tensor("x", (4, 64, 64), S8), Tensor("y", (4, 1, 1), S8))
    assert program(ops=(GlobalAvgPool("g", "x", "y", mean(25)),), tensors=averaged)
    assert program(ops=(GlobalAvgPool("g", "x", "y", mean(12)),), tensors=averaged)  # 255 * 4096 * 2^7 < 2^31
    with pytest.raises(ProgramError, match="sum of 4096 levels shifted left by 12"):
        program(ops=(GlobalAvgPool("g", "x", "y", mean(7)),), tensors=averaged)

    with pytest.raises(ProgramError, match=r"'float64' needs m \(a double's significand\) in \[2\^52, 2\^53\)"):
        Requantizer(np.array([1 << 30]), np.array([60]), NEAREST_1, RequantVariant.FLOAT64)
    with pytest.raises(ProgramError, match=r"'float64' needs n in \[53, 1074\]"):
        Requantizer(np.array([1 << 52]), np.array([52]), NEAREST_1, RequantVariant.FLOAT64)
    m, n = rounding.float64_multiplier(0.1)
    assert rounding.dyadic_value(m, n)[()] == 0.1
    for variant in (RequantVariant.TFLITE_ADD, RequantVariant.TFLITE_AVGPOOL):
        with pytest.raises(ProgramError, match=f"'{variant.value}'"):
            rounding.requantize_variant(variant, np.zeros((1, 1)), [1 << 30], [31], 1, None, 0, -128, 127)
