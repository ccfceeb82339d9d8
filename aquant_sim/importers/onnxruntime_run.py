"""Run an ONNX model in onnxruntime (CPU) and fetch the program's tensors from it.

Every tensor of an imported program is the output of a ``QuantizeLinear`` (Q) of the QDQ model.
onnxruntime fuses each ``DequantizeLinear -> op -> QuantizeLinear`` group into its integer kernel
(``QLinearConv``, ``QGemm``, ``QLinearGlobalAveragePool``) at ``ORT_ENABLE_EXTENDED``; below that
level it computes the float op in float32, which no integer program reproduces. Making a Q output
a graph output stops that fusion around it (measured: the producer and the consumer of the tensor
then run in float), so intermediates are not fetched as extra outputs. Each tensor is instead the
output of its own truncated model: the nodes it depends on, then a ``DequantizeLinear`` of it,
exactly as the full model ends (Q, then DQ to a float output). onnxruntime fuses that model as it
fuses the full one; the levels are read back from the float output as ``rint(y / s) + z``, which
is exact (``y = float32((q - z) * s)`` for ``|q - z| < 2^16``). :func:`kernels` reports which
kernels onnxruntime ran for each tensor.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from aquant_sim.errors import UnsupportedError


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError as error:  # pragma: no cover - the onnx extra is installed in CI
        raise UnsupportedError("--against onnxruntime needs the 'onnxruntime' package (pip install aquant-sim[onnx])") from error
    return onnxruntime


PROBE_EXACT = 255 * 127 * 4
"""The exact ``MatMulInteger`` of ``[255, 255, 255, 255]`` (uint8) by ``[127, 127, 127, 127]``
(int8): :func:`pair_sums_saturate`'s probe."""


@functools.cache
def pair_sums_saturate() -> int | None:
    """What onnxruntime on this machine computes for the probe above where it is not
    :data:`PROBE_EXACT`, else ``None``.

    MLAS's uint8 x int8 kernels for x86 CPUs with AVX2 but without VNNI (``vpmaddubsw``) add
    each pair of adjacent products in int16 with saturation: there the probe gives
    2 * 32767 = 65534, and QLinearConv, QGemm and MatMulInteger are not the exact integer products
    this simulator computes, so no bit-exact comparison with onnxruntime holds on that machine."""
    from onnx import TensorProto, helper

    weights = helper.make_tensor("b", TensorProto.INT8, [4, 1], [127] * 4)
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "probe",
                              [helper.make_tensor_value_info("a", TensorProto.UINT8, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, [1, 1])], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    value = int(_session(model).run(None, {"a": np.full((1, 4), 255, np.uint8)})[0][0, 0])
    return None if value == PROBE_EXACT else value


def _truncated(model, tensor: str, quant):
    """A copy of ``model`` that computes only ``tensor`` and outputs its ``DequantizeLinear``
    with the tensor's own scale and zero-point (``quant``, a program ``QuantParams``)."""
    import onnx

    producer = {out: node for node in model.graph.node for out in node.output}
    needed, stack = set(), [tensor]
    while stack:
        node = producer.get(stack.pop())
        if node is None or id(node) in needed:
            continue
        needed.add(id(node))
        stack.extend(node.input)
    truncated = onnx.ModelProto()
    truncated.CopyFrom(model)
    del truncated.graph.node[:]
    truncated.graph.node.extend(node for node in model.graph.node if id(node) in needed)
    scale, zero, output = f"{tensor}.scale", f"{tensor}.zero_point", f"{tensor}.dequantized"
    zero_type = onnx.TensorProto.INT8 if quant.signed else onnx.TensorProto.UINT8
    truncated.graph.initializer.extend([onnx.helper.make_tensor(scale, onnx.TensorProto.FLOAT, [], [quant.scale]),
                                        onnx.helper.make_tensor(zero, zero_type, [], [quant.zero_point])])
    truncated.graph.node.append(onnx.helper.make_node("DequantizeLinear", [tensor, scale, zero], [output]))
    del truncated.graph.output[:]
    truncated.graph.output.append(onnx.helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, None))
    return truncated


def _session(model, optimized_path: str | None = None):
    ort = _onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.intra_op_num_threads = 1
    options.log_severity_level = 3  # errors only: truncated models leave initializers unused
    if optimized_path is not None:
        options.optimized_model_filepath = optimized_path
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _levels(quant, y: np.ndarray) -> np.ndarray:
    """Levels from the dequantized float output: ``rint(y / s) + z`` in float64, exact."""
    return (np.rint(y.astype(np.float64) / np.float64(np.float32(quant.scale))) + quant.zero_point).astype(np.int64)


def run_tensors(path, graph_input: str, program, x: np.ndarray) -> dict[str, np.ndarray]:
    """onnxruntime's levels of every tensor of ``program`` (an imported program, whose tensors
    keep their ONNX names) for the float batch ``x``, each from its truncated model; one sample
    at a time when the model's batch size is fixed."""
    import onnx

    from aquant_sim.exporters.onnx_export import DOMAIN

    model = onnx.load(str(path), load_external_data=False)
    if any(opset.domain == DOMAIN for opset in model.opset_import):
        raise UnsupportedError(f"{path}: onnxruntime cannot run the aquant form of an export (it implements no {DOMAIN} op); "
                               "export the program with --form onnxruntime, where its requantizers allow")
    x = np.asarray(x, dtype=np.float32)
    tensors = {}
    for tensor in program.tensors:
        session = _session(_truncated(model, tensor.name, tensor.quant))
        batch = session.get_inputs()[0].shape[0]
        step = batch if isinstance(batch, int) else len(x)
        y = np.concatenate([session.run(None, {graph_input: x[i : i + step]})[0] for i in range(0, len(x), step)])
        tensors[tensor.name] = _levels(tensor.quant, y)
    return tensors


def kernels(path, program, scratch: Path) -> dict[str, str]:
    """For each tensor of ``program``, the op type of the node that writes it in the graph
    onnxruntime runs (``QLinearConv``, ``QGemm``, ... when fused; ``QuantizeLinear`` after a float
    op that was not fused, and for the program input)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    kinds = {}
    for tensor in program.tensors:
        optimized = scratch / "optimized.onnx"
        _session(_truncated(model, tensor.name, tensor.quant), str(optimized))
        graph = onnx.load(str(optimized)).graph
        producer = {out: node for node in graph.node for out in node.output}
        last = producer[f"{tensor.name}.dequantized"]  # the DequantizeLinear the truncated model ends in
        source = producer.get(last.input[0])
        kinds[tensor.name] = "input" if source is None else source.op_type
    return kinds
