"""The paper-style results table on Fashion-MNIST with ResNet-20: accuracy of the integer
program (run by the simulator) for rtn / adaround / brecq / qdrop / aquant at W4A4, W3A3, W2A4
and W2A2, the float baseline on top, mean and spread over seeds, wall time per run.

    python tools/results_table.py --weights runs/resnet20_fmnist.npz --iters 200 --calib-size 256 \
        --eval-size 2000 --seeds 0 --jobs 2 [--runs runs/results.jsonl] [--out docs/results.md]

Every method uses the same iterations, calibration samples and evaluation images (stated in the
table). Finished runs are appended to a JSONL file and skipped when the tool is started again, so
it resumes; the table and the plot are rewritten after every run. Without ``--weights`` (or when
the file is missing) it first trains the float ResNet-20 (``--train-epochs``) and saves it there.
Runs go in priority order: configurations as listed, methods as listed.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run from a checkout: import this tree's package, not an installed one.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import concurrent.futures
import json
import multiprocessing
import shlex
import time

import numpy as np

from aquant_sim.frontend.reconstruction import ReconstructionConfig

CONFIGS = ("W2A2", "W3A3", "W4A4", "W2A4")
METHODS = ("qdrop", "aquant", "rtn", "brecq", "adaround")
TABLE_CONFIGS = ("W4A4", "W3A3", "W2A4", "W2A2")
TABLE_METHODS = ("rtn", "adaround", "brecq", "qdrop", "aquant")


def parse_config(text: str) -> tuple[int, int]:
    w, a = text.upper().lstrip("W").split("A")
    return int(w), int(a)


_DATA = {}


def _data(calib_size: int, eval_size: int | None, seed: int):
    from aquant_sim.data import load_dataset

    key = (calib_size, eval_size, seed)
    if key not in _DATA:
        _DATA[key] = (load_dataset("fashion-mnist", "train", limit=calib_size, seed=seed),
                      load_dataset("fashion-mnist", "test", limit=eval_size, seed=0))
    return _DATA[key]


def run_one(job: dict) -> dict:
    """Calibrate and evaluate one (configuration, method, seed); returns the JSONL record."""
    import torch

    from aquant_sim.frontend.methods import Method
    from aquant_sim.evaluation import evaluate
    from aquant_sim.frontend.pipeline import CalibrationConfig, calibrate
    from aquant_sim.frontend.qmodel import QuantConfig
    from aquant_sim.models import load_model

    torch.set_num_threads(job["threads"])
    started = time.perf_counter()
    calib_set, test_set = _data(job["calib_size"], job["eval_size"], job["seed"])
    model, _ = load_model(job["weights"])
    w_bits, a_bits = parse_config(job["config"])
    config = CalibrationConfig(Method(job["method"]), QuantConfig(weight_bits=w_bits, act_bits=a_bits),
                               ReconstructionConfig(iters=job["iters"], seed=job["seed"], border_lr=job["border_lr"],
                                                    tau=(job["tau0"], ReconstructionConfig().tau[1])))
    calibrated = calibrate(model, torch.tensor(calib_set.images), config, progress=False)
    report = evaluate(calibrated, torch.tensor(test_set.images), torch.tensor(test_set.labels))
    return {
        **job, **{k: v for k, v in report.as_dict().items() if k != "level_diff"},
        "units": [u.as_dict() for u in calibrated.units],
        "calibration_seconds": calibrated.seconds, "wall_seconds": time.perf_counter() - started,
    }


def read_runs(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{100 * values[0]:.2f}"
    return f"{100 * np.mean(values):.2f} ± {100 * np.std(values):.2f}"


def write_table(runs: list[dict], args, command: str, float_test_accuracy: float | None) -> None:
    rows = ["| method | " + " | ".join(TABLE_CONFIGS) + " | wall time per run (s) |",
            "|---|" + "---|" * len(TABLE_CONFIGS) + "---|"]
    float_acc = [r["float_accuracy"] for r in runs]
    float_cell = f"{100 * float_acc[0]:.2f}" if float_acc else "-"
    rows.append(f"| float (fp32) | " + " | ".join([float_cell] * len(TABLE_CONFIGS)) + " | - |")
    for method in TABLE_METHODS:
        cells, times = [], []
        for config in TABLE_CONFIGS:
            chosen = [r for r in runs if r["method"] == method and r["config"] == config]
            cells.append(_cell([r["integer_accuracy"] for r in chosen]))
            times += [r["wall_seconds"] for r in chosen]
        rows.append(f"| {method} | " + " | ".join(cells) + f" | {np.mean(times):.0f} |" if times else f"| {method} | " + " | ".join(cells) + " | - |")
    seeds = sorted({r["seed"] for r in runs})
    detail = ["| config | method | seed | integer | fake-quant | top-1 agreement | calibration (s) | wall (s) |",
              "|---|---|---|---|---|---|---|---|"]
    for r in sorted(runs, key=lambda r: (TABLE_CONFIGS.index(r["config"]) if r["config"] in TABLE_CONFIGS else 9, TABLE_METHODS.index(r["method"]) if r["method"] in TABLE_METHODS else 9, r["seed"])):
        detail.append(f"| {r['config']} | {r['method']} | {r['seed']} | {100 * r['integer_accuracy']:.2f} | {100 * r['fake_quant_accuracy']:.2f} | "
                      f"{100 * r['top1_agreement']:.2f} | {r['calibration_seconds']:.0f} | {r['wall_seconds']:.0f} |")
    notes = Path(args.notes).read_text() if args.notes else ""
    text = f"""# Results: Fashion-MNIST, ResNet-20

Top-1 accuracy (%) of the **integer program run by the simulator** (numba backend) on
{runs[0]['eval_size'] if runs else args.eval_size} Fashion-MNIST test images (a fixed seeded subset),
after post-training quantization with each method. W = weight bits, A = activation bits; the first
and last layers and the network input are 8-bit, tensors that no conv/linear reads are 8-bit
(`docs/calibration.md` section 3); borders per channel and level, F = 8.

Reduced protocol, the same for every method: **{args.iters} iterations per unit, {args.calib_size}
calibration images, batch 32** (the published protocol is 20,000 iterations and 1024 images);
seeds: {', '.join(map(str, seeds)) or '-'} (mean ± standard deviation where more than one).
Float model: ResNet-20 trained 3 epochs{f', test accuracy {100 * float_test_accuracy:.2f}% on all 10,000 images' if float_test_accuracy else ''};
the float row is its accuracy on the same evaluation subset.

{chr(10).join(rows)}

Runs finished: {len(runs)}. A "-" is a run not finished when this file was written.

![accuracy against bits](results.png)

## Every run

"fake-quant" is the float64 fake-quant model's accuracy; "top-1 agreement" the share of images
where it and the integer program predict the same class.

{chr(10).join(detail)}

{notes}
## Command

    {command}

Runs are appended to `{args.runs}` (one JSON object per run, with per-unit losses) and skipped
when the command is run again.
"""
    Path(args.out).write_text(text)
    _plot(runs, Path(args.out).with_name("results.png"), float_acc[0] if float_acc else None)


def _plot(runs: list[dict], path: Path, float_acc: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = range(len(TABLE_CONFIGS))
    for method in TABLE_METHODS:
        means = []
        for config in TABLE_CONFIGS:
            values = [r["integer_accuracy"] for r in runs if r["method"] == method and r["config"] == config]
            means.append(100 * np.mean(values) if values else np.nan)
        ax.plot(xs, means, marker="o", label=method)
    if float_acc is not None:
        ax.axhline(100 * float_acc, color="black", linestyle="--", linewidth=1, label="float")
    ax.set_xticks(list(xs), TABLE_CONFIGS)
    ax.set_xlabel("bits (weights, activations)")
    ax.set_ylabel("top-1 accuracy of the integer program (%)")
    ax.set_title("ResNet-20, Fashion-MNIST")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def ensure_weights(path: Path, epochs: int, threads: int) -> float | None:
    """Load the float ResNet-20's recorded test accuracy, training and saving it first if needed."""
    import torch

    from aquant_sim.data import load_dataset
    from aquant_sim.models import build_model, read_header, save_weights
    from aquant_sim.models.training import evaluate, train

    if not path.exists():
        torch.set_num_threads(threads)
        train_set, test_set = load_dataset("fashion-mnist", "train"), load_dataset("fashion-mnist", "test")
        model = build_model("resnet20", 1, 10)
        train(model, train_set, epochs=epochs, batch_size=128, lr=0.1, seed=0)
        accuracy = evaluate(model, test_set)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_weights(model, path, {"test_accuracy": accuracy, "epochs": epochs})
        return accuracy
    meta = read_header(path).get("meta", {})
    return meta.get("test_accuracy")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=Path("runs/resnet20_fmnist.npz"))
    parser.add_argument("--train-epochs", type=int, default=3)
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--calib-size", type=int, default=256)
    parser.add_argument("--eval-size", type=int, default=2000)
    parser.add_argument("--seeds", default="0", help="comma-separated")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--border-lr", type=float, default=ReconstructionConfig().border_lr)
    parser.add_argument("--tau0", type=float, default=ReconstructionConfig().tau[0], help="starting border temperature")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--notes", type=Path, default=None, help="markdown inserted before the command (how the runs came about)")
    parser.add_argument("--runs", type=Path, default=Path("runs/results.jsonl"))
    parser.add_argument("--out", type=Path, default=Path("docs/results.md"))
    args = parser.parse_args()
    command = "python tools/results_table.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    float_test = ensure_weights(args.weights, args.train_epochs, args.threads)
    args.runs.parent.mkdir(parents=True, exist_ok=True)
    runs = read_runs(args.runs)
    done = {(r["config"], r["method"], r["seed"]) for r in runs}
    jobs = [
        {"config": c, "method": m, "seed": int(s), "iters": args.iters, "calib_size": args.calib_size,
         "eval_size": args.eval_size, "weights": str(args.weights), "threads": args.threads,
         "border_lr": args.border_lr, "tau0": args.tau0}
        for s in args.seeds.split(",") for c in args.configs.split(",") for m in args.methods.split(",")
        if (c, m, int(s)) not in done
    ]
    print(f"runs done: {len(runs)}, to do: {len(jobs)}", flush=True)
    if runs:
        write_table(runs, args, command, float_test)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
        futures = {pool.submit(run_one, job): job for job in jobs}
        for future in concurrent.futures.as_completed(futures):
            record = future.result()
            with args.runs.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
            runs.append(record)
            write_table(runs, args, command, float_test)
            print(f"{record['config']} {record['method']} seed {record['seed']}: integer {record['integer_accuracy']:.4f} "
                  f"fake {record['fake_quant_accuracy']:.4f} ({record['wall_seconds']:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
