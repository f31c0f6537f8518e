"""The per-member flood limit of the command router, on both databases, with a frozen clock: 10 commands a minute
and 120 an hour per userid (``handlers.router.COMMAND_LIMITS``). Over it nothing is done; the first excess message
is told when to try again, the rest of the flood gets no answer. A limiter that cannot be asked lets commands
through. Members are the sandbox config's (SRJG: chenjing head, sunlei, zhouting)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis
from sqlalchemy import select

from bot.domain.clock import FrozenClock
from bot.domain.events import Sender, TextMessage
from bot.domain.lifecycle import TicketState
from bot.domain.ticket import TicketInput
from bot.services.ratelimit import Limit, RedisRateLimiter
from bot.services.tickets import TicketService
from handlers.router import COMMAND_LIMITS, CommandRouter
from store.models import outbox

NO = "2026112300123"  # SRJG's
NOTICE = "操作太频繁，请稍后再试"


@pytest.fixture(autouse=True)
async def _ticket(service: TicketService) -> None:
    await service.upsert(
        [
            TicketInput(
                ticket_no=NO, content="光明路店招破损，随时可能掉落", category="市容景观", citizen_phone="13800000013"
            )
        ]
    )


class Chat:
    """One member typing in the SRJG group: every message a new event (its own msgid), dated by the clock."""

    count = 0

    def __init__(self, router: CommandRouter, clock: FrozenClock, userid: str = "zhouting") -> None:
        self.router, self.clock, self.userid = router, clock, userid

    async def say(self, text: str) -> TextMessage:
        Chat.count += 1
        msgid = f"{self.userid}-{Chat.count}"
        event = TextMessage(
            source="aibot",
            msg_id=msgid,
            sender=Sender(self.userid),
            chat_type="group",
            chat_id="sandbox-srjg",
            text=text,
            quoted_text=None,
            at=self.clock.now().replace(tzinfo=None),
            response_url=f"https://qyapi.weixin.qq.com/cgi-bin/aibot/response?response_code={msgid}",
        )
        await self.router.handle(event)
        return event


async def answers(router: CommandRouter) -> dict[str, str]:
    """Each answered event's reply in the chat, by response_code (one reply per event at most)."""
    async with router.store.reading() as conn:
        rows = (await conn.execute(select(outbox).order_by(outbox.c.id))).mappings().all()
    found: dict[str, str] = {}
    for row in rows:
        if row["channel"] == "aibot_response":
            code = row["destination"].rsplit("=", 1)[1]
            assert code not in found
            found[code] = row["payload"]["markdown"]["content"]
    return found


async def state(router: CommandRouter) -> tuple[str, str | None]:
    ticket = (await router.service.get(NO)).ticket
    return ticket.state, ticket.handler_userid


async def flood(chat: Chat, n: int, text: str = "查 0123", every: float = 1.0) -> list[TextMessage]:
    sent = []
    for _ in range(n):
        sent.append(await chat.say(text))
        chat.clock.advance(seconds=every)
    return sent


def test_the_limits_are_ten_a_minute_and_120_an_hour() -> None:
    assert [(limit.count, limit.per_seconds) for limit in COMMAND_LIMITS] == [(10, 60), (120, 3600)]


async def test_the_11th_command_in_a_minute_is_told_to_wait_and_the_12th_gets_no_answer(
    router: CommandRouter, clock: FrozenClock
) -> None:
    chat = Chat(router, clock)
    shown = await flood(chat, 10)  # 10 s: the minute's allowance
    eleventh, twelfth = await chat.say("接单 0123"), await chat.say("接单 0123")
    replies = await answers(router)
    assert all("状态：" in replies[e.msg_id] for e in shown)
    # the first command (at 0 s) leaves the window at 60 s: 50 s from now
    assert replies[eleventh.msg_id] == f"{NOTICE}（约 50 秒后）。"
    assert twelfth.msg_id not in replies  # no reply flood
    assert len(replies) == 11
    assert await state(router) == (TicketState.DISPATCHED, None)  # neither claim applied
    assert router.events[-2:] == [eleventh, twelfth]  # both still recorded


async def test_after_the_window_commands_work_again(router: CommandRouter, clock: FrozenClock) -> None:
    chat = Chat(router, clock)
    await flood(chat, 10)
    refused = await chat.say("接单 0123")
    clock.advance(seconds=49.9)  # 59.9 s after the first: still full
    silent = await chat.say("接单 0123")
    clock.advance(seconds=0.1)  # 60 s: the first leaves the window
    claim = await chat.say("接单 0123")
    replies = await answers(router)
    assert NOTICE in replies[refused.msg_id] and silent.msg_id not in replies  # noqa: PT018
    assert "周婷 已接单" in replies[claim.msg_id]
    assert await state(router) == (TicketState.CLAIMED, "zhouting")


async def test_a_new_flood_after_a_minute_is_told_again_a_long_one_once_a_minute(
    router: CommandRouter, clock: FrozenClock
) -> None:
    chat = Chat(router, clock)
    await flood(chat, 10)
    first = await flood(chat, 60, every=0.5)  # 30 s of flooding: one notice
    replies = await answers(router)
    assert [e.msg_id for e in first if e.msg_id in replies] == [first[0].msg_id]
    clock.advance(seconds=120)  # a quiet spell, then the same again
    await flood(chat, 10)
    second = await flood(chat, 5)
    replies = await answers(router)
    assert [e.msg_id for e in second if e.msg_id in replies] == [second[0].msg_id]
    assert sum(NOTICE in text for text in replies.values()) == 2


async def test_two_members_do_not_share_a_limit(router: CommandRouter, clock: FrozenClock) -> None:
    zhouting, sunlei = Chat(router, clock), Chat(router, clock, "sunlei")
    await flood(zhouting, 12)
    claim = await sunlei.say("接单 0123")
    assert "孙磊 已接单" in (await answers(router))[claim.msg_id]
    assert await state(router) == (TicketState.CLAIMED, "sunlei")


async def test_the_hourly_limit_tells_minutes(make_router: Callable[..., CommandRouter], clock: FrozenClock) -> None:
    router = make_router(limits=(Limit(3, 60), Limit(5, 3600)))
    chat = Chat(router, clock)
    await flood(chat, 5, every=60)  # within the minute limit, at the hour's
    over = await chat.say("查 0123")
    # the first (at 0 s) leaves the hour at 3600 s; it is 300 s now
    assert (await answers(router))[over.msg_id] == f"{NOTICE}（约 55 分钟后）。"


async def test_a_stranger_flooding_is_limited_too(router: CommandRouter, clock: FrozenClock) -> None:
    chat = Chat(router, clock, "stranger")
    sent = await flood(chat, 12)
    replies = [(await answers(router)).get(e.msg_id, "") for e in sent]
    assert all("不在本热线系统的成员名单中" in r for r in replies[:10])
    assert NOTICE in replies[10] and replies[11] == ""  # noqa: PT018


@pytest.fixture
async def redis_down() -> AsyncIterator[Redis]:
    client = Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.5)  # nothing listens on port 9
    yield client
    await client.aclose()


async def test_an_unavailable_limiter_lets_commands_through(
    make_router: Callable[..., CommandRouter], clock: FrozenClock, redis_down: Redis
) -> None:
    router = make_router(limiter=RedisRateLimiter(redis_down))
    chat = Chat(router, clock)
    sent = await flood(chat, 12, every=0.1)
    claim = await chat.say("接单 0123")
    replies = await answers(router)
    assert all("状态：" in replies[e.msg_id] for e in sent)
    assert "周婷 已接单" in replies[claim.msg_id]
    assert await state(router) == (TicketState.CLAIMED, "zhouting")


@pytest.mark.redis
async def test_processes_sharing_redis_share_the_limit(
    make_router: Callable[..., CommandRouter], clock: FrozenClock, redis: tuple[Redis, str]
) -> None:
    client, prefix = redis
    one, two = (make_router(limiter=RedisRateLimiter(client, prefix=prefix)) for _ in range(2))
    await flood(Chat(one, clock), 5)
    await flood(Chat(two, clock), 5)
    over_one, over_two = await Chat(one, clock).say("查 0123"), await Chat(two, clock).say("查 0123")
    first, second = await answers(one), await answers(two)  # the same store: both routers' replies
    assert first == second
    assert NOTICE in first[over_one.msg_id] and over_two.msg_id not in first  # noqa: PT018 - one notice in all
