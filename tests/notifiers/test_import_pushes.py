"""An import run by a process of its own (``run_bot.py import``) beside the serving bot, on both databases: the pushes
its recent rows need are addressed to the channels the serving bot recorded, whatever the importing process's own
environment has, and the serving bot's outbox sends them, once, masked."""

from __future__ import annotations

import csv
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.app import create_app, push_channels, record_channels, serving_channels
from bot.domain.clock import FrozenClock
from bot.domain.workcal import WorkCalendar
from bot.hotline.importer import import_file
from bot.services.channels import Channels
from bot.services.duty import DutyService
from bot.services.tickets import TicketService
from bot.web.keys import SETTINGS, STORE
from config.model import BotConfig
from config.settings import Settings
from notifiers.pushes import Pusher
from store import deployment as deployment_repo
from tests.notifiers.test_pushes import (  # noqa: F401 - the fixtures
    AGENT,
    APP_SECRET,
    NAME,
    PHONE,
    Client,
    MakeRig,
    _assert_masked,
    fake,
)
from tests.notifiers.test_pushes import make_rig as make_rig  # noqa: F401 - the fixture
from tests.wecom.test_crypto import SAMPLE_CORP

ADDRESS = "演示街道人民路56号"


def _export(path: Path, now: Any) -> Path:
    rows = [["工单编号", "诉求内容", "来电人", "事发地址", "来电号码", "紧急程度", "诉求类别", "派单时间", "办理状态"]]
    recent = (now - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M")
    old = (now - timedelta(days=30)).strftime("%Y-%m-%d %H:%M")
    rows.append(
        [
            "2026112300501",
            f"人民路店招脱落，联系电话{PHONE}",
            NAME,
            ADDRESS,
            PHONE,
            "紧急",
            "市容景观",
            recent,
            "待接单",
        ]
    )
    rows.append(["2026112300502", "店招松动", NAME, ADDRESS, PHONE, "紧急", "市容景观", recent, "已接单"])  # taken on
    rows.append(["2026102400503", "店招松动", NAME, ADDRESS, PHONE, "紧急", "市容景观", old, "待接单"])  # history
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


async def test_an_import_beside_the_serving_bot_pushes_its_recent_row_through_the_bots_channels(
    make_rig: MakeRig,
    settings_for: Callable[..., Settings],
    database_url: str,
    sandbox_config: BotConfig,
    calendar: WorkCalendar,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    rig = await make_rig("robot")  # the serving bot: groups over the robot's long connection, members by the app
    store = rig.client.app[STORE]
    await record_channels(store, push_channels(rig.client.app[SETTINGS]), clock.now())  # as it does at its start
    # the importing process: no WeCom credentials of its own
    own = settings_for(database_url)
    assert push_channels(own) == Channels()
    channels = await serving_channels(store, own)
    assert channels == Channels(app=True, aibot_ws=True, webhook=True)
    service = TicketService(store, sandbox_config, calendar, clock)
    service.add_hook(Pusher(store, sandbox_config, clock, channels, duty=DutyService(store, sandbox_config, clock)))

    path = _export(tmp_path / "export.csv", clock.now())
    report = await import_file(path, service, sandbox_config, progress=False)
    assert (report.created, report.errors, report.unrecognised) == (3, [], [])
    await rig.send()
    pushed = rig.group("SRJG")
    assert len(pushed) == 2  # the card and the line with its mentions: the one row still waiting for its unit
    assert pushed[0].body["template_card"]["main_title"]["title"].startswith("【紧急】")
    assert "2026112300501" in pushed[1].body["markdown"]["content"]
    _assert_masked(pushed)
    ticket = (await service.get("2026112300501")).ticket
    assert (ticket.citizen_name, ticket.address, ticket.citizen_phone) == (NAME, ADDRESS, PHONE)

    again = await import_file(path, service, sandbox_config, progress=False)
    assert again.unchanged == 3
    await rig.send()
    assert len(rig.group("SRJG")) == 2  # once only


async def test_the_serving_bot_records_the_channels_its_outbox_sends_through(
    aiohttp_client: Callable[..., Awaitable[Client]],
    settings_for: Callable[..., Settings],
    database_url: str,
    sandbox_config: BotConfig,
    clock: FrozenClock,
) -> None:
    env = {"WECOM_CORP_ID": SAMPLE_CORP, "WECOM_APP_SECRET": APP_SECRET, "WECOM_APP_AGENT_ID": str(AGENT)}
    client = await aiohttp_client(create_app(settings_for(database_url, **env), sandbox_config, clock=clock))
    async with client.app[STORE].reading() as conn:
        assert await deployment_repo.read(conn, "channels") == {"app": True, "aibot_ws": False, "webhook": True}
    # a process without credentials of its own addresses its pushes by them
    assert await serving_channels(client.app[STORE], settings_for(database_url)) == Channels(
        app=True, aibot_ws=False, webhook=True
    )
