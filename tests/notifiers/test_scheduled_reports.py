"""The scheduled reports end to end, on both databases: queued at their time by ScheduledReports, sent by the real
outbox over HTTP to the fake WeCom — the weekly data to the office's group and each head, the 通报 in two messages
with the chart and the workbook (also to the center lead), the heads' morning brief; each once, late ones caught up
within their grace, none on a day off.

Sandbox: RXB 热线办 (head zhangwei; its group created by the app here), SRJG 市容景观所 (head chenjing), HW 环卫所
(head huangqiang); lilei center lead."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from bot.domain.clock import TZ, FrozenClock
from bot.domain.lifecycle import Action, ActionRequest
from bot.domain.ticket import TicketInput
from bot.domain.workcal import WorkCalendar
from bot.sandbox.fake import FakeWeCom, serve
from bot.services.apart import Apart
from bot.services.channels import Channels
from bot.services.tickets import TicketService
from bot.wecom.client import WeComClient
from bot.wecom.tokens import MemoryTokenStore
from config.model import BotConfig
from notifiers.reports import ScheduledReports
from store.models import outbox
from tests.notifiers.conftest import AGENT, CORP, SECRET, Rig
from tests.notifiers.test_attachments import send_all

MEMBERS = ["zhangwei", "wangfang", "lilei", "zhaomin", "chenjing", "sunlei", "zhouting", "huangqiang", "wuhao"]
NAME, PHONE = "王秀英", "13812345678"


@pytest.fixture
async def fake(clock: FrozenClock) -> AsyncIterator[FakeWeCom]:
    server = FakeWeCom(corp_id=CORP, secrets={SECRET: AGENT}, webhook_keys=[], members=MEMBERS, clock=clock.now)
    runner = await serve(server)
    yield server
    await runner.cleanup()


@pytest.fixture
async def config(rig: Rig, sandbox_config: BotConfig) -> BotConfig:
    """The sandbox with the office's group a chat the app created (appchat/send reaches only the app's own)."""
    assert rig.fake.base_url is not None
    client = WeComClient(
        rig.session, base_url=rig.fake.base_url, corp_id=CORP, secret=SECRET, agent_id=AGENT, tokens=MemoryTokenStore()
    )
    chat = await client.appchat_create(userlist=["zhangwei", "wangfang", "zhaomin"], name="热线办", chatid="rxbchat")
    data = sandbox_config.model_dump(by_alias=True)
    for unit in data["units"]:
        if unit["code"] == "RXB":
            unit["group"] = {"chatid": chat, "transport": "app"}
    return BotConfig.model_validate(data)


def scheduled(
    rig: Rig, config: BotConfig, calendar: WorkCalendar, apart: Apart | None = None, **off: bool
) -> ScheduledReports:
    """The scheduled reports (the 通报's chart drawn in ``apart``, else in a thread); ``brief=False`` … turns one
    off."""
    data = config.model_dump(by_alias=True)
    for name, enabled in off.items():
        data["reports"][name]["enabled"] = enabled
    validated = BotConfig.model_validate(data)
    return ScheduledReports(rig.store, validated, calendar, rig.clock, Channels(app=True), apart=apart)


def shown(rig: Rig, **to: str) -> list[Any]:
    return [
        d.body["markdown"]["content"] if d.msgtype == "markdown" else (d.msgtype, rig.fake.media_of(d))
        for d in rig.fake.messages_to(**to)
    ]


async def history(service: TicketService, clock: FrozenClock) -> None:
    """Three tickets to 市容景观所 on Monday 2026-10-12: one claimed at once and closed satisfied, one claimed late,
    one never claimed."""
    clock.set(datetime(2026, 10, 12, 9, 0, tzinfo=TZ))
    await service.upsert(
        [
            TicketInput(
                ticket_no=f"20261012000{i}",
                content=f"市民{NAME}反映光明路店招破损，电话{PHONE}",
                title=f"{NAME}反映店招破损",
                category="市容景观",
                citizen_name=NAME,
                citizen_phone=PHONE,
                dispatched_at=clock.now(),
            )
            for i in (1, 2, 3)
        ]
    )

    async def act(no: str, action: Action, actor: str, **kw: Any) -> None:
        await service.act(no, ActionRequest(action=action, actor=actor, at=clock.now(), **kw))

    await act("202610120001", Action.CLAIM, "zhouting")
    clock.set(datetime(2026, 10, 13, 15, 0, tzinfo=TZ))
    await act("202610120002", Action.CLAIM, "zhouting")


async def test_the_bulletin_goes_out_once_on_the_first_working_day_after_the_period(
    rig: Rig, config: BotConfig, calendar: WorkCalendar, service: TicketService, apart: Apart
) -> None:
    """As the scheduler makes it: the chart drawn in the process apart, which is kept for the next 通报."""
    await history(service, rig.clock)
    reports = scheduled(rig, config, calendar, apart)
    rig.clock.set(datetime(2026, 11, 2, 9, 36, tzinfo=TZ))  # Monday: the first working day after 9-10月
    assert "bulletin:bimonth-2026-09" not in await reports.run()
    rig.clock.set(datetime(2026, 11, 2, 9, 37, tzinfo=TZ))
    assert "bulletin:bimonth-2026-09" in await reports.run()
    assert await reports.run() == []  # once
    async with rig.store.reading() as conn:  # the office's two parts and their attachments in one lane, in order
        rows = (await conn.execute(select(outbox).order_by(outbox.c.id))).mappings().all()
    office_rows = [r for r in rows if r["idempotency_key"].startswith("report:bulletin:bimonth-2026-09:")]
    office_rows = [r for r in office_rows if ":lead:" not in r["idempotency_key"]]
    assert len(office_rows) == 4  # two texts, the chart, the workbook
    assert {r["ordering_key"] for r in office_rows} == {"report:bulletin:bimonth-2026-09"}
    await send_all(rig, [])

    office = shown(rig, chatid="rxbchat")
    first, second, (kind, (png_name, png)), (book_kind, (book_name, book)) = office[-4:]
    assert first.startswith("**演示街道12345热线办 12345热线工单情况通报 2026年9-10月**\n一、未按时先行接单的单位")
    assert "市容景观所 2 次" in first
    assert second.splitlines()[1].startswith("四、不满意工单情况")
    assert "六、同比、环比" in second
    assert (kind, png_name, png[:4]) == ("image", "演示街道12345热线办2026年9-10月通报.png", b"\x89PNG")
    assert (book_kind, book_name) == ("file", "演示街道12345热线办2026年9-10月通报.xlsx")
    assert apart.pid is not None  # the chart's process, kept
    sheets = load_workbook(io.BytesIO(book), read_only=True)
    assert sheets.sheetnames[0] == "汇总"
    cells = " ".join(str(c) for ws in sheets.worksheets for row in ws.iter_rows(values_only=True) for c in row)
    assert "202610120003" in cells
    assert NAME not in cells
    assert PHONE not in cells
    # the center lead gets the whole 通报 and the workbook too, privately, in order
    lead = shown(rig, userid="lilei")
    assert [x if isinstance(x, str) else x[0] for x in lead] == [first, second, "file"]
    for text in (first, second):
        assert NAME not in text
        assert PHONE not in text


async def test_a_chart_that_cannot_be_drawn_leaves_the_bulletin_without_it(
    rig: Rig,
    config: BotConfig,
    calendar: WorkCalendar,
    service: TicketService,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    apart: Apart,
) -> None:
    """No CJK font: the failure is logged, and the 通报 goes with its texts and its workbook."""
    await history(service, rig.clock)
    monkeypatch.setenv("REPORT_FONT", "/nonexistent/font.ttc")
    rig.clock.set(datetime(2026, 11, 2, 9, 37, tzinfo=TZ))
    with caplog.at_level(logging.ERROR, logger="notifiers.reports"):
        assert "bulletin:bimonth-2026-09" in await scheduled(rig, config, calendar, apart).run()
    assert "the chart could not be drawn" in caplog.text
    assert "REPORT_FONT=/nonexistent/font.ttc" in caplog.text
    await send_all(rig, [])
    first, second, (kind, _) = shown(rig, chatid="rxbchat")[-3:]
    assert first.startswith("**演示街道12345热线办 12345热线工单情况通报")
    assert second.splitlines()[1].startswith("四、不满意工单情况")
    assert kind == "file"  # the workbook, and no image before it


async def test_a_chart_that_fails_otherwise_leaves_the_bulletin_without_it_too(
    rig: Rig,
    config: BotConfig,
    calendar: WorkCalendar,
    service: TicketService,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Whatever stops the chart (here drawn in a thread), the 通报 goes once, at its time, without it."""
    await history(service, rig.clock)

    def broken(_report: object) -> bytes:
        raise RuntimeError("the plotting library failed")

    monkeypatch.setattr("notifiers.reports.texts.chart", broken)
    rig.clock.set(datetime(2026, 11, 2, 9, 37, tzinfo=TZ))
    with caplog.at_level(logging.ERROR, logger="notifiers.reports"):
        assert "bulletin:bimonth-2026-09" in await scheduled(rig, config, calendar).run()
    assert "the plotting library failed" in caplog.text
    await send_all(rig, [])
    *_, (kind, _) = shown(rig, chatid="rxbchat")
    assert kind == "file"


async def test_a_bulletin_missed_is_sent_within_a_week_and_not_after(
    rig: Rig, config: BotConfig, calendar: WorkCalendar
) -> None:
    reports = scheduled(rig, config, calendar)
    rig.clock.set(datetime(2026, 11, 9, 9, 36, tzinfo=TZ))  # a week later, a minute short
    assert "bulletin:bimonth-2026-09" in await reports.run()
    late = scheduled(rig, config, calendar)
    rig.clock.set(datetime(2027, 1, 11, 9, 38, tzinfo=TZ))  # 11-12月's: due Monday 01-04 09:37, a week passed
    assert "bulletin:bimonth-2026-11" not in await late.run()


async def test_the_weekly_data_on_wednesday_to_the_office_and_each_head(
    rig: Rig, config: BotConfig, calendar: WorkCalendar, service: TicketService
) -> None:
    await history(service, rig.clock)
    reports = scheduled(rig, config, calendar, brief=False)
    rig.clock.set(datetime(2026, 10, 21, 9, 7, tzinfo=TZ))  # Wednesday: the week of 10-12 … 10-18
    assert await reports.run() == ["weekly:week-2026-10-12"]
    await send_all(rig, [])
    [office] = shown(rig, chatid="rxbchat")
    assert office.startswith(
        "**演示街道12345热线办 上周热线数据** 2026年第42周（10-12至10-18）\n收到工单 3 件，环比+3 件"
    )
    assert "按时接单率 1/3（33.3%）" in office
    [head] = shown(rig, userid="chenjing")
    assert head.startswith("**市容景观所 上周数据 2026年第42周（10-12至10-18）**")
    assert "未按时接单 2 次；" in head  # a week's: the limit counts in two months
    assert shown(rig, userid="huangqiang")[0].startswith("**环卫所 上周数据")
    assert shown(rig, userid="zhangwei") == []  # the office's head: the office's group has it, nothing of its own
    rig.clock.set(datetime(2026, 10, 22, 9, 8, tzinfo=TZ))  # a day and a minute after: too late for a new one
    assert await scheduled(rig, config, calendar, brief=False).run() == []


async def test_the_morning_brief_tells_heads_with_something_to_say(
    rig: Rig, config: BotConfig, calendar: WorkCalendar, service: TicketService
) -> None:
    await history(service, rig.clock)
    reports = scheduled(rig, config, calendar, weekly=False)
    rig.clock.set(datetime(2026, 10, 14, 8, 37, tzinfo=TZ))  # Wednesday
    assert await reports.run() == ["brief:2026-10-14"]
    await send_all(rig, [])
    [brief] = shown(rig, userid="chenjing")
    assert brief.startswith("**市容景观所 今日提醒**（10-14 08:37）\n已逾期")
    assert "202610120003" in brief
    assert "本期（2026年9–10月）未按时接单" in brief
    assert NAME not in brief
    assert shown(rig, userid="huangqiang") == []  # 环卫所 has nothing due: no message
    rig.clock.set(datetime(2026, 10, 17, 8, 40, tzinfo=TZ))  # Saturday
    assert await reports.run() == []
    rig.clock.set(datetime(2026, 10, 19, 12, 0, tzinfo=TZ))  # Monday noon: too late for a morning brief
    assert await reports.run() == []


async def test_a_report_that_fails_holds_up_no_other_and_is_tried_again_later(
    rig: Rig, config: BotConfig, calendar: WorkCalendar, service: TicketService, monkeypatch: pytest.MonkeyPatch
) -> None:
    await history(service, rig.clock)
    reports = scheduled(rig, config, calendar, weekly=False)

    def broken(_report: object) -> bytes:
        raise OSError("disk full")

    monkeypatch.setattr("notifiers.reports.workbook", broken)
    rig.clock.set(datetime(2026, 11, 2, 9, 40, tzinfo=TZ))  # the 通报 and the brief are both due
    assert await reports.run() == ["brief:2026-11-02"]
    rig.clock.set(datetime(2026, 11, 2, 9, 45, tzinfo=TZ))
    assert await reports.run() == []  # not again at once
    monkeypatch.undo()
    rig.clock.set(datetime(2026, 11, 2, 9, 51, tzinfo=TZ))
    assert await reports.run() == ["bulletin:bimonth-2026-09"]


def test_a_name_the_font_cannot_draw_still_gets_a_chart() -> None:
    from bot.messages.reports import chart
    from tests.messages.test_report_texts import report

    sample = report(3)
    sample.total.figures.counts.by_category["𠀀类"] = 5  # a character the font lacks
    png = chart(sample)
    assert png[:4] == b"\x89PNG"


async def test_an_office_group_that_takes_no_files_is_told_at_the_start(
    rig: Rig, sandbox_config: BotConfig, calendar: WorkCalendar, caplog: pytest.LogCaptureFixture
) -> None:
    """The office's group reached by the robot's long connection only: the 通报's chart and workbook could not go,
    and the operator reads so when the bot starts, not at the first 通报; with a webhook robot they go by it."""
    with caplog.at_level(logging.WARNING, logger="notifiers.reports"):
        ScheduledReports(rig.store, sandbox_config, calendar, rig.clock, Channels(aibot_ws=True))
    assert "the 通报's chart and workbook cannot reach the office's group (RXB)" in caplog.text
    caplog.clear()
    data = sandbox_config.model_dump(by_alias=True)
    for unit in data["units"]:
        if unit["code"] == "RXB":
            unit["group"]["webhook_key"] = "rxb-robot"
    with caplog.at_level(logging.WARNING, logger="notifiers.reports"):
        ScheduledReports(rig.store, BotConfig.model_validate(data), calendar, rig.clock, Channels(aibot_ws=True))
    assert "cannot reach" not in caplog.text
