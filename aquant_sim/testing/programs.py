"""Hypothesis strategies for random small integer ops and programs.

They draw what the datapath must handle: operand widths 2..8, signed and unsigned activations
with non-zero zero-points, every border granularity (``BorderGranularity.table_shape``), shared
and per-channel multipliers with shifts ``n - F`` from the most negative the accumulator width
allows (left shifts) to large right shifts, every requantizer variant (BORDER, GEMMLOWP, FP32 and
FLOAT64 on every requantizing op; FP32_ADD and, on 8-bit tensors, TFLITE_ADD on residual adds;
TFLITE_AVGPOOL on unpadded average pooling; TFLITE_MEAN on global average pooling), both
overflow policies and accumulators narrow enough to overflow, weight zero-points (symmetric and not), conv with stride, padding
(symmetric and not), dilation, groups and depthwise, linear, residual add, concat, max and
average pooling, global average pooling, flatten, clamps, lookup tables (one row or one per
channel, any entries on the output grid) and elementwise products (same shape, or one value per
channel).

Ops are constructed directly (not through ``ProgramBuilder``) so that multipliers, shifts and
add weights are free integers rather than derived from scales; ``Program`` validates them.
Integer inputs are drawn with a numpy generator seeded by hypothesis (shrinkable, cheap).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from aquant_sim.program import (
    AccumulatorParams, Add, AvgPool2d, BorderGranularity, BorderTable, Clamp, Concat, Conv2d, Flatten, GlobalAvgPool, Linear,
    Lut, MaxPool2d, Mul, Program, QuantParams, Requantizer, Tensor,
)
from aquant_sim.rounding import (
    FLOAT32_MANTISSA_BITS, FLOAT64_MULTIPLIER_RANGE, FLOAT64_SHIFT_RANGE, FP32_ADD_SHIFT_RANGE, MAX_ZERO_OFFSET, MULTIPLIER_BITS,
    TFLITE_AVGPOOL_MULTIPLIER, OverflowPolicy, RequantVariant, gemmlowp_shift_range, integer_range, scaled_shift_range,
    tflite_mean_left_shift,
)
from aquant_sim.testing.strategies import tflite_add_pairs

ACT_BITS = st.integers(2, 8)
WEIGHT_BITS = st.integers(2, 8)
ACCUMULATOR_BITS = st.sampled_from([8, 10, 12, 16, 20, 24, 32])
"""Narrow widths overflow on purpose; 32 is the common case."""
FRAC_BITS = st.integers(1, 12)
OVERFLOW = st.sampled_from(list(OverflowPolicy))
GRANULARITY = st.sampled_from(list(BorderGranularity))
MAX_RIGHT_SHIFT = 46
"""Largest ``n - F`` drawn: beyond ~40 every small sum requantizes to the zero-point."""


@st.composite
def quant_params(draw, bits=ACT_BITS) -> QuantParams:
    """A b-bit activation format: signed or not, any zero-point on the grid."""
    b, signed = draw(bits), draw(st.booleans())
    qmin, qmax = integer_range(b, signed)
    zero = draw(st.one_of(st.just(0 if signed else qmin), st.integers(qmin, qmax)))
    return QuantParams(b, signed, draw(st.floats(2**-8, 4.0)), zero)


@st.composite
def border_tables(draw, channels: int, quant: QuantParams, frac_bits=FRAC_BITS) -> BorderTable:
    """A border table of a random granularity; values anywhere in [1, 2^F]."""
    f = draw(frac_bits)
    shape = draw(GRANULARITY).table_shape(channels, quant.bits)
    seed = draw(st.integers(0, 2**32 - 1))
    values = np.random.default_rng(seed).integers(1, (1 << f) + 1, size=shape)
    return BorderTable(f, values)


VARIANTS = st.sampled_from([RequantVariant.BORDER, RequantVariant.BORDER, RequantVariant.GEMMLOWP, RequantVariant.FP32,
                            RequantVariant.FLOAT64])
"""Requantizer variants drawn by :func:`requantizers`: two fifths this project's (6)-(8), the rest
the runtimes' variants that requantize any accumulator. The variants of one op kind each are
drawn by that op's strategy: FP32_ADD and TFLITE_ADD by :func:`adds`, TFLITE_AVGPOOL by
:func:`avgpool_ops`, TFLITE_MEAN by :func:`global_avgpool_requantizers`."""
FLOAT64_SHIFT_SPAN = 40
"""FLOAT64's drawn ``n`` reach ``53 + 40`` (``E`` from about 1 to ``2^-40``); larger ones give 0."""


def _variant_shift_range(variant: RequantVariant, accumulator_bits: int, frac_bits: int) -> tuple[int, int]:
    """The drawn ``n`` range: D.6's for BORDER (offset by F), the variant's own otherwise, all
    capped at ``MAX_RIGHT_SHIFT`` (+ F) where sums still land on the grid."""
    if variant is RequantVariant.BORDER:
        return scaled_shift_range(accumulator_bits)[0] + frac_bits, MAX_RIGHT_SHIFT + frac_bits
    if variant is RequantVariant.GEMMLOWP:
        return gemmlowp_shift_range(accumulator_bits)[0], MAX_RIGHT_SHIFT
    if variant is RequantVariant.FLOAT64:
        return FLOAT64_SHIFT_RANGE[0], FLOAT64_SHIFT_RANGE[0] + FLOAT64_SHIFT_SPAN
    return 0, MAX_RIGHT_SHIFT


@st.composite
def requantizers(draw, channels: int, quant: QuantParams, accumulator_bits: int, variants=VARIANTS) -> Requantizer:
    """Shared or per-channel ``m`` in [2^30, 2^31) and shifts over the range the drawn variant
    allows: for BORDER, ``n - F`` from the smallest that D.6 allows (``scaled_shift_range(A)``,
    negative: a left shift) to ``MAX_RIGHT_SHIFT``, with a border table for ``quant``; GEMMLOWP,
    FP32 (24-bit multipliers, exact float32 scales) and FLOAT64 (53-bit multipliers, ``E <= 1``)
    carry the nearest table."""
    variant = draw(variants)
    borders = draw(border_tables(channels, quant)) if variant.has_fraction else BorderTable.nearest(draw(FRAC_BITS))
    count = draw(st.sampled_from([1, channels]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    multiplier = rng.integers(*(FLOAT64_MULTIPLIER_RANGE if variant is RequantVariant.FLOAT64 else (1 << 30, 1 << 31)), size=count)
    if variant is RequantVariant.FP32:
        multiplier &= ~np.int64((1 << (MULTIPLIER_BITS - FLOAT32_MANTISSA_BITS)) - 1)
    # Centre the shifts where typical sums land on the grid; the extremes are still drawn.
    smallest, largest = _variant_shift_range(variant, accumulator_bits, borders.frac_bits)
    centre = draw(st.integers(smallest, largest))
    low, high = max(smallest, centre - 3), min(largest, centre + 3)
    shift = rng.integers(low, high + 1, size=count)
    return Requantizer(multiplier, shift, borders, variant)


@st.composite
def fp32_add_requantizers(draw) -> Requantizer:
    """The FP32_ADD requantizer of an add: two float32 ratios (24-bit ``m``) from ``2^-12`` to
    ``2^12`` (``n`` from 19 to 43), more often near 1, the nearest table."""
    seed = draw(st.integers(0, 2**32 - 1))
    multiplier = np.random.default_rng(seed).integers(1 << 30, 1 << 31, size=2)
    multiplier &= ~np.int64((1 << (MULTIPLIER_BITS - FLOAT32_MANTISSA_BITS)) - 1)
    shift = [draw(st.one_of(st.integers(29, 33), st.integers(FP32_ADD_SHIFT_RANGE[0], 43))) for _ in range(2)]
    return Requantizer(multiplier, np.array(shift), BorderTable.nearest(draw(FRAC_BITS)), RequantVariant.FP32_ADD)


@st.composite
def tflite_add_requantizers(draw) -> Requantizer:
    """The TFLITE_ADD requantizer of an add of 8-bit tensors: the three pairs of
    :func:`aquant_sim.testing.strategies.tflite_add_pairs`, the nearest table."""
    multiplier, shift = draw(tflite_add_pairs())
    return Requantizer(np.array(multiplier), np.array(shift), BorderTable.nearest(draw(FRAC_BITS)), RequantVariant.TFLITE_ADD)


@st.composite
def adds(draw, name: str, input_a: str, input_b: str, output: str, channels: int, out_quant: QuantParams,
         accumulator_bits: int, eight_bit: bool = False) -> Add:
    """A residual add: D.9 with weights in [1, 2^16) and a requantizer of :data:`VARIANTS`, or
    FP32_ADD (weights 1) with an offset of 0, 128 or any in [0, 2^8], or, where ``eight_bit``
    (both inputs and the output 8-bit), TFLITE_ADD (weights 1): one in three each."""
    choice = draw(st.integers(0, 2))
    if choice == 0:
        offset = draw(st.one_of(st.sampled_from([0, 128]), st.integers(0, MAX_ZERO_OFFSET)))
        return Add(name, input_a, input_b, output, 1, 1, draw(fp32_add_requantizers()), offset)
    if choice == 1 and eight_bit:
        return Add(name, input_a, input_b, output, 1, 1, draw(tflite_add_requantizers()))
    weights = st.one_of(st.integers(1, 4), st.integers(1, (1 << 16) - 1))
    return Add(name, input_a, input_b, output, draw(weights), draw(weights),
               draw(requantizers(channels, out_quant, accumulator_bits)))


def random_levels(seed: int, shape: tuple[int, ...], quant: QuantParams) -> np.ndarray:
    """Uniform int32 levels in ``[qmin, qmax]``."""
    return np.random.default_rng(seed).integers(quant.qmin, quant.qmax + 1, size=shape).astype(np.int32)


@dataclass(frozen=True)
class OpCase:
    """One op with its input formats, output format and integer input batches."""

    op: object
    inputs: tuple[np.ndarray, ...]
    in_quants: tuple[QuantParams, ...]
    out_quant: QuantParams
    accumulator_bits: int


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def conv_geometry(draw, channels: int, height: int, width: int) -> dict:
    """Kernel, stride, padding (before and after: symmetric half the time), dilation and groups
    (depthwise included) that fit the input."""
    geometry = {}
    for name in ("stride", "padding", "dilation"):
        geometry[name] = (draw(st.integers(1, 2)) if name != "padding" else draw(st.integers(0, 2)),) * 2
    symmetric = draw(st.booleans())
    geometry["padding_end"] = geometry["padding"] if symmetric else (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    kernel = []
    for size, pad, end, dil in zip((height, width), geometry["padding"], geometry["padding_end"], geometry["dilation"]):
        largest = (size + pad + end - 1) // dil + 1
        kernel.append(draw(st.integers(1, min(3, largest))))
    groups = draw(st.sampled_from(_divisors(channels)))
    out_channels = groups * draw(st.integers(1, 3))
    return dict(geometry, kernel=tuple(kernel), groups=groups, out_channels=out_channels)


@st.composite
def _weights(draw, shape: tuple[int, ...], bits: int, seed: int) -> np.ndarray:
    lo, hi = integer_range(bits, signed=True)
    extreme = draw(st.booleans())
    rng = np.random.default_rng(seed)
    if extreme:
        return rng.choice(np.array([lo, hi]), size=shape)
    return rng.integers(lo, hi + 1, size=shape)


@st.composite
def weight_zero_points(draw, channels: int, bits: int) -> np.ndarray:
    """Per-output-channel weight zero-points ``z_w`` (contract (5)): all 0 (symmetric) a third
    of the time, otherwise random in the weight range with its two limits often present."""
    lo, hi = integer_range(bits, signed=True)
    choice = draw(st.sampled_from(["symmetric", "random", "extreme"]))
    if choice == "symmetric":
        return np.zeros(channels, dtype=np.int64)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if choice == "extreme":
        return rng.choice(np.array([lo, hi, 0]), size=channels)
    return rng.integers(lo, hi + 1, size=channels)


@st.composite
def _bias(draw, channels: int, accumulator_bits: int, seed: int) -> np.ndarray:
    lo, hi = integer_range(accumulator_bits, signed=True)
    span = draw(st.sampled_from([0, 16, 1 << 12, hi]))
    return np.random.default_rng(seed).integers(max(lo, -span), min(hi, span) + 1, size=channels)


@st.composite
def conv_cases(draw, batch=st.integers(1, 2), requant=True) -> OpCase:
    """A Conv2d over a small random batch (N <= 2, C <= 6, H, W <= 7)."""
    in_q = draw(quant_params())
    out_q = draw(quant_params())
    a = draw(ACCUMULATOR_BITS)
    c, h, w = draw(st.integers(1, 6)), draw(st.integers(1, 7)), draw(st.integers(1, 7))
    g = draw(conv_geometry(c, h, w))
    wb, seed = draw(WEIGHT_BITS), draw(st.integers(0, 2**32 - 1))
    weight = draw(_weights((g["out_channels"], c // g["groups"], *g["kernel"]), wb, seed))
    op = Conv2d(
        "conv", "x", "y", weight, wb, np.ones(g["out_channels"]), draw(_bias(g["out_channels"], a, seed)),
        draw(requantizers(g["out_channels"], out_q, a)) if requant else None,
        g["stride"], g["padding"], g["dilation"], g["groups"], draw(weight_zero_points(g["out_channels"], wb)),
        g["padding_end"],
    )
    x = random_levels(seed, (draw(batch), c, h, w), in_q)
    return OpCase(op, (x,), (in_q,), out_q, a)


@st.composite
def linear_cases(draw, requant=True) -> OpCase:
    """A Linear over a small random batch (N <= 3, features <= 40)."""
    in_q, out_q, a = draw(quant_params()), draw(quant_params()), draw(ACCUMULATOR_BITS)
    i, o = draw(st.integers(1, 40)), draw(st.integers(1, 8))
    wb, seed = draw(WEIGHT_BITS), draw(st.integers(0, 2**32 - 1))
    op = Linear("fc", "x", "y", draw(_weights((o, i), wb, seed)), wb, np.ones(o), draw(_bias(o, a, seed)),
                draw(requantizers(o, out_q, a)) if requant else None, draw(weight_zero_points(o, wb)))
    return OpCase(op, (random_levels(seed, (draw(st.integers(1, 3)), i), in_q),), (in_q,), out_q, a)


@st.composite
def feature_maps(draw, quant: QuantParams, max_size: int = 6) -> np.ndarray:
    """An (N, C, H, W) int32 batch of levels of ``quant``."""
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 4)), draw(st.integers(1, max_size)), draw(st.integers(1, max_size)))
    return random_levels(draw(st.integers(0, 2**32 - 1)), shape, quant)


@st.composite
def add_cases(draw) -> OpCase:
    """A residual Add of two same-shaped maps with different formats (:func:`adds`), half the
    time all three 8-bit."""
    bits = st.just(8) if draw(st.booleans()) else ACT_BITS
    qa, qb, out_q, a = draw(quant_params(bits)), draw(quant_params(bits)), draw(quant_params(bits)), draw(ACCUMULATOR_BITS)
    x = draw(feature_maps(qa))
    y = random_levels(draw(st.integers(0, 2**32 - 1)), x.shape, qb)
    op = draw(adds("add", "a", "b", "y", x.shape[1], out_q, a, eight_bit=all(q.bits == 8 for q in (qa, qb, out_q))))
    return OpCase(op, (x, y), (qa, qb), out_q, a)


@st.composite
def concat_cases(draw) -> OpCase:
    """A Concat of two maps of the same height and width, with different channel counts and
    formats, requantized by any variant but FP32_ADD; a third of the time both inputs share the
    output's format and the requantizer is ``M = 1`` (a copy)."""
    qa, qb, out_q, a = draw(quant_params()), draw(quant_params()), draw(quant_params()), draw(ACCUMULATOR_BITS)
    copy = draw(st.integers(0, 2)) == 0
    if copy:
        qa = qb = out_q
    x = draw(feature_maps(qa))
    y = random_levels(draw(st.integers(0, 2**32 - 1)), (x.shape[0], draw(st.integers(1, 4)), *x.shape[2:]), qb)
    channels = x.shape[1] + y.shape[1]
    if copy:
        requant = Requantizer(np.array([1 << 30]), np.array([30]), draw(border_tables(channels, out_q)))
    else:
        requant = draw(requantizers(channels, out_q, a))
    return OpCase(Concat("cat", "a", "b", "y", requant), (x, y), (qa, qb), out_q, a)


@st.composite
def pool_windows(draw, height: int, width: int, dilated: bool, per_side: bool = False) -> dict:
    """Kernel, stride, padding (at most half the kernel) and dilation that fit the input; with
    ``per_side`` also ``padding_end`` (max pooling's padding after the input: the same as
    ``padding`` half the time, else drawn per axis, at most half the kernel)."""
    kernel, padding, dilation = [], [], []
    for size in (height, width):
        d = draw(st.integers(1, 2)) if dilated else 1
        k = draw(st.integers(1, min(3, (size - 1) // d + 1)))
        kernel.append(k)
        padding.append(draw(st.integers(0, k // 2)))
        dilation.append(d)
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    window = dict(kernel_size=tuple(kernel), stride=stride, padding=tuple(padding), dilation=tuple(dilation))
    if per_side:
        symmetric = draw(st.booleans())
        window["padding_end"] = window["padding"] if symmetric else tuple(draw(st.integers(0, k // 2)) for k in kernel)
    return window


@st.composite
def maxpool_cases(draw) -> OpCase:
    """A MaxPool2d (padding holds qmin, before and after the input drawn apart; dilation allowed)."""
    q = draw(quant_params())
    x = draw(feature_maps(q))
    window = draw(pool_windows(x.shape[2], x.shape[3], dilated=True, per_side=True))
    return OpCase(MaxPool2d("pool", "x", "y", **window), (x,), (q,), q, 32)


@st.composite
def avgpool_ops(draw, name: str, source: Tensor, output: str, accumulator_bits: int) -> tuple[AvgPool2d, QuantParams]:
    """An AvgPool2d of ``source`` and its output format: two thirds with padding counted and a
    requantizer of :data:`VARIANTS` to any format, one third TFLite's average (TFLITE_AVGPOOL: no
    padding, the output at the input's zero-point, bits and signedness, any scale)."""
    window = draw(pool_windows(*source.shape[1:], dilated=False))
    del window["dilation"]
    if draw(st.integers(0, 2)) == 0:
        quant = source.quant
        out_q = QuantParams(quant.bits, quant.signed, draw(st.floats(2**-8, 4.0)), quant.zero_point)
        requant = Requantizer(np.array([TFLITE_AVGPOOL_MULTIPLIER[0]]), np.array([TFLITE_AVGPOOL_MULTIPLIER[1]]),
                              BorderTable.nearest(draw(FRAC_BITS)), RequantVariant.TFLITE_AVGPOOL)
        window["padding"] = (0, 0)
    else:
        out_q = draw(quant_params())
        requant = draw(requantizers(source.channels, out_q, accumulator_bits))
    return AvgPool2d(name, source.name, output, requant=requant, **window), out_q


@st.composite
def avgpool_cases(draw) -> OpCase:
    """An AvgPool2d (:func:`avgpool_ops`)."""
    q, a = draw(quant_params()), draw(ACCUMULATOR_BITS)
    x = draw(feature_maps(q))
    op, out_q = draw(avgpool_ops("pool", Tensor("x", x.shape[1:], q), "y", a))
    return OpCase(op, (x,), (q,), out_q, a)


@st.composite
def global_avgpool_requantizers(draw, source: Tensor, out_quant: QuantParams, accumulator_bits: int) -> Requantizer:
    """The requantizer of a global average pooling of ``source``: two thirds one of
    :data:`VARIANTS`, one third TFLITE_MEAN, one pair with ``n`` from the smallest whose left shift
    (30) keeps the sum of ``H * W`` levels within int32, often near 31 (``M`` near 1)."""
    if draw(st.integers(0, 2)):
        return draw(requantizers(source.channels, out_quant, accumulator_bits))
    _, h, w = source.shape
    smallest = next(n for n in range(63) if (source.quant.levels * h * w) << tflite_mean_left_shift(h * w, n) < 1 << 31)
    shift = draw(st.one_of(st.integers(max(smallest, 27), max(smallest, 35)), st.integers(smallest, 62)))
    multiplier = draw(st.integers(1 << 30, (1 << 31) - 1))
    return Requantizer(np.array([multiplier]), np.array([shift]), BorderTable.nearest(draw(FRAC_BITS)), RequantVariant.TFLITE_MEAN)


@st.composite
def global_avgpool_cases(draw) -> OpCase:
    """A GlobalAvgPool ending in a requantizer (:func:`global_avgpool_requantizers`)."""
    q, out_q, a = draw(quant_params()), draw(quant_params()), draw(ACCUMULATOR_BITS)
    x = draw(feature_maps(q))
    requant = draw(global_avgpool_requantizers(Tensor("x", x.shape[1:], q), out_q, a))
    return OpCase(GlobalAvgPool("gap", "x", "y", requant), (x,), (q,), out_q, a)


@st.composite
def clamp_bounds(draw, channels: int, quant: QuantParams) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel or shared ``lo <= hi`` within the grid."""
    count = draw(st.sampled_from([1, channels]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ends = np.sort(rng.integers(quant.qmin, quant.qmax + 1, size=(count, 2)), axis=1)
    return ends[:, 0], ends[:, 1]


@st.composite
def clamp_cases(draw) -> OpCase:
    """A Clamp with per-channel or shared bounds."""
    q = draw(quant_params())
    x = draw(feature_maps(q))
    lo, hi = draw(clamp_bounds(x.shape[1], q))
    return OpCase(Clamp("clamp", "x", "y", lo, hi), (x,), (q,), q, 32)


@st.composite
def lut_tables(draw, channels: int, in_quant: QuantParams, out_quant: QuantParams) -> np.ndarray:
    """A table of ``2^b`` entries per row for ``in_quant``'s levels, one row or one per channel,
    entries anywhere on ``out_quant``'s grid."""
    rows = draw(st.sampled_from([1, channels]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.integers(out_quant.qmin, out_quant.qmax + 1, size=(rows, in_quant.levels + 1))


@st.composite
def lut_cases(draw) -> OpCase:
    """A Lut from one drawn format to another."""
    q, out_q = draw(quant_params()), draw(quant_params())
    x = draw(feature_maps(q))
    return OpCase(Lut("lut", "x", "y", draw(lut_tables(x.shape[1], q, out_q))), (x,), (q,), out_q, 32)


@st.composite
def mul_cases(draw) -> OpCase:
    """A Mul of two drawn formats, ``b`` of ``a``'s shape or one value per channel, with a
    requantizer of any variant."""
    qa, qb, out_q, a = draw(quant_params()), draw(quant_params()), draw(quant_params()), draw(ACCUMULATOR_BITS)
    x = draw(feature_maps(qa))
    shape = x.shape if draw(st.booleans()) else (x.shape[0], x.shape[1], 1, 1)
    y = random_levels(draw(st.integers(0, 2**32 - 1)), shape, qb)
    return OpCase(Mul("mul", "a", "b", "y", draw(requantizers(x.shape[1], out_q, a))), (x, y), (qa, qb), out_q, a)


class _ChainBuilder:
    """Appends ops to a chain of tensors, declaring each output with its shape and format."""

    def __init__(self, draw, shape, quant, accumulator_bits):
        self.draw, self.a = draw, accumulator_bits
        self.tensors = [Tensor("input", shape, quant)]
        self.ops = []

    @property
    def current(self) -> Tensor:
        return self.tensors[-1]

    def emit(self, op, shape, quant) -> Tensor:
        self.ops.append(op)
        self.tensors.append(Tensor(op.output, tuple(shape), quant))
        return self.tensors[-1]

    def name(self) -> str:
        return f"t{len(self.tensors)}"

    def conv(self, source: Tensor, shape_like: Tensor | None = None) -> Tensor:
        """A conv of ``source``; with ``shape_like`` a stride-1, same-padding conv to its shape."""
        draw, (c, h, w) = self.draw, source.shape
        if shape_like is None:
            g = draw(conv_geometry(c, h, w))
        else:
            g = dict(stride=(1, 1), padding=(1, 1), padding_end=(1, 1), dilation=(1, 1), kernel=(3, 3), groups=1,
                     out_channels=shape_like.shape[0])
        out_q = shape_like.quant if shape_like is not None else draw(quant_params())
        wb, seed = draw(WEIGHT_BITS), draw(st.integers(0, 2**32 - 1))
        o = g["out_channels"]
        op = Conv2d(self.name(), source.name, self.name(), draw(_weights((o, c // g["groups"], *g["kernel"]), wb, seed)),
                    wb, np.ones(o), draw(_bias(o, self.a, seed)), draw(requantizers(o, out_q, self.a)),
                    g["stride"], g["padding"], g["dilation"], g["groups"], draw(weight_zero_points(o, wb)), g["padding_end"])
        return self.emit(op, op.output_shape([source.shape]), out_q)

    def step(self, kind: str) -> None:
        draw, x = self.draw, self.current
        if kind == "conv":
            self.conv(x)
        elif kind == "clamp":
            lo, hi = draw(clamp_bounds(x.channels, x.quant))
            self.emit(Clamp(self.name(), x.name, self.name(), lo, hi), x.shape, x.quant)
        elif kind == "maxpool":
            op = MaxPool2d(self.name(), x.name, self.name(), **draw(pool_windows(*x.shape[1:], dilated=True, per_side=True)))
            self.emit(op, op.output_shape([x.shape]), x.quant)
        elif kind == "lut":
            out_q = draw(quant_params())
            self.emit(Lut(self.name(), x.name, self.name(), draw(lut_tables(x.channels, x.quant, out_q))), x.shape, out_q)
        elif kind == "gate":  # squeeze-excitation's product: x times its own global average
            pooled_q, out_q = draw(quant_params()), draw(quant_params())
            pooled = self.emit(GlobalAvgPool(self.name(), x.name, self.name(), draw(global_avgpool_requantizers(x, pooled_q, self.a))),
                               (x.channels, 1, 1), pooled_q)
            self.emit(Mul(self.name(), x.name, pooled.name, self.name(), draw(requantizers(x.channels, out_q, self.a))), x.shape, out_q)
        elif kind == "avgpool":
            op, out_q = draw(avgpool_ops(self.name(), x, self.name(), self.a))
            self.emit(op, op.output_shape([x.shape]), out_q)
        elif kind == "concat":  # dense: x's channels, then a conv of x's
            branch = self.conv(x, shape_like=x)
            out_q = draw(quant_params())
            requant = draw(requantizers(2 * x.channels, out_q, self.a))
            self.emit(Concat(self.name(), x.name, branch.name, self.name(), requant), (2 * x.channels, *x.shape[1:]), out_q)
        else:  # residual: add x to a same-shaped conv of x; half the time all 8-bit (TFLite's add)
            if draw(st.booleans()):
                if x.quant.bits != 8:  # a table to an 8-bit format first
                    eight = draw(quant_params(st.just(8)))
                    x = self.emit(Lut(self.name(), x.name, self.name(), draw(lut_tables(x.channels, x.quant, eight))), x.shape, eight)
                out_q = draw(quant_params(st.just(8)))
            else:
                out_q = draw(quant_params())
            branch = self.conv(x, shape_like=x)
            op = draw(adds(self.name(), branch.name, x.name, self.name(), x.channels, out_q, self.a,
                           eight_bit=x.quant.bits == out_q.bits == 8))
            self.emit(op, x.shape, out_q)


@st.composite
def programs(draw, max_ops: int = 4) -> Program:
    """A random valid program: a chain of conv, clamp, lookup table, max/avg pooling, residual,
    gate (x times its global average) and dense (concat) blocks on a
    small (C <= 4, H, W <= 8) input, ending either there or in global average pooling, flatten
    and a linear layer (requantized or leaving accumulators)."""
    in_q = draw(quant_params())
    a = draw(ACCUMULATOR_BITS)
    shape = (draw(st.integers(1, 4)), draw(st.integers(3, 8)), draw(st.integers(3, 8)))
    chain = _ChainBuilder(draw, shape, in_q, a)
    input_borders = draw(border_tables(shape[0], in_q))
    for kind in draw(st.lists(st.sampled_from(["conv", "clamp", "lut", "maxpool", "avgpool", "residual", "gate", "concat"]), min_size=1, max_size=max_ops)):
        chain.step(kind)
    if draw(st.booleans()):
        x = chain.current
        pooled_q = draw(quant_params())
        pooled = chain.emit(GlobalAvgPool(chain.name(), x.name, chain.name(), draw(global_avgpool_requantizers(x, pooled_q, a))),
                            (x.channels, 1, 1), pooled_q)
        flat = chain.emit(Flatten(chain.name(), pooled.name, chain.name()), (pooled.channels,), pooled_q)
        o, wb, seed = draw(st.integers(1, 6)), draw(WEIGHT_BITS), draw(st.integers(0, 2**32 - 1))
        requant = draw(st.booleans())
        out_q = draw(quant_params()) if requant else AccumulatorParams(np.ones(o))
        op = Linear(chain.name(), flat.name, chain.name(), draw(_weights((o, flat.channels), wb, seed)), wb, np.ones(o),
                    draw(_bias(o, a, seed)), draw(requantizers(o, out_q, a)) if requant else None,
                    draw(weight_zero_points(o, wb)))
        chain.emit(op, (o,), out_q)
    return Program(tuple(chain.tensors), tuple(chain.ops), "input", chain.current.name, input_borders, a, draw(OVERFLOW))


@st.composite
def program_inputs(draw, program: Program, batch=st.integers(1, 2)) -> np.ndarray:
    """An int32 batch of input levels for ``program``."""
    tensor = program.input_tensor
    return random_levels(draw(st.integers(0, 2**32 - 1)), (draw(batch), *tensor.shape), tensor.quant)
