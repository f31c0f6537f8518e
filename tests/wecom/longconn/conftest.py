"""The long connection against the fake WeCom over a real loopback WebSocket.

Nothing here waits by sleeping: the fake's ``wait_until``/``wait_subscribed``, the connection's
``wait_for_state``/``wait_subscribed`` and the recording inbox's ``wait`` are events. The backoff's sleep is a
:class:`tests.wecom.conftest.Sleeper` that records each delay and returns at once, or holds until released.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import aiohttp
import pytest

from bot.domain.clock import FrozenClock
from bot.domain.events import InboundEvent
from bot.sandbox.fake import FakeWeCom
from bot.wecom.longconn import AibotLongConnection, Inbox
from tests.wecom.conftest import ServeFake, Sleeper

BOT, SECRET = "aib-hotline-01", "aibot-secret-01"
CORP = "ww-fake-corp"


class Ticks:
    """An injected monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingInbox:
    """An :class:`Inbox` that records every accept; forwards to ``target`` (the real processor) when given, else
    remembers dedup keys itself. ``gate``, when cleared, holds every accept (a slow store)."""

    def __init__(self, target: Inbox | None = None) -> None:
        self.target = target
        self.calls: list[tuple[str, InboundEvent, str, datetime | None, bool]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self._seen: set[str] = set()
        self._changed = asyncio.Event()

    @property
    def events(self) -> list[InboundEvent]:
        return [event for _, event, _, _, fresh in self.calls if fresh]

    async def accept(self, source: str, event: InboundEvent, raw: str, *, received_at: datetime | None = None) -> bool:
        await self.gate.wait()
        if self.target is not None:
            fresh = await self.target.accept(source, event, raw, received_at=received_at)
        else:
            fresh = event.dedup_key not in self._seen
            self._seen.add(event.dedup_key)
        self.calls.append((source, event, raw, received_at, fresh))
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return fresh

    async def wait(self, count: int) -> None:
        """Until ``count`` accepts have returned."""
        while len(self.calls) < count:
            await self._changed.wait()


@pytest.fixture
async def fake(serve_fake: ServeFake) -> FakeWeCom:
    return await serve_fake(corp_id=CORP, aibots={BOT: SECRET})


@pytest.fixture
def ticks() -> Ticks:
    return Ticks()


@pytest.fixture
def inbox() -> RecordingInbox:
    return RecordingInbox()


Connect = Callable[..., AibotLongConnection]


@pytest.fixture
async def connect(
    fake: FakeWeCom,
    session: aiohttp.ClientSession,
    clock: FrozenClock,
    inbox: RecordingInbox,
    sleeper: Sleeper,
    ticks: Ticks,
) -> AsyncIterator[Connect]:
    """Starts long connections to the fake (closed at the end); keyword arguments override the defaults."""
    started: list[AibotLongConnection] = []

    def make(**options: Any) -> AibotLongConnection:
        settings: dict[str, Any] = {
            "bot_id": BOT,
            "secret": SECRET,
            "url": fake.aibot.url,
            "inbound": inbox,
            "clock": clock,
            "heartbeat_interval": 3600.0,
            "ack_timeout": 2.0,
            "sleep": sleeper,
            "random": lambda: 0.5,  # no jitter
            "monotonic": ticks,
        }
        settings.update(options)
        connection = AibotLongConnection(session, **settings)
        connection.start()
        started.append(connection)
        return connection

    yield make
    for connection in started:
        await connection.close()
