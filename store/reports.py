"""The reports' counts (bot.domain.reports says what they mean): one statement per kind of fact, each counting over
several periods at once (a CASE gives each row its period's index, the ``bucket``), grouped by unit.

Deadlines count in the period they fall due in, under the unit they record; visits by their time, under the unit that
had the ticket then; the tickets received
by their dispatch time; returns and warnings by the audit log's entries (the unit the ticket was with then, else its
unit now). Cancelled tickets and tickets approved 不纳入测评 count in nothing but the tickets received.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select, text

from store import models
from store.core import Conn
from store.models import audit_log, deadlines, tickets

Range = tuple[datetime, datetime]

_COUNTED = and_(tickets.c.state != "cancelled", tickets.c.evaluation != "excluded")
# the few tickets that count in nothing but the tickets received, by their partial index (ix_tickets_uncounted; its
# condition written out as the index's, so that SQLite matches it too): a deadline's count leaves them out without
# joining every ticket of the periods
UNCOUNTED = select(tickets.c.id).where(text(models.UNCOUNTED))


def _bucket(column: Any, ranges: Sequence[Range]) -> tuple[ColumnElement[Any], ColumnElement[bool]]:
    """(the index of the range ``column`` falls in, the condition that it falls in one)."""
    conditions = [and_(column >= start, column < end) for start, end in ranges]
    if len(ranges) == 1:
        return literal(0), conditions[0]
    return case(*((c, i) for i, c in enumerate(conditions)), else_=-1), or_(*conditions)


def _units(column: Any, units: Sequence[str] | None) -> list[ColumnElement[bool]]:
    return [] if units is None else [column.in_(list(units))]


@dataclass(frozen=True, slots=True)
class DeadlineCount:
    bucket: int
    unit: str | None
    name: str
    due: int
    on_time: int


async def deadline_counts(
    conn: Conn, ranges: Sequence[Range], now: datetime, names: Sequence[str], units: Sequence[str] | None = None
) -> list[DeadlineCount]:
    """The deadlines of ``names`` due in each range (open ones only once due by ``now``), and those met on time."""
    bucket, within = _bucket(deadlines.c.due_at, ranges)
    on_time = func.sum(case((and_(deadlines.c.status == "met", deadlines.c.met_at <= deadlines.c.due_at), 1), else_=0))
    query = (
        select(bucket.label("bucket"), deadlines.c.unit_code, deadlines.c.name, func.count(), on_time)
        .where(
            within,
            deadlines.c.name.in_(list(names)),
            deadlines.c.status != "cancelled",
            or_(deadlines.c.status != "open", deadlines.c.due_at <= now),
            deadlines.c.ticket_id.not_in(UNCOUNTED),
            *_units(deadlines.c.unit_code, units),
        )
        .group_by(bucket, deadlines.c.unit_code, deadlines.c.name)
    )
    result = await conn.execute(query)
    return [DeadlineCount(b, u, n, due, int(met or 0)) for b, u, n, due, met in result.all()]


@dataclass(frozen=True, slots=True)
class ReceivedCount:
    bucket: int
    unit: str | None
    kind: str
    category: str | None
    received: int
    repeats: int
    media: int


async def received_counts(
    conn: Conn, ranges: Sequence[Range], units: Sequence[str] | None = None
) -> list[ReceivedCount]:
    """Tickets dispatched in each range by unit, kind and category, with how many repeat an earlier one (the
    platform's flag or the bot's match) and how many are media-exposure tickets."""
    bucket, within = _bucket(tickets.c.dispatched_at, ranges)
    repeat = text(f"({models.REPEATED})")  # as the workbook's list and its index say it
    query = (
        select(
            bucket.label("bucket"),
            tickets.c.unit_code,
            tickets.c.kind,
            tickets.c.category,
            func.count(),
            func.sum(case((repeat, 1), else_=0)),
            func.sum(case((tickets.c.is_media.is_(True), 1), else_=0)),
        )
        .where(within, *_units(tickets.c.unit_code, units))
        .group_by(bucket, tickets.c.unit_code, tickets.c.kind, tickets.c.category)
    )
    result = await conn.execute(query)
    return [ReceivedCount(b, u, k, c, n, int(r or 0), int(m or 0)) for b, u, k, c, n, r, m in result.all()]


async def reply_counts(
    conn: Conn, ranges: Sequence[Range], now: datetime, units: Sequence[str] | None = None
) -> list[tuple[int, str | None, int, int]]:
    """(bucket, unit, tickets whose platform deadline falls in the range and has passed or been answered, those first
    submitted by it)."""
    bucket, within = _bucket(tickets.c.hotline_deadline, ranges)
    on_time = func.sum(case((tickets.c.submitted_at <= tickets.c.hotline_deadline, 1), else_=0))
    query = (
        select(bucket.label("bucket"), tickets.c.unit_code, func.count(), on_time)
        .where(
            within,
            or_(tickets.c.submitted_at.is_not(None), tickets.c.hotline_deadline <= now),
            _COUNTED,
            *_units(tickets.c.unit_code, units),
        )
        .group_by(bucket, tickets.c.unit_code)
    )
    result = await conn.execute(query)
    return [(b, u, n, int(m or 0)) for b, u, n, m in result.all()]


async def visit_counts(
    conn: Conn, ranges: Sequence[Range], units: Sequence[str] | None = None
) -> list[tuple[int, str | None, str | None, str | None, int]]:
    """(bucket, unit, satisfaction, visit_solved, tickets) of the visits made in each range (a ticket's latest), under
    the unit that had the ticket at the visit (:func:`visit_unit`)."""
    bucket, within = _bucket(tickets.c.visited_at, ranges)
    unit = visit_unit()
    query = (
        select(bucket.label("bucket"), unit, tickets.c.satisfaction, tickets.c.visit_solved, func.count())
        .where(within, _COUNTED, *_units(unit, units))
        .group_by(bucket, unit, tickets.c.satisfaction, tickets.c.visit_solved)
    )
    result = await conn.execute(query)
    return [(b, u, s, v, n) for b, u, s, v, n in result.all()]


def visit_unit() -> ColumnElement[Any]:
    """The unit a ticket's latest visit counts for: the one that had the ticket then (``visit_unit``, written with
    the visit), as the warning the same visit made counts; a ticket the platform sent elsewhere after a dissatisfied
    visit does not take that visit to its new unit. Every visit writes it (and imports, and migration 0012 for the
    visits before it), so a unit's visits are read by its index (visit_unit, visited_at)."""
    return tickets.c.visit_unit


def _audit_unit() -> ColumnElement[Any]:
    """The unit an audit entry counts for: the one it records, else (an entry from before migration 0012) its
    ticket's now."""
    return func.coalesce(audit_log.c.unit_code, tickets.c.unit_code)


def _audit_prefilter(units: Sequence[str] | None) -> list[ColumnElement[bool]]:
    """For some units, their entries by their own index (unit, action, time), and the entries recording no unit
    about a ticket of theirs now."""
    if units is None:
        return []
    theirs = select(tickets.c.id).where(tickets.c.unit_code.in_(list(units)))
    return [
        or_(
            audit_log.c.unit_code.in_(list(units)),
            and_(audit_log.c.unit_code.is_(None), audit_log.c.ticket_id.in_(theirs)),
        )
    ]


# the audit entries the reports count: a return asked for, approved, rejected; a visit that made a warning ticket
AUDITED = ("request_return", "approve_return", "reject_return", "visit")


async def audit_counts(
    conn: Conn, ranges: Sequence[Range], units: Sequence[str] | None = None
) -> list[tuple[int, str | None, str, int]]:
    """(bucket, unit, what, entries): ``what`` is an action of :data:`AUDITED`, ``warning`` for a visit that made a
    warning ticket (other visits are counted from the tickets)."""
    bucket, _ = _bucket(audit_log.c.at, ranges)
    unit = _audit_unit()
    what = case((audit_log.c.action == "visit", literal("warning")), else_=audit_log.c.action)
    # each kind of entry in each range, a range of ix_audit_log_action_at of its own
    kinds = [
        audit_log.c.action.in_([a for a in AUDITED if a != "visit"]),
        and_(audit_log.c.action == "visit", audit_log.c.to_state == "warning"),
    ]
    within = or_(*(and_(k, audit_log.c.at >= start, audit_log.c.at < end) for k in kinds for start, end in ranges))
    query = (
        select(bucket.label("bucket"), unit.label("unit"), what.label("what"), func.count())
        .select_from(audit_log.join(tickets, tickets.c.id == audit_log.c.ticket_id))
        .where(
            within,
            _COUNTED,
            *_units(unit, units),
            *_audit_prefilter(units),
        )
        .group_by(bucket, unit, what)
    )
    result = await conn.execute(query)
    return [(b, u, w, n) for b, u, w, n in result.all()]


@dataclass(slots=True)
class Facts:
    """What one range's figures are counted from: the rows of the statements above, without their bucket."""

    deadlines: list[tuple[str | None, str, int, int]] = field(default_factory=list)  # unit, name, due, on time
    received: list[tuple[str | None, str, str | None, int, int, int]] = field(default_factory=list)
    replies: list[tuple[str | None, int, int]] = field(default_factory=list)  # unit, due, on time
    visits: list[tuple[str | None, str | None, str | None, int]] = field(default_factory=list)
    audits: list[tuple[str | None, str, int]] = field(default_factory=list)  # unit, what, entries

    def rows(self, kind: str) -> list[Any]:
        """The rows of one kind of fact (one of :data:`KINDS`)."""
        return list(getattr(self, kind))

    def pooled(self) -> Facts:
        """The same facts with no unit: the office's, counted as one unit's."""
        return Facts(**{kind: [(None, *row[1:]) for row in getattr(self, kind)] for kind in _KINDS})

    def add(self, kind: str, rows: list[Any]) -> None:
        """Adds rows of one kind (as kept: lists, which unpack as the tuples do)."""
        getattr(self, kind).extend(rows)


# raised whenever what a kind of fact counts changes: facts kept by an earlier version are counted again
FACTS_VERSION = 2
_KINDS = ("deadlines", "received", "replies", "visits", "audits")
KINDS = frozenset(_KINDS)


async def facts(
    conn: Conn,
    ranges: Sequence[Range],
    now: datetime,
    names: Sequence[str],
    units: Sequence[str] | None = None,
    kinds: frozenset[str] = KINDS,
) -> list[Facts]:
    """Each range's facts of ``kinds`` (deadline facts of ``names``), of ``units`` (None: all)."""
    out = [Facts() for _ in ranges]
    if not ranges:
        return out
    if "deadlines" in kinds and names:
        for d in await deadline_counts(conn, ranges, now, names, units):
            out[d.bucket].deadlines.append((d.unit, d.name, d.due, d.on_time))
    if "replies" in kinds:
        for b, u, n, m in await reply_counts(conn, ranges, now, units):
            out[b].replies.append((u, n, m))
    if "visits" in kinds:
        for b, u, s, v, n in await visit_counts(conn, ranges, units):
            out[b].visits.append((u, s, v, n))
    if "received" in kinds:
        for r in await received_counts(conn, ranges, units):
            out[r.bucket].received.append((r.unit, r.kind, r.category, r.received, r.repeats, r.media))
    if "audits" in kinds:
        for b, u, w, n in await audit_counts(conn, ranges, units):
            out[b].audits.append((u, w, n))
    return out
