"""What the serving bot tells other processes on the same database about itself (the ``deployment`` table), as
functions of an open connection; see store.core for the conventions."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from store.core import Conn
from store.models import deployment


async def record(conn: Conn, name: str, value: Mapping[str, Any], *, at: datetime) -> None:
    """Sets the fact ``name`` (replacing what it was)."""
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = insert(deployment).values(name=name, value=dict(value), updated_at=at)
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[deployment.c.name], set_={"value": statement.excluded.value, "updated_at": at}
        )
    )


async def read(conn: Conn, name: str) -> dict[str, Any] | None:
    """The fact ``name``, or None when no serving bot has recorded it."""
    row = (await conn.execute(select(deployment.c.value).where(deployment.c.name == name))).first()
    return None if row is None else dict(row[0])
