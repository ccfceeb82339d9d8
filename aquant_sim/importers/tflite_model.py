"""Import an int8 ``.tflite`` model into an integer program whose requantizers are TFLite's own, so
that the simulator computes the integers LiteRT's reference kernels compute.

The file is read with the ``tflite`` package (generated flatbuffer readers: nothing in the file is
executed). Reading bounds memory by the file's size: every vector length the file declares is
checked against the bytes there are before it is walked, every constant buffer against its
tensor's declared shape and type before it is copied, and every activation shape against
``program.MAX_TENSOR_ELEMENTS``. A damaged file gives one :class:`ArtifactError` naming the file
and what is wrong; an operator the importer does not translate gives :class:`UnsupportedError`
naming its index and op type.

One subgraph, one NHWC int8 input (batch 1), int8 activations with one scale and zero-point each,
int8 weights with zero-point 0 (one scale per tensor or per output channel), int32 biases.
Translation, per operator (program tensors are (C, H, W) or (C,); TFLite's are NHWC):

* ``CONV_2D``, ``DEPTHWISE_CONV_2D``: ``conv2d`` (depthwise: ``groups`` = input channels), SAME
  or VALID padding as TFLite computes it (``padding_end`` carries SAME's extra row and column),
  the GEMMLOWP requantizer (contract (10)-(13)) of ``M[c] = s_x * s_w[c] / s_y`` in float64
  (``PopulateConvolutionQuantizationParams``, ``tensorflow/lite/kernels/kernel_util.cc``);
* ``FULLY_CONNECTED`` on a vector: ``linear`` with the FLOAT64 requantizer (31)-(32): LiteRT's
  reference kernels requantize a fully-connected layer in double, ``round(acc * E)`` with
  ``E = double(s_x) * double(s_w[c]) / double(s_y)`` (its optimized kernels use GEMMLOWP);
  after a ``RESHAPE`` of an (H, W, C) tensor its weight columns are reordered from TFLite's
  HWC order to the program's CHW flatten order;
* ``ADD`` of two tensors of one shape: ``add`` with the TFLITE_ADD requantizer (21)-(24), the
  multipliers of ``tensorflow/lite/kernels/add.cc``: ``s_a / (2 max(s_a, s_b))``,
  ``s_b / (2 max(s_a, s_b))`` and ``2 max(s_a, s_b) / (2^20 s_y)``;
* ``MAX_POOL_2D``: ``maxpool2d``, SAME or VALID padding as TFLite computes it (``padding_end``
  carries SAME's extra row and column; TFLite skips padded positions, the program's hold
  ``qmin`` and never win);
* ``AVERAGE_POOL_2D`` without padding: ``avgpool2d`` with the TFLITE_AVGPOOL rule (25)-(27);
* ``MEAN`` over height and width with ``keep_dims``: ``global_avgpool`` with TFLITE_MEAN
  (28)-(30), ``M = s_x / s_y`` (``PrepareMeanOrSum``, ``tensorflow/lite/kernels/reduce.cc``);
* ``RESHAPE`` of (1, H, W, C) to (1, H * W * C): ``flatten``;
* a fused RELU or RELU6 whose range (``CalculateActivationRangeQuantized``: ``z + round(f / s)``
  of 0 and 6, in float32, half away from zero) is narrower than int8: a ``clamp`` after the op,
  on a tensor that LiteRT does not have (``ImportedTflite.internal``).

Every multiplier goes through ``rounding.quantize_multiplier``, the same ``m`` as TFLite's
``QuantizeMultiplier``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aquant_sim import rounding
from aquant_sim.errors import ArtifactError, ProgramError, UnsupportedError
from aquant_sim.program import (
    MAX_FIELD_INT, MAX_TENSOR_ELEMENTS, Add, AvgPool2d, BorderTable, Clamp, Conv2d, Flatten, GlobalAvgPool, Linear, MaxPool2d, Program,
    QuantParams, Requantizer, Tensor,
)

ACCUMULATOR_BITS = 32
"""TFLite accumulates in int32."""
NEAREST = BorderTable.nearest(1)
"""The border table of a variant without a fraction (unread)."""
MAX_FILE_BYTES = 1 << 31
"""The largest file read (flatbuffers address 2 GiB; larger models keep buffers outside)."""

_INT8, _INT32 = 9, 2
"""``tflite.TensorType`` values."""
_ACTIVATIONS = {0: "NONE", 1: "RELU", 3: "RELU6"}
"""``tflite.ActivationFunctionType`` values the importer translates."""
_SAME, _VALID = 0, 1
"""``tflite.Padding`` values."""
_ITEM_BYTES = {_INT8: 1, _INT32: 4}


@dataclass(frozen=True)
class ImportedTflite:
    """A program and what verification needs: for each program tensor that LiteRT also has, the
    TFLite tensor index (``tensor_index``) and, for a vector flattened from (C, H, W), that shape
    (``flattened``: LiteRT holds it in HWC order); ``internal`` names the program tensors LiteRT
    does not have (an op's output before its fused activation's clamp)."""

    program: Program
    tensor_index: dict[str, int]
    flattened: dict[str, tuple[int, int, int]]
    internal: frozenset[str]
    path: Path

    def to_program_layout(self, name: str, levels: np.ndarray) -> np.ndarray:
        """LiteRT's NHWC levels of tensor ``name`` in the program's (N, C, H, W) or (N, C) layout."""
        levels = np.asarray(levels)
        if name in self.flattened:
            c, h, w = self.flattened[name]
            return levels.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(levels.shape[0], -1)
        if levels.ndim == 4:
            return levels.transpose(0, 3, 1, 2)
        return levels


class _Reader:
    """The model's flatbuffer, every access checked: lengths against the file's size, buffers
    against their tensors' declared shapes."""

    def __init__(self, data: bytes, path: Path):
        import tflite

        self.data, self.path = data, path
        if len(data) < 8 or data[4:8] != b"TFL3":
            self.fail("not a TFLite model (no 'TFL3' file identifier)")
        self.model = tflite.Model.GetRootAs(data, 0)
        self.codes = [self.opcode(self.model.OperatorCodes(i)) for i in range(self.length(self.model.OperatorCodesLength(), "operator codes"))]
        if self.length(self.model.SubgraphsLength(), "subgraphs") != 1:
            self.fail(f"the model must have one subgraph, it has {self.model.SubgraphsLength()}")
        self.graph = self.model.Subgraphs(0)
        self.buffer_count = self.length(self.model.BuffersLength(), "buffers")

    def fail(self, message: str):
        raise ArtifactError(f"{self.path}: {message}")

    def length(self, value: int, what: str) -> int:
        """A vector length the file declares; each element takes at least one byte of the file."""
        if not 0 <= value <= len(self.data):
            self.fail(f"malformed file: {what} declares {value} entries in a file of {len(self.data)} bytes")
        return value

    def opcode(self, code) -> int:
        return max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))

    def vector(self, getter, length: int, what: str) -> list[int]:
        return [int(getter(i)) for i in range(self.length(length, what))]

    def tensor_count(self) -> int:
        return self.length(self.graph.TensorsLength(), "tensors")

    def tensor(self, index: int):
        if not 0 <= index < self.tensor_count():
            self.fail(f"malformed file: tensor index {index} outside 0..{self.tensor_count() - 1}")
        return self.graph.Tensors(index)

    def shape(self, index: int) -> tuple[int, ...]:
        tensor = self.tensor(index)
        shape = tuple(self.vector(tensor.Shape, tensor.ShapeLength(), f"tensor {index}'s shape"))
        if any(d < 1 for d in shape) or int(np.prod(shape, dtype=object)) > MAX_TENSOR_ELEMENTS:
            self.fail(f"tensor {index} declares shape {shape}: dimensions must be positive, at most {MAX_TENSOR_ELEMENTS} elements")
        return shape

    def name(self, index: int) -> str:
        raw = self.tensor(index).Name()
        return f"tensor{index}" if not raw else raw.decode("utf-8", errors="replace")

    def quant(self, index: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Scales (float32), zero-points and quantized dimension of a tensor; empty when absent."""
        q = self.tensor(index).Quantization()
        if q is None:
            return np.zeros(0, np.float32), np.zeros(0, np.int64), 0
        scale = np.array([q.Scale(i) for i in range(self.length(q.ScaleLength(), "scales"))], dtype=np.float32)
        zero = np.array([q.ZeroPoint(i) for i in range(self.length(q.ZeroPointLength(), "zero-points"))], dtype=np.int64)
        return scale, zero, int(q.QuantizedDimension())

    def constant(self, index: int, type_: int) -> np.ndarray | None:
        """The data of a constant tensor of ``type_`` (its declared shape), or None when it has no
        buffer data (an activation). The buffer's size must be the shape's."""
        tensor = self.tensor(index)
        if tensor.Type() != type_:
            return None
        buffer_index = int(tensor.Buffer())
        if buffer_index == 0:
            return None
        if not 0 < buffer_index < self.buffer_count:
            self.fail(f"malformed file: tensor {index} refers to buffer {buffer_index} of {self.buffer_count}")
        buffer = self.model.Buffers(buffer_index)
        offset, size = int(buffer.Offset()), int(buffer.Size())
        if offset > 1:  # data outside the flatbuffer, after it in the file
            if offset + size > len(self.data):
                self.fail(f"malformed file: buffer {buffer_index} lies at bytes {offset}..{offset + size} of {len(self.data)}")
            raw = self.data[offset:offset + size]
        else:
            length = self.length(buffer.DataLength(), f"buffer {buffer_index}")
            if length == 0:
                return None
            start = buffer._tab.Vector(buffer._tab.Offset(4))
            if start + length > len(self.data):
                self.fail(f"malformed file: buffer {buffer_index} runs past the end of the file")
            raw = self.data[start:start + length]
        shape = self.shape(index)
        expected = int(np.prod(shape)) * _ITEM_BYTES[type_]
        if len(raw) != expected:
            self.fail(f"tensor {index} '{self.name(index)}' declares shape {shape} ({expected} bytes), its buffer holds {len(raw)}")
        return np.frombuffer(raw, dtype=np.int8 if type_ == _INT8 else "<i4").reshape(shape).copy()


@dataclass
class _Builder:
    """The program being built from the operators, in order."""

    reader: _Reader
    tensors: dict[str, Tensor] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    flattened: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    internal: set[str] = field(default_factory=set)
    ops: list = field(default_factory=list)
    where: str = ""

    def fail(self, message: str):
        raise UnsupportedError(f"{self.reader.path}: {self.where}: {message}")

    def activation_quant(self, index: int) -> QuantParams:
        r = self.reader
        if r.tensor(index).Type() != _INT8:
            self.fail(f"tensor {index} '{r.name(index)}' must be int8, got TFLite type {r.tensor(index).Type()}")
        scale, zero, _ = r.quant(index)
        if scale.size != 1 or zero.size != 1:
            self.fail(f"tensor {index} '{r.name(index)}' must have one scale and zero-point, got {scale.size} and {zero.size}")
        if not np.isfinite(scale[0]) or scale[0] <= 0 or not -128 <= zero[0] <= 127:
            self.fail(f"tensor {index} '{r.name(index)}': scale {scale[0]!r} must be positive and finite, "
                      f"zero-point {zero[0]} in [-128, 127]")
        return QuantParams(8, True, float(scale[0]), int(zero[0]))

    def source(self, index: int) -> str:
        """The program tensor that TFLite tensor ``index`` is (already produced)."""
        if index not in self.names:
            self.fail(f"input tensor {index} '{self.reader.name(index)}' is not produced by an earlier operator "
                      "(only the graph input and constants may be read before they are written)")
        return self.names[index]

    def output(self, index: int, shape: tuple[int, ...], quant: QuantParams, internal: bool = False) -> str:
        if index in self.names:
            self.fail(f"output tensor {index} is written twice")
        name = self.reader.name(index)
        if internal:
            name = f"{name}/before_activation"
        while name in self.tensors:
            name = f"{name}#{index}"
        self.tensors[name] = Tensor(name, shape, quant)
        if internal:
            self.internal.add(name)
        else:
            self.names[index] = name
        return name

    def activation_range(self, activation: int, quant: QuantParams) -> tuple[int, int]:
        """TFLite's ``CalculateActivationRangeQuantized``: ``z + round(f / s)`` of 0 and 6 (float32
        division, rounded half away from zero), within int8."""
        if activation not in _ACTIVATIONS:
            self.fail(f"fused activation {activation} is not supported (supported: NONE, RELU, RELU6)")

        def level(f: float) -> int:
            v = float(np.float32(f) / np.float32(quant.scale))
            return quant.zero_point + int(np.sign(v) * np.floor(abs(v) + 0.5))

        lo, hi = quant.qmin, quant.qmax
        if _ACTIVATIONS[activation] in ("RELU", "RELU6"):
            lo = max(lo, level(0.0))
        if _ACTIVATIONS[activation] == "RELU6":
            hi = min(hi, level(6.0))
        if lo > hi:
            self.fail(f"the fused activation's range [{lo}, {hi}] is empty")
        return lo, hi

    def finish(self, out_index: int, shape, quant: QuantParams, activation: int, make_op) -> None:
        """Add the op that ``make_op(output_name)`` builds, followed by a clamp when the fused
        activation is narrower than int8."""
        lo, hi = self.activation_range(activation, quant)
        if (lo, hi) == (quant.qmin, quant.qmax):
            self.ops.append(make_op(self.output(out_index, shape, quant)))
            return
        inner = self.output(out_index, shape, quant, internal=True)
        self.ops.append(make_op(inner))
        name = self.output(out_index, shape, quant)
        self.ops.append(Clamp(name, inner, name, np.array([lo]), np.array([hi])))


def _multiplier(real) -> tuple[np.ndarray, np.ndarray]:
    return rounding.quantize_multiplier(np.asarray(real, dtype=np.float64))


def _gemmlowp(s_x: float, w_scale: np.ndarray, s_y: float, channels: int) -> Requantizer:
    """The GEMMLOWP requantizer of ``M[c] = double(s_x) * double(s_w[c]) / double(s_y)``."""
    real = np.float64(np.float32(s_x)) * w_scale.astype(np.float64) / np.float64(np.float32(s_y))
    m, n = _multiplier(np.broadcast_to(real, (channels,)))
    return Requantizer(m, n, NEAREST, rounding.RequantVariant.GEMMLOWP)


def _options(op, kind: str):
    """The operator's builtin options table as ``tflite.<kind>`` (None when absent)."""
    import tflite

    table = op.BuiltinOptions()
    if table is None:
        return None
    options = getattr(tflite, kind)()
    options.Init(table.Bytes, table.Pos)
    return options


def _padding(b: _Builder, padding: int, size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
             dilation: tuple[int, int] = (1, 1)):
    """TFLite's padding (``ComputePaddingHeightWidth``): SAME pads ``max((ceil(size / stride) - 1) *
    stride + span - size, 0)``, half before (rounded down) and the rest after; VALID pads nothing.
    Kernel sizes, strides and dilations must be in ``[1, MAX_FIELD_INT]`` (as the program's)."""
    for what, pair in (("kernel size", kernel), ("stride", stride), ("dilation", dilation)):
        if not all(1 <= v <= MAX_FIELD_INT for v in pair):
            b.fail(f"{what} {tuple(pair)} must be in [1, {MAX_FIELD_INT}]")
    if padding == _VALID:
        return (0, 0), (0, 0)
    if padding != _SAME:
        b.fail(f"padding {padding} is not SAME or VALID")
    before, after = [], []
    for a in (0, 1):
        span = dilation[a] * (kernel[a] - 1) + 1
        out = -(-size[a] // stride[a])
        total = max((out - 1) * stride[a] + span - size[a], 0)
        before.append(total // 2)
        after.append(total - total // 2)
    return tuple(before), tuple(after)


def _weights(b: _Builder, index: int, axis: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Int8 weights and their float32 scales per output channel (broadcast when per tensor)."""
    r = b.reader
    values = r.constant(index, _INT8)
    if values is None:
        b.fail(f"weights tensor {index} must be a constant int8 tensor")
    scale, zero, dim = r.quant(index)
    if scale.size not in (1, channels) or (scale.size > 1 and dim != axis):
        b.fail(f"weights tensor {index} must have one scale or one per output channel (dimension {axis}), "
               f"got {scale.size} scales on dimension {dim}")
    if np.any(zero != 0):
        b.fail(f"weights tensor {index} must have zero-point 0 (TFLite's int8 kernels read none)")
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        b.fail(f"weights tensor {index} has a scale that is not positive and finite")
    if np.any(values == -128):
        b.fail(f"weights tensor {index} holds -128; TFLite's int8 weights are in [-127, 127]")
    return values, np.broadcast_to(scale, (channels,)).astype(np.float32)


def _bias(b: _Builder, inputs: list[int], channels: int) -> np.ndarray:
    if len(inputs) < 3 or inputs[2] < 0:
        return np.zeros(channels, np.int64)
    values = b.reader.constant(inputs[2], _INT32)
    if values is None or values.shape != (channels,):
        b.fail(f"bias tensor {inputs[2]} must be a constant int32 vector of {channels} entries")
    return values.astype(np.int64)


def _conv(b: _Builder, op, inputs: list[int], outputs: list[int], depthwise: bool) -> None:
    r = b.reader
    x = b.source(inputs[0])
    if len(b.tensors[x].shape) != 3:
        b.fail("the input must be (1, H, W, C)")
    c, h, w = b.tensors[x].shape
    options = _options(op, "DepthwiseConv2DOptions" if depthwise else "Conv2DOptions")
    if options is None:
        b.fail("the operator has no options")
    stride = (int(options.StrideH()), int(options.StrideW()))
    dilation = (int(options.DilationHFactor()), int(options.DilationWFactor()))
    filter_shape = r.shape(inputs[1])
    if len(filter_shape) != 4:
        b.fail(f"the filter must be 4-D, got {filter_shape}")
    if depthwise:
        _, kh, kw, out_channels = filter_shape
        if filter_shape[0] != 1 or out_channels % c:
            b.fail(f"the depthwise filter {filter_shape} must be (1, KH, KW, C * multiplier) for {c} input channels")
        values, w_scale = _weights(b, inputs[1], 3, out_channels)
        weight = values[0].transpose(2, 0, 1)[:, None]  # (O, 1, KH, KW): output o reads input channel o // multiplier
        groups = c
    else:
        out_channels, kh, kw, in_channels = filter_shape
        if in_channels != c:
            b.fail(f"the filter {filter_shape} expects {in_channels} input channels, the input has {c}")
        values, w_scale = _weights(b, inputs[1], 0, out_channels)
        weight = values.transpose(0, 3, 1, 2)
        groups = 1
    padding, padding_end = _padding(b, int(options.Padding()), (h, w), (kh, kw), stride, dilation)
    out_quant = b.activation_quant(outputs[0])
    requant = _gemmlowp(b.tensors[x].quant.scale, w_scale, out_quant.scale, out_channels)
    bias = _bias(b, inputs, out_channels)

    def make(name):
        return Conv2d(name=name, input=x, output=name, weight=weight, weight_bits=8, weight_scale=w_scale.astype(np.float64),
                      bias=bias, requant=requant, stride=stride, padding=padding, dilation=dilation, groups=groups,
                      padding_end=padding_end)

    shape = make("probe").output_shape([b.tensors[x].shape])
    _check_shape(b, outputs[0], shape)
    b.finish(outputs[0], shape, out_quant, int(options.FusedActivationFunction()), make)


def _check_shape(b: _Builder, index: int, shape: tuple[int, ...]) -> None:
    """The declared NHWC (or (1, C)) shape of output ``index`` must be the program's ``shape``."""
    declared = b.reader.shape(index)
    expected = (1, shape[1], shape[2], shape[0]) if len(shape) == 3 else (1, *shape)
    if declared != expected:
        b.fail(f"output tensor {index} is declared {declared}, the operator computes {expected}")


def _fully_connected(b: _Builder, op, inputs: list[int], outputs: list[int]) -> None:
    r = b.reader
    x = b.source(inputs[0])
    if len(b.tensors[x].shape) != 1:
        b.fail("the input must be a vector (1, N); reshape it first")
    options = _options(op, "FullyConnectedOptions")
    if options is not None and (options.KeepNumDims() or options.WeightsFormat() != 0):
        b.fail("keep_num_dims and shuffled weights are not supported")
    filter_shape = r.shape(inputs[1])
    if len(filter_shape) != 2 or filter_shape[1] != b.tensors[x].shape[0]:
        b.fail(f"the filter {filter_shape} must be (O, {b.tensors[x].shape[0]})")
    out_features = filter_shape[0]
    values, w_scale = _weights(b, inputs[1], 0, out_features)
    if x in b.flattened:  # TFLite's vector is in HWC order, the program's flatten in CHW order
        c, h, w = b.flattened[x]
        values = values.reshape(out_features, h, w, c).transpose(0, 3, 1, 2).reshape(out_features, -1)
    out_quant = b.activation_quant(outputs[0])
    real = np.float64(np.float32(b.tensors[x].quant.scale)) * w_scale.astype(np.float64) / np.float64(np.float32(out_quant.scale))
    if np.any(real > 1):
        b.fail(f"its scale s_x * s_w / s_y reaches {float(real.max())!r}; the importer models it up to 1")
    m, n = rounding.float64_multiplier(real)
    requant = Requantizer(m, n, NEAREST, rounding.RequantVariant.FLOAT64)
    bias = _bias(b, inputs, out_features)
    _check_shape(b, outputs[0], (out_features,))
    activation = 0 if options is None else int(options.FusedActivationFunction())
    b.finish(outputs[0], (out_features,), out_quant, activation,
             lambda name: Linear(name=name, input=x, output=name, weight=values, weight_bits=8,
                                 weight_scale=w_scale.astype(np.float64), bias=bias, requant=requant))


def _add(b: _Builder, op, inputs: list[int], outputs: list[int]) -> None:
    x_a, x_b = b.source(inputs[0]), b.source(inputs[1])
    if b.tensors[x_a].shape != b.tensors[x_b].shape:
        b.fail(f"the inputs' shapes differ ({b.tensors[x_a].shape}, {b.tensors[x_b].shape}): broadcasting is not supported")
    options = _options(op, "AddOptions")
    out_quant = b.activation_quant(outputs[0])
    s_a, s_b, s_y = (np.float64(np.float32(q.scale)) for q in (b.tensors[x_a].quant, b.tensors[x_b].quant, out_quant))
    twice_max = 2 * max(s_a, s_b)
    real = np.array([s_a / twice_max, s_b / twice_max, twice_max / ((1 << rounding.TFLITE_ADD_LEFT_SHIFT) * s_y)])
    if real[2] >= 1:
        b.fail(f"the output scale {float(s_y)!r} is too small for TFLite's add (2 max(s_a, s_b) / (2^20 s_y) >= 1)")
    m, n = _multiplier(real)
    requant = Requantizer(m, n, NEAREST, rounding.RequantVariant.TFLITE_ADD)
    shape = b.tensors[x_a].shape
    _check_shape(b, outputs[0], shape)
    activation = 0 if options is None else int(options.FusedActivationFunction())
    b.finish(outputs[0], shape, out_quant, activation, lambda name: Add(name, x_a, x_b, name, 1, 1, requant))


def _pool(b: _Builder, op, inputs: list[int], outputs: list[int], average: bool) -> None:
    x = b.source(inputs[0])
    if len(b.tensors[x].shape) != 3:
        b.fail("the input must be (1, H, W, C)")
    c, h, w = b.tensors[x].shape
    options = _options(op, "Pool2DOptions")
    if options is None:
        b.fail("the operator has no options")
    kernel = (int(options.FilterHeight()), int(options.FilterWidth()))
    stride = (int(options.StrideH()), int(options.StrideW()))
    padding, padding_end = _padding(b, int(options.Padding()), (h, w), kernel, stride)
    out_quant = b.activation_quant(outputs[0])
    if out_quant != b.tensors[x].quant:
        b.fail(f"the output's quantization {out_quant} differs from the input's {b.tensors[x].quant}; "
               "TFLite's int8 pooling keeps it (and ignores the output's)")
    if average:
        if padding != (0, 0) or padding_end != (0, 0):
            b.fail("padded average pooling (SAME that pads) divides by the in-bounds count, which is not modelled")
        requant = Requantizer(*([v] for v in rounding.TFLITE_AVGPOOL_MULTIPLIER), NEAREST, rounding.RequantVariant.TFLITE_AVGPOOL)

        def make(name):
            return AvgPool2d(name, x, name, kernel, stride, requant)
    else:
        def make(name):
            return MaxPool2d(name, x, name, kernel, stride, padding, padding_end=padding_end)

    shape = make("probe").output_shape([b.tensors[x].shape])
    _check_shape(b, outputs[0], shape)
    b.finish(outputs[0], shape, out_quant, int(options.FusedActivationFunction()), make)


def _mean(b: _Builder, op, inputs: list[int], outputs: list[int]) -> None:
    x = b.source(inputs[0])
    if len(b.tensors[x].shape) != 3 or len(inputs) < 2:
        b.fail("MEAN must reduce a (1, H, W, C) tensor by a constant axis tensor")
    axes = b.reader.constant(inputs[1], _INT32)
    options = _options(op, "ReducerOptions")
    if axes is None or sorted(int(a) % 4 for a in axes.reshape(-1)) != [1, 2] or options is None or not options.KeepDims():
        b.fail("only MEAN over axes [1, 2] with keep_dims is modelled (the other forms run other TFLite kernels)")
    c, _, _ = b.tensors[x].shape
    out_quant = b.activation_quant(outputs[0])
    real = np.float64(np.float32(b.tensors[x].quant.scale)) / np.float64(np.float32(out_quant.scale))
    m, n = _multiplier([real])
    requant = Requantizer(m, n, NEAREST, rounding.RequantVariant.TFLITE_MEAN)
    _check_shape(b, outputs[0], (c, 1, 1))
    b.ops.append(GlobalAvgPool(b.output(outputs[0], (c, 1, 1), out_quant), x, b.names[outputs[0]], requant))


def _reshape(b: _Builder, op, inputs: list[int], outputs: list[int]) -> None:
    x = b.source(inputs[0])
    shape = b.tensors[x].shape
    out_shape = b.reader.shape(outputs[0])
    size = int(np.prod(shape))
    if len(shape) != 3 or out_shape != (1, size):
        b.fail(f"only a reshape of (1, H, W, C) to (1, H * W * C) is modelled, got {out_shape}")
    out_quant = b.activation_quant(outputs[0])
    if out_quant != b.tensors[x].quant:
        b.fail("the output's quantization differs from the input's")
    name = b.output(outputs[0], (size,), out_quant)
    if shape[1] * shape[2] > 1:
        b.flattened[name] = shape
    b.ops.append(Flatten(name, x, name))


_HANDLERS = {
    3: lambda b, op, i, o: _conv(b, op, i, o, depthwise=False),
    4: lambda b, op, i, o: _conv(b, op, i, o, depthwise=True),
    9: _fully_connected,
    0: _add,
    17: lambda b, op, i, o: _pool(b, op, i, o, average=False),
    1: lambda b, op, i, o: _pool(b, op, i, o, average=True),
    40: _mean,
    22: _reshape,
}
"""``tflite.BuiltinOperator`` code -> translation."""


def _op_name(code: int) -> str:
    import tflite

    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    return names.get(code, f"builtin {code}")


def _translate(reader: _Reader) -> ImportedTflite:
    graph = reader.graph
    builder = _Builder(reader)
    graph_inputs = reader.vector(graph.Inputs, graph.InputsLength(), "graph inputs")
    graph_outputs = reader.vector(graph.Outputs, graph.OutputsLength(), "graph outputs")
    if len(graph_inputs) != 1 or len(graph_outputs) != 1:
        raise UnsupportedError(f"{reader.path}: the model must have one input and one output, "
                               f"it has {len(graph_inputs)} and {len(graph_outputs)}")
    builder.where = f"input tensor {graph_inputs[0]}"
    shape = reader.shape(graph_inputs[0])
    if len(shape) != 4 or shape[0] != 1:
        builder.fail(f"the input must be (1, H, W, C), got {shape}")
    program_input = builder.output(graph_inputs[0], (shape[3], shape[1], shape[2]), builder.activation_quant(graph_inputs[0]))
    supported = ", ".join(sorted(_op_name(code) for code in _HANDLERS))
    count = reader.length(graph.OperatorsLength(), "operators")
    for index in range(count):
        op = graph.Operators(index)
        opcode_index = int(op.OpcodeIndex())
        if not 0 <= opcode_index < len(reader.codes):
            reader.fail(f"malformed file: operator {index} refers to operator code {opcode_index} of {len(reader.codes)}")
        code = reader.codes[opcode_index]
        builder.where = f"operator {index} ({_op_name(code)})"
        if code not in _HANDLERS:
            builder.fail(f"op type {_op_name(code)} is not supported (supported: {supported})")
        inputs = reader.vector(op.Inputs, op.InputsLength(), f"operator {index}'s inputs")
        outputs = reader.vector(op.Outputs, op.OutputsLength(), f"operator {index}'s outputs")
        if not inputs or len(outputs) != 1:
            builder.fail(f"expects inputs and one output, got {len(inputs)} and {len(outputs)}")
        try:
            _HANDLERS[code](builder, op, inputs, outputs)
        except ProgramError as error:
            builder.fail(str(error))
    if not builder.ops:
        raise UnsupportedError(f"{reader.path}: the model has no operator")
    if graph_outputs[0] not in builder.names:
        raise UnsupportedError(f"{reader.path}: the graph output tensor {graph_outputs[0]} is not written by any operator")
    try:
        program = Program(tuple(builder.tensors.values()), tuple(builder.ops), program_input, builder.names[graph_outputs[0]],
                          BorderTable.nearest(1), ACCUMULATOR_BITS, rounding.OverflowPolicy.WRAP)
    except ProgramError as error:
        raise UnsupportedError(f"{reader.path}: the translated program is invalid: {error}") from None
    return ImportedTflite(program, {name: index for index, name in builder.names.items()}, dict(builder.flattened),
                          frozenset(builder.internal), reader.path)


def import_tflite(path) -> ImportedTflite:
    """Read an int8 ``.tflite`` model as an integer program with TFLite's requantizers. Raises
    :class:`ArtifactError` for a damaged file and :class:`UnsupportedError` naming the first
    operator (index and op type) the importer cannot translate."""
    path = Path(path)
    try:
        import tflite  # noqa: F401 - the schema package, needed by the reader
    except ImportError as error:  # pragma: no cover - the tflite extra is installed in CI
        raise UnsupportedError("importing TFLite models needs the 'tflite' package (pip install aquant-sim[tflite])") from error
    try:
        size = path.stat().st_size
    except OSError as error:
        raise ArtifactError(f"{path}: cannot read: {error.strerror}") from None
    if size > MAX_FILE_BYTES:
        raise ArtifactError(f"{path}: {size} bytes, more than a flatbuffer can address ({MAX_FILE_BYTES})")
    data = path.read_bytes()
    try:
        return _translate(_Reader(data, path))
    except (IndexError, struct.error, ValueError, TypeError, OverflowError, AttributeError, UnicodeDecodeError) as error:
        if isinstance(error, (ArtifactError, ProgramError)):
            raise
        # The generated readers follow offsets without checking them: a damaged file ends here.
        raise ArtifactError(f"{path}: malformed file ({type(error).__name__}: {str(error)[:120]})") from None
