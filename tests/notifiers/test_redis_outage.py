"""Sends through a Redis outage, over real HTTP against the fake WeCom, on both databases: two bot processes whose
Redis goes away (a TCP proxy to the real one, stopped by the test) go on sending, each under its share of WeCom's
limit, together never above it, with no failed attempt and no backoff; when Redis is back the shared limit applies
again within seconds. Time is a FrozenClock moved by the test; nothing sleeps."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis

from bot.domain.clock import FrozenClock
from bot.sandbox.fake import FakeWeCom
from bot.services.ratelimit import FallbackRateLimiter, RedisRateLimiter
from bot.wecom.client import ResponseUrlClient, WebhookClient, WeComClient
from bot.wecom.tokens import RedisTokenStore
from notifiers.outbox import OutboxWorker
from notifiers.wecom import WECOM_APP, wecom_senders
from store.redis import create_redis
from tests.conftest import REDIS_URL
from tests.notifiers.conftest import AGENT, CORP, SECRET, Rig
from tests.notifiers.test_wecom_delivery import busiest_window
from tests.tcpproxy import TcpProxy

MINUTE = timedelta(minutes=1)


def texts(n: int, batch: str) -> list[dict[str, Any]]:
    """Messages to one member, each of its own text (WeCom drops a repeated text as a duplicate)."""
    return [
        {"touser": ["wuhao"], "msgtype": "text", "content": {"content": f"工单提醒 {batch} 第{i}条"}} for i in range(n)
    ]


@pytest.fixture
async def redis_proxy(redis: tuple[Redis, str]) -> AsyncIterator[tuple[TcpProxy, str]]:
    """A way to the real Redis that the test can cut, and the test's key prefix."""
    _, prefix = redis
    url = urlsplit(REDIS_URL)
    proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 6379)
    await proxy.start()
    try:
        yield proxy, prefix
    finally:
        await proxy.stop()


def process(rig: Rig, redis: Redis, prefix: str, owner: str, processes: int) -> OutboxWorker:
    """One bot process as the app wires it with Redis: the shared limits and tokens, with its fallbacks."""
    assert rig.fake.base_url is not None
    clock = rig.clock
    seconds = lambda: clock.now().timestamp()  # noqa: E731
    limiter = FallbackRateLimiter(RedisRateLimiter(redis, prefix=prefix + "rate:"), lambda: processes)
    app = WeComClient(
        rig.session,
        base_url=rig.fake.base_url,
        corp_id=CORP,
        secret=SECRET,
        agent_id=AGENT,
        tokens=RedisTokenStore(redis, prefix=prefix + "wecom:", clock=seconds),
        clock=seconds,
    )
    senders = wecom_senders(
        limiter=limiter,
        clock=clock,
        app=app,
        appchat=app,
        webhook=WebhookClient(rig.session, base_url=rig.fake.base_url),
        response_url=ResponseUrlClient(rig.session, base_url=rig.fake.base_url),
    )
    return OutboxWorker(rig.store, senders, clock, owner=owner)


async def passes(*workers: OutboxWorker) -> None:
    """The workers' passes until none finds anything to send at this moment."""
    while sum([await worker.run_once() for worker in workers]):
        pass


async def test_sends_go_on_under_each_process_share_while_redis_is_away_and_the_shared_limit_returns(
    rig: Rig, fake: FakeWeCom, redis_proxy: tuple[TcpProxy, str], clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    proxy, prefix = redis_proxy
    url = urlsplit(REDIS_URL)._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
    first, second = create_redis(url), create_redis(url)
    caplog.set_level(logging.INFO)
    try:
        a = process(rig, first, prefix, "a", processes=2)
        b = process(rig, second, prefix, "b", processes=2)
        await rig.enqueue(WECOM_APP, "wuhao", texts(2, "甲"))
        await passes(a, b)  # Redis answers: a token is fetched and shared, two sends counted there
        assert len(fake.messages_to(userid="wuhao")) == 2

        await proxy.stop()
        start = clock.now()
        await rig.enqueue(WECOM_APP, "wuhao", texts(40, "乙"))
        await passes(a, b)
        # each process its share of 30 a minute, its own sends before the outage included: 15 + 15 in the minute
        assert len(fake.messages_to(userid="wuhao")) == 30
        rows = await rig.rows()
        waiting = [r for r in rows if r["status"] == "pending"]
        assert len(waiting) == 12
        assert {(r["attempts"], r["last_error"]) for r in waiting} == {(0, None)}  # waiting for a slot, not failing
        assert fake.dropped == []

        clock.advance(seconds=61)  # the next window, still without Redis: the rest go on at the same pace
        await passes(a, b)
        assert len(fake.messages_to(userid="wuhao")) == 42

        await proxy.start()
        clock.advance(seconds=61)
        await rig.enqueue(WECOM_APP, "wuhao", texts(40, "丙"))
        await passes(a)  # one process alone: the shared limit again, the whole 30, not its share of 15
        assert len(fake.messages_to(userid="wuhao")) == 72
        assert clock.now() - start < 3 * MINUTE
    finally:
        await first.aclose()
        await second.aclose()

    delivered = fake.messages_to(userid="wuhao")
    assert busiest_window(delivered) == 30  # never above WeCom's limit, whoever sent
    assert fake.dropped == []
    # sends never failed for want of a token: one fetched before the outage and shared, one more at most by the
    # process that had no copy of it when Redis went away
    assert fake.stats["/cgi-bin/gettoken"].requests == 2
    messages = [r.getMessage() for r in caplog.records]
    assert sum("rate limits: Redis cannot be asked" in m for m in messages) == 2  # once per process
    assert sum("rate limits: Redis answers again" in m for m in messages) == 1
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
