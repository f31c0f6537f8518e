"""decide: exclusion from the ratings (不纳入测评), reopen and cancel."""

from __future__ import annotations

import pytest

from bot.domain.lifecycle import (
    Action,
    Evaluation,
    TicketState,
    TransitionRefused,
    decide,
)
from tests.domain.lifecycle.support import ALL, AT, NO, OPEN, OPEN_STATES, A, S, check_message, refused, req, run, snap


def test_exclusion_request_then_approve_or_reject() -> None:
    asked = run(snap(S.SUBMITTED), req(A.REQUEST_EXCLUSION, note="市民重复来电，诉求已解决"))
    assert (asked.state, asked.evaluation) == (S.SUBMITTED, Evaluation.REQUESTED)
    approved = run(asked, req(A.APPROVE_EXCLUSION))
    assert approved.evaluation is Evaluation.EXCLUDED
    rejected = run(asked, req(A.REJECT_EXCLUSION))
    assert rejected.evaluation is Evaluation.NORMAL
    assert decide(asked, req(A.APPROVE_EXCLUSION), OPEN).data == {"approved": True, "reason": "情况说明"}
    assert decide(asked, req(A.REJECT_EXCLUSION), OPEN).data == {"approved": False, "reason": "情况说明"}
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
