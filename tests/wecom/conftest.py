"""Shared fixtures of the WeCom adapter's tests: the fake WeCom served over real HTTP, the wall clock the clients
read (the suite's frozen clock, in seconds), and a ``sleep`` that records each delay instead of waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from bot.domain.clock import FrozenClock
from bot.sandbox.fake import FakeWeCom, serve

ServeFake = Callable[..., Awaitable[FakeWeCom]]


class Sleeper:
    """An injected ``sleep``: records each delay; returns at once while open, else waits for :meth:`release`."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self._open = asyncio.Event()
        self._open.set()
        self._called = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        called, self._called = self._called, asyncio.Event()
        called.set()
        await self._open.wait()

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    async def wait_calls(self, count: int) -> None:
        while len(self.delays) < count:
            await self._called.wait()


@pytest.fixture
def sleeper() -> Sleeper:
    return Sleeper()


@pytest.fixture
def wall(clock: FrozenClock) -> Callable[[], float]:
    """The suite's clock as the clients and token stores read it: seconds since the epoch."""
    return lambda: clock.now().timestamp()


@pytest.fixture
async def serve_fake(clock: FrozenClock) -> AsyncIterator[ServeFake]:
    """``await serve_fake(corp_id=..., ...)``: a :class:`FakeWeCom` (or a subclass, ``kind``) on the suite's clock, served on a loopback port
    (``fake.base_url``) until the test ends."""
    runners: list[web.AppRunner] = []

    async def start(kind: type[FakeWeCom] = FakeWeCom, **options: Any) -> FakeWeCom:
        options.setdefault("secrets", {})
        options.setdefault("webhook_keys", [])
        options.setdefault("members", [])
        fake = kind(clock=clock.now, **options)
        runners.append(await serve(fake))
        return fake

    yield start
    for runner in runners:
        await runner.cleanup()
