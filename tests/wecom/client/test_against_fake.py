"""The API client against the fake WeCom server: two sides written apart from WeCom's documentation,
checked against each other over real HTTP."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from bot.domain.clock import FrozenClock
from bot.sandbox.fake import FakeWeCom
from bot.wecom.client import WebhookClient, WeComClient
from bot.wecom.errors import InvalidRecipients, RateLimited
from bot.wecom.tokens import MemoryTokenStore
from tests.wecom.conftest import ServeFake

CORP, SECRET, AGENT, KEY = "ww-fake-corp", "app-secret", 1000002, "robot-key"


async def _no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
async def fake(serve_fake: ServeFake) -> FakeWeCom:
    return await serve_fake(corp_id=CORP, secrets={SECRET: AGENT}, webhook_keys=[KEY], members=["wuhao", "huangqiang"])


def app_client(fake: FakeWeCom, session: aiohttp.ClientSession, clock: FrozenClock) -> WeComClient:
    assert fake.base_url is not None
    return WeComClient(
        session,
        base_url=fake.base_url,
        corp_id=CORP,
        secret=SECRET,
        agent_id=AGENT,
        tokens=MemoryTokenStore(),
        clock=lambda: clock.now().timestamp(),
        sleep=_no_sleep,
    )


async def test_messages_reach_members_and_tokens_survive_expiry(
    fake: FakeWeCom, session: aiohttp.ClientSession, clock: FrozenClock
) -> None:
    client = app_client(fake, session, clock)
    result = await client.send_text("工单 2026112300001 已派发", touser=["wuhao", "nobody"])
    assert result.invalid_users == ("nobody",)
    fake.expire_tokens()  # WeCom revokes the token in the middle of a burst
    await asyncio.gather(*(client.send_text(f"第{i}条", touser=["huangqiang"]) for i in range(20)))
    assert len(fake.messages_to(userid="wuhao")) == 1
    assert len(fake.messages_to(userid="huangqiang")) == 20
    assert fake.stats["/cgi-bin/gettoken"].requests == 2  # the first token, and one refetch for the burst
    with pytest.raises(InvalidRecipients):
        await client.send_text("x", touser=["nobody"])


async def test_token_expiry_by_the_clock(fake: FakeWeCom, session: aiohttp.ClientSession, clock: FrozenClock) -> None:
    client = app_client(fake, session, clock)
    await client.send_text("a", touser=["wuhao"])
    clock.advance(seconds=7300)  # the token's 7200 s are over: the client refreshes before using it
    await client.send_text("b", touser=["wuhao"])
    assert fake.stats["/cgi-bin/gettoken"].requests == 2
    assert fake.stats["/cgi-bin/message/send"].errors == 0


async def test_busy_is_retried(fake: FakeWeCom, session: aiohttp.ClientSession, clock: FrozenClock) -> None:
    client = app_client(fake, session, clock)
    fake.inject("busy", times=2, path="/cgi-bin/message/send")
    await client.send_text("a", touser=["wuhao"])
    assert len(fake.messages_to(userid="wuhao")) == 1


async def test_webhook_rate_limit_surfaces(fake: FakeWeCom, session: aiohttp.ClientSession, clock: FrozenClock) -> None:
    assert fake.base_url is not None
    robot = WebhookClient(session, base_url=fake.base_url, sleep=_no_sleep, max_retries=1)
    for i in range(20):
        await robot.send_text(KEY, f"推送 {i}", mentioned_list=["wuhao"])
    with pytest.raises(RateLimited):
        await robot.send_text(KEY, "第21条")
    clock.advance(seconds=61)
    await robot.send_text(KEY, "下一分钟")
    assert len(fake.messages_to(webhook_key=KEY)) == 21
