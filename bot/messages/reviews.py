"""What the bot says about a return (退单) along its way: to the unit's heads for their signature, to the office for
its review, to the unit when the office decides, to the center leads when the ticket needs 签派. Masked as for a
group (the reason is a member's text: the citizen masked, escaped); none carries the citizen's details."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.domain.escaping import group_text
from bot.domain.records import Deadline, Ticket
from bot.messages import format as fmt
from config.model import BotConfig
from config.vocabulary import DeadlineName


def _title(ticket: Ticket) -> str:
    text = group_text(ticket.title or ticket.content or "", ticket)
    return text[:40] + ("…" if len(text) > 40 else "")


def _reason(ticket: Ticket, text: object) -> str:
    return group_text(text, ticket) or "（未写明）"


def _suggested(config: BotConfig, ticket: Ticket, text: object) -> str:
    """The suggested unit: its configured name when it is one of ours, else as the member wrote it (masked, escaped:
    a member's text)."""
    if not text:
        return "（未提出）"
    unit = config.unit_for_label(str(text))
    return unit.name if unit is not None else group_text(text, ticket)


def signoff_request(config: BotConfig, ticket: Ticket, requester: str) -> str:
    """To the unit's heads: a handler asks to return a ticket, and waits for their signature."""
    no = ticket.ticket_no
    return (
        f"**【退单待确认】工单 {no}**\n"
        f"{fmt.person(config, requester)} 申请退单：{_title(ticket)}\n"
        f"> 理由：{_reason(ticket, ticket.return_reason)}\n"
        f"> 建议单位：{_suggested(config, ticket, ticket.return_unit)}\n"
        f"请负责人回复「退单 {no} 确认」提交热线办审核，或「退单 {no} 驳回 理由」。"
    )


def review_request(config: BotConfig, ticket: Ticket, review: Deadline | None) -> str:
    """To the office (its group and each dispatcher): a signed return to decide on."""
    no = ticket.ticket_no
    unit = fmt.unit_name(config, ticket.unit_code)
    asked = fmt.person(config, ticket.return_requested_by)
    signed = ticket.return_signed_by
    who = (
        asked
        if signed in (None, ticket.return_requested_by)
        else f"{asked}，负责人 {fmt.person(config, signed)} 已确认"
    )
    lines = [
        f"**【退单审核】工单 {no}（{fmt.kind_label(ticket.kind)}）**",
        f"{unit}申请退单：{_title(ticket)}",
        f"> 理由：{_reason(ticket, ticket.return_reason)}",
        f"> 建议单位：{_suggested(config, ticket, ticket.return_unit)}",
        f"> 申请人：{who}",
    ]
    if review is not None:
        lines.append(f"> 审核时限：{fmt.when(review.due_at)}")
    suggested = config.unit_for_label(ticket.return_unit)
    to = suggested.name if suggested is not None else "单位名称"
    lines.append(f"请回复「退单 {no} 同意」（同时改派：「退单 {no} 同意 {to}」）或「退单 {no} 驳回 理由」。")
    return "\n".join(lines)


def head_declined(config: BotConfig, ticket: Ticket, head: str, data: Mapping[str, Any]) -> str:
    """To the handler who asked: the head did not sign the return."""
    return (
        f"**工单 {ticket.ticket_no} 的退单申请未获负责人同意**\n"
        f"{fmt.person(config, head)}：{_reason(ticket, data.get('reason'))}\n"
        f"请继续办理。"
    )


def approved(config: BotConfig, ticket: Ticket, from_unit: str | None, data: Mapping[str, Any]) -> str:
    """To the unit that returned it: the office agreed, and the ticket waits for its new unit (签派 when contested)."""
    no = ticket.ticket_no
    after = "需由中心领导签派" if data.get("to_assignment") else "由热线办重新派单"
    return (
        f"**✅ 热线办已同意退单：工单 {no}**\n"
        f"{fmt.unit_name(config, from_unit)}无需再办理，此前推送的卡片已失效；工单{after}。"
    )


def rejected(
    config: BotConfig, ticket: Ticket, deadlines: Sequence[Deadline], data: Mapping[str, Any], now: datetime
) -> str:
    """To the unit that asked: the office rejected the return; the deadlines it had go on."""
    deadline = fmt.handling_deadline(deadlines, ticket.cycle) or fmt.next_deadline(deadlines, ticket.cycle)
    due = (
        f"{fmt.deadline_label(deadline.name)}时限 {fmt.when(deadline.due_at)}（{fmt.remaining(deadline.due_at, now)}）"
        if deadline is not None and deadline.name != DeadlineName.RETURN_REVIEW
        else "原时限不变"
    )
    return (
        f"**❌ 热线办驳回退单：工单 {ticket.ticket_no}**\n"
        f"> 理由：{_reason(ticket, data.get('reason'))}\n"
        f"请继续办理，{due}。"
    )


def to_assignment(config: BotConfig, ticket: Ticket, from_unit: str | None, data: Mapping[str, Any]) -> str:
    """To the center leads (and the office): a ticket returned again, for 签派."""
    no = ticket.ticket_no
    named = data.get("named_unit")
    lines = [
        f"**【待签派】工单 {no}（{fmt.kind_label(ticket.kind)}）已退单 {data.get('returns', ticket.return_count)} 次**",
        _title(ticket),
        f"> 最近退单：{fmt.unit_name(config, from_unit)}，理由：{_reason(ticket, data.get('reason'))}",
        f"> 建议单位：{_suggested(config, ticket, data.get('suggested_unit'))}",
    ]
    if named:
        lines.append(f"> 派单员提出改派：{_suggested(config, ticket, named)}")
    lines.append(f"请中心领导回复「签派 {no} 单位」指定承办单位。")
    return "\n".join(lines)


def exclusion_request(config: BotConfig, ticket: Ticket, requester: str, reason: object) -> str:
    """To the office: a unit asks that a ticket not count in the ratings (不纳入测评)."""
    no = ticket.ticket_no
    return (
        f"**【不纳入测评申请】工单 {no}（{fmt.kind_label(ticket.kind)}）**\n"
        f"{fmt.unit_name(config, ticket.unit_code)} {fmt.person(config, requester)} 申请不纳入测评：{_title(ticket)}\n"
        f"> 理由：{_reason(ticket, reason)}\n"
        f"请派单员或中心领导回复「不纳入测评 {no} 同意」或「不纳入测评 {no} 驳回 理由」。"
    )


def exclusion_decided(config: BotConfig, ticket: Ticket, decider: str, *, approved: bool, reason: object) -> str:
    """To the unit: the office's decision on its request."""
    no = ticket.ticket_no
    if approved:
        return f"**✅ 工单 {no} 不纳入测评的申请已获同意**（{fmt.person(config, decider)}）\n该工单不计入各项测评指标。"
    return (
        f"**❌ 工单 {no} 不纳入测评的申请未获同意**（{fmt.person(config, decider)}）\n"
        f"> 理由：{_reason(ticket, reason)}\n该工单照常计入测评。"
    )


def head_confirmed(config: BotConfig, ticket: Ticket, head: str) -> str:
    """To the handler who asked: the head signed; the office reviews now, and the reminders hold."""
    return (
        f"**工单 {ticket.ticket_no} 的退单申请已由负责人 {fmt.person(config, head)} 确认**\n"
        "已提交热线办审核，审核期间暂停催办。"
    )


def assigned(config: BotConfig, ticket: Ticket, lead: str) -> str:
    """To the office: the center lead decided a contested ticket (签派)."""
    return (
        f"**工单 {ticket.ticket_no} 已由 {fmt.person(config, lead)} 签派至{fmt.unit_name(config, ticket.unit_code)}**"
    )
