"""bot/hotline/importer/run.py: imports into the ticket service, counted; re-imports change nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.hotline.importer import (
    ImportFormatError,
    ImportInterrupted,
    RowError,
)
from bot.services.tickets import TicketNotFound, TicketService
from config.model import BotConfig
from store.core import Store
from store.models import audit_log, deadlines, tickets
from tests.hotline.importer.support import (
    GOOD,
    GOOD_TAIL,
    HEADERS,
    at,
    count,
    error_rows,
    run,
    standard_rows,
    ticket,
    write_csv,
    write_xlsx,
)


async def test_xlsx_import_counts_errors_and_tickets(tmp_path: Path, svc: TicketService, config: BotConfig) -> None:
    path = write_xlsx(tmp_path / "export.xlsx", standard_rows())
    report = await run(path, svc, config)

    assert (report.total, report.created, report.updated, report.unchanged) == (10, 5, 0, 0)
    assert error_rows(report) == [7, 8, 9, 10, 11]
    assert not report.ok
    assert report.summary() == "导入完成：共 10 行，新增 5，更新 0，未变 0，错误 5"
    assert report.unrecognised == ["备注"]
    assert report.lines()[:2] == ["未识别的列：备注，已忽略", report.summary()]

    by_row = {e.row: e for e in report.errors}
    assert by_row[7].ticket_no is None
    assert by_row[7].message == "工单编号: 不能为空"
    assert by_row[8] == RowError(8, "2026112000008", "诉求内容: 不能为空")
    assert by_row[9].message.startswith("联系电话: 电话号码只能包含数字")
    assert by_row[10].ticket_no == "2026112000010"
    assert by_row[10].message.startswith("紧急程度: 未知的紧急程度「特急」")
    assert by_row[11].message == "派单时间: 无法识别的日期时间「明天下午」（可写作 2026-11-20 15:04）"

    first = (await svc.get("2026112000001")).ticket
    assert first.citizen_phone == "13800001234"  # a float cell, without ".0"
    assert first.citizen_name == "张**"
    assert first.content == "小区门口垃圾清运不及时，气味很大"
    assert first.dispatched_at == at(2026, 11, 20, 15, 4, 5)
    assert first.kind == "regular"
    assert first.request_type == "complaint"
    assert first.category == "环卫"
    assert first.unit_code == "HW"
    assert first.source == "import"
    assert first.extra == {"ticket_type": "普通工单"}

    second = await svc.get("2026112000002")  # a float ticket number
    assert second.ticket.kind == "urgent"
    assert second.ticket.unit_code == "SRJG"
    assert second.ticket.routed_by == "hotline"
    assert second.ticket.citizen_phone == "139 0000 5678"
    assert second.ticket.dispatched_at == at(2026, 11, 20, 15, 4)
    assert second.ticket.hotline_deadline == at(2026, 11, 27, 17, 30)

    third = (await svc.get("2026112000003")).ticket
    assert third.kind == "photo"
    assert third.citizen_phone is None
    assert third.dispatched_at == at(2026, 11, 21, 8, 30)
    assert (await svc.get("2026112000005")).ticket.request_type == "suggestion"
    # an Excel serial in an unformatted cell: 46346.375 = 2026-11-20 09:00
    assert (await svc.get("2026112000012")).ticket.dispatched_at == at(2026, 11, 20, 9)

    for no in [*GOOD, *GOOD_TAIL]:
        detail = await svc.get(no)
        names = {d.name for d in detail.deadlines}
        assert {"accept", "handle"} <= names, no
        assert all(d.status == "open" and d.due_at > d.started_at for d in detail.deadlines)
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
    assert detail.ticket.address == "演示街道幸福路90号"
    assert [h.action for h in detail.history] == ["dispatch", "update"]


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
    assert (await svc.get("2026112000001")).ticket.kind == "regular"


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
    assert first.citizen_phone == "13800001234"
    assert first.dispatched_at == at(2026, 11, 20, 15, 4, 5)
    assert first.content == "小区门口垃圾清运不及时，气味很大"
    assert (await svc.get("2026112000002")).ticket.hotline_deadline == at(2026, 11, 27, 17, 30)
    # xlsx and CSV of the same tickets are the same hand-over: re-importing as xlsx changes nothing
    again = await run(write_xlsx(tmp_path / "export.xlsx", standard_rows()), svc, config)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 5)


async def test_a_repeated_number_is_an_error_of_the_later_row(
    tmp_path: Path, svc: TicketService, config: BotConfig, store: Store
) -> None:
    rows: list[dict[str, Any] | None] = [
        ticket("2026112000001", 诉求地址="幸福路1号"),
        ticket("2026112000002"),
        ticket("2026112000003"),
        ticket("2026112000001", 诉求地址="幸福路2号"),  # row 5: the same number again, in another batch
    ]
    path = write_xlsx(tmp_path / "export.xlsx", rows)
    report = await run(path, svc, config, batch_size=2)
    assert (report.total, report.created) == (4, 3)
    assert report.errors == [RowError(5, "2026112000001", "工单编号: 2026112000001 与第 2 行重复，本行未导入")]
    assert report.summary().endswith("错误 1")
    assert (await svc.get("2026112000001")).ticket.address == "幸福路1号"  # not overwritten
    audits = await count(store, audit_log)
    again = await run(path, svc, config, batch_size=2)
    assert (again.created, again.updated, again.unchanged, len(again.errors)) == (0, 0, 3, 1)
    assert await count(store, audit_log) == audits


async def test_progress_bar_on_stderr(
    tmp_path: Path, svc: TicketService, config: BotConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    await run(write_xlsx(tmp_path / "export.xlsx", standard_rows()), svc, config, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "10/10" in captured.err
    assert "行" in captured.err


async def test_a_failure_part_way_says_what_was_committed_and_a_rerun_carries_on(
    tmp_path: Path, svc: TicketService, config: BotConfig, store: Store
) -> None:
    path = write_xlsx(tmp_path / "export.xlsx", standard_rows())
    upsert = svc.upsert
    calls = 0

    async def failing(inputs: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionError("the database went away")
        return await upsert(inputs, **kwargs)

    svc.upsert = failing  # type: ignore[method-assign]
    with pytest.raises(ImportInterrupted) as caught:
        await run(path, svc, config, batch_size=2)
    assert (caught.value.report.created, caught.value.report.updated) == (2, 0)
    assert caught.value.message().startswith("导入中断：已提交 2 行（新增 2，更新 0）")
    assert await count(store, tickets) == 2
    svc.upsert = upsert  # type: ignore[method-assign]
    again = await run(path, svc, config, batch_size=2)
    assert (again.created, again.unchanged) == (3, 2)
