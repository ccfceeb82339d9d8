"""The one plain-text table formatter of the project (terminal views of counters, comparisons
and hardware figures)."""

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
