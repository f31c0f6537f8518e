"""Accountability: every reminder, overdue notice, escalation, repeat, duty call and three-misses flag the deadline
engine queues is recorded, one row per deadline (a flag: per missed ticket) and recipient, with its channel and
outbox row, in the transaction that queues it; the record outlives the outbox's purge and goes only after
``retention.notifications_days``; nobody can change it. Time travel on both databases."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from bot.domain.clock import FrozenClock
from bot.domain.lifecycle import Action
from bot.domain.records import Notification
from bot.domain.ticket import TicketInput
from bot.domain.workcal import WorkCalendar
from bot.services.channels import Channels
from bot.services.deadline_engine import DeadlineEngine
from bot.services.retention import purge
from bot.services.tickets import TicketService
from config.model import BotConfig, Retention
from config.vocabulary import TicketKind
from notifiers.wecom import WECOM_APP, WECOM_APPCHAT
from store.core import ConstraintViolation, Store
from store.models import outbox
from tests.engines import deadline_engine
from tests.services.test_deadline_engine import act, at, sign, tick

SRJG_CODE, RXB_CODE = "SRJG", "RXB"  # the units whose work groups are told


def make_engine(
    store: Store, config: BotConfig, calendar: WorkCalendar, clock: FrozenClock, channels: Channels | None = None
) -> DeadlineEngine:
    return deadline_engine(store, config, calendar, clock, channels=channels)


@pytest.fixture
def engine(store: Store, sandbox_config: BotConfig, calendar: WorkCalendar, clock: FrozenClock) -> DeadlineEngine:
    return make_engine(store, sandbox_config, calendar, clock)


async def told_of(service: TicketService, no: str) -> list[Notification]:
    return list((await service.get(no)).notifications)


def seen(told: list[Notification], when: datetime) -> set[tuple[str, int | None, str, str, str | None]]:
    """(kind, level, recipient kind, recipient, deadline) of what was recorded at ``when``."""
    return {(n.kind, n.level, n.recipient_kind, n.recipient, n.deadline_name) for n in told if n.at == when}


async def outbox_rows(store: Store) -> dict[int, dict[str, Any]]:
    async with store.reading() as conn:
        return {r["id"]: dict(r) for r in (await conn.execute(select(outbox))).mappings()}


async def test_a_reminder_is_recorded_per_deadline_and_recipient_with_its_outbox_row(
    service: TicketService, engine: DeadlineEngine, store: Store, clock: FrozenClock
) -> None:
    await service.upsert([sign("R1")])
    result = await tick(engine, clock, at(23, 21))  # half the accept deadline: the group, nobody has claimed it
    assert result.told == 2
    told = await told_of(service, "R1")
    assert seen(told, at(23, 21)) == {
        ("reminder", None, "group", SRJG_CODE, "accept"),
        ("reminder", None, "group", SRJG_CODE, "first_contact"),
    }
    [message] = (await outbox_rows(store)).values()
    for n in told:  # the delivery joins while the outbox has it
        assert (n.outbox_id, n.outbox_key, n.channel) == (message["id"], message["idempotency_key"], WECOM_APPCHAT)
        assert (n.ticket_no, n.unit_code) == ("R1", SRJG_CODE)
    due = {n.deadline_name: n.due_at for n in told}
    assert due == {"accept": at(24, 9), "first_contact": at(24, 9)}

    await act(service, clock, "R1", Action.CLAIM, "zhouting", at(24, 8))
    await act(service, clock, "R1", Action.CONTACT, "zhouting", at(24, 8, 30))
    await tick(engine, clock, at(25, 21))  # half the handling time: the group and the handler privately
    assert seen(await told_of(service, "R1"), at(25, 21)) == {
        ("reminder", None, "group", SRJG_CODE, "handle"),
        ("reminder", None, "member", "zhouting", "handle"),
    }
    channels = {n.recipient: n.channel for n in await told_of(service, "R1") if n.at == at(25, 21)}
    assert channels == {SRJG_CODE: WECOM_APPCHAT, "zhouting": WECOM_APP}


async def test_overdue_notice_escalations_and_repeats_are_recorded_level_by_level(
    service: TicketService, engine: DeadlineEngine, clock: FrozenClock
) -> None:
    await service.upsert([sign("C1")])
    for when in [at(23, 21), at(24, 7), at(24, 8), at(24, 9), at(24, 11), at(24, 13), at(24, 15)]:
        await tick(engine, clock, when)
    told = [n for n in await told_of(service, "C1") if n.deadline_name == "accept"]
    assert seen(told, at(24, 9)) == {  # overdue: the group, and level 1 (unclaimed: the emergency team)
        ("overdue", 1, "group", SRJG_CODE, "accept"),
        ("overdue", 1, "member", "sunlei", "accept"),
        ("overdue", 1, "member", "zhouting", "accept"),
    }
    assert seen(told, at(24, 11)) == {  # level 2: the unit head and deputy
        ("escalation", 2, "member", "chenjing", "accept"),
        ("escalation", 2, "member", "sunlei", "accept"),
    }
    assert seen(told, at(24, 13)) == {("escalation", 3, "member", "lilei", "accept")}  # the center lead
    assert seen(told, at(24, 15)) == {  # the first repeat, to every level
        ("repeat", 1, "member", userid, "accept") for userid in ("chenjing", "lilei", "sunlei", "zhouting")
    }
    assert Counter(n.kind for n in told) == {"reminder": 3, "overdue": 3, "escalation": 3, "repeat": 4}


async def test_a_duty_call_at_night_is_recorded(
    service: TicketService, engine: DeadlineEngine, clock: FrozenClock
) -> None:
    clock.set(at(24, 1))  # outside the window; 赵敏 is on duty
    await service.upsert(
        [TicketInput(ticket_no="F1", content="景观灯杆倾斜", category="市容景观", kind=TicketKind.URGENT)]
    )
    await tick(engine, clock, at(24, 1, 10))
    assert seen(await told_of(service, "F1"), at(24, 1, 10)) == {("duty", None, "member", "zhaomin", "contact_20m")}


async def test_the_three_misses_flag_is_recorded_for_each_missed_ticket_and_recipient(
    service: TicketService, engine: DeadlineEngine, clock: FrozenClock
) -> None:
    await service.upsert([sign("N1"), sign("N2"), sign("N3")])
    result = await tick(engine, clock, at(24, 9, 30))
    assert result.flags == 1
    for no in ("N1", "N2", "N3"):
        flags = {
            (n.recipient_kind, n.recipient, n.level, n.unit_code)
            for n in await told_of(service, no)
            if n.kind == "three_misses"
        }
        assert flags == {
            ("group", RXB_CODE, 3, SRJG_CODE),
            ("member", "wangfang", 3, SRJG_CODE),
            ("member", "zhangwei", 3, SRJG_CODE),
        }
    again = await tick(engine, clock, at(24, 9, 45))  # flagged once: recorded once
    assert (again.flags, again.told) == (0, 0)


async def test_nothing_is_recorded_that_was_not_queued(
    service: TicketService, store: Store, sandbox_config: BotConfig, calendar: WorkCalendar, clock: FrozenClock
) -> None:
    silent = make_engine(store, sandbox_config, calendar, clock, Channels(app=False, aibot_ws=False, webhook=False))
    await service.upsert([sign("S1")])
    result = await tick(silent, clock, at(24, 9))  # no channel reaches anyone in this deployment
    assert (result.items, result.messages, result.told) == (2, 0, 0)
    assert await told_of(service, "S1") == []


async def test_the_record_outlives_the_outbox_and_goes_after_its_own_retention(
    service: TicketService, engine: DeadlineEngine, store: Store, clock: FrozenClock
) -> None:
    await service.upsert([sign("P1")])
    await tick(engine, clock, at(23, 21))
    await tick(engine, clock, at(24, 9))
    before = await told_of(service, "P1")
    assert len(before) == 2 + 6
    async with store.transaction() as conn:  # delivered
        await conn.execute(update(outbox).values(status="sent", sent_at=at(24, 9)))
    retention = Retention()  # 90 days of outbox, 400 of notifications
    purged = await purge(store, retention, at(24, 9) + timedelta(days=91))
    assert (purged.outbox, purged.notifications) == (4, 0)
    assert await outbox_rows(store) == {}
    assert await told_of(service, "P1") == before  # "they were told", provable without the outbox
    purged = await purge(store, retention, at(23, 21) + timedelta(days=400, seconds=1))
    assert purged.notifications == 2  # the reminder of 11-23 21:00; the overdue notice is not 400 days old yet
    assert {n.at for n in await told_of(service, "P1")} == {at(24, 9)}
    purged = await purge(store, retention, at(24, 9) + timedelta(days=401), batch=4)
    assert purged.notifications == 6
    assert await told_of(service, "P1") == []


async def test_the_record_cannot_be_changed(
    service: TicketService, engine: DeadlineEngine, store: Store, clock: FrozenClock
) -> None:
    await service.upsert([sign("U1")])
    await tick(engine, clock, at(23, 21))
    with pytest.raises((DBAPIError, ConstraintViolation)):  # a trigger's refusal
        async with store.transaction() as conn:
            await conn.execute(text("UPDATE notifications SET recipient = 'mallory'"))
    assert {n.recipient for n in await told_of(service, "U1")} == {SRJG_CODE}


@pytest.mark.parametrize("days", [0, 90, 394, 3651, "13 months"])
def test_notifications_are_kept_at_least_13_months(days: Any) -> None:
    with pytest.raises(ValidationError):
        Retention.model_validate({"notifications_days": days})
    assert Retention().notifications_days == 400
    assert Retention.model_validate({"notifications_days": 395}).notifications_days == 395
