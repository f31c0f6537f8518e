"""The lists and figures behind /我的, /待办, /逾期 and /统计, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from bot.domain.clock import TZ, FrozenClock
from bot.domain.lifecycle import Action, ActionRequest, VisitResult
from bot.domain.ticket import TicketInput
from bot.domain.workcal import WorkCalendar
from bot.services.tickets import TicketService
from config.model import BotConfig
from handlers.queries import (
    Figures,
    my_open_tickets,
    overdue_tickets,
    quick_figures,
    unit_figures,
    unit_open_tickets,
)
from store.core import Store
from store.db import create_engine, migrate

MON = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)  # the clock fixture's time
TUE_0830 = datetime(2026, 11, 24, 8, 30, tzinfo=TZ)
THU_1000 = datetime(2026, 11, 26, 10, 0, tzinfo=TZ)


def no(n: int) -> str:
    return f"20261123000{n:02d}"


def ticket(n: int, category: str | None = "环卫", content: str = "垃圾桶满溢", **fields: object) -> TicketInput:
    return TicketInput(ticket_no=no(n), content=content, category=category, **fields)  # type: ignore[arg-type]


async def setup(service: TicketService, clock: FrozenClock) -> None:
    """HW (环卫所: huangqiang, wuhao) and SRJG (市容景观所) tickets in every situation the lists tell apart.

    1 wuhao's, claimed, dispatched 08:00: 三个二 contact in 20 minutes due 08:20, overdue at 09:00
    2 wuhao's, claimed and contacted (no 三个二): next the handling deadline, Mon 30th; the return window
      (Wed 09:00) comes earlier but is a window, not a deadline
    3 wuhao's, submitted: open, no open deadline
    4 huangqiang's, claimed: contact due 09:20
    5 unclaimed: contact due 09:20
    6 unclaimed, dispatched Friday 10:00 (no 三个二): accept and first contact due Mon 10:00
    7 SRJG, unclaimed: contact due 09:20
    8 wuhao's, closed today · 9 returned (approved): back with the office, deadlines cancelled
    10 closed yesterday · 11 cancelled today
    """
    now = clock.now()
    await service.upsert(
        [
            ticket(1, dispatched_at=now - timedelta(hours=1)),
            ticket(2, category=None, content="公厕无人打扫"),
            ticket(3),
            ticket(4),
            ticket(5),
            ticket(6, category=None, dispatched_at=datetime(2026, 11, 20, 10, 0, tzinfo=TZ)),
            ticket(7, category="市容景观", content="店招破损"),
            ticket(8),
            ticket(9),
            ticket(10),
            ticket(11),
        ]
    )

    async def act(n: int, action: Action, actor: str, at: datetime = now, **kw: object) -> None:
        await service.act(no(n), ActionRequest(action=action, actor=actor, at=at, **kw))  # type: ignore[arg-type]

    await act(1, Action.CLAIM, "wuhao")
    await act(2, Action.CLAIM, "wuhao")
    await act(2, Action.CONTACT, "wuhao")
    await act(3, Action.SUBMIT, "wuhao", note="已清运")
    await act(4, Action.CLAIM, "huangqiang")
    await act(8, Action.SUBMIT, "wuhao", note="已清运")
    await act(8, Action.VISIT, "zhangwei", result=VisitResult.SATISFIED)
    await act(9, Action.REQUEST_RETURN, "huangqiang", note="非本所职责", unit="SRJG")
    await act(9, Action.APPROVE_RETURN, "zhangwei")
    yesterday = now - timedelta(days=1)
    await act(10, Action.SUBMIT, "huangqiang", at=yesterday, note="已清运")
    await act(10, Action.VISIT, "zhangwei", at=yesterday, result=VisitResult.SATISFIED)
    await act(11, Action.CANCEL, "zhangwei")


def numbers(rows: list) -> list[int]:  # type: ignore[type-arg]
    return [int(r.ticket_no[-2:]) for r in rows]


async def test_my_open_tickets_with_their_next_deadline(
    service: TicketService, store: Store, clock: FrozenClock
) -> None:
    await setup(service, clock)
    rows = await my_open_tickets(store, "wuhao")
    assert numbers(rows) == [1, 2, 3]  # nearest deadline first; none last
    first, second, third = rows
    assert (first.deadline_name, first.deadline_due_at) == ("contact_20m", datetime(2026, 11, 23, 8, 20, tzinfo=TZ))
    assert (second.deadline_name, second.deadline_due_at) == ("handle", datetime(2026, 11, 30, 9, 0, tzinfo=TZ))
    assert (third.state, third.deadline_name, third.deadline_due_at) == ("submitted", None, None)
    assert first.deadline_due_at.tzinfo is not None
    assert (first.state, first.unit_code, first.handler_userid, first.title) == (
        "claimed",
        "HW",
        "wuhao",
        None,
    )
    assert first.content == "垃圾桶满溢"
    # a list goes to work groups: no citizen's phone (the name and address only to mask them in the text)
    assert not hasattr(first, "citizen_phone")
    assert numbers(await my_open_tickets(store, "huangqiang")) == [4]
    assert await my_open_tickets(store, "nobody") == []
    assert numbers(await my_open_tickets(store, "wuhao", limit=2)) == [1, 2]


async def test_unit_open_tickets_unclaimed_first_then_by_deadline(
    service: TicketService, store: Store, clock: FrozenClock
) -> None:
    await setup(service, clock)
    rows = await unit_open_tickets(store, ["HW"])
    # unclaimed 5 (09:20), 6 (10:00); then 1 (08:20), 4 (09:20), 2 (Mon 30th), 3 (none);
    # not 8 (closed), 9 (returned: the office's now), 10, 11, nor SRJG's 7
    assert numbers(rows) == [5, 6, 1, 4, 2, 3]
    by_no = {int(r.ticket_no[-2:]): r for r in rows}
    assert by_no[5].deadline_name == "contact_20m"
    assert by_no[5].deadline_due_at == datetime(2026, 11, 23, 9, 20, tzinfo=TZ)
    assert by_no[6].deadline_name in ("accept", "first_contact")
    assert by_no[6].deadline_due_at == datetime(2026, 11, 23, 10, 0, tzinfo=TZ)
    assert numbers(await unit_open_tickets(store, ["HW"], limit=3)) == [5, 6, 1]
    # two units: SRJG's unclaimed 7 (09:20) after HW's 5 (09:20, older)
    assert numbers(await unit_open_tickets(store, ["SRJG", "HW"])) == [5, 7, 6, 1, 4, 2, 3]
    assert numbers(await unit_open_tickets(store, ["SRJG"])) == [7]
    assert await unit_open_tickets(store, []) == []
    assert await unit_open_tickets(store, ["RXB"]) == []


async def test_overdue_tickets(service: TicketService, store: Store, clock: FrozenClock) -> None:
    await setup(service, clock)
    [row] = await overdue_tickets(store, ["HW"], MON)
    assert (int(row.ticket_no[-2:]), row.deadline_name) == (1, "contact_20m")
    assert row.deadline_due_at == datetime(2026, 11, 23, 8, 20, tzinfo=TZ)
    assert await overdue_tickets(store, None, MON - timedelta(hours=2)) == []
    # the next morning: the longest overdue first
    assert numbers(await overdue_tickets(store, ["HW"], TUE_0830)) == [1, 4, 5, 6]
    assert numbers(await overdue_tickets(store, None, TUE_0830)) == [1, 4, 5, 7, 6]
    assert numbers(await overdue_tickets(store, None, TUE_0830, limit=2)) == [1, 4]
    assert numbers(await overdue_tickets(store, ["SRJG"], TUE_0830)) == [7]
    assert await overdue_tickets(store, [], TUE_0830) == []
    # Thursday: 2's return window (Wed 09:00) has passed, yet it is not overdue (handling is due Mon 30th);
    # 3 (submitted), 9 (returned) and the closed ones have no open deadline
    assert 2 not in numbers(await overdue_tickets(store, None, THU_1000))
    # 9's return was approved on Monday and it still waits for its new unit: the office's review (due Tuesday) is
    # overdue for the office, and for no unit
    assert numbers(await overdue_tickets(store, None, THU_1000)) == [1, 4, 5, 7, 6, 9]
    assert numbers(await overdue_tickets(store, ["HW"], THU_1000)) == [1, 4, 5, 6]


async def test_quick_figures(service: TicketService, store: Store, clock: FrozenClock) -> None:
    await setup(service, clock)
    # HW's own: 1-6 open (not 9, returned), 5 and 6 unclaimed, 1 overdue; 8 closed today (10 yesterday,
    # 11 cancelled)
    assert await quick_figures(store, ["HW"], MON) == Figures(open=6, unclaimed=2, overdue=1, closed_today=1)
    # the whole office: 9 (returned) is still open
    assert await quick_figures(store, None, MON) == Figures(open=8, unclaimed=3, overdue=1, closed_today=1)
    assert await quick_figures(store, ["SRJG"], MON) == Figures(open=1, unclaimed=1, overdue=0, closed_today=0)
    assert await quick_figures(store, ["HW", "SRJG"], TUE_0830) == Figures(
        open=7, unclaimed=3, overdue=5, closed_today=0
    )
    assert await quick_figures(store, [], MON) == Figures(open=0, unclaimed=0, overdue=0, closed_today=0)
    # "today" is the day in Shanghai, whatever the timezone of ``now``: Tuesday 07:00 there is still Monday in UTC
    tuesday_early = datetime(2026, 11, 24, 7, 0, tzinfo=TZ).astimezone(UTC)
    assert (await quick_figures(store, ["HW"], tuesday_early)).closed_today == 0
    assert (await quick_figures(store, ["HW"], MON.astimezone(UTC) + timedelta(hours=14))).closed_today == 1


async def test_unit_figures(service: TicketService, store: Store, clock: FrozenClock) -> None:
    await setup(service, clock)
    hw = Figures(open=6, unclaimed=2, overdue=1, closed_today=1)
    srjg = Figures(open=1, unclaimed=1, overdue=0, closed_today=0)
    # each unit as its own /统计 counts it; 9 (returned) is in none of them, only in the office's total
    assert await unit_figures(store, None, MON) == {"HW": hw, "SRJG": srjg}
    assert await unit_figures(store, ["HW"], MON) == {"HW": await quick_figures(store, ["HW"], MON)}
    assert await unit_figures(store, ["SRJG", "HW"], TUE_0830) == {
        "HW": Figures(open=6, unclaimed=2, overdue=4, closed_today=0),
        "SRJG": Figures(open=1, unclaimed=1, overdue=1, closed_today=0),
    }
    assert await unit_figures(store, ["HW", "SRJG"], TUE_0830) == {
        code: await quick_figures(store, [code], TUE_0830) for code in ("HW", "SRJG")
    }
    assert await unit_figures(store, ["RXB"], MON) == {}  # nothing to count
    assert await unit_figures(store, [], MON) == {}


async def test_sqlite_plans_use_the_indexes(
    sqlite_url: str, sandbox_config: BotConfig, calendar: WorkCalendar, clock: FrozenClock
) -> None:
    """Every list and count reads tickets through an index (SQLite has no statistics: its plans follow from the
    query's shape alone) and deadlines by ticket; closed today through ix_tickets_closed_at."""
    engine = create_engine(sqlite_url)
    await migrate(engine)
    store = Store(engine)
    try:
        await setup(TicketService(store, sandbox_config, calendar, clock), clock)
        statements: list[tuple[str, Any]] = []

        def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
            if statement.lstrip().startswith("SELECT"):
                statements.append((statement, parameters))

        reader = Engine  # every engine's: the store reads SQLite through a synchronous engine of its own
        event.listen(reader, "before_cursor_execute", record)
        await my_open_tickets(store, "wuhao")
        await unit_open_tickets(store, ["HW"])
        await overdue_tickets(store, ["HW"], MON)
        await overdue_tickets(store, None, MON)
        await quick_figures(store, ["HW"], MON)
        await quick_figures(store, None, MON)
        await unit_figures(store, ["HW", "SRJG"], MON)
        await unit_figures(store, None, MON)
        event.remove(reader, "before_cursor_execute", record)
        plans: list[list[str]] = []
        async with engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            for statement, parameters in statements:
                cursor = await raw.execute("EXPLAIN QUERY PLAN " + statement, parameters)
                plans.append([row[3] for row in await cursor.fetchall()])
        assert len(plans) == 12
        group_by = "USE TEMP B-TREE FOR GROUP BY"  # the per-unit counts, grouped after the search
        plans = [[step for step in plan if step != group_by] for plan in plans]
        for plan in plans:
            assert not [step for step in plan if step.startswith("SCAN")], plan
            assert all("USING" in step for step in plan if step.startswith("SEARCH")), plan
            assert not [
                step for step in plan if step.startswith("SEARCH deadlines") and "ix_deadlines_ticket_id" not in step
            ]
        closed_counts = [
            plan for plan, (statement, _) in zip(plans, statements, strict=True) if "closed_at >=" in statement
        ]
        assert len(closed_counts) == 4
        assert all(plan == ["SEARCH tickets USING INDEX ix_tickets_closed_at (closed_at>?)"] for plan in closed_counts)
        # open tickets of a unit: the few open ones (ix_tickets_state), not the unit's tickets of all time
        assert all("ix_tickets_unit_code" not in step for plan in plans for step in plan)
    finally:
        await engine.dispose()
