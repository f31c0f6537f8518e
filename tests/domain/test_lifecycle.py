"""The ticket state machine (bot.domain.lifecycle), against a table written out from DOMAIN.md and seed 004.

The expected outcome of every (state, action) pair is spelled out below by hand; nothing is taken from the
module's private tables.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import pytest

from bot.domain.clock import TZ
from bot.domain.lifecycle import (
    MAX_EXTENSION_DAYS,
    MAX_EXTENSIONS,
    MAX_REDISPATCHES,
    RETURNS_BEFORE_ASSIGNMENT,
    Action,
    ActionRequest,
    Evaluation,
    ExtensionLimits,
    TicketSnapshot,
    TicketState,
    Transition,
    TransitionRefused,
    VisitResult,
    decide,
)
from config.vocabulary import DeadlineName, TicketKind

S = TicketState
A = Action
D = DeadlineName

NO = "2026112200123"
AT = datetime(2026, 11, 23, 10, 0, tzinfo=TZ)  # Monday
WINDOW = datetime(2026, 11, 24, 15, 0, tzinfo=TZ)  # dispatched Fri 11-20 15:00 + 2wd
OPEN: dict[DeadlineName, datetime] = {
    D.ACCEPT: datetime(2026, 11, 23, 15, 0, tzinfo=TZ),
    D.FIRST_CONTACT: datetime(2026, 11, 23, 15, 0, tzinfo=TZ),
    D.RETURN_WINDOW: WINDOW,
    D.HANDLE: datetime(2026, 11, 27, 15, 0, tzinfo=TZ),
    # a warning ticket's re-handling deadline (only warning tickets look at it: 延期 in 预警·再次处置中)
    D.REHANDLE: datetime(2026, 11, 26, 10, 0, tzinfo=TZ),
}
CJK = re.compile(r"[\u4e00-\u9fff]")

# --------------------------------------------------------------------------------------------------
# Deadline sets, written out (DOMAIN.md: what each step fulfils)
# --------------------------------------------------------------------------------------------------

ALL = frozenset(DeadlineName)
NONE: frozenset[DeadlineName] = frozenset()
# contacting the citizen also accepts the ticket (先行接单 + 先行联系, and 三个二's 20 minutes)
CONTACT_MET = frozenset({D.ACCEPT, D.FIRST_CONTACT, D.CONTACT_20M})
ON_SITE_MET = frozenset({D.ON_SITE_2H})
# submitting fulfils every handling deadline; the contact/on-site/return ones are no longer due
SUBMIT_MET = frozenset({D.ACCEPT, D.HANDLE, D.HANDLE_INTERNAL, D.SOLVE_24H, D.OPINION_5D, D.REHANDLE})
SUBMIT_CANCEL = frozenset({D.FIRST_CONTACT, D.RETURN_WINDOW, D.CONTACT_20M, D.ON_SITE_2H})

# --------------------------------------------------------------------------------------------------
# Tickets and requests
# --------------------------------------------------------------------------------------------------

HANDLER = "alice"  # who holds the ticket in the states that have a handler
ACTOR = "bob"  # who asks
OTHER = "carol"  # transfer target


def snap(state: TicketState, **fields: Any) -> TicketSnapshot:
    """A plausible ticket in ``state``: handler, counters and return bookkeeping as that state implies."""
    base: dict[str, Any] = {
        "ticket_no": NO,
        "kind": TicketKind.REGULAR,
        "state": state,
        "unit_code": "SRJGS",
        "handler_userid": None,
        "category": "市容景观",
        "cycle": 1,
    }
    if state in (S.CLAIMED, S.CONTACTED, S.ON_SITE, S.SUBMITTED, S.WARNING, S.RETURN_REQUESTED, S.CLOSED):
        base["handler_userid"] = HANDLER
    if state is S.RETURN_REQUESTED:
        base["state_before_return"] = S.CLAIMED
    if state is S.RETURNED:
        base["return_count"] = 1
    if state is S.PENDING_ASSIGNMENT:
        base["return_count"] = 2
    if state is S.WARNING:
        base["rehandle_count"] = 1
        base["cycle"] = 2
    base.update(fields)
    return TicketSnapshot(**base)


def req(action: Action, **fields: Any) -> ActionRequest:
    """A complete request: every field the action needs is filled in, so only the state decides."""
    base: dict[str, Any] = {"action": action, "actor": ACTOR, "at": AT, "note": "情况说明"}
    if action in (A.REQUEST_RETURN, A.REDISPATCH, A.ASSIGN):
        base["unit"] = "HWK"
    if action is A.TRANSFER:
        base["handler"] = OTHER
    if action is A.VISIT:
        base["result"] = VisitResult.SATISFIED
    if action is A.REQUEST_EXTENSION:
        base["days"] = 3
    base.update(fields)
    return ActionRequest(**base)


def refused(
    ticket: TicketSnapshot, request: ActionRequest, deadlines: Mapping[DeadlineName, datetime] | None = None
) -> TransitionRefused:
    with pytest.raises(TransitionRefused) as excinfo:
        decide(ticket, request, OPEN if deadlines is None else deadlines)
    return excinfo.value


def apply(ticket: TicketSnapshot, tr: Transition) -> TicketSnapshot:
    """The snapshot after ``tr``, as the service would store and reload it."""
    updates: dict[str, Any] = {"state": tr.to_state}
    fields = {f.name for f in dataclasses.fields(TicketSnapshot)}
    for key, value in tr.changes.items():
        if key not in fields:
            continue  # dispatched_at, closed_at, satisfaction: columns the snapshot does not carry
        if key == "state_before_return" and value is not None:
            value = TicketState(value)
        if key == "evaluation":
            value = Evaluation(value)
        updates[key] = value
    if tr.new_cycle is not None:
        updates["cycle"] = ticket.cycle + 1
    return dataclasses.replace(ticket, **updates)


def run(ticket: TicketSnapshot, *requests: ActionRequest) -> TicketSnapshot:
    for request in requests:
        ticket = apply(ticket, decide(ticket, request, OPEN))
    return ticket


def check_message(error: TransitionRefused, *, names_ticket: bool) -> None:
    assert error.message
    assert str(error) == error.message
    assert CJK.search(error.message), error.message
    if names_ticket:
        assert NO in error.message, error.message


# --------------------------------------------------------------------------------------------------
# The table: every allowed (state, action), with its target state and effects
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Expect:
    to: TicketState
    changes: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    meet: frozenset[DeadlineName] = NONE
    cancel: frozenset[DeadlineName] = NONE
    new_cycle: str | None = None
    extend: frozenset[DeadlineName] = NONE
    extend_days: int = 0


def excl(state: TicketState) -> Expect:
    """不纳入测评 asked for: the state stays, the evaluation goes to 'requested'."""
    return Expect(state, {"evaluation": "requested"})


def ext(state: TicketState) -> Expect:
    """延期 asked for (3 working days): the state stays, the request waits on the ticket for approval."""
    pending = {
        "extension_days": 3,
        "extension_reason": "情况说明",
        "extension_requested_by": ACTOR,
        "extension_requested_at": AT,
    }
    return Expect(state, pending)


CANCEL = Expect(S.CANCELLED, {"closed_at": AT}, cancel=ALL)
# a new unit gets the ticket: no handler, a new dispatch cycle from now
REDISPATCHED = {"unit_code": "HWK", "handler_userid": None, "dispatched_at": AT, "state_before_return": None}

ALLOWED: list[Any] = [
    # 待接单: a unit member claims, contacts (an implicit claim) or answers at once; or returns it
    (S.DISPATCHED, A.CLAIM, Expect(S.CLAIMED, {"handler_userid": ACTOR}, meet=frozenset({D.ACCEPT}))),
    (S.DISPATCHED, A.CONTACT, Expect(S.CONTACTED, {"handler_userid": ACTOR}, meet=CONTACT_MET)),
    (
        S.DISPATCHED,
        A.SUBMIT,
        Expect(S.SUBMITTED, {"handler_userid": ACTOR}, meet=SUBMIT_MET, cancel=SUBMIT_CANCEL),
    ),
    (S.DISPATCHED, A.REQUEST_RETURN, Expect(S.RETURN_REQUESTED, {"state_before_return": "dispatched"})),
    (S.DISPATCHED, A.REQUEST_EXCLUSION, excl(S.DISPATCHED)),
    (S.DISPATCHED, A.CANCEL, CANCEL),
    # nobody has claimed it: the dispatcher routes it by hand, not counted as the one re-dispatch
    (S.DISPATCHED, A.REDISPATCH, Expect(S.DISPATCHED, REDISPATCHED, cancel=ALL, new_cycle="dispatch")),
    # 已接单
    (S.CLAIMED, A.CONTACT, Expect(S.CONTACTED, meet=CONTACT_MET)),
    (S.CLAIMED, A.ON_SITE, Expect(S.ON_SITE, meet=ON_SITE_MET)),
    (S.CLAIMED, A.SUBMIT, Expect(S.SUBMITTED, meet=SUBMIT_MET, cancel=SUBMIT_CANCEL)),
    (S.CLAIMED, A.REQUEST_RETURN, Expect(S.RETURN_REQUESTED, {"state_before_return": "claimed"})),
    (S.CLAIMED, A.TRANSFER, Expect(S.CLAIMED, {"handler_userid": OTHER})),
    (S.CLAIMED, A.REQUEST_EXCLUSION, excl(S.CLAIMED)),
    (S.CLAIMED, A.REQUEST_EXTENSION, ext(S.CLAIMED)),
    (S.CLAIMED, A.CANCEL, CANCEL),
    # 已联系
    (S.CONTACTED, A.ON_SITE, Expect(S.ON_SITE, meet=ON_SITE_MET)),
    (S.CONTACTED, A.SUBMIT, Expect(S.SUBMITTED, meet=SUBMIT_MET, cancel=SUBMIT_CANCEL)),
    (S.CONTACTED, A.REQUEST_RETURN, Expect(S.RETURN_REQUESTED, {"state_before_return": "contacted"})),
    (S.CONTACTED, A.TRANSFER, Expect(S.CONTACTED, {"handler_userid": OTHER})),
    (S.CONTACTED, A.REQUEST_EXCLUSION, excl(S.CONTACTED)),
    (S.CONTACTED, A.REQUEST_EXTENSION, ext(S.CONTACTED)),
    (S.CONTACTED, A.CANCEL, CANCEL),
    # 已到场
    # contact recorded after the visit: the state stays, the contact deadlines are met
    (S.ON_SITE, A.CONTACT, Expect(S.ON_SITE, meet=CONTACT_MET)),
    (S.ON_SITE, A.SUBMIT, Expect(S.SUBMITTED, meet=SUBMIT_MET, cancel=SUBMIT_CANCEL)),
    (S.ON_SITE, A.REQUEST_RETURN, Expect(S.RETURN_REQUESTED, {"state_before_return": "on_site"})),
    (S.ON_SITE, A.TRANSFER, Expect(S.ON_SITE, {"handler_userid": OTHER})),
    (S.ON_SITE, A.REQUEST_EXCLUSION, excl(S.ON_SITE)),
    (S.ON_SITE, A.REQUEST_EXTENSION, ext(S.ON_SITE)),
    (S.ON_SITE, A.CANCEL, CANCEL),
    # 已提交待回访: the dispatcher's return visit closes it (satisfied) or makes it a warning ticket
    (
        S.SUBMITTED,
        A.VISIT,
        Expect(S.CLOSED, {"satisfaction": "satisfied", "closed_at": AT}, cancel=ALL),
    ),
    (S.SUBMITTED, A.REQUEST_EXCLUSION, excl(S.SUBMITTED)),
    (S.SUBMITTED, A.CANCEL, CANCEL),
    # 预警·再次处置中: the unit records contact / on-site again and re-submits; no return any more
    (S.WARNING, A.CONTACT, Expect(S.WARNING, meet=CONTACT_MET)),
    (S.WARNING, A.ON_SITE, Expect(S.WARNING, meet=ON_SITE_MET)),
    (S.WARNING, A.SUBMIT, Expect(S.SUBMITTED, meet=SUBMIT_MET, cancel=SUBMIT_CANCEL)),
    (S.WARNING, A.TRANSFER, Expect(S.WARNING, {"handler_userid": OTHER})),
    (S.WARNING, A.REQUEST_EXCLUSION, excl(S.WARNING)),
    (S.WARNING, A.REQUEST_EXTENSION, ext(S.WARNING)),
    (S.WARNING, A.CANCEL, CANCEL),
    # 退单审核中: the dispatcher approves (first return -> 已退单待重派) or rejects (back where it was)
    (
        S.RETURN_REQUESTED,
        A.APPROVE_RETURN,
        Expect(
            S.RETURNED,
            {"return_count": 1, "handler_userid": None, "state_before_return": None},
            cancel=ALL,
        ),
    ),
    (S.RETURN_REQUESTED, A.REJECT_RETURN, Expect(S.CLAIMED, {"state_before_return": None})),
    (S.RETURN_REQUESTED, A.REQUEST_EXCLUSION, excl(S.RETURN_REQUESTED)),
    (S.RETURN_REQUESTED, A.CANCEL, CANCEL),
    # 已退单待重派: re-dispatched once (counted) or decided by the center lead (签派)
    (
        S.RETURNED,
        A.REDISPATCH,
        Expect(S.DISPATCHED, {**REDISPATCHED, "redispatch_count": 1}, cancel=ALL, new_cycle="dispatch"),
    ),
    (S.RETURNED, A.ASSIGN, Expect(S.DISPATCHED, REDISPATCHED, cancel=ALL, new_cycle="dispatch")),
    (S.RETURNED, A.REQUEST_EXCLUSION, excl(S.RETURNED)),
    (S.RETURNED, A.CANCEL, CANCEL),
    # 待签派
    (S.PENDING_ASSIGNMENT, A.ASSIGN, Expect(S.DISPATCHED, REDISPATCHED, cancel=ALL, new_cycle="dispatch")),
    (S.PENDING_ASSIGNMENT, A.REQUEST_EXCLUSION, excl(S.PENDING_ASSIGNMENT)),
    (S.PENDING_ASSIGNMENT, A.CANCEL, CANCEL),
    # 已办结: may still go up for 不纳入测评, or be reopened (a new dispatch cycle)
    (S.CLOSED, A.REQUEST_EXCLUSION, excl(S.CLOSED)),
    (
        S.CLOSED,
        A.REOPEN,
        Expect(
            S.DISPATCHED,
            {"closed_at": None, "satisfaction": None, "handler_userid": None, "dispatched_at": AT},
            new_cycle="dispatch",
        ),
    ),
    # 已撤销: nothing
]

_INVALID = "invalid_state"
_NOTHING = "nothing_to_approve"  # the exclusion and extension decisions, with no pending request


def _refusals(allowed: set[Action], **special: str) -> dict[Action, str]:
    """Every action not allowed is refused as invalid_state, unless ``special`` names another code."""
    codes = {a: _INVALID for a in Action if a not in allowed}
    codes[A.APPROVE_EXCLUSION] = _NOTHING
    codes[A.REJECT_EXCLUSION] = _NOTHING
    codes[A.APPROVE_EXTENSION] = _NOTHING
    codes[A.REJECT_EXTENSION] = _NOTHING
    codes.update({Action(k): v for k, v in special.items()})
    return codes


# Written out per state: what each state refuses, and with which code.
REFUSED: dict[TicketState, dict[Action, str]] = {
    S.DISPATCHED: _refusals(
        {A.CLAIM, A.CONTACT, A.SUBMIT, A.REQUEST_RETURN, A.REDISPATCH, A.REQUEST_EXCLUSION, A.CANCEL},
        request_extension="claim_first",
    ),
    S.CLAIMED: _refusals(
        {
            A.CONTACT,
            A.ON_SITE,
            A.SUBMIT,
            A.REQUEST_RETURN,
            A.TRANSFER,
            A.REQUEST_EXCLUSION,
            A.REQUEST_EXTENSION,
            A.CANCEL,
        },
        claim="already_claimed",
    ),
    S.CONTACTED: _refusals(
        {A.ON_SITE, A.SUBMIT, A.REQUEST_RETURN, A.TRANSFER, A.REQUEST_EXCLUSION, A.REQUEST_EXTENSION, A.CANCEL},
        claim="already_claimed",
        contact="already_done",
    ),
    S.ON_SITE: _refusals(
        {A.CONTACT, A.SUBMIT, A.REQUEST_RETURN, A.TRANSFER, A.REQUEST_EXCLUSION, A.REQUEST_EXTENSION, A.CANCEL},
        claim="already_claimed",
        on_site="already_done",
    ),
    S.SUBMITTED: _refusals({A.VISIT, A.REQUEST_EXCLUSION, A.CANCEL}),
    S.WARNING: _refusals(
        {A.CONTACT, A.ON_SITE, A.SUBMIT, A.TRANSFER, A.REQUEST_EXCLUSION, A.REQUEST_EXTENSION, A.CANCEL}
    ),
    S.RETURN_REQUESTED: _refusals({A.APPROVE_RETURN, A.REJECT_RETURN, A.REQUEST_EXCLUSION, A.CANCEL}),
    S.RETURNED: _refusals({A.REDISPATCH, A.ASSIGN, A.REQUEST_EXCLUSION, A.CANCEL}),
    S.PENDING_ASSIGNMENT: _refusals({A.ASSIGN, A.REQUEST_EXCLUSION, A.CANCEL}, redispatch="assignment_required"),
    S.CLOSED: _refusals({A.REQUEST_EXCLUSION, A.REOPEN}),
    S.CANCELLED: _refusals(set()),
}

# refusal codes whose message names the ticket
NAMES_TICKET = {
    "invalid_state",
    "already_claimed",
    "already_done",
    "assignment_required",
    "redispatch_limit",
    "return_window_closed",
    "already_requested",
    "nothing_to_approve",
    "claim_first",
    "extension_limit",
    "overdue",
    "no_deadline",
    "own_request",
}


def _pair(entry: Any) -> tuple[TicketState, Action]:
    values = entry.values if hasattr(entry, "values") else entry
    return values[0], values[1]


def test_the_table_covers_every_state_and_action_exactly_once() -> None:
    allowed = [_pair(e) for e in ALLOWED]
    assert len(allowed) == len(set(allowed))
    refused_pairs = {(s, a) for s, codes in REFUSED.items() for a in codes}
    assert not set(allowed) & refused_pairs
    assert set(allowed) | refused_pairs == {(s, a) for s in TicketState for a in Action}


@pytest.mark.parametrize(
    ("state", "action", "expect"),
    [e if hasattr(e, "values") else pytest.param(*e, id=f"{e[0].value}-{e[1].value}") for e in ALLOWED],
)
def test_allowed(state: TicketState, action: Action, expect: Expect) -> None:
    tr = decide(snap(state), req(action), OPEN)
    assert tr.to_state is expect.to
    assert dict(tr.changes) == dict(expect.changes)
    assert tr.meet == expect.meet
    assert tr.cancel == expect.cancel
    assert tr.new_cycle == expect.new_cycle
    assert (tr.extend, tr.extend_days) == (expect.extend, expect.extend_days)
    assert not tr.meet & tr.cancel


@pytest.mark.parametrize(
    ("state", "action", "code"),
    [pytest.param(s, a, code, id=f"{s.value}-{a.value}") for s, codes in REFUSED.items() for a, code in codes.items()],
)
def test_refused(state: TicketState, action: Action, code: str) -> None:
    error = refused(snap(state), req(action))
    assert error.code == code
    check_message(error, names_ticket=code in NAMES_TICKET)
    if code == "invalid_state":
        assert state.label in error.message
        assert action.label in error.message


def test_constants() -> None:
    assert RETURNS_BEFORE_ASSIGNMENT == 2  # 有两个部门以上退单 -> 签派
    assert MAX_REDISPATCHES == 1  # 重新派单一次
    # 延期: up to 10 working days a request, one approved extension a ticket (configurable: deadlines.extension)
    assert (MAX_EXTENSION_DAYS, MAX_EXTENSIONS) == (10, 1)
    assert ExtensionLimits() == ExtensionLimits(max_days=10, max_count=1)


def test_every_state_and_action_has_a_chinese_label() -> None:
    for item in (*TicketState, *Action, *VisitResult):
        assert CJK.search(item.label)
    assert {s for s in TicketState if not s.is_open} == {S.CLOSED, S.CANCELLED}


# --------------------------------------------------------------------------------------------------
# Claim and contact
# --------------------------------------------------------------------------------------------------


def test_second_claim_is_refused_naming_the_first_claimer() -> None:
    ticket = run(snap(S.DISPATCHED), req(A.CLAIM, actor="zhangsan"))
    assert (ticket.state, ticket.handler_userid) == (S.CLAIMED, "zhangsan")
    error = refused(ticket, req(A.CLAIM, actor="lisi"))
    assert error.code == "already_claimed"
    assert "zhangsan" in error.message
    check_message(error, names_ticket=True)
    # still refused once the first claimer has contacted the citizen or is on site
    for later in (run(ticket, req(A.CONTACT, actor="zhangsan")), run(ticket, req(A.ON_SITE, actor="zhangsan"))):
        error = refused(later, req(A.CLAIM, actor="lisi"))
        assert (error.code, "zhangsan" in error.message) == ("already_claimed", True)


def test_claim_on_behalf_of_a_colleague() -> None:
    tr = decide(snap(S.DISPATCHED), req(A.CLAIM, handler="wangwu"), OPEN)
    assert tr.changes == {"handler_userid": "wangwu"}


def test_contact_from_dispatched_claims_implicitly() -> None:
    tr = decide(snap(S.DISPATCHED), req(A.CONTACT, actor="zhangsan"), OPEN)
    assert tr.to_state is S.CONTACTED
    assert tr.changes["handler_userid"] == "zhangsan"
    assert {D.ACCEPT, D.FIRST_CONTACT} <= tr.meet


def test_contact_by_a_colleague_keeps_the_claimer() -> None:
    tr = decide(snap(S.CLAIMED), req(A.CONTACT, actor="someone_else"), OPEN)
    assert tr.to_state is S.CONTACTED
    assert "handler_userid" not in tr.changes


def test_contact_and_on_site_twice_are_already_done() -> None:
    ticket = run(snap(S.DISPATCHED), req(A.CONTACT), req(A.ON_SITE))
    assert ticket.state is S.ON_SITE
    error = refused(ticket, req(A.ON_SITE))
    assert error.code == "already_done"
    check_message(error, names_ticket=True)


def test_on_site_needs_a_claim_first() -> None:
    error = refused(snap(S.DISPATCHED), req(A.ON_SITE))
    assert error.code == "invalid_state"


# --------------------------------------------------------------------------------------------------
# Submit and return visit
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("note", [None, "", "   \n"])
@pytest.mark.parametrize("state", [S.DISPATCHED, S.CLAIMED, S.CONTACTED, S.ON_SITE, S.WARNING])
def test_submit_requires_a_note(state: TicketState, note: str | None) -> None:
    error = refused(snap(state), req(A.SUBMIT, note=note))
    assert error.code == "note_required"
    check_message(error, names_ticket=False)


def test_submit_records_the_result_and_whether_it_was_a_rehandling() -> None:
    first = decide(snap(S.CLAIMED), req(A.SUBMIT, note="  已清运  "), OPEN)
    assert first.data == {"result": "已清运", "rehandle": False}
    again = decide(snap(S.WARNING), req(A.SUBMIT, note="负责人到场复查"), OPEN)
    assert again.data == {"result": "负责人到场复查", "rehandle": True}


def test_submit_state_is_checked_before_the_note() -> None:
    assert refused(snap(S.CLOSED), req(A.SUBMIT, note=None)).code == "invalid_state"


@pytest.mark.parametrize("result", [VisitResult.SATISFIED, VisitResult.BASICALLY_SATISFIED, VisitResult.UNREACHABLE])
def test_visit_not_dissatisfied_closes(result: VisitResult) -> None:
    tr = decide(snap(S.SUBMITTED), req(A.VISIT, result=result), OPEN)
    assert tr.to_state is S.CLOSED
    assert tr.changes == {"satisfaction": result.value, "closed_at": AT}
    assert tr.cancel == ALL
    assert tr.new_cycle is None


@pytest.mark.parametrize("rehandles", [0, 1, 3])
def test_visit_dissatisfied_makes_a_warning_ticket_with_a_rehandle_cycle(rehandles: int) -> None:
    ticket = snap(S.SUBMITTED, rehandle_count=rehandles)
    tr = decide(ticket, req(A.VISIT, result=VisitResult.DISSATISFIED), OPEN)
    assert tr.to_state is S.WARNING
    assert tr.new_cycle == "rehandle"
    assert tr.changes == {"satisfaction": "dissatisfied", "rehandle_count": rehandles + 1}
    assert "handler_userid" not in tr.changes  # the same unit and handler re-handle it
    assert tr.data == {"result": "dissatisfied"}


def test_visit_requires_a_result() -> None:
    error = refused(snap(S.SUBMITTED), req(A.VISIT, result=None))
    assert error.code == "result_required"
    check_message(error, names_ticket=False)


def test_warning_cycle_end_to_end() -> None:
    ticket = run(
        snap(S.DISPATCHED, handler_userid=None, cycle=1),
        req(A.CLAIM, actor="zhangsan"),
        req(A.SUBMIT, actor="zhangsan"),
        req(A.VISIT, result=VisitResult.DISSATISFIED),
    )
    assert (ticket.state, ticket.rehandle_count, ticket.cycle) == (S.WARNING, 1, 2)
    # a warning ticket cannot be returned any more: it is already the unit's
    assert refused(ticket, req(A.REQUEST_RETURN), {}).code == "invalid_state"
    ticket = run(ticket, req(A.SUBMIT, actor="zhangsan"), req(A.VISIT, result=VisitResult.DISSATISFIED))
    assert (ticket.state, ticket.rehandle_count, ticket.cycle) == (S.WARNING, 2, 3)
    ticket = run(ticket, req(A.SUBMIT), req(A.VISIT, result=VisitResult.BASICALLY_SATISFIED))
    assert ticket.state is S.CLOSED


# --------------------------------------------------------------------------------------------------
# Returns (退单)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("note", [None, "", "  "])
def test_return_needs_a_reason(note: str | None) -> None:
    error = refused(snap(S.CLAIMED), req(A.REQUEST_RETURN, note=note))
    assert error.code == "reason_required"
    check_message(error, names_ticket=False)


@pytest.mark.parametrize("unit", [None, "", "  "])
def test_return_needs_a_suggested_unit(unit: str | None) -> None:
    error = refused(snap(S.CLAIMED), req(A.REQUEST_RETURN, unit=unit))
    assert error.code == "unit_required"
    check_message(error, names_ticket=False)


def test_return_records_reason_and_suggested_unit() -> None:
    tr = decide(snap(S.CONTACTED), req(A.REQUEST_RETURN, note=" 属于物业管理范围 ", unit=" 房管办 "), OPEN)
    assert tr.data == {"reason": "属于物业管理范围", "suggested_unit": "房管办"}


@pytest.mark.parametrize(
    "at",
    [AT, WINDOW - timedelta(microseconds=1), WINDOW],
    ids=["well-inside", "just-before", "at-the-deadline"],
)
def test_return_inside_the_window(at: datetime) -> None:
    tr = decide(snap(S.CLAIMED), req(A.REQUEST_RETURN, at=at), OPEN)
    assert tr.to_state is S.RETURN_REQUESTED


@pytest.mark.parametrize(
    "at", [WINDOW + timedelta(microseconds=1), WINDOW + timedelta(days=3)], ids=["just-after", "days-after"]
)
def test_return_after_the_window_is_refused(at: datetime) -> None:
    error = refused(snap(S.CLAIMED), req(A.REQUEST_RETURN, at=at))
    assert error.code == "return_window_closed"
    check_message(error, names_ticket=True)
    assert "11-24 15:00" in error.message  # says when the window closed


def test_return_without_a_window_is_refused() -> None:
    # a returnable state whose window is no longer open (passed, or never planned)
    error = refused(snap(S.CLAIMED), req(A.REQUEST_RETURN), {D.HANDLE: OPEN[D.HANDLE]})
    assert error.code == "return_window_closed"
    check_message(error, names_ticket=True)


@pytest.mark.parametrize("state", [S.WARNING, S.SUBMITTED, S.RETURNED, S.CLOSED])
def test_return_from_a_state_without_a_window_is_refused(state: TicketState) -> None:
    error = refused(snap(state), req(A.REQUEST_RETURN), {})
    assert error.code == "invalid_state"
    check_message(error, names_ticket=True)


def test_reject_return_goes_back_where_it_was() -> None:
    for before in (S.DISPATCHED, S.CLAIMED, S.CONTACTED, S.ON_SITE):
        ticket = run(snap(before), req(A.REQUEST_RETURN))
        assert (ticket.state, ticket.state_before_return) == (S.RETURN_REQUESTED, before)
        back = run(ticket, req(A.REJECT_RETURN))
        assert (back.state, back.state_before_return, back.return_count) == (before, None, 0)
    # an old row without the bookkeeping goes back to 待接单
    tr = decide(snap(S.RETURN_REQUESTED, state_before_return=None), req(A.REJECT_RETURN), OPEN)
    assert tr.to_state is S.DISPATCHED


def test_first_approved_return_waits_for_redispatch() -> None:
    ticket = run(snap(S.CLAIMED), req(A.REQUEST_RETURN), req(A.APPROVE_RETURN))
    assert (ticket.state, ticket.return_count, ticket.handler_userid) == (S.RETURNED, 1, None)


def test_second_return_goes_to_the_center_lead() -> None:
    tr = decide(snap(S.RETURN_REQUESTED, return_count=1), req(A.APPROVE_RETURN), OPEN)
    assert tr.to_state is S.PENDING_ASSIGNMENT
    assert tr.changes["return_count"] == 2
    assert tr.data == {"returns": 2, "to_assignment": True}


def test_redispatched_ticket_returned_again_goes_to_the_center_lead() -> None:
    tr = decide(snap(S.RETURN_REQUESTED, return_count=0, redispatch_count=1), req(A.APPROVE_RETURN), OPEN)
    assert tr.to_state is S.PENDING_ASSIGNMENT


def test_two_units_return_then_the_center_lead_assigns() -> None:
    ticket = run(
        snap(S.DISPATCHED),
        req(A.CLAIM, actor="unit_a"),
        req(A.REQUEST_RETURN, unit="HWK"),
        req(A.APPROVE_RETURN),
        req(A.REDISPATCH, unit="HWK"),
    )
    assert (ticket.state, ticket.unit_code, ticket.redispatch_count, ticket.cycle) == (S.DISPATCHED, "HWK", 1, 2)
    ticket = run(ticket, req(A.CLAIM, actor="unit_b"), req(A.REQUEST_RETURN, unit="LHSQ"), req(A.APPROVE_RETURN))
    assert (ticket.state, ticket.return_count) == (S.PENDING_ASSIGNMENT, 2)
    error = refused(ticket, req(A.REDISPATCH, unit="LHSQ"))
    assert error.code == "assignment_required"
    check_message(error, names_ticket=True)
    ticket = run(ticket, req(A.ASSIGN, unit="LHSQ"))
    assert (ticket.state, ticket.unit_code, ticket.redispatch_count, ticket.handler_userid) == (
        S.DISPATCHED,
        "LHSQ",
        1,  # 签派 is not a re-dispatch
        None,
    )


# --------------------------------------------------------------------------------------------------
# Re-dispatch, assignment, transfer
# --------------------------------------------------------------------------------------------------


def test_redispatch_once_then_the_limit() -> None:
    tr = decide(snap(S.RETURNED, redispatch_count=0), req(A.REDISPATCH), OPEN)
    assert tr.to_state is S.DISPATCHED
    assert tr.changes["redispatch_count"] == 1
    assert tr.data == {"from_unit": "SRJGS", "to_unit": "HWK"}
    error = refused(snap(S.RETURNED, redispatch_count=1), req(A.REDISPATCH))
    assert error.code == "redispatch_limit"
    check_message(error, names_ticket=True)


def test_redispatch_from_pending_assignment_needs_the_center_lead() -> None:
    error = refused(snap(S.PENDING_ASSIGNMENT), req(A.REDISPATCH))
    assert error.code == "assignment_required"
    check_message(error, names_ticket=True)


@pytest.mark.parametrize("action", [A.REDISPATCH, A.ASSIGN])
@pytest.mark.parametrize("unit", [None, "", "  "])
def test_redispatch_and_assign_need_a_unit(action: Action, unit: str | None) -> None:
    error = refused(snap(S.RETURNED), req(action, unit=unit))
    assert error.code == "unit_required"
    check_message(error, names_ticket=False)


OPEN_STATES = [s for s in TicketState if s.is_open]


@pytest.mark.parametrize("state", OPEN_STATES)
@pytest.mark.parametrize("redispatches", [0, 1])
def test_hotline_redispatch_from_any_open_state_is_not_counted(state: TicketState, redispatches: int) -> None:
    ticket = snap(state, redispatch_count=redispatches)
    tr = decide(ticket, req(A.REDISPATCH, actor="hotline", unit="GYS", by_hotline=True), OPEN)
    assert tr.to_state is S.DISPATCHED
    assert tr.changes == {"unit_code": "GYS", "handler_userid": None, "dispatched_at": AT, "state_before_return": None}
    assert tr.new_cycle == "dispatch"
    assert tr.cancel == ALL


@pytest.mark.parametrize("state", [S.CLOSED, S.CANCELLED])
def test_hotline_redispatch_of_a_finished_ticket_is_refused(state: TicketState) -> None:
    error = refused(snap(state), req(A.REDISPATCH, by_hotline=True))
    assert error.code == "invalid_state"
    check_message(error, names_ticket=True)


def test_dispatcher_can_route_a_fallback_ticket_by_hand() -> None:
    ticket = snap(S.DISPATCHED, unit_code="TSZJ")
    outcomes = []
    for action in (A.REDISPATCH, A.ASSIGN):
        try:
            outcomes.append(decide(ticket, req(action, actor="wujiayi", unit="HWK"), OPEN))
        except TransitionRefused:
            continue
    assert any(tr.to_state is S.DISPATCHED and tr.changes.get("unit_code") == "HWK" for tr in outcomes)


def test_transfer_needs_a_different_handler() -> None:
    error = refused(snap(S.CLAIMED), req(A.TRANSFER, handler=None))
    assert error.code == "handler_required"
    check_message(error, names_ticket=False)
    error = refused(snap(S.CLAIMED), req(A.TRANSFER, handler="  "))
    assert error.code == "handler_required"
    error = refused(snap(S.CONTACTED), req(A.TRANSFER, handler=HANDLER))
    assert error.code == "same_handler"
    check_message(error, names_ticket=False)
    tr = decide(snap(S.WARNING), req(A.TRANSFER, handler=" carol "), OPEN)
    assert (tr.to_state, dict(tr.changes)) == (S.WARNING, {"handler_userid": "carol"})
    assert tr.data == {"from": HANDLER, "to": "carol"}


# --------------------------------------------------------------------------------------------------
# 延期 (extension): request, approve, reject
# --------------------------------------------------------------------------------------------------

REQUESTER = "zhouting"
APPROVER = "chenjing"
EXTENDABLE = [S.CLAIMED, S.CONTACTED, S.ON_SITE, S.WARNING]
# a 三个二 ticket's open deadlines of the current cycle, one of them (24 hours) already missed
THREE_TWOS_OPEN: dict[DeadlineName, datetime] = {
    D.HANDLE: datetime(2026, 11, 27, 15, 0, tzinfo=TZ),
    D.SOLVE_24H: AT - timedelta(hours=3),  # before the request (AT - 2 h)
    D.OPINION_5D: datetime(2026, 11, 25, 15, 0, tzinfo=TZ),
    D.RETURN_WINDOW: WINDOW,
    D.FIRST_CONTACT: datetime(2026, 11, 23, 15, 0, tzinfo=TZ),
}


def pending(state: TicketState = S.CONTACTED, days: int = 3, **fields: Any) -> TicketSnapshot:
    """A ticket in ``state`` with an extension request of ``days`` working days waiting for approval."""
    base: dict[str, Any] = {
        "extension_days": days,
        "extension_reason": "需协调物业",
        "extension_requested_by": REQUESTER,
        "extension_requested_at": AT - timedelta(hours=2),
    }
    base.update(fields)
    return snap(state, **base)


@pytest.mark.parametrize("state", EXTENDABLE)
def test_extension_request_waits_on_the_ticket_and_keeps_the_state(state: TicketState) -> None:
    tr = decide(snap(state), req(A.REQUEST_EXTENSION, actor=REQUESTER, days=5, note=" 需协调物业 "), OPEN)
    assert tr.to_state is state
    assert dict(tr.changes) == {
        "extension_days": 5,
        "extension_reason": "需协调物业",
        "extension_requested_by": REQUESTER,
        "extension_requested_at": AT,
    }
    assert (tr.meet, tr.cancel, tr.extend, tr.new_cycle) == (NONE, NONE, NONE, None)
    name = D.REHANDLE if state is S.WARNING else D.HANDLE  # the deadline of the cycle the unit is working on
    assert tr.data == {"days": 5, "reason": "需协调物业", "deadline": name.value, "due_at": OPEN[name].isoformat()}


def test_extension_needs_a_claim_first() -> None:
    error = refused(snap(S.DISPATCHED), req(A.REQUEST_EXTENSION))
    assert error.code == "claim_first"
    assert "先接单" in error.message
    check_message(error, names_ticket=True)


@pytest.mark.parametrize("note", [None, "", "  \n"])
def test_extension_needs_a_reason(note: str | None) -> None:
    error = refused(snap(S.CLAIMED), req(A.REQUEST_EXTENSION, note=note))
    assert error.code == "reason_required"
    check_message(error, names_ticket=False)


def test_extension_needs_a_number_of_working_days_within_the_limit() -> None:
    error = refused(snap(S.CLAIMED), req(A.REQUEST_EXTENSION, days=None))
    assert error.code == "days_required"
    check_message(error, names_ticket=False)
    for days in (0, -1, MAX_EXTENSION_DAYS + 1):
        error = refused(snap(S.CLAIMED), req(A.REQUEST_EXTENSION, days=days))
        assert error.code == "bad_days"
        assert f"1 至 {MAX_EXTENSION_DAYS} 个工作日" in error.message
    for days in (1, MAX_EXTENSION_DAYS):
        assert decide(snap(S.CLAIMED), req(A.REQUEST_EXTENSION, days=days), OPEN).changes["extension_days"] == days
    # the configured limit, passed in with the request
    short = ExtensionLimits(max_days=2)
    error = refused(snap(S.CLAIMED), req(A.REQUEST_EXTENSION, days=3, extension_limits=short))
    assert (error.code, "1 至 2 个工作日" in error.message) == ("bad_days", True)


@pytest.mark.parametrize(
    "at", [AT, OPEN[D.HANDLE] - timedelta(microseconds=1), OPEN[D.HANDLE]], ids=["early", "just-before", "at-due"]
)
def test_extension_while_the_handling_deadline_runs(at: datetime) -> None:
    assert decide(snap(S.CLAIMED), req(A.REQUEST_EXTENSION, at=at), OPEN).changes["extension_requested_at"] == at


@pytest.mark.parametrize("late", [timedelta(microseconds=1), timedelta(days=2)], ids=["just-after", "days-after"])
def test_extension_after_the_handling_deadline_is_refused(late: timedelta) -> None:
    error = refused(snap(S.CLAIMED), req(A.REQUEST_EXTENSION, at=OPEN[D.HANDLE] + late))
    assert error.code == "overdue"
    assert "已逾期，不能再申请延期，请尽快办理" in error.message
    assert "11-27 15:00" in error.message  # says when it was due
    check_message(error, names_ticket=True)


def test_extension_of_a_warning_ticket_looks_at_its_rehandling_deadline() -> None:
    ticket = snap(S.WARNING)
    # the first cycle's handling deadline is long gone: only 再次处置 counts
    assert decide(ticket, req(A.REQUEST_EXTENSION), {D.REHANDLE: OPEN[D.REHANDLE]}).to_state is S.WARNING
    error = refused(ticket, req(A.REQUEST_EXTENSION, at=OPEN[D.REHANDLE] + timedelta(minutes=1)))
    assert (error.code, "再次处置" in error.message) == ("overdue", True)
    assert refused(ticket, req(A.REQUEST_EXTENSION), {D.HANDLE: OPEN[D.HANDLE]}).code == "no_deadline"


def test_extension_without_a_running_handling_deadline_is_refused() -> None:
    # e.g. a policy without a handling deadline: there is nothing to extend
    error = refused(snap(S.CLAIMED), req(A.REQUEST_EXTENSION), {D.RETURN_WINDOW: WINDOW})
    assert error.code == "no_deadline"
    check_message(error, names_ticket=True)


def test_one_pending_request_at_a_time() -> None:
    error = refused(pending(), req(A.REQUEST_EXTENSION, days=2))
    assert error.code == "already_requested"
    assert "已有延期申请待审批" in error.message
    check_message(error, names_ticket=True)


def test_extension_limit_per_ticket() -> None:
    error = refused(snap(S.CLAIMED, extension_count=MAX_EXTENSIONS), req(A.REQUEST_EXTENSION))
    assert error.code == "extension_limit"
    assert f"已延期 {MAX_EXTENSIONS} 次" in error.message
    check_message(error, names_ticket=True)
    two = ExtensionLimits(max_count=2)
    assert decide(snap(S.CLAIMED, extension_count=1), req(A.REQUEST_EXTENSION, extension_limits=two), OPEN)
    error = refused(snap(S.CLAIMED), req(A.REQUEST_EXTENSION, extension_limits=ExtensionLimits(max_count=0)))
    assert (error.code, "未开放" in error.message) == ("extension_limit", True)


def test_approval_moves_the_running_handling_deadlines() -> None:
    tr = decide(
        pending(days=3, extension_count=0), req(A.APPROVE_EXTENSION, actor=APPROVER, note=None), THREE_TWOS_OPEN
    )
    assert tr.to_state is S.CONTACTED
    # open at the request: moved (24 hours was already missed then, and stays missed); contact and the return
    # window are not handling deadlines
    assert tr.extend == frozenset({D.HANDLE, D.OPINION_5D})
    assert tr.extend_days == 3
    assert dict(tr.changes) == {
        "extension_days": None,
        "extension_reason": None,
        "extension_requested_by": None,
        "extension_requested_at": None,
        "extension_count": 1,
    }
    assert (tr.meet, tr.cancel) == (NONE, NONE)
    assert tr.data == {"days": 3, "reason": "需协调物业", "requested_by": REQUESTER, "granted": 3, "count": 1}


def test_approval_after_the_deadline_of_a_request_made_in_time_still_moves_it() -> None:
    late = req(A.APPROVE_EXTENSION, actor=APPROVER, at=OPEN[D.HANDLE] + timedelta(hours=3))
    assert decide(pending(), late, {D.HANDLE: OPEN[D.HANDLE]}).extend == frozenset({D.HANDLE})


def test_approval_of_fewer_days_than_asked() -> None:
    tr = decide(pending(days=5), req(A.APPROVE_EXTENSION, actor=APPROVER, days=2), OPEN)
    assert (tr.extend_days, tr.data["days"], tr.data["granted"]) == (2, 5, 2)
    for days in (0, 6):
        error = refused(pending(days=5), req(A.APPROVE_EXTENSION, actor=APPROVER, days=days))
        assert (error.code, "1 至 5 个工作日" in error.message) == ("bad_days", True)


def test_a_warning_tickets_extension_moves_its_rehandling_deadline() -> None:
    tr = decide(pending(S.WARNING), req(A.APPROVE_EXTENSION, actor=APPROVER), {D.REHANDLE: OPEN[D.REHANDLE]})
    assert (tr.to_state, tr.extend) == (S.WARNING, frozenset({D.REHANDLE}))


@pytest.mark.parametrize("action", [A.APPROVE_EXTENSION, A.REJECT_EXTENSION])
def test_nobody_decides_on_their_own_request(action: Action) -> None:
    error = refused(pending(), req(action, actor=REQUESTER))
    assert error.code == "own_request"
    check_message(error, names_ticket=True)
    # the hotline platform's decision is final, whoever asked
    assert decide(pending(extension_requested_by="hotline"), req(action, actor="hotline", by_hotline=True), OPEN)


def test_rejection_needs_a_reason_and_clears_the_request() -> None:
    for note in (None, " "):
        error = refused(pending(), req(A.REJECT_EXTENSION, actor=APPROVER, note=note))
        assert error.code == "reason_required"
        check_message(error, names_ticket=False)
    tr = decide(pending(), req(A.REJECT_EXTENSION, actor=APPROVER, note=" 请按期办结 "), OPEN)
    assert tr.to_state is S.CONTACTED
    assert tr.extend == NONE
    assert dict(tr.changes) == {
        "extension_days": None,
        "extension_reason": None,
        "extension_requested_by": None,
        "extension_requested_at": None,
    }
    assert tr.data == {"days": 3, "reason": "需协调物业", "requested_by": REQUESTER, "rejection": "请按期办结"}


def test_after_a_rejection_ask_again_after_an_approval_the_limit() -> None:
    ticket = run(snap(S.CLAIMED), req(A.REQUEST_EXTENSION, actor=REQUESTER))
    assert ticket.extension_days == 3
    ticket = run(ticket, req(A.REJECT_EXTENSION, actor=APPROVER))
    assert (ticket.extension_days, ticket.extension_count) == (None, 0)
    ticket = run(ticket, req(A.REQUEST_EXTENSION, actor=REQUESTER, days=2), req(A.APPROVE_EXTENSION, actor=APPROVER))
    assert (ticket.state, ticket.extension_days, ticket.extension_count) == (S.CLAIMED, None, 1)
    assert refused(ticket, req(A.REQUEST_EXTENSION, actor=REQUESTER)).code == "extension_limit"
    assert refused(ticket, req(A.APPROVE_EXTENSION, actor=APPROVER)).code == "nothing_to_approve"


LEAVING = [
    (S.CONTACTED, req(A.SUBMIT), S.SUBMITTED),
    (S.WARNING, req(A.SUBMIT), S.SUBMITTED),
    (S.CLAIMED, req(A.REQUEST_RETURN), S.RETURN_REQUESTED),
    (S.ON_SITE, req(A.CANCEL), S.CANCELLED),
    (S.CONTACTED, req(A.REDISPATCH, actor="hotline", by_hotline=True), S.DISPATCHED),
]


@pytest.mark.parametrize(("state", "asked", "to"), LEAVING, ids=[f"{s.value}-{r.action.value}" for s, r, _ in LEAVING])
def test_leaving_the_working_states_drops_a_pending_request(
    state: TicketState, asked: ActionRequest, to: TicketState
) -> None:
    tr = decide(pending(state), asked, OPEN)
    assert tr.to_state is to
    for key in ("extension_days", "extension_reason", "extension_requested_by", "extension_requested_at"):
        assert tr.changes[key] is None
    assert tr.data["extension_dropped"] == 3
    after = apply(pending(state), tr)
    assert after.extension_days is None
    assert refused(after, req(A.APPROVE_EXTENSION, actor=APPROVER)).code == "nothing_to_approve"


@pytest.mark.parametrize(
    "asked",
    [req(A.CONTACT), req(A.ON_SITE), req(A.TRANSFER, handler="carol"), req(A.REQUEST_EXCLUSION)],
    ids=lambda r: r.action.value,
)
def test_working_on_keeps_a_pending_request(asked: ActionRequest) -> None:
    tr = decide(pending(S.CLAIMED), asked, OPEN)
    assert "extension_days" not in tr.changes
    assert "extension_dropped" not in tr.data


# --------------------------------------------------------------------------------------------------
# 不纳入测评, reopen, cancel
# --------------------------------------------------------------------------------------------------


def test_exclusion_request_then_approve_or_reject() -> None:
    asked = run(snap(S.SUBMITTED), req(A.REQUEST_EXCLUSION, note="市民重复来电，诉求已解决"))
    assert (asked.state, asked.evaluation) == (S.SUBMITTED, Evaluation.REQUESTED)
    approved = run(asked, req(A.APPROVE_EXCLUSION))
    assert approved.evaluation is Evaluation.EXCLUDED
    rejected = run(asked, req(A.REJECT_EXCLUSION))
    assert rejected.evaluation is Evaluation.NORMAL
    assert decide(asked, req(A.APPROVE_EXCLUSION), OPEN).data == {"approved": True}
    assert decide(asked, req(A.REJECT_EXCLUSION), OPEN).data == {"approved": False}
    # after a rejection it may be asked again
    assert run(rejected, req(A.REQUEST_EXCLUSION)).evaluation is Evaluation.REQUESTED


@pytest.mark.parametrize(("evaluation", "word"), [(Evaluation.REQUESTED, "审核中"), (Evaluation.EXCLUDED, "已通过")])
def test_double_exclusion_request_is_refused(evaluation: Evaluation, word: str) -> None:
    error = refused(snap(S.CLOSED, evaluation=evaluation), req(A.REQUEST_EXCLUSION))
    assert error.code == "already_requested"
    assert word in error.message
    check_message(error, names_ticket=True)


def test_exclusion_needs_a_reason() -> None:
    error = refused(snap(S.CLAIMED), req(A.REQUEST_EXCLUSION, note=" "))
    assert error.code == "reason_required"
    check_message(error, names_ticket=False)


@pytest.mark.parametrize("action", [A.APPROVE_EXCLUSION, A.REJECT_EXCLUSION])
@pytest.mark.parametrize("evaluation", [Evaluation.NORMAL, Evaluation.EXCLUDED])
def test_exclusion_decision_without_a_pending_request(action: Action, evaluation: Evaluation) -> None:
    error = refused(snap(S.CLOSED, evaluation=evaluation), req(action))
    assert error.code == "nothing_to_approve"
    check_message(error, names_ticket=True)


def test_reopen_starts_a_new_dispatch_cycle() -> None:
    closed = run(snap(S.SUBMITTED), req(A.VISIT))
    assert closed.state is S.CLOSED
    reopened = run(closed, req(A.REOPEN, note="市民再次来电"))
    assert (reopened.state, reopened.handler_userid, reopened.cycle) == (S.DISPATCHED, None, closed.cycle + 1)
    assert reopened.unit_code == closed.unit_code
    assert run(reopened, req(A.CLAIM)).state is S.CLAIMED


@pytest.mark.parametrize("state", [s for s in TicketState if s is not S.CLOSED])
def test_reopen_only_from_closed(state: TicketState) -> None:
    assert refused(snap(state), req(A.REOPEN)).code == "invalid_state"


@pytest.mark.parametrize("state", OPEN_STATES)
def test_cancel_from_every_open_state(state: TicketState) -> None:
    tr = decide(snap(state), req(A.CANCEL, note="市民撤诉"), OPEN)
    assert (tr.to_state, tr.cancel, dict(tr.changes)) == (S.CANCELLED, ALL, {"closed_at": AT})
    assert tr.data == {"reason": "市民撤诉"}


@pytest.mark.parametrize("state", [S.CLOSED, S.CANCELLED])
def test_cancel_refused_when_finished(state: TicketState) -> None:
    error = refused(snap(state), req(A.CANCEL))
    assert error.code == "invalid_state"
    check_message(error, names_ticket=True)


def test_decide_without_open_deadlines() -> None:
    # open_deadlines may be omitted: nothing is open, so a return is out of its window
    assert decide(snap(S.DISPATCHED), req(A.CLAIM)).to_state is S.CLAIMED
    with pytest.raises(TransitionRefused, match=NO):
        decide(snap(S.DISPATCHED), req(A.REQUEST_RETURN))
