"""What the deadline engine's notices say: a reminder digest per work group and per member (the deadlines that came
due in one tick, one line per ticket, most pressing first), and the flag of a unit's three missed accept deadlines.

The engine (:mod:`bot.services.deadline_engine`) decides who hears of which deadline and produces :class:`Reminder`
and :class:`MissFlag`; this module turns them into :class:`bot.messages.notice.Notice`, masked for groups.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from bot.domain.escaping import escape_md
from bot.domain.masking import Citizen, mask_text
from bot.domain.nags import period_label
from bot.messages.format import deadline_label, person, remaining, unit_name, when
from bot.messages.notice import Notice
from config.model import BotConfig

Section = Literal["mine", "escalation", "duty"]
LINE_CHARS = 24  # of the ticket's text in a line
TEXT_BUDGET = 1500  # bytes of lines in one message (the markdown limit is 2000 here, mentions and headings aside)

GROUP_SECTIONS = (("overdue", "已超时"), ("soon", "临近时限"))
PRIVATE_SECTIONS = (
    ("duty", "值班：受理时段外的紧急工单"),
    ("mine_overdue", "你负责的工单已超时"),
    ("escalation", "超时督办"),
    ("mine_soon", "你负责的工单临近时限"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DueItem:
    """What one deadline contributes to a tick's notices."""

    key: str  # deadline, due time and the stages taken: unique per step
    deadline_id: int
    ticket_id: int
    ticket_no: str
    name: str
    due_at: datetime
    text: str  # the ticket's text as stored (masked when shown)
    citizen: Citizen
    unit_code: str | None
    handler: str | None
    overdue: bool
    urgent: bool
    group: str | None  # the unit whose work group gets it
    mention: tuple[str, ...]
    private: tuple[tuple[str, Section], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Reminder:
    """Everything a tick has for one work group (``unit``) or one member (``member``), by section (``overdue`` and
    ``soon`` for a group; ``duty``, ``mine_overdue``, ``escalation``, ``mine_soon`` for a member)."""

    key: str
    unit: str | None = None
    member: str | None = None
    sections: Mapping[str, Sequence[DueItem]]
    mention: tuple[str, ...] = ()
    urgent: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class MissFlag:
    """A unit that let the accept deadline pass ``count`` times in the reporting period from ``period_start``."""

    unit_code: str
    period_start: date
    period_months: int
    count: int
    threshold: int
    misses: Sequence[Mapping[Any, Any]]  # ticket_no, missed_at (and ticket_id, deadline_id)
    office_unit: str | None  # whose work group is told (None: the group is not)
    dispatchers: Sequence[str]


def reminder_notice(reminder: Reminder, config: BotConfig, now: datetime) -> Notice:
    if reminder.member is None:
        heading = f"**【时限提醒】{unit_name(config, reminder.unit)}**"
        text = _text(config, heading, GROUP_SECTIONS, reminder.sections, now, with_unit=False)
        return Notice(
            key=reminder.key, text=text, unit=reminder.unit, mention=list(reminder.mention), urgent=reminder.urgent
        )
    text = _text(config, "**【时限提醒】**", PRIVATE_SECTIONS, reminder.sections, now, with_unit=True)
    return Notice(key=reminder.key, text=text, members=[reminder.member], urgent=reminder.urgent)


def flag_notice(flag: MissFlag, config: BotConfig) -> Notice:
    lines = [
        f"**【未按时接单】{unit_name(config, flag.unit_code)}**",
        f"{period_label(flag.period_start, flag.period_months)}已有 {flag.count} 次未按时接单"
        f"（达到 {flag.threshold} 次）：",
        *(f"· {m['ticket_no']} 接单时限 {when(m['missed_at'])}" for m in flag.misses),
    ]
    return Notice(
        key=f"three-misses:{flag.unit_code}:{flag.period_start.isoformat()}",
        text="\n".join(lines),
        unit=flag.office_unit,
        members=flag.dispatchers,
    )


def _text(
    config: BotConfig,
    heading: str,
    sections: Iterable[tuple[str, str]],
    found: Mapping[str, Sequence[DueItem]],
    now: datetime,
    *,
    with_unit: bool,
) -> str:
    out = [heading]
    budget = TEXT_BUDGET
    left = 0
    for part, title in sections:
        items = found.get(part)
        if not items:
            continue
        lines = _lines(config, items, now, with_unit=with_unit or part == "duty")
        head = f"{title}（{len(lines)} 件）："
        for line in [head, *lines]:
            size = len(line.encode()) + 1
            if size > budget:
                left += 1 if line is not head else 0
                continue
            budget -= size
            out.append(line)
    if left:
        out.append(f"……另有 {left} 件，发送 /逾期 或 /待办 查看")
    return "\n".join(out)


def _lines(config: BotConfig, items: Sequence[DueItem], now: datetime, *, with_unit: bool) -> list[str]:
    """One line per ticket: its deadlines (merged when due together), the handler; most pressing first."""
    by_ticket: dict[int, list[DueItem]] = defaultdict(list)
    for item in items:
        by_ticket[item.ticket_id].append(item)
    ordered = sorted(by_ticket.values(), key=lambda its: (min(i.due_at for i in its), its[0].ticket_no))
    lines = []
    for its in ordered:
        first = its[0]
        due: dict[datetime, list[str]] = defaultdict(list)
        for i in sorted(its, key=lambda i: (i.due_at, i.name)):
            due[i.due_at].append(deadline_label(i.name))
        parts = "；".join(f"{'、'.join(names)} {when(at)}（{remaining(at, now)}）" for at, names in due.items())
        who = f"承办人 {person(config, first.handler)}" if first.handler else "待接单"
        unit = f"｜{unit_name(config, first.unit_code)}" if with_unit else ""
        text = _cut(escape_md(mask_text(first.text, first.citizen)))
        lines.append(f"· {first.ticket_no} {text}{unit}｜{parts}｜{who}")
    return lines


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= LINE_CHARS else text[:LINE_CHARS] + "…"
