"""ONNX export of integer programs: the aquant form gives back the identical program (every op
field) for random programs of every op, variant and width and for zoo programs lowered by RTN;
onnxruntime's form gives back imported programs identically, and onnxruntime computes on it the
integers the simulator computes, every tensor, both backends."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from onnxruntime.quantization import QuantFormat, QuantType

from aquant_sim.errors import UnsupportedError
from aquant_sim.exporters.onnx_export import DOMAIN, ExportForm, export_onnx, to_onnx
from aquant_sim.importers.onnx_qdq import import_onnx
from aquant_sim.importers.onnxruntime_run import kernels, run_tensors
from aquant_sim.program import OpKind
from aquant_sim.program_diff import programs_differ
from aquant_sim.quantize import calibrate, convert, prepare
from aquant_sim.rounding import RequantVariant
from aquant_sim.simulator import Backend, Simulator
from aquant_sim.testing.programs import programs

from onnx_fixtures import SHAPE, quantized_model, zoo_model, exact_onnxruntime


def _round_trip(program, path, form=ExportForm.AQUANT):
    back = import_onnx(export_onnx(program, path, form)).program
    assert programs_differ(program, back) == ""
    return back


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(program=programs(max_ops=5))
def test_random_programs_round_trip_exactly(program, tmp_path):
    """Every drawn program (conv, linear with or without requantizer, add, concat, pools, clamp,
    lookup table, product; BORDER, GEMMLOWP, FP32, FLOAT64, FP32_ADD and TFLite's add, average and
    mean requantizers; 2- to 8-bit
    tensors, every border granularity, both overflow policies) exports to a valid ONNX model
    (onnx.checker) and imports back identical, every op field."""
    _round_trip(program, tmp_path / "p.onnx")


def test_wide_tensors_round_trip(tmp_path):
    """Tensors and weights of more than 8 bits travel in int16 / uint16 levels."""
    from aquant_sim.synthetic import SyntheticConfig, synthetic_resnet

    program = synthetic_resnet(SyntheticConfig(input_shape=(3, 8, 8), widths=(4, 8), blocks=(1, 1), num_classes=3,
                                               act_bits=12, weight_bits=12))
    model = to_onnx(program)
    types = {i.name.rsplit(":", 1)[1]: i.data_type for i in model.graph.initializer}
    assert types["weight"] == onnx.TensorProto.INT16 and types["zero_point"] in (onnx.TensorProto.INT16, onnx.TensorProto.UINT16)
    _round_trip(program, tmp_path / "wide.onnx")


def _rtn(name: str, **options):
    """The zoo model ``name`` (random batch-norm statistics) lowered by RTN on random images."""
    torch.manual_seed(0)
    images = torch.randn(4, *SHAPE)
    return convert(calibrate(prepare(zoo_model(name, **options).eval(), images[:1]), [images], method="rtn", iters=0,
                             progress=False))


@pytest.fixture(scope="module")
def rtn_resnet20():
    return _rtn("resnet20", width=4)


def test_rtn_zoo_programs_round_trip(rtn_resnet20, tmp_path):
    """The zoo's ResNet-20 and ResNet-18 (its padded max pooling), lowered by RTN (BORDER
    requantizers, a linear that leaves accumulators), export and import back identical."""
    resnet18 = _rtn("resnet18", width=8)
    assert OpKind.MAXPOOL2D in {op.kind for op in resnet18.ops}
    for program in (rtn_resnet20, resnet18):
        assert {op.requant.variant for op in program.ops if getattr(op, "requant", None)} == {RequantVariant.BORDER}
        _round_trip(program, tmp_path / "rtn.onnx")


def test_aquant_form_is_documented_custom_ops(rtn_resnet20):
    """The aquant form imports the ai.aquant domain; its custom nodes are one BorderQuantize, a
    Requantize per requantizer and an Accumulate for the linear that leaves accumulators;
    everything else is standard ONNX."""
    exported = to_onnx(rtn_resnet20)
    assert {(o.domain, o.version) for o in exported.opset_import} == {("", 21), (DOMAIN, 1)}
    custom = [n.op_type for n in exported.graph.node if n.domain == DOMAIN]
    requantizing = [op for op in rtn_resnet20.ops if getattr(op, "requant", None) is not None]
    assert custom.count("BorderQuantize") == 1 and custom.count("Requantize") == len(requantizing) == 31
    assert custom.count("Accumulate") == 1 and len(custom) == 33
    assert {n.op_type for n in exported.graph.node if n.domain == ""} == {
        "DequantizeLinear", "Conv", "Add", "GlobalAveragePool", "Flatten", "QuantizeLinear", "Gemm"}


def test_onnxruntime_cannot_run_the_aquant_form(rtn_resnet20, tmp_path):
    """onnxruntime implements no ai.aquant op: a session on the aquant form fails, naming it."""
    path = export_onnx(rtn_resnet20, tmp_path / "aquant.onnx")
    with pytest.raises(Exception, match="ai.aquant|BorderQuantize|Requantize"):
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_border_programs_are_refused_in_onnxruntime_form(rtn_resnet20, tmp_path):
    """A program with the project's BORDER requantizer is refused in onnxruntime's form, naming
    the op and the variant; nothing is written."""
    with pytest.raises(UnsupportedError, match=r"\(conv2d, border\).*aquant form"):
        export_onnx(rtn_resnet20, tmp_path / "ort.onnx", ExportForm.ONNXRUNTIME)
    assert not (tmp_path / "ort.onnx").exists()


def _check_against_onnxruntime(program, path, batch, tmp_path):
    """onnxruntime's levels of every tensor of the exported ``path`` equal the simulator's on
    both backends; every layer ran in an integer kernel. Returns the kernels."""
    runtime = run_tensors(path, import_onnx(path).graph_input, program, batch)
    ran = kernels(path, program, tmp_path)
    assert [name for name, kernel in ran.items() if kernel == "QuantizeLinear" and name != program.input] == []
    for backend in Backend:
        result = Simulator(program, backend).run(runtime[program.input].astype(np.int32), keep_tensors=True)
        for tensor in program.tensors:
            assert np.array_equal(result.tensors[tensor.name], runtime[tensor.name]), (backend, tensor.name)
    return ran


@exact_onnxruntime
def test_imported_programs_round_trip_in_onnxruntime_form(plain_model, batch, tmp_path):
    """A program imported from onnxruntime (QDQ or QOperator, per tensor or per channel) exports
    in onnxruntime's form, imports back identical, and onnxruntime runs the export in its integer
    kernels with every tensor equal to the simulator's on both backends."""
    program = import_onnx(plain_model).program
    path = tmp_path / "exported.onnx"
    _round_trip(program, path, ExportForm.ONNXRUNTIME)
    ran = _check_against_onnxruntime(program, path, batch, tmp_path)
    assert {"QLinearConv", "QGemm", "QLinearGlobalAveragePool", "MaxPool"} <= set(ran.values())
    _round_trip(program, tmp_path / "aquant.onnx")


@exact_onnxruntime
def test_imported_resnet20_in_onnxruntime_form_equals_onnxruntime(resnet_model, batch, tmp_path):
    """ResNet-20 imported from onnxruntime (uint8, four forms) exports in onnxruntime's form; its
    9 adds run as QLinearAdd and all 34 tensors equal the simulator's."""
    program = import_onnx(resnet_model).program
    path = tmp_path / "exported.onnx"
    _round_trip(program, path, ExportForm.ONNXRUNTIME)
    assert list(_check_against_onnxruntime(program, path, batch, tmp_path).values()).count("QLinearAdd") == 9


def test_int8_qoperator_adds_are_refused_in_onnxruntime_form(tmp_path):
    """An int8 QLinearAdd of a QOperator model runs on its levels as they are (offset 0), but an
    int8 QDQ add runs with onnxruntime's offset 128: the QDQ export would compute another add, so
    it is refused (the re-import names the differing field)."""
    path = quantized_model(tmp_path, zoo_model("resnet20", width=4), per_channel=False, quant_format=QuantFormat.QOperator,
                           activation_type=QuantType.QInt8)
    program = import_onnx(path).program
    assert {op.zero_offset for op in program.ops if op.kind is OpKind.ADD} == {0}
    with pytest.raises(UnsupportedError, match=r"zero_offset differs"):
        export_onnx(program, tmp_path / "ort.onnx", ExportForm.ONNXRUNTIME)
    _round_trip(program, tmp_path / "aquant.onnx")
    assert RequantVariant.FP32_ADD in {op.requant.variant for op in program.ops if op.kind is OpKind.ADD}
