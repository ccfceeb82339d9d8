"""Benchmark of the hardware models: the whole cycle, memory, energy and area estimate of a
ResNet-18-shaped program (both designs: AQuant's border unit and round-to-nearest), against
peers: the cycle-stepped array model on one layer, extrapolated to the network by its cost per
simulated cycle; with ``--scalesim``, SCALE-Sim 3.0 itself (in its own venv, as
``tools/scalesim_validate.py`` finds it) and the project's SCALE-Sim compatibility mode on the
same topology (the program's convs and linears) and the same config.

    python tools/bench_hw.py [--repeat 20] [--dataflow os|ws|is] [--config default|scalesim_32x32]
                             [--memory-model fold|tiling] [--input-size 224] [--scalesim [--scalesim-python PY]]

The estimate's time is measured cold: the tiling search's cache is cleared before each repeat.
``--input-size`` sets the network's input side (SCALE-Sim takes about ten minutes at 32 on two
shared cores and did not finish at 224). Prints ``name: value`` lines; every ratio is the
quotient of two printed times.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from aquant_sim.synthetic import resnet18_config, synthetic_resnet
from hw_models.config import Dataflow, MemoryModel, shipped_config
from hw_models.cycle_stepped import simulate_gemm
from hw_models.layers import program_layers
from hw_models.report import build_report
from hw_models.scalesim import program_topology, write_scalesim_cfg, write_topology
from hw_models.scalesim_compat import read_config, simulate_topology
from hw_models.systolic import compute_cycles
from hw_models.tiling import best_tiling

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scalesim_validate import RUNNER, scalesim_python  # noqa: E402  (the tool beside this one)


def scalesim_peer(program, config, python: Path) -> tuple[float, float, int]:
    """Seconds of SCALE-Sim and of the compatibility mode on the program's topology, and its rows."""
    layers, _ = program_topology(program)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        write_topology(layers, work / "topology.csv")
        write_scalesim_cfg(config, work / "scale.cfg")
        start = time.perf_counter()
        subprocess.run([str(python), "-c", RUNNER, str(work / "scale.cfg"), str(work / "topology.csv"), str(work / "run")],
                       check=True, stdout=subprocess.DEVNULL)
        scalesim_s = time.perf_counter() - start
        start = time.perf_counter()
        simulate_topology(layers, read_config(work / "scale.cfg"))
        return scalesim_s, time.perf_counter() - start, len(layers)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--dataflow", choices=[d.value for d in Dataflow], default="os")
    parser.add_argument("--layer", default="fc", help="the layer the cycle-stepped peer runs")
    parser.add_argument("--config", default="default", help="a shipped config (hw_models/configs)")
    parser.add_argument("--memory-model", choices=[m.value for m in MemoryModel])
    parser.add_argument("--scalesim", action="store_true", help="also time SCALE-Sim and the compatibility mode")
    parser.add_argument("--scalesim-python")
    parser.add_argument("--input-size", type=int, default=224, help="input height and width of the network")
    args = parser.parse_args(argv)

    program = synthetic_resnet(resnet18_config(4, 4, input_size=args.input_size))
    config = shipped_config(args.config).with_dataflow(Dataflow(args.dataflow))
    if args.memory_model:
        config = dataclasses.replace(config, memory=dataclasses.replace(config.memory, model=MemoryModel(args.memory_model)))
    times = []
    for _ in range(args.repeat):
        best_tiling.cache_clear()
        start = time.perf_counter()
        report = build_report(program, config)
        times.append(time.perf_counter() - start)
    analytic = round(statistics.median(times), 6)
    total = report.aquant

    layer = next(w for w in program_layers(program) if w.name == args.layer)
    rng = np.random.default_rng(0)
    g = layer.gemm
    a = rng.integers(-8, 8, size=(g.groups, g.pixels, g.window))
    b = rng.integers(-8, 8, size=(g.groups, g.window, g.filters))
    start = time.perf_counter()
    stepped = simulate_gemm(a, b, config.array.rows, config.array.cols, config.array.dataflow)
    stepped_s = time.perf_counter() - start
    per_cycle = stepped_s / (stepped.cycles + 1)
    extrapolated = per_cycle * total.compute_cycles

    print(f"network: synthetic ResNet-18, {args.input_size}x{args.input_size}, 4-bit weights and activations, "
          f"{len(report.layers)} costed layers")
    print(f"config: {config.name} {config.array.rows}x{config.array.cols} {config.array.dataflow.value}, "
          f"memory model {config.memory.model.value}")
    print(f"analytic_report_median_s: {analytic:.6f}")
    print(f"analytic_report_min_s: {min(times):.6f}")
    print(f"network_cycles: {total.cycles}")
    print(f"network_compute_cycles: {total.compute_cycles}")
    print(f"network_energy_uj: {total.energy_pj / 1e6:.2f}")
    print(f"network_dram_mb: {total.dram_bytes / 1e6:.2f}")
    print(f"stepped_layer: {args.layer}")
    print(f"stepped_layer_cycles: {stepped.cycles}")
    print(f"stepped_layer_matches_analytic: {stepped.cycles == compute_cycles(g, config.array) and np.array_equal(stepped.output, a @ b)}")
    print(f"stepped_layer_s: {stepped_s:.3f}")
    print(f"stepped_s_per_cycle: {per_cycle:.3e}")
    print(f"stepped_network_extrapolated_s: {extrapolated:.1f}")
    print(f"speedup_analytic_vs_stepped: {extrapolated / analytic:.0f}")
    if not args.scalesim:
        print("scalesim: not run (pass --scalesim)")
        return
    scalesim_s, compat_s, rows = scalesim_peer(program, config, scalesim_python(args.scalesim_python))
    scalesim_s, compat_s = round(scalesim_s, 3), round(compat_s, 4)
    print(f"scalesim_topology_layers: {rows}")
    print(f"scalesim_s: {scalesim_s:.3f}")
    print(f"scalesim_compat_mode_s: {compat_s:.4f}")
    print(f"speedup_analytic_vs_scalesim: {scalesim_s / analytic:.0f}")
    print(f"meets_1e4x_target: {scalesim_s / analytic >= 1e4}")
    print(f"speedup_compat_mode_vs_scalesim: {scalesim_s / compat_s:.1f}")


if __name__ == "__main__":
    main()
