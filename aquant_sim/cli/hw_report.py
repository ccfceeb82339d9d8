"""``aquant hw-report PROGRAM``: cycles, memory traffic, energy and area of running an integer
program (a saved ``.aqp``, or an int8 ``.onnx`` or ``.tflite`` model imported in memory with its
runtime's requantizers, each costed by its own rule) on a configurable accelerator, and what the
border lookup unit costs over a plain round-to-nearest requantizer. With ``--input X.npy`` the program runs on that batch first and the
simulator's counters (zero activations, accumulator overflows) refine the estimate."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("hw-report", help="hardware cost of a program: cycles, traffic, energy, area, border unit overhead",
                                   description=__doc__)
    parser.add_argument("artifact", help="a saved integer program (.aqp), or an int8 model (.onnx, .tflite) to import")
    parser.add_argument("--hw", metavar="FILE.toml", help="accelerator config (default: hw_models/configs/default.toml); "
                        "a SCALE-Sim .cfg is imported as such")
    parser.add_argument("--dataflow", choices=("os", "ws", "is"), help="override the config's dataflow")
    parser.add_argument("--input", metavar="X.npy", help="a batch (N, ...) to simulate first; its counters refine the estimate")
    parser.add_argument("--json", metavar="PATH", help="write the full report as JSON")
    parser.add_argument("--csv", metavar="PATH", help="write the per-layer table as CSV")
    parser.add_argument("--plot", metavar="DIR", help="write PNG plots (cycles, energy, border overhead) to DIR")
    parser.set_defaults(func=run)


def load_hw_config(path: str | None, dataflow: str | None):
    from hw_models.config import Dataflow, default_config, load_config
    from hw_models.scalesim import read_scalesim_cfg

    if path is None:
        config = default_config()
    elif path.endswith(".cfg"):
        config = read_scalesim_cfg(path)
    else:
        config = load_config(path)
    return config.with_dataflow(Dataflow(dataflow)) if dataflow else config


def _counters(program, path: str):
    from aquant_sim.cli.common import load_array
    from aquant_sim.simulator import Backend, Simulator

    return Simulator(program, Backend.NUMBA).run(load_array(path)).counters


def run(args: argparse.Namespace) -> int:
    from aquant_sim.cli.common import write_json
    from hw_models.report import build_report, format_report, report_json, write_csv

    # The config first: a bad --hw is reported before the artifact is read.
    config = load_hw_config(args.hw, args.dataflow)
    from aquant_sim.importers.loading import load_any_program

    program = load_any_program(args.artifact)
    counters = _counters(program, args.input) if args.input else None
    report = build_report(program, config, counters)
    print(format_report(report))
    if args.json:
        write_json(args.json, report_json(report))
    if args.csv:
        write_csv(report, args.csv)
    if args.plot:
        from hw_models.plots import write_plots

        for path in write_plots(report, args.plot):
            print(f"wrote {path}")
    return 0
