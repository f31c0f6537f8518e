"""The unit's work on a ticket (接单, 联系, 到场, 办结, 退单, 转派) and the office's (回访, 退单审核, 改派, 签派)."""

from __future__ import annotations

import dataclasses

from bot.domain.escaping import echo
from bot.domain.lifecycle import Action, Solved, TicketState, VisitResult
from bot.domain.permissions import OFFICE_ROLES
from bot.domain.records import Ticket
from bot.messages import format as fmt
from config.model import Member
from config.vocabulary import Role
from handlers.commands.common import (
    TICKET,
    WORKERS,
    act,
    act_and_say,
    apply_action,
    checked,
    checked_ticket,
    decision,
    display_name,
    request,
    require,
)
from handlers.context import Context
from handlers.errors import CommandError
from handlers.spec import ArgSpec, ParsedCommand, command

OFFICE = frozenset(OFFICE_ROLES)

VISIT_CHOICES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (VisitResult.SATISFIED.value, ("满意", "satisfied")),
    (VisitResult.BASICALLY_SATISFIED.value, ("基本满意", "basically", "basically_satisfied")),
    (VisitResult.DISSATISFIED.value, ("不满意", "dissatisfied", "unsatisfied")),
    (VisitResult.UNREACHABLE.value, ("联系不上", "联系不到", "无法联系", "未接通", "unreachable")),
)


RETURN_UNIT_MARKERS: tuple[str, ...] = (
    "建议单位:",
    "建议单位",
    "建议派单给",
    "建议派单至",
    "建议派单到",
    "建议派单",
    "建议改派给",
    "建议改派至",
    "建议改派到",
    "建议改派",
    "建议派给",
    "建议派至",
    "建议派到",
    "建议转给",
    "建议转至",
    "建议转到",
    "建议转派",
    "建议派",
    "建议转",
    "建议:",
    "suggest:",
    "unit:",
    "to:",
    "->",
    "→",
)


@command(
    name="claim",
    zh="接单",
    aliases=("领单", "认领", "accept"),
    summary="接下工单，由您承办",
    args=(TICKET,),
    roles=WORKERS,
    example="/接单 2026112200123",
    action=Action.CLAIM,
)
async def claim(ctx: Context, cmd: ParsedCommand) -> None:
    """Claims the ticket; the claimer gets the citizen's contact details privately, never in the group."""
    # where the details can be shown (the 1:1 chat itself, or a private channel), the claim records that they were
    private = ctx.event.chat_type == "single" or ctx.can_whisper
    outcome, facts = await act(ctx, cmd, request(ctx, Action.CLAIM), viewed="view_contact" if private else None)
    details = fmt.full_details(outcome.ticket)
    text = f"✅ {display_name(ctx)} 已接单。\n{facts}"
    if ctx.event.chat_type == "single":
        text += "\n" + details  # a 1:1 chat: the answer itself is private
    elif private and await ctx.whisper(details):
        text += "\n（诉求人联系方式已单独发给您）"
    else:
        text += "\n（诉求人联系方式请在与机器人的单聊中发送「查 工单号」查看）"
    await ctx.say(text)


@command(
    name="contact",
    zh="联系",
    aliases=("先行联系", "已联系", "called"),
    summary="登记已先行联系市民，可附说明",
    args=(TICKET, ArgSpec(name="note", kind="text", label="联系情况", required=False)),
    roles=WORKERS,
    example="/联系 0123 已电话联系，约下午到场",
    action=Action.CONTACT,
)
async def contact(ctx: Context, cmd: ParsedCommand) -> None:
    note = cmd.args.get("note")
    await act_and_say(ctx, cmd, request(ctx, Action.CONTACT, note=note), f"📞 {display_name(ctx)} 已联系诉求人。")


@command(
    name="on_site",
    zh="到场",
    aliases=("已到场", "到达", "onsite", "arrived"),
    summary="登记已到达现场，可附说明",
    args=(TICKET, ArgSpec(name="note", kind="text", label="说明", required=False)),
    roles=WORKERS,
    example="/到场 0123",
    action=Action.ON_SITE,
)
async def on_site(ctx: Context, cmd: ParsedCommand) -> None:
    note = cmd.args.get("note")
    await act_and_say(ctx, cmd, request(ctx, Action.ON_SITE, note=note), f"📍 {display_name(ctx)} 已到场。")


# 实际解决: the unit's declaration (/办结) and the citizen's view (/回访)
SOLVED_CHOICES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (Solved.SOLVED.value, ("已解决", "solved")),
    (Solved.PARTLY.value, ("部分解决", "partly")),
    (Solved.UNSOLVED.value, ("未解决", "没有解决", "无法解决", "unsolved")),
)
SOLVED = ArgSpec(
    name="solved",
    kind="choice",
    label="解决情况",
    required=False,
    choices=SOLVED_CHOICES,
    placeholder="已解决/部分解决/未解决",
)


def _solved(cmd: ParsedCommand) -> Solved | None:
    value = cmd.args.get("solved")
    return Solved(value) if value else None


def _text_after(cmd: ParsedCommand, name: str) -> str | None:
    """A text argument without the punctuation a choice before it may leave ("已解决，垃圾已清运")."""
    text = (cmd.args.get(name) or "").lstrip("，,。.、:： \n")
    return text or None


@command(
    name="submit",
    zh="办结",
    aliases=("完成", "已办结", "close", "done", "finish"),
    summary="提交处理结果，等待回访",
    args=(TICKET, SOLVED, ArgSpec(name="result", kind="text", label="处理结果")),
    roles=WORKERS,
    example="/办结 0123 已清理完毕，市民认可",
    action=Action.SUBMIT,
)
async def submit(ctx: Context, cmd: ParsedCommand) -> None:
    result, solved = _text_after(cmd, "result"), _solved(cmd)
    if not result:
        raise CommandError("bad_arguments", f"请写明处理结果。\n用法：{cmd.spec.usage}\n例如：{cmd.spec.example}")
    req = request(ctx, Action.SUBMIT, note=result, solved=solved)
    shown = (solved or Solved.SOLVED).label
    await act_and_say(ctx, cmd, req, f"📝 {display_name(ctx)} 已提交办结结果（{shown}），等待回访。")


RETURN_CONFIRM, RETURN_APPROVE, RETURN_REJECT = "confirm", "approve", "reject"
RETURN_DECISIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (RETURN_CONFIRM, ("确认", "签字", "confirm")),
    (RETURN_APPROVE, ("同意", "批准", "approve")),
    (RETURN_REJECT, ("驳回", "不同意", "reject")),
)


# one command for the request and every decision on it, as /延期: "/退单 0123 理由 建议:单位" asks; the unit head
# answers "确认" or "驳回 理由" to a handler's request; the office answers "同意 [单位]" or "驳回 理由"
@command(
    name="return",
    zh="退单",
    aliases=("申请退单", "退回", "sendback"),
    summary="非本单位职责，申请退单；负责人确认，热线办同意或驳回",
    args=(
        TICKET,
        decision(RETURN_DECISIONS, "确认/同意/驳回"),
        ArgSpec(name="reason", kind="text", label="退单理由", required=False),
        ArgSpec(
            name="unit",
            kind="unit",
            label="建议单位",
            required=False,
            markers=RETURN_UNIT_MARKERS,
            placeholder="建议:单位",
        ),
    ),
    roles=WORKERS | OFFICE,
    example="/退单 0123 该路段属市政道路 建议:市政所",
    action=Action.REQUEST_RETURN,
)
async def return_ticket(ctx: Context, cmd: ParsedCommand) -> None:
    """退单: a unit's request, its head's signature, or the office's decision, by the ticket's state."""
    decision = cmd.args.get("decision")
    ticket = await checked(ctx, cmd)
    unsigned = ticket.return_requested_at is not None and ticket.return_signed_by is None
    if ticket.state is TicketState.RETURN_REQUESTED and decision is not None:
        if decision == RETURN_CONFIRM:
            raise CommandError("already_signed", f"工单 {ticket.ticket_no} 的退单申请已提交热线办审核。")
        await _review_return(ctx, cmd, ticket, approve=decision == RETURN_APPROVE)
    elif unsigned and decision is not None:
        await _sign_return(ctx, cmd, ticket, confirm=decision != RETURN_REJECT)
    else:
        if decision is not None:
            # nothing waits for a decision: the word begins a unit's reason ("确认不属于本单位…")
            word = next(words[0] for value, words in RETURN_DECISIONS if value == decision)
            if ctx.refusal(Action.REQUEST_RETURN, ticket) is not None:
                raise CommandError("nothing_to_decide", f"工单 {ticket.ticket_no} 没有待审核的退单申请。")
            cmd = dataclasses.replace(cmd, args={**cmd.args, "reason": word + (cmd.args.get("reason") or "")})
        await _request_return(ctx, cmd, ticket)


async def _request_return(ctx: Context, cmd: ParsedCommand, ticket: Ticket) -> None:
    reason, unit = cmd.args.get("reason"), cmd.args.get("unit")
    if not reason:
        raise CommandError("bad_arguments", f"请写明退单理由。\n用法：{cmd.spec.usage}\n例如：{cmd.spec.example}")
    require(ctx, Action.REQUEST_RETURN, ticket)
    req = request(ctx, Action.REQUEST_RETURN, note=reason, unit=unit)
    outcome, facts = await act(ctx, cmd, req, ticket.ticket_no)
    name = display_name(ctx)
    if outcome.to_state is TicketState.RETURN_REQUESTED:
        done = f"↩️ {name} 申请退单，已提交热线办审核；审核期间本工单暂停催办。"
    else:
        heads = [h for h in _heads(ctx, ticket.unit_code) if h != ctx.userid]
        who = "、".join(fmt.person(ctx.config, h) for h in heads) or "负责人"
        done = f"↩️ {name} 申请退单，已请负责人（{who}）确认后提交热线办审核。确认前请继续办理。"
    await ctx.say(f"{done}\n{facts}")


async def _sign_return(ctx: Context, cmd: ParsedCommand, ticket: Ticket, *, confirm: bool) -> None:
    """The unit head signs a handler's return (to the office) or declines it (back to the handler)."""
    action = Action.CONFIRM_RETURN if confirm else Action.DECLINE_RETURN
    require(ctx, action, ticket)
    reason = cmd.args.get("reason")
    if not confirm and not reason:
        raise CommandError("bad_arguments", f"不同意退单请写明理由，例如：/退单 {ticket.ticket_no} 驳回 属于本单位职责")
    requester = ticket.return_requested_by
    outcome, facts = await act(ctx, cmd, request(ctx, action, note=reason), ticket.ticket_no)
    name = display_name(ctx)
    if confirm:
        done = f"✍️ {name} 已确认退单，已提交热线办审核；审核期间本工单暂停催办。"
    else:
        told = f"已告知{fmt.person(ctx.config, requester)}，" if requester and requester != ctx.userid else ""
        done = f"{name} 不同意退单：{echo(reason or '')}。{told}请继续办理。"
    await ctx.say(f"{done}\n{facts}")


async def _review_return(ctx: Context, cmd: ParsedCommand, ticket: Ticket, *, approve: bool) -> None:
    """The office approves (and re-dispatches to the unit it names) or rejects a signed return."""
    action = Action.APPROVE_RETURN if approve else Action.REJECT_RETURN
    require(ctx, action, ticket)
    reason = cmd.args.get("reason")
    name, no = display_name(ctx), ticket.ticket_no
    if approve:
        unit = cmd.args.get("unit") or (reason or "").strip() or None
        outcome, facts = await act(ctx, cmd, request(ctx, action, unit=unit), no)
        if outcome.to_state is TicketState.DISPATCHED:
            done = f"✅ {name} 同意退单，已改派至{fmt.unit_name(ctx.config, outcome.ticket.unit_code)}。"
        elif outcome.to_state is TicketState.PENDING_ASSIGNMENT:
            done = (
                f"✅ {name} 同意退单。工单已退单 {outcome.ticket.return_count} 次，需由中心领导签派，已通知中心领导。"
            )
        else:
            done = f"✅ {name} 同意退单。请发送「改派 {no} 单位」重新派单。"
    else:
        if not reason:
            raise CommandError("bad_arguments", f"驳回退单请写明理由，例如：/退单 {no} 驳回 经核实属于贵单位职责")
        outcome, facts = await act(ctx, cmd, request(ctx, action, note=reason), no)
        where = fmt.unit_name(ctx.config, ticket.unit_code)
        done = f"❌ {name} 驳回退单：{echo(reason)}。已告知{where}，原时限继续计算。"
    await ctx.say(f"{done}\n{facts}")


def _heads(ctx: Context, unit_code: str | None) -> list[str]:
    unit = ctx.config.unit(unit_code) if unit_code else None
    return unit.heads if unit is not None else []


@command(
    name="redispatch",
    zh="改派",
    aliases=("重新派单", "重派", "reassign"),
    summary="将工单改派给另一单位",
    args=(TICKET, ArgSpec(name="unit", kind="unit", label="承办单位")),
    roles=OFFICE,
    example="/改派 0123 市政所",
    action=Action.REDISPATCH,
)
async def redispatch(ctx: Context, cmd: ParsedCommand) -> None:
    req = request(ctx, Action.REDISPATCH, unit=cmd.args.get("unit"))
    outcome, facts = await act(ctx, cmd, req)
    await ctx.say(
        f"🔀 {display_name(ctx)} 已将工单改派至{fmt.unit_name(ctx.config, outcome.ticket.unit_code)}。\n{facts}"
    )


@command(
    name="transfer",
    zh="转派",
    aliases=("转交", "转给", "handover"),
    summary="转给本单位另一位同事承办",
    args=(TICKET, ArgSpec(name="member", kind="member", label="同事")),
    roles=WORKERS,
    example="/转派 0123 @张三",
    action=Action.TRANSFER,
)
async def transfer(ctx: Context, cmd: ParsedCommand) -> None:
    target = ctx.config.member(cmd.args.get("member", "")) or _member_named(ctx, cmd.args.get("member", ""))
    if target is None:
        named = echo(cmd.args.get("member", ""))
        raise CommandError("unknown_member", f"没有找到成员「{named}」。请写成员的账号或姓名。")
    ticket_no, unit = await checked_ticket(ctx, cmd, Action.TRANSFER)
    if not any(u.code == unit for u in ctx.config.units_of(target.userid)):
        who, where = target.name or target.userid, fmt.unit_name(ctx.config, unit)
        raise CommandError("other_unit", f"{who} 不是{where}的成员，不能转派给他。")
    req = request(ctx, Action.TRANSFER, handler=target.userid)
    outcome, detail = await apply_action(ctx, cmd, req, ticket_no)
    who = target.name or target.userid
    done = f"🔁 {display_name(ctx)} 已将工单转派给 {who}。"
    told = fmt.handed_over(detail.ticket, detail.deadlines, ctx.now, by=display_name(ctx))
    if not outcome.duplicate and await ctx.tell([target.userid], told):
        # the new handler calls the citizen: the contact details go to them alone, and that is recorded
        await ctx.service.record_access(detail.ticket, actor=target.userid, what="转派通知")
        done += f"联系方式和剩余时限已单独发给{who}。"
    elif not ctx.private_channel:
        done += f"请{who}在与机器人的单聊中发送「查 {ticket_no}」查看联系方式。"
    await ctx.say(f"{done}\n{fmt.summary(detail.ticket, detail.deadlines, ctx.config, ctx.now)}")


def _member_named(ctx: Context, name: str) -> Member | None:
    name = name.lstrip("@")
    matches = [m for m in ctx.config.members if m.name == name or m.userid == name]
    return matches[0] if len(matches) == 1 else None


@command(
    name="visit",
    zh="回访",
    aliases=("回访结果", "revisit", "feedback"),
    summary="登记回访结果、解决情况和意见",
    args=(
        TICKET,
        ArgSpec(name="result", kind="choice", label="回访结果", choices=VISIT_CHOICES),
        SOLVED,
        ArgSpec(name="note", kind="text", label="回访意见", required=False),
    ),
    roles=frozenset({Role.DISPATCHER}),
    example="/回访 0123 满意 已解决",
    action=Action.VISIT,
)
async def visit(ctx: Context, cmd: ParsedCommand) -> None:
    result, solved = VisitResult(cmd.args["result"]), _solved(cmd)
    req = request(ctx, Action.VISIT, result=result, solved=solved, note=_text_after(cmd, "note"))
    outcome, facts = await act(ctx, cmd, req)
    seen = f"（市民认为{solved.label}）" if solved is not None else ""
    done = f"☎️ {display_name(ctx)} 已登记回访结果：{result.label}{seen}。"
    if outcome.to_state is TicketState.WARNING and outcome.from_state is not TicketState.WARNING:
        done += "已转为预警工单，退回承办单位再次处置。"
    await ctx.say(f"{done}\n{facts}")


@command(
    name="assign",
    zh="签派",
    aliases=("指派", "decide"),
    summary="为多次退单的工单指定承办单位",
    args=(TICKET, ArgSpec(name="unit", kind="unit", label="承办单位")),
    roles=frozenset({Role.CENTER_LEAD}),
    example="/签派 0123 市容所",
    action=Action.ASSIGN,
)
async def assign(ctx: Context, cmd: ParsedCommand) -> None:
    unit = cmd.args.get("unit")
    req = request(ctx, Action.ASSIGN, unit=unit, note=cmd.args.get("note"))
    await act_and_say(ctx, cmd, req, f"📌 {display_name(ctx)} 已签派工单。")
