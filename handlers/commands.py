"""The commands: each a function of the running :class:`handlers.context.Context` and the parsed command, which
answers in the chat (and privately where the answer holds a citizen's contact details)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from bot.domain.duty import Watch
from bot.domain.escaping import echo, escape_md
from bot.domain.lifecycle import Action, ActionRequest, VisitResult
from bot.domain.masking import Citizen, mask_text
from bot.messages import format as fmt
from bot.services.duty import DutyChange, DutyRefused, DutyStatus
from bot.services.tickets import ActionOutcome, TicketDetail
from config.model import Member
from config.vocabulary import Role
from handlers import queries
from handlers.context import Context
from handlers.errors import CommandError
from handlers.help import command_help, help_text
from handlers.parse import ParsedCommand
from handlers.spec import COMMANDS, DUTY_HAND_BACK, DUTY_TAKE, EXTENSION_APPROVE, find

Handler = Callable[[Context, ParsedCommand], Awaitable[None]]

LIST_LIMIT = 15  # tickets in one list reply


# -- a ticket, checked --------------------------------------------------------------------------------------------


async def _checked(ctx: Context, cmd: ParsedCommand, action: Action | None = None) -> Mapping[str, Any]:
    """The named ticket (its row, without deadlines and history), once the member may see it and, when ``action`` is
    given, ask for it (:mod:`bot.domain.permissions`)."""
    row = await ctx.ticket(cmd)
    ticket_no, unit = row["ticket_no"], row["unit_code"]
    if not ctx.may_act_on(unit):
        raise CommandError(
            "other_unit",
            f"抱歉，工单 {ticket_no} 属于{fmt.unit_name(ctx.config, unit)}，您不能对它操作。如有疑问请联系热线办。",
        )
    refused = ctx.refusal(action, row) if action is not None else None
    if refused is not None:
        raise CommandError("forbidden", refused)
    return row


async def _ticket(ctx: Context, cmd: ParsedCommand, action: Action) -> tuple[str, str | None]:
    """The named ticket's number and unit, once the member may ask for ``action`` on it."""
    row = await _checked(ctx, cmd, action)
    return str(row["ticket_no"]), row["unit_code"]


async def _apply(
    ctx: Context,
    cmd: ParsedCommand,
    req: ActionRequest,
    ticket_no: str | None = None,
    *,
    history: bool = False,
    viewed: str | None = None,
) -> tuple[ActionOutcome, TicketDetail]:
    """Applies the action once (under the event's key) to ``ticket_no`` (already checked) or the ticket ``cmd``
    names; the outcome and the ticket as it is now, with its deadlines as the action left them (read in its own
    transaction), and its history when asked. ``viewed``: see :meth:`bot.services.tickets.TicketService.act`."""
    row = None
    if ticket_no is None:
        row = await _checked(ctx, cmd, req.action)
        ticket_no = str(row["ticket_no"])
    outcome = await ctx.service.act(ticket_no, req, dedup=ctx.dedup(), with_deadlines=True, viewed=viewed, row=row)
    if history:
        return outcome, await ctx.service.get(ticket_no)
    return outcome, TicketDetail(outcome.ticket, outcome.deadlines)


async def _act(
    ctx: Context, cmd: ParsedCommand, req: ActionRequest, ticket_no: str | None = None, *, viewed: str | None = None
) -> tuple[ActionOutcome, str]:
    """As :func:`_apply`; the outcome and the ticket's facts as they are now."""
    outcome, detail = await _apply(ctx, cmd, req, ticket_no, viewed=viewed)
    return outcome, fmt.summary(detail.ticket, detail.deadlines, ctx.config, ctx.now)


async def _act_and_say(
    ctx: Context, cmd: ParsedCommand, req: ActionRequest, done: str, ticket_no: str | None = None
) -> None:
    # one answer per message: the robot's response_url takes one reply only
    _, facts = await _act(ctx, cmd, req, ticket_no)
    await ctx.say(f"{done}\n{facts}")


def _request(ctx: Context, action: Action, **fields: object) -> ActionRequest:
    return ActionRequest(action=action, actor=ctx.userid, at=ctx.now, **fields)  # type: ignore[arg-type]


def _name(ctx: Context) -> str:
    return ctx.member.name or ctx.userid


# -- ticket actions -----------------------------------------------------------------------------------------------


async def claim(ctx: Context, cmd: ParsedCommand) -> None:
    """Claims the ticket; the claimer gets the citizen's contact details privately, never in the group."""
    # where the details can be shown (the 1:1 chat itself, or a private channel), the claim records that they were
    private = ctx.event.chat_type == "single" or ctx.can_whisper
    outcome, facts = await _act(ctx, cmd, _request(ctx, Action.CLAIM), viewed="view_contact" if private else None)
    details = fmt.full_details(outcome.ticket)
    text = f"✅ {_name(ctx)} 已接单。\n{facts}"
    if ctx.event.chat_type == "single":
        text += "\n" + details  # a 1:1 chat: the answer itself is private
    elif private and await ctx.whisper(details):
        text += "\n（诉求人联系方式已单独发给您）"
    else:
        text += "\n（诉求人联系方式请在与机器人的单聊中发送「查 工单号」查看）"
    await ctx.say(text)


async def contact(ctx: Context, cmd: ParsedCommand) -> None:
    note = cmd.args.get("note")
    await _act_and_say(ctx, cmd, _request(ctx, Action.CONTACT, note=note), f"📞 {_name(ctx)} 已联系诉求人。")


async def on_site(ctx: Context, cmd: ParsedCommand) -> None:
    note = cmd.args.get("note")
    await _act_and_say(ctx, cmd, _request(ctx, Action.ON_SITE, note=note), f"📍 {_name(ctx)} 已到场。")


async def submit(ctx: Context, cmd: ParsedCommand) -> None:
    result = cmd.args.get("result")
    req = _request(ctx, Action.SUBMIT, note=result)
    await _act_and_say(ctx, cmd, req, f"📝 {_name(ctx)} 已提交办结结果，等待回访。")


async def return_ticket(ctx: Context, cmd: ParsedCommand) -> None:
    reason, unit = cmd.args.get("reason"), cmd.args.get("unit")
    req = _request(ctx, Action.REQUEST_RETURN, note=reason, unit=unit)
    await _act_and_say(ctx, cmd, req, f"↩️ {_name(ctx)} 申请退单，等待热线办审核。")


async def transfer(ctx: Context, cmd: ParsedCommand) -> None:
    target = ctx.config.member(cmd.args.get("member", "")) or _member_named(ctx, cmd.args.get("member", ""))
    if target is None:
        named = echo(cmd.args.get("member", ""))
        raise CommandError("unknown_member", f"没有找到成员「{named}」。请写成员的账号或姓名。")
    ticket_no, unit = await _ticket(ctx, cmd, Action.TRANSFER)
    if not any(u.code == unit for u in ctx.config.units_of(target.userid)):
        who, where = target.name or target.userid, fmt.unit_name(ctx.config, unit)
        raise CommandError("other_unit", f"{who} 不是{where}的成员，不能转派给他。")
    req = _request(ctx, Action.TRANSFER, handler=target.userid)
    done = f"🔁 {_name(ctx)} 已将工单转派给 {target.name or target.userid}。"
    await _act_and_say(ctx, cmd, req, done, ticket_no)


async def visit(ctx: Context, cmd: ParsedCommand) -> None:
    result = VisitResult(cmd.args["result"])
    req = _request(ctx, Action.VISIT, result=result, note=cmd.args.get("note"))
    await _act_and_say(ctx, cmd, req, f"☎️ {_name(ctx)} 已登记回访结果：{result.label}。")


async def assign(ctx: Context, cmd: ParsedCommand) -> None:
    unit = cmd.args.get("unit")
    req = _request(ctx, Action.ASSIGN, unit=unit, note=cmd.args.get("note"))
    await _act_and_say(ctx, cmd, req, f"📌 {_name(ctx)} 已签派工单。")


# -- extensions (延期) ---------------------------------------------------------------------------------------------
#
# One command asks and decides: "/延期 0123 3 理由" asks for 3 working days (the configured default without a
# number), by a handler or head of the ticket's unit; "/延期 0123 同意" or "/延期 0123 驳回 理由" decides, by a head
# of that unit, a dispatcher, a center lead or an admin, never by whoever asked (a head's own request goes to the
# dispatchers). The approvers are told privately of a request, the requester of the decision, when the deployment
# can write to a member privately; each notice's outbox key names its recipient and derives from the event's key.


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


def _due(deadline: Mapping[str, Any] | None, verb: str = "") -> str:
    """「办结时限 12-03 09:00」 of the handling deadline (「办结时限延至 …」 with ``verb`` 延至)."""
    if deadline is None:
        return "办理时限未定"
    return f"{fmt.deadline_label(deadline['name'])}时限{verb} {fmt.when(deadline['due_at'])}"


async def _request_extension(ctx: Context, cmd: ParsedCommand) -> None:
    reason = cmd.args.get("reason")
    if not reason:
        raise CommandError("bad_arguments", f"请写明延期理由。\n用法：{cmd.spec.usage}\n例如：{cmd.spec.example}")
    days = int(cmd.args["days"]) if "days" in cmd.args else ctx.config.deadlines.extension.default_days
    ticket_no, unit = await _ticket(ctx, cmd, Action.REQUEST_EXTENSION)
    req = _request(ctx, Action.REQUEST_EXTENSION, note=reason, days=days)
    _, detail = await _apply(ctx, cmd, req, ticket_no)
    facts = fmt.summary(detail.ticket, detail.deadlines, ctx.config, ctx.now)
    due = _due(fmt.handling_deadline(detail.deadlines, detail.ticket["cycle"]))
    approvers, who = _approvers(ctx, unit, ctx.userid)
    shown = escape_md(mask_text(reason, Citizen.of(detail.ticket)))
    notice = (
        f"{_name(ctx)} 申请工单 {ticket_no} 延期 {days} 个工作日：{shown}\n"
        f"当前{due}。\n回复{_decide_hint(ticket_no)}。"
    )
    if await ctx.tell(approvers, notice):
        done = f"⏳ {_name(ctx)} 申请延期 {days} 个工作日，已通知{who}审批。"
    elif ctx.event.chat_type == "group":
        done = f"⏳ {_name(ctx)} 申请延期 {days} 个工作日。请{who}在群里回复{_decide_hint(ticket_no)}。"
    else:
        done = f"⏳ {_name(ctx)} 申请延期 {days} 个工作日。请联系{who}审批：回复{_decide_hint(ticket_no)}。"
    await ctx.say(f"{done}\n{facts}")


async def _decide_extension(ctx: Context, cmd: ParsedCommand, *, approve: bool) -> None:
    ticket = await _checked(ctx, cmd)
    ticket_no, unit = ticket["ticket_no"], ticket["unit_code"]
    requester = ticket["extension_requested_by"]
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
    outcome, detail = await _apply(ctx, cmd, _request(ctx, action, note=reason, days=days), ticket_no, history=True)
    # what was decided, as recorded: this event's entry (also when the event is a retry, already applied)
    entry = next(
        (h for h in reversed(detail.history) if h["id"] == outcome.audit_id or h["action"] == action.value), None
    )
    data: Mapping[str, Any] = entry["data"] if entry is not None else {}
    requester = data.get("requested_by") or requester
    facts = fmt.summary(detail.ticket, detail.deadlines, ctx.config, ctx.now)
    deadline = fmt.handling_deadline(detail.deadlines, detail.ticket["cycle"])
    asked = data.get("days")
    if approve:
        granted = data.get("granted", asked)
        fewer = f"（申请 {asked} 个）" if asked and granted != asked else ""
        done = f"✅ {_name(ctx)} 同意延期 {granted} 个工作日{fewer}，{_due(deadline, '延至')}。"
        notice = f"您申请的工单 {ticket_no} 延期已获 {_name(ctx)} 同意：{granted} 个工作日，{_due(deadline, '延至')}。"
    else:
        why = escape_md(mask_text(reason or "", Citizen.of(ticket)))
        done = f"❌ {_name(ctx)} 驳回延期申请：{why}。{_due(deadline, '仍为')}。"
        notice = f"您申请的工单 {ticket_no} 延期未获同意（{_name(ctx)}：{why}）。请按原时限办理：{_due(deadline)}。"
    if requester and requester != ctx.userid and await ctx.tell([requester], notice):
        done += f"已告知{fmt.person(ctx.config, requester)}。"
    await ctx.say(f"{done}\n{facts}")


def _member_named(ctx: Context, name: str) -> Member | None:
    name = name.lstrip("@")
    matches = [m for m in ctx.config.members if m.name == name or m.userid == name]
    return matches[0] if len(matches) == 1 else None


# -- reading ------------------------------------------------------------------------------------------------------


async def show(ctx: Context, cmd: ParsedCommand) -> None:
    ticket = await _checked(ctx, cmd)  # the whole row, as naming it read it
    text = fmt.summary(ticket, await ctx.service.deadlines_of(ticket["id"]), ctx.config, ctx.now)
    mine = ticket["handler_userid"] == ctx.userid or ctx.has_role(Role.DISPATCHER)
    if mine and ctx.event.chat_type == "single":
        text += "\n" + fmt.full_details(ticket)
        await ctx.service.record_access(ticket, actor=ctx.userid, what="view_contact")
    await ctx.say(text)


async def help_command(ctx: Context, cmd: ParsedCommand) -> None:
    name = cmd.args.get("command")
    if name:
        spec = find(name.lstrip("/"))
        if spec is None:
            raise CommandError("unknown_command", f"没有「{echo(name)}」这个命令。发送 /帮助 查看全部命令。")
        await ctx.say(command_help(spec))
        return
    await ctx.say(help_text(COMMANDS, can_use=ctx.may_use))


def _units(ctx: Context, cmd: ParsedCommand) -> list[str] | None:
    """The units a list covers: the one named (if the member may see it), else the member's; None = all units,
    for those who see all and name none."""
    named = cmd.args.get("unit")
    if named:
        unit = ctx.config.unit_for_label(named) or ctx.config.unit(named)
        if unit is None:
            raise CommandError("unknown_unit", f"没有找到单位「{echo(named)}」。")
        if not ctx.may_act_on(unit.code):
            raise CommandError("other_unit", f"抱歉，您不能查看{unit.name}的工单。")
        return [unit.code]
    if ctx.sees_all:
        return None
    codes = ctx.unit_codes
    if not codes:
        raise CommandError("no_unit", "您不属于任何承办单位。")
    return codes


def _list(ctx: Context, title: str, rows: list[Any], empty: str) -> str:
    if not rows:
        return empty
    lines = [title] + [fmt.list_line(row, ctx.config, ctx.now) for row in rows[:LIST_LIMIT]]
    if len(rows) > LIST_LIMIT:
        lines.append(f"……超过 {LIST_LIMIT} 件，只列出前 {LIST_LIMIT} 件")
    return "\n".join(lines)


async def mine(ctx: Context, _cmd: ParsedCommand) -> None:
    rows = await queries.my_open_tickets(ctx.store, ctx.userid, limit=LIST_LIMIT + 1)
    await ctx.say(_list(ctx, f"{_name(ctx)} 手上未办结的工单：", list(rows), "您手上没有未办结的工单。"))


async def todo(ctx: Context, cmd: ParsedCommand) -> None:
    units = _units(ctx, cmd)
    codes = units if units is not None else [u.code for u in ctx.config.units]
    rows = await queries.unit_open_tickets(ctx.store, codes, limit=LIST_LIMIT + 1)
    await ctx.say(_list(ctx, "待办工单（待接单的在前）：", list(rows), "没有待办工单。"))


async def overdue(ctx: Context, cmd: ParsedCommand) -> None:
    rows = await queries.overdue_tickets(ctx.store, _units(ctx, cmd), ctx.now, limit=LIST_LIMIT + 1)
    await ctx.say(_list(ctx, "⚠️ 逾期工单（超时最久的在前）：", list(rows), "没有逾期工单。👍"))


async def stats(ctx: Context, cmd: ParsedCommand) -> None:
    units = _units(ctx, cmd)
    figures = await queries.quick_figures(ctx.store, units, ctx.now)
    scope = "全部单位" if units is None else "、".join(fmt.unit_name(ctx.config, code) for code in units)
    await ctx.say(
        f"{scope} 工单概况（{fmt.when(ctx.now)}）：\n"
        f"未办结 {figures.open} 件，其中待接单 {figures.unclaimed} 件，逾期 {figures.overdue} 件；"
        f"今日办结 {figures.closed_today} 件。"
    )


# -- the duty -----------------------------------------------------------------------------------------------------


def _watchers(ctx: Context, watches: list[Watch], *, since: bool = False) -> str:
    """「赵敏（接班，至 11-24 09:00）、孙磊（至 11-23 17:00）」: names only, never phone numbers."""
    parts = []
    for w in watches:
        how = "接班，" if w.by_takeover else ""
        when = f"{fmt.when(w.starts_at)} 起" if since else f"至 {fmt.when(w.ends_at)}"
        parts.append(f"{fmt.person(ctx.config, w.userid)}（{how}{when}）")
    return "、".join(parts)


def _duty_lines(ctx: Context, status: DutyStatus) -> str:
    if status.on_duty:
        lines = [f"当前值班：{_watchers(ctx, status.on_duty)}"]
    else:
        lines = ["当前无人值班。"]
    if status.next:
        lines.append(f"下一班：{_watchers(ctx, status.next, since=True)}")
    elif not status.on_duty:
        lines.append("一周内没有排班。值班员可发送 /值班 接班 登记接班。")
    return "\n".join(lines)


def _duty_done(ctx: Context, change: DutyChange) -> str:
    name, until = _name(ctx), (fmt.when(change.until) if change.until else None)
    if change.status == "taken":
        text = f"✅ {name} 已接班，值班至 {until}。" if until else f"✅ {name} 已接班。"
        if change.relieved:
            text += f"（{'、'.join(fmt.person(ctx.config, u) for u in change.relieved)} 的接班已结束）"
        return text
    if change.status == "extended":
        return f"✅ {name} 的接班已延长，值班至 {until}。"
    if change.status == "held":
        return f"{name} 已在值班，值班至 {until}，无需重复接班。"
    if change.status == "on_roster":
        return f"{name} 按排班表正在值班，至 {until}，无需接班。"
    return f"👋 {name} 已交班。"


async def duty(ctx: Context, cmd: ParsedCommand) -> None:
    """/值班: who is on duty and who is next; 接班 takes over (until the roster shift ends), 交班 hands back."""
    shift = cmd.args.get("shift")
    done = None
    try:
        if shift == DUTY_TAKE:
            done = _duty_done(ctx, await ctx.duty.take(ctx.userid, ctx.now, dedup=ctx.dedup()))
        elif shift == DUTY_HAND_BACK:
            done = _duty_done(ctx, await ctx.duty.hand_back(ctx.userid, ctx.now, dedup=ctx.dedup()))
    except DutyRefused as exc:
        raise CommandError(exc.code, exc.message) from exc
    lines = _duty_lines(ctx, await ctx.duty.status(ctx.now))
    await ctx.say(f"{done}\n{lines}" if done else lines)


HANDLERS: Mapping[str, Handler] = {
    "mine": mine,
    "todo": todo,
    "overdue": overdue,
    "stats": stats,
    "claim": claim,
    "contact": contact,
    "on_site": on_site,
    "submit": submit,
    "return": return_ticket,
    "transfer": transfer,
    "extend": extend,
    "visit": visit,
    "assign": assign,
    "show": show,
    "duty": duty,
    "help": help_command,
}
