"""Why the ticket and duty services refuse a request: short Chinese answers the member sees as they are."""

from __future__ import annotations

from collections.abc import Sequence

from bot.domain.escaping import escape_md
from config.vocabulary import ROLE_LABELS, Role


def ticket_not_found(ticket_no: str) -> str:
    return f"没有找到工单 {ticket_no}，请核对工单编号。"


def unknown_unit(label: str) -> str:
    return f"没有名为「{escape_md(label)}」的承办单位。"


def takers_label(takers: Sequence[Role]) -> str:
    """Who may take over the duty, in Chinese: 值班员（含排班表上的人员）、派单员和管理员."""
    names = [ROLE_LABELS[role] + ("（含排班表上的人员）" if role is Role.DUTY else "") for role in takers]
    return "、".join(names[:-1]) + "和" + names[-1]


def duty_forbidden(takers: Sequence[Role]) -> str:
    return f"抱歉，只有{takers_label(takers)}可以接班。"


NO_TAKEOVER = "您目前没有接班记录，无需交班。排班表上的班次到点自动结束。"
