"""The way into the database: :class:`Store` (its transactions) and :class:`ConcurrentUpdate`.

The other modules of this package are the repositories: every SQL statement the bot runs on its tables, as
functions of an open connection, one module per aggregate. Callers own the transaction, so that a change, its audit
entry and the messages it causes are committed together or not at all. Rows go in and out as plain mappings; this
package knows nothing of WeCom or of the domain's types.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from store.db import READ_ONLY
from store.sqlite_writer import SqliteWriter

T = TypeVar("T")

# SQLite accepts at most 32766 bound parameters per statement; keep IN-lists well below
CHUNK = 500


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
