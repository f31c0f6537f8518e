"""The record of who was told of which deadline (``notifications``): appended in the transaction that queues the
messages, read per ticket, deleted only by the retention purge once past its retention.

Append-only: nothing here updates a row (triggers refuse it), and the one delete is the purge's, of rows older than
the time it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, delete, insert, select

from bot.domain.records import Notification
from store.core import CHUNK, Conn
from store.models import notifications

# built once, its values bound as it runs (see store.tickets); RETURNING has SQLAlchemy send a tick's rows as one
# multi-row INSERT (insertmanyvalues) rather than a statement per row
_RECORD = insert(notifications).returning(notifications.c.id)


async def record(conn: Conn, told: Sequence[Notification]) -> int:
    """Appends ``told``; how many rows."""
    values = [n.row() for n in told]
    recorded = 0
    for start in range(0, len(values), CHUNK):
        recorded += len((await conn.execute(_RECORD, values[start : start + CHUNK])).all())
    return recorded


async def of_ticket(conn: Conn, ticket_id: int, *, limit: int | None = None) -> list[Notification]:
    """A ticket's notifications, oldest first; with ``limit``, the newest ``limit`` of them (still oldest first)."""
    query = select(notifications).where(notifications.c.ticket_id == ticket_id)
    if limit is None:
        result = await conn.execute(query.order_by(notifications.c.at, notifications.c.id))
        return [Notification.of(row) for row in result.mappings()]
    result = await conn.execute(query.order_by(notifications.c.at.desc(), notifications.c.id.desc()).limit(limit))
    return [Notification.of(row) for row in reversed(result.mappings().all())]


async def recorded_before(conn: Conn, *, before: datetime, limit: int) -> list[int]:
    """The ids of up to ``limit`` notifications recorded before ``before``, oldest first (by the index on ``at``)."""
    query = select(notifications.c.id).where(notifications.c.at < before).order_by(notifications.c.at).limit(limit)
    return list((await conn.execute(query)).scalars())


async def delete_recorded_before(conn: Conn, ids: Sequence[int], *, before: datetime) -> int:
    """The retention purge: deletes these notifications if they were recorded before ``before`` (nothing younger,
    whatever ids are given); how many."""
    result = await conn.execute(_DELETE, {"ids": list(ids), "before": before})
    return int(result.rowcount)


_DELETE = delete(notifications).where(
    notifications.c.id.in_(bindparam("ids", expanding=True)), notifications.c.at < bindparam("before")
)
