"""WeCom callbacks through the real app, on both databases: URL verification, signed messages persisted before the
answer and processed after it, WeCom's retries, every way a callback can be refused, and crash recovery.

The app's callbacks use Tencent's sample credentials (``tests/wecom/test_crypto.py``), so its published request
and ciphertext are answered as WeCom expects; the robot has credentials of its own (receive id ``""``). Tests wait
for processing with ``drain()``, never by sleeping.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot.app import create_app
from bot.domain.clock import TZ, FrozenClock
from bot.domain.events import CardClick, InboundEvent, Sender, TextMessage
from bot.logging import setup_logging
from bot.services.inbox import InboundProcessor
from bot.services.sinks import RecordingSink, inbox_key
from bot.web.keys import STORE, WECOM_INBOUND
from bot.wecom.callbacks import MAX_BODY, WECOM_CALLBACKS
from bot.wecom.crypto import CallbackCrypto
from bot.wecom.parse import AIBOT_SOURCE, APP_SOURCE, parse_aibot_json, parse_app_xml, read_stored
from config.loader import ConfigError
from config.model import BotConfig
from config.settings import Settings
from store import inbox as inbox_repo
from store.core import Store
from store.liveness import Liveness, process_id
from store.models import inbox
from tests.wecom.test_crypto import (
    SAMPLE_CORP,
    SAMPLE_ECHO_PLAIN,
    SAMPLE_ENCRYPT,
    SAMPLE_KEY,
    SAMPLE_PLAIN,
    SAMPLE_POST_NONCE,
    SAMPLE_POST_SIG,
    SAMPLE_POST_TS,
    SAMPLE_TOKEN,
    SAMPLE_VERIFY,
)

Client = TestClient[Any, Any]

ROBOT_TOKEN = "AibotCallbackToken"
ROBOT_KEY = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
WECOM_ENV = {
    "WECOM_CORP_ID": SAMPLE_CORP,
    "WECOM_APP_TOKEN": SAMPLE_TOKEN,
    "WECOM_APP_AES_KEY": SAMPLE_KEY,
    "WECOM_AIBOT_TOKEN": ROBOT_TOKEN,
    "WECOM_AIBOT_AES_KEY": ROBOT_KEY,
}
T0 = 1795395600  # 2026-11-23 09:00 +08:00
APP = CallbackCrypto(SAMPLE_TOKEN, SAMPLE_KEY, SAMPLE_CORP)
ROBOT = CallbackCrypto(ROBOT_TOKEN, ROBOT_KEY, "")


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[Client]],
    database_url: str,
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    clock: FrozenClock,
) -> Client:
    app = create_app(settings_for(database_url, **WECOM_ENV), sandbox_config, clock=clock, run_workers=False)
    return await aiohttp_client(app)


def processor(client: Client) -> InboundProcessor:
    return client.app[WECOM_INBOUND]


def seen(client: Client) -> list[InboundEvent]:
    sink = processor(client).sink
    assert isinstance(sink, RecordingSink)
    return sink.events


async def rows(client_or_store: Client | Store) -> list[dict[str, Any]]:
    store = client_or_store.app[STORE] if isinstance(client_or_store, TestClient) else client_or_store
    async with store.reading() as conn:
        result = await conn.execute(select(inbox).order_by(inbox.c.id))
        return [dict(row) for row in result.mappings()]


# -- building callbacks as WeCom does -----------------------------------------------------------------------------


def query(crypto: CallbackCrypto, encrypt: str, ts: str = str(T0), nonce: str = "1597212914") -> str:
    signature = crypto.signature(ts, nonce, encrypt)
    return f"msg_signature={signature}&timestamp={ts}&nonce={nonce}"


def app_envelope(encrypt: str) -> bytes:
    return (
        f"<xml><ToUserName><![CDATA[{SAMPLE_CORP}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt>"
        "<AgentID><![CDATA[1000002]]></AgentID></xml>"
    ).encode()


def app_xml(**fields: str) -> bytes:
    base = {"ToUserName": SAMPLE_CORP, "FromUserName": "zhangsan", "CreateTime": str(T0), "AgentID": "1000002"}
    body = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in {**base, **fields}.items())
    return f"<xml>{body}</xml>".encode()


async def post_app(client: Client, plain: bytes, crypto: CallbackCrypto = APP) -> Any:
    encrypt = crypto.encrypt(plain)
    return await client.post(f"/wecom/callback?{query(APP, encrypt)}", data=app_envelope(encrypt))


def robot_json(msgtype: str, **fields: Any) -> bytes:
    base: dict[str, Any] = {
        "msgid": "CAIQ16HMjQYY/NGagIOAgAMgq4KM0AI=",
        "aibotid": "AIBOTID",
        "chatid": "wrkSFfCgAAtMQKg4xqDatM5C9IDHFpTw",
        "chattype": "group",
        "from": {"userid": "lisi"},
        "response_url": "https://qyapi.weixin.qq.com/cgi-bin/aibot/response?response_code=RC",
        "msgtype": msgtype,
    }
    return json.dumps({**base, **fields}, ensure_ascii=False).encode()


async def post_robot(client: Client, plain: bytes) -> Any:
    encrypt = ROBOT.encrypt(plain)
    body = json.dumps({"encrypt": encrypt}).encode()
    return await client.post(f"/wecom/aibot?{query(ROBOT, encrypt)}", data=body)


async def refused(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    error = (await response.json())["error"]
    if code is not None:
        assert error["code"] == code
    return dict(error)


# -- URL verification ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("plus", ["%2B", "+"])
async def test_app_url_verification_answers_the_plaintext(client: Client, plus: str) -> None:
    assert "+" in SAMPLE_VERIFY["echostr"]
    echostr = quote(SAMPLE_VERIFY["echostr"], safe="+").replace("+", plus)  # WeCom encodes it; some proxies don't
    q = "&".join(f"{k}={v}" for k, v in {**SAMPLE_VERIFY, "echostr": echostr}.items())
    response = await client.get(f"/wecom/callback?{q}")
    assert response.status == 200
    assert response.content_type == "text/plain"
    assert await response.read() == SAMPLE_ECHO_PLAIN.encode()  # no quotes, no newline
    assert await rows(client) == []


async def test_robot_url_verification_with_a_plus_in_echostr(client: Client) -> None:
    # find a random prefix whose ciphertext has a '+', so the test does not depend on luck
    for i in range(256):
        crypto = CallbackCrypto(ROBOT_TOKEN, ROBOT_KEY, "", random_bytes=lambda n, i=i: bytes([i]) * n)
        echostr = crypto.encrypt(b"6530474387265463913")
        if "+" in echostr:
            break
    assert "+" in echostr
    response = await client.get(f"/wecom/aibot?{query(ROBOT, echostr)}&echostr={quote(echostr, safe='')}")
    assert response.status == 200
    assert await response.text() == "6530474387265463913"


VERIFY_REFUSALS: list[tuple[dict[str, str | None], str]] = [
    ({"msg_signature": "0" * 40}, "bad_signature"),
    ({"msg_signature": None}, "missing_signature"),
    ({"nonce": "1"}, "bad_signature"),
    ({"echostr": None}, "malformed"),
    ({"echostr": "bm90IGVuY3J5cHRlZA=="}, "bad_signature"),
]


async def test_url_verification_failures_are_403(client: Client) -> None:
    for change, code in VERIFY_REFUSALS:
        params = {k: v for k, v in {**SAMPLE_VERIFY, **change}.items() if v is not None}
        query_string = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
        await refused(await client.get(f"/wecom/callback?{query_string}"), 403, code)


async def test_url_verification_of_the_robot_refuses_the_apps_request(client: Client) -> None:
    q = "&".join(f"{k}={quote(v, safe='')}" for k, v in SAMPLE_VERIFY.items())
    await refused(await client.get(f"/wecom/aibot?{q}"), 403, "bad_signature")


# -- app messages -------------------------------------------------------------------------------------------------


class GateSink(RecordingSink):
    """Holds each event until the test opens the gate: shows the answer does not wait for processing."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.started = 0

    async def handle(self, event: InboundEvent) -> None:
        self.started += 1
        await self.gate.wait()
        await super().handle(event)


async def test_tencents_sample_message_is_stored_then_processed_after_the_answer(
    client: Client, clock: FrozenClock
) -> None:
    clock.set(datetime.fromtimestamp(int(SAMPLE_POST_TS), TZ))  # the sample's own time: an old callback is refused
    sink = GateSink()
    processor(client).sink = sink
    q = f"msg_signature={SAMPLE_POST_SIG}&timestamp={SAMPLE_POST_TS}&nonce={SAMPLE_POST_NONCE}"
    response = await client.post(f"/wecom/callback?{q}", data=app_envelope(SAMPLE_ENCRYPT))
    assert response.status == 200
    assert await response.read() == b""  # WeCom asks for an empty 200, not WeChat's "success"

    [row] = await rows(client)  # persisted before the answer, not yet processed
    assert (row["source"], row["dedup_key"], row["status"]) == (APP_SOURCE, "app:msg:1456453720", "pending")
    assert row["payload"] == SAMPLE_PLAIN.decode()

    sink.gate.set()
    await processor(client).drain()
    assert sink.events == [parse_app_xml(SAMPLE_PLAIN)]
    event = sink.events[0]
    assert isinstance(event, TextMessage)
    assert (event.text, event.sender, event.chat_type) == ("你好", Sender("ChenJiaShun"), "single")
    [row] = await rows(client)
    assert row["status"] == "done"
    assert row["processed_at"] is not None
    assert row["error"] is None


async def test_a_retried_callback_is_answered_but_processed_once(client: Client) -> None:
    plain = app_xml(MsgType="text", Content="查询 2026112300123", MsgId="7001")
    first = await post_app(client, plain)
    again = await post_app(client, plain)  # WeCom's retry: same message, new encryption
    assert (first.status, again.status) == (200, 200)
    assert await again.read() == b""
    await processor(client).drain()
    late = await post_app(client, plain)  # a retry after processing
    assert late.status == 200
    await processor(client).drain()
    assert len(await rows(client)) == 1
    assert [e.dedup_key for e in seen(client)] == ["app:msg:7001"]


async def test_app_card_click(client: Client) -> None:
    plain = app_xml(
        MsgType="event",
        Event="template_card_event",
        EventKey="claim:2026112300123",
        TaskId="task-1",
        CardType="button_interaction",
        ResponseCode="RC-1",
    )
    assert (await post_app(client, plain)).status == 200
    await processor(client).drain()
    [click] = seen(client)
    assert isinstance(click, CardClick)
    assert (click.event_key, click.task_id, click.response_code) == ("claim:2026112300123", "task-1", "RC-1")
    assert [r["status"] for r in await rows(client)] == ["done"]


# -- refused callbacks --------------------------------------------------------------------------------------------

DOCTYPE = b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa">]><xml><Encrypt>&a;</Encrypt></xml>'
LAUGHS = (
    b'<!DOCTYPE xml [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    b"<xml><ToUserName>x</ToUserName><FromUserName>&b;</FromUserName><CreateTime>1</CreateTime>"
    b"<MsgType>text</MsgType><MsgId>1</MsgId></xml>"
)


def _plain() -> bytes:
    return app_xml(MsgType="text", Content="hi", MsgId="1")


def forged() -> tuple[str, bytes]:
    encrypt = APP.encrypt(_plain())
    return f"msg_signature={'a' * 40}&timestamp={T0}&nonce=1", app_envelope(encrypt)


def unsigned() -> tuple[str, bytes]:
    return f"timestamp={T0}&nonce=1", app_envelope(APP.encrypt(_plain()))


def altered() -> tuple[str, bytes]:
    encrypt = APP.encrypt(_plain())
    tampered = ("B" if encrypt[10] != "B" else "C").join((encrypt[:10], encrypt[11:]))
    return query(APP, encrypt), app_envelope(tampered)


def other_token() -> tuple[str, bytes]:
    encrypt = APP.encrypt(_plain())
    return query(CallbackCrypto("someone-else", SAMPLE_KEY, SAMPLE_CORP), encrypt), app_envelope(encrypt)


def wrong_corp() -> tuple[str, bytes]:
    encrypt = CallbackCrypto(SAMPLE_TOKEN, SAMPLE_KEY, "wwOTHERCORP").encrypt(_plain())
    return query(APP, encrypt), app_envelope(encrypt)


def signed_plain(plain: bytes) -> Callable[[], tuple[str, bytes]]:
    def build() -> tuple[str, bytes]:
        encrypt = APP.encrypt(plain)
        return query(APP, encrypt), app_envelope(encrypt)

    return build


def signed_envelope(body: bytes) -> Callable[[], tuple[str, bytes]]:
    return lambda: (query(APP, "x"), body)


Build = Callable[[], tuple[str, bytes]]  # -> (query string, body)
APP_REFUSALS: list[tuple[str, Build, int, str]] = [
    ("forged-signature", forged, 403, "bad_signature"),
    ("missing-signature", unsigned, 403, "missing_signature"),
    ("altered-body", altered, 403, "bad_signature"),
    ("other-token", other_token, 403, "bad_signature"),
    ("wrong-corp", wrong_corp, 403, "wrong_receiver"),
    ("malformed-envelope", signed_envelope(b"<xml><Encrypt>abc</Encrypt>"), 400, "malformed"),
    ("json-to-the-app", signed_envelope(b'{"encrypt": "abc"}'), 400, "malformed"),
    ("doctype-envelope", signed_envelope(DOCTYPE), 400, "malformed"),
    ("malformed-message", signed_plain(b"<xml><MsgType>text</MsgType>"), 400, "malformed"),
    ("entities-in-message", signed_plain(LAUGHS), 400, "malformed"),
    ("text-without-msgid", signed_plain(app_xml(MsgType="text", Content="x")), 400, "malformed"),
    ("not-utf8", signed_plain(b"<xml>\xff</xml>"), 400, "malformed"),
]


async def test_refused_app_callbacks_leave_no_row(client: Client) -> None:
    for name, build, status, code in APP_REFUSALS:
        q, body = build()
        response = await client.post(f"/wecom/callback?{q}", data=body)
        assert response.status == status, name
        await refused(response, status, code)
    await processor(client).drain()
    assert await rows(client) == []
    assert seen(client) == []
    # each refusal counted by its reason, for the operator's alert
    metrics = await (await client.get("/metrics")).text()
    expected = Counter(code for _, _, _, code in APP_REFUSALS)
    for code, n in expected.items():
        assert f'hotline_callback_refusals_total{{reason="{code}",source="wecom_app"}} {float(n)}' in metrics, code


async def test_oversized_body_is_refused_by_its_length(client: Client) -> None:
    body = app_envelope("A" * MAX_BODY)
    await refused(await client.post(f"/wecom/callback?{query(APP, 'x')}", data=body), 413, "body_too_large")
    assert await rows(client) == []


async def test_oversized_chunked_body_is_refused_while_reading(client: Client) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(64):  # 256 KiB, without a Content-Length
            yield b"<!-- " + b"x" * 4090 + b" -->"

    response = await client.post(f"/wecom/aibot?{query(ROBOT, 'x')}", data=chunks())
    await refused(response, 413, "body_too_large")
    assert await rows(client) == []


async def test_a_body_shorter_than_its_length_is_refused(client: Client) -> None:
    """The sender stops (half-closes) before its Content-Length is reached: no 200, nothing stored."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        head = (
            f"POST /wecom/callback?{query(APP, 'x')} HTTP/1.1\r\nHost: {client.host}\r\n"
            "Content-Type: text/xml\r\nContent-Length: 500\r\n\r\n"
        )
        writer.write(head.encode() + b"<xml><Encrypt>")
        await writer.drain()
        writer.write_eof()
        status_line = await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
    assert status_line == b""  # the connection is closed, unanswered
    assert await rows(client) == []


async def test_body_of_exactly_the_limit_is_read(client: Client) -> None:
    encrypt = APP.encrypt(_plain())
    body = app_envelope(encrypt)
    body = body.replace(b"<xml>", b"<xml>" + b" " * (MAX_BODY - len(body)), 1)
    assert len(body) == MAX_BODY
    assert (await client.post(f"/wecom/callback?{query(APP, encrypt)}", data=body)).status == 200


# -- the intelligent robot ----------------------------------------------------------------------------------------


async def test_robot_group_text_has_the_mention_stripped(client: Client, clock: FrozenClock) -> None:
    plain = robot_json("text", text={"content": "@12345助手\u2005查询 2026112300123"})
    response = await post_robot(client, plain)
    assert response.status == 200
    assert await response.read() == b""  # no passive reply yet
    await processor(client).drain()
    assert seen(client) == [
        TextMessage(
            source="aibot",
            msg_id="CAIQ16HMjQYY/NGagIOAgAMgq4KM0AI=",
            sender=Sender("lisi"),
            chat_type="group",
            chat_id="wrkSFfCgAAtMQKg4xqDatM5C9IDHFpTw",
            text="查询 2026112300123",
            quoted_text=None,
            at=clock.now(),
            response_url="https://qyapi.weixin.qq.com/cgi-bin/aibot/response?response_code=RC",
        )
    ]
    [row] = await rows(client)
    assert (row["source"], row["status"], row["payload"]) == (AIBOT_SOURCE, "done", plain.decode())


async def test_robot_card_click(client: Client) -> None:
    event = {"eventtype": "template_card_event", "template_card_event": {"event_key": "ack", "task_id": "t-9"}}
    response = await post_robot(client, robot_json("event", msgid="evt-1", event=event, create_time=T0))
    assert response.status == 200
    assert await response.read() == b""
    await processor(client).drain()
    [click] = seen(client)
    assert isinstance(click, CardClick)
    assert (click.source, click.event_key, click.task_id, click.dedup_key) == ("aibot", "ack", "t-9", "aibot:msg:evt-1")
    assert click.at == datetime.fromtimestamp(T0, TZ)
    assert (await post_robot(client, robot_json("event", msgid="evt-1", event=event))).status == 200
    await processor(client).drain()
    assert len(seen(client)) == 1


async def test_robot_enter_chat_is_answered_with_the_welcome_as_a_passive_reply(client: Client) -> None:
    enter = robot_json("event", msgid="enter-1", chattype="single", event={"eventtype": "enter_chat"})
    for _ in range(2):  # WeCom's retry (its first answer lost) is welcomed again, and processed once
        response = await post_robot(client, enter)
        assert response.status == 200
        assert response.content_type == "application/json"
        reply = await response.json()
        assert set(reply) == {"encrypt", "msgsignature", "timestamp", "nonce"}
        assert reply["msgsignature"] == ROBOT.signature(reply["timestamp"], reply["nonce"], reply["encrypt"])
        plain = ROBOT.decrypt(reply["msgsignature"], reply["timestamp"], reply["nonce"], reply["encrypt"])
        welcome = json.loads(plain)
        assert welcome["msgtype"] == "text"
        assert welcome["text"]["content"].startswith("您好，这里是演示街道12345热线办工单助手")
    await processor(client).drain()
    assert [type(e).__name__ for e in seen(client)] == ["EnterChat"]
    # a message is answered with an empty 200: its reply comes later, through response_url
    response = await post_robot(client, robot_json("text", text={"content": "@机器人 帮助"}))
    assert (response.status, await response.read()) == (200, b"")


async def test_no_welcome_when_the_office_sets_none(
    aiohttp_client: Callable[..., Awaitable[Client]],
    database_url: str,
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    clock: FrozenClock,
) -> None:
    office = sandbox_config.office.model_copy(update={"welcome": None})
    config = sandbox_config.model_copy(update={"office": office})
    app = create_app(settings_for(database_url, **WECOM_ENV), config, clock=clock, run_workers=False)
    client = await aiohttp_client(app)
    enter = robot_json("event", msgid="enter-2", chattype="single", event={"eventtype": "enter_chat"})
    response = await post_robot(client, enter)
    assert (response.status, await response.read()) == (200, b"")


def robot_post(encrypt: str, signed_by: CallbackCrypto = ROBOT) -> tuple[str, bytes]:
    return query(signed_by, encrypt), json.dumps({"encrypt": encrypt}).encode()


ROBOT_REFUSALS: list[tuple[str, Build, int, str]] = [
    ("signed-by-the-app", lambda: robot_post(ROBOT.encrypt(b"{}"), APP), 403, "bad_signature"),
    ("malformed-envelope", lambda: (query(ROBOT, "1"), b'{"encrypt": 1}'), 400, "malformed"),
    ("xml-to-the-robot", lambda: (query(ROBOT, "x"), app_envelope("x")), 400, "malformed"),
    ("app-key", lambda: robot_post(APP.encrypt(b"{}")), 400, "decrypt_failed"),
    (
        "with-a-receive-id",
        lambda: robot_post(CallbackCrypto(ROBOT_TOKEN, ROBOT_KEY, SAMPLE_CORP).encrypt(b"{}")),
        403,
        "wrong_receiver",
    ),
    ("no-msgid", lambda: robot_post(ROBOT.encrypt(b'{"msgtype": "text"}')), 400, "malformed"),
]


async def test_refused_robot_callbacks_leave_no_row(client: Client) -> None:
    for name, build, status, code in ROBOT_REFUSALS:
        q, body = build()
        response = await client.post(f"/wecom/aibot?{q}", data=body)
        assert response.status == status, name
        await refused(response, status, code)
    assert await rows(client) == []


# -- processing -----------------------------------------------------------------------------------------------------


class FailingSink(RecordingSink):
    async def handle(self, event: InboundEvent) -> None:
        if isinstance(event, TextMessage) and event.text == "boom":
            raise RuntimeError("handler broke on 13812345678")
        await super().handle(event)


async def test_a_failing_event_is_marked_failed_and_the_next_one_still_runs(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    processor(client).sink = FailingSink()
    caplog.set_level(logging.ERROR, "bot.services.inbox")
    await post_app(client, app_xml(MsgType="text", Content="boom", MsgId="1"))
    await post_app(client, app_xml(MsgType="text", Content="fine", MsgId="2"))
    await processor(client).drain()
    assert [(r["dedup_key"], r["status"]) for r in await rows(client)] == [
        ("app:msg:1", "failed"),
        ("app:msg:2", "done"),
    ]
    failed = (await rows(client))[0]
    assert failed["error"] == "RuntimeError: handler broke on 138****5678"
    assert [e.dedup_key for e in seen(client)] == ["app:msg:2"]


async def test_recording_sink_logs_masked_and_keeps_the_last(caplog: pytest.LogCaptureFixture) -> None:
    sink = RecordingSink(keep=2)
    caplog.set_level(logging.INFO, "bot.services.sinks")
    events = [parse_app_xml(app_xml(MsgType="text", Content=f"回电 1381234567{i}", MsgId=str(i))) for i in range(3)]
    for event in events:
        await sink.handle(event)
    assert sink.events == events[1:]
    assert "138****5672" in caplog.text
    assert "13812345672" not in caplog.text


async def test_overlong_keys_are_hashed_to_fit() -> None:
    plain = app_xml(MsgType="event", Event="template_card_event", EventKey="k" * 300, TaskId="t" * 100)
    key = inbox_key(parse_app_xml(plain))
    assert key.startswith("app:sha256:")
    assert len(key) <= 200
    assert inbox_key(parse_app_xml(plain)) == key


# -- crash recovery -------------------------------------------------------------------------------------------------


class StuckSink(RecordingSink):
    """A handler that never finishes: the process 'crashes' while it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()

    async def handle(self, event: InboundEvent) -> None:
        await super().handle(event)
        self.entered.set()
        await asyncio.Event().wait()


async def test_recovery_processes_what_a_crash_left_pending_exactly_once(store: Store, clock: FrozenClock) -> None:
    sources = (APP_SOURCE, AIBOT_SOURCE)
    text_msg = app_xml(MsgType="text", Content="派单", MsgId="42")
    robot_msg = robot_json("text", text={"content": "@bot 帮助"})
    arrived = clock.now()
    stuck = StuckSink()
    first = InboundProcessor(store, stuck, clock, sources=sources, read=read_stored)
    assert await first.accept(APP_SOURCE, parse_app_xml(text_msg), text_msg.decode())
    assert await first.accept(AIBOT_SOURCE, parse_aibot_json(robot_msg, received_at=arrived), robot_msg.decode())
    await stuck.entered.wait()  # the first event reaches its handler, which hangs
    await first.close(grace=0)  # the crash
    assert [r["status"] for r in await rows(store)] == ["pending", "pending"]

    clock.advance(minutes=3)
    sink = RecordingSink()
    second = InboundProcessor(store, sink, clock, sources=sources, read=read_stored)
    if store.backend == "postgresql":
        # the first process might still be at work (several share PostgreSQL): its rows wait for their lease
        assert await second.recover() == 0
        clock.advance(minutes=3)
    assert await second.recover() == 2
    assert [e.dedup_key for e in sink.events] == ["app:msg:42", "aibot:msg:CAIQ16HMjQYY/NGagIOAgAMgq4KM0AI="]
    robot_event = sink.events[1]
    assert isinstance(robot_event, TextMessage)
    assert robot_event.text == "帮助"
    assert robot_event.at == arrived  # dated by its arrival, not by the recovery
    assert [r["status"] for r in await rows(store)] == ["done", "done"]
    assert await second.recover() == 0
    assert not await second.accept(APP_SOURCE, parse_app_xml(text_msg), text_msg.decode())  # a late retry
    await second.drain()
    assert len(sink.events) == 2


class HangsOnce(StuckSink):
    """Records every event; only the first one's handling never finishes."""

    async def handle(self, event: InboundEvent) -> None:
        if self.entered.is_set():
            await RecordingSink.handle(self, event)
        else:
            await super().handle(event)


async def test_a_handler_that_hangs_is_cut_off_and_its_row_marked_failed(
    store: Store, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    sink = HangsOnce()
    processor = InboundProcessor(store, sink, clock, sources=[APP_SOURCE], read=read_stored, handle_timeout=0.05)
    for msg_id in ("1", "2"):  # one sender: the second waits behind the first
        xml = app_xml(MsgType="text", Content="派单", MsgId=msg_id)
        assert await processor.accept(APP_SOURCE, parse_app_xml(xml), xml.decode())
    await sink.entered.wait()
    await processor.drain()
    assert len(sink.events) == 2  # the sender's next message is handled
    assert "wecom inbound" in caplog.text
    assert "failed" in caplog.text
    by_key = {r["dedup_key"]: r for r in await rows(store)}
    assert by_key["app:msg:1"]["status"] == "failed"
    assert by_key["app:msg:1"]["error"] == "TimeoutError: not handled within 0.05 s"
    assert by_key["app:msg:2"]["status"] == "done"
    await processor.close()


async def test_recovery_leaves_other_sources_and_marks_unreadable_rows(store: Store, clock: FrozenClock) -> None:
    async with store.transaction() as conn:
        await inbox_repo.record_inbound(conn, source="hotline", dedup_key="h1", payload="{}", at=clock.now())
        await inbox_repo.record_inbound(conn, source=APP_SOURCE, dedup_key="app:msg:9", payload="<xml>", at=clock.now())
    sink = RecordingSink()
    assert await InboundProcessor(store, sink, clock, sources=[APP_SOURCE], read=read_stored).recover() == 1
    assert sink.events == []
    by_source = {r["source"]: r for r in await rows(store)}
    assert by_source["hotline"]["status"] == "pending"
    assert by_source[APP_SOURCE]["status"] == "failed"
    assert by_source[APP_SOURCE]["error"].startswith("stored payload unreadable")


async def test_the_app_recovers_pending_rows_at_start(
    aiohttp_client: Callable[..., Awaitable[Client]],
    database_url: str,
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    clock: FrozenClock,
) -> None:
    settings = settings_for(database_url, **WECOM_ENV)
    first = await aiohttp_client(create_app(settings, sandbox_config, clock=clock, run_workers=False))
    stuck = StuckSink()
    processor(first).sink = stuck
    assert (await post_app(first, app_xml(MsgType="text", Content="x", MsgId="5"))).status == 200
    await stuck.entered.wait()
    await processor(first).close(grace=0)  # the crash, before the app's own shutdown
    await first.close()

    second = await aiohttp_client(create_app(settings, sandbox_config, clock=clock, run_workers=False))
    await processor(second).drain()
    if processor(second).store.backend == "postgresql":
        assert seen(second) == []  # leased to the first process; a later pass takes it over
        clock.advance(minutes=6)
        assert await processor(second).recover() == 1
    assert [e.dedup_key for e in seen(second)] == ["app:msg:5"]
    assert [r["status"] for r in await rows(second)] == ["done"]


async def test_pending_rows_are_read_through_the_partial_index(store: Store, clock: FrozenClock) -> None:
    async with store.transaction() as conn:
        for i, (source, status) in enumerate([(APP_SOURCE, "done"), (AIBOT_SOURCE, "pending"), ("hotline", "pending")]):
            await inbox_repo.record_inbound(
                conn, source=source, dedup_key=f"k{i}", payload="", at=clock.now(), status=status
            )
        await inbox_repo.record_inbound(
            conn, source=APP_SOURCE, dedup_key="k3", payload="", at=clock.advance(seconds=-5)
        )

    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        statements.append((statement, parameters))

    sa_event.listen(Engine, "before_cursor_execute", capture)  # every engine's (SQLite: the store's own)
    try:
        async with store.reading() as conn:
            found = await inbox_repo.pending_inbound(conn, [APP_SOURCE, AIBOT_SOURCE])
    finally:
        sa_event.remove(Engine, "before_cursor_execute", capture)
    assert [r["dedup_key"] for r in found] == ["k3", "k1"]  # oldest first, other sources and finished rows left
    [(statement, parameters)] = [(s, p) for s, p in statements if "FROM inbox" in s]

    async with store.engine.begin() as conn:  # the plan, asked of the database directly
        if store.backend == "sqlite":
            result = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        else:
            await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            result = await conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)
        plan = " ".join(str(row) for row in result)
        assert "ix_inbox_pending" in plan
        assert await inbox_repo.pending_inbound(conn, []) == []


# -- configuration --------------------------------------------------------------------------------------------------


async def test_without_credentials_there_are_no_callback_routes(
    aiohttp_client: Callable[..., Awaitable[Client]],
    sqlite_url: str,
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "bot.wecom.callbacks")
    env = {"WECOM_CORP_ID": SAMPLE_CORP, "WECOM_APP_SECRET": "s", "WECOM_AIBOT_TOKEN": ROBOT_TOKEN}  # no robot key
    app = create_app(settings_for(sqlite_url, **env), sandbox_config, run_workers=False)
    assert WECOM_CALLBACKS not in app
    client = await aiohttp_client(app)
    assert WECOM_INBOUND not in client.app
    assert (await client.get("/wecom/callback")).status == 404
    assert (await client.post("/wecom/aibot", data=b"{}")).status == 404
    assert "WECOM_AIBOT_AES_KEY not set" in caplog.text


def test_only_the_robot_configured(settings_for: Callable[..., Settings], sandbox_config: BotConfig) -> None:
    env = {"WECOM_AIBOT_TOKEN": ROBOT_TOKEN, "WECOM_AIBOT_AES_KEY": ROBOT_KEY}
    app = create_app(settings_for("sqlite:///unused.db", **env), sandbox_config, run_workers=False)
    assert list(app[WECOM_CALLBACKS]) == [AIBOT_SOURCE]
    assert app[WECOM_CALLBACKS][AIBOT_SOURCE].receive_id == ""
    paths = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    assert "/wecom/aibot" in paths
    assert "/wecom/callback" not in paths


def test_a_malformed_aes_key_names_the_variable(
    settings_for: Callable[..., Settings], sandbox_config: BotConfig
) -> None:
    env = {**WECOM_ENV, "WECOM_APP_AES_KEY": "too-short"}
    with pytest.raises(ConfigError) as caught:
        create_app(settings_for("sqlite:///unused.db", **env), sandbox_config, run_workers=False)
    assert [i.path for i in caught.value.issues] == ["WECOM_APP_AES_KEY"]


class OSErrorSink(RecordingSink):
    """A handler whose own file is missing: an OSError that has nothing to do with the database."""

    async def handle(self, event: InboundEvent) -> None:
        if isinstance(event, TextMessage) and event.text == "boom":
            raise FileNotFoundError(2, "No such file or directory", "/srv/templates/missing.txt")
        await super().handle(event)


async def test_a_handler_oserror_is_its_failure_not_a_database_outage(
    store: Store, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    """With the database answering, the row is marked failed once (not handled again and again as if the database
    were away), and the log says nothing of an outage."""
    liveness = Liveness(store.engine, process_id())
    await liveness.start()
    sink = OSErrorSink()
    processor = InboundProcessor(
        store, sink, clock, sources=[APP_SOURCE], read=read_stored, owner=liveness.owner, liveness=liveness
    )
    try:
        for msg_id, text in (("1", "boom"), ("2", "fine")):
            xml = app_xml(MsgType="text", Content=text, MsgId=msg_id)
            assert await processor.accept(APP_SOURCE, parse_app_xml(xml), xml.decode())
        processor.start()
        await processor.drain()
    finally:
        await processor.close()
        await liveness.close()
    by_key = {r["dedup_key"]: r for r in await rows(store)}
    assert by_key["app:msg:1"]["status"] == "failed"
    assert by_key["app:msg:1"]["error"].startswith("FileNotFoundError")
    assert by_key["app:msg:2"]["status"] == "done"
    assert not liveness.database.down
    assert not [r for r in caplog.records if "unreachable" in r.getMessage()]


class LoggingSink(RecordingSink):
    """Logs a line while it handles an event, as a handler would."""

    async def handle(self, event: InboundEvent) -> None:
        logging.getLogger(__name__).info("handling %s", event.dedup_key)
        await super().handle(event)


async def test_a_callbacks_request_id_and_event_id_follow_it_into_the_log(client: Client) -> None:
    """nginx's request id comes back on the answer and is on the line that accepts the callback, beside the
    event id that every line of its handling carries (in whichever process handles it)."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    setup_logging("json", "INFO", stream)
    try:
        processor(client).sink = LoggingSink()
        encrypt = APP.encrypt(app_xml(MsgType="text", Content="查询 2026112300123", MsgId="7002"))
        request_id = "0f" * 16
        response = await client.post(
            f"/wecom/callback?{query(APP, encrypt)}", data=app_envelope(encrypt), headers={"X-Request-Id": request_id}
        )
        assert response.headers["X-Request-Id"] == request_id
        await processor(client).drain()
        forged = await client.post(f"/wecom/callback?{query(APP, encrypt)}", data=b"x" + app_envelope(encrypt))
        assert re.fullmatch(r"[0-9a-f]{32}", forged.headers["X-Request-Id"])  # none given: one of its own
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    [accepted] = [line for line in lines if line["msg"] == "wecom wecom_app callback accepted"]
    [handled] = [line for line in lines if line["msg"] == "handling app:msg:7002"]
    assert accepted["request_id"] == request_id
    assert handled["event_id"] == accepted["event_id"]
    assert "request_id" not in handled  # the handling is not the request's: it may run later, elsewhere
    [refused_line] = [line for line in lines if "callback refused" in line["msg"]]
    assert refused_line["request_id"] == forged.headers["X-Request-Id"]
    assert {"host", "pid"} <= set(accepted)
