"""The results document: every figure computed from the records handed to it."""

from pathlib import Path

import results_report
from results_table import AXES


def _run(method, config, seed, accuracy, model="resnet20", ablation="", overrides=None, agreement=1.0):
    return {"model": model, "weights_sha256": "ab" * 32, "dataset": "fashion-mnist", "calib_size": 1024, "eval_size": None,
            "config": config, "method": method, "seed": seed, "ablation": ablation, "overrides": overrides or {},
            "calibration": {"method": method, "quant": {"granularity": "channel_level" if not overrides else "tensor"},
                            "reconstruction": {"iters": 100, "seed": seed}},
            "integer_accuracy": accuracy, "fake_quant_accuracy": accuracy, "float_accuracy": 0.93, "top1_agreement": agreement,
            "samples": 10000, "backend": "numba", "calibration_seconds": 10.0, "wall_seconds": 12.0, "commit": "c" * 40,
            "command": "python tools/results_table.py X"}


def _write(tmp_path, runs, records=None) -> str:
    out = tmp_path / "docs" / "results.md"
    results_report.write_report(records or runs, runs, AXES, Path("runs.jsonl"), out, "python tools/results_table.py Y", None)
    return out.read_text()


def test_cells_paired_difference_and_counts(tmp_path):
    """Mean ± sample std (n) per cell, "-" where no run finished; the paired aquant - qdrop
    difference uses only the seeds both have; finished and hidden records are counted."""
    runs = [_run("aquant", "W2A2", 0, 0.70), _run("aquant", "W2A2", 1, 0.72), _run("qdrop", "W2A2", 0, 0.69),
            _run("qdrop", "W2A2", 1, 0.73), _run("qdrop", "W2A2", 2, 0.50), _run("rtn", "W4A4", 0, 0.9, agreement=0.98)]
    text = _write(tmp_path, runs, records=runs + [runs[0]])
    assert "| aquant | - | - | - | 71.00 ± 1.41 (2) | 12 |" in text
    assert "| qdrop | - | - | - | 64.00 ± 12.29 (3) | 12 |" in text
    assert "| float (fp32) | 93.00 | - | - | 93.00 | - |" in text
    assert "| W2A2 | +0.00 ± 1.41 | 2 | seed 0: +1.00, seed 1: -1.00 |" in text
    assert "| W4A4 | - | 0 | - |" in text
    assert "| rtn | 90.00 (1) / 98.00 | - | - | - |" in text
    assert "**Runs finished: 6** in this table" in text and "the file holds 7 records, 1 of them superseded" in text
    assert "`quant.granularity=channel_level`, `reconstruction.iters=100`" in text and "reconstruction.seed" not in text
    assert (tmp_path / "docs" / "results.png").stat().st_size > 0


def test_ablations_and_other_models_have_their_own_tables(tmp_path):
    """Tagged runs are left out of the main table and shown beside the main table's cell of the
    same method; a second model gets its own section and plot."""
    runs = [_run("aquant", "W2A2", 0, 0.70), _run("aquant", "W2A2", 0, 0.60, ablation="granularity", overrides={"quant.granularity": "tensor"}),
            _run("qdrop", "W4A4", 0, 0.80, model="mobilenetv2")]
    text = _write(tmp_path, runs)
    assert "| aquant | - | - | - | 70.00 (1) | 12 |" in text
    assert "### Ablation `granularity` (1 runs)" in text
    assert "| aquant | main table | 70.00 (1) | - |" in text and "| aquant | `quant.granularity=tensor` | 60.00 (1) | - |" in text
    assert "## MobileNetV2-style (`mobilenetv2`)" in text and "| qdrop | 80.00 (1) | 12 |" in text
    assert (tmp_path / "docs" / "results_mobilenetv2.png").exists()


def test_each_document_has_its_own_plots(tmp_path):
    """Two documents in one folder (the main table and the ablations' file): each names and
    writes plots of its own, and neither overwrites the other's."""
    docs = tmp_path / "docs"
    _write(tmp_path, [_run("aquant", "W2A2", 0, 0.70)])
    before = (docs / "results.png").read_bytes()
    runs = [_run("qdrop", "W2A2", 0, 0.50), _run("qdrop", "W4A4", 0, 0.80, model="mobilenetv2")]
    results_report.write_report(runs, runs, AXES, Path("ablations.jsonl"), docs / "ablations.md", "python tools/results_table.py Z", None)
    text = (docs / "ablations.md").read_text()
    assert "](ablations.png)" in text and "](results.png)" not in text
    assert (docs / "ablations.png").stat().st_size > 0 and (docs / "ablations_mobilenetv2.png").stat().st_size > 0
    assert (docs / "results.png").read_bytes() == before


def test_ablation_choice_is_made_on_calibration_data(tmp_path):
    """Beside each setting's test accuracy, its output loss on calibration data (the last unit's
    loss after calibration, mean over runs); the setting chosen is the one of lowest output loss,
    even where another scored higher on test data."""
    unit = lambda loss: {"unit": "u", "stage": "joint", "loss_before": 9.0, "loss_soft": 1.0, "loss_after": loss,
                         "soft_share": 0.0, "seconds": 1.0, "train_seconds": 1.0}
    main = [dict(_run("aquant", "W2A2", s, 0.70), units=[unit(5.0), unit(2.0 + s)]) for s in (0, 1)]
    tagged = [dict(_run("aquant", "W2A2", 0, 0.75, ablation="init", overrides={"reconstruction.border_init": "half"}), units=[unit(3.0)]),
              dict(_run("aquant", "W2A2", 0, 0.60, ablation="init", overrides={"reconstruction.border_init": "x"}), units=[unit(1.5)])]
    text = _write(tmp_path, main + tagged)
    assert "| method | settings | W2A2 test accuracy | W2A2 output loss (calibration) |" in text
    assert "| aquant | main table | 70.00 ± 0.00 (2) | 2.5000 |" in text
    assert "| aquant | `reconstruction.border_init=half` | 75.00 (1) | 3.0000 |" in text
    assert "Chosen on calibration data (lowest output loss): aquant W2A2: `reconstruction.border_init=x`." in text


def test_no_runs_yet(tmp_path):
    assert "No run finished yet." in _write(tmp_path, [])


def test_convergence_table_shows_the_largest_soft_share_of_learned_rounding(tmp_path):
    """Per cell the largest unit soft share over its runs; units that learned no rounding (rtn's,
    loss_soft None) are not counted, and a cell of them shows "-"."""
    unit = lambda share, soft=0.1: {"unit": "u", "stage": "joint", "loss_before": 1.0, "loss_soft": soft,
                                    "loss_after": 1.0, "soft_share": share, "seconds": 1.0, "train_seconds": 1.0}
    runs = [dict(_run("qdrop", "W2A2", 0, 0.7), units=[unit(0.001), unit(0.0004)]),
            dict(_run("qdrop", "W2A2", 1, 0.7), units=[unit(0.0123)]),
            dict(_run("rtn", "W2A2", 0, 0.3), units=[unit(0.5, soft=None)])]
    text = _write(tmp_path, runs)
    assert "| qdrop | - | - | - | 1.23 |" in text
    assert "| rtn | - | - | - | - |" in text


def test_commands_cite_no_file_outside_the_repository(tmp_path):
    """A run's command as recorded names its scratch copies by absolute path: the document shows
    them as ``$SCRATCH/<name>`` and says what that stands for; paths inside the repository are
    shown relative to its root."""
    inside = results_report.REPOSITORY / "docs" / "results" / "runs.jsonl"
    run = _run("qdrop", "W2A2", 0, 0.9) | {"command": f"python tools/results_table.py --weights /scratch/w.npz --runs {inside}"}
    text = _write(tmp_path, [run])
    assert "python tools/results_table.py --weights $SCRATCH/w.npz --runs docs/results/runs.jsonl" in text
    assert "/scratch" not in text and str(results_report.REPOSITORY) not in text
    assert "`$SCRATCH/` stands for a scratch directory outside the checkout" in text
    assert "$SCRATCH" not in _write(tmp_path, [_run("qdrop", "W2A2", 0, 0.9)])
