"""``aquant demo``: the built-in example from nothing to a verified run."""

import json

import numpy as np

from aquant_sim.artifact import load_program
from aquant_sim.cli import demo, main, verify
from aquant_sim.simulator import Backend


def _check_outputs(out):
    program = load_program(out / "program.aqp")
    result = json.loads((out / "result.json").read_text())
    assert np.load(out / "input.npy").shape == (demo.BATCH, *program.input_tensor.shape)
    assert len(result["argmax"]) == demo.BATCH
    with np.load(out / "dumps.npz") as dumps:
        assert set(dumps.files) == {program.input} | {op.output for op in program.ops}
    report = json.loads((out / "hw_report.json").read_text())
    names = [row["name"] for row in report["layers"]]
    assert names == [op.name for op in program.ops if op.name in names] and report["counters_used"]
    assert {op.name for op in program.ops if op.kind.value in ("conv2d", "linear")} <= set(names)


def test_demo_outputs_verify(tmp_path, capsys, monkeypatch):
    """demo (reference compared with itself) exits 0, prints the summary, ends with the hardware
    report, and its dumps pass verify --expect."""
    monkeypatch.setattr(demo, "COMPARED", (Backend.REFERENCE, Backend.REFERENCE))
    monkeypatch.setattr(verify, "COMPARED", (Backend.REFERENCE, Backend.REFERENCE))
    out = tmp_path / "demo"
    assert main(["demo", "--synthetic", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "layer1.0.conv1" in text and "demo: PASS" in text
    assert text.rstrip().endswith("--json " + str(out / "hw_report.json")) and "border unit overhead" in text
    _check_outputs(out)
    assert main(["verify", str(out / "program.aqp"), "--input", str(out / "input.npy"), "--expect", str(out / "dumps.npz")]) == 0


def test_demo_numba(tmp_path, capsys):
    """demo with the real numba backend: numba == reference on every tensor, and the hw-report
    command it prints reproduces its hardware report byte for byte."""
    out = tmp_path / "demo"
    assert main(["demo", "--synthetic", "--out", str(out)]) == 0
    assert "demo: PASS, numba == reference" in capsys.readouterr().out
    _check_outputs(out)
    again = out / "again.json"
    assert main(["hw-report", str(out / "program.aqp"), "--input", str(out / "input.npy"), "--json", str(again)]) == 0
    assert again.read_bytes() == (out / "hw_report.json").read_bytes()


def test_demo_calibrated_pipeline(tmp_path, capsys):
    """The default main job (train, calibrate, evaluate, then the integer path) runs end to end on
    tiny settings, reports the integer program's accuracy and reuses the float model next time."""
    out = tmp_path / "demo"
    tiny = ["--train-size", "64", "--iters", "2", "--calib-size", "16", "--eval-size", "16", "--out", str(out)]
    assert main(["demo", *tiny]) == 0
    text = capsys.readouterr().out
    assert "[1/3] training" in text and "demo: PASS, numba == reference" in text
    accuracy = json.loads((out / "accuracy.json").read_text())
    assert accuracy["samples"] == 16 and 0.0 <= accuracy["integer_accuracy"] <= 1.0
    program = load_program(out / "program.aqp")
    assert np.load(out / "input.npy").shape == (demo.BATCH, *program.input_tensor.shape)
    assert main(["demo", *tiny]) == 0
    assert "[1/3] reusing the float model" in capsys.readouterr().out
