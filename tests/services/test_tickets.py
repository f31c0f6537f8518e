"""The ticket service against real databases (every test runs on SQLite and on PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from bot.domain.clock import TZ, FrozenClock
from bot.domain.deadlines import PlanRequest
from bot.domain.lifecycle import Action, ActionRequest, TicketState, TransitionRefused, VisitResult
from bot.domain.ticket import TicketInput
from bot.services.tickets import TicketNotFound, TicketService
from config.model import BotConfig
from config.vocabulary import TicketKind
from store.core import ConstraintViolation, Store
from store.models import audit_log, inbox, outbox


def ticket(no: str = "2026112300001", **fields: object) -> TicketInput:
    base: dict[str, object] = {
        "ticket_no": no,
        "content": "小区门口垃圾桶满溢，无人清运",
        "category": "环卫",
        "citizen_name": "张先生",
        "citizen_phone": "13812345678",
        "address": "某区某路 100 号",
    }
    base.update(fields)
    return TicketInput(**base)  # type: ignore[arg-type]


def deadlines_by_name(detail: object) -> dict[str, dict[str, object]]:
    return {d.name: d for d in detail.deadlines if d.cycle == detail.ticket.cycle}  # type: ignore[attr-defined]


async def test_create_routes_persists_and_plans_deadlines(service: TicketService, clock: FrozenClock) -> None:
    [outcome] = await service.upsert([ticket()])
    assert (outcome.status, outcome.state, outcome.unit_code) == ("created", "dispatched", "HW")
    detail = await service.get("2026112300001")
    assert detail.ticket.routed_by == "rule:1"
    assert detail.ticket.citizen_phone == "13812345678"  # stored in full; masked only when shown
    names = deadlines_by_name(detail)
    # regular policy + 三个二 (环卫 is covered in the sandbox config)
    assert set(names) == {
        "accept",
        "first_contact",
        "return_window",
        "handle",
        "contact_20m",
        "on_site_2h",
        "solve_24h",
        "opinion_5d",
    }
    assert names["accept"].due_at == datetime(2026, 11, 24, 9, 0, tzinfo=TZ)  # Monday 09:00 + 1wd
    assert names["handle"].due_at == datetime(2026, 11, 30, 9, 0, tzinfo=TZ)  # + 5wd over a weekend
    assert names["contact_20m"].due_at == clock.now() + timedelta(minutes=20)
    assert [h.action for h in detail.history] == ["dispatch"]


async def test_same_ticket_again_is_unchanged_and_writes_nothing(service: TicketService, store: Store) -> None:
    await service.upsert([ticket()])
    [again] = await service.upsert([ticket()])
    assert again.status == "unchanged"
    async with store.reading() as conn:
        assert (await conn.execute(select(audit_log))).all().__len__() == 1


async def test_update_changes_fields_and_reschedules_on_kind_change(service: TicketService) -> None:
    await service.upsert([ticket()])
    [outcome] = await service.upsert([ticket(kind=TicketKind.URGENT, address="某区某路 102 号")])
    assert outcome.status == "updated"
    assert outcome.changed == ("address", "kind")
    detail = await service.get("2026112300001")
    names = deadlines_by_name(detail)
    # urgent: handle 3wd and an internal 2wd deadline, from the original dispatch time
    assert names["handle"].due_at == datetime(2026, 11, 26, 9, 0, tzinfo=TZ)
    assert names["handle_internal"].due_at == datetime(2026, 11, 25, 9, 0, tzinfo=TZ)
    assert [h.action for h in detail.history] == ["dispatch", "update"]


async def test_hotline_naming_another_unit_redispatches(service: TicketService) -> None:
    await service.upsert([ticket()])
    [outcome] = await service.upsert([ticket(unit_label="市容景观所")])
    assert (outcome.status, outcome.unit_code, outcome.state) == ("updated", "SRJG", "dispatched")
    detail = await service.get("2026112300001")
    assert detail.ticket.redispatch_count == 0  # the platform's own re-dispatch is not the office's one
    assert detail.ticket.cycle == 2
    assert [h.action for h in detail.history][-1] == "redispatch"


async def test_batch_with_a_number_twice_keeps_the_last(service: TicketService) -> None:
    outcomes = await service.upsert([ticket(content="第一次"), ticket(content="第二次")])
    assert [o.status for o in outcomes] == ["created", "created"]
    assert (await service.get("2026112300001")).ticket.content == "第二次"


async def test_full_lifecycle_with_warning_and_rehandle(service: TicketService, clock: FrozenClock) -> None:
    await service.upsert([ticket()])
    no = "2026112300001"

    async def act(action: Action, actor: str, **kw: object) -> TicketState:
        clock.advance(minutes=10)
        outcome = await service.act(no, ActionRequest(action=action, actor=actor, at=clock.now(), **kw))  # type: ignore[arg-type]
        return outcome.to_state

    assert await act(Action.CLAIM, "wuhao") is TicketState.CLAIMED
    assert await act(Action.CONTACT, "wuhao") is TicketState.CONTACTED
    assert await act(Action.ON_SITE, "wuhao") is TicketState.ON_SITE
    assert await act(Action.SUBMIT, "wuhao", note="已清运") is TicketState.SUBMITTED
    assert await act(Action.VISIT, "zhangwei", result=VisitResult.DISSATISFIED) is TicketState.WARNING
    detail = await service.get(no)
    assert deadlines_by_name(detail)["rehandle"].status == "open"
    assert await act(Action.SUBMIT, "wuhao", note="再次处置：已增加清运频次") is TicketState.SUBMITTED
    assert await act(Action.VISIT, "zhangwei", result=VisitResult.SATISFIED) is TicketState.CLOSED
    detail = await service.get(no)
    assert detail.ticket.closed_at is not None
    assert all(d.status != "open" for d in detail.deadlines)
    first = {d.name: d for d in detail.deadlines if d.cycle == 1}
    assert first["accept"].status == "met"
    assert first["first_contact"].status == "met"
    assert first["contact_20m"].status == "met"  # contacted 20 minutes after dispatch: on time
    assert first["contact_20m"].met_at <= first["contact_20m"].due_at
    assert [h.to_state for h in detail.history] == [
        "dispatched",
        "claimed",
        "contacted",
        "on_site",
        "submitted",
        "warning",
        "submitted",
        "closed",
    ]
    assert {h.actor for h in detail.history} == {"hotline", "wuhao", "zhangwei"}


async def test_refused_action_changes_nothing(service: TicketService, clock: FrozenClock, store: Store) -> None:
    await service.upsert([ticket()])
    with pytest.raises(TransitionRefused) as refused:
        await service.act("2026112300001", ActionRequest(action=Action.SUBMIT, actor="wuhao", at=clock.now()))
    assert refused.value.code == "note_required"
    detail = await service.get("2026112300001")
    assert detail.ticket.state == "dispatched"
    assert detail.ticket.version == 1
    assert len(detail.history) == 1


async def test_unknown_ticket(service: TicketService, clock: FrozenClock) -> None:
    with pytest.raises(TicketNotFound) as missing:
        await service.act("9999", ActionRequest(action=Action.CLAIM, actor="wuhao", at=clock.now()))
    assert "9999" in missing.value.message


async def test_return_window_and_two_returns_go_to_assignment(service: TicketService, clock: FrozenClock) -> None:
    no = "2026112300001"
    await service.upsert([ticket()])
    clock.advance(hours=1)
    await service.act(
        no,
        ActionRequest(action=Action.REQUEST_RETURN, actor="huangqiang", at=clock.now(), note="非本所职责", unit="SRJG"),
    )
    state = (
        await service.act(no, ActionRequest(action=Action.APPROVE_RETURN, actor="zhangwei", at=clock.now()))
    ).to_state
    assert state is TicketState.RETURNED
    await service.act(no, ActionRequest(action=Action.REDISPATCH, actor="zhangwei", at=clock.now(), unit="市容景观所"))
    detail = await service.get(no)
    assert (detail.ticket.unit_code, detail.ticket.redispatch_count) == ("SRJG", 1)
    # the new unit's return window runs from the re-dispatch: 2 working days
    clock.advance(days=3)  # Thursday 10:00 > Wednesday 10:00
    with pytest.raises(TransitionRefused) as late:
        await service.act(
            no,
            ActionRequest(action=Action.REQUEST_RETURN, actor="chenjing", at=clock.now(), note="也不是我们", unit="HW"),
        )
    assert late.value.code == "return_window_closed"
    clock.advance(days=-2)
    await service.act(
        no, ActionRequest(action=Action.REQUEST_RETURN, actor="chenjing", at=clock.now(), note="也不是我们", unit="HW")
    )
    state = (
        await service.act(no, ActionRequest(action=Action.APPROVE_RETURN, actor="zhangwei", at=clock.now()))
    ).to_state
    assert state is TicketState.PENDING_ASSIGNMENT
    with pytest.raises(TransitionRefused):
        await service.act(no, ActionRequest(action=Action.REDISPATCH, actor="zhangwei", at=clock.now(), unit="HW"))
    state = (
        await service.act(no, ActionRequest(action=Action.ASSIGN, actor="lilei", at=clock.now(), unit="HW"))
    ).to_state
    assert state is TicketState.DISPATCHED
    assert (await service.get(no)).ticket.unit_code == "HW"


async def test_redispatch_to_an_unknown_unit_is_refused(service: TicketService, clock: FrozenClock) -> None:
    no = "2026112300001"
    await service.upsert([ticket()])
    await service.act(
        no, ActionRequest(action=Action.REQUEST_RETURN, actor="huangqiang", at=clock.now(), note="非本所", unit="X")
    )
    await service.act(no, ActionRequest(action=Action.APPROVE_RETURN, actor="zhangwei", at=clock.now()))
    with pytest.raises(TransitionRefused) as refused:
        await service.act(
            no, ActionRequest(action=Action.REDISPATCH, actor="zhangwei", at=clock.now(), unit="不存在的单位")
        )
    assert refused.value.code == "unknown_unit"


async def test_two_claims_at_once_exactly_one_wins(service: TicketService, clock: FrozenClock) -> None:
    no = "2026112300001"
    await service.upsert([ticket()])
    results = await asyncio.gather(
        service.act(no, ActionRequest(action=Action.CLAIM, actor="wuhao", at=clock.now())),
        service.act(no, ActionRequest(action=Action.CLAIM, actor="huangqiang", at=clock.now())),
        return_exceptions=True,
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1
    assert len(lost) == 1
    assert isinstance(lost[0], TransitionRefused)
    assert lost[0].code == "already_claimed"
    winner = won[0].ticket.handler_userid
    assert winner in lost[0].message
    detail = await service.get(no)
    assert detail.ticket.handler_userid == winner
    assert [h.action for h in detail.history].count("claim") == 1


async def test_concurrent_first_handover_of_the_same_ticket(service: TicketService) -> None:
    outcomes = await asyncio.gather(*(service.upsert([ticket()]) for _ in range(4)))
    statuses = sorted(o[0].status for o in outcomes)
    assert statuses.count("created") == 1
    assert set(statuses) <= {"created", "unchanged"}


async def test_dedup_applies_an_inbound_event_once(service: TicketService, clock: FrozenClock, store: Store) -> None:
    no = "2026112300001"
    await service.upsert([ticket()])
    req = ActionRequest(action=Action.CANCEL, actor="hotline", at=clock.now(), note="市民撤诉", by_hotline=True)
    first = await service.act(no, req, dedup=("hotline", f"{no}:evt-1", "{}"))
    again = await service.act(no, req, dedup=("hotline", f"{no}:evt-1", "{}"))
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.to_state is TicketState.CANCELLED
    async with store.reading() as conn:
        assert len((await conn.execute(select(inbox))).all()) == 1


async def test_an_action_can_return_its_deadlines_and_record_who_saw_the_contact_details(
    service: TicketService, clock: FrozenClock, store: Store
) -> None:
    no = "2026112300001"
    await service.upsert([ticket()])
    req = ActionRequest(action=Action.CLAIM, actor="wuhao", at=clock.now())
    first = await service.act(no, req, dedup=("wecom", "m1", "接单"), with_deadlines=True, viewed="view_contact")

    # the open deadlines as the claim left them, worked out in its transaction: what a read afterwards gives
    def shown(deadlines: Any) -> list[tuple[Any, ...]]:
        keys = ("id", "name", "cycle", "due_at", "status")
        return sorted(tuple(getattr(d, k) for k in keys) for d in deadlines if d.status == "open")

    assert shown(first.deadlines) == shown((await service.get(no, history=False)).deadlines)
    assert "accept" not in {d.name for d in first.deadlines}  # met by the claim
    again = await service.act(no, req, dedup=("wecom", "m1", "接单"), with_deadlines=True, viewed="view_contact")
    assert again.duplicate and shown(again.deadlines) == shown(first.deadlines)  # noqa: PT018
    async with store.reading() as conn:
        actions = [r.action for r in await conn.execute(select(audit_log).order_by(audit_log.c.id))]
    assert actions == ["dispatch", "claim", "view_contact"]  # the retry recorded nothing


async def test_the_deadlines_an_action_works_out_are_those_a_read_finds(
    service: TicketService, clock: FrozenClock
) -> None:
    """Across a new cycle (re-dispatch), a warning's re-handling cycle and an approved extension, the open deadlines
    an action returns without reading them again are the ones the database then holds."""
    no = "2026112300001"
    await service.upsert([ticket()])

    async def check(req: ActionRequest) -> None:
        outcome = await service.act(no, req, with_deadlines=True)
        keys = ("name", "cycle", "due_at", "status")
        worked_out = sorted(tuple(getattr(d, k) for k in keys) for d in outcome.deadlines)
        read = sorted(
            tuple(getattr(d, k) for k in keys) for d in (await service.get(no)).deadlines if d.status == "open"
        )
        assert worked_out == read, req.action

    await check(ActionRequest(action=Action.CLAIM, actor="wuhao", at=clock.now()))
    clock.advance(hours=1)
    await check(ActionRequest(action=Action.REQUEST_EXTENSION, actor="wuhao", at=clock.now(), note="需协调", days=2))
    await check(ActionRequest(action=Action.APPROVE_EXTENSION, actor="huangqiang", at=clock.now()))
    await check(ActionRequest(action=Action.SUBMIT, actor="wuhao", at=clock.now(), note="已处理"))
    await check(ActionRequest(action=Action.VISIT, actor="zhangwei", at=clock.now(), result=VisitResult.DISSATISFIED))
    await check(ActionRequest(action=Action.REDISPATCH, actor="hotline", at=clock.now(), unit="SRJG", by_hotline=True))


async def test_a_row_the_caller_read_is_used_only_while_the_ticket_is_unchanged(
    service: TicketService, clock: FrozenClock
) -> None:
    no = "2026112300001"
    await service.upsert([ticket()])
    stale = (await service.get(no, history=False, deadlines=False)).ticket
    await service.act(
        no, ActionRequest(action=Action.CLAIM, actor="wuhao", at=clock.now())
    )  # meanwhile, someone else claims
    # acting on what the caller read: the version moved on, so the action is decided again on a fresh read
    with pytest.raises(TransitionRefused, match="已由 wuhao 接单"):
        await service.act(no, ActionRequest(action=Action.CLAIM, actor="huangqiang", at=clock.now()), row=stale)
    fresh = (await service.get(no, history=False, deadlines=False)).ticket
    outcome = await service.act(no, ActionRequest(action=Action.CONTACT, actor="wuhao", at=clock.now()), row=fresh)
    assert outcome.to_state is TicketState.CONTACTED and outcome.ticket.version == fresh.version + 1  # noqa: PT018


async def test_sync_back_queues_bot_side_changes_only(
    make_service: Callable[..., TicketService], clock: FrozenClock, store: Store
) -> None:
    service = make_service(sync_url="http://127.0.0.1:9/sync")
    no = "2026112300001"
    await service.upsert([ticket(unit_label="HW")])  # the platform named the unit: nothing to tell it
    await service.upsert([ticket("2026112300002", category=None, content="咨询")])  # our fallback routing: tell it
    await service.act(no, ActionRequest(action=Action.CLAIM, actor="wuhao", at=clock.now()))
    await service.act(no, ActionRequest(action=Action.CANCEL, actor="hotline", at=clock.now(), by_hotline=True))
    async with store.reading() as conn:
        rows = (await conn.execute(select(outbox).order_by(outbox.c.id))).mappings().all()
    assert [(r["payload"]["ticket_no"], r["payload"]["action"]) for r in rows] == [
        ("2026112300002", "dispatch"),
        (no, "claim"),
    ]
    assert all(r["channel"] == "hotline" and r["ordering_key"] == r["payload"]["ticket_no"] for r in rows)


async def test_audit_log_is_append_only(service: TicketService, store: Store) -> None:
    await service.upsert([ticket()])
    for statement in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"):
        with pytest.raises((DBAPIError, ConstraintViolation)):  # a trigger's refusal, or SQLite's IntegrityError
            async with store.transaction() as conn:
                await conn.execute(text(statement))
    detail = await service.get("2026112300001")
    assert [h.actor for h in detail.history] == ["hotline"]


async def test_many_tickets_in_one_batch(service: TicketService) -> None:
    batch = [ticket(f"20261123{i:05d}", kind=list(TicketKind)[i % 5]) for i in range(300)]
    outcomes = await service.upsert(batch)
    assert [o.status for o in outcomes] == ["created"] * 300
    detail = await service.get("2026112300007")
    assert detail.ticket.kind == list(TicketKind)[7 % 5].value
    # the vectorised planning gives the same deadlines as planning one by one
    request = PlanRequest(
        kind=TicketKind(detail.ticket.kind), category="环卫", start=detail.ticket.dispatched_at, cycle_kind="dispatch"
    )
    planned = {p.name.value: p.due_at for p in service.planner.plan(request)}
    assert {d.name: d.due_at for d in detail.deadlines} == planned


async def test_overdue_obligations_superseded_are_missed_not_forgotten(
    service: TicketService, clock: FrozenClock
) -> None:
    no = "2026112300001"
    await service.upsert([ticket()])
    clock.advance(minutes=30)  # the 20-minute contact (三个二) is now overdue
    await service.act(no, ActionRequest(action=Action.CLAIM, actor="wuhao", at=clock.now()))
    await service.act(no, ActionRequest(action=Action.SUBMIT, actor="wuhao", at=clock.now(), note="已处理"))
    first = {d.name: d for d in (await service.get(no)).deadlines}
    assert first["contact_20m"].status == "missed"  # overdue and never recorded
    assert first["first_contact"].status == "cancelled"  # not yet due when the ticket was submitted
    assert first["return_window"].status == "cancelled"  # a window is not an obligation
    assert first["accept"].status == "met"


async def test_a_difference_that_changes_nothing_is_reported_unchanged(
    service: TicketService, clock: FrozenClock
) -> None:
    no = "2026112300001"
    await service.upsert([ticket(dispatched_at=clock.now())])
    await service.act(
        no, ActionRequest(action=Action.REDISPATCH, actor="zhangwei", at=clock.now(), unit="SRJG")
    )  # cycle 2
    history = len((await service.get(no)).history)
    # a corrected 派单时间 no longer applies: the current deadlines started with the office's re-dispatch
    [outcome] = await service.upsert([ticket(dispatched_at=clock.now() - timedelta(hours=1))])
    assert (outcome.status, outcome.changed) == ("unchanged", ())
    assert len((await service.get(no)).history) == history


async def test_platform_update_does_not_undo_the_offices_redispatch(service: TicketService, clock: FrozenClock) -> None:
    no = "2026112300001"
    await service.upsert([ticket(unit_label="HW")])
    await service.act(
        no, ActionRequest(action=Action.REQUEST_RETURN, actor="huangqiang", at=clock.now(), note="非本所", unit="SRJG")
    )
    await service.act(no, ActionRequest(action=Action.APPROVE_RETURN, actor="zhangwei", at=clock.now()))
    await service.act(no, ActionRequest(action=Action.REDISPATCH, actor="zhangwei", at=clock.now(), unit="SRJG"))
    # the platform corrects the text; its payload still names the unit it first sent the ticket to
    [outcome] = await service.upsert([ticket(unit_label="HW", content="更正：垃圾桶满溢两天")])
    assert (outcome.status, outcome.unit_code, outcome.changed) == ("updated", "SRJG", ("content",))
    # when the platform itself names another unit, that is its re-dispatch
    [moved] = await service.upsert([ticket(unit_label="环卫所", content="更正：垃圾桶满溢两天")])
    assert moved.unit_code == "HW"


async def test_unknown_platform_unit_is_kept_for_the_dispatcher(service: TicketService) -> None:
    [outcome] = await service.upsert([ticket(unit_label="某某街道办", category=None, content="咨询")])
    assert outcome.unit_code == "RXB"  # the office's fallback
    assert (await service.get("2026112300001")).ticket.hotline_unit == "某某街道办"


async def test_corrected_dispatch_time_moves_the_first_cycle(service: TicketService, clock: FrozenClock) -> None:
    await service.upsert([ticket(dispatched_at=clock.now())])
    later = clock.now() + timedelta(days=1)  # Tuesday 09:00
    [outcome] = await service.upsert([ticket(dispatched_at=later)])
    assert outcome.changed == ("dispatched_at",)
    names = deadlines_by_name(await service.get("2026112300001"))
    assert names["accept"].due_at == datetime(2026, 11, 25, 9, 0, tzinfo=TZ)
    assert names["accept"].started_at == later


# --------------------------------------------------------------------------------------------------
# 延期 (extension)
# --------------------------------------------------------------------------------------------------

NATIONAL_DAY = datetime(2026, 9, 23, 10, 0, tzinfo=TZ)  # Wednesday; 中秋 09-25, 国庆 10-01..07, 调休 Sat 10-10


async def _claimed_before_national_day(service: TicketService, clock: FrozenClock) -> str:
    """A 环卫 ticket (三个二) dispatched Wed 09-23 10:00 and claimed: handling due Thu 10-08 10:00 (5 working days
    over 中秋 and 国庆), 24 hours Thu 09-24 10:00, the written opinion (5 natural days) Mon 09-28 10:00."""
    clock.set(NATIONAL_DAY)
    no = "2026092300001"
    await service.upsert([ticket(no, dispatched_at=NATIONAL_DAY)])
    clock.advance(hours=1)
    await service.act(no, ActionRequest(action=Action.CLAIM, actor="wuhao", at=clock.now()))
    return no


async def test_an_approved_extension_moves_the_running_deadlines_on_the_working_day_calendar(
    make_service: Callable[..., TicketService], clock: FrozenClock, store: Store
) -> None:
    service = make_service(sync_url="http://127.0.0.1:9/sync")
    no = await _claimed_before_national_day(service, clock)
    before = deadlines_by_name(await service.get(no))
    assert before["handle"].due_at == datetime(2026, 10, 8, 10, 0, tzinfo=TZ)
    clock.advance(hours=1)  # 12:00
    asked = await service.act(
        no, ActionRequest(action=Action.REQUEST_EXTENSION, actor="wuhao", at=clock.now(), note="需协调物业", days=3)
    )
    assert (asked.from_state, asked.to_state) == (TicketState.CLAIMED, TicketState.CLAIMED)
    row = (await service.get(no)).ticket
    assert (row.extension_days, row.extension_reason, row.extension_requested_by) == (3, "需协调物业", "wuhao")
    assert (row.extension_requested_at, row.extension_count) == (clock.now(), 0)
    clock.advance(hours=2)
    decided = await service.act(
        no, ActionRequest(action=Action.APPROVE_EXTENSION, actor="huangqiang", at=clock.now(), note="同意")
    )
    assert decided.to_state is TicketState.CLAIMED
    detail = await service.get(no)
    assert detail.ticket.extension_days is None
    assert detail.ticket.extension_count == 1
    after = deadlines_by_name(detail)
    # each from its own due time, 3 working days: Fri 10-09, Sat 10-10 (调休, a working day), Mon 10-12
    assert after["handle"].due_at == datetime(2026, 10, 12, 10, 0, tzinfo=TZ)
    # Thu 09-24 10:00 (中秋 Fri off, the weekend): Mon, Tue, to Wed 09-30 10:00
    assert after["solve_24h"].due_at == datetime(2026, 9, 30, 10, 0, tzinfo=TZ)
    # Mon 09-28 10:00: Tue, Wed, then over 国庆 to Thu 10-08 10:00
    assert after["opinion_5d"].due_at == datetime(2026, 10, 8, 10, 0, tzinfo=TZ)
    for name in ("handle", "solve_24h", "opinion_5d"):
        assert after[name].extended_days == 3
        # the reminders start over from the new time: the engine's first step for it, as of the approval
        first = service.nag_point(name, after[name].policy, after[name].started_at, after[name].due_at, clock.now())
        assert (after[name].stage, after[name].next_due_at) == first
        assert (after[name].policy, after[name].started_at) == (before[name].policy, NATIONAL_DAY)
    # not handling deadlines: untouched
    for name in ("first_contact", "return_window", "on_site_2h"):
        assert after[name].due_at == before[name].due_at
        assert after[name].extended_days == 0
    request, approval = detail.history[-2:]
    assert (request.action, request.actor, request.note) == ("request_extension", "wuhao", "需协调物业")
    assert request.data["days"] == 3
    assert (approval.action, approval.actor, approval.from_state, approval.to_state) == (
        "approve_extension",
        "huangqiang",
        "claimed",
        "claimed",
    )
    assert approval.data["days"] == 3
    assert approval.data["reason"] == "需协调物业"
    assert approval.data["deadlines"]["handle"] == {
        "from": datetime(2026, 10, 8, 10, 0, tzinfo=TZ).isoformat(),
        "to": datetime(2026, 10, 12, 10, 0, tzinfo=TZ).isoformat(),
    }
    # the hotline hears of both, with the moved deadlines
    async with store.reading() as conn:
        synced = [r["payload"] for r in (await conn.execute(select(outbox).order_by(outbox.c.id))).mappings()]
    assert [p["action"] for p in synced][-2:] == ["request_extension", "approve_extension"]
    assert synced[-1]["data"]["deadlines"]["handle"]["to"] == "2026-10-12T10:00:00+08:00"


async def test_extension_limits_come_from_the_config(
    make_service: Callable[..., TicketService], sandbox_config: BotConfig, clock: FrozenClock
) -> None:
    data = sandbox_config.model_dump(by_alias=True)
    data["deadlines"]["extension"] = {"default_days": 2, "max_days": 4, "max_approved": 2}
    service = make_service(BotConfig.model_validate(data))
    no = await _claimed_before_national_day(service, clock)
    with pytest.raises(TransitionRefused) as refused:
        await service.act(
            no, ActionRequest(action=Action.REQUEST_EXTENSION, actor="wuhao", at=clock.now(), note="协调", days=5)
        )
    assert (refused.value.code, "1 至 4 个工作日" in refused.value.message) == ("bad_days", True)
    for days in (1, 2):  # two approved extensions are allowed here, one after the other
        await service.act(
            no, ActionRequest(action=Action.REQUEST_EXTENSION, actor="wuhao", at=clock.now(), note="协调", days=days)
        )
        await service.act(no, ActionRequest(action=Action.APPROVE_EXTENSION, actor="huangqiang", at=clock.now()))
    handle = deadlines_by_name(await service.get(no))["handle"]
    # 10-08 10:00 + 1 wd = Fri 10-09, + 2 wd = Sat 10-10 (调休), Mon 10-12
    assert (handle.due_at, handle.extended_days) == (datetime(2026, 10, 12, 10, 0, tzinfo=TZ), 3)
    with pytest.raises(TransitionRefused) as third:
        await service.act(
            no, ActionRequest(action=Action.REQUEST_EXTENSION, actor="wuhao", at=clock.now(), note="协调", days=1)
        )
    assert third.value.code == "extension_limit"


async def test_extension_refused_once_overdue_and_rejected_changes_no_deadline(
    service: TicketService, clock: FrozenClock
) -> None:
    no = await _claimed_before_national_day(service, clock)
    await service.act(
        no, ActionRequest(action=Action.REQUEST_EXTENSION, actor="wuhao", at=clock.now(), note="协调", days=2)
    )
    before = deadlines_by_name(await service.get(no))
    await service.act(
        no, ActionRequest(action=Action.REJECT_EXTENSION, actor="zhangwei", at=clock.now(), note="请按期办结")
    )
    detail = await service.get(no)
    assert deadlines_by_name(detail) == before
    assert (detail.ticket.extension_days, detail.ticket.extension_count) == (None, 0)
    assert detail.history[-1].data["rejection"] == "请按期办结"
    clock.set(datetime(2026, 10, 8, 10, 0, 1, tzinfo=TZ))  # a second after the handling deadline
    with pytest.raises(TransitionRefused) as late:
        await service.act(
            no, ActionRequest(action=Action.REQUEST_EXTENSION, actor="wuhao", at=clock.now(), note="协调", days=2)
        )
    assert late.value.code == "overdue"
    assert (await service.get(no)).ticket.version == detail.ticket.version


async def test_a_submitted_ticket_drops_its_pending_request(service: TicketService, clock: FrozenClock) -> None:
    no = await _claimed_before_national_day(service, clock)
    await service.act(
        no, ActionRequest(action=Action.REQUEST_EXTENSION, actor="wuhao", at=clock.now(), note="协调", days=2)
    )
    await service.act(no, ActionRequest(action=Action.SUBMIT, actor="wuhao", at=clock.now(), note="已清运"))
    detail = await service.get(no)
    assert detail.ticket.state == TicketState.SUBMITTED
    assert (detail.ticket.extension_days, detail.ticket.extension_requested_by) == (None, None)
    assert detail.history[-1].data["extension_dropped"] == 2
    with pytest.raises(TransitionRefused) as nothing:
        await service.act(no, ActionRequest(action=Action.APPROVE_EXTENSION, actor="huangqiang", at=clock.now()))
    assert nothing.value.code == "nothing_to_approve"


async def test_a_kind_change_keeps_an_approved_extension(service: TicketService, clock: FrozenClock) -> None:
    no = await _claimed_before_national_day(service, clock)
    await service.act(
        no, ActionRequest(action=Action.REQUEST_EXTENSION, actor="wuhao", at=clock.now(), note="协调", days=2)
    )
    await service.act(no, ActionRequest(action=Action.APPROVE_EXTENSION, actor="huangqiang", at=clock.now()))
    # the platform corrects the kind: urgent, 3 working days (Thu 09-24, Mon 09-28, to Tue 09-29 10:00), plus
    # the 2 approved (Wed 09-30, then over 国庆 to Thu 10-08 10:00)
    await service.upsert([ticket(no, dispatched_at=NATIONAL_DAY, kind=TicketKind.URGENT)])
    names = deadlines_by_name(await service.get(no))
    assert (names["handle"].due_at, names["handle"].policy) == (datetime(2026, 10, 8, 10, 0, tzinfo=TZ), "3wd")
    assert names["handle"].extended_days == 2
    assert names["handle_internal"].extended_days == 0  # new with the kind: never extended


class Recording:
    """A change hook that records what it is told (and can fail, to roll its transaction back)."""

    def __init__(self, store: Store, *, fail: bool = False) -> None:
        self.store = store
        self.fail = fail
        self.changes: list[list[object]] = []
        self.commits = 0

    async def changed(self, conn: object, changes: object) -> None:
        self.changes.append(list(changes))  # type: ignore[call-overload]
        # written in the change's own transaction: it commits, or rolls back, with the change
        await conn.execute(  # type: ignore[attr-defined]
            outbox.insert().values(
                channel="test", destination="x", idempotency_key=f"hook:{len(self.changes)}", priority=5,
                payload={}, status="pending", attempts=0, next_attempt_at=datetime(2026, 11, 23, tzinfo=TZ),
                created_at=datetime(2026, 11, 23, tzinfo=TZ),
            )
        )  # fmt: skip
        if self.fail:
            raise RuntimeError("hook failed")

    def committed(self) -> None:
        self.commits += 1


async def _hook_rows(store: Store) -> int:
    async with store.reading() as conn:
        return len((await conn.execute(select(outbox).where(outbox.c.channel == "test"))).all())


async def test_hooks_follow_every_change_in_its_transaction(
    service: TicketService, store: Store, clock: FrozenClock
) -> None:
    hook = Recording(store)
    service.add_hook(hook)
    await service.upsert([ticket("2026112300001"), ticket("2026112300002", category="市容景观")])
    [created] = hook.changes
    assert [(c.action, c.ticket_no, c.to_state, c.source, c.dated) for c in created] == [  # type: ignore[attr-defined]
        ("dispatch", "2026112300001", TicketState.DISPATCHED, "api", False),
        ("dispatch", "2026112300002", TicketState.DISPATCHED, "api", False),
    ]
    assert {d.name for d in created[0].deadlines} >= {"accept", "handle"}  # type: ignore[attr-defined]
    assert hook.commits == 1
    await service.upsert([ticket("2026112300001")])  # unchanged: nothing to tell
    await service.act("2026112300001", ActionRequest(action=Action.CLAIM, actor="wuhao", at=clock.now()))
    [claim] = hook.changes[-1]
    assert (claim.action, claim.from_state, claim.to_state, claim.from_unit, claim.deadlines) == (  # type: ignore[attr-defined]
        "claim", TicketState.DISPATCHED, TicketState.CLAIMED, "HW", [],
    )  # fmt: skip
    assert claim.ticket.handler_userid == "wuhao"  # type: ignore[attr-defined]
    with pytest.raises(TransitionRefused):
        await service.act("2026112300001", ActionRequest(action=Action.CLAIM, actor="wuhao", at=clock.now()))
    await service.act(
        "2026112300002", ActionRequest(action=Action.REDISPATCH, actor="zhangwei", at=clock.now(), unit="HW")
    )
    [moved] = hook.changes[-1]
    assert (moved.action, moved.from_unit, moved.ticket.unit_code, moved.ticket.cycle) == (
        "redispatch",
        "SRJG",
        "HW",
        2,
    )  # type: ignore[attr-defined]
    assert {d.cycle for d in moved.deadlines} == {2}  # type: ignore[attr-defined]
    assert (len(hook.changes), hook.commits, await _hook_rows(store)) == (3, 3, 3)


async def test_a_failing_hook_rolls_its_change_back(service: TicketService, store: Store, clock: FrozenClock) -> None:
    hook = Recording(store, fail=True)
    service.add_hook(hook)
    with pytest.raises(RuntimeError, match="hook failed"):
        await service.upsert([ticket("2026112300003")])
    with pytest.raises(TicketNotFound):
        await service.get("2026112300003")
    assert (hook.commits, await _hook_rows(store)) == (0, 0)
