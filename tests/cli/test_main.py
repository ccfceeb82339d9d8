"""The ``aquant`` parser and main() of aquant_sim/cli/__init__.py: version, help on every option, usage
errors as one line."""

import argparse
import re

import pytest

from aquant_sim import __version__
from aquant_sim.cli import build_parser, main

MARKUP = re.compile(r":(mod|func|class|meth|data|attr):`|``")
"""Sphinx roles and literal markers, which argparse would print raw."""


def _subparsers():
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_version(capsys):
    """aquant --version prints the package version and exits 0."""
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"aquant-sim {__version__}"


@pytest.mark.parametrize("name", sorted(_subparsers()))
def test_every_option_has_help_without_markup(name):
    """Every subcommand has a description, every option a help text, and none holds raw Sphinx
    markup."""
    sub = _subparsers()[name]
    assert sub.description and not MARKUP.search(sub.description)
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"aquant {name} {action.dest} has no help"
        assert not MARKUP.search(action.help)


def test_help_exits_zero(capsys):
    """--help of a subcommand is printed (with its description) and main returns 0."""
    assert main(["calibrate", "--help"]) == 0
    assert "integer program" in capsys.readouterr().out


def test_missing_command_is_one_line(capsys):
    """No subcommand: status 2 and one line saying where the help is."""
    assert main([]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "aquant --help" in err
