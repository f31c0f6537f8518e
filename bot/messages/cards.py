"""Ticket cards as neutral data: what a card with buttons shows, and the keys its buttons and task id carry.

A card shows a ticket's key facts, masked as in a group (never the citizen's name or phone), and buttons for the
next step: 接单 while the ticket waits for a handler, 已联系 / 已到场 once it is claimed, 查看详情 always. Submitting
a result (办结), returning, transferring need text and stay chat commands; the card says so.

A button's key names the command and the ticket (``claim:2026112300123``); the card's ``task_id`` names the ticket,
its cycle and the push (``t@2026112300123@0@<tag>``: digits, letters and "_-@", at most 128 bytes, unique per app
and per robot, as WeCom's pages 90236 and 101032 ask). The channel code in :mod:`notifiers` turns a :class:`Card`
into WeCom's ``template_card`` (``button_interaction``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from bot.domain.clock import local
from bot.domain.escaping import escape_md, group_text
from bot.domain.lifecycle import TicketState
from bot.domain.masking import Citizen, mask_text
from bot.domain.records import Deadline, HistoryEntry, RepeatLink, Ticket
from bot.messages import format as fmt
from config.model import BotConfig

TASK_ID = re.compile(r"[0-9A-Za-z_\-@]{1,128}")  # page 101032: 数字、字母和"_-@", at most 128 bytes
_TICKET_NO = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # the hotline's numbers (bot.hotline.schemas)
_TAG = re.compile(r"[A-Za-z0-9_-]{1,24}")
KEY_SEPARATOR = ":"

TITLE_CHARS = 20  # the title: WeCom suggests at most 26 characters; the kind takes the rest
SUBTITLE_CHARS = 100  # the subtitle: at most 112 suggested
VALUE_CHARS = 26  # a field's value: at most 26 suggested
SOURCE_CHARS = 13  # the source line: at most 13 suggested


@dataclass(frozen=True, slots=True, kw_only=True)
class CardButton:
    text: str  # at most 10 characters suggested
    style: int  # 1 the emphasised one; 2 secondary (WeCom: 1–4)
    key: str  # what a click brings back (at most 1024 bytes)


@dataclass(frozen=True, slots=True, kw_only=True)
class Card:
    """A card with buttons: the source line, a title and its description, a subtitle, a list of fields, buttons."""

    task_id: str
    source: str
    title: str
    title_desc: str
    subtitle: str
    fields: tuple[tuple[str, str], ...]
    buttons: tuple[CardButton, ...]
    link: str | None = None  # the ticket's page on the board: a link row under the fields


@dataclass(frozen=True, slots=True, kw_only=True)
class Button:
    action: str  # the key's first part
    command: str  # the command's canonical name (handlers.spec)
    text: str  # on the button: at most 10 characters suggested
    style: int  # 1 the emphasised one; 2 secondary (pages 90236 / 101032: 1–4)
    done: str | None  # how the updated card says it was done: "周婷 已接单 11-23 09:05"


BUTTONS: Mapping[str, Button] = MappingProxyType(
    {
        "claim": Button(action="claim", command="claim", text="接单", style=1, done="已接单"),
        "contact": Button(action="contact", command="contact", text="已联系", style=2, done="已联系"),
        "on_site": Button(action="on_site", command="on_site", text="已到场", style=2, done="已到场"),
        "show": Button(action="show", command="show", text="查看详情", style=2, done=None),
    }
)

_NEXT: Mapping[TicketState, tuple[str, ...]] = MappingProxyType(
    {
        TicketState.DISPATCHED: ("claim", "show"),
        TicketState.CLAIMED: ("contact", "on_site", "show"),
        TicketState.CONTACTED: ("on_site", "show"),
        TicketState.WARNING: ("on_site", "show"),
    }
)
_SUBMIT_HINT_STATES = frozenset({TicketState.CLAIMED, TicketState.CONTACTED, TicketState.ON_SITE, TicketState.WARNING})


# -- keys and task ids ------------------------------------------------------------------------------------------


def button_key(action: str, ticket_no: str) -> str:
    """``claim:2026112300123``: what the click's ``event_key`` brings back (at most 1024 bytes)."""
    if action not in BUTTONS:
        raise ValueError(f"no card button {action!r}")
    return f"{action}{KEY_SEPARATOR}{ticket_no}"


def parse_key(key: str) -> tuple[str, str] | None:
    """(action, ticket number) of one of our buttons' keys, or None."""
    action, sep, ticket_no = key.partition(KEY_SEPARATOR)
    if not sep or action not in BUTTONS or not _TICKET_NO.fullmatch(ticket_no):
        return None
    return action, ticket_no


def task_id_for(ticket: Ticket, tag: str) -> str:
    """``t@<ticket no>@<cycle>@<tag>``: the ticket, its cycle and the push. WeCom refuses a task id an app (or a
    robot) used before, so every push of the same ticket and cycle needs a tag of its own."""
    ticket_no = ticket.ticket_no
    if not _TICKET_NO.fullmatch(ticket_no):
        raise ValueError(f"ticket number {ticket_no!r} does not fit a task id")
    if not _TAG.fullmatch(tag):
        raise ValueError(f"task id tag {tag!r}: 1 to 24 of A-Z a-z 0-9 _ -")
    task_id = f"t@{ticket_no}@{ticket.cycle}@{tag}"
    if not TASK_ID.fullmatch(task_id):  # pragma: no cover - the parts above keep it within the pattern
        raise ValueError(f"task id {task_id!r} is not one WeCom takes")
    return task_id


def ticket_of_task(task_id: str) -> str | None:
    """The ticket number a card's task id names, or None for a card that is not one of ours."""
    parts = task_id.split("@")
    if len(parts) != 4 or parts[0] != "t" or not _TICKET_NO.fullmatch(parts[1]):
        return None
    return parts[1]


def default_tag(now: datetime) -> str:
    """A push's tag from its time, to the microsecond (local time): ``261123090000000000``."""
    return local(now).strftime("%y%m%d%H%M%S%f")


# -- cards ------------------------------------------------------------------------------------------------------


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def state_of(value: str) -> TicketState | None:
    try:
        return TicketState(value)
    except ValueError:
        return None


def actions_for(state: str) -> tuple[str, ...]:
    """The buttons a card shows for a ticket in ``state``: the next steps, and 查看详情."""
    found = state_of(state)
    return ("show",) if found is None else _NEXT.get(found, ("show",))


def ticket_card(
    ticket: Ticket,
    deadlines: Sequence[Deadline],
    config: BotConfig,
    now: datetime,
    *,
    actions: Sequence[str] | None = None,
    tag: str | None = None,
    task_id: str | None = None,
    done: str | None = None,
    earlier: Sequence[RepeatLink] = (),
    link: str | None = None,
) -> Card:
    """The card for ``ticket``: kind and a few words as the title, unit, state, handler and next deadline as the
    fields, buttons ``actions`` (default: :func:`actions_for` its state). Masked as for a group. ``task_id`` defaults
    to a new one (:func:`task_id_for` with ``tag``, else the time); ``done`` is the line an updated card leads with
    ("周婷 已接单 11-23 09:05"). A repeat (重复诉求) says so after it; with ``earlier`` (the tickets it repeats, the
    latest first) also how the one before it ended. ``link``: the ticket's page on the board (format.board_link)."""
    ticket_no = ticket.ticket_no
    chosen = tuple(actions) if actions is not None else actions_for(ticket.state)
    if not chosen:
        raise ValueError("a button_interaction card needs at least one button")
    unknown = [a for a in chosen if a not in BUTTONS]
    if unknown or len(set(chosen)) != len(chosen) or len(chosen) > 6:
        raise ValueError(f"card buttons {chosen!r}: each of {sorted(BUTTONS)} once, at most 6")
    words = group_text(ticket.title or ticket.content or "", ticket)
    subtitle = [done] if done else []
    repeat = fmt.repeat_line(ticket, config, earlier)
    if repeat:
        subtitle.append(_clip(repeat, SUBTITLE_CHARS))
    content = escape_md(mask_text(ticket.content or words, Citizen.of(ticket)))
    subtitle.append(_clip(content, SUBTITLE_CHARS))
    if ticket.state in _SUBMIT_HINT_STATES:
        subtitle.append(f"办结请发送：/办结 {ticket_no} 处理结果")
    deadline = fmt.next_deadline(deadlines, ticket.cycle)
    due = "无" if deadline is None else f"{fmt.deadline_label(deadline.name)} {fmt.when(deadline.due_at)}"
    fields = [
        ("承办单位", fmt.unit_name(config, ticket.unit_code)),
        ("状态", fmt.state_label(ticket.state)),
        ("承办人", fmt.person(config, ticket.handler_userid) if ticket.handler_userid else "待接单"),
        ("下一时限", due),
    ]
    if ticket.category:
        fields.insert(1, ("类别", group_text(ticket.category, ticket)))
    return Card(
        task_id=task_id or task_id_for(ticket, tag or default_tag(now)),
        source=_clip(config.office.name, SOURCE_CHARS),
        title=f"【{fmt.kind_label(ticket.kind)}】{_clip(words, TITLE_CHARS)}",
        title_desc=f"工单 {ticket_no}",
        subtitle="\n".join(subtitle),
        fields=tuple((k, _clip(v, VALUE_CHARS)) for k, v in fields),
        buttons=tuple(
            CardButton(text=BUTTONS[a].text, style=BUTTONS[a].style, key=button_key(a, ticket_no)) for a in chosen
        ),
        link=link,
    )


def updated_card(
    ticket: Ticket,
    deadlines: Sequence[Deadline],
    config: BotConfig,
    now: datetime,
    *,
    task_id: str,
    done: str | None,
    link: str | None = None,
) -> Card:
    """The clicked card as it is to look for everyone now: the same task id (WeCom wants the clicked card's), ``done``
    first ("周婷 已接单 11-23 09:05"), the ticket's facts as they are now and the buttons for its next step."""
    return ticket_card(ticket, deadlines, config, now, task_id=task_id, done=done, link=link)


def done_line(config: BotConfig, history: Sequence[HistoryEntry], action: str) -> str | None:
    """ "周婷 已接单 11-23 09:05": the last time ``action`` was done to the ticket, by whom."""
    button = BUTTONS.get(action)
    row = last_entry(history, action)
    if button is None or button.done is None or row is None:
        return None
    return f"{fmt.person(config, row.actor)} {button.done} {fmt.when(row.at)}"


def last_entry(history: Sequence[HistoryEntry], action: str) -> HistoryEntry | None:
    """The last history entry of ``action``, or None."""
    return next((row for row in reversed(history) if row.action == action), None)


# -- answers to clicks that do not run ---------------------------------------------------------------------------

UNKNOWN_BUTTON = "这个按钮已失效或无法识别。请直接发送命令，例如 /接单 工单号；发送 /帮助 查看可用命令。"


def already_claimed(config: BotConfig, ticket_no: str, handler: str, clicker: str, claimed_at: datetime | None) -> str:
    """A second 接单 on a claimed ticket: who has it, since when."""
    when = f"于 {fmt.when(claimed_at)} " if claimed_at is not None else ""
    if handler == clicker:
        return f"您已{when}接下工单 {ticket_no}，无需重复操作。"
    who = fmt.person(config, handler)
    return f"工单 {ticket_no} 已由 {who} {when}接单，无需重复操作。如需协助请与 {who} 联系。"


def not_handler(config: BotConfig, ticket_no: str, handler: str, action: str, typed: str) -> str:
    """已联系 / 已到场 pressed by someone else than the ticket's handler: the command to type instead."""
    who = fmt.person(config, handler)
    return f"工单 {ticket_no} 由 {who} 承办，「{BUTTONS[action].text}」请由承办人点击。如确需代为登记，请发送 {typed}。"
