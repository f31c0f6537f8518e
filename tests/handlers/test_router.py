"""The command router on both databases: events in, ticket changes and outbox replies out. Members and units are
the sandbox config's (SRJG: chenjing head, sunlei deputy, zhouting; HW: huangqiang head, wuhao; RXB: dispatchers
zhangwei and wangfang)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from bot.domain.clock import FrozenClock
from bot.domain.events import Sender, TextMessage
from bot.domain.lifecycle import TicketState
from bot.domain.ticket import TicketInput
from bot.messages.reply import Reply
from bot.services.channels import Channels
from bot.services.tickets import TicketService
from config.model import BotConfig
from handlers.router import CommandRouter
from notifiers.rows import reply_rows
from store.models import audit_log, outbox
from tests.handlers.conftest import MakeRouter
from tests.routers import command_router

NO = "2026112300123"
OTHER = "2026112300456"  # HW's


def message(
    text: str,
    userid: str = "zhouting",
    *,
    chat: str | None = "sandbox-srjg",
    msgid: str = "m1",
    source: str = "aibot",
    quoted: str | None = None,
    at: datetime | None = None,
) -> TextMessage:
    return TextMessage(
        source=source,  # type: ignore[arg-type]
        msg_id=msgid,
        sender=Sender(userid),
        chat_type="group" if chat else "single",
        chat_id=chat,
        text=text,
        quoted_text=quoted,
        at=at or datetime(2026, 11, 23, 9, 0),
        response_url=f"https://qyapi.weixin.qq.com/cgi-bin/aibot/response?response_code={msgid}"
        if source == "aibot"
        else None,
    )


@pytest.fixture
async def router(service: TicketService, make_router: MakeRouter) -> CommandRouter:
    await service.upsert(
        [
            TicketInput(
                ticket_no=NO,
                content="光明路店招破损，随时可能掉落",
                category="市容景观",
                citizen_name="王秀英",
                citizen_phone="13800000013",
                address="演示街道光明路1号",
            ),
            TicketInput(
                ticket_no=OTHER,
                content="垃圾箱房两天未清运",
                category="环卫",
                citizen_name="李四",
                citizen_phone="13800000014",
            ),
        ]
    )
    return make_router()


async def replies(router: CommandRouter) -> list[dict[str, Any]]:
    async with router.store.reading() as conn:
        rows = (await conn.execute(select(outbox).order_by(outbox.c.id))).mappings()
        return [dict(r) for r in rows if r["channel"] != "hotline"]


def texts(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for row in rows:
        payload = row["payload"]
        section = payload.get("markdown") or payload.get("content") or payload.get("text")
        out.append(section["content"])
    return out


async def test_claim_in_the_group_answers_there_and_sends_the_contact_privately(router: CommandRouter) -> None:
    await router.handle(message("接单 0123"))
    ticket = (await router.service.get(NO)).ticket
    assert (ticket.state, ticket.handler_userid) == (TicketState.CLAIMED, "zhouting")
    by_channel = {row["channel"]: row for row in await replies(router)}
    group, private = by_channel["aibot_response"], by_channel["wecom_app"]
    assert "周婷 已接单" in texts([group])[0]
    assert "13800000013" not in texts([group])[0]  # never in the group
    assert (private["channel"], private["destination"]) == ("wecom_app", "zhouting")
    assert "13800000013" in texts([private])[0]
    async with router.store.reading() as conn:
        actions = [r["action"] for r in (await conn.execute(select(audit_log))).mappings()]
    assert "claim" in actions and "view_contact" in actions  # noqa: PT018


async def test_a_retried_command_changes_and_answers_once(router: CommandRouter) -> None:
    await router.handle(message("/接单 0123"))
    await router.handle(message("/接单 0123"))  # the same event again (recovery after a crash)
    rows = await replies(router)
    assert len(rows) == 2  # the group reply and the private one, once each
    ticket = (await router.service.get(NO)).ticket
    assert ticket.version == 2


async def test_another_units_ticket_is_refused_and_unchanged(router: CommandRouter) -> None:
    await router.handle(message(f"接单 {OTHER}"))  # zhouting is in SRJG, the ticket is HW's
    [reply] = texts(await replies(router))
    assert "环卫所" in reply and "不能" in reply  # noqa: PT018
    assert (await router.service.get(OTHER)).ticket.state == TicketState.DISPATCHED


async def test_unknown_command_and_stranger_get_polite_answers(router: CommandRouter) -> None:
    await router.handle(message("/cliam 0123", msgid="a"))
    await router.handle(message("接单 0123", userid="stranger", msgid="b"))
    first, second = texts(await replies(router))
    assert "您是不是想用" in first
    assert "不在本热线系统的成员名单中" in second
    assert (await router.service.get(NO)).ticket.state == TicketState.DISPATCHED


async def test_a_quoted_push_names_the_ticket(router: CommandRouter) -> None:
    await router.handle(message("接单", quoted=f"【新工单】工单 {NO} 店招破损"))
    assert (await router.service.get(NO)).ticket.handler_userid == "zhouting"


async def test_a_quoted_digest_names_no_ticket_and_the_member_is_asked_which(router: CommandRouter) -> None:
    digest = f"【待接单汇总】市容景观所 2 件\n· 工单 {NO} 店招破损\n· 工单 2026112300789 路灯不亮"
    await router.handle(message("接单", quoted=digest))
    [reply] = texts(await replies(router))
    assert "有 2 张工单" in reply and NO in reply and "请写明是哪一张" in reply  # noqa: PT018
    assert (await router.service.get(NO)).ticket.state == TicketState.DISPATCHED  # nothing claimed


async def test_the_flow_claim_contact_submit_and_show(router: CommandRouter) -> None:
    await router.handle(message("接单 0123", msgid="1"))
    await router.handle(message("联系 0123 已电话联系，约下午到场", msgid="2"))
    await router.handle(message("到场 0123", msgid="3"))
    await router.handle(message("办结 0123 店招已拆除加固", msgid="4"))
    await router.handle(message("查 0123", chat=None, msgid="5", source="app"))
    ticket = (await router.service.get(NO)).ticket
    assert ticket.state == TicketState.SUBMITTED
    last = texts(await replies(router))[-1]
    assert "状态：" in last
    assert "13800000013" in last  # the handler, in a 1:1 chat: full details


async def test_submit_without_a_result_is_refused(router: CommandRouter) -> None:
    await router.handle(message("接单 0123", msgid="1"))
    await router.handle(message("办结 0123", msgid="2"))
    assert "处理结果" in texts(await replies(router))[-1]
    assert (await router.service.get(NO)).ticket.state == TicketState.CLAIMED


async def test_help_lists_what_the_member_may_use(router: CommandRouter) -> None:
    await router.handle(message("帮助", msgid="h1"))
    [text] = texts(await replies(router))
    assert "/接单" in text
    assert "/签派" not in text  # a center lead's


async def test_lists_and_figures(router: CommandRouter, clock: FrozenClock) -> None:
    await router.handle(message("接单 0123", msgid="1"))
    await router.handle(message("我的", msgid="2"))
    await router.handle(message("待办", userid="huangqiang", chat="sandbox-hw", msgid="3"))
    clock.advance(days=30)
    await router.handle(message("逾期", userid="zhangwei", chat="sandbox-rxb", msgid="4"))  # a dispatcher: all units
    await router.handle(message("统计", userid="chenjing", msgid="5"))  # SRJG's head
    mine, todo, overdue, stats = texts(await replies(router))[-4:]
    assert NO in mine and "办结" in mine  # noqa: PT018 - with its next deadline
    assert OTHER in todo and NO not in todo  # noqa: PT018 - HW's list
    assert NO in overdue and OTHER in overdue and "已超时" in overdue  # noqa: PT018
    assert "市容景观所" in stats and "未办结 1 件" in stats  # noqa: PT018


async def test_stats_show_what_the_help_promises_and_each_unit_to_the_office(
    router: CommandRouter, clock: FrozenClock
) -> None:
    await router.handle(message("接单 0123", msgid="1"))
    clock.advance(days=30)  # both tickets overdue: the claimed one's handling, the other's accept and contact
    await router.handle(message("统计", userid="zhangwei", chat="sandbox-rxb", msgid="2"))  # a dispatcher: all units
    await router.handle(message("统计", userid="chenjing", msgid="3"))  # SRJG's head: SRJG only
    await router.handle(message("帮助 统计", userid="zhangwei", chat="sandbox-rxb", msgid="4"))
    office, unit, help_text = texts(await replies(router))[-3:]
    assert office.splitlines()[1:] == [
        "未办结 2 件，其中待接单 1 件，逾期 2 件；今日办结 0 件。",
        "各单位（逾期、待接单多的在前）：",
        "· 环卫所：未办结 1，待接单 1，逾期 1，今日办结 0",
        "· 市容景观所：未办结 1，待接单 0，逾期 1，今日办结 0",
    ]
    assert unit.startswith("市容景观所 工单概况（")
    assert "各单位" not in unit  # one unit: its figures are the totals
    assert "满意" not in help_text  # no promise of what /统计 does not show
    assert "未办结、待接单、逾期和今日办结" in help_text


async def test_no_phone_number_reaches_the_group_even_cut_short(router: CommandRouter) -> None:
    # a title with the citizen's number near where summaries and lists cut, and two tickets sharing last digits
    long_title = "一" * 47 + "请回电13812345678"
    await router.service.upsert(
        [
            TicketInput(
                ticket_no="2026112300777", content="噪音", title="13812345678反映噪音扰民", category="市容景观"
            ),
            TicketInput(ticket_no="2026112311777", content="噪音", title=long_title, category="市容景观"),
        ]
    )
    await router.handle(message("查 777", msgid="amb"))  # ambiguous: the candidates are listed to the group
    await router.handle(message("查 2026112311777", msgid="one"))  # the summary, cut after the number's start
    await router.handle(message("待办", msgid="list"))  # list lines, cut too
    for text in texts(await replies(router)):
        assert "1381234567" not in text, text
        assert "1381234" not in text, text


def test_outbox_keys_of_long_card_events_are_hashed_not_cut() -> None:
    from bot.domain.events import CardClick

    def click(key: str) -> CardClick:
        return CardClick(
            source="app",
            event_key=key,
            task_id="t" * 128,
            sender=Sender("zhouting"),
            chat_type="single",
            chat_id=None,
            response_code="code",
            response_url=None,
            at=datetime(2026, 11, 23, 9, 0),
            dedup_key=f"app:event:zhouting:1795395600:{'t' * 128}:{key}",
        )

    at = datetime(2026, 11, 23)
    first = reply_rows(Reply(event=click("x" * 80 + "a"), text="好"), Channels(), at=at)
    second = reply_rows(Reply(event=click("x" * 80 + "b"), text="好"), Channels(), at=at)
    assert first[0]["idempotency_key"] != second[0]["idempotency_key"]
    assert len(first[0]["idempotency_key"]) <= 200


async def test_replies_this_process_can_send_go_out_at_once_and_once(
    service: TicketService, sandbox_config: BotConfig, clock: FrozenClock, router: CommandRouter
) -> None:
    from notifiers.outbox import OutboundMessage, OutboxWorker

    sent: list[tuple[str, str]] = []

    class Recording:
        async def send(self, message: OutboundMessage) -> None:
            sent.append((message.channel, message.destination))

    worker = OutboxWorker(service.store, {"aibot_response": Recording()}, clock, owner="me")
    direct = command_router(
        service=service, config=sandbox_config, clock=clock, channels=Channels(app=True), outbox=lambda: worker
    )
    await direct.handle(message("接单 0123"))
    await worker.drain()  # no pass: the reply went out when it was queued
    assert [channel for channel, _ in sent] == ["aibot_response"]
    by_channel = {row["channel"]: row for row in await replies(direct)}
    assert by_channel["aibot_response"]["status"] == "sent"
    # the private message has no sender in this process: it waits, unleased, for a pass of a process that has one
    assert (by_channel["wecom_app"]["status"], by_channel["wecom_app"]["lease_owner"]) == ("pending", None)
    await direct.handle(message("接单 0123"))  # the same event again (recovery after a crash)
    await worker.drain()
    assert len(sent) == 1


async def test_a_command_runs_on_statements_sqlalchemy_compiles_once(
    service: TicketService, sandbox_config: BotConfig, clock: FrozenClock, router: CommandRouter
) -> None:
    """Every statement of a command's path has a cache key, so SQLAlchemy compiles it once, not for every run (a
    multi-row VALUES has none: it is compiled anew each time)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    uncached: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        compiled = context is not None and context.compiled is not None  # not BEGIN and the like, sent as they are
        if compiled and str(context.cache_hit).endswith("NO_CACHE_KEY"):
            uncached.append(" ".join(statement.split())[:80])

    seen: list[str] = []

    def record_all(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        seen.append(statement)
        record(conn, cursor, statement, parameters, context, many)

    # every engine's statements: on SQLite the store runs them through a synchronous engine of its own
    event.listen(Engine, "before_cursor_execute", record_all)
    try:
        for i, text in enumerate(["接单 0123", "查 0123", "联系 0123 已电话联系", "我的", "到场 0123"]):
            await router.handle(message(text, msgid=f"c{i}"))
    finally:
        event.remove(Engine, "before_cursor_execute", record_all)
    assert len(seen) > 10
    assert uncached == []
