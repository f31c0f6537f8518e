"""What the messages say of a repeat complaint (重复诉求): the line of a push, a card, a digest and /查."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from bot.domain.clock import TZ
from bot.domain.lifecycle import TicketState
from bot.domain.records import RepeatLink, Ticket
from bot.messages import format as fmt
from bot.messages import pushes as texts
from bot.messages.cards import ticket_card
from config.durations import Duration
from config.model import BotConfig

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)
PREVIOUS = RepeatLink(
    ticket_no="2026112200123",
    dispatched_at=NOW - timedelta(days=1),
    state=TicketState.CLOSED,
    satisfaction="satisfied",
    reason="phone",
)


def test_the_line_says_which_time_it_is_what_matched_and_how_the_one_before_ended(
    make_ticket: Callable[..., Ticket], sandbox_config: BotConfig
) -> None:
    repeat = make_ticket(repeat_count=2, repeat_of="2026112200123", repeat_reason="phone")
    assert (
        fmt.repeat_line(repeat, sandbox_config, [PREVIOUS])
        == "重复诉求：30天内第2次（同一来电号码），前次 2026112200123 已办结（满意）"
    )
    # without the earlier tickets at hand (/查, an updated card): the number only
    assert fmt.repeat_line(repeat, sandbox_config) == "重复诉求：30天内第2次（同一来电号码），前次 2026112200123"
    open_one = RepeatLink(
        ticket_no="2026112000007", dispatched_at=NOW, state=TicketState.CLAIMED, satisfaction=None, reason="address"
    )
    third = make_ticket(repeat_count=3, repeat_of="2026112000007", repeat_reason="address")
    assert (
        fmt.repeat_line(third, sandbox_config, [open_one, PREVIOUS])
        == "重复诉求：30天内第3次（同一来电号码、同一地址），前次 2026112000007 已接单"
    )


def test_the_platforms_flag_alone_and_no_repeat_at_all(
    make_ticket: Callable[..., Ticket], sandbox_config: BotConfig
) -> None:
    assert fmt.repeat_line(make_ticket(is_repeat=True), sandbox_config) == "重复诉求：热线平台标记为重复工单"
    assert fmt.repeat_line(make_ticket(), sandbox_config) is None
    both = make_ticket(is_repeat=True, repeat_count=2, repeat_of="2026112200123", repeat_reason="phone")
    assert fmt.repeat_line(both, sandbox_config, [PREVIOUS]).startswith("重复诉求：30天内第2次")  # type: ignore[union-attr]
    settings = sandbox_config.repeats.model_copy(update={"window": Duration.parse("48h")})
    two_days = sandbox_config.model_copy(update={"repeats": settings})
    assert fmt.repeat_line(make_ticket(repeat_count=2), two_days) == "重复诉求：48小时内第2次"


def test_a_push_a_card_a_digest_and_the_summary_say_so_masked(
    make_ticket: Callable[..., Ticket], sandbox_config: BotConfig
) -> None:
    repeat = make_ticket(
        repeat_count=2,
        repeat_of="2026112200123",
        repeat_reason="phone",
        citizen_name="王秀英",
        citizen_phone="13800000013",
        address="幸福里小区3号1203室",
        content="幸福里小区3号1203室门口垃圾满溢，联系电话13800000013",
    )
    line = "重复诉求：30天内第2次（同一来电号码），前次 2026112200123 已办结（满意）"
    body = texts.markdown(sandbox_config, repeat, [], "【常规】新工单 2026112300001", None, NOW, earlier=[PREVIOUS])
    assert body.splitlines()[1] == line
    card = ticket_card(repeat, [], sandbox_config, NOW, tag="t1", earlier=[PREVIOUS])
    assert card.subtitle.splitlines()[0] == line
    digest = texts.digest("环卫所", [repeat, make_ticket(ticket_no="2026112300002")], {}, 20)
    assert "2026112300001（常规）" in digest
    assert "｜重复第2次" in digest
    assert digest.count("重复") == 1
    summary = fmt.summary(repeat, [], sandbox_config, NOW)
    assert "重复诉求：30天内第2次（同一来电号码），前次 2026112200123" in summary
    for text in (body, card.subtitle, digest, summary):
        assert "13800000013" not in text
        assert "王秀英" not in text
        assert "1203室" not in text
