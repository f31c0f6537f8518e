"""The inbox's statements: inbound messages recorded once per (source, key), leased to the process handling them,
marked done or failed, taken over when their holder is gone, and deleted once handled and old."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import RowMapping

from store.core import CHUNK, Conn
from store.models import inbox


async def record_inbound(
    conn: Conn, *, source: str, dedup_key: str, payload: str, at: datetime, status: str = "pending"
) -> int | None:
    """Persists an inbound message; None when the same (source, key) was recorded before (a retry). One statement,
    no savepoint: the conflict is skipped, not raised."""
    result = await conn.execute(
        _RECORD_ONE[conn.dialect.name],
        {"source": source, "dedup_key": dedup_key, "payload": payload, "received_at": at, "status": status},
    )
    found = result.scalar_one_or_none()
    return None if found is None else int(found)


# the statements of the request path, built once: values are bound when they run
_CONFLICT = [inbox.c.source, inbox.c.dedup_key]
_RETURNED = (inbox.c.id, inbox.c.source, inbox.c.dedup_key)
_RECORD_ONE = {
    "postgresql": pg_insert(inbox).on_conflict_do_nothing(index_elements=_CONFLICT).returning(inbox.c.id),
    "sqlite": sqlite_insert(inbox).on_conflict_do_nothing(index_elements=_CONFLICT).returning(inbox.c.id),
}
_RECORD = {
    "postgresql": pg_insert(inbox).on_conflict_do_nothing(index_elements=_CONFLICT).returning(*_RETURNED),
    "sqlite": sqlite_insert(inbox).on_conflict_do_nothing(index_elements=_CONFLICT).returning(*_RETURNED),
}


async def record_inbound_many(
    conn: Conn,
    rows: Sequence[Mapping[str, Any]],
    *,
    lease_owner: str | None = None,
    lease_until: datetime | None = None,
) -> list[int | None]:
    """Persists inbound messages (``source``, ``dedup_key``, ``payload``, ``received_at``) in one statement, leased
    to ``lease_owner`` until ``lease_until``; for each row its new id, or None when its (source, key) was recorded
    before, or earlier in ``rows`` (a retry)."""
    if not rows:
        return []
    firsts = _firsts(rows)
    fresh = [
        {
            "source": r["source"],
            "dedup_key": r["dedup_key"],
            "payload": r["payload"],
            "received_at": r["received_at"],
            "lease_owner": lease_owner,
            "lease_until": lease_until,
        }
        for r, first in zip(rows, firsts, strict=True)
        if first
    ]
    statement = _RECORD[conn.dialect.name]
    ids: dict[tuple[str, str], int] = {}
    for start in range(0, len(fresh), CHUNK):
        result = await conn.execute(statement, fresh[start : start + CHUNK])
        ids.update(((source, key), int(inbox_id)) for inbox_id, source, key in result)
    return _in_order(rows, firsts, ids)


def _firsts(rows: Sequence[Mapping[str, Any]]) -> list[bool]:
    """For each row, whether it is the first of its (source, key) in ``rows``: a repeat later in a batch is a retry."""
    seen: set[tuple[str, str]] = set()
    firsts = []
    for row in rows:
        key = (row["source"], row["dedup_key"])
        firsts.append(key not in seen)
        seen.add(key)
    return firsts


def _in_order(
    rows: Sequence[Mapping[str, Any]], firsts: Sequence[bool], ids: Mapping[tuple[str, str], int]
) -> list[int | None]:
    """Each row's new id, None for a repeat and for a row recorded before."""
    return [ids.get((r["source"], r["dedup_key"])) if first else None for r, first in zip(rows, firsts, strict=True)]


async def inbound(conn: Conn, source: str, dedup_key: str) -> RowMapping | None:
    result = await conn.execute(select(inbox).where(and_(inbox.c.source == source, inbox.c.dedup_key == dedup_key)))
    return result.mappings().first()


async def finish_inbound(conn: Conn, inbox_id: int, *, at: datetime, error: str | None = None) -> None:
    await conn.execute(
        update(inbox)
        .where(inbox.c.id == inbox_id)
        .values(status="failed" if error else "done", processed_at=at, error=error, lease_owner=None, lease_until=None)
    )


_HELD = inbox.c.lease_owner == bindparam("owner")
_DONE = (
    update(inbox)
    .where(inbox.c.id.in_(bindparam("ids", expanding=True)))
    .values(status="done", processed_at=bindparam("at"), lease_owner=None, lease_until=None)
)
_FAILED = (
    update(inbox)
    .where(inbox.c.id == bindparam("failed_id"))
    .values(
        status="failed", processed_at=bindparam("at"), error=bindparam("failure"), lease_owner=None, lease_until=None
    )
)
_MARK = {False: (_DONE, _FAILED), True: (_DONE.where(_HELD), _FAILED.where(_HELD))}


async def finish_inbound_many(
    conn: Conn, outcomes: Sequence[tuple[int, str | None]], *, at: datetime, owner: str | None = None
) -> None:
    """Marks inbox rows processed: ``(id, error)`` pairs, ``done`` where the error is None, else ``failed``. With
    ``owner``, only rows whose lease it holds (a row another process has taken over is that process's to mark)."""
    done_statement, failed_statement = _MARK[owner is not None]
    held = {} if owner is None else {"owner": owner}
    done = [inbox_id for inbox_id, error in outcomes if error is None]
    for start in range(0, len(done), CHUNK):
        await conn.execute(done_statement, {"ids": done[start : start + CHUNK], "at": at, **held})
    failed = [
        {"failed_id": inbox_id, "failure": error, "at": at, **held} for inbox_id, error in outcomes if error is not None
    ]
    if failed:
        await conn.execute(failed_statement, failed)


_PG_WRITE = text(
    """
    WITH incoming AS (
        SELECT * FROM unnest(
            CAST(:sources AS text[]), CAST(:keys AS text[]), CAST(:received AS timestamptz[]), CAST(:payloads AS text[])
        ) AS t(source, dedup_key, received_at, payload)
    ), inserted AS (
        INSERT INTO inbox (source, dedup_key, received_at, payload, status, lease_owner, lease_until)
        SELECT source, dedup_key, received_at, payload, 'pending', :owner, :until FROM incoming
        ON CONFLICT (source, dedup_key) DO NOTHING
        RETURNING id, source, dedup_key
    ), done AS (
        UPDATE inbox SET status = 'done', processed_at = :at, lease_owner = NULL, lease_until = NULL
        WHERE id = ANY(CAST(:done_ids AS bigint[])) AND lease_owner = :owner
    ), failed AS (
        UPDATE inbox SET status = 'failed', processed_at = :at, error = f.error, lease_owner = NULL, lease_until = NULL
        FROM unnest(CAST(:failed_ids AS bigint[]), CAST(:errors AS text[])) AS f(id, error)
        WHERE inbox.id = f.id AND inbox.lease_owner = :owner
    )
    SELECT id, source, dedup_key FROM inserted
    """
)


async def write_inbound(
    conn: Conn,
    rows: Sequence[Mapping[str, Any]],
    marks: Sequence[tuple[int, str | None]],
    *,
    owner: str,
    lease_until: datetime,
    at: datetime,
) -> list[int | None]:
    """What the request path writes in one transaction: :func:`record_inbound_many` (leased to ``owner``), then
    :func:`finish_inbound_many` (with ``owner``); the same results. On PostgreSQL as one statement (its
    data-modifying parts see the same snapshot: no row is both inserted and marked by one call)."""
    if conn.dialect.name != "postgresql":
        inserted = await record_inbound_many(conn, rows, lease_owner=owner, lease_until=lease_until)
        await finish_inbound_many(conn, marks, at=at, owner=owner)
        return inserted
    firsts = _firsts(rows)
    fresh = [r for r, first in zip(rows, firsts, strict=True) if first]
    failed = [(inbox_id, error) for inbox_id, error in marks if error is not None]
    result = await conn.execute(
        _PG_WRITE,
        {
            "sources": [r["source"] for r in fresh],
            "keys": [r["dedup_key"] for r in fresh],
            "received": [r["received_at"] for r in fresh],
            "payloads": [r["payload"] for r in fresh],
            "owner": owner,
            "until": lease_until,
            "at": at,
            "done_ids": [inbox_id for inbox_id, error in marks if error is None],
            "failed_ids": [inbox_id for inbox_id, _ in failed],
            "errors": [error for _, error in failed],
        },
    )
    return _in_order(rows, firsts, {(source, key): int(inbox_id) for inbox_id, source, key in result})


async def renew_inbound_leases(conn: Conn, ids: Sequence[int], *, owner: str, until: datetime) -> set[int]:
    """Extends ``owner``'s lease on the pending rows of ``ids`` to ``until``; the ids it still held."""
    kept: set[int] = set()
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        result = await conn.execute(
            update(inbox)
            .where(inbox.c.id.in_(chunk), inbox.c.lease_owner == owner, inbox.c.status == "pending")
            .values(lease_until=until)
            .returning(inbox.c.id)
        )
        kept.update(int(i) for i in result.scalars())
    return kept


async def handled_inbound_before(conn: Conn, *, received_before: datetime, limit: int) -> list[int]:
    """The ids of up to ``limit`` inbox rows handled (done or failed) and received before ``received_before``,
    oldest first. Without an index on the date it may read the whole table: call it in a read transaction, which
    holds up no writer."""
    query = (
        select(inbox.c.id)
        .where(inbox.c.status.in_(("done", "failed")), inbox.c.received_at < received_before)
        .order_by(inbox.c.id)
        .limit(limit)
    )
    return list((await conn.execute(query)).scalars())


async def delete_handled_inbound(conn: Conn, ids: Sequence[int]) -> int:
    """Deletes these inbox rows if they are handled (a pending row is never deleted); how many. A retry of a
    deleted message is no longer recognised."""
    result = await conn.execute(delete(inbox).where(inbox.c.id.in_(list(ids)), inbox.c.status.in_(("done", "failed"))))
    return int(result.rowcount)


def pending_of(sources: Sequence[str]) -> Any:
    """Pending rows of ``sources``, read through the partial index ``ix_inbox_pending``, which holds the pending rows
    only. Its condition is rendered as a literal (a planner cannot match a partial index against a bound
    parameter), and ``source`` is compared as ``source || ''`` so that SQLite, without statistics, does not prefer
    the unique (source, key) index and scan every row a source ever had."""
    return and_(
        inbox.c.status == bindparam("pending", "pending", literal_execute=True),
        inbox.c.source.concat("").in_(list(sources)),
    )


async def pending_inbound(conn: Conn, sources: Sequence[str], *, limit: int = 500) -> list[RowMapping]:
    """Inbox rows of ``sources`` still pending (accepted, never finished), oldest first, whoever holds them."""
    if not sources:
        return []
    result = await conn.execute(
        select(inbox).where(pending_of(sources)).order_by(inbox.c.received_at, inbox.c.id).limit(limit)
    )
    return list(result.mappings())


async def claim_pending_inbound(
    conn: Conn,
    sources: Sequence[str],
    *,
    owner: str,
    now: datetime,
    lease_until: datetime,
    any_other_owner: bool = False,
    limit: int = 500,
) -> list[RowMapping]:
    """Takes over pending rows of ``sources`` whose holder is gone: rows whose lease has run out (or that have
    none) or, with ``any_other_owner``, every row not held by ``owner`` (a single-process database at start, where
    every other holder is a previous run). Oldest first; they are leased to ``owner`` until ``lease_until``. On
    PostgreSQL the rows are locked with SKIP LOCKED, so two processes recovering at once take different rows."""
    if not sources:
        return []
    free = or_(inbox.c.lease_until.is_(None), inbox.c.lease_until < now)
    if any_other_owner:
        free = or_(free, inbox.c.lease_owner.is_(None), inbox.c.lease_owner != owner)
    query = select(inbox.c.id).where(pending_of(sources), free).order_by(inbox.c.received_at, inbox.c.id).limit(limit)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list((await conn.execute(query)).scalars())
    if not ids:
        return []
    await conn.execute(update(inbox).where(inbox.c.id.in_(ids)).values(lease_owner=owner, lease_until=lease_until))
    result = await conn.execute(select(inbox).where(inbox.c.id.in_(ids)).order_by(inbox.c.received_at, inbox.c.id))
    return list(result.mappings())
