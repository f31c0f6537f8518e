"""退单 and 改派 through the command router, on both databases, with time moving: a handler's request, the head's
signature, the office told, the unit's reminders held while the office reviews, the dispatchers reminded instead,
then approval (with a re-dispatch in the same step), rejection (the deadlines run on), 签派 for a ticket returned
twice, and the platform's own decisions over the API's events.

Members and units are the sandbox config's (SRJG 市容景观所: chenjing head, sunlei deputy, zhouting; HW 环卫所:
huangqiang head, wuhao; RXB 热线办: dispatchers zhangwei (its head) and wangfang, zhaomin on duty; lilei center
lead, in no unit). What the members were told is read from the outbox rows the commands and the notices queued;
the deadline engine ticks with the clock moved."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.domain.clock import TZ, FrozenClock
from bot.domain.lifecycle import Action, ActionRequest, TicketState
from bot.domain.ticket import TicketInput
from bot.domain.workcal import WorkCalendar
from bot.services.channels import Channels
from bot.services.deadline_engine import DeadlineEngine
from bot.services.tickets import TicketService
from config.model import BotConfig
from handlers.router import CommandRouter
from notifiers.reviews import ReviewNotices
from store.models import deadlines, outbox
from tests.engines import deadline_engine
from tests.handlers.conftest import MakeRouter
from tests.handlers.test_router import message, texts

NO = "2026112300123"  # SRJG's, dispatched Mon 11-23 09:00
PHONE, NAME = "13800000013", "王秀英"
ASK = f"/退单 {NO} 该路段属市政道路，市民{NAME}电话{PHONE} 建议:环卫所"


@pytest.fixture
async def router(
    service: TicketService, sandbox_config: BotConfig, clock: FrozenClock, make_router: MakeRouter
) -> CommandRouter:
    """The app configured (private messages possible), the return notices following every change; NO claimed by
    zhouting."""
    service.add_hook(ReviewNotices(sandbox_config, clock, Channels(app=True)))
    await service.upsert(
        [TicketInput(ticket_no=NO, content="光明路店招破损", category="市容景观", citizen_name=NAME,
                     citizen_phone=PHONE, dispatched_at=clock.now())]
    )  # fmt: skip
    router = make_router()
    await router.handle(message(f"接单 {NO}", msgid="claim"))
    return router


@pytest.fixture
def engine(
    service: TicketService, sandbox_config: BotConfig, calendar: WorkCalendar, clock: FrozenClock
) -> DeadlineEngine:
    return deadline_engine(service.store, sandbox_config, calendar, clock)


class Seen:
    """The outbox rows queued since the last look (the hotline's sync-back left out)."""

    def __init__(self, router: CommandRouter) -> None:
        self.router = router
        self.after = 0

    async def new(self) -> list[dict[str, Any]]:
        async with self.router.store.reading() as conn:
            found = (
                await conn.execute(select(outbox).where(outbox.c.id > self.after).order_by(outbox.c.id))
            ).mappings()
            rows = [dict(r) for r in found]
        if rows:
            self.after = rows[-1]["id"]
        return [r for r in rows if r["channel"] != "hotline"]


async def watching(router: CommandRouter) -> Seen:
    """A Seen that starts from what is queued now."""
    seen = Seen(router)
    await seen.new()
    return seen


def private(rows: list[dict[str, Any]], userid: str) -> list[str]:
    return texts([r for r in rows if r["channel"] == "wecom_app" and r["destination"] == userid])


def answers(rows: list[dict[str, Any]]) -> list[str]:
    """The command's answers in the chat it was typed in."""
    return texts([r for r in rows if r["channel"] == "aibot_response"])


def group(rows: list[dict[str, Any]], chat: str) -> list[str]:
    return texts([r for r in rows if r["destination"] == chat and r["channel"] != "aibot_response"])


def masked(rows: list[dict[str, Any]]) -> None:
    for text in texts(rows):
        assert PHONE not in text
        assert NAME not in text


async def state(router: CommandRouter) -> TicketState:
    return (await router.service.get(NO)).ticket.state


async def open_deadlines(router: CommandRouter) -> dict[str, dict[str, Any]]:
    async with router.store.reading() as conn:
        found = (await conn.execute(select(deadlines).where(deadlines.c.status == "open"))).mappings()
        return {r["name"]: dict(r) for r in found}


async def test_request_signature_review_and_approval_with_a_redispatch(
    router: CommandRouter, engine: DeadlineEngine, clock: FrozenClock
) -> None:
    seen = await watching(router)
    # the handler asks: the heads are asked privately to sign; nothing reaches the office yet
    await router.handle(message(ASK, msgid="ask"))
    rows = await seen.new()
    [answer] = answers(rows)
    assert answer.startswith("↩️ 周婷 申请退单，已请负责人（陈静、孙磊）确认后提交热线办审核。")
    assert "退单申请待负责人确认（周婷：该路段属市政道路，市民王某某电话138＊＊＊＊0013；建议：环卫所）" in answer
    for head in ("chenjing", "sunlei"):
        [asked] = private(rows, head)
        assert asked.startswith(f"**【退单待确认】工单 {NO}**\n周婷 申请退单：")
        assert "> 建议单位：环卫所" in asked
        assert f"「退单 {NO} 确认」" in asked
    assert private(rows, "zhangwei") == []
    masked(rows)
    assert await state(router) is TicketState.CLAIMED
    # the head signs: the office's group and each dispatcher are told, the unit's reminders hold
    clock.advance(minutes=10)
    await router.handle(message(f"退单 {NO} 确认", "chenjing", msgid="sign"))
    rows = await seen.new()
    [signed] = answers(rows)
    assert signed.startswith("✍️ 陈静 已确认退单，已提交热线办审核")
    assert "下一时限：退单审核 11-24 09:10" in signed
    assert "退单申请热线办审核中，暂停催办" in signed
    [office] = group(rows, "sandbox-rxb")
    assert office.startswith(f"**【退单审核】工单 {NO}（常规）**\n市容景观所申请退单：")
    assert "> 申请人：周婷，负责人 陈静 已确认" in office
    assert "> 审核时限：11-24 09:10" in office  # one working day
    assert f"「退单 {NO} 同意」" in office
    for dispatcher in ("zhangwei", "wangfang"):
        assert private(rows, dispatcher) == [office]
    masked(rows)
    assert await state(router) is TicketState.RETURN_REQUESTED
    held = await open_deadlines(router)
    assert held["return_review"]["next_due_at"] is not None
    assert {name for name, row in held.items() if row["next_due_at"] is not None} == {"return_review"}
    # a day later the unit's first-contact deadline has passed: nobody in the unit is nagged, the dispatchers are
    clock.set(datetime(2026, 11, 24, 9, 30, tzinfo=TZ))
    await engine.tick()
    rows = await seen.new()
    assert group(rows, "sandbox-srjg") == []
    assert private(rows, "zhouting") == []
    [nag] = group(rows, "sandbox-rxb")
    assert NO in nag
    assert "退单审核" in nag
    assert private(rows, "zhangwei")
    # the dispatcher approves and names the unit: HW gets the ticket as a new one, SRJG hears it went
    await router.handle(message(f"/退单 {NO[-4:]} 同意 环卫所", "zhangwei", chat="sandbox-rxb", msgid="ok"))
    rows = await seen.new()
    assert answers(rows)[0].startswith("✅ 张伟 同意退单，已改派至环卫所。")
    detail = await router.service.get(NO)
    assert (detail.ticket.state, detail.ticket.unit_code, detail.ticket.return_count) == ("dispatched", "HW", 1)
    assert detail.ticket.redispatch_count == 1
    assert detail.ticket.return_reason is None
    by_cycle = {(d.name, d.cycle): d.status for d in detail.deadlines}
    assert by_cycle[("return_review", 1)] == "met"
    # first contact was due on Tuesday 09:00, after the request: cancelled, not missed
    assert by_cycle[("first_contact", 1)] == "cancelled"
    assert by_cycle[("accept", 1)] == "met"
    assert ("accept", 2) in by_cycle


async def test_rejection_lets_the_deadlines_run_on(
    router: CommandRouter, engine: DeadlineEngine, clock: FrozenClock
) -> None:
    seen = await watching(router)
    await router.handle(message(f"/退单 {NO} 不属于本所 建议:环卫所", "chenjing", msgid="ask"))  # a head's own
    await seen.new()
    assert await state(router) is TicketState.RETURN_REQUESTED
    clock.set(datetime(2026, 11, 24, 9, 30, tzinfo=TZ))  # first contact was due at 09:00
    # a rejection needs its reason
    await router.handle(message(f"/退单 {NO} 驳回", "zhangwei", chat="sandbox-rxb", msgid="no-reason"))
    [asked] = answers(await seen.new())
    assert asked.startswith("驳回退单请写明理由")
    assert await state(router) is TicketState.RETURN_REQUESTED
    await router.handle(message(f"/退单 {NO} 驳回 经核实属于贵所职责", "zhangwei", chat="sandbox-rxb", msgid="no"))
    rows = await seen.new()
    assert answers(rows)[0].startswith("❌ 张伟 驳回退单：经核实属于贵所职责。已告知市容景观所")
    [told] = group(rows, "sandbox-srjg")
    assert told.startswith(f"**❌ 热线办驳回退单：工单 {NO}**\n> 理由：经核实属于贵所职责\n请继续办理，办结时限")
    assert told.endswith("<@chenjing> <@zhouting>")
    assert await state(router) is TicketState.CLAIMED
    # the overdue first contact is nagged at the next tick, as it would have been
    await engine.tick()
    rows = await seen.new()
    assert any(NO in text for text in group(rows, "sandbox-srjg"))
    # no second return in this dispatch
    await router.handle(message(f"/退单 {NO} 还是不属于 建议:环卫所", "chenjing", msgid="again"))
    [refused] = answers(await seen.new())
    assert "不能退单" in refused


async def test_the_head_declines_and_the_handler_is_told(router: CommandRouter) -> None:
    seen = await watching(router)
    await router.handle(message(ASK, msgid="ask"))
    await seen.new()
    # only a head signs: not the handler, not the office
    await router.handle(message(f"/退单 {NO} 确认", "zhangwei", chat="sandbox-rxb", msgid="d"))
    [refused] = answers(await seen.new())
    assert refused.startswith(f"抱歉，工单 {NO} 的退单申请由市容景观所负责人确认")
    await router.handle(message(f"/退单 {NO} 驳回 属于我所，请继续办理", "sunlei", msgid="decline"))
    rows = await seen.new()
    assert answers(rows)[0].startswith("孙磊 不同意退单：属于我所，请继续办理。已告知周婷。\n")
    [told] = private(rows, "zhouting")
    assert "未获负责人同意" in told
    ticket = (await router.service.get(NO)).ticket
    assert (ticket.state, ticket.return_requested_at) == ("claimed", None)


async def test_a_ticket_returned_twice_goes_to_the_center_lead(router: CommandRouter, clock: FrozenClock) -> None:
    seen = await watching(router)
    service = router.service
    now = clock.now()
    await service.act(
        NO, ActionRequest(action=Action.REQUEST_RETURN, actor="chenjing", at=now, note="非本所", unit="HW")
    )
    await router.handle(message(f"/退单 {NO} 同意", "zhangwei", chat="sandbox-rxb", msgid="ok1"))
    rows = await seen.new()
    assert answers(rows)[-1].startswith(f"✅ 张伟 同意退单。请发送「改派 {NO} 单位」重新派单。")
    # the office re-dispatches by hand: HW returns it too, and its approval sends it to the center lead
    await router.handle(message(f"/改派 {NO} 环卫所", "wangfang", chat="sandbox-rxb", msgid="move"))
    assert answers(await seen.new())[-1].startswith("🔀 王芳 已将工单改派至环卫所。")
    await service.act(
        NO, ActionRequest(action=Action.REQUEST_RETURN, actor="huangqiang", at=now, note="也不是", unit="SRJG")
    )
    await router.handle(message(f"/退单 {NO} 同意 市容景观所", "zhangwei", chat="sandbox-rxb", msgid="ok2"))
    rows = await seen.new()
    assert answers(rows)[-1].startswith("✅ 张伟 同意退单。工单已退单 2 次，需由中心领导签派，已通知中心领导。")
    [lead] = private(rows, "lilei")
    assert lead.startswith(f"**【待签派】工单 {NO}（常规）已退单 2 次**")
    assert "> 派单员提出改派：市容景观所" in lead
    assert await state(router) is TicketState.PENDING_ASSIGNMENT
    # 改派 is refused now; 签派 decides
    await router.handle(message(f"/改派 {NO} 市容景观所", "zhangwei", chat="sandbox-rxb", msgid="move2"))
    assert "需由中心领导签派" in answers(await seen.new())[-1]
    await router.handle(message(f"/签派 {NO} 市容景观所", "lilei", chat=None, msgid="assign"))
    assert (await state(router)) is TicketState.DISPATCHED


async def test_the_limits_are_configuration(
    service: TicketService, sandbox_config: BotConfig, clock: FrozenClock
) -> None:
    data = sandbox_config.model_dump(by_alias=True)
    data["returns"] = {"head_signoff": False, "assignment_after_returns": 3, "review": "2h"}
    lenient = TicketService(service.store, BotConfig.model_validate(data), service.calendar, clock)
    await lenient.upsert(
        [TicketInput(ticket_no=NO, content="店招破损", category="市容景观", dispatched_at=clock.now())]
    )
    await lenient.act(
        NO, ActionRequest(action=Action.REQUEST_RETURN, actor="zhouting", at=clock.now(), note="非本所", unit="HW")
    )
    detail = await lenient.get(NO)
    assert detail.ticket.state is TicketState.RETURN_REQUESTED  # no signature asked
    [review] = [d for d in detail.deadlines if d.name == "return_review"]
    assert review.due_at == clock.now() + timedelta(hours=2)
    out = await lenient.act(NO, ActionRequest(action=Action.APPROVE_RETURN, actor="zhangwei", at=clock.now()))
    assert out.to_state is TicketState.RETURNED


async def test_words_that_decide_nothing_and_requests_without_a_unit(router: CommandRouter) -> None:
    seen = await watching(router)
    await router.handle(message(f"/退单 {NO} 确认", "chenjing", msgid="nothing"))
    assert answers(await seen.new()) == [f"抱歉，工单 {NO} 没有待确认的退单申请。"]
    await router.handle(message(f"/退单 {NO} 驳回 属于本所", "zhangwei", chat="sandbox-rxb", msgid="nothing2"))
    assert answers(await seen.new()) == [f"抱歉，工单 {NO} 没有待审核的退单申请。"]
    await router.handle(message(f"/退单 {NO} 噪音扰民应由生态环境部门处理", msgid="no-unit"))
    [asked] = answers(await seen.new())
    assert asked.startswith("请写明建议单位（建议:单位）。")
    assert "例如：/退单 0123 该路段属市政道路 建议:市政所" in asked
    # a reason that starts with a decision word, with its suggested unit, is a request
    await router.handle(message(f"/退单 {NO} 确认不属于本所 建议:环卫所", msgid="ask"))
    assert (await router.service.get(NO)).ticket.return_reason == "确认不属于本所"


async def test_the_handler_hears_that_the_head_signed(router: CommandRouter) -> None:
    seen = await watching(router)
    await router.handle(message(ASK, msgid="ask"))
    await router.handle(message(f"退单 {NO} 确认", "sunlei", msgid="sign"))
    [told] = private(await seen.new(), "zhouting")
    assert told.startswith(f"**工单 {NO} 的退单申请已由负责人 孙磊 确认**\n已提交热线办审核")


async def test_the_timeline_says_where_an_approved_return_went(router: CommandRouter) -> None:
    seen = await watching(router)
    await router.handle(message(f"/退单 {NO} 非本所职责 建议:环卫所", "chenjing", msgid="ask"))
    await router.handle(message(f"/退单 {NO} 同意 环卫所", "zhangwei", chat="sandbox-rxb", msgid="ok"))
    await seen.new()
    await router.handle(message(f"/查 {NO}", "zhangwei", chat="sandbox-rxb", msgid="show"))
    [shown] = answers(await seen.new())
    assert "同意退单 张伟（→ 环卫所）" in shown


async def test_a_suggestion_that_is_not_a_unit_of_ours_is_masked(router: CommandRouter) -> None:
    """建议: is a member's text: where it names no unit of ours, the heads and the office read it masked."""
    seen = await watching(router)
    await router.handle(message(f"/退单 {NO} 非本所职责 建议:物业{NAME}{PHONE}", "chenjing", msgid="ask"))
    rows = await seen.new()
    [review] = [text for text in group(rows, "sandbox-rxb") if "建议单位" in text]
    assert "> 建议单位：物业王某某138＊＊＊＊0013" in review
    masked(rows)
