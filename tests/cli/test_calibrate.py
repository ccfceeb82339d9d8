"""``aquant calibrate`` and ``aquant evaluate`` end to end on a narrow ResNet-20."""

import json

import pytest
import torch

from aquant_sim.cli import main
from aquant_sim.models import build_model, save_weights


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "r20.npz"
    save_weights(build_model("resnet20", 1, 10, width=4), path)
    return path


def test_calibrate_then_evaluate(weights, tmp_path, capsys):
    """calibrate writes a program and a summary; evaluate of that program on the same images
    reports the same integer accuracy."""
    out, summary = tmp_path / "p.aqp", tmp_path / "s.json"
    code = main(["calibrate", "--model", "resnet20", "--weights", str(weights), "--data", "fashion-mnist",
                 "--w-bits", "3", "--a-bits", "3", "--method", "aquant", "--iters", "2", "--calib-size", "16",
                 "--eval-size", "32", "--seed", "0", "--backend", "reference", "--out", str(out), "--summary", str(summary)])
    assert code == 0 and out.exists()
    report = json.loads(summary.read_text())
    assert report["samples"] == 32 and len(report["units"]) == 11
    assert {"loss_before", "loss_after"} <= set(report["units"][0])
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data", "fashion-mnist", "--limit", "32", "--seed", "0", "--backend", "reference"]) == 0
    printed = capsys.readouterr().out
    assert f"integer_accuracy: {report['integer_accuracy']:.4f}" in printed


@pytest.mark.parametrize("extra, message", [
    (["--data", "/no/such/dataset"], "unknown dataset"),
    (["--data", "fashion-mnist", "--model", "resnet18"], "are of model resnet20"),
])
def test_bad_input_is_one_clear_line(weights, tmp_path, capsys, extra, message):
    """A missing dataset or weights of another model exit with status 2 and a one-line error."""
    args = ["calibrate", "--model", "resnet20", "--weights", str(weights), "--iters", "1", "--calib-size", "8",
            "--eval-size", "8", "--out", str(tmp_path / "p.aqp")]
    assert main(args + extra) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
