"""Benchmark of the hardware models: the whole cycle, memory, energy and area estimate of a
ResNet-18-shaped program (both designs: AQuant's border unit and round-to-nearest), against a
peer in the same run: the cycle-stepped array model on one layer, extrapolated to the network
by its cost per simulated cycle.

    python tools/bench_hw.py [--repeat 20] [--dataflow os|ws|is]

Prints ``name: value`` lines.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from aquant_sim.synthetic import resnet18_config, synthetic_resnet
from hw_models.config import Dataflow, default_config
from hw_models.cycle_stepped import simulate_gemm
from hw_models.layers import program_layers
from hw_models.report import build_report
from hw_models.systolic import compute_cycles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--dataflow", choices=[d.value for d in Dataflow], default="os")
    parser.add_argument("--layer", default="fc", help="the layer the cycle-stepped peer runs")
    args = parser.parse_args()

    program = synthetic_resnet(resnet18_config(4, 4))
    config = default_config().with_dataflow(Dataflow(args.dataflow))
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        report = build_report(program, config)
        times.append(time.perf_counter() - start)
    analytic = statistics.median(times)
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

    print(f"network: synthetic ResNet-18, 224x224, 4-bit weights and activations, {len(report.layers)} costed layers")
    print(f"config: {config.name} {config.array.rows}x{config.array.cols} {config.array.dataflow.value}")
    print(f"analytic_report_median_s: {analytic:.5f}")
    print(f"analytic_report_min_s: {min(times):.5f}")
    print(f"network_cycles: {total.cycles}")
    print(f"network_compute_cycles: {total.compute_cycles}")
    print(f"network_energy_uj: {total.energy_pj / 1e6:.2f}")
    print(f"stepped_layer: {args.layer}")
    print(f"stepped_layer_cycles: {stepped.cycles}")
    print(f"stepped_layer_matches_analytic: {stepped.cycles == compute_cycles(g, config.array) and np.array_equal(stepped.output, a @ b)}")
    print(f"stepped_layer_s: {stepped_s:.3f}")
    print(f"stepped_s_per_cycle: {per_cycle:.3e}")
    print(f"stepped_network_extrapolated_s: {extrapolated:.1f}")
    print(f"speedup_analytic_vs_stepped: {extrapolated / analytic:.0f}")


if __name__ == "__main__":
    main()
