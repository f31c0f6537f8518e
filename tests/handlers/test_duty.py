"""/值班 on both databases: who is on duty, 接班 and 交班, as a group message (the robot) and a private one (the app),
through the router and through signed callbacks into the real app; who may take over; WeCom's retries.

The sandbox roster: zhaomin (赵敏), weekday nights 17:00-09:00, weekends 24 h from 09:00. The clock starts on Monday
2026-11-23 at 09:00, when nobody is on duty. zhangwei (张伟) and wangfang are dispatchers, wuhao an admin, lilei a
center lead; chenjing, sunlei and zhouting (SRJG) and huangqiang (HW) are handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.app import create_app
from bot.domain.clock import TZ, FrozenClock
from bot.web.keys import DUTY, STORE, WECOM_INBOUND
from config.model import BotConfig
from config.settings import Settings
from handlers.router import CommandRouter
from store.core import Store
from store.models import audit_log, duty_takeovers, outbox
from tests.handlers.test_router import message, texts
from tests.wecom.callbacks.test_callbacks import T0, WECOM_ENV, app_xml, post_app, post_robot, robot_json

Client = TestClient[Any, Any]

EVENING = datetime(2026, 11, 23, 20, 0, tzinfo=TZ)
REFUSAL = "抱歉，只有值班员（含排班表上的人员）、派单员和管理员可以接班。"


async def outbox_rows(store: Store) -> list[dict[str, Any]]:
    async with store.reading() as conn:
        rows = (await conn.execute(select(outbox).order_by(outbox.c.id))).mappings()
        return [dict(r) for r in rows if r["channel"] != "hotline"]


async def replies(router: CommandRouter) -> list[str]:
    return texts(await outbox_rows(router.store))


async def takeovers(store: Store) -> list[dict[str, Any]]:
    async with store.reading() as conn:
        return [dict(r) for r in (await conn.execute(select(duty_takeovers).order_by(duty_takeovers.c.id))).mappings()]


async def test_who_is_on_duty_now_and_next(router: CommandRouter, clock: FrozenClock) -> None:
    await router.handle(message("/值班", msgid="1"))  # a handler in the SRJG group, Monday 09:00
    clock.set(EVENING)
    await router.handle(message("值班表", msgid="2"))
    await router.handle(message("/oncall", msgid="3"))
    morning, evening, english = await replies(router)
    assert morning == "当前无人值班。\n下一班：赵敏（11-23 17:00 起）"
    assert evening == "当前值班：赵敏（至 11-24 09:00）\n下一班：赵敏（11-24 17:00 起）"
    assert english == evening
    assert "13800000004" not in evening  # names only


async def test_taking_over_in_the_group(router: CommandRouter, clock: FrozenClock) -> None:
    clock.set(EVENING)
    await router.handle(message("/值班 接班", userid="zhangwei", chat="sandbox-rxb"))
    [row] = await outbox_rows(router.store)
    assert row["channel"] == "aibot_response"  # the answer goes back to the group
    assert texts([row])[0] == (
        "✅ 张伟 已接班，值班至 11-24 09:00。\n当前值班：张伟（接班，至 11-24 09:00）\n下一班：赵敏（11-24 17:00 起）"
    )
    assert await router.duty.on_duty() == ["zhangwei"]
    async with router.store.reading() as conn:
        [audit] = (await conn.execute(select(audit_log))).mappings().all()
    assert (audit["action"], audit["actor"]) == ("duty_take", "zhangwei")


async def test_handing_back_in_a_private_chat(router: CommandRouter, clock: FrozenClock) -> None:
    clock.set(EVENING)
    await router.handle(message("值班 接班", userid="zhangwei", chat=None, source="app", msgid="1"))
    clock.set(datetime(2026, 11, 23, 22, 0, tzinfo=TZ))
    await router.handle(message("值班交班", userid="zhangwei", chat=None, source="app", msgid="2"))
    rows = await outbox_rows(router.store)
    assert [(r["channel"], r["destination"]) for r in rows] == [("wecom_app", "zhangwei")] * 2
    assert texts(rows)[1] == "👋 张伟 已交班。\n当前值班：赵敏（至 11-24 09:00）\n下一班：赵敏（11-24 17:00 起）"
    assert await router.duty.on_duty() == ["zhaomin"]


async def test_handing_back_without_a_takeover_is_refused_politely(router: CommandRouter, clock: FrozenClock) -> None:
    clock.set(EVENING)
    await router.handle(message("/值班 交班", userid="zhaomin", chat="sandbox-rxb"))  # on the roster, no takeover
    assert await replies(router) == ["您目前没有接班记录，无需交班。排班表上的班次到点自动结束。"]


async def test_taking_again_and_being_on_the_roster(router: CommandRouter, clock: FrozenClock) -> None:
    clock.set(EVENING)
    await router.handle(message("/值班 接班", userid="zhaomin", msgid="1"))
    await router.handle(message("/值班 接班", userid="wangfang", msgid="2"))
    await router.handle(message("/值班 take", userid="wangfang", msgid="3"))
    await router.handle(message("/值班 接班", userid="wuhao", msgid="4"))
    on_roster, taken, again, relieved = (text.split("\n")[0] for text in await replies(router))
    assert on_roster == "赵敏 按排班表正在值班，至 11-24 09:00，无需接班。"
    assert taken == "✅ 王芳 已接班，值班至 11-24 09:00。"
    assert again == "王芳 已在值班，值班至 11-24 09:00，无需重复接班。"
    assert relieved == "✅ 吴昊 已接班，值班至 11-24 09:00。（王芳 的接班已结束）"
    assert len(await takeovers(router.store)) == 2


# who may do what: every sandbox member looks; only duty members, dispatchers and admins take over
MATRIX = [
    ("zhaomin", "duty (on the roster)", True),
    ("zhangwei", "dispatcher", True),
    ("wangfang", "dispatcher", True),
    ("wuhao", "handler and admin", True),
    ("lilei", "center lead", False),
    ("chenjing", "unit head", False),
    ("sunlei", "deputy head", False),
    ("zhouting", "handler", False),
    ("huangqiang", "unit head", False),
]


async def test_the_duty_command_by_role(router: CommandRouter) -> None:
    for userid, role, may_take in MATRIX:  # Monday 09:00: nobody on duty by the roster
        await router.handle(message("/值班", userid=userid, msgid=f"look-{userid}"))
        await router.handle(message("/值班 接班", userid=userid, msgid=f"take-{userid}"))
        look, take = (await replies(router))[-2:]
        assert look.startswith(("当前无人值班。", "当前值班：")), (userid, role, look)
        if may_take:  # each taker relieves the one before
            assert take.startswith("✅ ") and "已接班，值班至 11-23 17:00。" in take, (userid, role, take)  # noqa: PT018
            assert await router.duty.on_duty() == [userid]
        else:
            assert take == REFUSAL, (userid, role, take)
    assert len(await takeovers(router.store)) == sum(1 for _u, _r, may in MATRIX if may)


async def test_a_stranger_gets_no_duty_list(router: CommandRouter) -> None:
    await router.handle(message("/值班", userid="stranger"))
    assert "不在本热线系统的成员名单中" in (await replies(router))[0]


async def test_a_re_run_message_takes_over_and_answers_once(router: CommandRouter, clock: FrozenClock) -> None:
    clock.set(EVENING)
    await router.handle(message("/值班 接班", userid="zhangwei", msgid="m1"))
    clock.advance(seconds=30)
    await router.handle(message("/值班 接班", userid="zhangwei", msgid="m1"))  # the same event (crash recovery)
    assert len(await takeovers(router.store)) == 1
    assert len(await replies(router)) == 1
    async with router.store.reading() as conn:
        assert len((await conn.execute(select(audit_log))).all()) == 1


# -- through signed callbacks into the real app ---------------------------------------------------------------------


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[Client]],
    database_url: str,
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    clock: FrozenClock,
) -> Client:
    clock.set(EVENING)
    app = create_app(settings_for(database_url, **WECOM_ENV), sandbox_config, clock=clock, run_workers=False)
    return await aiohttp_client(app)


async def test_take_over_by_robot_callback_in_a_group_and_wecoms_retry(client: Client) -> None:
    plain = robot_json(
        "text",
        msgid="duty-1",
        chatid="sandbox-rxb",
        **{"from": {"userid": "wangfang"}},
        text={"content": "@12345助手\u2005值班 接班"},
        response_url="https://qyapi.weixin.qq.com/cgi-bin/aibot/response?response_code=D1",
    )
    assert (await post_robot(client, plain)).status == 200
    assert (await post_robot(client, plain)).status == 200  # WeCom's retry
    await client.app[WECOM_INBOUND].drain()
    assert await client.app[DUTY].on_duty() == ["wangfang"]
    rows = await outbox_rows(client.app[STORE])
    assert [(r["channel"], r["destination"]) for r in rows] == [
        ("aibot_response", "https://qyapi.weixin.qq.com/cgi-bin/aibot/response?response_code=D1")
    ]
    assert texts(rows)[0].startswith("✅ 王芳 已接班，值班至 11-24 09:00。")
    assert len(await takeovers(client.app[STORE])) == 1


async def test_duty_list_and_hand_back_by_app_callback_in_a_private_chat(client: Client) -> None:
    for msgid, text in (("7101", "值班 接班"), ("7102", "/值班"), ("7103", "值班 交班")):
        plain = app_xml(FromUserName="wuhao", MsgType="text", Content=text, MsgId=msgid, CreateTime=str(T0))
        assert (await post_app(client, plain)).status == 200
        await client.app[WECOM_INBOUND].drain()
    rows = await outbox_rows(client.app[STORE])
    assert {(r["channel"], r["destination"]) for r in rows} == {("wecom_app", "wuhao")}
    taken, shown, handed_back = texts(rows)
    assert taken.startswith("✅ 吴昊 已接班，值班至 11-24 09:00。")
    assert shown.startswith("当前值班：吴昊（接班，至 11-24 09:00）")
    assert handed_back.startswith("👋 吴昊 已交班。\n当前值班：赵敏")
    assert await client.app[DUTY].on_duty() == ["zhaomin"]
