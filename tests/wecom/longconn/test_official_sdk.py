"""Tencent's official Python SDK (``wecom-aibot-python-sdk`` 1.0.2, package ``aibot``) against the fake's long
connection: what the official client sends must be what the fake takes, and what the fake sends must be what the
official client reads. A change to the fake that the SDK disagrees with fails here.

How the SDK is pointed at the fake: ``WSClientOptions.ws_url`` takes the fake's ``ws://`` URL. The SDK hands its
module-level ``aibot.ws._SSL_CONTEXT`` (certifi's CAs) to ``websockets.connect`` for every URL and has no option for
it, and websockets refuses an SSL context for a ``ws://`` URL, so the ``plain_ws`` fixture sets that attribute to
None for the loopback endpoint. The SDK's heartbeat is a 30 s timer: here its interval is an hour and its heartbeat
step (``_send_heartbeat``, the coroutine the timer calls) is driven by hand. Nothing sleeps: each step waits for
what the SDK emitted, logged or the fake recorded.

SDK 1.0.2 does not reconnect after a connection the server closed normally (its receive loop ends without an
error), and knows nothing of ``disconnected_event`` beyond emitting it; the tests assert what it does, not what a
later SDK would.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

import pytest
from aibot import WSClient, WSClientOptions
from aibot import ws as sdk_ws

from bot.domain.clock import FrozenClock
from bot.sandbox.fake import FakeWeCom
from tests.wecom.longconn.conftest import BOT, SECRET

EVENTS = (
    "authenticated",
    "error",
    "message.text",
    "event.enter_chat",
    "event.template_card_event",
    "event.disconnected_event",
)
CARD = {
    "card_type": "button_interaction",
    "main_title": {"title": "工单 2026112300123", "desc": "幸福里小区 路灯不亮"},
    "task_id": "ticket-123",
    "button_list": [{"text": "接单", "style": 1, "key": "accept"}, {"text": "退回", "style": 2, "key": "return"}],
}
NOTICE = {
    "card_type": "text_notice",
    "main_title": {"title": "新工单 2026112300124"},
    "card_action": {"type": 1, "url": "https://hotline.example/t/2026112300124"},
}


class Changes:
    """Something to wait on without sleeping: :meth:`notify` wakes every :meth:`until`."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()

    def notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def until(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(5):
            while not predicate():
                await self._changed.wait()


class SdkLog(Changes):
    """The SDK's ``logger`` option: keeps every line."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[str, str]] = []

    def _add(self, level: str, message: str, *args: object) -> None:
        self.lines.append((level, message))
        self.notify()

    def debug(self, message: str, *args: object) -> None:
        self._add("debug", message)

    def info(self, message: str, *args: object) -> None:
        self._add("info", message)

    def warn(self, message: str, *args: object) -> None:
        self._add("warn", message)

    def error(self, message: str, *args: object) -> None:
        self._add("error", message)

    def count(self, text: str) -> int:
        return sum(text in message for _, message in self.lines)


class Sdk(Changes):
    """One official client and what it emitted."""

    def __init__(self, url: str, *, secret: str = SECRET) -> None:
        super().__init__()
        self.log = SdkLog()
        options = WSClientOptions(
            bot_id=BOT,
            secret=secret,
            ws_url=url,
            heartbeat_interval=3_600_000,  # ms: never fires in a test; _send_heartbeat is driven by hand
            max_reconnect_attempts=0,
            logger=self.log,
        )
        self.client = WSClient(options)
        self.seen: defaultdict[str, list[Any]] = defaultdict(list)
        for name in EVENTS:
            self.client.on(name, partial(self._record, name))

    def _record(self, name: str, *args: Any) -> None:
        self.seen[name].append(args[0] if args else None)
        self.notify()

    async def next(self, name: str, count: int = 1) -> Any:
        """The ``count``-th emission of event ``name``, once it came."""
        await self.until(lambda: len(self.seen[name]) >= count)
        return self.seen[name][count - 1]


@pytest.fixture(autouse=True)
def plain_ws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sdk_ws, "_SSL_CONTEXT", None)  # see the module docstring


@pytest.fixture
async def start(fake: FakeWeCom) -> AsyncIterator[Callable[..., Any]]:
    """Connects an official client to the fake; every one is disconnected at the end."""
    started: list[Sdk] = []

    async def make(**options: Any) -> Sdk:
        sdk = Sdk(fake.aibot.url, **options)
        started.append(sdk)
        await sdk.client.connect()
        return sdk

    yield make
    for sdk in started:
        sdk.client.disconnect()  # also stops the heartbeat timer of a client whose link the fake closed
    async with asyncio.timeout(5):
        await fake.aibot.wait_until(lambda: fake.aibot.connections == [])


async def test_the_sdk_subscribes_and_receives_a_pushed_message(fake: FakeWeCom, start: Callable[..., Any]) -> None:
    sdk = await start()
    await sdk.next("authenticated")
    link = await fake.aibot.wait_subscribed(BOT)
    [subscribe] = link.received
    assert subscribe["cmd"] == "aibot_subscribe"
    assert subscribe["body"] == {"bot_id": BOT, "secret": SECRET}

    req_id = await fake.aibot.push_message(BOT, "查询 2026112300123", userid="wuhao", chatid="grp01")
    frame = await sdk.next("message.text")
    assert frame["headers"]["req_id"] == req_id
    assert frame["body"]["text"]["content"] == "@HotlineBot 查询 2026112300123"
    assert (frame["body"]["chatid"], frame["body"]["from"]["userid"]) == ("grp01", "wuhao")
    assert sdk.log.count("unknown frame") == 0


async def test_the_sdk_s_replies_are_taken(fake: FakeWeCom, start: Callable[..., Any]) -> None:
    sdk = await start()
    await sdk.next("authenticated")
    await fake.aibot.push_message(BOT, "进度", userid="wuhao", chatid="grp01")
    asked = await sdk.next("message.text")
    client = sdk.client

    ack = await client.reply_stream(asked, "s1", "正在查询", feedback={"id": "fb-1"})
    assert ack["errcode"] == 0
    await client.reply_stream(asked, "s1", "工单 2026112300123 已办结", finish=True)
    await client.reply_template_card(asked, CARD, feedback={"id": "fb-2"})
    await client.reply_stream_with_card(asked, "s2", "处理中", template_card={**CARD, "task_id": "ticket-124"})
    await client.reply_stream_with_card(asked, "s2", "已办结", finish=True)  # the card may come with any reply

    await fake.aibot.push_event(BOT, "enter_chat", userid="lina")
    entered = await sdk.next("event.enter_chat")
    await client.reply_welcome(entered, {"msgtype": "text", "text": {"content": "您好，我是热线助手"}})

    await fake.aibot.push_event(
        BOT, "template_card_event", userid="wuhao", chatid="grp01", event_key="accept", task_id="ticket-123"
    )
    clicked = await sdk.next("event.template_card_event")
    await client.update_template_card(clicked, {**CARD, "main_title": {"title": "已接单"}}, userids=["wuhao"])

    await client.send_message("grp01", {"msgtype": "markdown", "markdown": {"content": "**新工单** 2026112300124"}})
    await client.send_message("lina", {"msgtype": "template_card", "template_card": NOTICE})

    assert [(d.kind, d.to["chatid"], d.msgtype) for d in fake.aibot.deliveries(BOT)] == [
        ("aibot_respond", "grp01", "stream"),
        ("aibot_respond", "grp01", "stream"),
        ("aibot_respond", "grp01", "template_card"),
        ("aibot_respond", "grp01", "stream_with_template_card"),
        ("aibot_respond", "grp01", "stream_with_template_card"),
        ("aibot_welcome", "lina", "text"),
        ("aibot_update_card", "grp01", "template_card"),
        ("aibot_send", "grp01", "markdown"),
        ("aibot_send", "lina", "template_card"),
    ]
    update = fake.aibot.deliveries(BOT)[6]
    assert update.to["userids"] == ["wuhao"]


async def test_what_wecom_does_not_take_is_refused_to_the_sdk_too(
    fake: FakeWeCom, start: Callable[..., Any], clock: FrozenClock
) -> None:
    sdk = await start()
    await sdk.next("authenticated")
    await fake.aibot.push_message(BOT, "进度", userid="wuhao", chatid="grp01")
    asked = await sdk.next("message.text")
    client = sdk.client
    markdown = {"msgtype": "markdown", "markdown": {"content": "收到"}}
    with pytest.raises(RuntimeError, match="errcode=40008"):  # markdown is aibot_send_msg's, not a reply's
        await client.reply(asked, markdown)
    with pytest.raises(RuntimeError, match="errcode=40008"):  # text only as a welcome
        await client.send_message("grp01", {"msgtype": "text", "text": {"content": "x"}})
    with pytest.raises(RuntimeError, match="errcode=42014"):  # an interactive card needs its task_id
        await client.reply_stream_with_card(asked, "s1", "x", template_card={**CARD, "task_id": ""})
    with pytest.raises(RuntimeError, match="errcode=846605"):  # a welcome needs an enter_chat's req_id
        await client.reply_welcome(asked, {"msgtype": "text", "text": {"content": "您好"}})
    await fake.aibot.push_event(BOT, "enter_chat", userid="lina")
    entered = await sdk.next("event.enter_chat")
    clock.advance(seconds=6)
    with pytest.raises(RuntimeError, match="errcode=846605"):  # and within 5 s of it
        await client.reply_welcome(entered, {"msgtype": "text", "text": {"content": "您好"}})
    assert fake.aibot.deliveries(BOT) == []


async def test_a_newer_connection_kicks_the_sdk_with_a_disconnected_event(
    fake: FakeWeCom, start: Callable[..., Any]
) -> None:
    first = await start()
    await first.next("authenticated")
    second = await start()
    await second.next("authenticated")
    kicked = await first.next("event.disconnected_event")
    assert kicked["cmd"] == "aibot_event_callback"
    assert kicked["body"]["event"]["eventtype"] == "disconnected_event"
    assert fake.aibot.kicks[BOT] == 1
    await first.until(lambda: not first.client.is_connected)  # closed by the fake
    await fake.aibot.push_message(BOT, "还在吗", userid="wuhao")
    await second.next("message.text")
    assert first.seen["message.text"] == []


async def test_a_wrong_secret_is_refused_to_the_sdk(fake: FakeWeCom, start: Callable[..., Any]) -> None:
    sdk = await start(secret="not-the-secret")
    error = await sdk.next("error")
    assert "853000" in str(error)
    assert "invalid bot_id or secret" in str(error)
    assert fake.aibot.refusals[BOT] == 1
    await fake.aibot.wait_until(lambda: fake.aibot.connections == [])  # the fake closed the socket
    assert sdk.seen["authenticated"] == []


async def test_the_sdk_s_heartbeats_are_answered_and_missed_answers_end_the_link(
    fake: FakeWeCom, start: Callable[..., Any]
) -> None:
    sdk = await start()
    await sdk.next("authenticated")
    heartbeat = sdk.client._ws_manager._send_heartbeat  # the step the SDK's 30 s timer runs
    for n in (1, 2, 3):  # answered: the SDK's count of missed answers goes back to 0 each time
        await heartbeat()
        await sdk.log.until(lambda n=n: sdk.log.count("Received heartbeat ack") == n)
    assert fake.aibot.pings[BOT] == 3
    assert sdk.client.is_connected

    fake.aibot.omit_acks("ping", times=2)
    await heartbeat()
    await heartbeat()
    await fake.aibot.wait_until(lambda: fake.aibot.pings[BOT] == 5)
    await heartbeat()  # two unanswered: the SDK takes the link for dead and closes it
    await fake.aibot.wait_until(lambda: fake.aibot.connections == [])
    assert sdk.log.count("connection considered dead") == 1
    assert fake.aibot.pings[BOT] == 5
