"""The chat commands, each declared once with its handler (:func:`handlers.spec.command`); :data:`COMMANDS` lists
them in the order the help shows them, and :func:`find` looks one up by any of its names.

A handler takes the running :class:`handlers.context.Context` and the parsed command, and answers in the chat (and
privately where the answer holds a citizen's contact details).
"""

from __future__ import annotations

from bot.domain.escaping import echo
from bot.messages.help import command_help, help_text
from handlers.commands.duty import duty
from handlers.commands.exclusion import exclude
from handlers.commands.extend import extend
from handlers.commands.reading import mine, overdue, show, stats, todo
from handlers.commands.reports import report
from handlers.commands.tickets import (
    assign,
    claim,
    contact,
    on_site,
    redispatch,
    return_ticket,
    submit,
    transfer,
    visit,
)
from handlers.context import Context
from handlers.errors import CommandError
from handlers.spec import ArgSpec, CommandSpec, ParsedCommand, build_index, command, key


@command(
    name="help",
    zh="帮助",
    aliases=("命令", "菜单", "说明", "?", "commands"),
    summary="命令说明；“/帮助 接单”看单个命令",
    args=(ArgSpec(name="command", kind="command", label="命令", required=False),),
    scope="any",
    example="/帮助 办结",
)
async def help_command(ctx: Context, cmd: ParsedCommand) -> None:
    name = cmd.args.get("command")
    if name:
        spec = find(name.lstrip("/"))
        if spec is None:
            raise CommandError("unknown_command", f"没有「{echo(name)}」这个命令。发送 /帮助 查看全部命令。")
        await ctx.say(command_help(spec))
        return
    await ctx.say(help_text(COMMANDS, can_use=ctx.may_use))


COMMANDS: tuple[CommandSpec, ...] = (
    claim,
    contact,
    on_site,
    submit,
    return_ticket,
    transfer,
    extend,
    exclude,
    show,
    mine,
    todo,
    overdue,
    visit,
    redispatch,
    assign,
    duty,
    stats,
    report,
    help_command,
)

_INDEX: dict[str, CommandSpec] = build_index(COMMANDS)


def find(name: str) -> CommandSpec | None:
    """The command called ``name``: Chinese names exactly, English names case-insensitively."""
    return _INDEX.get(key(name))


def all_names() -> tuple[str, ...]:
    """Every accepted command name (as declared), for suggestions."""
    return tuple(name for spec in COMMANDS for name in spec.names)


__all__ = ["COMMANDS", "all_names", "find"]
