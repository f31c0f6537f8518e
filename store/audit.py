"""The audit log's statements: appending entries and reading a ticket's history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import insert, select

from bot.domain.records import HistoryEntry
from store.core import Conn
from store.models import audit_log

_APPEND_ONE = insert(audit_log).returning(audit_log.c.id)  # built once (see store.tickets)
_APPEND = insert(audit_log).returning(audit_log.c.ticket_id, audit_log.c.id)


async def append_audit(conn: Conn, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Appends entries; returns their ids in the order given (at most one entry per ticket in one call)."""
    if not rows:
        return []
    rows = [{"unit_code": None, **row} for row in rows]  # one set of keys for executemany
    if len(rows) == 1:
        return [int((await conn.execute(_APPEND_ONE, list(rows))).scalar_one())]
    result = await conn.execute(_APPEND, list(rows))
    ids = {row[0]: row[1] for row in result}
    if len(ids) != len(rows):
        raise ValueError("append_audit: one entry per ticket per call")
    return [ids[row["ticket_id"]] for row in rows]


async def history_of(conn: Conn, ticket_id: int) -> list[HistoryEntry]:
    result = await conn.execute(select(audit_log).where(audit_log.c.ticket_id == ticket_id).order_by(audit_log.c.id))
    return [HistoryEntry.of(row) for row in result.mappings()]
