"""Export an integer program as an ONNX model in QDQ form (``docs/deploy.md``, "Exporting
programs to ONNX"), in one of two forms (:class:`ExportForm`):

* AQUANT, any program: every tensor is an integer ONNX value holding its levels; every op that
  requantizes is a QDQ group ``DequantizeLinear -> standard float op -> ai.aquant.Requantize``
  whose custom node carries the program's requantizer exactly (its variant, ``m``, ``n``, the
  F-bit border table) and the exact float64 scales; the input is ``ai.aquant.BorderQuantize``
  (rounding (1)-(4) with the input's borders), a lookup table is ``ai.aquant.Lut``, a clamp is
  ``Max`` and ``Min`` on the levels, max pooling and flatten are ``DequantizeLinear -> op ->
  QuantizeLinear`` with the input's quantization; an op that leaves accumulators ends in
  ``ai.aquant.Accumulate``. :func:`aquant_sim.importers.onnx_qdq.import_onnx` reads it back as
  an identical program. onnxruntime cannot run it: it implements no ``ai.aquant`` op.
* ONNXRUNTIME, only a program whose requantizers are onnxruntime's own (FP32, FP32_ADD: an
  imported one): plain QDQ as ``quantize_static`` writes it, ``QuantizeLinear`` in place of the
  custom nodes, which onnxruntime runs in its integer kernels. The export is imported back and
  refused unless that gives the identical program (the importer derives every requantizer from
  the float32 scales, as onnxruntime does).

The ``ai.aquant`` domain (version 1), its ops and attributes are defined here, once, and read by
the importer; their semantics are the contract's equations, written out in ``docs/deploy.md``.
"""

from __future__ import annotations

import enum
from pathlib import Path

import numpy as np

from aquant_sim.errors import UnsupportedError
from aquant_sim.program import AccumulatorParams, OpKind, Program, QuantParams
from aquant_sim.rounding import RequantVariant

DOMAIN, DOMAIN_VERSION = "ai.aquant", 1
"""The custom domain of the AQUANT form."""
OPSET = 21
"""The standard opset of the AQUANT form (int16 DequantizeLinear, per-axis scales)."""
ORT_OPSET = 17
"""The standard opset of the ONNXRUNTIME form (what ``torch.onnx`` and ``quantize_static`` write)."""
REQUANTIZE, ACCUMULATE, BORDER_QUANTIZE, LUT = "Requantize", "Accumulate", "BorderQuantize", "Lut"
"""The ops of the domain."""
ACCUMULATOR_BITS_KEY, OVERFLOW_KEY = "ai.aquant.accumulator_bits", "ai.aquant.overflow"
"""Model metadata of the AQUANT form: the program's accumulator width A and overflow policy."""
FLOAT_OPS = {OpKind.CONV2D: "Conv", OpKind.LINEAR: "Gemm", OpKind.ADD: "Add", OpKind.AVGPOOL2D: "AveragePool",
             OpKind.GLOBAL_AVGPOOL: "GlobalAveragePool", OpKind.MUL: "Mul", OpKind.CONCAT: "Concat",
             OpKind.MAXPOOL2D: "MaxPool", OpKind.FLATTEN: "Flatten"}
"""The standard float op of each program op's QDQ group."""


class ExportForm(enum.Enum):
    AQUANT = "aquant"
    """Any program, exactly, with ``ai.aquant`` custom ops (onnxruntime cannot run it)."""
    ONNXRUNTIME = "onnxruntime"
    """Plain QDQ that onnxruntime runs; only programs with onnxruntime's requantizers."""


def level_type(quant: QuantParams) -> int:
    """The ONNX element type that holds a tensor's levels: int8 / uint8 up to 8 bits, else int16 / uint16."""
    from onnx import TensorProto

    if quant.bits <= 8:
        return TensorProto.INT8 if quant.signed else TensorProto.UINT8
    return TensorProto.INT16 if quant.signed else TensorProto.UINT16


def _numpy_type(onnx_type: int):
    from onnx import helper

    return helper.tensor_dtype_to_np_dtype(onnx_type)


class _Writer:
    """The nodes and initializers of the model being written."""

    def __init__(self, program: Program, form: ExportForm):
        self.program, self.form = program, form
        self.nodes, self.initializers, self.dequantized, self.quantized = [], [], {}, set()

    def constant(self, name: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        array = np.asarray(array)  # a 0-d scale stays a scalar: onnxruntime fuses only per-tensor scalars
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array) if array.ndim else array, name))
        return name

    def node(self, op_type: str, inputs, outputs, name: str, domain: str = "", **attributes):
        from onnx import helper

        self.nodes.append(helper.make_node(op_type, list(inputs), list(outputs), name=name, domain=domain, **attributes))

    def quant_inputs(self, tensor: str) -> tuple[str, str]:
        """The (float32 scale, zero-point) initializers of a quantized tensor, written once."""
        quant = self.program.tensor(tensor).quant
        scale, zero = f"{tensor}:scale", f"{tensor}:zero_point"
        if tensor not in self.quantized:
            self.constant(scale, np.float32(quant.scale))
            self.constant(zero, np.array(quant.zero_point, dtype=_numpy_type(level_type(quant))))
            self.quantized.add(tensor)
        return scale, zero

    def dq(self, tensor: str) -> str:
        """A new DequantizeLinear of a quantized tensor, one per consumer, as ``quantize_static``
        writes them (measured: onnxruntime 1.32 fuses ResNet-20's groups with shared ones too)."""
        count = self.dequantized[tensor] = self.dequantized.get(tensor, 0) + 1
        out = f"{tensor}:dq{count}"
        self.node("DequantizeLinear", [tensor, *self.quant_inputs(tensor)], [out], f"{tensor}:dequantize{count}")
        return out


def _exact(value):
    """A float64 tensor attribute (an exact scale, or one per channel)."""
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(value, dtype=np.float64))


def _output_attributes(quant: QuantParams) -> dict:
    return dict(scale=_exact(quant.scale), zero_point=quant.zero_point, bits=quant.bits, signed=int(quant.signed))


def _requant_attributes(requant) -> dict:
    from onnx import numpy_helper

    return dict(variant=requant.variant.value, multiplier=[int(v) for v in requant.multiplier],
                shift=[int(v) for v in requant.shift], frac_bits=requant.frac_bits,
                borders=numpy_helper.from_array(requant.borders.values.astype(np.int64)))


def _weights(writer: _Writer, op, x: str) -> tuple[list[str], dict]:
    """The DequantizeLinear inputs (weights, bias) of a conv or linear and the exact fields the
    custom node carries; weights per output channel, or per tensor where the requantizer is
    (so that onnxruntime's form imports with one multiplier again)."""
    from onnx import TensorProto

    per_tensor = (op.requant is not None and op.requant.multiplier.size == 1 and np.all(op.weight_scale == op.weight_scale[0])
                  and np.all(op.weight_zero_point == op.weight_zero_point[0]))
    weight_type = TensorProto.INT8 if op.weight_bits <= 8 else TensorProto.INT16
    w_scale = np.float32(op.weight_scale[0]) if per_tensor else op.weight_scale.astype(np.float32)
    w_zero = (op.weight_zero_point[:1].reshape(()) if per_tensor else op.weight_zero_point).astype(_numpy_type(weight_type))
    name = op.name
    writer.constant(f"{name}:weight", op.weight.astype(_numpy_type(weight_type)))
    writer.constant(f"{name}:weight_scale", w_scale)
    writer.constant(f"{name}:weight_zero_point", w_zero)
    axis = {} if per_tensor else {"axis": 0}
    writer.node("DequantizeLinear", [f"{name}:weight", f"{name}:weight_scale", f"{name}:weight_zero_point"],
                [f"{name}:weight.dq"], f"{name}:weight.dequantize", **axis)
    bias_scale = np.float32(writer.program.tensor(x).quant.scale) * np.asarray(w_scale, dtype=np.float32)
    writer.constant(f"{name}:bias", op.bias.astype(np.int32))
    writer.constant(f"{name}:bias_scale", bias_scale)
    writer.constant(f"{name}:bias_zero_point", np.zeros(np.shape(bias_scale), dtype=np.int32))
    writer.node("DequantizeLinear", [f"{name}:bias", f"{name}:bias_scale", f"{name}:bias_zero_point"],
                [f"{name}:bias.dq"], f"{name}:bias.dequantize", **axis)
    return [writer.dq(x), f"{name}:weight.dq", f"{name}:bias.dq"], dict(weight_bits=op.weight_bits,
                                                                          weight_scale=_exact(op.weight_scale))


def _pads(begin, end) -> list[int]:
    return [int(begin[0]), int(begin[1]), int(end[0]), int(end[1])]


def _float_node(writer: _Writer, op) -> tuple[str, dict]:
    """The standard float node of ``op``'s group (named after the op) on its dequantized
    inputs; returns its output and the op's own fields for the custom node."""
    kind, out = op.kind, f"{op.name}:float"
    fields, attributes = {}, {}
    if kind in (OpKind.CONV2D, OpKind.LINEAR):
        inputs, fields = _weights(writer, op, op.input)
        if kind is OpKind.CONV2D:
            attributes = dict(kernel_shape=list(op.kernel_size), strides=list(op.stride), pads=_pads(op.padding, op.padding_end),
                              dilations=list(op.dilation), group=op.groups)
        else:
            attributes = dict(transB=1)
    elif kind in (OpKind.ADD, OpKind.MUL, OpKind.CONCAT):
        inputs = [writer.dq(op.input_a), writer.dq(op.input_b)]
        if kind is OpKind.ADD:
            fields = dict(input_weights=[op.weight_a, op.weight_b], zero_offset=op.zero_offset)
        if kind is OpKind.CONCAT:
            attributes = dict(axis=1)
    elif kind in (OpKind.AVGPOOL2D, OpKind.MAXPOOL2D):
        inputs = [writer.dq(op.input)]
        end = op.padding_end if kind is OpKind.MAXPOOL2D else op.padding
        attributes = dict(kernel_shape=list(op.kernel_size), strides=list(op.stride), pads=_pads(op.padding, end))
        if kind is OpKind.AVGPOOL2D:
            attributes["count_include_pad"] = 1
        else:
            attributes["dilations"] = list(op.dilation)
    else:  # global average pooling, flatten
        inputs = [writer.dq(op.input)]
        if kind is OpKind.FLATTEN:
            attributes = dict(axis=1)
    writer.node(FLOAT_OPS[kind], inputs, [out], op.name, **attributes)
    return out, fields


def _requantizing(writer: _Writer, op) -> None:
    """A requantizing op's group: its float node, then ``ai.aquant.Requantize`` (or
    ``Accumulate``), or in the ONNXRUNTIME form a ``QuantizeLinear`` of the output."""
    out, fields = _float_node(writer, op)
    tensor = writer.program.tensor(op.output)
    if op.requant is None:
        writer.node(ACCUMULATE, [out], [op.output], f"{op.name}:accumulate", DOMAIN, scale=_exact(tensor.quant.scale), **fields)
    elif writer.form is ExportForm.ONNXRUNTIME:
        scale, zero = writer.quant_inputs(op.output)
        writer.node("QuantizeLinear", [out, scale, zero], [op.output], f"{op.name}:quantize")
    else:
        writer.node(REQUANTIZE, [out], [op.output], f"{op.name}:requantize", DOMAIN,
                    **_requant_attributes(op.requant), **_output_attributes(tensor.quant), **fields)


def _exact_op(writer: _Writer, op) -> None:
    """Max pooling and flatten (``DequantizeLinear -> op -> QuantizeLinear`` with the input's
    quantization), and a clamp: ``Max`` and ``Min`` by per-channel levels (in the ONNXRUNTIME
    form, a ReLU at the zero-point: ``DequantizeLinear -> Relu -> QuantizeLinear``)."""
    quant = writer.program.tensor(op.input).quant
    if op.kind is OpKind.CLAMP:
        if writer.form is ExportForm.ONNXRUNTIME:
            if not (np.all(op.lo == quant.zero_point) and np.all(op.hi == quant.qmax)):
                raise UnsupportedError(f"op '{op.name}' (clamp): onnxruntime's form has only a ReLU at the zero-point")
            writer.node("Relu", [writer.dq(op.input)], [f"{op.name}:float"], op.name)
            out = f"{op.name}:float"
        else:
            shape = (-1, 1, 1) if len(writer.program.tensor(op.input).shape) == 3 else (-1,)
            dtype = _numpy_type(level_type(quant))
            lo, hi = writer.constant(f"{op.name}:lo", op.lo.astype(dtype).reshape(shape)), writer.constant(
                f"{op.name}:hi", op.hi.astype(dtype).reshape(shape))
            writer.node("Max", [op.input, lo], [f"{op.name}:max"], op.name)
            writer.node("Min", [f"{op.name}:max", hi], [op.output], f"{op.name}:min")
            return
    else:
        out, _ = _float_node(writer, op)
    scale, zero = writer.quant_inputs(op.input)
    writer.node("QuantizeLinear", [out, scale, zero], [op.output], f"{op.name}:quantize")


def _lut(writer: _Writer, op) -> None:
    from onnx import numpy_helper

    if writer.form is ExportForm.ONNXRUNTIME:
        raise UnsupportedError(f"op '{op.name}' (lut): onnxruntime's form has no lookup table")
    writer.node(LUT, [op.input], [op.output], op.name, DOMAIN, table=numpy_helper.from_array(op.table.astype(np.int64)),
                **_output_attributes(writer.program.tensor(op.output).quant))


def _check_form(program: Program, form: ExportForm) -> None:
    if form is not ExportForm.ONNXRUNTIME:
        return
    for op in program.ops:
        requant = getattr(op, "requant", None)
        if op.kind in (OpKind.AVGPOOL2D, OpKind.MUL, OpKind.CONCAT, OpKind.LUT) or (
                requant is not None and requant.variant not in (RequantVariant.FP32, RequantVariant.FP32_ADD)) or (
                op.kind in (OpKind.CONV2D, OpKind.LINEAR) and requant is None):
            what = requant.variant.value if requant is not None else "no requantizer"
            raise UnsupportedError(f"op '{op.name}' ({op.kind.value}, {what}): onnxruntime's form holds only convs, linears, "
                                   "adds and global average pooling with onnxruntime's requantizers (fp32, fp32_add), max "
                                   "pooling, flatten and ReLU; export it in the aquant form")
    if any(t.is_quantized and t.quant.bits != 8 for t in program.tensors):
        raise UnsupportedError("onnxruntime's form holds only 8-bit tensors; export it in the aquant form")


def to_onnx(program: Program, form: ExportForm = ExportForm.AQUANT):
    """The ONNX ``ModelProto`` of ``program`` in ``form`` (see the module docstring); checked by
    ``onnx.checker``. Raises :class:`UnsupportedError` for a program the form cannot hold."""
    import onnx
    from onnx import TensorProto, helper

    _check_form(program, form)
    writer = _Writer(program, form)
    source = program.input_tensor
    real = f"{program.input}:real"
    if form is ExportForm.ONNXRUNTIME:
        scale, zero = writer.quant_inputs(program.input)
        writer.node("QuantizeLinear", [real, scale, zero], [program.input], f"{program.input}:quantize")
    else:
        from onnx import numpy_helper

        writer.node(BORDER_QUANTIZE, [real], [program.input], f"{program.input}:quantize", DOMAIN,
                    frac_bits=program.input_borders.frac_bits,
                    borders=numpy_helper.from_array(program.input_borders.values.astype(np.int64)), **_output_attributes(source.quant))
    for op in program.ops:
        if op.kind is OpKind.LUT:
            _lut(writer, op)
        elif op.kind in (OpKind.MAXPOOL2D, OpKind.FLATTEN, OpKind.CLAMP):
            _exact_op(writer, op)
        else:
            _requantizing(writer, op)
    output = program.output_tensor
    if isinstance(output.quant, AccumulatorParams):
        graph_output = helper.make_tensor_value_info(program.output, TensorProto.INT32, ["n", *output.shape])
    else:
        graph_output = helper.make_tensor_value_info(writer.dq(program.output), TensorProto.FLOAT, ["n", *output.shape])
    graph = helper.make_graph(writer.nodes, "aquant_program",
                              [helper.make_tensor_value_info(real, TensorProto.FLOAT, ["n", *source.shape])],
                              [graph_output], writer.initializers)
    opsets = [helper.make_opsetid("", ORT_OPSET if form is ExportForm.ONNXRUNTIME else OPSET)]
    if form is ExportForm.AQUANT:
        opsets.append(helper.make_opsetid(DOMAIN, DOMAIN_VERSION))
    model = helper.make_model(graph, opset_imports=opsets, producer_name="aquant-sim")
    if form is ExportForm.AQUANT:
        helper.set_model_props(model, {ACCUMULATOR_BITS_KEY: str(program.accumulator_bits), OVERFLOW_KEY: program.overflow.value})
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        raise UnsupportedError(f"the exported model is not valid ONNX: {str(error).splitlines()[0]}") from None
    return model


def export_onnx(program: Program, path, form: ExportForm = ExportForm.AQUANT) -> Path:
    """Write ``program`` as an ONNX model in ``form`` to ``path``; the ONNXRUNTIME form is
    imported back first and refused unless that gives the identical program."""
    from aquant_sim.atomic import atomic_write

    path = Path(path)
    data = to_onnx(program, form).SerializeToString()
    if form is ExportForm.ONNXRUNTIME:
        _check_reimport(program, data, path)
    with atomic_write(path) as stream:
        stream.write(data)
    return path


def _check_reimport(program: Program, data: bytes, path: Path) -> None:
    """Refuse an ONNXRUNTIME export whose import differs from ``program``: its requantizers are
    not the ones onnxruntime derives from its float32 scales."""
    import tempfile

    from aquant_sim.importers.onnx_qdq import import_onnx
    from aquant_sim.program_diff import programs_differ

    with tempfile.TemporaryDirectory() as scratch:
        probe = Path(scratch) / path.name
        probe.write_bytes(data)
        difference = programs_differ(program, import_onnx(probe).program)
    if difference:
        raise UnsupportedError(f"{path}: onnxruntime's form does not give this program back ({difference}): onnxruntime "
                               "derives every requantizer, and an int8 add's offset, from the float32 scales; export it in the "
                               "aquant form")
