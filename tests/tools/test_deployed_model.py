import numpy as np
import pytest

import deployed_model
from aquant_sim.importers.onnx_qdq import import_onnx
from aquant_sim.program import OpKind
from aquant_sim.rounding import RequantVariant


@pytest.mark.parametrize("flags", [[], ["--per-tensor", "--int8-activations"]], ids=["channel_uint8", "tensor_int8"])
def test_writes_a_quantized_model_the_importer_reads(tmp_path, capsys, flags):
    """A briefly trained zoo model, quantized by quantize_static: the importer reads it with
    onnxruntime's requantizers, weight scales per channel or per tensor as asked, and the tool
    prints where it wrote the float and the int8 model."""
    out = tmp_path / "m_int8.onnx"
    assert deployed_model.main(["--out", str(out), "--width", "2", "--train-images", "64", "--epochs", "1",
                                "--calib-images", "32", *flags]) == 0
    printed = capsys.readouterr().out
    assert f"int8_model: {out}" in printed and (tmp_path / "m_int8.float.onnx").exists()
    assert 0.0 <= float(printed.split("float_top1_1000_test: ")[1].split()[0]) <= 1.0
    program = import_onnx(out).program
    convs = [op for op in program.ops if op.kind is OpKind.CONV2D]
    assert convs and {op.requant.variant for op in convs} == {RequantVariant.FP32}
    distinct_scales = [np.unique(op.weight_scale).size for op in convs]
    assert max(distinct_scales) == 1 if "--per-tensor" in flags else max(distinct_scales) > 1
    quant = program.tensor(program.input).quant
    assert (quant.qmin, quant.qmax) == ((-128, 127) if "--int8-activations" in flags else (0, 255))


def test_bad_counts_are_refused():
    with pytest.raises(SystemExit):
        deployed_model.main(["--out", "x.onnx", "--epochs", "0"])
