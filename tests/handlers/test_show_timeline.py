"""``/查`` shows the ticket's history as a short timeline (its actions, and who was reminded and escalated to when),
the submitted result and the return visit: masked in a group, and in a 1:1 chat unless the reader is the ticket's
own handler or a dispatcher (as the contact details). On both databases, with the deadline engine's real record."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from bot.domain.clock import TZ, FrozenClock
from bot.domain.events import Sender, TextMessage
from bot.domain.ticket import TicketInput
from bot.domain.workcal import WorkCalendar
from bot.services.tickets import TicketService
from config.model import BotConfig
from handlers.router import CommandRouter
from store.models import outbox
from tests.engines import deadline_engine
from tests.handlers.conftest import MakeRouter

NO = "2026112300123"
NAME, PHONE, ADDRESS = "王秀英", "13800000013", "演示街道光明路1号"
MASKED_PHONE = "138＊＊＊＊0013"  # as a group reads it: masked, then escaped


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=TZ)


class Chat:
    """Members typing to the bot: in SRJG's group, or 1:1 with the app."""

    def __init__(self, router: CommandRouter, clock: FrozenClock) -> None:
        self.router = router
        self.clock = clock
        self.count = 0

    async def say(self, text: str, userid: str, *, when: datetime, group: str | None = "sandbox-srjg") -> str:
        self.count += 1
        self.clock.set(when)
        source = "aibot" if group else "app"
        await self.router.handle(
            TextMessage(
                source=source,
                msg_id=f"m{self.count}",
                sender=Sender(userid),
                chat_type="group" if group else "single",
                chat_id=group,
                text=text,
                quoted_text=None,
                at=when.replace(tzinfo=None),
                response_url=f"https://qyapi.weixin.qq.com/cgi-bin/aibot/response?response_code=m{self.count}"
                if source == "aibot"
                else None,
            )
        )
        return await self.last_reply()

    async def last_reply(self) -> str:
        async with self.router.store.reading() as conn:
            rows = await conn.execute(select(outbox).where(outbox.c.channel != "hotline").order_by(outbox.c.id))
            payload: dict[str, Any] = rows.mappings().all()[-1]["payload"]
        section = payload.get("markdown") or payload.get("content") or payload.get("text")
        assert section is not None
        return str(section["content"])


@pytest.fixture
async def chat(
    service: TicketService,
    make_router: MakeRouter,
    sandbox_config: BotConfig,
    calendar: WorkCalendar,
    clock: FrozenClock,
) -> Chat:
    """A ticket with a whole history: reminded and told it was overdue (the engine's record), claimed, contacted,
    submitted and visited, the citizen's name and number in the members' notes."""
    clock.set(at(23, 9))
    await service.upsert(
        [
            TicketInput(
                ticket_no=NO,
                content=f"光明路店招破损，随时可能掉落，{NAME}请回电{PHONE}",  # routed by 店招: no 三个二
                citizen_name=NAME,
                citizen_phone=PHONE,
                address=ADDRESS,
            )
        ]
    )
    engine = deadline_engine(service.store, sandbox_config, calendar, clock)
    for when in (at(23, 21), at(24, 9)):  # the reminder at half the accept deadline; the overdue notice at it
        clock.set(when)
        await engine.tick()
    chat = Chat(make_router(), clock)
    await chat.say(f"接单 {NO}", "zhouting", when=at(24, 9, 30))
    await chat.say(f"联系 {NO} 已致电{NAME}（{PHONE}），约下午到场", "zhouting", when=at(24, 10))
    await chat.say(f"办结 {NO} 店招已加固，{NAME}在场确认，电话{PHONE}", "zhouting", when=at(24, 15))
    await chat.say(f"回访 {NO} 不满意 {NAME}说{ADDRESS}门口仍有松动", "zhangwei", when=at(25, 10), group=None)
    return chat


async def test_in_a_group_the_timeline_is_masked(chat: Chat) -> None:
    reply = await chat.say(f"查 {NO}", "sunlei", when=at(25, 11))
    assert "办理记录：" in reply
    lines = reply.split("\n")
    timeline = lines[lines.index("办理记录：") + 1 :]
    assert timeline[0] == "11-23 09:00 派单 热线平台（→ 市容景观所）"
    assert "11-23 21:00 时限提醒 市容景观所群 — 接单、先行联系时限" in timeline
    assert "11-24 09:00 超时通知 孙磊（私信）、周婷（私信）、市容景观所群 — 接单、先行联系时限" in timeline
    assert "11-24 09:30 接单 周婷" in timeline
    assert any(line.startswith("11-24 10:00 先行联系 周婷（已致电") for line in timeline)
    assert "11-24 15:00 办结 周婷（已解决）" in timeline  # the result itself below the timeline
    assert "11-25 10:00 回访 张伟（不满意）" in timeline
    assert any(line.startswith("办理结果（11-24 15:00，已解决）：店招已加固") for line in timeline)
    assert any(line.startswith("回访（11-25 10:00）：不满意，") for line in timeline)
    assert MASKED_PHONE in reply
    for secret in (PHONE, NAME, ADDRESS, "秀英"):
        assert secret not in reply


async def test_a_unit_member_alone_with_the_bot_reads_it_masked_too(chat: Chat) -> None:
    reply = await chat.say(f"查 {NO}", "sunlei", when=at(25, 11), group=None)  # not the handler
    assert "办理记录：" in reply
    assert "办理结果" in reply
    for secret in (PHONE, NAME, ADDRESS):
        assert secret not in reply


@pytest.mark.parametrize("reader", ["zhouting", "wangfang"])  # the handler; a dispatcher
async def test_the_handler_or_a_dispatcher_alone_reads_it_unmasked(chat: Chat, reader: str) -> None:
    reply = await chat.say(f"查 {NO}", reader, when=at(25, 11), group=None)
    result = next(line for line in reply.split("\n") if line.startswith("办理结果"))
    assert result == f"办理结果（11-24 15:00，已解决）：店招已加固，{NAME}在场确认，电话{PHONE}"
    visit = next(line for line in reply.split("\n") if line.startswith("回访（"))
    assert visit == f"回访（11-25 10:00）：不满意，{NAME}说{ADDRESS}门口仍有松动"
    again = await chat.say(f"查 {NO}", reader, when=at(25, 12), group=None)
    assert again.split("办理记录：")[1] == reply.split("办理记录：")[1]  # reading the contact is no line of its own


async def test_a_long_history_shows_the_newest_lines_and_says_how_many_more(chat: Chat) -> None:
    for i in range(12):
        await chat.say(f"到场 {NO} 第{i}次到场 <@all> **加粗**", "zhouting", when=at(26, 9, i))
    reply = await chat.say(f"查 {NO}", "chenjing", when=at(26, 10))
    lines = reply.split("\n")
    start = lines.index("办理记录：")
    more = lines[start + 1]
    assert more.startswith("……另有 ")
    assert more.endswith(" 条较早记录")
    timeline = [line for line in lines[start + 2 :] if line[:2].isdigit()]
    assert len(timeline) == 10
    assert timeline[-1].startswith("11-26 09:11 到场 周婷（第11次到场 ＜@all＞ ＊＊加粗＊＊")
    assert "<@all>" not in reply and "**加粗" not in reply  # noqa: PT018 - the members' text is inert
    assert len(reply.encode()) < 2000  # one chat message, never cut
