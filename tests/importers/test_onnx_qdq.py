"""The ONNX importer: models quantized by onnxruntime (QDQ and QOperator, per tensor and per
channel) become integer programs with onnxruntime's requantizer, and the simulator computes
onnxruntime's integers on every tensor."""

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aquant_sim.errors import AquantError, ArtifactError, UnsupportedError
from aquant_sim.importers.onnx_qdq import import_onnx
from aquant_sim.importers.onnxruntime_run import kernels, run_tensors
from aquant_sim.program import OpKind
from aquant_sim.rounding import RequantVariant
from aquant_sim.simulator import Backend, Simulator


def test_import_translates_every_node(plain_model):
    """Every op of the model (a QDQ group, or a QOperator node) becomes one program op, with
    requantizers FP32 (14)-(16)."""
    program = import_onnx(plain_model).program
    assert [op.kind for op in program.ops] == [OpKind.CONV2D, OpKind.MAXPOOL2D, OpKind.CONV2D, OpKind.CONV2D, OpKind.CONV2D,
                                              OpKind.GLOBAL_AVGPOOL, OpKind.FLATTEN, OpKind.LINEAR]
    assert {op.requant.variant for op in program.ops if getattr(op, "requant", None)} == {RequantVariant.FP32}
    assert program.ops[3].groups == 16  # the depthwise conv


@pytest.mark.parametrize("backend", list(Backend))
def test_every_tensor_equals_onnxruntime(plain_model, batch, tmp_path, backend):
    """From onnxruntime's quantized input, every tensor the simulator computes equals the one
    onnxruntime's integer kernels compute (QLinearConv, MaxPool, QLinearGlobalAveragePool, QGemm),
    element for element, per-tensor and per-channel weights."""
    imported = import_onnx(plain_model)
    names = [t.name for t in imported.program.tensors]
    runtime = run_tensors(plain_model, imported.graph_input, imported.program, batch)
    ran = kernels(plain_model, imported.program, tmp_path)
    assert [ran[name] for name in names[1:]] == ["QLinearConv", "MaxPool", "QLinearConv", "QLinearConv", "QLinearConv",
                                                  "QLinearGlobalAveragePool", "Flatten", "QGemm"]
    result = Simulator(imported.program, backend).run(runtime[imported.program.input].astype(np.int32), keep_tensors=True)
    for name in names:
        assert np.array_equal(result.tensors[name], runtime[name]), name
    assert len(np.unique(runtime[names[-1]])) > 3  # the output is not a constant


def test_fetched_tensors_equal_the_full_model_output(plain_model, batch):
    """The truncated model that yields the last tensor gives the full model's own output."""
    import onnxruntime as ort

    imported = import_onnx(plain_model)
    last = imported.program.output
    levels = run_tensors(plain_model, imported.graph_input, imported.program, batch)[last]
    full = ort.InferenceSession(str(plain_model), providers=["CPUExecutionProvider"]).run(None, {"x": batch})[0]
    quant = imported.program.output_tensor.quant
    assert np.array_equal(levels, np.rint(full.astype(np.float64) / np.float64(np.float32(quant.scale))).astype(np.int64) + quant.zero_point)


def test_unsupported_node_is_named_with_its_op_type(residual_model):
    """A residual Add (onnxruntime's QLinearAdd, a float add the contract has no variant for yet)
    is refused, naming the node and its op type."""
    with pytest.raises(UnsupportedError, match=r"\(Add\): op type Add is not supported"):
        import_onnx(residual_model)


def test_not_an_onnx_file_is_a_clean_error(tmp_path):
    """A file that is not an ONNX protobuf gives one ArtifactError naming the file."""
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"\x08\x07not a model" * 10)
    with pytest.raises((ArtifactError, UnsupportedError), match="bad.onnx"):
        import_onnx(path)


def test_float_model_is_refused(tmp_path):
    """A float model (no QuantizeLinear after the input) is refused, naming the input."""
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 4, 4])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3, 4, 4])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    path = tmp_path / "float.onnx"
    onnx.save(onnx.helper.make_model(graph), str(path))
    with pytest.raises(UnsupportedError, match="input 'x' must feed exactly one QuantizeLinear"):
        import_onnx(path)


def test_relu_between_equal_quantizations_is_a_clamp(tmp_path, batch):
    """A QDQ Relu whose Q repeats its input's quantization is a clamp at the zero-point, and
    equals onnxruntime's result."""
    h = onnx.helper
    scale, zero = h.make_tensor("s", onnx.TensorProto.FLOAT, [], [0.05]), h.make_tensor("z", onnx.TensorProto.INT8, [], [-10])
    nodes = [h.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]), h.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
             h.make_node("Relu", ["xd"], ["r"]), h.make_node("QuantizeLinear", ["r", "s", "z"], ["rq"]),
             h.make_node("DequantizeLinear", ["rq", "s", "z"], ["y"])]
    graph = h.make_graph(nodes, "relu", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", *batch.shape[1:]])],
                         [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], [scale, zero])
    path = tmp_path / "relu.onnx"
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), str(path))
    imported = import_onnx(path)
    assert [op.kind for op in imported.program.ops] == [OpKind.CLAMP]
    runtime = run_tensors(path, imported.graph_input, imported.program, batch)
    result = Simulator(imported.program, Backend.REFERENCE).run(runtime["xq"].astype(np.int32), keep_tensors=True)
    assert np.array_equal(result.tensors["rq"], runtime["rq"]) and runtime["rq"].min() == -10


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_model_never_crashes(plain_model, tmp_path, data):
    """Random byte flips and cuts of a quantized model either import (and then simulate on both
    backends without an error) or raise one of the project's errors naming the file."""
    raw = bytearray(plain_model.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    raw = raw[: data.draw(st.integers(1, len(raw)))]
    path = tmp_path / "mutated.onnx"
    path.write_bytes(bytes(raw))
    try:
        program = import_onnx(path).program
    except AquantError as error:
        assert str(path) in str(error) and "\n" not in str(error), str(error)
        return
    quant = program.input_tensor.quant
    levels = np.random.default_rng(0).integers(quant.qmin, quant.qmax + 1, size=(1, *program.input_tensor.shape))
    fast, slow = (Simulator(program, backend).run(levels).output for backend in (Backend.NUMBA, Backend.REFERENCE))
    assert np.array_equal(fast, slow)
