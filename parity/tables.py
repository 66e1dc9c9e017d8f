"""Plain-text tables for the CLI, the per-layer trace and the summaries: each column as wide as its widest
cell, two spaces between columns, trailing blanks stripped. Shapes are written one way everywhere:
``1x1024x13x13``."""
from __future__ import annotations


def format_table(header, rows, right=(), rule: bool = False) -> str:
    """``header`` and ``rows`` as aligned lines; columns whose index is in ``right`` are right-aligned;
    ``rule`` puts a line of dashes under the header."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = [format_row(row, widths, right) for row in (header, *rows)]
    if rule:
        lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def format_row(row, widths, right=()) -> str:
    """One table line: cell ``i`` padded to ``widths[i]`` (right-aligned if ``i`` is in ``right``); cells
    past the end of ``widths`` are written as they are. Lets a table be printed a row at a time."""
    cells = [str(x).rjust(widths[i]) if i in right else str(x).ljust(widths[i]) if i < len(widths) else str(x)
             for i, x in enumerate(row)]
    return "  ".join(cells).rstrip()


def shape_text(shape) -> str:
    """A shape as ``1x1024x13x13`` (``-`` for None), the one way shapes are written in tables and messages."""
    return "-" if shape is None else "x".join(str(int(d)) for d in shape)
