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

from pathlib import Path

import numpy as np

from aquant_sim.errors import UnsupportedError


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError as error:  # pragma: no cover - the onnx extra is installed in CI
        raise UnsupportedError("--against onnxruntime needs the 'onnxruntime' package (pip install aquant-sim[onnx])") from error
    return onnxruntime


def _truncated(model, tensor: str):
    """A copy of ``model`` that computes only ``tensor`` (a Q output) and outputs its DQ."""
    import onnx

    producer = {out: node for node in model.graph.node for out in node.output}
    q = producer[tensor]
    needed, stack = set(), [tensor]
    while stack:
        name = stack.pop()
        node = producer.get(name)
        if node is None or id(node) in needed:
            continue
        needed.add(id(node))
        stack.extend(node.input)
    truncated = onnx.ModelProto()
    truncated.CopyFrom(model)
    del truncated.graph.node[:]
    truncated.graph.node.extend(node for node in model.graph.node if id(node) in needed)
    output = f"{tensor}.dequantized"
    truncated.graph.node.append(onnx.helper.make_node("DequantizeLinear", [tensor, *q.input[1:3]], [output]))
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


def _constant(model, name: str) -> np.ndarray:
    from onnx import numpy_helper

    return numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == name))


def _levels(model, tensor: str, y: np.ndarray) -> np.ndarray:
    """Levels from the dequantized float output: ``rint(y / s) + z`` in float64, exact."""
    q = next(node for node in model.graph.node if tensor in node.output)
    scale, zero = _constant(model, q.input[1]), _constant(model, q.input[2])
    levels = np.rint(y.astype(np.float64) / np.float64(scale)) + int(zero)
    return levels.astype(np.int64)


def run_tensors(path, graph_input: str, names: list[str], x: np.ndarray) -> dict[str, np.ndarray]:
    """onnxruntime's levels of every tensor in ``names`` (Q outputs) for the float batch ``x``,
    each from its truncated model; one sample at a time when the model's batch size is fixed."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    x = np.asarray(x, dtype=np.float32)
    tensors = {}
    for name in names:
        session = _session(_truncated(model, name))
        batch = session.get_inputs()[0].shape[0]
        step = batch if isinstance(batch, int) else len(x)
        y = np.concatenate([session.run(None, {graph_input: x[i : i + step]})[0] for i in range(0, len(x), step)])
        tensors[name] = _levels(model, name, y)
    return tensors


def kernels(path, names: list[str], scratch: Path) -> dict[str, str]:
    """For each tensor, the op type of the node that writes it in the graph onnxruntime runs
    (``QLinearConv``, ``QGemm``, ... when fused; ``QuantizeLinear`` after a float op that was not
    fused, and for the program input)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    kinds = {}
    for name in names:
        optimized = scratch / "optimized.onnx"
        _session(_truncated(model, name), str(optimized))
        graph = onnx.load(str(optimized)).graph
        producer = {out: node for node in graph.node for out in node.output}
        last = producer[f"{name}.dequantized"]  # the DequantizeLinear the truncated model ends in
        source = producer.get(last.input[0])
        kinds[name] = "input" if source is None else source.op_type
    return kinds
