"""Which scheduled reports were queued (store.models.ReportRun)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select

from store.core import Conn
from store.models import report_runs


async def queued(conn: Conn, key: str) -> bool:
    return (await conn.execute(select(report_runs.c.key).where(report_runs.c.key == key))).first() is not None


async def record(conn: Conn, key: str, at: datetime) -> None:
    """Records ``key`` as queued; a concurrent second run of the same report fails here (and rolls back its rows)."""
    await conn.execute(insert(report_runs).values(key=key, queued_at=at))
