"""The fake WeCom over real HTTP: tokens, every errcode path, limits, one-use codes, faults, group chats, robots."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bot.domain.clock import FrozenClock
from bot.sandbox.fake import FakeWeCom, make_app, serve

Client = TestClient[Any, Any]

CORP = "ww0123456789abcdef"
SECRET = "app-secret-1"
OTHER_SECRET = "app-secret-2"
AGENT = 1000002
OTHER_AGENT = 1000003
KEY = "robot-key-1"
OTHER_KEY = "robot-key-2"
MEMBERS = ["ZhangSan", "lisi", "wangwu"]


def make_fake(clock: FrozenClock, **options: Any) -> FakeWeCom:
    return FakeWeCom(
        corp_id=CORP,
        secrets={SECRET: str(AGENT), OTHER_SECRET: str(OTHER_AGENT)},
        webhook_keys=[KEY, OTHER_KEY],
        members=MEMBERS,
        clock=clock.now,
        parties={2: ["lisi", "wangwu"]},
        tags={"7": ["wangwu"]},
        slow_delay=0.01,
        **options,
    )


@pytest.fixture
def fake(clock: FrozenClock) -> FakeWeCom:
    return make_fake(clock)


@pytest.fixture
async def client(aiohttp_client: Callable[..., Awaitable[Client]], fake: FakeWeCom) -> Client:
    return await aiohttp_client(make_app(fake))


async def get(client: Client, path: str, **params: Any) -> dict[str, Any]:
    response = await client.get(path, params=params)
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    assert "errcode" in body
    assert "errmsg" in body
    return body


async def post(client: Client, path: str, data: Any, **params: Any) -> dict[str, Any]:
    response = await client.post(path, params=params, json=data)
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    assert "errcode" in body
    assert "errmsg" in body
    if body["errcode"] != 0:
        assert response.headers["error-code"] == str(body["errcode"])
    return body


async def token(client: Client, secret: str = SECRET) -> str:
    answer = await get(client, "/cgi-bin/gettoken", corpid=CORP, corpsecret=secret)
    assert answer["errcode"] == 0, answer
    return str(answer["access_token"])


def text(content: str, touser: str = "zhangsan", agentid: int = AGENT, **extra: Any) -> dict[str, Any]:
    return {"touser": touser, "msgtype": "text", "agentid": agentid, "text": {"content": content}, **extra}


async def send(client: Client, body: dict[str, Any], secret: str = SECRET) -> dict[str, Any]:
    return await post(client, "/cgi-bin/message/send", body, access_token=await token(client, secret))


def button_card(task_id: str = "task-1") -> dict[str, Any]:
    return {
        "touser": "zhangsan",
        "msgtype": "template_card",
        "agentid": AGENT,
        "template_card": {
            "card_type": "button_interaction",
            "main_title": {"title": "工单 2026112300123"},
            "task_id": task_id,
            "button_list": [{"text": "接单", "key": "accept"}, {"text": "退回", "key": "return", "style": 2}],
        },
    }


# ---- tokens ---------------------------------------------------------------------------------------------------


async def test_gettoken_issues_a_token_for_7200_seconds_and_the_same_one_while_valid(
    client: Client, clock: FrozenClock
) -> None:
    first = await get(client, "/cgi-bin/gettoken", corpid=CORP, corpsecret=SECRET)
    assert first["errcode"] == 0
    assert first["errmsg"] == "ok"
    assert first["expires_in"] == 7200
    assert len(first["access_token"]) > 64
    clock.advance(seconds=600)
    again = await get(client, "/cgi-bin/gettoken", corpid=CORP, corpsecret=SECRET)
    assert again["access_token"] == first["access_token"]
    assert again["expires_in"] == 6600
    other = await get(client, "/cgi-bin/gettoken", corpid=CORP, corpsecret=OTHER_SECRET)
    assert other["access_token"] != first["access_token"]


@pytest.mark.parametrize(
    ("params", "errcode"),
    [
        ({"corpid": "wrong", "corpsecret": SECRET}, 40013),
        ({"corpid": CORP, "corpsecret": "wrong"}, 40001),
        ({"corpsecret": SECRET}, 41002),
        ({"corpid": CORP}, 41004),
    ],
)
async def test_gettoken_refuses_wrong_credentials(client: Client, params: dict[str, str], errcode: int) -> None:
    answer = await get(client, "/cgi-bin/gettoken", **params)
    assert answer["errcode"] == errcode
    assert f"e={errcode}" in answer["errmsg"]
    assert "access_token" not in answer


async def test_gettoken_is_rate_limited_per_secret(
    aiohttp_client: Callable[..., Awaitable[Client]], clock: FrozenClock
) -> None:
    client = await aiohttp_client(make_app(make_fake(clock, gettoken_per_minute=3)))
    for _ in range(3):
        await token(client)
    limited = await get(client, "/cgi-bin/gettoken", corpid=CORP, corpsecret=SECRET)
    assert limited["errcode"] == 45009
    await token(client, OTHER_SECRET)  # another app's secret has its own budget
    clock.advance(seconds=60)
    await token(client)


async def test_token_expires_after_7200_seconds(client: Client, clock: FrozenClock) -> None:
    access_token = await token(client)
    clock.advance(seconds=7199)
    ok = await post(client, "/cgi-bin/message/send", text("还在"), access_token=access_token)
    assert ok["errcode"] == 0
    clock.advance(seconds=1)
    expired = await post(client, "/cgi-bin/message/send", text("过期"), access_token=access_token)
    assert expired["errcode"] == 42001
    fresh = await token(client)
    assert fresh != access_token
    assert (await post(client, "/cgi-bin/message/send", text("新"), access_token=fresh))["errcode"] == 0


async def test_expire_tokens_turns_every_issued_token_into_42001(client: Client, fake: FakeWeCom) -> None:
    access_token = await token(client)
    fake.expire_tokens()
    answer = await post(client, "/cgi-bin/message/send", text("x"), access_token=access_token)
    assert answer["errcode"] == 42001
    assert await token(client) != access_token


async def test_missing_and_unknown_tokens(client: Client) -> None:
    assert (await post(client, "/cgi-bin/message/send", text("x")))["errcode"] == 41001
    assert (await post(client, "/cgi-bin/message/send", text("x"), access_token="nonsense"))["errcode"] == 40014


async def test_untrusted_ip_answers_60020(aiohttp_client: Callable[..., Awaitable[Client]], clock: FrozenClock) -> None:
    client = await aiohttp_client(make_app(make_fake(clock, trusted_ips=["10.1.2.3"])))
    access_token = await token(client)  # gettoken itself is not IP-bound
    answer = await post(client, "/cgi-bin/message/send", text("x"), access_token=access_token)
    assert answer["errcode"] == 60020
    assert "from ip: 127.0.0.1" in answer["errmsg"]


# ---- message/send -----------------------------------------------------------------------------------------------


async def test_text_message_is_delivered_to_each_member(client: Client, fake: FakeWeCom, clock: FrozenClock) -> None:
    answer = await send(client, text("您有新工单", touser="ZHANGSAN|lisi"))
    assert answer["errcode"] == 0
    assert answer["errmsg"] == "ok"
    assert answer["invaliduser"] == ""
    assert answer["msgid"]
    [to_zhang] = fake.messages_to(userid="zhangsan")
    assert to_zhang.kind == "app"
    assert to_zhang.to == {"touser": "ZhangSan", "agentid": AGENT}
    assert to_zhang.msgtype == "text"
    assert to_zhang.body["text"]["content"] == "您有新工单"
    assert to_zhang.at == clock.now()
    assert to_zhang.msgid == answer["msgid"]
    assert len(fake.messages_to(userid="lisi")) == 1
    assert fake.messages_to(userid="wangwu") == []


async def test_partly_invalid_recipients_are_named_and_all_invalid_is_81013(client: Client, fake: FakeWeCom) -> None:
    partly = await send(client, text("x", touser="zhangsan|Ghost", toparty="2|99", totag="7|8"))
    assert partly["errcode"] == 0
    assert partly["invaliduser"] == "ghost"
    assert partly["invalidparty"] == "99"
    assert partly["invalidtag"] == "8"
    assert {d.to["touser"] for d in fake.delivered} == {"ZhangSan", "lisi", "wangwu"}
    nobody = await send(client, text("x", touser="ghost|nobody"))
    assert nobody["errcode"] == 81013
    assert nobody["invaliduser"] == "ghost|nobody"
    assert "user & party & tag all invalid" in nobody["errmsg"]
    assert (await send(client, text("x", touser="")))["errcode"] == 81013


async def test_touser_all_reaches_every_member(client: Client, fake: FakeWeCom) -> None:
    assert (await send(client, text("全员通知", touser="@all")))["errcode"] == 0
    assert len(fake.delivered) == len(MEMBERS)


@pytest.mark.parametrize(
    ("change", "errcode"),
    [
        ({"agentid": OTHER_AGENT}, 301002),
        ({"agentid": None}, 41011),
        ({"agentid": "abc"}, 40056),
        ({"msgtype": "music"}, 40008),
        ({"text": {"content": ""}}, 44004),
        ({"text": None}, 44004),
        ({"touser": 12.5}, 40058),
    ],
)
async def test_message_send_errcodes(client: Client, change: dict[str, Any], errcode: int) -> None:
    answer = await send(client, {**text("x"), **change})
    assert answer["errcode"] == errcode


async def test_body_that_is_not_json_is_40058(client: Client) -> None:
    response = await client.post(
        "/cgi-bin/message/send", params={"access_token": await token(client)}, data=b"{not json"
    )
    assert (await response.json())["errcode"] == 40058


async def test_text_and_markdown_are_limited_to_2048_bytes_on_the_app(client: Client, fake: FakeWeCom) -> None:
    exactly = "工" * 682 + "ab"  # 2048 bytes in UTF-8
    assert (await send(client, text(exactly)))["errcode"] == 0
    assert (await send(client, text(exactly + "c")))["errcode"] == 45002
    markdown = {"touser": "zhangsan", "msgtype": "markdown", "agentid": AGENT, "markdown": {"content": "#" * 2049}}
    assert (await send(client, markdown))["errcode"] == 45002
    markdown["markdown"] = {"content": "**加急** 工单"}
    assert (await send(client, markdown))["errcode"] == 0
    assert len(fake.delivered) == 2


async def test_textcard_needs_title_description_and_url(client: Client) -> None:
    card = {"title": "新工单", "description": "<div>某路口店招破损</div>", "url": "https://example.invalid/t/1"}
    body = {"touser": "zhangsan", "msgtype": "textcard", "agentid": AGENT, "textcard": card}
    assert (await send(client, body))["errcode"] == 0
    assert (await send(client, {**body, "textcard": {**card, "description": ""}}))["errcode"] == 41033
    assert (await send(client, {**body, "textcard": {**card, "url": ""}}))["errcode"] == 41010


async def test_thirty_messages_a_minute_per_member_then_silent_drops(
    client: Client, fake: FakeWeCom, clock: FrozenClock
) -> None:
    access_token = await token(client)
    for n in range(30):
        answer = await post(client, "/cgi-bin/message/send", text(f"第{n}条"), access_token=access_token)
        assert answer["errcode"] == 0
    over = await post(
        client, "/cgi-bin/message/send", text("第31条", touser="zhangsan|lisi"), access_token=access_token
    )
    assert over["errcode"] == 0  # WeCom does not say
    assert over["msgid"]
    assert len(fake.messages_to(userid="zhangsan")) == 30
    assert [d.to["touser"] for d in fake.messages_to(userid="lisi")] == ["lisi"]  # lisi is under the limit
    [dropped] = fake.dropped
    assert dropped.to == {"touser": "ZhangSan", "agentid": AGENT}
    assert dropped.reason == "member_rate_limit"
    assert dropped.body["text"]["content"] == "第31条"
    clock.advance(seconds=60)
    answer = await post(client, "/cgi-bin/message/send", text("下一分钟"), access_token=access_token)
    assert answer["errcode"] == 0
    assert fake.messages_to(userid="zhangsan")[-1].body["text"]["content"] == "下一分钟"


async def test_hourly_member_limit_drops_too(
    aiohttp_client: Callable[..., Awaitable[Client]], clock: FrozenClock
) -> None:
    fake = make_fake(clock, app_member_limits=((60, 30), (3600, 35)))
    client = await aiohttp_client(make_app(fake))
    access_token = await token(client)
    for _ in range(30):
        await post(client, "/cgi-bin/message/send", text("x"), access_token=access_token)
    clock.advance(seconds=60)
    for _ in range(6):
        assert (await post(client, "/cgi-bin/message/send", text("y"), access_token=access_token))["errcode"] == 0
    assert len(fake.messages_to(userid="zhangsan")) == 35
    assert len(fake.dropped) == 1
    clock.advance(seconds=3600)
    await post(client, "/cgi-bin/message/send", text("z"), access_token=access_token)
    assert len(fake.messages_to(userid="zhangsan")) == 36


def test_default_limits_are_wecoms() -> None:
    fake = FakeWeCom(corp_id=CORP, secrets={SECRET: AGENT}, webhook_keys=[], members=[])
    assert fake.app_member_limits == ((60, 30), (3600, 1000))
    assert fake.appchat_member_limits == ((60, 200), (86400, 10000))
    assert fake.webhook_per_minute == 20
    assert fake.token_ttl.total_seconds() == 7200


async def test_duplicate_check_swallows_the_same_body_within_the_interval(
    client: Client, fake: FakeWeCom, clock: FrozenClock
) -> None:
    body = text("重复检查", enable_duplicate_check=1, duplicate_check_interval=600)
    assert (await send(client, body))["errcode"] == 0
    assert (await send(client, body))["errcode"] == 0
    assert len(fake.delivered) == 1
    assert fake.dropped[0].reason == "duplicate_check"
    clock.advance(seconds=600)
    await send(client, body)
    assert len(fake.delivered) == 2


# ---- template cards and update_template_card ------------------------------------------------------------------


async def test_button_card_returns_a_response_code_usable_once(client: Client, fake: FakeWeCom) -> None:
    sent = await send(client, button_card())
    assert sent["errcode"] == 0
    code = sent["response_code"]
    update = {"agentid": AGENT, "response_code": code, "button": {"replace_name": "已接单"}, "userids": ["zhangsan"]}
    first = await post(client, "/cgi-bin/message/update_template_card", update, access_token=await token(client))
    assert first == {"errcode": 0, "errmsg": "ok", "invaliduser": []}
    [updated] = [d for d in fake.delivered if d.kind == "update_card"]
    assert updated.msgtype == "update_button"
    assert updated.to["task_id"] == "task-1"
    assert updated.to["userids"] == ["ZhangSan"]
    again = await post(client, "/cgi-bin/message/update_template_card", update, access_token=await token(client))
    assert again["errcode"] == 42022


async def test_response_code_expires_after_72_hours(client: Client, clock: FrozenClock) -> None:
    code = (await send(client, button_card()))["response_code"]
    clock.advance(hours=72)
    update = {"agentid": AGENT, "response_code": code, "button": {"replace_name": "已过期"}}
    answer = await post(client, "/cgi-bin/message/update_template_card", update, access_token=await token(client))
    assert answer["errcode"] == 42003


async def test_click_response_code_replaces_the_card(client: Client, fake: FakeWeCom) -> None:
    await send(client, button_card("task-9"))
    with pytest.raises(ValueError, match="several apps"):
        fake.card_response_code(task_id="task-9")
    with pytest.raises(ValueError, match="no card"):
        fake.card_response_code(agentid=AGENT, task_id="never-sent")
    code = fake.card_response_code(agentid=AGENT, task_id="task-9", userid="zhangsan")
    new_card = {
        "card_type": "text_notice",
        "main_title": {"title": "已接单"},
        "card_action": {"type": 1, "url": "https://example.invalid/t/9"},
    }
    update = {"agentid": AGENT, "response_code": code, "template_card": new_card, "userids": ["zhangsan", "ghost"]}
    answer = await post(client, "/cgi-bin/message/update_template_card", update, access_token=await token(client))
    assert answer["errcode"] == 0
    assert answer["invaliduser"] == ["ghost"]
    assert fake.delivered[-1].msgtype == "template_card"


async def test_update_template_card_errcodes(client: Client, fake: FakeWeCom) -> None:
    code = (await send(client, button_card()))["response_code"]
    other_token = await token(client, OTHER_SECRET)
    path = "/cgi-bin/message/update_template_card"
    button = {"replace_name": "x"}
    # the other app, with its own agentid, holding this app's code
    body = {"agentid": OTHER_AGENT, "response_code": code, "button": button}
    assert (await post(client, path, body, access_token=other_token))["errcode"] == 42015
    # its token with this app's agentid
    body = {"agentid": AGENT, "response_code": code, "button": button}
    assert (await post(client, path, body, access_token=other_token))["errcode"] == 301002
    access_token = await token(client)
    body = {"agentid": AGENT, "response_code": "made-up", "button": button}
    assert (await post(client, path, body, access_token=access_token))["errcode"] == 40058
    body = {"agentid": AGENT, "response_code": code}
    assert (await post(client, path, body, access_token=access_token))["errcode"] == 40058
    body = {"agentid": AGENT, "response_code": code, "template_card": {"card_type": "poster"}}
    assert (await post(client, path, body, access_token=access_token))["errcode"] == 42031
    # none of the refusals used the code up
    body = {"agentid": AGENT, "response_code": code, "button": button}
    assert (await post(client, path, body, access_token=access_token))["errcode"] == 0


async def test_template_card_validation(client: Client) -> None:
    card = button_card()
    missing_task = {**card, "template_card": {**card["template_card"], "task_id": ""}}
    assert (await send(client, missing_task))["errcode"] == 42014
    bad_task = {**card, "template_card": {**card["template_card"], "task_id": "有中文"}}
    assert (await send(client, bad_task))["errcode"] == 42014
    assert (await send(client, card))["errcode"] == 0
    assert (await send(client, card))["errcode"] == 42014  # task_id is unique per app
    no_key = {**card, "template_card": {**card["template_card"], "task_id": "t2", "button_list": [{"text": "接单"}]}}
    assert (await send(client, no_key))["errcode"] == 42039
    poster = {**card, "template_card": {"card_type": "poster"}}
    assert (await send(client, poster))["errcode"] == 42031
    notice = {**card, "template_card": {"card_type": "text_notice", "main_title": {"title": "通知"}}}
    assert (await send(client, notice))["errcode"] == 42045
    notice["template_card"]["card_action"] = {"type": 1}
    assert (await send(client, notice))["errcode"] == 42028
    notice["template_card"]["card_action"] = {"type": 1, "url": "https://example.invalid"}
    answer = await send(client, notice)
    assert answer["errcode"] == 0
    assert "response_code" not in answer  # only interactive cards return one


# ---- group chats ------------------------------------------------------------------------------------------------


async def test_appchat_create_get_update_send(client: Client, fake: FakeWeCom) -> None:
    access_token = await token(client)
    created = await post(
        client,
        "/cgi-bin/appchat/create",
        {"name": "城管一组" * 20, "userlist": ["zhangsan", "lisi"], "owner": "lisi", "chatid": "grp01"},
        access_token=access_token,
    )
    assert created == {"errcode": 0, "errmsg": "ok", "chatid": "grp01"}
    info = await get(client, "/cgi-bin/appchat/get", chatid="grp01", access_token=access_token)
    assert info["chat_info"] == {
        "chatid": "grp01",
        "name": ("城管一组" * 20)[:50],
        "owner": "lisi",
        "userlist": ["ZhangSan", "lisi"],
        "chat_type": 0,
    }
    changed = await post(
        client,
        "/cgi-bin/appchat/update",
        {"chatid": "grp01", "add_user_list": ["wangwu"], "del_user_list": ["lisi"], "name": "城管一组"},
        access_token=access_token,
    )
    assert changed["errcode"] == 0
    info = await get(client, "/cgi-bin/appchat/get", chatid="grp01", access_token=access_token)
    assert info["chat_info"]["userlist"] == ["ZhangSan", "wangwu"]
    assert info["chat_info"]["owner"] == "ZhangSan"  # the owner left: another member takes over
    sent = await post(
        client,
        "/cgi-bin/appchat/send",
        {"chatid": "grp01", "msgtype": "text", "text": {"content": "新工单已派发"}},
        access_token=access_token,
    )
    assert sent == {"errcode": 0, "errmsg": "ok"}
    [delivered] = fake.messages_to(chatid="grp01")
    assert delivered.kind == "appchat"
    assert delivered.to == {"chatid": "grp01", "members": ["ZhangSan", "wangwu"]}


async def test_appchat_without_chatid_gets_a_generated_one(client: Client) -> None:
    created = await post(
        client, "/cgi-bin/appchat/create", {"userlist": ["zhangsan", "lisi"]}, access_token=await token(client)
    )
    assert created["errcode"] == 0
    assert len(created["chatid"]) == 32
    assert created["chatid"].isalnum()


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"userlist": ["zhangsan"]}, 86006),
        ({"userlist": ["zhangsan", "ghost"]}, 86216),
        ({"userlist": "zhangsan|lisi"}, 40058),
        ({"userlist": ["zhangsan", "lisi"], "owner": "wangwu"}, 86207),
        ({"userlist": ["zhangsan", "lisi"], "chatid": "has-dash"}, 86001),
        ({"userlist": ["zhangsan", "lisi"], "chatid": "a" * 33}, 86205),
    ],
)
async def test_appchat_create_errcodes(client: Client, body: dict[str, Any], errcode: int) -> None:
    answer = await post(client, "/cgi-bin/appchat/create", body, access_token=await token(client))
    assert answer["errcode"] == errcode


async def test_appchat_only_for_the_app_that_created_it(client: Client) -> None:
    access_token = await token(client)
    body = {"userlist": ["zhangsan", "lisi"], "chatid": "grp02"}
    assert (await post(client, "/cgi-bin/appchat/create", body, access_token=access_token))["errcode"] == 0
    assert (await post(client, "/cgi-bin/appchat/create", body, access_token=access_token))["errcode"] == 86215
    other = await token(client, OTHER_SECRET)
    message = {"chatid": "grp02", "msgtype": "text", "text": {"content": "x"}}
    assert (await post(client, "/cgi-bin/appchat/send", message, access_token=other))["errcode"] == 86008
    assert (await get(client, "/cgi-bin/appchat/get", chatid="grp02", access_token=other))["errcode"] == 86008
    update = {"chatid": "grp02", "name": "x"}
    assert (await post(client, "/cgi-bin/appchat/update", update, access_token=other))["errcode"] == 86008
    missing = {**message, "chatid": "nosuchchat"}
    assert (await post(client, "/cgi-bin/appchat/send", missing, access_token=access_token))["errcode"] == 86003
    assert (await post(client, "/cgi-bin/appchat/send", {"msgtype": "text"}, access_token=access_token))[
        "errcode"
    ] == 86201
    too_long = {**message, "text": {"content": "x" * 2049}}
    assert (await post(client, "/cgi-bin/appchat/send", too_long, access_token=access_token))["errcode"] == 45002
    card = {"chatid": "grp02", "msgtype": "template_card", "template_card": {}}
    assert (await post(client, "/cgi-bin/appchat/send", card, access_token=access_token))["errcode"] == 40008


async def test_appchat_drops_past_200_a_minute_per_member(client: Client, fake: FakeWeCom, clock: FrozenClock) -> None:
    access_token = await token(client)
    await post(
        client, "/cgi-bin/appchat/create", {"userlist": ["zhangsan", "lisi"], "chatid": "a"}, access_token=access_token
    )
    await post(
        client,
        "/cgi-bin/appchat/create",
        {"userlist": ["zhangsan", "wangwu"], "chatid": "b"},
        access_token=access_token,
    )
    message = {"msgtype": "markdown", "markdown": {"content": "**推送**"}}
    for _ in range(200):
        await post(client, "/cgi-bin/appchat/send", {**message, "chatid": "a"}, access_token=access_token)
    answer = await post(client, "/cgi-bin/appchat/send", {**message, "chatid": "b"}, access_token=access_token)
    assert answer["errcode"] == 0
    # zhangsan has had 200 from this app across chats; wangwu has had none
    assert fake.messages_to(chatid="b")[0].to["members"] == ["wangwu"]
    assert [(d.to, d.reason) for d in fake.dropped] == [({"chatid": "b", "userid": "ZhangSan"}, "member_rate_limit")]
    clock.advance(seconds=60)
    await post(client, "/cgi-bin/appchat/send", {**message, "chatid": "b"}, access_token=access_token)
    assert fake.messages_to(chatid="b")[-1].to["members"] == ["ZhangSan", "wangwu"]


# ---- webhook robot ----------------------------------------------------------------------------------------------


async def test_webhook_text_with_mentions(client: Client, fake: FakeWeCom) -> None:
    body = {
        "msgtype": "text",
        "text": {
            "content": "请及时处理",
            "mentioned_list": ["zhangsan", "@all"],
            "mentioned_mobile_list": ["13800001111"],
        },
    }
    assert await post(client, "/cgi-bin/webhook/send", body, key=KEY) == {"errcode": 0, "errmsg": "ok"}
    [delivered] = fake.messages_to(webhook_key=KEY)
    assert delivered.kind == "webhook"
    assert delivered.to == {"webhook_key": KEY}
    assert delivered.body["text"]["mentioned_list"] == ["zhangsan", "@all"]
    assert fake.messages_to(webhook_key=OTHER_KEY) == []
    bad = {"msgtype": "text", "text": {"content": "x", "mentioned_list": "zhangsan"}}
    assert (await post(client, "/cgi-bin/webhook/send", bad, key=KEY))["errcode"] == 40058


async def test_webhook_unknown_key_is_93000(client: Client) -> None:
    body = {"msgtype": "text", "text": {"content": "x"}}
    assert (await post(client, "/cgi-bin/webhook/send", body, key="nope"))["errcode"] == 93000
    assert (await post(client, "/cgi-bin/webhook/send", body))["errcode"] == 93000


async def test_webhook_markdown_limits(client: Client) -> None:
    for msgtype in ("markdown", "markdown_v2"):
        ok = {"msgtype": msgtype, msgtype: {"content": "工" * 1365 + "a"}}  # 4096 bytes
        assert (await post(client, "/cgi-bin/webhook/send", ok, key=KEY))["errcode"] == 0
        too_long = {"msgtype": msgtype, msgtype: {"content": "工" * 1365 + "ab"}}
        assert (await post(client, "/cgi-bin/webhook/send", too_long, key=KEY))["errcode"] == 45002
    text_too_long = {"msgtype": "text", "text": {"content": "x" * 2049}}
    assert (await post(client, "/cgi-bin/webhook/send", text_too_long, key=KEY))["errcode"] == 45002


async def test_webhook_twenty_a_minute_then_45009(client: Client, fake: FakeWeCom, clock: FrozenClock) -> None:
    body = {"msgtype": "text", "text": {"content": "推送"}}
    for _ in range(20):
        assert (await post(client, "/cgi-bin/webhook/send", body, key=KEY))["errcode"] == 0
    limited = await post(client, "/cgi-bin/webhook/send", body, key=KEY)
    assert limited["errcode"] == 45009
    assert (await post(client, "/cgi-bin/webhook/send", body, key=OTHER_KEY))["errcode"] == 0  # per robot
    clock.advance(seconds=59)
    assert (await post(client, "/cgi-bin/webhook/send", body, key=KEY))["errcode"] == 45009
    clock.advance(seconds=1)
    assert (await post(client, "/cgi-bin/webhook/send", body, key=KEY))["errcode"] == 0
    assert len(fake.messages_to(webhook_key=KEY)) == 21


async def test_webhook_image_checks_md5_and_size(client: Client, fake: FakeWeCom) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
    image = {"base64": base64.b64encode(png).decode(), "md5": hashlib.md5(png).hexdigest()}
    assert (await post(client, "/cgi-bin/webhook/send", {"msgtype": "image", "image": image}, key=KEY))["errcode"] == 0
    wrong_md5 = {**image, "md5": hashlib.md5(b"other").hexdigest()}
    answer = await post(client, "/cgi-bin/webhook/send", {"msgtype": "image", "image": wrong_md5}, key=KEY)
    assert answer["errcode"] == 40058
    assert "md5" in answer["errmsg"]
    not_base64 = {**image, "base64": "***"}
    assert (await post(client, "/cgi-bin/webhook/send", {"msgtype": "image", "image": not_base64}, key=KEY))[
        "errcode"
    ] == 40058
    big = b"\x00" * (2 * 1024 * 1024 + 1)
    too_big = {"base64": base64.b64encode(big).decode(), "md5": hashlib.md5(big).hexdigest()}
    payload = io.BytesIO(json.dumps({"msgtype": "image", "image": too_big}).encode())  # a large body streams
    response = await client.post("/cgi-bin/webhook/send", params={"key": KEY}, data=payload)
    assert (await response.json())["errcode"] == 40009
    assert len(fake.delivered) == 1


async def test_webhook_news_and_template_card(client: Client) -> None:
    article = {"title": "工单日报", "url": "https://example.invalid/daily"}
    news = {"msgtype": "news", "news": {"articles": [article]}}
    assert (await post(client, "/cgi-bin/webhook/send", news, key=KEY))["errcode"] == 0
    nine = {"msgtype": "news", "news": {"articles": [article] * 9}}
    assert (await post(client, "/cgi-bin/webhook/send", nine, key=KEY))["errcode"] == 45008
    no_url = {"msgtype": "news", "news": {"articles": [{"title": "x"}]}}
    assert (await post(client, "/cgi-bin/webhook/send", no_url, key=KEY))["errcode"] == 41010
    notice = {
        "msgtype": "template_card",
        "template_card": {
            "card_type": "text_notice",
            "main_title": {"title": "超期预警"},
            "card_action": {"type": 1, "url": "https://example.invalid/t/1"},
        },
    }
    assert (await post(client, "/cgi-bin/webhook/send", notice, key=KEY))["errcode"] == 0
    buttons = {"msgtype": "template_card", "template_card": button_card()["template_card"]}
    assert (await post(client, "/cgi-bin/webhook/send", buttons, key=KEY))["errcode"] == 42031


async def test_webhook_file_through_upload_media(client: Client, fake: FakeWeCom, clock: FrozenClock) -> None:
    form = aiohttp.FormData()
    form.add_field("media", "工单,状态\n1,已派发\n".encode(), filename="工单.csv", content_type="text/csv")
    response = await client.post("/cgi-bin/webhook/upload_media", params={"key": KEY, "type": "file"}, data=form)
    uploaded = await response.json()
    assert uploaded["errcode"] == 0
    assert uploaded["type"] == "file"
    assert uploaded["created_at"] == str(int(clock.now().timestamp()))
    media_id = uploaded["media_id"]
    # aiohttp percent-encodes a non-ASCII filename; the fake keeps what arrived, as WeCom would show it (?)
    assert fake.media[media_id].filename == "%E5%B7%A5%E5%8D%95.csv"
    body = {"msgtype": "file", "file": {"media_id": media_id}}
    assert (await post(client, "/cgi-bin/webhook/send", body, key=KEY))["errcode"] == 0
    assert (await post(client, "/cgi-bin/webhook/send", body, key=OTHER_KEY))["errcode"] == 40007  # not its upload
    voice = {"msgtype": "voice", "voice": {"media_id": media_id}}
    assert (await post(client, "/cgi-bin/webhook/send", voice, key=KEY))["errcode"] == 40007  # not a voice
    clock.advance(days=3)
    assert (await post(client, "/cgi-bin/webhook/send", body, key=KEY))["errcode"] == 40007  # expired


@pytest.mark.parametrize(
    ("params", "content", "errcode"),
    [
        ({"key": KEY, "type": "image"}, b"123456", 40005),
        ({"key": KEY, "type": "file"}, b"12345", 40006),
        ({"key": "nope", "type": "file"}, b"123456", 93000),
    ],
)
async def test_upload_media_errcodes(client: Client, params: dict[str, str], content: bytes, errcode: int) -> None:
    form = aiohttp.FormData()
    form.add_field("media", content, filename="a.txt")
    response = await client.post("/cgi-bin/webhook/upload_media", params=params, data=form)
    assert (await response.json())["errcode"] == errcode


async def test_upload_media_needs_the_media_part(client: Client) -> None:
    form = aiohttp.FormData()
    form.add_field("file", b"123456", filename="a.txt")
    response = await client.post("/cgi-bin/webhook/upload_media", params={"key": KEY, "type": "file"}, data=form)
    assert (await response.json())["errcode"] == 44001


# ---- intelligent robot response_url -------------------------------------------------------------------------------


async def test_response_url_works_once(client: Client, fake: FakeWeCom) -> None:
    url = fake.response_url({"chatid": "wrchat1", "userid": "zhangsan"})
    assert url.startswith("/cgi-bin/aibot/response?response_code=")
    reply = {"msgtype": "markdown", "markdown": {"content": "已受理 **2026112300123**"}}
    first = await client.post(url, json=reply)
    assert await first.json() == {"errcode": 0, "errmsg": "ok"}
    [delivered] = [d for d in fake.delivered if d.kind == "response_url"]
    assert delivered.to["chatid"] == "wrchat1"
    assert delivered.to["userid"] == "zhangsan"
    assert delivered.body == reply
    second = await (await client.post(url, json=reply)).json()
    assert second["errcode"] == 42022


async def test_response_url_expires_after_an_hour_and_takes_markdown_or_cards(
    client: Client, fake: FakeWeCom, clock: FrozenClock
) -> None:
    url = fake.response_url()
    plain = await (await client.post(url, json={"msgtype": "text", "text": {"content": "x"}})).json()
    assert plain["errcode"] == 40008
    clock.advance(hours=1)
    late = await (await client.post(url, json={"msgtype": "markdown", "markdown": {"content": "x"}})).json()
    assert late["errcode"] == 42003
    forged = "/cgi-bin/aibot/response?response_code=forged"
    assert (await (await client.post(forged, json={"msgtype": "markdown", "markdown": {"content": "x"}})).json())[
        "errcode"
    ] == 40058
    card = {"msgtype": "template_card", "template_card": button_card("bot-task")["template_card"]}
    assert (await (await client.post(fake.response_url(), json=card)).json())["errcode"] == 0


# ---- faults -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "errcode"),
    [
        ("busy", -1),
        ("rate_limited", 45009),
        ("concurrency", 45033),
        ("token_expired", 42001),
        ("invalid_token", 40014),
        ("ip_not_trusted", 60020),
    ],
)
async def test_errcode_faults(client: Client, fake: FakeWeCom, fault: Any, errcode: int) -> None:
    access_token = await token(client)
    fake.inject(fault, path="/cgi-bin/message/send")
    answer = await post(client, "/cgi-bin/message/send", text("x"), access_token=access_token)
    assert answer["errcode"] == errcode
    assert fake.delivered == []
    assert (await post(client, "/cgi-bin/message/send", text("x"), access_token=access_token))["errcode"] == 0
    assert len(fake.delivered) == 1


async def test_server_error_fault_is_http_500(client: Client, fake: FakeWeCom) -> None:
    fake.inject("server_error", times=2)
    response = await client.get("/cgi-bin/gettoken", params={"corpid": CORP, "corpsecret": SECRET})
    assert response.status == 500
    assert response.content_type == "text/html"
    response = await client.post("/cgi-bin/webhook/send", params={"key": KEY}, json={"msgtype": "text"})
    assert response.status == 500
    await token(client)


async def test_slow_fault_delays_then_answers(client: Client, fake: FakeWeCom) -> None:
    fake.inject("slow", path="/cgi-bin/webhook/send", delay=0.05)
    started = time.monotonic()
    body = {"msgtype": "text", "text": {"content": "慢"}}
    assert (await post(client, "/cgi-bin/webhook/send", body, key=KEY))["errcode"] == 0
    assert time.monotonic() - started >= 0.05
    assert len(fake.delivered) == 1
    fake.inject("slow", path="/cgi-bin/webhook/send")  # the fake's slow_delay
    with pytest.raises(asyncio.TimeoutError):
        await client.post(
            "/cgi-bin/webhook/send", params={"key": KEY}, json=body, timeout=aiohttp.ClientTimeout(total=0.001)
        )


async def test_drop_fault_closes_the_connection_before_doing_anything(client: Client, fake: FakeWeCom) -> None:
    fake.inject("drop", path="/cgi-bin/webhook/send")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.post(
            "/cgi-bin/webhook/send", params={"key": KEY}, json={"msgtype": "text", "text": {"content": "x"}}
        )
    assert fake.delivered == []


async def test_drop_after_fault_delivers_but_never_answers(client: Client, fake: FakeWeCom) -> None:
    access_token = await token(client)
    fake.inject("drop_after", path="/cgi-bin/message/send")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.post("/cgi-bin/message/send", params={"access_token": access_token}, json=text("重试会重复吗"))
    assert len(fake.messages_to(userid="zhangsan")) == 1


async def test_faults_are_consumed_in_order_and_by_path(client: Client, fake: FakeWeCom) -> None:
    access_token = await token(client)
    fake.inject("busy", times=2, path="/cgi-bin/message/send")
    fake.inject("rate_limited", path="/cgi-bin/message/send")
    fake.inject("concurrency")  # any path
    busy_token = await get(client, "/cgi-bin/gettoken", corpid=CORP, corpsecret=SECRET)
    assert busy_token["errcode"] == 45033  # gettoken meets only the any-path fault
    assert fake.stats["/cgi-bin/gettoken"].errors == 1
    codes = [
        (await post(client, "/cgi-bin/message/send", text("x"), access_token=access_token))["errcode"] for _ in range(4)
    ]
    assert codes == [-1, -1, 45009, 0]
    with pytest.raises(ValueError, match="unknown fault"):
        fake.inject("meteor")  # type: ignore[arg-type]


async def test_stats_count_requests_and_errors_per_path(client: Client, fake: FakeWeCom) -> None:
    access_token = await token(client)
    await post(client, "/cgi-bin/message/send", text("x"), access_token=access_token)
    await post(client, "/cgi-bin/message/send", text("x"), access_token="bad")
    await post(client, "/cgi-bin/webhook/send", {"msgtype": "text", "text": {"content": "x"}}, key="bad")
    assert fake.stats["/cgi-bin/gettoken"].requests == 1
    assert fake.stats["/cgi-bin/gettoken"].errors == 0
    assert fake.stats["/cgi-bin/message/send"].requests == 2
    assert fake.stats["/cgi-bin/message/send"].errors == 1
    assert fake.stats["/cgi-bin/webhook/send"].errors == 1


# ---- standalone ---------------------------------------------------------------------------------------------------


async def test_serve_runs_it_on_a_real_port(clock: FrozenClock) -> None:
    fake = make_fake(clock)
    runner = await serve(fake, "127.0.0.1", 0)
    try:
        assert fake.base_url is not None
        assert fake.base_url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as session:
            params = {"corpid": CORP, "corpsecret": SECRET}
            async with session.get(f"{fake.base_url}/cgi-bin/gettoken", params=params) as response:
                assert (await response.json())["errcode"] == 0
            url = fake.response_url({"chatid": "c"})
            assert url.startswith(fake.base_url)
            async with session.post(url, json={"msgtype": "markdown", "markdown": {"content": "x"}}) as response:
                assert (await response.json())["errcode"] == 0
    finally:
        await runner.cleanup()
