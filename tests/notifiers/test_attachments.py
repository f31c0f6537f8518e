"""A notice's attachments (a chart, a workbook) through the real outbox, over real HTTP to the fake WeCom: after the
text, in order, to the group and the members, with the exact bytes; refused ones dead-lettered with the reason;
none lost to a transient failure."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.domain.clock import TZ
from bot.messages.notice import Attachment, Notice
from bot.sandbox.fake import Delivered, FakeWeCom
from bot.services.channels import Channels
from bot.wecom.client import WeComClient
from bot.wecom.tokens import MemoryTokenStore
from config.model import BotConfig
from notifiers.outbox import OutboxWorker
from notifiers.rows import notice_rows
from store import outbox as outbox_repo
from store.models import outbox
from tests.notifiers.conftest import AGENT, CORP, KEY, SECRET, Rig

AT = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
XLSX = b"PK\x03\x04" + "通报 工作簿".encode() * 50
CHART, BOOK = Attachment("image", "通报.png", PNG), Attachment("file", "通报.xlsx", XLSX)
CHAT = "rxbworkgroup"


def _config(config: BotConfig, **group: Any) -> BotConfig:
    data = config.model_dump(by_alias=True)
    for unit in data["units"]:
        if unit["code"] == "RXB":
            unit["group"] = group
    return BotConfig.model_validate(data)


def report(**extra: Any) -> Notice:
    fields: dict[str, Any] = {
        "key": "report:bimonthly:2026-09",
        "unit": "RXB",
        "text": "**九月、十月工单通报**",
        "members": ["lina"],
        "attachments": (CHART, BOOK),
    }
    return Notice(**(fields | extra))


async def send_all(rig: Rig, rows: list[dict[str, Any]], worker: OutboxWorker | None = None) -> None:
    """Queue ``rows`` and let one worker send until nothing is due, moving the clock to each next attempt."""
    async with rig.store.transaction() as conn:
        await outbox_repo.enqueue(conn, rows)
    worker = worker or rig.worker()
    for _ in range(50):
        while await worker.run_once():
            pass
        async with rig.store.reading() as conn:
            due = (
                await conn.execute(select(func.min(outbox.c.next_attempt_at)).where(outbox.c.status == "pending"))
            ).scalar_one()
        if due is None:
            return
        rig.clock.set(max(due, rig.clock.now() + timedelta(seconds=1)))


def shown(fake: FakeWeCom, delivered: list[Delivered]) -> list[Any]:
    """What a chat shows, in order: the text, or (filename, bytes) of an image or file."""
    return [d.body["markdown"]["content"] if d.msgtype == "markdown" else fake.media_of(d) for d in delivered]


# -- the rows ---------------------------------------------------------------------------------------------------


def test_attachments_follow_the_text_in_rows_carrying_their_bytes(sandbox_config: BotConfig) -> None:
    config = _config(sandbox_config, chatid=CHAT, transport="app")
    rows = notice_rows(report(members=["lina", "wuhao"]), config, Channels(app=True), at=AT)
    assert [(r["channel"], r["destination"], r["idempotency_key"]) for r in rows] == [
        ("wecom_appchat", CHAT, "report:bimonthly:2026-09:group:RXB"),
        ("wecom_appchat", CHAT, "report:bimonthly:2026-09:group:RXB:attachment:0"),
        ("wecom_appchat", CHAT, "report:bimonthly:2026-09:group:RXB:attachment:1"),
        ("wecom_app", "lina", "report:bimonthly:2026-09:to:lina"),
        ("wecom_app", "lina", "report:bimonthly:2026-09:to:lina:attachment:0"),
        ("wecom_app", "lina", "report:bimonthly:2026-09:to:lina:attachment:1"),
        ("wecom_app", "wuhao", "report:bimonthly:2026-09:to:wuhao"),
        ("wecom_app", "wuhao", "report:bimonthly:2026-09:to:wuhao:attachment:0"),
        ("wecom_app", "wuhao", "report:bimonthly:2026-09:to:wuhao:attachment:1"),
    ]
    assert rows[1]["payload"] == {
        "msgtype": "image",
        "upload": {"filename": "通报.png", "data": base64.b64encode(PNG).decode()},
    }
    assert rows[5]["payload"]["touser"] == ["lina"]
    assert rows[5]["payload"]["msgtype"] == "file"
    # one ordering key per audience: each audience's attachments wait for its text, audiences do not wait for others
    keys = [r["ordering_key"] for r in rows]
    assert len(set(keys[0:3])) == len(set(keys[3:6])) == len(set(keys[6:9])) == 1
    assert len(set(keys)) == 3
    assert all(k is not None and len(k) <= 100 for k in keys)
    # a notice's own ordering key is kept
    ordered = notice_rows(report(ordering_key="report"), config, Channels(app=True), at=AT)
    assert {r["ordering_key"] for r in ordered} == {"report"}


def test_attachments_only_to_the_group_when_not_private(sandbox_config: BotConfig) -> None:
    config = _config(sandbox_config, chatid=CHAT, transport="app")
    rows = notice_rows(report(attachments_private=False), config, Channels(app=True), at=AT)
    assert [r["destination"] for r in rows] == [CHAT, CHAT, CHAT, "lina"]
    assert rows[-1]["payload"]["msgtype"] == "markdown"


def test_a_robot_group_gets_its_attachments_by_its_webhook_else_they_go_dead(sandbox_config: BotConfig) -> None:
    both = _config(sandbox_config, chatid="sandbox-rxb", webhook_key=KEY, transport="aibot")
    rows = notice_rows(report(members=[]), both, Channels(aibot_ws=True), at=AT)
    assert [(r["channel"], r["payload"]["msgtype"]) for r in rows] == [
        ("aibot_ws", "markdown"),
        ("wecom_webhook", "image"),
        ("wecom_webhook", "file"),
    ]
    assert len({r["ordering_key"] for r in rows}) == 1
    robot_only = notice_rows(report(), sandbox_config, Channels(aibot_ws=True), at=AT)
    # queued on the long connection, whose sender dead-letters them with the reason
    assert [(r["channel"], r["destination"], r["payload"]["msgtype"]) for r in robot_only] == [
        ("aibot_ws", "sandbox-rxb", "markdown"),
        ("aibot_ws", "sandbox-rxb", "image"),
        ("aibot_ws", "sandbox-rxb", "file"),
        ("aibot_ws", "lina", "markdown"),
        ("aibot_ws", "lina", "image"),
        ("aibot_ws", "lina", "file"),
    ]


# -- over HTTP --------------------------------------------------------------------------------------------------


@pytest.fixture
async def app_chat(rig: Rig) -> str:
    """The office's work group, created by the app (appchat/send reaches only the app's own chats)."""
    assert rig.fake.base_url is not None
    client = WeComClient(
        rig.session, base_url=rig.fake.base_url, corp_id=CORP, secret=SECRET, agent_id=AGENT, tokens=MemoryTokenStore()
    )
    return await client.appchat_create(userlist=["wuhao", "lina"], name="热线办", chatid=CHAT)


async def test_an_app_group_and_a_member_get_the_text_then_the_image_then_the_file(
    rig: Rig, app_chat: str, sandbox_config: BotConfig
) -> None:
    config = _config(sandbox_config, chatid=app_chat, transport="app")
    await send_all(rig, notice_rows(report(), config, Channels(app=True), at=rig.clock.now()))

    expected = ["**九月、十月工单通报**", ("通报.png", PNG), ("通报.xlsx", XLSX)]
    assert shown(rig.fake, rig.fake.messages_to(chatid=app_chat)) == expected
    assert shown(rig.fake, rig.fake.messages_to(userid="lina")) == expected
    assert [d.msgtype for d in rig.fake.messages_to(userid="lina")] == ["markdown", "image", "file"]
    assert {r["status"] for r in await rig.rows()} == {"sent"}


async def test_a_webhook_group_gets_the_image_inline_and_the_file_uploaded(rig: Rig, sandbox_config: BotConfig) -> None:
    config = _config(sandbox_config, webhook_key=KEY, transport="webhook")
    await send_all(rig, notice_rows(report(members=[]), config, Channels(), at=rig.clock.now()))

    delivered = rig.fake.messages_to(webhook_key=KEY)
    assert shown(rig.fake, delivered) == ["**九月、十月工单通报**", ("", PNG), ("通报.xlsx", XLSX)]
    assert delivered[1].body["image"]["md5"] == hashlib.md5(PNG).hexdigest()
    assert rig.fake.stats["/cgi-bin/webhook/upload_media"].requests == 1  # the file only


async def test_refused_attachments_are_dead_lettered_with_the_reason_and_the_rest_arrives(
    rig: Rig, app_chat: str, sandbox_config: BotConfig
) -> None:
    config = _config(sandbox_config, webhook_key=KEY, transport="webhook")
    too_big = Attachment("image", "大图.png", PNG[:8] + bytes(2 * 1024 * 1024))  # over the robot's 2 MB
    not_png = Attachment("image", "图.gif", b"GIF89a" + bytes(100))
    notice = report(attachments=(too_big, not_png, BOOK))
    await send_all(rig, notice_rows(notice, config, Channels(app=True), at=rig.clock.now()))

    dead = {r["idempotency_key"].removeprefix("report:bimonthly:2026-09:"): r for r in await rig.rows()}
    assert dead["group:RXB:attachment:0"]["status"] == "dead"
    assert "at most 2097152" in dead["group:RXB:attachment:0"]["last_error"]
    assert "JPG or a PNG" in dead["group:RXB:attachment:1"]["last_error"]
    assert "JPG or a PNG" in dead["to:lina:attachment:1"]["last_error"]
    assert dead["to:lina:attachment:0"]["status"] == "sent"  # 2 MB is well within the app's 10 MB
    assert [r["status"] for k, r in dead.items() if k.endswith(("RXB", "lina", "attachment:2"))] == ["sent"] * 4
    assert shown(rig.fake, rig.fake.messages_to(webhook_key=KEY)) == ["**九月、十月工单通报**", ("通报.xlsx", XLSX)]


async def test_a_transient_failure_loses_nothing_and_the_retry_uploads_afresh(
    rig: Rig, app_chat: str, sandbox_config: BotConfig
) -> None:
    config = _config(sandbox_config, chatid=app_chat, transport="app")
    text, image = notice_rows(report(members=[], attachments=(CHART,)), config, Channels(app=True), at=AT)
    await send_all(rig, [text])
    # the image is uploaded, then WeCom is busy for its send past the client's own retries: the attempt fails
    rig.fake.inject("busy", times=4, path="/cgi-bin/appchat/send")
    await send_all(rig, [image])

    assert shown(rig.fake, rig.fake.messages_to(chatid=app_chat)) == ["**九月、十月工单通报**", ("通报.png", PNG)]
    assert [(r["status"], r["attempts"]) for r in await rig.rows()] == [("sent", 1), ("sent", 2)]
    # each attempt uploaded afresh: the media_id of the failed one is not reused
    assert len(rig.fake.media) == 2
    [sent] = [d for d in rig.fake.messages_to(chatid=app_chat) if d.msgtype == "image"]
    assert sent.body["image"]["media_id"] == max(rig.fake.media.values(), key=lambda m: m.created_at).media_id
