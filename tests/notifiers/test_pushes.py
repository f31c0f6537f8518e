"""Pushes end to end, on both databases: signed hand-overs and hotline events into the real app, the pushes it writes
in the same transaction sent by an outbox worker over loopback HTTP / WebSocket to the fake WeCom, which checks
every message and card and records what each chat got. Time is a FrozenClock; nothing sleeps: the outbox is run
until it has nothing left, and the digest flushed by calling it with the clock where the test wants it.

Members and units are the sandbox config's (SRJG 市容景观所: chenjing head, sunlei deputy, zhouting; emergency team
sunlei, zhouting. HW 环卫所: huangqiang head, wuhao; emergency team wuhao. RXB 热线办: zhangwei head, wangfang,
zhaomin. zhaomin is on duty 17:00–09:00 on weekdays). Service window 06:00–24:00, quiet hours 22:00–07:00."""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.app import OUTBOX, create_app, push_channels
from bot.domain.clock import TZ, FrozenClock
from bot.domain.lifecycle import Action, ActionRequest, TicketState
from bot.hotline.importer import import_file
from bot.sandbox.fake import Delivered, FakeWeCom, serve
from bot.services.deadline_engine import DeadlineEngine
from bot.services.ratelimit import MemoryRateLimiter
from bot.services.tickets import TicketService
from bot.web.keys import CALENDAR, CLOCK, CONFIG, DUTY, SETTINGS, STORE, TICKETS, WECOM_INBOUND
from bot.wecom.client import WebhookClient, WeComClient
from bot.wecom.longconn import AIBOT_CONNECTION
from bot.wecom.tokens import MemoryTokenStore
from config.model import BotConfig
from config.settings import Settings
from notifiers.aibot_ws import AIBOT_WS, AibotWsSender
from notifiers.keys import PUSHES
from notifiers.outbox import OutboxWorker
from notifiers.pushes import Pusher
from notifiers.rows import EngineRows
from notifiers.wecom import wecom_senders
from store.models import digest_items, outbox
from tests.conftest import API_TOKEN
from tests.hotline.test_api import post_json
from tests.wecom.test_crypto import SAMPLE_CORP

Client = TestClient[Any, Any]

APP_SECRET, AGENT = "app-secret-pushes", 1000002
BOT, BOT_SECRET = "aib-pushes-01", "aibot-secret-pushes"
KEYS = {"RXB": "robot-rxb", "SRJG": "robot-srjg", "HW": "robot-hw", "HEADS": "robot-heads"}
CHATS = {"RXB": "sandbox-rxb", "SRJG": "sandbox-srjg", "HW": "sandbox-hw"}
PHONE, NAME = "13800000013", "王秀英"
MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)  # the clock fixture's start


def _config(
    base: BotConfig, *, webhooks: bool = False, three_twos: bool = True, heads: bool = False, **pushes: Any
) -> BotConfig:
    data = base.model_dump(by_alias=True)
    if not three_twos:
        data["deadlines"]["three_twos"]["categories"] = []
    if webhooks:
        for unit in data["units"]:
            unit["group"].update(webhook_key=KEYS[unit["code"]], transport="webhook")
            if heads:  # one heads' group for every unit
                unit["heads_group"] = {"webhook_key": KEYS["HEADS"], "transport": "webhook"}
    data["pushes"].update(pushes)
    return BotConfig.model_validate(data)


def urgent(no: str, **fields: Any) -> dict[str, Any]:
    return {
        "ticket_no": no,
        "title": "店招破损有坠落危险",
        "content": f"人民路56号店招一角脱落，随时可能掉落，联系电话{PHONE}",
        "category": "市容景观",
        "urgency": "紧急",
        "citizen_name": NAME,
        "citizen_phone": PHONE,
        "address": "演示街道人民路56号",
        **fields,
    }


def regular(no: str, category: str = "市容景观", **fields: Any) -> dict[str, Any]:
    return {"ticket_no": no, "content": f"路口流动摊贩占道经营 {no}", "category": category, "urgency": "常规",
            "citizen_name": NAME, "citizen_phone": PHONE, **fields}  # fmt: skip


class WatchedWeCom(FakeWeCom):
    """The fake WeCom, with an event set at every delivery (to wait for a worker of the app's own, not sleep)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.arrived = asyncio.Event()

    def deliver(
        self, kind: str, to: dict[str, Any], msgtype: str, body: dict[str, Any], msgid: str | None = None
    ) -> Delivered:
        record = super().deliver(kind, to, msgtype, body, msgid)
        self.arrived.set()
        return record


@pytest.fixture
async def fake(clock: FrozenClock, sandbox_config: BotConfig) -> AsyncIterator[WatchedWeCom]:
    server = WatchedWeCom(
        corp_id=SAMPLE_CORP,
        secrets={APP_SECRET: AGENT},
        webhook_keys=list(KEYS.values()),
        members=[m.userid for m in sandbox_config.members],
        clock=clock.now,
        aibots={BOT: BOT_SECRET},
    )
    runner = await serve(server)
    yield server
    await runner.cleanup()


@dataclass
class Rig:
    """The bot (hotline API; WeCom app for private messages; the robot's long connection or webhooks for the groups)
    with an outbox worker of the test's own."""

    client: Client
    fake: WatchedWeCom
    clock: FrozenClock
    config: BotConfig
    worker: OutboxWorker

    @property
    def service(self) -> TicketService:
        return self.client.app[TICKETS]

    @property
    def pusher(self) -> Pusher:
        return self.client.app[PUSHES]

    async def post(self, data: Any) -> Any:
        response = await post_json(self.client, self.clock, "/api/tickets", data)
        assert response.status in (200, 201), await response.text()
        return await response.json()

    async def event(self, ticket_no: str, data: Any) -> Any:
        response = await post_json(self.client, self.clock, f"/api/tickets/{ticket_no}/events", data)
        assert response.status == 200, await response.text()
        return await response.json()

    async def send(self) -> None:
        """Everything due now sent."""
        while await self.worker.run_once():
            pass

    def group(self, unit: str) -> list[Delivered]:
        """What the unit's work group got (the robot's long connection or its webhook)."""
        return [
            d
            for d in self.fake.delivered
            if (d.kind == "aibot_send" and d.to.get("chatid") == CHATS[unit])
            or (d.kind == "webhook" and d.to.get("webhook_key") == KEYS[unit])
        ]

    def private(self, userid: str) -> list[Delivered]:
        return [d for d in self.fake.delivered if d.kind == "app" and d.to.get("touser") == userid]

    async def pending(self) -> list[dict[str, Any]]:
        async with self.client.app[STORE].reading() as conn:
            rows = (await conn.execute(select(outbox).where(outbox.c.status == "pending"))).mappings()
            return [dict(r) for r in rows]


MakeRig = Callable[..., Awaitable[Rig]]


@pytest.fixture
def make_rig(
    aiohttp_client: Callable[..., Awaitable[Client]],
    database_url: str,
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    clock: FrozenClock,
    fake: WatchedWeCom,
    session: aiohttp.ClientSession,
) -> MakeRig:
    async def make(transport: str = "robot", config: BotConfig | None = None, public_url: str | None = None) -> Rig:
        assert fake.base_url is not None
        env = {
            "WECOM_CORP_ID": SAMPLE_CORP,
            "WECOM_APP_SECRET": APP_SECRET,
            "WECOM_APP_AGENT_ID": str(AGENT),
            "WECOM_API_BASE": fake.base_url,
        }
        if public_url:
            env["PUBLIC_URL"] = public_url
        if transport == "robot":
            env.update(WECOM_AIBOT_BOT_ID=BOT, WECOM_AIBOT_SECRET=BOT_SECRET, WECOM_AIBOT_WS_URL=fake.aibot.url)
            config = config or sandbox_config
        else:
            config = config or _config(sandbox_config, webhooks=True)
        app = create_app(settings_for(database_url, **env), config, clock=clock, run_workers=False)
        client = await aiohttp_client(app)
        wecom = WeComClient(
            session,
            base_url=fake.base_url,
            corp_id=SAMPLE_CORP,
            secret=APP_SECRET,
            agent_id=AGENT,
            tokens=MemoryTokenStore(),
            clock=lambda: clock.now().timestamp(),
        )
        limiter = MemoryRateLimiter()
        senders = wecom_senders(
            limiter=limiter, clock=clock, app=wecom, webhook=WebhookClient(session, base_url=fake.base_url)
        )
        if transport == "robot":
            connection = client.app[AIBOT_CONNECTION]
            await connection.wait_subscribed()
            senders[AIBOT_WS] = AibotWsSender(connection, limiter, clock)
        worker = OutboxWorker(client.app[STORE], senders, clock, owner="test")
        return Rig(client, fake, clock, config, worker)

    return make


def _text(d: Delivered) -> str:
    if d.msgtype == "markdown":
        return str(d.body["markdown"]["content"])
    return json.dumps(d.body, ensure_ascii=False)


def _assert_masked(messages: list[Delivered]) -> None:
    for d in messages:
        text = _text(d)
        assert PHONE not in text
        assert NAME not in text
        assert "演示街道人民路56号" not in text  # no address either: the claimer gets it privately


# --- at once -------------------------------------------------------------------------------------------------------


async def test_an_urgent_ticket_reaches_its_group_at_once_as_a_card_and_a_mention_over_the_robot(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig("robot")
    answer = await rig.post(urgent("2026112300101"))
    assert answer["unit"] == "SRJG"
    await rig.send()
    card, tagged = rig.group("SRJG")
    assert card.msgtype == "template_card"
    tc = card.body["template_card"]
    assert tc["card_type"] == "button_interaction"
    assert tc["main_title"]["title"].startswith("【紧急】")
    assert [b["text"] for b in tc["button_list"]] == ["接单", "查看详情"]
    assert tc["task_id"].startswith("t@2026112300101@1@p")
    assert "138＊＊＊＊0013" in tc["sub_title_text"]
    # a card cannot @-mention: the line after it does, the emergency team and the head
    assert tagged.msgtype == "markdown"
    assert tagged.body["markdown"]["content"] == "【紧急】新工单 2026112300101\n<@sunlei> <@zhouting> <@chenjing>"
    _assert_masked(rig.group("SRJG"))
    assert rig.group("HW") == []
    assert rig.group("RXB") == []
    assert not [d for d in rig.fake.delivered if d.kind == "app"]  # inside the window: nobody privately
    # the card's buttons work: a click on 接单 is the clicker's /接单
    taken = rig.client.app[AIBOT_CONNECTION].frames_taken
    await rig.fake.aibot.push_event(
        BOT, "template_card_event", userid="zhouting", chatid=CHATS["SRJG"], event_key=tc["button_list"][0]["key"],
        task_id=tc["task_id"],
    )  # fmt: skip
    await rig.client.app[AIBOT_CONNECTION].wait_taken(taken + 1)
    await rig.client.app[WECOM_INBOUND].drain()
    ticket = (await rig.service.get("2026112300101")).ticket
    assert (ticket.state, ticket.handler_userid) == (TicketState.CLAIMED, "zhouting")


async def test_an_urgent_ticket_reaches_a_webhook_group_as_markdown_with_mentions(make_rig: MakeRig) -> None:
    rig = await make_rig("webhook")
    await rig.post(urgent("2026112300102", category="环卫", title=None))
    await rig.send()
    [push] = rig.group("HW")
    assert push.msgtype == "markdown"
    text = push.body["markdown"]["content"]
    assert text.startswith("**【紧急】新工单 2026112300102**")
    assert "138＊＊＊＊0013" in text
    assert "类别：环卫" in text
    assert "承办单位：环卫所" in text
    assert "下一时限：" in text
    assert "/接单 2026112300102" in text
    assert text.endswith("<@wuhao> <@huangqiang>")
    _assert_masked([push])
    assert rig.group("SRJG") == []


async def test_with_the_boards_address_a_push_links_to_the_tickets_page(make_rig: MakeRig) -> None:
    rig = await make_rig("robot", public_url="https://hotline.example.gov.cn")
    await rig.post(urgent("2026112300111"))
    await rig.send()
    card = next(d for d in rig.group("SRJG") if d.msgtype == "template_card")
    rows = card.body["template_card"]["horizontal_content_list"]
    assert rows[-1] == {
        "keyname": "看板",
        "value": "打开工单页",
        "type": 1,
        "url": "https://hotline.example.gov.cn/board/ticket/2026112300111",
    }
    hooks = await make_rig("webhook", public_url="https://hotline.example.gov.cn")
    await hooks.post(urgent("2026112300112"))
    await hooks.send()
    pushed = [_text(d) for d in hooks.group("SRJG") if "2026112300112" in _text(d)]
    assert any("[在看板中打开](https://hotline.example.gov.cn/board/ticket/2026112300112)" in t for t in pushed)


async def test_the_same_hand_over_retried_pushes_once(make_rig: MakeRig) -> None:
    rig = await make_rig("webhook")
    data = urgent("2026112300103")
    await rig.post(data)
    await rig.post(data)  # the platform's retry: unchanged
    await rig.post({"tickets": [data, data]})  # and again in a batch, twice
    await asyncio.gather(*(rig.post(data) for _ in range(3)))  # and side by side
    await rig.post({**data, "content": data["content"] + "（补充）"})  # an update of the text: not news to the group
    await rig.send()
    assert len(rig.group("SRJG")) == 1


async def test_a_warning_ticket_goes_to_the_group_and_privately_to_the_head_and_deputies(make_rig: MakeRig) -> None:
    rig = await make_rig("robot")
    no = "2026112300104"
    await rig.post(regular(no))  # regular: into the digest, nothing at once
    await rig.send()
    assert rig.group("SRJG") == []
    now = rig.clock.now()
    await rig.service.act(no, ActionRequest(action=Action.CLAIM, actor="zhouting", at=now))
    await rig.service.act(no, ActionRequest(action=Action.SUBMIT, actor="zhouting", at=now, note="已清理"))
    rig.clock.advance(hours=2)
    answer = await rig.event(no, {"event_id": "v1", "type": "visit_result", "result": "不满意"})
    assert answer["state"] == "warning"
    await rig.event(no, {"event_id": "v1", "type": "visit_result", "result": "不满意"})  # the platform's retry
    await rig.send()
    card, tagged = rig.group("SRJG")
    tc = card.body["template_card"]
    assert tc["task_id"].startswith(f"t@{no}@2@p")  # the re-handling cycle
    assert tc["sub_title_text"].startswith("回访不满意，已转为预警工单，请再次处置")
    assert [b["text"] for b in tc["button_list"]] == ["已到场", "查看详情"]
    assert tagged.body["markdown"]["content"] == f"【预警】工单 {no} 回访不满意，请再次处置\n<@zhouting> <@chenjing>"
    [to_head], [to_deputy] = rig.private("chenjing"), rig.private("sunlei")
    assert to_head.msgtype == to_deputy.msgtype == "markdown"
    assert to_head.body["markdown"]["content"].startswith(f"**【预警】工单 {no} 回访不满意，请再次处置**")
    _assert_masked([card, tagged, to_head, to_deputy])
    assert rig.private("zhouting") == []


async def test_a_warning_ticket_brings_the_visits_note_and_is_announced_in_the_heads_group(
    make_rig: MakeRig, sandbox_config: BotConfig
) -> None:
    rig = await make_rig("webhook", _config(sandbox_config, webhooks=True, heads=True))
    no = "2026112300105"
    await rig.post(urgent(no))
    now = rig.clock.now()
    await rig.service.act(no, ActionRequest(action=Action.CLAIM, actor="zhouting", at=now))
    await rig.service.act(no, ActionRequest(action=Action.SUBMIT, actor="zhouting", at=now, note="已清理"))
    await rig.send()
    assert rig.group("HEADS") == []  # a new ticket is the unit's business only
    visit = {"result": "不满意", "solved": "未解决", "note": f"{NAME}说店招仍未拆除，电话{PHONE}"}
    assert (await rig.event(no, {"event_id": "v1", "type": "visit_result", **visit}))["state"] == "warning"
    bad = await post_json(
        rig.client, rig.clock, f"/api/tickets/{no}/events", {"event_id": "v2", "type": "cancel", "solved": "solved"}
    )
    assert bad.status == 422
    await rig.send()
    [*_, warned] = rig.group("SRJG")
    text = warned.body["markdown"]["content"]
    assert text.startswith(
        f"**【预警】工单 {no} 回访不满意，请再次处置**\n回访不满意，已转为预警工单，请再次处置\n回访意见："
    )
    assert "店招仍未拆除" in text
    [announced] = rig.group("HEADS")
    assert announced.body["markdown"]["content"].startswith(f"**【预警】工单 {no} 回访不满意，请再次处置**")
    assert announced.body["markdown"]["content"].endswith("<@chenjing> <@sunlei>")
    _assert_masked([warned, announced])
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    ticket = (await (await rig.client.get(f"/api/tickets/{no}", headers=auth)).json())["ticket"]
    assert (ticket["solved"], ticket["visit_solved"]) == ("solved", "unsolved")
    assert PHONE not in ticket["visit_note"]


# --- outside the service window ------------------------------------------------------------------------------------


async def test_a_push_held_for_the_morning_is_void_once_its_ticket_moved_on(
    make_rig: MakeRig, sandbox_config: BotConfig
) -> None:
    rig = await make_rig("webhook", _config(sandbox_config, webhooks=True, rules={"regular": {"mode": "at_once"}}))
    rig.clock.set(MONDAY.replace(hour=3))  # outside the window: routine pushes wait for 07:00
    claimed, updated, moved = "2026112300107", "2026112300108", "2026112300109"
    for no in (claimed, updated, moved):
        await rig.post(regular(no))
    now = rig.clock.now()
    await rig.service.act(claimed, ActionRequest(action=Action.CLAIM, actor="zhouting", at=now))
    await rig.post(regular(updated, content="路口流动摊贩占道经营，夜间仍在"))  # the platform's update: still unclaimed
    await rig.service.act(moved, ActionRequest(action=Action.REDISPATCH, actor="zhangwei", at=now, unit="HW"))
    rig.clock.set(MONDAY.replace(hour=7, minute=1))
    await rig.send()
    srjg = [d.body["markdown"]["content"] for d in rig.group("SRJG")]
    heads = [t.split("\n", 1)[0] for t in srjg]
    # no 待接单 push for a ticket already claimed, nor for one sent elsewhere; an update leaves the push due, and
    # the unit a ticket left hears where it went
    assert heads == [f"**【常规】新工单 {updated}**", f"**工单 {moved}（常规）已改派至「环卫所」**"]
    assert any(moved in d.body["markdown"]["content"] for d in rig.group("HW"))
    async with rig.client.app[STORE].reading() as conn:
        void = (await conn.execute(select(outbox.c.last_error).where(outbox.c.status == "void"))).scalars().all()
    assert sorted(void) == ["superseded: claim", "superseded: redispatch"]


async def test_a_warning_at_night_does_not_wait_behind_the_tickets_routine_push(
    make_rig: MakeRig, sandbox_config: BotConfig
) -> None:
    rig = await make_rig("webhook", _config(sandbox_config, webhooks=True, rules={"regular": {"mode": "at_once"}}))
    rig.clock.set(MONDAY.replace(hour=3))  # outside the window: a routine push waits for 07:00
    no = "2026112300106"
    await rig.post(regular(no))
    now = rig.clock.now()
    await rig.service.act(no, ActionRequest(action=Action.CLAIM, actor="zhouting", at=now))
    await rig.service.act(no, ActionRequest(action=Action.SUBMIT, actor="zhouting", at=now, note="已清理"))
    await rig.event(no, {"event_id": "v1", "type": "visit_result", "result": "不满意"})
    await rig.send()
    [warned] = rig.group("SRJG")  # the urgent warning goes at once, in a lane of its own
    assert warned.body["markdown"]["content"].startswith(f"**【预警】工单 {no} 回访不满意")
    rig.clock.set(MONDAY.replace(hour=7, minute=1))
    await rig.send()
    assert rig.group("SRJG") == [warned]  # the routine 待接单 push was void once the ticket was claimed


async def test_at_night_an_urgent_ticket_goes_to_the_group_and_the_duty_officer_and_routine_waits_for_morning(
    make_rig: MakeRig, sandbox_config: BotConfig
) -> None:
    rig = await make_rig("webhook", _config(sandbox_config, webhooks=True, rules={"regular": {"mode": "at_once"}}))
    rig.clock.set(MONDAY.replace(hour=23, minute=10))  # Monday night: quiet hours; zhaomin is on duty
    await rig.post(urgent("2026112300105", category="环卫"))
    await rig.post(regular("2026112300106", category="环卫"))  # at once by this config, but routine: waits
    await rig.send()
    [push] = rig.group("HW")
    assert "2026112300105" in push.body["markdown"]["content"]
    [duty] = rig.private("zhaomin")
    text = duty.body["markdown"]["content"]
    assert text.startswith("**【值班提醒】【紧急】新工单 2026112300105**")
    assert "环卫所" in text
    _assert_masked([push, duty])
    [waiting] = [r for r in await rig.pending() if "2026112300106" in r["idempotency_key"]]
    assert waiting["next_attempt_at"] == MONDAY.replace(day=24, hour=7)  # quiet hours end
    rig.clock.set(MONDAY.replace(day=24, hour=6, minute=59))
    await rig.send()
    assert len(rig.group("HW")) == 1
    rig.clock.set(MONDAY.replace(day=24, hour=7))
    await rig.send()
    assert [d.body["markdown"]["content"].split("\n")[0] for d in rig.group("HW")] == [
        "**【紧急】新工单 2026112300105**",
        "**【常规】新工单 2026112300106**",
    ]
    assert len(rig.private("zhaomin")) == 1  # the routine one never goes to the duty officer


async def test_nobody_on_duty_tells_the_office_heads(make_rig: MakeRig, sandbox_config: BotConfig) -> None:
    data = sandbox_config.model_dump(by_alias=True)
    data["duty_roster"] = []
    rig = await make_rig("webhook", _config(BotConfig.model_validate(data), webhooks=True))
    rig.clock.set(MONDAY.replace(hour=5))  # before the window opens
    await rig.post(urgent("2026112300107"))
    await rig.send()
    assert len(rig.group("SRJG")) == 1
    assert len(rig.private("zhangwei")) == 1  # the office unit's head


# --- re-dispatch ---------------------------------------------------------------------------------------------------


async def test_a_redispatch_pushes_to_the_new_unit_and_tells_the_old_one(make_rig: MakeRig) -> None:
    rig = await make_rig("robot")
    no = "2026112300108"
    await rig.post(urgent(no))
    await rig.service.act(no, ActionRequest(action=Action.CLAIM, actor="zhouting", at=rig.clock.now()))
    await rig.send()
    assert len(rig.group("SRJG")) == 2
    rig.clock.advance(minutes=30)
    await rig.event(no, {"event_id": "r1", "type": "redispatch", "unit": "HW"})
    await rig.event(no, {"event_id": "r1", "type": "redispatch", "unit": "HW"})  # the platform's retry
    await rig.send()
    card, tagged = rig.group("HW")
    tc = card.body["template_card"]
    assert tc["task_id"].startswith(f"t@{no}@2@p")
    assert tc["sub_title_text"].startswith("由市容景观所改派至本单位")
    assert tagged.body["markdown"]["content"] == f"【紧急】改派工单 {no}（原：市容景观所）\n<@wuhao> <@huangqiang>"
    moved = rig.group("SRJG")[2:]
    assert len(moved) == 1
    text = moved[0].body["markdown"]["content"]
    assert text.startswith(f"**工单 {no}（紧急）已改派至「环卫所」**")
    assert "卡片已失效" in text
    assert text.endswith("<@zhouting>")
    # the stale card in the old group: a click is refused, nothing changes
    taken = rig.client.app[AIBOT_CONNECTION].frames_taken
    await rig.fake.aibot.push_event(
        BOT, "template_card_event", userid="sunlei", chatid=CHATS["SRJG"], event_key=f"claim:{no}",
        task_id=rig.group("SRJG")[0].body["template_card"]["task_id"],
    )  # fmt: skip
    await rig.client.app[AIBOT_CONNECTION].wait_taken(taken + 1)
    await rig.client.app[WECOM_INBOUND].drain()
    ticket = (await rig.service.get(no)).ticket
    assert (ticket.unit_code, ticket.state, ticket.handler_userid) == ("HW", TicketState.DISPATCHED, None)


async def test_an_assignment_by_the_center_lead_pushes_to_the_unit_it_decides(make_rig: MakeRig) -> None:
    rig = await make_rig("webhook")
    no = "2026112300109"
    await rig.post(urgent(no))
    now = rig.clock.now()
    await rig.service.act(
        no, ActionRequest(action=Action.REQUEST_RETURN, actor="chenjing", at=now, note="不归我们管", unit="HW")
    )
    await rig.service.act(no, ActionRequest(action=Action.APPROVE_RETURN, actor="zhangwei", at=now))
    await rig.service.act(no, ActionRequest(action=Action.REDISPATCH, actor="zhangwei", at=now, unit="HW"))
    await rig.service.act(
        no, ActionRequest(action=Action.REQUEST_RETURN, actor="huangqiang", at=now, note="也不归我们", unit="SRJG")
    )
    await rig.service.act(no, ActionRequest(action=Action.APPROVE_RETURN, actor="zhangwei", at=now))
    await rig.service.act(no, ActionRequest(action=Action.ASSIGN, actor="lilei", at=now, unit="RXB"))
    await rig.send()
    # each unit is told the office agreed to its return, then where the ticket went; the office's group had the
    # reviews and the call for 签派 (tests/services/test_returns.py), then the ticket itself
    texts = [d.body["markdown"]["content"] for d in rig.group("SRJG")[1:]]
    assert sorted("同意退单" in t for t in texts) == [False, True]
    assert any("改派至「环卫所」" in t for t in texts)
    [pushed, *texts] = [d.body["markdown"]["content"] for d in rig.group("HW")]
    assert pushed.startswith(f"**【紧急】改派工单 {no}（原：市容景观所）**")
    assert len(texts) == 2
    assert any("同意退单" in t and "需由中心领导签派" in t for t in texts)
    assert any("签派至「热线办」" in t for t in texts)
    office = [d.body["markdown"]["content"] for d in rig.group("RXB")]
    assert any(t.startswith(f"**【紧急】签派工单 {no}（原：环卫所）**") for t in office)
    assert any(t.startswith(f"**工单 {no} 已由 李雷 签派至热线办**") for t in office)


# --- the digest ----------------------------------------------------------------------------------------------------


async def test_regular_tickets_are_gathered_into_one_digest_per_unit_and_period(
    make_rig: MakeRig, sandbox_config: BotConfig
) -> None:
    rig = await make_rig("robot", _config(sandbox_config, three_twos=False))
    for i in range(3):
        await rig.post(regular(f"20261123002{i:02d}"))
    await rig.post(regular("2026112300210", category="环卫"))
    await rig.post(regular("2026112300211"))
    await rig.service.act(
        "2026112300211", ActionRequest(action=Action.CLAIM, actor="zhouting", at=rig.clock.now())
    )  # taken already
    await rig.send()
    assert rig.group("SRJG") == rig.group("HW") == []
    # queued at 09:00: the period that began at 09:07 sends them
    rig.clock.set(MONDAY.replace(minute=5))
    assert await rig.pusher.flush() == 0
    rig.clock.set(MONDAY.replace(minute=8))
    assert await rig.pusher.flush() == 2
    assert await rig.pusher.flush() == 0  # once per unit and period
    await rig.send()
    [digest] = rig.group("SRJG")
    text = digest.body["markdown"]["content"]
    assert text.startswith("**【新工单汇总】市容景观所 3 件待接单**")
    assert [line.split(" ")[0] for line in text.split("\n")[1:4]] == ["1.", "2.", "3."]
    assert "2026112300200（常规）" in text
    assert "2026112300211" not in text
    assert "接单 11-24 09:00" in text
    _assert_masked([digest])
    # one waiting ticket: its card instead of a list
    [card] = rig.group("HW")  # the regular rule mentions nobody: no line after it
    assert card.body["template_card"]["task_id"].startswith("t@2026112300210@1@d")
    async with rig.client.app[STORE].reading() as conn:
        rows = [dict(r) for r in (await conn.execute(select(digest_items).order_by(digest_items.c.id))).mappings()]
    assert [r["digest_key"] for r in rows] == [
        "digest:SRJG:202611230907", "digest:SRJG:202611230907", "digest:SRJG:202611230907",
        "digest:HW:202611230907", None,
    ]  # fmt: skip
    # a ticket queued after the period began waits for the next one
    rig.clock.set(MONDAY.replace(minute=20))
    await rig.post(regular("2026112300212"))
    rig.clock.set(MONDAY.replace(minute=36))
    assert await rig.pusher.flush() == 0
    rig.clock.set(MONDAY.replace(minute=37))
    assert await rig.pusher.flush() == 1


async def test_a_digest_waits_for_the_service_window_and_a_late_commit_for_the_next_period(
    make_rig: MakeRig, sandbox_config: BotConfig
) -> None:
    rig = await make_rig("webhook", _config(sandbox_config, webhooks=True, three_twos=False))
    rig.clock.set(MONDAY.replace(hour=22, minute=30))  # quiet hours
    await rig.post(regular("2026112300220"))
    await rig.post(regular("2026112300221"))
    for hour, minute in ((23, 10), (23, 40), (3, 0), (6, 40)):
        day = 23 if hour >= 22 else 24
        rig.clock.set(MONDAY.replace(day=day, hour=hour, minute=minute))
        assert await rig.pusher.flush() == 0, (hour, minute)
    rig.clock.set(MONDAY.replace(day=24, hour=7, minute=0))  # quiet hours over: the 06:37 period's digest
    assert await rig.pusher.flush() == 1
    await rig.send()
    [digest] = rig.group("SRJG")
    assert "2 件待接单" in digest.body["markdown"]["content"]
    # a ticket queued in the 06:37 period whose transaction committed only after that period's digest went out
    hooks = list(rig.service.hooks)
    rig.service.hooks.clear()
    await rig.post(regular("2026112300222"))
    rig.service.hooks.extend(hooks)
    async with rig.client.app[STORE].transaction() as conn:
        ticket_id = (await rig.service.get("2026112300222")).ticket.id
        await conn.execute(
            digest_items.insert().values(
                ticket_id=ticket_id, ticket_no="2026112300222", cycle=1, unit_code="SRJG",
                queued_at=MONDAY.replace(day=24, hour=6, minute=50),
            )
        )  # fmt: skip
    rig.clock.set(MONDAY.replace(day=24, hour=7, minute=1))
    assert await rig.pusher.flush() == 0  # its period's digest went out: it waits for the next, not marked as sent
    rig.clock.set(MONDAY.replace(day=24, hour=7, minute=7))
    assert await rig.pusher.flush() == 1
    await rig.send()
    assert rig.group("SRJG")[-1].body["markdown"]["content"].startswith("**【常规】新工单 2026112300222**")


async def test_a_regular_ticket_due_before_its_digest_is_pushed_at_once(make_rig: MakeRig) -> None:
    rig = await make_rig("webhook")  # the sandbox's 三个二: 市容景观 tickets are to be contacted within 20 minutes
    await rig.post(regular("2026112300223"))  # 09:00: due 09:20, the 09:07 digest is in time
    rig.clock.set(MONDAY.replace(minute=10))
    await rig.post(regular("2026112300224"))  # 09:10: due 09:30, the next digest (09:37) would be late
    await rig.send()
    [push] = rig.group("SRJG")
    text = push.body["markdown"]["content"]
    assert text.startswith("**【常规】新工单 2026112300224**")
    assert "下一时限：20分钟联系 11-23 09:30" in text
    assert await rig.pusher.flush() == 1
    await rig.send()
    assert rig.group("SRJG")[-1].body["markdown"]["content"].startswith("**【常规】新工单 2026112300223**")


def _engine(rig: Rig) -> DeadlineEngine:
    """The deadline engine as the app wires it (the rig runs no workers of the app's own)."""
    app = rig.client.app
    return DeadlineEngine(
        app[STORE],
        app[CONFIG],
        app[CALENDAR],
        app[CLOCK],
        duty=app[DUTY],
        rows=EngineRows(app[CONFIG], push_channels(app[SETTINGS])),
    )


@pytest.mark.parametrize("transport", ["webhook", "robot"])
async def test_a_regular_ticket_whose_first_reminder_comes_before_its_digest_is_pushed_at_once(
    make_rig: MakeRig, transport: str
) -> None:
    """The unit is told of a ticket before it is reminded of it: 三个二's 20 minutes to contact, handed over at
    08:54, are due at 09:14, after the 09:07 digest, but their first reminder (at half the time, 09:04) is not."""
    rig = await make_rig(transport)
    rig.clock.set(MONDAY.replace(hour=8, minute=54))
    no = "2026112300225"
    await rig.post(regular(no))
    await rig.send()
    pushed = [d for d in rig.group("SRJG") if no in _text(d)]
    assert pushed, "the push must go at once, not wait for the 09:07 digest"
    assert "11-23 09:14" in _text(pushed[0])
    told = len(rig.group("SRJG"))
    rig.clock.set(MONDAY.replace(hour=9, minute=4))  # the first reminder
    assert (await _engine(rig).tick()).messages
    await rig.send()
    [reminder] = rig.group("SRJG")[told:]
    assert "【时限提醒】" in _text(reminder)
    assert no in _text(reminder)
    rig.clock.set(MONDAY.replace(hour=9, minute=7))
    assert await rig.pusher.flush() == 0  # nothing waits for the digest: it went at once


# --- imports -------------------------------------------------------------------------------------------------------


async def test_an_import_of_history_pushes_nothing_and_a_recent_one_is_capped(
    make_rig: MakeRig, sandbox_config: BotConfig, tmp_path: Path
) -> None:
    config = _config(sandbox_config, webhooks=True, three_twos=False, **{"import": {"at_once_max": 3}})
    rig = await make_rig("webhook", config)
    now = rig.clock.now()
    rows = [["工单编号", "诉求内容", "紧急程度", "诉求类别", "派单时间", "联系电话"]]
    for i in range(40):  # last week's: history
        rows.append(
            [
                f"20261116{i:05d}",
                f"历史工单 {i}",
                "紧急",
                "市容景观",
                (now - timedelta(days=7)).strftime("%Y-%m-%d %H:%M"),
                PHONE,
            ]
        )
    for i in range(5):  # no 派单时间: taken as history too
        rows.append([f"20261100{i:05d}", f"无派单时间 {i}", "紧急", "市容景观", "", PHONE])
    for i in range(6):  # this morning's urgent ones: 3 at once, 3 into the digest
        rows.append(
            [
                f"20261123{i:05d}",
                f"今日紧急 {i}",
                "紧急",
                "市容景观",
                (now - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M"),
                PHONE,
            ]
        )
    for i in range(2):  # this morning's regular ones: the digest
        rows.append(
            [
                f"20261123{i + 50:05d}",
                f"今日常规 {i}",
                "常规",
                "环卫",
                (now - timedelta(hours=2)).strftime("%Y-%m-%d %H:%M"),
                PHONE,
            ]
        )
    path = tmp_path / "export.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f).writerows(rows)
    report = await import_file(path, rig.service, config, progress=False)
    assert (report.created, report.errors) == (53, [])
    await rig.send()
    pushed = rig.group("SRJG")
    assert [d.body["markdown"]["content"].split("\n")[0] for d in pushed] == [
        f"**【紧急】新工单 20261123{i:05d}**" for i in range(3)
    ]
    assert rig.group("HW") == []
    # importing it again changes nothing and pushes nothing
    await import_file(path, rig.service, config, progress=False)
    rig.clock.advance(minutes=10)  # 09:10: the 09:07 period
    assert await rig.pusher.flush() == 2
    await rig.send()
    assert "3 件待接单" in rig.group("SRJG")[-1].body["markdown"]["content"]
    assert "2 件待接单" in rig.group("HW")[-1].body["markdown"]["content"]
    assert len(rig.group("SRJG")) == 4
    assert len(rig.group("HW")) == 1


# --- a crash between commit and send -------------------------------------------------------------------------------


async def test_a_push_committed_before_a_crash_is_sent_by_the_next_process(
    aiohttp_client: Callable[..., Awaitable[Client]],
    database_url: str,
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    clock: FrozenClock,
    fake: WatchedWeCom,
) -> None:
    assert fake.base_url is not None
    settings = settings_for(database_url, WECOM_API_BASE=fake.base_url)
    config = _config(sandbox_config, webhooks=True)
    first = await aiohttp_client(create_app(settings, config, clock=clock, run_workers=False))  # sends nothing
    rig = Rig(first, fake, clock, config, OutboxWorker(first.app[STORE], {}, clock, owner="none"))
    await rig.post(urgent("2026112300110"))  # 201: the push is committed with the ticket
    await first.close()  # the process is gone before anything was sent
    assert fake.delivered == []
    fake.arrived.clear()
    second = await aiohttp_client(create_app(settings, config, clock=clock))  # with its outbox worker
    assert OUTBOX in second.app
    await asyncio.wait_for(fake.arrived.wait(), timeout=30)
    [push] = [d for d in fake.delivered if d.to.get("webhook_key") == KEYS["SRJG"]]
    assert "2026112300110" in push.body["markdown"]["content"]


# --- the digest job ------------------------------------------------------------------------------------------------


async def test_the_digest_is_flushed_by_a_scheduled_job_in_the_leading_process_only(
    aiohttp_client: Callable[..., Awaitable[Client]],
    database_url: str,
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import bot.app.scheduler

    monkeypatch.setattr(
        bot.app.scheduler, "DIGEST_CHECK", 0.05
    )  # the job's interval: its timer is the scheduler's, not ours
    flushed: dict[str, asyncio.Event] = {}

    async def flush(self: Pusher, now: datetime | None = None) -> int:
        flushed[self.config.office.name].set()
        return 0

    monkeypatch.setattr(Pusher, "flush", flush)
    settings = settings_for(database_url)
    apps = []
    for name in ("一号", "二号"):
        config = sandbox_config.model_copy(update={"office": sandbox_config.office.model_copy(update={"name": name})})
        flushed[name] = asyncio.Event()
        apps.append(await aiohttp_client(create_app(settings, config, clock=clock)))
    done, _ = await asyncio.wait(
        [asyncio.ensure_future(e.wait()) for e in flushed.values()], timeout=30, return_when=asyncio.FIRST_COMPLETED
    )
    assert done
    if database_url.startswith("sqlite"):
        return  # each SQLite process is its own leader (one process per database file)
    from bot.web.keys import DEADLINE_LEADER  # the digests are flushed where the engine runs

    leaders = [a.app[DEADLINE_LEADER] for a in apps]
    leading = [i for i, leader in enumerate(leaders) if leader.leading.is_set()]
    assert len(leading) == 1  # the other stands by: the PostgreSQL advisory lock is the leader's
    first, other = leading[0], 1 - leading[0]
    names = ["一号", "二号"]
    assert flushed[names[first]].is_set()
    assert not flushed[names[other]].is_set()
    leaders[other].retry = 0.05
    await apps[first].close()  # the leader goes: the other takes over at its next try
    await asyncio.wait_for(flushed[names[other]].wait(), timeout=30)
    assert leaders[other].leading.is_set()
