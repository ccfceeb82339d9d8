"""``aquant import``: an onnxruntime-quantized model saved as a program that the other commands run."""

import numpy as np

from aquant_sim.artifact import load_program
from aquant_sim.cli import main
from aquant_sim.importers.onnx_qdq import import_onnx
from aquant_sim.simulator import Backend, Simulator


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
    assert main(["hw-report", str(out)]) == 0
    assert "conv" in capsys.readouterr().out.lower()


def test_unsupported_model_is_a_one_line_error(unsupported_model, tmp_path, capsys):
    """A model with a node the importer does not translate fails with one line naming it."""
    code = main(["import", str(unsupported_model), "--out", str(tmp_path / "p.aqp")])
    err = capsys.readouterr().err
    assert code != 0 and "(AveragePool): op type AveragePool is not supported" in err and err.count("\n") == 1, err
