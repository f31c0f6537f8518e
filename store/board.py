"""The board's reads (bot.board): the tiles' counts and the deadline list over the open tickets a viewer sees.

Who sees what comes in as the domain's :class:`bot.domain.permissions.Sight`: every ticket, or those of some units,
those a member handles, and the unclaimed ones of the units a member works in. Filters narrow
both the tiles and the list. The list's rows carry the citizen's name and address only so that the caller can mask
the title; never the phone.

The deadline list is read from the open deadlines by their due time (``ix_deadlines_open_due``, migration 0014),
joined to their tickets, so that the nearest come first without reading every open ticket; the tiles count the
open tickets in one statement (``ix_tickets_state``) and the open deadlines of three windows in another, from the
index alone when the viewer sees every ticket unfiltered (on PostgreSQL it includes the ticket and the name).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select

from bot.domain.lifecycle import TicketState
from bot.domain.permissions import Sight
from store.core import Conn, Row
from store.models import deadlines, tickets
from store.queries import LIST_COLUMNS


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    """What the board is narrowed to (None: any)."""

    unit: str | None = None
    kind: str | None = None
    state: str | None = None
    repeat: bool | None = None
    media: bool | None = None


def _seen(sight: Sight) -> list[Any]:
    if sight.everything:
        return []
    either: list[ColumnElement[bool]] = []
    if sight.units:
        either.append(tickets.c.unit_code.in_(list(sight.units)))
    either.append(tickets.c.handler_userid == sight.userid)
    if sight.unclaimed_units:
        either.append(
            and_(tickets.c.unit_code.in_(list(sight.unclaimed_units)), tickets.c.state == TicketState.DISPATCHED)
        )
    return [or_(*either)]


def _narrowed(filters: Filters) -> list[Any]:
    conditions = []
    if filters.unit is not None:
        conditions.append(tickets.c.unit_code == filters.unit)
    if filters.kind is not None:
        conditions.append(tickets.c.kind == filters.kind)
    if filters.state is not None:
        conditions.append(tickets.c.state == filters.state)
    if filters.repeat is not None:
        conditions.append(tickets.c.is_repeat.is_(filters.repeat))
    if filters.media is not None:
        conditions.append(tickets.c.is_media.is_(filters.media))
    return conditions


async def ticket_counts(
    conn: Conn, sight: Sight, filters: Filters, *, open_states: Sequence[str], states: Sequence[str]
) -> dict[str, int]:
    """The open tickets (in ``open_states``) the viewer sees, in all (``open``) and in each of ``states``."""
    columns = [func.count().label("open")]
    columns += [func.count().filter(tickets.c.state == state).label(state) for state in states]
    row = (
        await conn.execute(
            select(*columns).where(tickets.c.state.in_(list(open_states)), *_seen(sight), *_narrowed(filters))
        )
    ).one()
    return dict(row._mapping)


async def deadline_counts(
    conn: Conn,
    sight: Sight,
    filters: Filters,
    *,
    windows: Sequence[str],
    now: datetime,
    soon: datetime,
    day_end: datetime,
) -> dict[str, int]:
    """Of the tickets the viewer sees, those with an open deadline (not a window) overdue (due before ``now``), due
    before ``soon``, due before ``day_end`` (the last two not yet overdue): each ticket counted once per tile."""
    due = deadlines.c.due_at
    ticket = deadlines.c.ticket_id
    of_tickets = [*_seen(sight), *_narrowed(filters)]
    counted = select(
        func.count(func.distinct(ticket)).filter(due < now).label("overdue"),
        func.count(func.distinct(ticket)).filter(due >= now, due < soon).label("due_soon"),
        func.count(func.distinct(ticket)).filter(due >= now, due < day_end).label("due_today"),
    ).where(deadlines.c.status == "open", due < max(day_end, soon), deadlines.c.name.not_in(list(windows)))
    if of_tickets:  # the office's whole board needs no ticket: the index alone answers (PostgreSQL: its INCLUDE)
        counted = counted.select_from(deadlines.join(tickets, tickets.c.id == deadlines.c.ticket_id)).where(*of_tickets)
    row = (await conn.execute(counted)).one()
    return dict(row._mapping)


_ROW_COLUMNS = (
    *LIST_COLUMNS,
    deadlines.c.name.label("deadline_name"),
    deadlines.c.started_at,
    deadlines.c.due_at,
)


async def open_deadlines(
    conn: Conn, sight: Sight, filters: Filters, *, windows: Sequence[str], limit: int
) -> list[Row]:
    """The open deadlines (not windows) of the tickets the viewer sees, the earliest due first, at most ``limit``;
    each with its ticket's list columns."""
    result = await conn.execute(
        select(*_ROW_COLUMNS)
        .select_from(deadlines.join(tickets, tickets.c.id == deadlines.c.ticket_id))
        .where(
            deadlines.c.status == "open",
            deadlines.c.name.not_in(list(windows)),
            *_seen(sight),
            *_narrowed(filters),
        )
        .order_by(deadlines.c.due_at, deadlines.c.id)
        .limit(limit)
    )
    return list(result.mappings())
