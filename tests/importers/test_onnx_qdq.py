"""The ONNX importer: models quantized by onnxruntime (QDQ and QOperator, per tensor and per
channel) become integer programs with onnxruntime's requantizer, and the simulator computes
onnxruntime's integers on every tensor."""

import numpy as np
import onnx
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnxruntime.quantization import QuantFormat, quantize_static

from aquant_sim.errors import AquantError, ArtifactError, UnsupportedError
from aquant_sim.importers.onnx_qdq import import_onnx
from aquant_sim.importers.onnxruntime_run import kernels, run_tensors
from aquant_sim.program import OpKind
from aquant_sim.rounding import RequantVariant
from aquant_sim.kernels.datapath import NumbaDatapath
from aquant_sim.reference_datapath import ReferenceDatapath
from aquant_sim.simulator import Backend, Simulator

from onnx_fixtures import SHAPE, _Plain, _Reader, exact_onnxruntime

DATAPATHS = {Backend.REFERENCE: ReferenceDatapath(), Backend.NUMBA: NumbaDatapath()}


def test_import_translates_every_node(plain_model):
    """Every op of the model (a QDQ group, or a QOperator node) becomes one program op, with
    requantizers FP32 (14)-(16)."""
    program = import_onnx(plain_model).program
    assert [op.kind for op in program.ops] == [OpKind.CONV2D, OpKind.MAXPOOL2D, OpKind.CONV2D, OpKind.CONV2D, OpKind.CONV2D,
                                              OpKind.GLOBAL_AVGPOOL, OpKind.FLATTEN, OpKind.LINEAR]
    assert {op.requant.variant for op in program.ops if getattr(op, "requant", None)} == {RequantVariant.FP32}
    assert program.ops[3].groups == 16  # the depthwise conv


@exact_onnxruntime
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


def test_unsupported_node_is_named_with_its_op_type(unsupported_model):
    """A node the importer does not translate (here AveragePool) is refused, naming the node and
    its op type."""
    with pytest.raises(UnsupportedError, match=r"\(AveragePool\): op type AveragePool is not supported"):
        import_onnx(unsupported_model)


RESNET20_KERNELS = ["QLinearConv"] * 21 + ["QLinearAdd"] * 9 + ["QLinearGlobalAveragePool", "Flatten", "QGemm"]


@exact_onnxruntime
@pytest.mark.parametrize("backend", list(Backend))
def test_resnet20_every_tensor_equals_onnxruntime(resnet_model, batch, tmp_path, backend):
    """The zoo's ResNet-20, quantized by onnxruntime (uint8 activations; QDQ and QOperator, per
    tensor and per channel): its 9 residual adds import as FP32_ADD adds, onnxruntime runs every
    layer in an integer kernel (21 QLinearConv, 9 QLinearAdd), and every tensor the simulator
    computes equals onnxruntime's, element for element; the last one equals the full model's
    output."""
    import onnxruntime as ort

    imported = import_onnx(resnet_model)
    program = imported.program
    adds = [op for op in program.ops if op.kind is OpKind.ADD]
    assert len(adds) == 9 and {op.requant.variant for op in adds} == {RequantVariant.FP32_ADD}
    assert {op.zero_offset for op in adds} == {0}  # uint8 tensors: onnxruntime runs them as they are
    runtime = run_tensors(resnet_model, imported.graph_input, program, batch)
    ran = kernels(resnet_model, program, tmp_path)
    assert sorted(ran[t.name] for t in program.tensors[1:]) == sorted(RESNET20_KERNELS)
    result = Simulator(program, backend).run(runtime[program.input].astype(np.int32), keep_tensors=True)
    for tensor in program.tensors:
        assert np.array_equal(result.tensors[tensor.name], runtime[tensor.name]), tensor.name
    full = ort.InferenceSession(str(resnet_model), providers=["CPUExecutionProvider"]).run(None, {"x": batch})[0]
    quant = program.output_tensor.quant
    assert np.array_equal(runtime[program.output], np.rint(full / np.float32(quant.scale)).astype(np.int64) + quant.zero_point)
    assert len(np.unique(runtime[program.output])) > 3


@exact_onnxruntime
def test_mobilenetv2_every_tensor_equals_onnxruntime(mobilenet_model, batch):
    """The zoo's MobileNetV2-style model (width 0.25; ReLU6 folded by the quantizer into the
    output ranges), uint8 activations, QDQ and QOperator, per tensor and per channel: 52 convs
    and 12 FP32_ADD adds, onnxruntime runs every one in an integer kernel, and all 68 tensors are
    equal on both backends."""
    imported = import_onnx(mobilenet_model)
    program = imported.program
    kinds = [op.kind for op in program.ops]
    assert kinds.count(OpKind.CONV2D) == 52 and kinds.count(OpKind.ADD) == 12
    runtime = run_tensors(mobilenet_model, imported.graph_input, program, batch)
    for backend in Backend:
        result = Simulator(program, backend).run(runtime[program.input].astype(np.int32), keep_tensors=True)
        for tensor in program.tensors:
            assert np.array_equal(result.tensors[tensor.name], runtime[tensor.name]), (backend, tensor.name)


@exact_onnxruntime
@pytest.mark.parametrize("backend", list(Backend))
def test_int8_qdq_resnet_adds_have_the_offset(int8_resnet_model, batch, tmp_path, backend):
    """With quantize_static's int8 default, each add carries onnxruntime's s8-to-u8 offset 128;
    every add that onnxruntime runs as QLinearAdd (a tensor's truncated model), computed from
    onnxruntime's own input tensors, equals onnxruntime's output."""
    imported = import_onnx(int8_resnet_model)
    program = imported.program
    adds = [op for op in program.ops if op.kind is OpKind.ADD]
    assert {op.zero_offset for op in adds} == {128}
    runtime = run_tensors(int8_resnet_model, imported.graph_input, program, batch)
    ran = kernels(int8_resnet_model, program, tmp_path)
    fused = [op for op in adds if ran[op.output] == "QLinearAdd"]
    assert len(fused) == 2  # the two blocks whose shortcut is a conv
    datapath = DATAPATHS[backend]
    for op in fused:
        out = program.tensor(op.output)
        values = datapath.run_accumulating(op, [runtime[op.input_a], runtime[op.input_b]],
                                           [program.tensor(name).quant for name in op.inputs], out.quant, out.shape,
                                           program.accumulator_bits, program.overflow).values
        assert np.array_equal(values, runtime[op.output]), op.name


def test_int8_qdq_resnet_is_not_all_integer_in_onnxruntime(int8_resnet_model, tmp_path):
    """What onnxruntime 1.32 (x86) does with the int8 default: a quantized tensor read by two
    groups (a block's input: its first conv and its add) keeps int8, which its x86 integer
    kernels do not take, so the full model runs those convs and every add in float (12 Conv and
    9 Add of 21 and 9). ``verify`` compares truncated models, which do fuse the convs; this is
    why the bit-exact ResNet checks use uint8 activations."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(int8_resnet_model), options, providers=["CPUExecutionProvider"])
    ran = [node.op_type for node in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    assert ran.count("Conv") == 12 and ran.count("QLinearConv") == 9
    assert ran.count("Add") == 9 and "QLinearAdd" not in ran


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


def test_node_without_output_is_a_clear_error(plain_model, tmp_path):
    """A node whose outputs were cut (a byte flip found it: the importer indexed its first output)
    is refused naming the node, before any translation."""
    import onnx

    model = onnx.load(str(plain_model))
    node = next(n for n in model.graph.node if n.op_type == "DequantizeLinear")
    del node.output[:]
    path = tmp_path / "no_output.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ArtifactError, match=f"{path}: node \\d+ '{node.name}' \\(DequantizeLinear\\) has no output"):
        import_onnx(path)


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


@exact_onnxruntime
@pytest.mark.parametrize("quant_format", [QuantFormat.QDQ, QuantFormat.QOperator], ids=["qdq", "qoperator"])
def test_asymmetric_pads_equal_onnxruntime(quant_format, batch, tmp_path):
    """A conv and a max pooling whose ONNX pads differ before and after (TF's "SAME" at stride 2,
    [0, 0, 1, 1], as TensorFlow exports have it; the 2x2 pooling edited to 3x3/2 "SAME") import
    with padding (0, 0) and padding_end (1, 1), and every tensor equals onnxruntime's on both
    backends."""
    torch.manual_seed(0)
    float_path, path = tmp_path / "float.onnx", tmp_path / "same.onnx"
    torch.onnx.export(_Plain().eval(), torch.randn(1, *SHAPE), str(float_path), input_names=["x"], output_names=["y"],
                      opset_version=17, dynamo=False, dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    model = onnx.load(str(float_path))
    strided = next(node for node in model.graph.node if node.op_type == "Conv"
                   and any(a.name == "strides" and list(a.ints) == [2, 2] for a in node.attribute))
    next(a for a in strided.attribute if a.name == "pads").ints[:] = [0, 0, 1, 1]
    pool = next(node for node in model.graph.node if node.op_type == "MaxPool")
    next(a for a in pool.attribute if a.name == "kernel_shape").ints[:] = [3, 3]
    next(a for a in pool.attribute if a.name == "pads").ints[:] = [0, 0, 1, 1]
    onnx.save(model, str(float_path))
    quantize_static(str(float_path), str(path), _Reader(0), quant_format=quant_format, per_channel=True)
    imported = import_onnx(path)
    padded = [op for op in imported.program.ops if op.kind in (OpKind.CONV2D, OpKind.MAXPOOL2D) and op.stride == (2, 2)]
    assert [(op.kind, op.padding, op.padding_end) for op in padded] == [(OpKind.MAXPOOL2D, (0, 0), (1, 1)),
                                                                        (OpKind.CONV2D, (0, 0), (1, 1))]
    runtime = run_tensors(path, imported.graph_input, imported.program, batch)
    for backend in Backend:
        result = Simulator(imported.program, backend).run(runtime[imported.program.input].astype(np.int32), keep_tensors=True)
        for tensor in imported.program.tensors:
            assert np.array_equal(result.tensors[tensor.name], runtime[tensor.name]), (backend, tensor.name)
