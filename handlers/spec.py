"""Typed command specs: what each chat command is called (Chinese name, Chinese and English aliases), what it takes,
who may use it, and its help text. The parser, the help and the router all read them from here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bot.domain.lifecycle import Action, VisitResult
from config.vocabulary import Role

ArgKind = Literal["ticket", "text", "member", "unit", "choice", "command", "days"]
# ticket: a ticket reference (full number, or its last digits where unambiguous; optional when a quoted message
#         names the ticket); text: the rest of the message (may span lines); member: a userid, a name or an
#         @mention; unit: a unit code or name; choice: one of ``choices`` (Chinese words, English aliases);
#         command: the name of another command (for /帮助), given as its canonical ``name``; days: a number of
#         working days ("3", "3天", "3个工作日", "三天"), always optional
Scope = Literal["ticket", "unit", "self", "any"]


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


# --------------------------------------------------------------------------------------------------------------
# The commands
# --------------------------------------------------------------------------------------------------------------

# The ticket argument is declared required: the router must find the ticket, from the number or, when the
# message quotes a pushed ticket, from the quote. The parser never refuses a message for lacking it.
_TICKET = ArgSpec(name="ticket", kind="ticket", label="工单号")

_WORKERS = frozenset({Role.HANDLER, Role.UNIT_HEAD})

VISIT_CHOICES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (VisitResult.SATISFIED.value, ("满意", "satisfied")),
    (VisitResult.BASICALLY_SATISFIED.value, ("基本满意", "basically", "basically_satisfied")),
    (VisitResult.DISSATISFIED.value, ("不满意", "dissatisfied", "unsatisfied")),
    (VisitResult.UNREACHABLE.value, ("联系不上", "联系不到", "无法联系", "未接通", "unreachable")),
)

DUTY_TAKE = "take"
DUTY_HAND_BACK = "hand_back"
DUTY_CHOICES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (DUTY_TAKE, ("接班", "take")),
    (DUTY_HAND_BACK, ("交班", "release", "off")),
)

EXTENSION_APPROVE = "approve"
EXTENSION_REJECT = "reject"
EXTENSION_DECISIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (EXTENSION_APPROVE, ("同意", "批准", "approve")),
    (EXTENSION_REJECT, ("驳回", "不同意", "不批准", "reject")),
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

COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec(
        name="claim",
        zh="接单",
        aliases=("领单", "认领", "accept"),
        summary="接下工单，由您承办",
        args=(_TICKET,),
        roles=_WORKERS,
        example="/接单 2026112200123",
        action=Action.CLAIM,
    ),
    CommandSpec(
        name="contact",
        zh="联系",
        aliases=("先行联系", "已联系", "called"),
        summary="登记已先行联系市民，可附说明",
        args=(_TICKET, ArgSpec(name="note", kind="text", label="联系情况", required=False)),
        roles=_WORKERS,
        example="/联系 0123 已电话联系，约下午到场",
        action=Action.CONTACT,
    ),
    CommandSpec(
        name="on_site",
        zh="到场",
        aliases=("已到场", "到达", "onsite", "arrived"),
        summary="登记已到达现场，可附说明",
        args=(_TICKET, ArgSpec(name="note", kind="text", label="说明", required=False)),
        roles=_WORKERS,
        example="/到场 0123",
        action=Action.ON_SITE,
    ),
    CommandSpec(
        name="submit",
        zh="办结",
        aliases=("完成", "已办结", "close", "done", "finish"),
        summary="提交处理结果，等待回访",
        args=(_TICKET, ArgSpec(name="result", kind="text", label="处理结果")),
        roles=_WORKERS,
        example="/办结 0123 已清理完毕，市民认可",
        action=Action.SUBMIT,
    ),
    CommandSpec(
        name="return",
        zh="退单",
        aliases=("申请退单", "退回", "sendback"),
        summary="非本单位职责，申请退单（写明理由和建议单位）",
        args=(
            _TICKET,
            ArgSpec(name="reason", kind="text", label="退单理由"),
            ArgSpec(
                name="unit",
                kind="unit",
                label="建议单位",
                required=False,
                markers=RETURN_UNIT_MARKERS,
                placeholder="建议:单位",
            ),
        ),
        roles=_WORKERS,
        example="/退单 0123 该路段属市政道路 建议:市政所",
        action=Action.REQUEST_RETURN,
    ),
    CommandSpec(
        name="transfer",
        zh="转派",
        aliases=("转交", "转给", "handover"),
        summary="转给本单位另一位同事承办",
        args=(_TICKET, ArgSpec(name="member", kind="member", label="同事")),
        roles=_WORKERS,
        example="/转派 0123 @张三",
        action=Action.TRANSFER,
    ),
    # one command for the request and the decision: "/延期 0123 3 理由" asks (the days may be left out: the
    # configured default), "/延期 0123 同意" and "/延期 0123 驳回 理由" decide; who may do which is the handler's check
    CommandSpec(
        name="extend",
        zh="延期",
        aliases=("申请延期", "postpone"),
        summary="申请延期（写明天数和理由）；负责人、派单员回复“同意”或“驳回 理由”审批",
        args=(
            _TICKET,
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
    ),
    CommandSpec(
        name="show",
        zh="查",
        aliases=("查询", "查看", "详情", "info", "details"),
        summary="查看工单详情和期限",
        args=(_TICKET,),
        example="/查 0123",
    ),
    CommandSpec(
        name="mine",
        zh="我的",
        aliases=("我的工单", "my"),
        summary="我承办中的工单及期限",
        scope="self",
        example="/我的",
    ),
    CommandSpec(
        name="todo",
        zh="待办",
        aliases=("待办工单", "未办结", "pending"),
        summary="本单位未办结的工单",
        args=(ArgSpec(name="unit", kind="unit", label="单位", required=False),),
        scope="unit",
        example="/待办",
    ),
    CommandSpec(
        name="overdue",
        zh="逾期",
        aliases=("超期", "逾期工单", "late"),
        summary="已逾期的工单",
        args=(ArgSpec(name="unit", kind="unit", label="单位", required=False),),
        scope="unit",
        example="/逾期",
    ),
    CommandSpec(
        name="visit",
        zh="回访",
        aliases=("回访结果", "revisit", "feedback"),
        summary="登记回访结果（满意/基本满意/不满意/联系不上）",
        args=(
            _TICKET,
            ArgSpec(name="result", kind="choice", label="回访结果", choices=VISIT_CHOICES),
            ArgSpec(name="note", kind="text", label="备注", required=False),
        ),
        roles=frozenset({Role.DISPATCHER}),
        example="/回访 0123 满意",
        action=Action.VISIT,
    ),
    CommandSpec(
        name="assign",
        zh="签派",
        aliases=("指派", "decide"),
        summary="为多次退单的工单指定承办单位",
        args=(_TICKET, ArgSpec(name="unit", kind="unit", label="承办单位")),
        roles=frozenset({Role.CENTER_LEAD}),
        example="/签派 0123 市容所",
        action=Action.ASSIGN,
    ),
    CommandSpec(
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
    ),
    CommandSpec(
        name="stats",
        zh="统计",
        aliases=("数据", "简报", "report"),
        summary="工单数量、逾期、满意等简要统计",
        args=(ArgSpec(name="unit", kind="unit", label="单位", required=False),),
        roles=frozenset({Role.UNIT_HEAD, Role.DISPATCHER, Role.CENTER_LEAD, Role.ADMIN}),
        scope="unit",
        example="/统计",
    ),
    CommandSpec(
        name="help",
        zh="帮助",
        aliases=("命令", "菜单", "说明", "?", "commands"),
        summary="命令说明；“/帮助 接单”看单个命令",
        args=(ArgSpec(name="command", kind="command", label="命令", required=False),),
        scope="any",
        example="/帮助 办结",
    ),
)


def _key(name: str) -> str:
    """Index key: English names case-insensitively, Chinese names exactly."""
    return name.casefold() if name.isascii() else name


def _build_index(specs: tuple[CommandSpec, ...]) -> dict[str, CommandSpec]:
    index: dict[str, CommandSpec] = {}
    for spec in specs:
        for name in spec.names:
            key = _key(name)
            if not key or any(ch.isspace() for ch in key):
                raise ValueError(f"command name {name!r} of {spec.name!r} is empty or has spaces")
            other = index.get(key)
            if other is not None and other is not spec:
                raise ValueError(f"command name {name!r} is used by both {other.name!r} and {spec.name!r}")
            if other is spec:
                raise ValueError(f"command name {name!r} is listed twice for {spec.name!r}")
            index[key] = spec
    return index


_INDEX: dict[str, CommandSpec] = _build_index(COMMANDS)


def find(name: str) -> CommandSpec | None:
    """The command called ``name``: Chinese names exactly, English names case-insensitively."""
    return _INDEX.get(_key(name))


def all_names() -> tuple[str, ...]:
    """Every accepted command name (as declared), for suggestions."""
    return tuple(name for spec in COMMANDS for name in spec.names)
