"""What a row of the platform's export says happened to a ticket (its state word and milestones), and what the bot
records of it: the ticket's state and results, and each deadline met, missed, cancelled or left open.

Pure. The rules (docs/operations.md, *Importing the platform's history*):

* **State.** The state word (办理状态 / 工单状态, through ``import.states``) says still with the unit (dispatched,
  claimed, contacted, on site), finished, closed or cancelled; without one, the milestones say it (a visit: closed;
  办结时间: finished; else with the unit). A finished row with a visit is closed; without one it awaits the office's
  visit (submitted) when it was finished within ``import.awaiting_visit`` before the import, and is closed when
  older. A row still with its unit is as far along as its word or its latest milestone says, whichever is further.
  ``closed_at`` is the visit's time, else the finish's, else the latest time the row gives.
* **Deadlines.** A deadline whose own milestone has a time is met then (late when after its due time, as the bot
  records a late step). Without one, a later step's time at or before the due time meets it (接单 by 联系, 到场 or
  办结; the handling deadlines by the visit): it must have happened by then. Otherwise, on a finished ticket, it is
  missed when its own milestone's column is in the export, the cell is empty and the ticket was finished after the
  due time (the unit never recorded it: the bot's own lifecycle records the same as missed), and cancelled (not
  known) in every other case: a column the export lacks never makes a unit late. On an open ticket it stays open.
  The return window (a right, not an obligation) is never missed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from bot.domain.lifecycle.states import HANDLING, Solved, TicketState, VisitResult
from config.vocabulary import DeadlineName

Status = Literal["dispatched", "claimed", "contacted", "on_site", "finished", "closed", "cancelled"]
DeadlineOutcome = Literal["open", "met", "missed", "cancelled"]

MILESTONES = ("accepted_at", "contacted_at", "on_site_at", "finished_at", "visited_at")

# the milestone whose time is a deadline's own
OWN: Mapping[str, str] = {
    DeadlineName.ACCEPT: "accepted_at",
    DeadlineName.FIRST_CONTACT: "contacted_at",
    DeadlineName.CONTACT_20M: "contacted_at",
    DeadlineName.ON_SITE_2H: "on_site_at",
    **{name: "finished_at" for name in HANDLING if name is not DeadlineName.ACCEPT},
}
# later steps whose time bounds a deadline's own: it happened no later than they did
IMPLIED: Mapping[str, tuple[str, ...]] = {
    DeadlineName.ACCEPT: ("contacted_at", "on_site_at", "finished_at", "visited_at"),
    **{name: ("visited_at",) for name in HANDLING if name is not DeadlineName.ACCEPT},
}
FINISHED = (TicketState.SUBMITTED, TicketState.CLOSED, TicketState.CANCELLED)
# the states of a ticket still with its unit, in the order it goes through them
_ALONG = (TicketState.DISPATCHED, TicketState.CLAIMED, TicketState.CONTACTED, TicketState.ON_SITE)


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketHistory:
    """What one row says of its ticket's past on the platform. ``columns``: the milestones the export has a column
    for (a missing column is not known; an empty cell in a present one is a step not taken)."""

    status: Status | None = None
    accepted_at: datetime | None = None
    contacted_at: datetime | None = None
    on_site_at: datetime | None = None
    finished_at: datetime | None = None
    visited_at: datetime | None = None
    satisfaction: VisitResult | None = None
    visit_note: str | None = None
    solved: Solved | None = None
    visit_solved: Solved | None = None
    columns: frozenset[str] = field(default_factory=frozenset)

    def as_data(self) -> dict[str, Any]:
        """JSON for the audit log and the hand-over's hash (what it says, its times as ISO text)."""
        data: dict[str, Any] = {}
        for name in ("status", *MILESTONES, "satisfaction", "visit_note", "solved", "visit_solved"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value.isoformat() if isinstance(value, datetime) else str(value)
        data["columns"] = sorted(self.columns)
        return data

    def key(self) -> tuple[Any, ...]:
        """What it says, as plain values for the hand-over's hash (cheaper than :meth:`as_data`; the same facts)."""
        return (
            self.status,
            *(None if t is None else t.timestamp() for t in (getattr(self, n) for n in MILESTONES)),
            None if self.satisfaction is None else self.satisfaction.value,
            self.visit_note,
            None if self.solved is None else self.solved.value,
            None if self.visit_solved is None else self.visit_solved.value,
            sorted(self.columns),
        )

    def time_of(self, name: str) -> datetime | None:
        value = getattr(self, name)
        return value if isinstance(value, datetime) else None

    @property
    def visited(self) -> bool:
        return self.visited_at is not None or self.satisfaction is not None

    def latest(self) -> datetime | None:
        times = [t for t in (self.time_of(n) for n in MILESTONES) if t is not None]
        return max(times) if times else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Settled:
    """The ticket as the row leaves it: its state and the columns that go with it."""

    state: TicketState
    changes: Mapping[str, Any]

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


def status_of(history: TicketHistory) -> Status:
    """The row's state word, else what its milestones say."""
    if history.status is not None:
        return history.status
    if history.visited:
        return "closed"
    if history.finished_at is not None:
        return "finished"
    return "dispatched"


def settle(history: TicketHistory, *, dispatched_at: datetime, now: datetime, awaiting_visit: timedelta) -> Settled:
    """The state the row's ticket is in, with its closing time, satisfaction, visit note and solved flags."""
    status = status_of(history)
    latest = history.latest() or dispatched_at
    closed_at: datetime | None = None
    if status in ("dispatched", "claimed", "contacted", "on_site"):
        if history.on_site_at is not None:
            reached = TicketState.ON_SITE
        elif history.contacted_at is not None:
            reached = TicketState.CONTACTED
        elif history.accepted_at is not None:
            reached = TicketState.CLAIMED
        else:
            reached = TicketState.DISPATCHED
        state = max(reached, TicketState(status), key=_ALONG.index)
    elif status == "cancelled":
        state, closed_at = TicketState.CANCELLED, latest
    elif status == "closed" or history.visited:
        state, closed_at = TicketState.CLOSED, history.visited_at or history.finished_at or latest
    else:  # finished, not visited
        finished = history.finished_at or latest
        if now - finished <= awaiting_visit:
            state = TicketState.SUBMITTED
        else:
            state, closed_at = TicketState.CLOSED, finished
    return Settled(
        state=state,
        changes={
            "closed_at": closed_at,
            "satisfaction": history.satisfaction.value if history.satisfaction is not None else None,
            "visit_note": history.visit_note,
            "solved": history.solved.value if history.solved is not None else None,
            "visit_solved": history.visit_solved.value if history.visit_solved is not None else None,
            # the reports' times: the unit's submission and the visit (a visit result without its time: the close)
            "submitted_at": history.finished_at,
            "visited_at": history.visited_at or (closed_at if history.visited else None),
        },
    )


def settle_deadline(
    history: TicketHistory, name: str, due_at: datetime, *, finished: bool
) -> tuple[DeadlineOutcome, datetime | None]:
    """What the row says of one deadline: (met, when), (missed, when it stopped being due), (cancelled, None) or
    (open, None); see the module's docstring. ``name``: a :class:`DeadlineName` or its value."""
    own = OWN.get(name)
    if own is not None:
        at = history.time_of(own)
        if at is not None:
            return "met", at
    for later in IMPLIED.get(name, ()):
        at = history.time_of(later)
        if at is not None and at <= due_at:
            return "met", at
    if not finished:
        return "open", None
    end = history.finished_at
    if own is not None and own in history.columns and end is not None and due_at < end:
        return "missed", end
    return "cancelled", None


IMPORT_SOURCE = "import"


def imported_until(source: str | None, received_at: datetime | None) -> datetime | None:
    """Until when a ticket's deadlines were the platform's business rather than the bot's: an imported ticket's, until
    its import (a deadline due by then is never nagged, and a miss of it never counts against a unit now); None for
    a ticket handed over live."""
    return received_at if source == IMPORT_SOURCE else None
