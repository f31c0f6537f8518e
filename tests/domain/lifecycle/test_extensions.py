"""decide: extensions (延期), asked and decided."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from bot.domain.lifecycle import (
    MAX_EXTENSION_DAYS,
    MAX_EXTENSIONS,
    Action,
    ActionRequest,
    ExtensionLimits,
    TicketState,
    decide,
)
from tests.domain.lifecycle.support import (
    APPROVER,
    AT,
    EXTENDABLE,
    LEAVING,
    NONE,
    OPEN,
    REQUESTER,
    THREE_TWOS_OPEN,
    WINDOW,
    A,
    D,
    S,
    apply,
    check_message,
    pending,
    refused,
    req,
    run,
    snap,
)


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
