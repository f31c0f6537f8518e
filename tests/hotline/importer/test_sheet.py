"""bot/hotline/importer/sheet.py: Excel and CSV read, whatever their encoding, title rows or sheets."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.hotline.importer import (
    ImportFormatError,
    read_rows,
)
from bot.services.tickets import TicketService
from config.model import BotConfig
from store.core import Store
from store.models import tickets
from tests.hotline.importer.support import (
    BROKEN_ROWS,
    GOOD,
    HEADERS,
    at,
    count,
    error_rows,
    run,
    standard_rows,
    write_xlsx,
)


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
    assert (await svc.get("2026112000001")).ticket.citizen_phone == "13800001234"
    (error,) = report.errors
    assert error.row == 3
    assert "科学计数法" in error.message


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
