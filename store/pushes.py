"""The digest queue's statements (tickets waiting for their unit's digest, :mod:`notifiers.pushes`), as functions of
an open connection; see store.core for the conventions (callers own the transaction, rows are plain mappings)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.domain.records import Deadline, Ticket
from store.core import Conn
from store.models import deadlines, digest_items, outbox, tickets

_CHUNK = 500  # ids per IN list


async def queue_digest(conn: Conn, rows: Sequence[Mapping[str, Any]]) -> None:
    """Queues tickets for their unit's digest; a ticket and cycle already queued is left as it is."""
    if not rows:
        return
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    # executemany with one statement (compiled once, cached), not a VALUES list (a new statement per row count)
    statement = insert(digest_items).on_conflict_do_nothing(index_elements=["ticket_id", "cycle"])
    await conn.execute(statement, [dict(r) for r in rows])


@dataclass(frozen=True, slots=True, kw_only=True)
class Queued:
    """A ticket waiting for its unit's digest: the queue's item, and the ticket as it is now."""

    item_id: int
    unit_code: str  # the unit it was queued for
    cycle: int  # the cycle it was queued in
    queued_at: datetime
    ticket: Ticket


async def waiting(conn: Conn, *, queued_before: datetime, limit: int = 5000) -> list[Queued]:
    """Queued tickets not yet in a digest, queued before ``queued_before``, with the ticket as it is now (its state,
    unit and cycle tell whether it still waits), by unit and queue order. On PostgreSQL the rows are locked for the
    flush (``SKIP LOCKED``: another flush at the same moment takes the others, never the same)."""
    query = (
        select(
            digest_items.c.id.label("item_id"),
            digest_items.c.unit_code.label("queued_unit"),
            digest_items.c.cycle.label("queued_cycle"),
            digest_items.c.queued_at,
            tickets,
        )
        .join(tickets, tickets.c.id == digest_items.c.ticket_id)
        .where(digest_items.c.flushed_at.is_(None), digest_items.c.queued_at < queued_before)
        .order_by(digest_items.c.unit_code, digest_items.c.queued_at, digest_items.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=digest_items)
    found = []
    for row in (await conn.execute(query)).mappings():
        values = dict(row)
        item = {name: values.pop(name) for name in ("item_id", "queued_unit", "queued_cycle", "queued_at")}
        found.append(
            Queued(
                item_id=item["item_id"],
                unit_code=item["queued_unit"],
                cycle=item["queued_cycle"],
                queued_at=item["queued_at"],
                ticket=Ticket.of(values),
            )
        )
    return found


async def mark_flushed(conn: Conn, ids: Sequence[int], *, at: datetime, key: str | None) -> None:
    """Taken by the digest ``key`` (None: dropped, the ticket no longer waits) at ``at``."""
    for start in range(0, len(ids), _CHUNK):
        chunk = list(ids[start : start + _CHUNK])
        await conn.execute(
            update(digest_items).where(digest_items.c.id.in_(chunk)).values(flushed_at=at, digest_key=key)
        )


async def open_deadlines_of(conn: Conn, ticket_ids: Sequence[int]) -> dict[int, list[Deadline]]:
    """The open deadlines of several tickets, by ticket id."""
    found: dict[int, list[Deadline]] = {}
    unique = list(dict.fromkeys(ticket_ids))
    for start in range(0, len(unique), _CHUNK):
        chunk = unique[start : start + _CHUNK]
        result = await conn.execute(
            select(deadlines).where(deadlines.c.ticket_id.in_(chunk), deadlines.c.status == "open")
        )
        for row in result.mappings():
            found.setdefault(row["ticket_id"], []).append(Deadline.of(row))
    return found


async def keys_queued(conn: Conn, keys: Sequence[str]) -> bool:
    """Whether any of ``keys`` is an outbox message already (queued or sent)."""
    if not keys:
        return False
    found = await conn.execute(select(outbox.c.id).where(outbox.c.idempotency_key.in_(list(keys))).limit(1))
    return found.first() is not None
