"""Leader election on the shared database: one process runs the work, another takes over when it dies. Time is
a ticker the test moves: every sleep of a Leader waits for the test's tick, nothing sleeps for real."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine

from store.db import create_engine
from store.leader import Leader, lock_key


class Ticker:
    """A Leader's sleep: each call waits until the test ticks."""

    def __init__(self) -> None:
        self._ticks: asyncio.Queue[None] = asyncio.Queue()
        self.waiting = asyncio.Event()

    async def sleep(self, _seconds: float) -> None:
        self.waiting.set()
        await self._ticks.get()
        self.waiting.clear()

    async def tick(self) -> None:
        """Lets one pending sleep end, and waits until the leader sleeps again (its step is done)."""
        self.waiting.clear()
        self._ticks.put_nowait(None)
        await self.waiting.wait()


@pytest.fixture
async def engines(database_url: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    first, second = create_engine(database_url), create_engine(database_url)
    yield first, second
    await first.dispose()
    await second.dispose()


def test_lock_keys_are_stable_signed_64_bit() -> None:
    assert lock_key("aibot") == lock_key("aibot") != lock_key("deadlines")
    assert -(2**63) <= lock_key("aibot") < 2**63


async def test_one_runs_the_other_takes_over_when_it_dies(engines: tuple[AsyncEngine, AsyncEngine]) -> None:
    first_engine, second_engine = engines
    name = f"test-{uuid.uuid4().hex}"
    tickers = Ticker(), Ticker()
    leaders = [Leader(e, name, sleep=t.sleep) for e, t in zip(engines, tickers, strict=True)]
    running: list[int] = []
    stopped: list[int] = []

    def work(i: int) -> Callable[[], Awaitable[None]]:
        async def body() -> None:
            running.append(i)
            try:
                await asyncio.Event().wait()
            finally:
                stopped.append(i)

        return body

    first = asyncio.create_task(leaders[0].run(work(0)))
    await leaders[0].leading.wait()
    if first_engine.dialect.name != "postgresql":
        # SQLite: the embedded single process is the leader, no lock involved
        assert running == [0]
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert stopped == [0]
        return

    second = asyncio.create_task(leaders[1].run(work(1)))
    await tickers[1].waiting.wait()  # the second found the lock taken and stands by
    await tickers[0].waiting.wait()  # the first watches its session
    assert running == [0]
    await tickers[1].tick()
    assert running == [0]
    assert not leaders[1].leading.is_set()

    # the first process's session dies (a partition, a database restart): its work stops at the next check, and
    # it takes the lock again on a new session (nobody else had asked in between)
    await terminate_holder(second_engine, leaders[0].key)
    await tickers[0].tick()
    await asyncio.sleep(0)
    assert stopped == [0]
    assert running == [0, 0]
    assert leaders[0].leading.is_set()

    # then the first process crashes outright: its session ends, and its lock with it; the second takes over
    await terminate_holder(second_engine, leaders[0].key)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert not leaders[0].leading.is_set()
    await tickers[1].tick()
    assert leaders[1].leading.is_set()
    assert running == [0, 0, 1]

    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    assert stopped == [0, 0, 1]


async def terminate_holder(engine: AsyncEngine, key: int | None) -> None:
    async with engine.connect() as conn:
        await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND ((classid::bigint << 32) | objid::bigint) = :k"
            ),
            {"k": key},
        )


async def test_work_that_returns_or_fails_releases_the_lock(engines: tuple[AsyncEngine, AsyncEngine]) -> None:
    name = f"test-{uuid.uuid4().hex}"
    done: list[str] = []

    async def finishes() -> None:
        done.append("ran")

    async def fails() -> None:
        raise RuntimeError("boom")

    await Leader(engines[0], name).run(finishes)
    with pytest.raises(RuntimeError, match="boom"):
        await Leader(engines[1], name).run(fails)  # it got the lock: the first released it
    await Leader(engines[0], name).run(finishes)
    assert done == ["ran", "ran"]


class SilentLink:
    """A loopback TCP relay to PostgreSQL that can go silent: bytes are held, sockets stay open (a partition, a
    frozen switch), so only a timeout can tell."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port  # the database's
        self.silent = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.silent.is_set():
                    await asyncio.Event().wait()  # held for good
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(self.host, self.port)
        for pipe in (self._pipe(client_reader, server_writer), self._pipe(server_reader, client_writer)):
            task = asyncio.create_task(pipe)
            self.tasks.add(task)

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.server is not None:
            self.server.close()


async def test_a_leader_whose_database_goes_silent_steps_down(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the lock is PostgreSQL's; SQLite is one process")
    url = make_url(database_url)
    link = SilentLink(url.host or "127.0.0.1", url.port or 5432)
    port = await link.start()
    engine = create_engine(url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False))
    ticker = Ticker()
    leader = Leader(engine, f"test-{uuid.uuid4().hex}", check=0.2, sleep=ticker.sleep)
    stopped = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    task = asyncio.create_task(leader.run(work))
    try:
        await leader.leading.wait()
        await ticker.waiting.wait()
        assert await leader.holds()
        link.silent.set()
        assert not await leader.holds()  # no answer within the check's timeout
        ticker._ticks.put_nowait(None)  # the next check: it times out too, and the work stops
        await stopped.wait()
        assert not await leader.holds()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await link.stop()
        await engine.dispose()


async def test_holds_may_be_asked_from_many_tasks_at_once(engines: tuple[AsyncEngine, AsyncEngine]) -> None:
    leader = Leader(engines[0], f"test-{uuid.uuid4().hex}", check=5.0)
    asked: list[bool] = []

    async def work() -> None:
        asked.extend(await asyncio.gather(*(leader.holds() for _ in range(20))))

    await leader.run(work)
    assert asked == [True] * 20
    assert not await leader.holds()  # released once the work returned


async def test_deployments_in_schemas_of_their_own_each_have_their_leader(database_url: str) -> None:
    """Two deployments (or two test runs) sharing one PostgreSQL database, each in its own schema: the same name
    leads in each, instead of one standing by for the other's lock."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the lock is PostgreSQL's; on SQLite every process leads its own file")
    from tests.conftest import _pg_schema_url

    other_url, drop = await _pg_schema_url()
    first, second = create_engine(database_url), create_engine(other_url)
    name = f"test-{uuid.uuid4().hex}"
    leading = [asyncio.Event(), asyncio.Event()]

    def work(i: int) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            leading[i].set()
            await asyncio.Event().wait()

        return run

    ticker = Ticker()
    tasks = [
        asyncio.ensure_future(Leader(e, name, sleep=ticker.sleep).run(work(i))) for i, e in enumerate((first, second))
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in leading)), timeout=10)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await first.dispose()
        await second.dispose()
        await drop()
