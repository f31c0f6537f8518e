"""One process at a time: leader election on the database the processes already share.

Several bot processes behind a load balancer serve requests alike, but some work must run in exactly one of them:
the intelligent robot's long connection (WeCom keeps one per robot and closes the older one), and the deadline
engine. :class:`Leader` runs such work only while it holds a lock:

* **PostgreSQL:** a session-level advisory lock (``pg_try_advisory_lock``) on a connection kept for the purpose.
  PostgreSQL releases it when that session ends, so a crashed leader loses it without anyone's help, and another
  process takes over at its next try. A partitioned leader's session must end too: the lock's session sets TCP
  keepalives and a user timeout (PostgreSQL's defaults would keep a silent client's session, and its lock, for two
  hours), so the server drops it within about half a minute. The holder checks its session every ``check``
  seconds, each check bounded by a timeout, and stops the work the moment the lock may be gone; work can also ask
  :meth:`Leader.holds` before acting (the long connection does before every subscribe). The lock's connection is
  never handed back to the pool: it is discarded on release, so a session still holding the lock cannot be reused.
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

from store.liveness import unreachable

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name``: the single-bigint form of the advisory locks, which never
    meets the two-int form of the processes' liveness locks (:mod:`store.liveness`)."""
    return int.from_bytes(hashlib.sha256(f"hotline-bot:{name}".encode()).digest()[:8], "big", signed=True)


class Leader:
    """Runs ``work`` in at most one process at a time (per database schema and ``name``), and again in another process
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
        self.key: int | None = None  # lock_key of the schema and name, read at the first connection
        self.retry = retry
        self.check = check
        self.sleep = sleep
        self.leading = asyncio.Event()  # set while this process holds the lock (tests and /healthz read it)
        self._conn: AsyncConnection | None = None
        self._asking = asyncio.Lock()  # the watch and holds() share the lock's connection: one query at a time

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
                async with asyncio.timeout(self.check):
                    for setting in _KEEPALIVES:
                        await conn.execute(text(setting))
                    if self.key is None:  # deployments (and tests) sharing a database in schemas of their own
                        schema = (await conn.execute(text("SELECT current_schema()"))).scalar_one()
                        self.key = lock_key(f"{schema}:{self.name}")
                    got = (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})).scalar_one()
                if got:
                    log.info("leader for %s: this process", self.name)
                    self._conn = conn
                    self.leading.set()
                    return conn
                if not waiting_logged:
                    log.info("leader for %s: another process; standing by", self.name)
                    waiting_logged = True
            except Exception as exc:
                if unreachable(exc):  # an outage: the liveness's watch logs it once, not at every try
                    log.debug("leader for %s: the database is unreachable; trying again", self.name)
                else:
                    log.warning("leader for %s: could not ask the database; trying again", self.name, exc_info=True)
            if conn is not None:
                await _discard(conn)
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
            if not await self._answers(conn):
                return

    async def _answers(self, conn: AsyncConnection) -> bool:
        try:
            async with asyncio.timeout(self.check), self._asking:
                await conn.execute(text("SELECT 1"))
        except Exception:  # an error, or no answer in time: the session, and the lock, may be gone
            return False
        return True

    async def holds(self) -> bool:
        """Whether this process leads and its lock's session still answers (on SQLite: whether it leads)."""
        if not self.leading.is_set():
            return False
        if self.engine.dialect.name != "postgresql":
            return True
        conn = self._conn
        return conn is not None and await self._answers(conn)

    async def _release(self, conn: AsyncConnection) -> None:
        self._conn = None
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.check):
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
        await _discard(conn)


# the server drops the lock's session, and so the lock, within about 30 s of the leader going silent
_KEEPALIVES = (
    "SET tcp_keepalives_idle = 10",
    "SET tcp_keepalives_interval = 5",
    "SET tcp_keepalives_count = 3",
    "SET tcp_user_timeout = 30000",
)


async def _discard(conn: AsyncConnection) -> None:
    """Closes the connection for good (not back into the pool): its session, and any lock it holds, end."""
    with contextlib.suppress(Exception):
        await conn.invalidate()
    with contextlib.suppress(Exception):
        await conn.close()
