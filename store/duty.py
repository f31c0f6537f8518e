"""The duty takeovers' statements (/值班 接班 and 交班), as functions of an open connection; see store.core for the
conventions (callers own the transaction, rows are plain mappings)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert, or_, select, text, update
from sqlalchemy.engine import RowMapping

from store.core import Conn
from store.models import duty_takeovers

# any constant will do (the migrations take another): every change to the takeovers takes this lock first
_DUTY_LOCK_ID = 0x44555459  # "DUTY"


async def lock(conn: Conn) -> None:
    """Serialises changes to the takeovers until the transaction ends: two members taking over at once must not both
    find nobody to relieve. On SQLite the store's write lock already does (``BEGIN IMMEDIATE``, one writer)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _DUTY_LOCK_ID})


async def takeovers_ending_after(conn: Conn, at: datetime) -> list[RowMapping]:
    """Takeovers still on, or to come, after ``at`` (not ended by then), by start; an index range on ``ends_at``."""
    result = await conn.execute(
        select(duty_takeovers)
        .where(
            duty_takeovers.c.ends_at > at,
            or_(duty_takeovers.c.ended_at.is_(None), duty_takeovers.c.ended_at > at),
        )
        .order_by(duty_takeovers.c.starts_at, duty_takeovers.c.id)
    )
    return list(result.mappings())


async def insert_takeover(conn: Conn, row: Mapping[str, Any]) -> int:
    result = await conn.execute(insert(duty_takeovers).returning(duty_takeovers.c.id), [dict(row)])
    return int(result.scalar_one())


async def end_takeovers(conn: Conn, ids: Iterable[int], *, at: datetime, by: str) -> None:
    """Ends the takeovers at ``at`` (handed back, or relieved by ``by``'s takeover); already ended ones stay as they
    were."""
    wanted = list(ids)
    if not wanted:
        return
    await conn.execute(
        update(duty_takeovers)
        .where(duty_takeovers.c.id.in_(wanted), duty_takeovers.c.ended_at.is_(None))
        .values(ended_at=at, ended_by=by)
    )


async def extend_takeover(conn: Conn, takeover_id: int, *, ends_at: datetime) -> None:
    await conn.execute(update(duty_takeovers).where(duty_takeovers.c.id == takeover_id).values(ends_at=ends_at))
