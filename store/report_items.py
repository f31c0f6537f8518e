"""The tickets behind a report's figures, for the workbook's ticket sheets: deadlines not met on time, returns, visits
not satisfied or that made warning tickets, repeat complaints. Rows carry the citizen's name and address only so that
the caller can mask the texts (bot.domain.masking.Citizen); never the phone."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import CursorResult, and_, func, or_, select, text, union

from store.core import Conn, among_ids
from store.models import REPEATED, audit_log, deadlines, tickets, unit_miss_counts
from store.reports import _COUNTED, AUDITED, UNCOUNTED, _audit_unit, _units, visit_unit

_TICKET = (
    tickets.c.ticket_no,
    tickets.c.kind,
    tickets.c.category,
    # the title, else the ticket's text (a list shows either, masked and cut short): one column read, not both
    func.coalesce(func.nullif(tickets.c.title, ""), tickets.c.content).label("title"),
    tickets.c.citizen_name,
    tickets.c.address,
)
RETURN_ACTIONS = ("request_return", "confirm_return", "decline_return", "approve_return", "reject_return")


async def late_deadlines(
    conn: Conn, start: datetime, end: datetime, now: datetime, names: Sequence[str], units: Sequence[str] | None
) -> list[dict[str, Any]]:
    """The deadlines of ``names`` due in ``[start, end)`` that were not met on time (missed, met late, or open past
    due by ``now``), with their tickets, by unit and due time. Two reads: the deadlines by their index, then their
    tickets by id (one statement joining them has the planner guess a late deadline in two, not one in twenty, and
    read every ticket)."""
    d = deadlines.c
    late = select(d.ticket_id, d.unit_code, d.name, d.due_at, d.met_at, d.status).where(
        d.due_at >= start,
        d.due_at < end,
        d.name.in_(list(names)),
        or_(
            d.status == "missed",
            and_(d.status == "met", d.met_at > d.due_at),
            and_(d.status == "open", d.due_at <= now),
        ),
        d.ticket_id.not_in(UNCOUNTED),
        *_units(d.unit_code, units),
    )
    rows = _dicts(await conn.execute(late))
    ids = sorted({r["ticket_id"] for r in rows})
    found: dict[int, dict[str, Any]] = {}
    dialect = conn.dialect.name
    query = select(tickets.c.id, *_TICKET).where(among_ids(tickets.c.id, dialect))
    batch = max(len(ids), 1) if dialect == "postgresql" else _BATCH  # one array, or IN lists SQLite takes
    for at in range(0, len(ids), batch):
        found.update((t["id"], t) for t in _dicts(await conn.execute(query, {"ids": ids[at : at + batch]})))
    out = [{**r, **found[r["ticket_id"]]} for r in rows]
    out.sort(key=lambda r: (r["unit_code"] is None, r["unit_code"] or "", r["due_at"], r["ticket_no"]))
    return out


_BATCH = 5000  # ids bound in one statement on SQLite (it takes 32,766 parameters)


def _dicts(result: CursorResult[Any]) -> list[dict[str, Any]]:
    """The rows as dicts (tens of thousands at a large office: built from the plain rows, the cheaper way)."""
    keys = list(result.keys())
    return [dict(zip(keys, row, strict=True)) for row in result]


async def return_entries(
    conn: Conn, start: datetime, end: datetime, units: Sequence[str] | None
) -> list[dict[str, Any]]:
    """Every return entry (asked, signed, declined, approved, rejected) of the tickets a return was asked for in
    ``[start, end)``, from that request on, by ticket and time; ``unit`` is the unit the ticket was with, ``reason``
    and ``suggested_unit`` what a request gave."""
    unit = _audit_unit().label("unit")
    asked = (
        select(audit_log.c.ticket_id)
        .select_from(audit_log.join(tickets, tickets.c.id == audit_log.c.ticket_id))
        .where(audit_log.c.action == "request_return", audit_log.c.at >= start, audit_log.c.at < end, _COUNTED)
        .where(*_units(_audit_unit(), units))
    )
    query = (
        select(
            audit_log.c.ticket_id,
            audit_log.c.action,
            audit_log.c.at,
            audit_log.c.note,
            # what a request says, read by the database: the entries' JSON is not decoded whole
            audit_log.c.data["reason"].as_string().label("reason"),
            audit_log.c.data["suggested_unit"].as_string().label("suggested_unit"),
            unit,
            *_TICKET,
        )
        .select_from(audit_log.join(tickets, tickets.c.id == audit_log.c.ticket_id))
        .where(audit_log.c.ticket_id.in_(asked), audit_log.c.action.in_(RETURN_ACTIONS), audit_log.c.at >= start)
        .order_by(audit_log.c.ticket_id, audit_log.c.at, audit_log.c.id)
    )
    return _dicts(await conn.execute(query))


async def unsatisfied_visits(
    conn: Conn, start: datetime, end: datetime, units: Sequence[str] | None
) -> list[dict[str, Any]]:
    """Tickets whose latest visit in ``[start, end)`` was not satisfied (不满意), or a visit in it made a warning
    ticket: their visit results and their re-handling deadline (the latest), by unit (the one that had the ticket at
    its latest visit) and ticket."""
    warned = select(audit_log.c.ticket_id).where(
        audit_log.c.action == AUDITED[3],
        audit_log.c.to_state == "warning",
        audit_log.c.at >= start,
        audit_log.c.at < end,
    )

    dissatisfied = select(tickets.c.id).where(
        tickets.c.visited_at >= start, tickets.c.visited_at < end, tickets.c.satisfaction == "dissatisfied"
    )

    def rehandle(column: Any) -> Any:
        return (
            select(column)
            .where(deadlines.c.ticket_id == tickets.c.id, deadlines.c.name == "rehandle")
            .order_by(deadlines.c.cycle.desc())
            .limit(1)
            .scalar_subquery()
        )

    # a warned ticket since reopened has no visit now: it is listed under its unit
    unit = func.coalesce(visit_unit(), tickets.c.unit_code)
    query = (
        select(
            tickets.c.id,
            unit.label("unit_code"),
            tickets.c.visited_at,
            tickets.c.satisfaction,
            tickets.c.visit_solved,
            tickets.c.id.in_(warned).label("warning"),
            rehandle(deadlines.c.due_at).label("rehandle_due"),
            rehandle(deadlines.c.met_at).label("rehandle_met"),
            *_TICKET,
        )
        .where(
            # the two sets of ids, rather than either condition on every ticket: each is read by its index
            tickets.c.id.in_(union(dissatisfied, warned)),
            _COUNTED,
            *_units(unit, units),
        )
        .order_by(unit, tickets.c.ticket_no)
    )
    return _dicts(await conn.execute(query))


async def repeat_tickets(
    conn: Conn, start: datetime, end: datetime, units: Sequence[str] | None
) -> list[dict[str, Any]]:
    """Tickets dispatched in ``[start, end)`` that repeat an earlier one (the bot's match or the platform's flag)."""
    query = (
        select(
            tickets.c.unit_code,
            tickets.c.dispatched_at,
            tickets.c.repeat_count,
            tickets.c.repeat_of,
            tickets.c.repeat_reason,
            tickets.c.is_repeat,
            *_TICKET,
        )
        .where(
            tickets.c.dispatched_at >= start,
            tickets.c.dispatched_at < end,
            text(f"({REPEATED})"),  # as its index's condition (ix_tickets_repeated)
            *_units(tickets.c.unit_code, units),
        )
        .order_by(tickets.c.unit_code, tickets.c.dispatched_at, tickets.c.ticket_no)
    )
    return _dicts(await conn.execute(query))


async def open_deadlines_for_brief(
    conn: Conn, units: Sequence[str], day_end: datetime, names: Sequence[str]
) -> list[dict[str, Any]]:
    """The heads' morning brief: the open deadlines of ``names`` of the tickets ``units`` have that fall due before
    ``day_end`` (today's and the overdue) and every open re-handling deadline (the warning tickets), by due time: all
    of them (open deadlines due by tonight are a small share of the open tickets; every unit's counts must be whole)."""
    query = (
        select(deadlines.c.unit_code, deadlines.c.name, deadlines.c.due_at, tickets.c.state, *_TICKET)
        .select_from(deadlines.join(tickets, tickets.c.id == deadlines.c.ticket_id))
        .where(
            deadlines.c.status == "open",
            deadlines.c.name.in_(list(names)),
            or_(deadlines.c.due_at < day_end, deadlines.c.name == "rehandle"),
            tickets.c.unit_code.in_(list(units)),
        )
        .order_by(deadlines.c.due_at, tickets.c.ticket_no)
    )
    return _dicts(await conn.execute(query))


async def accept_misses(conn: Conn, units: Sequence[str], period_start: date) -> dict[str, int]:
    """Accept misses counted against each unit in the three-misses period from ``period_start``."""
    result = await conn.execute(
        select(unit_miss_counts.c.unit_code, unit_miss_counts.c.misses).where(
            unit_miss_counts.c.unit_code.in_(list(units)), unit_miss_counts.c.period_start == period_start
        )
    )
    return {u: n for u, n in result.all()}
