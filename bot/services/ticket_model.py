"""What the ticket service takes and gives: its refusals, the outcomes of a hand-over and an action, a change as its
hooks see it (:class:`TicketChange`, :class:`ChangeHook`), a ticket with its deadlines and history."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from bot.domain.lifecycle import (
    Action,
    Evaluation,
    TicketSnapshot,
    TicketState,
    TransitionRefused,
)
from bot.messages import refusals
from config.vocabulary import TicketKind
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
    state: str
    unit_code: str | None
    changed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionOutcome:
    ticket_no: str
    action: Action
    from_state: TicketState
    to_state: TicketState
    audit_id: int
    ticket: Mapping[str, Any]
    duplicate: bool = False
    # its open deadlines as the action left them (with ``with_deadlines``; new ones carry no id)
    deadlines: list[Mapping[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketChange:
    """What one change did to one ticket, for the :class:`ChangeHook` s, inside the change's transaction.

    ``action`` is ``"dispatch"`` for a ticket created from a hand-over, else the action's value (``redispatch``,
    ``visit`` …). ``ticket`` is the row as the change left it (with its ``id`` and ``cycle``). ``from_unit`` and
    ``from_handler`` are the unit and handler before the change. ``source`` is the hand-over's (``api``, ``import``)
    for changes a hand-over made (a creation, the platform's re-dispatch in an update), None for actions.
    ``deadlines`` are those a new cycle started with (creation, re-dispatch, assignment, a warning), else empty.
    ``dated``: whether the hand-over gave its dispatch time (an import row without 派单时间 is taken as dispatched
    now)."""

    action: str
    ticket: Mapping[str, Any]
    from_state: TicketState | None
    to_state: TicketState
    from_unit: str | None
    from_handler: str | None
    at: datetime
    actor: str
    audit_id: int
    source: str | None = None
    deadlines: Sequence[Mapping[str, Any]] = ()
    dated: bool = True

    @property
    def ticket_no(self) -> str:
        return str(self.ticket["ticket_no"])


class ChangeHook(Protocol):
    """Follows ticket changes in their own transaction (see the module's docstring)."""

    async def changed(self, conn: Conn, changes: Sequence[TicketChange]) -> None:
        """Writes what ``changes`` cause, on ``conn`` (the changes' transaction)."""

    def committed(self) -> None:
        """The transaction of the changes last given has committed."""


@dataclass(frozen=True, slots=True)
class TicketDetail:
    ticket: Mapping[str, Any]
    deadlines: list[Mapping[str, Any]] = field(default_factory=list)
    history: list[Mapping[str, Any]] = field(default_factory=list)


def snapshot(row: Mapping[Any, Any]) -> TicketSnapshot:
    before = row["state_before_return"]
    return TicketSnapshot(
        ticket_no=row["ticket_no"],
        kind=TicketKind(row["kind"]),
        state=TicketState(row["state"]),
        unit_code=row["unit_code"],
        handler_userid=row["handler_userid"],
        category=row["category"],
        evaluation=Evaluation(row["evaluation"]),
        return_count=row["return_count"],
        redispatch_count=row["redispatch_count"],
        rehandle_count=row["rehandle_count"],
        cycle=row["cycle"],
        state_before_return=TicketState(before) if before else None,
        extension_days=row["extension_days"],
        extension_reason=row["extension_reason"],
        extension_requested_by=row["extension_requested_by"],
        extension_requested_at=row["extension_requested_at"],
        extension_count=row["extension_count"],
    )
