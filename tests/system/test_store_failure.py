"""A callback (the app's and the intelligent robot's) and a hand-over are refused, not answered 2xx, when the store
fails for real: a PostgreSQL server of the test's own stopped under the bot, a SQLite file that became unusable.
WeCom and the platform send again what was not answered 2xx, so a refusal loses nothing; a 2xx would lose the
message for good ("answer 200 when the store write fails" must not go unnoticed)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.app import create_app
from bot.domain.clock import FrozenClock
from bot.hotline.signing import signed_headers
from bot.sandbox.simulate import Sealed
from bot.web.keys import WECOM_INBOUND
from config.model import BotConfig
from config.settings import Settings
from tests.conftest import INGEST_SECRET
from tests.procs import OwnPostgres, WeComSide, sandbox_config
from tests.system.conftest import new_database

Client = TestClient[Any, Any]


@pytest.fixture(params=["sqlite", "postgres"])
async def failing_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, Callable[[], Awaitable[None]]]]:
    """A database URL, and how to make that database fail under the bot."""
    if request.param == "sqlite":
        path = tmp_path / "bot.db"

        async def unusable() -> None:
            # the disk's contents gone bad: the file, its write-ahead log and
            # its index are no database any more
            for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                if file.exists():
                    file.write_bytes(b"\xde\xad" * (file.stat().st_size // 2 + 1))

        yield f"sqlite+aiosqlite:///{path}", unusable
        return
    server: OwnPostgres = request.getfixturevalue("own_postgres_server")
    try:
        yield await new_database(server), server.stop
    finally:
        if not server.running:
            await server.start()


@pytest.fixture
def wecom() -> WeComSide:
    side = WeComSide(sandbox_config())
    side.fake.base_url = "http://127.0.0.1:1"  # the callbacks' response_url; nothing is sent here
    return side


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[Client]],
    failing_store: tuple[str, Callable[[], Awaitable[None]]],
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    clock: FrozenClock,
    wecom: WeComSide,
) -> Client:
    settings = settings_for(failing_store[0], **wecom.credentials())
    return await aiohttp_client(create_app(settings, sandbox_config, clock=clock, run_workers=False))


async def post_callback(client: Client, path: str, sealed: Sealed) -> Any:
    return await client.post(f"{path}?{sealed.query}", data=sealed.body, headers={"Content-Type": sealed.content_type})


async def hand_over(client: Client, clock: FrozenClock, no: str) -> Any:
    body = json.dumps(
        {"ticket_no": no, "content": "店招松动，存在坠落风险", "kind": "urgent"}, ensure_ascii=False
    ).encode()
    headers = {"Content-Type": "application/json", **signed_headers(INGEST_SECRET, int(clock.now().timestamp()), body)}
    return await client.post("/api/tickets", data=body, headers=headers)


async def test_callbacks_and_hand_overs_are_refused_when_the_store_fails(
    client: Client,
    failing_store: tuple[str, Callable[[], Awaitable[None]]],
    wecom: WeComSide,
    clock: FrozenClock,
) -> None:
    ts = int(clock.now().timestamp())
    # the store works: each is accepted
    assert (await hand_over(client, clock, "2026112300001")).status == 201
    robot = wecom.group_command("chenjing", "sandbox-srjg", "/查 2026112300001", 1, timestamp=ts)
    assert (await post_callback(client, "/wecom/aibot", robot)).status == 200
    await client.app[WECOM_INBOUND].drain()

    await failing_store[1]()
    refused = {
        "robot callback": await post_callback(
            client, "/wecom/aibot", wecom.group_command("chenjing", "sandbox-srjg", "/待办", 2, timestamp=ts)
        ),
        "app callback": await post_callback(
            client, "/wecom/callback", wecom.private_command("zhouting", "/我的", timestamp=ts)
        ),
        "hand-over": await hand_over(client, clock, "2026112300002"),
    }
    answered = {name: response.status for name, response in refused.items()}
    assert all(not 200 <= status < 300 for status in answered.values()), answered
    for response in refused.values():  # a JSON error, as every error the bot answers
        assert "error" in await response.json()
