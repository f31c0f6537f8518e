"""What a click on a ticket card's button does (the card itself: :mod:`bot.messages.cards`).

A button's key names the command and the ticket (``claim:2026112300123``). A click runs through the router's normal
path as the clicker's own command (:meth:`handlers.router.CommandRouter.handle`): the same membership, role and unit
checks, the same dedup (the click's key), the same answers. A key that is not ours, or that names another ticket
than its card, is refused politely; so is a second 接单 on a claimed ticket (who claimed it, when) and 已联系/已到场
from someone who is not the ticket's handler (colleagues may misclick on a card they all see; the commands stay open to
them).

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

from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from bot.domain.events import CardClick
from bot.domain.lifecycle import TicketState
from bot.messages.cards import (
    BUTTONS,
    UNKNOWN_BUTTON,
    already_claimed,
    done_line,
    last_entry,
    not_handler,
    parse_key,
    ticket_of_task,
    updated_card,
)
from bot.messages.format import board_link
from bot.messages.reply import Reply
from bot.services.channels import Channels
from bot.services.sinks import inbox_key
from bot.services.tickets import TicketNotFound, TicketService
from config.model import BotConfig
from handlers.commands import find
from handlers.context import DEDUP_SOURCE, GLOBAL_ROLES
from handlers.errors import CommandError
from handlers.spec import ParsedCommand
from store import inbox as inbox_repo
from store.core import Store

# buttons only the ticket's handler should press once there is one (the card is seen by the whole unit)
HANDLER_ONLY = frozenset({"contact", "on_site"})
_CLAIMED = frozenset({TicketState.CLAIMED, TicketState.CONTACTED, TicketState.ON_SITE})


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
    async with store.reading() as conn:
        found = await inbox_repo.inbound(conn, DEDUP_SOURCE, inbox_key(event))
    return found is not None


def _may_see(config: BotConfig, userid: str, unit_code: str | None) -> bool:
    if any(config.has_role(userid, role) for role in GLOBAL_ROLES):
        return True
    return unit_code is not None and any(u.code == unit_code for u in config.units_of(userid))


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
    handler = ticket.handler_userid
    if not handler or not _may_see(config, userid, ticket.unit_code):
        return click  # the lifecycle decides; another unit's ticket is the router's refusal
    if action == "claim" and ticket.state in _CLAIMED:
        claimed = last_entry(detail.history, "claim")
        at = claimed.at if claimed is not None and claimed.actor == handler else None
        message = already_claimed(config, ticket_no, handler, userid, at)
        return Click(event=event, action=action, ticket_no=ticket_no, refusal=CommandError("already_claimed", message))
    if handler == userid:
        return click
    if action in HANDLER_ONLY:
        spec = find(BUTTONS[action].command)
        typed = f"/{spec.zh if spec else action} {ticket_no}"
        message = not_handler(config, ticket_no, handler, action, typed)
        return Click(event=event, action=action, ticket_no=ticket_no, refusal=CommandError("not_handler", message))
    return click


async def card_update(
    click: Click,
    service: TicketService,
    config: BotConfig,
    channels: Channels,
    now: datetime,
    *,
    board_url: str | None = None,
) -> list[Reply]:
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
    link = board_link(board_url, click.ticket_no)
    card = updated_card(detail.ticket, detail.deadlines, config, now, task_id=event.task_id, done=done, link=link)
    return [Reply(event=event, to="card", card=card)]
