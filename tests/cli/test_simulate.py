"""``aquant simulate``: the per-layer summary, the JSON results and clear errors."""

import json

import numpy as np
import pytest

from aquant_sim.cli import main
from aquant_sim.simulator import Backend, Simulator


def test_prints_summary_and_writes_json(saved, program, tmp_path, capsys):
    """simulate prints one row per op and writes counters, outputs and argmax equal to a direct run."""
    artifact, x_path = saved
    out = tmp_path / "r.json"
    assert main(["simulate", str(artifact), "--input", str(x_path), "--backend", "reference", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    for op in program.ops:
        assert op.name in text
    assert "border lookups" in text and "total" in text
    result = Simulator(program, Backend.REFERENCE).run(np.load(x_path))
    data = json.loads(out.read_text())
    assert data["output_kind"] == "accumulators"
    assert np.array_equal(np.array(data["output"]), result.output)
    assert np.array_equal(np.array(data["dequantized"]), result.dequantized)
    assert data["argmax"] == result.dequantized.argmax(axis=1).tolist()
    assert [layer["name"] for layer in data["layers"]] == [op.name for op in program.ops]
    assert [layer["macs"] for layer in data["layers"]] == [c.macs for c in result.counters]


def test_integer_levels_input(saved, program, tmp_path, capsys):
    """An integer .npy is taken as input levels, unchanged."""
    artifact, _ = saved
    levels = np.random.default_rng(0).integers(0, 256, size=(2, *program.input_tensor.shape), dtype=np.int32)
    np.save(tmp_path / "levels.npy", levels)
    out = tmp_path / "r.json"
    assert main(["simulate", str(artifact), "--input", str(tmp_path / "levels.npy"), "--backend", "reference", "--json", str(out)]) == 0
    expected = Simulator(program, Backend.REFERENCE).run(levels).output
    assert np.array_equal(np.array(json.loads(out.read_text())["output"]), expected)


@pytest.mark.parametrize("make_input, fragment", [
    (lambda path: np.save(path, np.zeros((2, 3, 4, 4))), "input: expected shape (N, 3, 8, 8)"),
    (lambda path: np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True), "not a plain .npy"),
    (lambda path: path.write_bytes(b"garbage"), "not a plain .npy"),
    (lambda path: np.save(path, np.full((1, 3, 8, 8), np.nan)), "NaN or Inf"),
])
def test_bad_input_is_one_line_error(saved, tmp_path, capsys, make_input, fragment):
    """A malformed input exits 2 with one line on stderr naming the problem."""
    artifact, _ = saved
    path = tmp_path / "bad.npy"
    make_input(path)
    assert main(["simulate", str(artifact), "--input", str(path), "--backend", "reference"]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1


def test_bad_artifact_is_one_line_error(tmp_path, saved, capsys):
    """A corrupt artifact exits 2 with the ArtifactError naming the file."""
    _, x_path = saved
    bad = tmp_path / "bad.aqp"
    bad.write_bytes(b"PK\x03\x04 not really")
    assert main(["simulate", str(bad), "--input", str(x_path), "--backend", "reference"]) == 2
    assert str(bad) in capsys.readouterr().err


def test_numba_backend_matches_reference(saved, tmp_path):
    """The default numba backend writes the same results as the reference."""
    pytest.importorskip("aquant_sim.kernels", reason="the numba kernels are merged separately")
    artifact, x_path = saved
    for backend in ("numba", "reference"):
        assert main(["simulate", str(artifact), "--input", str(x_path), "--backend", backend, "--json", str(tmp_path / f"{backend}.json")]) == 0
    numba, reference = (json.loads((tmp_path / f"{b}.json").read_text()) for b in ("numba", "reference"))
    assert numba["output"] == reference["output"] and numba["layers"] == reference["layers"]
