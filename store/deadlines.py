"""The deadlines' statements: inserts (by COPY in bulk on PostgreSQL), closing and moving deadlines."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import and_, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.domain.records import Deadline
from store.core import Conn
from store.models import deadlines

# from this many rows on, PostgreSQL gets them by COPY rather than by INSERT
_COPY_FROM = 200


async def insert_deadlines(conn: Conn, rows: Sequence[Mapping[str, Any]]) -> None:
    if not rows:
        return
    if conn.dialect.name == "postgresql" and len(rows) >= _COPY_FROM:
        await _copy(conn, "deadlines", rows)
        return
    await conn.execute(_INSERT, list(rows))


async def _copy(conn: Conn, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Bulk load by PostgreSQL's COPY, in the connection's own transaction (imports write ~8 deadlines per
    ticket: as single-row INSERTs they were most of a 100k-row import's time)."""
    columns = list(rows[0])
    raw = await cast(AsyncConnection, conn).get_raw_connection()  # PostgreSQL's: an async connection
    driver = raw.driver_connection
    assert driver is not None
    await driver.copy_records_to_table(table, records=[tuple(r[c] for c in columns) for r in rows], columns=columns)


# built once, their values bound as they run (see store.tickets)
_INSERT = insert(deadlines)
_OPEN = (
    select(deadlines)
    .where(and_(deadlines.c.ticket_id == bindparam("ticket_id"), deadlines.c.status == "open"))
    .order_by(deadlines.c.due_at)
)
_CLOSE = update(deadlines).where(deadlines.c.id.in_(bindparam("ids", expanding=True)))
_CLOSE_AT = {
    False: _CLOSE.values(status=bindparam("new_status"), next_due_at=None),
    # met or missed: when it was met, or when it stopped being due
    True: _CLOSE.values(status=bindparam("new_status"), next_due_at=None, met_at=bindparam("at")),
}


async def open_deadlines(conn: Conn, ticket_id: int) -> list[Deadline]:
    result = await conn.execute(_OPEN, {"ticket_id": ticket_id})
    return [Deadline.of(row) for row in result.mappings()]


async def close_deadlines(conn: Conn, ids: Iterable[int], *, status: str, at: datetime | None) -> None:
    ids = list(ids)
    if not ids:
        return
    dated = status in ("met", "missed")
    await conn.execute(_CLOSE_AT[dated], {"ids": ids, "new_status": status, **({"at": at} if dated else {})})


_HOLD = (
    update(deadlines)
    .where(and_(deadlines.c.id.in_(bindparam("ids", expanding=True)), deadlines.c.status == "open"))
    .values(next_due_at=bindparam("next_due_at"))
)


async def hold_deadlines(conn: Conn, ids: Iterable[int]) -> None:
    """The open deadlines ``ids`` stop being looked at by the deadline engine (a return under the office's review);
    they stay open, with their due times."""
    ids = list(ids)
    if ids:
        await conn.execute(_HOLD, {"ids": ids, "next_due_at": None})


async def resume_deadlines(conn: Conn, ids: Iterable[int], *, at: datetime) -> None:
    """The deadline engine looks at the open deadlines ``ids`` again from ``at``: it takes whatever step of theirs
    has come meanwhile (an overdue notice that fell due during a hold goes out at its next tick), then goes on."""
    ids = list(ids)
    if ids:
        await conn.execute(_HOLD, {"ids": ids, "next_due_at": at})


async def reschedule_deadline(
    conn: Conn,
    deadline_id: int,
    *,
    policy: str,
    started_at: datetime,
    due_at: datetime,
    stage: int,
    next_due_at: datetime | None,
    extended_days: int | None = None,
) -> None:
    """Moves a deadline; ``stage`` and ``next_due_at`` are its first step for the deadline engine at the new due time
    (``TicketService.nag_point``): its reminders start over. ``extended_days``: the working days extensions now add
    to it (None: unchanged)."""
    values: dict[str, Any] = {
        "policy": policy,
        "started_at": started_at,
        "due_at": due_at,
        "next_due_at": next_due_at,
        "stage": stage,
    }
    if extended_days is not None:
        values["extended_days"] = extended_days
    await conn.execute(update(deadlines).where(deadlines.c.id == deadline_id).values(**values))


async def deadlines_of(conn: Conn, ticket_id: int) -> list[Deadline]:
    result = await conn.execute(
        select(deadlines).where(deadlines.c.ticket_id == ticket_id).order_by(deadlines.c.cycle, deadlines.c.due_at)
    )
    return [Deadline.of(row) for row in result.mappings()]
