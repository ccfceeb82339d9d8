"""The argument types of aquant_sim/cli/arguments.py: each refuses bad text with a message naming
what is wrong, and the commands that use them stop there, before any data is read."""

import argparse
import errno
import os
import zipfile

import numpy as np
import pytest

from aquant_sim.cli import arguments, main
from aquant_sim.program import MAX_BITS, MIN_BITS


@pytest.mark.parametrize("text", [str(MIN_BITS), str(MAX_BITS)])
def test_bits_accepts_the_datapath_range(text):
    """The ends of MIN_BITS..MAX_BITS are accepted as integers."""
    assert arguments.bits(text) == int(text)


@pytest.mark.parametrize("text, message", [(str(MIN_BITS - 1), "must be in"), (str(MAX_BITS + 1), "must be in"), ("4.5", "expected an integer")])
def test_bits_refuses_outside(text, message):
    """Widths outside the datapath's range, and non-integers, are refused."""
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        arguments.bits(text)


def test_weights_file_refuses_each_bad_file(tmp_path):
    """A missing path, a folder, an unknown suffix and a text file named .npz are each refused with
    their own message; a real .npz passes."""
    cases = {tmp_path / "missing.npz": "no such file", tmp_path: "not a file"}
    (tmp_path / "w.h5").write_bytes(b"x")
    cases[tmp_path / "w.h5"] = "unknown weight format .h5"
    (tmp_path / "text.npz").write_text("not weights\n")
    cases[tmp_path / "text.npz"] = "does not start like a .npz archive"
    for path, message in cases.items():
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            arguments.weights_file(str(path))
    np.savez(tmp_path / "ok.npz", a=np.zeros(2))
    assert zipfile.is_zipfile(arguments.weights_file(str(tmp_path / "ok.npz")))


def test_weights_file_refuses_unreadable(tmp_path, monkeypatch):
    """A file without read permission is refused as unreadable. Root reads files whatever their
    mode, so there the open is made to fail as the OS fails it for other users (EACCES)."""
    path = tmp_path / "w.npz"
    np.savez(path, a=np.zeros(2))
    path.chmod(0)
    if os.geteuid() == 0:
        def refuse(file, *args, **kwargs):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))

        monkeypatch.setattr(arguments, "open", refuse, raising=False)
    with pytest.raises(argparse.ArgumentTypeError, match="cannot read: Permission denied"):
        arguments.weights_file(str(path))


def test_dataset_refuses_unknown_names(tmp_path):
    """A built-in name and an existing folder pass; anything else is refused naming the choices."""
    assert arguments.dataset("fashion-mnist") == "fashion-mnist"
    assert arguments.dataset(str(tmp_path)) == str(tmp_path)
    with pytest.raises(argparse.ArgumentTypeError, match="unknown dataset 'nope'.*fashion-mnist"):
        arguments.dataset("nope")


@pytest.fixture
def no_data(monkeypatch):
    """Make any dataset load fail loudly, so that a command that reaches the data fails the test."""
    import aquant_sim.data

    def refuse(*args, **kwargs):
        raise AssertionError("the command loaded data before checking its arguments")

    monkeypatch.setattr(aquant_sim.data, "load_dataset", refuse)


@pytest.mark.parametrize("argv, message", [
    (["demo", "--method", "typo"], "argument --method: invalid choice: 'typo'"),
    (["demo", "--w-bits", "1"], "argument --w-bits: must be in"),
    (["demo", "--iters", "-1"], "argument --iters: must be at least 0"),
    (["calibrate", "--w-bits", "17"], "argument --w-bits: must be in"),
    (["calibrate", "--a-bits", "x"], "argument --a-bits: expected an integer"),
    (["calibrate", "--method", "gptq"], "argument --method: invalid choice"),
    (["calibrate", "--weights", "/no/such.npz"], "argument --weights: /no/such.npz: no such file"),
    (["calibrate", "--data", "imagenet"], "argument --data: unknown dataset 'imagenet'"),
    (["train", "--epochs", "0"], "argument --epochs: must be at least 1"),
    (["evaluate", "--limit", "0"], "argument --limit: must be at least 1"),
])
def test_bad_arguments_stop_at_once(tmp_path, capsys, no_data, argv, message):
    """Each bad option exits with status 2 and one line naming it, before any data is read or
    any output written."""
    np.savez(tmp_path / "w.npz", a=np.zeros(2))
    required = {
        "demo": ["--out", str(tmp_path / "demo")],
        "calibrate": ["--model", "resnet20", "--weights", str(tmp_path / "w.npz"), "--data", "fashion-mnist", "--out", str(tmp_path / "p.aqp")],
        "train": ["--model", "resnet20", "--data", "fashion-mnist", "--out", str(tmp_path / "t.npz")],
        "evaluate": [str(tmp_path / "p.aqp"), "--data", "fashion-mnist"],
    }[argv[0]]
    assert main([argv[0], *required, *argv[1:]]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith(f"aquant {argv[0]}: error:") and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npz"]
