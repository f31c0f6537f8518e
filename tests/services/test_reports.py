"""The report service over real databases: what a month of a unit's tickets adds up to."""

from __future__ import annotations

from datetime import datetime

from bot.domain.clock import TZ, FrozenClock
from bot.domain.lifecycle import Action, ActionRequest, Solved, VisitResult
from bot.domain.reports.figures import Rate, Ratio
from bot.domain.reports.periods import PeriodKind, containing
from bot.domain.ticket import TicketInput
from bot.services.reports import ReportService
from bot.services.tickets import TicketService
from config.model import BotConfig
from store.core import Store


def ticket(no: str, **fields: object) -> TicketInput:
    base: dict[str, object] = {
        "ticket_no": no,
        "content": "小区门口垃圾桶满溢，无人清运，联系人张建国13812345678",
        "title": "张建国反映垃圾桶满溢",
        "category": "环卫",
        "citizen_name": "张建国",
        "citizen_phone": "13812345678",
        "address": "幸福里小区3号1203室",
    }
    base.update(fields)
    return TicketInput(**base)  # type: ignore[arg-type]


async def test_a_month_of_one_units_tickets(
    service: TicketService, store: Store, clock: FrozenClock, sandbox_config: BotConfig
) -> None:
    async def act(no: str, action: Action, actor: str, **kw: object) -> None:
        await service.act(no, ActionRequest(action=action, actor=actor, at=clock.now(), **kw))  # type: ignore[arg-type]

    await service.upsert([ticket(f"20261123000{i}") for i in range(1, 5)])  # Monday 09:00, to 环卫所 (HW)
    clock.set(datetime(2026, 11, 23, 9, 10, tzinfo=TZ))
    await act("202611230001", Action.CLAIM, "wuhao")
    await act("202611230001", Action.CONTACT, "wuhao")
    await act("202611230004", Action.CANCEL, "zhangwei", note="重复派单")
    clock.set(datetime(2026, 11, 24, 10, 0, tzinfo=TZ))  # after the accept deadline (Tuesday 09:00)
    await act("202611230003", Action.CLAIM, "wuhao")
    await act("202611230001", Action.SUBMIT, "wuhao", note="已清运", solved=Solved.SOLVED)
    await act("202611230003", Action.SUBMIT, "wuhao", note="已清运")
    clock.set(datetime(2026, 11, 25, 10, 0, tzinfo=TZ))
    await act("202611230001", Action.VISIT, "zhangwei", result=VisitResult.SATISFIED, solved=Solved.SOLVED)
    await act("202611230003", Action.VISIT, "zhangwei", result=VisitResult.DISSATISFIED, solved=Solved.UNSOLVED)

    reports = ReportService(store, sandbox_config)
    report = await reports.report(containing(PeriodKind.MONTH, clock.now().date()), now=clock.now())
    [hw] = [line for line in report.units if line.code == "HW"]
    f = hw.figures
    # three accept deadlines counted (the cancelled ticket's is not): one claimed in time, one late, one never
    assert f.rates[Rate.ACCEPT] == Ratio(1, 3)
    assert f.counts.accept_misses == 2
    assert f.counts.received == 4  # every ticket received counts, the cancelled one too
    assert f.rates[Rate.SATISFACTION] == Ratio(1, 2)
    assert f.rates[Rate.SOLVED] == Ratio(1, 2)
    assert (f.counts.warnings, f.counts.dissatisfied) == (1, 1)
    assert hw.change(Rate.ACCEPT) is None  # October had nothing to compare with
    assert report.total.figures.rates[Rate.ACCEPT] == Ratio(1, 3)
    # the tickets behind the figures, masked
    late = [(i.ticket_no, i.deadline.value, i.met_at is not None) for i in report.late if i.deadline == "accept"]
    assert sorted(late) == [("202611230002", "accept", False), ("202611230003", "accept", True)]
    assert all("张建国" not in i.title and "1203" not in i.title for i in report.late)
    # submitted without a contact recorded: its first-contact deadline stopped being due, unmet, at the submission
    [uncontacted] = [i for i in report.late if (i.ticket_no, i.deadline) == ("202611230003", "first_contact")]
    assert (uncontacted.met_at, uncontacted.stopped_at) == (None, datetime(2026, 11, 24, 10, 0, tzinfo=TZ))
    assert [(v.ticket_no, v.result, v.warning) for v in report.visits] == [("202611230003", "dissatisfied", True)]
    # the trend ends with this month
    assert report.trend[-1][0] == report.period
    assert len(report.trend) == 12


async def test_imported_history_counts_in_the_reports(
    service: TicketService, store: Store, clock: FrozenClock, sandbox_config: BotConfig
) -> None:
    """Tickets imported with their milestones (an export of the platform's past) count as the bot's own do: their
    deadlines met or missed by the milestones' times, their submissions and visits in the periods they happened."""
    from bot.domain.history import TicketHistory

    september = datetime(2026, 9, 7, 9, 0, tzinfo=TZ)  # a Monday
    on_time = TicketHistory(
        status="closed",
        accepted_at=datetime(2026, 9, 7, 10, 0, tzinfo=TZ),
        contacted_at=datetime(2026, 9, 7, 11, 0, tzinfo=TZ),
        finished_at=datetime(2026, 9, 9, 16, 0, tzinfo=TZ),
        visited_at=datetime(2026, 9, 10, 10, 0, tzinfo=TZ),
        satisfaction=VisitResult.SATISFIED,
        visit_solved=Solved.SOLVED,
        columns=frozenset({"accepted_at", "contacted_at", "finished_at", "visited_at"}),
    )
    late = TicketHistory(
        status="closed",
        accepted_at=datetime(2026, 9, 9, 10, 0, tzinfo=TZ),  # two days after dispatch: the accept deadline missed
        finished_at=datetime(2026, 9, 18, 16, 0, tzinfo=TZ),
        visited_at=datetime(2026, 9, 21, 10, 0, tzinfo=TZ),
        satisfaction=VisitResult.DISSATISFIED,
        columns=frozenset({"accepted_at", "contacted_at", "finished_at", "visited_at"}),
    )
    await service.upsert(
        [
            ticket("202609070001", dispatched_at=september, history=on_time),
            ticket("202609070002", dispatched_at=september, history=late),
        ],
        source="import",
    )
    report = await ReportService(store, sandbox_config).report(
        containing(PeriodKind.MONTH, september.date()), now=clock.now()
    )
    [hw] = [line for line in report.units if line.code == "HW"]
    assert hw.figures.counts.received == 2
    assert hw.figures.rates[Rate.ACCEPT] == Ratio(1, 2)
    assert hw.figures.rates[Rate.FIRST_CONTACT] == Ratio(1, 2)  # the late one never recorded a contact
    assert hw.figures.rates[Rate.HANDLE] == Ratio(1, 2)
    assert hw.figures.rates[Rate.SATISFACTION] == Ratio(1, 2)
    assert hw.figures.rates[Rate.SOLVED] == Ratio(1, 1)


async def test_units_are_ranked_among_all_and_a_report_of_some_has_no_ranks(
    service: TicketService, store: Store, clock: FrozenClock, sandbox_config: BotConfig
) -> None:
    await service.upsert([ticket("202611230101"), ticket("202611230102", category="市容景观")])
    await service.act("202611230102", ActionRequest(action=Action.CLAIM, actor="zhouting", at=clock.now()))
    clock.set(datetime(2026, 11, 25, 10, 0, tzinfo=TZ))  # 环卫所's ticket was never claimed
    month = containing(PeriodKind.MONTH, clock.now().date())
    office = await ReportService(store, sandbox_config).report(month, now=clock.now())
    assert [(x.code, x.rank) for x in office.units if x.rank] == [("SRJG", 1), ("HW", 2)]
    assert office.ranked == 2
    alone = await ReportService(store, sandbox_config).report(month, now=clock.now(), units=["HW"])
    assert [(x.code, x.rank) for x in alone.units] == [("HW", None)]
    assert alone.total.figures.rates[Rate.ACCEPT] == Ratio(0, 1)  # the scope's total, not the office's


async def test_a_text_is_masked_whole_before_it_is_cut(
    service: TicketService, store: Store, clock: FrozenClock, sandbox_config: BotConfig
) -> None:
    """No title: the list shows the start of the text, masked first (a number cut in two would not be recognised)."""
    content = (
        "小区门口垃圾桶满溢无人清运，已经持续很久了，请尽快处理，来电人身份证号110101199003071234，电话13812345678"
    )
    await service.upsert([ticket("202611230201", title=None, content=content, citizen_name=None)])
    clock.set(datetime(2026, 11, 25, 10, 0, tzinfo=TZ))
    report = await ReportService(store, sandbox_config).report(
        containing(PeriodKind.MONTH, clock.now().date()), now=clock.now()
    )
    titles = [item.title for item in report.late]
    assert titles
    for title in titles:
        assert "1101011990" not in title
        assert "1381" not in title


async def test_the_figures_are_given_before_the_ticket_lines_are_read(
    service: TicketService, store: Store, clock: FrozenClock, sandbox_config: BotConfig
) -> None:
    """What is made of the figures alone (the 通报's chart) can start while the lines are read: ``on_figures`` gets
    the report without its lines, the same figures as the whole report's."""
    await service.upsert([ticket(f"20261123000{i}") for i in range(1, 3)])
    clock.set(datetime(2026, 11, 25, 10, 0, tzinfo=TZ))  # every deadline so far missed
    given = []
    report = await ReportService(store, sandbox_config).report(
        containing(PeriodKind.MONTH, clock.now().date()), now=clock.now(), on_figures=given.append
    )
    [early] = given
    assert (early.late, early.returns, early.visits, early.repeats) == ((), (), (), ())
    assert {(i.ticket_no, i.deadline) for i in report.late} >= {("202611230001", "accept"), ("202611230002", "accept")}
    assert len(report.repeats) == 1  # the second repeats the first: the same citizen, phone and address
    assert (early.units, early.total, early.trend) == (report.units, report.total, report.trend)


async def test_a_returns_suggested_unit_is_a_units_code_or_the_members_text_masked(
    service: TicketService, store: Store, clock: FrozenClock, sandbox_config: BotConfig
) -> None:
    """The suggestion is a member's free text: a unit of ours is known by its code (the workbook shows its name);
    anything else is masked as the reason is."""
    await service.upsert([ticket("202611230301"), ticket("202611230302")])
    for no, unit in (("202611230301", "市容景观所"), ("202611230302", "幸福里物业 张建国 138 1234 5678")):
        await service.act(
            no,
            ActionRequest(
                action=Action.REQUEST_RETURN, actor="huangqiang", at=clock.now(), note="非本所职责", unit=unit
            ),
        )
    report = await ReportService(store, sandbox_config).report(
        containing(PeriodKind.MONTH, clock.now().date()), now=clock.now()
    )
    suggested = {i.ticket_no: i.suggested for i in report.returns}
    assert suggested["202611230301"] == "SRJG"
    assert suggested["202611230302"] == "幸福里物业 张某某 138****5678"


async def test_the_reply_counts_the_first_submission_through_a_reopening_and_a_redispatch(
    service: TicketService, store: Store, clock: FrozenClock, sandbox_config: BotConfig
) -> None:
    """及时回复率: a ticket answered by its 办理时限 stays answered in time when it is reopened later, or moved by the
    platform to a unit that answers late."""
    due = datetime(2026, 11, 27, 17, 0, tzinfo=TZ)
    await service.upsert([ticket("202611230401", hotline_deadline=due), ticket("202611230402", hotline_deadline=due)])

    async def act(no: str, action: Action, actor: str, **kw: object) -> None:
        await service.act(no, ActionRequest(action=action, actor=actor, at=clock.now(), **kw))  # type: ignore[arg-type]

    clock.set(datetime(2026, 11, 24, 10, 0, tzinfo=TZ))
    for no in ("202611230401", "202611230402"):
        await act(no, Action.CLAIM, "wuhao")
        await act(no, Action.SUBMIT, "wuhao", note="已清运")
    await act("202611230401", Action.VISIT, "zhangwei", result=VisitResult.SATISFIED, solved=Solved.SOLVED)
    await act("202611230402", Action.REDISPATCH, "hotline", unit="市容景观所", by_hotline=True)
    clock.set(datetime(2026, 11, 30, 10, 0, tzinfo=TZ))  # after the 办理时限
    await act("202611230401", Action.REOPEN, "zhangwei", note="市民再次反映")
    await act("202611230402", Action.CLAIM, "zhouting")
    await act("202611230402", Action.SUBMIT, "zhouting", note="已处理")
    await act("202611230401", Action.CLAIM, "wuhao")
    await act("202611230401", Action.SUBMIT, "wuhao", note="已再次清运")
    report = await ReportService(store, sandbox_config).report(
        containing(PeriodKind.MONTH, due.date()), now=clock.now()
    )
    assert report.total.figures.rates[Rate.REPLY] == Ratio(2, 2)


async def test_the_accept_miss_limit_applies_to_the_period_it_counts_in(
    service: TicketService, store: Store, clock: FrozenClock, sandbox_config: BotConfig
) -> None:
    """Three misses get a unit summoned within a two-month period (nags.three_misses): a report of two months carries
    the limit; a week's, a quarter's or a year's, whose misses are no such count, does not."""
    reports = ReportService(store, sandbox_config)
    today = clock.now().date()
    limits = {
        kind: (await reports.report(containing(kind, today), now=clock.now(), details=False, trend=False)).miss_limit
        for kind in PeriodKind
    }
    assert limits == {
        PeriodKind.WEEK: None,
        PeriodKind.MONTH: None,
        PeriodKind.BIMONTH: 3,
        PeriodKind.QUARTER: None,
        PeriodKind.YEAR: None,
    }


async def test_a_category_is_masked_as_the_platforms_other_texts_are(
    service: TicketService, store: Store, clock: FrozenClock, sandbox_config: BotConfig
) -> None:
    """The category is the platform's free text: the figures by category and the ticket lines show it masked."""
    await service.upsert([ticket("202611230501", category="环卫-业主王建国13912345678")])
    clock.set(datetime(2026, 11, 25, 10, 0, tzinfo=TZ))  # its deadlines missed: a ticket line
    report = await ReportService(store, sandbox_config).report(
        containing(PeriodKind.MONTH, clock.now().date()), now=clock.now()
    )
    masked = "环卫-业主王某某139****5678"
    assert report.total.figures.counts.by_category == {masked: 1}
    assert {i.category for i in report.late} == {masked}


async def test_a_ticket_lines_category_is_masked_with_its_own_citizen(
    service: TicketService, store: Store, clock: FrozenClock, sandbox_config: BotConfig
) -> None:
    """The citizen's own name, bare, is found in a ticket line's category as in its title."""
    await service.upsert([ticket("202611230601", category="环卫-张建国反映")])
    clock.set(datetime(2026, 11, 25, 10, 0, tzinfo=TZ))
    report = await ReportService(store, sandbox_config).report(
        containing(PeriodKind.MONTH, clock.now().date()), now=clock.now()
    )
    assert {i.category for i in report.late} == {"环卫-张某某反映"}
