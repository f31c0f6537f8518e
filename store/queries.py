"""Read-side queries for the chat commands and the figures: look-ups by suffix, lists, counts.

Ticket states and deadline names come in as plain strings from the caller. ``windows`` names deadlines that are
windows rather than obligations (the return window): they are neither a ticket's next deadline nor make it overdue.
Lists are shown in work groups: they leave out the citizen's phone, and carry the name and address only so that the
text can be masked (bot.domain.masking.Citizen).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, func, select

from bot.domain.records import Ticket, TicketLine
from store.core import Conn
from store.models import deadlines, tickets

LIST_COLUMNS = (  # a ticket as a list shows it (store.board's rows too)
    tickets.c.id,
    tickets.c.ticket_no,
    tickets.c.kind,
    tickets.c.title,
    tickets.c.content,
    tickets.c.category,
    tickets.c.unit_code,
    tickets.c.handler_userid,
    tickets.c.state,
    tickets.c.is_repeat,
    tickets.c.is_media,
    tickets.c.dispatched_at,
    tickets.c.citizen_name,
    tickets.c.address,
)


def _of_units(units: Sequence[str] | None, *, by_index: bool = True) -> list[Any]:
    """``unit_code IN units`` (None: no condition). Without ``by_index`` it is written ``unit_code || ''``: where
    the query also selects open states, SQLite (no statistics) would otherwise read the units' tickets of all
    time through ix_tickets_unit_code rather than the few open ones through ix_tickets_state."""
    if units is None:
        return []
    column = tickets.c.unit_code if by_index else tickets.c.unit_code.concat("")
    return [column.in_(list(units))]


def _open_obligation(windows: Sequence[str], *, due_before: datetime | None = None) -> tuple[Any, list[Any]]:
    """A fresh alias of deadlines and the conditions selecting, in it, the open deadlines (not windows) of the
    outer query's ticket: correlated, read through ``ix_deadlines_ticket_id`` (a handful of rows per ticket)."""
    d = deadlines.alias()
    conditions = [d.c.ticket_id == tickets.c.id, d.c.status == "open"]
    if windows:
        conditions.append(d.c.name.not_in(list(windows)))
    if due_before is not None:
        conditions.append(d.c.due_at < due_before)
    return d, conditions


def _next_deadline(windows: Sequence[str]) -> tuple[Any, Any]:
    """The name and the due time of the outer ticket's earliest open deadline (NULL when it has none)."""
    d, conditions = _open_obligation(windows)
    due = select(func.min(d.c.due_at)).where(*conditions).scalar_subquery().label("deadline_due_at")
    d, conditions = _open_obligation(windows)
    name = select(d.c.name).where(*conditions).order_by(d.c.due_at, d.c.id).limit(1).scalar_subquery()
    return name.label("deadline_name"), due


def _overdue(windows: Sequence[str], now: datetime) -> Any:
    d, conditions = _open_obligation(windows, due_before=now)
    return select(d.c.id).where(*conditions).exists()


async def tickets_ending_with(
    conn: Conn,
    suffix: str,
    *,
    units: Sequence[str] | None,
    states: Sequence[str] | None,
    limit: int,
) -> list[Ticket]:
    """Tickets whose number ends with ``suffix``, ignoring case (people type the last digits), in ``states`` and
    ``units`` (None: any), newest first. ``%`` and ``_`` in ``suffix`` match themselves.

    A suffix cannot use an index: the scan is bounded by ``states`` (ix_tickets_state: the open tickets are few)
    and ``units`` (ix_tickets_unit_code); without either it reads the whole table."""
    statement = _ending_with(units is not None, None if states is None else tuple(states))
    pattern = "%" + suffix.upper().replace("/", "//").replace("%", "/%").replace("_", "/_")
    values: dict[str, Any] = {"pattern": pattern, "limit": limit}
    if units is not None:
        values["units"] = list(units)
    result = await conn.execute(statement, values)
    return [Ticket.of(row) for row in result.mappings()]


# The chat commands' queries are built once per shape (the configuration's states and windows), their values bound as
# they run: building a query over the tickets table's columns costs several times what running it does.


@functools.cache
def _ending_with(by_units: bool, states: tuple[str, ...] | None) -> Select[Any]:
    conditions = [func.upper(tickets.c.ticket_no).like(bindparam("pattern"), escape="/")]
    if by_units:
        # see _of_units: with the states, the few open tickets are read through ix_tickets_state
        column = tickets.c.unit_code if states is None else tickets.c.unit_code.concat("")
        conditions.append(column.in_(bindparam("units", expanding=True)))
    if states is not None:
        conditions.append(tickets.c.state.in_(list(states)))
    # whole rows: the command that named the ticket acts on it without reading it again
    return select(tickets).where(*conditions).order_by(tickets.c.id.desc()).limit(bindparam("limit"))


async def handler_tickets(
    conn: Conn, userid: str, *, states: Sequence[str], windows: Sequence[str], limit: int
) -> list[TicketLine]:
    """``userid``'s tickets in ``states`` (ix_tickets_handler_userid), each with its next deadline
    (``deadline_name``, ``deadline_due_at``): the most pressing first, those without a deadline last."""
    statement = _of_handler(tuple(states), tuple(windows))
    result = await conn.execute(statement, {"userid": userid, "limit": limit})
    return [TicketLine.of(row) for row in result.mappings()]


@functools.cache
def _of_handler(states: tuple[str, ...], windows: tuple[str, ...]) -> Select[Any]:
    name, due = _next_deadline(windows)
    return (
        select(*LIST_COLUMNS, name, due)
        .where(tickets.c.handler_userid == bindparam("userid"), tickets.c.state.in_(list(states)))
        .order_by(due.nulls_last(), tickets.c.id)
        .limit(bindparam("limit"))
    )


async def unit_tickets(
    conn: Conn,
    units: Sequence[str] | None,
    *,
    states: Sequence[str],
    first_states: Sequence[str],
    windows: Sequence[str],
    limit: int,
) -> list[TicketLine]:
    """Tickets of ``units`` (None: all) in ``states``, each with its next deadline: those in ``first_states``
    (unclaimed) first, then by next deadline, those without one last."""
    name, due = _next_deadline(windows)
    result = await conn.execute(
        select(*LIST_COLUMNS, name, due)
        .where(tickets.c.state.in_(list(states)), *_of_units(units, by_index=False))
        .order_by(tickets.c.state.in_(list(first_states)).desc(), due.nulls_last(), tickets.c.id)
        .limit(limit)
    )
    return [TicketLine.of(row) for row in result.mappings()]


async def overdue_unit_tickets(
    conn: Conn,
    units: Sequence[str] | None,
    now: datetime,
    *,
    states: Sequence[str],
    windows: Sequence[str],
    limit: int,
) -> list[TicketLine]:
    """Tickets of ``units`` (None: all) in ``states`` with an open deadline due before ``now``, the longest
    overdue first; ``deadline_name`` / ``deadline_due_at`` is that earliest deadline. Driven from the tickets
    (ix_tickets_state, few open ones), each looked up in deadlines by ticket: deadlines has no index on
    (status, due_at), and ``next_due_at`` is no guide (NULL once the engine has nothing more to do)."""
    name, due = _next_deadline(windows)
    result = await conn.execute(
        select(*LIST_COLUMNS, name, due)
        .where(tickets.c.state.in_(list(states)), *_of_units(units, by_index=False), _overdue(windows, now))
        .order_by(due, tickets.c.id)
        .limit(limit)
    )
    return [TicketLine.of(row) for row in result.mappings()]


async def ticket_figures(
    conn: Conn,
    units: Sequence[str] | None,
    now: datetime,
    *,
    since: datetime,
    states: Sequence[str],
    unclaimed_states: Sequence[str],
    closed_states: Sequence[str],
    windows: Sequence[str],
) -> dict[str, int]:
    """Counts over the tickets of ``units`` (None: all): ``open`` (in ``states``), of which ``unclaimed`` (in
    ``unclaimed_states``) and ``overdue`` (an open deadline due before ``now``); ``closed`` (in ``closed_states``,
    closed at or after ``since``)."""
    counts = await _figures(
        conn,
        units,
        now,
        since=since,
        states=states,
        unclaimed_states=unclaimed_states,
        closed_states=closed_states,
        windows=windows,
        by_unit=False,
    )
    return counts.get(None, dict.fromkeys(_FIGURES, 0))


async def ticket_figures_by_unit(
    conn: Conn,
    units: Sequence[str] | None,
    now: datetime,
    *,
    since: datetime,
    states: Sequence[str],
    unclaimed_states: Sequence[str],
    closed_states: Sequence[str],
    windows: Sequence[str],
) -> dict[str, dict[str, int]]:
    """:func:`ticket_figures` for each unit of ``units`` (None: every unit) that has a ticket counted, by its code:
    the same two statements, grouped by unit."""
    counts = await _figures(
        conn,
        units,
        now,
        since=since,
        states=states,
        unclaimed_states=unclaimed_states,
        closed_states=closed_states,
        windows=windows,
        by_unit=True,
    )
    return {code: figures for code, figures in counts.items() if code is not None}


_FIGURES = ("open", "unclaimed", "overdue", "closed")


async def _figures(
    conn: Conn,
    units: Sequence[str] | None,
    now: datetime,
    *,
    since: datetime,
    states: Sequence[str],
    unclaimed_states: Sequence[str],
    closed_states: Sequence[str],
    windows: Sequence[str],
    by_unit: bool,
) -> dict[str | None, dict[str, int]]:
    # grouped by ``unit_code || ''``: SQLite would otherwise read every ticket in unit order (ix_tickets_unit_code)
    # to group them, rather than the few open ones (ix_tickets_state) or today's closures (ix_tickets_closed_at)
    unit = tickets.c.unit_code.concat("") if by_unit else None
    group = [unit] if unit is not None else []
    key = [unit.label("unit")] if unit is not None else []
    found: dict[str | None, dict[str, int]] = {}
    rows = await conn.execute(
        select(
            *key,
            func.count().label("open"),
            func.count().filter(tickets.c.state.in_(list(unclaimed_states))).label("unclaimed"),
            func.count().filter(_overdue(windows, now)).label("overdue"),
        )
        .where(tickets.c.state.in_(list(states)), *_of_units(units, by_index=False))
        .group_by(*group)
    )
    for row in rows:
        code = row.unit if by_unit else None
        found[code] = {"open": row.open, "unclaimed": row.unclaimed, "overdue": row.overdue, "closed": 0}
    # the day's closures through ix_tickets_closed_at; the state and the units are checked on those rows only
    # (SQLite would otherwise read every closed ticket through ix_tickets_state)
    closed = await conn.execute(
        select(*key, func.count().label("closed"))
        .select_from(tickets)
        .where(
            tickets.c.closed_at >= since,
            tickets.c.state.concat("").in_(list(closed_states)),
            *_of_units(units, by_index=False),
        )
        .group_by(*group)
    )
    for row in closed:
        code = row.unit if by_unit else None
        found.setdefault(code, dict.fromkeys(_FIGURES, 0))["closed"] = int(row.closed)
    return found
