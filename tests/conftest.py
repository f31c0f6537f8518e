"""Shared fixtures: real databases (SQLite in a temp dir, PostgreSQL in a schema of its own), a movable
clock, the sandbox config, and the application wired to them."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from bot.app import create_app
from bot.domain.clock import TZ, FrozenClock
from bot.domain.workcal import WorkCalendar
from bot.services.apart import Apart
from bot.services.tickets import TicketService
from bot.web.keys import DEADLINE_LEADER
from config.loader import load_config
from config.model import BotConfig
from config.settings import Settings
from notifiers.hotline import HotlineSync
from store.core import Store
from store.db import create_engine, migrate
from store.redis import create_redis

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# where the servers are, from the URLs above (a test never assumes the default ports)
PG_HOST, PG_PORT = make_url(PG_ADMIN_URL).host or "127.0.0.1", make_url(PG_ADMIN_URL).port or 5432
REDIS_HOST, REDIS_PORT = urlsplit(REDIS_URL).hostname or "127.0.0.1", urlsplit(REDIS_URL).port or 6379


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """In CI a missing service is a failure; on a developer's machine, a skip that says why."""
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _no_deployment_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from what a test gives, never from a .env or a secrets directory of the machine running it
    (a test of those sources gives its own). Processes a test starts inherit ENV_FILE=off."""
    monkeypatch.setenv("ENV_FILE", "off")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.setattr("config.settings.SECRETS_DIRS", ())


@pytest.fixture(autouse=True)
def _no_outside_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests talk to loopback only: any other address is a bug in the test."""
    real_connect = socket.socket.connect

    def guarded(sock: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and sock.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            if not (host.startswith("127.") or host in ("::1", "localhost")):
                raise RuntimeError(f"test tried to reach {host}: tests talk to loopback only")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture
def clock() -> FrozenClock:
    # a Monday morning, working day
    return FrozenClock(datetime(2026, 11, 23, 9, 0, tzinfo=TZ))


@pytest.fixture(scope="session")
def calendar() -> WorkCalendar:
    return WorkCalendar()


@pytest.fixture(scope="session")
def sandbox_config() -> BotConfig:
    return load_config(ROOT / "config" / "sandbox.yaml")


@pytest.fixture(scope="session")
def example_config() -> BotConfig:
    return load_config(ROOT / "config" / "example.yaml")


async def _pg_schema_url() -> tuple[str, Callable[[], Any]]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(PG_ADMIN_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    await admin.dispose()

    async def drop() -> None:
        # a statement the test's app cancelled at shutdown may still be finishing on the server: dropping beside
        # it can deadlock, and PostgreSQL then aborts the drop, which is simply tried again
        engine = create_async_engine(PG_ADMIN_URL)
        try:
            for attempt in range(5):
                try:
                    async with engine.begin() as conn:
                        await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                    return
                except DBAPIError as exc:
                    if "deadlock" not in str(exc) or attempt == 4:
                        raise
        finally:
            await engine.dispose()

    # asyncpg takes server settings through the URL's query: every connection works in the schema
    return f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}", drop


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/bot.db"
        return
    require_service("PostgreSQL", PG_HOST, PG_PORT)
    url, drop = await _pg_schema_url()
    try:
        yield url
    finally:
        await drop()


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/bot.db"


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    engine = create_engine(database_url)
    await migrate(engine)
    store = Store(engine)
    yield store
    await store.dispose()


@pytest.fixture
def make_service(
    store: Store, sandbox_config: BotConfig, calendar: WorkCalendar, clock: FrozenClock
) -> Callable[..., TicketService]:
    def make(config: BotConfig | None = None, sync_url: str | None = None) -> TicketService:
        sync = HotlineSync(sync_url) if sync_url else None
        return TicketService(store, config or sandbox_config, calendar, clock, sync_back=sync)

    return make


@pytest.fixture
def service(make_service: Callable[..., TicketService]) -> TicketService:
    return make_service()


INGEST_SECRET = "test-ingest-secret"
API_TOKEN = "test-api-token"


@pytest.fixture
def settings_for() -> Callable[..., Settings]:
    def make(database_url: str, **env: str) -> Settings:
        base = {
            "DATABASE_URL": database_url,
            "HOTLINE_INGEST_SECRET": INGEST_SECRET,
            "API_TOKEN": API_TOKEN,
            "LOG_FORMAT": "text",
        }
        base.update(env)
        return Settings.from_env(base)

    return make


@pytest.fixture
async def apart() -> AsyncIterator[Apart]:
    """A helper process for pure work (bot.services.apart), ended after the test."""
    kept = Apart()
    yield kept
    await kept.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client session for tests that talk to a server of their own (fakes, doubles)."""
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def redis() -> AsyncIterator[tuple[Redis, str]]:
    """The real Redis, and a key prefix of this test's own, deleted afterwards."""
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    client = create_redis(REDIS_URL)
    prefix = f"test:{uuid.uuid4().hex}:"
    try:
        yield client, prefix
    finally:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
async def leading_client(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    sqlite_url: str,
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    clock: FrozenClock,
) -> TestClient[Any, Any]:
    """One process with its workers and the sandbox's WeCom, leading the deadline engine (SQLite: it always does),
    so that what only the leader reports is there too."""
    app = create_app(settings_for(sqlite_url), sandbox_config, clock=clock, run_workers=True, sandbox=True)
    client = await aiohttp_client(app)
    await asyncio.wait_for(client.app[DEADLINE_LEADER].leading.wait(), timeout=30)
    return client
