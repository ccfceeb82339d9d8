"""Read an ONNX model of the AQUANT form (``aquant_sim.exporters.onnx_export``: QDQ groups that
end in ``ai.aquant`` custom nodes) back into the program it was exported from, exactly.

Each program op is read from its group: the standard float node (named after the op) gives the
geometry (strides, pads, dilations, groups, window), its ``DequantizeLinear`` inputs give the
tensors read and the integer weights, bias and weight zero-points, and the custom node after it
gives what no standard node holds exactly: the requantizer (variant, ``m``, ``n``, F-bit
borders), the float64 scales, the widths, an add's integer weights and offset. The float32
scales of the ``DequantizeLinear`` nodes are for other tools and are not read. Called by
:func:`aquant_sim.importers.onnx_qdq.import_onnx` for a model that imports the domain; every
malformed part is an error naming the file and the node.
"""

from __future__ import annotations

import numpy as np

from aquant_sim.errors import ProgramError, UnsupportedError
from aquant_sim.exporters.onnx_export import (
    ACCUMULATE, ACCUMULATOR_BITS_KEY, BORDER_QUANTIZE, DOMAIN, FLOAT_OPS, LUT, OVERFLOW_KEY, REQUANTIZE,
)
from aquant_sim.program import (
    AccumulatorParams, Add, AvgPool2d, BorderTable, Clamp, Concat, Conv2d, Flatten, GlobalAvgPool, Linear, Lut, MaxPool2d, Mul,
    OpKind, Program, QuantParams, Requantizer, Tensor,
)
from aquant_sim.rounding import OverflowPolicy, RequantVariant

_FLOAT_KINDS = {op_type: kind for kind, op_type in FLOAT_OPS.items()}


class _Reader:
    def __init__(self, graph, model):
        self.graph, self.model = graph, model
        self.tensors: dict[str, Tensor] = {}
        self.ops: list = []
        self.input = None
        self.input_borders = None

    def attributes(self, node) -> dict:
        """A node's attributes, tensor attributes as checked arrays."""
        from onnx import helper

        values = {}
        for attribute in node.attribute:
            if attribute.type == attribute.TENSOR:
                values[attribute.name] = self.graph.array(attribute.t, f"node '{node.name}' attribute '{attribute.name}'")
            else:
                value = helper.get_attribute_value(attribute)
                values[attribute.name] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        return values

    def quant(self, attrs: dict) -> QuantParams:
        scale = attrs["scale"]
        if scale.shape != () or scale.dtype != np.float64:
            raise ValueError(f"scale must be one float64, got {scale.dtype} {scale.shape}")
        return QuantParams(int(attrs["bits"]), bool(attrs["signed"]), float(scale), int(attrs["zero_point"]))

    def source(self, name: str, node) -> str:
        """The program tensor behind value ``name``: a tensor itself, or its DequantizeLinear."""
        if name in self.tensors:
            return name
        dq = self.graph.producer.get(name)
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in self.tensors:
            self.graph.fail(node, f"input '{name}' must be a tensor of the program or its DequantizeLinear")
        return dq.input[0]

    def add(self, op, quant) -> None:
        shape = op.output_shape([self.tensors[name].shape for name in op.inputs])
        self.tensors[op.output] = Tensor(op.output, shape, quant)
        self.ops.append(op)

    def pads(self, node, geometry: dict) -> tuple[tuple, tuple]:
        """ONNX ``pads`` [top, left, bottom, right] as the program's ``padding`` (top, left) and
        ``padding_end`` (bottom, right)."""
        pads = list(geometry["pads"])
        if len(pads) != 4:
            self.graph.fail(node, f"pads {pads[:5]} must be [top, left, bottom, right]")
        return tuple(pads[:2]), tuple(pads[2:])

    def symmetric_pads(self, node, geometry: dict) -> tuple:
        """An average pooling's (H, W) padding from ONNX ``pads``, which the aquant form writes symmetric."""
        padding, padding_end = self.pads(node, geometry)
        if padding != padding_end:
            self.graph.fail(node, f"pads {[*padding, *padding_end]} must be [top, left, bottom, right] with top = bottom, left = right")
        return padding

    def float_node(self, custom):
        node = self.graph.producer.get(custom.input[0]) if custom.input else None
        if node is None or node.op_type not in _FLOAT_KINDS:
            self.graph.fail(custom, f"its input must be the output of one of {sorted(_FLOAT_KINDS)}")
        return node

    def weights(self, node) -> dict:
        """Weights, bias and weight zero-points of a conv or linear from their DequantizeLinear nodes."""
        arrays = []
        for name in node.input[1:3]:
            dq = self.graph.producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear" or len(dq.input) < 3:
                self.graph.fail(node, f"input '{name}' must be a DequantizeLinear of constants")
            arrays.append((self.graph.constant(dq.input[0], dq), self.graph.constant(dq.input[2], dq)))
        (weight, zero), (bias, _) = arrays
        out_channels = weight.shape[0] if weight.ndim else 1
        return dict(weight=weight, bias=bias.astype(np.int64).reshape(-1),
                    weight_zero_point=np.broadcast_to(zero.astype(np.int64).reshape(-1), (out_channels,)).copy())

    def requantizing(self, custom) -> None:
        """A group that ends in Requantize or Accumulate."""
        attrs = self.attributes(custom)
        node = self.float_node(custom)
        kind = _FLOAT_KINDS[node.op_type]
        geometry = self.graph.attributes(node)
        if custom.op_type == ACCUMULATE:
            requant, quant = None, AccumulatorParams(attrs["scale"])
        else:
            quant = self.quant(attrs)
            requant = Requantizer(np.asarray(attrs["multiplier"]), np.asarray(attrs["shift"]),
                                  BorderTable(int(attrs["frac_bits"]), attrs["borders"]), RequantVariant(attrs["variant"]))
        name, out = node.name, custom.output[0]
        inputs = [self.source(value, node) for value in node.input[: 1 if kind in (OpKind.CONV2D, OpKind.LINEAR) else 2]]
        if kind in (OpKind.CONV2D, OpKind.LINEAR):
            fields = dict(self.weights(node), weight_bits=int(attrs["weight_bits"]), weight_scale=attrs["weight_scale"],
                          requant=requant)
            if kind is OpKind.CONV2D:
                padding, padding_end = self.pads(node, geometry)
                op = Conv2d(name, inputs[0], out, stride=tuple(geometry["strides"]), padding=padding,
                            dilation=tuple(geometry["dilations"]), groups=int(geometry["group"]), padding_end=padding_end, **fields)
            else:
                op = Linear(name, inputs[0], out, **fields)
        elif kind is OpKind.ADD:
            w_a, w_b = attrs["input_weights"]
            op = Add(name, inputs[0], inputs[1], out, w_a, w_b, requant, int(attrs["zero_offset"]))
        elif kind is OpKind.MUL:
            op = Mul(name, inputs[0], inputs[1], out, requant)
        elif kind is OpKind.CONCAT:
            op = Concat(name, inputs[0], inputs[1], out, requant)
        elif kind is OpKind.AVGPOOL2D:
            op = AvgPool2d(name, inputs[0], out, tuple(geometry["kernel_shape"]), tuple(geometry["strides"]), requant,
                           self.symmetric_pads(node, geometry))
        elif kind is OpKind.GLOBAL_AVGPOOL:
            op = GlobalAvgPool(name, inputs[0], out, requant)
        else:
            self.graph.fail(custom, f"{node.op_type} is exact and ends in QuantizeLinear, not {custom.op_type}")
        self.add(op, quant)

    def pass_through(self, q) -> None:
        """DequantizeLinear -> MaxPool or Flatten -> QuantizeLinear: the input's quantization."""
        node = self.graph.producer.get(q.input[0])
        if node is None or node.op_type not in ("MaxPool", "Flatten"):
            self.graph.fail(q, "a QuantizeLinear of the aquant form follows MaxPool or Flatten")
        x = self.source(node.input[0], node)
        geometry = self.graph.attributes(node)
        if node.op_type == "MaxPool":
            padding, padding_end = self.pads(node, geometry)
            op = MaxPool2d(node.name, x, q.output[0], tuple(geometry["kernel_shape"]), tuple(geometry["strides"]),
                           padding, tuple(geometry["dilations"]), padding_end)
        else:
            op = Flatten(node.name, x, q.output[0])
        self.add(op, self.tensors[x].quant)

    def clamp(self, node) -> None:
        """Max of a tensor's levels and constants, then Min: a clamp."""
        users = self.graph.consumers.get(node.output[0], [])
        if len(users) != 1 or users[0].op_type != "Min":
            self.graph.fail(node, "a Max of the aquant form is followed by one Min (a clamp)")
        low, high = node, users[0]
        x = self.source(low.input[0], low)
        lo, hi = self.graph.constant(low.input[1], low), self.graph.constant(high.input[1], high)
        self.add(Clamp(low.name, x, high.output[0], lo.astype(np.int64).reshape(-1), hi.astype(np.int64).reshape(-1)),
                 self.tensors[x].quant)

    def lut(self, node) -> None:
        attrs = self.attributes(node)
        x = self.source(node.input[0], node)
        self.add(Lut(node.name, x, node.output[0], attrs["table"]), self.quant(attrs))

    def border_quantize(self, node) -> None:
        if self.input is not None:
            self.graph.fail(node, "a program has one input")
        attrs = self.attributes(node)
        shape = [d.dim_value for d in self.model.graph.input[0].type.tensor_type.shape.dim][1:]
        self.input = node.output[0]
        self.input_borders = BorderTable(int(attrs["frac_bits"]), attrs["borders"])
        self.tensors[self.input] = Tensor(self.input, shape, self.quant(attrs))


_STANDARD = ("DequantizeLinear", *_FLOAT_KINDS, "Min")
"""Nodes read as part of the group whose last node they precede."""


def read_aquant(graph, model, path) -> Program:
    """The program of an AQUANT-form model (``graph`` is the importer's checked view of it)."""
    reader = _Reader(graph, model)
    handlers = {(DOMAIN, BORDER_QUANTIZE): reader.border_quantize, (DOMAIN, REQUANTIZE): reader.requantizing,
                (DOMAIN, ACCUMULATE): reader.requantizing, (DOMAIN, LUT): reader.lut, ("", "QuantizeLinear"): reader.pass_through,
                ("", "Max"): reader.clamp}
    if len(model.graph.input) != 1 or len(model.graph.output) != 1:
        raise UnsupportedError(f"{path}: an aquant-form model has one input and one output")
    for node in graph.nodes:
        key = (node.domain, node.op_type)
        if key not in handlers:
            if node.domain == "" and node.op_type in _STANDARD:
                continue
            graph.fail(node, f"op {node.domain or 'ai.onnx'}.{node.op_type} is not one of the aquant form")
        if reader.input is None and key != (DOMAIN, BORDER_QUANTIZE):
            graph.fail(node, f"the model must begin with {DOMAIN}.{BORDER_QUANTIZE}")
        try:
            handlers[key](node)
        except ProgramError as error:
            graph.fail(node, str(error))
        except (ValueError, TypeError, KeyError, IndexError) as error:
            graph.fail(node, f"malformed node ({type(error).__name__}: {error})")
    output = model.graph.output[0].name
    producer = graph.producer.get(output)
    if producer is not None and producer.op_type == "DequantizeLinear":
        output = producer.input[0]
    props = {p.key: p.value for p in model.metadata_props}
    try:
        return Program(tuple(reader.tensors.values()), tuple(reader.ops), reader.input, output, reader.input_borders,
                       int(props[ACCUMULATOR_BITS_KEY]), OverflowPolicy(props[OVERFLOW_KEY]))
    except (ProgramError, KeyError, ValueError) as error:
        raise UnsupportedError(f"{path}: the translated program is invalid: {type(error).__name__}: {error}") from None
