"""/统计's answer: how many tickets are open, waiting to be claimed and overdue, and how many were closed today, in all
and, when the reader looks at several units (the office, a head of more than one), unit by unit, those with the most
overdue and unclaimed first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from bot.messages.format import unit_name, when
from config.model import BotConfig

UNIT_LINES = 20  # units listed one by one in one answer (the answer stays one chat message)


class Counts(Protocol):
    """The figures of a set of tickets (:class:`handlers.queries.Figures`)."""

    @property
    def open(self) -> int: ...

    @property
    def unclaimed(self) -> int: ...

    @property
    def overdue(self) -> int: ...

    @property
    def closed_today(self) -> int: ...


def stats(
    config: BotConfig,
    *,
    scope: Sequence[str] | None,
    total: Counts,
    units: Mapping[str, Counts] | None,
    now: datetime,
) -> str:
    """The answer for ``scope`` (the unit codes; None: all units): the totals, what waits with the office (the whole
    office only: returns approved and waiting to be re-dispatched or assigned, counted in all but in no unit), and
    one line per unit of ``units`` that has anything to count (None: no such lines)."""
    name = "全部单位" if scope is None else "、".join(unit_name(config, code) for code in scope)
    lines = [
        f"{name} 工单概况（{when(now)}）：",
        f"未办结 {total.open} 件，其中待接单 {total.unclaimed} 件，逾期 {total.overdue} 件；"
        f"今日办结 {total.closed_today} 件。",
    ]
    if units is None:
        return "\n".join(lines)
    if scope is None:
        with_office = total.open - sum(c.open for c in units.values())
        if with_office > 0:
            lines.append(f"已退单、待改派或签派 {with_office} 件。")
    order = {u.code: i for i, u in enumerate(config.units)}
    shown = sorted(
        (code for code, c in units.items() if c.open or c.closed_today),
        key=lambda code: (-units[code].overdue, -units[code].unclaimed, -units[code].open, order.get(code, 0), code),
    )
    if not shown:
        return "\n".join(lines)
    lines.append("各单位（逾期、待接单多的在前）：")
    for code in shown[:UNIT_LINES]:
        c = units[code]
        lines.append(
            f"· {unit_name(config, code)}：未办结 {c.open}，待接单 {c.unclaimed}，逾期 {c.overdue}，"
            f"今日办结 {c.closed_today}"
        )
    if len(shown) > UNIT_LINES:
        lines.append(f"……另有 {len(shown) - UNIT_LINES} 个单位，发送 /统计 单位名 查看")
    return "\n".join(lines)
