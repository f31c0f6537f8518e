"""Whether the database answers, and which bot processes are alive.

:class:`DatabaseWatch` turns a database outage into two log lines, one when it goes away and one when it is back,
instead of a traceback per request: whoever meets an error that :func:`unreachable` recognises reports it, and a
probe then asks the database every ``probe`` seconds until it answers again.

:class:`Liveness` lets the processes tell, within seconds, that one of them died, so that the inbox and outbox rows
leased to it are taken over without waiting for their lease (minutes). On PostgreSQL each process holds a
session-level advisory lock named by its own id, the ``lease_owner`` of the rows it leases, on a connection kept
for the purpose. PostgreSQL ends the session, and the lock, when the process dies (a SIGKILLed process's sockets are
closed by the kernel at once; a host that vanishes is noticed through the TCP keepalives set below, within about
half a minute). A lease whose owner holds no lock belongs to a dead process, and :meth:`Liveness.release_dead`
frees it for the usual claims. An owner must be seen without its lock for ``grace`` seconds first: after
PostgreSQL itself restarted, every process lost its lock and takes a moment to lock again, and one that is alive
keeps its rows. On SQLite (one process by design) the process starting up takes everything over
(:meth:`Liveness.release_others`). The number of live processes also tells each one its share of a shared limit
while Redis is away (:attr:`Liveness.processes`).

Nothing here needs a table: liveness lives in the lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import logging
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime, timedelta

from sqlalchemy import Table, bindparam, select, text, update
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from store.core import Conn, Store

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

# PostgreSQL's error classes that say the server cannot serve now: 08 connection exception, 53 insufficient
# resources (too many connections, disk full), 57P01-57P03 shut down or starting up
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P01", "57P02", "57P03")


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be reached or cannot serve now (a connection refused or lost, a
    timeout, a server shutting down, a SQLite file that cannot be opened or written), rather than that a statement
    or its data was wrong."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        # (an InterfaceError not invalidating its connection is a misuse, not an outage)
        if isinstance(current, OperationalError | DisconnectionError | PoolTimeout):
            return True
        if isinstance(current, OSError | TimeoutError | sqlite3.OperationalError):
            return True
        sqlstate = getattr(current, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
            return True
        current = getattr(current, "orig", None) or current.__cause__
    return False


class DatabaseWatch:
    """Logs once that the database went away (:meth:`failed`) and once that it is back (its probe)."""

    def __init__(self, engine: AsyncEngine, *, probe: float = 1.0, sleep: Sleep = asyncio.sleep) -> None:
        self.engine = engine
        self.probe = probe
        self.sleep = sleep
        self.since: float | None = None  # monotonic time the outage was noticed; None while the database answers
        self._probe: asyncio.Task[None] | None = None

    @property
    def down(self) -> bool:
        return self.since is not None

    async def confirms(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the database being away (reported, as by :meth:`failed`, if so). The database's own
        errors say so themselves; a bare ``OSError`` or ``TimeoutError``, which the driver raises when it cannot
        connect but which other code raises too (a client that went away mid-request), only when the database does
        not answer a probe either."""
        if not unreachable(exc):
            return False
        if not (self.down or _from_database(exc)) and await self._answers():
            return False
        self.failed(exc)
        return True

    def known(self, exc: BaseException) -> bool:
        """For code that only talks to the database (a worker's pass, a mark, a takeover): whether ``exc`` is it
        being away (reported, as by :meth:`failed`, if so). There a bare ``OSError`` is the driver's (asyncpg
        raises a refused connection as one); elsewhere ask :meth:`confirms`, which probes."""
        if not unreachable(exc):
            return False
        self.failed(exc)
        return True

    async def _answers(self) -> bool:
        try:
            async with asyncio.timeout(max(self.probe, 2.0)), self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    def failed(self, exc: BaseException) -> None:
        """Someone could not reach the database: the first of an outage is logged, and probing begins."""
        if self.since is not None:
            return
        self.since = time.monotonic()
        log.error(
            "the database is unreachable (%s): requests that need it are answered 503 until it is back",
            _describe(exc),
        )
        # a context of its own: started by whichever request met the outage, its lines are not that request's
        self._probe = asyncio.create_task(self._until_back(), name="database-watch", context=contextvars.Context())

    async def _until_back(self) -> None:
        while True:
            await self.sleep(self.probe)
            if not await self._answers():
                continue  # still down: the outage was logged when it began
            since, self.since = self.since, None
            log.info("the database is reachable again (after %.0f s)", time.monotonic() - (since or time.monotonic()))
            return

    async def close(self) -> None:
        task, self._probe = self._probe, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _from_database(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is an error of SQLAlchemy, sqlite3 or asyncpg."""
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, SQLAlchemyError | sqlite3.Error) or type(current).__module__.startswith("asyncpg"):
            return True
        current = getattr(current, "orig", None) or current.__cause__
    return False


def _describe(exc: BaseException) -> str:
    """The error's type and first line, without its statement (which could hold data)."""
    first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {first[0][:200]}" if first else type(exc).__name__


def process_id() -> str:
    """An id for this process, unique across restarts (a container's pid is often the same each time): the
    ``lease_owner`` of the rows it leases, and the name of its liveness lock."""
    return f"{secrets.token_hex(4)}:{os.getpid()}:{socket.gethostname()}"[:64]  # a long host name is what is cut


def _int31(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") & 0x7FFFFFFF


def owner_key(owner: str) -> int:
    """The second half of a process's liveness lock: its id, hashed. Two ids meeting in a hash only make a dead
    process look alive, and its rows then wait for their lease as before."""
    return _int31(f"hotline-bot:process:{owner}")


# the lock's session is dropped by the server within about 30 s of its process going silent (as the leader's)
_KEEPALIVES = (
    "SET tcp_keepalives_idle = 10",
    "SET tcp_keepalives_interval = 5",
    "SET tcp_keepalives_count = 3",
    "SET tcp_user_timeout = 30000",
)

# the advisory locks of this deployment's processes: the two-int form pg_advisory_lock(class, key), which pg_locks
# shows with objsubid 2. It never meets store.leader's and the migration's locks, which use the single bigint form
# (objsubid 1). The class is this deployment's own, derived from its schema, so that deployments (and the tests'
# schemas) sharing one database each count and judge only their own processes.
_LIVE_KEYS = """
SELECT objid::int8 FROM pg_locks
WHERE locktype = 'advisory' AND objsubid = 2 AND granted AND classid::int8 = :class
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


class Liveness:
    """This process's liveness lock (PostgreSQL), and the judgement of others' (see the module's docstring)."""

    def __init__(
        self,
        engine: AsyncEngine,
        owner: str,
        *,
        check: float = 2.0,
        grace: timedelta = timedelta(seconds=5),
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.engine = engine
        self.owner = owner
        self.key = owner_key(owner)
        self.database = DatabaseWatch(engine, sleep=sleep)  # the outage's two log lines, for whoever meets it
        self.check = check
        self.grace = grace
        self.sleep = sleep
        self.processes = 1  # live processes the database knows of, this one included, as of the last check
        self.held = asyncio.Event()  # set while this process holds its lock (always on SQLite)
        self._class: int | None = None
        self._suspects: dict[tuple[str, str], datetime] = {}  # (table, owner) seen without its lock, since when
        self._task: asyncio.Task[None] | None = None
        self._conn: AsyncConnection | None = None  # the lock's session

    @property
    def postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    async def start(self) -> None:
        """Takes the lock (PostgreSQL) and keeps it, taking it again whenever its session is lost."""
        if not self.postgresql:
            self.held.set()
            return
        self._conn = await self._lock()
        self._task = asyncio.create_task(self._keep(), name="liveness")

    async def _class_id(self, conn: Conn) -> int:
        if self._class is None:
            schema = (await conn.execute(text("SELECT current_schema()"))).scalar_one()
            self._class = _int31(f"hotline-bot:liveness:{schema}")
        return self._class

    async def _lock(self) -> AsyncConnection:
        conn = await self.engine.connect()
        try:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            async with asyncio.timeout(max(self.check, 5.0)):
                for setting in _KEEPALIVES:
                    await conn.execute(text(setting))
                if not await self._take(conn):  # another live process's id has the same hash
                    log.warning("liveness: another process holds this process's lock key; it vouches for both")
                await self._count(conn)
        except BaseException:
            await _discard(conn)
            raise
        self.held.set()
        return conn

    async def _take(self, conn: AsyncConnection) -> bool:
        lock = {"class": await self._class_id(conn), "key": self.key}
        return bool((await conn.execute(text("SELECT pg_try_advisory_lock(:class, :key)"), lock)).scalar_one())

    async def _count(self, conn: AsyncConnection) -> None:
        live = (await conn.execute(text(_LIVE_KEYS), {"class": await self._class_id(conn)})).scalars().all()
        self.processes = max(1, len(live))
        if self.key not in live:  # the process whose id shares the hash has gone: the lock is free again
            await self._take(conn)

    async def _keep(self) -> None:
        """Every ``check`` seconds: the lock's session still answers (and the count of live processes is read), or
        the lock is taken again on a new session."""
        lost_logged = False
        while True:
            await self.sleep(self.check)
            try:
                if self._conn is None:
                    self._conn = await self._lock()
                    if lost_logged:
                        log.info("liveness: this process's lock is held again")
                        lost_logged = False
                else:
                    async with asyncio.timeout(max(self.check, 5.0)):
                        await self._count(self._conn)
            except Exception as exc:
                self.held.clear()
                await self._end_session()
                if unreachable(exc):
                    self.database.failed(exc)  # an outage: logged once, by the watch
                elif not lost_logged:
                    log.warning("liveness: lost this process's lock with its database session; taking it again")
                    lost_logged = True

    async def _end_session(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await _discard(conn)  # the session ends, and its lock with it

    async def close(self) -> None:
        self.held.clear()
        await self.database.close()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._end_session()

    # -- the others --------------------------------------------------------------------------------------------

    async def release_dead(self, store: Store, table: Table, now: datetime) -> int:
        """PostgreSQL: frees the pending rows of ``table`` (the inbox or the outbox) leased to processes that have
        died (their lock gone for ``grace``), for the next claim; how many. A live owner keeps its rows until its
        lease runs out, however slow it is. On SQLite nothing (see :meth:`release_others`)."""
        if not self.postgresql:
            return 0
        pending = table.c.status == bindparam("pending", "pending", literal_execute=True)  # the partial index
        async with store.reading() as conn:
            leased = (
                select(table.c.lease_owner)
                .where(pending, table.c.lease_until >= now, table.c.lease_owner != self.owner)
                .distinct()
            )
            owners = (await conn.execute(leased)).scalars().all()
            if not owners:
                return 0
            live = set((await conn.execute(text(_LIVE_KEYS), {"class": await self._class_id(conn)})).scalars())
        dead = self._judge(table.name, [owner for owner in owners if owner], live, now)
        if not dead:
            return 0
        async with store.transaction() as conn:
            result = await conn.execute(
                update(table)
                .where(pending, table.c.lease_owner.in_(sorted(dead)), table.c.lease_until.is_not(None))
                .values(lease_until=None)  # the owner stays: the outbox then knows a send of it may have arrived
            )
        released = int(result.rowcount)
        if released:
            log.warning(
                "took over %d %s rows of %d process(es) that died: %s",
                released,
                table.name,
                len(dead),
                ", ".join(sorted(dead)),
            )
        return released

    def _judge(self, table: str, owners: Collection[str], live: set[int], now: datetime) -> set[str]:
        """The owners of ``table``'s leases seen without their lock for ``grace`` (the first look starts the
        count)."""
        dead: set[str] = set()
        for owner in owners:
            if owner_key(owner) in live:
                self._suspects.pop((table, owner), None)
                continue
            since = self._suspects.setdefault((table, owner), now)
            if now - since >= self.grace:
                dead.add(owner)
        for key in [k for k in self._suspects if k[0] == table and k[1] not in owners]:
            del self._suspects[key]  # its rows are done or taken: nothing left to judge
        return dead

    async def release_others(self, store: Store, table: Table) -> int:
        """SQLite, at start: frees every pending row of ``table`` leased to another owner, a previous run of this,
        the only, process; how many. On PostgreSQL nothing (see :meth:`release_dead`)."""
        if self.postgresql:
            return 0
        pending = table.c.status == bindparam("pending", "pending", literal_execute=True)
        async with store.transaction() as conn:
            result = await conn.execute(
                update(table)
                .where(pending, table.c.lease_owner != self.owner, table.c.lease_until.is_not(None))
                .values(lease_until=None)  # the owner stays, as in release_dead
            )
        released = int(result.rowcount)
        if released:
            log.info("took over %d %s rows left leased by the previous run", released, table.name)
        return released


async def _discard(conn: AsyncConnection) -> None:
    """Closes the connection for good (not back into the pool): its session, and its lock, end."""
    with contextlib.suppress(Exception):
        await conn.invalidate()
    with contextlib.suppress(Exception):
        await conn.close()
