"""The integer program: a small, explicit, validated representation of a quantized network.

A program is a list of ops in execution order over named tensors. Tensor shapes exclude the
batch dimension: ``(C, H, W)`` for feature maps, ``(F,)`` for vectors. Every quantized tensor
has its own bits, signedness, scale and zero-point; every op that produces a new quantized
tensor from a sum or a product (conv2d, linear, add, average pooling, mul) ends in a
:class:`Requantizer`, the datapath's equations (6)-(8) with a border table. A lookup table
(lut: activations, constant multiples) maps input levels to output levels of a new
quantization. Max pooling, flatten and clamps (ReLU, ReLU6) are exact on integers and keep
their input's quantization.

Everything is checked at construction; errors are :class:`ProgramError` naming the op and the
field. The integer semantics of every op are written down in ``docs/datapath.md``.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass, field
from typing import ClassVar, Union

import numpy as np

from aquant_sim.errors import ProgramError
from aquant_sim.rounding import (
    FLOAT32_MANTISSA_BITS, FLOAT32_SHIFT_RANGE, FLOAT64_MULTIPLIER_RANGE, FLOAT64_SHIFT_RANGE, FP32_ADD_SHIFT_RANGE, MAX_FRAC_BITS, MAX_ZERO_OFFSET, MULTIPLIER_BITS,
    OverflowPolicy, RequantVariant, TFLITE_ADD_SHIFT_RANGE, TFLITE_AVGPOOL_MULTIPLIER, gemmlowp_shift_range, integer_range,
    nearest_borders, scaled_shift_range, tflite_mean_left_shift,
)

MIN_BITS, MAX_BITS = 2, 16
"""Operand widths (activations and weights) that the datapath supports."""

MIN_ACCUMULATOR_BITS, MAX_ACCUMULATOR_BITS = 8, 32
"""Accumulator widths: 32 at most so that ``acc * m`` (31-bit m) fits in int64, D.6."""

MAX_ADD_WEIGHT = 1 << 16
"""Residual-add input weights are integers in [1, 2^16), D.9."""

MAX_FIELD_INT = 1 << 16
"""The default upper bound of every integer op field (strides, paddings, dilations, pooling
windows, groups, widths): far above any real layer, and small enough that every product the
kernels form of them fits int64 (a dilation of 2^64 once reached a numba kernel and crashed it)."""

MAX_TENSOR_ELEMENTS = 1 << 28
"""The largest tensor, per sample, a program may declare or hold: also the bound on a window
op's padded input ``C * (H + 2 p_h) * (W + 2 p_w)``, so that the memory a simulation needs
follows from the declared tensors and not from a padding alone."""


def _fail(where: str, message: str) -> None:
    raise ProgramError(f"{where}: {message}")


def _int_array(value, where: str, ndim: int, dtype=np.int64) -> np.ndarray:
    """Convert to a C-contiguous integer array of the given rank without changing any value."""
    array = np.asarray(value)
    if array.ndim != ndim:
        _fail(where, f"expected {ndim} dimensions, got shape {array.shape}")
    if array.dtype.kind not in "iu":
        _fail(where, f"expected an integer array, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=dtype)


class FieldKind(enum.Enum):
    """What an op field holds, which is how the artifact stores it (``docs/artifact.md`` 3.5).
    Every op field but ``name`` declares its kind once, with :func:`op_field`; the artifact's
    reader and writer derive each op's manifest entries from these declarations."""

    TENSOR = "tensor"
    """The name of a tensor of the program (a string)."""
    INT = "int"
    """One integer."""
    PAIR = "pair"
    """Two integers, along H and along W."""
    WEIGHTS = "weights"
    """Signed weight integers of the op's ``weight_bits`` (stored int8 up to 8 bits, else int16)."""
    INT_VECTOR = "int vector"
    """A vector of integers that fit 32 signed bits (a table of them where the field's ``rank`` is 2)."""
    REAL_VECTOR = "real vector"
    """A vector of float64 reals."""
    REQUANT = "requant"
    """A :class:`Requantizer`."""
    OPTIONAL_REQUANT = "requant or null"
    """A :class:`Requantizer`, or None: the op leaves A-bit accumulators (program output only)."""


def op_field(kind: FieldKind, rank: int = 1, minimum: int = 0, maximum: int = MAX_FIELD_INT,
             since: int = 1, **options) -> dataclasses.Field:
    """Declare an op's dataclass field with its :class:`FieldKind`: ``rank`` of a weight array,
    ``[minimum, maximum]`` of an INT or of each integer of a PAIR (every integer is bounded:
    :data:`MAX_FIELD_INT` unless told), ``since`` the artifact
    format version that introduced it (older files lack it and get the default). ``options``
    go to :func:`dataclasses.field` (a default, for instance; a default of None means "filled
    in by the op's own validation")."""
    fill_in = "default" in options and options["default"] is None
    return field(metadata={"spec": OpField(kind, rank, minimum, maximum, since, fill_in)}, **options)


@dataclass(frozen=True)
class OpField:
    """The declaration of one op field: its kind, the rank of a weight array, the bounds of an
    integer and the artifact version that introduced it;
    ``name`` is set by :func:`op_fields`."""

    kind: FieldKind
    rank: int = 1
    minimum: int = 0
    maximum: int = MAX_FIELD_INT
    since: int = 1
    fill_in: bool = False
    """A vector whose default None the op's own validation replaces (the weight zero-points)."""
    name: str = ""

    def check(self, value, where: str):
        """``value`` converted to the field's type, or a :class:`ProgramError` naming ``where``.
        None passes for the optional requantizer and for a vector that the op fills in
        (``fill_in``); anywhere else it is an error like any other wrong value."""
        kind = self.kind
        if value is None and (kind is FieldKind.OPTIONAL_REQUANT or self.fill_in):
            return None
        if kind is FieldKind.TENSOR:
            if not isinstance(value, str) or not value:
                _fail(where, f"expected a tensor name, got {value!r:.60}")
            return value
        if kind is FieldKind.INT:
            return self._bounded(value, where)
        if kind is FieldKind.PAIR:
            pair = value if isinstance(value, (tuple, list)) else (value, value)
            if len(pair) != 2:
                _fail(where, f"expected two integers, got {value!r:.60}")
            return tuple(self._bounded(v, where) for v in pair)
        if kind in (FieldKind.WEIGHTS, FieldKind.INT_VECTOR):
            return _int_array(value, where, ndim=self.rank)
        if kind is FieldKind.REAL_VECTOR:
            array = np.asarray(value)
            if array.ndim != 1 or array.dtype.kind not in "iuf" or not np.all(np.isfinite(array)) or np.any(array <= 0):
                _fail(where, "must be a vector of finite positive reals")
            return np.ascontiguousarray(array, dtype=np.float64)
        if not isinstance(value, Requantizer) and not (value is None and kind is FieldKind.OPTIONAL_REQUANT):
            _fail(where, "must be a Requantizer" + (" or None" if kind is FieldKind.OPTIONAL_REQUANT else ""))
        return value

    def _bounded(self, value, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            _fail(where, f"expected an integer, got {value!r:.60}")
        value = int(value)
        if not self.minimum <= value <= self.maximum:
            _fail(where, f"expected integers >= {self.minimum} and <= {self.maximum}, got {value}")
        return value


def op_fields(op_type: type) -> tuple[OpField, ...]:
    """The declared fields of an op type in declaration order, ``name`` excluded."""
    return tuple(dataclasses.replace(f.metadata["spec"], name=f.name)
                 for f in dataclasses.fields(op_type) if f.name != "name")


def _check_fields(op) -> str:
    """Convert and check every declared field of ``op`` by its :class:`OpField` (the one
    validator of field types and integer bounds for every op type); return the op's label
    ``op 'name' (kind)`` for the op-specific checks that follow."""
    if not isinstance(op.name, str) or not op.name:
        _fail(f"op {op.name!r:.60} ({op.kind.value}).name", "expected a non-empty string")
    where = f"op '{op.name}' ({op.kind.value})"
    for spec in op_fields(type(op)):
        object.__setattr__(op, spec.name, spec.check(getattr(op, spec.name), f"{where}.{spec.name}"))
    return where


class BorderGranularity(enum.Enum):
    """How border tables are shared: docs/contract.md's four granularities."""

    TENSOR = "tensor"
    """One border for the whole tensor: table shape (1, 1)."""
    CHANNEL = "channel"
    """One border per channel: (C, 1)."""
    LEVEL = "level"
    """One border per level, shared by every channel: (1, 2^b - 1)."""
    CHANNEL_LEVEL = "channel_level"
    """One border per channel and level: (C, 2^b - 1)."""

    def table_shape(self, channels: int, bits: int) -> tuple[int, int]:
        groups = channels if self in (BorderGranularity.CHANNEL, BorderGranularity.CHANNEL_LEVEL) else 1
        levels = (1 << bits) - 1 if self in (BorderGranularity.LEVEL, BorderGranularity.CHANNEL_LEVEL) else 1
        return groups, levels


@dataclass(frozen=True)
class QuantParams:
    """A b-bit quantized tensor: real value ``scale * (q - zero_point)``, q in [qmin, qmax]."""

    bits: int
    signed: bool
    scale: float
    zero_point: int

    def __post_init__(self):
        if not MIN_BITS <= self.bits <= MAX_BITS:
            _fail("quant.bits", f"must be in {MIN_BITS}..{MAX_BITS}, got {self.bits}")
        if not (math.isfinite(self.scale) and self.scale > 0):
            _fail("quant.scale", f"must be finite and positive, got {self.scale}")
        if not self.qmin <= self.zero_point <= self.qmax:
            _fail("quant.zero_point", f"{self.zero_point} is outside [{self.qmin}, {self.qmax}]")

    @property
    def qmin(self) -> int:
        return integer_range(self.bits, self.signed)[0]

    @property
    def qmax(self) -> int:
        return integer_range(self.bits, self.signed)[1]

    @property
    def levels(self) -> int:
        """Number of borders between adjacent levels, ``2^b - 1``."""
        return self.qmax - self.qmin


@dataclass(frozen=True, eq=False)
class AccumulatorParams:
    """An unrequantized accumulator tensor (only as a program output): real value
    ``acc * scale[c]`` with one float64 scale per channel (``s_x * s_w[c]``)."""

    scale: np.ndarray

    def __post_init__(self):
        scale = np.ascontiguousarray(self.scale, dtype=np.float64)
        if scale.ndim != 1 or not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            _fail("accumulator.scale", "must be a vector of finite positive scales")
        object.__setattr__(self, "scale", scale)


@dataclass(frozen=True, eq=False)
class Tensor:
    """A named tensor of the program; ``shape`` excludes the batch dimension."""

    name: str
    shape: tuple[int, ...]
    quant: Union[QuantParams, AccumulatorParams]

    def __post_init__(self):
        shape = tuple(int(d) for d in self.shape)
        if len(shape) not in (1, 3) or min(shape) < 1:
            _fail(f"tensor '{self.name}'.shape", f"must be (C, H, W) or (F,) of positive sizes, got {self.shape}")
        if math.prod(shape) > MAX_TENSOR_ELEMENTS:
            _fail(f"tensor '{self.name}'.shape", f"{shape} has more than {MAX_TENSOR_ELEMENTS} elements")
        object.__setattr__(self, "shape", shape)
        if isinstance(self.quant, AccumulatorParams) and self.quant.scale.shape[0] != shape[0]:
            _fail(f"tensor '{self.name}'.quant.scale", f"has {self.quant.scale.shape[0]} entries for {shape[0]} channels")

    @property
    def channels(self) -> int:
        return self.shape[0]

    @property
    def is_quantized(self) -> bool:
        return isinstance(self.quant, QuantParams)


@dataclass(frozen=True, eq=False)
class BorderTable:
    """The border lookup unit's table: integers ``B`` in ``[1, 2^F]`` of shape ``(G, L)``,
    ``beta = B / 2^F`` (docs/contract.md (8)). ``G`` is 1 or C, ``L`` is 1 or ``2^b - 1``."""

    frac_bits: int
    values: np.ndarray

    def __post_init__(self):
        if not 1 <= self.frac_bits <= MAX_FRAC_BITS:
            _fail("borders.frac_bits", f"F must be in 1..{MAX_FRAC_BITS}, got {self.frac_bits}")
        values = _int_array(self.values, "borders.values", ndim=2)
        if values.size == 0:
            _fail("borders.values", "is empty")
        if values.min() < 1 or values.max() > (1 << self.frac_bits):
            _fail("borders.values", f"B must be in [1, 2^F = {1 << self.frac_bits}], got [{values.min()}, {values.max()}]")
        object.__setattr__(self, "values", values)

    @classmethod
    def nearest(cls, frac_bits: int) -> "BorderTable":
        """Round-half-up: one border of 1/2 for the whole tensor."""
        return cls(frac_bits, nearest_borders(frac_bits))

    @property
    def beta(self) -> np.ndarray:
        """The real borders ``B / 2^F``."""
        return self.values / float(1 << self.frac_bits)

    @property
    def is_nearest(self) -> bool:
        """True when every border is 1/2: a plain round-to-nearest requantizer does the job."""
        return bool(np.all(self.values == (1 << (self.frac_bits - 1))))

    @property
    def granularity(self) -> BorderGranularity:
        per_channel, per_level = self.values.shape[0] > 1, self.values.shape[1] > 1
        if per_channel and per_level:
            return BorderGranularity.CHANNEL_LEVEL
        if per_channel:
            return BorderGranularity.CHANNEL
        return BorderGranularity.LEVEL if per_level else BorderGranularity.TENSOR

    def check_fits(self, channels: int, quant: QuantParams, where: str) -> None:
        groups, levels = self.values.shape
        if groups not in (1, channels):
            _fail(f"{where}.values", f"has {groups} rows; must be 1 or the channel count {channels}")
        if levels not in (1, quant.levels):
            _fail(f"{where}.values", f"has {levels} columns; must be 1 or 2^b - 1 = {quant.levels}")


@dataclass(frozen=True, eq=False)
class Requantizer:
    """Per-channel multipliers ``m`` in ``[2^30, 2^31)`` and shifts ``n`` (vectors of length C, or
    1 when shared), ``M = m * 2^-n``, applied by the rule ``variant`` names: this project's
    (6)-(8) with the border table on F fraction bits (BORDER, the default), or a real runtime's
    (GEMMLOWP (10)-(13), FP32 (14)-(16), FLOAT64 (31)-(32), whose ``m`` is a double's 53-bit
    significand in ``[2^52, 2^53)``; ``docs/contract.md`` 2.1). Variants without a fraction
    carry the plain round-to-nearest table (``BorderTable.nearest``), which they do not read:
    borders apply only where the variant defines a fraction. FP32 also needs ``M`` to be exactly
    a float32 (``m`` of at most 24 significant bits, ``n`` in ``FLOAT32_SHIFT_RANGE``).
    FP32_ADD (17)-(20), only on an :class:`Add`, holds exactly two entries, not per channel: the
    float32 ratios ``r_a``, ``r_b``, each exactly a float32 with ``n`` in ``FP32_ADD_SHIFT_RANGE``
    (``r < 2^12``). TFLite's TFLITE_ADD (21)-(24), only on an add, holds three pairs (input a,
    input b, output) with ``n`` in ``TFLITE_ADD_SHIFT_RANGE``; TFLITE_AVGPOOL (25)-(27), only on an
    unpadded average pooling, holds the unread ``M = 1``; TFLITE_MEAN (28)-(30), only on a global
    average pooling, one pair whose left shift keeps the sum within int32."""

    multiplier: np.ndarray
    shift: np.ndarray
    borders: BorderTable
    variant: RequantVariant = RequantVariant.BORDER

    def __post_init__(self):
        m = _int_array(self.multiplier, "requant.multiplier", ndim=1)
        n = _int_array(self.shift, "requant.shift", ndim=1)
        if m.shape != n.shape or m.size == 0:
            _fail("requant.shift", f"shape {n.shape} does not match multiplier shape {m.shape}")
        if not isinstance(self.variant, RequantVariant):
            _fail("requant.variant", f"must be a RequantVariant, got {self.variant!r:.60}")
        if self.variant is RequantVariant.FLOAT64:
            lo, hi = FLOAT64_MULTIPLIER_RANGE
            if m.min() < lo or m.max() >= hi:
                _fail("requant.multiplier", f"variant 'float64' needs m (a double's significand) in [2^52, 2^53), got [{m.min()}, {m.max()}]")
            lo, hi = FLOAT64_SHIFT_RANGE
            if n.min() < lo or n.max() > hi:
                _fail("requant.shift", f"variant 'float64' needs n in [{lo}, {hi}] (E <= 1, a normal double), got [{n.min()}, {n.max()}]")
        elif m.min() < (1 << 30) or m.max() >= (1 << 31):
            _fail("requant.multiplier", f"m must be in [2^30, 2^31), got [{m.min()}, {m.max()}]")
        if not self.variant.has_fraction and not (self.borders.values.shape == (1, 1) and self.borders.is_nearest):
            _fail("requant.borders", f"variant '{self.variant.value}' has no fraction for borders; "
                                     "its table must be the single round-to-nearest border")
        if self.variant is RequantVariant.FP32_ADD and m.shape != (2,):
            _fail("requant.multiplier", f"variant 'fp32_add' holds the two ratios r_a, r_b; got {m.shape[0]} entries")
        if self.variant in (RequantVariant.FP32, RequantVariant.FP32_ADD):
            low_bits = (1 << (MULTIPLIER_BITS - FLOAT32_MANTISSA_BITS)) - 1
            if np.any(m & low_bits):
                _fail("requant.multiplier", f"variant '{self.variant.value}' needs m * 2^-n to be a float32: m's low 7 bits must be 0")
            lo, hi = FLOAT32_SHIFT_RANGE if self.variant is RequantVariant.FP32 else FP32_ADD_SHIFT_RANGE
            if n.min() < lo or n.max() > hi:
                _fail("requant.shift", f"variant '{self.variant.value}' needs n in [{lo}, {hi}], got [{n.min()}, {n.max()}]")
        if self.variant is RequantVariant.TFLITE_ADD:
            lo, hi = TFLITE_ADD_SHIFT_RANGE
            if m.shape != (3,) or n.min() < lo or n.max() > hi:
                _fail("requant.shift", f"variant 'tflite_add' holds three pairs (inputs a, b, output) with n in [{lo}, {hi}]; "
                                       f"got {m.shape[0]} entries, n in [{n.min()}, {n.max()}]")
        if self.variant is RequantVariant.TFLITE_AVGPOOL and (m.tolist(), n.tolist()) != ([TFLITE_AVGPOOL_MULTIPLIER[0]], [TFLITE_AVGPOOL_MULTIPLIER[1]]):
            _fail("requant.multiplier", "variant 'tflite_avgpool' reads no multiplier; its one entry must be M = 1 (m = 2^30, n = 30)")
        if self.variant is RequantVariant.TFLITE_MEAN and (m.shape != (1,) or n[0] < 0 or n[0] > 62):
            _fail("requant.shift", f"variant 'tflite_mean' holds one pair with n in [0, 62], got {m.shape[0]} entries, n = {n.tolist()}")
        object.__setattr__(self, "multiplier", m)
        object.__setattr__(self, "shift", n)

    @property
    def frac_bits(self) -> int:
        return self.borders.frac_bits

    def check_fits(self, channels: int, quant, accumulator_bits: int, where: str) -> None:
        if not isinstance(quant, QuantParams):
            _fail(where, "a requantizer must produce a quantized tensor")
        if self.variant not in (RequantVariant.FP32_ADD, RequantVariant.TFLITE_ADD) and self.multiplier.shape[0] not in (1, channels):
            _fail(f"{where}.multiplier", f"has {self.multiplier.shape[0]} entries; must be 1 or {channels}")
        if self.variant is RequantVariant.BORDER:
            s = self.shift - self.frac_bits
            lo, hi = scaled_shift_range(accumulator_bits)
            if s.min() < lo or s.max() > hi:
                _fail(f"{where}.shift", f"n - F must be in [{lo}, {hi}] for A = {accumulator_bits} (D.6), got [{s.min()}, {s.max()}]")
        elif self.variant is RequantVariant.GEMMLOWP:
            lo, hi = gemmlowp_shift_range(accumulator_bits)
            if self.shift.min() < lo or self.shift.max() > hi:
                _fail(f"{where}.shift", f"variant 'gemmlowp' needs n in [{lo}, {hi}] for A = {accumulator_bits} "
                                        f"(contract (10), (12)), got [{self.shift.min()}, {self.shift.max()}]")
        self.borders.check_fits(channels, quant, f"{where}.borders")


class OpKind(enum.Enum):
    CONV2D = "conv2d"
    LINEAR = "linear"
    ADD = "add"
    MAXPOOL2D = "maxpool2d"
    AVGPOOL2D = "avgpool2d"
    GLOBAL_AVGPOOL = "global_avgpool"
    FLATTEN = "flatten"
    CLAMP = "clamp"
    LUT = "lut"
    MUL = "mul"
    CONCAT = "concat"


_TFLITE_VARIANT_OPS = {RequantVariant.TFLITE_ADD: OpKind.ADD, RequantVariant.TFLITE_AVGPOOL: OpKind.AVGPOOL2D,
                       RequantVariant.TFLITE_MEAN: OpKind.GLOBAL_AVGPOOL}
"""The one op kind that each of TFLite's add, average and mean variants requantizes."""


@dataclass(frozen=True, eq=False)
class Conv2d:
    """D.1, contract (5): ``acc[c] = bias[c] + sum (w[c, i] - z_w[c]) * (x_i - z_x)`` over the
    window of group(c); padded positions hold ``z_x`` and add nothing. ``weight`` is
    (O, I/groups, KH, KW), signed ``weight_bits`` integers with real scale ``weight_scale[c]``
    and integer zero-point ``weight_zero_point[c]`` (``z_w``, in the weight range; None means
    zeros, the symmetric grid). ``requant`` None leaves int32 accumulators (only for the program
    output). ``padding`` is the (top, left) padding, ``padding_end`` the (bottom, right) one
    (None: the same as ``padding``, symmetric; TF's "SAME" at stride 2 pads one more at the end)."""

    kind: ClassVar[OpKind] = OpKind.CONV2D
    name: str
    input: str = op_field(FieldKind.TENSOR)
    output: str = op_field(FieldKind.TENSOR)
    weight: np.ndarray = op_field(FieldKind.WEIGHTS, rank=4)
    weight_bits: int = op_field(FieldKind.INT)
    weight_scale: np.ndarray = op_field(FieldKind.REAL_VECTOR)
    bias: np.ndarray = op_field(FieldKind.INT_VECTOR)
    requant: Union[Requantizer, None] = op_field(FieldKind.OPTIONAL_REQUANT)
    stride: tuple[int, int] = op_field(FieldKind.PAIR, minimum=1, default=(1, 1))
    padding: tuple[int, int] = op_field(FieldKind.PAIR, default=(0, 0))
    dilation: tuple[int, int] = op_field(FieldKind.PAIR, minimum=1, default=(1, 1))
    groups: int = op_field(FieldKind.INT, minimum=1, default=1)
    weight_zero_point: np.ndarray = op_field(FieldKind.INT_VECTOR, since=2, default=None)
    padding_end: tuple[int, int] = op_field(FieldKind.PAIR, since=6, default=None)

    def __post_init__(self):
        where = _check_fields(self)
        _check_weights(self, where)
        if self.padding_end is None:
            object.__setattr__(self, "padding_end", self.padding)
        out_channels = self.weight.shape[0]
        if out_channels % self.groups:
            _fail(f"{where}.groups", f"{self.groups} does not divide {out_channels} output channels")

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)

    @property
    def kernel_size(self) -> tuple[int, int]:
        return self.weight.shape[2], self.weight.shape[3]

    def output_shape(self, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        where = f"op '{self.name}' (conv2d)"
        shape = _expect_rank(shapes[0], 3, where)
        if shape[0] != self.weight.shape[1] * self.groups:
            _fail(f"{where}.weight", f"expects {self.weight.shape[1] * self.groups} input channels, input has {shape[0]}")
        return (self.weight.shape[0], *_window_shape(shape, self.kernel_size, self.stride, self.padding, self.dilation, where,
                                                     self.padding_end))


@dataclass(frozen=True, eq=False)
class Linear:
    """D.2, contract (5): ``acc[c] = bias[c] + sum_i (w[c, i] - z_w[c]) * (x_i - z_x)``; weight
    is (O, I); fields as :class:`Conv2d`'s."""

    kind: ClassVar[OpKind] = OpKind.LINEAR
    name: str
    input: str = op_field(FieldKind.TENSOR)
    output: str = op_field(FieldKind.TENSOR)
    weight: np.ndarray = op_field(FieldKind.WEIGHTS, rank=2)
    weight_bits: int = op_field(FieldKind.INT)
    weight_scale: np.ndarray = op_field(FieldKind.REAL_VECTOR)
    bias: np.ndarray = op_field(FieldKind.INT_VECTOR)
    requant: Union[Requantizer, None] = op_field(FieldKind.OPTIONAL_REQUANT)
    weight_zero_point: np.ndarray = op_field(FieldKind.INT_VECTOR, since=2, default=None)

    def __post_init__(self):
        _check_weights(self, _check_fields(self))

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)

    def output_shape(self, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        where = f"op '{self.name}' (linear)"
        shape = _expect_rank(shapes[0], 1, where)
        if shape[0] != self.weight.shape[1]:
            _fail(f"{where}.weight", f"expects {self.weight.shape[1]} input features, input has {shape[0]}")
        return (self.weight.shape[0],)


@dataclass(frozen=True, eq=False)
class Add:
    """D.9: ``acc = w_a * (a - z_a) + w_b * (b - z_b)`` with integer input weights in
    [1, 2^16) that carry the ratio of the two input scales; the requantizer carries the rest.

    With an FP32_ADD requantizer (onnxruntime's ``QLinearAdd``, contract (17)-(20)) there is no
    integer sum: the requantizer's two entries are the float32 ratios ``s_a / s_c`` and
    ``s_b / s_c``, the weights must be 1 (unread), and ``zero_offset`` is the offset ``o`` the
    runtime adds to every level and zero-point before its kernel (128 where onnxruntime runs an
    int8 QDQ add as uint8; 0 for every other requantizer)."""

    kind: ClassVar[OpKind] = OpKind.ADD
    name: str
    input_a: str = op_field(FieldKind.TENSOR)
    input_b: str = op_field(FieldKind.TENSOR)
    output: str = op_field(FieldKind.TENSOR)
    weight_a: int = op_field(FieldKind.INT, minimum=1, maximum=MAX_ADD_WEIGHT - 1)
    weight_b: int = op_field(FieldKind.INT, minimum=1, maximum=MAX_ADD_WEIGHT - 1)
    requant: Requantizer = op_field(FieldKind.REQUANT)
    zero_offset: int = op_field(FieldKind.INT, maximum=MAX_ZERO_OFFSET, since=4, default=0)

    def __post_init__(self):
        where = _check_fields(self)
        if self.requant.variant in (RequantVariant.FP32_ADD, RequantVariant.TFLITE_ADD):
            if (self.weight_a, self.weight_b) != (1, 1):
                _fail(f"{where}.weight_a", f"variant '{self.requant.variant.value}' reads no input weights; they must be 1")
        elif self.zero_offset:
            _fail(f"{where}.zero_offset", f"only variant 'fp32_add' reads an offset; must be 0 for '{self.requant.variant.value}'")

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input_a, self.input_b)

    def output_shape(self, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        if shapes[0] != shapes[1]:
            _fail(f"op '{self.name}' (add)", f"input shapes differ: {shapes[0]} and {shapes[1]}")
        return shapes[0]


@dataclass(frozen=True, eq=False)
class MaxPool2d:
    """D.10: the maximum of the window; padded positions never win (they hold ``qmin``).
    ``padding`` is the (top, left) padding, ``padding_end`` the (bottom, right) one (None: the
    same as ``padding``, symmetric; TF's "SAME" 3x3/2 pooling of an even input pads 0 before and
    1 after). Each side pads at most half the kernel, and no window reads padding alone
    (:meth:`output_shape`), so that every window holds a real value."""

    kind: ClassVar[OpKind] = OpKind.MAXPOOL2D
    name: str
    input: str = op_field(FieldKind.TENSOR)
    output: str = op_field(FieldKind.TENSOR)
    kernel_size: tuple[int, int] = op_field(FieldKind.PAIR, minimum=1)
    stride: tuple[int, int] = op_field(FieldKind.PAIR, minimum=1)
    padding: tuple[int, int] = op_field(FieldKind.PAIR, default=(0, 0))
    dilation: tuple[int, int] = op_field(FieldKind.PAIR, minimum=1, default=(1, 1))
    padding_end: tuple[int, int] = op_field(FieldKind.PAIR, since=8, default=None)

    def __post_init__(self):
        where = _check_fields(self)
        if self.padding_end is None:
            object.__setattr__(self, "padding_end", self.padding)
        for side in ("padding", "padding_end"):
            if any(2 * p > k for p, k in zip(getattr(self, side), self.kernel_size)):
                _fail(f"{where}.{side}", "must be at most half the kernel size, so that every window holds a real value")

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)

    def output_shape(self, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        """The pooled (C, OH, OW); a window whose taps all fall in the padding (possible only
        when the dilated window is wider than the input) is refused."""
        where = f"op '{self.name}' (maxpool2d)"
        shape = _expect_rank(shapes[0], 3, where)
        out = _window_shape(shape, self.kernel_size, self.stride, self.padding, self.dilation, where, self.padding_end)
        for a, (size, positions) in enumerate(zip(shape[1:], out)):
            taps = np.arange(positions)[:, None] * self.stride[a] - self.padding[a] + np.arange(self.kernel_size[a]) * self.dilation[a]
            empty = np.flatnonzero(~np.any((taps >= 0) & (taps < size), axis=1))
            if empty.size:
                _fail(f"{where}.dilation", f"window {int(empty[0])} along {'HW'[a]} reads only padding of an input of size {size}")
        return (shape[0], *out)


@dataclass(frozen=True, eq=False)
class AvgPool2d:
    """D.11: ``acc = sum (x - z_x)`` over the window, padding included and counted (the divisor
    is always ``KH * KW``, folded into the requantizer's multiplier)."""

    kind: ClassVar[OpKind] = OpKind.AVGPOOL2D
    name: str
    input: str = op_field(FieldKind.TENSOR)
    output: str = op_field(FieldKind.TENSOR)
    kernel_size: tuple[int, int] = op_field(FieldKind.PAIR, minimum=1)
    stride: tuple[int, int] = op_field(FieldKind.PAIR, minimum=1)
    requant: Requantizer = op_field(FieldKind.REQUANT)
    padding: tuple[int, int] = op_field(FieldKind.PAIR, default=(0, 0))

    def __post_init__(self):
        _check_fields(self)

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)

    def output_shape(self, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        where = f"op '{self.name}' (avgpool2d)"
        shape = _expect_rank(shapes[0], 3, where)
        return (shape[0], *_window_shape(shape, self.kernel_size, self.stride, self.padding, (1, 1), where))


@dataclass(frozen=True, eq=False)
class GlobalAvgPool:
    """D.12: ``acc[c] = sum over H x W of (x - z_x)``; output shape (C, 1, 1)."""

    kind: ClassVar[OpKind] = OpKind.GLOBAL_AVGPOOL
    name: str
    input: str = op_field(FieldKind.TENSOR)
    output: str = op_field(FieldKind.TENSOR)
    requant: Requantizer = op_field(FieldKind.REQUANT)

    def __post_init__(self):
        _check_fields(self)

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)

    def output_shape(self, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        c, _, _ = _expect_rank(shapes[0], 3, f"op '{self.name}' (global_avgpool)")
        return (c, 1, 1)


@dataclass(frozen=True, eq=False)
class Flatten:
    """(C, H, W) to (C*H*W,) in C order; values unchanged."""

    kind: ClassVar[OpKind] = OpKind.FLATTEN
    name: str
    input: str = op_field(FieldKind.TENSOR)
    output: str = op_field(FieldKind.TENSOR)

    def __post_init__(self):
        _check_fields(self)

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)

    def output_shape(self, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        return (int(np.prod(shapes[0])),)


@dataclass(frozen=True, eq=False)
class Clamp:
    """D.13: ``q = clamp(x, lo[c], hi[c])`` per channel (vectors of length C or 1). ReLU is
    ``lo = z``; ReLU6 is also ``hi = q(6)``, the level that 6.0 rounds to, which is exact
    because border rounding is monotone: ``q(min(x, 6)) = min(q(x), q(6))``."""

    kind: ClassVar[OpKind] = OpKind.CLAMP
    name: str
    input: str = op_field(FieldKind.TENSOR)
    output: str = op_field(FieldKind.TENSOR)
    lo: np.ndarray = op_field(FieldKind.INT_VECTOR)
    hi: np.ndarray = op_field(FieldKind.INT_VECTOR)

    def __post_init__(self):
        where = _check_fields(self)
        if self.lo.shape != self.hi.shape or self.lo.size == 0:
            _fail(f"{where}.hi", f"shape {self.hi.shape} does not match lo shape {self.lo.shape}")
        if np.any(self.lo > self.hi):
            _fail(f"{where}.lo", "must not exceed hi")

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)

    def output_shape(self, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        if self.lo.shape[0] not in (1, shapes[0][0]):
            _fail(f"op '{self.name}' (clamp).lo", f"has {self.lo.shape[0]} entries; must be 1 or {shapes[0][0]}")
        return shapes[0]


@dataclass(frozen=True, eq=False)
class Lut:
    """D.15: ``y = table[g(c), x - qmin_x]``, a unary activation (or constant multiple) on
    levels, the table built once by ``aquant_sim.lut.lookup_table`` (its equation (T)): each
    input level dequantized, the function applied in float64, border-rounded (1)-(4) to the
    output grid. ``table`` is (G, 2^b_x) output levels, G 1 or the channel count (one row per
    output border group). The output has its own quantization."""

    kind: ClassVar[OpKind] = OpKind.LUT
    since: ClassVar[int] = 5
    """The artifact format version that introduced the op type."""
    name: str
    input: str = op_field(FieldKind.TENSOR)
    output: str = op_field(FieldKind.TENSOR)
    table: np.ndarray = op_field(FieldKind.INT_VECTOR, rank=2, since=5)

    def __post_init__(self):
        where = _check_fields(self)
        if self.table.size == 0:
            _fail(f"{where}.table", "is empty")

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)

    def output_shape(self, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        return shapes[0]


@dataclass(frozen=True, eq=False)
class Mul:
    """D.16: ``acc = (a - z_a) * (b - z_b)``, the product of zero-point-corrected levels, with
    ``b`` of ``a``'s shape or, for a (C, H, W) ``a``, of shape (C, 1, 1) (broadcast over H and W:
    the squeeze-excitation gate); the requantizer carries ``M = s_a s_b / s_y``."""

    kind: ClassVar[OpKind] = OpKind.MUL
    since: ClassVar[int] = 5
    """The artifact format version that introduced the op type."""
    name: str
    input_a: str = op_field(FieldKind.TENSOR)
    input_b: str = op_field(FieldKind.TENSOR)
    output: str = op_field(FieldKind.TENSOR)
    requant: Requantizer = op_field(FieldKind.REQUANT, since=5)

    def __post_init__(self):
        _check_fields(self)

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input_a, self.input_b)

    def output_shape(self, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        a, b = shapes
        if b != a and not (len(a) == 3 and b == (a[0], 1, 1)):
            _fail(f"op '{self.name}' (mul).input_b", f"shape {b} must equal input_a's {a} or be ({a[0]}, 1, 1) for a (C, H, W) input_a")
        return a


@dataclass(frozen=True, eq=False)
class Concat:
    """D.17: the channels of ``input_a`` then those of ``input_b`` (same H, W), each requantized
    to the output's quantization: ``acc[c] = x[c'] - z_x`` of the input that holds output
    channel ``c``, then the requantizer (6)-(8) with one multiplier per output channel,
    ``M[c] = s_x / s_y``. Where an input's scale and zero-point are the output's, ``M = 1``
    (``m = 2^30``, ``n = 30``) and the requantizer returns its levels unchanged: a copy."""

    kind: ClassVar[OpKind] = OpKind.CONCAT
    since: ClassVar[int] = 6
    """The artifact format version that introduced the op."""
    name: str
    input_a: str = op_field(FieldKind.TENSOR)
    input_b: str = op_field(FieldKind.TENSOR)
    output: str = op_field(FieldKind.TENSOR)
    requant: Requantizer = op_field(FieldKind.REQUANT)

    def __post_init__(self):
        _check_fields(self)

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input_a, self.input_b)

    def output_shape(self, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        where = f"op '{self.name}' (concat)"
        a, b = (_expect_rank(shape, 3, where) for shape in shapes)
        if a[1:] != b[1:]:
            _fail(where, f"inputs must have the same height and width, got {a} and {b}")
        return (a[0] + b[0], *a[1:])


Op = Union[Conv2d, Linear, Add, MaxPool2d, AvgPool2d, GlobalAvgPool, Flatten, Clamp, Lut, Mul, Concat]
OP_TYPES: dict[OpKind, type] = {t.kind: t for t in (Conv2d, Linear, Add, MaxPool2d, AvgPool2d, GlobalAvgPool, Flatten, Clamp, Lut, Mul, Concat)}
REQUANTIZING_OPS = (OpKind.CONV2D, OpKind.LINEAR, OpKind.ADD, OpKind.AVGPOOL2D, OpKind.GLOBAL_AVGPOOL, OpKind.MUL, OpKind.CONCAT)
PASS_THROUGH_OPS = (OpKind.MAXPOOL2D, OpKind.FLATTEN, OpKind.CLAMP)
"""Ops whose output keeps the input's quantization exactly."""
TABLE_OPS = (OpKind.LUT,)
"""Ops that map input levels to output levels of a new quantization through a table."""


def _expect_rank(shape: tuple[int, ...], rank: int, where: str) -> tuple[int, ...]:
    if len(shape) != rank:
        _fail(where, f"expects an input of rank {rank} (without batch), got shape {shape}")
    return shape


def window_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1, padding_end: int | None = None) -> int:
    """Output length of a sliding window (conv, pooling) along one axis: the number of window
    positions of span ``dilation * (kernel - 1) + 1`` over ``padding + size + padding_end``
    (``padding_end`` None: ``padding``, symmetric) at ``stride``."""
    end = padding if padding_end is None else padding_end
    return (size + padding + end - dilation * (kernel - 1) - 1) // stride + 1


def _window_shape(shape: tuple[int, int, int], kernel, stride, padding, dilation, where: str,
                  padding_end=None) -> tuple[int, int]:
    """Output (H, W) of a window op on a (C, H, W) input, padded by ``padding`` before and
    ``padding_end`` (None: ``padding``) after: every window must fit the padded input, and the
    padded input must hold at most :data:`MAX_TENSOR_ELEMENTS` elements."""
    c, h, w = shape
    end = padding if padding_end is None else padding_end
    padded = c * (h + padding[0] + end[0]) * (w + padding[1] + end[1])
    if padded > MAX_TENSOR_ELEMENTS:
        _fail(f"{where}.padding", f"{tuple(padding)} pads the input {shape} to {padded} elements, more than {MAX_TENSOR_ELEMENTS}")
    out = []
    for a, size in enumerate((h, w)):
        span = dilation[a] * (kernel[a] - 1) + 1
        if size + padding[a] + end[a] < span:
            _fail(where, f"window of span {span} does not fit an input of size {size} with padding {padding[a]} and {end[a]}")
        out.append(window_output_size(size, kernel[a], stride[a], padding[a], dilation[a], end[a]))
    return out[0], out[1]


def _check_weights(op, where: str) -> None:
    """Conv2d and linear: weight values within ``weight_bits`` (then stored int32), one scale,
    one bias and one weight zero-point (zeros when None) per output channel, the zero-points in
    the weight range too."""
    if not MIN_BITS <= op.weight_bits <= MAX_BITS:
        _fail(f"{where}.weight_bits", f"must be in {MIN_BITS}..{MAX_BITS}, got {op.weight_bits}")
    lo, hi = integer_range(op.weight_bits, signed=True)
    if op.weight.size == 0 or op.weight.min() < lo or op.weight.max() > hi:
        _fail(f"{where}.weight", f"values must be {op.weight_bits}-bit signed integers in [{lo}, {hi}]")
    object.__setattr__(op, "weight", op.weight.astype(np.int32))
    out_channels = op.weight.shape[0]
    if op.weight_scale.shape != (out_channels,):
        _fail(f"{where}.weight_scale", f"must be {out_channels} finite positive scales")
    if op.bias.shape != (out_channels,):
        _fail(f"{where}.bias", f"must have {out_channels} entries, got shape {op.bias.shape}")
    if op.weight_zero_point is None:
        object.__setattr__(op, "weight_zero_point", np.zeros(out_channels, dtype=np.int64))
    z_w = op.weight_zero_point
    if z_w.shape != (out_channels,):
        _fail(f"{where}.weight_zero_point", f"must have {out_channels} entries, got shape {z_w.shape}")
    if z_w.min() < lo or z_w.max() > hi:
        _fail(f"{where}.weight_zero_point", f"values must lie in the {op.weight_bits}-bit weight range [{lo}, {hi}]")


@dataclass(frozen=True, eq=False)
class Program:
    """A quantized network as integer ops in execution order.

    ``input`` is quantized on entry with ``input_borders`` (real-valued rounding (1)-(4) with
    ``beta = B / 2^F``), ``output`` is returned. ``accumulator_bits`` (A) and ``overflow`` apply
    to every accumulating op (conv2d, linear, add, average pooling, mul).
    """

    tensors: tuple[Tensor, ...]
    ops: tuple[Op, ...]
    input: str
    output: str
    input_borders: BorderTable
    accumulator_bits: int = 32
    overflow: OverflowPolicy = OverflowPolicy.WRAP
    _by_name: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "tensors", tuple(self.tensors))
        object.__setattr__(self, "ops", tuple(self.ops))
        if not MIN_ACCUMULATOR_BITS <= self.accumulator_bits <= MAX_ACCUMULATOR_BITS:
            _fail("program.accumulator_bits", f"must be in {MIN_ACCUMULATOR_BITS}..{MAX_ACCUMULATOR_BITS}, got {self.accumulator_bits}")
        if not isinstance(self.overflow, OverflowPolicy):
            _fail("program.overflow", f"must be an OverflowPolicy, got {self.overflow!r}")
        by_name = {}
        for tensor in self.tensors:
            if tensor.name in by_name:
                _fail(f"tensor '{tensor.name}'", "is declared twice")
            by_name[tensor.name] = tensor
        object.__setattr__(self, "_by_name", by_name)
        self._check_graph()

    def tensor(self, name: str) -> Tensor:
        return self._by_name[name]

    def _lookup(self, name: str, where: str) -> Tensor:
        if name not in self._by_name:
            _fail(where, f"refers to tensor '{name}', which the program does not declare")
        return self._by_name[name]

    def _check_graph(self) -> None:
        source = self._lookup(self.input, "program.input")
        if not source.is_quantized:
            _fail("program.input", "the input tensor must be quantized")
        self.input_borders.check_fits(source.channels, source.quant, "program.input_borders")
        produced = {self.input}
        consumed = set()
        names = set()
        for op in self.ops:
            where = f"op '{op.name}' ({op.kind.value})"
            if op.name in names:
                _fail(where, "op names must be unique")
            names.add(op.name)
            ins = [self._lookup(name, f"{where}.input") for name in op.inputs]
            for tensor in ins:
                if tensor.name not in produced:
                    _fail(f"{where}.input", f"tensor '{tensor.name}' is read before any op produces it")
                if not tensor.is_quantized:
                    _fail(f"{where}.input", f"tensor '{tensor.name}' holds accumulators, which no op can read")
            consumed.update(op.inputs)
            out = self._lookup(op.output, f"{where}.output")
            if out.name in produced:
                _fail(f"{where}.output", f"tensor '{out.name}' is produced twice")
            produced.add(out.name)
            shape = op.output_shape([t.shape for t in ins])
            if shape != out.shape:
                _fail(f"{where}.output", f"tensor '{out.name}' is declared {out.shape}, the op produces {shape}")
            self._check_quant(op, ins, out, where)
        if self.output not in produced or self.output == self.input:
            _fail("program.output", f"tensor '{self.output}' is not produced by any op")
        unused = set(self._by_name) - produced - consumed
        if unused:
            _fail("program.tensors", f"declared but never used: {sorted(unused)}")
        dead_ends = produced - consumed - {self.output}
        if dead_ends:
            _fail("program.tensors", f"produced but never read: {sorted(dead_ends)}")

    def _check_quant(self, op, ins: list[Tensor], out: Tensor, where: str) -> None:
        if op.kind in PASS_THROUGH_OPS:
            if out.quant != ins[0].quant:
                _fail(f"{where}.output", f"{op.kind.value} keeps its input's quantization; tensor '{out.name}' differs")
            if op.kind is OpKind.CLAMP:
                qmin, qmax = out.quant.qmin, out.quant.qmax
                if op.lo.min() < qmin or op.hi.max() > qmax:
                    _fail(f"{where}.lo", f"clamp bounds must lie in [{qmin}, {qmax}]")
            return
        if op.kind is OpKind.LUT:
            self._check_table(op, ins[0], out, where)
            return
        if op.kind in (OpKind.CONV2D, OpKind.LINEAR):
            lo, hi = integer_range(self.accumulator_bits, signed=True)
            if op.bias.min() < lo or op.bias.max() > hi:
                _fail(f"{where}.bias", f"must fit the {self.accumulator_bits}-bit accumulator")
        if op.requant is not None and op.requant.variant is RequantVariant.FP32_ADD and op.kind is not OpKind.ADD:
            _fail(f"{where}.requant.variant", "variant 'fp32_add' requantizes only an add")
        if op.requant is not None and op.requant.variant in _TFLITE_VARIANT_OPS:
            self._check_tflite(op, ins, out, where)
        if op.requant is None:
            if out.is_quantized:
                _fail(f"{where}.requant", f"is missing, but tensor '{out.name}' is quantized")
            if out.name != self.output:
                _fail(f"{where}.requant", "only the program output may hold unrequantized accumulators")
            return
        op.requant.check_fits(out.channels, out.quant, self.accumulator_bits, f"{where}.requant")

    @staticmethod
    def _check_tflite(op, ins: list[Tensor], out: Tensor, where: str) -> None:
        """TFLite's add, average and mean variants (contract (21)-(30)) on the one op kind each
        models, within the ranges their int32 arithmetic needs."""
        variant = op.requant.variant
        if op.kind is not _TFLITE_VARIANT_OPS[variant]:
            _fail(f"{where}.requant.variant", f"variant '{variant.value}' requantizes only a {_TFLITE_VARIANT_OPS[variant].value}")
        if variant is RequantVariant.TFLITE_ADD and any(t.quant.bits != 8 for t in (*ins, out)):
            _fail(f"{where}.requant.variant", "variant 'tflite_add' models TFLite's int8 add: inputs and output must be 8-bit")
        if variant is RequantVariant.TFLITE_AVGPOOL:
            if tuple(op.padding) != (0, 0):
                _fail(f"{where}.padding", "variant 'tflite_avgpool' divides by the window size: the window must not be padded")
            if ins[0].quant.zero_point != out.quant.zero_point:
                _fail(f"{where}.output", "variant 'tflite_avgpool' keeps the input's zero-point (TFLite requires it)")
        if variant is RequantVariant.TFLITE_MEAN:
            _, h, w = ins[0].shape
            left = tflite_mean_left_shift(h * w, int(op.requant.shift[0]))
            if (ins[0].quant.levels * h * w) << left >= 1 << 31:
                _fail(f"{where}.requant.shift", f"variant 'tflite_mean': the sum of {h * w} levels shifted left by {left} "
                                                f"(n = {int(op.requant.shift[0])}, contract (30)) would leave int32")

    @staticmethod
    def _check_table(op, source: Tensor, out: Tensor, where: str) -> None:
        """A Lut reads levels of a quantized input and writes levels of a quantized output: one
        entry per input level, one row or one per output channel, every entry on the output grid."""
        if not out.is_quantized:
            _fail(f"{where}.output", f"tensor '{out.name}' must be quantized")
        groups, entries = op.table.shape
        if entries != source.quant.levels + 1:
            _fail(f"{where}.table", f"has {entries} entries per row; must be 2^b = {source.quant.levels + 1} for the "
                                    f"{source.quant.bits}-bit input '{source.name}'")
        if groups not in (1, out.channels):
            _fail(f"{where}.table", f"has {groups} rows; must be 1 or the channel count {out.channels}")
        qmin, qmax = out.quant.qmin, out.quant.qmax
        if op.table.min() < qmin or op.table.max() > qmax:
            _fail(f"{where}.table", f"entries must be levels of the output in [{qmin}, {qmax}], got [{op.table.min()}, {op.table.max()}]")

    @property
    def input_tensor(self) -> Tensor:
        return self._by_name[self.input]

    @property
    def output_tensor(self) -> Tensor:
        return self._by_name[self.output]
