"""What the lifecycle's steps share: the refusal of an action the state does not allow, a condition that must hold,
and a member's text as the steps keep it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.domain.lifecycle.states import Action, TransitionRefused

if TYPE_CHECKING:  # the records import the lifecycle's states
    from bot.domain.records import Ticket


def refuse_state(ticket: Ticket, action: Action) -> TransitionRefused:
    return TransitionRefused(
        "invalid_state",
        f"工单 {ticket.ticket_no} 当前状态为「{ticket.state.label}」，不能{action.label}。",
    )


def require(condition: bool, code: str, message: str) -> None:
    if not condition:
        raise TransitionRefused(code, message)


def text(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None
