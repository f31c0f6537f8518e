"""/值班: who is on duty and who is next; 接班 takes over (until the roster shift ends), 交班 hands back."""

from __future__ import annotations

from bot.domain.duty import Watch
from bot.messages import format as fmt
from bot.services.duty import DutyChange, DutyRefused, DutyStatus
from handlers.commands.common import display_name
from handlers.context import Context
from handlers.errors import CommandError
from handlers.spec import ArgSpec, ParsedCommand, command

DUTY_TAKE = "take"
DUTY_HAND_BACK = "hand_back"
DUTY_CHOICES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (DUTY_TAKE, ("接班", "take")),
    (DUTY_HAND_BACK, ("交班", "release", "off")),
)


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
    name, until = display_name(ctx), (fmt.when(change.until) if change.until else None)
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


@command(
    name="duty",
    zh="值班",
    aliases=("值班表", "oncall"),
    summary="查看当前值班人员；“/值班 接班”登记接班，“/值班 交班”提前交回",
    args=(
        ArgSpec(
            name="shift", kind="choice", label="操作", required=False, choices=DUTY_CHOICES, placeholder="接班/交班"
        ),
    ),
    scope="any",
    example="/值班 接班",
)
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
