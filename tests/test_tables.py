"""The one table formatter: aligned text for logs and the console, Markdown for reports."""

import pytest

from recbole_lsrm.tables import format_table


def test_text_table_aligns_columns_under_a_rule():
    text = format_table(("size", "N", "CE"), [("l2", 98304, 6.12345), ("l24", 75497472, None)])
    lines = text.splitlines()
    assert lines[0].split() == ["size", "N", "CE"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].split() == ["l2", "98,304", "6.1235"]
    assert lines[3].split() == ["l24", "75,497,472", "-"]
    assert len({len(line) for line in lines[:3]}) == 1  # right-aligned to one width


def test_markdown_table_keeps_empty_cells_and_text_as_given():
    text = format_table(["data", "E", "note"], [["paper", "4.9", ""], ["ml-1m", "refused", ""]], style="markdown")
    assert text.splitlines() == ["| data | E | note |", "|---|---|---|", "| paper | 4.9 | |", "| ml-1m | refused | |"]


def test_a_row_of_the_wrong_width_is_refused():
    with pytest.raises(ValueError, match="every row needs 2 cells"):
        format_table(("a", "b"), [("1",)])
