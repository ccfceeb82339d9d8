"""Pickle-free weight files: round trip, rebuild, and every error case."""

import json
import zipfile

import numpy as np
import pytest
import torch

from aquant_sim.errors import ArtifactError
from aquant_sim.models import build_model, load_model, load_weights, read_header, save_weights
from aquant_sim.models.weights import META_KEY


def _trained_looking(seed=0):
    """A small ResNet-20 whose weights and BN statistics all differ from a fresh one's."""
    torch.manual_seed(seed)
    model = build_model("resnet20", in_channels=1, num_classes=10, width=4)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.copy_(torch.randint(1, 50, tensor.shape) if tensor.dtype == torch.int64 else torch.randn(tensor.shape).abs() + 0.1)
    return model


def test_round_trip_is_exact(tmp_path):
    """Every state-dict entry (weights, BN statistics, counters) comes back bit for bit, with meta."""
    model = _trained_looking()
    save_weights(model, tmp_path / "w.npz", meta={"data": "fashion-mnist", "mean": [0.25]})
    other = build_model("resnet20", in_channels=1, num_classes=10, width=4)
    meta = load_weights(other, tmp_path / "w.npz")
    assert meta == {"data": "fashion-mnist", "mean": [0.25]}
    for key, tensor in model.state_dict().items():
        assert torch.equal(other.state_dict()[key], tensor), key


def test_load_model_rebuilds_the_recorded_model(tmp_path):
    """load_model builds the recorded zoo model with its options and gives identical outputs."""
    model = _trained_looking().eval()
    save_weights(model, tmp_path / "w.npz")
    rebuilt, meta = load_model(tmp_path / "w.npz")
    assert meta == {} and rebuilt.aquant_build == model.aquant_build
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(rebuilt.eval()(x), model(x))


def test_header_is_plain_json(tmp_path):
    """The header is JSON in a uint8 array: format, version, build arguments and meta."""
    save_weights(_trained_looking(), tmp_path / "w.npz", meta={"k": 1})
    with np.load(tmp_path / "w.npz", allow_pickle=False) as archive:
        header = json.loads(archive[META_KEY].tobytes())
    assert header == read_header(tmp_path / "w.npz")
    assert (header["format"], header["version"], header["model"]["name"], header["meta"]) == ("aquant-weights", 1, "resnet20", {"k": 1})


def test_missing_file(tmp_path):
    """A missing file is an ArtifactError naming it."""
    with pytest.raises(ArtifactError, match="no such weight file"):
        load_weights(_trained_looking(), tmp_path / "absent.npz")


def test_missing_parameter_named(tmp_path):
    """A file lacking a parameter of the model is an ArtifactError naming that parameter."""
    model = _trained_looking()
    arrays = {k: v.numpy() for k, v in model.state_dict().items() if k != "fc.bias"}
    header = {"format": "aquant-weights", "version": 1, "model": None, "meta": {}}
    np.savez(tmp_path / "w.npz", **arrays, **{META_KEY: np.frombuffer(json.dumps(header).encode(), np.uint8)})
    with pytest.raises(ArtifactError, match=r"missing parameters \['fc.bias'\]"):
        load_weights(model, tmp_path / "w.npz")


def test_unexpected_parameter_named(tmp_path):
    """A file with parameters the model lacks (another architecture) is an ArtifactError naming them."""
    save_weights(_trained_looking(), tmp_path / "w.npz")
    with pytest.raises(ArtifactError, match="missing parameters|does not have"):
        load_weights(build_model("mobilenetv2", width_mult=0.25), tmp_path / "w.npz")


def test_wrong_shape_named(tmp_path):
    """Same names with other shapes (another width) is an ArtifactError naming the parameter and both shapes."""
    save_weights(_trained_looking(), tmp_path / "w.npz")
    with pytest.raises(ArtifactError, match=r"'stem.0.weight' has shape \(4, 1, 3, 3\), the model expects \(8, 1, 3, 3\)"):
        load_weights(build_model("resnet20", width=8), tmp_path / "w.npz")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_named(tmp_path, bad):
    """A NaN or Inf value is an ArtifactError naming the parameter; the model is left untouched."""
    model = _trained_looking()
    with torch.no_grad():
        model.stages[1][0].bn2.running_var[3] = bad
    save_weights(model, tmp_path / "w.npz")
    target = build_model("resnet20", width=4)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(ArtifactError, match=r"'stages.1.0.bn2.running_var' holds NaN or Inf"):
        load_weights(target, tmp_path / "w.npz")
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())


def test_not_a_zip(tmp_path):
    """A file that is not an npz archive is an ArtifactError."""
    (tmp_path / "w.npz").write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(ArtifactError, match="not a readable .npz"):
        load_weights(_trained_looking(), tmp_path / "w.npz")


def test_truncated_file(tmp_path):
    """A weight file cut in half is an ArtifactError."""
    save_weights(_trained_looking(), tmp_path / "w.npz")
    raw = (tmp_path / "w.npz").read_bytes()
    (tmp_path / "w.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ArtifactError):
        load_weights(_trained_looking(), tmp_path / "w.npz")


class _Payload:
    """Unpickling this object would create the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickled_object_is_refused_not_run(tmp_path):
    """An object array (pickle) inside the archive is refused, and the code it carries never runs."""
    marker = tmp_path / "ran"
    model = _trained_looking()
    arrays = {k: v.numpy() for k, v in model.state_dict().items()}
    arrays["fc.bias"] = np.array([_Payload(marker)], dtype=object)
    header = {"format": "aquant-weights", "version": 1, "model": None, "meta": {}}
    np.savez(tmp_path / "w.npz", **arrays, **{META_KEY: np.frombuffer(json.dumps(header).encode(), np.uint8)})
    with pytest.raises(ArtifactError, match="not a readable .npz"):
        load_weights(model, tmp_path / "w.npz")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("header", "message"),
    [(None, "no __aquant_meta__"), (b"{not json", "not valid JSON"), ({"format": "other"}, "format is not"), ({"format": "aquant-weights", "version": 99}, "version 99")],
)
def test_bad_header(tmp_path, header, message):
    """A missing, unparsable, foreign or future header is an ArtifactError saying which."""
    arrays = {k: v.numpy() for k, v in _trained_looking().state_dict().items()}
    if header is not None:
        raw = header if isinstance(header, bytes) else json.dumps(header).encode()
        arrays[META_KEY] = np.frombuffer(raw, np.uint8)
    np.savez(tmp_path / "w.npz", **arrays)
    with pytest.raises(ArtifactError, match=message):
        load_weights(_trained_looking(), tmp_path / "w.npz")


def test_load_model_needs_a_recorded_model(tmp_path):
    """A file from a model built outside the zoo cannot be rebuilt: an ArtifactError says so."""
    save_weights(torch.nn.Linear(2, 2), tmp_path / "w.npz")
    with pytest.raises(ArtifactError, match="records no zoo model"):
        load_model(tmp_path / "w.npz")


def test_meta_must_be_json(tmp_path):
    """Meta that JSON cannot hold (a set, NaN) is refused at save time."""
    with pytest.raises(ArtifactError, match="not plain JSON"):
        save_weights(_trained_looking(), tmp_path / "w.npz", meta={"x": {1, 2}})
    with pytest.raises(ArtifactError, match="not plain JSON"):
        save_weights(_trained_looking(), tmp_path / "w.npz", meta={"x": float("nan")})


def test_file_is_a_plain_zip_of_npy(tmp_path):
    """The file is an ordinary zip of .npy members, one per entry plus the header."""
    model = _trained_looking()
    save_weights(model, tmp_path / "w.npz")
    with zipfile.ZipFile(tmp_path / "w.npz") as archive:
        names = set(archive.namelist())
    assert names == {f"{key}.npy" for key in model.state_dict()} | {f"{META_KEY}.npy"}
