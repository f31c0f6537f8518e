"""/报表 through the command router, on both databases: the office sees any unit or all, a head the units they lead,
a handler nothing; bad periods and units get a polite answer.

Sandbox members: SRJG 市容景观所 (chenjing head, zhouting handler), HW 环卫所 (wuhao handler), RXB 热线办 (dispatcher
zhangwei), lilei center lead."""

from __future__ import annotations

from datetime import datetime

import pytest

from bot.domain.clock import TZ, FrozenClock
from bot.domain.ticket import TicketInput
from bot.services.tickets import TicketService
from handlers.router import CommandRouter
from tests.handlers.conftest import MakeRouter
from tests.handlers.test_returns import answers, watching
from tests.handlers.test_router import message


@pytest.fixture
async def router(service: TicketService, clock: FrozenClock, make_router: MakeRouter) -> CommandRouter:
    """Two tickets for 市容景观所 on Monday 11-23: one claimed at once, one never (its accept deadline passes)."""
    await service.upsert(
        [
            TicketInput(
                ticket_no=f"20261123012{i}", content="光明路店招破损", category="市容景观", dispatched_at=clock.now()
            )
            for i in (1, 2)
        ]
    )
    router = make_router()
    await router.handle(message("接单 0121", msgid="claim"))  # zhouting
    clock.set(datetime(2026, 11, 25, 10, 0, tzinfo=TZ))
    return router


async def ask(router: CommandRouter, text: str, userid: str, msgid: str) -> str:
    seen = await watching(router)
    await router.handle(message(text, userid, msgid=msgid))
    [answer] = answers(await seen.new())
    return answer


async def test_a_dispatcher_sees_the_office_and_any_unit(router: CommandRouter) -> None:
    office = await ask(router, "/报表", "zhangwei", "r1")
    assert office.startswith("**演示街道12345热线办（全部单位） 2026年11月**")
    assert "按时接单率 1/2（50.0%）" in office  # every rate as numerator/denominator
    unit = await ask(router, "/报表 月 市容景观所", "zhangwei", "r2")
    assert unit.startswith("**市容景观所 2026年11月**")
    assert "未按时接单 1 次；" in unit  # a month's: the limit counts in two months
    earlier = await ask(router, "/报表 2026-10 市容景观所", "lilei", "r3")
    assert earlier.startswith("**市容景观所 2026年10月**")
    assert earlier.endswith("本期暂无数据：没有收到工单，也没有到期的时限、回访或退单。")


async def test_a_head_sees_the_units_they_lead_only(router: CommandRouter) -> None:
    own = await ask(router, "/报表 双月", "chenjing", "r1")
    assert own.startswith("**市容景观所 2026年11-12月**")
    refused = await ask(router, "/报表 环卫所", "chenjing", "r2")
    assert refused == "抱歉，您只能查看您负责的单位的报表。"


async def test_a_handler_may_not_ask(router: CommandRouter) -> None:
    answer = await ask(router, "/报表", "zhouting", "r1")
    assert "报表" in answer
    assert "按时接单率" not in answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/报表 明年", "抱歉，「明年」既不是时段也不是单位。"),
        ("/报表 2026-13", "抱歉，「2026-13」既不是时段也不是单位。"),
        ("/报表 月 季 年", "抱歉，看不懂「月 季 年」。"),
        ("/报表 2027-01", "抱歉，2027年1月还没有开始。"),
        ("/报表 月 周", "抱歉，只能写一个时段（「周」是第二个）。用法：/报表 [时段] [单位]"),
        ("/报表 环卫所 市容景观所", "抱歉，只能写一个单位（「市容景观所」是第二个）。用法：/报表 [时段] [单位]"),
        ("/报表 环卫所 月", "**环卫所 2026年11月**"),  # either order
    ],
)
async def test_bad_periods_are_answered_politely(router: CommandRouter, text: str, expected: str) -> None:
    answer = await ask(router, text, "zhangwei", "r1")
    assert answer.startswith(expected)


async def test_in_the_apps_own_chat_the_report_is_markdown_as_written(router: CommandRouter) -> None:
    """The 1:1 chat with the app: the answer goes as the app's markdown message, so its bold shows as bold, not as
    asterisks (the notices members get privately go the same way)."""
    seen = await watching(router)
    await router.handle(message("报表", "lilei", chat=None, msgid="app1", source="app"))
    [row] = [r for r in await seen.new() if r["channel"] == "wecom_app"]
    assert row["payload"]["msgtype"] == "markdown"
    assert row["payload"]["markdown"]["content"].startswith("**演示街道12345热线办（全部单位） 2026年11月**")
