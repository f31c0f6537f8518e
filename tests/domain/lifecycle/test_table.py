"""decide over every (state, action): allowed with its effects, or refused with its code."""

from __future__ import annotations

import pytest

from bot.domain.lifecycle import (
    Action,
    TicketState,
    decide,
)
from tests.domain.lifecycle.support import (
    ALLOWED,
    NAMES_TICKET,
    OPEN,
    REFUSED,
    Expect,
    _pair,
    check_message,
    refused,
    req,
    snap,
)


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
