"""Import an int8 ONNX model in QDQ or QOperator form (what ``onnxruntime.quantization.quantize_static``
writes) into an integer program whose requantizers are ONNX Runtime's own (the FP32 variant,
contract (14)-(16)), so that the simulator computes the integers onnxruntime's CPU kernels compute.

A QOperator model holds the integer ops themselves (``QLinearConv``, ``QGemm``,
``QLinearMatMul``, ``QLinearAdd``, ``QLinearGlobalAveragePool``; ``MaxPool`` and ``Flatten`` on
the quantized tensor), translated one to one as below.

A QDQ model holds float ops between ``DequantizeLinear`` (DQ) and ``QuantizeLinear`` (Q) nodes;
onnxruntime fuses each ``DQ -> op -> Q`` group into one integer kernel (``QLinearConv``,
``QGemm``, ``QLinearAdd``, ``QLinearGlobalAveragePool``) and runs ``DQ -> MaxPool / Flatten -> Q``
with equal scales on the integers. Each group becomes one op of the program:

* ``Conv`` (weights int8, per tensor or per output channel, int32 bias): ``conv2d`` with the
  weights' zero-points, requantized with ``float32(s_x * s_w[c]) / s_y`` in float32, the scale
  onnxruntime's ``QLinearConv`` computes;
* ``Gemm`` (``transB = 1``) and ``MatMul`` on a vector: ``linear``, the same way;
* ``Add`` of two activations of the same shape: ``add`` with the FP32_ADD requantizer (contract
  (17)-(20)), the float32 ratios ``float32(s_a) / float32(s_c)`` and ``float32(s_b) / float32(s_c)``
  that MLAS's ``QLinearAdd`` computes, and the offset 128 for int8 tensors, which onnxruntime's
  ``qdq_s8_to_u8`` transform (on x86) runs as a uint8 ``QLinearAdd`` with every level and
  zero-point plus 128 (the offset changes the float32 rounding of the kernel's fixed part);
* ``GlobalAveragePool``: ``global_avgpool``, ``float32(s_x / (s_y * H * W))``;
* ``MaxPool`` and ``Flatten`` between equal quantizations: ``maxpool2d`` and ``flatten``;
* ``Relu`` between equal quantizations: a ``clamp`` at the zero-point.

A model that imports the ``ai.aquant`` domain (this project's own export,
:mod:`aquant_sim.exporters.onnx_export`) is read by :mod:`aquant_sim.importers.onnx_aquant`
instead, back into the exact program it was exported from.

Anything else raises :class:`UnsupportedError` naming the node and its op type. The model is read
with the ``onnx`` package (a protobuf parser; nothing in the file is executed). Program tensors
keep the ONNX names of the ``Q`` outputs, so that each can be fetched from onnxruntime.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aquant_sim import rounding
from aquant_sim.errors import ArtifactError, ProgramError, UnsupportedError
from aquant_sim.exporters.onnx_export import DOMAIN as AQUANT_DOMAIN
from aquant_sim.program import (
    MAX_TENSOR_ELEMENTS, Add, BorderTable, Clamp, Conv2d, Flatten, GlobalAvgPool, Linear, MaxPool2d, Program, QuantParams, Requantizer, Tensor,
)

ACCUMULATOR_BITS = 32
"""onnxruntime accumulates in int32 and wraps."""
S8_TO_U8_OFFSET = 128
"""What onnxruntime's ``qdq_s8_to_u8`` transform adds to the levels and zero-points of an int8
QDQ group that it runs as a uint8 kernel (measured on its optimized graph: the fused
``QLinearAdd`` reads ``uint8`` tensors with zero-points ``z + 128``)."""
NEAREST = BorderTable.nearest(1)
"""The border table a variant without a fraction carries (and does not read)."""


@dataclass(frozen=True)
class ImportedModel:
    """A program and what verification needs: the graph input's name, the ONNX name of the
    program input (the first Q output) and the model path."""

    program: Program
    graph_input: str
    path: Path


def _load(path: Path):
    try:
        import onnx
    except ImportError as error:  # pragma: no cover - the onnx extra is installed in CI
        raise UnsupportedError("importing ONNX models needs the 'onnx' package (pip install aquant-sim[onnx])") from error
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as error:  # noqa: BLE001 - protobuf raises DecodeError and others; one clean error
        raise ArtifactError(f"{path}: not a readable ONNX model: {error}") from None


_STORED_TYPES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8}
"""The ``TensorProto`` data types a constant may have (FLOAT, UINT8, INT8, UINT16, INT16,
INT32, INT64, BOOL, FLOAT16, DOUBLE, UINT32, UINT64) and their bytes per element in
``raw_data``; packed, string and 8-bit float types are refused."""
MAX_TENSOR_RANK = 8
"""The most dimensions a constant may declare."""


def _check_tensor(tensor, where: str) -> None:
    """Refuse, before any of its data is converted, a constant that reads data from outside the
    file (external data: the importer never opens a file a model names), of a type it does not
    read, of a rank above :data:`MAX_TENSOR_RANK`, with a negative dimension, declaring more than
    ``MAX_TENSOR_ELEMENTS`` elements, or whose data holds another element count than its
    dimensions declare. So a constant's array is never larger than the bytes the file holds for
    it, and no declared size alone can make the importer allocate."""
    if tensor.data_location == 1 or len(tensor.external_data):  # TensorProto.EXTERNAL
        raise ArtifactError(f"{where}: refers to external data, which the importer does not read")
    if tensor.HasField("segment"):
        raise ArtifactError(f"{where}: a segment of a tensor is not supported")
    if tensor.data_type not in _STORED_TYPES:
        raise ArtifactError(f"{where}: data type {tensor.data_type} is not one the importer reads")
    dims = list(tensor.dims)
    if len(dims) > MAX_TENSOR_RANK or min(dims, default=0) < 0:
        raise ArtifactError(f"{where}: dimensions {dims[:MAX_TENSOR_RANK + 1]} must be at most {MAX_TENSOR_RANK}, none negative")
    elements = 1
    for dim in dims:
        elements *= dim
        if elements > MAX_TENSOR_ELEMENTS:
            raise ArtifactError(f"{where}: dimensions {dims} declare more than {MAX_TENSOR_ELEMENTS} elements")
    if tensor.HasField("raw_data"):
        held = len(tensor.raw_data) / _STORED_TYPES[tensor.data_type]
    else:
        held = sum(len(getattr(tensor, f)) for f in ("float_data", "int32_data", "int64_data", "double_data", "uint64_data"))
    if held != elements:
        raise ArtifactError(f"{where}: dimensions {dims} declare {elements} elements, its data holds {held:g}")


class _Graph:
    """The nodes, initializers and producers of an ONNX graph, and the program being built."""

    def __init__(self, model, path: Path):
        from onnx import numpy_helper

        self.path = path
        self.constants = {}
        for tensor in model.graph.initializer:
            self.constants[tensor.name] = self._array(numpy_helper, tensor, f"initializer '{tensor.name}'")
        for node in model.graph.node:
            if node.op_type == "Constant":
                if len(node.attribute) != 1 or not node.output:
                    raise ArtifactError(f"{path}: Constant node '{node.name}' must hold one tensor")
                self.constants[node.output[0]] = self._array(numpy_helper, node.attribute[0].t, f"Constant '{node.output[0]}'")
        self.nodes = [n for n in model.graph.node if n.op_type != "Constant"]
        for index, node in enumerate(self.nodes):
            # Every operator the importer reads has an output; messages name nodes by it.
            if not node.output or not node.output[0]:
                raise ArtifactError(f"{path}: node {index} '{node.name}' ({node.op_type}) has no output")
        self.producer = {out: node for node in self.nodes for out in node.output}
        self.consumers: dict[str, list] = {}
        for node in self.nodes:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.tensors: dict[str, Tensor] = {}
        self.ops: list = []
        self.outputs = {o.name for o in model.graph.output}

    def array(self, tensor, where: str) -> np.ndarray:
        """A ``TensorProto`` of the file (an attribute's) as a checked array, :meth:`_array`."""
        from onnx import numpy_helper

        return self._array(numpy_helper, tensor, where)

    def _array(self, numpy_helper, tensor, where: str) -> np.ndarray:
        """A tensor of the file as an array, after :func:`_check_tensor`; a tensor whose data
        does not match its declared type and shape is an ArtifactError naming it."""
        _check_tensor(tensor, f"{self.path}: {where}")
        try:
            return numpy_helper.to_array(tensor)
        except (ValueError, KeyError, TypeError) as error:
            raise ArtifactError(f"{self.path}: {where}: malformed tensor data: {error}") from None

    def fail(self, node, message: str):
        raise UnsupportedError(f"{self.path}: node '{node.name or node.output[0]}' ({node.op_type}): {message}")

    def constant(self, name: str, node) -> np.ndarray:
        if name not in self.constants:
            self.fail(node, f"input '{name}' must be a constant")
        return self.constants[name]

    def attributes(self, node) -> dict:
        from onnx import helper

        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def quant(self, q_node) -> QuantParams:
        """The format of a Q (or DQ) node's quantized side, from its scale and zero-point."""
        if len(q_node.input) < 3:
            self.fail(q_node, "needs an explicit zero-point")
        scale = self.constant(q_node.input[1], q_node)
        zero = self.constant(q_node.input[2], q_node)
        if scale.size != 1 or zero.size != 1:
            self.fail(q_node, "activations must be quantized per tensor")
        if zero.dtype not in (np.uint8, np.int8):
            self.fail(q_node, f"activations must be 8-bit, got {zero.dtype}")
        return QuantParams(8, zero.dtype == np.int8, float(np.float32(scale.reshape(()))), int(zero.reshape(())))

    def single_q(self, name: str, node):
        """The one QuantizeLinear that consumes ``name`` (the op's output)."""
        users = self.consumers.get(name, [])
        if len(users) != 1 or users[0].op_type != "QuantizeLinear":
            self.fail(node, "its output must feed exactly one QuantizeLinear (a QDQ model)")
        return users[0]

    def activation(self, name: str, node) -> str:
        """The program tensor that a DQ output ``name`` dequantizes."""
        dq = self.producer.get(name)
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in self.tensors:
            self.fail(node, f"input '{name}' must be a DequantizeLinear of a quantized activation")
        return dq.input[0]

    def weight(self, name: str, node):
        """Integer weights, per-channel float32 scales and zero-points of a DQ of a constant."""
        dq = self.producer.get(name)
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in self.constants:
            self.fail(node, f"input '{name}' must be a DequantizeLinear of constant weights")
        values = self.constants[dq.input[0]]
        scale = self.constant(dq.input[1], dq).astype(np.float32).reshape(-1)
        zero = self.constant(dq.input[2], dq).astype(np.int64).reshape(-1) if len(dq.input) > 2 else np.zeros(1, np.int64)
        return values, scale, zero

    def add_tensor(self, name: str, shape, quant: QuantParams) -> str:
        self.tensors[name] = Tensor(name, tuple(int(d) for d in shape), quant)
        return name


def _fp32_requant(real_scale) -> Requantizer:
    """The FP32 requantizer (14)-(16) of float32 scales (one, or one per channel)."""
    m, n = rounding.float32_multiplier(np.asarray(real_scale, dtype=np.float32).reshape(-1))
    return Requantizer(m, n, NEAREST, rounding.RequantVariant.FP32)


def _weight_fields(graph: _Graph, node, x: str, values, w_scale, w_zero, bias, out_quant: QuantParams) -> dict:
    """The fields of a conv or linear op: int8 weights, their scales and zero-points per output
    channel, the int32 bias and the FP32 requantizer ``M[c] = float32(s_x * s_w[c]) / s_y``,
    computed in float32 as onnxruntime's ``QLinearConv`` and ``QGemm`` compute it."""
    if values.dtype != np.int8:
        graph.fail(node, f"weights must be int8, got {values.dtype}")
    out_channels = values.shape[0]
    if bias is None:
        bias = np.zeros(out_channels, dtype=np.int32)
    if bias.dtype != np.int32:
        graph.fail(node, f"the bias must be int32, got {bias.dtype}")
    w_scale = np.asarray(w_scale, dtype=np.float32).reshape(-1)
    scale = (np.float32(graph.tensors[x].quant.scale) * w_scale) / np.float32(out_quant.scale)
    return dict(weight=values, weight_bits=8, weight_scale=np.broadcast_to(w_scale.astype(np.float64), (out_channels,)).copy(),
                bias=bias.astype(np.int64).reshape(-1), requant=_fp32_requant(scale),
                weight_zero_point=np.broadcast_to(np.asarray(w_zero, dtype=np.int64).reshape(-1), (out_channels,)).copy())


def _weighted(graph: _Graph, node, x: str, weight_input: str, bias_input: str | None):
    """:func:`_weight_fields` of a QDQ conv or linear (weights and bias behind DQ nodes) and its
    output Q node."""
    values, w_scale, w_zero = graph.weight(weight_input, node)
    bias = None if bias_input is None else graph.weight(bias_input, node)[0]
    q = graph.single_q(node.output[0], node)
    out_quant = graph.quant(q)
    return _weight_fields(graph, node, x, values, w_scale, w_zero, bias, out_quant), q, out_quant


def _conv(graph: _Graph, node) -> None:
    x = graph.activation(node.input[0], node)
    attrs = graph.attributes(node)
    padding, padding_end = _window_pads(graph, node, attrs)
    fields, q, out_quant = _weighted(graph, node, x, node.input[1], node.input[2] if len(node.input) > 2 else None)
    op = Conv2d(name=q.output[0], input=x, output=q.output[0], stride=tuple(attrs.get("strides", [1, 1])),
                padding=padding, dilation=tuple(attrs.get("dilations", [1, 1])), groups=int(attrs.get("group", 1)),
                padding_end=padding_end, **fields)
    shape = op.output_shape([graph.tensors[x].shape])
    graph.add_tensor(q.output[0], shape, out_quant)
    graph.ops.append(op)


def _linear(graph: _Graph, node) -> None:
    x = graph.activation(node.input[0], node)
    attrs = graph.attributes(node)
    if node.op_type == "Gemm" and (attrs.get("transA", 0) or not attrs.get("transB", 0)
                                   or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0):
        graph.fail(node, "only Gemm with transB = 1, transA = 0, alpha = beta = 1 is supported")
    fields, q, out_quant = _weighted(graph, node, x, node.input[1], node.input[2] if len(node.input) > 2 else None)
    if node.op_type == "MatMul":
        fields["weight"] = fields["weight"].T
    op = Linear(name=q.output[0], input=x, output=q.output[0], **fields)
    graph.add_tensor(q.output[0], op.output_shape([graph.tensors[x].shape]), out_quant)
    graph.ops.append(op)


def _fp32_add(graph: _Graph, node, name: str, a: str, b: str, out_quant: QuantParams, offset: int) -> None:
    """The program's FP32_ADD add of tensors ``a`` and ``b`` into ``name``: the ratios
    ``float32(s_a) / float32(s_c)`` and ``float32(s_b) / float32(s_c)`` in float32, as MLAS's
    ``QLinearAdd`` computes them, and the runtime's ``offset``."""
    quants = [graph.tensors[t].quant for t in (a, b)]
    if len({q.signed for q in (*quants, out_quant)}) != 1:
        graph.fail(node, "its inputs and output must be all int8 or all uint8 (one QLinearAdd type)")
    s_c = np.float32(out_quant.scale)
    ratios = np.array([np.float32(q.scale) / s_c for q in quants], dtype=np.float32)
    m, n = rounding.float32_multiplier(ratios)
    op = Add(name, a, b, name, 1, 1, Requantizer(m, n, NEAREST, rounding.RequantVariant.FP32_ADD), offset)
    graph.add_tensor(name, op.output_shape([graph.tensors[a].shape, graph.tensors[b].shape]), out_quant)
    graph.ops.append(op)


def _add(graph: _Graph, node) -> None:
    """QDQ ``Add`` of two activations (onnxruntime's ``QLinearAdd`` once fused)."""
    a, b = (graph.activation(name, node) for name in node.input[:2])
    q = graph.single_q(node.output[0], node)
    out_quant = graph.quant(q)
    _fp32_add(graph, node, q.output[0], a, b, out_quant, S8_TO_U8_OFFSET if out_quant.signed else 0)


def _global_avgpool(graph: _Graph, node) -> None:
    x = graph.activation(node.input[0], node)
    q = graph.single_q(node.output[0], node)
    out_quant = graph.quant(q)
    c, h, w = graph.tensors[x].shape
    scale = np.float32(graph.tensors[x].quant.scale) / (np.float32(out_quant.scale) * np.float32(h * w))
    op = GlobalAvgPool(q.output[0], x, q.output[0], _fp32_requant(scale))
    graph.add_tensor(q.output[0], (c, 1, 1), out_quant)
    graph.ops.append(op)


def _pass_through(graph: _Graph, node) -> None:
    """MaxPool, Flatten and Relu between a DQ and a Q of the same quantization."""
    x = graph.activation(node.input[0], node)
    q = graph.single_q(node.output[0], node)
    out_quant = graph.quant(q)
    in_quant = graph.tensors[x].quant
    if out_quant != in_quant:
        graph.fail(node, f"its Q node quantizes differently from its input ({out_quant} vs {in_quant}); "
                         "onnxruntime would requantize, which the importer does not model")
    op = _exact_op(graph, node, x, q.output[0])
    graph.add_tensor(q.output[0], op.output_shape([graph.tensors[x].shape]), out_quant)


def _exact_op(graph: _Graph, node, x: str, name: str):
    """The program op of MaxPool, Flatten or Relu reading tensor ``x`` and writing ``name``
    (appended to the program): exact on integers, no requantization."""
    attrs = graph.attributes(node)
    quant = graph.tensors[x].quant
    if node.op_type == "MaxPool":
        padding, padding_end = _window_pads(graph, node, attrs)
        if attrs.get("ceil_mode", 0):
            graph.fail(node, "ceil_mode 1 is not supported")
        op = MaxPool2d(name, x, name, tuple(attrs["kernel_shape"]), tuple(attrs.get("strides", [1, 1])), padding,
                       tuple(attrs.get("dilations", [1, 1])), padding_end)
    elif node.op_type == "Flatten":
        if attrs.get("axis", 1) != 1:
            graph.fail(node, "only axis = 1 is supported")
        op = Flatten(name, x, name)
    else:
        op = Clamp(name, x, name, np.array([quant.zero_point]), np.array([quant.qmax]))
    graph.ops.append(op)
    return op


def _window_pads(graph: _Graph, node, attrs: dict) -> tuple[tuple[int, int], tuple[int, int]]:
    """ONNX ``pads`` [top, left, bottom, right] of a conv or a max pooling as the program's
    ``padding`` (top, left) and ``padding_end`` (bottom, right): TF's "SAME" at stride 2 pads
    only at the end."""
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        graph.fail(node, "auto_pad is not supported; export with explicit pads")
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    if len(pads) != 4:
        graph.fail(node, f"pads {pads} are not 2-D [top, left, bottom, right]")
    return (pads[0], pads[1]), (pads[2], pads[3])


def _explicit_quant(graph: _Graph, node, scale_index: int) -> QuantParams:
    """The quantization a QOperator node states with its (scale, zero-point) inputs at
    ``scale_index`` and ``scale_index + 1``."""
    scale = graph.constant(node.input[scale_index], node)
    zero = graph.constant(node.input[scale_index + 1], node)
    if scale.size != 1 or zero.size != 1 or zero.dtype not in (np.uint8, np.int8):
        graph.fail(node, "activations must be 8-bit and quantized per tensor")
    return QuantParams(8, zero.dtype == np.int8, float(np.float32(scale.reshape(()))), int(zero.reshape(())))


def _quantized_input(graph: _Graph, node, scale_index: int, index: int = 0) -> str:
    """The program tensor a QOperator node reads at input ``index``, checked against the
    quantization it states at ``scale_index``."""
    name = node.input[index]
    if name not in graph.tensors:
        graph.fail(node, f"input '{name}' is not a quantized tensor of the model")
    if _explicit_quant(graph, node, scale_index) != graph.tensors[name].quant:
        graph.fail(node, f"input '{name}' is stated with another scale or zero-point than it was produced with")
    return name


def _qlinear_conv(graph: _Graph, node) -> None:
    """QLinearConv(x, s_x, z_x, w, s_w, z_w, s_y, z_y, [bias])."""
    x = _quantized_input(graph, node, 1)
    attrs = graph.attributes(node)
    padding, padding_end = _window_pads(graph, node, attrs)
    out_quant = _explicit_quant(graph, node, 6)
    bias = graph.constant(node.input[8], node) if len(node.input) > 8 and node.input[8] else None
    fields = _weight_fields(graph, node, x, graph.constant(node.input[3], node), graph.constant(node.input[4], node),
                            graph.constant(node.input[5], node), bias, out_quant)
    name = node.output[0]
    op = Conv2d(name=name, input=x, output=name, stride=tuple(attrs.get("strides", [1, 1])), padding=padding,
                dilation=tuple(attrs.get("dilations", [1, 1])), groups=int(attrs.get("group", 1)), padding_end=padding_end,
                **fields)
    graph.add_tensor(name, op.output_shape([graph.tensors[x].shape]), out_quant)
    graph.ops.append(op)


def _qgemm(graph: _Graph, node) -> None:
    """QGemm (com.microsoft)(a, s_a, z_a, b, s_b, z_b, [c], s_y, z_y), transB = 1; and
    QLinearMatMul(a, s_a, z_a, b, s_b, z_b, s_y, z_y) on a vector."""
    x = _quantized_input(graph, node, 1)
    attrs = graph.attributes(node)
    weight = graph.constant(node.input[3], node)
    if node.op_type == "QGemm":
        if attrs.get("transA", 0) or not attrs.get("transB", 0) or attrs.get("alpha", 1.0) != 1.0 or len(node.input) < 9:
            graph.fail(node, "only QGemm with transB = 1, transA = 0, alpha = 1 and a quantized output is supported")
        bias = graph.constant(node.input[6], node) if node.input[6] else None
        out_quant = _explicit_quant(graph, node, 7)
    else:
        weight, bias, out_quant = weight.T, None, _explicit_quant(graph, node, 6)
    fields = _weight_fields(graph, node, x, weight, graph.constant(node.input[4], node), graph.constant(node.input[5], node),
                            bias, out_quant)
    name = node.output[0]
    op = Linear(name=name, input=x, output=name, **fields)
    graph.add_tensor(name, op.output_shape([graph.tensors[x].shape]), out_quant)
    graph.ops.append(op)


def _qlinear_add(graph: _Graph, node) -> None:
    """QLinearAdd (com.microsoft)(a, s_a, z_a, b, s_b, z_b, s_c, z_c): run by MLAS on the stored
    levels themselves (int8 or uint8), so the offset is 0."""
    a, b = _quantized_input(graph, node, 1), _quantized_input(graph, node, 4, index=3)
    _fp32_add(graph, node, node.output[0], a, b, _explicit_quant(graph, node, 6), 0)


def _qlinear_global_avgpool(graph: _Graph, node) -> None:
    """QLinearGlobalAveragePool (com.microsoft)(x, s_x, z_x, s_y, z_y), channels first."""
    if graph.attributes(node).get("channels_last", 0):
        graph.fail(node, "channels_last = 1 is not supported")
    x = _quantized_input(graph, node, 1)
    out_quant = _explicit_quant(graph, node, 3)
    c, h, w = graph.tensors[x].shape
    scale = np.float32(graph.tensors[x].quant.scale) / (np.float32(out_quant.scale) * np.float32(h * w))
    name = node.output[0]
    graph.add_tensor(name, (c, 1, 1), out_quant)
    graph.ops.append(GlobalAvgPool(name, x, name, _fp32_requant(scale)))


def _integer_pass_through(graph: _Graph, node) -> None:
    """MaxPool and Flatten of a QOperator model, on the quantized tensor itself."""
    x = node.input[0]
    op = _exact_op(graph, node, x, node.output[0])
    graph.add_tensor(node.output[0], op.output_shape([graph.tensors[x].shape]), graph.tensors[x].quant)


_HANDLERS = {"Conv": _conv, "Gemm": _linear, "MatMul": _linear, "Add": _add, "GlobalAveragePool": _global_avgpool,
             "MaxPool": _pass_through, "Flatten": _pass_through, "Relu": _pass_through}
"""The float ops of a QDQ model that the importer turns into program ops."""
_QOPERATOR_HANDLERS = {"QLinearConv": _qlinear_conv, "QGemm": _qgemm, "QLinearMatMul": _qgemm, "QLinearAdd": _qlinear_add,
                       "QLinearGlobalAveragePool": _qlinear_global_avgpool}
"""The integer ops of a QOperator model; MaxPool and Flatten on a quantized tensor pass through."""
_QDQ = ("QuantizeLinear", "DequantizeLinear")


def import_onnx(path) -> ImportedModel:
    """Read a QDQ int8 ONNX model (one image input NCHW of fixed C, H, W) as an integer program
    with onnxruntime's requantizers. Raises :class:`UnsupportedError` naming the first node the
    importer cannot translate, and its op type; every error is one line (names read from the
    file that hold line breaks are escaped)."""
    path = Path(path)
    try:
        return _import(path)
    except (ArtifactError, UnsupportedError) as error:
        message = str(error)
        if "\n" not in message and "\r" not in message:
            raise
        raise type(error)(message.replace("\r", "\\r").replace("\n", "\\n")) from None


def _import(path: Path) -> ImportedModel:
    model = _load(path)
    graph = _Graph(model, path)
    if any(opset.domain == AQUANT_DOMAIN for opset in model.opset_import):
        from aquant_sim.importers.onnx_aquant import read_aquant

        program = read_aquant(graph, model, path)
        return ImportedModel(program, model.graph.input[0].name, path)
    inputs = [i for i in model.graph.input if i.name not in graph.constants]
    if len(inputs) != 1:
        raise UnsupportedError(f"{path}: the model must have one input, it has {len(inputs)}")
    graph_input = inputs[0].name
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or min(dims[1:]) < 1:
        raise UnsupportedError(f"{path}: input '{graph_input}' must be (N, C, H, W) with fixed C, H, W, got {dims}")
    first = graph.consumers.get(graph_input, [])
    if len(first) != 1 or first[0].op_type != "QuantizeLinear":
        raise UnsupportedError(f"{path}: input '{graph_input}' must feed exactly one QuantizeLinear")
    try:
        program_input = graph.add_tensor(first[0].output[0], dims[1:], graph.quant(first[0]))
    except ProgramError as error:
        raise UnsupportedError(f"{path}: input '{graph_input}': {error}") from None
    supported = ", ".join(sorted({*_HANDLERS, *_QOPERATOR_HANDLERS}))
    for node in graph.nodes:
        if node.op_type == "DequantizeLinear" and node.output[0] in graph.outputs:
            continue  # the model's float output
        if node.op_type in _QDQ:
            continue
        if node.op_type in _QOPERATOR_HANDLERS:
            handler = _QOPERATOR_HANDLERS[node.op_type]
        elif node.op_type in ("MaxPool", "Flatten") and node.input and node.input[0] in graph.tensors:
            handler = _integer_pass_through
        elif node.op_type in _HANDLERS:
            handler = _HANDLERS[node.op_type]
        else:
            graph.fail(node, f"op type {node.op_type} is not supported (supported: {supported})")
        try:
            handler(graph, node)
        except ProgramError as error:
            graph.fail(node, str(error))
        except (ValueError, TypeError, KeyError, IndexError) as error:
            # A node of a well-formed model cannot get here: missing inputs or attributes, or
            # attributes of the wrong type, in a damaged file.
            graph.fail(node, f"malformed node ({type(error).__name__}: {error})")
    if not graph.ops:
        raise UnsupportedError(f"{path}: the model has no op the importer translates")
    try:
        program = Program(tuple(graph.tensors.values()), tuple(graph.ops), program_input, graph.ops[-1].output,
                          BorderTable.nearest(1), ACCUMULATOR_BITS, rounding.OverflowPolicy.WRAP)
    except ProgramError as error:
        raise UnsupportedError(f"{path}: the translated program is invalid: {error}") from None
    return ImportedModel(program, graph_input, path)
