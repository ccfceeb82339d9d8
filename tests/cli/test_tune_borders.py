"""``aquant tune-borders``: the three programs side by side on a real model, the ops it keeps
named, the tuned program saved, and bad input reported in one line."""

import json

import pytest
from onnxruntime.quantization import QuantFormat

from aquant_sim.artifact import load_program
from aquant_sim.cli import main
from aquant_sim.rounding import RequantVariant


def test_end_to_end(fashion_model, tmp_path, capsys):
    """A ResNet-20 quantized by onnxruntime, tuned for a few steps on Fashion-MNIST: the
    comparison lists the three programs with their cost, names every add and the pooling as not
    tuned, reports 100% torch/simulator agreement, and the saved program has BORDER convs."""
    out, summary = tmp_path / "tuned.aqp", tmp_path / "s.json"
    argv = ["tune-borders", str(fashion_model[0]), "--data", "fashion-mnist", "--out", str(out), "--iters", "5",
            "--calib-size", "32", "--limit", "64", "--frac-bits", "6", "--json", str(summary)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "not in the original runtime" in text
    assert text.count("not tuned:") == 10 and "fp32_add" in text and "global_avgpool" in text
    assert "agreement 100.00%" in text
    report = json.loads(summary.read_text())
    assert report["agreement"] == 1.0 and report["test_images"] == 64
    rows = report["programs"]
    assert set(rows) == {"imported", "border_nearest", "tuned"}
    assert rows["imported"]["border_area_um2"] == rows["border_nearest"]["border_area_um2"] == 0
    tuned = load_program(out)
    moved = any(not op.requant.borders.is_nearest for op in tuned.ops if getattr(op, "requant", None) is not None)
    assert (rows["tuned"]["border_area_um2"] > 0) == moved
    variants = {op.requant.variant for op in tuned.ops if getattr(op, "requant", None) is not None}
    assert variants == {RequantVariant.BORDER, RequantVariant.FP32_ADD, RequantVariant.FP32}
    assert len(report["tuned"]) == sum(op.requant.variant is RequantVariant.BORDER for op in tuned.ops if getattr(op, "requant", None))


@pytest.mark.parametrize("plain_model", [(QuantFormat.QDQ, False)], indirect=True)
def test_bad_input_is_one_line(fashion_model, plain_model, tmp_path, capsys):
    """A model whose input does not fit the dataset, a missing model file and a bad option each
    exit with status 2 and one line naming the problem."""
    out = str(tmp_path / "t.aqp")
    assert main(["tune-borders", str(plain_model), "--data", "fashion-mnist", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "do not fit the model input (3, 16, 16)" in err and err.count("\n") == 1
    assert main(["tune-borders", str(tmp_path / "none.onnx"), "--data", "fashion-mnist", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "none.onnx" in err and err.count("\n") == 1 and "Traceback" not in err
    assert main(["tune-borders", str(fashion_model[0]), "--data", "fashion-mnist", "--out", out, "--frac-bits", "0"]) == 2
    assert "--frac-bits" in capsys.readouterr().err
    assert main(["tune-borders", str(fashion_model[0]), "--data", "fashion-mnist", "--out", str(tmp_path / "no" / "t.aqp")]) == 2
    assert "folder" in capsys.readouterr().err
