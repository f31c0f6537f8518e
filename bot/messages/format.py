"""Tickets as short Chinese chat text: the key facts and the next deadline, masked unless meant for one person."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from urllib.parse import quote

from bot.domain.clock import local
from bot.domain.escaping import escape_md, group_text
from bot.domain.lifecycle import TicketState, VisitResult
from bot.domain.masking import Citizen, mask_name, mask_phone, mask_text
from bot.domain.records import Deadline, DeadlineStatus, RepeatLink, Ticket, TicketLine
from bot.domain.repeats import reasons_label
from config.model import BotConfig
from config.vocabulary import DEADLINE_LABELS, KIND_LABELS, DeadlineName, TicketKind

CONTENT_CHARS = 60  # of the ticket's text in a one-ticket summary
REASON_CHARS = 40  # of a pending extension's reason in a summary
LINE_CHARS = 24  # of the title in a list line


def board_link(board_url: str | None, ticket_no: str) -> str | None:
    """The ticket's page on the board (``PUBLIC_URL/board/ticket/{no}``), or None where the board's address is not
    known."""
    return f"{board_url}/board/ticket/{quote(ticket_no, safe='')}" if board_url else None


def when(at: datetime) -> str:
    """``11-23 14:30``, local time."""
    return local(at).strftime("%m-%d %H:%M")


def remaining(due: datetime, now: datetime) -> str:
    """``还剩 3小时20分`` / ``已超时 1天2小时``."""
    seconds = int((due - now).total_seconds())
    late = seconds < 0
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        span = f"{days}天{hours}小时" if hours else f"{days}天"
    elif hours:
        span = f"{hours}小时{minutes}分" if minutes else f"{hours}小时"
    else:
        span = f"{max(minutes, 1)}分钟"
    return f"已超时 {span}" if late else f"还剩 {span}"


def deadline_label(name: str) -> str:
    try:
        return DEADLINE_LABELS[DeadlineName(name)]
    except ValueError:
        return name


def kind_label(kind: str) -> str:
    try:
        return KIND_LABELS[TicketKind(kind)]
    except ValueError:
        return kind


def state_label(state: str) -> str:
    try:
        return TicketState(state).label
    except ValueError:
        return state


def person(config: BotConfig, userid: str | None) -> str:
    if not userid:
        return "无"
    member = config.member(userid)
    return member.name if member is not None else userid


def unit_name(config: BotConfig, code: str | None) -> str:
    unit = config.unit(code) if code else None
    return unit.name if unit is not None else (code or "未分派")


def next_deadline(deadlines: Sequence[Deadline], cycle: int | None = None) -> Deadline | None:
    """The earliest open deadline (of ``cycle`` when given), or None."""
    open_ones = [d for d in deadlines if d.status == DeadlineStatus.OPEN and (cycle is None or d.cycle == cycle)]
    return min(open_ones, key=lambda d: d.due_at, default=None)


def deadline_line(deadline: Deadline | None, now: datetime) -> str:
    if deadline is None:
        return "下一时限：无"
    due = deadline.due_at
    return f"下一时限：{deadline_label(deadline.name)} {when(due)}（{remaining(due, now)}）"


def summary(ticket: Ticket, deadlines: Sequence[Deadline], config: BotConfig, now: datetime) -> str:
    """The ticket's key facts for a chat everyone in the unit reads: citizen and phone numbers masked."""
    # masked before it is cut: a phone number cut short no longer looks like one
    text = escape_md(mask_text(ticket.title or ticket.content, Citizen.of(ticket)))
    if len(text) > CONTENT_CHARS:
        text = text[:CONTENT_CHARS] + "…"
    shown = next_deadline(deadlines, ticket.cycle)
    if ticket.state is TicketState.RETURN_REQUESTED:
        # the unit's deadlines are held: what runs is the office's review
        reviews = [d for d in deadlines if d.name == DeadlineName.RETURN_REVIEW and d.status == DeadlineStatus.OPEN]
        shown = next_deadline(reviews) or shown
    lines = [
        f"工单 {ticket.ticket_no}（{kind_label(ticket.kind)}）{unit_name(config, ticket.unit_code)}",
        text,
        f"状态：{state_label(ticket.state)}，承办人：{person(config, ticket.handler_userid)}",
        deadline_line(shown, now),
    ]
    lines += [
        line
        for line in (repeat_line(ticket, config), extension_line(ticket, config), return_line(ticket, config))
        if line
    ]
    if ticket.evaluation != "normal":
        lines.append("不纳入测评：已批准" if ticket.evaluation == "excluded" else "不纳入测评：申请审核中")
    return "\n".join(lines)


def repeat_line(ticket: Ticket, config: BotConfig, earlier: Sequence[RepeatLink] = ()) -> str | None:
    """The repeat the bot found, "重复诉求：30天内第2次（同一来电号码），前次 2026112200123 已办结（满意）", with the
    state and satisfaction of the ticket before it when ``earlier`` (its earlier tickets, the latest first) is given;
    the platform's own flag (重复工单) when the bot found none; None for neither. Numbers only, never what matched."""
    if ticket.repeat_count > 1:
        reasons = reasons_label([link.reason for link in earlier] or [ticket.repeat_reason or ""])
        line = f"重复诉求：{window_label(config)}内第{ticket.repeat_count}次"
        if reasons:
            line += f"（{reasons}）"
        if earlier:
            line += f"，前次 {earlier[0].ticket_no} {outcome(earlier[0])}"
        elif ticket.repeat_of:
            line += f"，前次 {ticket.repeat_of}"
        return line
    if ticket.is_repeat:
        return "重复诉求：热线平台标记为重复工单"
    return None


def window_label(config: BotConfig) -> str:
    """The repeat window in words: 30天, 48小时."""
    window = config.repeats.window
    return f"{window.value}{ {'d': '天', 'h': '小时', 'm': '分钟'}.get(window.unit, window.unit) }"


def outcome(link: RepeatLink) -> str:
    """已办结（满意）: where a ticket stands, with the citizen's satisfaction once the return visit gave it."""
    label = state_label(link.state)
    try:
        return f"{label}（{VisitResult(link.satisfaction).label}）" if link.satisfaction else label
    except ValueError:
        return label


def return_line(ticket: Ticket, config: BotConfig) -> str | None:
    """The pending return (退单): who asked, why (masked and cut for a group), the suggested unit, and whom it waits
    for; None when there is none."""
    if ticket.return_requested_at is None:
        return None
    reason = group_text(ticket.return_reason or "", ticket)
    if len(reason) > REASON_CHARS:
        reason = reason[:REASON_CHARS] + "…"
    suggested = config.unit_for_label(ticket.return_unit)
    where = suggested.name if suggested is not None else group_text(ticket.return_unit or "", ticket)
    waits = "待负责人确认" if ticket.return_signed_by is None else "热线办审核中，暂停催办"
    who = person(config, ticket.return_requested_by)
    return f"退单申请{waits}（{who}：{reason}；建议：{where or '未提出'}）"


def extension_line(ticket: Ticket, config: BotConfig) -> str | None:
    """The pending extension request (延期), masked and cut for a group, or None when there is none."""
    days = ticket.extension_days
    if days is None:
        return None
    reason = group_text(ticket.extension_reason or "", ticket)
    if len(reason) > REASON_CHARS:
        reason = reason[:REASON_CHARS] + "…"
    who = person(config, ticket.extension_requested_by)
    return f"延期申请待审批：{days} 个工作日（{who}：{reason}）"


def handling_deadline(deadlines: Sequence[Deadline], cycle: int | None) -> Deadline | None:
    """The open handling deadline of the ticket's cycle: 办结, or 再次处置 of a warning ticket; None without one."""
    for name in (DeadlineName.REHANDLE, DeadlineName.HANDLE):
        for d in deadlines:
            if d.status == DeadlineStatus.OPEN and d.name == name and (cycle is None or d.cycle == cycle):
                return d
    return None


def full_details(ticket: Ticket) -> str:
    """Everything the handler needs to call the citizen, unmasked: for one person's eyes only."""
    lines = [
        f"工单 {ticket.ticket_no} 详情（含联系方式，请勿转发）",
        f"诉求人：{ticket.citizen_name or '未留姓名'}  电话：{ticket.citizen_phone or '未留电话'}",
    ]
    if ticket.address:
        lines.append(f"地址：{ticket.address}")
    if ticket.category:
        lines.append(f"类别：{ticket.category}")
    lines.append(f"内容：{ticket.content}")
    return escape_md("\n".join(lines))


def handed_over(ticket: Ticket, deadlines: Sequence[Deadline], now: datetime, *, by: str) -> str:
    """To the member a ticket was handed to (转派), privately: who handed it over, the time left, the details."""
    lines = [f"{escape_md(by)} 将工单 {ticket.ticket_no}（{kind_label(ticket.kind)}）转派给您承办。"]
    nearest = next_deadline(deadlines, ticket.cycle)
    lines.append(deadline_line(nearest, now))
    handling = handling_deadline(deadlines, ticket.cycle)
    if handling is not None and handling is not nearest:
        due = handling.due_at
        lines.append(f"{deadline_label(handling.name)}时限：{when(due)}（{remaining(due, now)}）")
    return "\n".join([*lines, full_details(ticket)])


def list_line(row: TicketLine, config: BotConfig, now: datetime, *, unit: bool = False) -> str:
    """One ticket in a list: number, a few words, its unit (``unit``: in a list that spans units), state, its next
    deadline."""
    text = escape_md(mask_text(row.title or row.content or "", Citizen.of(row)))  # masked, then cut
    if len(text) > LINE_CHARS:
        text = text[:LINE_CHARS] + "…"
    where = f"｜{unit_name(config, row.unit_code)}" if unit else ""
    line = f"· {row.ticket_no} {text}{where}｜{state_label(row.state)}"
    due = row.deadline_due_at
    if due is not None:
        name = row.deadline_name
        label = deadline_label(name) if name else "时限"
        line += f"｜{label} {when(due)}（{remaining(due, now)}）"
    return line


def masked_contact(ticket: Ticket) -> str:
    return escape_md(f"{mask_name(ticket.citizen_name)} {mask_phone(ticket.citizen_phone)}")
