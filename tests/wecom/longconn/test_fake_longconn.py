"""The fake's long-connection endpoint on its own, with a bare WebSocket client: the frames WeCom sends and the
checks it makes, so the client's tests are tests against WeCom's rules and not against the client's own idea."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from bot.domain.clock import FrozenClock
from bot.sandbox.fake import FakeWeCom
from tests.wecom.longconn.conftest import BOT, SECRET

WS = aiohttp.ClientWebSocketResponse


async def call(ws: WS, cmd: str, req_id: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"cmd": cmd, "headers": {"req_id": req_id}}
    if body is not None:
        frame["body"] = body
    await ws.send_str(json.dumps(frame))
    return await next_frame(ws)


async def next_frame(ws: WS) -> dict[str, Any]:
    message = await ws.receive(timeout=5)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    frame: dict[str, Any] = json.loads(message.data)
    return frame


async def subscribed(session: aiohttp.ClientSession, fake: FakeWeCom) -> WS:
    ws = await session.ws_connect(fake.aibot.url)
    answer = await call(ws, "aibot_subscribe", "sub-1", {"bot_id": BOT, "secret": SECRET})
    assert answer == {"headers": {"req_id": "sub-1"}, "errcode": 0, "errmsg": "ok"}
    return ws


async def test_a_wrong_secret_is_answered_853000_and_the_socket_closed(
    fake: FakeWeCom, session: aiohttp.ClientSession
) -> None:
    ws = await session.ws_connect(fake.aibot.url)
    answer = await call(ws, "aibot_subscribe", "sub-1", {"bot_id": BOT, "secret": "wrong"})
    assert answer["headers"] == {"req_id": "sub-1"}
    assert (answer["errcode"], answer["errmsg"]) == (853000, "invalid bot_id or secret")
    assert (await ws.receive(timeout=5)).type == aiohttp.WSMsgType.CLOSE
    await ws.close()
    unknown = await session.ws_connect(fake.aibot.url)
    assert (await call(unknown, "aibot_subscribe", "s", {"bot_id": "nobody", "secret": SECRET}))["errcode"] == 853000
    await unknown.close()


async def test_a_newer_subscribe_kicks_the_older_connection(fake: FakeWeCom, session: aiohttp.ClientSession) -> None:
    old = await subscribed(session, fake)
    new = await subscribed(session, fake)
    kicked = await next_frame(old)
    assert kicked["cmd"] == "aibot_event_callback"
    assert kicked["body"]["msgtype"] == "event"
    assert kicked["body"]["event"] == {"eventtype": "disconnected_event"}
    assert kicked["body"]["aibotid"] == BOT
    assert kicked["body"]["msgid"]
    assert (await old.receive(timeout=5)).type == aiohttp.WSMsgType.CLOSE
    assert fake.aibot.kicks[BOT] == 1
    pushed = await fake.aibot.push_message(BOT, "hi", userid="wuhao")
    assert (await next_frame(new))["headers"]["req_id"] == pushed
    await old.close()
    await new.close()


async def test_without_pings_the_connection_is_closed(fake: FakeWeCom, session: aiohttp.ClientSession) -> None:
    fake.aibot.heartbeat_timeout = 0.05
    ws = await subscribed(session, fake)
    assert (await ws.receive(timeout=5)).type == aiohttp.WSMsgType.CLOSE
    assert ws.close_code == 1000
    await ws.close()


async def test_pings_are_answered_by_req_id(fake: FakeWeCom, session: aiohttp.ClientSession) -> None:
    ws = await subscribed(session, fake)
    assert await call(ws, "ping", "ping-1") == {"headers": {"req_id": "ping-1"}, "errcode": 0, "errmsg": "ok"}
    assert fake.aibot.pings[BOT] == 1
    await ws.close()


async def test_callback_frames_look_like_wecom_s(fake: FakeWeCom, session: aiohttp.ClientSession) -> None:
    ws = await subscribed(session, fake)
    req_id = await fake.aibot.push_message(BOT, "查询", userid="wuhao", chatid="grp01", robot_name="热线助手")
    frame = await next_frame(ws)
    assert frame["cmd"] == "aibot_msg_callback"
    assert frame["headers"] == {"req_id": req_id}
    body = frame["body"]
    assert body["chattype"] == "group"
    assert body["chatid"] == "grp01"
    assert body["from"] == {"userid": "wuhao"}
    assert body["text"] == {"content": "@热线助手 查询"}
    assert body["response_url"].startswith(fake.base_url or "")
    await fake.aibot.push_event(BOT, "template_card_event", userid="wuhao", event_key="accept", task_id="t-1")
    event = await next_frame(ws)
    assert event["cmd"] == "aibot_event_callback"
    assert event["body"]["event"]["template_card_event"] == {
        "card_type": "button_interaction",
        "event_key": "accept",
        "task_id": "t-1",
    }
    await ws.close()


async def test_replies_need_the_right_req_id_in_time(
    fake: FakeWeCom, session: aiohttp.ClientSession, clock: FrozenClock
) -> None:
    ws = await subscribed(session, fake)
    entered = await fake.aibot.push_event(BOT, "enter_chat", userid="lina")
    await next_frame(ws)
    welcome = {"msgtype": "text", "text": {"content": "您好"}}
    assert (await call(ws, "aibot_respond_welcome_msg", "made-up", welcome))["errcode"] == 846605
    assert (await call(ws, "aibot_respond_msg", entered, {"msgtype": "stream", "stream": {"id": "s", "content": "x"}}))[
        "errcode"
    ] == 846605  # a reply to an event
    clock.advance(seconds=6)
    assert (await call(ws, "aibot_respond_welcome_msg", entered, welcome))["errcode"] == 846605  # over 5 s
    late = await fake.aibot.push_event(BOT, "enter_chat", userid="lina")
    await next_frame(ws)
    assert (await call(ws, "aibot_respond_welcome_msg", late, welcome))["errcode"] == 0
    assert (await call(ws, "aibot_respond_welcome_msg", late, welcome))["errcode"] == 846605  # once
    assert (await call(ws, "aibot_respond_welcome_msg", "x", {"msgtype": "news"}))["errcode"] == 846605
    await ws.close()


async def test_replies_take_what_the_documentation_lists(fake: FakeWeCom, session: aiohttp.ClientSession) -> None:
    ws = await subscribed(session, fake)
    asked = await fake.aibot.push_message(BOT, "进度", userid="wuhao", chatid="grp01")
    await next_frame(ws)
    card = {"card_type": "button_interaction", "task_id": "t-1", "button_list": [{"text": "接单", "key": "accept"}]}
    stream = {"id": "s1", "finish": False, "content": "处理中"}

    async def reply(body: dict[str, Any]) -> int:
        answer = await call(ws, "aibot_respond_msg", asked, body)
        return int(answer["errcode"])

    # what page 101463 and the SDKs' reply methods send
    assert await reply({"msgtype": "stream", "stream": stream}) == 0
    assert await reply({"msgtype": "template_card", "template_card": card}) == 0
    assert await reply({"msgtype": "stream_with_template_card", "stream": stream, "template_card": card}) == 0
    assert await reply({"msgtype": "stream_with_template_card", "stream": {**stream, "finish": True}}) == 0
    assert await reply({"msgtype": "file", "file": {"media_id": "m-1"}}) == 0
    # and nothing else
    assert await reply({"msgtype": "markdown", "markdown": {"content": "x"}}) == 40008
    assert await reply({"msgtype": "text", "text": {"content": "x"}}) == 40008
    assert await reply({"msgtype": "stream_with_template_card", "template_card": card}) == 40058  # no stream
    assert await reply({"msgtype": "stream_with_template_card", "stream": stream, "template_card": "x"}) == 40058
    no_task = {"msgtype": "stream_with_template_card", "stream": stream, "template_card": {**card, "task_id": None}}
    assert await reply(no_task) == 42014
    assert await reply({"msgtype": "stream", "stream": {"content": "no id"}}) == 40058
    assert [d.msgtype for d in fake.aibot.deliveries(BOT)] == [
        "stream",
        "template_card",
        "stream_with_template_card",
        "stream_with_template_card",
        "file",
    ]
    await ws.close()


async def test_answers_echo_the_request_s_cmd_when_told_to(fake: FakeWeCom, session: aiohttp.ClientSession) -> None:
    fake.aibot.answers_carry_cmd = True
    ws = await session.ws_connect(fake.aibot.url)
    answer = await call(ws, "aibot_subscribe", "sub-1", {"bot_id": BOT, "secret": SECRET})
    assert answer == {"cmd": "aibot_subscribe", "headers": {"req_id": "sub-1"}, "errcode": 0, "errmsg": "ok"}
    assert await call(ws, "ping", "p1") == {"cmd": "ping", "headers": {"req_id": "p1"}, "errcode": 0, "errmsg": "ok"}
    await ws.close()


async def test_pushes_are_checked_and_limited_per_chat(fake: FakeWeCom, session: aiohttp.ClientSession) -> None:
    ws = await subscribed(session, fake)
    markdown = {"msgtype": "markdown", "markdown": {"content": "新工单"}}
    assert (await call(ws, "aibot_send_msg", "s0", markdown))["errcode"] == 86201  # no chatid
    assert (await call(ws, "aibot_send_msg", "s1", {"chatid": "g", "msgtype": "text", "text": {"content": "x"}}))[
        "errcode"
    ] == 40008
    assert (await call(ws, "aibot_send_msg", "s2", {"chatid": "g", "msgtype": "markdown", "markdown": {}}))[
        "errcode"
    ] == 44004
    bad_card = {"chatid": "g", "msgtype": "template_card", "template_card": {"card_type": "button_interaction"}}
    assert (await call(ws, "aibot_send_msg", "s3", bad_card))["errcode"] == 42014  # no task_id
    for i in range(20):
        assert (await call(ws, "aibot_send_msg", f"ok{i}", {"chatid": "g", **markdown}))["errcode"] == 0
    assert (await call(ws, "aibot_send_msg", "over", {"chatid": "g", **markdown}))["errcode"] == 45009
    assert (await call(ws, "aibot_send_msg", "other", {"chatid": "h", **markdown}))["errcode"] == 0
    assert len(fake.messages_to(chatid="g")) == 20
    assert (await call(ws, "aibot_whatever", "w", {}))["errcode"] == 40058
    await ws.close()


async def test_nothing_but_subscribe_and_ping_before_subscribing(
    fake: FakeWeCom, session: aiohttp.ClientSession
) -> None:
    ws = await session.ws_connect(fake.aibot.url)
    answer = await call(ws, "aibot_send_msg", "s", {"chatid": "g", "msgtype": "markdown", "markdown": {"content": "x"}})
    assert answer["errcode"] == 40058
    assert fake.delivered == []
    await ws.close()


async def test_faults_on_demand(fake: FakeWeCom, session: aiohttp.ClientSession) -> None:
    fake.aibot.refuse_next(errcode=-1)
    ws = await session.ws_connect(fake.aibot.url)
    assert (await call(ws, "aibot_subscribe", "s", {"bot_id": BOT, "secret": SECRET}))["errcode"] == -1
    await ws.close()
    ws = await subscribed(session, fake)
    fake.aibot.fail_next("ping", -1)
    assert (await call(ws, "ping", "p1"))["errcode"] == -1
    assert (await call(ws, "ping", "p2"))["errcode"] == 0
    await fake.aibot.drop(BOT)
    assert (await ws.receive(timeout=5)).type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    assert fake.aibot.current(BOT) is None
    with pytest.raises(LookupError):
        await fake.aibot.push_message(BOT, "x", userid="wuhao")
    await ws.close()
