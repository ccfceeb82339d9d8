"""The results document and its plots, written from the JSONL of runs alone: every figure in it
is computed here from the records (``tools/results_table.py`` makes them), none is typed by hand.

Per model: the main table (untagged runs: integer-program accuracy, mean ± sample standard
deviation over seeds and their count, per method and configuration), the paired per-seed
difference aquant - qdrop, fake-quant accuracy and top-1 agreement, one table per ablation tag,
then every run.
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np

from aquant_sim.table import format_markdown_table

CONFIGS = ("W4A4", "W3A3", "W2A4", "W2A2")
"""The tables' columns, in this order."""
METHODS = ("rtn", "adaround", "brecq", "qdrop", "aquant")
"""The tables' rows, in this order."""
MAIN_MODEL = "resnet20"
TITLES = {"resnet20": "ResNet-20", "resnet18": "ResNet-18", "mobilenetv2": "MobileNetV2-style"}
REPOSITORY = Path(__file__).resolve().parents[1]
SCRATCH = "$SCRATCH"
"""What a recorded command's paths outside the repository are shown as: the document cites only
files in the repository, and a sweep's scratch copies (of the weights, of the runs file) are not."""
PAIR = ("aquant", "qdrop")
"""The paired difference: first minus second, over the seeds both have."""


def _pct(values) -> str:
    """Mean ± sample std (n) in percent; ``-`` for none."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{100 * values[0]:.2f} (1)"
    return f"{100 * np.mean(values):.2f} ± {100 * np.std(values, ddof=1):.2f} ({len(values)})"




def _order(values, preferred) -> list:
    present = list(dict.fromkeys(values))
    return [v for v in preferred if v in present] + [v for v in present if v not in preferred]


def _flat(config: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _shared_settings(runs: list[dict], axes) -> str:
    """The calibration settings every run shares (the sweep's ``axes`` left out); those that differ."""
    flat = [_flat(r["calibration"]) for r in runs]
    keys = [k for k in flat[0] if k not in axes]
    same = [f"`{k}={flat[0][k]}`" for k in keys if all(f.get(k) == flat[0][k] for f in flat)]
    differ = [f"`{k}`" for k in keys if any(f.get(k) != flat[0][k] for f in flat)]
    return ", ".join(same) + (f"; differing between runs: {', '.join(differ)}" if differ else "")


def _paired(runs: list[dict], configs) -> str:
    first, second = PAIR
    rows = []
    for config in configs:
        by_seed = {m: {r["seed"]: r["integer_accuracy"] for r in runs if r["method"] == m and r["config"] == config} for m in PAIR}
        seeds = sorted(set(by_seed[first]) & set(by_seed[second]))
        diffs = [by_seed[first][s] - by_seed[second][s] for s in seeds]
        if not diffs:
            rows.append([config, "-", "0", "-"])
            continue
        spread = f" ± {100 * np.std(diffs, ddof=1):.2f}" if len(diffs) > 1 else ""
        rows.append([config, f"{100 * np.mean(diffs):+.2f}{spread}", str(len(diffs)),
                     ", ".join(f"seed {s}: {100 * d:+.2f}" for s, d in zip(seeds, diffs))])
    return format_markdown_table(["config", f"{first} - {second} (points)", "seeds", "per seed"], rows)


def _label(overrides: dict, main: dict) -> str:
    changed = {k: v for k, v in overrides.items() if main.get(k) != v}
    return ", ".join(f"`{k}={v}`" for k, v in changed.items()) or "(as the main table)"


def _output_loss(runs: list[dict]) -> float | None:
    """The calibration-data criterion of a setting: the last unit's reconstruction loss after
    calibration (squared error of the logits to the float model's, summed over classes, mean over
    the calibration images, every quantizer hard), mean over the runs that recorded it."""
    values = [r["units"][-1]["loss_after"] for r in runs if r.get("units")]
    return float(np.mean(values)) if values else None


def _ablations(runs: list[dict], main_runs: list[dict]) -> list[str]:
    """Per tag, accuracy on test data beside the output loss on calibration data, per setting and
    configuration, and per configuration the setting that calibration data alone would choose
    (the lowest output loss)."""
    main_overrides = main_runs[0]["overrides"] if main_runs else {}
    parts = []
    for name in dict.fromkeys(r["ablation"] for r in runs if r["ablation"]):
        tagged = [r for r in runs if r["ablation"] == name]
        configs = _order([r["config"] for r in tagged], CONFIGS)
        methods = _order([r["method"] for r in tagged], METHODS)
        rows, losses = [], collections.defaultdict(dict)
        for method in methods:
            settings = {"main table": [r for r in main_runs if r["method"] == method]}
            for label in dict.fromkeys(_label(r["overrides"], main_overrides) for r in tagged if r["method"] == method):
                settings[label] = [r for r in tagged if r["method"] == method and _label(r["overrides"], main_overrides) == label]
            for label, chosen in settings.items():
                row = [method, label]
                for config in configs:
                    cell = [r for r in chosen if r["config"] == config]
                    loss = _output_loss(cell)
                    if loss is not None:
                        losses[(method, config)][label] = loss
                    row += [_pct([r["integer_accuracy"] for r in cell]), "-" if loss is None else f"{loss:.4f}"]
                rows.append(row)
        header = ["method", "settings"] + [h for c in configs for h in (f"{c} test accuracy", f"{c} output loss (calibration)")]
        choices = [f"{method} {config}: {min(by_label, key=by_label.get)}" for (method, config), by_label in losses.items()]
        parts.append(f"### Ablation `{name}` ({len(tagged)} runs)\n\n" + format_markdown_table(header, rows)
                     + ("\n\nChosen on calibration data (lowest output loss): " + "; ".join(choices) + "." if choices else ""))
    return parts


def _float_cell(runs: list[dict], config: str) -> str:
    values = sorted({r["float_accuracy"] for r in runs if r["config"] == config})
    return f"{100 * values[0]:.2f}" if len(values) == 1 else "-" if not values else "differs"


def _fake_quant_cell(runs: list[dict]) -> str:
    if not runs:
        return "-"
    return f"{_pct([r['fake_quant_accuracy'] for r in runs])} / {100 * min(r['top1_agreement'] for r in runs):.2f}"


def _soft_cell(runs: list[dict]) -> str:
    """The largest share of rounding variables still soft at hardening over every unit of the
    cell's runs (%), or "-" where no run learned its weight rounding."""
    shares = [u["soft_share"] for r in runs for u in r.get("units", []) if u.get("loss_soft") is not None]
    return f"{100 * max(shares):.2f}" if shares else "-"


def _section(model: str, runs: list[dict], axes, plot: Path) -> str:
    main = [r for r in runs if not r["ablation"]]
    first = runs[0]
    # The main model's table always has every cell (unfinished ones "-"); others show what ran.
    configs = list(CONFIGS) if model == MAIN_MODEL else _order([r["config"] for r in runs], CONFIGS)
    methods = _order([r["method"] for r in main] + (list(METHODS) if model == MAIN_MODEL else []), METHODS)
    cell = {(m, c): [r for r in main if r["method"] == m and r["config"] == c] for m in methods for c in configs}
    accuracy = [["float (fp32)"] + [_float_cell(main, c) for c in configs] + ["-"]]
    for m in methods:
        wall = [r["wall_seconds"] for r in main if r["method"] == m]
        accuracy.append([m] + [_pct([r["integer_accuracy"] for r in cell[m, c]]) for c in configs] + [f"{np.mean(wall):.0f}" if wall else "-"])
    fake = [[m] + [_fake_quant_cell(cell[m, c]) for c in configs] for m in methods]
    text = [f"## {TITLES.get(model, model)} (`{model}`) on {first['dataset']}",
            f"Top-1 accuracy (%) of the **integer program run by the simulator** "
            f"({', '.join(sorted({r['backend'] for r in runs}))} backend) on "
            f"{', '.join(map(str, sorted({r['samples'] for r in runs})))} test images"
            f"{' (the whole test split)' if first['eval_size'] is None else ''}, calibrated on {first['calib_size']} training "
            f"images (a seeded subset: the seed changes the images and the optimisation's random numbers, not the test "
            f"images). Cells: mean ± sample standard deviation over seeds (number of seeds); \"-\": no run finished. "
            f"Float weights: sha256 `{first['weights_sha256'][:12]}`. W = weight bits, A = activation bits.",
            f"**Runs finished: {len(main)}** in this table ({len(runs)} with the ablations).",
            format_markdown_table(["method"] + configs + ["wall s / run"], accuracy)]
    if model == MAIN_MODEL:
        text.append(f"![integer-program accuracy against bits]({plot.name})")
    text += [f"Paired per-seed difference of the integer-program accuracy, {PAIR[0]} - {PAIR[1]}, over the seeds both "
             f"have (mean ± sample standard deviation):", _paired(main, configs),
             "Fake-quant model accuracy (mean ± std (n)) / the lowest top-1 agreement (%) between the fake-quant "
             "model and the integer program over the cell's runs:",
             format_markdown_table(["method"] + configs, fake),
             "Convergence: the largest share (%) of a unit's rounding variables still soft (h(V) in (0.01, 0.99)) "
             "when they were hardened, over every unit of the cell's runs (the protocol's bound is 1; \"-\": no "
             "learned rounding):",
             format_markdown_table(["method"] + configs, [[m] + [_soft_cell(cell[m, c]) for c in configs] for m in methods]),
             f"Calibration settings of the main table (each run's full config is in its record): "
             f"{_shared_settings(main, axes) if main else '-'}."]
    text += _ablations(runs, main)
    _plot(main, configs, methods, model, plot)
    return "\n\n".join(text)


def _plot(runs: list[dict], configs, methods, model: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = np.arange(len(configs))
    for method in methods:
        values = [[r["integer_accuracy"] for r in runs if r["method"] == method and r["config"] == c] for c in configs]
        means = [100 * np.mean(v) if v else np.nan for v in values]
        stds = [100 * np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in values]
        ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=method)
    floats = [r["float_accuracy"] for r in runs]
    if floats:
        ax.axhline(100 * floats[0], color="black", linestyle="--", linewidth=1, label="float")
    ax.set_xticks(xs, configs)
    ax.set_xlabel("bits (weights, activations)")
    ax.set_ylabel("top-1 accuracy of the integer program (%)")
    ax.set_title(f"{TITLES.get(model, model)}: mean and std over seeds")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _every_run(runs: list[dict]) -> str:
    rank = {c: i for i, c in enumerate(CONFIGS)}
    method_rank = {m: i for i, m in enumerate(METHODS)}
    ordered = sorted(runs, key=lambda r: (r["model"], r["ablation"], rank.get(r["config"], 99), method_rank.get(r["method"], 99), r["seed"]))
    rows = [[r["model"], r["config"], r["method"], str(r["seed"]), r["ablation"] or "-", f"{100 * r['integer_accuracy']:.2f}",
             f"{100 * r['fake_quant_accuracy']:.2f}", f"{100 * r['top1_agreement']:.2f}",
             f"{r['calibration_seconds']:.0f}", f"{r['wall_seconds']:.0f}", r["commit"][:10] + ("+dirty" if r["commit"].endswith("+dirty") else "")] for r in ordered]
    return format_markdown_table(["model", "config", "method", "seed", "ablation", "integer", "fake-quant", "agreement", "calibration s", "wall s", "commit"], rows)


def _in_repository_terms(command: str) -> str:
    """``command`` with each absolute path outside the repository shown as ``$SCRATCH/<its name>``
    (a path inside it is shown relative to the repository's root)."""
    words = []
    for word in command.split(" "):
        if word.startswith("/"):
            path = Path(word)
            word = str(path.relative_to(REPOSITORY)) if path.is_relative_to(REPOSITORY) else f"{SCRATCH}/{path.name}"
        words.append(word)
    return " ".join(words)


def write_report(records: list[dict], current: list[dict], axes, runs_path: Path, out: Path, command: str, notes: str | None) -> None:
    """Write ``out`` (markdown) and, beside it, a plot per model from ``current`` (the records that
    count, :func:`results_table.current_runs`); ``records`` is the whole file, for the counts;
    ``axes`` the config fields the sweep varies (left out of the shared settings)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    by_model = collections.defaultdict(list)
    for record in current:
        by_model[record["model"]].append(record)
    # Plots are named after the document, so that two documents in one folder keep their own.
    sections = [_section(model, by_model[model], axes, out.with_name(f"{out.stem}.png" if model == MAIN_MODEL else f"{out.stem}_{model}.png"))
                for model in _order(list(by_model), [MAIN_MODEL])]
    commands = sorted({_in_repository_terms(r["command"]) for r in current})
    text = [f"# Results\n\nGenerated by `tools/results_table.py` from `{runs_path.name}` ({len(current)} runs; the file holds "
            f"{len(records)} records, {len(records) - len(current)} of them superseded or made with a calibration config "
            f"the code no longer resolves to, not shown). Do not edit: rerun the command at the end.",
            *(sections or ["No run finished yet."])]
    if notes:
        text.append(notes.strip())
    if current:
        text.append("## Every run\n\n" + _every_run(current))
    text.append("## Commands\n\nThis file was written by\n\n    " + command + "\n\nand its runs were made by\n\n" +
                "\n".join(f"    {c}" for c in commands))
    if any(SCRATCH in c for c in commands):
        text.append(f"`{SCRATCH}/` stands for a scratch directory outside the checkout that a sweep ran in: it held the "
                    f"float weights (their sha256 is in each run record) and a working copy of `{runs_path.name}`, "
                    f"whose records were copied into this repository's file afterwards.")
    out.write_text("\n\n".join(text) + "\n")
