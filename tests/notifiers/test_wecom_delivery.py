"""WeCom delivery through the real outbox, on both databases, over real HTTP against the fake WeCom, which drops
what WeCom would drop. Time is a FrozenClock moved by the test (and by the clients' retry sleeps); nothing sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select

from bot.domain.clock import FrozenClock
from bot.sandbox.fake import Delivered
from bot.services.ratelimit import Limit, LimiterUnavailable, MemoryRateLimiter, RateLimiter, RedisRateLimiter
from bot.wecom.client import WeComClient
from bot.wecom.errors import (
    BadTemplateCard,
    Busy,
    InvalidRecipients,
    IpNotTrusted,
    RateLimited,
    TokenInvalid,
    TransportError,
)
from bot.wecom.tokens import MemoryTokenStore
from notifiers.outbox import OutboundMessage, OutboxWorker
from notifiers.wecom import (
    AIBOT_RESPONSE,
    WECOM_APP,
    WECOM_APPCHAT,
    WECOM_WEBHOOK,
    delivery_error,
)
from store import outbox as outbox_repo
from store.models import outbox
from store.redis import create_redis
from tests.conftest import REDIS_URL
from tests.notifiers.conftest import AGENT, CORP, KEY, SECRET, Rig

MINUTE = timedelta(minutes=1)


async def drain(workers: Sequence[OutboxWorker], clock: FrozenClock, *, minutes: float) -> None:
    """The workers' poll loop for at most ``minutes``: when they are idle, the clock moves on to the next message
    due instead of anyone sleeping (a second at least, a poll interval)."""
    end = clock.now() + timedelta(minutes=minutes)
    store = workers[0].store
    while clock.now() < end:
        while sum(await asyncio.gather(*(w.run_once() for w in workers))):
            pass
        async with store.reading() as conn:
            due = (
                await conn.execute(select(func.min(outbox.c.next_attempt_at)).where(outbox.c.status == "pending"))
            ).scalar_one()
        if due is None:
            return
        clock.set(min(end, max(due, clock.now() + timedelta(seconds=1))))


def texts(n: int, to: Sequence[str] = ("wuhao",)) -> list[dict[str, Any]]:
    return [{"touser": list(to), "msgtype": "text", "content": {"content": f"工单提醒 第{i}条"}} for i in range(n)]


def busiest_window(deliveries: Sequence[Delivered], span: timedelta = MINUTE) -> int:
    """The most deliveries within any ``span``-long window (as WeCom counts, a sliding one)."""
    times = sorted(d.at for d in deliveries)
    return max((sum(1 for t in times[i:] if t - start < span) for i, start in enumerate(times)), default=0)


def in_first_minute(deliveries: Sequence[Delivered], start: datetime) -> int:
    return sum(1 for d in deliveries if d.at - start < MINUTE)


# --- app messages: 30 a minute per member, excess dropped silently -----------------------------------------------


async def test_sixty_app_messages_to_one_member_arrive_paced_none_dropped(rig: Rig) -> None:
    start = rig.clock.now()
    await rig.enqueue(WECOM_APP, "wuhao", texts(60))
    await drain([rig.worker()], rig.clock, minutes=3)

    delivered = rig.fake.messages_to(userid="wuhao")
    assert rig.fake.dropped == []  # not one silent drop
    assert rig.fake.stats["/cgi-bin/message/send"].errors == 0  # and no error from WeCom
    assert in_first_minute(delivered, start) == 30  # the whole allowance of the first minute
    assert busiest_window(delivered) == 30
    # nothing lost, nothing twice
    assert sorted(d.body["text"]["content"] for d in delivered) == sorted(p["content"]["content"] for p in texts(60))
    assert rig.fake.stats["/cgi-bin/message/send"].requests == 60
    # the rest as soon as the first slot frees: the minute plus a second of slack
    assert max(d.at for d in delivered) - start == timedelta(seconds=61)
    rows = await rig.rows()
    assert {r["status"] for r in rows} == {"sent"}
    assert {r["attempts"] for r in rows} == {1}  # waiting for a slot is not an attempt


async def test_message_to_several_members_waits_for_the_busiest_without_using_the_others_slots(rig: Rig) -> None:
    start = rig.clock.now()
    await rig.enqueue(WECOM_APP, "wuhao", texts(30))
    await rig.enqueue(WECOM_APP, "wuhao|lina", texts(1, to=["wuhao", "lina"]))
    await rig.enqueue(WECOM_APP, "lina", texts(30, to=["lina"]))
    await drain([rig.worker()], rig.clock, minutes=2)

    assert rig.fake.dropped == []
    # wuhao's minute is full: the message to both waited, and took none of lina's 30 meanwhile
    assert in_first_minute(rig.fake.messages_to(userid="lina"), start) == 30
    both = [d for d in rig.fake.messages_to(userid="lina") if d.body["touser"] == "wuhao|lina"]
    assert [d.at - start for d in both] == [timedelta(seconds=61)]
    assert len(rig.fake.messages_to(userid="wuhao")) == 31
    assert len(rig.fake.messages_to(userid="lina")) == 31


async def test_a_slow_send_holds_its_slot_from_when_it_ended(rig: Rig) -> None:
    # the first send meets -1 three times: the client's retries (0.5 + 1 + 2 s) land it 3.5 s after it was counted.
    # Counted only at its start, the 31st message would go 61 s after that start, 57.5 s after WeCom saw the first.
    rig.fake.inject("busy", times=3, path="/cgi-bin/message/send")
    await rig.enqueue(WECOM_APP, "wuhao", texts(40))
    await drain([rig.worker()], rig.clock, minutes=3)

    assert rig.fake.dropped == []
    assert len(rig.fake.messages_to(userid="wuhao")) == 40
    assert busiest_window(rig.fake.messages_to(userid="wuhao")) == 30


async def test_two_processes_share_the_limits_through_redis(rig: Rig, redis: tuple[Redis, str]) -> None:
    _, prefix = redis
    first, second = create_redis(REDIS_URL), create_redis(REDIS_URL)
    try:
        workers = [
            rig.worker(RedisRateLimiter(first, prefix=prefix), owner="a"),
            rig.worker(RedisRateLimiter(second, prefix=prefix), owner="b"),
        ]
        start = rig.clock.now()
        await rig.enqueue(WECOM_APP, "wuhao", texts(60))
        await drain(workers, rig.clock, minutes=3)
    finally:
        await first.aclose()
        await second.aclose()
    delivered = rig.fake.messages_to(userid="wuhao")
    assert rig.fake.dropped == []
    assert in_first_minute(delivered, start) == 30
    assert len(delivered) == 60
    assert {r["status"] for r in await rig.rows()} == {"sent"}


# --- webhook robot: 20 a minute, 45009 past that -----------------------------------------------------------------


async def test_forty_five_webhook_messages_take_three_windows_without_45009(rig: Rig) -> None:
    start = rig.clock.now()
    payloads = [{"msgtype": "markdown", "markdown": {"content": f"**推送** {i}"}} for i in range(45)]
    await rig.enqueue(WECOM_WEBHOOK, KEY, payloads)
    await drain([rig.worker()], rig.clock, minutes=4)

    delivered = rig.fake.messages_to(webhook_key=KEY)
    assert len(delivered) == 45
    assert rig.fake.stats["/cgi-bin/webhook/send"].errors == 0  # never a 45009
    assert busiest_window(delivered) == 20
    assert sorted({(d.at - start) // MINUTE for d in delivered}) == [0, 1, 2]  # 20, 20, 5
    assert {r["status"] for r in await rig.rows()} == {"sent"}


async def test_45009_from_someone_else_on_the_robot_waits_the_minute(rig: Rig) -> None:
    # another system posts through the same robot: WeCom answers 45009 although our own count has room
    rig.fake.inject("rate_limited", times=4, path="/cgi-bin/webhook/send")
    await rig.enqueue(WECOM_WEBHOOK, KEY, [{"msgtype": "text", "text": {"content": "推送"}}])
    assert await rig.worker().run_once() == 1
    [row] = await rig.rows()
    assert row["status"] == "pending"
    assert "45009" in row["last_error"]
    assert row["next_attempt_at"] - rig.clock.now() == timedelta(seconds=60)  # no Retry-After: the minute window


# --- app chats: 200 a minute ------------------------------------------------------------------------------------


async def test_app_chat_messages_are_paced_per_chat(rig: Rig, session: aiohttp.ClientSession) -> None:
    assert rig.fake.base_url is not None
    creator = WeComClient(
        session,
        base_url=rig.fake.base_url,
        corp_id=CORP,
        secret=SECRET,
        agent_id=AGENT,
        tokens=MemoryTokenStore(),
        clock=lambda: rig.clock.now().timestamp(),
    )
    chatid = await creator.appchat_create(name="12345 城管组", userlist=["wuhao", "huangqiang"])
    start = rig.clock.now()
    await rig.enqueue(WECOM_APPCHAT, chatid, [{"msgtype": "text", "content": {"content": f"{i}"}} for i in range(205)])
    await drain([rig.worker()], rig.clock, minutes=2)

    delivered = rig.fake.messages_to(chatid=chatid)
    assert rig.fake.dropped == []
    assert len(delivered) == 205
    assert in_first_minute(delivered, start) == 200
    assert all(d.to["members"] == ["wuhao", "huangqiang"] for d in delivered)


# --- the intelligent robot's response_url: one use ------------------------------------------------------------


async def test_response_url_reply_is_delivered_once(rig: Rig) -> None:
    url = rig.fake.response_url({"chatid": "wrkSFfCgAA", "userid": "wuhao"})
    await rig.enqueue(AIBOT_RESPONSE, url, [{"msgtype": "markdown", "markdown": {"content": "已受理"}}])
    await drain([rig.worker()], rig.clock, minutes=0.1)
    [reply] = [d for d in rig.fake.delivered if d.kind == "response_url"]
    assert reply.to["userid"] == "wuhao"
    assert reply.body["markdown"]["content"] == "已受理"
    assert [r["status"] for r in await rig.rows()] == ["sent"]


# --- failures -------------------------------------------------------------------------------------------------


async def test_permanent_errors_are_dead_lettered_with_the_reason(rig: Rig) -> None:
    await rig.enqueue(WECOM_APP, "nobody", texts(1, to=["nobody"]))
    await rig.enqueue(WECOM_WEBHOOK, "no-such-robot-key", [{"msgtype": "text", "text": {"content": "x"}}])
    await rig.enqueue(WECOM_APP, "wuhao", [{"touser": ["@all"], "msgtype": "text", "content": {"content": "x"}}])
    await rig.enqueue(WECOM_APP, "wuhao", [{"touser": ["wuhao"], "content": {"content": "no msgtype"}}])
    await rig.enqueue(WECOM_APP, "wuhao", texts(1, to=["wuhao", "nobody"]))  # one valid member is enough
    await drain([rig.worker()], rig.clock, minutes=0.1)

    rows = await rig.rows()
    assert [r["status"] for r in rows] == ["dead", "dead", "dead", "dead", "sent"]
    assert "InvalidRecipients" in rows[0]["last_error"]
    assert "81013" in rows[0]["last_error"]
    assert "BadWebhookKey" in rows[1]["last_error"]
    assert "93000" in rows[1]["last_error"]
    assert "no-such-robot-key" not in rows[1]["last_error"]
    assert "@all" in rows[2]["last_error"]
    assert "no msgtype" in rows[3]["last_error"]
    assert all(r["attempts"] == 1 for r in rows)
    assert len(rig.fake.messages_to(userid="wuhao")) == 1


async def test_busy_beyond_the_clients_retries_is_retried_by_the_outbox_until_delivered(rig: Rig) -> None:
    rig.fake.inject("busy", times=5, path="/cgi-bin/message/send")
    await rig.enqueue(WECOM_APP, "wuhao", texts(1))
    worker = rig.worker()
    assert await worker.run_once() == 1  # four requests, all -1: the client gives up, the outbox backs off
    [row] = await rig.rows()
    assert row["status"] == "pending"
    assert "Busy" in row["last_error"]
    assert row["next_attempt_at"] > rig.clock.now()
    await drain([worker], rig.clock, minutes=1)
    [row] = await rig.rows()
    assert (row["status"], row["attempts"]) == ("sent", 2)
    assert len(rig.fake.messages_to(userid="wuhao")) == 1
    assert rig.fake.stats["/cgi-bin/message/send"].requests == 6


async def test_a_limiter_that_cannot_be_asked_holds_the_message(rig: Rig) -> None:
    class Down(MemoryRateLimiter):
        async def acquire_all(self, keys: Sequence[str], limits: Sequence[Limit], now: float) -> float:
            raise LimiterUnavailable("ConnectionError: redis is down")

    await rig.enqueue(WECOM_APP, "wuhao", texts(1))
    assert await rig.worker(Down()).run_once() == 1
    [row] = await rig.rows()
    assert row["status"] == "pending"
    assert "rate limiter unavailable" in row["last_error"]
    assert rig.fake.stats["/cgi-bin/message/send"].requests == 0


def test_wecom_errors_map_onto_the_outbox() -> None:
    path = "message/send"
    cases = [
        (InvalidRecipients(81013, "all invalid", path), True, None),
        (IpNotTrusted(60020, "not allow", path), True, None),
        (BadTemplateCard(42045, "bad card", path), True, None),
        (TransportError("HTTP 404", path, status=404, retryable=False, permanent=True), True, None),
        (Busy(-1, "busy", path), False, None),
        (TokenInvalid(42001, "expired", path), False, None),
        (TransportError("ClientOSError", path), False, None),
        (RateLimited(45009, "freq", path), False, 60.0),
        (RateLimited(45033, "concurrency", path, retry_after=5), False, 5.0),
    ]
    for exc, permanent, retry_after in cases:
        error = delivery_error(exc)
        assert (error.permanent, error.retry_after) == (permanent, retry_after), exc
        assert str(exc.errcode) in str(error)


# --- the limiters themselves ------------------------------------------------------------------------------------

PER_MINUTE = [Limit(3, 60)]


async def check_limiter_semantics(limiter: RateLimiter) -> None:
    t = 1_800_000_000.0
    assert [await limiter.acquire("a", PER_MINUTE, t + i) for i in range(3)] == [0.0, 0.0, 0.0]
    assert await limiter.acquire("a", PER_MINUTE, t + 10) == pytest.approx(50)  # the send at t leaves at t + 60
    assert await limiter.acquire("a", PER_MINUTE, t + 59.5) == pytest.approx(0.5)  # a wait counts nothing
    assert await limiter.acquire("a", PER_MINUTE, t + 60) == 0.0
    assert await limiter.acquire("a", PER_MINUTE, t + 60) == pytest.approx(1)
    # two windows: the hour's allowance of 4 runs out before the minute's
    both = [Limit(3, 60), Limit(4, 3600)]
    assert [await limiter.acquire("b", both, t + 100 * i) for i in range(4)] == [0.0] * 4
    assert await limiter.acquire("b", both, t + 400) == pytest.approx(3200)
    # all or nothing over several keys: "a" must wait, so "c" is not counted either
    assert await limiter.acquire_all(["c", "a"], PER_MINUTE, t + 60.5) == pytest.approx(0.5)
    assert [await limiter.acquire("c", PER_MINUTE, t + 60.5) for _ in range(3)] == [0.0, 0.0, 0.0]
    # a send recorded late counts from then on, even past the limit
    for _ in range(4):
        await limiter.record(["d"], PER_MINUTE, t + 30)
    assert await limiter.acquire("d", PER_MINUTE, t + 31) == pytest.approx(59)
    assert await limiter.acquire("d", PER_MINUTE, t + 90) == 0.0
    # to the microsecond, at today's epoch seconds
    u = 1_795_395_600.123456
    assert [await limiter.acquire("e", PER_MINUTE, u) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert await limiter.acquire("e", PER_MINUTE, u + 59.999999) == pytest.approx(1e-6, abs=2e-7)
    assert await limiter.acquire("e", PER_MINUTE, u + 60) == 0.0


async def test_memory_limiter_semantics() -> None:
    await check_limiter_semantics(MemoryRateLimiter())


@pytest.mark.redis
async def test_redis_limiter_semantics_and_ttl(redis: tuple[Redis, str]) -> None:
    client, prefix = redis
    await check_limiter_semantics(RedisRateLimiter(client, prefix=prefix))
    ttl = await client.pttl(f"{prefix}a")
    assert 0 < ttl <= 61_000  # idle destinations expire


@pytest.mark.redis
async def test_two_redis_limiters_never_exceed_the_limit_together(redis: tuple[Redis, str]) -> None:
    _, prefix = redis
    first, second = create_redis(REDIS_URL), create_redis(REDIS_URL)  # two processes, two connections
    try:
        limiters = [RedisRateLimiter(first, prefix=prefix), RedisRateLimiter(second, prefix=prefix)]
        limits = [Limit(30, 60), Limit(1000, 3600)]
        t = 1_800_000_000.0
        granted: list[float] = []
        for second_of_run in range(0, 180, 5):  # three minutes, 40 concurrent tries every 5 seconds
            now = t + second_of_run
            waits = await asyncio.gather(*(limiters[i % 2].acquire("wuhao", limits, now) for i in range(40)))
            granted += [now] * waits.count(0.0)
            assert all(w > 0 for w in waits if w != 0.0)
        for start in granted:
            assert sum(1 for g in granted if start <= g < start + 60) <= 30
        assert len(granted) == 90  # and the allowance is used in full: 30 at 0 s, 60 s and 120 s
    finally:
        await first.aclose()
        await second.aclose()


async def test_redis_limiter_down_is_reported_not_ignored() -> None:
    unreachable = Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.5)
    try:
        with pytest.raises(LimiterUnavailable):
            await RedisRateLimiter(unreachable).acquire("a", PER_MINUTE, 0.0)
    finally:
        await unreachable.aclose()


async def test_waiting_for_a_slot_is_not_a_failed_attempt(rig: Rig) -> None:
    # a worker that gives up after 2 attempts still delivers 35 messages that mostly wait for their minute
    worker = rig.worker()
    worker.max_attempts = 2
    await rig.enqueue(WECOM_APP, "wuhao", texts(35))
    assert await worker.run_once() == 10
    rows = await rig.rows()
    assert {(r["status"], r["attempts"], r["last_error"]) for r in rows} == {("sent", 1, None), ("pending", 0, None)}
    await drain([worker], rig.clock, minutes=3)
    rows = await rig.rows()
    assert {r["status"] for r in rows} == {"sent"}
    assert {r["attempts"] for r in rows} == {1}
    assert len(rig.fake.messages_to(userid="wuhao")) == 35
    assert rig.fake.dropped == []


# --- crashes: nothing lost, nothing twice ----------------------------------------------------------------------------


async def claim_and_die(rig: Rig, limit: int = 1) -> list[Any]:
    """A process claims messages (its lease: one minute) and dies before it records anything."""
    now = rig.clock.now()
    async with rig.store.transaction() as conn:
        return list(
            await outbox_repo.claim_due(conn, owner="dead-process", now=now, lease_until=now + MINUTE, limit=limit)
        )


async def test_a_crash_between_persisting_and_sending_then_restart_delivers_once(rig: Rig) -> None:
    await rig.enqueue(WECOM_APP, "wuhao", texts(3))
    claimed = await claim_and_die(rig, limit=3)
    assert len(claimed) == 3
    survivor = rig.worker(owner="restarted")
    assert await survivor.run_once() == 0  # the dead process's lease still holds
    rig.clock.advance(seconds=61)
    await drain([survivor], rig.clock, minutes=1)
    assert len(rig.fake.messages_to(userid="wuhao")) == 3
    assert {(r["status"], r["attempts"]) for r in await rig.rows()} == {("sent", 1)}


async def test_a_crash_between_sending_and_recording_then_restart_reaches_the_member_once(rig: Rig) -> None:
    await rig.enqueue(WECOM_APP, "wuhao", texts(1))
    [row] = await claim_and_die(rig)
    dying = rig.worker(owner="dead-process")
    await dying.senders[WECOM_APP].send(
        OutboundMessage(
            id=row["id"],
            channel=row["channel"],
            destination=row["destination"],
            idempotency_key=row["idempotency_key"],
            payload=row["payload"],
            attempts=0,
        )
    )
    rig.clock.advance(seconds=61)
    await drain([rig.worker(owner="restarted")], rig.clock, minutes=1)
    # sent twice, as at-least-once delivery must; WeCom's duplicate check drops the repeat
    assert rig.fake.stats["/cgi-bin/message/send"].requests == 2
    assert len(rig.fake.messages_to(userid="wuhao")) == 1
    assert [d.reason for d in rig.fake.dropped] == ["duplicate_check"]
    assert [r["status"] for r in await rig.rows()] == ["sent"]
