"""Reading: one ticket (查), the member's (我的), a unit's open and overdue tickets (待办, 逾期), figures (统计)."""

from __future__ import annotations

from typing import Any

from bot.domain.escaping import echo
from bot.messages import figures
from bot.messages import format as fmt
from bot.messages.timeline import timeline
from config.vocabulary import Role
from handlers import queries
from handlers.commands.common import TICKET, checked, display_name
from handlers.context import Context
from handlers.errors import CommandError
from handlers.spec import ArgSpec, ParsedCommand, command

LIST_LIMIT = 15  # tickets in one list reply


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
    spans = len({row.unit_code for row in rows}) > 1  # the office's lists: each line names its unit
    lines = [title] + [fmt.list_line(row, ctx.config, ctx.now, unit=spans) for row in rows[:LIST_LIMIT]]
    if len(rows) > LIST_LIMIT:
        lines.append(f"……超过 {LIST_LIMIT} 件，只列出前 {LIST_LIMIT} 件")
    return "\n".join(lines)


@command(
    name="show",
    zh="查",
    aliases=("查询", "查看", "详情", "info", "details"),
    summary="查看工单详情、期限和办理记录",
    args=(TICKET,),
    example="/查 0123",
)
async def show(ctx: Context, cmd: ParsedCommand) -> None:
    checked_ticket = await checked(ctx, cmd)
    detail = await ctx.service.get(checked_ticket.ticket_no)  # with its deadlines, history and notifications
    ticket = detail.ticket
    text = fmt.summary(ticket, detail.deadlines, ctx.config, ctx.now)
    mine = ticket.handler_userid == ctx.userid or ctx.has_role(Role.DISPATCHER)
    private = mine and ctx.event.chat_type == "single"  # the only reader who may see the citizen's details
    if private:
        text += "\n" + fmt.full_details(ticket)
        await ctx.service.record_access(ticket, actor=ctx.userid, what="view_contact")
    history = timeline(ticket, detail.history, detail.notifications, ctx.config, masked=not private)
    if history:
        text += "\n" + history
    await ctx.say(text)


@command(
    name="mine",
    zh="我的",
    aliases=("我的工单", "my"),
    summary="我承办中的工单及期限",
    scope="self",
    example="/我的",
)
async def mine(ctx: Context, _cmd: ParsedCommand) -> None:
    rows = await queries.my_open_tickets(ctx.store, ctx.userid, limit=LIST_LIMIT + 1)
    await ctx.say(_list(ctx, f"{display_name(ctx)} 手上未办结的工单：", list(rows), "您手上没有未办结的工单。"))


@command(
    name="todo",
    zh="待办",
    aliases=("待办工单", "未办结", "pending"),
    summary="本单位未办结的工单",
    args=(ArgSpec(name="unit", kind="unit", label="单位", required=False),),
    scope="unit",
    example="/待办",
)
async def todo(ctx: Context, cmd: ParsedCommand) -> None:
    units = _units(ctx, cmd)
    codes = units if units is not None else [u.code for u in ctx.config.units]
    rows = await queries.unit_open_tickets(ctx.store, codes, limit=LIST_LIMIT + 1)
    await ctx.say(_list(ctx, "待办工单（待接单的在前）：", list(rows), "没有待办工单。"))


@command(
    name="overdue",
    zh="逾期",
    aliases=("超期", "逾期工单", "late"),
    summary="已逾期的工单",
    args=(ArgSpec(name="unit", kind="unit", label="单位", required=False),),
    scope="unit",
    example="/逾期",
)
async def overdue(ctx: Context, cmd: ParsedCommand) -> None:
    rows = await queries.overdue_tickets(ctx.store, _units(ctx, cmd), ctx.now, limit=LIST_LIMIT + 1)
    await ctx.say(_list(ctx, "⚠️ 逾期工单（超时最久的在前）：", list(rows), "没有逾期工单。👍"))


@command(
    name="stats",
    zh="统计",
    aliases=("数据", "简报", "figures"),
    summary="未办结、待接单、逾期和今日办结的工单数，看多个单位时逐个单位列出",
    args=(ArgSpec(name="unit", kind="unit", label="单位", required=False),),
    roles=frozenset({Role.UNIT_HEAD, Role.DISPATCHER, Role.CENTER_LEAD, Role.ADMIN}),
    scope="unit",
    example="/统计",
)
async def stats(ctx: Context, cmd: ParsedCommand) -> None:
    units = _units(ctx, cmd)
    total = await queries.quick_figures(ctx.store, units, ctx.now)
    # several units (the office, a head of more than one): each one's figures too
    per_unit = await queries.unit_figures(ctx.store, units, ctx.now) if units is None or len(units) > 1 else None
    await ctx.say(figures.stats(ctx.config, scope=units, total=total, units=per_unit, now=ctx.now))
