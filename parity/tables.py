"""Plain-text tables for the CLI, the per-layer trace and the summaries: each column as wide as its widest
cell, two spaces between columns, trailing blanks stripped. Shapes are written one way everywhere:
``1x1024x13x13``."""
from __future__ import annotations


def format_table(header, rows, right=(), rule: bool = False) -> str:
    """``header`` and ``rows`` as aligned lines; columns whose index is in ``right`` are right-aligned;
    ``rule`` puts a line of dashes under the header."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

    def line(row) -> str:
        return "  ".join(str(x).rjust(w) if i in right else str(x).ljust(w)
                         for i, (x, w) in enumerate(zip(row, widths))).rstrip()

    lines = [line(row) for row in (header, *rows)]
    if rule:
        lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def shape_text(shape) -> str:
    """A shape as ``1x1024x13x13`` (``-`` for None), the one way shapes are written in tables and messages."""
    return "-" if shape is None else "x".join(str(int(d)) for d in shape)
