"""PNG plots of a hardware report (matplotlib, no display needed): cycles per layer split into
compute, stall and border-unit cycles; the energy breakdown per layer; the border unit's
overhead per layer in percent of the round-to-nearest design."""

from __future__ import annotations

from dataclasses import astuple, fields
from pathlib import Path

import numpy as np

from hw_models.energy import LayerEnergy
from hw_models.report import HardwareReport


def _figure(report: HardwareReport, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [row.name for row in report.layers]
    config = report.config
    fig, ax = plt.subplots(figsize=(max(8.0, 0.32 * len(names)), 4.8))
    ax.set_title(f"{title} ({config.name}, {config.array.rows}x{config.array.cols} {config.array.dataflow.name})")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    return plt, fig, ax


def _stacked(ax, series: dict[str, list[float]]) -> None:
    bottom = np.zeros(len(next(iter(series.values()))))
    for label, values in series.items():
        ax.bar(range(len(bottom)), values, bottom=bottom, label=label)
        bottom += np.asarray(values, dtype=float)
    ax.legend(fontsize=8)


def write_plots(report: HardwareReport, directory: str | Path) -> list[Path]:
    """Write ``cycles.png``, ``energy.png`` and ``border_overhead.png``; return their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rows = [row.aquant for row in report.layers]
    overheads = [row.overhead for row in report.layers]
    paths = []

    plt, fig, ax = _figure(report, "Cycles per layer")
    _stacked(ax, {"compute": [r.compute_cycles for r in rows], "stall (DRAM)": [r.stall_cycles for r in rows],
                  "border unit": [r.border.extra_cycles for r in rows]})
    ax.set_ylabel("cycles")
    paths.append(_save(plt, fig, directory / "cycles.png"))

    plt, fig, ax = _figure(report, "Energy per layer")
    parts = np.array([astuple(r.energy) for r in rows]).reshape(len(rows), -1) / 1e6
    _stacked(ax, {f.name: parts[:, i] for i, f in enumerate(fields(LayerEnergy))})
    ax.set_ylabel("energy (uJ)")
    paths.append(_save(plt, fig, directory / "energy.png"))

    plt, fig, ax = _figure(report, "Border lookup unit over round-to-nearest")
    x = np.arange(len(rows))
    bars = ((-0.27, "cycles", [o.cycles_pct for o in overheads]), (0, "energy", [o.energy_pct for o in overheads]),
            (0.27, "DRAM bytes", [o.dram_bytes_pct for o in overheads]))
    for offset, label, values in bars:
        ax.bar(x + offset, values, width=0.27, label=label)
    ax.set_ylabel("extra over RTN (%)")
    ax.legend(fontsize=8)
    paths.append(_save(plt, fig, directory / "border_overhead.png"))
    return paths


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
