"""Tickets, requests and the (state, action) table written out from DOMAIN.md and seed 004, for the lifecycle tests.

The expected outcome of every (state, action) pair is spelled out here by hand; nothing is taken from the
module's private tables."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import pytest

from bot.domain.clock import TZ
from bot.domain.lifecycle import (
    Action,
    ActionRequest,
    TicketState,
    Transition,
    TransitionRefused,
    VisitResult,
    decide,
)
from bot.domain.records import Ticket
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


ALL = frozenset(DeadlineName)


NONE: frozenset[DeadlineName] = frozenset()


# contacting the citizen also accepts the ticket (先行接单 + 先行联系, and 三个二's 20 minutes)
CONTACT_MET = frozenset({D.ACCEPT, D.FIRST_CONTACT, D.CONTACT_20M})


ON_SITE_MET = frozenset({D.ON_SITE_2H})


# submitting fulfils every handling deadline; the contact/on-site/return ones are no longer due
SUBMIT_MET = frozenset({D.ACCEPT, D.HANDLE, D.HANDLE_INTERNAL, D.SOLVE_24H, D.OPINION_5D, D.REHANDLE})


SUBMIT_CANCEL = frozenset({D.FIRST_CONTACT, D.RETURN_WINDOW, D.CONTACT_20M, D.ON_SITE_2H, D.RETURN_REVIEW})


HANDLER = "alice"  # who holds the ticket in the states that have a handler


ACTOR = "bob"  # who asks


OTHER = "carol"  # transfer target


def snap(state: TicketState, **fields: Any) -> Ticket:
    """A plausible ticket in ``state``: handler, counters and return bookkeeping as that state implies."""
    base: dict[str, Any] = {
        "id": 1,
        "content": "店招破损",
        "dispatched_at": AT,
        "received_at": AT,
        "updated_at": AT,
        "source": "api",
        "payload_hash": "0" * 64,
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
    return Ticket.of(base)


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
    ticket: Ticket, request: ActionRequest, deadlines: Mapping[DeadlineName, datetime] | None = None
) -> TransitionRefused:
    with pytest.raises(TransitionRefused) as excinfo:
        decide(ticket, request, OPEN if deadlines is None else deadlines)
    return excinfo.value


def apply(ticket: Ticket, tr: Transition) -> Ticket:
    """The ticket after ``tr``, as the service would store and reload it."""
    updates: dict[str, Any] = {**tr.changes, "state": tr.to_state}
    if tr.new_cycle is not None:
        updates["cycle"] = ticket.cycle + 1
    return ticket.updated(updates)


def run(ticket: Ticket, *requests: ActionRequest) -> Ticket:
    for request in requests:
        ticket = apply(ticket, decide(ticket, request, OPEN))
    return ticket


def check_message(error: TransitionRefused, *, names_ticket: bool) -> None:
    assert error.message
    assert str(error) == error.message
    assert CJK.search(error.message), error.message
    if names_ticket:
        assert NO in error.message, error.message


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


# a return visit records the citizen's view: satisfaction, whether it was solved (not asked here), the note
VISITED = {
    "satisfaction": "satisfied",
    "visit_solved": None,
    "visit_note": "情况说明",
    "visited_at": AT,
    "visit_unit": "SRJGS",
}
# submitted: the unit declares it solved, unless it says otherwise; the first submission's time (及时回复率)
SOLVED = {"solved": "solved", "submitted_at": AT}
RESOLVED = {"solved": "solved"}  # re-submitted after a warning: the first submission's time stays


REVIEW = frozenset({D.RETURN_REVIEW})


# what a return leaves on the ticket: why, the suggested unit, who asked and when, who signed (cleared by a decision)
NO_RETURN = {
    "return_reason": None,
    "return_unit": None,
    "return_requested_by": None,
    "return_requested_at": None,
    "return_signed_by": None,
}


def ret(state: TicketState) -> Expect:
    """退单 by a head (no signature to wait for): to the office's review, where it was kept for a rejection."""
    request = {
        "return_reason": "情况说明",
        "return_unit": "HWK",
        "return_requested_by": ACTOR,
        "return_requested_at": AT,
        "return_signed_by": ACTOR,
    }
    return Expect(S.RETURN_REQUESTED, {"state_before_return": state.value, **request})


# a new unit gets the ticket: no handler, a new dispatch cycle from now; an office review of a return ends
REDISPATCHED = {"unit_code": "HWK", "handler_userid": None, "dispatched_at": AT, "state_before_return": None}
MOVED: dict[str, Any] = {"meet": REVIEW, "cancel": ALL - REVIEW, "new_cycle": "dispatch"}


ALLOWED: list[Any] = [
    # 待接单: a unit member claims, contacts (an implicit claim) or answers at once; or returns it
    (S.DISPATCHED, A.CLAIM, Expect(S.CLAIMED, {"handler_userid": ACTOR}, meet=frozenset({D.ACCEPT}))),
    (S.DISPATCHED, A.CONTACT, Expect(S.CONTACTED, {"handler_userid": ACTOR}, meet=CONTACT_MET)),
    (
        S.DISPATCHED,
        A.SUBMIT,
        Expect(S.SUBMITTED, {"handler_userid": ACTOR, **SOLVED}, meet=SUBMIT_MET, cancel=SUBMIT_CANCEL),
    ),
    (S.DISPATCHED, A.REQUEST_RETURN, ret(S.DISPATCHED)),
    (S.DISPATCHED, A.REQUEST_EXCLUSION, excl(S.DISPATCHED)),
    (S.DISPATCHED, A.CANCEL, CANCEL),
    # nobody has claimed it: the dispatcher routes it by hand, not counted as the one re-dispatch
    (S.DISPATCHED, A.REDISPATCH, Expect(S.DISPATCHED, REDISPATCHED, **MOVED)),
    # 已接单
    (S.CLAIMED, A.CONTACT, Expect(S.CONTACTED, meet=CONTACT_MET)),
    (S.CLAIMED, A.ON_SITE, Expect(S.ON_SITE, meet=ON_SITE_MET)),
    (S.CLAIMED, A.SUBMIT, Expect(S.SUBMITTED, SOLVED, meet=SUBMIT_MET, cancel=SUBMIT_CANCEL)),
    (S.CLAIMED, A.REQUEST_RETURN, ret(S.CLAIMED)),
    (S.CLAIMED, A.TRANSFER, Expect(S.CLAIMED, {"handler_userid": OTHER})),
    (S.CLAIMED, A.REQUEST_EXCLUSION, excl(S.CLAIMED)),
    (S.CLAIMED, A.REQUEST_EXTENSION, ext(S.CLAIMED)),
    (S.CLAIMED, A.CANCEL, CANCEL),
    # 已联系
    (S.CONTACTED, A.ON_SITE, Expect(S.ON_SITE, meet=ON_SITE_MET)),
    (S.CONTACTED, A.SUBMIT, Expect(S.SUBMITTED, SOLVED, meet=SUBMIT_MET, cancel=SUBMIT_CANCEL)),
    (S.CONTACTED, A.REQUEST_RETURN, ret(S.CONTACTED)),
    (S.CONTACTED, A.TRANSFER, Expect(S.CONTACTED, {"handler_userid": OTHER})),
    (S.CONTACTED, A.REQUEST_EXCLUSION, excl(S.CONTACTED)),
    (S.CONTACTED, A.REQUEST_EXTENSION, ext(S.CONTACTED)),
    (S.CONTACTED, A.CANCEL, CANCEL),
    # 已到场
    # contact recorded after the visit: the state stays, the contact deadlines are met
    (S.ON_SITE, A.CONTACT, Expect(S.ON_SITE, meet=CONTACT_MET)),
    (S.ON_SITE, A.SUBMIT, Expect(S.SUBMITTED, SOLVED, meet=SUBMIT_MET, cancel=SUBMIT_CANCEL)),
    (S.ON_SITE, A.REQUEST_RETURN, ret(S.ON_SITE)),
    (S.ON_SITE, A.TRANSFER, Expect(S.ON_SITE, {"handler_userid": OTHER})),
    (S.ON_SITE, A.REQUEST_EXCLUSION, excl(S.ON_SITE)),
    (S.ON_SITE, A.REQUEST_EXTENSION, ext(S.ON_SITE)),
    (S.ON_SITE, A.CANCEL, CANCEL),
    # 已提交待回访: the dispatcher's return visit closes it (satisfied) or makes it a warning ticket
    (
        S.SUBMITTED,
        A.VISIT,
        Expect(S.CLOSED, {**VISITED, "closed_at": AT}, cancel=ALL),
    ),
    (S.SUBMITTED, A.REQUEST_EXCLUSION, excl(S.SUBMITTED)),
    (S.SUBMITTED, A.CANCEL, CANCEL),
    # 预警·再次处置中: the unit records contact / on-site again and re-submits; no return any more
    (S.WARNING, A.CONTACT, Expect(S.WARNING, meet=CONTACT_MET)),
    (S.WARNING, A.ON_SITE, Expect(S.WARNING, meet=ON_SITE_MET)),
    (S.WARNING, A.SUBMIT, Expect(S.SUBMITTED, RESOLVED, meet=SUBMIT_MET, cancel=SUBMIT_CANCEL)),
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
            {"return_count": 1, "handler_userid": None, "state_before_return": None, **NO_RETURN},
            cancel=ALL - REVIEW,  # the office still re-dispatches it: its review deadline runs on
        ),
    ),
    (
        S.RETURN_REQUESTED,
        A.REJECT_RETURN,
        Expect(
            S.CLAIMED,
            {"state_before_return": None, **NO_RETURN},
            meet=REVIEW,
            cancel=frozenset({D.RETURN_WINDOW}),  # no second return in this cycle
        ),
    ),
    (S.RETURN_REQUESTED, A.REQUEST_EXCLUSION, excl(S.RETURN_REQUESTED)),
    (S.RETURN_REQUESTED, A.CANCEL, CANCEL),
    # 已退单待重派: re-dispatched once (counted) or decided by the center lead (签派)
    (
        S.RETURNED,
        A.REDISPATCH,
        Expect(S.DISPATCHED, {**REDISPATCHED, "redispatch_count": 1}, **MOVED),
    ),
    (S.RETURNED, A.ASSIGN, Expect(S.DISPATCHED, REDISPATCHED, **MOVED)),
    (S.RETURNED, A.REQUEST_EXCLUSION, excl(S.RETURNED)),
    (S.RETURNED, A.CANCEL, CANCEL),
    # 待签派
    (S.PENDING_ASSIGNMENT, A.ASSIGN, Expect(S.DISPATCHED, REDISPATCHED, **MOVED)),
    (S.PENDING_ASSIGNMENT, A.REQUEST_EXCLUSION, excl(S.PENDING_ASSIGNMENT)),
    (S.PENDING_ASSIGNMENT, A.CANCEL, CANCEL),
    # 已办结: may still go up for 不纳入测评, or be reopened (a new dispatch cycle)
    (S.CLOSED, A.REQUEST_EXCLUSION, excl(S.CLOSED)),
    (
        S.CLOSED,
        A.REOPEN,
        Expect(
            S.DISPATCHED,
            {
                "closed_at": None,
                "satisfaction": None,
                "solved": None,
                "visit_solved": None,
                "visit_note": None,  # the first submission's time stays (及时回复率)
                "visited_at": None,
                "visit_unit": None,
                "handler_userid": None,
                "dispatched_at": AT,
            },
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
    codes[A.CONFIRM_RETURN] = "nothing_to_confirm"  # no handler's return waits for a head's signature
    codes[A.DECLINE_RETURN] = "nothing_to_confirm"
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
    "nothing_to_confirm",
    "claim_first",
    "extension_limit",
    "overdue",
    "no_deadline",
    "own_request",
}


def _pair(entry: Any) -> tuple[TicketState, Action]:
    values = entry.values if hasattr(entry, "values") else entry
    return values[0], values[1]


OPEN_STATES = [s for s in TicketState if s.is_open]


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


def pending(state: TicketState = S.CONTACTED, days: int = 3, **fields: Any) -> Ticket:
    """A ticket in ``state`` with an extension request of ``days`` working days waiting for approval."""
    base: dict[str, Any] = {
        "extension_days": days,
        "extension_reason": "需协调物业",
        "extension_requested_by": REQUESTER,
        "extension_requested_at": AT - timedelta(hours=2),
    }
    base.update(fields)
    return snap(state, **base)


LEAVING = [
    (S.CONTACTED, req(A.SUBMIT), S.SUBMITTED),
    (S.WARNING, req(A.SUBMIT), S.SUBMITTED),
    (S.CLAIMED, req(A.REQUEST_RETURN), S.RETURN_REQUESTED),
    (S.ON_SITE, req(A.CANCEL), S.CANCELLED),
    (S.CONTACTED, req(A.REDISPATCH, actor="hotline", by_hotline=True), S.DISPATCHED),
]
