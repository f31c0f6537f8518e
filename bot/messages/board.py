"""The board's page data (bot.board): tiles, deadline rows and a ticket's page, as plain Chinese text in JSON.

The page puts every text in with ``textContent``, never as markup, so nothing here is escaped for markdown or HTML.
What the platform or a member wrote is masked with the ticket's citizen wherever a group could see it; the ticket's
own handler and a dispatcher see the citizen on the ticket's page (:func:`ticket_page` with ``full``), and the caller
records each such view in the audit log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.domain.clock import local
from bot.domain.lifecycle import Action, TicketState
from bot.domain.masking import Citizen, mask_name, mask_phone, mask_text
from bot.domain.records import Deadline, HistoryEntry, Notification, Ticket
from bot.domain.reports.figures import Rate
from bot.domain.reports.report import Report, UnitLine
from bot.messages.format import deadline_label, kind_label, person, remaining, state_label, unit_name, when
from bot.messages.reports import SHOWN, number, points, score
from bot.messages.timeline import KIND_LABELS as TOLD_LABELS
from bot.messages.timeline import OTHER_ACTIONS
from config.model import BotConfig
from config.vocabulary import DEADLINE_LABELS, KIND_LABELS

TITLE_CHARS = 40
NOTE_CHARS = 200

TILES: dict[str, str] = {
    "open": "未办结",
    "unclaimed": "待接单",
    "due_soon": "2小时内到期",
    "due_today": "今日到期",
    "overdue": "已超时",
    "return_review": "退单待审核",
    "pending_assignment": "待签派",
    "warning": "预警工单",
}
# the tiles that are ticket states, and their state
STATE_TILES: dict[str, TicketState] = {
    "unclaimed": TicketState.DISPATCHED,
    "return_review": TicketState.RETURN_REQUESTED,
    "pending_assignment": TicketState.PENDING_ASSIGNMENT,
    "warning": TicketState.WARNING,
}

# the share of a deadline's time used: its row's colour
BANDS = ((0.5, "ok"), (0.8, "watch"), (1.0, "close"))


def band(started: datetime, due: datetime, now: datetime) -> tuple[float, str]:
    """The share of the deadline's time used (0..1, more when overdue) and its band: ok ≤ 50 %, watch ≤ 80 %, close
    ≤ 100 %, overdue past its due time."""
    span = (due - started).total_seconds()
    used = (now - started).total_seconds() / span if span > 0 else 1.0
    if now >= due:
        return used, "overdue"
    return used, next(name for limit, name in BANDS if used <= limit) if used <= 1.0 else "close"


def _time(at: datetime | None) -> str | None:
    return local(at).isoformat(timespec="minutes") if at is not None else None


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def masked_title(row: Mapping[Any, Any], limit: int = TITLE_CHARS) -> str:
    """A ticket's title (or the start of its text) as a group may see it: the citizen masked before it is cut."""
    citizen = Citizen(row.get("citizen_name") or None, row.get("address") or None)
    return _cut(mask_text(str(row.get("title") or row.get("content") or ""), citizen), limit)


def tiles(counts: Mapping[str, int]) -> list[dict[str, Any]]:
    return [{"key": key, "label": label, "count": int(counts.get(key, 0))} for key, label in TILES.items()]


def deadline_row(row: Mapping[Any, Any], config: BotConfig, now: datetime) -> dict[str, Any]:
    """One line of the deadline list: the ticket, the deadline, how much of its time is used."""
    used, colour = band(row["started_at"], row["due_at"], now)
    return {
        "ticket_no": row["ticket_no"],
        "title": masked_title(row),
        "kind": kind_label(row["kind"]),
        "state": state_label(row["state"]),
        "unit": unit_name(config, row["unit_code"]),
        "handler": person(config, row["handler_userid"]) if row["handler_userid"] else "",
        "deadline": deadline_label(row["deadline_name"]),
        "due_at": _time(row["due_at"]),
        "due": when(row["due_at"]),
        "remaining": remaining(row["due_at"], now),
        "used": round(used, 3),
        "used_text": "已超时" if colour == "overdue" else f"已用 {min(used, 1.0) * 100:.0f}%",
        "band": colour,
        "repeat": bool(row["is_repeat"]),
        "media": bool(row["is_media"]),
    }


def choices(config: BotConfig, units: Sequence[str] | None) -> dict[str, Any]:
    """The filters' options: the units the viewer may pick (None: all), the kinds, the open states."""
    shown = [u for u in config.units if units is None or u.code in units]
    return {
        "units": [{"code": u.code, "name": u.name} for u in shown],
        "kinds": [{"code": k.value, "name": label} for k, label in KIND_LABELS.items()],
        "states": [{"code": s.value, "name": s.label} for s in TicketState if s.is_open],
        "deadlines": {name.value: label for name, label in DEADLINE_LABELS.items()},
    }


def ticket_page(
    ticket: Ticket,
    deadlines: Sequence[Deadline],
    history: Sequence[HistoryEntry],
    told: Sequence[Notification],
    config: BotConfig,
    now: datetime,
    *,
    full: bool,
    actions: Sequence[Action],
) -> dict[str, Any]:
    """A ticket's page: its facts, every deadline with its state, its history (actions and who was told), and the
    actions this viewer may take. ``full``: the citizen's name, phone and address as the platform sent them."""
    citizen = Citizen.of(ticket)

    def text(value: str | None, limit: int = NOTE_CHARS) -> str:
        if not value:
            return ""
        return _cut(value if full else mask_text(value, citizen), limit)

    facts: list[tuple[str, str]] = [
        ("类型", kind_label(ticket.kind)),
        ("状态", state_label(ticket.state)),
        ("承办单位", unit_name(config, ticket.unit_code)),
        ("承办人", person(config, ticket.handler_userid) if ticket.handler_userid else "未接单"),
        ("诉求类别", text(ticket.category)),
        ("派单时间", local(ticket.dispatched_at).strftime("%Y-%m-%d %H:%M")),
    ]
    if ticket.is_repeat or ticket.repeat_count > 1:
        facts.append(("重复诉求", f"第{ticket.repeat_count}次" if ticket.repeat_count > 1 else "是"))
    if ticket.is_media:
        facts.append(("媒体关注", "是"))
    if full:
        facts += [
            ("诉求人", ticket.citizen_name or ""),
            ("联系电话", ticket.citizen_phone or ""),
            ("地址", ticket.address or ""),
        ]
    else:
        facts += [
            ("诉求人", mask_name(ticket.citizen_name) if ticket.citizen_name else ""),
            ("联系电话", mask_phone(ticket.citizen_phone) if ticket.citizen_phone else ""),
        ]
    rows = []
    for d in sorted(deadlines, key=lambda d: (d.cycle, d.due_at)):
        used, colour = band(d.started_at, d.due_at, now)
        is_open = d.status.value == "open"
        rows.append(
            {
                "name": deadline_label(d.name),
                "cycle": d.cycle,
                "due_at": _time(d.due_at),
                "due": when(d.due_at),
                "status": {"open": "未到期", "met": "已按时完成", "missed": "已超时", "cancelled": "已取消"}.get(
                    d.status.value, d.status.value
                ),
                "remaining": remaining(d.due_at, now) if is_open else "",
                "band": colour if is_open else d.status.value,
                "used": round(used, 3) if is_open else None,
            }
        )
    events = [
        {"at": _time(h.at), "when": when(h.at), "who": person(config, h.actor) if h.actor != "hotline" else "热线平台",
         "what": _action_label(h.action), "note": text(h.note)}
        for h in history
        if h.action != "view_contact"
    ]  # fmt: skip
    events += [
        {"at": _time(n.at), "when": when(n.at), "who": "机器人", "what": TOLD_LABELS.get(n.kind, str(n.kind)),
         "note": f"{deadline_label(n.deadline_name) if n.deadline_name else ''} → {_recipient(config, n)}"}
        for n in told
    ]  # fmt: skip
    events.sort(key=lambda e: e["at"] or "")
    return {
        "ticket_no": ticket.ticket_no,
        "title": text(ticket.title or ticket.content, 120),
        "content": text(ticket.content, 2000),
        "full": full,
        "facts": [{"label": k, "value": v} for k, v in facts],
        "deadlines": rows,
        "history": events,
        "actions": [{"code": a.value, "label": a.label} for a in actions],
    }


def _action_label(action: str) -> str:
    try:
        return Action(action).label
    except ValueError:
        return OTHER_ACTIONS.get(action, action)


def _recipient(config: BotConfig, n: Notification) -> str:
    if n.recipient_kind == "group":
        return unit_name(config, n.recipient) + "群"
    return person(config, n.recipient)


def report_page(report: Report) -> dict[str, Any]:
    """A period's report as the board shows it: one row per unit (rank, score, each rate with its numerator and
    denominator, 环比 and 同比 in percentage points), the office's total last."""
    shown = [rate for rate in SHOWN if rate is not Rate.CONTACT_20M or report.total.figures.rates[rate].den]

    def row(line: UnitLine) -> dict[str, Any]:
        cells = []
        for rate in shown:
            r = line.figures.rates[rate]
            cells.append(
                {
                    "rate": "—" if r.value is None else f"{r.value * 100:.1f}%",
                    "count": f"{number(r.num)}/{r.den}",
                    "previous": points(line.change(rate)) if r.den else "—",
                    "year_ago": points(line.change(rate, year=True)) if r.den else "—",
                    "below": r.value is not None and rate in report.targets and r.value < report.targets[rate],
                }
            )
        return {
            "code": line.code,
            "name": line.name,
            "rank": line.rank,
            "score": score(line.score),
            "received": line.figures.counts.received,
            "cells": cells,
        }

    return {
        "title": f"{report.office} {report.period.label}",
        "period": report.period.label,
        "generated_at": local(report.at).strftime("%Y-%m-%d %H:%M"),
        "columns": [rate.label for rate in shown],
        "targets": [f"{report.targets[rate] * 100:.0f}%" if rate in report.targets else "" for rate in shown],
        "rows": [row(line) for line in report.units],
        "total": row(report.total),
    }
