"""The one table formatter."""

from aquant_sim.table import format_table


def test_format_table_aligns():
    """Text columns are left-aligned, numbers right-aligned, every line the same width or shorter."""
    text = format_table(("name", "n"), [("a", 1), ("longer", 1000)], left=1)
    lines = text.splitlines()
    assert lines[0] == "name       n" and lines[2] == "a          1" and lines[3] == "longer  1000"
