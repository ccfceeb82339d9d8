"""``aquant import``: an onnxruntime-quantized model or an int8 TFLite model saved as a program that
the other commands run."""

import numpy as np

from aquant_sim.artifact import load_program
from aquant_sim.cli import main
from aquant_sim.importers.onnx_qdq import import_onnx
from aquant_sim.importers.tflite_model import import_tflite
from aquant_sim.program_diff import programs_differ
from aquant_sim.simulator import Backend, Simulator
from aquant_sim.testing.tflite_models import logistic_model, small_cnn


def test_imported_program_saves_loads_and_reports(plain_model, batch, tmp_path, capsys):
    """The saved program loads with its FP32 requantizers, computes the same integers as the
    imported one, and hw-report runs on it."""
    out = tmp_path / "imported.aqp"
    assert main(["import", str(plain_model), "--out", str(out)]) == 0
    assert "requantizers fp32" in capsys.readouterr().out
    loaded, imported = load_program(out), import_onnx(plain_model).program
    quant = imported.input_tensor.quant
    levels = np.random.default_rng(0).integers(quant.qmin, quant.qmax + 1, size=(2, *imported.input_tensor.shape))
    a = Simulator(loaded, Backend.REFERENCE).run(levels).output
    b = Simulator(imported, Backend.REFERENCE).run(levels).output
    assert np.array_equal(a, b)
    assert programs_differ(imported, loaded) == ""
    assert main(["hw-report", str(out)]) == 0
    assert "conv" in capsys.readouterr().out.lower()


def test_tflite_model_saves_and_loads_identically(tmp_path, capsys):
    """A .tflite model (any case of the ending) is read by the TFLite importer: the saved program
    holds TFLite's requantizers, FLOAT64's 53-bit multipliers included, is identical to the
    imported one in every field, and hw-report runs on it."""
    model = tmp_path / "cnn.TFLite"
    model.write_bytes(small_cnn(per_channel=True)[0])
    out = tmp_path / "cnn.aqp"
    assert main(["import", str(model), "--out", str(out)]) == 0
    assert "requantizers float64, gemmlowp, tflite_add, tflite_avgpool, tflite_mean" in capsys.readouterr().out
    assert programs_differ(import_tflite(model).program, load_program(out)) == ""
    assert main(["hw-report", str(out)]) == 0
    assert "linear" in capsys.readouterr().out.lower()


def test_unsupported_tflite_operator_is_a_one_line_error(tmp_path, capsys):
    """A .tflite operator the importer does not translate fails with one line naming it, and
    writes no program."""
    model = tmp_path / "logistic.tflite"
    model.write_bytes(logistic_model())
    code = main(["import", str(model), "--out", str(tmp_path / "p.aqp")])
    err = capsys.readouterr().err
    assert code != 0 and "operator 0 (LOGISTIC): op type LOGISTIC is not supported" in err and err.count("\n") == 1, err
    assert not (tmp_path / "p.aqp").exists()


def test_unsupported_model_is_a_one_line_error(unsupported_model, tmp_path, capsys):
    """A model with a node the importer does not translate fails with one line naming it."""
    code = main(["import", str(unsupported_model), "--out", str(tmp_path / "p.aqp")])
    err = capsys.readouterr().err
    assert code != 0 and "(AveragePool): op type AveragePool is not supported" in err and err.count("\n") == 1, err
