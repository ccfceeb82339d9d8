"""``aquant hw-report``: config selection, errors as one line, and the whole command end to end."""

import json

import numpy as np
import pytest
from onnxruntime.quantization import QuantFormat

from aquant_sim.artifact import save_program
from aquant_sim.cli import main
from aquant_sim.cli.hw_report import load_hw_config
from aquant_sim.rounding import RequantVariant
from aquant_sim.synthetic import SyntheticConfig, synthetic_resnet
from aquant_sim.testing.tflite_models import small_cnn
from hw_models.config import Dataflow, default_config
from hw_models.requant_variants import lane_um2


def test_config_selection(tmp_path):
    """No --hw gives the shipped default; .toml and SCALE-Sim .cfg files load; --dataflow overrides."""
    assert load_hw_config(None, None) == default_config()
    assert load_hw_config(None, "ws").array.dataflow is Dataflow.WS
    toml = tmp_path / "hw.toml"
    toml.write_text("[array]\nrows = 4\n")
    assert load_hw_config(str(toml), "is").array.rows == 4
    cfg = tmp_path / "s.cfg"
    cfg.write_text("[architecture_presets]\nArrayHeight: 8\nArrayWidth: 4\nIfmapSramSzkB: 8\nFilterSramSzkB: 8\n"
                   "OfmapSramSzkB: 8\nDataflow: os\nBandwidth: 4\n")
    assert load_hw_config(str(cfg), None).array.cols == 4


def test_bad_config_is_one_line(tmp_path, capsys):
    """A malformed --hw file exits with status 2 and a one-line error naming the field."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[array]\nrows = -1\n")
    assert main(["hw-report", "model.aqp", "--hw", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "array.rows" in err and "Traceback" not in err


def test_end_to_end(tmp_path, capsys):
    """Save a program, run hw-report with --input, --json, --csv and --plot, and read the outputs."""
    small_program = synthetic_resnet(SyntheticConfig(input_shape=(3, 12, 12), widths=(8, 16), blocks=(1, 1)))
    path = tmp_path / "model.aqp"
    save_program(small_program, path)
    x = np.random.default_rng(0).standard_normal((2, *small_program.input_tensor.shape))
    np.save(tmp_path / "x.npy", x)
    status = main(["hw-report", str(path), "--dataflow", "ws", "--input", str(tmp_path / "x.npy"),
                   "--json", str(tmp_path / "r.json"), "--csv", str(tmp_path / "r.csv"), "--plot", str(tmp_path / "plots")])
    assert status == 0
    out = capsys.readouterr().out
    assert "border unit overhead" in out and "zero%" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["config"]["dataflow"] == "ws" and report["counters_used"]
    assert (tmp_path / "r.csv").read_text().count("\n") == len(report["layers"]) + 2
    assert {p.name for p in (tmp_path / "plots").iterdir()} == {"cycles.png", "energy.png", "border_overhead.png"}


def test_unwritable_output_is_one_line(tmp_path, capsys):
    """--json, --csv or --plot under a path that is a file exits 2 with one line naming that path."""
    path = save_program(synthetic_resnet(SyntheticConfig(input_shape=(3, 12, 12), widths=(8, 16), blocks=(1, 1))),
                        tmp_path / "model.aqp")
    blocker = tmp_path / "file"
    blocker.write_text("")
    for flag in ("--json", "--csv", "--plot"):
        target = str(blocker / "out")
        assert main(["hw-report", str(path), flag, target]) == 2
        err = capsys.readouterr().err
        assert target in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("plain_model", [(QuantFormat.QDQ, True)], indirect=True)
def test_imported_model(plain_model, tmp_path, capsys):
    """An int8 .onnx model is imported in memory and reported like a saved program: its FP32
    requantizers need no border unit, and the JSON's requantizer area is FP32's lane circuit."""
    assert main(["hw-report", str(plain_model), "--json", str(tmp_path / "r.json")]) == 0
    assert "border unit overhead: +0 cycles" in capsys.readouterr().out
    report = json.loads((tmp_path / "r.json").read_text())
    config = default_config()
    area = config.border_unit.lanes * (lane_um2(RequantVariant.FP32, config.costs, config.array.accumulator_bits)
                                       + config.costs.add_um2(config.array.operand_bits))
    assert report["totals"]["aquant"]["area_um2"]["requantizer"] == pytest.approx(area, rel=1e-12)


def test_unreadable_model_is_one_line(tmp_path, capsys):
    """A file that is not an ONNX model exits 2 with one line naming it."""
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    assert main(["hw-report", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.onnx" in err and err.count("\n") == 1


def test_tflite_model(tmp_path, capsys):
    """An int8 .tflite model is imported in memory: its layers are costed by TFLite's rules
    (GEMMLOWP convs, FLOAT64 fully connected, TFLITE_ADD, TFLITE_AVGPOOL, TFLITE_MEAN), one lane
    circuit each."""
    data, _ = small_cnn(per_channel=True, batch=2)
    path = tmp_path / "cnn.tflite"
    path.write_bytes(data)
    assert main(["hw-report", str(path), "--json", str(tmp_path / "r.json")]) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "r.json").read_text())
    config = default_config()
    acc = config.array.accumulator_bits
    rules = (RequantVariant.GEMMLOWP, RequantVariant.FLOAT64, RequantVariant.TFLITE_ADD, RequantVariant.TFLITE_AVGPOOL,
             RequantVariant.TFLITE_MEAN)
    area = config.border_unit.lanes * (sum(lane_um2(v, config.costs, acc) for v in rules) + config.costs.add_um2(config.array.operand_bits))
    assert report["totals"]["aquant"]["area_um2"]["requantizer"] == pytest.approx(area, rel=1e-12)
