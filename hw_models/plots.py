"""PNG plots of a hardware report (matplotlib, no display needed): cycles per layer split into
compute, stall and border-unit cycles; the energy breakdown per layer; the border unit's
overhead per layer in percent of the round-to-nearest design."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ENERGY_PARTS = ("mac", "vector", "requant", "border", "sram", "dram")


def _figure(report: dict, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [row["name"] for row in report["layers"]]
    fig, ax = plt.subplots(figsize=(max(8.0, 0.32 * len(names)), 4.8))
    ax.set_title(f"{title} ({report['config']['name']}, {report['config']['rows']}x{report['config']['cols']} "
                 f"{report['config']['dataflow'].upper()})")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    return plt, fig, ax


def _stacked(ax, series: dict[str, list[float]]) -> None:
    bottom = np.zeros(len(next(iter(series.values()))))
    for label, values in series.items():
        ax.bar(range(len(bottom)), values, bottom=bottom, label=label)
        bottom += np.asarray(values, dtype=float)
    ax.legend(fontsize=8)


def write_plots(report: dict, directory: str | Path) -> list[Path]:
    """Write ``cycles.png``, ``energy.png`` and ``border_overhead.png``; return their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rows = report["layers"]
    paths = []

    plt, fig, ax = _figure(report, "Cycles per layer")
    _stacked(ax, {"compute": [r["compute_cycles"] for r in rows], "stall (DRAM)": [r["stall_cycles"] for r in rows],
                  "border unit": [r["border_cycles"] for r in rows]})
    ax.set_ylabel("cycles")
    paths.append(_save(plt, fig, directory / "cycles.png"))

    plt, fig, ax = _figure(report, "Energy per layer")
    _stacked(ax, {part: [r["energy_pj"][part] / 1e6 for r in rows] for part in ENERGY_PARTS})
    ax.set_ylabel("energy (uJ)")
    paths.append(_save(plt, fig, directory / "energy.png"))

    plt, fig, ax = _figure(report, "Border lookup unit over round-to-nearest")
    x = np.arange(len(rows))
    for offset, key, label in ((-0.27, "cycles_pct", "cycles"), (0, "energy_pct", "energy"), (0.27, "dram_bytes_pct", "DRAM bytes")):
        ax.bar(x + offset, [r["border_overhead"][key] for r in rows], width=0.27, label=label)
    ax.set_ylabel("extra over RTN (%)")
    ax.legend(fontsize=8)
    paths.append(_save(plt, fig, directory / "border_overhead.png"))
    return paths


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
