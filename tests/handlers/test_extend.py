"""/延期 through the command router, on both databases: the request, the approvers told privately, the decision, who
may do which, and a re-run event applied once. Members and units are the sandbox config's (SRJG: chenjing head,
sunlei deputy, zhouting; HW: huangqiang head, wuhao (also admin); RXB: dispatchers zhangwei (its head) and
wangfang, zhaomin on duty; lilei center lead, in no unit)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from bot.domain.clock import TZ, FrozenClock
from bot.domain.events import TextMessage
from bot.domain.lifecycle import TicketState
from bot.domain.records import Ticket
from bot.domain.ticket import TicketInput
from bot.services.channels import Channels
from bot.services.tickets import TicketService
from config.model import BotConfig
from handlers.commands import COMMANDS
from handlers.context import Context
from handlers.router import CommandRouter
from store.models import audit_log, outbox
from tests.handlers.conftest import MakeRouter
from tests.handlers.test_router import message, texts

NO = "2026112300123"  # SRJG's, dispatched Mon 11-23 09:00: handling (5 working days) due Mon 11-30 09:00
OTHER = "2026112300456"  # HW's
HANDLE_DUE = datetime(2026, 11, 30, 9, 0, tzinfo=TZ)
ASK = f"/延期 {NO} 3 需协调物业，预计下周完成"


async def with_claims(service: TicketService, clock: FrozenClock, router: CommandRouter) -> CommandRouter:
    """``router`` once NO and OTHER are dispatched and claimed (NO by zhouting, OTHER by wuhao)."""
    await service.upsert(
        [
            TicketInput(ticket_no=NO, content="光明路店招破损，随时可能掉落", category="市容景观", citizen_name="王秀英",
                        citizen_phone="13800000013", dispatched_at=clock.now()),
            TicketInput(ticket_no=OTHER, content="垃圾箱房两天未清运", category="环卫", dispatched_at=clock.now()),
        ]
    )  # fmt: skip
    await router.handle(message(f"接单 {NO}", msgid="claim"))  # zhouting
    await router.handle(message(f"接单 {OTHER}", "wuhao", chat="sandbox-hw", msgid="claim-hw"))
    return router


@pytest.fixture
async def router(service: TicketService, clock: FrozenClock, make_router: MakeRouter) -> CommandRouter:
    """The app configured (private messages possible); NO claimed by zhouting, OTHER by wuhao."""
    return await with_claims(service, clock, make_router())


async def rows(router: CommandRouter, after: int = 0) -> list[dict[str, Any]]:
    """What the commands queued (not the hotline's sync-back), from outbox id ``after`` on."""
    async with router.store.reading() as conn:
        found = (await conn.execute(select(outbox).where(outbox.c.id > after).order_by(outbox.c.id))).mappings()
        return [dict(r) for r in found if r["channel"] != "hotline"]


async def last_id(router: CommandRouter) -> int:
    async with router.store.reading() as conn:
        return max((r.id for r in (await conn.execute(select(outbox.c.id))).all()), default=0)


def to(found: list[dict[str, Any]], userid: str) -> list[str]:
    """The texts sent privately to ``userid`` by app message."""
    return texts([r for r in found if r["channel"] == "wecom_app" and r["destination"] == userid])


def group(found: list[dict[str, Any]]) -> list[str]:
    return texts([r for r in found if r["channel"] == "aibot_response"])


async def ticket(router: CommandRouter, no: str = NO) -> Ticket:
    return (await router.service.get(no)).ticket


async def handle_due(router: CommandRouter, no: str = NO) -> datetime:
    detail = await router.service.get(no)
    [due] = [d.due_at for d in detail.deadlines if d.name == "handle" and d.status == "open"]
    return due


async def actions(router: CommandRouter, name: str) -> int:
    async with router.store.reading() as conn:
        return len((await conn.execute(select(audit_log.c.id).where(audit_log.c.action == name))).all())


# -- the request ---------------------------------------------------------------------------------------------------


async def test_a_request_in_the_group_tells_the_unit_heads_privately(router: CommandRouter) -> None:
    start = await last_id(router)
    await router.handle(message(ASK, msgid="ask"))
    found = await rows(router, start)
    [reply] = group(found)
    assert reply.startswith("⏳ 周婷 申请延期 3 个工作日，已通知市容景观所负责人（陈静、孙磊）审批。\n")
    assert f"工单 {NO}" in reply and "延期申请待审批：3 个工作日（周婷：需协调物业，预计下周完成）" in reply  # noqa: PT018
    for head in ("chenjing", "sunlei"):
        [notice] = to(found, head)
        assert notice == (
            f"周婷 申请工单 {NO} 延期 3 个工作日：需协调物业，预计下周完成\n"
            "当前办结时限 11-30 09:00。\n"
            f"回复「延期 {NO} 同意」或「延期 {NO} 驳回 理由」。"
        )
    assert to(found, "zhouting") == []  # the requester is answered in the group
    row = await ticket(router)
    assert (row.state, row.extension_days, row.extension_requested_by) == ("claimed", 3, "zhouting")
    assert await handle_due(router) == HANDLE_DUE  # nothing moves before the approval


@pytest.mark.parametrize(
    ("text", "days"),
    [
        (f"/延期 {NO} 需协调物业", 3),  # no number: deadlines.extension.default_days
        (f"申请延期 {NO} 5天，需协调物业", 5),
        (f"postpone {NO} 2个工作日 需协调物业", 2),
        ("/延期 两天 需协调物业", 2),  # the ticket from the quoted push
    ],
)
async def test_days_as_written_or_the_default(router: CommandRouter, text: str, days: int) -> None:
    await router.handle(message(text, msgid="ask", quoted=f"【新工单】工单 {NO} 店招破损"))
    assert (await ticket(router)).extension_days == days


async def test_requests_that_cannot_be_made_are_refused_politely(router: CommandRouter, clock: FrozenClock) -> None:
    await router.handle(message(f"/延期 {NO}", msgid="a"))  # no reason
    await router.handle(message(f"/延期 {NO} 11 需协调物业", msgid="b"))  # over the limit
    await router.handle(message(ASK, msgid="c"))
    await router.handle(message(f"/延期 {NO} 2 再申请", "chenjing", msgid="d"))
    no_reason, too_many, _asked, twice = group(await rows(router))[-4:]
    assert no_reason.startswith("请写明延期理由。\n用法：/延期 <工单号> [同意/驳回] [天数] [理由]")
    assert too_many == "延期天数须为 1 至 10 个工作日。"
    assert twice == f"工单 {NO} 已有延期申请待审批（3 个工作日）。"
    await router.handle(message(f"/延期 {NO} 同意", "chenjing", msgid="e"))
    clock.set(HANDLE_DUE)  # the extended deadline is 12-03 09:00 now; the one extension is used up
    await router.handle(message(f"/延期 {NO} 1 还需协调", msgid="f"))
    assert group(await rows(router))[-1] == f"工单 {NO} 已延期 1 次，不能再申请延期。"
    clock.set(datetime(2026, 12, 3, 9, 1, tzinfo=TZ))
    await router.handle(message(f"/延期 {OTHER} 1 需协调", "wuhao", chat="sandbox-hw", msgid="g"))
    late = group(await rows(router))[-1]
    assert late == f"工单 {OTHER} 已逾期，不能再申请延期，请尽快办理（办结时限 11-30 09:00）。"


async def test_an_unclaimed_ticket_is_claimed_first(router: CommandRouter, service: TicketService) -> None:
    await service.upsert([TicketInput(ticket_no="2026112300789", content="店招破损", category="市容景观")])
    await router.handle(message("/延期 2026112300789 3 需协调", msgid="x"))
    assert group(await rows(router))[-1] == "工单 2026112300789 尚未接单，请先接单再申请延期。"


async def test_a_heads_request_goes_to_the_dispatchers(router: CommandRouter) -> None:
    start = await last_id(router)
    await router.handle(message(f"/延期 {NO} 2 需协调", "chenjing", msgid="ask"))
    found = await rows(router, start)
    assert group(found)[0].startswith("⏳ 陈静 申请延期 2 个工作日，已通知派单员（张伟、王芳）审批。")
    assert len(to(found, "zhangwei")) == len(to(found, "wangfang")) == 1
    assert to(found, "sunlei") == []
    # the deputy head may not decide on the head's request
    await router.handle(message(f"/延期 {NO} 同意", "sunlei", msgid="deputy"))
    assert group(await rows(router))[-1].startswith("抱歉，延期申请由派单员（张伟、王芳）审批")
    assert (await ticket(router)).extension_days == 2


async def test_without_a_private_channel_the_group_is_asked(
    service: TicketService, clock: FrozenClock, make_router: MakeRouter
) -> None:
    router = await with_claims(service, clock, make_router(channels=Channels()))
    start = await last_id(router)
    await router.handle(message(ASK, msgid="ask"))
    found = await rows(router, start)
    [reply] = texts(found)  # the group's answer and nothing else
    assert reply.startswith(
        f"⏳ 周婷 申请延期 3 个工作日。请市容景观所负责人（陈静、孙磊）在群里回复「延期 {NO} 同意」或「延期 {NO} 驳回 理由」。"
    )
    await router.handle(message(f"延期 {NO} 同意", "chenjing", msgid="ok"))
    [answer] = texts(await rows(router, start + 1))
    assert answer.startswith("✅ 陈静 同意延期 3 个工作日，办结时限延至 12-03 09:00。\n")  # no one else to tell


# -- the decision --------------------------------------------------------------------------------------------------


async def test_approval_in_a_private_chat_moves_the_deadline_and_tells_the_requester(router: CommandRouter) -> None:
    await router.handle(message(ASK, msgid="ask"))
    start = await last_id(router)
    await router.handle(message(f"延期 {NO} 同意", "chenjing", chat=None, source="app", msgid="ok"))
    found = await rows(router, start)
    [answer] = to(found, "chenjing")  # the 1:1 chat with the app: the answer there
    assert answer.startswith("✅ 陈静 同意延期 3 个工作日，办结时限延至 12-03 09:00。已告知周婷。\n")
    assert "延期申请待审批" not in answer
    [notice] = to(found, "zhouting")
    assert notice == f"您申请的工单 {NO} 延期已获 陈静 同意：3 个工作日，办结时限延至 12-03 09:00。"
    # Mon 11-30 09:00 + 3 working days
    assert await handle_due(router) == datetime(2026, 12, 3, 9, 0, tzinfo=TZ)
    row = await ticket(router)
    assert (row.state, row.extension_days, row.extension_count) == (TicketState.CLAIMED, None, 1)


async def test_approval_of_fewer_days(router: CommandRouter) -> None:
    await router.handle(message(ASK, msgid="ask"))
    await router.handle(message(f"延期 {NO} 同意 1天", "zhangwei", chat="sandbox-rxb", msgid="ok"))
    assert group(await rows(router))[-1].startswith(
        "✅ 张伟 同意延期 1 个工作日（申请 3 个），办结时限延至 12-01 09:00。已告知周婷。"
    )
    assert await handle_due(router) == datetime(2026, 12, 1, 9, 0, tzinfo=TZ)


async def test_rejection_needs_a_reason_and_keeps_the_deadline(router: CommandRouter) -> None:
    await router.handle(message(ASK, msgid="ask"))
    await router.handle(message(f"/延期 {NO} 驳回", "chenjing", msgid="no1"))
    assert group(await rows(router))[-1] == f"驳回延期请写明理由，例如：/延期 {NO} 驳回 请按原时限办结"
    start = await last_id(router)
    await router.handle(message(f"/延期 {NO} 不同意，物业已答复可按期完成", "chenjing", msgid="no2"))
    found = await rows(router, start)
    [reply] = group(found)
    assert reply.startswith("❌ 陈静 驳回延期申请：物业已答复可按期完成。办结时限仍为 11-30 09:00。已告知周婷。\n")
    [notice] = to(found, "zhouting")
    assert notice == (
        f"您申请的工单 {NO} 延期未获同意（陈静：物业已答复可按期完成）。请按原时限办理：办结时限 11-30 09:00。"
    )
    assert await handle_due(router) == HANDLE_DUE
    row = await ticket(router)
    assert (row.extension_days, row.extension_count) == (None, 0)
    await router.handle(message(f"/延期 {NO} 同意", "chenjing", msgid="no3"))
    assert group(await rows(router))[-1] == f"工单 {NO} 没有待审批的延期申请。"


async def test_a_submitted_ticket_has_no_request_left(router: CommandRouter) -> None:
    await router.handle(message(ASK, msgid="ask"))
    await router.handle(message(f"办结 {NO} 店招已加固", msgid="done"))
    await router.handle(message(f"/延期 {NO} 同意", "chenjing", msgid="ok"))
    assert group(await rows(router))[-1] == f"工单 {NO} 没有待审批的延期申请。"
    assert (await ticket(router)).state == TicketState.SUBMITTED


async def test_show_tells_of_a_pending_request(router: CommandRouter) -> None:
    await router.handle(message(f"/延期 {NO} 2 市民电话13812345678需回访确认", msgid="ask"))
    await router.handle(message(f"查 {NO}", "huangqiang", chat="sandbox-hw", msgid="show-hw"))  # not his unit
    await router.handle(message(f"查 {NO}", "sunlei", msgid="show"))
    shown = group(await rows(router))[-1]
    assert "延期申请待审批：2 个工作日（周婷：市民电话138＊＊＊＊5678需回访确认）" in shown  # masked in a group
    await router.handle(message(f"/延期 {NO} 同意", "sunlei", msgid="ok"))
    await router.handle(message(f"查 {NO}", "sunlei", msgid="show2"))
    assert "延期申请" not in group(await rows(router))[-1]


# -- who may do which ----------------------------------------------------------------------------------------------

# every member's commands by role, written out from the README's "who" column: what each persona may NOT use
# (the router refuses before anything runs); 延期 is open to those who ask and to those who decide
WORKER_COMMANDS = {"claim", "contact", "on_site", "submit", "return", "transfer"}
NOT_ALLOWED: dict[str, set[str]] = {
    "zhouting": {"visit", "assign", "stats", "report", "redispatch"},  # handler
    "chenjing": {"visit", "assign", "redispatch"},  # unit head
    "zhangwei": {"assign"},  # dispatcher, head of the office's own unit
    "wangfang": {"assign"},  # dispatcher, member of the office's unit
    "lilei": (WORKER_COMMANDS - {"return"}) | {"visit"},  # center lead, in no unit (退单: the office's review)
    "zhaomin": {"visit", "assign", "stats", "report", "redispatch"},  # on duty, member of the office's unit
    "wuhao": {"visit", "assign"},  # handler and admin
}


@pytest.mark.parametrize("userid", sorted(NOT_ALLOWED))
def test_who_may_use_which_command(sandbox_config: BotConfig, userid: str) -> None:
    member = sandbox_config.member(userid)
    assert member is not None
    ctx = Context(
        event=message("帮助", userid),
        member=member,
        now=datetime.now(TZ),
        config=sandbox_config,
        service=None,
        channels=Channels(),
        reply=None,
        duty=None,
    )  # type: ignore[arg-type]
    refused = {spec.name for spec in COMMANDS if not ctx.may_use(spec)}
    assert refused == NOT_ALLOWED[userid]
    assert "extend" not in refused  # everyone here asks or decides


REQUESTS = [
    ("zhouting", "sandbox-srjg", "ok"),  # the handler
    ("chenjing", "sandbox-srjg", "ok"),  # the unit's head
    ("sunlei", "sandbox-srjg", "ok"),  # its deputy
    ("huangqiang", "sandbox-hw", "属于市容景观所，您不能对它操作"),  # another unit's head
    ("zhaomin", "sandbox-rxb", "属于市容景观所，您不能对它操作"),  # duty, of the office's unit
    ("zhangwei", "sandbox-rxb", "只有市容景观所的承办人或负责人可以"),  # a dispatcher does not ask
    ("lilei", None, "只有市容景观所的承办人或负责人可以"),  # nor does the center lead
    ("wuhao", "sandbox-hw", "只有市容景观所的承办人或负责人可以"),  # an admin of another unit
    ("stranger", "sandbox-srjg", "不在本热线系统的成员名单中"),
]


@pytest.mark.parametrize(("userid", "chat", "expect"), REQUESTS, ids=[r[0] for r in REQUESTS])
async def test_who_may_ask(router: CommandRouter, userid: str, chat: str | None, expect: str) -> None:
    source = "app" if chat is None else "aibot"
    await router.handle(message(ASK, userid, chat=chat, source=source, msgid="ask"))
    answer = texts(await rows(router))[-1]
    asked = (await ticket(router)).extension_requested_by
    if expect == "ok":
        assert answer.startswith("⏳ ")
        assert asked == userid
    else:
        assert expect in answer, answer
        assert asked is None


DECISIONS = [
    ("chenjing", "sandbox-srjg", "ok"),  # the unit's head
    ("sunlei", "sandbox-srjg", "ok"),  # its deputy
    ("zhangwei", "sandbox-rxb", "ok"),  # a dispatcher
    ("lilei", None, "ok"),  # the center lead
    ("wuhao", "sandbox-hw", "ok"),  # an admin
    ("zhouting", "sandbox-srjg", "延期申请由市容景观所负责人（陈静、孙磊）审批"),  # a handler: who can, instead
    ("huangqiang", "sandbox-hw", "属于市容景观所，您不能对它操作"),  # another unit's head
    ("zhaomin", "sandbox-rxb", "属于市容景观所，您不能对它操作"),
]


@pytest.mark.parametrize(("userid", "chat", "expect"), DECISIONS, ids=[d[0] for d in DECISIONS])
@pytest.mark.parametrize("word", ["同意", "驳回 请按期办结"])
async def test_who_may_decide(router: CommandRouter, userid: str, chat: str | None, expect: str, word: str) -> None:
    await router.handle(message(f"/延期 {NO} 3 需协调", "zhouting", msgid="ask"))
    source = "app" if chat is None else "aibot"
    await router.handle(message(f"/延期 {NO} {word}", userid, chat=chat, source=source, msgid="decide"))
    answer = texts(await rows(router))[-1]
    row = await ticket(router)
    if expect == "ok":
        assert answer.startswith("✅ " if word == "同意" else "❌ "), answer
        assert (row.extension_days, row.extension_count) == (None, 1 if word == "同意" else 0)
    else:
        assert expect in answer, answer
        assert row.extension_days == 3


async def test_nobody_decides_on_their_own_request(router: CommandRouter) -> None:
    # a dispatcher's own ticket (the office's unit): asked and decided by different people
    await router.service.upsert(
        [TicketInput(ticket_no="2026112300999", content="咨询", category=None, dispatched_at=router.clock.now())]
    )
    await router.handle(message("接单 2026112300999", "wangfang", chat="sandbox-rxb", msgid="c"))
    await router.handle(message("/延期 2026112300999 2 需协调", "wangfang", chat="sandbox-rxb", msgid="a"))
    await router.handle(message("/延期 2026112300999 同意", "wangfang", chat="sandbox-rxb", msgid="b"))
    assert group(await rows(router))[-1] == "工单 2026112300999 的延期申请是您提交的，请由热线办负责人（张伟）审批。"
    await router.handle(message("/延期 2026112300999 同意", "zhangwei", chat="sandbox-rxb", msgid="d"))
    assert (await ticket(router, "2026112300999")).extension_count == 1


# -- applied once ---------------------------------------------------------------------------------------------------


async def test_a_rerun_request_and_approval_are_applied_and_sent_once(router: CommandRouter) -> None:
    ask = message(ASK, msgid="ask")
    await router.handle(ask)
    queued = await rows(router)
    await router.handle(ask)  # the same event again (recovery after a crash)
    assert await rows(router) == queued
    assert await actions(router, "request_extension") == 1
    ok: TextMessage = message(f"/延期 {NO} 同意", "chenjing", msgid="ok")
    await router.handle(ok)
    queued = await rows(router)
    version = (await ticket(router)).version
    await router.handle(ok)
    await router.handle(ok)
    assert await rows(router) == queued  # the answer and the requester's notice, once
    assert (await ticket(router)).version == version
    assert await actions(router, "approve_extension") == 1
    assert await handle_due(router) == datetime(2026, 12, 3, 9, 0, tzinfo=TZ)  # moved 3 working days, once
