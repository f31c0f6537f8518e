"""The database goes away under the running app, for real, and comes back, on both backends: callbacks (both paths)
and hand-overs are answered 503 ``store_unavailable`` and nothing is acknowledged; the log says once that the
database went away and once that it is back, without a traceback per request; the probes tell the process alive
but not ready.

PostgreSQL is reached through a TCP proxy the test stops (connections refused, open ones cut) and starts again;
SQLite's files are moved away from under the app (its connections closed, a directory in the file's place) and put
back."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.engine import make_url

from bot.app import create_app
from bot.domain.clock import FrozenClock
from bot.web.keys import LIVENESS, STORE, WECOM_INBOUND
from config.model import BotConfig
from config.settings import Settings
from tests.hotline.test_api import TICKET, post_json
from tests.tcpproxy import TcpProxy
from tests.wecom.callbacks.test_callbacks import WECOM_ENV, app_xml, post_app, post_robot, robot_json

Client = TestClient[Any, Any]


class Outage:
    """Takes the app's database away and brings it back."""

    url: str

    async def down(self, app: web.Application) -> None: ...

    async def up(self) -> None: ...


class PostgresOutage(Outage):
    def __init__(self, proxy: TcpProxy, url: str) -> None:
        self.proxy, self.url = proxy, url

    async def down(self, app: web.Application) -> None:
        await self.proxy.stop()

    async def up(self) -> None:
        await self.proxy.start()


class SqliteOutage(Outage):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite+aiosqlite:///{path}"
        self.aside = path.parent / "aside"

    async def down(self, app: web.Application) -> None:
        await app[WECOM_INBOUND].drain()  # its last write done, nothing reopens the files meanwhile
        store = app[STORE]
        await store.dispose()  # its pooled connections: the files are let go, as on a lost volume
        self.aside.mkdir()
        for file in self.path.parent.glob(self.path.name + "*"):
            shutil.move(file, self.aside / file.name)
        self.path.mkdir()  # a directory in its place: SQLite cannot open the database

    async def up(self) -> None:
        self.path.rmdir()
        for file in self.aside.iterdir():
            shutil.move(file, self.path.parent / file.name)
        self.aside.rmdir()


@pytest.fixture
async def outage(database_url: str, tmp_path: Path) -> AsyncIterator[Outage]:
    if database_url.startswith("sqlite"):
        yield SqliteOutage(tmp_path / "db" / "bot.db")
        return
    url = make_url(database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    try:
        yield PostgresOutage(proxy, url.set(port=proxy.port).render_as_string(hide_password=False))
    finally:
        await proxy.stop()


async def until(condition: Callable[[], bool], *, polls: int = 200) -> None:
    """Polls, for at most ``polls`` twentieths of a second, a condition that a real server's return makes true (the
    app probes it every second)."""
    for _ in range(polls):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition did not come true in time")


async def unavailable(response: Any) -> None:
    assert response.status == 503, await response.text()
    assert (await response.json())["error"]["code"] == "store_unavailable"


def text_message(n: int) -> bytes:
    return app_xml(MsgType="text", Content=f"/查 {n}", MsgId=f"7000{n}")


async def test_a_database_outage_is_answered_503_and_logged_once_when_it_goes_and_once_when_it_returns(
    outage: Outage,
    aiohttp_client: Callable[..., Awaitable[Client]],
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # with the workers too (the outbox's passes, the leader elections) on PostgreSQL: they meet the outage quietly.
    # On SQLite a worker's read could open the files again between their closing and their moving away.
    workers = isinstance(outage, PostgresOutage)
    app = create_app(settings_for(outage.url, **WECOM_ENV), sandbox_config, clock=clock, run_workers=workers)
    client = await aiohttp_client(app)
    assert (await post_app(client, text_message(0))).status == 200
    caplog.set_level(logging.INFO)
    caplog.clear()

    await outage.down(app)
    for n in range(1, 4):
        await unavailable(await post_app(client, text_message(n)))
        robot = robot_json("text", msgid=f"robot-{n}", text={"content": "/待办"})
        await unavailable(await post_robot(client, robot))
        await unavailable(await post_json(client, clock, "/api/tickets", {**TICKET, "ticket_no": f"202611230010{n}"}))
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["checks"]["database"]["status"] == "fail"
    assert (await client.get("/livez")).status == 200  # alive: a restart would not bring the database back
    metrics = await client.get("/metrics")  # answered, saying the database is away, with no old backlog
    assert metrics.status == 200
    scraped = await metrics.text()
    assert "hotline_database_up 0.0" in scraped
    assert "hotline_inbox_pending{" not in scraped

    await outage.up()
    await until(lambda: not app[LIVENESS].database.down)
    assert (await post_app(client, text_message(1))).status == 200  # WeCom's retry is taken
    assert (await post_json(client, clock, "/api/tickets", {**TICKET, "ticket_no": "2026112300101"})).status == 201
    assert (await client.get("/readyz")).status == 200
    assert "hotline_database_up 1.0" in await (await client.get("/metrics")).text()

    went = [r for r in caplog.records if "database is unreachable" in r.getMessage()]
    back = [r for r in caplog.records if "database is reachable again" in r.getMessage()]
    assert [r.levelno for r in went] == [logging.ERROR]
    assert [r.levelno for r in back] == [logging.INFO]
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []  # no traceback, per request or otherwise
