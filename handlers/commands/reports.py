"""报表: a period's rates and counts for one unit or the whole office, from the bot's own records (docs/reports.md).
Dispatchers and center leads ask for any unit or all; a unit head for the units they lead."""

from __future__ import annotations

from bot.domain.escaping import echo
from bot.domain.reports.periods import PeriodKind, current, parse
from bot.messages import reports as render
from bot.services.reports import ReportService
from config.vocabulary import Role
from handlers.context import Context
from handlers.errors import CommandError
from handlers.spec import ArgSpec, ParsedCommand, command

PERIOD_WORDS = "周、月、双月、季、年、上周、上月、上双月、上季、去年或年-月（如 2026-11）"
USAGE = f"用法：/报表 [时段] [单位]，时段为{PERIOD_WORDS}。"


@command(
    name="report",
    zh="报表",
    aliases=("报告", "测评", "rates"),
    summary="各项比率（分子/分母）、环比同比和得分",
    args=(
        ArgSpec(
            name="period",
            kind="text",
            label="时段 单位",
            required=False,
            hint=f"时段为{PERIOD_WORDS}，不写为本月；单位写名称或代码，不写为您可查看的全部单位。两者可任意先后。",
        ),
    ),
    roles=frozenset({Role.UNIT_HEAD, Role.DISPATCHER, Role.CENTER_LEAD, Role.ADMIN}),
    scope="unit",
    example="/报表 双月 环卫所",
)
async def report(ctx: Context, cmd: ParsedCommand) -> None:
    words = (cmd.args.get("period") or "").split()
    if len(words) > 2:
        raise CommandError("bad_period", f"抱歉，看不懂「{echo(' '.join(words))}」。{USAGE}")
    period = None
    named_unit = None
    for word in words:
        found = parse(word, ctx.now)
        unit = None if found is not None else ctx.config.unit_for_label(word) or ctx.config.unit(word)
        if found is not None and period is not None:
            raise CommandError("bad_period", f"抱歉，只能写一个时段（「{echo(word)}」是第二个）。{USAGE}")
        if unit is not None and named_unit is not None:
            raise CommandError("bad_period", f"抱歉，只能写一个单位（「{echo(word)}」是第二个）。{USAGE}")
        if found is None and unit is None:
            raise CommandError("bad_period", f"抱歉，「{echo(word)}」既不是时段也不是单位。时段可写{PERIOD_WORDS}。")
        period = found or period
        named_unit = unit or named_unit
    period = period or current(PeriodKind.MONTH, ctx.now)
    if period.start > ctx.now.date():
        raise CommandError("future_period", f"抱歉，{period.label}还没有开始。")
    units = _scope(ctx, named_unit.code if named_unit is not None else None)
    service = ReportService(ctx.store, ctx.config)
    result = await service.report(period, units=units, details=False, trend=False, now=ctx.now)
    if units is None:
        await ctx.say(render.office_report(result))
        return
    if len(result.units) == 1:
        await ctx.say(render.unit_report(result, result.units[0]))
        return
    await ctx.say(render.units_report(result))


def _scope(ctx: Context, code: str | None) -> list[str] | None:
    """The units asked for: the one named (if the member may see its figures), else all for the office, else the
    units the member leads."""
    office = ctx.sees_all
    led = [u.code for u in ctx.config.units_led_by(ctx.userid)]
    if code is not None:
        if not office and code not in led:
            raise CommandError("other_unit", "抱歉，您只能查看您负责的单位的报表。")
        return [code]
    if office:
        return None
    if not led:
        raise CommandError("no_unit", "抱歉，报表只给单位负责人和热线办查看。")
    return led
