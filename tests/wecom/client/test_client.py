"""The WeCom API client against a small WeCom double served over real HTTP: tokens, retries, typed errors, limits."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.wecom.client import (
    WECOM_API_BASE,
    ResponseUrlClient,
    WebhookClient,
    WeComClient,
)
from bot.wecom.errors import (
    BadTemplateCard,
    BadWebhookKey,
    Busy,
    InvalidRecipients,
    IpNotTrusted,
    RateLimited,
    TokenInvalid,
    TransportError,
    WeComError,
)
from bot.wecom.tokens import MemoryTokenStore, RedisTokenStore
from store.redis import create_redis
from tests.conftest import REDIS_HOST, REDIS_PORT, REDIS_URL, require_service

CORP_ID = "ww0123456789abcdef"
SECRET = "corp-secret-DO-NOT-LOG-9f8e7d"
AGENT_ID = 1000002
HOOK_KEY = "hook-key-DO-NOT-LOG-1a2b3c"


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeWeCom:
    """Just enough of WeCom for the client: tokens that expire or get revoked, scripted faults per API path, the
    checks WeCom makes (UTF-8 JSON without \\u escapes, agentid, recipients, webhook key, image md5, single-use
    response codes), and a record of every request."""

    tokens: dict[str, bool] = field(default_factory=dict)  # token -> still valid
    issued: int = 0
    gettoken_calls: int = 0
    expires_in: int = 7200
    # path -> answers to give before the normal one: an errcode, "500", "hang", or "429:<seconds>"
    faults: dict[str, list[Any]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    raw_bodies: list[bytes] = field(default_factory=list)
    revoke_after_sends: int | None = None  # revoke every token once this many message/send calls arrived
    sends_seen: int = 0
    response_codes: set[str] = field(default_factory=set)
    media: dict[str, bytes] = field(default_factory=dict)
    chats: dict[str, dict[str, Any]] = field(default_factory=dict)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    # paths whose next request is carried out, after which the connection is reset without an answer
    reset_after: list[str] = field(default_factory=list)

    def calls(self, path: str) -> list[tuple[dict[str, str], Any]]:
        return [(q, b) for p, q, b in self.requests if p == path]

    def revoke_all(self) -> None:
        for token in self.tokens:
            self.tokens[token] = False

    @staticmethod
    def error(errcode: int, errmsg: str = "fake error") -> web.Response:
        return web.json_response({"errcode": errcode, "errmsg": f"{errmsg}, hint: [fake]"})

    async def fault(self, path: str) -> web.Response | None:
        queue = self.faults.get(path)
        if not queue:
            return None
        answer = queue.pop(0)
        if answer == "500":
            return web.Response(status=500, text="<html>upstream error</html>")
        if answer == "408":
            return web.Response(status=408, text="<html>request timeout</html>")
        if answer == "hang":
            await asyncio.wait_for(self.released.wait(), 5)
            return self.error(-1)
        if isinstance(answer, str) and answer.startswith("429:"):
            return web.Response(status=429, headers={"Retry-After": answer[4:]})
        return self.error(int(answer))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        response = await self._handle(request)
        path = request.match_info["path"]
        if path in self.reset_after and request.transport is not None:
            self.reset_after.remove(path)
            request.transport.abort()
        return response

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        query = dict(request.query)
        body: Any = None
        if request.content_type == "multipart/form-data":
            form = await request.post()
            body = {
                name: (value.filename, value.file.read())
                for name, value in form.items()
                if isinstance(value, web.FileField)
            }
        elif request.content_type == "application/json":
            raw = await request.read()
            self.raw_bodies.append(raw)
            if b"\\u" in raw:
                return self.error(40033, "invalid charset, \\uxxxx not allowed")
            body = json.loads(raw)
        self.requests.append((path, query, body))

        if path == "gettoken":
            self.gettoken_calls += 1
            if (answer := await self.fault(path)) is not None:
                return answer
            if query.get("corpid") != CORP_ID:
                return self.error(40013, "invalid corpid")
            if query.get("corpsecret") != SECRET:
                return self.error(40001, "invalid secret")
            self.issued += 1
            new_token = f"tok-{self.issued}-{uuid.uuid4().hex[:8]}"
            self.tokens[new_token] = True
            return web.json_response(
                {"errcode": 0, "errmsg": "ok", "access_token": new_token, "expires_in": self.expires_in}
            )

        if path.startswith("webhook/"):
            if query.get("key") != HOOK_KEY:
                return self.error(93000, "invalid webhook url")
            if (answer := await self.fault(path)) is not None:
                return answer
            return self.webhook(path, query, body)

        if path == "aibot/response":
            if (answer := await self.fault(path)) is not None:
                return answer
            code = query.get("response_code", "")
            if code not in self.response_codes:
                return self.error(40320, "response_code used or expired (fake)")
            self.response_codes.discard(code)
            return web.json_response({"errcode": 0, "errmsg": "ok"})

        token = query.get("access_token")
        if not token:
            return self.error(41001, "access_token missing")
        if token not in self.tokens:
            return self.error(40014, "invalid access_token")
        if not self.tokens[token]:
            return self.error(42001, "access_token expired")
        if path == "message/send":
            self.sends_seen += 1
            if self.revoke_after_sends is not None and self.sends_seen == self.revoke_after_sends:
                self.revoke_all()
        if (answer := await self.fault(path)) is not None:
            return answer
        return self.app_api(path, query, body)

    def app_api(self, path: str, query: dict[str, str], body: Any) -> web.Response:
        if path == "message/send":
            if body.get("agentid") != AGENT_ID:
                return self.error(40056, "invalid agentid")
            users = [u for u in body.get("touser", "").split("|") if u]
            invalid = [u for u in users if u.startswith("ghost")]
            if users and len(invalid) == len(users) and not body.get("toparty") and not body.get("totag"):
                return self.error(81013, "user & party & tag all invalid")
            answer: dict[str, Any] = {
                "errcode": 0,
                "errmsg": "ok",
                "invaliduser": "|".join(invalid),
                "msgid": f"msg-{len(self.requests)}",
            }
            if body["msgtype"] == "template_card" and body["template_card"]["card_type"] == "button_interaction":
                answer["response_code"] = issued = f"rc-{len(self.requests)}"
                self.response_codes.add(issued)
            return web.json_response(answer)
        if path == "message/update_template_card":
            code = body.get("response_code")
            if code not in self.response_codes:
                return self.error(42045, "invalid response_code (fake)")
            self.response_codes.discard(code)
            return web.json_response({"errcode": 0, "errmsg": "ok", "invaliduser": []})
        if path == "appchat/create":
            chatid = body.get("chatid") or f"chat{len(self.chats) + 1}"
            self.chats[chatid] = {"chatid": chatid, "name": body.get("name", ""), "owner": body.get("owner", "")}
            self.chats[chatid]["userlist"] = list(body["userlist"])
            return web.json_response({"errcode": 0, "errmsg": "ok", "chatid": chatid})
        if path == "appchat/get":
            chat = self.chats.get(query.get("chatid", ""))
            if chat is None:
                return self.error(86003, "chat not found")
            return web.json_response({"errcode": 0, "errmsg": "ok", "chat_info": {**chat, "chat_type": 0}})
        if path == "appchat/update":
            chat = self.chats[body["chatid"]]
            chat["userlist"] = [u for u in chat["userlist"] if u not in body.get("del_user_list", [])]
            chat["userlist"] += body.get("add_user_list", [])
            chat["name"] = body.get("name", chat["name"])
            return web.json_response({"errcode": 0, "errmsg": "ok"})
        if path == "appchat/send":
            if body["chatid"] not in self.chats:
                return self.error(86003, "chat not found")
            return web.json_response({"errcode": 0, "errmsg": "ok"})
        return self.error(404, "no such api in the fake")

    def webhook(self, path: str, query: dict[str, str], body: Any) -> web.Response:
        if path == "webhook/upload_media":
            if query.get("type") != "file" or "media" not in body:
                return self.error(40005, "invalid type")
            _filename, data = body["media"]
            media_id = f"media-{len(self.media) + 1}"
            self.media[media_id] = data
            return web.json_response(
                {"errcode": 0, "errmsg": "ok", "type": "file", "media_id": media_id, "created_at": "1"}
            )
        if body["msgtype"] == "image":
            data = base64.b64decode(body["image"]["base64"])
            if hashlib.md5(data).hexdigest() != body["image"]["md5"]:
                return self.error(40009, "image md5 mismatch")
        if body["msgtype"] == "file" and body["file"]["media_id"] not in self.media:
            return self.error(40007, "invalid media_id")
        return web.json_response({"errcode": 0, "errmsg": "ok"})


@pytest.fixture
async def fake(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> AsyncIterator[tuple[FakeWeCom, str]]:
    wecom = FakeWeCom()
    app = web.Application()
    app.router.add_route("*", "/cgi-bin/{path:.+}", wecom.handle)
    server = await aiohttp_server(app)
    yield wecom, str(server.make_url("")).rstrip("/")
    wecom.released.set()



@dataclass
class Sleeps:
    waits: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def fclock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_client(
    fake: tuple[FakeWeCom, str], session: aiohttp.ClientSession, sleeps: Sleeps, fclock: FakeClock
) -> Callable[..., WeComClient]:
    def make(**overrides: Any) -> WeComClient:
        options: dict[str, Any] = {
            "base_url": fake[1],
            "corp_id": CORP_ID,
            "secret": SECRET,
            "agent_id": AGENT_ID,
            "tokens": MemoryTokenStore(),
            "clock": fclock,
            "sleep": sleeps,
        }
        options.update(overrides)
        return WeComClient(session, **options)

    return make


@pytest.fixture
def client(make_client: Callable[..., WeComClient]) -> WeComClient:
    return make_client()


@pytest.fixture
def webhook(fake: tuple[FakeWeCom, str], session: aiohttp.ClientSession, sleeps: Sleeps) -> WebhookClient:
    return WebhookClient(session, base_url=fake[1], sleep=sleeps)


# --- tokens -----------------------------------------------------------------------------------------------------


async def test_token_is_fetched_once_and_sent_in_the_query(client: WeComClient, fake: tuple[FakeWeCom, str]) -> None:
    wecom, _ = fake
    for i in range(3):
        result = await client.send_text(f"工单 {i} 已受理", touser=["zhangsan"])
        assert result.msgid
    assert wecom.gettoken_calls == 1
    sends = wecom.calls("message/send")
    assert len(sends) == 3
    assert {q["access_token"] for q, _ in sends} == {next(iter(wecom.tokens))}
    assert all("access_token" not in body for _, body in sends)


async def test_token_is_refreshed_before_it_expires(
    client: WeComClient, fake: tuple[FakeWeCom, str], fclock: FakeClock
) -> None:
    wecom, _ = fake
    await client.send_text("一", touser="zhangsan")
    fclock.now += 7200 - 300 - 1  # still inside expires_in - margin
    await client.send_text("二", touser="zhangsan")
    assert wecom.gettoken_calls == 1
    fclock.now += 2  # past it: refreshed although WeCom would still accept the old one
    await client.send_text("三", touser="zhangsan")
    assert wecom.gettoken_calls == 2
    tokens = [q["access_token"] for q, _ in wecom.calls("message/send")]
    assert tokens[0] == tokens[1] != tokens[2]


async def test_token_revoked_in_the_middle_of_a_burst_is_refetched_once(
    client: WeComClient, fake: tuple[FakeWeCom, str], sleeps: Sleeps
) -> None:
    wecom, _ = fake
    await client.send_text("预热", touser="zhangsan")
    wecom.revoke_after_sends = 1 + 20  # WeCom invalidates the token after the 20th send of the burst
    results = await asyncio.gather(*(client.send_text(f"推送 {i}", touser="zhangsan") for i in range(50)))
    assert len(results) == 50
    assert all(r.msgid for r in results)
    assert wecom.gettoken_calls == 2  # the first fetch and exactly one refetch
    assert sleeps.waits == []  # token errors are not backed off
    used = [q["access_token"] for q, _ in wecom.calls("message/send")]
    assert len(set(used)) == 2
    assert len(used) > 1 + 50  # some sends met the revoked token and were retried


async def test_token_expiring_on_the_clock_in_the_middle_of_a_burst_is_refetched_once(
    client: WeComClient, fake: tuple[FakeWeCom, str], fclock: FakeClock
) -> None:
    wecom, _ = fake
    await client.send_text("预热", touser="zhangsan")

    async def send(i: int) -> str:
        if i == 25:
            fclock.now += 7200  # time passes half way through the burst
        return (await client.send_text(f"推送 {i}", touser="zhangsan")).msgid

    msgids = await asyncio.gather(*(send(i) for i in range(50)))
    assert all(msgids)
    assert wecom.gettoken_calls == 2


@pytest.mark.parametrize("errcode", [40014, 42001, 40001])
async def test_invalid_token_refetches_and_retries_once(
    client: WeComClient, fake: tuple[FakeWeCom, str], sleeps: Sleeps, errcode: int
) -> None:
    wecom, _ = fake
    await client.send_text("预热", touser="zhangsan")
    wecom.faults["message/send"] = [errcode]
    result = await client.send_text("重试", touser="zhangsan")
    assert result.msgid
    assert wecom.gettoken_calls == 2
    assert len(wecom.calls("message/send")) == 3
    assert sleeps.waits == []


async def test_a_second_invalid_token_surfaces_instead_of_looping(
    client: WeComClient, fake: tuple[FakeWeCom, str]
) -> None:
    wecom, _ = fake
    wecom.faults["message/send"] = [42001, 40014, 40014, 40014]
    with pytest.raises(TokenInvalid) as caught:
        await client.send_text("重试", touser="zhangsan")
    assert caught.value.errcode == 40014
    assert caught.value.path == "message/send"
    assert wecom.gettoken_calls == 2
    assert len(wecom.calls("message/send")) == 2


async def test_wrong_secret_is_permanent_and_not_a_token_loop(
    make_client: Callable[..., WeComClient], fake: tuple[FakeWeCom, str], sleeps: Sleeps
) -> None:
    wecom, _ = fake
    client = make_client(secret="wrong-secret")
    with pytest.raises(WeComError) as caught:
        await client.send_text("你好", touser="zhangsan")
    assert not isinstance(caught.value, TokenInvalid)
    assert caught.value.errcode == 40001
    assert caught.value.permanent
    assert not caught.value.retryable
    assert wecom.gettoken_calls == 1
    assert sleeps.waits == []
    assert "wrong-secret" not in str(caught.value)


async def test_gettoken_busy_is_retried(client: WeComClient, fake: tuple[FakeWeCom, str], sleeps: Sleeps) -> None:
    wecom, _ = fake
    wecom.faults["gettoken"] = [-1]
    assert (await client.send_text("你好", touser="zhangsan")).msgid
    assert wecom.gettoken_calls == 2
    assert sleeps.waits == [0.5]


# --- retries and typed errors -----------------------------------------------------------------------------------


async def test_busy_is_retried_with_backoff_then_succeeds(
    client: WeComClient, fake: tuple[FakeWeCom, str], sleeps: Sleeps
) -> None:
    wecom, _ = fake
    wecom.faults["message/send"] = [-1, -1]
    assert (await client.send_text("你好", touser="zhangsan")).msgid
    assert len(wecom.calls("message/send")) == 3
    assert sleeps.waits == [0.5, 1.0]


async def test_busy_after_the_last_retry_is_raised(
    client: WeComClient, fake: tuple[FakeWeCom, str], sleeps: Sleeps
) -> None:
    wecom, _ = fake
    wecom.faults["message/send"] = [-1] * 10
    with pytest.raises(Busy) as caught:
        await client.send_text("你好", touser="zhangsan")
    assert caught.value.retryable
    assert not caught.value.permanent
    assert len(wecom.calls("message/send")) == 4  # the call and max_retries=3 retries
    assert sleeps.waits == [0.5, 1.0, 2.0]


@pytest.mark.parametrize(
    ("errcode", "error"),
    [(60020, IpNotTrusted), (81013, InvalidRecipients), (42045, BadTemplateCard), (40008, WeComError)],
)
async def test_permanent_errors_are_raised_without_retry(
    client: WeComClient, fake: tuple[FakeWeCom, str], sleeps: Sleeps, errcode: int, error: type[WeComError]
) -> None:
    wecom, _ = fake
    wecom.faults["message/send"] = [errcode]
    with pytest.raises(error) as caught:
        await client.send_text("你好", touser="zhangsan")
    assert type(caught.value) is error
    assert caught.value.permanent
    assert not caught.value.retryable
    assert len(wecom.calls("message/send")) == 1
    assert sleeps.waits == []


async def test_all_recipients_invalid_is_81013_and_some_invalid_are_reported(client: WeComClient) -> None:
    with pytest.raises(InvalidRecipients):
        await client.send_text("你好", touser=["ghost1", "ghost2"])
    result = await client.send_text("你好", touser=["zhangsan", "ghost1"])
    assert result.invalid_users == ("ghost1",)


async def test_bad_webhook_key_is_permanent(
    webhook: WebhookClient, fake: tuple[FakeWeCom, str], sleeps: Sleeps
) -> None:
    wecom, _ = fake
    with pytest.raises(BadWebhookKey):
        await webhook.send_text("not-the-key", "你好")
    assert len(wecom.calls("webhook/send")) == 1
    assert sleeps.waits == []


async def test_http_500_on_a_read_is_a_transport_error_after_the_retries(
    client: WeComClient, fake: tuple[FakeWeCom, str], sleeps: Sleeps
) -> None:
    wecom, _ = fake
    await client.appchat_create(userlist=["zhangsan", "lisi"], chatid="c1")
    wecom.faults["appchat/get"] = ["500"] * 10
    with pytest.raises(TransportError) as caught:
        await client.appchat_get("c1")
    assert caught.value.status == 500
    assert caught.value.errcode == -2
    assert caught.value.retryable
    assert len(wecom.calls("appchat/get")) == 4
    assert sleeps.waits == [0.5, 1.0, 2.0]
    wecom.faults["appchat/get"] = ["500"]
    assert (await client.appchat_get("c1"))["chatid"] == "c1"
    assert len(wecom.calls("appchat/get")) == 6


async def test_http_500_on_a_send_into_a_chat_is_not_repeated(
    client: WeComClient, webhook: WebhookClient, fake: tuple[FakeWeCom, str], sleeps: Sleeps
) -> None:
    """The gateway's 500 may come after WeCom delivered the message: the caller decides what to do, not the
    client, which would show it twice in a chat that has no duplicate check."""
    wecom, _ = fake
    await client.appchat_create(userlist=["zhangsan", "lisi"], chatid="c1")
    for path, send in (
        ("webhook/send", lambda: webhook.send_text(HOOK_KEY, "你好")),
        ("appchat/send", lambda: client.appchat_send("c1", "text", {"content": "你好"})),
        ("message/send", lambda: client.send_text("你好", touser="zhangsan")),
    ):
        wecom.faults[path] = ["500"]
        with pytest.raises(TransportError) as caught:
            await send()
        assert caught.value.request_sent
        assert caught.value.status == 500
        assert len(wecom.calls(path)) == 1
    assert sleeps.waits == []


async def test_a_reset_after_the_request_reached_wecom_is_not_repeated(
    client: WeComClient, webhook: WebhookClient, fake: tuple[FakeWeCom, str], sleeps: Sleeps
) -> None:
    wecom, _ = fake
    await client.appchat_create(userlist=["zhangsan", "lisi"], chatid="c1")
    wecom.reset_after = ["webhook/send", "appchat/send"]
    with pytest.raises(TransportError) as caught:
        await webhook.send_markdown(HOOK_KEY, "**新工单 2026112300001**")
    assert caught.value.request_sent
    with pytest.raises(TransportError) as caught:
        await client.appchat_send("c1", "markdown", {"content": "**新工单 2026112300001**"})
    assert caught.value.request_sent
    assert len(wecom.calls("webhook/send")) == len(wecom.calls("appchat/send")) == 1
    assert sleeps.waits == []
    # an errcode is an answer, and so is 408 (the server gave up waiting for the request): not carried out, retried
    wecom.faults["webhook/send"] = [-1, 45009, "408"]
    await webhook.send_markdown(HOOK_KEY, "**新工单 2026112300002**")
    assert len(wecom.calls("webhook/send")) == 5
    assert sleeps.waits == [0.5, 1.0, 2.0]


async def test_a_token_that_could_not_be_fetched_sent_nothing_and_is_retried(
    client: WeComClient, fake: tuple[FakeWeCom, str], sleeps: Sleeps
) -> None:
    wecom, _ = fake
    wecom.faults["gettoken"] = ["500"]
    await client.appchat_create(userlist=["zhangsan", "lisi"], chatid="c1")
    assert wecom.gettoken_calls == 2
    assert len(wecom.calls("appchat/create")) == 1
    assert sleeps.waits == [0.5]


async def test_timeouts_are_transport_errors_retried_only_when_repeatable(
    make_client: Callable[..., WeComClient], fake: tuple[FakeWeCom, str], sleeps: Sleeps
) -> None:
    wecom, _ = fake
    client = make_client(timeout=0.05, max_retries=2)
    await client.appchat_create(userlist=["zhangsan", "lisi"], chatid="c1")
    wecom.faults["appchat/get"] = ["hang"] * 3
    with pytest.raises(TransportError) as caught:
        await client.appchat_get("c1")
    assert "Timeout" in caught.value.errmsg
    assert caught.value.request_sent
    assert sleeps.waits == [0.5, 1.0]
    wecom.faults["message/send"] = ["hang"]
    with pytest.raises(TransportError) as caught:
        await client.send_text("你好", touser="zhangsan")  # written, then no answer: it may have arrived
    assert "Timeout" in caught.value.errmsg
    assert caught.value.request_sent
    assert sleeps.waits == [0.5, 1.0]
    assert len(wecom.calls("message/send")) == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_network_errors_are_transport_errors_and_leak_no_secret(
    make_client: Callable[..., WeComClient], sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(base_url=f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(TransportError) as caught:
        await client.send_text("你好", touser="zhangsan")
    assert not caught.value.request_sent
    assert caught.value.path == "gettoken"
    assert sleeps.waits == [0.5, 1.0, 2.0]
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert SECRET not in str(caught.value)
    assert SECRET not in caplog.text


async def test_rate_limit_honours_retry_after_and_leaves_long_waits_to_the_caller(
    client: WeComClient, fake: tuple[FakeWeCom, str], sleeps: Sleeps
) -> None:
    wecom, _ = fake
    wecom.faults["message/send"] = ["429:3", 45009, 45033]
    assert (await client.send_text("你好", touser="zhangsan")).msgid
    assert sleeps.waits == [3.0, 1.0, 2.0]  # the hint, then backoff for hints WeCom does not give
    wecom.faults["message/send"] = ["429:60"]
    with pytest.raises(RateLimited) as caught:
        await client.send_text("你好", touser="zhangsan")
    assert caught.value.retry_after == 60
    assert sleeps.waits == [3.0, 1.0, 2.0]


# --- messages, limits, payloads ---------------------------------------------------------------------------------


async def test_chinese_text_goes_as_utf8_json_not_escapes(client: WeComClient, fake: tuple[FakeWeCom, str]) -> None:
    wecom, _ = fake
    await client.send_text("市民来电：路灯不亮", touser=["zhangsan", "lisi"], toparty=[2, 3])
    raw = wecom.raw_bodies[-1]
    assert "市民来电：路灯不亮".encode() in raw
    _, body = wecom.calls("message/send")[-1]
    assert body["touser"] == "zhangsan|lisi"
    assert body["toparty"] == "2|3"
    assert "totag" not in body
    assert body["agentid"] == AGENT_ID
    assert body["msgtype"] == "text"
    assert body["enable_duplicate_check"] == 0
    assert body["duplicate_check_interval"] == 1800


async def test_local_limits_raise_before_any_request(
    client: WeComClient, webhook: WebhookClient, fake: tuple[FakeWeCom, str]
) -> None:
    wecom, _ = fake
    too_long = "字" * 683  # 2049 bytes
    with pytest.raises(ValueError, match="2049 bytes"):
        await client.send_text(too_long, touser="zhangsan")
    with pytest.raises(ValueError, match="at most 2048"):
        await client.send_markdown(too_long, touser="zhangsan")
    with pytest.raises(ValueError, match="at most 2048"):
        await client.appchat_send("chat1", "text", {"content": too_long})
    with pytest.raises(ValueError, match="at least one"):
        await client.send_text("你好")
    with pytest.raises(ValueError, match="at most 1000"):
        await client.send_text("你好", touser=[f"u{i}" for i in range(1001)])
    with pytest.raises(ValueError, match="at most 2048"):
        await webhook.send_text(HOOK_KEY, too_long)
    with pytest.raises(ValueError, match="at most 4096"):
        await webhook.send_markdown(HOOK_KEY, "字" * 1366)
    with pytest.raises(ValueError, match="at most 2097152"):
        await webhook.send_image(HOOK_KEY, b"\x89PNG" + b"\0" * (2 * 1024 * 1024))
    with pytest.raises(ValueError, match="news"):
        await webhook.send_news(HOOK_KEY, [{"title": "t", "url": "https://example.invalid"}] * 9)
    with pytest.raises(ValueError, match="notice"):
        await webhook.send_template_card(HOOK_KEY, {"card_type": "button_interaction"})
    with pytest.raises(ValueError, match="members"):
        await client.appchat_create(userlist=["zhangsan"])
    assert wecom.requests == []
    # right at the limits: sent
    await webhook.send_markdown(HOOK_KEY, "字" * 1365)
    await client.send_text("字" * 682 + "ab", touser="zhangsan")
    assert len(wecom.requests) == 3  # webhook, gettoken, message/send


async def test_template_card_response_code_updates_the_card_once(
    client: WeComClient, fake: tuple[FakeWeCom, str]
) -> None:
    wecom, _ = fake
    card = {
        "card_type": "button_interaction",
        "main_title": {"title": "新工单 12345-0001", "desc": "路灯不亮"},
        "task_id": "t-0001",
        "button_list": [{"text": "认领", "style": 1, "key": "claim:0001"}],
    }
    sent = await client.send_template_card(card, touser="zhangsan")
    assert sent.response_code
    done = {**card, "button_list": [{"text": "已认领", "style": 2, "key": "claimed:0001"}]}
    await client.update_template_card(response_code=sent.response_code, card=done, userids=["zhangsan"])
    _, body = wecom.calls("message/update_template_card")[-1]
    assert body == {
        "agentid": AGENT_ID,
        "response_code": sent.response_code,
        "atall": 0,
        "userids": ["zhangsan"],
        "template_card": done,
    }
    with pytest.raises(BadTemplateCard):  # the code was used
        await client.update_template_card(response_code=sent.response_code, replace_name="已处理", atall=True)
    assert wecom.calls("message/update_template_card")[-1][1]["button"] == {"replace_name": "已处理"}


async def test_appchat_create_get_update_send(client: WeComClient, fake: tuple[FakeWeCom, str]) -> None:
    wecom, _ = fake
    chatid = await client.appchat_create(name="12345 城管组", owner="zhangsan", userlist=["zhangsan", "lisi"])
    await client.appchat_update(chatid, add_user_list=["wangwu"], del_user_list=["lisi"])
    info = await client.appchat_get(chatid)
    assert info["userlist"] == ["zhangsan", "wangwu"]
    assert info["name"] == "12345 城管组"
    await client.appchat_send(chatid, "markdown", {"content": "**新工单** 请认领"})
    _, body = wecom.calls("appchat/send")[-1]
    assert body == {"chatid": chatid, "msgtype": "markdown", "markdown": {"content": "**新工单** 请认领"}, "safe": 0}
    with pytest.raises(ValueError, match="chatid"):
        await client.appchat_create(userlist=["a", "b"], chatid="not-allowed!")


async def test_webhook_image_is_base64_with_the_md5_of_the_raw_bytes(
    webhook: WebhookClient, fake: tuple[FakeWeCom, str]
) -> None:
    wecom, _ = fake
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10
    await webhook.send_image(HOOK_KEY, data)
    query, body = wecom.calls("webhook/send")[-1]
    assert query == {"key": HOOK_KEY}
    assert body["image"]["md5"] == hashlib.md5(data).hexdigest()
    assert base64.b64decode(body["image"]["base64"]) == data


async def test_webhook_text_markdown_news_and_file(webhook: WebhookClient, fake: tuple[FakeWeCom, str]) -> None:
    wecom, _ = fake
    await webhook.send_text(HOOK_KEY, "请处理", mentioned_list=["zhangsan"], mentioned_mobile_list=["13800001111"])
    await webhook.send_markdown(HOOK_KEY, '<font color="warning">超时</font> <@zhangsan>')
    await webhook.send_markdown_v2(HOOK_KEY, "| 工单 | 状态 |\n|---|---|\n| 0001 | 超时 |")
    await webhook.send_news(HOOK_KEY, [{"title": "日报", "url": "https://example.invalid/r"}])
    await webhook.send_template_card(HOOK_KEY, {"card_type": "text_notice", "main_title": {"title": "日报"}})
    await webhook.send_file(HOOK_KEY, "工单,状态\n0001,超时\n".encode("gb18030"), "日报.csv")
    bodies = [b for _, b in wecom.calls("webhook/send")]
    assert bodies[0]["text"] == {
        "content": "请处理",
        "mentioned_list": ["zhangsan"],
        "mentioned_mobile_list": ["13800001111"],
    }
    assert [b["msgtype"] for b in bodies] == ["text", "markdown", "markdown_v2", "news", "template_card", "file"]
    ((query, upload),) = wecom.calls("webhook/upload_media")
    assert query == {"key": HOOK_KEY, "type": "file"}
    assert upload["media"] == ("日报.csv", "工单,状态\n0001,超时\n".encode("gb18030"))
    assert wecom.media[bodies[-1]["file"]["media_id"]] == upload["media"][1]
    with pytest.raises(ValueError, match="bytes"):
        await webhook.send_file(HOOK_KEY, b"tiny", "a.txt")


async def test_webhook_key_never_appears_in_errors_or_logs(
    session: aiohttp.ClientSession, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    webhook = WebhookClient(session, base_url=f"http://127.0.0.1:{_closed_port()}", sleep=sleeps)
    with pytest.raises(TransportError) as caught:
        await webhook.send_text(HOOK_KEY, "你好")
    assert HOOK_KEY not in str(caught.value)
    assert HOOK_KEY not in caplog.text
    assert "webhook/send" in caplog.text


# --- the intelligent robot's response_url -----------------------------------------------------------------------


async def test_response_url_is_used_once_through_base_url(
    session: aiohttp.ClientSession, fake: tuple[FakeWeCom, str], sleeps: Sleeps
) -> None:
    wecom, base = fake
    replies = ResponseUrlClient(session, base_url=base, sleep=sleeps)
    wecom.response_codes.add("RC1")
    url = f"{WECOM_API_BASE}/cgi-bin/aibot/response?response_code=RC1"
    payload = {"msgtype": "markdown", "markdown": {"content": "已受理"}}
    await replies.reply(url, payload)
    assert wecom.calls("aibot/response") == [({"response_code": "RC1"}, payload)]
    with pytest.raises(WeComError) as caught:
        await replies.reply(url, payload)
    assert caught.value.permanent
    assert "RC1" not in str(caught.value)
    with pytest.raises(ValueError, match="response_url"):
        await replies.reply("https://evil.example/cgi-bin/aibot/response?response_code=RC1", payload)


async def test_response_url_retries_only_what_was_certainly_not_taken(
    session: aiohttp.ClientSession, fake: tuple[FakeWeCom, str], sleeps: Sleeps
) -> None:
    wecom, base = fake
    replies = ResponseUrlClient(session, base_url=base, sleep=sleeps)
    wecom.response_codes.update({"RC1", "RC2"})
    payload = {"msgtype": "markdown", "markdown": {"content": "已受理"}}
    wecom.faults["aibot/response"] = [-1]
    await replies.reply(f"{base}/cgi-bin/aibot/response?response_code=RC1", payload)
    assert sleeps.waits == [0.5]
    wecom.faults["aibot/response"] = ["500"]  # may have been taken: not repeated
    with pytest.raises(TransportError):
        await replies.reply(f"{base}/cgi-bin/aibot/response?response_code=RC2", payload)
    assert len(wecom.calls("aibot/response")) == 3


# --- two processes sharing tokens through Redis -----------------------------------------------------------------


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    prefix = f"test:{uuid.uuid4().hex}:"
    yield prefix
    redis = create_redis(REDIS_URL)
    try:
        keys = [key async for key in redis.scan_iter(match=prefix + "*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


@pytest.mark.redis
async def test_two_processes_share_one_token_through_redis(
    make_client: Callable[..., WeComClient], fake: tuple[FakeWeCom, str], fclock: FakeClock, redis_prefix: str
) -> None:
    wecom, _ = fake
    redis_a, redis_b = create_redis(REDIS_URL), create_redis(REDIS_URL)
    try:
        a = make_client(tokens=RedisTokenStore(redis_a, prefix=redis_prefix, clock=fclock, poll=0.01))
        b = make_client(tokens=RedisTokenStore(redis_b, prefix=redis_prefix, clock=fclock, poll=0.01))
        results = await asyncio.gather(
            *(c.send_text(f"推送 {i}", touser="zhangsan") for i in range(10) for c in (a, b))
        )
        assert all(r.msgid for r in results)
        assert wecom.gettoken_calls == 1
        wecom.revoke_all()
        await asyncio.gather(*(c.send_text("再推送", touser="zhangsan") for c in (a, b, a, b)))
        assert wecom.gettoken_calls == 2
    finally:
        await redis_a.aclose()
        await redis_b.aclose()
