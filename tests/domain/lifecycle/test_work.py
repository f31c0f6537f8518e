"""decide: claim, contact, on site, submit and the return visit."""

from __future__ import annotations

import pytest

from bot.domain.lifecycle import (
    Solved,
    TicketState,
    VisitResult,
    decide,
)
from tests.domain.lifecycle.support import ALL, AT, OPEN, A, D, S, check_message, refused, req, run, snap


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


@pytest.mark.parametrize("note", [None, "", "   \n"])
@pytest.mark.parametrize("state", [S.DISPATCHED, S.CLAIMED, S.CONTACTED, S.ON_SITE, S.WARNING])
def test_submit_requires_a_note(state: TicketState, note: str | None) -> None:
    error = refused(snap(state), req(A.SUBMIT, note=note))
    assert error.code == "note_required"
    check_message(error, names_ticket=False)


def test_submit_records_the_result_and_whether_it_was_a_rehandling() -> None:
    first = decide(snap(S.CLAIMED), req(A.SUBMIT, note="  已清运  "), OPEN)
    assert first.data == {"result": "已清运", "rehandle": False, "solved": "solved"}
    assert first.changes["solved"] == "solved"  # the unit's word, unless it says otherwise
    again = decide(snap(S.WARNING), req(A.SUBMIT, note="负责人到场复查", solved=Solved.PARTLY), OPEN)
    assert again.data == {"result": "负责人到场复查", "rehandle": True, "solved": "partly"}
    assert again.changes["solved"] == "partly"


def test_submit_state_is_checked_before_the_note() -> None:
    assert refused(snap(S.CLOSED), req(A.SUBMIT, note=None)).code == "invalid_state"


@pytest.mark.parametrize("result", [VisitResult.SATISFIED, VisitResult.BASICALLY_SATISFIED, VisitResult.UNREACHABLE])
def test_visit_not_dissatisfied_closes(result: VisitResult) -> None:
    tr = decide(snap(S.SUBMITTED), req(A.VISIT, result=result), OPEN)
    assert tr.to_state is S.CLOSED
    assert tr.changes == {
        "satisfaction": result.value,
        "visit_solved": None,
        "visit_note": "情况说明",
        "visited_at": AT,
        "visit_unit": "SRJGS",
        "closed_at": AT,
    }
    assert tr.cancel == ALL
    assert tr.new_cycle is None


def test_visit_records_the_citizens_view_of_the_result() -> None:
    tr = decide(
        snap(S.SUBMITTED), req(A.VISIT, result=VisitResult.SATISFIED, solved=Solved.UNSOLVED, note=" 态度好 "), OPEN
    )
    assert (tr.changes["visit_solved"], tr.changes["visit_note"]) == ("unsolved", "态度好")
    assert tr.data == {"result": "satisfied", "solved": "unsolved"}


def test_which_visit_results_make_a_warning_ticket_is_configuration() -> None:
    strict = frozenset({VisitResult.DISSATISFIED, VisitResult.UNREACHABLE})
    tr = decide(snap(S.SUBMITTED), req(A.VISIT, result=VisitResult.UNREACHABLE, warning_results=strict), OPEN)
    assert tr.to_state is S.WARNING
    lenient = decide(
        snap(S.SUBMITTED), req(A.VISIT, result=VisitResult.DISSATISFIED, warning_results=frozenset()), OPEN
    )
    assert lenient.to_state is S.CLOSED


@pytest.mark.parametrize("rehandles", [0, 1, 3])
def test_visit_dissatisfied_makes_a_warning_ticket_with_a_rehandle_cycle(rehandles: int) -> None:
    ticket = snap(S.SUBMITTED, rehandle_count=rehandles)
    tr = decide(ticket, req(A.VISIT, result=VisitResult.DISSATISFIED), OPEN)
    assert tr.to_state is S.WARNING
    assert tr.new_cycle == "rehandle"
    assert tr.changes == {
        "satisfaction": "dissatisfied",
        "visit_solved": None,
        "visit_note": "情况说明",
        "visited_at": AT,
        "visit_unit": "SRJGS",
        "rehandle_count": rehandles + 1,
    }
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
