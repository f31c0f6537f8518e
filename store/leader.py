"""One process at a time: leader election on the database the processes already share.

Several bot processes behind a load balancer serve requests alike, but some work must run in exactly one of them:
the intelligent robot's long connection (WeCom keeps one per robot and closes the older one), and the deadline
engine. :class:`Leader` runs such work only while it holds a lock:

* **PostgreSQL:** a session-level advisory lock (``pg_try_advisory_lock``) on a connection kept for the purpose.
  PostgreSQL releases it when that session ends, so a crashed or partitioned leader loses it without anyone's help,
  and another process takes over at its next try. The holder checks its connection every ``check`` seconds and
  stops the work the moment the lock may be gone.
* **SQLite:** the embedded single-process default; the process is the leader.

Nothing here is a cluster of our own: the lock is PostgreSQL's, and so is the failure detection.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name``."""
    return int.from_bytes(hashlib.sha256(f"hotline-bot:{name}".encode()).digest()[:8], "big", signed=True)


class Leader:
    """Runs ``work`` in at most one process at a time (per database and ``name``), and again in another process
    when the one running it dies. :meth:`run` returns when ``work`` returns; if ``work`` raises, the lock is
    released and the error propagates."""

    def __init__(
        self,
        engine: AsyncEngine,
        name: str,
        *,
        retry: float = 5.0,
        check: float = 5.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.engine = engine
        self.name = name
        self.key = lock_key(name)
        self.retry = retry
        self.check = check
        self.sleep = sleep
        self.leading = asyncio.Event()  # set while this process holds the lock (tests and /healthz read it)

    async def run(self, work: Callable[[], Awaitable[None]]) -> None:
        if self.engine.dialect.name != "postgresql":
            self.leading.set()
            try:
                await work()
            finally:
                self.leading.clear()
            return
        while True:
            conn = await self._acquire()
            try:
                if await self._lead(conn, work):
                    return
            finally:
                self.leading.clear()
                await self._release(conn)

    async def _acquire(self) -> AsyncConnection:
        waiting_logged = False
        while True:
            conn: AsyncConnection | None = None
            try:
                conn = await self.engine.connect()
                # autocommit: the session holds the lock, no transaction stays open for hours
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                got = (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})).scalar_one()
                if got:
                    log.info("leader for %s: this process", self.name)
                    self.leading.set()
                    return conn
                if not waiting_logged:
                    log.info("leader for %s: another process; standing by", self.name)
                    waiting_logged = True
            except Exception:
                log.warning("leader for %s: could not ask the database; trying again", self.name, exc_info=True)
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
            await self.sleep(self.retry)

    async def _lead(self, conn: AsyncConnection, work: Callable[[], Awaitable[None]]) -> bool:
        """Runs ``work`` while the lock's session answers; True when ``work`` returned, False when the lock was
        lost (``work`` cancelled)."""
        task = asyncio.ensure_future(work())
        watch = asyncio.ensure_future(self._watch(conn))
        try:
            await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
            if not task.done():
                task.cancel()
                # the work's own cleanup finishes before the lock is released (or the cancellation goes on)
                await asyncio.wait({task})
        if not task.done() or task.cancelled():
            with contextlib.suppress(asyncio.CancelledError):
                await task
            log.warning("leader for %s: lost the database session; stopped, standing by", self.name)
            return False
        task.result()  # the work's own error propagates
        return True

    async def _watch(self, conn: AsyncConnection) -> None:
        """Returns when the session holding the lock stops answering (a session-level lock is held for as long
        as its session lives, so a live session is a held lock)."""
        while True:
            await self.sleep(self.check)
            try:
                await conn.execute(text("SELECT 1"))
            except Exception:
                return

    async def _release(self, conn: AsyncConnection) -> None:
        with contextlib.suppress(Exception):
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
        with contextlib.suppress(Exception):
            await conn.close()
