"""The ticket state machine: every step of DOMAIN.md's lifecycle, and the reason when a step is refused.

Pure: ``decide`` takes a ticket (:class:`bot.domain.records.Ticket`) and a requested action and returns what must
change, or raises ``TransitionRefused`` with a short Chinese reason for the chat and a stable code for the API. Who
may ask for an action (roles, unit membership) is checked by the caller; here only the lifecycle's own rules live.

Besides the state, a ticket carries requests awaiting approval: 不纳入测评 (``evaluation``), 延期 (an extension of
the handling deadlines by some working days) and a handler's 退单 awaiting the unit head's signature. None of them
changes the state; a pending extension or unsigned return is dropped when the ticket leaves the states in which the
unit handles it. A signed return moves the ticket to ``return_requested`` for the office's review.

The vocabulary and the data ``decide`` works on are in :mod:`.states`, ``decide`` and its steps in :mod:`.rules`
(the return and re-dispatch steps in :mod:`.returns`, what the steps share in :mod:`.checks`).
"""

from bot.domain.lifecycle.rules import decide
from bot.domain.lifecycle.states import (
    ACTION_LABELS,
    ALL_DEADLINES,
    EXTENDABLE,
    EXTENDED,
    HANDLING,
    MAX_EXTENSION_DAYS,
    MAX_EXTENSIONS,
    MAX_REDISPATCHES,
    NO_PENDING_EXTENSION,
    NO_PENDING_RETURN,
    RETURNABLE,
    RETURNS_BEFORE_ASSIGNMENT,
    STATE_LABELS,
    WORKING,
    Action,
    ActionRequest,
    CycleKind,
    Evaluation,
    ExtensionLimits,
    ReturnLimits,
    Solved,
    TicketState,
    Transition,
    TransitionRefused,
    VisitResult,
)

__all__ = [
    "ACTION_LABELS",
    "ALL_DEADLINES",
    "Action",
    "ActionRequest",
    "CycleKind",
    "EXTENDABLE",
    "EXTENDED",
    "Evaluation",
    "ExtensionLimits",
    "HANDLING",
    "MAX_EXTENSIONS",
    "MAX_EXTENSION_DAYS",
    "MAX_REDISPATCHES",
    "NO_PENDING_EXTENSION",
    "NO_PENDING_RETURN",
    "RETURNABLE",
    "RETURNS_BEFORE_ASSIGNMENT",
    "ReturnLimits",
    "STATE_LABELS",
    "Solved",
    "TicketState",
    "Transition",
    "TransitionRefused",
    "VisitResult",
    "WORKING",
    "decide",
]
