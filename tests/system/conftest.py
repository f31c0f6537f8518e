"""Servers of the system tests' own: a PostgreSQL cluster per test session (per xdist worker), which tests may stop
and start (each gets a database of its own in it), a Redis per test, and the fake WeCom the bot's process
talks to."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.procs import OwnPostgres, OwnRedis, WeComSide, sandbox_config


@pytest.fixture(scope="session")
def own_postgres_server() -> Iterator[OwnPostgres]:
    server = OwnPostgres()
    server.start_now()
    try:
        yield server
    finally:
        server.destroy()


async def new_database(server: OwnPostgres) -> str:
    """The URL of a fresh database of its own on ``server`` (started first if a test left it stopped)."""
    if not server.running:
        await server.start()
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(server.url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    return server.url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
async def own_postgres(own_postgres_server: OwnPostgres) -> AsyncIterator[tuple[OwnPostgres, str]]:
    """The session's own PostgreSQL, running, and a database of this test's own in it; the server is started again
    after a test that stopped it."""
    yield own_postgres_server, await new_database(own_postgres_server)
    if not own_postgres_server.running:
        await own_postgres_server.start()


@pytest.fixture(params=["sqlite", "postgres"])
async def bot_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database for a bot process, on each backend; PostgreSQL's on the own server: a bot process holds the
    engine's advisory lock, which is the whole database's (every schema), and other tests there want it too."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/bot.db"
    return await new_database(request.getfixturevalue("own_postgres_server"))


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def wecom() -> AsyncIterator[WeComSide]:
    """The fake WeCom the bot's process talks to, with the sandbox config's members, started."""
    side = WeComSide(sandbox_config())
    await side.start()
    yield side
    await side.stop()
