"""The bot's WeCom senders pointed at a fake WeCom, for tests that run the outbox themselves (a moved clock, an
in-memory limiter and token store)."""

from __future__ import annotations

from typing import Any

import aiohttp

from bot.domain.clock import FrozenClock
from bot.sandbox.fake import FakeWeCom
from bot.services.ratelimit import MemoryRateLimiter, RateLimiter
from bot.wecom.client import ResponseUrlClient, WeComClient
from bot.wecom.tokens import MemoryTokenStore
from notifiers.wecom import wecom_senders
from tests.wecom.test_crypto import SAMPLE_CORP


def fake_senders(
    session: aiohttp.ClientSession,
    fake: FakeWeCom,
    clock: FrozenClock,
    *,
    secret: str,
    agent: int,
    limiter: RateLimiter | None = None,
) -> dict[str, Any]:
    """The app's message and card senders and the robot's ``response_url`` sender, as the bot builds them."""
    assert fake.base_url is not None
    app = WeComClient(
        session,
        base_url=fake.base_url,
        corp_id=SAMPLE_CORP,
        secret=secret,
        agent_id=agent,
        tokens=MemoryTokenStore(),
        clock=lambda: clock.now().timestamp(),
    )
    return wecom_senders(
        limiter=limiter or MemoryRateLimiter(),
        clock=clock,
        app=app,
        response_url=ResponseUrlClient(session, base_url=fake.base_url),
    )
