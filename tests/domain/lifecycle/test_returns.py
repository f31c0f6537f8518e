"""decide: returns (退单), re-dispatch, assignment (签派) and transfer."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from bot.domain.lifecycle import (
    Action,
    ReturnLimits,
    TicketState,
    TransitionRefused,
    decide,
)
from bot.domain.records import Ticket
from tests.domain.lifecycle.support import (
    ALL,
    AT,
    HANDLER,
    OPEN,
    OPEN_STATES,
    WINDOW,
    A,
    D,
    S,
    check_message,
    refused,
    req,
    run,
    snap,
)


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
    assert tr.data == {"returns": 2, "to_assignment": True, "reason": None, "suggested_unit": None}


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


@pytest.mark.parametrize("state", OPEN_STATES)
@pytest.mark.parametrize("redispatches", [0, 1])
def test_hotline_redispatch_from_any_open_state_is_not_counted(state: TicketState, redispatches: int) -> None:
    ticket = snap(state, redispatch_count=redispatches)
    tr = decide(ticket, req(A.REDISPATCH, actor="hotline", unit="GYS", by_hotline=True), OPEN)
    assert tr.to_state is S.DISPATCHED
    assert tr.changes == {"unit_code": "GYS", "handler_userid": None, "dispatched_at": AT, "state_before_return": None}
    assert tr.new_cycle == "dispatch"
    assert tr.cancel | tr.meet == ALL


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


# --- a handler's return waits for the head's signature; the office decides -------------------------------------

HEAD = "head_li"
ASKED = AT - timedelta(hours=1)


def _unsigned(state: TicketState = S.CLAIMED, **fields: object) -> Ticket:
    """A handler's return request waiting for the head's signature."""
    pending = {
        "return_reason": "属于市政道路",
        "return_unit": "市政所",
        "return_requested_by": HANDLER,
        "return_requested_at": ASKED,
    }
    return snap(state, **{**pending, **fields})


def _signed(**fields: object) -> Ticket:
    return _unsigned(S.RETURN_REQUESTED, return_signed_by=HEAD, **fields)


def test_a_handlers_return_waits_for_the_head() -> None:
    tr = decide(snap(S.CONTACTED), req(A.REQUEST_RETURN, actor=HANDLER, unit="市政所", signoff=True), OPEN)
    assert tr.to_state is S.CONTACTED  # still the unit's: its deadlines run on
    assert not (tr.hold)
    assert not (tr.review)
    assert dict(tr.changes) == {
        "return_reason": "情况说明",
        "return_unit": "市政所",
        "return_requested_by": HANDLER,
        "return_requested_at": AT,
        "return_signed_by": None,
    }
    again = refused(_unsigned(S.CONTACTED), req(A.REQUEST_RETURN))
    assert again.code == "already_requested"
    assert "负责人确认" in again.message
    check_message(again, names_ticket=True)


def test_the_head_confirms_and_the_office_reviews() -> None:
    tr = decide(_unsigned(S.CONTACTED), req(A.CONFIRM_RETURN, actor=HEAD, note=None), OPEN)
    assert tr.to_state is S.RETURN_REQUESTED
    assert dict(tr.changes) == {"state_before_return": "contacted", "return_signed_by": HEAD}
    assert tr.hold
    assert tr.review
    assert not tr.resume
    assert tr.data == {"reason": "属于市政道路", "suggested_unit": "市政所", "requested_by": HANDLER}
    # a head's own return goes straight to the office, signed by that head
    own = decide(snap(S.DISPATCHED), req(A.REQUEST_RETURN, actor=HEAD), OPEN)
    assert (own.to_state, own.changes["return_signed_by"], own.hold, own.review) == (
        S.RETURN_REQUESTED,
        HEAD,
        True,
        True,
    )


def test_the_head_declines_with_a_reason() -> None:
    error = refused(_unsigned(), req(A.DECLINE_RETURN, actor=HEAD, note=" "))
    assert error.code == "reason_required"
    check_message(error, names_ticket=False)
    tr = decide(_unsigned(), req(A.DECLINE_RETURN, actor=HEAD, note="属于本所，请继续办理"), OPEN)
    assert tr.to_state is S.CLAIMED
    assert all(value is None for value in tr.changes.values())
    assert "return_reason" in tr.changes
    assert tr.data["reason"] == "属于本所，请继续办理"


@pytest.mark.parametrize("action", [A.CONFIRM_RETURN, A.DECLINE_RETURN])
def test_nothing_to_sign(action: Action) -> None:
    for ticket in (snap(S.CLAIMED), _signed()):
        error = refused(ticket, req(action, actor=HEAD))
        assert error.code == "nothing_to_confirm"
        check_message(error, names_ticket=True)


def test_an_unsigned_return_is_dropped_when_the_ticket_moves_on() -> None:
    tr = decide(_unsigned(S.CONTACTED), req(A.SUBMIT), OPEN)
    assert tr.to_state is S.SUBMITTED
    assert tr.changes["return_requested_at"] is None
    assert tr.data["return_dropped"] is True
    moved = decide(_unsigned(S.DISPATCHED), req(A.REDISPATCH, actor="hotline", unit="GYS", by_hotline=True), OPEN)
    assert moved.changes["return_requested_by"] is None
    kept = decide(_unsigned(S.DISPATCHED), req(A.CLAIM, actor=HANDLER), OPEN)
    assert "return_requested_at" not in kept.changes


def test_approve_and_redispatch_in_one_step() -> None:
    tr = decide(_signed(), req(A.APPROVE_RETURN, unit="HWK"), OPEN)
    assert (tr.to_state, tr.new_cycle) == (S.DISPATCHED, "dispatch")
    assert tr.changes["unit_code"] == "HWK"
    assert (tr.changes["return_count"], tr.changes["redispatch_count"]) == (1, 1)
    assert tr.changes["return_reason"] is None
    assert tr.changes["return_signed_by"] is None
    assert tr.meet == frozenset({D.RETURN_REVIEW})
    # the unit is not answerable for what fell due after it asked to give the ticket back
    assert tr.excused_from == ASKED
    assert tr.data["suggested_unit"] == "市政所"
    assert tr.data["to_unit"] == "HWK"


def test_approve_naming_a_unit_of_a_contested_ticket_goes_to_the_center_lead() -> None:
    tr = decide(_signed(return_count=1), req(A.APPROVE_RETURN, unit="HWK"), OPEN)
    assert tr.to_state is S.PENDING_ASSIGNMENT
    assert tr.new_cycle is None
    assert "unit_code" not in tr.changes
    assert tr.data["named_unit"] == "HWK"
    assert tr.data["to_assignment"] is True
    assert tr.meet == frozenset({D.RETURN_REVIEW})  # the office's part is done


def test_the_limits_are_configuration() -> None:
    lenient = ReturnLimits(assignment_after=3, max_redispatches=2)
    tr = decide(_signed(return_count=1, redispatch_count=1), req(A.APPROVE_RETURN, return_limits=lenient), OPEN)
    assert tr.to_state is S.RETURNED
    again = decide(snap(S.RETURNED, redispatch_count=1), req(A.REDISPATCH, return_limits=lenient), OPEN)
    assert again.changes["redispatch_count"] == 2
    strict = ReturnLimits(assignment_after=1, max_redispatches=0)
    assert decide(_signed(), req(A.APPROVE_RETURN, return_limits=strict), OPEN).to_state is S.PENDING_ASSIGNMENT


def test_reject_needs_a_reason_and_resumes_the_units_deadlines() -> None:
    error = refused(_signed(), req(A.REJECT_RETURN, note=None))
    assert error.code == "reason_required"
    check_message(error, names_ticket=False)
    tr = decide(_signed(), req(A.REJECT_RETURN, note="经核实属于贵单位职责"), OPEN)
    assert tr.resume
    assert not tr.hold
    assert tr.data == {"reason": "经核实属于贵单位职责", "return_reason": "属于市政道路", "requested_by": HANDLER}
