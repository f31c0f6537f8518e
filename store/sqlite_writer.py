"""One round trip per transaction for the hottest writes on SQLite.

Through SQLAlchemy and aiosqlite, every statement of a transaction (BEGIN, each INSERT or UPDATE, COMMIT) is a
hop to aiosqlite's thread and back, and under load each hop waits its turn behind the requests the event loop is
serving: a small transaction took 6–8 ms, nearly all of it waiting. :class:`SqliteWriter` runs a whole
transaction, a plain function of a ``sqlite3`` connection, in its own thread in one call, so it waits once. It is
used for the inbox's group commit (WeCom callbacks and their done-marks); everything else goes through
SQLAlchemy.

It is the same database file, with the same settings (WAL, ``synchronous=FULL``, foreign keys, busy timeout),
and every transaction begins with ``BEGIN IMMEDIATE`` under the :class:`store.core.Store`'s write lock, so it
queues with the process's other writers exactly as they queue with each other.

:meth:`SqliteWriter.run_coroutine` does the same for the code written against SQLAlchemy's async connection (the
ticket service's actions): it runs the coroutine in the writer thread on a synchronous SQLAlchemy connection whose
``execute`` completes at once, so the coroutine never suspends and finishes in one call. Statements, types and
results are SQLAlchemy's as everywhere else; only the waiting goes.
"""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Dialect, Engine, Result
from sqlalchemy.pool import StaticPool

from store.db import sqlite_settings

T = TypeVar("T")


class SuspendedError(RuntimeError):
    """A coroutine given to :meth:`SqliteWriter.run_coroutine` awaited something other than its connection."""


class ImmediateConnection:
    """The part of SQLAlchemy's ``AsyncConnection`` that the store's functions use, over a synchronous connection:
    each ``await conn.execute(...)`` completes without suspending."""

    def __init__(self, connection: Connection) -> None:
        self.sync_connection = connection

    @property
    def dialect(self) -> Dialect:
        return self.sync_connection.dialect

    async def execute(
        self, statement: Any, parameters: Any = None, *, execution_options: Mapping[str, Any] | None = None
    ) -> Result[Any]:
        return self.sync_connection.execute(statement, parameters, execution_options=execution_options)


class SqliteWriter:
    def __init__(self, path: str, *, begin: str = "BEGIN IMMEDIATE", name: str = "sqlite-writer") -> None:
        # a reader (begin="BEGIN") is the same machinery with a transaction that takes no write lock: WAL lets it
        # read beside the writer, from a consistent snapshot
        self.path = path
        self.begin = begin
        self.name = name
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None  # used in the writer thread only
        self._engine: Engine | None = None  # SQLAlchemy over that same connection, for run_coroutine
        self._sa: Connection | None = None

    async def run(self, transaction: Callable[[sqlite3.Connection], T]) -> T:
        """``transaction(conn)`` between BEGIN IMMEDIATE and COMMIT (ROLLBACK if it raises), in the writer thread.
        The caller holds the store's write lock."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=self.name)
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, transaction)

    async def run_coroutine(self, transaction: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
        """``await transaction(conn)`` in one transaction (BEGIN IMMEDIATE, or BEGIN for a reader, … COMMIT, or
        ROLLBACK if it raises) in the thread, ``conn`` standing in for an ``AsyncConnection``
        (:class:`ImmediateConnection`). The coroutine may await nothing but ``conn``'s statements (else
        :class:`SuspendedError`, rolled back). For a writer, the caller holds the store's write lock."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=self.name)
        # in the caller's context: the coroutine sees its context variables, as it would on the event loop
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, context.run, self._run_coroutine, transaction
        )

    def _run_coroutine(self, transaction: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
        connection = self._connection()
        with connection.begin():
            coroutine = transaction(ImmediateConnection(connection))
            try:
                coroutine.send(None)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            coroutine.close()
            raise SuspendedError("a transaction run in the SQLite writer awaited something other than the database")

    @property
    def sync_engine(self) -> Engine:
        """The synchronous SQLAlchemy engine :meth:`run_coroutine` runs on (over the thread's ``sqlite3``
        connection, the one :meth:`run` uses); its events (``before_cursor_execute`` …) see those statements."""
        if self._engine is None:
            engine = create_engine("sqlite://", creator=self._raw, poolclass=StaticPool, hide_parameters=True)
            event.listen(engine, "begin", lambda conn: conn.exec_driver_sql(self.begin))
            self._engine = engine
        return self._engine

    def _connection(self) -> Connection:
        if self._sa is None:
            self._sa = self.sync_engine.connect()
        return self._sa

    def _raw(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            sqlite_settings(conn)
            self._conn = conn
        return self._conn

    def _run(self, transaction: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._raw()
        conn.execute(self.begin)
        try:
            result = transaction(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        sa, engine, self._sa, self._engine = self._sa, self._engine, None, None
        if sa is not None and engine is not None:
            await asyncio.get_running_loop().run_in_executor(executor, sa.close)
            engine.dispose()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        executor.shutdown(wait=False)
