"""The lifecycle's vocabulary: a ticket's states, the actions asked of it, visit results and evaluations, with their
Chinese labels; the request ``decide`` is given, the transition it returns, its refusal."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from config.vocabulary import DeadlineName


class TicketState(StrEnum):
    DISPATCHED = "dispatched"
    CLAIMED = "claimed"
    CONTACTED = "contacted"
    ON_SITE = "on_site"
    SUBMITTED = "submitted"
    WARNING = "warning"
    RETURN_REQUESTED = "return_requested"
    RETURNED = "returned"
    PENDING_ASSIGNMENT = "pending_assignment"
    CLOSED = "closed"
    CANCELLED = "cancelled"

    @property
    def label(self) -> str:
        return STATE_LABELS[self]

    @property
    def is_open(self) -> bool:
        return self not in (TicketState.CLOSED, TicketState.CANCELLED)


STATE_LABELS: dict[TicketState, str] = {
    TicketState.DISPATCHED: "待接单",
    TicketState.CLAIMED: "已接单",
    TicketState.CONTACTED: "已联系",
    TicketState.ON_SITE: "已到场",
    TicketState.SUBMITTED: "已提交待回访",
    TicketState.WARNING: "预警·再次处置中",
    TicketState.RETURN_REQUESTED: "退单审核中",
    TicketState.RETURNED: "已退单待重派",
    TicketState.PENDING_ASSIGNMENT: "待签派",
    TicketState.CLOSED: "已办结",
    TicketState.CANCELLED: "已撤销",
}


class Action(StrEnum):
    CLAIM = "claim"
    CONTACT = "contact"
    ON_SITE = "on_site"
    SUBMIT = "submit"
    VISIT = "visit"
    REQUEST_RETURN = "request_return"
    CONFIRM_RETURN = "confirm_return"
    DECLINE_RETURN = "decline_return"
    APPROVE_RETURN = "approve_return"
    REJECT_RETURN = "reject_return"
    REDISPATCH = "redispatch"
    ASSIGN = "assign"
    TRANSFER = "transfer"
    REQUEST_EXCLUSION = "request_exclusion"
    APPROVE_EXCLUSION = "approve_exclusion"
    REJECT_EXCLUSION = "reject_exclusion"
    REQUEST_EXTENSION = "request_extension"
    APPROVE_EXTENSION = "approve_extension"
    REJECT_EXTENSION = "reject_extension"
    REOPEN = "reopen"
    CANCEL = "cancel"

    @property
    def label(self) -> str:
        return ACTION_LABELS[self]


ACTION_LABELS: dict[Action, str] = {
    Action.CLAIM: "接单",
    Action.CONTACT: "先行联系",
    Action.ON_SITE: "到场",
    Action.SUBMIT: "办结",
    Action.VISIT: "回访",
    Action.REQUEST_RETURN: "退单",
    Action.CONFIRM_RETURN: "确认退单",
    Action.DECLINE_RETURN: "不同意退单",
    Action.APPROVE_RETURN: "同意退单",
    Action.REJECT_RETURN: "驳回退单",
    Action.REDISPATCH: "重新派单",
    Action.ASSIGN: "签派",
    Action.TRANSFER: "转派",
    Action.REQUEST_EXCLUSION: "申请不纳入测评",
    Action.APPROVE_EXCLUSION: "同意不纳入测评",
    Action.REJECT_EXCLUSION: "驳回不纳入测评",
    Action.REQUEST_EXTENSION: "申请延期",
    Action.APPROVE_EXTENSION: "同意延期",
    Action.REJECT_EXTENSION: "驳回延期",
    Action.REOPEN: "重新打开",
    Action.CANCEL: "撤销",
}


class VisitResult(StrEnum):
    SATISFIED = "satisfied"
    BASICALLY_SATISFIED = "basically_satisfied"
    DISSATISFIED = "dissatisfied"
    UNREACHABLE = "unreachable"

    @property
    def label(self) -> str:
        return {
            "satisfied": "满意",
            "basically_satisfied": "基本满意",
            "dissatisfied": "不满意",
            "unreachable": "联系不上",
        }[self.value]


class Solved(StrEnum):
    """实际解决: whether the problem was solved, as the unit declares it and as the citizen sees it at the visit."""

    SOLVED = "solved"
    PARTLY = "partly"
    UNSOLVED = "unsolved"

    @property
    def label(self) -> str:
        return {"solved": "已解决", "partly": "部分解决", "unsolved": "未解决"}[self.value]


class Evaluation(StrEnum):
    NORMAL = "normal"  # counts in the ratings
    REQUESTED = "requested"  # 不纳入测评: asked, awaiting approval
    EXCLUDED = "excluded"  # 不纳入测评: approved


# the defaults of the configured limits (returns in the YAML): how many returns send a ticket to the center lead
# (签派), and how often the dispatcher may re-dispatch a returned ticket
RETURNS_BEFORE_ASSIGNMENT = 2
MAX_REDISPATCHES = 1
# 延期: the defaults of the configured limits (deadlines.extension in the YAML): working days one request may ask
# for, and approved extensions per ticket
MAX_EXTENSION_DAYS = 10
MAX_EXTENSIONS = 1

WORKING = (TicketState.CLAIMED, TicketState.CONTACTED, TicketState.ON_SITE)
RETURNABLE = (TicketState.DISPATCHED, *WORKING)
# where an extension may be asked for and stays pending: the unit is handling the ticket; leaving drops the request
EXTENDABLE = (*WORKING, TicketState.WARNING)
ALL_DEADLINES: frozenset[DeadlineName] = frozenset(DeadlineName)
HANDLING = frozenset(
    {
        DeadlineName.ACCEPT,
        DeadlineName.HANDLE,
        DeadlineName.HANDLE_INTERNAL,
        DeadlineName.SOLVE_24H,
        DeadlineName.OPINION_5D,
        DeadlineName.REHANDLE,
    }
)

# the handling deadlines an approved extension moves, those of them open in the current cycle
EXTENDED: frozenset[DeadlineName] = frozenset(
    {
        DeadlineName.HANDLE,
        DeadlineName.HANDLE_INTERNAL,
        DeadlineName.REHANDLE,
        DeadlineName.SOLVE_24H,
        DeadlineName.OPINION_5D,
    }
)
# what a pending extension request leaves on the ticket, cleared by a decision or by leaving the working states
NO_PENDING_EXTENSION: Mapping[str, Any] = {
    "extension_days": None,
    "extension_reason": None,
    "extension_requested_by": None,
    "extension_requested_at": None,
}

# what a pending return request leaves on the ticket, cleared by a decision (or by leaving the returnable states
# before a head signed it)
NO_PENDING_RETURN: Mapping[str, Any] = {
    "return_reason": None,
    "return_unit": None,
    "return_requested_by": None,
    "return_requested_at": None,
    "return_signed_by": None,
}

CycleKind = Literal["dispatch", "rehandle"]


class TransitionRefused(Exception):
    """An action the lifecycle does not allow now. ``message`` is Chinese, for the person who asked."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ExtensionLimits:
    """How long one extension may be, and how many a ticket may have: the configuration's, passed in by the caller
    (the lifecycle itself reads no configuration)."""

    max_days: int = MAX_EXTENSION_DAYS  # working days one request may ask for
    max_count: int = MAX_EXTENSIONS  # approved extensions per ticket (0: none)


@dataclass(frozen=True, slots=True)
class ReturnLimits:
    """When an approved return sends a ticket to the center lead (签派) rather than back to the office for a
    re-dispatch: the configuration's, passed in by the caller."""

    assignment_after: int = RETURNS_BEFORE_ASSIGNMENT  # returns of one ticket, by any units
    max_redispatches: int = MAX_REDISPATCHES  # re-dispatches after a return


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionRequest:
    action: Action
    actor: str
    at: datetime
    note: str | None = None
    unit: str | None = None  # target unit (re-dispatch, assign) or suggested unit (return)
    handler: str | None = None  # new handler (transfer)
    result: VisitResult | None = None  # return-visit result
    by_hotline: bool = False  # the hotline platform itself (ingest updates) rather than a person
    days: int | None = None  # working days: asked for (request extension), or granted when fewer (approve)
    extension_limits: ExtensionLimits = ExtensionLimits()
    signoff: bool = False  # a return request that must wait for the unit head's signature (request return)
    return_limits: ReturnLimits = ReturnLimits()
    # 实际解决: as the unit declares it (submit; default solved), as the citizen sees it (visit; default unknown)
    solved: Solved | None = None
    # the visit results that make a warning ticket (the configuration's; default 不满意)
    warning_results: frozenset[VisitResult] = frozenset({VisitResult.DISSATISFIED})


@dataclass(frozen=True, slots=True, kw_only=True)
class Transition:
    to_state: TicketState
    changes: Mapping[str, Any] = field(default_factory=dict)  # ticket columns to set
    meet: frozenset[DeadlineName] = frozenset()  # open deadlines of the current cycle now met
    cancel: frozenset[DeadlineName] = frozenset()  # open deadlines of the current cycle no longer due
    new_cycle: CycleKind | None = None  # deadlines to start from ``at``
    data: Mapping[str, Any] = field(default_factory=dict)  # facts for the audit log
    # open deadlines of the current cycle to move later by ``extend_days`` working days, each from its own due
    # time (the caller has the working-day calendar)
    extend: frozenset[DeadlineName] = frozenset()
    extend_days: int = 0
    # a return reaches the office: the unit's open deadlines of the cycle stop being nagged (``hold``) and the office's
    # review deadline starts (``review``); a rejected one: they are nagged again from ``at`` (``resume``)
    hold: bool = False
    review: bool = False
    resume: bool = False
    # deadlines this transition closes that fall due at or after this moment are cancelled, never missed (an
    # approved return: the unit is not answerable for what fell due after it asked to give the ticket back)
    excused_from: datetime | None = None
