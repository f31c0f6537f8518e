"""A ticket's history as a short timeline for a phone (``/查``): who did what and who was told, one line each, newest
last, at most :data:`LINES` lines; then the submitted result and the return visit.

The lines come from the audit log (dispatch, claim, contact, result, visit, returns …) and the notifications record
(reminders, overdue notices, escalations, repeats, duty calls, three-misses flags: one line per step, its recipients
together): ``MM-DD HH:MM 动作 谁（要点）``. Text members or the platform wrote (notes, results, reasons) is escaped
and, unless ``masked`` is False (the ticket's own handler or a dispatcher, in a 1:1 chat), masked with the ticket's
citizen (:func:`bot.domain.escaping.group_text`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.domain.escaping import escape_md, group_text
from bot.domain.lifecycle import Action, VisitResult
from bot.domain.masking import NamesCitizen
from bot.domain.records import HistoryEntry, Notification, NotificationKind
from bot.messages.format import deadline_label, person, unit_name, when
from config.model import BotConfig

LINES = 10  # timeline lines at most
BUDGET = 900  # bytes of timeline lines (the whole reply must stay under the chat's 2000)
NOTE_CHARS = 20  # of a note in a timeline line
RESULT_CHARS = 80  # of the submitted result and the visit's note
RECIPIENTS = 4  # named in a line; the rest counted

# audit entries a timeline leaves out: who read the contact details (every private /查 adds one)
SKIPPED = frozenset({"view_contact"})
OTHER_ACTIONS = {"dispatch": "派单", "update": "平台更新"}
ACTORS = {"hotline": "热线平台"}
KIND_LABELS = {
    NotificationKind.REMINDER: "时限提醒",
    NotificationKind.OVERDUE: "超时通知",
    NotificationKind.ESCALATION: "超时督办",
    NotificationKind.REPEAT: "再次督办",
    NotificationKind.DUTY: "值班提醒",
    NotificationKind.THREE_MISSES: "未按时接单通报",
}


@dataclass(frozen=True, slots=True)
class _Line:
    at: datetime
    order: int  # at the same time: actions before the notices they caused
    text: str


def timeline(
    ticket: NamesCitizen,
    history: Sequence[HistoryEntry],
    told: Sequence[Notification],
    config: BotConfig,
    *,
    masked: bool = True,
) -> str:
    """The timeline, the submitted result and the visit, as lines under a heading ("" when there is nothing)."""
    text = _Text(ticket, masked)
    lines = [_Line(h.at, 0, _action(h, config, text)) for h in history if h.action not in SKIPPED]
    lines += [_Line(group[0].at, 1, _told(group, config)) for group in _steps(told)]
    lines.sort(key=lambda line: (line.at, line.order))
    shown: list[str] = []
    budget = BUDGET
    for line in reversed(lines):
        size = len(line.text.encode()) + 1
        if len(shown) == LINES or size > budget:
            break
        budget -= size
        shown.append(line.text)
    out = []
    if shown:
        out.append("办理记录：")
        if len(shown) < len(lines):
            out.append(f"……另有 {len(lines) - len(shown)} 条较早记录")
        out += reversed(shown)
    out += _outcome(history, text)
    return "\n".join(out)


class _Text:
    """Text the bot did not write, as this reader may see it: escaped, masked unless allowed, on one line, cut."""

    def __init__(self, ticket: NamesCitizen, masked: bool) -> None:
        self.ticket = ticket
        self.masked = masked

    def __call__(self, value: object, limit: int) -> str:
        if self.masked:
            shown = group_text(value, self.ticket)  # masked before it is cut
        else:
            shown = escape_md(" ".join(str(value or "").split()))
        return shown if len(shown) <= limit else shown[:limit] + "…"


def _who(config: BotConfig, userid: str | None) -> str:
    if userid in ACTORS:
        return ACTORS[userid]
    return escape_md(person(config, userid))


def _action_label(action: str) -> str:
    try:
        return Action(action).label
    except ValueError:
        return OTHER_ACTIONS.get(action, escape_md(action))


def _action(entry: HistoryEntry, config: BotConfig, text: _Text) -> str:
    data = entry.data
    point = ""
    if entry.action in ("dispatch", Action.REDISPATCH, Action.ASSIGN):
        unit = data.get("unit") or data.get("to_unit")
        point = f"→ {escape_md(unit_name(config, str(unit)))}" if unit else ""
    elif entry.action == Action.TRANSFER and data.get("to"):
        point = f"→ {_who(config, str(data['to']))}"
    elif entry.action == Action.VISIT:
        point = _visit_label(data.get("result"))
    elif entry.action == Action.REQUEST_EXTENSION and data.get("days"):
        point = f"{data['days']} 个工作日"
    elif entry.action == Action.APPROVE_EXTENSION and data.get("granted"):
        point = f"{data['granted']} 个工作日"
    # a result and a visit's note are shown in full below the timeline
    note = None if entry.action in (Action.SUBMIT, Action.VISIT) else entry.note
    if note:
        point = f"{point}：{text(note, NOTE_CHARS)}" if point else text(note, NOTE_CHARS)
    line = f"{when(entry.at)} {_action_label(entry.action)} {_who(config, entry.actor)}"
    return f"{line}（{point}）" if point else line


def _visit_label(result: object) -> str:
    try:
        return VisitResult(str(result)).label
    except ValueError:
        return escape_md(str(result or ""))


def _steps(told: Sequence[Notification]) -> list[list[Notification]]:
    """The notifications of one step together: the same time, kind and level (its deadlines and recipients)."""
    steps: dict[tuple[datetime, str, int | None], list[Notification]] = {}
    for n in told:
        steps.setdefault((n.at, n.kind, n.level), []).append(n)
    return list(steps.values())


def _kind_label(n: Notification) -> str:
    label = KIND_LABELS.get(n.kind, escape_md(str(n.kind)))
    if n.kind == NotificationKind.ESCALATION and n.level:
        return f"{label}（第{n.level}级）"
    if n.kind == NotificationKind.REPEAT and n.level:
        return f"{label}（第{n.level}次）"
    return label


def _told(step: Sequence[Notification], config: BotConfig) -> str:
    first = step[0]
    members = [n.recipient for n in step if n.recipient_kind == "member"]
    groups = [n.recipient for n in step if n.recipient_kind != "member"]
    names = [f"{_who(config, u)}（私信）" for u in dict.fromkeys(members)]
    names += [f"{escape_md(unit_name(config, code))}群" for code in dict.fromkeys(groups)]
    who = "、".join(names[:RECIPIENTS])
    if len(names) > RECIPIENTS:
        who += f" 等 {len(names)} 处"
    if first.kind == NotificationKind.THREE_MISSES:
        about = f"{escape_md(unit_name(config, first.unit_code))}本期第 {first.level} 次未按时接单"
    else:
        labels = dict.fromkeys(deadline_label(n.deadline_name) for n in step if n.deadline_name)
        about = f"{'、'.join(labels)}时限"
    return f"{when(first.at)} {_kind_label(first)} {who} — {about}"


def _outcome(history: Sequence[HistoryEntry], text: _Text) -> list[str]:
    """The last submitted result and the last return visit, when there are any."""
    out = []
    submit = _last(history, Action.SUBMIT)
    if submit is not None:
        result = submit.note or submit.data.get("result")
        if result:
            out.append(f"办理结果（{when(submit.at)}）：{text(result, RESULT_CHARS)}")
    visit = _last(history, Action.VISIT)
    if visit is not None:
        line = f"回访（{when(visit.at)}）：{_visit_label(visit.data.get('result'))}"
        if visit.note:
            line += f"，{text(visit.note, RESULT_CHARS)}"
        out.append(line)
    return out


def _last(history: Sequence[HistoryEntry], action: Action) -> HistoryEntry | None:
    return next((h for h in reversed(history) if h.action == action), None)
