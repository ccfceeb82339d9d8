"""``aquant verify MODEL.onnx --against onnxruntime``: the per-layer report, the exit code and the
JSON, on models quantized by onnxruntime's own tool."""

import json

import numpy as np

from aquant_sim.cli import main
from aquant_sim.importers import onnxruntime_run

from onnx_fixtures import exact_onnxruntime


@exact_onnxruntime
def test_onnxruntime_model_verifies_bit_exact(plain_model, batch, tmp_path, capsys):
    """Every tensor of an onnxruntime-quantized model equals the simulator's: exit 0, a row per
    layer naming onnxruntime's kernel, 0 differing elements everywhere."""
    report = tmp_path / "report.json"
    code = main(["verify", str(plain_model), "--against", "onnxruntime", "--input", str(tmp_path / "x.npy"),
                 "--json", str(report)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "QLinearConv" in out and "QGemm" in out and "PASS, bit-exact against onnxruntime" in out
    data = json.loads(report.read_text())
    assert data["equal"] and all(c["differing"] == 0 for checks in data["checks"].values() for c in checks)
    assert len(data["checks"]["numba"]) == 9


@exact_onnxruntime
def test_resnet20_verifies_bit_exact(resnet_model, batch, tmp_path, capsys):
    """The zoo's ResNet-20 quantized by onnxruntime (uint8 activations, QDQ and QOperator, per
    tensor and per channel): exit 0, its residual adds run as QLinearAdd, every layer fused, 0
    differing elements on all 34 tensors and both backends."""
    report = tmp_path / "report.json"
    code = main(["verify", str(resnet_model), "--against", "onnxruntime", "--input", str(tmp_path / "x.npy"),
                 "--json", str(report)])
    out = capsys.readouterr().out
    assert code == 0 and "QLinearAdd" in out and "did not fuse" not in out, out
    data = json.loads(report.read_text())
    assert data["equal"] and all(c["differing"] == 0 for checks in data["checks"].values() for c in checks)
    assert list(data["kernels"].values()).count("QLinearAdd") == 9


@exact_onnxruntime
def test_resnet18_verifies_bit_exact(resnet18_model, batch, tmp_path, capsys):
    """The zoo's ResNet-18 quantized by onnxruntime (uint8 activations, QDQ and QOperator, per
    tensor and per channel): its padded max pooling and 8 residual adds import, onnxruntime runs
    20 QLinearConv, 8 QLinearAdd, MaxPool, QLinearGlobalAveragePool and QGemm, and every one of
    the 33 tensors is equal on both backends: exit 0, 0 differing elements."""
    report = tmp_path / "report.json"
    code = main(["verify", str(resnet18_model), "--against", "onnxruntime", "--input", str(tmp_path / "x.npy"),
                 "--json", str(report)])
    out = capsys.readouterr().out
    assert code == 0 and "did not fuse" not in out, out
    data = json.loads(report.read_text())
    assert data["equal"] and all(c["differing"] == 0 for checks in data["checks"].values() for c in checks)
    assert {name: len(checks) for name, checks in data["checks"].items()} == {"numba": 33, "reference": 33}
    ran = list(data["kernels"].values())
    assert (ran.count("QLinearConv"), ran.count("QLinearAdd"), ran.count("MaxPool")) == (20, 8, 1)
    assert {"QLinearGlobalAveragePool", "QGemm"} <= set(ran)


@exact_onnxruntime
def test_a_difference_fails_and_is_named(plain_model, batch, tmp_path, capsys, monkeypatch):
    """When onnxruntime's integers differ (here: one level of the last tensor changed; the command
    imports run_tensors when it runs, so patching the module reaches it), verify exits 1 and names
    the layer, the index and both values."""
    original = onnxruntime_run.run_tensors

    def changed(*args):
        tensors = original(*args)
        last = list(tensors)[-1]
        tensors[last] = tensors[last].copy()
        tensors[last][1, 2] += 1
        return tensors

    monkeypatch.setattr(onnxruntime_run, "run_tensors", changed)
    code = main(["verify", str(plain_model), "--against", "onnxruntime", "--input", str(tmp_path / "x.npy")])
    out = capsys.readouterr().out
    assert code == 1 and "FAIL" in out and "at index (1, 2)" in out, out


def test_a_saturating_runtime_is_named_beside_the_verdict(plain_model, batch, tmp_path, capsys, monkeypatch):
    """Where the probe finds onnxruntime's pair sums saturated (patched here, so that every machine
    runs this), verify says so with the probe's figures, in its text and its JSON."""
    monkeypatch.setattr(onnxruntime_run, "pair_sums_saturate", lambda: 65534)
    main(["verify", str(plain_model), "--against", "onnxruntime", "--input", str(tmp_path / "x.npy"),
          "--json", str(tmp_path / "v.json")])
    out = capsys.readouterr().out
    assert "int16 saturation" in out and "gave 65,534, not 129,540" in out, out
    assert json.loads((tmp_path / "v.json").read_text())["pair_sums_saturate"] == 65534


def test_integer_input_is_refused(plain_model, tmp_path, capsys):
    """--against needs the float batch the runtime quantizes itself: integers are a one-line error."""
    np.save(tmp_path / "levels.npy", np.zeros((1, 3, 16, 16), dtype=np.int32))
    code = main(["verify", str(plain_model), "--against", "onnxruntime", "--input", str(tmp_path / "levels.npy")])
    assert code != 0 and "expected a float batch" in capsys.readouterr().err
