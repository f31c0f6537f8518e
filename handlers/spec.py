"""Typed command specs: what each chat command is called (Chinese name, Chinese and English aliases), what it takes,
who may use it, its help text, and the handler that runs it.

A command is declared once, on its handler (:func:`command`, in :mod:`handlers.commands`), so none exists without
one. The parser, the help and the router read the specs; :func:`build_index` finds a command by any of its names."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from bot.domain.lifecycle import Action
from config.vocabulary import Role

if TYPE_CHECKING:
    from handlers.context import Context

ArgKind = Literal["ticket", "text", "member", "unit", "choice", "command", "days"]
# ticket: a ticket reference (full number, or its last digits where unambiguous; optional when a quoted message
#         names the ticket); text: the rest of the message (may span lines); member: a userid, a name or an
#         @mention; unit: a unit code or name; choice: one of ``choices`` (Chinese words, English aliases);
#         command: the name of another command (for /帮助), given as its canonical ``name``; days: a number of
#         working days ("3", "3天", "3个工作日", "三天"), always optional
Scope = Literal["ticket", "unit", "self", "any"]
# runs a parsed command for the member in ``Context``; answers through it
Handler = Callable[["Context", "ParsedCommand"], Awaitable[None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class ArgSpec:
    name: str
    kind: ArgKind
    label: str  # how the help names it, in Chinese: 工单号, 处理结果 …
    required: bool = True
    choices: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (canonical value, accepted words) for kind "choice"
    # Words that introduce the argument wherever it stands in the text (e.g. "建议:" for 退单's suggested unit);
    # an argument with markers is never taken by position. A marker ending in ":" needs the colon (full-width
    # colons are normalised to ":"), the others may be followed directly by the value.
    markers: tuple[str, ...] = ()
    placeholder: str | None = None  # what the usage shows instead of the label, e.g. "建议:单位"
    hint: str | None = None  # what the help says of it, where its kind alone does not tell

    @property
    def usage(self) -> str:
        shown = self.placeholder or self.label
        return f"<{shown}>" if self.required else f"[{shown}]"

    @property
    def choice_words(self) -> tuple[str, ...]:
        """Every accepted word of a choice argument, in declaration order."""
        return tuple(word for _value, words in self.choices for word in words)

    def choice_value(self, word: str) -> str | None:
        """The canonical value for an accepted word (English case-insensitive), or None."""
        key = word.casefold()
        for value, words in self.choices:
            if any(key == w.casefold() for w in words):
                return value
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandSpec:
    name: str  # canonical id, English: "claim"
    zh: str  # the Chinese name shown first: "接单"
    aliases: tuple[str, ...]  # other accepted names, Chinese and English: ("claim", "领单")
    summary: str  # one line of help, Chinese
    args: tuple[ArgSpec, ...] = ()
    roles: frozenset[Role] | None = None  # None: any configured member
    scope: Scope = "ticket"  # what the command acts on: one ticket, a unit's tickets, the sender's, nothing
    example: str | None = None  # e.g. "/接单 2026112200123"
    action: Action | None = None  # the lifecycle action the command asks for, when it is one
    handler: Handler = field(compare=False, repr=False)  # runs the command
    names: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", (self.zh, self.name, *self.aliases))

    @property
    def usage(self) -> str:
        parts = [f"/{self.zh}"]
        for arg in self.args:
            parts.append(arg.usage)
        return " ".join(parts)

    @property
    def english(self) -> tuple[str, ...]:
        """The English names: the canonical one first, then the English aliases."""
        return tuple(n for n in (self.name, *self.aliases) if n.isascii())

    @property
    def english_shown(self) -> str:
        """The English name the help shows: the first one without an underscore ("onsite" over "on_site")."""
        names = self.english
        return next((n for n in names if "_" not in n), names[0] if names else self.name)

    @property
    def chinese(self) -> tuple[str, ...]:
        """The Chinese names: ``zh`` first, then the Chinese aliases."""
        return tuple(n for n in self.names if not n.isascii())

    def arg(self, name: str) -> ArgSpec | None:
        return next((a for a in self.args if a.name == name), None)

    @property
    def takes_ticket(self) -> bool:
        """Whether the command names one ticket (by number or by quoting the pushed message)."""
        return any(a.kind == "ticket" for a in self.args)


def command(
    *,
    name: str,
    zh: str,
    aliases: tuple[str, ...],
    summary: str,
    args: tuple[ArgSpec, ...] = (),
    roles: frozenset[Role] | None = None,
    scope: Scope = "ticket",
    example: str | None = None,
    action: Action | None = None,
) -> Callable[[Handler], CommandSpec]:
    """Declares a command on its handler: ``@command(name="claim", zh="接单", ...)`` over ``async def claim(ctx,
    cmd)`` makes ``claim`` the :class:`CommandSpec`, its handler bound in it."""

    def bind(handler: Handler) -> CommandSpec:
        return CommandSpec(
            name=name,
            zh=zh,
            aliases=aliases,
            summary=summary,
            args=args,
            roles=roles,
            scope=scope,
            example=example,
            action=action,
            handler=handler,
        )

    return bind


@dataclass(frozen=True, slots=True)
class ParsedCommand:
    spec: CommandSpec
    args: Mapping[str, str]  # argument name → value; optional arguments not given (and a missing ticket) absent
    text: str  # the normalised message

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def ticket(self) -> str | None:
        """The ticket reference as written (full number or last digits), or None: then the router takes the
        ticket from the quoted message, or asks for one."""
        return self.args.get("ticket")

    def get(self, name: str) -> str | None:
        return self.args.get(name)


def key(name: str) -> str:
    """Index key: English names case-insensitively, Chinese names exactly."""
    return name.casefold() if name.isascii() else name


def build_index(specs: Sequence[CommandSpec]) -> dict[str, CommandSpec]:
    """Every name of every command → its spec; a name that is empty, has spaces or is used twice is an error."""
    index: dict[str, CommandSpec] = {}
    for spec in specs:
        for name in spec.names:
            k = key(name)
            if not k or any(ch.isspace() for ch in k):
                raise ValueError(f"command name {name!r} of {spec.name!r} is empty or has spaces")
            other = index.get(k)
            if other is not None and other is not spec:
                raise ValueError(f"command name {name!r} is used by both {other.name!r} and {spec.name!r}")
            if other is spec:
                raise ValueError(f"command name {name!r} is listed twice for {spec.name!r}")
            index[k] = spec
    return index
