"""The ``aquant`` command: one subcommand per module of this package.

Each subcommand module defines ``register(subparsers)``, which adds its parser and sets
``func`` to a function taking the parsed arguments and returning the exit status.
"""

from __future__ import annotations

import argparse
import sys

from aquant_sim import __version__
from aquant_sim.errors import AquantError

SUBCOMMANDS = (
    "aquant_sim.cli.demo",
    "aquant_sim.cli.train",
    "aquant_sim.cli.calibrate",
    "aquant_sim.cli.evaluate",
    "aquant_sim.cli.simulate",
    "aquant_sim.cli.verify",
    "aquant_sim.cli.import_model",
    "aquant_sim.cli.export",
    "aquant_sim.cli.hw_report",
    "aquant_sim.cli.tune_borders",
)
"""Modules (imported lazily by name) that each register one subcommand, in help order."""


class Parser(argparse.ArgumentParser):
    """argparse's parser, with a usage error reported as one line (which option, what is wrong,
    where the help is) instead of the whole usage text, and descriptions (the subcommands' module
    docstrings) printed without their ``literal`` markers."""

    def __init__(self, *args, description: str | None = None, **kwargs):
        super().__init__(*args, description=description.replace("``", "") if description else description, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = Parser(prog="aquant", description="Adaptive activation rounding: calibrate, simulate bit-exactly, estimate hardware cost.")
    parser.add_argument("--version", action="version", version=f"aquant-sim {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``aquant`` command; return its exit status (2 for a usage error, 0 after --help)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # argparse has printed the help, the version or the usage error
        return stop.code if isinstance(stop.code, int) else 2
    try:
        return args.func(args)
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] != "torch":
            raise
        print(f"aquant {args.command}: error: this command needs torch, which the engine install leaves out: "
              f"pip install 'aquant-sim[calibrate]' (demo --synthetic, simulate, verify, evaluate and hw-report need none)",
              file=sys.stderr)
        return 2
    except (AquantError, OSError) as error:
        # Bad input, or an output path that cannot be written (OSError's text names the path), is
        # reported as one line naming what is wrong, never as a traceback.
        print(f"aquant {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
