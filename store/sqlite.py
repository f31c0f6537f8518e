"""SQLite's transactions: statements at once on the event loop's thread; the commit in a thread of its own.

SQLite serves one office from one process. Its statements on the bot's tables take microseconds, far less than
handing each to a thread and back (aiosqlite's way: a round trip through a queue and the loop's wake-up pipe, several
per statement). So a transaction here runs its statements directly on a plain ``sqlite3`` connection through
SQLAlchemy's synchronous API, and repositories see the same ``await conn.execute(...)`` as on PostgreSQL. Only two
steps may wait, and neither on the loop's thread:

- ``BEGIN IMMEDIATE``, while another process (a command-line import) holds the write lock: the connection does not
  wait (``busy_timeout`` 0); the begin is tried again after growing pauses, the loop going on meanwhile;
- ``COMMIT``, which waits for the disk (``synchronous=FULL``): it runs in the writer's own thread.

Writes queue in this process's order (one writer at a time); reads run beside them on connections of their own, each
a snapshot from its first statement on (WAL: a reader never waits for a writer).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, CursorResult, Dialect, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql.base import Executable

from store.db import READ_ONLY, sqlite_begin, sqlite_settings

T = TypeVar("T")

# how long a write waits for another process's write lock before it fails (as busy_timeout did)
BUSY_TIMEOUT = 30.0
_FIRST_PAUSE, _MAX_PAUSE = 0.001, 0.1


class InlineConnection:
    """A transaction's connection: ``await execute(...)`` runs the statement at once."""

    __slots__ = ("_conn", "dialect")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.dialect: Dialect = conn.dialect

    async def execute(self, statement: Executable, parameters: Any = None) -> CursorResult[*tuple[Any, ...]]:
        return self._conn.execute(statement, parameters)


class InlineSqlite:
    """This process's transactions on one SQLite file: writes one at a time, in the order they asked; reads beside
    them."""

    def __init__(self, url: URL) -> None:
        if not url.database or url.database == ":memory:":
            raise ValueError("the bot's SQLite database must be a file (an in-memory one is not shared)")
        self._engine: Engine = create_engine(
            url.set(drivername="sqlite"),
            hide_parameters=True,  # a failing statement's error (and so the log) must not carry citizen data
            # never wait for a connection (the loop would wait for itself): as many as are open at once, the
            # writer's and the readers', and a few kept for the next
            pool_size=8,
            max_overflow=-1,
            # used on the loop's thread and committed in the writer's, never by both at once
            connect_args={"check_same_thread": False},
        )
        event.listen(self._engine, "connect", _connect)
        event.listen(self._engine, "begin", sqlite_begin)
        self._lock = asyncio.Lock()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-commit")
        self._writer: Connection | None = None  # kept open between write transactions

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[InlineConnection]:
        async with self._lock:
            if self._writer is None:
                self._writer = self._engine.connect()
            conn = self._writer
            try:
                await _until_not_busy(conn.begin)
            except BaseException:
                self._close_writer()  # whatever state it was left in, the next write starts afresh
                raise
            try:
                yield InlineConnection(conn)
            except BaseException:
                self._end(conn.rollback)
                raise
            await self._in_thread(lambda: self._end(conn.commit))

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[InlineConnection]:
        with self._engine.connect() as conn:
            conn.execution_options(**{READ_ONLY: True})  # a deferred BEGIN: no write lock
            await _until_not_busy(conn.begin)
            yield InlineConnection(conn)  # rolled back as the connection goes back to the pool

    def _end(self, finish: Callable[[], None]) -> None:
        """Commits or rolls back the writer; a writer that failed at it is closed (the next write opens another)."""
        try:
            finish()
        except BaseException:
            self._close_writer()
            raise

    async def _in_thread(self, fn: Callable[[], T]) -> T:
        """``fn()`` in the writer's thread. A cancelled caller still waits for it to end: the connection is not
        used again before then."""
        done = asyncio.get_running_loop().run_in_executor(self._thread, fn)
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            while not done.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait([done])
            raise

    def _close_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()

    def dispose(self) -> None:
        """Closes the connections (the file is let go); the next transaction opens new ones."""
        self._close_writer()
        self._engine.dispose()


def _connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # the BEGIN is ours (sqlite_begin), not the driver's
    sqlite_settings(dbapi_connection, busy_timeout_ms=0)  # a busy database is waited for by _until_not_busy


async def _until_not_busy(begin: Callable[[], object]) -> None:
    """``begin()``; while SQLite answers "locked" or "busy", tried again after growing pauses (the loop goes on
    meanwhile), for :data:`BUSY_TIMEOUT` seconds."""
    pause, deadline = _FIRST_PAUSE, time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            begin()
            return
        except OperationalError as exc:
            if not _busy(exc) or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(pause)
        pause = min(2 * pause, _MAX_PAUSE)


def _busy(exc: OperationalError) -> bool:
    return isinstance(exc.orig, sqlite3.OperationalError) and ("locked" in str(exc.orig) or "busy" in str(exc.orig))
