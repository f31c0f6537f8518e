"""The WeCom API client against the fake WeCom served over real HTTP: tokens, retries, typed errors, limits, and
the requests WeCom received."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web

from bot.domain.clock import FrozenClock
from bot.sandbox.fake import FakeWeCom
from bot.sandbox.fake.model import App
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
from tests.wecom.conftest import ServeFake, Sleeper

CORP_ID = "ww0123456789abcdef"
SECRET = "corp-secret-DO-NOT-LOG-9f8e7d"
AGENT_ID = 1000002
HOOK_KEY = "hook-key-DO-NOT-LOG-1a2b3c"

GETTOKEN = "/cgi-bin/gettoken"
SEND = "/cgi-bin/message/send"
UPDATE_CARD = "/cgi-bin/message/update_template_card"
APPCHAT_GET = "/cgi-bin/appchat/get"
APPCHAT_SEND = "/cgi-bin/appchat/send"
WEBHOOK_SEND = "/cgi-bin/webhook/send"
UPLOAD = "/cgi-bin/webhook/upload_media"
AIBOT_RESPONSE = "/cgi-bin/aibot/response"


class RevokingWeCom(FakeWeCom):
    """The fake WeCom revoking every token when the ``revoke_at``-th ``message/send`` arrives (that one included),
    as WeCom may in the middle of a burst."""

    revoke_at: int | None = None
    sends = 0

    def authenticate(self, request: web.Request) -> App:
        if request.path == SEND:
            self.sends += 1
            if self.sends == self.revoke_at:
                self.expire_tokens()
        return super().authenticate(request)


@pytest.fixture
async def fake(serve_fake: ServeFake) -> RevokingWeCom:
    wecom = await serve_fake(
        RevokingWeCom,
        corp_id=CORP_ID,
        secrets={SECRET: AGENT_ID},
        webhook_keys=[HOOK_KEY],
        members=["zhangsan", "lisi", "wangwu"],
    )
    assert isinstance(wecom, RevokingWeCom)
    return wecom


def requests(fake: FakeWeCom, path: str) -> int:
    return fake.stats[path].requests


def gettokens(fake: FakeWeCom) -> int:
    return requests(fake, GETTOKEN)


def tokens_used(fake: FakeWeCom, path: str = SEND) -> list[str]:
    return [r.query["access_token"] for r in fake.requests_to(path)]


@pytest.fixture
def make_client(
    fake: FakeWeCom, session: aiohttp.ClientSession, sleeper: Sleeper, wall: Callable[[], float]
) -> Callable[..., WeComClient]:
    def make(**overrides: Any) -> WeComClient:
        options: dict[str, Any] = {
            "base_url": fake.base_url,
            "corp_id": CORP_ID,
            "secret": SECRET,
            "agent_id": AGENT_ID,
            "tokens": MemoryTokenStore(),
            "clock": wall,
            "sleep": sleeper,
        }
        options.update(overrides)
        return WeComClient(session, **options)

    return make


@pytest.fixture
def client(make_client: Callable[..., WeComClient]) -> WeComClient:
    return make_client()


@pytest.fixture
def webhook(fake: FakeWeCom, session: aiohttp.ClientSession, sleeper: Sleeper) -> WebhookClient:
    assert fake.base_url is not None
    return WebhookClient(session, base_url=fake.base_url, sleep=sleeper)


def response_code(fake: FakeWeCom) -> str:
    """A one-use response_code, as an intelligent-robot callback's ``response_url`` carries it."""
    return parse_qs(urlsplit(fake.response_url()).query)["response_code"][0]


# --- tokens -----------------------------------------------------------------------------------------------------


async def test_token_is_fetched_once_and_sent_in_the_query(client: WeComClient, fake: FakeWeCom) -> None:
    for i in range(3):
        result = await client.send_text(f"工单 {i} 已受理", touser=["zhangsan"])
        assert result.msgid
    assert gettokens(fake) == 1
    sends = fake.requests_to(SEND)
    assert len(sends) == 3
    assert len(set(tokens_used(fake))) == 1
    assert all("access_token" not in r.body for r in sends)


async def test_token_is_refreshed_before_it_expires(client: WeComClient, fake: FakeWeCom, clock: FrozenClock) -> None:
    await client.send_text("一", touser="zhangsan")
    clock.advance(seconds=7200 - 300 - 1)  # still inside expires_in - margin
    await client.send_text("二", touser="zhangsan")
    assert gettokens(fake) == 1
    clock.advance(seconds=2)  # past it: refreshed although WeCom would still accept the old one
    await client.send_text("三", touser="zhangsan")
    assert gettokens(fake) == 2
    assert len(fake.messages_to(userid="zhangsan")) == 3


async def test_token_revoked_in_the_middle_of_a_burst_is_refetched_once(
    client: WeComClient, fake: RevokingWeCom, sleeper: Sleeper
) -> None:
    await client.send_text("预热", touser="zhangsan")
    fake.revoke_at = 1 + 20  # WeCom invalidates the token at the 20th send of the burst
    results = await asyncio.gather(*(client.send_text(f"推送 {i}", touser="lisi") for i in range(50)))
    assert len(results) == 50
    assert all(r.msgid for r in results)
    assert gettokens(fake) == 2  # the first fetch and exactly one refetch
    assert sleeper.delays == []  # token errors are not backed off
    used = tokens_used(fake)
    assert len(set(used)) == 2
    assert len(used) > 1 + 50  # some sends met the revoked token and were retried


async def test_token_expiring_on_the_clock_in_the_middle_of_a_burst_is_refetched_once(
    client: WeComClient, fake: FakeWeCom, clock: FrozenClock
) -> None:
    await client.send_text("预热", touser="zhangsan")

    async def send(i: int) -> str:
        if i == 25:
            clock.advance(seconds=7200)  # time passes half way through the burst
        return (await client.send_text(f"推送 {i}", touser="lisi")).msgid

    msgids = await asyncio.gather(*(send(i) for i in range(50)))
    assert all(msgids)
    assert gettokens(fake) == 2


@pytest.mark.parametrize("errcode", [40014, 42001, 40001])
async def test_invalid_token_refetches_and_retries_once(
    client: WeComClient, fake: FakeWeCom, sleeper: Sleeper, errcode: int
) -> None:
    await client.send_text("预热", touser="zhangsan")
    fake.inject(errcode, path=SEND)
    result = await client.send_text("重试", touser="zhangsan")
    assert result.msgid
    assert gettokens(fake) == 2
    assert requests(fake, SEND) == 3
    assert sleeper.delays == []


async def test_a_second_invalid_token_surfaces_instead_of_looping(client: WeComClient, fake: FakeWeCom) -> None:
    fake.inject(42001, path=SEND)
    fake.inject(40014, times=3, path=SEND)
    with pytest.raises(TokenInvalid) as caught:
        await client.send_text("重试", touser="zhangsan")
    assert caught.value.errcode == 40014
    assert caught.value.path == "message/send"
    assert gettokens(fake) == 2
    assert requests(fake, SEND) == 2


async def test_wrong_secret_is_permanent_and_not_a_token_loop(
    make_client: Callable[..., WeComClient], fake: FakeWeCom, sleeper: Sleeper
) -> None:
    client = make_client(secret="wrong-secret")
    with pytest.raises(WeComError) as caught:
        await client.send_text("你好", touser="zhangsan")
    assert not isinstance(caught.value, TokenInvalid)
    assert caught.value.errcode == 40001
    assert caught.value.permanent
    assert not caught.value.retryable
    assert gettokens(fake) == 1
    assert sleeper.delays == []
    assert "wrong-secret" not in str(caught.value)


async def test_gettoken_busy_is_retried(client: WeComClient, fake: FakeWeCom, sleeper: Sleeper) -> None:
    fake.inject(-1, path=GETTOKEN)
    assert (await client.send_text("你好", touser="zhangsan")).msgid
    assert gettokens(fake) == 2
    assert sleeper.delays == [0.5]


# --- retries and typed errors -----------------------------------------------------------------------------------


async def test_busy_is_retried_with_backoff_then_succeeds(
    client: WeComClient, fake: FakeWeCom, sleeper: Sleeper
) -> None:
    fake.inject(-1, times=2, path=SEND)
    assert (await client.send_text("你好", touser="zhangsan")).msgid
    assert requests(fake, SEND) == 3
    assert sleeper.delays == [0.5, 1.0]


async def test_busy_after_the_last_retry_is_raised(client: WeComClient, fake: FakeWeCom, sleeper: Sleeper) -> None:
    fake.inject(-1, times=10, path=SEND)
    with pytest.raises(Busy) as caught:
        await client.send_text("你好", touser="zhangsan")
    assert caught.value.retryable
    assert not caught.value.permanent
    assert requests(fake, SEND) == 4  # the call and max_retries=3 retries
    assert sleeper.delays == [0.5, 1.0, 2.0]


@pytest.mark.parametrize(
    ("errcode", "error"),
    [(60020, IpNotTrusted), (81013, InvalidRecipients), (42045, BadTemplateCard), (40008, WeComError)],
)
async def test_permanent_errors_are_raised_without_retry(
    client: WeComClient, fake: FakeWeCom, sleeper: Sleeper, errcode: int, error: type[WeComError]
) -> None:
    fake.inject(errcode, path=SEND)
    with pytest.raises(error) as caught:
        await client.send_text("你好", touser="zhangsan")
    assert type(caught.value) is error
    assert caught.value.permanent
    assert not caught.value.retryable
    assert requests(fake, SEND) == 1
    assert sleeper.delays == []


async def test_all_recipients_invalid_is_81013_and_some_invalid_are_reported(
    client: WeComClient, fake: FakeWeCom
) -> None:
    with pytest.raises(InvalidRecipients):
        await client.send_text("你好", touser=["ghost1", "ghost2"])
    result = await client.send_text("你好", touser=["zhangsan", "ghost1"])
    assert result.invalid_users == ("ghost1",)
    assert [m.to["touser"] for m in fake.messages_to()] == ["zhangsan"]


async def test_bad_webhook_key_is_permanent(webhook: WebhookClient, fake: FakeWeCom, sleeper: Sleeper) -> None:
    with pytest.raises(BadWebhookKey):
        await webhook.send_text("not-the-key", "你好")
    assert requests(fake, WEBHOOK_SEND) == 1
    assert sleeper.delays == []


async def test_http_500_on_a_read_is_a_transport_error_after_the_retries(
    client: WeComClient, fake: FakeWeCom, sleeper: Sleeper
) -> None:
    await client.appchat_create(userlist=["zhangsan", "lisi"], chatid="c1")
    fake.inject("server_error", times=4, path=APPCHAT_GET)
    with pytest.raises(TransportError) as caught:
        await client.appchat_get("c1")
    assert caught.value.status == 500
    assert caught.value.errcode == -2
    assert caught.value.retryable
    assert requests(fake, APPCHAT_GET) == 4
    assert sleeper.delays == [0.5, 1.0, 2.0]
    fake.inject("server_error", path=APPCHAT_GET)
    assert (await client.appchat_get("c1"))["chatid"] == "c1"
    assert requests(fake, APPCHAT_GET) == 6


async def test_http_500_on_a_send_into_a_chat_is_not_repeated(
    client: WeComClient, webhook: WebhookClient, fake: FakeWeCom, sleeper: Sleeper
) -> None:
    """The gateway's 500 may come after WeCom delivered the message: the caller decides what to do, not the
    client, which would show it twice in a chat that has no duplicate check."""
    await client.appchat_create(userlist=["zhangsan", "lisi"], chatid="c1")
    for path, send in (
        (WEBHOOK_SEND, lambda: webhook.send_text(HOOK_KEY, "你好")),
        (APPCHAT_SEND, lambda: client.appchat_send("c1", "text", {"content": "你好"})),
        (SEND, lambda: client.send_text("你好", touser="zhangsan")),
    ):
        fake.inject("server_error", path=path)
        with pytest.raises(TransportError) as caught:
            await send()
        assert caught.value.request_sent
        assert caught.value.status == 500
        assert requests(fake, path) == 1
    assert sleeper.delays == []


async def test_a_reset_after_the_request_reached_wecom_is_not_repeated(
    client: WeComClient, webhook: WebhookClient, fake: FakeWeCom, sleeper: Sleeper
) -> None:
    await client.appchat_create(userlist=["zhangsan", "lisi"], chatid="c1")
    fake.inject("drop_after", path=WEBHOOK_SEND)
    fake.inject("drop_after", path=APPCHAT_SEND)
    with pytest.raises(TransportError) as caught:
        await webhook.send_markdown(HOOK_KEY, "**新工单 2026112300001**")
    assert caught.value.request_sent
    with pytest.raises(TransportError) as caught:
        await client.appchat_send("c1", "markdown", {"content": "**新工单 2026112300001**"})
    assert caught.value.request_sent
    assert requests(fake, WEBHOOK_SEND) == requests(fake, APPCHAT_SEND) == 1
    assert len(fake.messages_to(webhook_key=HOOK_KEY)) == len(fake.messages_to(chatid="c1")) == 1  # carried out
    assert sleeper.delays == []
    # an errcode is an answer, and so is 408 (the server gave up waiting for the request): not carried out, retried
    fake.inject(-1, path=WEBHOOK_SEND)
    fake.inject(45009, path=WEBHOOK_SEND)
    fake.inject("request_timeout", path=WEBHOOK_SEND)
    await webhook.send_markdown(HOOK_KEY, "**新工单 2026112300002**")
    assert requests(fake, WEBHOOK_SEND) == 5
    assert len(fake.messages_to(webhook_key=HOOK_KEY)) == 2
    assert sleeper.delays == [0.5, 1.0, 2.0]


async def test_a_token_that_could_not_be_fetched_sent_nothing_and_is_retried(
    client: WeComClient, fake: FakeWeCom, sleeper: Sleeper
) -> None:
    fake.inject("server_error", path=GETTOKEN)
    await client.appchat_create(userlist=["zhangsan", "lisi"], chatid="c1")
    assert gettokens(fake) == 2
    assert requests(fake, "/cgi-bin/appchat/create") == 1
    assert sleeper.delays == [0.5]


async def test_timeouts_are_transport_errors_retried_only_when_repeatable(
    make_client: Callable[..., WeComClient], fake: FakeWeCom, sleeper: Sleeper
) -> None:
    client = make_client(timeout=0.05, max_retries=2)
    await client.appchat_create(userlist=["zhangsan", "lisi"], chatid="c1")
    fake.inject("slow", times=3, path=APPCHAT_GET, delay=0.5)
    with pytest.raises(TransportError) as caught:
        await client.appchat_get("c1")
    assert "Timeout" in caught.value.errmsg
    assert caught.value.request_sent
    assert sleeper.delays == [0.5, 1.0]
    fake.inject("slow", path=SEND, delay=0.5)
    with pytest.raises(TransportError) as caught:
        await client.send_text("你好", touser="zhangsan")  # written, then no answer: it may have arrived
    assert "Timeout" in caught.value.errmsg
    assert caught.value.request_sent
    assert sleeper.delays == [0.5, 1.0]
    assert requests(fake, SEND) == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_network_errors_are_transport_errors_and_leak_no_secret(
    make_client: Callable[..., WeComClient], sleeper: Sleeper, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(base_url=f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(TransportError) as caught:
        await client.send_text("你好", touser="zhangsan")
    assert not caught.value.request_sent
    assert caught.value.path == "gettoken"
    assert sleeper.delays == [0.5, 1.0, 2.0]
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert SECRET not in str(caught.value)
    assert SECRET not in caplog.text


async def test_rate_limit_honours_retry_after_and_leaves_long_waits_to_the_caller(
    client: WeComClient, fake: FakeWeCom, sleeper: Sleeper
) -> None:
    fake.inject("too_many_requests", path=SEND, delay=3)
    fake.inject(45009, path=SEND)
    fake.inject(45033, path=SEND)
    assert (await client.send_text("你好", touser="zhangsan")).msgid
    assert sleeper.delays == [3.0, 1.0, 2.0]  # the hint, then backoff for hints WeCom does not give
    fake.inject("too_many_requests", path=SEND, delay=60)
    with pytest.raises(RateLimited) as caught:
        await client.send_text("你好", touser="zhangsan")
    assert caught.value.retry_after == 60
    assert sleeper.delays == [3.0, 1.0, 2.0]


# --- messages, limits, payloads ---------------------------------------------------------------------------------


async def test_chinese_text_goes_as_utf8_json_not_escapes(client: WeComClient, fake: FakeWeCom) -> None:
    await client.send_text("市民来电：路灯不亮", touser=["zhangsan", "lisi"], toparty=[2, 3])
    sent = fake.requests_to(SEND)[-1]
    assert "市民来电：路灯不亮".encode() in sent.raw
    assert b"\\u" not in sent.raw
    body = sent.body
    assert body["touser"] == "zhangsan|lisi"
    assert body["toparty"] == "2|3"
    assert "totag" not in body
    assert body["agentid"] == AGENT_ID
    assert body["msgtype"] == "text"
    assert body["enable_duplicate_check"] == 0
    assert body["duplicate_check_interval"] == 1800


async def test_local_limits_raise_before_any_request(
    client: WeComClient, webhook: WebhookClient, fake: FakeWeCom
) -> None:
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
    assert list(fake.received) == []
    # right at the limits: sent, and taken by WeCom
    await webhook.send_markdown(HOOK_KEY, "字" * 1365)
    await client.send_text("字" * 682 + "ab", touser="zhangsan")
    assert [r.path for r in fake.received] == [WEBHOOK_SEND, GETTOKEN, SEND]
    assert len(fake.delivered) == 2


async def test_template_card_response_code_updates_the_card_once(client: WeComClient, fake: FakeWeCom) -> None:
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
    assert fake.requests_to(UPDATE_CARD)[-1].body == {
        "agentid": AGENT_ID,
        "response_code": sent.response_code,
        "atall": 0,
        "userids": ["zhangsan"],
        "template_card": done,
    }
    with pytest.raises(WeComError) as caught:  # the code was used
        await client.update_template_card(response_code=sent.response_code, replace_name="已处理", atall=True)
    assert caught.value.permanent
    assert fake.requests_to(UPDATE_CARD)[-1].body["button"] == {"replace_name": "已处理"}
    assert [d.kind for d in fake.delivered] == ["app", "update_card"]


async def test_appchat_create_get_update_send(client: WeComClient, fake: FakeWeCom) -> None:
    chatid = await client.appchat_create(name="12345 城管组", owner="zhangsan", userlist=["zhangsan", "lisi"])
    await client.appchat_update(chatid, add_user_list=["wangwu"], del_user_list=["lisi"])
    info = await client.appchat_get(chatid)
    assert info["userlist"] == ["zhangsan", "wangwu"]
    assert info["name"] == "12345 城管组"
    await client.appchat_send(chatid, "markdown", {"content": "**新工单** 请认领"})
    body = fake.requests_to(APPCHAT_SEND)[-1].body
    assert body == {"chatid": chatid, "msgtype": "markdown", "markdown": {"content": "**新工单** 请认领"}, "safe": 0}
    assert fake.messages_to(chatid=chatid)[0].to["members"] == ["zhangsan", "wangwu"]
    with pytest.raises(ValueError, match="chatid"):
        await client.appchat_create(userlist=["a", "b"], chatid="not-allowed!")


async def test_webhook_image_is_base64_with_the_md5_of_the_raw_bytes(webhook: WebhookClient, fake: FakeWeCom) -> None:
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10
    await webhook.send_image(HOOK_KEY, data)
    sent = fake.requests_to(WEBHOOK_SEND)[-1]
    assert sent.query == {"key": HOOK_KEY}
    assert sent.body["image"]["md5"] == hashlib.md5(data).hexdigest()
    assert base64.b64decode(sent.body["image"]["base64"]) == data
    assert fake.messages_to(webhook_key=HOOK_KEY)[0].msgtype == "image"


async def test_webhook_text_markdown_news_and_file(webhook: WebhookClient, fake: FakeWeCom) -> None:
    csv = "工单,状态\n0001,超时\n".encode("gb18030")
    await webhook.send_text(HOOK_KEY, "请处理", mentioned_list=["zhangsan"], mentioned_mobile_list=["13800001111"])
    await webhook.send_markdown(HOOK_KEY, '<font color="warning">超时</font> <@zhangsan>')
    await webhook.send_markdown_v2(HOOK_KEY, "| 工单 | 状态 |\n|---|---|\n| 0001 | 超时 |")
    await webhook.send_news(HOOK_KEY, [{"title": "日报", "url": "https://example.invalid/r"}])
    notice = {
        "card_type": "text_notice",
        "main_title": {"title": "日报"},
        "card_action": {"type": 1, "url": "https://example.invalid/r"},
    }
    await webhook.send_template_card(HOOK_KEY, notice)
    await webhook.send_file(HOOK_KEY, csv, "日报.csv")
    bodies = [r.body for r in fake.requests_to(WEBHOOK_SEND)]
    assert bodies[0]["text"] == {
        "content": "请处理",
        "mentioned_list": ["zhangsan"],
        "mentioned_mobile_list": ["13800001111"],
    }
    assert [b["msgtype"] for b in bodies] == ["text", "markdown", "markdown_v2", "news", "template_card", "file"]
    assert [d.msgtype for d in fake.messages_to(webhook_key=HOOK_KEY)] == [b["msgtype"] for b in bodies]
    (upload,) = fake.requests_to(UPLOAD)
    assert upload.query == {"key": HOOK_KEY, "type": "file"}
    media = fake.media[bodies[-1]["file"]["media_id"]]
    assert (media.filename, media.size, media.md5) == ("日报.csv", len(csv), hashlib.md5(csv).hexdigest())
    with pytest.raises(ValueError, match="bytes"):
        await webhook.send_file(HOOK_KEY, b"tiny", "a.txt")


async def test_webhook_key_never_appears_in_errors_or_logs(
    session: aiohttp.ClientSession, sleeper: Sleeper, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    webhook = WebhookClient(session, base_url=f"http://127.0.0.1:{_closed_port()}", sleep=sleeper)
    with pytest.raises(TransportError) as caught:
        await webhook.send_text(HOOK_KEY, "你好")
    assert HOOK_KEY not in str(caught.value)
    assert HOOK_KEY not in caplog.text
    assert "webhook/send" in caplog.text


# --- the intelligent robot's response_url -----------------------------------------------------------------------


async def test_response_url_is_used_once_through_base_url(
    session: aiohttp.ClientSession, fake: FakeWeCom, sleeper: Sleeper
) -> None:
    assert fake.base_url is not None
    replies = ResponseUrlClient(session, base_url=fake.base_url, sleep=sleeper)
    code = response_code(fake)
    url = f"{WECOM_API_BASE}/cgi-bin/aibot/response?response_code={code}"
    payload = {"msgtype": "markdown", "markdown": {"content": "已受理"}}
    await replies.reply(url, payload)
    assert [(r.query, r.body) for r in fake.requests_to(AIBOT_RESPONSE)] == [({"response_code": code}, payload)]
    assert [d.kind for d in fake.delivered] == ["response_url"]
    with pytest.raises(WeComError) as caught:
        await replies.reply(url, payload)
    assert caught.value.permanent
    assert code not in str(caught.value)
    with pytest.raises(ValueError, match="response_url"):
        await replies.reply(f"https://evil.example/cgi-bin/aibot/response?response_code={code}", payload)


async def test_response_url_retries_only_what_was_certainly_not_taken(
    session: aiohttp.ClientSession, fake: FakeWeCom, sleeper: Sleeper
) -> None:
    base = fake.base_url
    assert base is not None
    replies = ResponseUrlClient(session, base_url=base, sleep=sleeper)
    first, second = response_code(fake), response_code(fake)
    payload = {"msgtype": "markdown", "markdown": {"content": "已受理"}}
    fake.inject(-1, path=AIBOT_RESPONSE)
    await replies.reply(f"{base}/cgi-bin/aibot/response?response_code={first}", payload)
    assert sleeper.delays == [0.5]
    fake.inject("server_error", path=AIBOT_RESPONSE)  # may have been taken: not repeated
    with pytest.raises(TransportError):
        await replies.reply(f"{base}/cgi-bin/aibot/response?response_code={second}", payload)
    assert requests(fake, AIBOT_RESPONSE) == 3


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
    make_client: Callable[..., WeComClient], fake: FakeWeCom, wall: Callable[[], float], redis_prefix: str
) -> None:
    redis_a, redis_b = create_redis(REDIS_URL), create_redis(REDIS_URL)
    try:
        a = make_client(tokens=RedisTokenStore(redis_a, prefix=redis_prefix, clock=wall, poll=0.01))
        b = make_client(tokens=RedisTokenStore(redis_b, prefix=redis_prefix, clock=wall, poll=0.01))
        results = await asyncio.gather(
            *(c.send_text(f"推送 {i}", touser="zhangsan") for i in range(10) for c in (a, b))
        )
        assert all(r.msgid for r in results)
        assert gettokens(fake) == 1
        fake.expire_tokens()
        await asyncio.gather(*(c.send_text("再推送", touser="zhangsan") for c in (a, b, a, b)))
        assert gettokens(fake) == 2
    finally:
        await redis_a.aclose()
        await redis_b.aclose()
