"""One loader for every program source: .onnx and .tflite imported, anything else read as an artifact."""

import pytest
from onnxruntime.quantization import QuantFormat

from aquant_sim.artifact import save_program
from aquant_sim.errors import ArtifactError
from aquant_sim.importers.loading import load_any_program
from aquant_sim.importers.onnx_qdq import import_onnx
from aquant_sim.rounding import RequantVariant
from aquant_sim.testing.tflite_models import small_cnn


@pytest.mark.parametrize("plain_model", [(QuantFormat.QDQ, True)], indirect=True)
def test_each_format(plain_model, tmp_path):
    """An .onnx model gives its FP32 program, a .tflite model its GEMMLOWP one, and a saved
    program reads back with the same ops."""
    onnx_program = load_any_program(plain_model)
    assert {op.requant.variant for op in onnx_program.ops if getattr(op, "requant", None)} == {RequantVariant.FP32}
    data, _ = small_cnn(per_channel=False, batch=2)
    (tmp_path / "m.tflite").write_bytes(data)
    assert RequantVariant.GEMMLOWP in {op.requant.variant for op in load_any_program(tmp_path / "m.tflite").ops
                                       if getattr(op, "requant", None)}
    save_program(import_onnx(plain_model).program, tmp_path / "p.aqp")
    assert [op.name for op in load_any_program(tmp_path / "p.aqp").ops] == [op.name for op in onnx_program.ops]


def test_unreadable_artifact(tmp_path):
    """A file of another suffix is read as an artifact, and a bad one fails as such."""
    bad = tmp_path / "p.bin"
    bad.write_bytes(b"nothing")
    with pytest.raises(ArtifactError, match="p.bin"):
        load_any_program(bad)
