"""Ticket cards with buttons (WeCom ``template_card`` of type ``button_interaction``), and what a click on one does.

A card shows a ticket's key facts, masked as in a group (never the citizen's name or phone), and buttons for the
next step: 接单 while the ticket waits for a handler, 已联系 / 已到场 once it is claimed, 查看详情 always. Submitting
a result (办结), returning, transferring need text and stay chat commands; the card says so.

A button's key names the command and the ticket (``claim:2026112300123``); the card's ``task_id`` names the ticket,
its cycle and the push (``t@2026112300123@0@<tag>``: digits, letters and "_-@", at most 128 bytes, unique per app
and per robot, as pages 90236 and 101032 ask). A click runs through the router's normal path as the clicker's own
command (:meth:`handlers.router.CommandRouter.handle`): the same membership, role and unit checks, the same dedup
(the click's key), the same answers. A key that is not ours, or that names another ticket than its card, is
refused politely; so is a second 接单 on a claimed ticket (who claimed it, when) and 已联系/已到场 from someone who
is not the ticket's handler (colleagues may misclick on a card they all see; the commands stay open to them).

After a click that changed the ticket the card changes for everyone, showing who did what and when and the buttons
for the next step. Where that update goes depends on how the click came (WECOM.md "Card buttons"):

* the app (``template_card_event`` with a ``ResponseCode``): ``POST message/update_template_card`` with that code
  (one use, 72 h; page 94888), the whole card replaced for all its recipients (``atall``): outbox channel
  ``wecom_card_update``. The answer is the usual app message to the clicker.
* the intelligent robot over its long connection: ``aibot_respond_update_msg`` with the click's req_id, within 5 s
  (pages 101031, 101463): outbox channel ``aibot_card_update``. The answer goes through the click's
  ``response_url`` as for any message (in a group WeCom shows it quoting the clicked card, page 101138).
* the intelligent robot in callback mode: WeCom changes a robot's card only through the answer to the click's own
  callback, within 5 s (page 101031: "在该事件的返回包中"); the ``response_url`` takes markdown or a *new*
  template card, never an update (page 101138). The callback is answered before the router runs, so the card
  stays as it is; the click is answered through the ``response_url``, and a second click on the stale button is
  refused with who did it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from bot.domain.clock import local
from bot.domain.escaping import escape_md, group_text
from bot.domain.events import CardClick
from bot.domain.lifecycle import TicketState
from bot.domain.masking import Citizen, mask_text
from bot.messages import format as fmt
from bot.services.inbox import inbox_key
from bot.services.tickets import TicketNotFound, TicketService
from config.model import BotConfig
from handlers.commands import find
from handlers.context import DEDUP_SOURCE, GLOBAL_ROLES
from handlers.errors import CommandError
from handlers.parse import ParsedCommand
from handlers.replies import Channels, Row, card_update_rows
from store import inbox as inbox_repo
from store.core import Store

CARD_TYPE = "button_interaction"
TASK_ID = re.compile(r"[0-9A-Za-z_\-@]{1,128}")  # page 101032: 数字、字母和"_-@", at most 128 bytes
_TICKET_NO = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # the hotline's numbers (bot.hotline.schemas)
_TAG = re.compile(r"[A-Za-z0-9_-]{1,24}")
KEY_SEPARATOR = ":"

TITLE_CHARS = 20  # main_title.title: WeCom suggests at most 26 characters; the kind takes the rest
SUBTITLE_CHARS = 100  # sub_title_text: at most 112 suggested
VALUE_CHARS = 26  # horizontal_content_list[].value: at most 26 suggested
SOURCE_CHARS = 13  # source.desc: at most 13 suggested

UNKNOWN_BUTTON = "这个按钮已失效或无法识别。请直接发送命令，例如 /接单 工单号；发送 /帮助 查看可用命令。"


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
# buttons only the ticket's handler should press once there is one (the card is seen by the whole unit)
HANDLER_ONLY = frozenset({"contact", "on_site"})

_NEXT: Mapping[TicketState, tuple[str, ...]] = MappingProxyType(
    {
        TicketState.DISPATCHED: ("claim", "show"),
        TicketState.CLAIMED: ("contact", "on_site", "show"),
        TicketState.CONTACTED: ("on_site", "show"),
        TicketState.WARNING: ("on_site", "show"),
    }
)
_CLAIMED = frozenset({TicketState.CLAIMED, TicketState.CONTACTED, TicketState.ON_SITE})
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


def task_id_for(ticket: Mapping[str, Any], tag: str) -> str:
    """``t@<ticket no>@<cycle>@<tag>``: the ticket, its cycle and the push. WeCom refuses a task id an app (or a
    robot) used before, so every push of the same ticket and cycle needs a tag of its own."""
    ticket_no = str(ticket["ticket_no"])
    if not _TICKET_NO.fullmatch(ticket_no):
        raise ValueError(f"ticket number {ticket_no!r} does not fit a task id")
    if not _TAG.fullmatch(tag):
        raise ValueError(f"task id tag {tag!r}: 1 to 24 of A-Z a-z 0-9 _ -")
    task_id = f"t@{ticket_no}@{int(ticket.get('cycle') or 0)}@{tag}"
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


def actions_for(state: str) -> tuple[str, ...]:
    """The buttons a card shows for a ticket in ``state``: the next steps, and 查看详情."""
    try:
        return _NEXT.get(TicketState(state), ("show",))
    except ValueError:
        return ("show",)


def ticket_card(
    ticket: Mapping[str, Any],
    deadlines: Sequence[Mapping[str, Any]],
    config: BotConfig,
    now: datetime,
    *,
    actions: Sequence[str] | None = None,
    tag: str | None = None,
    task_id: str | None = None,
    done: str | None = None,
) -> dict[str, Any]:
    """The ``template_card`` (``button_interaction``) for ``ticket``: kind and a few words as the title, unit, state,
    handler and next deadline as the list, buttons ``actions`` (default: :func:`actions_for` its state). Masked as
    for a group. ``task_id`` defaults to a new one (:func:`task_id_for` with ``tag``, else the time); ``done`` is the
    line an updated card leads with ("周婷 已接单 11-23 09:05")."""
    ticket_no = str(ticket["ticket_no"])
    chosen = tuple(actions) if actions is not None else actions_for(ticket["state"])
    if not chosen:
        raise ValueError("a button_interaction card needs at least one button")
    unknown = [a for a in chosen if a not in BUTTONS]
    if unknown or len(set(chosen)) != len(chosen) or len(chosen) > 6:
        raise ValueError(f"card buttons {chosen!r}: each of {sorted(BUTTONS)} once, at most 6")
    words = group_text(ticket.get("title") or ticket.get("content") or "", ticket)
    subtitle = [done] if done else []
    content = escape_md(mask_text(str(ticket.get("content") or words), Citizen.of(ticket)))
    subtitle.append(_clip(content, SUBTITLE_CHARS))
    if _state(ticket["state"]) in _SUBMIT_HINT_STATES:
        subtitle.append(f"办结请发送：/办结 {ticket_no} 处理结果")
    deadline = fmt.next_deadline(deadlines, ticket.get("cycle"))
    due = "无" if deadline is None else f"{fmt.deadline_label(deadline['name'])} {fmt.when(deadline['due_at'])}"
    rows = [
        ("承办单位", fmt.unit_name(config, ticket.get("unit_code"))),
        ("状态", fmt.state_label(ticket["state"])),
        ("承办人", fmt.person(config, ticket.get("handler_userid")) if ticket.get("handler_userid") else "待接单"),
        ("下一时限", due),
    ]
    if ticket.get("category"):
        rows.insert(1, ("类别", escape_md(str(ticket["category"]))))
    return {
        "card_type": CARD_TYPE,
        "source": {"desc": _clip(config.office.name, SOURCE_CHARS)},
        "main_title": {
            "title": f"【{fmt.kind_label(ticket['kind'])}】{_clip(words, TITLE_CHARS)}",
            "desc": f"工单 {ticket_no}",
        },
        "sub_title_text": "\n".join(subtitle),
        "horizontal_content_list": [{"keyname": k, "value": _clip(v, VALUE_CHARS)} for k, v in rows],
        "button_list": [
            {"text": BUTTONS[a].text, "style": BUTTONS[a].style, "key": button_key(a, ticket_no)} for a in chosen
        ],
        "task_id": task_id or task_id_for(ticket, tag or default_tag(now)),
    }


def updated_card(
    ticket: Mapping[str, Any],
    deadlines: Sequence[Mapping[str, Any]],
    config: BotConfig,
    now: datetime,
    *,
    task_id: str,
    done: str | None,
) -> dict[str, Any]:
    """The clicked card as it is to look for everyone now: the same task id (WeCom wants the clicked card's), ``done``
    first ("周婷 已接单 11-23 09:05"), the ticket's facts as they are now and the buttons for its next step."""
    return ticket_card(ticket, deadlines, config, now, task_id=task_id, done=done)


def _state(value: str) -> TicketState | None:
    try:
        return TicketState(value)
    except ValueError:
        return None


# -- clicks -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Click:
    """A click on a card button, read before it runs: the command it stands for, or why it cannot be one."""

    event: CardClick
    action: str | None
    ticket_no: str | None
    refusal: CommandError | None = None

    def command(self) -> ParsedCommand:
        """The command, for :meth:`handlers.router.CommandRouter._run`; raises the refusal (a polite answer)."""
        if self.refusal is not None:
            raise self.refusal
        assert self.action is not None
        assert self.ticket_no is not None
        spec = find(BUTTONS[self.action].command)
        assert spec is not None
        return ParsedCommand(spec=spec, args=MappingProxyType({"ticket": self.ticket_no}), text=self.event.event_key)


async def applied(store: Store, event: CardClick) -> bool:
    """Whether the click's ticket change was applied (now or by an earlier run of the same event): the ticket
    service records it under the event's key, in the change's own transaction (:meth:`Context.dedup`)."""
    found = await store.read(lambda conn: inbox_repo.inbound(conn, DEDUP_SOURCE, inbox_key(event)), snapshot=False)
    return found is not None


def _may_see(config: BotConfig, userid: str, unit_code: str | None) -> bool:
    if any(config.has_role(userid, role) for role in GLOBAL_ROLES):
        return True
    return unit_code is not None and any(u.code == unit_code for u in config.units_of(userid))


def _last(history: Sequence[Mapping[str, Any]], action: str) -> Mapping[str, Any] | None:
    return next((row for row in reversed(history) if row["action"] == action), None)


def done_line(config: BotConfig, history: Sequence[Mapping[str, Any]], action: str) -> str | None:
    """ "周婷 已接单 11-23 09:05": the last time ``action`` was done to the ticket, by whom."""
    button = BUTTONS.get(action)
    row = _last(history, action)
    if button is None or button.done is None or row is None:
        return None
    return f"{fmt.person(config, row['actor'])} {button.done} {fmt.when(row['at'])}"


async def read_click(service: TicketService, config: BotConfig, event: CardClick) -> Click:
    """What ``event`` asks for. Refused here (politely, nothing changed): a key that is not one of our buttons or
    names another ticket than its card's task id, 接单 on a ticket someone already claimed, 已联系/已到场 by someone
    other than the handler. Everything else (membership, roles, units, the lifecycle) is the router's, as for a
    typed command. A click already applied (WeCom's retry, crash recovery) is let through: it answers as before."""
    parsed = parse_key(event.event_key)
    if parsed is None:
        return Click(event=event, action=None, ticket_no=None, refusal=CommandError("unknown_button", UNKNOWN_BUTTON))
    action, ticket_no = parsed
    card_ticket = ticket_of_task(event.task_id)
    if card_ticket is not None and card_ticket != ticket_no:
        return Click(event=event, action=None, ticket_no=None, refusal=CommandError("unknown_button", UNKNOWN_BUTTON))
    click = Click(event=event, action=action, ticket_no=ticket_no)
    userid = event.sender.userid
    if action not in ("claim", *HANDLER_ONLY) or config.member(userid) is None or await applied(service.store, event):
        return click
    try:
        detail = await service.get(ticket_no)
    except TicketNotFound:
        return click  # the router says so
    ticket = detail.ticket
    handler = ticket.get("handler_userid")
    if not handler or not _may_see(config, userid, ticket.get("unit_code")):
        return click  # the lifecycle decides; another unit's ticket is the router's refusal
    if action == "claim" and _state(ticket["state"]) in _CLAIMED:
        claimed = _last(detail.history, "claim")
        when = f"于 {fmt.when(claimed['at'])} " if claimed is not None and claimed["actor"] == handler else ""
        if handler == userid:
            message = f"您已{when}接下工单 {ticket_no}，无需重复操作。"
        else:
            who = fmt.person(config, handler)
            message = f"工单 {ticket_no} 已由 {who} {when}接单，无需重复操作。如需协助请与 {who} 联系。"
        return Click(event=event, action=action, ticket_no=ticket_no, refusal=CommandError("already_claimed", message))
    if handler == userid:
        return click
    who = fmt.person(config, handler)
    if action in HANDLER_ONLY:
        spec = find(BUTTONS[action].command)
        typed = f"/{spec.zh if spec else action} {ticket_no}"
        message = (
            f"工单 {ticket_no} 由 {who} 承办，「{BUTTONS[action].text}」请由承办人点击。"
            f"如确需代为登记，请发送 {typed}。"
        )
        return Click(event=event, action=action, ticket_no=ticket_no, refusal=CommandError("not_handler", message))
    return click


async def update_rows(
    click: Click, service: TicketService, config: BotConfig, channels: Channels, now: datetime
) -> list[Row]:
    """The card update for everyone after ``click`` changed its ticket (none after a refusal, a 查看详情, or where
    no update can be sent: see the module's docstring). Keyed by the click, so a re-run queues it once."""
    if click.refusal is not None or click.action is None or click.ticket_no is None:
        return []
    if BUTTONS[click.action].done is None or not await applied(service.store, click.event):
        return []
    event = click.event
    if event.source == "app" and not event.response_code:
        return []
    if event.source == "aibot" and not channels.aibot_ws:
        return []
    detail = await service.get(click.ticket_no)
    done = done_line(config, detail.history, click.action)
    card = updated_card(detail.ticket, detail.deadlines, config, now, task_id=event.task_id, done=done)
    return card_update_rows(event, card, channels, at=now)
