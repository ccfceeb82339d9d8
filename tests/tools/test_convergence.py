import argparse
import json

import pytest
import torch

import convergence
from aquant_sim.errors import ConfigError
from aquant_sim.frontend.methods import Method
from aquant_sim.frontend.pipeline import calibrate
from aquant_sim.models import build_model, save_weights

TIMING = {"seconds", "train_seconds", "train_cpu_seconds"}


def _tiny_model():
    torch.manual_seed(0)
    return build_model("resnet20", 1, 10, width=4).eval()


def test_a_point_reports_the_unit_exactly_as_calibrate_does():
    calib = torch.randn(48, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    point = convergence.GridPoint(iters=12, weight_lr=1e-2)
    config = convergence.point_config("W2A2", Method.QDROP, 3, point)
    assert (config.reconstruction.iters, config.reconstruction.weight_lr, config.reconstruction.seed) == (12, 1e-2, 3)
    got = convergence.measure(_tiny_model(), calib, config, unit=1)
    whole = calibrate(_tiny_model(), calib, config, progress=False).units[1].as_dict()
    assert {k: v for k, v in got.items() if k not in TIMING} == {k: v for k, v in whole.items() if k not in TIMING}
    assert 0.0 < got["soft_share"] <= 1.0  # 12 steps leave rounding variables soft


def test_the_tool_prints_and_appends_one_record_per_point(tmp_path, capsys):
    weights = tmp_path / "w.npz"
    save_weights(_tiny_model(), weights)
    out = tmp_path / "conv.jsonl"
    assert convergence.main(["--weights", str(weights), "--calib-size", "32", "--grid", "4:1e-3", "4:1e-2",
                             "--out", str(out)]) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("iters ")]
    records = [json.loads(l) for l in out.read_text().splitlines()]
    assert [(r["iters"], r["weight_lr"]) for r in records] == [(4, 1e-3), (4, 1e-2)]
    assert [r["report"]["unit"] for r in records] == [records[0]["report"]["unit"]] * 2
    for line, record in zip(lines, records):
        assert f"soft_share {100 * record['report']['soft_share']:.2f}%" in line


@pytest.mark.parametrize("text", ["2000", "x:1e-3", "0:1e-3", "10:0", "10:-1"])
def test_a_bad_grid_point_is_a_clear_error(text):
    with pytest.raises(argparse.ArgumentTypeError, match="ITERS:WEIGHT_LR|positive"):
        convergence.parse_point(text)


def test_a_unit_out_of_range_is_an_error_before_any_training():
    calib = torch.randn(8, 1, 12, 12)
    config = convergence.point_config("W2A2", Method.QDROP, 0, convergence.GridPoint(5, 1e-3))
    with pytest.raises(ConfigError, match="--unit 99: the model has units 0 to"):
        convergence.measure(_tiny_model(), calib, config, unit=99)
