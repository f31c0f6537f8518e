"""The report's figures held to a plain Python computation (tests/services/report_reference.py) over random histories
driven through the real ticket service: tickets of every unit, kind and category dispatched over three months (and a
few a year earlier, for 同比) at any hour, weekends and National Day included, then claimed, contacted, submitted,
visited, returned, re-dispatched, extended, excluded and cancelled at random times, often exactly at a deadline's due
time or just after. Refused actions are skipped. Deterministic: each history is a seeded ``random.Random``."""

from __future__ import annotations

import heapq
import random
from dataclasses import asdict
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from bot.domain.clock import TZ, FrozenClock
from bot.domain.lifecycle import Action, ActionRequest, Solved, TransitionRefused, VisitResult
from bot.domain.reports.figures import Figures, Rate
from bot.domain.reports.periods import Period, PeriodKind, containing
from bot.domain.reports.report import Report, UnitLine
from bot.domain.ticket import TicketInput
from bot.services.reports import ReportService
from bot.services.tickets import TicketService
from config.model import BotConfig
from config.vocabulary import TicketKind
from store import report_items
from store.core import Store
from store.models import deadlines, tickets
from tests.services import report_reference as ref

NOW = datetime(2026, 11, 20, 15, 30, tzinfo=TZ)  # when the reports are made: November is in progress
SPANS = (  # when tickets are dispatched: three months, and a few a year earlier
    (datetime(2026, 8, 25, tzinfo=TZ), datetime(2026, 11, 19, tzinfo=TZ), 44),
    (datetime(2025, 9, 20, tzinfo=TZ), datetime(2025, 11, 10, tzinfo=TZ), 6),
)
CATEGORIES = ("环卫", "市容景观", "道路维修", None)  # HW, SRJG, the office (RXB)
WORKERS = {"HW": ("wuhao", "huangqiang"), "SRJG": ("zhouting", "sunlei", "chenjing"), "RXB": ("wangfang", "zhaomin")}
HEADS = {"HW": "huangqiang", "SRJG": "chenjing", "RXB": "zhangwei"}
UNITS = tuple(WORKERS)


def _random_time(rng: random.Random, start: datetime, end: datetime) -> datetime:
    at = start + timedelta(seconds=rng.randrange(int((end - start).total_seconds())))
    if rng.random() < 0.15:  # the last second of a day, or the first of one
        at = at.replace(hour=23, minute=59, second=59) if rng.random() < 0.5 else at.replace(hour=0, minute=0, second=0)
    return at


class History:
    """One random history: the tickets' walks interleaved in time order on one clock."""

    def __init__(self, seed: int, service: TicketService, clock: FrozenClock) -> None:
        self.rng = random.Random(seed)
        self.service = service
        self.clock = clock
        self.queue: list[tuple[datetime, int, str]] = []
        self.steps: dict[str, int] = {}
        self.inputs: dict[str, TicketInput] = {}
        self.acted = self.refused = 0

    def tickets(self) -> list[tuple[datetime, TicketInput]]:
        rng = self.rng
        out: list[tuple[datetime, TicketInput]] = []
        for start, end, n in SPANS:
            for _ in range(n):
                at = _random_time(rng, start, end)
                if rng.random() < 0.15:  # National Day
                    at = _random_time(rng, datetime(2026, 10, 1, tzinfo=TZ), datetime(2026, 10, 9, tzinfo=TZ))
                category = rng.choice(CATEGORIES)
                deadline = None
                if rng.random() < 0.6:
                    deadline = at + timedelta(days=rng.randint(1, 12), seconds=rng.randrange(86400))
                    if rng.random() < 0.3:
                        deadline = deadline.replace(hour=23, minute=59, second=59)
                no = f"{at:%Y%m%d}{len(out):04d}"
                item = TicketInput(
                    ticket_no=no,
                    content=f"{category or '其他'}问题反映，请尽快处理（{len(out)}）",
                    title=f"{category or '其他'}问题",
                    kind=rng.choice((TicketKind.REGULAR, TicketKind.URGENT, TicketKind.PHOTO)),
                    category=category,
                    citizen_name="张先生",
                    citizen_phone=f"1380000{rng.randint(0, 15):04d}",  # a few citizens call again: repeats
                    address=f"某路{rng.randint(1, 40)}号",
                    hotline_deadline=deadline,
                    is_repeat=rng.random() < 0.1,
                    is_media=rng.random() < 0.1,
                )
                out.append((at, item))
        return sorted(out, key=lambda x: x[0])

    async def run(self) -> None:
        seq = 0
        for at, item in self.tickets():
            heapq.heappush(self.queue, (at, seq, "create:" + item.ticket_no))
            self.steps[item.ticket_no] = self.rng.randint(3, 14)
            seq += 1
            self.inputs[item.ticket_no] = item
        while self.queue:
            at, _, what = heapq.heappop(self.queue)
            if at > NOW:
                continue
            self.clock.set(at)
            kind, no = what.split(":")
            if kind == "create":
                await self.service.upsert([self.inputs[no]])
            else:
                await self.step(no, at)
            self.steps[no] -= 1
            if self.steps[no] > 0:
                nxt = await self.next_time(no, at)
                seq += 1
                heapq.heappush(self.queue, (nxt, seq, "act:" + no))
        self.clock.set(NOW)

    async def next_time(self, no: str, at: datetime) -> datetime:
        """A random moment after ``at``: minutes, hours or days later, or exactly at one of the ticket's open
        deadlines' due time, or a second after it."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.45:
            detail = await self.service.get(no, history=False)
            due = [d.due_at for d in detail.deadlines if d.status == "open" and d.due_at >= at]
            if due:
                chosen = rng.choice(due)
                return max(at, chosen + timedelta(seconds=rng.choice((0, 0, 1, -1))))  # time never runs back
        unit = rng.choice(("minutes", "hours", "hours", "days"))
        span = {"minutes": 90, "hours": 30, "days": 9}[unit]
        return at + timedelta(**{unit: rng.uniform(0.1, span)})

    async def step(self, no: str, at: datetime) -> None:
        rng = self.rng
        t = (await self.service.get(no, history=False, deadlines=False)).ticket
        unit = t.unit_code or "RXB"
        worker = rng.choice(WORKERS.get(unit, ("wuhao",)))
        head = HEADS.get(unit, "zhangwei")
        other = rng.choice([u for u in UNITS if u != unit])
        state = t.state.value
        options: list[tuple[Action, str, dict[str, object]]] = []
        if t.return_requested_at is not None and t.return_signed_by is None:
            options += [(Action.CONFIRM_RETURN, head, {})] * 3 + [(Action.DECLINE_RETURN, head, {"note": "请继续办理"})]
        if t.extension_days is not None:
            approver = "zhangwei" if t.extension_requested_by == head else head
            options += [(Action.APPROVE_EXTENSION, approver, {})] * 2
            options += [(Action.REJECT_EXTENSION, approver, {"note": "请按期办结"})]
        if t.evaluation.value == "requested":
            options += [
                (Action.APPROVE_EXCLUSION, "lilei", {}),
                (Action.REJECT_EXCLUSION, "zhangwei", {"note": "不予"}),
            ]
        if state in ("dispatched", "claimed", "contacted", "on_site", "warning"):
            options += [
                (Action.CLAIM, worker, {}),
                (Action.CLAIM, worker, {}),
                (Action.CONTACT, worker, {}),
                (Action.CONTACT, worker, {}),
                (Action.ON_SITE, worker, {}),
                (Action.SUBMIT, worker, {"note": "已处理", "solved": rng.choice([*Solved, None])}),
                (Action.SUBMIT, worker, {"note": "已处理"}),
                (Action.REQUEST_EXTENSION, worker, {"note": "需协调", "days": rng.randint(1, 4)}),
                (Action.REQUEST_EXTENSION, worker, {"note": "需协调", "days": rng.randint(1, 4)}),
                (Action.REQUEST_RETURN, worker, {"note": "非本单位职责", "unit": other}),
                (Action.REQUEST_RETURN, head, {"note": "非本单位职责", "unit": other}),
            ]
        if state == "submitted":
            result = rng.choice([*VisitResult, VisitResult.SATISFIED, VisitResult.DISSATISFIED])
            solved = rng.choice([*Solved, None])
            options += [(Action.VISIT, "wangfang", {"result": result, "solved": solved})] * 5
        if state == "return_requested":
            options += [
                (Action.APPROVE_RETURN, "zhangwei", {"unit": other}),
                (Action.APPROVE_RETURN, "zhangwei", {}),
                (Action.REJECT_RETURN, "zhangwei", {"note": "请继续办理"}),
            ]
        if state == "returned":
            options += [(Action.REDISPATCH, "zhangwei", {"unit": other}), (Action.ASSIGN, "lilei", {"unit": other})]
        if state == "pending_assignment":
            options += [(Action.ASSIGN, "lilei", {"unit": other})]
        if state == "closed" and rng.random() < 0.15:
            options += [(Action.REOPEN, "zhangwei", {"note": "市民再次反映"})]
        if state != "cancelled":  # now and then: the platform's re-dispatch (a warning ticket's too), exclusions
            odds = 0.5 if state == "warning" else 0.12
            options += [(Action.REDISPATCH, "hotline", {"unit": other, "by_hotline": True})] * (rng.random() < odds)
            options += [(Action.REQUEST_EXCLUSION, worker, {"note": "非职责范围"})] * (rng.random() < 0.12)
            options += [(Action.CANCEL, "hotline", {"note": "市民撤诉", "by_hotline": True})] * (rng.random() < 0.05)
        if not options:
            return
        action, actor, extra = rng.choice(options)
        try:
            await self.service.act(no, ActionRequest(action=action, actor=actor, at=at, **extra))  # type: ignore[arg-type]
            self.acted += 1
        except TransitionRefused:
            self.refused += 1


def _as_expected(f: Figures) -> ref.Expected:
    counts = asdict(f.counts)
    return ref.Expected(
        rates=dict(f.rates),
        counts={k: counts[k] for k in ref.COUNTS},
        by_kind=counts["by_kind"],
        by_category=counts["by_category"],
        rehandled=f.rehandled,
    )


def _check_line(
    line: UnitLine, expect: tuple[ref.Expected, ref.Expected, ref.Expected], weights: dict[Rate, float]
) -> None:
    for got, want, what in zip(
        (line.figures, line.previous, line.year_ago), expect, ("figures", "previous", "year_ago"), strict=True
    ):
        assert _as_expected(got) == want, f"{line.code} {what}"
    assert line.score == pytest.approx(expect[0].score(weights))
    assert line.previous_score == pytest.approx(expect[1].score(weights))
    assert line.year_ago_score == pytest.approx(expect[2].score(weights))


async def _check(
    reports: ReportService, rows: ref.Rows, period: Period, units: list[str] | None, config: BotConfig
) -> Report:
    report = await reports.report(period, now=NOW, units=units, trend=False)
    weights = {Rate(k): v for k, v in config.reports.score_weights.items()}
    satisfaction = dict(config.reports.satisfaction_weights)
    compared = (period, period.previous(), period.year_earlier())
    found = [ref.keep(ref.figures(rows, p, NOW, satisfaction), units) for p in compared]
    codes = list(units) if units is not None else [u.code for u in config.units]
    assert sorted(line.code for line in report.units) == sorted(codes)  # type: ignore[type-var]
    assert all(set(f) <= set(codes) for f in found), "figures of a unit the report does not show"
    for line in report.units:
        _check_line(line, tuple(f.get(line.code) or ref.Expected() for f in found), weights)  # type: ignore[arg-type]
    _check_line(report.total, tuple(ref.total(f.values()) for f in found), weights)  # type: ignore[arg-type]
    assert sorted((i.ticket_no, i.deadline.value, i.due_at) for i in report.late) == ref.late(rows, period, NOW, units)
    assert sorted((i.ticket_no, i.asked_at, i.outcome) for i in report.returns) == ref.returns(rows, period, units)
    assert sorted((i.ticket_no, i.result, i.warning) for i in report.visits) == ref.visits(rows, period, units)
    assert sorted(i.ticket_no for i in report.repeats) == ref.repeats(rows, period, units)
    return report


PERIODS = (
    containing(PeriodKind.MONTH, datetime(2026, 9, 1).date()),
    containing(PeriodKind.MONTH, datetime(2026, 10, 1).date()),
    containing(PeriodKind.MONTH, NOW.date()),  # in progress
    containing(PeriodKind.BIMONTH, datetime(2026, 10, 1).date()),
    containing(PeriodKind.BIMONTH, NOW.date()),  # in progress
    containing(PeriodKind.QUARTER, NOW.date()),
    containing(PeriodKind.WEEK, datetime(2026, 10, 1).date()),  # National Day
    containing(PeriodKind.WEEK, datetime(2026, 10, 8).date()),  # its last day, and a Saturday worked
    containing(PeriodKind.WEEK, datetime(2026, 9, 16).date()),
    containing(PeriodKind.WEEK, NOW.date()),  # in progress
)


@pytest.mark.parametrize("seed", [7, 31, 2026])
async def test_report_figures_match_a_plain_computation(
    seed: int, service: TicketService, store: Store, clock: FrozenClock, sandbox_config: BotConfig
) -> None:
    history = History(seed, service, clock)
    await history.run()
    assert history.acted > 100  # the walks did something
    assert history.refused < history.acted
    rows = await ref.read_rows(store)
    reports = ReportService(store, sandbox_config)
    for period in PERIODS:
        for units in (None, ["HW", "SRJG"], ["RXB"]):
            await _check(reports, rows, period, units, sandbox_config)
    # each rate's trend: the rate of the units together in each of the 12 periods, counted or kept
    satisfaction = sandbox_config.reports.satisfaction_weights
    for period in (PERIODS[1], PERIODS[4]):
        for units in (None, ["HW", "SRJG"]):
            for rate in Rate:
                trend = (await reports.report(period, now=NOW, units=units, details=False, chart_rate=rate)).trend
                back = period.back(12)
                want = [ref.total(ref.keep(ref.figures(rows, p, NOW, satisfaction), units).values()) for p in back]
                assert [p for p, _ in trend] == list(back)
                assert [(r.num, r.den) for _, r in trend] == [(pytest.approx(w.rates[rate].num), w.rates[rate].den)
                                                              for w in want], f"{rate} {period.key} {units}"  # fmt: skip
    # the histories reach what the figures are about
    oct_rows = ref.figures(rows, PERIODS[3], NOW, sandbox_config.reports.satisfaction_weights)
    seen = ref.total(oct_rows.values())
    assert all(seen.rates[r].den for r in (Rate.ACCEPT, Rate.HANDLE, Rate.REPLY, Rate.SATISFACTION, Rate.SOLVED))
    assert seen.counts["warnings"]
    assert seen.counts["returns_asked"]
    assert seen.rehandled.den


async def test_a_deadline_due_at_the_months_last_second_belongs_to_it(
    service: TicketService, store: Store, clock: FrozenClock, sandbox_config: BotConfig
) -> None:
    """随身拍 tickets are handled within three natural days: dispatched at 23:59:59 on October 28, due at 23:59:59 on
    the 31st, October's; dispatched a second later, due at 00:00:00 on November 1, November's."""
    late_oct = datetime(2026, 10, 28, 23, 59, 59, tzinfo=TZ)
    for no, at in (("202610280001", late_oct), ("202610290001", late_oct + timedelta(seconds=1))):
        clock.set(at)
        await service.upsert(
            [
                TicketInput(
                    ticket_no=no,
                    content="路面破损",
                    kind=TicketKind.PHOTO,
                    category="道路维修",
                    hotline_deadline=at + timedelta(days=3),
                )
            ]
        )
    async with store.reading() as conn:
        due = dict(
            (
                await conn.execute(
                    select(tickets.c.ticket_no, deadlines.c.due_at)
                    .join(deadlines, deadlines.c.ticket_id == tickets.c.id)
                    .where(deadlines.c.name == "handle")
                )
            ).all()
        )
    assert due == {
        "202610280001": datetime(2026, 10, 31, 23, 59, 59, tzinfo=TZ),
        "202610290001": datetime(2026, 11, 1, 0, 0, 0, tzinfo=TZ),
    }
    # submitted exactly at the due time (on time), and a second after it (late)
    for no, at in (("202610280001", due["202610280001"]), ("202610290001", due["202610290001"] + timedelta(seconds=1))):
        clock.set(at)
        await service.act(no, ActionRequest(action=Action.SUBMIT, actor="wangfang", at=at, note="已修复"))
    clock.set(datetime(2026, 11, 10, 9, 0, tzinfo=TZ))
    reports = ReportService(store, sandbox_config)
    october = await reports.report(containing(PeriodKind.MONTH, datetime(2026, 10, 1).date()), now=clock.now())
    november = await reports.report(containing(PeriodKind.MONTH, datetime(2026, 11, 1).date()), now=clock.now())
    [oct_line] = [x for x in october.units if x.code == "RXB"]
    [nov_line] = [x for x in november.units if x.code == "RXB"]
    assert (oct_line.figures.rates[Rate.HANDLE].num, oct_line.figures.rates[Rate.HANDLE].den) == (1, 1)
    assert (nov_line.figures.rates[Rate.HANDLE].num, nov_line.figures.rates[Rate.HANDLE].den) == (0, 1)
    assert (oct_line.figures.rates[Rate.REPLY].num, oct_line.figures.rates[Rate.REPLY].den) == (1, 1)
    assert (nov_line.figures.rates[Rate.REPLY].num, nov_line.figures.rates[Rate.REPLY].den) == (0, 1)
    assert [(i.ticket_no, i.deadline.value) for i in november.late if i.deadline == "handle"] == [
        ("202610290001", "handle")
    ]
    assert not [i for i in october.late if i.deadline == "handle"]
    assert oct_line.figures.counts.received == 2
    assert nov_line.figures.counts.received == 0


async def test_late_deadlines_read_in_batches_are_the_same(
    service: TicketService,
    store: Store,
    clock: FrozenClock,
    sandbox_config: BotConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SQLite binds a statement's ids in batches (it takes 32,766 a statement): with batches of seven, the late
    deadlines of a month with hundreds of them are still each listed once, with their tickets."""
    await History(7, service, clock).run()
    rows = await ref.read_rows(store)
    monkeypatch.setattr(report_items, "_BATCH", 7)
    period = PERIODS[3]
    report = await ReportService(store, sandbox_config).report(period, now=NOW, trend=False)
    late = sorted((i.ticket_no, i.deadline.value, i.due_at) for i in report.late)
    assert len({no for no, _, _ in late}) > 7
    assert late == ref.late(rows, period, NOW, None)
    assert all(i.title for i in report.late)
