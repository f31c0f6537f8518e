"""Fixtures of the notifiers' tests: the fake WeCom served over HTTP, and a rig of outbox workers sending to it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from bot.domain.clock import FrozenClock
from bot.sandbox.fake import FakeWeCom, serve
from bot.services.ratelimit import MemoryRateLimiter, RateLimiter
from bot.wecom.client import ResponseUrlClient, WebhookClient, WeComClient
from bot.wecom.tokens import MemoryTokenStore
from notifiers.outbox import OutboxWorker
from notifiers.wecom import wecom_senders
from store import outbox as outbox_repo
from store.core import Store
from store.models import outbox

CORP, SECRET, AGENT, KEY = "ww-fake-corp", "app-secret", 1000002, "robot-key-DO-NOT-LOG"
# the members the fake knows: the sandbox config's a test sends to
MEMBERS = ["wuhao", "huangqiang", "lina", "zhouting", "sunlei", "chenjing"]


@pytest.fixture
async def fake(clock: FrozenClock) -> AsyncIterator[FakeWeCom]:
    """The fake WeCom on a port of its own: the app (``SECRET``, agent ``AGENT``), one webhook robot (``KEY``) and
    ``MEMBERS``, on the test's clock."""
    server = FakeWeCom(corp_id=CORP, secrets={SECRET: AGENT}, webhook_keys=[KEY], members=MEMBERS, clock=clock.now)
    runner = await serve(server)
    yield server
    await runner.cleanup()


@dataclass
class Rig:
    store: Store
    fake: FakeWeCom
    clock: FrozenClock
    session: aiohttp.ClientSession

    def worker(self, limiter: RateLimiter | None = None, owner: str = "w1") -> OutboxWorker:
        """One bot process: its own clients and token cache; the limiter is its own unless one is shared."""
        assert self.fake.base_url is not None
        clock = self.clock

        async def sleep(seconds: float) -> None:  # the clients' retry backoff moves time instead of waiting
            clock.advance(seconds=seconds)

        app = WeComClient(
            self.session,
            base_url=self.fake.base_url,
            corp_id=CORP,
            secret=SECRET,
            agent_id=AGENT,
            tokens=MemoryTokenStore(),
            clock=lambda: clock.now().timestamp(),
            sleep=sleep,
        )
        senders = wecom_senders(
            limiter=limiter or MemoryRateLimiter(),
            clock=clock,
            app=app,
            appchat=app,
            webhook=WebhookClient(self.session, base_url=self.fake.base_url, sleep=sleep),
            response_url=ResponseUrlClient(self.session, base_url=self.fake.base_url, sleep=sleep),
        )
        return OutboxWorker(self.store, senders, clock, owner=owner)

    async def enqueue(self, channel: str, destination: str, payloads: Sequence[dict[str, Any]]) -> None:
        await enqueue(self.store, self.clock.now(), channel, destination, payloads)

    async def rows(self) -> list[dict[str, Any]]:
        async with self.store.reading() as conn:
            result = await conn.execute(select(outbox).order_by(outbox.c.id))
            return [dict(row) for row in result.mappings()]


@pytest.fixture
def rig(store: Store, fake: FakeWeCom, clock: FrozenClock, session: aiohttp.ClientSession) -> Rig:
    return Rig(store, fake, clock, session)


async def enqueue(
    store: Store, now: datetime, channel: str, destination: str, payloads: Sequence[dict[str, Any]]
) -> None:
    """Queues ``payloads`` for ``destination`` on ``channel``, due now, each under a key of its own."""
    rows = [
        {
            "channel": channel,
            "destination": destination,
            "idempotency_key": f"{channel}:{uuid.uuid4().hex}",
            "ordering_key": None,
            "priority": 5,
            "payload": payload,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for payload in payloads
    ]
    async with store.transaction() as conn:
        await outbox_repo.enqueue(conn, rows)
