"""The deadline engine's statements, as functions of an open connection; see store.core for the conventions (callers
own the transaction, rows are plain mappings).

The engine reads only what is due, through ``ix_deadlines_next_due`` (``next_due_at <= now``, a range on a partial
index that holds the rows the engine still has to look at), and advances each row with an optimistic guard: a row
changes only if it still has the stage and the next-due time it was read with and is still open, so two engines (or
a tick racing with a claim) never both act on it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import RowMapping

from bot.domain.records import DueDeadline
from store.core import Conn
from store.models import deadline_misses, deadlines, tickets, unit_miss_counts

# of the ticket's text, enough to be masked whole before the message cuts it to a line (a phone number cut short by
# the database would escape the mask; the message keeps far fewer characters than this)
TEXT_CHARS = 200


async def anything_due(conn: Conn, now: datetime) -> bool:
    """Whether :func:`due_deadlines` would find a row: a read through the same index, no lock."""
    query = select(deadlines.c.id).where(deadlines.c.next_due_at <= now).limit(1)
    return (await conn.execute(query)).first() is not None


async def due_deadlines(conn: Conn, now: datetime, *, limit: int) -> list[DueDeadline]:
    """Up to ``limit`` deadlines whose ``next_due_at`` has come, earliest first, each with what a message about it
    needs of its ticket. An index range on ``ix_deadlines_next_due`` joined to the tickets by key: the cost follows
    the rows due, not the open tickets. On PostgreSQL the rows are locked (``SKIP LOCKED``): a second engine ticking
    at the same time takes others instead of waiting for them."""
    query = (
        select(
            deadlines.c.id,
            deadlines.c.ticket_id,
            deadlines.c.name,
            deadlines.c.cycle,
            deadlines.c.policy,
            deadlines.c.started_at,
            deadlines.c.due_at,
            deadlines.c.status,
            deadlines.c.stage,
            deadlines.c.next_due_at,
            tickets.c.ticket_no,
            tickets.c.kind,
            tickets.c.state,
            tickets.c.unit_code,
            tickets.c.handler_userid,
            func.substr(func.coalesce(tickets.c.title, tickets.c.content), 1, TEXT_CHARS).label("text"),
            tickets.c.citizen_name,  # to mask them in the text
            tickets.c.address,
            tickets.c.source,  # an imported ticket's deadlines due by its import are never nagged
            tickets.c.received_at,
        )
        .select_from(deadlines.join(tickets, tickets.c.id == deadlines.c.ticket_id))
        .where(deadlines.c.next_due_at <= now)
        .order_by(deadlines.c.next_due_at, deadlines.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=deadlines)
    return [DueDeadline.of(row) for row in (await conn.execute(query)).mappings()]


_PG_ADVANCE = text(
    """
    UPDATE deadlines AS d SET stage = m.new_stage, next_due_at = m.new_next
    FROM unnest(
        CAST(:ids AS bigint[]), CAST(:stages AS integer[]), CAST(:nexts AS timestamptz[]),
        CAST(:new_stages AS integer[]), CAST(:new_nexts AS timestamptz[])
    ) AS m(id, stage, next_due_at, new_stage, new_next)
    WHERE d.id = m.id AND d.stage = m.stage AND d.next_due_at = m.next_due_at AND d.status = 'open'
    RETURNING d.id
    """
)


async def advance(conn: Conn, moves: Sequence[Mapping[str, Any]]) -> set[int]:
    """Moves each deadline (``id``, read with ``stage`` and ``next_due_at``) to ``new_stage`` and ``new_next`` (None:
    nothing more to do), if it still has what it was read with and is open; returns the ids moved. One statement on
    PostgreSQL."""
    if not moves:
        return set()
    if conn.dialect.name == "postgresql":
        result = await conn.execute(
            _PG_ADVANCE,
            {
                "ids": [m["id"] for m in moves],
                "stages": [m["stage"] for m in moves],
                "nexts": [m["next_due_at"] for m in moves],
                "new_stages": [m["new_stage"] for m in moves],
                "new_nexts": [m["new_next"] for m in moves],
            },
        )
        return {int(i) for i in result.scalars()}
    moved: set[int] = set()
    for m in moves:
        result = await conn.execute(
            update(deadlines)
            .where(
                deadlines.c.id == m["id"],
                deadlines.c.stage == m["stage"],
                deadlines.c.next_due_at == m["next_due_at"],
                deadlines.c.status == "open",
            )
            .values(stage=m["new_stage"], next_due_at=m["new_next"])
            .returning(deadlines.c.id)
        )
        moved.update(int(i) for i in result.scalars())
    return moved


# --- three misses ----------------------------------------------------------------------------------------------------


async def record_misses(conn: Conn, misses: Sequence[Mapping[str, Any]], *, threshold: int, at: datetime) -> int:
    """Counts each missed accept deadline (``deadline_id``, ``ticket_id``, ``unit_code``, ``period_start``,
    ``missed_at``) once against its unit and period; a unit whose count reaches ``threshold`` is flagged (once per
    period: ``flagged_at``). The count is an atomic increment, so misses recorded side by side are all counted.
    Three statements, however many misses. Returns how many were new."""
    if not misses:
        return 0
    upsert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    columns = ("deadline_id", "ticket_id", "unit_code", "period_start", "missed_at")
    new = await conn.execute(
        upsert(deadline_misses)
        .on_conflict_do_nothing(index_elements=[deadline_misses.c.deadline_id])
        .returning(deadline_misses.c.unit_code, deadline_misses.c.period_start),
        [{c: m[c] for c in columns} for m in {m["deadline_id"]: m for m in misses}.values()],
    )
    counts = Counter((row.unit_code, row.period_start) for row in new)
    if not counts:
        return 0
    statement = upsert(unit_miss_counts)
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[unit_miss_counts.c.unit_code, unit_miss_counts.c.period_start],
            set_={"misses": unit_miss_counts.c.misses + statement.excluded.misses},
        ),
        [
            {"unit_code": unit, "period_start": start, "misses": n, "flagged_at": None, "notified_at": None}
            for (unit, start), n in sorted(counts.items())
        ],
    )
    await conn.execute(
        update(unit_miss_counts)
        .where(
            unit_miss_counts.c.unit_code.in_(sorted({unit for unit, _ in counts})),
            unit_miss_counts.c.period_start.in_(sorted({start for _, start in counts})),
            unit_miss_counts.c.misses >= threshold,
            unit_miss_counts.c.flagged_at.is_(None),
        )
        .values(flagged_at=at)
    )
    return sum(counts.values())


async def pending_flags(conn: Conn) -> list[RowMapping]:
    """Units flagged and not yet notified (a table of one row per unit and period: small)."""
    result = await conn.execute(
        select(unit_miss_counts)
        .where(unit_miss_counts.c.flagged_at.is_not(None), unit_miss_counts.c.notified_at.is_(None))
        .order_by(unit_miss_counts.c.period_start, unit_miss_counts.c.unit_code)
    )
    return list(result.mappings())


async def mark_flag_notified(conn: Conn, unit_code: str, period_start: date, *, at: datetime) -> bool:
    """Marks a flag notified; False when another engine did first (then it is that engine's to send)."""
    result = await conn.execute(
        update(unit_miss_counts)
        .where(
            unit_miss_counts.c.unit_code == unit_code,
            unit_miss_counts.c.period_start == period_start,
            unit_miss_counts.c.notified_at.is_(None),
        )
        .values(notified_at=at)
    )
    return bool(result.rowcount == 1)


async def misses_of(conn: Conn, unit_code: str, period_start: date, *, limit: int = 20) -> list[RowMapping]:
    """A unit's misses in a period with their tickets' numbers, in the order they happened."""
    result = await conn.execute(
        select(
            deadline_misses.c.missed_at, tickets.c.ticket_no, deadline_misses.c.ticket_id, deadline_misses.c.deadline_id
        )
        .select_from(deadline_misses.join(tickets, tickets.c.id == deadline_misses.c.ticket_id))
        .where(and_(deadline_misses.c.unit_code == unit_code, deadline_misses.c.period_start == period_start))
        .order_by(deadline_misses.c.missed_at, deadline_misses.c.deadline_id)
        .limit(limit)
    )
    return list(result.mappings())
