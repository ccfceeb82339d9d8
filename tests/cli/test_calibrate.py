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
    assert f"integer_accuracy: {report['integer_accuracy']:.2%}" in printed


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


@pytest.fixture
def data_stops(monkeypatch):
    """Dataset loading raises DataError('data reached'): a command that gets there exits 2 with it."""
    import aquant_sim.data
    from aquant_sim.errors import DataError

    def stop(*args, **kwargs):
        raise DataError("data reached")

    monkeypatch.setattr(aquant_sim.data, "load_dataset", stop)


@pytest.mark.parametrize("method, iters, noted", [("aquant", None, True), ("aquant", "200", False), ("rtn", None, False)])
def test_long_schedule_is_noted_before_data(weights, tmp_path, capsys, data_stops, method, iters, noted):
    """The 20,000-iteration default gets a note before any data loads; a short schedule, or RTN
    (which does not iterate), does not."""
    argv = ["calibrate", "--model", "resnet20", "--weights", str(weights), "--data", "fashion-mnist",
            "--method", method, "--out", str(tmp_path / "p.aqp"), *(["--iters", iters] if iters else [])]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "data reached" in err
    assert ("note: --iters 20000" in err) is noted


def test_wrong_model_is_found_before_data(weights, tmp_path, capsys, data_stops):
    """Weights of another model are refused before the data is read."""
    argv = ["calibrate", "--model", "resnet18", "--weights", str(weights), "--data", "fashion-mnist", "--out", str(tmp_path / "p.aqp")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "are of model resnet20" in err and "data reached" not in err


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_state_dict_weights_are_accepted(tmp_path, capsys, data_stops, suffix):
    """A plain state dict as .pt or .safetensors is read, matched to --model and accepted: the
    command gets as far as the data."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    state = build_model("resnet20", 1, 10).state_dict()
    path = tmp_path / f"w{suffix}"
    torch.save(state, path) if suffix == ".pt" else save_file(state, str(path))
    argv = ["calibrate", "--model", "resnet20", "--weights", str(path), "--data", "fashion-mnist", "--iters", "1", "--out", str(tmp_path / "p.aqp")]
    assert main(argv) == 2
    assert "data reached" in capsys.readouterr().err


def test_own_model_by_factory(tmp_path, monkeypatch, capsys, data_stops):
    """--model module:factory builds the user's model and loads its .pt state dict before the
    data is read; a state dict of another shape is refused naming the parameter."""
    (tmp_path / "my_cnn.py").write_text(
        "from torch import nn\n"
        "def build():\n"
        "    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_cnn

    torch.save(my_cnn.build().state_dict(), tmp_path / "w.pt")
    argv = ["calibrate", "--model", "my_cnn:build", "--weights", str(tmp_path / "w.pt"), "--data", "fashion-mnist",
            "--iters", "1", "--out", str(tmp_path / "p.aqp")]
    assert main(argv) == 2
    assert "data reached" in capsys.readouterr().err
    torch.save({**my_cnn.build().state_dict(), "4.weight": torch.zeros(3, 4)}, tmp_path / "w.pt")
    assert main(argv) == 2
    assert "parameter '4.weight' has shape (3, 4)" in capsys.readouterr().err
