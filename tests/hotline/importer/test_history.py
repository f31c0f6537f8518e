"""An export of the platform's history, on both databases: finished rows imported finished with their times and
results, each deadline met, missed or cancelled as the row says (never a miss a missing column would invent), open
rows never nagged for what was due before the import, and no three-misses counting of history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from bot.domain.clock import FrozenClock
from bot.domain.lifecycle import Action, ActionRequest
from bot.domain.workcal import WorkCalendar
from bot.services.tickets import TicketService
from config.model import BotConfig
from store.core import Store
from store.models import deadline_misses, deadlines, outbox, unit_miss_counts
from tests.engines import deadline_engine
from tests.hotline.importer.support import at, naive, run, write_xlsx

HEADERS = [
    "工单编号",
    "诉求内容",
    "来电人",
    "事发地址",
    "来电号码",
    "承办单位",
    "派单时间",
    "办理状态",
    "接单时间",
    "首次联系时间",
    "办结时间",
    "回访时间",
    "回访结果",
    "满意度",
    "是否解决",
    "承办人",  # not mapped: reported
]
NOW = at(2026, 11, 23, 9)


def row(no: str, dispatched: Any, state: str | None, **cells: Any) -> dict[str, Any]:
    return {
        "工单编号": no,
        "诉求内容": f"人行道路面破损，老人多次绊倒 {no}",
        "来电人": "王秀英",
        "事发地址": "演示街道幸福路88号3室",
        "来电号码": "13800000013",
        "承办单位": "环卫所",
        "派单时间": dispatched,
        "办理状态": state,
        "承办人": "某某",
        **cells,
    }


ROWS: list[dict[str, Any] | None] = [
    # row 2: archived a year ago, every milestone; contact a working day late
    row(
        "2025112000001",
        naive(2025, 11, 20, 10),
        "已归档",
        接单时间=naive(2025, 11, 20, 11),
        首次联系时间=naive(2025, 11, 24, 9),
        办结时间=naive(2025, 11, 25, 16),
        回访时间=naive(2025, 11, 26, 10),
        回访结果="市民表示路面已修好",
        满意度="满意",
        是否解决="已解决",
    ),
    # row 3: finished without a recorded contact, not visited, long ago: closed; the contact missed
    row("2025120100002", naive(2025, 12, 1, 9), "已办结", 接单时间="2025-12-01 10:00", 办结时间="2025-12-05 15:00"),
    # row 4: finished three days ago, not visited: awaits the office's visit
    row("2026111600003", naive(2026, 11, 16, 9), "已办结", 办结时间=naive(2026, 11, 20, 17)),
    # row 5: still waiting for its unit, since June 2025
    row("2025060200004", naive(2025, 6, 2, 9), "待接单"),
    # row 6: a state word nobody configured
    row("2025060200005", naive(2025, 6, 2, 9), "已挂起"),
    # row 7: withdrawn
    row("2025070100006", naive(2025, 7, 1, 9), "已撤销"),
    # row 8: no state word, only a (dissatisfied) visit: closed
    row("2025080400007", naive(2025, 8, 4, 9), None, 回访时间=naive(2025, 8, 6, 10), 满意度="不满意"),
    # row 9: waiting since Friday: its accept deadline is due at the import, its handling deadline later
    row("2026112000008", naive(2026, 11, 20, 9), "待接单"),
]


def deadlines_by_name(detail: Any) -> dict[str, Any]:
    return {d.name.value: d for d in detail.deadlines}


async def test_finished_rows_are_imported_finished_with_their_times(
    tmp_path: Path, svc: TicketService, config: BotConfig
) -> None:
    path = write_xlsx(tmp_path / "history.xlsx", ROWS, HEADERS)
    announced: list[str] = []
    report = await run(path, svc, config, announce=announced.append)
    assert announced == ["未识别的列：承办人，已忽略"]
    assert (report.total, report.created, report.finished) == (8, 7, 5)
    [error] = report.errors
    assert (error.row, error.ticket_no) == (6, "2025060200005")
    assert error.message.startswith("办理状态: 未知的办理状态「已挂起」")

    archived = await svc.get("2025112000001")
    t = archived.ticket
    assert (t.state, t.closed_at, t.satisfaction) == ("closed", at(2025, 11, 26, 10), "satisfied")
    assert (t.visit_note, t.solved, t.visit_solved) == ("市民表示路面已修好", "solved", None)
    assert (t.citizen_name, t.address, t.citizen_phone) == ("王秀英", "演示街道幸福路88号3室", "13800000013")
    d = deadlines_by_name(archived)
    assert (d["accept"].status, d["accept"].met_at) == ("met", at(2025, 11, 20, 11))
    first = d["first_contact"]
    assert (first.status, first.met_at) == ("met", at(2025, 11, 24, 9))
    assert first.met_at is not None
    assert first.met_at > first.due_at  # late, as the row says
    assert (d["handle"].status, d["handle"].met_at) == ("met", at(2025, 11, 25, 16))
    assert d["return_window"].status == "cancelled"
    assert all(x.next_due_at is None for x in archived.deadlines)
    [entry] = archived.history
    assert (entry.action, entry.to_state) == ("dispatch", "closed")
    assert entry.data["history"]["status"] == "closed"
    assert entry.data["history"]["visited_at"] == "2025-11-26T10:00:00+08:00"

    old = await svc.get("2025120100002")
    assert (old.ticket.state, old.ticket.closed_at, old.ticket.satisfaction) == ("closed", at(2025, 12, 5, 15), None)
    d = deadlines_by_name(old)
    assert (d["first_contact"].status, d["first_contact"].met_at) == ("missed", at(2025, 12, 5, 15))
    assert (d["handle"].status, d["accept"].status) == ("met", "met")

    recent = await svc.get("2026111600003")
    assert (recent.ticket.state, recent.ticket.closed_at) == ("submitted", None)
    assert not [x for x in recent.deadlines if x.status == "open"]

    waiting = await svc.get("2025060200004")
    assert waiting.ticket.state == "dispatched"
    assert {x.status for x in waiting.deadlines} == {"open"}
    assert all(x.next_due_at is None for x in waiting.deadlines)  # due long before the import: never nagged

    withdrawn = await svc.get("2025070100006")
    assert (withdrawn.ticket.state, withdrawn.ticket.closed_at) == ("cancelled", at(2025, 7, 1, 9))
    assert {x.status for x in withdrawn.deadlines} == {"cancelled"}

    visited = await svc.get("2025080400007")
    assert (visited.ticket.state, visited.ticket.satisfaction) == ("closed", "dissatisfied")
    d = deadlines_by_name(visited)
    assert (d["handle"].status, d["handle"].met_at) == ("met", at(2025, 8, 6, 10))  # by the visit, in time
    assert d["accept"].status == "cancelled"  # no finish time: not known, never a miss

    friday = deadlines_by_name(await svc.get("2026112000008"))
    assert friday["accept"].next_due_at is None  # due at the import
    assert friday["handle"].next_due_at is not None
    assert friday["handle"].next_due_at > NOW

    again = await run(path, svc, config)
    assert (again.created, again.updated, again.unchanged, len(again.errors)) == (0, 0, 7, 1)


async def test_a_missing_column_never_makes_a_miss(tmp_path: Path, svc: TicketService, config: BotConfig) -> None:
    headers = [h for h in HEADERS if h != "首次联系时间"]
    path = write_xlsx(tmp_path / "history.xlsx", [ROWS[1]], headers)
    report = await run(path, svc, config)
    assert (report.created, report.errors) == (1, [])
    d = deadlines_by_name(await svc.get("2025120100002"))
    assert (d["first_contact"].status, d["first_contact"].met_at) == ("cancelled", None)


async def test_history_is_never_nagged_and_never_counted_against_a_unit(
    tmp_path: Path, store: Store, config: BotConfig, work_calendar: WorkCalendar
) -> None:
    clock = FrozenClock(NOW)
    svc = TicketService(store, config, work_calendar, clock)
    engine = deadline_engine(store, config, work_calendar, clock)
    report = await run(write_xlsx(tmp_path / "history.xlsx", ROWS, HEADERS), svc, config)
    assert report.created == 7
    for when in (NOW, at(2026, 11, 23, 18)):  # before the first reminder of Friday's handling deadline
        clock.set(when)
        assert (await engine.tick()).messages == 0
    assert await _count(store, outbox) == 0
    # a year-old ticket claimed now: its accept deadline is met late, and counts against nobody
    claim = ActionRequest(action=Action.CLAIM, actor="wuhao", at=clock.now())
    await svc.act("2025060200004", claim)
    assert await _count(store, deadline_misses) == 0
    assert await _count(store, unit_miss_counts) == 0
    # what falls due after the import is the bot's: Friday's ticket's handling deadline (27 Nov 09:00)
    clock.set(at(2026, 11, 27, 9, 30))
    result = await engine.tick()
    assert result.messages > 0
    async with store.reading() as conn:
        texts = [str(r["payload"]) for r in (await conn.execute(select(outbox))).mappings()]
    assert all("2026112000008" in text for text in texts)
    clock.set(at(2027, 12, 30, 9))  # a year on: nothing of the history, ever
    await engine.tick()
    async with store.reading() as conn:
        texts = [str(r["payload"]) for r in (await conn.execute(select(outbox))).mappings()]
    assert not any(no in text for text in texts for no in ("2025060200004", "2025112000001", "2025120100002"))


async def _count(store: Store, table: Any) -> int:
    async with store.reading() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def test_a_later_export_brings_a_ticket_forward_never_back(
    tmp_path: Path, svc: TicketService, config: BotConfig
) -> None:
    waiting = row("2026111800009", naive(2026, 11, 18, 9), "待接单")
    await run(write_xlsx(tmp_path / "monday.xlsx", [waiting], HEADERS), svc, config)
    assert (await svc.get("2026111800009")).ticket.state == "dispatched"
    # next week's export: accepted, contacted, finished, visited
    done = row(
        "2026111800009",
        naive(2026, 11, 18, 9),
        "已回访",
        接单时间=naive(2026, 11, 18, 10),
        首次联系时间=naive(2026, 11, 18, 11),
        办结时间=naive(2026, 11, 20, 16),
        回访时间=naive(2026, 11, 21, 10),
        满意度="基本满意",
        是否解决="部分解决",
    )
    report = await run(write_xlsx(tmp_path / "later.xlsx", [done], HEADERS), svc, config)
    assert (report.updated, report.finished) == (1, 1)
    detail = await svc.get("2026111800009")
    t = detail.ticket
    assert (t.state, t.closed_at, t.satisfaction, t.solved) == (
        "closed",
        at(2026, 11, 21, 10),
        "basically_satisfied",
        "partly",
    )
    d = deadlines_by_name(detail)
    assert (d["accept"].status, d["accept"].met_at) == ("met", at(2026, 11, 18, 10))
    assert (d["handle"].status, d["handle"].met_at) == ("met", at(2026, 11, 20, 16))
    assert not [x for x in detail.deadlines if x.status == "open"]
    assert [(h.action, h.from_state, h.to_state) for h in detail.history][-1] == ("update", "dispatched", "closed")
    # the older export again: the ticket stays closed
    again = await run(write_xlsx(tmp_path / "monday-again.xlsx", [waiting], HEADERS), svc, config)
    assert (again.updated, again.unchanged) == (0, 1)  # nothing it says is news
    assert (await svc.get("2026111800009")).ticket.state == "closed"


async def test_nothing_due_before_the_import_is_nagged_whatever_moves_it(
    tmp_path: Path, store: Store, config: BotConfig, work_calendar: WorkCalendar
) -> None:
    clock = FrozenClock(NOW)
    svc = TicketService(store, config, work_calendar, clock)
    engine = deadline_engine(store, config, work_calendar, clock)
    old = row("2025060200004", naive(2025, 6, 2, 9), "待接单")
    await run(write_xlsx(tmp_path / "a.xlsx", [old], HEADERS), svc, config)
    # a later export calls it urgent: its deadlines follow the new policy, still all due long ago
    headers = [*HEADERS, "紧急程度"]
    await run(write_xlsx(tmp_path / "b.xlsx", [{**old, "紧急程度": "紧急"}], headers), svc, config)
    detail = await svc.get("2025060200004")
    assert detail.ticket.kind == "urgent"
    assert all(d.next_due_at is None for d in detail.deadlines)
    # and should anything set a step on one, the engine finishes it without a word
    async with store.transaction() as conn:
        await conn.execute(update(deadlines).values(next_due_at=NOW, stage=0))
    result = await engine.tick()
    assert (result.due, result.messages, result.misses) == (len(detail.deadlines), 0, 0)
    assert await _count(store, outbox) == 0
    assert all(d.next_due_at is None for d in (await svc.get("2025060200004")).deadlines)
