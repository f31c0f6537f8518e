"""bot/domain/lifecycle/states.py: the limits and the Chinese labels."""

from __future__ import annotations

from bot.domain.lifecycle import (
    MAX_EXTENSION_DAYS,
    MAX_EXTENSIONS,
    MAX_REDISPATCHES,
    RETURNS_BEFORE_ASSIGNMENT,
    Action,
    ExtensionLimits,
    TicketState,
    VisitResult,
)
from tests.domain.lifecycle.support import CJK, S


def test_constants() -> None:
    assert RETURNS_BEFORE_ASSIGNMENT == 2  # 有两个部门以上退单 -> 签派
    assert MAX_REDISPATCHES == 1  # 重新派单一次
    # 延期: up to 10 working days a request, one approved extension a ticket (configurable: deadlines.extension)
    assert (MAX_EXTENSION_DAYS, MAX_EXTENSIONS) == (10, 1)
    assert ExtensionLimits() == ExtensionLimits(max_days=10, max_count=1)


def test_every_state_and_action_has_a_chinese_label() -> None:
    for item in (*TicketState, *Action, *VisitResult):
        assert CJK.search(item.label)
    assert {s for s in TicketState if not s.is_open} == {S.CLOSED, S.CANCELLED}
