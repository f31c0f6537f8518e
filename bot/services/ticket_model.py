"""What the ticket service takes and gives: its refusals, the outcomes of a hand-over and an action, a change as its
hooks see it (:class:`TicketChange`, :class:`ChangeHook`), a ticket with its deadlines and history."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from bot.domain.lifecycle import Action, TicketState, TransitionRefused
from bot.domain.records import Deadline, HistoryEntry, Notification, Ticket
from bot.messages import refusals
from store.core import Conn

log = logging.getLogger(__name__)


class TicketNotFound(Exception):
    def __init__(self, ticket_no: str) -> None:
        super().__init__(ticket_no)
        self.ticket_no = ticket_no
        self.message = refusals.ticket_not_found(ticket_no)


class NotPermitted(TransitionRefused):
    """The member who asks may not take this action on this ticket (:mod:`bot.domain.permissions`)."""

    def __init__(self, message: str) -> None:
        super().__init__("forbidden", message)


class UnknownUnit(TransitionRefused):
    def __init__(self, label: str) -> None:
        super().__init__("unknown_unit", refusals.unknown_unit(label))


@dataclass(frozen=True, slots=True, kw_only=True)
class UpsertOutcome:
    ticket_no: str
    status: Literal["created", "updated", "unchanged"]
    state: TicketState
    unit_code: str | None
    changed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionOutcome:
    action: Action
    from_state: TicketState
    to_state: TicketState
    audit_id: int
    ticket: Ticket
    duplicate: bool = False
    # its open deadlines as the action left them (with ``with_deadlines``; new ones carry no id)
    deadlines: Sequence[Deadline] = ()

    @property
    def ticket_no(self) -> str:
        return self.ticket.ticket_no


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketChange:
    """What one change did to one ticket, for the :class:`ChangeHook` s, inside the change's transaction.

    ``action`` is ``"dispatch"`` for a ticket created from a hand-over, else the action's value (``redispatch``,
    ``visit`` …). ``ticket`` is the ticket as the change left it. ``from_unit`` and ``from_handler`` are the unit and
    handler before the change. ``source`` is the hand-over's (``api``, ``import``) for changes a hand-over made (a
    creation, the platform's re-dispatch in an update), None for actions. ``deadlines`` are those a new cycle started
    with (creation, re-dispatch, assignment, a warning), else empty. ``dated``: whether the hand-over gave its
    dispatch time (an import row without 派单时间 is taken as dispatched now). ``deadlines`` also holds the office's
    review deadline a return started."""

    action: str
    ticket: Ticket
    from_state: TicketState | None
    to_state: TicketState
    from_unit: str | None
    from_handler: str | None
    at: datetime
    actor: str
    audit_id: int
    source: str | None = None
    deadlines: Sequence[Deadline] = ()
    dated: bool = True
    # the facts the audit entry records (an action's reason, suggested unit, the counts …)
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ticket_no(self) -> str:
        return self.ticket.ticket_no


class ChangeHook(Protocol):
    """Follows ticket changes in their own transaction (see the module's docstring)."""

    async def changed(self, conn: Conn, changes: Sequence[TicketChange]) -> None:
        """Writes what ``changes`` cause, on ``conn`` (the changes' transaction)."""

    def committed(self) -> None:
        """The transaction of the changes last given has committed."""


@dataclass(frozen=True, slots=True)
class TicketDetail:
    ticket: Ticket
    deadlines: Sequence[Deadline] = ()
    history: Sequence[HistoryEntry] = ()
    notifications: Sequence[Notification] = ()  # who was told of its deadlines, oldest first
