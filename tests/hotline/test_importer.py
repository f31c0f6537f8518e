"""Tests for bot.hotline.importer: Excel / CSV exports into the ticket service.

Every file is generated in tmp_path (xlsxwriter for .xlsx, the csv module for UTF-8-BOM and GB18030 CSV)
and imported into a fresh SQLite database.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import xlsxwriter
from sqlalchemy import func, select

from bot.domain.clock import TZ, FrozenClock
from bot.domain.workcal import WorkCalendar
from bot.hotline.importer import (
    ImportFormatError,
    ImportReport,
    InvalidCell,
    RowError,
    format_errors,
    import_file,
    map_row,
    parse_datetime,
    read_rows,
)
from bot.services.tickets import TicketNotFound, TicketService
from config.loader import load_config
from config.model import BotConfig
from store.db import create_engine, migrate
from store.models import audit_log, deadlines, tickets
from store.repo import Store

ROOT = Path(__file__).resolve().parents[2]

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
    "回访结果",  # not mapped: ignored
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
        "回访结果": "满意",
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


# --- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def config() -> BotConfig:
    return load_config(ROOT / "config" / "sandbox.yaml")


@pytest.fixture(scope="module")
def work_calendar() -> WorkCalendar:
    return WorkCalendar()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/t.db")
    await migrate(engine)
    yield Store(engine)
    await engine.dispose()


@pytest.fixture
def svc(store: Store, config: BotConfig, work_calendar: WorkCalendar) -> TicketService:
    return TicketService(store, config, work_calendar, FrozenClock(at(2026, 11, 23, 9)))


async def count(store: Store, table: Any) -> int:
    async with store.reading() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def run(path: Path, svc: TicketService, config: BotConfig, **kwargs: Any) -> ImportReport:
    kwargs.setdefault("progress", False)
    return await import_file(path, svc, config, **kwargs)


def error_rows(report: ImportReport) -> list[int]:
    return [e.row for e in report.errors]


# --- the standard export -------------------------------------------------------------------------------


async def test_xlsx_import_counts_errors_and_tickets(tmp_path: Path, svc: TicketService, config: BotConfig) -> None:
    path = write_xlsx(tmp_path / "export.xlsx", standard_rows())
    report = await run(path, svc, config)

    assert (report.total, report.created, report.updated, report.unchanged) == (10, 5, 0, 0)
    assert error_rows(report) == [7, 8, 9, 10, 11]
    assert report.superseded == 0
    assert not report.ok
    assert report.summary() == "导入完成：共 10 行，新增 5，更新 0，未变 0，错误 5"

    by_row = {e.row: e for e in report.errors}
    assert by_row[7].ticket_no is None
    assert by_row[7].message == "工单编号: 不能为空"
    assert by_row[8] == RowError(8, "2026112000008", "诉求内容: 不能为空")
    assert by_row[9].message.startswith("联系电话: 电话号码只能包含数字")
    assert by_row[10].ticket_no == "2026112000010"
    assert by_row[10].message.startswith("紧急程度: 未知的紧急程度「特急」")
    assert by_row[11].message == "派单时间: 无法识别的日期时间「明天下午」（可写作 2026-11-20 15:04）"

    first = (await svc.get("2026112000001")).ticket
    assert first["citizen_phone"] == "13800001234"  # a float cell, without ".0"
    assert first["citizen_name"] == "张**"
    assert first["content"] == "小区门口垃圾清运不及时，气味很大"
    assert first["dispatched_at"] == at(2026, 11, 20, 15, 4, 5)
    assert first["kind"] == "regular"
    assert first["request_type"] == "complaint"
    assert first["category"] == "环卫"
    assert first["unit_code"] == "HW"
    assert first["source"] == "import"
    assert first["extra"] == {"ticket_type": "普通工单"}

    second = await svc.get("2026112000002")  # a float ticket number
    assert second.ticket["kind"] == "urgent"
    assert second.ticket["unit_code"] == "SRJG"
    assert second.ticket["routed_by"] == "hotline"
    assert second.ticket["citizen_phone"] == "139 0000 5678"
    assert second.ticket["dispatched_at"] == at(2026, 11, 20, 15, 4)
    assert second.ticket["hotline_deadline"] == at(2026, 11, 27, 17, 30)

    third = (await svc.get("2026112000003")).ticket
    assert third["kind"] == "photo"
    assert third["citizen_phone"] is None
    assert third["dispatched_at"] == at(2026, 11, 21, 8, 30)
    assert (await svc.get("2026112000005")).ticket["request_type"] == "suggestion"
    # an Excel serial in an unformatted cell: 46346.375 = 2026-11-20 09:00
    assert (await svc.get("2026112000012")).ticket["dispatched_at"] == at(2026, 11, 20, 9)

    for no in [*GOOD, *GOOD_TAIL]:
        detail = await svc.get(no)
        names = {d["name"] for d in detail.deadlines}
        assert {"accept", "handle"} <= names, no
        assert all(d["status"] == "open" and d["due_at"] > d["started_at"] for d in detail.deadlines)
    for no in ("2026112000008", "2026112000009", "2026112000010", "2026112000011"):
        with pytest.raises(TicketNotFound):
            await svc.get(no)


async def test_reimport_is_unchanged_and_a_changed_row_updates(
    tmp_path: Path, svc: TicketService, config: BotConfig, store: Store
) -> None:
    path = write_xlsx(tmp_path / "export.xlsx", standard_rows())
    await run(path, svc, config)
    audits = await count(store, audit_log)

    again = await run(path, svc, config)
    assert (again.total, again.created, again.updated, again.unchanged) == (10, 0, 0, 5)
    assert error_rows(again) == [7, 8, 9, 10, 11]
    assert await count(store, audit_log) == audits  # nothing written

    rows = standard_rows()
    changed = dict(GOOD["2026112000001"])
    changed["诉求地址"] = "演示街道幸福路90号"
    rows[0] = changed
    third = await run(write_xlsx(tmp_path / "export2.xlsx", rows), svc, config)
    assert (third.created, third.updated, third.unchanged) == (0, 1, 4)
    detail = await svc.get("2026112000001")
    assert detail.ticket["address"] == "演示街道幸福路90号"
    assert [h["action"] for h in detail.history] == ["dispatch", "update"]


async def test_small_batches_give_the_same_result(tmp_path: Path, svc: TicketService, config: BotConfig) -> None:
    sizes: list[int] = []
    upsert = svc.upsert

    async def spy(inputs: Any, **kwargs: Any) -> Any:
        sizes.append(len(inputs))
        assert kwargs == {"source": "import"}
        return await upsert(inputs, **kwargs)

    svc.upsert = spy  # type: ignore[method-assign]
    report = await run(write_xlsx(tmp_path / "export.xlsx", standard_rows()), svc, config, batch_size=2)
    assert sizes == [2, 2, 1]
    assert (report.created, len(report.errors)) == (5, 5)


async def test_missing_required_header_refuses_the_file(
    tmp_path: Path, svc: TicketService, config: BotConfig, store: Store
) -> None:
    headers = [h for h in HEADERS if h != "诉求内容"]
    path = write_xlsx(tmp_path / "export.xlsx", standard_rows(), headers)
    with pytest.raises(ImportFormatError) as caught:
        await run(path, svc, config)
    message = caught.value.message
    assert "缺少必需的列：诉求内容" in message
    assert "工单编号、标题、诉求地址" in message  # what was found
    assert await count(store, tickets) == 0


async def test_dry_run_writes_nothing_but_previews(
    tmp_path: Path, svc: TicketService, config: BotConfig, store: Store
) -> None:
    path = write_xlsx(tmp_path / "export.xlsx", standard_rows())
    preview = await run(path, svc, config, dry_run=True)
    assert preview.dry_run
    assert (preview.total, preview.created, preview.updated, preview.unchanged) == (10, 5, 0, 0)
    assert error_rows(preview) == [7, 8, 9, 10, 11]
    assert preview.summary().startswith("校验完成（试运行，未写入）：共 10 行，将新增 5")
    assert await count(store, tickets) == 0
    assert await count(store, deadlines) == 0

    await run(path, svc, config)
    rows = standard_rows()
    rows[0] = dict(GOOD["2026112000001"], 紧急程度="紧急")
    again = await run(write_xlsx(tmp_path / "export2.xlsx", rows), svc, config, dry_run=True)
    assert (again.created, again.updated, again.unchanged) == (0, 1, 4)
    assert (await svc.get("2026112000001")).ticket["kind"] == "regular"


# --- CSV -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gb18030"])
async def test_csv_in_both_encodings(tmp_path: Path, svc: TicketService, config: BotConfig, encoding: str) -> None:
    path = write_csv(tmp_path / "export.csv", standard_rows(), encoding)
    if encoding == "gb18030":
        with pytest.raises(UnicodeDecodeError):
            path.read_text(encoding="utf-8")
    report = await run(path, svc, config)
    assert (report.total, report.created) == (10, 5)
    assert error_rows(report) == [7, 8, 9, 10, 11]
    first = (await svc.get("2026112000001")).ticket
    assert first["citizen_phone"] == "13800001234"
    assert first["dispatched_at"] == at(2026, 11, 20, 15, 4, 5)
    assert first["content"] == "小区门口垃圾清运不及时，气味很大"
    assert (await svc.get("2026112000002")).ticket["hotline_deadline"] == at(2026, 11, 27, 17, 30)
    # xlsx and CSV of the same tickets are the same hand-over: re-importing as xlsx changes nothing
    again = await run(write_xlsx(tmp_path / "export.xlsx", standard_rows()), svc, config)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 5)


async def test_csv_float_texts_and_tab_separated(tmp_path: Path, svc: TicketService, config: BotConfig) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "工单编号\t诉求内容\t联系电话\t派单时间\n"
        "2026112000001.0\t垃圾清运不及时\t13800001234.0\t2026年11月20日 15时04分\n"
        "2026112000002\t树木倾斜\t1.38E+10\t2026-11-20\n",
        encoding="utf-8",
    )
    report = await run(path, svc, config)
    assert report.created == 1
    assert (await svc.get("2026112000001")).ticket["citizen_phone"] == "13800001234"
    (error,) = report.errors
    assert error.row == 3
    assert "科学计数法" in error.message


# --- header and layout ---------------------------------------------------------------------------------


async def test_messy_header_title_row_and_other_sheet(tmp_path: Path, svc: TicketService, config: BotConfig) -> None:
    # headers with trailing and full-width spaces; a title row and a blank row above; a note sheet first
    cells = [f"{h} " if i % 2 else f"\u3000{h}" for i, h in enumerate(HEADERS)]
    rows = [GOOD["2026112000001"], BROKEN_ROWS[9]]
    path = write_xlsx(
        tmp_path / "export.xlsx",
        rows,
        header_cells=cells,
        before=[["12345热线工单导出（2026年11月）"], []],
        other_sheet_first=True,
    )
    with pytest.raises(ImportFormatError, match="缺少必需的列"):
        await run(path, svc, config)  # the first sheet is the note
    report = await run(path, svc, config, sheet="工单")
    assert report.created == 1
    assert error_rows(report) == [5]  # title row 1, blank row 2, header row 3
    with pytest.raises(ImportFormatError, match="没有名为「汇总」的工作表；现有：说明、工单"):
        await run(path, svc, config, sheet="汇总")


async def test_unsupported_and_empty_files(tmp_path: Path, svc: TicketService, config: BotConfig) -> None:
    doc = tmp_path / "export.docx"
    doc.write_bytes(b"PK\x03\x04")
    with pytest.raises(ImportFormatError, match="不支持的文件类型"):
        await run(doc, svc, config)
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"not a zip")
    with pytest.raises(ImportFormatError, match="无法读取 Excel 文件"):
        await run(broken, svc, config)
    empty = tmp_path / "empty.csv"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(ImportFormatError, match="没有找到表头"):
        await run(empty, svc, config)
    with pytest.raises(ImportFormatError, match="找不到文件"):
        await run(tmp_path / "nope.xlsx", svc, config)


async def test_header_only_file(tmp_path: Path, svc: TicketService, config: BotConfig) -> None:
    report = await run(write_xlsx(tmp_path / "export.xlsx", []), svc, config)
    assert (report.total, report.created, report.errors) == (0, 0, [])


async def test_duplicate_numbers_last_row_wins(
    tmp_path: Path, svc: TicketService, config: BotConfig, store: Store
) -> None:
    rows: list[dict[str, Any] | None] = [
        ticket("2026112000001", 诉求地址="幸福路1号"),
        ticket("2026112000002"),
        ticket("2026112000003"),
        ticket("2026112000001", 诉求地址="幸福路2号"),  # supersedes row 2, in another batch
    ]
    path = write_xlsx(tmp_path / "export.xlsx", rows)
    report = await run(path, svc, config, batch_size=2)
    assert (report.total, report.created, report.superseded, report.errors) == (4, 3, 1, [])
    assert report.summary().endswith("错误 0，重复编号 1（以最后一行为准）")
    assert (await svc.get("2026112000001")).ticket["address"] == "幸福路2号"
    audits = await count(store, audit_log)
    again = await run(path, svc, config, batch_size=2)
    assert (again.created, again.updated, again.unchanged, again.superseded) == (0, 0, 3, 1)
    assert await count(store, audit_log) == audits


# --- building blocks -----------------------------------------------------------------------------------


def test_read_rows_normalises_cells(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "export.xlsx", standard_rows(), before=[[]])
    rows = list(read_rows(path))
    assert [n for n, _ in rows] == [3, 4, 5, 7, 8, 9, 10, 11, 12, 13]  # blank row 1 above, blank row 6
    number, first = rows[0]
    assert first["工单编号"] == "2026112000001"
    assert first["联系电话"] == 13800001234.0
    assert first["派单时间"] == at(2026, 11, 20, 15, 4, 5)
    assert first["承办单位"] is None
    assert rows[5][1]["诉求内容"] is None  # "   "


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


def test_format_errors_limits() -> None:
    errors = [RowError(i, f"NO{i:04d}" if i % 2 else None, "诉求内容: 不能为空") for i in range(2, 60)]
    report = ImportReport(total=58, created=0, updated=0, unchanged=0, errors=errors, seconds=0.1)
    lines = format_errors(report, limit=3)
    assert lines == [
        "第 2 行: 诉求内容: 不能为空",
        "第 3 行 [NO0003]: 诉求内容: 不能为空",
        "第 4 行: 诉求内容: 不能为空",
        "……另有 55 行错误未列出",
    ]


async def test_unparsable_csv_is_refused_before_any_write(
    tmp_path: Path, svc: TicketService, config: BotConfig, store: Store
) -> None:
    path = tmp_path / "export.csv"
    good = "\n".join(f"20261120{i:05d},垃圾清运不及时" for i in range(50))
    huge = "店招破损" * 40_000  # beyond the csv module's field size limit
    path.write_text(f"工单编号,诉求内容\n{good}\n2026112099999,{huge}\n", encoding="utf-8")
    with pytest.raises(ImportFormatError, match="第 52 行无法解析"):
        await run(path, svc, config, batch_size=10)
    assert await count(store, tickets) == 0


async def test_progress_bar_on_stderr(
    tmp_path: Path, svc: TicketService, config: BotConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    await run(write_xlsx(tmp_path / "export.xlsx", standard_rows()), svc, config, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "10/10" in captured.err
    assert "行" in captured.err


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
