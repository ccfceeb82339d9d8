"""The project's table formatters: plain text for terminal views of counters, comparisons and
hardware figures, and markdown for the documents the tools write."""

from __future__ import annotations

from typing import Sequence


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]], left: int = 2) -> str:
    """Align ``rows`` under ``header`` with a rule of dashes below it; cells are ``str()``-ed
    (format numbers before), the first ``left`` columns are left-aligned text, the others
    right-aligned; columns are two spaces apart and trailing spaces are dropped.

    >>> print(format_table(("name", "n"), [("a", 1), ("longer", 1000)], left=1))
    name       n
    ------  ----
    a          1
    longer  1000
    """
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row):
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule] + [line(row) for row in cells[1:]])


def format_markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown (pipe) table: one ``| a | b |`` line per row under ``header`` and its rule;
    cells are ``str()``-ed, nothing is padded or escaped.

    >>> print(format_markdown_table(("name", "n"), [("a", 1)]))
    | name | n |
    |---|---|
    | a | 1 |
    """
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows])
