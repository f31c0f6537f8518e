"""Repositories: every SQL statement the bot runs on its tables, as functions of an open connection.

Callers own the transaction (``async with store.transaction() as conn``), so that a change, its audit entry
and the messages it causes are committed together or not at all. Rows go in and out as plain mappings;
this package knows nothing of WeCom or of the domain's types.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    String,
    and_,
    any_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from store.db import READ_ONLY
from store.models import audit_log, deadlines, inbox, outbox, sqlite_text, tickets
from store.sqlite_writer import SqliteWriter

T = TypeVar("T")

# SQLite accepts at most 32766 bound parameters per statement; keep IN-lists well below
_CHUNK = 500


class ConcurrentUpdate(Exception):
    """The row changed between read and write (optimistic locking); re-read and decide again."""


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # SQLite has one writer at a time. Writers of this process queue here, in order, instead of
        # spinning in SQLite's busy handler (which sleeps in growing steps and ruins latency).
        self._write_lock = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        # a whole transaction in one round trip, for the hottest writes (a file database only)
        on_file = database if database and database != ":memory:" else None
        self.sqlite_writer = SqliteWriter(on_file) if on_file else None
        # and a reader alike, for the reads of the chat commands (one round trip each, beside the writer)
        self.sqlite_reader = SqliteWriter(on_file, begin="BEGIN", name="sqlite-reader") if on_file else None

    async def write_at_once(self, transaction: Callable[[sqlite3.Connection], T]) -> T:
        """``transaction`` (a function of a ``sqlite3`` connection) as one transaction in one round trip, queued
        with this process's other writers. Only when :attr:`sqlite_writer` is set."""
        writer, lock = self.sqlite_writer, self._write_lock
        if writer is None or lock is None:
            raise RuntimeError("write_at_once needs a SQLite file database")
        async with lock:
            return await writer.run(transaction)

    async def write_once(
        self,
        *,
        sqlite: Callable[[sqlite3.Connection], T],
        postgresql: Callable[[AsyncConnection], Awaitable[T]],
    ) -> T:
        """One write in one round trip, for the hot paths: ``sqlite`` as one transaction in the writer thread
        (:meth:`write_at_once`), or ``postgresql`` as one statement in autocommit (:meth:`autocommit`)."""
        if self.backend == "postgresql":
            async with self.autocommit() as conn:
                return await postgresql(conn)
        return await self.write_at_once(sqlite)

    async def run_transaction(self, transaction: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """``await transaction(conn)`` in one write transaction. On a SQLite file database the whole of it runs in
        the writer thread in one round trip (:meth:`SqliteWriter.run_coroutine`: ``transaction`` must await nothing
        but its connection's statements); elsewhere as :meth:`transaction`."""
        writer, lock = self.sqlite_writer, self._write_lock
        if writer is not None and lock is not None:
            async with lock:
                return await writer.run_coroutine(transaction)  # type: ignore[arg-type]
        async with self.transaction() as conn:
            return await transaction(conn)

    async def read(self, query: Callable[[AsyncConnection], Awaitable[T]], *, snapshot: bool = True) -> T:
        """``await query(conn)`` in one read-only transaction (a consistent snapshot). On a SQLite file database it
        runs in the reader thread in one round trip (``query`` must await nothing but its connection's statements);
        elsewhere as :meth:`reading`. ``snapshot=False``: no transaction around the statements on PostgreSQL (two
        round trips fewer; for a single statement, or lookups that need not agree with each other)."""
        if self.sqlite_reader is not None:
            return await self.sqlite_reader.run_coroutine(query)  # type: ignore[arg-type]
        if not snapshot and self.backend == "postgresql":
            async with self.autocommit() as conn:
                return await query(conn)
        async with self.reading() as conn:
            return await query(conn)

    async def close(self) -> None:
        if self.sqlite_reader is not None:
            await self.sqlite_reader.close()
        if self.sqlite_writer is not None:
            await self.sqlite_writer.close()

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._write_lock, self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """A connection without a surrounding transaction: each statement is its own (one round trip for a
        single-statement write on PostgreSQL). Not for SQLite, whose writers go through :meth:`transaction`."""
        async with self.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            await conn.execution_options(**{READ_ONLY: True})
            yield conn


# --- tickets -------------------------------------------------------------------------------------------


async def tickets_by_no(conn: AsyncConnection, numbers: Sequence[str]) -> dict[str, RowMapping]:
    found: dict[str, RowMapping] = {}
    unique = list(dict.fromkeys(numbers))
    postgres = conn.dialect.name == "postgresql"
    for i in range(0, len(unique), _CHUNK):
        chunk = unique[i : i + _CHUNK]
        if postgres:
            # one array parameter instead of a 500-item IN list: one prepared statement whatever the chunk size
            condition = tickets.c.ticket_no == any_(bindparam("numbers", chunk, type_=ARRAY(String)))
        else:
            condition = tickets.c.ticket_no.in_(chunk)
        result = await conn.execute(select(tickets).where(condition))
        found.update({row["ticket_no"]: row for row in result.mappings()})
    return found


async def ticket_by_no(conn: AsyncConnection, ticket_no: str) -> RowMapping | None:
    result = await conn.execute(select(tickets).where(tickets.c.ticket_no == ticket_no))
    return result.mappings().first()


async def tickets_by_suffix(conn: AsyncConnection, suffix: str, limit: int = 5) -> list[RowMapping]:
    """Tickets whose number ends with ``suffix`` (people type the last digits), newest first."""
    result = await conn.execute(
        select(tickets).where(tickets.c.ticket_no.like(f"%{suffix}")).order_by(tickets.c.id.desc()).limit(limit)
    )
    return list(result.mappings())


async def insert_tickets(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Inserts tickets; returns their ids in the order given. Raises IntegrityError on a duplicate number.

    RETURNING carries the number with the id: asking the database to keep the parameters' order instead makes
    SQLite insert row by row (five times slower).
    """
    if not rows:
        return []
    result = await conn.execute(insert(tickets).returning(tickets.c.ticket_no, tickets.c.id), list(rows))
    ids = {row[0]: row[1] for row in result}
    return [ids[row["ticket_no"]] for row in rows]


async def update_ticket(conn: AsyncConnection, ticket_id: int, version: int, values: Mapping[str, Any]) -> None:
    """Writes ``values`` if the ticket still has ``version``; bumps the version. Else ConcurrentUpdate."""
    result = await conn.execute(
        update(tickets)
        .where(and_(tickets.c.id == ticket_id, tickets.c.version == version))
        .values(**values, version=version + 1)
    )
    if result.rowcount != 1:
        raise ConcurrentUpdate(ticket_id)


# --- tickets: look-ups and lists for the chat commands ---------------------------------------------------
#
# Ticket states and deadline names come in as plain strings from the caller. ``windows`` names deadlines that are
# windows rather than obligations (the return window): they are neither a ticket's next deadline nor make it
# overdue. Lists are shown in work groups: they leave out the citizen's phone, and carry the name and address only
# so that the text can be masked (bot.domain.masking.Citizen).

_LIST_COLUMNS = (
    tickets.c.id,
    tickets.c.ticket_no,
    tickets.c.kind,
    tickets.c.title,
    tickets.c.content,
    tickets.c.category,
    tickets.c.unit_code,
    tickets.c.handler_userid,
    tickets.c.state,
    tickets.c.is_repeat,
    tickets.c.is_media,
    tickets.c.dispatched_at,
    tickets.c.citizen_name,
    tickets.c.address,
)


def _of_units(units: Sequence[str] | None, *, by_index: bool = True) -> list[Any]:
    """``unit_code IN units`` (None: no condition). Without ``by_index`` it is written ``unit_code || ''``: where
    the query also selects open states, SQLite (no statistics) would otherwise read the units' tickets of all
    time through ix_tickets_unit_code rather than the few open ones through ix_tickets_state."""
    if units is None:
        return []
    column = tickets.c.unit_code if by_index else tickets.c.unit_code.concat("")
    return [column.in_(list(units))]


def _open_obligation(windows: Sequence[str], *, due_before: datetime | None = None) -> tuple[Any, list[Any]]:
    """A fresh alias of deadlines and the conditions selecting, in it, the open deadlines (not windows) of the
    outer query's ticket: correlated, read through ``ix_deadlines_ticket_id`` (a handful of rows per ticket)."""
    d = deadlines.alias()
    conditions = [d.c.ticket_id == tickets.c.id, d.c.status == "open"]
    if windows:
        conditions.append(d.c.name.not_in(list(windows)))
    if due_before is not None:
        conditions.append(d.c.due_at < due_before)
    return d, conditions


def _next_deadline(windows: Sequence[str]) -> tuple[Any, Any]:
    """The name and the due time of the outer ticket's earliest open deadline (NULL when it has none)."""
    d, conditions = _open_obligation(windows)
    due = select(func.min(d.c.due_at)).where(*conditions).scalar_subquery().label("deadline_due_at")
    d, conditions = _open_obligation(windows)
    name = select(d.c.name).where(*conditions).order_by(d.c.due_at, d.c.id).limit(1).scalar_subquery()
    return name.label("deadline_name"), due


def _overdue(windows: Sequence[str], now: datetime) -> Any:
    d, conditions = _open_obligation(windows, due_before=now)
    return select(d.c.id).where(*conditions).exists()


async def tickets_ending_with(
    conn: AsyncConnection,
    suffix: str,
    *,
    units: Sequence[str] | None,
    states: Sequence[str] | None,
    limit: int,
) -> list[RowMapping]:
    """Tickets whose number ends with ``suffix``, ignoring case (people type the last digits), in ``states`` and
    ``units`` (None: any), newest first. ``%`` and ``_`` in ``suffix`` match themselves.

    A suffix cannot use an index: the scan is bounded by ``states`` (ix_tickets_state: the open tickets are few)
    and ``units`` (ix_tickets_unit_code); without either it reads the whole table."""
    conditions = [
        func.upper(tickets.c.ticket_no).endswith(suffix.upper(), autoescape=True),
        *_of_units(units, by_index=states is None),
    ]
    if states is not None:
        conditions.append(tickets.c.state.in_(list(states)))
    result = await conn.execute(
        select(tickets)  # whole rows: the command that named the ticket acts on it without reading it again
        .where(*conditions)
        .order_by(tickets.c.id.desc())
        .limit(limit)
    )
    return list(result.mappings())


async def handler_tickets(
    conn: AsyncConnection, userid: str, *, states: Sequence[str], windows: Sequence[str], limit: int
) -> list[RowMapping]:
    """``userid``'s tickets in ``states`` (ix_tickets_handler_userid), each with its next deadline
    (``deadline_name``, ``deadline_due_at``): the most pressing first, those without a deadline last."""
    name, due = _next_deadline(windows)
    result = await conn.execute(
        select(*_LIST_COLUMNS, name, due)
        .where(tickets.c.handler_userid == userid, tickets.c.state.in_(list(states)))
        .order_by(due.nulls_last(), tickets.c.id)
        .limit(limit)
    )
    return list(result.mappings())


async def unit_tickets(
    conn: AsyncConnection,
    units: Sequence[str] | None,
    *,
    states: Sequence[str],
    first_states: Sequence[str],
    windows: Sequence[str],
    limit: int,
) -> list[RowMapping]:
    """Tickets of ``units`` (None: all) in ``states``, each with its next deadline: those in ``first_states``
    (unclaimed) first, then by next deadline, those without one last."""
    name, due = _next_deadline(windows)
    result = await conn.execute(
        select(*_LIST_COLUMNS, name, due)
        .where(tickets.c.state.in_(list(states)), *_of_units(units, by_index=False))
        .order_by(tickets.c.state.in_(list(first_states)).desc(), due.nulls_last(), tickets.c.id)
        .limit(limit)
    )
    return list(result.mappings())


async def overdue_unit_tickets(
    conn: AsyncConnection,
    units: Sequence[str] | None,
    now: datetime,
    *,
    states: Sequence[str],
    windows: Sequence[str],
    limit: int,
) -> list[RowMapping]:
    """Tickets of ``units`` (None: all) in ``states`` with an open deadline due before ``now``, the longest
    overdue first; ``deadline_name`` / ``deadline_due_at`` is that earliest deadline. Driven from the tickets
    (ix_tickets_state, few open ones), each looked up in deadlines by ticket: deadlines has no index on
    (status, due_at), and ``next_due_at`` is no guide (NULL once the engine has nothing more to do)."""
    name, due = _next_deadline(windows)
    result = await conn.execute(
        select(*_LIST_COLUMNS, name, due)
        .where(tickets.c.state.in_(list(states)), *_of_units(units, by_index=False), _overdue(windows, now))
        .order_by(due, tickets.c.id)
        .limit(limit)
    )
    return list(result.mappings())


async def ticket_figures(
    conn: AsyncConnection,
    units: Sequence[str] | None,
    now: datetime,
    *,
    since: datetime,
    states: Sequence[str],
    unclaimed_states: Sequence[str],
    closed_states: Sequence[str],
    windows: Sequence[str],
) -> dict[str, int]:
    """Counts over the tickets of ``units`` (None: all): ``open`` (in ``states``), of which ``unclaimed`` (in
    ``unclaimed_states``) and ``overdue`` (an open deadline due before ``now``); ``closed`` (in ``closed_states``,
    closed at or after ``since``)."""
    row = (
        await conn.execute(
            select(
                func.count().label("open"),
                func.count().filter(tickets.c.state.in_(list(unclaimed_states))).label("unclaimed"),
                func.count().filter(_overdue(windows, now)).label("overdue"),
            ).where(tickets.c.state.in_(list(states)), *_of_units(units, by_index=False))
        )
    ).one()
    # the day's closures through ix_tickets_closed_at; the state and the units are checked on those rows only
    # (SQLite would otherwise read every closed ticket through ix_tickets_state)
    closed = (
        await conn.execute(
            select(func.count())
            .select_from(tickets)
            .where(
                tickets.c.closed_at >= since,
                tickets.c.state.concat("").in_(list(closed_states)),
                *_of_units(units, by_index=False),
            )
        )
    ).scalar_one()
    return {"open": row.open, "unclaimed": row.unclaimed, "overdue": row.overdue, "closed": int(closed)}


# --- deadlines -----------------------------------------------------------------------------------------


# from this many rows on, PostgreSQL gets them by COPY rather than by INSERT
_COPY_FROM = 200


async def insert_deadlines(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    if not rows:
        return
    if conn.dialect.name == "postgresql" and len(rows) >= _COPY_FROM:
        await _copy(conn, "deadlines", rows)
        return
    await conn.execute(insert(deadlines), list(rows))


async def _copy(conn: AsyncConnection, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Bulk load by PostgreSQL's COPY, in the connection's own transaction (imports write ~8 deadlines per
    ticket: as single-row INSERTs they were most of a 100k-row import's time)."""
    columns = list(rows[0])
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    await driver.copy_records_to_table(table, records=[tuple(r[c] for c in columns) for r in rows], columns=columns)


async def open_deadlines(conn: AsyncConnection, ticket_id: int) -> list[RowMapping]:
    result = await conn.execute(
        select(deadlines)
        .where(and_(deadlines.c.ticket_id == ticket_id, deadlines.c.status == "open"))
        .order_by(deadlines.c.due_at)
    )
    return list(result.mappings())


async def close_deadlines(conn: AsyncConnection, ids: Iterable[int], *, status: str, at: datetime | None) -> None:
    ids = list(ids)
    if not ids:
        return
    values: dict[str, Any] = {"status": status, "next_due_at": None}
    if status in ("met", "missed"):
        values["met_at"] = at  # when it was met, or when it stopped being due
    await conn.execute(update(deadlines).where(deadlines.c.id.in_(ids)).values(**values))


async def reschedule_deadline(
    conn: AsyncConnection,
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


async def deadlines_of(conn: AsyncConnection, ticket_id: int) -> list[RowMapping]:
    result = await conn.execute(
        select(deadlines).where(deadlines.c.ticket_id == ticket_id).order_by(deadlines.c.cycle, deadlines.c.due_at)
    )
    return list(result.mappings())


# --- audit log -----------------------------------------------------------------------------------------


async def append_audit(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Appends entries; returns their ids in the order given (at most one entry per ticket in one call)."""
    if not rows:
        return []
    if len(rows) == 1:
        return [int((await conn.execute(insert(audit_log).returning(audit_log.c.id), list(rows))).scalar_one())]
    result = await conn.execute(insert(audit_log).returning(audit_log.c.ticket_id, audit_log.c.id), list(rows))
    ids = {row[0]: row[1] for row in result}
    if len(ids) != len(rows):
        raise ValueError("append_audit: one entry per ticket per call")
    return [ids[row["ticket_id"]] for row in rows]


async def history_of(conn: AsyncConnection, ticket_id: int) -> list[RowMapping]:
    result = await conn.execute(select(audit_log).where(audit_log.c.ticket_id == ticket_id).order_by(audit_log.c.id))
    return list(result.mappings())


# --- inbox ---------------------------------------------------------------------------------------------


async def record_inbound(
    conn: AsyncConnection, *, source: str, dedup_key: str, payload: str, at: datetime, status: str = "pending"
) -> int | None:
    """Persists an inbound message; None when the same (source, key) was recorded before (a retry). One statement,
    no savepoint: the conflict is skipped, not raised."""
    make = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    result = await conn.execute(
        make(inbox)
        .values(source=source, dedup_key=dedup_key, payload=payload, received_at=at, status=status)
        .on_conflict_do_nothing(index_elements=[inbox.c.source, inbox.c.dedup_key])
        .returning(inbox.c.id)
    )
    found = result.scalar_one_or_none()
    return None if found is None else int(found)


async def record_inbound_many(
    conn: AsyncConnection,
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
    first: dict[tuple[str, str], int] = {}
    for i, row in enumerate(rows):
        first.setdefault((row["source"], row["dedup_key"]), i)
    fresh = [
        {
            "source": r["source"],
            "dedup_key": r["dedup_key"],
            "payload": r["payload"],
            "received_at": r["received_at"],
            "lease_owner": lease_owner,
            "lease_until": lease_until,
        }
        for i, r in enumerate(rows)
        if first[(r["source"], r["dedup_key"])] == i
    ]
    insert_ = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert_(inbox)
        .on_conflict_do_nothing(index_elements=[inbox.c.source, inbox.c.dedup_key])
        .returning(inbox.c.id, inbox.c.source, inbox.c.dedup_key)
    )
    ids: dict[tuple[str, str], int] = {}
    for start in range(0, len(fresh), _CHUNK):
        result = await conn.execute(statement, fresh[start : start + _CHUNK])
        ids.update(((row.source, row.dedup_key), int(row.id)) for row in result)
    return [
        ids.get((r["source"], r["dedup_key"])) if first[(r["source"], r["dedup_key"])] == i else None
        for i, r in enumerate(rows)
    ]


async def inbound(conn: AsyncConnection, source: str, dedup_key: str) -> RowMapping | None:
    result = await conn.execute(select(inbox).where(and_(inbox.c.source == source, inbox.c.dedup_key == dedup_key)))
    return result.mappings().first()


async def finish_inbound(conn: AsyncConnection, inbox_id: int, *, at: datetime, error: str | None = None) -> None:
    await conn.execute(
        update(inbox)
        .where(inbox.c.id == inbox_id)
        .values(status="failed" if error else "done", processed_at=at, error=error, lease_owner=None, lease_until=None)
    )


async def finish_inbound_many(
    conn: AsyncConnection, outcomes: Sequence[tuple[int, str | None]], *, at: datetime, owner: str | None = None
) -> None:
    """Marks inbox rows processed: ``(id, error)`` pairs, ``done`` where the error is None, else ``failed``. With
    ``owner``, only rows whose lease it holds (a row another process has taken over is that process's to mark)."""
    held = [] if owner is None else [inbox.c.lease_owner == owner]
    done = [inbox_id for inbox_id, error in outcomes if error is None]
    for start in range(0, len(done), _CHUNK):
        chunk = done[start : start + _CHUNK]
        await conn.execute(
            update(inbox)
            .where(inbox.c.id.in_(chunk), *held)
            .values(status="done", processed_at=at, lease_owner=None, lease_until=None)
        )
    for inbox_id, error in outcomes:
        if error is not None:
            await conn.execute(
                update(inbox)
                .where(inbox.c.id == inbox_id, *held)
                .values(status="failed", processed_at=at, error=error, lease_owner=None, lease_until=None)
            )


def sqlite_inbox_write(
    conn: sqlite3.Connection,
    rows: Sequence[Mapping[str, Any]],
    marks: Sequence[tuple[int, str | None]],
    *,
    owner: str,
    lease_until: datetime,
    at: datetime,
) -> list[int | None]:
    """:func:`record_inbound_many` then :func:`finish_inbound_many` (with ``owner``) as plain ``sqlite3`` calls, for
    :meth:`Store.write_at_once`: the same rows, the same results."""
    first: dict[tuple[str, str], int] = {}
    for i, row in enumerate(rows):
        first.setdefault((row["source"], row["dedup_key"]), i)
    fresh = [r for i, r in enumerate(rows) if first[(r["source"], r["dedup_key"])] == i]
    until, done_at = sqlite_text(lease_until), sqlite_text(at)
    ids: dict[tuple[str, str], int] = {}
    for start in range(0, len(fresh), _CHUNK):
        chunk = fresh[start : start + _CHUNK]
        values = ", ".join(["(?, ?, ?, ?, 'pending', ?, ?)"] * len(chunk))
        params: list[Any] = []
        for r in chunk:
            params += [r["source"], r["dedup_key"], sqlite_text(r["received_at"]), r["payload"], owner, until]
        cursor = conn.execute(
            "INSERT INTO inbox (source, dedup_key, received_at, payload, status, lease_owner, lease_until) "
            f"VALUES {values} ON CONFLICT (source, dedup_key) DO NOTHING RETURNING id, source, dedup_key",
            params,
        )
        ids.update(((source, key), int(inbox_id)) for inbox_id, source, key in cursor.fetchall())
    done = [inbox_id for inbox_id, error in marks if error is None]
    for start in range(0, len(done), _CHUNK):
        chunk_ids = done[start : start + _CHUNK]
        conn.execute(
            "UPDATE inbox SET status = 'done', processed_at = ?, lease_owner = NULL, lease_until = NULL "
            f"WHERE id IN ({', '.join('?' * len(chunk_ids))}) AND lease_owner = ?",
            [done_at, *chunk_ids, owner],
        )
    for inbox_id, error in marks:
        if error is not None:
            conn.execute(
                "UPDATE inbox SET status = 'failed', processed_at = ?, error = ?, lease_owner = NULL, "
                "lease_until = NULL WHERE id = ? AND lease_owner = ?",
                [done_at, error, inbox_id, owner],
            )
    return [
        ids.get((r["source"], r["dedup_key"])) if first[(r["source"], r["dedup_key"])] == i else None
        for i, r in enumerate(rows)
    ]


_PG_INBOX_WRITE = text(
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


async def pg_inbox_write(
    conn: AsyncConnection,
    rows: Sequence[Mapping[str, Any]],
    marks: Sequence[tuple[int, str | None]],
    *,
    owner: str,
    lease_until: datetime,
    at: datetime,
) -> list[int | None]:
    """:func:`record_inbound_many` then :func:`finish_inbound_many` (with ``owner``) as one PostgreSQL statement:
    in autocommit, one round trip and its own transaction (a statement's data-modifying CTEs all take effect
    together, or none does). The same rows, the same results."""
    first: dict[tuple[str, str], int] = {}
    for i, row in enumerate(rows):
        first.setdefault((row["source"], row["dedup_key"]), i)
    fresh = [r for i, r in enumerate(rows) if first[(r["source"], r["dedup_key"])] == i]
    failed = [(inbox_id, error) for inbox_id, error in marks if error is not None]
    result = await conn.execute(
        _PG_INBOX_WRITE,
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
    ids = {(row.source, row.dedup_key): int(row.id) for row in result}
    return [
        ids.get((r["source"], r["dedup_key"])) if first[(r["source"], r["dedup_key"])] == i else None
        for i, r in enumerate(rows)
    ]


async def renew_inbound_leases(conn: AsyncConnection, ids: Sequence[int], *, owner: str, until: datetime) -> set[int]:
    """Extends ``owner``'s lease on the pending rows of ``ids`` to ``until``; the ids it still held."""
    kept: set[int] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        result = await conn.execute(
            update(inbox)
            .where(inbox.c.id.in_(chunk), inbox.c.lease_owner == owner, inbox.c.status == "pending")
            .values(lease_until=until)
            .returning(inbox.c.id)
        )
        kept.update(int(i) for i in result.scalars())
    return kept


# --- outbox --------------------------------------------------------------------------------------------


async def enqueue(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Adds messages to send. A message whose idempotency key is already queued is not queued again."""
    if not rows:
        return
    # one statement (the unique key decides), not a look-up and an insert: it runs inside the change's transaction
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = dialect_insert(outbox).on_conflict_do_nothing(index_elements=[outbox.c.idempotency_key])
    await conn.execute(statement, [dict(r) for r in rows])


_OUTBOX_COLUMNS = (
    "channel",
    "destination",
    "idempotency_key",
    "ordering_key",
    "priority",
    "payload",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
    "lease_owner",  # set when the process that queues a message sends it at once (it holds it until then)
    "lease_until",
)


def sqlite_enqueue(conn: sqlite3.Connection, rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """:func:`enqueue` as plain ``sqlite3`` calls, for :meth:`Store.write_at_once`: a row whose idempotency key is
    already queued is left out. The ids of the rows inserted, by idempotency key."""
    inserted: dict[str, int] = {}
    for start in range(0, len(rows), _CHUNK // len(_OUTBOX_COLUMNS)):
        chunk = rows[start : start + _CHUNK // len(_OUTBOX_COLUMNS)]
        params: list[Any] = []
        for r in chunk:
            lease_until = r.get("lease_until")
            params += [
                r["channel"],
                r["destination"],
                r["idempotency_key"],
                r.get("ordering_key"),
                r["priority"],
                json.dumps(r["payload"]),
                r["status"],
                r["attempts"],
                sqlite_text(r["next_attempt_at"]),
                sqlite_text(r["created_at"]),
                r.get("lease_owner"),
                None if lease_until is None else sqlite_text(lease_until),
            ]
        values = ", ".join(["(" + ", ".join("?" * len(_OUTBOX_COLUMNS)) + ")"] * len(chunk))
        cursor = conn.execute(
            f"INSERT INTO outbox ({', '.join(_OUTBOX_COLUMNS)}) VALUES {values} "
            "ON CONFLICT (idempotency_key) DO NOTHING RETURNING idempotency_key, id",
            params,
        )
        inserted.update((str(key), int(id_)) for key, id_ in cursor.fetchall())
    return inserted


_PG_ENQUEUE = text(
    """
    INSERT INTO outbox (channel, destination, idempotency_key, ordering_key, priority, payload, status, attempts,
                        next_attempt_at, created_at, lease_owner, lease_until)
    SELECT channel, destination, idempotency_key, ordering_key, priority, CAST(payload AS json), status, attempts,
           next_attempt_at, created_at, lease_owner, lease_until
    FROM unnest(
        CAST(:channels AS text[]), CAST(:destinations AS text[]), CAST(:keys AS text[]), CAST(:ordering AS text[]),
        CAST(:priorities AS int[]), CAST(:payloads AS text[]), CAST(:statuses AS text[]), CAST(:attempts AS int[]),
        CAST(:next_attempts AS timestamptz[]), CAST(:created AS timestamptz[]), CAST(:owners AS text[]),
        CAST(:leases AS timestamptz[])
    ) AS t(channel, destination, idempotency_key, ordering_key, priority, payload, status, attempts, next_attempt_at,
           created_at, lease_owner, lease_until)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING idempotency_key, id
    """
)


async def pg_enqueue(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """:func:`enqueue` as one PostgreSQL statement (in autocommit: one round trip); the ids of the rows inserted,
    by idempotency key. The rows travel as arrays (``unnest``): one statement text whatever their number, compiled
    once and prepared once (a multi-row ``VALUES`` is compiled anew for every call)."""
    if not rows:
        return {}
    result = await conn.execute(
        _PG_ENQUEUE,
        {
            "channels": [r["channel"] for r in rows],
            "destinations": [r["destination"] for r in rows],
            "keys": [r["idempotency_key"] for r in rows],
            "ordering": [r.get("ordering_key") for r in rows],
            "priorities": [r["priority"] for r in rows],
            "payloads": [json.dumps(r["payload"]) for r in rows],
            "statuses": [r["status"] for r in rows],
            "attempts": [r["attempts"] for r in rows],
            "next_attempts": [r["next_attempt_at"] for r in rows],
            "created": [r["created_at"] for r in rows],
            "owners": [r.get("lease_owner") for r in rows],
            "leases": [r.get("lease_until") for r in rows],
        },
    )
    return {str(key): int(id_) for key, id_ in result}


def sqlite_mark_sent(conn: sqlite3.Connection, ids: Sequence[int], *, owner: str, at: datetime) -> None:
    """Marks messages sent (those whose lease ``owner`` still holds), as plain ``sqlite3`` calls
    (:meth:`Store.write_at_once`)."""
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        conn.execute(
            "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1, lease_owner = NULL, "
            f"lease_until = NULL, last_error = NULL WHERE id IN ({', '.join('?' * len(chunk))}) AND lease_owner = ?",
            [sqlite_text(at), *chunk, owner],
        )


async def pg_mark_sent(conn: AsyncConnection, ids: Sequence[int], *, owner: str, at: datetime) -> None:
    """Marks messages sent (those whose lease ``owner`` still holds) in one statement (autocommit: one round trip)."""
    await conn.execute(
        update(outbox)
        .where(outbox.c.id == any_(bindparam("ids", list(ids), type_=ARRAY(BigInteger))), outbox.c.lease_owner == owner)
        .values(**_sent(at))
    )


def _sent(at: datetime) -> dict[str, Any]:
    """The columns of a message sent at ``at``."""
    return {
        "status": "sent",
        "sent_at": at,
        "attempts": outbox.c.attempts + 1,
        "lease_owner": None,
        "lease_until": None,
        "last_error": None,
    }


async def outbox_counts(conn: AsyncConnection) -> dict[str, int]:
    result = await conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status))
    return {status: int(count) for status, count in result}


Paced = Sequence[tuple[str, str]]  # (channel, destination) pairs at their rate limit: not claimed for now


def _not_paced(query: Any, paced: Paced | None) -> Any:
    if paced:
        query = query.where(tuple_(outbox.c.channel, outbox.c.destination).not_in(list(paced)))
    return query


async def anything_due(
    conn: AsyncConnection, *, now: datetime, channels: Sequence[str] | None = None, paced: Paced | None = None
) -> bool:
    """Whether :func:`claim_due` could find anything (it may find less: ordering waits): a read, no write lock,
    so that idle polls and wake-ups cost the writers nothing."""
    query = select(outbox.c.id).where(
        outbox.c.status == "pending",
        outbox.c.next_attempt_at <= now,
        (outbox.c.lease_until.is_(None)) | (outbox.c.lease_until < now),
    )
    if channels is not None:
        query = query.where(outbox.c.channel.in_(list(channels)))
    return (await conn.execute(_not_paced(query, paced).limit(1))).first() is not None


async def claim_due(
    conn: AsyncConnection,
    *,
    owner: str,
    now: datetime,
    lease_until: datetime,
    limit: int,
    channels: Sequence[str] | None = None,
    paced: Paced | None = None,
) -> list[RowMapping]:
    """Leases up to ``limit`` due messages, most urgent first, to ``owner``, none to a ``paced`` destination.

    A message waits while an earlier message with the same ordering key is still pending, so the messages
    of one ticket arrive in order. An expired lease (a sender that died mid-send) makes a message due again.
    On PostgreSQL, ``FOR UPDATE SKIP LOCKED`` lets several senders claim side by side. ``channels`` limits
    the claim to what the caller can send; other messages wait for a process that can.
    """
    earlier = outbox.alias("earlier")
    query = (
        select(outbox.c.id)
        .where(
            outbox.c.status == "pending",
            outbox.c.next_attempt_at <= now,
            (outbox.c.lease_until.is_(None)) | (outbox.c.lease_until < now),
            ~(
                select(earlier.c.id)
                .where(
                    earlier.c.ordering_key == outbox.c.ordering_key,
                    earlier.c.status == "pending",
                    earlier.c.id < outbox.c.id,
                )
                .exists()
            ),
        )
        .order_by(outbox.c.priority, outbox.c.id)
        .limit(limit)
    )
    if channels is not None:
        query = query.where(outbox.c.channel.in_(list(channels)))
    query = _not_paced(query, paced)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=outbox)
    ids = list((await conn.execute(query)).scalars())
    if not ids:
        return []
    await conn.execute(update(outbox).where(outbox.c.id.in_(ids)).values(lease_owner=owner, lease_until=lease_until))
    result = await conn.execute(select(outbox).where(outbox.c.id.in_(ids)).order_by(outbox.c.priority, outbox.c.id))
    return list(result.mappings())


async def mark_failed(
    conn: AsyncConnection,
    message_id: int,
    *,
    owner: str,
    error: str,
    retry_at: datetime | None,
    payload: Mapping[str, Any] | None = None,
) -> None:
    """A failed attempt: retried at ``retry_at``, or dead-lettered when it is None; with ``payload``, the message's
    payload is replaced by it (the outbox's flag of an unsure send)."""
    values: dict[str, Any] = {
        "attempts": outbox.c.attempts + 1,
        "lease_owner": None,
        "lease_until": None,
        "last_error": error[:2000],
    }
    if payload is not None:
        values["payload"] = dict(payload)
    if retry_at is None:
        values["status"] = "dead"
    else:
        values["next_attempt_at"] = retry_at
    await conn.execute(update(outbox).where(outbox.c.id == message_id, outbox.c.lease_owner == owner).values(**values))


async def unreleased_due(conn: AsyncConnection, *, now: datetime, channels: Sequence[str] | None = None) -> set[int]:
    """The ids of due messages that are still leased, or were leased and never released: a sender finishing a
    message (sent, failed, deferred) always clears its lease owner, so a claimable one among these was left by a
    sender that died, or outlived its lease, perhaps after sending it. Read before a claim, compared with what the
    claim takes (a takeover must leave ``lease_owner`` in place for this to see it)."""
    query = select(outbox.c.id).where(
        outbox.c.status == "pending", outbox.c.next_attempt_at <= now, outbox.c.lease_owner.is_not(None)
    )
    if channels is not None:
        query = query.where(outbox.c.channel.in_(list(channels)))
    return set((await conn.execute(query)).scalars())


async def flag_unsure(conn: AsyncConnection, payloads: Mapping[int, Mapping[str, Any]]) -> None:
    """Replaces the payloads of these messages (by id) with the given ones: their flag that a send of theirs may
    have arrived."""
    for message_id, payload in payloads.items():
        await conn.execute(update(outbox).where(outbox.c.id == message_id).values(payload=dict(payload)))


async def defer(conn: AsyncConnection, message_id: int, *, owner: str, until: datetime) -> None:
    """Not attempted (its destination is at its rate limit): back in the queue from ``until``, attempts and last
    error unchanged."""
    await conn.execute(
        update(outbox)
        .where(outbox.c.id == message_id, outbox.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None, next_attempt_at=until)
    )


async def handled_inbound_before(conn: AsyncConnection, *, received_before: datetime, limit: int) -> list[int]:
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


async def delete_handled_inbound(conn: AsyncConnection, ids: Sequence[int]) -> int:
    """Deletes these inbox rows if they are handled (a pending row is never deleted); how many. A retry of a
    deleted message is no longer recognised."""
    result = await conn.execute(delete(inbox).where(inbox.c.id.in_(list(ids)), inbox.c.status.in_(("done", "failed"))))
    return int(result.rowcount)


async def sent_outbound_before(conn: AsyncConnection, *, sent_before: datetime, limit: int) -> list[int]:
    """The ids of up to ``limit`` outbox messages sent before ``sent_before``, oldest first (see
    :func:`handled_inbound_before`)."""
    query = (
        select(outbox.c.id)
        .where(outbox.c.status == "sent", outbox.c.sent_at < sent_before)
        .order_by(outbox.c.id)
        .limit(limit)
    )
    return list((await conn.execute(query)).scalars())


async def delete_sent(conn: AsyncConnection, ids: Sequence[int]) -> int:
    """Deletes these outbox messages if they were sent (pending messages and dead letters are never deleted); how
    many."""
    result = await conn.execute(delete(outbox).where(outbox.c.id.in_(list(ids)), outbox.c.status == "sent"))
    return int(result.rowcount)


async def dead_letters(conn: AsyncConnection, limit: int = 100) -> list[RowMapping]:
    result = await conn.execute(
        select(outbox).where(outbox.c.status == "dead").order_by(outbox.c.id.desc()).limit(limit)
    )
    return list(result.mappings())


async def replay(conn: AsyncConnection, ids: Sequence[int] | None, *, at: datetime) -> int:
    """Puts dead-lettered messages (all, or those given) back in the queue."""
    query = update(outbox).where(outbox.c.status == "dead")
    if ids is not None:
        query = query.where(outbox.c.id.in_(list(ids)))
    result = await conn.execute(query.values(status="pending", next_attempt_at=at, attempts=0, last_error=None))
    return int(result.rowcount)


def _pending_of(sources: Sequence[str]) -> Any:
    """Pending rows of ``sources``, read through the partial index ``ix_inbox_pending``, which holds the pending rows
    only. Its condition is rendered as a literal (a planner cannot match a partial index against a bound
    parameter), and ``source`` is compared as ``source || ''`` so that SQLite, without statistics, does not prefer
    the unique (source, key) index and scan every row a source ever had."""
    return and_(
        inbox.c.status == bindparam("pending", "pending", literal_execute=True),
        inbox.c.source.concat("").in_(list(sources)),
    )


async def pending_inbound(conn: AsyncConnection, sources: Sequence[str], *, limit: int = 500) -> list[RowMapping]:
    """Inbox rows of ``sources`` still pending (accepted, never finished), oldest first, whoever holds them."""
    if not sources:
        return []
    result = await conn.execute(
        select(inbox).where(_pending_of(sources)).order_by(inbox.c.received_at, inbox.c.id).limit(limit)
    )
    return list(result.mappings())


async def claim_pending_inbound(
    conn: AsyncConnection,
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
    query = select(inbox.c.id).where(_pending_of(sources), free).order_by(inbox.c.received_at, inbox.c.id).limit(limit)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list((await conn.execute(query)).scalars())
    if not ids:
        return []
    await conn.execute(update(inbox).where(inbox.c.id.in_(ids)).values(lease_owner=owner, lease_until=lease_until))
    result = await conn.execute(select(inbox).where(inbox.c.id.in_(ids)).order_by(inbox.c.received_at, inbox.c.id))
    return list(result.mappings())
