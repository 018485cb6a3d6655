"""The one table formatter: rows of cells as aligned text (logs, the console) or as Markdown
(reports). Numbers are written the same way in both."""

from __future__ import annotations

from typing import Any, Sequence


def cell(value: Any) -> str:
    """A cell's text: floats with 4 decimals (large ones with thousands separators), ints with
    separators, None as '-', anything else as ``str``."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_table(header: Sequence[Any], rows: Sequence[Sequence[Any]], style: str = "text",
                 align: str = "right") -> str:
    """``header`` and ``rows`` as a table.

    ``style="text"``: columns padded to their widths (``align`` right or left), a dashed rule
    under the header. ``style="markdown"``: a GitHub-flavoured Markdown table.
    """
    cells = [[cell(c) for c in header]] + [[cell(c) for c in row] for row in rows]
    if any(len(row) != len(cells[0]) for row in cells):
        raise ValueError(f"every row needs {len(cells[0])} cells (the header's), got {[len(r) for r in cells]}")
    if style == "markdown":
        lines = ["|" + "|".join(f" {c} " if c else " " for c in row) + "|" for row in cells]
        lines.insert(1, "|" + "---|" * len(cells[0]))
        return "\n".join(lines)
    if style != "text":
        raise ValueError(f"style must be text or markdown, got {style!r}")
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    pad = str.rjust if align == "right" else str.ljust
    lines = ["  ".join(pad(c, w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
