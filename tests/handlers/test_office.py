"""The office's other loops through the command router, on both databases: 实际解决 as the unit declares it and as the
citizen sees it, the visit's note, 不纳入测评 asked and decided, and 转派 telling the new handler privately.

Members and units are the sandbox config's (SRJG 市容景观所: chenjing head, sunlei deputy, zhouting; RXB 热线办:
dispatchers zhangwei and wangfang; lilei center lead; wuhao handler of HW and admin)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.domain.clock import FrozenClock
from bot.domain.lifecycle import Action, ActionRequest, TicketState, VisitResult
from bot.domain.ticket import TicketInput
from bot.services.channels import Channels
from bot.services.tickets import TicketService
from config.model import BotConfig
from handlers.router import CommandRouter
from notifiers.reviews import ReviewNotices
from store.models import audit_log
from tests.handlers.conftest import MakeRouter
from tests.handlers.test_returns import NAME, NO, PHONE, answers, group, masked, private, watching
from tests.handlers.test_router import message


@pytest.fixture
async def router(
    service: TicketService, sandbox_config: BotConfig, clock: FrozenClock, make_router: MakeRouter
) -> CommandRouter:
    """NO claimed by zhouting; the office's notices follow every change."""
    service.add_hook(ReviewNotices(sandbox_config, clock, Channels(app=True)))
    await service.upsert(
        [TicketInput(ticket_no=NO, content="光明路店招破损", category="市容景观", citizen_name=NAME,
                     citizen_phone=PHONE, address="光明路12号3室", dispatched_at=clock.now())]
    )  # fmt: skip
    router = make_router()
    await router.handle(message(f"接单 {NO}", msgid="claim"))
    return router


async def test_solved_as_declared_and_as_seen_at_the_visit(router: CommandRouter) -> None:
    seen = await watching(router)
    await router.handle(message(f"/办结 {NO} 部分解决，店招已拆除，支架待下周更换", msgid="submit"))
    [answer] = answers(await seen.new())
    assert answer.startswith("📝 周婷 已提交办结结果（部分解决），等待回访。")
    ticket = (await router.service.get(NO)).ticket
    assert (ticket.state, ticket.solved) == ("submitted", "partly")
    detail = await router.service.get(NO)
    assert detail.history[-1].note == "店招已拆除，支架待下周更换"  # the choice word is not part of the result
    note = f"市民{NAME}（{PHONE}）说支架仍有晃动"
    await router.handle(message(f"/回访 {NO} 不满意 未解决 {note}", "zhangwei", chat="sandbox-rxb", msgid="visit"))
    rows = await seen.new()
    [done] = answers(rows)
    assert done.startswith("☎️ 张伟 已登记回访结果：不满意（市民认为未解决）。已转为预警工单，退回承办单位再次处置。")
    masked(rows)
    ticket = (await router.service.get(NO)).ticket
    assert (ticket.state, ticket.solved, ticket.visit_solved) == ("warning", "partly", "unsolved")
    await router.handle(message(f"/查 {NO}", "zhangwei", chat="sandbox-rxb", msgid="show"))
    [shown] = answers(await seen.new())
    assert "办结 周婷（部分解决）" in shown
    assert "办理结果（11-23 09:00，部分解决）：店招已拆除" in shown
    assert "回访（11-23 09:00）：不满意，市民认为未解决，" in shown
    assert PHONE not in shown
    assert ticket.visit_note == note  # kept whole; shown masked


async def test_a_submit_without_a_word_on_it_is_solved(router: CommandRouter) -> None:
    seen = await watching(router)
    await router.handle(message(f"/办结 {NO} 已清理完毕", msgid="submit"))
    assert answers(await seen.new())[0].startswith("📝 周婷 已提交办结结果（已解决），等待回访。")
    await router.handle(message(f"/回访 {NO} 满意", "zhangwei", chat="sandbox-rxb", msgid="visit"))
    ticket = (await router.service.get(NO)).ticket
    assert (ticket.state, ticket.solved, ticket.visit_solved, ticket.visit_note) == ("closed", "solved", None, None)


async def test_which_visit_results_make_a_warning_ticket_is_configuration(
    service: TicketService, sandbox_config: BotConfig, clock: FrozenClock
) -> None:
    data = sandbox_config.model_dump(by_alias=True)
    data["visits"] = {"warning_results": ["不满意", "联系不上"]}
    strict = TicketService(service.store, BotConfig.model_validate(data), service.calendar, clock)
    await strict.upsert([TicketInput(ticket_no=NO, content="店招破损", category="市容景观", dispatched_at=clock.now())])
    now = clock.now()
    await strict.act(NO, ActionRequest(action=Action.SUBMIT, actor="zhouting", at=now, note="已处理"))
    visit = ActionRequest(action=Action.VISIT, actor="zhangwei", at=now, result=VisitResult.UNREACHABLE)
    out = await strict.act(NO, visit)
    assert out.to_state is TicketState.WARNING


async def test_exclusion_asked_by_the_unit_and_decided_by_the_office(router: CommandRouter) -> None:
    seen = await watching(router)
    await router.handle(message(f"/不纳入测评 {NO}", msgid="empty"))
    assert answers(await seen.new())[0].startswith("请写明不纳入测评的理由。")
    await router.handle(message(f"/不纳入测评 {NO} 市民{NAME}重复来电，已在前单办结", msgid="ask"))
    rows = await seen.new()
    assert answers(rows)[0].startswith(f"📋 周婷 申请工单 {NO} 不纳入测评，已提交派单员、中心领导审核。")
    assert "不纳入测评：申请审核中" in answers(rows)[0]
    [office] = group(rows, "sandbox-rxb")
    assert office.startswith(f"**【不纳入测评申请】工单 {NO}（常规）**")
    assert f"「不纳入测评 {NO} 同意」" in office
    assert private(rows, "zhangwei") == [office]
    assert private(rows, "lilei") == [office]
    masked(rows)
    # an admin is no decider
    await router.handle(message(f"/不纳入测评 {NO} 同意", "wuhao", chat="sandbox-hw", msgid="admin"))
    assert answers(await seen.new())[0].startswith("抱歉，")
    await router.handle(message(f"/不纳入测评 {NO} 驳回", "zhangwei", chat="sandbox-rxb", msgid="no-reason"))
    assert answers(await seen.new())[0].startswith("驳回请写明理由")
    await router.handle(message(f"/不纳入测评 {NO} 同意", "lilei", chat=None, msgid="ok"))
    rows = await seen.new()
    assert answers(rows)[0].startswith(f"✅ 李雷 同意工单 {NO} 不纳入测评。已告知承办单位。")
    [told] = group(rows, "sandbox-srjg")
    assert told.startswith(f"**✅ 工单 {NO} 不纳入测评的申请已获同意**")
    assert group(rows, "sandbox-rxb") == [told]  # the office, whose group was asked, hears it too
    assert (await router.service.get(NO)).ticket.evaluation == "excluded"


async def test_a_transfer_tells_the_new_handler_privately(router: CommandRouter) -> None:
    seen = await watching(router)
    await router.handle(message(f"/转派 {NO} 孙磊", msgid="transfer"))
    rows = await seen.new()
    [answer] = answers(rows)
    assert answer.startswith("🔁 周婷 已将工单转派给 孙磊。联系方式和剩余时限已单独发给孙磊。")
    assert PHONE not in answer
    [told] = private(rows, "sunlei")
    # the nearest deadline, as the group sees it; the handling deadline beside it
    assert told.startswith(f"周婷 将工单 {NO}（常规）转派给您承办。\n下一时限：20分钟联系 ")
    assert "\n办结时限：" in told
    assert PHONE in told  # for the new handler's eyes only
    assert "光明路12号3室" in told
    async with router.store.reading() as conn:
        seen_by = (await conn.execute(select(audit_log.c.actor).where(audit_log.c.action == "view_contact"))).all()
    assert ("sunlei",) in seen_by


async def test_a_list_that_spans_units_names_each_lines_unit(router: CommandRouter, clock: FrozenClock) -> None:
    await router.service.upsert(
        [
            TicketInput(
                ticket_no="2026112300456", content="垃圾箱房两天未清运", category="环卫", dispatched_at=clock.now()
            )
        ]
    )
    seen = await watching(router)
    await router.handle(message("/待办", "zhangwei", chat="sandbox-rxb", msgid="todo"))
    [listed] = answers(await seen.new())
    assert f"· {NO} 光明路店招破损｜市容景观所｜" in listed
    assert "· 2026112300456 垃圾箱房两天未清运｜环卫所｜" in listed
    await router.handle(message("/待办", "zhouting", msgid="todo-unit"))  # one unit: no unit on each line
    [own] = answers(await seen.new())
    assert f"· {NO} 光明路店招破损｜已接单" in own
