"""Int8 ``.tflite`` models written with the ``tflite`` package's flatbuffer builders, without
TensorFlow: the test models of the TFLite importer and of ``aquant verify --against litert``.

:class:`TfliteWriter` serializes tensors (int8 activations and weights with per-tensor or
per-channel scales, int32 biases and shapes) and builtin operators into a model file that LiteRT
loads. :func:`small_cnn` quantizes a small NHWC network (conv, depthwise conv, residual add, max
and average pooling, mean, reshape, fully connected; fused RELU and RELU6) the way TFLite's
converter does: symmetric int8 weights (per output channel, or one scale per tensor), int32
biases at ``s_x * s_w``, asymmetric int8 activations whose scale and zero-point cover each
tensor's float range on a calibration batch (computed here in float64). :func:`zoo_cnn` builds
the zoo's architectures (ResNet-20, ResNet-18, the MobileNetV2-style net of
:mod:`aquant_sim.models`) the same way, one builder per block kind, their layer structure read
from the zoo's torch modules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_INT8, _INT32, _FLOAT32 = 9, 2, 0
"""``tflite.TensorType`` values of the types written here."""
_DTYPES = {_INT8: np.int8, _INT32: np.int32, _FLOAT32: np.float32}


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of the model: its TFLite type, shape, quantization (scales and zero-points,
    one or one per slice of ``axis``; None for unquantized tensors) and constant ``data``."""

    name: str
    shape: tuple[int, ...]
    type: int
    scale: tuple[float, ...] | None = None
    zero_point: tuple[int, ...] | None = None
    axis: int = 0
    data: np.ndarray | None = None


@dataclass(frozen=True)
class OperatorSpec:
    """One builtin operator: its ``tflite.BuiltinOperator`` code, tensor indices and options
    (``tflite.BuiltinOptions`` type and a dict of ``<Options>Add<Field>`` values)."""

    code: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options_type: int = 0
    options: tuple[tuple[str, object], ...] = ()


class TfliteWriter:
    """Collects tensors and operators of one subgraph and writes the model flatbuffer."""

    def __init__(self):
        self.tensors: list[TensorSpec] = []
        self.operators: list[OperatorSpec] = []

    def tensor(self, name: str, shape, type_: int = _INT8, scale=None, zero_point=None, axis: int = 0, data=None) -> int:
        """Add a tensor; returns its index. ``scale`` and ``zero_point`` are scalars or vectors."""
        scale = None if scale is None else tuple(float(s) for s in np.atleast_1d(scale))
        zero_point = None if zero_point is None else tuple(int(z) for z in np.atleast_1d(zero_point))
        if data is not None:
            data = np.ascontiguousarray(np.asarray(data, dtype=_DTYPES[type_]).reshape(shape))
        self.tensors.append(TensorSpec(name, tuple(int(d) for d in shape), type_, scale, zero_point, axis, data))
        return len(self.tensors) - 1

    def operator(self, code: int, inputs, outputs, options_type: int = 0, **options) -> None:
        self.operators.append(OperatorSpec(code, tuple(inputs), tuple(outputs), options_type, tuple(options.items())))

    def serialize(self, inputs, outputs) -> bytes:
        """The model file: one subgraph with graph ``inputs`` and ``outputs`` (tensor indices)."""
        import flatbuffers
        import tflite

        b = flatbuffers.Builder(1024)

        def int_vector(start, values):
            start(b, len(values))
            for v in reversed(values):
                b.PrependInt32(int(v))
            return b.EndVector()

        def table_vector(start, offsets):
            start(b, len(offsets))
            for o in reversed(offsets):
                b.PrependUOffsetTRelative(o)
            return b.EndVector()

        buffers = [None] + [t.data for t in self.tensors if t.data is not None]
        buffer_offsets = []
        for data in buffers:
            payload = None if data is None else b.CreateNumpyVector(np.frombuffer(data.tobytes(), dtype=np.uint8))
            tflite.BufferStart(b)
            if payload is not None:
                tflite.BufferAddData(b, payload)
            buffer_offsets.append(tflite.BufferEnd(b))
        tensor_offsets, next_buffer = [], 1
        for t in self.tensors:
            name = b.CreateString(t.name)
            shape = int_vector(tflite.TensorStartShapeVector, t.shape)
            quant = None
            if t.scale is not None:
                scale = b.CreateNumpyVector(np.asarray(t.scale, dtype=np.float32))
                zero = b.CreateNumpyVector(np.asarray(t.zero_point, dtype=np.int64))
                tflite.QuantizationParametersStart(b)
                tflite.QuantizationParametersAddScale(b, scale)
                tflite.QuantizationParametersAddZeroPoint(b, zero)
                tflite.QuantizationParametersAddQuantizedDimension(b, t.axis)
                quant = tflite.QuantizationParametersEnd(b)
            tflite.TensorStart(b)
            tflite.TensorAddShape(b, shape)
            tflite.TensorAddType(b, t.type)
            tflite.TensorAddName(b, name)
            if t.data is not None:
                tflite.TensorAddBuffer(b, next_buffer)
                next_buffer += 1
            if quant is not None:
                tflite.TensorAddQuantization(b, quant)
            tensor_offsets.append(tflite.TensorEnd(b))
        codes = sorted({op.code for op in self.operators})
        operator_offsets = []
        for op in self.operators:
            ins = int_vector(tflite.OperatorStartInputsVector, op.inputs)
            outs = int_vector(tflite.OperatorStartOutputsVector, op.outputs)
            options = None
            if op.options_type:
                kind = tflite.BuiltinOptions.__dict__
                name = next(k for k, v in kind.items() if v == op.options_type and not k.startswith("_"))
                fields = []
                for field, value in op.options:
                    if isinstance(value, (list, tuple)):
                        value = int_vector(getattr(tflite, f"{name}Start{field}Vector"), value)
                    fields.append((field, value))
                getattr(tflite, f"{name}Start")(b)
                for field, value in fields:
                    getattr(tflite, f"{name}Add{field}")(b, value)
                options = getattr(tflite, f"{name}End")(b)
            tflite.OperatorStart(b)
            tflite.OperatorAddOpcodeIndex(b, codes.index(op.code))
            tflite.OperatorAddInputs(b, ins)
            tflite.OperatorAddOutputs(b, outs)
            if options is not None:
                tflite.OperatorAddBuiltinOptionsType(b, op.options_type)
                tflite.OperatorAddBuiltinOptions(b, options)
            operator_offsets.append(tflite.OperatorEnd(b))
        subgraph_tensors = table_vector(tflite.SubGraphStartTensorsVector, tensor_offsets)
        subgraph_ops = table_vector(tflite.SubGraphStartOperatorsVector, operator_offsets)
        subgraph_in = int_vector(tflite.SubGraphStartInputsVector, inputs)
        subgraph_out = int_vector(tflite.SubGraphStartOutputsVector, outputs)
        tflite.SubGraphStart(b)
        tflite.SubGraphAddTensors(b, subgraph_tensors)
        tflite.SubGraphAddInputs(b, subgraph_in)
        tflite.SubGraphAddOutputs(b, subgraph_out)
        tflite.SubGraphAddOperators(b, subgraph_ops)
        subgraph = tflite.SubGraphEnd(b)
        code_offsets = []
        for code in codes:
            tflite.OperatorCodeStart(b)
            tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
            tflite.OperatorCodeAddBuiltinCode(b, code)
            tflite.OperatorCodeAddVersion(b, 1)
            code_offsets.append(tflite.OperatorCodeEnd(b))
        model_codes = table_vector(tflite.ModelStartOperatorCodesVector, code_offsets)
        model_subgraphs = table_vector(tflite.ModelStartSubgraphsVector, [subgraph])
        model_buffers = table_vector(tflite.ModelStartBuffersVector, buffer_offsets)
        description = b.CreateString("aquant-sim test model")
        tflite.ModelStart(b)
        tflite.ModelAddVersion(b, 3)
        tflite.ModelAddOperatorCodes(b, model_codes)
        tflite.ModelAddSubgraphs(b, model_subgraphs)
        tflite.ModelAddDescription(b, description)
        tflite.ModelAddBuffers(b, model_buffers)
        b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
        return bytes(b.Output())


# ---------------------------------------------------------------------------------------------
# A small int8 CNN, quantized as TFLite's converter quantizes


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TFLite's SAME padding along one axis (``ComputePaddingHeightWidth``): ``out = ceil(size /
    stride)``, ``total = max((out - 1) * stride + kernel - size, 0)``, ``total // 2`` before and
    the rest after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _windows(x: np.ndarray, kh: int, kw: int, stride: int, padding: str, fill: float = 0.0) -> np.ndarray:
    """(N, OH, OW, KH, KW, C) windows of an NHWC float array under TFLite's SAME or VALID padding
    (``fill`` in the padded positions)."""
    if padding == "SAME":
        (top, bottom), (left, right) = same_padding(x.shape[1], kh, stride), same_padding(x.shape[2], kw, stride)
        x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=fill)
    view = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))  # N, OH, OW, C, KH, KW
    return view[:, ::stride, ::stride].transpose(0, 1, 2, 4, 5, 3)


def _activation(y: np.ndarray, name: str) -> np.ndarray:
    return {"NONE": y, "RELU": np.maximum(y, 0), "RELU6": np.clip(y, 0, 6)}[name]


def activation_quant(values: np.ndarray) -> tuple[float, int]:
    """An int8 scale and zero-point covering the float range of ``values`` (and 0), as TFLite's
    converter chooses them: ``s = (hi - lo) / 255``, ``z = round(-128 - lo / s)``."""
    lo, hi = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
    scale = float(np.float32(max(hi - lo, 1e-6) / 255.0))
    return scale, int(np.clip(round(-128 - lo / scale), -128, 127))


class _Net:
    """Builds the float network and its int8 model side by side: every layer quantizes its float
    weights, computes its float output on the calibration batch and adds the int8 tensors."""

    def __init__(self, x: np.ndarray, rng: np.random.Generator, per_channel: bool):
        import tflite

        self.t, self.rng, self.per_channel = tflite, rng, per_channel
        self.writer = TfliteWriter()
        self.float = x
        scale, zero = activation_quant(x)
        self.current = self.writer.tensor("input", x.shape[1:] and (1, *x.shape[1:]), scale=scale, zero_point=zero)
        self.input = self.current

    def branch(self) -> tuple[int, np.ndarray]:
        """The current tensor (its index and float values on the calibration batch): what a
        residual :meth:`add` takes, or what :meth:`resume` builds on again."""
        return self.current, self.float

    def resume(self, tensor: tuple[int, np.ndarray]) -> None:
        """Make a tensor of :meth:`branch` current: the next layer reads it (a shortcut path)."""
        self.current, self.float = tensor

    def _quant(self, index: int) -> tuple[float, int]:
        spec = self.writer.tensors[index]
        return spec.scale[0], spec.zero_point[0]

    def _output(self, name: str, y: np.ndarray, quant=None) -> int:
        scale, zero = activation_quant(y) if quant is None else quant
        return self.writer.tensor(name, (1, *y.shape[1:]), scale=scale, zero_point=zero)

    def _weights(self, name: str, w: np.ndarray, axis: int) -> tuple[int, np.ndarray]:
        """Symmetric int8 weights: one scale per slice of ``axis`` (per channel) or one in all."""
        reduce = tuple(a for a in range(w.ndim) if a != axis)
        peak = np.abs(w).max(axis=reduce) if self.per_channel else np.full(w.shape[axis], np.abs(w).max())
        scale = (np.maximum(peak, 1e-8) / 127.0).astype(np.float32)
        shape = [1] * w.ndim
        shape[axis] = -1
        q = np.clip(np.round(w / scale.reshape(shape)), -127, 127)
        scales = scale if self.per_channel else scale[:1]
        index = self.writer.tensor(name, w.shape, scale=scales, zero_point=np.zeros(len(scales), np.int64), axis=axis, data=q)
        return index, scale

    def _bias(self, name: str, b: np.ndarray, w_scale: np.ndarray, x_index: int) -> int:
        s_x = np.float32(self._quant(x_index)[0])
        scale = (s_x * w_scale).astype(np.float32)
        q = np.clip(np.round(b / scale), -(2**31), 2**31 - 1)
        scales = scale if self.per_channel else scale[:1]
        return self.writer.tensor(name, b.shape, _INT32, scale=scales, zero_point=np.zeros(len(scales), np.int64), data=q)

    def conv(self, name: str, out_channels: int, kernel: int, stride: int, padding: str, activation: str,
             depthwise: bool = False, output_range: tuple[float, float] | None = None) -> None:
        """A conv (or depthwise conv) layer; ``output_range`` fixes the output's float range
        instead of the calibrated one (a range wider than the activation's makes TFLite clamp)."""
        x = self.float
        c = x.shape[3]
        t = self.t
        if depthwise:
            w = self.rng.normal(0, 0.6, (1, kernel, kernel, out_channels))
            windows = _windows(x, kernel, kernel, stride, padding)
            multiplier = out_channels // c
            y = np.einsum("nhwijc,ijcm->nhwcm", windows, w[0].reshape(kernel, kernel, c, multiplier)).reshape(
                *windows.shape[:3], out_channels)
        else:
            w = self.rng.normal(0, 1.0 / np.sqrt(kernel * kernel * c), (out_channels, kernel, kernel, c))
            y = np.einsum("nhwijc,oijc->nhwo", _windows(x, kernel, kernel, stride, padding), w)
        b = self.rng.normal(0, 0.1, out_channels)
        y = _activation(y + b, activation)
        w_index, w_scale = self._weights(f"{name}/weights", w, axis=3 if depthwise else 0)
        b_index = self._bias(f"{name}/bias", b, w_scale, self.current)
        out = self._output(name, y, None if output_range is None else activation_quant(np.array(output_range)))
        pad = getattr(t.Padding, padding)
        act = getattr(t.ActivationFunctionType, activation)
        if depthwise:
            self.writer.operator(t.BuiltinOperator.DEPTHWISE_CONV_2D, (self.current, w_index, b_index), (out,),
                                 t.BuiltinOptions.DepthwiseConv2DOptions, Padding=pad, StrideW=stride, StrideH=stride,
                                 DepthMultiplier=out_channels // c, FusedActivationFunction=act,
                                 DilationWFactor=1, DilationHFactor=1)
        else:
            self.writer.operator(t.BuiltinOperator.CONV_2D, (self.current, w_index, b_index), (out,),
                                 t.BuiltinOptions.Conv2DOptions, Padding=pad, StrideW=stride, StrideH=stride,
                                 FusedActivationFunction=act, DilationWFactor=1, DilationHFactor=1)
        self.float, self.current = y, out

    def add(self, name: str, other: tuple[int, np.ndarray], activation: str) -> None:
        y = _activation(self.float + other[1], activation)
        out = self._output(name, y)
        t = self.t
        self.writer.operator(t.BuiltinOperator.ADD, (self.current, other[0]), (out,), t.BuiltinOptions.AddOptions,
                             FusedActivationFunction=getattr(t.ActivationFunctionType, activation))
        self.float, self.current = y, out

    def pool(self, name: str, kind: str, kernel: int, stride: int, padding: str) -> None:
        t = self.t
        fill = -np.inf if kind == "MAX" else np.nan
        windows = _windows(self.float, kernel, kernel, stride, padding, fill)
        y = np.nanmax(windows, axis=(3, 4)) if kind == "MAX" else np.nanmean(windows, axis=(3, 4))
        out = self._output(name, y, self._quant(self.current))  # TFLite's pools keep the input's quantization
        code = t.BuiltinOperator.MAX_POOL_2D if kind == "MAX" else t.BuiltinOperator.AVERAGE_POOL_2D
        self.writer.operator(code, (self.current,), (out,), t.BuiltinOptions.Pool2DOptions,
                             Padding=getattr(t.Padding, padding), StrideW=stride, StrideH=stride,
                             FilterWidth=kernel, FilterHeight=kernel, FusedActivationFunction=t.ActivationFunctionType.NONE)
        self.float, self.current = y, out

    def mean(self, name: str) -> None:
        t = self.t
        y = self.float.mean(axis=(1, 2), keepdims=True)
        axes = self.writer.tensor(f"{name}/axes", (2,), _INT32, data=np.array([1, 2]))
        out = self._output(name, y)
        self.writer.operator(t.BuiltinOperator.MEAN, (self.current, axes), (out,), t.BuiltinOptions.ReducerOptions,
                             KeepDims=True)
        self.float, self.current = y, out

    def reshape(self, name: str) -> None:
        t = self.t
        y = self.float.reshape(self.float.shape[0], -1)
        shape = self.writer.tensor(f"{name}/shape", (2,), _INT32, data=np.array([1, y.shape[1]]))
        out = self._output(name, y, self._quant(self.current))
        self.writer.operator(t.BuiltinOperator.RESHAPE, (self.current, shape), (out,), t.BuiltinOptions.ReshapeOptions,
                             NewShape=[1, y.shape[1]])
        self.float, self.current = y, out

    def fully_connected(self, name: str, out_features: int, activation: str) -> None:
        t = self.t
        x = self.float
        w = self.rng.normal(0, 1.0 / np.sqrt(x.shape[1]), (out_features, x.shape[1]))
        b = self.rng.normal(0, 0.1, out_features)
        y = _activation(x @ w.T + b, activation)
        w_index, w_scale = self._weights(f"{name}/weights", w, axis=0)
        b_index = self._bias(f"{name}/bias", b, w_scale, self.current)
        out = self._output(name, y)
        self.writer.operator(t.BuiltinOperator.FULLY_CONNECTED, (self.current, w_index, b_index), (out,),
                             t.BuiltinOptions.FullyConnectedOptions,
                             FusedActivationFunction=getattr(t.ActivationFunctionType, activation))
        self.float, self.current = y, out


def small_cnn(per_channel: bool, seed: int = 0, batch: int = 8, size: int = 16) -> tuple[bytes, np.ndarray]:
    """A small int8 CNN as a ``.tflite`` file and its float calibration batch (N, H, W, 3):
    conv 3x3 (RELU), depthwise 3x3 stride 2 with SAME padding (RELU6 on an output range of
    [-1, 8], so that TFLite clamps at both ends; asymmetric padding), conv
    1x1, residual add (RELU), max pool 2x2, conv 3x3 SAME (RELU), average pool 2x2, mean over
    H and W (keep_dims), reshape to a vector, fully connected to 10 outputs. Weight scales per
    output channel (``per_channel``) or one per tensor."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (batch, size, size, 3))
    net = _Net(x, rng, per_channel)
    net.conv("conv1", 8, 3, 1, "SAME", "RELU")
    net.conv("dw", 8, 3, 2, "SAME", "RELU6", depthwise=True, output_range=(-1.0, 8.0))
    skip = (net.current, net.float)
    net.conv("conv2", 8, 1, 1, "VALID", "NONE")
    net.add("add", skip, "RELU")
    net.pool("maxpool", "MAX", 2, 2, "VALID")
    net.conv("conv3", 16, 3, 1, "SAME", "RELU")
    net.pool("avgpool", "AVG", 2, 2, "VALID")
    net.mean("mean")
    net.reshape("reshape")
    net.fully_connected("fc", 10, "NONE")
    return net.writer.serialize([net.input], [net.current]), x.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# The zoo's architectures (aquant_sim/models/) as int8 TFLite models


_ACTIVATIONS = {"ReLU": "RELU", "ReLU6": "RELU6"}
"""torch activation modules by class name, and the TFLite fused activation each becomes."""


def _padding(layer) -> str:
    """SAME for a layer that pads (the zoo pads ``kernel // 2``: SAME's output size), VALID for
    one that does not."""
    padding = layer.padding if isinstance(layer.padding, tuple) else (layer.padding,)
    return "SAME" if any(padding) else "VALID"


def _layer_run(net: _Net, layers: list) -> None:
    """A run of plain zoo layers: each ``Conv2d`` (with the ``BatchNorm2d`` after it folded into
    its random weights and bias, and the ``ReLU``/``ReLU6`` after that fused) becomes one
    ``CONV_2D``, or ``DEPTHWISE_CONV_2D`` when its groups are its input channels; each
    ``MaxPool2d`` becomes ``MAX_POOL_2D``."""
    from torch import nn

    index = 0
    while index < len(layers):
        name, layer = layers[index]
        index += 1
        if isinstance(layer, nn.MaxPool2d):
            net.pool(name, "MAX", layer.kernel_size, layer.stride, _padding(layer))
            continue
        if not isinstance(layer, nn.Conv2d) or layer.groups not in (1, layer.in_channels):
            raise ValueError(f"zoo layer {name} ({type(layer).__name__}) has no TFLite int8 counterpart here")
        if index < len(layers) and isinstance(layers[index][1], nn.BatchNorm2d):
            index += 1
        activation = "NONE"
        if index < len(layers) and type(layers[index][1]).__name__ in _ACTIVATIONS:
            activation = _ACTIVATIONS[type(layers[index][1]).__name__]
            index += 1
        net.conv(name, layer.out_channels, layer.kernel_size[0], layer.stride[0], _padding(layer), activation,
                 depthwise=layer.groups > 1)


def _basic_block(net: _Net, name: str, block) -> None:
    """ResNet's basic block: conv 3x3 (RELU), conv 3x3, the shortcut (the block's input, or its
    1x1 conv when the shape changes) and the ``ADD`` with the RELU after it fused."""
    block_input = net.branch()
    _layer_run(net, [(f"{name}.{part}", getattr(block, part)) for part in ("conv1", "bn1", "relu1", "conv2", "bn2")])
    other = block_input
    if block.shortcut is not None:
        other = net.branch()  # the body's output; the shortcut conv reads the block's input
        net.resume(block_input)
        _layer_run(net, [(f"{name}.shortcut.{i}", layer) for i, layer in enumerate(block.shortcut)])
    net.add(f"{name}.add", other, "RELU")


def _inverted_residual(net: _Net, name: str, block) -> None:
    """MobileNetV2's inverted residual: expansion 1x1 (RELU6), depthwise 3x3 (RELU6), linear 1x1
    projection, and the ``ADD`` of the block's input when the block has a residual."""
    start = net.branch()
    _layer_run(net, [(f"{name}.body.{i}", layer) for i, layer in enumerate(block.body)])
    if block.residual:
        net.add(f"{name}.add", start, "NONE")


def _leaves(name: str, module) -> list:
    """The zoo model's layers and blocks in forward order, ``nn.Sequential`` containers opened."""
    from torch import nn

    if not isinstance(module, nn.Sequential):
        return [(name, module)]
    return [leaf for child, sub in module.named_children() for leaf in _leaves(f"{name}.{child}", sub)]


def zoo_cnn(model: str, per_channel: bool, seed: int = 0, batch: int = 4, size: int = 32, in_channels: int = 3,
            **options) -> tuple[bytes, np.ndarray]:
    """A zoo architecture (``resnet20``, ``resnet18`` or ``mobilenetv2`` of
    :func:`aquant_sim.models.registry.build_model` with its ``options``, e.g. ``width=8``) as an
    int8 ``.tflite`` file, and its float calibration batch (N, ``size``, ``size``, ``in_channels``).

    The layer structure is read from the zoo's own torch module (channels, kernels, strides,
    shortcut convs, depthwise inverted residuals, ReLU/ReLU6, residual adds, in forward order);
    the weights are random from ``seed`` and quantized as :func:`small_cnn`'s (per output channel
    or per tensor). Batch norm is folded (the float network is conv plus bias); a layer that pads
    uses TFLite's SAME padding, which on a stride-2 layer of even input pads 0 before and 1 after
    where torch pads 1 and 1 (the sizes agree). ``AdaptiveAvgPool2d(1)`` is ``MEAN`` over H and W
    (keep_dims), ``flatten`` is ``RESHAPE``, the classifier is ``FULLY_CONNECTED``."""
    from torch import nn

    from aquant_sim.models.mobilenetv2 import InvertedResidual
    from aquant_sim.models.registry import build_model
    from aquant_sim.models.resnet import BasicBlock

    blocks = {BasicBlock: _basic_block, InvertedResidual: _inverted_residual}
    zoo = build_model(model, in_channels, 10, **options)
    children = list(zoo.named_children())
    if not (isinstance(children[-2][1], nn.AdaptiveAvgPool2d) and isinstance(children[-1][1], nn.Linear)):
        raise ValueError(f"zoo model {model} does not end in global average pooling and a linear layer")
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (batch, size, size, in_channels))
    net = _Net(x, rng, per_channel)
    run: list = []
    for name, layer in (leaf for child, module in children[:-2] for leaf in _leaves(child, module)):
        if type(layer) not in blocks:
            run.append((name, layer))
            continue
        _layer_run(net, run)
        run = []
        blocks[type(layer)](net, name, layer)
    _layer_run(net, run)
    net.mean(children[-2][0])
    net.reshape("flatten")
    net.fully_connected(children[-1][0], children[-1][1].out_features, "NONE")
    return net.writer.serialize([net.input], [net.current]), x.astype(np.float32)


def logistic_model() -> bytes:
    """A one-operator int8 model (``LOGISTIC`` on a (1, 4, 4, 2) tensor) that the importer does not
    translate: the test of its one-line refusal."""
    import tflite

    writer = TfliteWriter()
    x = writer.tensor("x", (1, 4, 4, 2), scale=0.05, zero_point=0)
    y = writer.tensor("y", (1, 4, 4, 2), scale=1 / 256, zero_point=-128)
    writer.operator(tflite.BuiltinOperator.LOGISTIC, (x,), (y,))
    return writer.serialize([x], [y])
