"""The table formatters: plain text and markdown."""

from aquant_sim.table import format_markdown_table, format_table


def test_format_table_aligns():
    """Text columns are left-aligned, numbers right-aligned, every line the same width or shorter."""
    text = format_table(("name", "n"), [("a", 1), ("longer", 1000)], left=1)
    lines = text.splitlines()
    assert lines[0] == "name       n" and lines[2] == "a          1" and lines[3] == "longer  1000"


def test_format_markdown_table_one_line_per_row():
    """A header line, its rule with one ``---|`` per column, then one pipe line per row, cells str()-ed."""
    text = format_markdown_table(("config", "n"), [("W2A2", 3), ("W4A4", 0.5)])
    assert text.splitlines() == ["| config | n |", "|---|---|", "| W2A2 | 3 |", "| W4A4 | 0.5 |"]
