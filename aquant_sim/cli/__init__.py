"""The ``aquant`` command: one subcommand per module of this package.

Each subcommand module defines ``register(subparsers)``, which adds its parser and sets
``func`` to a function taking the parsed arguments and returning the exit status.
"""

from __future__ import annotations

import argparse
import sys

from aquant_sim.errors import AquantError

SUBCOMMANDS = (
    "aquant_sim.cli.demo",
    "aquant_sim.cli.train",
    "aquant_sim.cli.calibrate",
    "aquant_sim.cli.evaluate",
    "aquant_sim.cli.simulate",
    "aquant_sim.cli.verify",
    "aquant_sim.cli.hw_report",
)
"""Modules (imported lazily by name) that each register one subcommand, in help order."""


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="aquant", description="Adaptive activation rounding: calibrate, simulate bit-exactly, estimate hardware cost.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (AquantError, OSError) as error:
        # Bad input, or an output path that cannot be written (OSError's text names the path), is
        # reported as one line naming what is wrong, never as a traceback.
        print(f"aquant {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
