"""Settled periods' counts are kept once counted (store.settled): a report reads them rather than counting their
deadlines again, a late change to one of their tickets is counted, and counts read before a change are not kept."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import delete

from bot.domain.clock import TZ, FrozenClock
from bot.domain.lifecycle import Action, ActionRequest
from bot.domain.reports.figures import Rate, Ratio
from bot.domain.reports.periods import PeriodKind, containing
from bot.services.reports import ReportService
from bot.services.tickets import TicketService
from config.model import BotConfig
from store import settled
from store.core import Store
from store.models import deadlines, tickets
from store.reports import Facts
from tests.services.test_reports import ticket

SEPTEMBER = datetime(2026, 9, 7, 9, 0, tzinfo=TZ)  # a Monday
LATER = datetime(2026, 11, 20, 15, 30, tzinfo=TZ)  # September settled long ago


async def _september(service: TicketService, clock: FrozenClock) -> None:
    """Two tickets to 环卫所 (HW) in September: one claimed in time, one never."""
    clock.set(SEPTEMBER)
    await service.upsert([ticket("202609070001"), ticket("202609070002")])
    clock.set(datetime(2026, 9, 7, 9, 30, tzinfo=TZ))
    await service.act("202609070001", ActionRequest(action=Action.CLAIM, actor="wuhao", at=clock.now()))


async def _hw_accept(reports: ReportService) -> Ratio:
    report = await reports.report(containing(PeriodKind.MONTH, SEPTEMBER.date()), now=LATER)
    [hw] = [line for line in report.units if line.code == "HW"]
    return hw.figures.rates[Rate.ACCEPT]


async def _drop_deadlines(store: Store) -> None:
    """The September deadlines gone from the table (as a purge of old tickets would take them)."""
    async with store.transaction() as conn:
        await conn.execute(delete(deadlines))


@pytest.fixture
async def reports(service: TicketService, store: Store, clock: FrozenClock, sandbox_config: BotConfig) -> ReportService:
    """The report service over September's two tickets, whose accept rate it has counted once (and kept)."""
    await _september(service, clock)
    reports = ReportService(store, sandbox_config)
    assert await _hw_accept(reports) == Ratio(1, 2)
    return reports


async def test_a_settled_months_counts_are_kept(reports: ReportService, store: Store) -> None:
    await _drop_deadlines(store)
    assert await _hw_accept(reports) == Ratio(1, 2)  # kept: not counted again from the (now empty) table


async def test_a_late_change_to_a_settled_months_ticket_is_counted(
    reports: ReportService, service: TicketService, store: Store, clock: FrozenClock
) -> None:
    # in November the missed ticket is approved 不纳入测评: September is counted again without it
    clock.set(LATER)
    for action, actor in ((Action.REQUEST_EXCLUSION, "wuhao"), (Action.APPROVE_EXCLUSION, "zhangwei")):
        request = ActionRequest(action=action, actor=actor, at=clock.now(), note="非本单位职责")
        await service.act("202609070002", request)
    assert await _hw_accept(reports) == Ratio(1, 1)
    await _drop_deadlines(store)
    assert await _hw_accept(reports) == Ratio(1, 1)  # and kept again


async def test_a_report_of_some_units_keeps_nothing_and_reads_what_was_kept(
    service: TicketService, store: Store, clock: FrozenClock, sandbox_config: BotConfig
) -> None:
    await _september(service, clock)
    reports = ReportService(store, sandbox_config)
    september = containing(PeriodKind.MONTH, SEPTEMBER.date())
    mine = await reports.report(september, now=LATER, units=["HW"], details=False, trend=False)
    assert mine.units[0].figures.rates[Rate.ACCEPT] == Ratio(1, 2)
    await _drop_deadlines(store)
    mine = await reports.report(september, now=LATER, units=["HW"], details=False, trend=False)
    assert mine.units[0].figures.rates[Rate.ACCEPT] == Ratio()  # counted from the table: nothing was kept
    # every unit's report of a settled month keeps it; one unit's then reads the kept counts
    async with store.transaction() as conn:
        await conn.execute(delete(tickets))
    await _september(service, clock)
    await reports.report(september, now=LATER, details=False, trend=False)
    await _drop_deadlines(store)
    mine = await reports.report(september, now=LATER, units=["HW"], details=False, trend=False)
    assert mine.units[0].figures.rates[Rate.ACCEPT] == Ratio(1, 2)


async def test_counts_read_before_a_change_are_not_kept(store: Store) -> None:
    september = (datetime(2026, 9, 1, tzinfo=TZ), datetime(2026, 10, 1, tzinfo=TZ))
    counted = Facts(deadlines=[("HW", "accept", 2, 1)])
    async with store.reading() as conn:
        read = await settled.epoch(conn)
    async with store.transaction() as conn:  # a ticket of September changes meanwhile
        await settled.unsettle(conn, SEPTEMBER, LATER)
    async with store.transaction() as conn:
        assert not await settled.keep(conn, read, [(september, counted)], LATER)
    async with store.reading() as conn:
        assert await settled.load(conn, [september]) == {}
        read = await settled.epoch(conn)
    async with store.transaction() as conn:
        assert await settled.keep(conn, read, [(september, counted)], LATER)
    async with store.reading() as conn:
        assert (await settled.load(conn, [september]))[september].deadlines == [["HW", "accept", 2, 1]]
    # a change to a ticket dispatched within the last week touches no settled period: nothing is cleared
    async with store.transaction() as conn:
        await settled.unsettle(conn, datetime(2026, 11, 16, tzinfo=TZ), LATER)
    async with store.reading() as conn:
        assert september in await settled.load(conn, [september])
        assert await settled.epoch(conn) == read
    # one dispatched in August: September is cleared
    async with store.transaction() as conn:
        await settled.unsettle(conn, datetime(2026, 8, 31, tzinfo=TZ), LATER)
    async with store.reading() as conn:
        assert await settled.load(conn, [september]) == {}


async def test_a_ticket_dispatched_again_clears_the_periods_of_its_first_dispatch(
    reports: ReportService, service: TicketService, clock: FrozenClock
) -> None:
    """A re-dispatch moves the ticket's dispatch time, not its first cycle's facts: a change days after it still
    clears September, where its first accept deadline was missed."""
    clock.set(datetime(2026, 11, 17, 10, 0, tzinfo=TZ))
    redispatch = ActionRequest(action=Action.REDISPATCH, actor="zhangwei", at=clock.now(), unit="市容景观所")
    await service.act("202609070002", redispatch)
    assert await _hw_accept(reports) == Ratio(1, 2)  # counted again, and kept again
    clock.set(LATER)  # three days on, it is approved 不纳入测评
    for action, actor in ((Action.REQUEST_EXCLUSION, "sunlei"), (Action.APPROVE_EXCLUSION, "zhangwei")):
        await service.act(
            "202609070002", ActionRequest(action=action, actor=actor, at=clock.now(), note="非本单位职责")
        )
    assert await _hw_accept(reports) == Ratio(1, 1)
