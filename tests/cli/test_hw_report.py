"""``aquant hw-report``: config selection, errors as one line, and the whole command end to end."""

import json

import numpy as np

from aquant_sim.artifact import save_program
from aquant_sim.cli import main
from aquant_sim.cli.hw_report import load_hw_config
from aquant_sim.synthetic import SyntheticConfig, synthetic_resnet
from hw_models.config import Dataflow, default_config


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
