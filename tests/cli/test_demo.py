"""``aquant demo``: the built-in example from nothing to a verified run."""

import json

import numpy as np
import pytest

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


def test_demo_outputs_verify(tmp_path, capsys, monkeypatch):
    """demo (reference compared with itself) exits 0, prints the summary, and its dumps pass verify --expect."""
    monkeypatch.setattr(demo, "COMPARED", (Backend.REFERENCE, Backend.REFERENCE))
    monkeypatch.setattr(verify, "COMPARED", (Backend.REFERENCE, Backend.REFERENCE))
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "layer1.0.conv1" in text and "demo: PASS" in text
    _check_outputs(out)
    assert main(["verify", str(out / "program.aqp"), "--input", str(out / "input.npy"), "--expect", str(out / "dumps.npz")]) == 0


def test_demo_numba(tmp_path, capsys):
    """demo with the real numba backend: numba == reference on every tensor."""
    pytest.importorskip("aquant_sim.kernels", reason="the numba kernels are merged separately")
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    assert "demo: PASS, numba == reference" in capsys.readouterr().out
    _check_outputs(out)
