"""``decide``: what a requested action does to a ticket, every step of DOMAIN.md's lifecycle, or why it is refused.

Pure: who may ask for an action (roles, unit membership) is checked by the caller; here only the lifecycle's own
rules live.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.domain.lifecycle import returns
from bot.domain.lifecycle.checks import refuse_state, require, text
from bot.domain.lifecycle.states import (
    ALL_DEADLINES,
    EXTENDABLE,
    EXTENDED,
    HANDLING,
    NO_PENDING_EXTENSION,
    NO_PENDING_RETURN,
    RETURNABLE,
    WORKING,
    Action,
    ActionRequest,
    Evaluation,
    Solved,
    TicketState,
    Transition,
    TransitionRefused,
)
from config.vocabulary import DEADLINE_LABELS, DeadlineName

if TYPE_CHECKING:  # the records import the lifecycle's states
    from bot.domain.records import Ticket


_REVIEW = frozenset({DeadlineName.RETURN_REVIEW})


def decide(
    ticket: Ticket,
    req: ActionRequest,
    open_deadlines: Mapping[DeadlineName, datetime] | None = None,
) -> Transition:
    """What ``req`` does to ``ticket``; ``open_deadlines`` are the due times of its open deadlines."""
    handler = _ACTIONS[req.action]
    transition: Transition = handler(ticket, req, open_deadlines or {})
    if ticket.extension_days is not None and transition.to_state not in EXTENDABLE:
        # submitted, returned, re-dispatched, cancelled …: a pending extension request has nothing left to extend
        transition = replace(
            transition,
            changes={**NO_PENDING_EXTENSION, **transition.changes},
            data={**transition.data, "extension_dropped": ticket.extension_days},
        )
    if ticket.return_requested_at is not None and _leaves_return(transition):
        # submitted, cancelled, sent to another unit …: the request has nothing left to give back
        transition = replace(
            transition,
            changes={**NO_PENDING_RETURN, **transition.changes},
            data={**transition.data, "return_dropped": True},
        )
    return transition


def _leaves_return(transition: Transition) -> bool:
    """Whether ``transition`` ends what a pending return request (signed or not) asks about."""
    if transition.new_cycle is not None:
        return True
    return transition.to_state not in (*RETURNABLE, TicketState.RETURN_REQUESTED)


Decider = Any  # (Ticket, ActionRequest, Mapping[DeadlineName, datetime]) -> Transition


def _claim(t: Ticket, req: ActionRequest, _d: Mapping[DeadlineName, datetime]) -> Transition:
    if t.state in WORKING and t.handler_userid:
        raise TransitionRefused(
            "already_claimed",
            f"工单 {t.ticket_no} 已由 {t.handler_userid} 接单。",
        )
    if t.state is not TicketState.DISPATCHED:
        raise refuse_state(t, req.action)
    return Transition(
        to_state=TicketState.CLAIMED,
        changes={"handler_userid": req.handler or req.actor},
        meet=frozenset({DeadlineName.ACCEPT}),
    )


def _contact(t: Ticket, req: ActionRequest, _d: Mapping[DeadlineName, datetime]) -> Transition:
    meet = frozenset({DeadlineName.ACCEPT, DeadlineName.FIRST_CONTACT, DeadlineName.CONTACT_20M})
    if t.state in (TicketState.WARNING, TicketState.ON_SITE):
        # recorded late or during re-handling: the state stays, the contact deadlines are met
        return Transition(to_state=t.state, meet=meet)
    if t.state is TicketState.CONTACTED:
        raise TransitionRefused("already_done", f"工单 {t.ticket_no} 已登记先行联系。")
    if t.state not in (TicketState.DISPATCHED, TicketState.CLAIMED):
        raise refuse_state(t, req.action)
    changes = {} if t.handler_userid else {"handler_userid": req.actor}
    return Transition(to_state=TicketState.CONTACTED, changes=changes, meet=meet)


def _on_site(t: Ticket, req: ActionRequest, _d: Mapping[DeadlineName, datetime]) -> Transition:
    meet = frozenset({DeadlineName.ON_SITE_2H})
    if t.state is TicketState.WARNING:
        return Transition(to_state=TicketState.WARNING, meet=meet)
    if t.state is TicketState.ON_SITE:
        raise TransitionRefused("already_done", f"工单 {t.ticket_no} 已登记到场。")
    if t.state not in (TicketState.CLAIMED, TicketState.CONTACTED):
        raise refuse_state(t, req.action)
    return Transition(to_state=TicketState.ON_SITE, meet=meet)


def _submit(t: Ticket, req: ActionRequest, _d: Mapping[DeadlineName, datetime]) -> Transition:
    if t.state not in (TicketState.DISPATCHED, *WORKING, TicketState.WARNING):
        raise refuse_state(t, req.action)
    require(text(req.note) is not None, "note_required", "办结需要填写处理结果。")
    solved = req.solved or Solved.SOLVED  # 实际解决, as the unit declares it
    changes: dict[str, Any] = {"solved": solved.value}
    if t.submitted_at is None and t.state is not TicketState.WARNING:
        # the reply the platform's 办理时限 is about: the first submission, kept through a re-dispatch or a reopening
        changes["submitted_at"] = req.at
    if not t.handler_userid:
        changes["handler_userid"] = req.actor
    return Transition(
        to_state=TicketState.SUBMITTED,
        changes=changes,
        meet=HANDLING,
        cancel=ALL_DEADLINES - HANDLING,
        data={"result": text(req.note), "rehandle": t.state is TicketState.WARNING, "solved": solved.value},
    )


def _visit(t: Ticket, req: ActionRequest, _d: Mapping[DeadlineName, datetime]) -> Transition:
    if t.state is not TicketState.SUBMITTED:
        raise refuse_state(t, req.action)
    require(req.result is not None, "result_required", "回访需要填写结果：满意、基本满意、不满意或联系不上。")
    assert req.result is not None
    # the citizen's view: satisfaction, whether the problem was solved (when asked), what they said
    seen = {
        "satisfaction": req.result.value,
        "visit_solved": req.solved.value if req.solved is not None else None,
        "visit_note": text(req.note),
        "visited_at": req.at,
        "visit_unit": t.unit_code,  # whose rates the visit counts in, wherever the ticket goes next
    }
    facts = {"result": req.result.value, **({"solved": req.solved.value} if req.solved is not None else {})}
    if req.result in req.warning_results:
        return Transition(
            to_state=TicketState.WARNING,
            changes={**seen, "rehandle_count": t.rehandle_count + 1},
            new_cycle="rehandle",
            data=facts,
        )
    return Transition(
        to_state=TicketState.CLOSED,
        changes={**seen, "closed_at": req.at},
        cancel=ALL_DEADLINES,
        data=facts,
    )


def _transfer(t: Ticket, req: ActionRequest, _d: Mapping[DeadlineName, datetime]) -> Transition:
    if t.state not in (*WORKING, TicketState.WARNING):
        raise refuse_state(t, req.action)
    target = text(req.handler)
    require(target is not None, "handler_required", "请指定转派给哪位同事。")
    require(target != t.handler_userid, "same_handler", "该工单已由此人承办。")
    return Transition(
        to_state=t.state, changes={"handler_userid": target}, data={"from": t.handler_userid, "to": target}
    )


def _request_exclusion(t: Ticket, req: ActionRequest, _d: Mapping[DeadlineName, datetime]) -> Transition:
    if t.state is TicketState.CANCELLED:
        raise refuse_state(t, req.action)
    require(
        t.evaluation is Evaluation.NORMAL,
        "already_requested",
        f"工单 {t.ticket_no} 已申请不纳入测评（{'审核中' if t.evaluation is Evaluation.REQUESTED else '已通过'}）。",
    )
    require(text(req.note) is not None, "reason_required", "申请不纳入测评需要写明理由。")
    return Transition(
        to_state=t.state, changes={"evaluation": Evaluation.REQUESTED.value}, data={"reason": text(req.note)}
    )


def _decide_exclusion(t: Ticket, req: ActionRequest, _d: Mapping[DeadlineName, datetime]) -> Transition:
    require(
        t.evaluation is Evaluation.REQUESTED,
        "nothing_to_approve",
        f"工单 {t.ticket_no} 没有待审核的不纳入测评申请。",
    )
    approved = req.action is Action.APPROVE_EXCLUSION
    value = Evaluation.EXCLUDED if approved else Evaluation.NORMAL
    return Transition(
        to_state=t.state, changes={"evaluation": value.value}, data={"approved": approved, "reason": text(req.note)}
    )


def _request_extension(t: Ticket, req: ActionRequest, d: Mapping[DeadlineName, datetime]) -> Transition:
    if t.state is TicketState.DISPATCHED:
        raise TransitionRefused("claim_first", f"工单 {t.ticket_no} 尚未接单，请先接单再申请延期。")
    if t.state not in EXTENDABLE:
        raise refuse_state(t, req.action)
    if t.extension_days is not None:
        raise TransitionRefused(
            "already_requested", f"工单 {t.ticket_no} 已有延期申请待审批（{t.extension_days} 个工作日）。"
        )
    limits = req.extension_limits
    if t.extension_count >= limits.max_count:
        raise TransitionRefused(
            "extension_limit",
            f"工单 {t.ticket_no} 已延期 {t.extension_count} 次，不能再申请延期。"
            if t.extension_count
            else f"延期申请未开放，工单 {t.ticket_no} 不能申请延期。",
        )
    # the handling deadline of the cycle: the ticket's own, or the re-handling one of a warning ticket
    name = DeadlineName.REHANDLE if t.state is TicketState.WARNING else DeadlineName.HANDLE
    due = d.get(name)
    if due is None:
        raise TransitionRefused(
            "no_deadline", f"工单 {t.ticket_no} 没有进行中的{DEADLINE_LABELS[name]}时限，无需延期。"
        )
    if req.at > due:
        raise TransitionRefused(
            "overdue",
            f"工单 {t.ticket_no} 已逾期，不能再申请延期，请尽快办理（{DEADLINE_LABELS[name]}时限 {due:%m-%d %H:%M}）。",
        )
    reason = text(req.note)
    require(reason is not None, "reason_required", "申请延期需要写明理由。")
    require(req.days is not None, "days_required", "请写明延期几个工作日。")
    assert req.days is not None
    require(
        1 <= req.days <= limits.max_days,
        "bad_days",
        f"延期天数须为 1 至 {limits.max_days} 个工作日。",
    )
    return Transition(
        to_state=t.state,
        changes={
            "extension_days": req.days,
            "extension_reason": reason,
            "extension_requested_by": req.actor,
            "extension_requested_at": req.at,
        },
        data={"days": req.days, "reason": reason, "deadline": name.value, "due_at": due.isoformat()},
    )


def _decide_extension(t: Ticket, req: ActionRequest, d: Mapping[DeadlineName, datetime]) -> Transition:
    asked = t.extension_days
    if asked is None:
        raise TransitionRefused("nothing_to_approve", f"工单 {t.ticket_no} 没有待审批的延期申请。")
    if t.state not in EXTENDABLE:
        raise refuse_state(t, req.action)  # not reached: leaving the working states drops the request
    if not req.by_hotline and req.actor == t.extension_requested_by:
        raise TransitionRefused("own_request", f"工单 {t.ticket_no} 的延期申请是您提交的，不能由您本人审批。")
    facts = {"days": asked, "reason": t.extension_reason, "requested_by": t.extension_requested_by}
    if req.action is Action.REJECT_EXTENSION:
        why = text(req.note)
        require(why is not None, "reason_required", "驳回延期需要写明理由。")
        return Transition(to_state=t.state, changes=dict(NO_PENDING_EXTENSION), data={**facts, "rejection": why})
    granted = asked if req.days is None else req.days
    require(1 <= granted <= asked, "bad_days", f"批准的延期天数须为 1 至 {asked} 个工作日。")
    # the deadlines still running when the request was made: one already missed then stays missed
    since = t.extension_requested_at or req.at
    extend = frozenset(name for name in EXTENDED if name in d and d[name] >= since)
    if not extend:
        raise TransitionRefused("no_deadline", f"工单 {t.ticket_no} 没有进行中的办理时限，无需延期。")
    count = t.extension_count + 1
    return Transition(
        to_state=t.state,
        changes={**NO_PENDING_EXTENSION, "extension_count": count},
        extend=extend,
        extend_days=granted,
        data={**facts, "granted": granted, "count": count},
    )


def _reopen(t: Ticket, req: ActionRequest, _d: Mapping[DeadlineName, datetime]) -> Transition:
    if t.state is not TicketState.CLOSED:
        raise refuse_state(t, req.action)
    return Transition(
        to_state=TicketState.DISPATCHED,
        changes={
            "closed_at": None,
            "satisfaction": None,
            "solved": None,
            "visit_solved": None,
            "visit_note": None,
            "visited_at": None,
            "visit_unit": None,
            "handler_userid": None,
            "dispatched_at": req.at,
        },
        new_cycle="dispatch",
        data={"reason": text(req.note)},
    )


def _cancel(t: Ticket, req: ActionRequest, _d: Mapping[DeadlineName, datetime]) -> Transition:
    if not t.state.is_open:
        raise refuse_state(t, req.action)
    return Transition(
        to_state=TicketState.CANCELLED,
        changes={"closed_at": req.at},
        cancel=ALL_DEADLINES,
        data={"reason": text(req.note)},
    )


_ACTIONS: dict[Action, Decider] = {
    Action.CLAIM: _claim,
    Action.CONTACT: _contact,
    Action.ON_SITE: _on_site,
    Action.SUBMIT: _submit,
    Action.VISIT: _visit,
    Action.REQUEST_RETURN: returns.request_return,
    Action.CONFIRM_RETURN: returns.confirm_return,
    Action.DECLINE_RETURN: returns.decline_return,
    Action.APPROVE_RETURN: returns.approve_return,
    Action.REJECT_RETURN: returns.reject_return,
    Action.REDISPATCH: returns.redispatch,
    Action.ASSIGN: returns.assign,
    Action.TRANSFER: _transfer,
    Action.REQUEST_EXCLUSION: _request_exclusion,
    Action.APPROVE_EXCLUSION: _decide_exclusion,
    Action.REJECT_EXCLUSION: _decide_exclusion,
    Action.REQUEST_EXTENSION: _request_extension,
    Action.APPROVE_EXTENSION: _decide_extension,
    Action.REJECT_EXTENSION: _decide_extension,
    Action.REOPEN: _reopen,
    Action.CANCEL: _cancel,
}
