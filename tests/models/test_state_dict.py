"""State dicts in users' formats (aquant_sim/models/state_dict.py): .npz, .safetensors and
.pt/.pth read without executing code; everything malformed or unsafe is one ArtifactError."""

import os
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from aquant_sim.cli import arguments
from aquant_sim.errors import ArtifactError
from aquant_sim.models import build_model, save_weights
from aquant_sim.models import state_dict as sd
from aquant_sim.models.weights import load_zoo_model


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model("resnet20", 3, 7, width=16)


def _write(model, path):
    state = model.state_dict()
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif path.suffix == ".npz":
        np.savez(path, **{k: v.numpy() for k, v in state.items()})
    else:
        torch.save(state, path)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt", ".pth", ".npz"])
def test_round_trip(model, tmp_path, suffix):
    """A zoo model's state dict written in each format loads back into an equal zoo model, the
    input channels and classes read from the first conv and the last linear."""
    path = tmp_path / f"w{suffix}"
    _write(model, path)
    arrays = sd.read_state_dict(path)
    assert set(arrays) == set(model.state_dict())
    loaded, meta = load_zoo_model("resnet20", path)
    assert meta == {} and loaded.aquant_build["in_channels"] == 3 and loaded.aquant_build["num_classes"] == 7
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())


def test_aquant_npz_rebuilds_its_recorded_model(tmp_path):
    """An aquant .npz (with header) rebuilds the model it records, options included."""
    path = tmp_path / "w.npz"
    save_weights(build_model("resnet20", 1, 10, width=4), path)
    assert load_zoo_model("resnet20", path)[0].aquant_build["options"] == {"width": 4}


def test_checkpoint_is_unwrapped(model, tmp_path):
    """A training checkpoint {"state_dict": ..., "epoch": 3} yields its state dict."""
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, path)
    assert set(sd.read_state_dict(path)) == set(model.state_dict())


class _Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_with_code_is_refused_and_never_runs(tmp_path):
    """A .pt whose pickle would call open() is refused, and the file it would create does not
    appear: the weights-only unpickler runs no code."""
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"w": _Payload(str(marker))}, handle, protocol=2)
    with pytest.raises(ArtifactError, match="evil.pt: holds objects other than tensors"):
        sd.read_state_dict(path)
    assert not marker.exists()


def test_whole_model_is_refused(model, tmp_path):
    """torch.save(model) (a pickled nn.Module) is refused with the fix: save the state dict."""
    path = tmp_path / "model.pt"
    torch.save(model, path)
    with pytest.raises(ArtifactError, match=r"save model.state_dict\(\) instead"):
        sd.read_state_dict(path)


@pytest.mark.parametrize("name, content, message", [
    ("w.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all", "not a readable .safetensors file"),
    ("w.pt", b"hello, not a pickle", "not a torch state dict readable with weights_only=True"),
    ("w.npz", b"PK\x03\x04 truncated", "not a readable .npz archive"),
    ("w.h5", b"x", "unknown weight format .h5"),
])
def test_malformed_files_are_one_error(tmp_path, name, content, message):
    """Bytes that are not the format their suffix says give one ArtifactError naming the file."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ArtifactError, match=message):
        sd.read_state_dict(path)


def test_tensor_checks(model, tmp_path):
    """A list instead of a dict, a NaN value and a wrong shape are each refused by name."""
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(ArtifactError, match="expected a state dict"):
        sd.read_state_dict(tmp_path / "list.pt")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["fc.weight"][0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pt")
    with pytest.raises(ArtifactError, match="'fc.weight' holds NaN"):
        sd.read_state_dict(tmp_path / "nan.pt")
    state["fc.weight"] = torch.zeros(7, 3)
    torch.save(state, tmp_path / "shape.pt")
    with pytest.raises(ArtifactError, match=r"'fc.weight' has shape \(7, 3\), the model expects \(7, 64\)"):
        load_zoo_model("resnet20", tmp_path / "shape.pt")


def test_command_line_knows_the_same_formats():
    """--weights (torch-free) accepts exactly the suffixes that read_state_dict reads."""
    assert set(arguments.WEIGHT_FORMATS) == set(sd._READERS)
