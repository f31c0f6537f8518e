"""Cards as neutral data: button keys and task ids round-trip; what a card shows, before any WeCom JSON."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest

from bot.domain.clock import TZ
from bot.domain.records import Ticket
from bot.messages import cards
from config.model import BotConfig

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)


def test_keys_and_task_ids_round_trip(make_ticket: Callable[..., Ticket]) -> None:
    ticket = make_ticket(ticket_no="SH-2026_0001", cycle=2)
    task_id = cards.task_id_for(ticket, "a1")
    assert task_id == "t@SH-2026_0001@2@a1"
    assert cards.ticket_of_task(task_id) == "SH-2026_0001"
    assert cards.parse_key(cards.button_key("on_site", "SH-2026_0001")) == ("on_site", "SH-2026_0001")
    assert cards.ticket_of_task("ticket-123") is None
    for forged in ("delete:0123", "claim", "claim:", "claim:01 23", "accept", ":0123"):
        assert cards.parse_key(forged) is None
    with pytest.raises(ValueError, match="tag"):
        cards.task_id_for(ticket, "has space")
    assert cards.TASK_ID.fullmatch(cards.task_id_for(make_ticket(ticket_no="9" * 64, cycle=999), "x" * 24))


def test_a_card_shows_the_next_steps_masked(sandbox_config: BotConfig, make_ticket: Callable[..., Ticket]) -> None:
    ticket = make_ticket(
        ticket_no="0123",
        cycle=1,
        state="claimed",
        title="张三反映路灯不亮",
        content="市民张三（13800000013）反映路灯不亮",
        citizen_name="张三",
        category="市容景观-张三13800000013",  # the platform's field, free text like the rest
        unit_code="SRJG",
        handler_userid="zhouting",
    )
    card = cards.ticket_card(ticket, [], sandbox_config, NOW, tag="a1")
    assert card.task_id == "t@0123@1@a1"
    assert [b.key for b in card.buttons] == ["contact:0123", "on_site:0123", "show:0123"]
    assert "办结请发送：/办结 0123 处理结果" in card.subtitle
    shown = " ".join([card.title, card.subtitle, *(v for _, v in card.fields)])
    assert "张三" not in shown and "13800000013" not in shown  # noqa: PT018
    assert ("类别", "市容景观-张某某138＊＊＊＊0013") in card.fields
