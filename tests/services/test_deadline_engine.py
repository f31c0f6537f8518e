"""The deadline engine against real databases (SQLite and PostgreSQL): time travel with a frozen clock through the
reminders, the overdue notice and the escalation; the service window, quiet hours and the duty officer; digests;
claims that stop the reminders; restarts and crashes; two engines at once; three misses."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.domain.clock import TZ, FrozenClock
from bot.domain.lifecycle import Action, ActionRequest
from bot.domain.ticket import TicketInput
from bot.domain.workcal import WorkCalendar
from bot.services import deadline_engine
from bot.services.channels import Channels
from bot.services.deadline_engine import DeadlineEngine, TickResult
from bot.services.duty import DutyService
from bot.services.tickets import TicketService
from config.model import BotConfig
from config.vocabulary import TicketKind
from notifiers.rows import EngineRows
from notifiers.wecom import WECOM_APP, WECOM_APPCHAT
from store import nags as nag_store
from store.core import Store
from store.db import create_engine
from store.models import deadlines, outbox, tickets, unit_miss_counts

CHANNELS = Channels(app=True)  # groups by appchat (the sandbox's chatids), members by the app
SRJG, HW, RXB = "sandbox-srjg", "sandbox-hw", "sandbox-rxb"
MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=TZ)


def sign(no: str, **fields: Any) -> TicketInput:
    """A shop-sign ticket: routed to 市容景观所 (SRJG) by keyword, no 三个二 (no category): accept and first contact
    1wd, return window 2wd, handle 5wd."""
    base: dict[str, Any] = {
        "ticket_no": no,
        "content": "店招松动 13812345678 存在坠落风险，请尽快处理",
        "citizen_name": "张先生",
        "citizen_phone": "13812345678",
    }
    base.update(fields)
    return TicketInput(**base)


Make = Callable[..., DeadlineEngine]


@pytest.fixture
def make_engine(store: Store, sandbox_config: BotConfig, calendar: WorkCalendar, clock: FrozenClock) -> Make:
    def make(config: BotConfig | None = None, *, on: Store | None = None, batch: int | None = None) -> DeadlineEngine:
        config = config or sandbox_config
        target = on or store
        duty = DutyService(target, config, clock)
        return DeadlineEngine(
            target, config, calendar, clock, duty=duty, rows=EngineRows(config, CHANNELS), batch=batch
        )

    return make


@pytest.fixture
def engine(make_engine: Make) -> DeadlineEngine:
    return make_engine()


async def tick(engine: DeadlineEngine, clock: FrozenClock, when: datetime) -> TickResult:
    clock.set(when)
    return await engine.tick()


async def queued(store: Store, since: int = 0) -> list[dict[str, Any]]:
    async with store.reading() as conn:
        rows = await conn.execute(select(outbox).where(outbox.c.id > since).order_by(outbox.c.id))
        return [dict(r) for r in rows.mappings()]


async def last_id(store: Store) -> int:
    rows = await queued(store)
    return rows[-1]["id"] if rows else 0


def text(row: dict[str, Any]) -> str:
    return str(row["payload"]["markdown"]["content"])


def to_group(rows: list[dict[str, Any]], chatid: str) -> list[str]:
    return [text(r) for r in rows if r["channel"] == WECOM_APPCHAT and r["destination"] == chatid]


def to_member(rows: list[dict[str, Any]], userid: str) -> list[str]:
    return [text(r) for r in rows if r["channel"] == WECOM_APP and r["destination"] == userid]


def audience(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(r["destination"] for r in rows)


async def deadline(store: Store, no: str, name: str) -> dict[str, Any]:
    async with store.reading() as conn:
        row = (
            (
                await conn.execute(
                    select(deadlines)
                    .join(tickets, tickets.c.id == deadlines.c.ticket_id)
                    .where(tickets.c.ticket_no == no, deadlines.c.name == name)
                    .order_by(deadlines.c.cycle.desc())
                )
            )
            .mappings()
            .first()
        )
    assert row is not None
    return dict(row)


async def act(service: TicketService, clock: FrozenClock, no: str, action: Action, actor: str, when: datetime) -> None:
    clock.set(when)
    await service.act(no, ActionRequest(action=action, actor=actor, at=when))


# --- planning ------------------------------------------------------------------------------------------------------


async def test_planning_sets_the_first_point_and_the_return_window_gets_none(
    service: TicketService, store: Store
) -> None:
    await service.upsert([sign("A1")])
    accept = await deadline(store, "A1", "accept")
    assert (accept["stage"], accept["next_due_at"]) == (0, at(23, 21))  # half of the working day
    handle = await deadline(store, "A1", "handle")
    assert (handle["stage"], handle["next_due_at"]) == (0, at(25, 21))  # half of five working days
    window = await deadline(store, "A1", "return_window")
    assert (window["stage"], window["next_due_at"]) == (0, None)


async def test_a_ticket_planned_late_skips_the_reminders_gone_by(service: TicketService, store: Store) -> None:
    await service.upsert([sign("A2", dispatched_at=at(20, 9))])  # Friday's ticket, handed over on Monday 09:00
    accept = await deadline(store, "A2", "accept")
    # due Monday 09:00, now: the reminders are gone, the overdue notice is due at once
    assert (accept["stage"], accept["next_due_at"]) == (3, at(23, 9))


async def test_a_rescheduled_deadline_starts_its_reminders_over(
    service: TicketService, engine: DeadlineEngine, store: Store, clock: FrozenClock
) -> None:
    await service.upsert([sign("A3")])
    await tick(engine, clock, at(25, 21))  # half of the 5 working days: the handle reminder
    assert (await deadline(store, "A3", "handle"))["stage"] == 1
    clock.set(at(25, 21, 30))
    [outcome] = await service.upsert([sign("A3", kind=TicketKind.URGENT)])  # urgent: handle 3wd, due Thursday 09:00
    assert "kind" in outcome.changed
    handle = await deadline(store, "A3", "handle")
    assert handle["due_at"] == at(26, 9)
    # 50 % and 80 % of the new time are past: the next is an hour before the new due time
    assert (handle["stage"], handle["next_due_at"]) == (2, at(26, 8))


async def test_rows_planned_before_the_engine_get_their_overdue_notice_and_windows_nothing(
    service: TicketService, engine: DeadlineEngine, store: Store, clock: FrozenClock
) -> None:
    await service.upsert([sign("A4")])
    async with store.transaction() as conn:  # as the ticket service planned them before: next_due_at = due_at
        await conn.execute(deadlines.update().values(next_due_at=deadlines.c.due_at, stage=0))
    result = await tick(engine, clock, at(25, 9, 5))  # the return window's end (2wd) and the accept deadline's
    assert (await deadline(store, "A4", "return_window"))["next_due_at"] is None
    [group] = to_group(await queued(store), SRJG)
    assert "接单、先行联系 11-24 09:00（已超时 1天）" in group
    assert "退单" not in group
    assert result.items == 2


# --- the steps -----------------------------------------------------------------------------------------------------


async def test_a_reminder_goes_to_the_group_once_with_masked_text_and_mentions(
    service: TicketService, engine: DeadlineEngine, store: Store, clock: FrozenClock
) -> None:
    await service.upsert([sign("B1")])
    assert (await tick(engine, clock, at(23, 20, 59))).messages == 0
    result = await tick(engine, clock, at(23, 21))
    assert (result.due, result.moved, result.items, result.messages) == (2, 2, 2, 1)
    rows = await queued(store)
    [message] = to_group(rows, SRJG)
    assert audience(rows) == [SRJG]  # unclaimed: nobody privately yet
    assert "【时限提醒】市容景观所" in message
    assert "B1 店招松动 138＊＊＊＊5678" in message
    assert "13812345678" not in message
    assert "接单、先行联系 11-24 09:00（还剩 12小时）" in message  # the two deadlines due together: one line
    assert "待接单" in message
    assert message.endswith("<@sunlei> <@zhouting>")  # the emergency team, for an unclaimed ticket
    # the same tick again, or a later one before the next point: nothing more
    assert (await tick(engine, clock, at(23, 21))).messages == 0
    assert (await tick(engine, clock, at(24, 4, 11))).messages == 0
    accept = await deadline(store, "B1", "accept")
    assert (accept["stage"], accept["next_due_at"]) == (1, at(24, 4, 12))


async def test_the_whole_escalation_chain_then_silence(
    service: TicketService, engine: DeadlineEngine, store: Store, clock: FrozenClock
) -> None:
    await service.upsert([sign("C1")])
    await tick(engine, clock, at(23, 21))
    seen: dict[str, list[str]] = {}
    for when in [at(24, 7), at(24, 8), at(24, 9), at(24, 11), at(24, 13), at(24, 15), at(24, 17), at(24, 19)]:
        since = await last_id(store)
        await tick(engine, clock, when)
        seen[when.strftime("%H:%M")] = audience(await queued(store, since))
    assert seen == {
        "07:00": [SRJG],  # 80 %: 04:12 was outside the window, and quiet hours end at 07:00
        "08:00": [SRJG],  # an hour before
        "09:00": [SRJG, "sunlei", "zhouting"],  # overdue: the group, and level 1 (unclaimed: the emergency team)
        "11:00": ["chenjing", "sunlei"],  # level 2: the unit head and deputy
        "13:00": ["lilei"],  # level 3: the center lead
        "15:00": ["chenjing", "lilei", "sunlei", "zhouting"],  # repeats go to every level
        "17:00": ["chenjing", "lilei", "sunlei", "zhouting"],
        "19:00": ["chenjing", "lilei", "sunlei", "zhouting"],
    }
    rows = await queued(store)
    assert "已超时（1 件）" in to_group(rows, SRJG)[3]  # 21:00, 07:00, 08:00, then 09:00
    assert "接单、先行联系 11-24 09:00（已超时 2小时）" in to_member(rows, "chenjing")[0]
    assert "超时督办" in to_member(rows, "chenjing")[0]
    assert "市容景观所" in to_member(rows, "chenjing")[0]
    assert "你负责的工单已超时" in to_member(rows, "zhouting")[0]
    for name in ("accept", "first_contact"):
        row = await deadline(store, "C1", name)
        assert (row["stage"], row["next_due_at"]) == (9, None)
    since = await last_id(store)
    assert (await tick(engine, clock, at(24, 23, 59))).messages == 0
    assert await queued(store, since) == []


async def test_claiming_and_contacting_stop_the_reminders(
    service: TicketService, engine: DeadlineEngine, store: Store, clock: FrozenClock
) -> None:
    await service.upsert([sign("D1")])
    await tick(engine, clock, at(23, 21))
    await act(service, clock, "D1", Action.CLAIM, "zhouting", at(23, 21, 30))
    since = await last_id(store)
    await tick(engine, clock, at(24, 7))
    rows = await queued(store, since)
    assert audience(rows) == [SRJG, "zhouting"]  # the handler now: @-mentioned and privately
    [group] = to_group(rows, SRJG)
    assert "先行联系 11-24 09:00" in group
    assert "接单" not in group.split("先行联系")[0].split("D1")[1]
    assert "承办人 周婷" in group
    assert group.endswith("<@zhouting>")
    assert "你负责的工单临近时限" in to_member(rows, "zhouting")[0]
    await act(service, clock, "D1", Action.CONTACT, "zhouting", at(24, 7, 30))
    since = await last_id(store)
    for when in [at(24, 8), at(24, 9), at(24, 11), at(24, 19)]:
        await tick(engine, clock, when)
    assert await queued(store, since) == []
    assert (await deadline(store, "D1", "first_contact"))["next_due_at"] is None
    # the handling deadline still has its own reminders
    await tick(engine, clock, at(25, 21))
    assert audience(await queued(store, since)) == [SRJG, "zhouting"]


async def test_a_tick_that_read_a_deadline_before_a_claim_changes_nothing_after_it(
    service: TicketService, store: Store, clock: FrozenClock
) -> None:
    await service.upsert([sign("D2")])
    clock.set(at(23, 21))
    async with store.reading() as conn:
        read = await nag_store.due_deadlines(conn, clock.now(), limit=10)
    assert {r.name for r in read} == {"accept", "first_contact"}
    await act(service, clock, "D2", Action.CLAIM, "zhouting", at(23, 21))  # the claim commits in between
    moves = [
        {"id": r.id, "stage": r.stage, "next_due_at": r.next_due_at, "new_stage": 1, "new_next": at(24, 4)}
        for r in read
    ]
    async with store.transaction() as conn:
        moved = await nag_store.advance(conn, moves)
    accept = await deadline(store, "D2", "accept")
    assert accept["id"] not in moved  # met meanwhile: the guard (still open, same stage and time) refuses it
    assert len(moved) == 1  # first contact is still open and unchanged
    assert (accept["status"], accept["next_due_at"]) == ("met", None)


async def test_outside_the_window_routine_steps_wait_and_go_out_together(
    service: TicketService, engine: DeadlineEngine, store: Store, clock: FrozenClock
) -> None:
    # a 环卫 ticket at 23:00 (三个二): contact within 20 minutes, on site within 2 hours; quiet hours from 22:00
    clock.set(at(23, 23))
    await service.upsert([TicketInput(ticket_no="E1", content="垃圾桶满溢", category="环卫")])
    for when in [at(23, 23, 10), at(23, 23, 20), at(24, 1, 20), at(24, 6, 30)]:
        result = await tick(engine, clock, when)
        assert result.messages == 0
    assert result.waiting == 0  # 06:30 is not a time it was due: nothing read
    contact = await deadline(store, "E1", "contact_20m")
    assert (contact["stage"], contact["next_due_at"]) == (0, at(24, 7))  # 50 % still the next step: nothing skipped
    result = await tick(engine, clock, at(24, 7))
    rows = await queued(store)
    # one message per audience, everything that came due in the night together
    assert Counter(r["destination"] for r in rows) == {HW: 1, "wuhao": 1, "huangqiang": 1, "lilei": 1}
    [group] = to_group(rows, HW)
    assert "20分钟联系 11-23 23:20（已超时 7小时40分）" in group
    assert "2小时到场 11-24 01:00（已超时 6小时）" in group
    contact = await deadline(store, "E1", "contact_20m")
    # 23:20 overdue, 01:20 / 03:20 escalation, 05:20 the first repeat: taken; the next repeat at 07:20
    assert (contact["stage"], contact["next_due_at"]) == (6, at(24, 7, 20))


async def test_urgent_tickets_outside_the_window_go_to_the_duty_officer(
    service: TicketService, engine: DeadlineEngine, store: Store, clock: FrozenClock
) -> None:
    clock.set(at(24, 1))  # Tuesday 01:00: outside the window; 赵敏 is on the Monday night shift (17:00-09:00)
    await service.upsert(
        [
            TicketInput(ticket_no="F1", content="景观灯杆倾斜", category="市容景观", kind=TicketKind.URGENT),
            TicketInput(ticket_no="F2", content="店招褪色", category="市容景观"),  # routine: waits
        ]
    )
    await tick(engine, clock, at(24, 1, 10))
    rows = await queued(store)
    assert audience(rows) == ["zhaomin"]
    [duty] = to_member(rows, "zhaomin")
    assert "值班：受理时段外的紧急工单（1 件）" in duty
    assert "F1 景观灯杆倾斜｜市容景观所｜20分钟联系 11-24 01:20（还剩 10分钟）｜待接单" in duty
    assert rows[0]["priority"] == 0  # urgent
    assert (await deadline(store, "F2", "contact_20m"))["next_due_at"] == at(24, 1, 20)  # looks at its due time


async def test_urgent_tickets_in_quiet_hours_inside_the_window_go_as_by_day(
    service: TicketService, engine: DeadlineEngine, store: Store, clock: FrozenClock
) -> None:
    clock.set(at(23, 22, 30))  # quiet hours, but inside the 06:00-24:00 window
    await service.upsert(
        [TicketInput(ticket_no="F3", content="景观灯杆倾斜", category="市容景观", kind=TicketKind.SEMI_URGENT)]
    )
    await tick(engine, clock, at(23, 22, 40))
    assert audience(await queued(store)) == [SRJG]


async def test_with_nobody_on_duty_an_urgent_step_waits_for_the_window(
    service: TicketService, make_engine: Make, store: Store, clock: FrozenClock, sandbox_config: BotConfig
) -> None:
    config = BotConfig.model_validate({**sandbox_config.model_dump(by_alias=True), "duty_roster": []})
    engine = make_engine(config)
    clock.set(at(24, 1))
    await service.upsert(
        [TicketInput(ticket_no="F4", content="景观灯杆倾斜", category="市容景观", kind=TicketKind.URGENT)]
    )
    result = await tick(engine, clock, at(24, 1, 10))
    assert (result.messages, result.waiting) == (0, 1)
    await tick(engine, clock, at(24, 7))
    assert SRJG in audience(await queued(store))


async def test_many_reminders_for_one_group_are_one_message(
    service: TicketService, engine: DeadlineEngine, store: Store, clock: FrozenClock
) -> None:
    await service.upsert(
        [sign(f"G{i}") for i in range(5)] + [TicketInput(ticket_no="G9", content="垃圾清运不及时 店铺门口")]
    )
    await act(service, clock, "G0", Action.CLAIM, "zhouting", at(23, 10))
    await act(service, clock, "G1", Action.CLAIM, "zhouting", at(23, 10))
    await tick(engine, clock, at(23, 21))
    rows = await queued(store)
    assert Counter(r["destination"] for r in rows) == {SRJG: 1, HW: 1, "zhouting": 1}
    [group] = to_group(rows, SRJG)
    assert "临近时限（5 件）" in group
    assert group.count("· G") == 5
    [private] = to_member(rows, "zhouting")
    assert private.count("· G") == 2  # first contact of the two claimed tickets


async def test_a_digest_too_long_for_one_message_says_how_many_more(
    service: TicketService, engine: DeadlineEngine, store: Store, clock: FrozenClock
) -> None:
    await service.upsert([sign(f"H{i:02d}") for i in range(40)])
    await tick(engine, clock, at(23, 21))
    [group] = to_group(await queued(store), SRJG)
    shown = group.count("· H")
    assert 5 < shown < 40  # a masked number's full-width stars take 3 bytes each
    assert f"……另有 {40 - shown} 件" in group
    assert len(group.encode()) <= 2000


# --- restarts, crashes, two engines --------------------------------------------------------------------------------


async def test_a_new_engine_continues_where_the_last_one_stopped(
    service: TicketService, make_engine: Make, store: Store, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await service.upsert([sign("K1")])
    await tick(make_engine(), clock, at(23, 21))
    # the next engine crashes in the middle of its tick, before its commit: nothing of it stays
    crashing = make_engine()

    async def crash(*_args: object, **_kwargs: object) -> None:
        raise ConnectionError("the process died")

    monkeypatch.setattr(deadline_engine.outbox_repo, "enqueue", crash)
    with pytest.raises(ConnectionError):
        await tick(crashing, clock, at(24, 7))
    monkeypatch.undo()
    assert (await deadline(store, "K1", "accept"))["stage"] == 1
    assert len(await queued(store)) == 1
    # a restarted process: the 80 % reminder once, then the next step, nothing repeated, nothing lost
    restarted = make_engine()
    await tick(restarted, clock, at(24, 7))
    await tick(restarted, clock, at(24, 7))
    await tick(make_engine(), clock, at(24, 8))
    assert audience(await queued(store)) == [SRJG, SRJG, SRJG]


async def test_the_same_notice_queued_twice_is_sent_once(
    service: TicketService, engine: DeadlineEngine, store: Store, clock: FrozenClock
) -> None:
    """Steps taken a second time, read in the other order (as by a process that read them before the advance),
    queue nothing new: a notice's key follows what it says, not the order its lines were gathered in."""
    await service.upsert([sign("K2"), sign("K3")])
    async with store.reading() as conn:
        before = list((await conn.execute(select(deadlines.c.id, deadlines.c.stage, deadlines.c.next_due_at))).all())
    when = at(23, 21)
    due = sorted((r for r in before if r.next_due_at and r.next_due_at <= when), key=lambda r: (r.next_due_at, r.id))
    assert len(due) >= 2
    await tick(engine, clock, when)
    sent = await queued(store)
    assert sent
    async with store.transaction() as conn:
        for row in before:
            await conn.execute(
                deadlines.update().where(deadlines.c.id == row.id).values(stage=row.stage, next_due_at=row.next_due_at)
            )
        for position, row in enumerate(due):  # the first read becomes the last
            moved = when - timedelta(minutes=1 + position)
            await conn.execute(deadlines.update().where(deadlines.c.id == row.id).values(next_due_at=moved))
    again = await tick(engine, clock, when)
    assert again.items  # the steps were taken again
    assert await queued(store) == sent


@pytest.fixture
async def second_store(database_url: str) -> AsyncIterator[Store]:
    """Another process's store on the same database (PostgreSQL only: SQLite is one process)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("two engine processes need PostgreSQL; SQLite is the single-process default")
    engine = create_engine(database_url)
    other = Store(engine)
    yield other
    await engine.dispose()


async def test_two_engines_ticking_at_once_send_each_reminder_once(
    service: TicketService, make_engine: Make, store: Store, second_store: Store, clock: FrozenClock
) -> None:
    await service.upsert([sign(f"M{i:02d}") for i in range(30)])
    engines = [make_engine(batch=4), make_engine(on=second_store, batch=4)]
    for when in [at(23, 21), at(24, 7), at(24, 8), at(24, 9)]:
        clock.set(when)
        results = await asyncio.gather(*(e.tick(when) for e in engines))
        assert sum(r.moved for r in results) == 60  # accept and first contact of 30 tickets, each by one engine
    rows = await queued(store)
    # a ticket's two deadlines may be taken by different engines (a line in each one's message): count reminders
    reminded: Counter[tuple[str, str]] = Counter()
    for row in rows:
        if row["destination"] != SRJG:
            continue
        for line in text(row).splitlines():
            if line.startswith("· "):
                number, deadlines_part = line.split()[1], line.split("｜")[1]
                for part in deadlines_part.split("；"):
                    reminded.update((number, name) for name in part.split(" ")[0].split("、"))
    # 50 %, 80 %, 1 h before, overdue: each once, for each deadline
    assert reminded == {(f"M{i:02d}", name): 4 for i in range(30) for name in ("接单", "先行联系")}
    assert len({r["idempotency_key"] for r in rows}) == len(rows)


# --- three misses --------------------------------------------------------------------------------------------------


async def test_three_missed_accept_deadlines_flag_the_unit_once(
    service: TicketService, engine: DeadlineEngine, store: Store, clock: FrozenClock
) -> None:
    await service.upsert([sign("N1"), sign("N2")])
    clock.set(at(23, 10))
    await service.upsert([sign("N3"), sign("N4")])
    await act(service, clock, "N4", Action.CLAIM, "zhouting", at(23, 11))  # on time: no miss
    result = await tick(engine, clock, at(24, 9, 30))  # N1, N2 missed (N3 is due at 10:00)
    assert (result.misses, result.flags) == (2, 0)
    # N3 is claimed late before the engine sees it: the claim counts the miss, the next tick flags
    await act(service, clock, "N3", Action.CLAIM, "zhouting", at(24, 10, 5))
    since = await last_id(store)
    result = await tick(engine, clock, at(24, 10, 5))
    assert result.flags == 1
    rows = await queued(store, since)
    flags = [r for r in rows if r["idempotency_key"].startswith("three-misses:")]
    assert audience(flags) == [RXB, "wangfang", "zhangwei"]  # the office's group and the dispatchers
    message = to_group(flags, RXB)[0]
    assert "【未按时接单】市容景观所" in message
    assert "2026年11–12月已有 3 次未按时接单" in message
    assert all(f"· N{i} 接单时限" in message for i in (1, 2, 3))
    # a fourth miss in the same period: counted, not flagged again
    clock.set(at(24, 11))
    await service.upsert([sign("N5")])
    result = await tick(engine, clock, at(25, 11, 1))
    assert (result.misses, result.flags) == (1, 0)
    async with store.reading() as conn:
        [count] = (await conn.execute(select(unit_miss_counts))).mappings().all()
    assert (count["unit_code"], count["misses"]) == ("SRJG", 4)


async def test_a_miss_at_night_is_counted_then_and_flagged_when_the_window_opens(
    service: TicketService, engine: DeadlineEngine, store: Store, clock: FrozenClock
) -> None:
    clock.set(at(24, 2))  # Tuesday 02:00: the accept deadlines fall due on Wednesday 02:00
    await service.upsert([sign(f"P{i}") for i in range(3)])
    await tick(engine, clock, at(24, 14))  # 50 %
    await tick(engine, clock, at(25, 0, 30))  # 80 % at 21:12 ... (quiet: waits)
    result = await tick(engine, clock, at(25, 2))  # the due time: looked at although quiet
    assert (result.misses, result.flags, result.messages) == (3, 0, 0)
    await act(service, clock, "P0", Action.CLAIM, "zhouting", at(25, 2, 10))  # claimed late: counted once only
    result = await tick(engine, clock, at(25, 7))
    assert result.flags == 1
    async with store.reading() as conn:
        [count] = (await conn.execute(select(unit_miss_counts))).mappings().all()
    assert count["misses"] == 3
