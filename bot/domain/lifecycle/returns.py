"""The return (退单) and the re-dispatch: a unit's request, its head's signature, the office's review and decision,
re-dispatch (改派) and assignment (签派). See :mod:`bot.domain.lifecycle.rules` for ``decide``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.domain.lifecycle.checks import refuse_state, require, text
from bot.domain.lifecycle.states import (
    ALL_DEADLINES,
    NO_PENDING_RETURN,
    RETURNABLE,
    ActionRequest,
    TicketState,
    Transition,
    TransitionRefused,
)
from config.vocabulary import DeadlineName

if TYPE_CHECKING:  # the records import the lifecycle's states
    from bot.domain.records import Ticket

_REVIEW = frozenset({DeadlineName.RETURN_REVIEW})


def request_return(t: Ticket, req: ActionRequest, d: Mapping[DeadlineName, datetime]) -> Transition:
    if t.state not in RETURNABLE:
        raise refuse_state(t, req.action)
    if t.return_requested_at is not None:
        waits = "负责人确认" if t.return_signed_by is None else "热线办审核"
        raise TransitionRefused("already_requested", f"工单 {t.ticket_no} 已有退单申请，等待{waits}。")
    reason, unit = text(req.note), text(req.unit)
    require(reason is not None, "reason_required", "退单需要写明退单理由。")
    require(unit is not None, "unit_required", "退单需要提出建议派单方向（承办单位）。")
    window = d.get(DeadlineName.RETURN_WINDOW)
    if window is None:
        # no open window: the policy gives this kind none, or a return was rejected in this cycle
        raise TransitionRefused(
            "return_window_closed", f"工单 {t.ticket_no} 不在退单期限内（或退单申请已被驳回），不能退单。"
        )
    if req.at > window:
        when = f"（{window:%m-%d %H:%M} 截止）"
        raise TransitionRefused(
            "return_window_closed",
            f"工单 {t.ticket_no} 已超过退单期限{when}，逾期不予退单。",
        )
    request = {
        "return_reason": reason,
        "return_unit": unit,
        "return_requested_by": req.actor,
        "return_requested_at": req.at,
    }
    data = {"reason": reason, "suggested_unit": unit}
    if req.signoff:
        # a handler's request: it reaches the office once the unit's head signs it
        return Transition(
            to_state=t.state, changes={**request, "return_signed_by": None}, data={**data, "signoff": "pending"}
        )
    return _to_review(t, {**request, "return_signed_by": req.actor}, data)


def _to_review(t: Ticket, changes: Mapping[str, Any], data: Mapping[str, Any]) -> Transition:
    """A signed return goes to the office: the unit's reminders hold while the office's review deadline runs."""
    return Transition(
        to_state=TicketState.RETURN_REQUESTED,
        changes={"state_before_return": t.state.value, **changes},
        hold=True,
        review=True,
        data=data,
    )


def _unsigned(t: Ticket) -> None:
    if t.return_requested_at is None or t.return_signed_by is not None:
        raise TransitionRefused("nothing_to_confirm", f"工单 {t.ticket_no} 没有等待负责人确认的退单申请。")


def confirm_return(t: Ticket, req: ActionRequest, _d: Mapping[DeadlineName, datetime]) -> Transition:
    _unsigned(t)
    if t.state not in RETURNABLE:
        raise refuse_state(t, req.action)  # not reached: leaving the returnable states drops the request
    facts = {"reason": t.return_reason, "suggested_unit": t.return_unit, "requested_by": t.return_requested_by}
    return _to_review(t, {"return_signed_by": req.actor}, facts)


def decline_return(t: Ticket, req: ActionRequest, _d: Mapping[DeadlineName, datetime]) -> Transition:
    _unsigned(t)
    why = text(req.note)
    require(why is not None, "reason_required", "不同意退单需要写明理由。")
    return Transition(
        to_state=t.state,
        changes=dict(NO_PENDING_RETURN),
        data={"reason": why, "return_reason": t.return_reason, "requested_by": t.return_requested_by},
    )


def approve_return(t: Ticket, req: ActionRequest, _d: Mapping[DeadlineName, datetime]) -> Transition:
    if t.state is not TicketState.RETURN_REQUESTED:
        raise refuse_state(t, req.action)
    limits = req.return_limits
    returns = t.return_count + 1
    contested = returns >= limits.assignment_after or t.redispatch_count >= limits.max_redispatches
    changes = {"return_count": returns, "handler_userid": None, "state_before_return": None, **NO_PENDING_RETURN}
    facts = {"returns": returns, "reason": t.return_reason, "suggested_unit": t.return_unit}
    # what fell due after the unit asked to give the ticket back is not the unit's to answer for
    excused = t.return_requested_at or req.at
    unit = text(req.unit)
    if unit is not None and not contested:
        # approved and re-dispatched in one step: the named unit gets the ticket as a new one
        moved = _dispatch_to(t, req, counted=True)
        return replace(
            moved,
            changes={**changes, **moved.changes},
            excused_from=excused,
            data={**facts, **moved.data, "to_assignment": False},
        )
    return Transition(
        to_state=TicketState.PENDING_ASSIGNMENT if contested else TicketState.RETURNED,
        changes=changes,
        # the review ends with the decision, unless the office still has to re-dispatch the ticket
        meet=_REVIEW if contested else frozenset(),
        cancel=ALL_DEADLINES - _REVIEW,
        excused_from=excused,
        data={**facts, "to_assignment": contested, **({"named_unit": unit} if unit is not None else {})},
    )


def reject_return(t: Ticket, req: ActionRequest, _d: Mapping[DeadlineName, datetime]) -> Transition:
    if t.state is not TicketState.RETURN_REQUESTED:
        raise refuse_state(t, req.action)
    why = text(req.note)
    require(why is not None, "reason_required", "驳回退单需要写明理由。")
    back = t.state_before_return or TicketState.DISPATCHED
    return Transition(
        to_state=back,
        changes={"state_before_return": None, **NO_PENDING_RETURN},
        meet=_REVIEW,
        # the office has decided: the unit does not ask again in this cycle
        cancel=frozenset({DeadlineName.RETURN_WINDOW}),
        resume=True,
        data={"reason": why, "return_reason": t.return_reason, "requested_by": t.return_requested_by},
    )


def _dispatch_to(t: Ticket, req: ActionRequest, counted: bool) -> Transition:
    unit = text(req.unit)
    require(unit is not None, "unit_required", "请指定承办单位。")
    changes: dict[str, Any] = {
        "unit_code": unit,
        "handler_userid": None,
        "dispatched_at": req.at,
        "state_before_return": None,
    }
    if counted:
        changes["redispatch_count"] = t.redispatch_count + 1
    return Transition(
        to_state=TicketState.DISPATCHED,
        changes=changes,
        # the office's review of a return ends with the ticket's new unit
        meet=_REVIEW,
        cancel=ALL_DEADLINES - _REVIEW,
        new_cycle="dispatch",
        data={"from_unit": t.unit_code, "to_unit": unit},
    )


def redispatch(t: Ticket, req: ActionRequest, _d: Mapping[DeadlineName, datetime]) -> Transition:
    if req.by_hotline:
        # the platform itself sends the ticket to another unit: its word is final, from any open state
        if not t.state.is_open:
            raise refuse_state(t, req.action)
        return _dispatch_to(t, req, counted=False)
    if t.state is TicketState.DISPATCHED:
        # nobody has claimed it yet (e.g. our fallback routing left it with the office): the dispatcher
        # routes it by hand; this is not the one re-dispatch after a return
        return _dispatch_to(t, req, counted=False)
    if t.state is TicketState.PENDING_ASSIGNMENT:
        raise TransitionRefused("assignment_required", f"工单 {t.ticket_no} 已多次退单，需由中心领导签派。")
    if t.state is not TicketState.RETURNED:
        raise refuse_state(t, req.action)
    if t.redispatch_count >= req.return_limits.max_redispatches:
        raise TransitionRefused(
            "redispatch_limit", f"工单 {t.ticket_no} 已重新派单 {t.redispatch_count} 次，需由中心领导签派。"
        )
    return _dispatch_to(t, req, counted=True)


def assign(t: Ticket, req: ActionRequest, _d: Mapping[DeadlineName, datetime]) -> Transition:
    if t.state not in (TicketState.PENDING_ASSIGNMENT, TicketState.RETURNED):
        raise refuse_state(t, req.action)
    return _dispatch_to(t, req, counted=False)
