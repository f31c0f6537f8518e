"""The application's outbox worker delivers WeCom channels: app messages (with credentials) and robot webhooks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.app import OUTBOX, create_app
from bot.domain.clock import FrozenClock
from bot.sandbox.fake import FakeWeCom
from bot.web.keys import STORE
from config.model import BotConfig
from config.settings import Settings
from notifiers.wecom import WECOM_APP, WECOM_WEBHOOK
from store import outbox as outbox_repo
from tests.wecom.conftest import ServeFake


@pytest.fixture
async def fake(serve_fake: ServeFake) -> FakeWeCom:
    return await serve_fake(
        corp_id="ww-corp", secrets={"app-secret": 1000002}, webhook_keys=["robot-key"], members=["wuhao"]
    )


def message(channel: str, destination: str, payload: dict[str, Any], clock: FrozenClock) -> dict[str, Any]:
    return {
        "channel": channel,
        "destination": destination,
        "idempotency_key": f"{channel}:1",
        "ordering_key": None,
        "priority": 0,
        "payload": payload,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": clock.now(),
        "created_at": clock.now(),
    }


@pytest.mark.parametrize("with_app_credentials", [True, False])
async def test_the_apps_worker_delivers_wecom_channels(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    sqlite_url: str,
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    clock: FrozenClock,
    fake: FakeWeCom,
    with_app_credentials: bool,
) -> None:
    assert fake.base_url is not None
    env = {"WECOM_API_BASE": fake.base_url}
    if with_app_credentials:
        env.update(WECOM_CORP_ID="ww-corp", WECOM_APP_SECRET="app-secret", WECOM_APP_AGENT_ID="1000002")
    client = await aiohttp_client(create_app(settings_for(sqlite_url, **env), sandbox_config, clock=clock))
    app = client.app
    async with app[STORE].transaction() as conn:
        await outbox_repo.enqueue(
            conn,
            [
                message(
                    WECOM_APP,
                    "wuhao",
                    {"touser": ["wuhao"], "msgtype": "text", "content": {"content": "新工单"}},
                    clock,
                ),
                message(WECOM_WEBHOOK, "robot-key", {"msgtype": "text", "text": {"content": "紧急工单"}}, clock),
            ],
        )
    for _ in range(10):  # bounded; the background pass may deliver first, leases keep it to once
        await app[OUTBOX].run_once()
        if len(fake.delivered) == (2 if with_app_credentials else 1):
            break
    assert len(fake.messages_to(webhook_key="robot-key")) == 1
    assert len(fake.messages_to(userid="wuhao")) == (1 if with_app_credentials else 0)
    async with app[STORE].reading() as conn:
        counts = await outbox_repo.outbox_counts(conn)
    # without app credentials the app message waits, queued, for a process that has them
    assert counts == ({"sent": 2} if with_app_credentials else {"sent": 1, "pending": 1})
