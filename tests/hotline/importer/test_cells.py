"""bot/hotline/importer/cells.py: cells normalised and rows mapped to ticket fields."""

from __future__ import annotations

from datetime import datetime

import pytest

from bot.hotline.importer import (
    InvalidCell,
    map_row,
    parse_datetime,
)
from tests.hotline.importer.support import at, naive


def test_map_row() -> None:
    cells = {
        "工单编号": 2026112000001.0,
        "诉求内容": " 垃圾清运不及时 ",
        "联系电话": 13800001234.0,
        "派单时间": "2026/11/20 15:04",
        "办理时限": "下周",
        "回访结果": "满意",
        "标题": None,
    }
    mapped = map_row(
        cells,
        {
            "工单编号": "ticket_no",
            "诉求内容": "content",
            "联系电话": "citizen_phone",
            "派单时间": "dispatched_at",
            "办理时限": "hotline_deadline",
            "标题": "title",
        },
    )
    assert mapped == {
        "ticket_no": "2026112000001",
        "content": "垃圾清运不及时",
        "citizen_phone": "13800001234",
        "dispatched_at": at(2026, 11, 20, 15, 4),
        "hotline_deadline": InvalidCell("下周"),
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20 15:04:05", at(2026, 11, 20, 15, 4, 5)),
        ("2026/11/20 15:04", at(2026, 11, 20, 15, 4)),
        ("2026年11月20日 15时04分", at(2026, 11, 20, 15, 4)),
        ("2026年11月20日15时04分05秒", at(2026, 11, 20, 15, 4, 5)),
        ("2026.11.20", at(2026, 11, 20)),
        ("2026-11-20T07:04:05+00:00", at(2026, 11, 20, 15, 4, 5)),
        ("20261120", at(2026, 11, 20)),
        ("46346.375", at(2026, 11, 20, 9)),
        ("2026-02-30 10:00", None),
        ("明天", None),
        ("13800001234", None),
    ],
)
def test_parse_datetime(text: str, expected: datetime | None) -> None:
    assert parse_datetime(text) == expected


def test_map_row_tidies_cells() -> None:
    columns = {"派单时间": "dispatched_at", "标题": "title", "办理时限": "hotline_deadline"}
    cells = {
        "派单时间": naive(2026, 11, 20, 15, 4, 4).replace(microsecond=999_999),  # a float artefact
        "标题": naive(2026, 11, 20),  # a date typed into a text column
        "办理时限": 46353.0,  # an unformatted serial
    }
    assert map_row(cells, columns) == {
        "dispatched_at": at(2026, 11, 20, 15, 4, 5),
        "title": "2026-11-20",
        "hotline_deadline": at(2026, 11, 27),
    }
    assert map_row({"办理时限": 13800001234.0}, columns) == {"hotline_deadline": InvalidCell("13800001234")}
