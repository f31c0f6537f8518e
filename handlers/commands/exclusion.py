"""不纳入测评: a unit asks that a ticket not count in the ratings; a dispatcher or center lead decides.

"/不纳入测评 0123 理由" asks, by a handler or head of the ticket's unit; "/不纳入测评 0123 同意" or
"/不纳入测评 0123 驳回 [理由]" decides, by a dispatcher or a center lead. The office is told of a request, the
unit of the decision (:mod:`notifiers.reviews`); an excluded ticket is left out of every rate and shown as such.
"""

from __future__ import annotations

from bot.domain.escaping import echo
from bot.domain.lifecycle import Action, Evaluation
from config.vocabulary import Role
from handlers.commands.common import TICKET, WORKERS, act, checked, decision, display_name, request, require
from handlers.context import Context
from handlers.errors import CommandError
from handlers.spec import ArgSpec, ParsedCommand, command

EXCLUSION_APPROVE, EXCLUSION_REJECT = "approve", "reject"
EXCLUSION_DECISIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (EXCLUSION_APPROVE, ("同意", "批准", "approve")),
    (EXCLUSION_REJECT, ("驳回", "不同意", "reject")),
)
DECIDERS = frozenset({Role.DISPATCHER, Role.CENTER_LEAD})


@command(
    name="exclude",
    zh="不纳入测评",
    aliases=("申请不纳入测评", "不计入测评", "notcounted"),
    summary="申请不纳入测评；派单员、中心领导审核",
    args=(
        TICKET,
        decision(EXCLUSION_DECISIONS, "同意/驳回"),
        ArgSpec(name="reason", kind="text", label="理由", required=False),
    ),
    roles=WORKERS | DECIDERS,
    example="/不纳入测评 0123 市民重复来电，已在 0100 号工单办结",
    action=Action.REQUEST_EXCLUSION,
)
async def exclude(ctx: Context, cmd: ParsedCommand) -> None:
    """不纳入测评: the unit's request, or the office's decision on the pending one."""
    ticket = await checked(ctx, cmd)
    decision, reason = cmd.args.get("decision"), cmd.args.get("reason")
    name, no = display_name(ctx), ticket.ticket_no
    if decision is not None and ticket.evaluation is Evaluation.REQUESTED:
        action = Action.APPROVE_EXCLUSION if decision == EXCLUSION_APPROVE else Action.REJECT_EXCLUSION
        require(ctx, action, ticket)
        _, facts = await act(ctx, cmd, request(ctx, action, note=reason), no)
        if action is Action.APPROVE_EXCLUSION:
            done = f"✅ {name} 同意工单 {no} 不纳入测评。"
        else:
            why = f"：{echo(reason)}" if reason else ""
            done = f"❌ {name} 驳回不纳入测评申请{why}。"
        await ctx.say(f"{done}已告知承办单位。\n{facts}")
        return
    if decision is not None:
        if ctx.refusal(Action.REQUEST_EXCLUSION, ticket) is not None:
            raise CommandError("nothing_to_approve", f"工单 {no} 没有待审核的不纳入测评申请。")
        # nothing waits for a decision: the word begins the unit's reason ("同意市民意见，…")
        word = next(words[0] for value, words in EXCLUSION_DECISIONS if value == decision)
        reason = word + (reason or "")
    if not reason:
        raise CommandError(
            "bad_arguments", f"请写明不纳入测评的理由。\n用法：{cmd.spec.usage}\n例如：{cmd.spec.example}"
        )
    require(ctx, Action.REQUEST_EXCLUSION, ticket)
    _, facts = await act(ctx, cmd, request(ctx, Action.REQUEST_EXCLUSION, note=reason), no)
    await ctx.say(f"📋 {name} 申请工单 {no} 不纳入测评，已提交派单员、中心领导审核。\n{facts}")
