"""The tickets' statements: look-ups by number, inserts, and the guarded update (optimistic locking)."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import String, and_, any_, bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.dml import Update

from bot.domain.records import Ticket
from store.core import CHUNK, ConcurrentUpdate, Conn
from store.models import tickets

# Statements built once, their values bound as they run: building a statement over the tickets table's forty
# columns (and its cache key) costs several times what running it does.
_BY_NO = select(tickets).where(tickets.c.ticket_no == bindparam("ticket_no"))
_BY_NUMBERS = {
    # one array parameter instead of a 500-item IN list: one prepared statement whatever the chunk size
    "postgresql": select(tickets).where(tickets.c.ticket_no == any_(bindparam("numbers", type_=ARRAY(String)))),
    "sqlite": select(tickets).where(tickets.c.ticket_no.in_(bindparam("numbers", expanding=True))),
}
_INSERT = insert(tickets).returning(tickets.c.ticket_no, tickets.c.id)


async def tickets_by_no(conn: Conn, numbers: Sequence[str]) -> dict[str, Ticket]:
    found: dict[str, Ticket] = {}
    unique = list(dict.fromkeys(numbers))
    statement = _BY_NUMBERS[conn.dialect.name]
    for i in range(0, len(unique), CHUNK):
        result = await conn.execute(statement, {"numbers": unique[i : i + CHUNK]})
        found.update({row["ticket_no"]: Ticket.of(row) for row in result.mappings()})
    return found


async def ticket_by_no(conn: Conn, ticket_no: str) -> Ticket | None:
    row = (await conn.execute(_BY_NO, {"ticket_no": ticket_no})).mappings().first()
    return None if row is None else Ticket.of(row)


async def tickets_by_suffix(conn: Conn, suffix: str, limit: int = 5) -> list[Ticket]:
    """Tickets whose number ends with ``suffix`` (people type the last digits), newest first."""
    result = await conn.execute(
        select(tickets).where(tickets.c.ticket_no.like(f"%{suffix}")).order_by(tickets.c.id.desc()).limit(limit)
    )
    return [Ticket.of(row) for row in result.mappings()]


async def insert_tickets(conn: Conn, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Inserts tickets; returns their ids in the order given. Raises IntegrityError on a duplicate number.

    RETURNING carries the number with the id: asking the database to keep the parameters' order instead makes
    SQLite insert row by row (five times slower).
    """
    if not rows:
        return []
    result = await conn.execute(_INSERT, list(rows))
    ids = {row[0]: row[1] for row in result}
    return [ids[row["ticket_no"]] for row in rows]


async def update_ticket(conn: Conn, ticket_id: int, version: int, values: Mapping[str, Any]) -> None:
    """Writes ``values`` if the ticket still has ``version``; bumps the version. Else ConcurrentUpdate."""
    statement = _update_statement(tuple(sorted(values)))
    result = await conn.execute(
        statement, {"_id": ticket_id, "_version": version, **{f"_{k}": v for k, v in values.items()}}
    )
    if result.rowcount != 1:
        raise ConcurrentUpdate(ticket_id)


@functools.cache
def _update_statement(columns: tuple[str, ...]) -> Update:
    """The guarded update of ``columns`` (an action changes the same few each time)."""
    return (
        update(tickets)
        .where(and_(tickets.c.id == bindparam("_id"), tickets.c.version == bindparam("_version")))
        .values(
            {
                **{tickets.c[name]: bindparam(f"_{name}", type_=tickets.c[name].type) for name in columns},
                tickets.c.version: tickets.c.version + 1,
            }
        )
    )
