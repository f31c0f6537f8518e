"""延期: one command asks and decides.

"/延期 0123 3 理由" asks for 3 working days (the configured default without a number), by a handler or head of the
ticket's unit; "/延期 0123 同意" or "/延期 0123 驳回 理由" decides, by a head of that unit, a dispatcher, a center lead
or an admin, never by whoever asked (a head's own request goes to the dispatchers). The approvers are told privately
of a request, the requester of the decision, when the deployment can write to a member privately; each notice's
outbox key names its recipient and derives from the event's key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.domain.escaping import escape_md
from bot.domain.lifecycle import Action
from bot.domain.masking import Citizen, mask_text
from bot.domain.records import Deadline
from bot.messages import format as fmt
from config.vocabulary import Role
from handlers.commands.common import TICKET, apply_action, checked, checked_ticket, display_name, request
from handlers.context import Context
from handlers.errors import CommandError
from handlers.spec import ArgSpec, ParsedCommand, command

EXTENSION_APPROVE = "approve"
EXTENSION_REJECT = "reject"
EXTENSION_DECISIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (EXTENSION_APPROVE, ("同意", "批准", "approve")),
    (EXTENSION_REJECT, ("驳回", "不同意", "不批准", "reject")),
)


# one command for the request and the decision: "/延期 0123 3 理由" asks (the days may be left out: the
# configured default), "/延期 0123 同意" and "/延期 0123 驳回 理由" decide; who may do which is the handler's check
@command(
    name="extend",
    zh="延期",
    aliases=("申请延期", "postpone"),
    summary="申请延期（写明天数和理由）；负责人、派单员回复“同意”或“驳回 理由”审批",
    args=(
        TICKET,
        ArgSpec(
            name="decision",
            kind="choice",
            label="审批",
            required=False,
            choices=EXTENSION_DECISIONS,
            placeholder="同意/驳回",
        ),
        ArgSpec(name="days", kind="days", label="天数", required=False),
        ArgSpec(name="reason", kind="text", label="理由", required=False),
    ),
    roles=frozenset({Role.HANDLER, Role.UNIT_HEAD, Role.DISPATCHER, Role.CENTER_LEAD, Role.ADMIN}),
    example="/延期 0123 3 需协调物业，预计下周完成",
    action=Action.REQUEST_EXTENSION,
)
async def extend(ctx: Context, cmd: ParsedCommand) -> None:
    """延期: a request, or a decision on the pending one."""
    decision = cmd.args.get("decision")
    if decision is None:
        await _request_extension(ctx, cmd)
    else:
        await _decide_extension(ctx, cmd, approve=decision == EXTENSION_APPROVE)


def _people(ctx: Context, userids: list[str]) -> str:
    return "、".join(fmt.person(ctx.config, userid) for userid in userids)


def _approvers(ctx: Context, unit_code: str | None, requester: str) -> tuple[list[str], str]:
    """Who decides on ``requester``'s request, and how to name them: the unit's heads, or the dispatchers when the
    requester is a head (or the unit has no other head)."""
    unit = ctx.config.unit(unit_code) if unit_code else None
    if unit is not None and requester not in unit.heads:
        heads = [userid for userid in unit.heads if userid != requester]
        if heads:
            return heads, f"{unit.name}负责人（{_people(ctx, heads)}）"
    dispatchers = [m.userid for m in ctx.config.members_with_role(Role.DISPATCHER) if m.userid != requester]
    return dispatchers, f"派单员（{_people(ctx, dispatchers)}）" if dispatchers else "热线办"


def _decide_hint(ticket_no: str) -> str:
    return f"「延期 {ticket_no} 同意」或「延期 {ticket_no} 驳回 理由」"


def _due(deadline: Deadline | None, verb: str = "") -> str:
    """「办结时限 12-03 09:00」 of the handling deadline (「办结时限延至 …」 with ``verb`` 延至)."""
    if deadline is None:
        return "办理时限未定"
    return f"{fmt.deadline_label(deadline.name)}时限{verb} {fmt.when(deadline.due_at)}"


async def _request_extension(ctx: Context, cmd: ParsedCommand) -> None:
    reason = cmd.args.get("reason")
    if not reason:
        raise CommandError("bad_arguments", f"请写明延期理由。\n用法：{cmd.spec.usage}\n例如：{cmd.spec.example}")
    days = int(cmd.args["days"]) if "days" in cmd.args else ctx.config.deadlines.extension.default_days
    ticket_no, unit = await checked_ticket(ctx, cmd, Action.REQUEST_EXTENSION)
    req = request(ctx, Action.REQUEST_EXTENSION, note=reason, days=days)
    _, detail = await apply_action(ctx, cmd, req, ticket_no)
    facts = fmt.summary(detail.ticket, detail.deadlines, ctx.config, ctx.now)
    due = _due(fmt.handling_deadline(detail.deadlines, detail.ticket.cycle))
    approvers, who = _approvers(ctx, unit, ctx.userid)
    shown = escape_md(mask_text(reason, Citizen.of(detail.ticket)))
    notice = (
        f"{display_name(ctx)} 申请工单 {ticket_no} 延期 {days} 个工作日：{shown}\n"
        f"当前{due}。\n回复{_decide_hint(ticket_no)}。"
    )
    if await ctx.tell(approvers, notice):
        done = f"⏳ {display_name(ctx)} 申请延期 {days} 个工作日，已通知{who}审批。"
    elif ctx.event.chat_type == "group":
        done = f"⏳ {display_name(ctx)} 申请延期 {days} 个工作日。请{who}在群里回复{_decide_hint(ticket_no)}。"
    else:
        done = f"⏳ {display_name(ctx)} 申请延期 {days} 个工作日。请联系{who}审批：回复{_decide_hint(ticket_no)}。"
    await ctx.say(f"{done}\n{facts}")


async def _decide_extension(ctx: Context, cmd: ParsedCommand, *, approve: bool) -> None:
    ticket = await checked(ctx, cmd)
    ticket_no, unit = ticket.ticket_no, ticket.unit_code
    requester = ticket.extension_requested_by
    action = Action.APPROVE_EXTENSION if approve else Action.REJECT_EXTENSION
    if ctx.refusal(action, ticket) is not None:  # a dispatcher, center lead, admin; the unit's head (see _approvers)
        _, who = _approvers(ctx, unit, requester or ctx.userid)
        raise CommandError("forbidden", f"抱歉，延期申请由{who}审批，您可以请他们回复{_decide_hint(ticket_no)}。")
    if requester == ctx.userid:
        _, who = _approvers(ctx, unit, requester)
        raise CommandError("own_request", f"工单 {ticket_no} 的延期申请是您提交的，请由{who}审批。")
    reason = cmd.args.get("reason")
    if not approve and not reason:
        raise CommandError("bad_arguments", f"驳回延期请写明理由，例如：/延期 {ticket_no} 驳回 请按原时限办结")
    days = int(cmd.args["days"]) if approve and "days" in cmd.args else None
    req = request(ctx, action, note=reason, days=days)
    outcome, detail = await apply_action(ctx, cmd, req, ticket_no, history=True)
    # what was decided, as recorded: this event's entry (also when the event is a retry, already applied)
    entry = next((h for h in reversed(detail.history) if h.id == outcome.audit_id or h.action == action.value), None)
    data: Mapping[str, Any] = entry.data if entry is not None else {}
    requester = data.get("requested_by") or requester
    facts = fmt.summary(detail.ticket, detail.deadlines, ctx.config, ctx.now)
    deadline = fmt.handling_deadline(detail.deadlines, detail.ticket.cycle)
    asked = data.get("days")
    name = display_name(ctx)
    if approve:
        granted = data.get("granted", asked)
        fewer = f"（申请 {asked} 个）" if asked and granted != asked else ""
        done = f"✅ {name} 同意延期 {granted} 个工作日{fewer}，{_due(deadline, '延至')}。"
        notice = f"您申请的工单 {ticket_no} 延期已获 {name} 同意：{granted} 个工作日，{_due(deadline, '延至')}。"
    else:
        why = escape_md(mask_text(reason or "", Citizen.of(ticket)))
        done = f"❌ {name} 驳回延期申请：{why}。{_due(deadline, '仍为')}。"
        notice = f"您申请的工单 {ticket_no} 延期未获同意（{name}：{why}）。请按原时限办理：{_due(deadline)}。"
    if requester and requester != ctx.userid and await ctx.tell([requester], notice):
        done += f"已告知{fmt.person(ctx.config, requester)}。"
    await ctx.say(f"{done}\n{facts}")
