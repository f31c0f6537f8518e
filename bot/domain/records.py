"""A ticket, its deadlines, its history and who was told of it as the store gives them: frozen, typed records every
layer above the store reads by attribute.

The store builds them from its rows (:meth:`Ticket.of`, :meth:`Deadline.of`, :meth:`HistoryEntry.of`); the
services derive a changed ticket with :meth:`Ticket.updated` from the column values they wrote.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from bot.domain.lifecycle.states import Evaluation, Solved, TicketState
from config.vocabulary import DeadlineName, TicketKind


def _state(value: Any) -> TicketState | None:
    return None if value is None else TicketState(value)


def _solved(value: Any) -> Solved | None:
    return None if value is None else Solved(value)


def _deadline_name(value: Any) -> DeadlineName | None:
    return None if value is None else DeadlineName(value)


# the columns stored as text that the records carry as enums, and how each is read
_TICKET_ENUMS: dict[str, Any] = {
    "kind": TicketKind,
    "state": TicketState,
    "state_before_return": _state,
    "evaluation": Evaluation,
    "solved": _solved,
    "visit_solved": _solved,
}


def _typed(values: Mapping[Any, Any], enums: Mapping[str, Any]) -> dict[str, Any]:
    typed = dict(values)
    for name, read in enums.items():
        if name in typed:
            typed[name] = read(typed[name])
    return typed


@dataclass(frozen=True, slots=True, kw_only=True)
class Ticket:
    """One row of the ``tickets`` table (see :mod:`store.models` for what each column means); what the lifecycle
    decides on (:func:`bot.domain.lifecycle.decide`)."""

    id: int
    ticket_no: str
    kind: TicketKind
    request_type: str | None = None
    category: str | None = None
    area: str | None = None
    title: str | None = None
    content: str
    address: str | None = None
    citizen_name: str | None = None
    citizen_phone: str | None = None
    is_repeat: bool = False
    is_media: bool = False
    unit_code: str | None = None
    handler_userid: str | None = None
    state: TicketState
    state_before_return: TicketState | None = None
    evaluation: Evaluation = Evaluation.NORMAL
    return_count: int = 0
    redispatch_count: int = 0
    rehandle_count: int = 0
    cycle: int = 0
    satisfaction: str | None = None
    routed_by: str | None = None
    hotline_unit: str | None = None
    hotline_deadline: datetime | None = None
    dispatched_at: datetime
    received_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None
    submitted_at: datetime | None = None  # the unit's first submission (办结提交)
    visited_at: datetime | None = None  # the return visit whose results the ticket carries
    visit_unit: str | None = None  # the unit that had the ticket at that visit (whose rates it counts in)
    # 延期: the pending extension request (None when none is pending) and how many were approved
    extension_days: int | None = None
    extension_reason: str | None = None
    extension_requested_by: str | None = None
    extension_requested_at: datetime | None = None
    extension_count: int = 0
    # 重复诉求 as the bot found it (bot.domain.repeats; ``is_repeat`` is the platform's own flag): the keys it is
    # matched by and its text's signature, its place among the tickets of the same matter within the window (1: none
    # before it), the number of the one just before it, and what matched that one (phone, address, phone+address)
    repeat_phone: str | None = None
    repeat_address: str | None = None
    repeat_signature: bytes | None = None
    repeat_count: int = 1
    repeat_of: str | None = None
    repeat_reason: str | None = None
    # 退单: the pending return request (None when none is pending); signed_by is None while it waits for a head
    return_reason: str | None = None
    return_unit: str | None = None
    return_requested_by: str | None = None
    return_requested_at: datetime | None = None
    return_signed_by: str | None = None
    # 实际解决: the unit's declaration and the citizen's view at the visit (Solved values), the visit's note
    solved: Solved | None = None
    visit_solved: Solved | None = None
    visit_note: str | None = None
    source: str
    payload_hash: str
    version: int = 1
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, values: Mapping[Any, Any]) -> Ticket:
        """The ticket from its column values (enums as stored text or as enums)."""
        return cls(**_typed(values, _TICKET_ENUMS))

    def updated(self, values: Mapping[str, Any]) -> Ticket:
        """This ticket with the column ``values`` a change wrote."""
        return dataclasses.replace(self, **_typed(values, _TICKET_ENUMS))


class DeadlineStatus(StrEnum):
    OPEN = "open"
    MET = "met"
    MISSED = "missed"  # was overdue when it stopped being due
    CANCELLED = "cancelled"  # stopped being due in time


_DEADLINE_ENUMS: dict[str, Any] = {"name": DeadlineName, "status": DeadlineStatus}


@dataclass(frozen=True, slots=True, kw_only=True)
class Deadline:
    """One deadline of one ticket in one cycle (a row of ``deadlines``; ``id`` is None until it is stored)."""

    id: int | None = None
    ticket_id: int
    name: DeadlineName
    cycle: int
    policy: str  # the duration as configured, e.g. "5wd"
    started_at: datetime
    due_at: datetime
    unit_code: str | None = None  # the unit that had the ticket when it started (whose rate it counts in)
    status: DeadlineStatus = DeadlineStatus.OPEN
    met_at: datetime | None = None
    next_due_at: datetime | None = None  # the next moment the deadline engine looks at it
    stage: int = 0
    extended_days: int = 0  # working days approved extensions added

    @classmethod
    def of(cls, values: Mapping[Any, Any]) -> Deadline:
        return cls(**_typed(values, _DEADLINE_ENUMS))

    def updated(self, **values: Any) -> Deadline:
        return dataclasses.replace(self, **_typed(values, _DEADLINE_ENUMS))


_HISTORY_ENUMS: dict[str, Any] = {"from_state": _state, "to_state": _state}


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryEntry:
    """One entry of a ticket's audit log: who did what, when, from which state to which."""

    id: int
    ticket_id: int | None
    ticket_no: str | None
    at: datetime
    actor: str
    action: str  # an Action's value, or "dispatch", "update", "view_contact" …
    unit_code: str | None = None  # the unit the ticket was with (whose reports count it)
    from_state: TicketState | None = None
    to_state: TicketState | None = None
    note: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, values: Mapping[Any, Any]) -> HistoryEntry:
        return cls(**_typed(values, _HISTORY_ENUMS))


_LINK_ENUMS: dict[str, Any] = {"state": TicketState}


@dataclass(frozen=True, slots=True, kw_only=True)
class RepeatLink:
    """One ticket of the same matter as another (重复诉求), as it is now: its number, when it was dispatched, its state,
    the citizen's satisfaction, and what matched the two (``phone``, ``address``, ``phone+address``)."""

    ticket_no: str
    dispatched_at: datetime
    state: TicketState
    satisfaction: str | None = None
    reason: str

    @classmethod
    def of(cls, values: Mapping[Any, Any]) -> RepeatLink:
        return cls(**_typed(values, _LINK_ENUMS))


_LINE_ENUMS: dict[str, Any] = {"kind": TicketKind, "state": TicketState, "deadline_name": _deadline_name}


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketLine:
    """A ticket as a list shows it: a few columns and its next deadline (None when it has none). The citizen's
    name and address are there only to mask them in the text; the phone is not."""

    id: int
    ticket_no: str
    kind: TicketKind
    title: str | None = None
    content: str
    category: str | None = None
    unit_code: str | None = None
    handler_userid: str | None = None
    state: TicketState
    is_repeat: bool = False
    is_media: bool = False
    dispatched_at: datetime
    citizen_name: str | None = None
    address: str | None = None
    deadline_name: DeadlineName | None = None
    deadline_due_at: datetime | None = None

    @classmethod
    def of(cls, values: Mapping[Any, Any]) -> TicketLine:
        return cls(**_typed(values, _LINE_ENUMS))


_DUE_ENUMS: dict[str, Any] = {**_DEADLINE_ENUMS, "kind": TicketKind, "state": TicketState}


@dataclass(frozen=True, slots=True, kw_only=True)
class DueDeadline:
    """A deadline whose next step has come, with what a message about it needs of its ticket (the deadline
    engine's row). ``text`` is the ticket's title, else the start of its content; the citizen's name and address
    are there to mask them in it."""

    id: int
    ticket_id: int
    name: DeadlineName
    cycle: int
    policy: str
    started_at: datetime
    due_at: datetime
    status: DeadlineStatus
    stage: int
    next_due_at: datetime | None
    ticket_no: str
    kind: TicketKind
    state: TicketState
    unit_code: str | None = None
    handler_userid: str | None = None
    text: str | None = None
    citizen_name: str | None = None
    address: str | None = None
    source: str | None = None  # the ticket's: "import" for one imported (see bot.domain.history.imported_until)
    received_at: datetime | None = None

    @classmethod
    def of(cls, values: Mapping[Any, Any]) -> DueDeadline:
        return cls(**_typed(values, _DUE_ENUMS))


class NotificationKind(StrEnum):
    """What a recorded notification was (see :class:`Notification`)."""

    REMINDER = "reminder"  # before the due time
    OVERDUE = "overdue"  # at the due time (escalation level 1)
    ESCALATION = "escalation"  # a further level after it
    REPEAT = "repeat"  # the repeats to every level
    DUTY = "duty"  # an urgent ticket's step, outside the service window, to the duty officer
    THREE_MISSES = "three_misses"  # the unit's third missed accept deadline in a period, to the office


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    """One recipient told of one deadline (or, for a flag, one ticket): a row of the append-only ``notifications``
    table. ``recipient_kind`` is ``group`` (``recipient`` a unit's code: its work group) or ``member`` (a userid:
    privately); ``channel`` the outbox channel its message was queued on, ``outbox_key`` and ``outbox_id`` that
    message's."""

    id: int | None = None
    at: datetime
    kind: NotificationKind
    level: int | None = None
    ticket_id: int
    ticket_no: str
    deadline_id: int | None = None
    deadline_name: str | None = None
    due_at: datetime | None = None
    unit_code: str | None = None
    recipient_kind: str
    recipient: str
    channel: str
    outbox_key: str
    outbox_id: int | None = None

    @classmethod
    def of(cls, values: Mapping[Any, Any]) -> Notification:
        return cls(**_typed(values, {"kind": NotificationKind}))

    def row(self) -> dict[str, Any]:
        """The column values to store (without the id)."""
        values = {name: getattr(self, name) for name in _NOTIFICATION_COLUMNS}
        values["kind"] = self.kind.value
        return values


_NOTIFICATION_COLUMNS = tuple(f.name for f in dataclasses.fields(Notification) if f.name != "id")
