"""``aquant verify``: exit codes, the first difference named, and the --expect dump checks.

Most tests compare the reference with itself (``COMPARED`` patched), since they check the
command's handling, not the kernels; ``test_numba_equals_reference`` runs the real pair.
"""

import json

import numpy as np
import pytest

from aquant_sim.cli import main, verify
from aquant_sim.simulator import Backend, Simulator


@pytest.fixture
def reference_only(monkeypatch):
    monkeypatch.setattr(verify, "COMPARED", (Backend.REFERENCE, Backend.REFERENCE))


@pytest.fixture
def dumps(saved, program, tmp_path):
    """The reference's integer tensors of the saved batch, as a dict (written by _write_dumps)."""
    return dict(Simulator(program, Backend.REFERENCE).run(np.load(saved[1]), keep_tensors=True).tensors)


def _write_dumps(path, tensors):
    np.savez(path, **tensors)
    return str(path)


def _verify(saved, *extra):
    return main(["verify", str(saved[0]), "--input", str(saved[1]), *extra])


def test_equal_runs_pass(saved, dumps, tmp_path, capsys, reference_only):
    """Equal runs and equal dumps exit 0, print PASS and the float-model table, and write JSON."""
    out = tmp_path / "v.json"
    assert _verify(saved, "--expect", _write_dumps(tmp_path / "d.npz", dumps), "--json", str(out)) == 0
    text = capsys.readouterr().out
    assert "verify: PASS" in text and "float model vs datapath" in text
    data = json.loads(out.read_text())
    assert data["equal"] is True and len(data["checks"]) == 2
    assert {d["name"] for d in data["float_model"]} == {"conv1", "conv2", "add", "concat", "avgpool", "gap"}
    assert all(d["differing"] == 0 for d in data["float_model"])


def test_changed_dump_is_named(saved, dumps, tmp_path, capsys, reference_only):
    """A dump with two changed levels exits 1 naming the first layer, the index, both values and the count."""
    dumps["conv2"] = dumps["conv2"].copy()
    dumps["avgpool"] = dumps["avgpool"].copy()
    original = int(dumps["conv2"][1, 2, 3, 4])
    dumps["conv2"][1, 2, 3, 4] += 1
    dumps["avgpool"][0, 0, 0, 0] += 1
    assert _verify(saved, "--expect", _write_dumps(tmp_path / "d.npz", dumps)) == 1
    text = capsys.readouterr().out
    assert (f"first difference: layer 'conv2' (conv2d), tensor 'conv2' at index (1, 2, 3, 4): "
            f"expect {original + 1}, reference {original} (1 of 768 elements differ)") in text
    assert "2 of 12 tensors differ" in text and "verify: FAIL" in text


def test_backend_difference_is_named(saved, capsys, monkeypatch, reference_only):
    """When the fast backend's tensor differs from the reference, verify exits 1 naming that layer."""
    real = verify.simulator
    calls = []

    class Perturbed:
        def __init__(self, sim):
            self.sim = sim

        def run(self, x, keep_tensors=False):
            result = self.sim.run(x, keep_tensors=keep_tensors)
            result.tensors["add"] = result.tensors["add"].copy()
            result.tensors["add"][0, 1, 0, 0] ^= 1
            return result

    def fake(program, backend):
        calls.append(backend)
        return Perturbed(real(program, backend)) if len(calls) == 1 else real(program, backend)

    monkeypatch.setattr(verify, "simulator", fake)
    assert _verify(saved) == 1
    text = capsys.readouterr().out
    assert "reference vs reference: 1 of 12 tensors differ; first difference: layer 'add' (add), tensor 'add' at index (0, 1, 0, 0)" in text


@pytest.mark.parametrize("edit, fragment", [
    (lambda d: d.pop("gap"), "dumps: tensor 'gap' is missing"),
    (lambda d: d.update(extra=np.zeros(3, dtype=np.int32)), "dumps: 'extra' is not a tensor of the program"),
    (lambda d: d.update(conv1=d["conv1"][:2]), "dumps: tensor 'conv1' has shape (2, 4, 8, 8), expected (3, 4, 8, 8)"),
    (lambda d: d.update(conv1=d["conv1"].astype(np.float32)), "dumps: tensor 'conv1' has dtype float32"),
])
def test_bad_dumps_are_errors(saved, dumps, tmp_path, capsys, reference_only, edit, fragment):
    """Missing or extra tensor names, wrong shapes and float dumps exit 2 naming the tensor."""
    edit(dumps)
    assert _verify(saved, "--expect", _write_dumps(tmp_path / "d.npz", dumps)) == 2
    assert fragment in capsys.readouterr().err


def test_unreadable_dumps(saved, tmp_path, capsys, reference_only):
    """A dump file that is not an .npz exits 2 with one clear line."""
    bad = tmp_path / "d.npz"
    bad.write_bytes(b"nope")
    assert _verify(saved, "--expect", str(bad)) == 2
    assert "cannot read integer dumps" in capsys.readouterr().err


def test_empty_dumps_file(saved, tmp_path, capsys, reference_only):
    """An empty --expect file exits 2 with one line, not an EOFError traceback."""
    empty = tmp_path / "d.npz"
    empty.write_bytes(b"")
    assert _verify(saved, "--expect", str(empty)) == 2
    err = capsys.readouterr().err
    assert "cannot read integer dumps" in err and err.count("\n") == 1


def test_npy_given_as_dumps(saved, tmp_path, capsys, reference_only):
    """A single .npy array passed as --expect exits 2 with one line, not a traceback."""
    single = tmp_path / "d.npy"
    np.save(single, np.zeros(3, dtype=np.int32))
    assert _verify(saved, "--expect", str(single)) == 2
    err = capsys.readouterr().err
    assert err.count("cannot read integer dumps") == 1 and "single .npy array" in err and err.count("\n") == 1


def test_numba_equals_reference(saved, dumps, tmp_path, capsys):
    """The real pair: numba and the reference agree on every tensor and counter, and with the dumps."""
    assert _verify(saved, "--expect", _write_dumps(tmp_path / "d.npz", dumps)) == 0
    assert "numba vs reference: all 12 tensors equal" in capsys.readouterr().out
