"""Help generated from the command specs: the list a member sees, and one command's card.

Plain text (no HTML, no markdown markup), so that it reads the same wherever it goes, the markdown of a chat's
answers included, under a message's 2048-byte limit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, TypeVar

from config.vocabulary import ROLE_LABELS, Role


class ArgSpec(Protocol):
    """What the help needs of a command's argument (:class:`handlers.spec.ArgSpec`)."""

    @property
    def kind(self) -> str: ...
    @property
    def label(self) -> str: ...
    @property
    def choices(self) -> Sequence[tuple[object, Sequence[str]]]: ...
    @property
    def markers(self) -> Sequence[str]: ...
    @property
    def placeholder(self) -> str | None: ...
    @property
    def required(self) -> bool: ...
    @property
    def hint(self) -> str | None: ...


class CommandSpec(Protocol):
    """What the help needs of a command (:class:`handlers.spec.CommandSpec`)."""

    @property
    def name(self) -> str: ...
    @property
    def zh(self) -> str: ...
    @property
    def names(self) -> Sequence[str]: ...
    @property
    def summary(self) -> str: ...
    @property
    def args(self) -> Sequence[ArgSpec]: ...
    @property
    def roles(self) -> frozenset[Role] | None: ...
    @property
    def example(self) -> str | None: ...
    @property
    def usage(self) -> str: ...
    @property
    def english_shown(self) -> str: ...
    @property
    def takes_ticket(self) -> bool: ...


Spec = TypeVar("Spec", bound=CommandSpec)

WECOM_TEXT_LIMIT = 2048  # bytes of UTF-8, the limit of a WeCom text message's content

_HEADER = "可用命令（开头的“/”可省略，群里请先 @我）："
_TICKET_HINT = "引用（回复）工单消息时可不写工单号；工单号可只写末尾几位。"
_DETAIL_HINT = "发送“/帮助 命令”查看单个命令的说明，例如 /帮助 办结。"


def _line(spec: CommandSpec) -> str:
    return f"{spec.usage} — {spec.summary}"


def _fits(text: str) -> bool:
    return len(text.encode("utf-8")) <= WECOM_TEXT_LIMIT


def help_text(specs: Iterable[Spec], *, can_use: Callable[[Spec], bool] | None = None) -> str:
    """The commands a member may use (all of ``specs`` without ``can_use``), one line each — usage — summary —
    then hints, and last a line with the English names."""
    shown = [spec for spec in specs if can_use is None or can_use(spec)]
    if not shown:
        return "您目前没有可用的命令。如需开通，请联系热线办管理员。"
    english = "英文命令：" + " ".join(f"/{spec.english_shown}" for spec in shown)
    hints = []
    if any(spec.takes_ticket for spec in shown):
        hints.append(_TICKET_HINT)
    if not any(spec.name == "help" for spec in shown):
        hints.append(_DETAIL_HINT)
    text = "\n".join([_HEADER, *(_line(spec) for spec in shown), *hints, english])
    if not _fits(text):
        # many commands: usages only, summaries through /帮助 <命令>
        text = "\n".join([_HEADER, *(spec.usage for spec in shown), *hints, english])
    if not _fits(text):
        text = "\n".join([_HEADER, " ".join(f"/{spec.zh}" for spec in shown), _DETAIL_HINT, english])
    if not _fits(text):
        text = "\n".join([_HEADER, " ".join(f"/{spec.zh}" for spec in shown), _DETAIL_HINT])
    return text


def _choices(arg: ArgSpec) -> str:
    parts = []
    for _value, words in arg.choices:
        chinese = [w for w in words if not w.isascii()]
        latin = [w for w in words if w.isascii()]
        word = chinese[0] if chinese else words[0]
        parts.append(f"{word}（{latin[0]}）" if chinese and latin else word)
    return "、".join(parts)


def _roles(roles: Iterable[Role]) -> str:
    order = list(Role)
    return "、".join(ROLE_LABELS[role] for role in sorted(roles, key=order.index))


def command_help(spec: CommandSpec) -> str:
    """One command: usage, summary, the other names, notes on its arguments, who may use it, an example."""
    lines = [spec.usage, spec.summary]
    others = [name for name in spec.names if name != spec.zh]
    if others:
        lines.append("也可以写：" + " ".join(f"/{name}" for name in others))
    for arg in spec.args:
        if arg.hint:
            lines.append(f"{arg.label}：{arg.hint}")
        elif arg.kind == "ticket":
            lines.append(f"{arg.label}：完整工单号或末尾几位；引用工单消息时可不写。")
        elif arg.kind == "choice":
            lines.append(f"{arg.label}：{_choices(arg)}")
        elif arg.markers:
            lines.append(f"{arg.label}：写成“{arg.placeholder or arg.label}”，放在理由前后均可。")
        elif arg.kind == "member":
            lines.append(f"{arg.label}：姓名、账号或 @同事。")
        elif arg.kind == "days":
            lines.append(f"{arg.label}：工作日数，如 3、3天、3个工作日；不写按默认天数。")
        elif arg.kind == "text" and arg.required:
            lines.append(f"{arg.label}：必填，可写多行。")
    if spec.roles is not None:
        lines.append(f"仅限：{_roles(spec.roles)}")
    if spec.example:
        lines.append(f"例如：{spec.example}")
    return "\n".join(lines)
