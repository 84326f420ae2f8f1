"""Column: a table column as data (header, the key it shows, digits or a formatter)."""

from __future__ import annotations

import pytest

from growray.tracking.tables import Column, format_widths, render_table


def test_a_cell_formats_floats_with_digits_and_leaves_the_rest_as_text():
    c = Column("gap", "nas/gap", digits=2)
    assert c.cell({"nas/gap": 0.125}) == "0.12"  # round half to even, as format() does
    assert c.cell({"nas/gap": 0.126}) == "0.13"
    assert c.cell({"nas/gap": 3}) == "3"  # ints as they are
    assert c.cell({"nas/gap": "n/a"}) == "n/a"
    assert c.cell({"nas/gap": None}) == "" and c.cell({}) == ""
    assert c.cell({"nas/gap": float("nan")}) == "nan"


def test_a_formatter_writes_lists_and_mappings():
    c = Column("widths", "widths", formatter=format_widths)
    assert c.cell({"widths": {"b": 3.0, "a": 12}}) == "[3,12]"  # a mapping's order is kept
    assert c.cell({"widths": [4, 5]}) == "[4,5]"
    assert c.cell({"widths": {}}) == "" and c.cell({}) == ""


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"header": "", "key": "k"}, "header must be a non-empty string"),
        ({"header": "h", "key": ""}, "key must be a non-empty string"),
        ({"header": "h", "key": "k", "digits": -1}, "digits must be an int >= 0"),
        ({"header": "h", "key": "k", "digits": True}, "digits must be an int >= 0"),
        ({"header": "h", "key": "k", "digits": 2, "formatter": str}, "digits or a formatter, not both"),
    ],
)
def test_a_column_refuses_what_it_cannot_print(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Column(**kwargs)


def test_render_table_aligns_headers_and_cells():
    text = render_table(
        [{"trial": "t1", "v": 0.5}, {"trial": "t22", "v": None}],
        [Column("trial", "trial"), Column("value", "v", digits=3)],
    )
    assert text.split("\n") == ["trial  value", "-----  -----", "t1     0.500", "t22         "]
    with pytest.raises(ValueError, match="'value' appears twice"):
        render_table([], [Column("value", "a"), Column("value", "b")])
