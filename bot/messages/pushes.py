"""What a push says: a ticket new to a unit's work group, the notice to the unit a ticket left, the urgent push to
whoever is on duty, and a unit's digest. Masked as for a group (:mod:`bot.domain.masking`); the full details go
only to the claimer, by /接单."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from bot.domain.escaping import group_text
from bot.domain.lifecycle import Action, TicketState, VisitResult
from bot.domain.records import Deadline, RepeatLink, Ticket
from bot.messages import format as fmt
from config.model import BotConfig

NEW, MOVED, REOPENED, WARNING = "new", "moved", "reopened", "warning"
CONTENT_CHARS = 80  # of the ticket's text in a push
LINE_CHARS = 22  # of the title in a digest line
NOTE_CHARS = 60  # of the visit's note in a warning push


def headline(
    config: BotConfig,
    ticket: Ticket,
    *,
    event: str,
    action: str,
    from_unit: str | None,
) -> tuple[str, str | None]:
    """The push's first line, and the lead line of its card (None: a plain new ticket)."""
    no = ticket.ticket_no
    kind = fmt.kind_label(ticket.kind)
    if event == WARNING:
        seen = VisitResult(ticket.satisfaction).label if ticket.satisfaction else "不满意"
        lead = f"回访{seen}，已转为预警工单，请再次处置"
        if ticket.visit_note:
            # what the citizen said at the visit: the unit needs it to handle the ticket again
            note = group_text(ticket.visit_note, ticket)
            lead += f"\n回访意见：{note[:NOTE_CHARS]}{'…' if len(note) > NOTE_CHARS else ''}"
        return f"【预警】工单 {no} 回访{seen}，请再次处置", lead
    if event == MOVED:
        source = fmt.unit_name(config, from_unit) if from_unit else "热线办"
        what = "签派" if action == Action.ASSIGN else "改派"
        if from_unit == ticket.unit_code:
            return f"【{kind}】重新派单 {no}", "重新派单至本单位"
        return f"【{kind}】{what}工单 {no}（原：{source}）", f"由{source}{what}至本单位"
    if event == REOPENED:
        return f"【{kind}】工单 {no} 重新打开", "工单重新打开，请重新办理"
    return new_ticket(ticket), None


def new_ticket(ticket: Ticket) -> str:
    return f"【{fmt.kind_label(ticket.kind)}】新工单 {ticket.ticket_no}"


def markdown(
    config: BotConfig,
    ticket: Ticket,
    deadlines: Sequence[Deadline],
    headline: str,
    lead: str | None,
    now: datetime,
    *,
    remaining: bool = True,
    earlier: Sequence[RepeatLink] = (),
    link: str | None = None,
) -> str:
    """The push as group markdown (where no card goes), masked. ``remaining``: with the time left before the next
    deadline (not in a message that may wait for the service window: it would be stale). ``earlier``: the tickets it
    repeats, the latest first (the repeat line says how the one before it ended). ``link``: the ticket's page on the
    board, as the last line."""
    title = group_text(ticket.title or "", ticket)
    # masked before it is cut: a phone number cut short no longer looks like one
    content = group_text(ticket.content or "", ticket)
    if len(content) > CONTENT_CHARS:
        content = content[:CONTENT_CHARS] + "…"
    lines = [f"**{headline}**"]
    if lead:
        lines.append(lead)
    repeat = fmt.repeat_line(ticket, config, earlier)
    if repeat:
        lines.append(repeat)
    if title:
        lines.append(f"**{title[: LINE_CHARS * 2]}**")
    lines.append(content)
    facts = [f"承办单位：{fmt.unit_name(config, ticket.unit_code)}"]
    if ticket.category:
        facts.insert(0, f"类别：{group_text(ticket.category, ticket)}")
    lines.append("> " + "　".join(facts))
    deadline = fmt.next_deadline(deadlines, ticket.cycle)
    if remaining or deadline is None:
        lines.append("> " + fmt.deadline_line(deadline, now))
    else:
        lines.append(f"> 下一时限：{fmt.deadline_label(deadline.name)} {fmt.when(deadline.due_at)}")
    no = ticket.ticket_no
    if ticket.state == TicketState.DISPATCHED:
        lines.append(f"请发送 /接单 {no} 接单，/查 {no} 查看详情。")
    else:
        lines.append(f"发送 /查 {no} 查看详情。")
    if link:
        lines.append(f"[在看板中打开]({link})")
    return "\n".join(lines)


def moved_away(config: BotConfig, ticket: Ticket, *, action: str) -> str:
    """The short notice to the unit a ticket left: where it went, and that its card is void."""
    where = fmt.unit_name(config, ticket.unit_code)
    what = "签派" if action == Action.ASSIGN else "改派"
    return (
        f"**工单 {ticket.ticket_no}（{fmt.kind_label(ticket.kind)}）已{what}至「{where}」**\n"
        f"本单位无需再办理，此前推送的卡片已失效。"
    )


def to_duty(
    config: BotConfig, ticket: Ticket, deadlines: Sequence[Deadline], headline: str, unit_name: str, now: datetime
) -> str:
    """The urgent push outside the service window, privately to whoever is on duty."""
    text = group_text(ticket.title or ticket.content or "", ticket)
    lines = [f"**【值班提醒】{headline}**", f"受理时段外，已推送至「{unit_name}」工作群。"]
    repeat = fmt.repeat_line(ticket, config)
    if repeat:
        lines.append(repeat)
    lines += [
        text[:CONTENT_CHARS],
        f"> {fmt.deadline_line(fmt.next_deadline(deadlines, ticket.cycle), now)}",
        f"发送 /查 {ticket.ticket_no} 查看详情。",
    ]
    return "\n".join(lines)


def digest(
    unit_name: str,
    items: Sequence[Ticket],
    open_deadlines: Mapping[int, Sequence[Deadline]],
    limit: int,
) -> str:
    """A unit's digest of the tickets waiting to be claimed: a line each (at most ``limit``)."""
    lines = [f"**【新工单汇总】{unit_name} {len(items)} 件待接单**"]
    for i, ticket in enumerate(items[:limit], start=1):
        text = group_text(ticket.title or ticket.content or "", ticket)
        if len(text) > LINE_CHARS:
            text = text[:LINE_CHARS] + "…"
        line = f"{i}. {ticket.ticket_no}（{fmt.kind_label(ticket.kind)}）{text}"
        if ticket.repeat_count > 1:
            line += f"｜重复第{ticket.repeat_count}次"
        elif ticket.is_repeat:
            line += "｜平台标记重复"
        deadline = fmt.next_deadline(open_deadlines.get(ticket.id, []), ticket.cycle)
        if deadline is not None:
            line += f"｜{fmt.deadline_label(deadline.name)} {fmt.when(deadline.due_at)}"
        lines.append(line)
    if len(items) > limit:
        lines.append(f"另有 {len(items) - limit} 件未列出，发送 /待办 查看全部。")
    lines.append("请发送 /接单 工单号 接单，/查 工单号 查看详情。")
    return "\n".join(lines)
