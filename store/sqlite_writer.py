"""One round trip per transaction for the hottest writes on SQLite.

Through SQLAlchemy and aiosqlite, every statement of a transaction (BEGIN, each INSERT or UPDATE, COMMIT) is a
hop to aiosqlite's thread and back, and under load each hop waits its turn behind the requests the event loop is
serving: a small transaction took 6–8 ms, nearly all of it waiting. :class:`SqliteWriter` runs a whole
transaction, a plain function of a ``sqlite3`` connection, in its own thread in one call, so it waits once. It is
used for the inbox's group commit (WeCom callbacks and their done-marks); everything else goes through
SQLAlchemy.

It is the same database file, with the same settings (WAL, ``synchronous=FULL``, foreign keys, busy timeout),
and every transaction begins with ``BEGIN IMMEDIATE`` under the :class:`store.repo.Store`'s write lock, so it
queues with the process's other writers exactly as they queue with each other.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from store.db import sqlite_settings

T = TypeVar("T")


class SqliteWriter:
    def __init__(self, path: str) -> None:
        self.path = path
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None  # used in the writer thread only

    async def run(self, transaction: Callable[[sqlite3.Connection], T]) -> T:
        """``transaction(conn)`` between BEGIN IMMEDIATE and COMMIT (ROLLBACK if it raises), in the writer thread.
        The caller holds the store's write lock."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, transaction)

    def _run(self, transaction: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            sqlite_settings(conn)
            self._conn = conn
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
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
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        executor.shutdown(wait=False)
