"""`aquant train` end to end on a tiny subset."""

import json
import subprocess
import sys

import numpy as np
import pytest

from aquant_sim.cli import main
from aquant_sim.cli.train import MODEL_HELP
from aquant_sim.data import load_dataset
from aquant_sim.models import ModelName, load_model
from aquant_sim.models.training import evaluate


def test_train_writes_weights_and_summary(tmp_path, capsys):
    """A one-epoch run on 256 images writes loadable weights and a JSON summary whose test
    accuracy is what the saved model scores on the same seeded test subset."""
    out = tmp_path / "runs" / "r20.npz"
    argv = ["train", "--model", "resnet20", "--data", "fashion-mnist", "--epochs", "1", "--batch-size", "64", "--lr", "0.05", "--seed", "3", "--limit", "256", "--width", "8", "--out", str(out), "--quiet", "--threads", "1"]
    assert main(argv) == 0
    assert "test accuracy:" in capsys.readouterr().out
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["model"] == {"name": "resnet20", "in_channels": 1, "num_classes": 10, "options": {"width": 8}}
    assert summary["test_images"] == 256 and summary["train"]["images"] == 256 and len(summary["train"]["epochs"]) == 1
    model, meta = load_model(out)
    test_set = load_dataset("fashion-mnist", "test", limit=256, seed=3)
    assert evaluate(model, test_set) == summary["test_accuracy"] == meta["test_accuracy"]
    assert meta["normalisation"] == {"mean": list(test_set.mean), "std": list(test_set.std)}


def test_mobilenet_width_multiplier(tmp_path):
    """--width is the width multiplier of mobilenetv2."""
    out = tmp_path / "m.npz"
    argv = ["train", "--model", "mobilenetv2", "--data", "mnist-digits", "--epochs", "1", "--batch-size", "32", "--limit", "32", "--width", "0.25", "--out", str(out), "--quiet", "--threads", "1"]
    assert main(argv) == 0
    assert load_model(out)[0].aquant_build["options"] == {"width_mult": 0.25}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--data", "no-such-set"], "unknown dataset 'no-such-set'"),
        (["--data", "mnist-digits", "--width", "8.5"], "channel count"),
        (["--data", "mnist-digits", "--batch-size", "1"], "argument --batch-size: must be at least 2"),
        (["--data", "mnist-digits", "--model", "vgg16"], "unknown model 'vgg16'"),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, extra, message):
    """Bad settings exit with status 2 and a one-line error, and write nothing."""
    out = tmp_path / "w.npz"
    argv = ["train", "--model", "resnet20", "--epochs", "1", "--limit", "32", "--out", str(out), "--quiet", "--threads", "1", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("aquant train: error:") and message in err
    assert not out.exists()


def test_out_must_be_npz(tmp_path, capsys):
    """--out must name a .npz file."""
    assert main(["train", "--model", "resnet20", "--data", "mnist-digits", "--out", str(tmp_path / "w.pt")]) == 2
    assert ".npz" in capsys.readouterr().err


def test_parser_does_not_import_torch_and_names_every_model():
    """Building the `aquant` parser imports no torch, and --model's help names every zoo model."""
    code = (
        "import sys; from aquant_sim.cli import build_parser; build_parser(); "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
    assert all(name.value in MODEL_HELP for name in ModelName)
