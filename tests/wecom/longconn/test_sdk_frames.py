"""The bot's own long-connection client against frames as Tencent's SDKs take them from a server: answers that echo
their request's ``cmd`` (matched by req_id all the same) and a ``disconnected_event`` without ``msgtype`` (a kick
all the same). The fake serves the first with ``answers_carry_cmd``; the second is pushed as a raw frame."""

from __future__ import annotations

import asyncio
import json

import pytest

from bot.domain.clock import FrozenClock
from bot.sandbox.fake import FakeWeCom
from bot.services.ratelimit import MemoryRateLimiter
from notifiers.aibot_ws import AIBOT_WS, AibotWsSender
from notifiers.outbox import OutboundMessage
from tests.wecom.conftest import Sleeper
from tests.wecom.longconn.conftest import BOT, Connect, RecordingInbox

CARD = {
    "card_type": "button_interaction",
    "main_title": {"title": "工单 2026112300123"},
    "task_id": "ticket-123",
    "button_list": [{"text": "接单", "key": "accept"}],
}


async def test_answers_that_carry_their_cmd_are_matched_by_req_id(
    fake: FakeWeCom, connect: Connect, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    fake.aibot.answers_carry_cmd = True
    connection = connect(heartbeat_interval=0.02, subscribe_timeout=1.0)
    async with asyncio.timeout(5):
        await connection.wait_subscribed()
        await fake.aibot.wait_until(lambda: fake.aibot.pings[BOT] >= 3)
    assert connection.subscribed
    assert fake.aibot.subscribes[BOT] == 1  # the pings' answers count: never taken for dead

    asked = await fake.aibot.push_message(BOT, "进度", userid="wuhao", chatid="grp01")
    clicked = await fake.aibot.push_event(
        BOT, "template_card_event", userid="wuhao", chatid="grp01", event_key="accept", task_id="ticket-123"
    )
    answer = await connection.respond(
        asked, {"msgtype": "stream", "stream": {"id": "s1", "finish": True, "content": "好"}}
    )
    assert (answer["cmd"], answer["headers"]["req_id"], answer["errcode"]) == ("aibot_respond_msg", asked, 0)
    await connection.update_card(clicked, {"template_card": {**CARD, "main_title": {"title": "已接单"}}})
    sender = AibotWsSender(connection, MemoryRateLimiter(), clock)
    payload = {"chatid": "grp01", "msgtype": "markdown", "markdown": {"content": "**新工单** 2026112300124"}}
    await sender.send(
        OutboundMessage(id=1, channel=AIBOT_WS, destination="grp01", idempotency_key="k1", payload=payload, attempts=0)
    )

    assert [(d.kind, d.msgtype) for d in fake.aibot.deliveries(BOT)] == [
        ("aibot_respond", "stream"),
        ("aibot_update_card", "template_card"),
        ("aibot_send", "markdown"),
    ]
    assert "unknown cmd" not in caplog.text


async def test_a_disconnected_event_without_msgtype_is_a_kick(
    fake: FakeWeCom, connect: Connect, sleeper: Sleeper, inbox: RecordingInbox, caplog: pytest.LogCaptureFixture
) -> None:
    connection = connect()
    await connection.wait_subscribed()
    kick = {
        "cmd": "aibot_event_callback",
        "headers": {"req_id": "kick-1"},
        "body": {"aibotid": BOT, "event": {"eventtype": "disconnected_event"}},
    }
    await fake.aibot.push_raw(BOT, json.dumps(kick))
    async with asyncio.timeout(5):
        assert await connection.wait_for_state("kicked") == "kicked"
        await fake.aibot.wait_until(lambda: fake.aibot.connections == [])  # the bot closed its side
    assert sleeper.delays == []  # no reconnect that would kick the newer connection in turn
    assert fake.aibot.subscribes[BOT] == 1
    assert inbox.calls == []  # the transport's business, not the inbox's
    assert "another connection subscribed" in caplog.text
