"""``aquant verify MODEL.tflite --against litert``: the per-layer report, the exit code and the JSON."""

import json

import numpy as np
import pytest

from aquant_sim.cli import main
from aquant_sim.testing.tflite_models import small_cnn


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    data, x = small_cnn(per_channel=True, batch=4)
    folder = tmp_path_factory.mktemp("litert")
    (folder / "cnn.tflite").write_bytes(data)
    np.save(folder / "x.npy", x)
    return folder


def test_model_verifies_bit_exact(files, capsys):
    """Every tensor equals LiteRT's reference kernels: exit 0, a row per layer, 0 differing on both
    backends; the JSON holds LiteRT's other kernels' differences beside."""
    report = files / "report.json"
    code = main(["verify", str(files / "cnn.tflite"), "--against", "litert", "--input", str(files / "x.npy"),
                 "--json", str(report)])
    out = capsys.readouterr().out
    assert code == 0 and "PASS, bit-exact against litert's reference kernels" in out, out
    data = json.loads(report.read_text())
    assert data["equal"] and all(c["differing"] == 0 for checks in data["checks"].values() for c in checks)
    assert len(data["checks"]["numba"]) == 11
    assert any(c["differing"] for c in data["litert_kernels_vs_reference"]["default"])


def test_input_of_the_wrong_layout_is_refused(files, capsys):
    """The float batch must be NHWC as the model's input: NCHW is a one-line error."""
    np.save(files / "nchw.npy", np.zeros((2, 3, 16, 16), dtype=np.float32))
    code = main(["verify", str(files / "cnn.tflite"), "--against", "litert", "--input", str(files / "nchw.npy")])
    err = capsys.readouterr().err
    assert code == 2 and "expected a float NHWC batch (N, 16, 16, 3)" in err, err
