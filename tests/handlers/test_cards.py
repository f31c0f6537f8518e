"""Card buttons end to end, on both databases: the real app (signed app callbacks, the robot's long connection)
routes each click as the clicker's command, and the real outbox sends the answer and the card update over loopback
HTTP / WebSocket to the fake WeCom, which checks every card and enforces the one-use codes. Time is a FrozenClock;
nothing sleeps: the inbox is drained and the outbox run until it has nothing left.

Members and units are the sandbox config's (SRJG: chenjing head, sunlei deputy, zhouting; HW: huangqiang head,
wuhao; RXB: dispatchers zhangwei and wangfang)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.app import create_app
from bot.domain.clock import TZ, FrozenClock
from bot.domain.events import CardClick, Sender
from bot.domain.lifecycle import TicketState
from bot.domain.records import Ticket
from bot.domain.ticket import TicketInput
from bot.messages import cards
from bot.sandbox.fake import Delivered, FakeWeCom, serve
from bot.sandbox.fake import validate as wecom_rules
from bot.services.channels import Channels
from bot.services.inbox import InboundProcessor
from bot.services.ratelimit import MemoryRateLimiter
from bot.services.sinks import RecordingSink
from bot.services.tickets import TicketService
from bot.web.keys import STORE, TICKETS, WECOM_INBOUND
from bot.wecom.client import ResponseUrlClient, WeComClient
from bot.wecom.errors import WeComError
from bot.wecom.longconn import AIBOT_CONNECTION, AibotLongConnection
from bot.wecom.tokens import MemoryTokenStore
from config.model import BotConfig
from config.settings import Settings
from notifiers.outbox import OutboxWorker
from notifiers.rows import template_card
from notifiers.wecom import AIBOT_CARD_UPDATE, AIBOT_RESPONSE, WECOM_APP, AibotCardUpdateSender, wecom_senders
from store.models import outbox
from tests.routers import command_router
from tests.wecom.callbacks.test_callbacks import T0, app_xml, post_app
from tests.wecom.test_crypto import SAMPLE_CORP, SAMPLE_KEY, SAMPLE_TOKEN

Client = TestClient[Any, Any]

NO = "2026112300123"  # SRJG's (市容景观)
OTHER = "2026112300456"  # HW's (环卫)
PHONE = "13800000013"
APP_SECRET, AGENT = "app-secret-cards", 1000002
BOT, BOT_SECRET = "aib-cards-01", "aibot-secret-cards"
GROUP = "sandbox-srjg"
SRJG = ["chenjing", "sunlei", "zhouting"]

TICKETS_IN = [
    TicketInput(ticket_no=NO, content=f"光明路店招破损，随时可能掉落，联系电话{PHONE}", category="市容景观", citizen_name="王秀英",
                citizen_phone=PHONE, address="演示街道光明路1号"),
    TicketInput(ticket_no=OTHER, content="垃圾箱房两天未清运", category="环卫", citizen_name="李四", citizen_phone="13800000014"),
]  # fmt: skip


@pytest.fixture
async def fake(clock: FrozenClock, sandbox_config: BotConfig) -> AsyncIterator[FakeWeCom]:
    server = FakeWeCom(
        corp_id=SAMPLE_CORP,
        secrets={APP_SECRET: AGENT},
        webhook_keys=[],
        members=[m.userid for m in sandbox_config.members],
        clock=clock.now,
        aibots={BOT: BOT_SECRET},
    )
    runner = await serve(server)
    yield server
    await runner.cleanup()


@dataclass
class Rig:
    """The bot (app callbacks and the robot's long connection, both configured) with an outbox worker of the test's
    own, and the app client a push (issue 5) would send cards with."""

    client: Client
    fake: FakeWeCom
    clock: FrozenClock
    config: BotConfig
    wecom: WeComClient
    worker: OutboxWorker

    @property
    def service(self) -> TicketService:
        return self.client.app[TICKETS]

    @property
    def processor(self) -> InboundProcessor:
        return self.client.app[WECOM_INBOUND]

    @property
    def connection(self) -> AibotLongConnection:
        return self.client.app[AIBOT_CONNECTION]

    async def settle(self) -> None:
        """Every callback processed, then everything queued sent."""
        await self.processor.drain()
        while await self.worker.run_once():
            pass

    async def ticket(self, ticket_no: str = NO) -> Ticket:
        return (await self.service.get(ticket_no)).ticket

    async def card(self, ticket_no: str = NO, tag: str = "push1") -> dict[str, Any]:
        detail = await self.service.get(ticket_no)
        return template_card(cards.ticket_card(detail.ticket, detail.deadlines, self.config, self.clock.now(), tag=tag))

    async def outbox(self) -> list[dict[str, Any]]:
        async with self.client.app[STORE].reading() as conn:
            rows = (await conn.execute(select(outbox).order_by(outbox.c.id))).mappings()
            return [dict(r) for r in rows if r["channel"] != "hotline"]

    def of(self, kind: str) -> list[Delivered]:
        return [d for d in self.fake.delivered if d.kind == kind]

    # -- clicks as WeCom sends them ----------------------------------------------------------------------------

    async def app_click(self, userid: str, key: str, task_id: str, *, second: int = 60) -> str:
        """A signed app callback: ``userid`` clicked ``key`` on the app's card ``task_id``; returns its code."""
        code = self.fake.card_response_code(agentid=AGENT, task_id=task_id, userid=userid)
        plain = app_xml(
            FromUserName=userid,
            CreateTime=str(T0 + second),
            MsgType="event",
            Event="template_card_event",
            EventKey=key,
            TaskId=task_id,
            CardType="button_interaction",
            ResponseCode=code,
        )
        assert (await post_app(self.client, plain)).status == 200
        await self.settle()
        return code

    async def robot_click(self, userid: str, key: str, task_id: str, chat: str = GROUP) -> str:
        """A click on the robot's card, over the long connection; returns the frame's req_id."""
        taken = self.connection.frames_taken
        req_id = await self.fake.aibot.push_event(
            BOT, "template_card_event", userid=userid, chatid=chat, event_key=key, task_id=task_id
        )
        await self.connection.wait_taken(taken + 1)
        await self.settle()
        return req_id


@pytest.fixture
async def rig(
    aiohttp_client: Callable[..., Awaitable[Client]],
    database_url: str,
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    clock: FrozenClock,
    fake: FakeWeCom,
    session: aiohttp.ClientSession,
) -> Rig:
    assert fake.base_url is not None
    settings = settings_for(
        database_url,
        WECOM_CORP_ID=SAMPLE_CORP,
        WECOM_APP_TOKEN=SAMPLE_TOKEN,
        WECOM_APP_AES_KEY=SAMPLE_KEY,
        WECOM_APP_SECRET=APP_SECRET,
        WECOM_APP_AGENT_ID=str(AGENT),
        WECOM_API_BASE=fake.base_url,
        WECOM_AIBOT_BOT_ID=BOT,
        WECOM_AIBOT_SECRET=BOT_SECRET,
        WECOM_AIBOT_WS_URL=fake.aibot.url,
        PUBLIC_URL="https://hotline.example.gov.cn",
    )
    client = await aiohttp_client(create_app(settings, sandbox_config, clock=clock, run_workers=False))
    await client.app[TICKETS].upsert(TICKETS_IN)
    connection = client.app[AIBOT_CONNECTION]
    await connection.wait_subscribed()
    wecom = WeComClient(
        session,
        base_url=fake.base_url,
        corp_id=SAMPLE_CORP,
        secret=APP_SECRET,
        agent_id=AGENT,
        tokens=MemoryTokenStore(),
        clock=lambda: clock.now().timestamp(),
    )
    senders = wecom_senders(
        limiter=MemoryRateLimiter(),
        clock=clock,
        app=wecom,
        response_url=ResponseUrlClient(session, base_url=fake.base_url),
    )
    senders[AIBOT_CARD_UPDATE] = AibotCardUpdateSender(connection)
    worker = OutboxWorker(client.app[STORE], senders, clock, owner="test")
    return Rig(client, fake, clock, sandbox_config, wecom, worker)


def text_of(delivered: Delivered) -> str:
    body = delivered.body
    section = body.get("markdown") or body.get("text") or {}
    return str(section.get("content", ""))


def facts(card: dict[str, Any]) -> dict[str, str]:
    return {row["keyname"]: row["value"] for row in card["horizontal_content_list"]}


def keys(card: dict[str, Any]) -> list[str]:
    return [button["key"] for button in card["button_list"]]


# -- the card -----------------------------------------------------------------------------------------------------


async def test_a_ticket_card_passes_wecoms_checks_and_shows_nothing_private(rig: Rig) -> None:
    card = await rig.card()
    assert wecom_rules.template_card(card) == "button_interaction"
    assert cards.TASK_ID.fullmatch(card["task_id"])
    assert cards.ticket_of_task(card["task_id"]) == NO
    assert keys(card) == [f"claim:{NO}", f"show:{NO}"]
    assert [b["text"] for b in card["button_list"]] == ["接单", "查看详情"]
    shown = json.dumps(card, ensure_ascii=False)
    assert PHONE not in shown and "王秀英" not in shown and "光明路1号" not in shown  # noqa: PT018
    assert "138＊＊＊＊0013" in card["sub_title_text"]  # the number in the text, masked
    assert card["main_title"] == {"title": "【常规】光明路店招破损，随时可能掉落，联系电话…", "desc": f"工单 {NO}"}
    assert facts(card) == {
        "承办单位": "市容景观所",
        "类别": "市容景观",
        "状态": "待接单",
        "承办人": "待接单",
        "下一时限": "20分钟联系 11-23 09:20",  # the "three twos" of 市容景观: contact within 20 minutes
    }
    # the app sends it (message/send checks it and gives the card's response_code) …
    sent = await rig.wecom.send_template_card(card, touser=SRJG)
    assert sent.response_code
    assert len(rig.fake.messages_to("zhouting")) == 1
    # … and so does the robot, into the unit's group; every push of the ticket has a task id of its own
    again = await rig.card(tag="push2")
    assert again["task_id"] != card["task_id"]
    await rig.connection.send(GROUP, {"msgtype": "template_card", "template_card": again})
    assert [d.kind for d in rig.fake.messages_to(chatid=GROUP)] == ["aibot_send"]
    with pytest.raises(WeComError):  # WeCom refuses a task id the app used before
        await rig.wecom.send_template_card(card, touser=SRJG)


# -- the robot's card, clicked in the unit's group ---------------------------------------------------------------


async def test_a_claim_in_the_group_claims_answers_and_changes_the_card_for_everyone(rig: Rig) -> None:
    card = await rig.card()
    await rig.connection.send(GROUP, {"msgtype": "template_card", "template_card": card})
    rig.clock.advance(minutes=5)
    await rig.robot_click("zhouting", f"claim:{NO}", card["task_id"])

    ticket = await rig.ticket()
    assert (ticket.state, ticket.handler_userid) == (TicketState.CLAIMED, "zhouting")
    # the answer, through the click's response_url (one use): in the group, so without the citizen's number
    [answer] = rig.of("response_url")
    assert answer.to["chatid"] == GROUP
    assert "周婷 已接单" in text_of(answer)
    assert PHONE not in text_of(answer)
    # the contact details privately, by app message
    [private] = rig.fake.messages_to("zhouting")
    assert PHONE in private.body["markdown"]["content"]
    # and the card, for everyone in the group: who claimed it, when, and the next steps
    [update] = rig.of("aibot_update_card")
    assert (update.to["chatid"], update.to["userids"]) == (GROUP, None)  # no userids: everyone
    new = update.body["template_card"]
    assert new["task_id"] == card["task_id"]
    assert new["sub_title_text"].startswith("周婷 已接单 11-23 09:05\n")
    assert (facts(new)["状态"], facts(new)["承办人"]) == ("已接单", "周婷")
    assert keys(new) == [f"contact:{NO}", f"on_site:{NO}", f"show:{NO}"]
    assert f"/办结 {NO}" in new["sub_title_text"]
    assert new["horizontal_content_list"][-1]["url"] == f"https://hotline.example.gov.cn/board/ticket/{NO}"
    assert PHONE not in json.dumps(new, ensure_ascii=False)
    sent = {row["channel"]: row["status"] for row in await rig.outbox()}
    assert sent == {AIBOT_RESPONSE: "sent", WECOM_APP: "sent", AIBOT_CARD_UPDATE: "sent"}


async def test_a_second_claim_on_the_card_is_refused_with_who_and_when_and_changes_nothing(rig: Rig) -> None:
    card = await rig.card()
    await rig.connection.send(GROUP, {"msgtype": "template_card", "template_card": card})
    await rig.robot_click("zhouting", f"claim:{NO}", card["task_id"])
    before = await rig.ticket()
    rig.clock.advance(minutes=2)
    await rig.robot_click("sunlei", f"claim:{NO}", card["task_id"])  # the same (stale) button, a moment later

    assert await rig.ticket() == before
    refusal = rig.of("response_url")[-1]
    assert refusal.to["userid"] == "sunlei"
    assert text_of(refusal) == f"工单 {NO} 已由 周婷 于 11-23 09:00 接单，无需重复操作。如需协助请与 周婷 联系。"
    assert len(rig.of("aibot_update_card")) == 1  # only the first click's
    assert rig.fake.messages_to("sunlei") == []
    await rig.robot_click("zhouting", f"claim:{NO}", card["task_id"])  # the claimer again, a new click
    assert text_of(rig.of("response_url")[-1]) == f"您已于 11-23 09:00 接下工单 {NO}，无需重复操作。"
    assert await rig.ticket() == before


async def test_a_retried_click_is_applied_and_answered_once(rig: Rig) -> None:
    card = await rig.card()
    await rig.connection.send(GROUP, {"msgtype": "template_card", "template_card": card})
    req_id = await rig.robot_click("zhouting", f"claim:{NO}", card["task_id"])
    after = await rig.ticket()
    queued = await rig.outbox()
    # WeCom delivering the frame again: the inbox knows it
    taken = rig.connection.frames_taken
    await rig.fake.aibot.redeliver(req_id)
    await rig.connection.wait_taken(taken + 1)
    await rig.settle()
    # the event handed over again (recovery after a crash): the ticket change, the answer and the update are keyed
    # by the click, so nothing is done or sent twice
    router = rig.processor.sink
    assert isinstance(router, RecordingSink)
    [click] = [e for e in router.events if isinstance(e, CardClick)]
    await router.handle(click)
    await rig.settle()
    assert await rig.ticket() == after
    assert await rig.outbox() == queued
    assert (len(rig.of("response_url")), len(rig.of("aibot_update_card"))) == (1, 1)


async def test_clicks_that_cannot_apply_get_a_polite_answer_and_change_nothing(rig: Rig) -> None:
    card = await rig.card()
    await rig.connection.send(GROUP, {"msgtype": "template_card", "template_card": card})
    await rig.robot_click("huangqiang", f"claim:{NO}", card["task_id"], chat="sandbox-hw")  # HW's head
    await rig.robot_click("zhouting", f"claim:{OTHER}", card["task_id"])  # a key naming another ticket than its card
    await rig.robot_click("zhouting", f"delete:{NO}", card["task_id"])  # not one of our buttons
    await rig.robot_click("zhouting", "accept", "ticket-123")  # not one of our cards
    await rig.robot_click("stranger", f"claim:{NO}", card["task_id"])  # not a member
    other_unit, forged, unknown, foreign, stranger = [text_of(d) for d in rig.of("response_url")]
    assert "属于市容景观所，您不能对它操作" in other_unit
    assert forged == unknown == foreign == cards.UNKNOWN_BUTTON
    assert "不在本热线系统的成员名单中" in stranger
    assert (await rig.ticket()).state == TicketState.DISPATCHED
    assert (await rig.ticket(OTHER)).state == TicketState.DISPATCHED
    assert rig.of("aibot_update_card") == []


async def test_show_details_answers_without_changing_the_card(rig: Rig) -> None:
    card = await rig.card()
    await rig.connection.send(GROUP, {"msgtype": "template_card", "template_card": card})
    await rig.robot_click("sunlei", f"show:{NO}", card["task_id"])
    [answer] = rig.of("response_url")
    assert f"工单 {NO}" in text_of(answer)
    assert PHONE not in text_of(answer)  # a group: masked
    assert rig.of("aibot_update_card") == []


# -- the app's card, clicked in a member's chat with the app ----------------------------------------------------


async def test_a_claim_in_the_app_changes_the_card_with_the_clicks_one_use_code(rig: Rig) -> None:
    card = await rig.card()
    await rig.wecom.send_template_card(card, touser=SRJG)
    rig.clock.advance(minutes=3)
    code = await rig.app_click("zhouting", f"claim:{NO}", card["task_id"])

    assert (await rig.ticket()).handler_userid == "zhouting"
    [answer] = [d for d in rig.fake.messages_to("zhouting") if d.msgtype == "markdown"]
    assert "周婷 已接单" in answer.body["markdown"]["content"]
    assert PHONE in answer.body["markdown"]["content"]  # the 1:1 chat with the app: the full details
    [update] = rig.of("update_card")
    assert (update.to["task_id"], update.to["atall"]) == (card["task_id"], 1)  # every recipient of the card
    new = update.body["template_card"]
    assert new["sub_title_text"].startswith("周婷 已接单 11-23 09:03\n")
    assert keys(new) == [f"contact:{NO}", f"on_site:{NO}", f"show:{NO}"]
    # the code is used up: WeCom takes it once
    with pytest.raises(WeComError):
        await rig.wecom.update_template_card(response_code=code, replace_name="已处理", atall=True)

    # WeCom retrying the same callback: the inbox answers it, nothing runs again
    version = (await rig.ticket()).version
    await rig.app_click("zhouting", f"claim:{NO}", card["task_id"])  # a new code, but the very same event
    assert (await rig.ticket()).version == version
    assert len(rig.of("update_card")) == 1

    # the next step from the updated card: only the handler's click counts
    rig.clock.advance(minutes=7)
    await rig.app_click("sunlei", f"contact:{NO}", card["task_id"], second=600)
    [refusal] = [d for d in rig.fake.messages_to("sunlei") if d.msgtype == "markdown"]
    assert refusal.body["markdown"]["content"].startswith(f"工单 {NO} 由 周婷 承办，「已联系」请由承办人点击。")
    assert (await rig.ticket()).state == TicketState.CLAIMED
    await rig.app_click("zhouting", f"contact:{NO}", card["task_id"], second=660)
    assert (await rig.ticket()).state == TicketState.CONTACTED
    first, second = rig.of("update_card")
    contacted = second.body["template_card"]
    assert contacted["sub_title_text"].startswith("周婷 已联系 11-23 09:10\n")
    assert keys(contacted) == [f"on_site:{NO}", f"show:{NO}"]
    assert first.to["response_code"] != second.to["response_code"]


# -- a chat command end to end: 延期 through signed app callbacks, notices delivered by the fake WeCom -------------


async def test_an_extension_through_signed_app_callbacks_is_applied_once(rig: Rig) -> None:
    async def say(userid: str, text: str, msgid: str, second: int) -> None:
        plain = app_xml(FromUserName=userid, CreateTime=str(T0 + second), MsgType="text", Content=text, MsgId=msgid)
        assert (await post_app(rig.client, plain)).status == 200
        await rig.settle()

    def texts_to(userid: str) -> list[str]:
        return [d.body["markdown"]["content"] for d in rig.fake.messages_to(userid) if d.msgtype == "markdown"]

    await say("zhouting", f"接单 {NO}", "e1", 10)
    await say("zhouting", f"延期 {NO} 3 需协调物业，预计下周完成", "e2", 20)
    assert texts_to("zhouting")[-1].startswith(
        "⏳ 周婷 申请延期 3 个工作日，已通知市容景观所负责人（陈静、孙磊）审批。"
    )
    for head in ("chenjing", "sunlei"):
        [notice] = texts_to(head)
        assert notice.startswith(f"周婷 申请工单 {NO} 延期 3 个工作日：需协调物业，预计下周完成\n")
    await say("chenjing", f"延期 {NO} 同意", "e3", 30)
    assert texts_to("chenjing")[-1].startswith("✅ 陈静 同意延期 3 个工作日，办结时限延至 12-03 09:00。已告知周婷。")
    assert texts_to("zhouting")[-1] == f"您申请的工单 {NO} 延期已获 陈静 同意：3 个工作日，办结时限延至 12-03 09:00。"
    sent = len(rig.fake.delivered)
    await say("chenjing", f"延期 {NO} 同意", "e3", 30)  # WeCom retrying the callback: answered by the inbox
    router = rig.processor.sink
    assert isinstance(router, RecordingSink)
    [approval] = [e for e in router.events if getattr(e, "msg_id", None) == "e3"]
    await router.handle(approval)  # and the event handed over again (recovery after a crash)
    await rig.settle()
    assert len(rig.fake.delivered) == sent
    ticket = await rig.ticket()
    assert (ticket.extension_count, ticket.version) == (1, 4)  # claim, request, approval: once each
    [handle] = [d for d in (await rig.service.get(NO)).deadlines if d.name == "handle"]
    assert (handle.due_at, handle.extended_days) == (datetime(2026, 12, 3, 9, 0, tzinfo=TZ), 3)


# -- the robot in callback mode: no update is possible after the callback's answer ------------------------------


async def test_a_robot_click_in_callback_mode_is_answered_and_queues_no_update(
    service: TicketService, sandbox_config: BotConfig, clock: FrozenClock
) -> None:
    await service.upsert(TICKETS_IN)
    router = command_router(service=service, config=sandbox_config, clock=clock, channels=Channels(app=True))
    click = CardClick(
        source="aibot",
        event_key=f"claim:{NO}",
        task_id=f"t@{NO}@0@p1",
        sender=Sender("zhouting"),
        chat_type="group",
        chat_id=GROUP,
        response_code=None,
        response_url="https://qyapi.weixin.qq.com/cgi-bin/aibot/response?response_code=RC",
        at=datetime(2026, 11, 23, 9, 0, tzinfo=TZ),
        dedup_key="aibot:msg:click-1",
    )
    await router.handle(click)
    assert (await service.get(NO)).ticket.handler_userid == "zhouting"
    async with service.store.reading() as conn:
        channels = [r["channel"] for r in (await conn.execute(select(outbox))).mappings() if r["channel"] != "hotline"]
    assert sorted(channels) == [AIBOT_RESPONSE, WECOM_APP]  # the answer and the private details; no update
