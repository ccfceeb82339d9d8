"""What each op of an integer program asks of the hardware: a GEMM for the systolic array, element
operations for the vector unit, or nothing (fused into its producer).

Conv2d is lowered to im2col GEMMs, one per group: ``(P x K) @ (K x N)`` with P output pixels,
K = KH * KW * C_in / groups window elements and N = C_out / groups filters, except a per-channel
1x1 conv (one weight per channel, ``groups = C_in = C_out``: a batch norm that follows no conv),
whose GEMMs would be 1 x 1 and use one PE each: it runs on the vector unit, one multiply-add per
output element. Linear is a GEMM with
P = 1 (one image: every figure of the hardware models is per inference). Pooling and the
residual add run on the vector unit, one element operation per input element of each window
(add, mul: per output element). A concat (D.17) runs on the vector unit too: per output element
one subtraction of its input's zero-point, then the requantizer, which moves the element into its
channel slot of the output (the requantizer is charged even where it is the identity, ``M = 1``:
the hardware has no separate copy path). A lookup table (lut, D.15) runs there as well: its table
of ``G x 2^b`` output levels is the layer's "weights" (read from DRAM once per inference, at the
output width), and each output element is one table read. Clamps (ReLU, ReLU6) and flatten are
fused into the producer's output stage: they cost no cycles and no traffic (the clamp's
comparators are part of the requantizer).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from aquant_sim.program import BorderTable, OpKind, Program, QuantParams
from aquant_sim.rounding import RequantVariant


class Engine(enum.Enum):
    ARRAY = "array"
    VECTOR = "vector"
    FUSED = "fused"


@dataclass(frozen=True)
class Gemm:
    """``groups`` independent products ``(pixels x window) @ (window x filters)``."""

    pixels: int
    window: int
    filters: int
    groups: int = 1

    def __post_init__(self):
        if min(self.pixels, self.window, self.filters, self.groups) < 1:
            raise ValueError(f"GEMM dimensions must be positive, got {self}")

    @property
    def macs(self) -> int:
        return self.groups * self.pixels * self.window * self.filters


@dataclass(frozen=True)
class LayerWork:
    """One op's demand. Element counts are per inference; ``*_bits`` are the stored widths
    (weights packed at b bits, activations at their b bits, accumulator outputs at 32 bits).
    ``input_elements`` counts the unique input elements the op reads (for windowed ops, those
    that some window covers: a 1x1 conv of stride 2 reads a quarter of its input)."""

    name: str
    kind: OpKind
    engine: Engine
    gemm: Gemm | None
    vector_ops: int
    input_elements: int
    input_bits: int
    weight_elements: int
    weight_bits: int
    output_elements: int
    output_bits: int
    requantized: int
    """Elements through the requantizer: the output elements of an op that ends in one."""
    borders: BorderTable | None
    """The border table of the requantizer, None when the op has none."""
    output_levels: int
    """``2^b - 1`` of the output tensor (0 when unquantized): the border unit's table width."""
    requant_variant: RequantVariant | None = None
    """The rule of the op's requantizer (None without one): which circuit requantizes."""
    asymmetric_weights: bool = False
    """Some weight zero-point ``z_w[c]`` is not 0: (5) then needs gemmlowp's row-sum trick."""

    @property
    def row_sum_adds(self) -> int:
        """Additions of ``sum(x - z_x)`` over each output position's window (per group), shared
        by all its output channels: ``groups x P x K`` with asymmetric weights, else 0."""
        return self.gemm.groups * self.gemm.pixels * self.gemm.window if self.asymmetric_weights and self.gemm else 0

    @property
    def zero_point_corrections(self) -> int:
        """Per output element one ``z_w[c] x row sum`` multiply and one subtraction (else 0)."""
        return self.output_elements if self.row_sum_adds else 0

    @property
    def macs(self) -> int:
        return self.gemm.macs if self.gemm else 0

    @property
    def uses_borders(self) -> bool:
        """True when this layer needs the border lookup unit (its table is not all 1/2)."""
        return self.borders is not None and not self.borders.is_nearest

    @property
    def input_bytes(self) -> int:
        return math.ceil(self.input_elements * self.input_bits / 8)

    @property
    def weight_bytes(self) -> int:
        return math.ceil(self.weight_elements * self.weight_bits / 8)

    @property
    def output_bytes(self) -> int:
        return math.ceil(self.output_elements * self.output_bits / 8)


def _numel(shape) -> int:
    return math.prod(shape)


def touched(size: int, out: int, kernel: int, stride: int, padding: int = 0, dilation: int = 1) -> int:
    """How many of ``size`` input positions some window reads (a strided 1x1 conv skips some)."""
    positions = (np.arange(out)[:, None] * stride - padding + np.arange(kernel)[None, :] * dilation).ravel()
    return int(np.unique(positions[(positions >= 0) & (positions < size)]).size)


def _windowed_input(op, in_shape, out_shape) -> int:
    """Unique input elements a conv or pooling op reads: channels x rows read x columns read."""
    dilation = getattr(op, "dilation", (1, 1))
    kernel = op.kernel_size
    rows, cols = (touched(in_shape[1 + a], out_shape[1 + a], kernel[a], op.stride[a], op.padding[a], dilation[a]) for a in (0, 1))
    return in_shape[0] * rows * cols


def per_channel_affine(op) -> bool:
    """A conv2d with one 1x1 weight per channel, each channel its own group (``y[c] = w[c] x[c] +
    b[c]``): vector work, not a GEMM. Its weight zero-point is a constant of the channel, folded
    into ``w[c] - z_w[c]`` beforehand, so it needs no row sum."""
    return op.kind is OpKind.CONV2D and op.weight.shape[1:] == (1, 1, 1) and op.groups == op.weight.shape[0] > 1 \
        and op.stride == (1, 1) and op.padding == op.padding_end == (0, 0)


def program_layers(program: Program) -> list[LayerWork]:
    """The hardware demand of every op of the program, in program order."""
    return [_layer(program, op) for op in program.ops]


def _layer(program: Program, op) -> LayerWork:
    ins = [program.tensor(name) for name in op.inputs]
    out = program.tensor(op.output)
    out_elements = _numel(out.shape)
    in_bits = ins[0].quant.bits
    quantized = isinstance(out.quant, QuantParams)
    requant = getattr(op, "requant", None)
    common = dict(
        name=op.name, kind=op.kind, input_elements=sum(_numel(t.shape) for t in ins), input_bits=in_bits,
        output_elements=out_elements, output_bits=out.quant.bits if quantized else 32,
        requantized=out_elements if requant is not None else 0,
        borders=requant.borders if requant is not None else None,
        requant_variant=requant.variant if requant is not None else None,
        output_levels=out.quant.levels if quantized else 0,
    )
    if op.kind in (OpKind.CONV2D, OpKind.MAXPOOL2D, OpKind.AVGPOOL2D):
        common["input_elements"] = _windowed_input(op, ins[0].shape, out.shape)
    if per_channel_affine(op):
        return LayerWork(engine=Engine.VECTOR, gemm=None, vector_ops=out_elements, weight_elements=op.weight.size,
                         weight_bits=op.weight_bits, **common)
    if op.kind is OpKind.CONV2D:
        c_out, c_in_per_group, kh, kw = op.weight.shape
        gemm = Gemm(pixels=out.shape[1] * out.shape[2], window=c_in_per_group * kh * kw,
                    filters=c_out // op.groups, groups=op.groups)
        return LayerWork(engine=Engine.ARRAY, gemm=gemm, vector_ops=0, weight_elements=op.weight.size,
                         weight_bits=op.weight_bits, asymmetric_weights=bool(np.any(op.weight_zero_point)), **common)
    if op.kind is OpKind.LINEAR:
        gemm = Gemm(pixels=1, window=op.weight.shape[1], filters=op.weight.shape[0])
        return LayerWork(engine=Engine.ARRAY, gemm=gemm, vector_ops=0, weight_elements=op.weight.size,
                         weight_bits=op.weight_bits, asymmetric_weights=bool(np.any(op.weight_zero_point)), **common)
    if op.kind is OpKind.LUT:
        return LayerWork(engine=Engine.VECTOR, gemm=None, vector_ops=out_elements, weight_elements=op.table.size,
                         weight_bits=out.quant.bits, **common)
    if op.kind in (OpKind.ADD, OpKind.MUL, OpKind.CONCAT):
        ops = out_elements
    elif op.kind in (OpKind.MAXPOOL2D, OpKind.AVGPOOL2D):
        ops = out_elements * op.kernel_size[0] * op.kernel_size[1]
    elif op.kind is OpKind.GLOBAL_AVGPOOL:
        ops = _numel(ins[0].shape)
    else:  # CLAMP, FLATTEN: fused into the producer's output stage.
        return LayerWork(engine=Engine.FUSED, gemm=None, vector_ops=0, weight_elements=0, weight_bits=0,
                         **{**common, "input_elements": 0, "output_elements": 0})
    return LayerWork(engine=Engine.VECTOR, gemm=None, vector_ops=ops, weight_elements=0, weight_bits=0, **common)
