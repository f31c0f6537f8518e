"""Notices to outbox rows: the channel each audience is reached by, mentions, cards, keys."""

from __future__ import annotations

from datetime import datetime

from bot.domain.clock import TZ
from config.model import BotConfig
from notifiers.notices import KEY_MAX, Channels, Notice, notice_rows

AT = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)
CARD = {"card_type": "button_interaction", "main_title": {"title": "新工单"}}


def _with_webhook(config: BotConfig, unit: str, key: str, transport: str = "auto") -> BotConfig:
    data = config.model_dump(by_alias=True)
    for u in data["units"]:
        if u["code"] == unit:
            u["group"].update(webhook_key=key, transport=transport)
    return BotConfig.model_validate(data)


def test_a_group_notice_goes_by_the_robot_with_its_card_when_the_long_connection_is_there(
    sandbox_config: BotConfig,
) -> None:
    notice = Notice(key="push:1", text="【紧急】工单 0123\n详情", unit="SRJG", mention=["zhouting", "chenjing"], card=CARD,
                    urgent=True, ordering_key="push:0123:SRJG")  # fmt: skip
    row, tagged = notice_rows(notice, sandbox_config, Channels(aibot_ws=True), at=AT)
    assert (row["channel"], row["destination"], row["priority"]) == ("aibot_ws", "sandbox-srjg", 0)
    assert row["payload"] == {"msgtype": "template_card", "template_card": CARD, "chatid": "sandbox-srjg"}
    assert row["idempotency_key"] == "push:1:group:SRJG"
    # a card cannot @-mention: the mentions follow it in a markdown line (the text's first), in order after it
    assert (tagged["channel"], tagged["destination"], tagged["priority"]) == ("aibot_ws", "sandbox-srjg", 0)
    assert tagged["payload"] == {
        "chatid": "sandbox-srjg",
        "msgtype": "markdown",
        "markdown": {"content": "【紧急】工单 0123\n<@zhouting> <@chenjing>"},
    }
    assert tagged["idempotency_key"] == "push:1:group:SRJG:mention"
    assert row["ordering_key"] == tagged["ordering_key"] == "push:0123:SRJG"
    # without mentions, the card alone
    [alone] = notice_rows(Notice(key="push:2", text="x", unit="SRJG", card=CARD), sandbox_config, Channels(aibot_ws=True), at=AT)
    assert alone["payload"]["msgtype"] == "template_card"


def test_a_notice_held_back_is_due_from_then(sandbox_config: BotConfig) -> None:
    later = AT.replace(hour=7)
    notice = Notice(key="n", text="x", members=["wuhao"], not_before=later.replace(day=24))
    [row] = notice_rows(notice, sandbox_config, Channels(app=True), at=AT)
    assert (row["created_at"], row["next_attempt_at"]) == (AT, later.replace(day=24))


def test_a_webhook_group_gets_markdown_with_mentions_and_no_card(sandbox_config: BotConfig) -> None:
    config = _with_webhook(sandbox_config, "HW", "hw-robot-key")
    notice = Notice(key="remind:7", text="工单 0456 将于 1 小时后逾期", unit="HW", mention=["wuhao", "wuhao"], card=CARD)
    [row] = notice_rows(notice, config, Channels(), at=AT)
    assert (row["channel"], row["destination"], row["priority"]) == ("wecom_webhook", "hw-robot-key", 5)
    assert row["payload"] == {"msgtype": "markdown", "markdown": {"content": "工单 0456 将于 1 小时后逾期\n<@wuhao>"}}


def test_the_transport_the_config_names_wins_over_auto(sandbox_config: BotConfig) -> None:
    config = _with_webhook(sandbox_config, "HW", "hw-robot-key", transport="webhook")
    [row] = notice_rows(Notice(key="n", text="x", unit="HW"), config, Channels(aibot_ws=True, app=True), at=AT)
    assert row["channel"] == "wecom_webhook"


def test_members_privately_by_the_app_else_by_the_robot_else_not_at_all(sandbox_config: BotConfig) -> None:
    notice = Notice(key="warn:3", text="masked", members=["chenjing", "sunlei"], private_text="全文 13800000013", private_card=CARD)
    by_app = notice_rows(notice, sandbox_config, Channels(app=True), at=AT)
    assert [(r["channel"], r["destination"], r["payload"]["msgtype"]) for r in by_app] == [
        ("wecom_app", "chenjing", "template_card"),
        ("wecom_app", "sunlei", "template_card"),
    ]
    by_robot = notice_rows(notice, sandbox_config, Channels(aibot_ws=True), at=AT)
    assert by_robot[0]["payload"] == {"chatid": "chenjing", "msgtype": "markdown", "markdown": {"content": "全文 13800000013"}}
    assert notice_rows(notice, sandbox_config, Channels(), at=AT) == []


def test_a_group_no_channel_reaches_gets_nothing_and_keys_always_fit(sandbox_config: BotConfig) -> None:
    assert notice_rows(Notice(key="n", text="x", unit="SRJG"), sandbox_config, Channels(), at=AT) == []  # no key, no robot
    long = Notice(key="k" * 300, text="x", members=["wuhao"])
    [row] = notice_rows(long, sandbox_config, Channels(app=True), at=AT)
    assert len(row["idempotency_key"]) <= KEY_MAX and row["idempotency_key"].startswith("sha256:")  # noqa: PT018
