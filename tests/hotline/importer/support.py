"""The exports the importer tests write (xlsxwriter for .xlsx, the csv module for UTF-8-BOM and GB18030 CSV): good
rows, broken rows, a blank row. Row numbers are the sheet's (header = 1)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import xlsxwriter
from sqlalchemy import func, select

from bot.domain.clock import TZ
from bot.hotline.importer import (
    ImportReport,
    import_file,
)
from bot.services.tickets import TicketService
from config.model import BotConfig
from store.core import Store

ROOT = Path(__file__).resolve().parents[3]


HEADERS = [
    "工单编号",
    "标题",
    "诉求内容",
    "诉求地址",
    "联系人",
    "联系电话",
    "紧急程度",
    "工单类型",
    "诉求类别",
    "诉求类型",
    "所属街镇",
    "承办单位",
    "派单时间",
    "办理时限",
    "备注",  # not mapped: reported, ignored
]


def at(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=TZ)


def naive(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss)


def ticket(no: Any, content: Any = "小区门口垃圾清运不及时，气味很大", **cells: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "工单编号": no,
        "标题": "垃圾清运不及时",
        "诉求内容": content,
        "诉求地址": "演示街道幸福路88号",
        "联系人": "张**",
        "联系电话": 13800001234.0,
        "紧急程度": "常规",
        "工单类型": "普通工单",
        "诉求类别": "环卫",
        "诉求类型": "投诉",
        "所属街镇": "演示街道",
        "承办单位": None,
        "派单时间": naive(2026, 11, 20, 15, 4, 5),
        "办理时限": None,
        "备注": "市民要求回电",
    }
    row.update(cells)
    return row


# The standard export: good rows, broken rows, a blank row. Row numbers are the sheet's (header = 1).
GOOD = {
    "2026112000001": ticket("2026112000001"),  # row 2
    "2026112000002": ticket(  # row 3: the platform named the unit; urgent
        2026112000002.0,
        "商业街店招破损，随时可能掉落，请尽快处理",
        标题="店招破损",
        联系人="李*",
        联系电话="139 0000 5678",
        紧急程度="紧急",
        诉求类别="市容景观",
        承办单位="市容景观所",
        派单时间="2026/11/20 15:04",
        办理时限="2026年11月27日 17时30分",
    ),
    "2026112000003": ticket(  # row 4: 随身拍 by 工单类型; text date with seconds
        "2026112000003",
        "人行道树木倾斜，压到电线，存在安全隐患",
        标题="树木倾斜",
        工单类型="随身拍",
        诉求类别=None,
        派单时间="2026-11-21 08:30:00",
        联系电话=None,
    ),
    # row 5: blank
    "2026112000005": ticket("2026112000005", "公厕保洁不到位", 诉求类型="建议", 紧急程度=None),  # row 6
}


BROKEN_ROWS = {
    7: ticket(None, "路灯不亮"),  # missing 工单编号
    8: ticket("2026112000008", "   "),  # empty content
    9: ticket("2026112000009", 联系电话="138-abc-1234"),  # bad phone
    10: ticket("2026112000010", 紧急程度="特急"),  # unknown urgency label
    11: ticket("2026112000011", 派单时间="明天下午"),  # unreadable date
}


GOOD_TAIL = {"2026112000012": ticket("2026112000012", "绿化带杂草丛生", 派单时间=46346.375)}  # row 12: serial


def standard_rows() -> list[dict[str, Any] | None]:
    rows: list[dict[str, Any] | None] = list(GOOD.values())
    rows.insert(3, None)
    rows.extend(BROKEN_ROWS.values())
    rows.extend(GOOD_TAIL.values())
    return rows


def write_xlsx(
    path: Path,
    rows: Sequence[dict[str, Any] | None],
    headers: Sequence[str] = HEADERS,
    *,
    sheet: str = "工单",
    header_cells: Sequence[str] | None = None,
    before: Sequence[Sequence[Any]] = (),
    other_sheet_first: bool = False,
) -> Path:
    """An export like the platform's: header row, then one row per ticket (None = a blank row)."""
    book = xlsxwriter.Workbook(str(path))
    if other_sheet_first:
        book.add_worksheet("说明").write(0, 0, "本文件由12345平台导出")
    ws = book.add_worksheet(sheet)
    stamp = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    r = 0
    for line in before:
        if line:
            ws.write_row(r, 0, line)
        r += 1
    ws.write_row(r, 0, header_cells or headers)
    for row in rows:
        r += 1
        if row is None:
            continue
        for c, header in enumerate(headers):
            value = row.get(header)
            if value is None:
                continue
            if isinstance(value, datetime):
                ws.write_datetime(r, c, value, stamp)
            elif isinstance(value, int | float):
                ws.write_number(r, c, value)
            else:
                ws.write_string(r, c, value)
    book.close()
    return path


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def write_csv(path: Path, rows: Sequence[dict[str, Any] | None], encoding: str) -> Path:
    with path.open("w", encoding=encoding, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADERS)
        for row in rows:
            writer.writerow([] if row is None else [as_text(row.get(h)) for h in HEADERS])
    return path


async def count(store: Store, table: Any) -> int:
    async with store.reading() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def run(path: Path, svc: TicketService, config: BotConfig, **kwargs: Any) -> ImportReport:
    kwargs.setdefault("progress", False)
    return await import_file(path, svc, config, **kwargs)


def error_rows(report: ImportReport) -> list[int]:
    return [e.row for e in report.errors]
