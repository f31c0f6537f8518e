"""Pushes: tickets into their unit's work group, written to the outbox in the transaction of the change that causes
them (:class:`Pusher` is a :class:`bot.services.tickets.ChangeHook`), and the per-unit digest (:meth:`Pusher.flush`).

**What is pushed, and when** (the rules are ``pushes.rules`` in the config, per ticket kind and for warning tickets;
see :class:`config.model.PushRule` and its defaults):

* a **new ticket** (a hand-over creating it, over the API or from an import: see below), a ticket **re-dispatched**
  (改派, also in the step that approves a return) or **assigned** (签派) to a unit, and a **reopened**
  one: by its kind's rule, to the unit it is now with. ``at_once`` is a card with buttons where the group's
  transport takes cards (the robot's long connection; a markdown line with the @-mentions follows it, since a card
  cannot mention) and markdown with the mentions elsewhere (webhook, app chat); ``digest`` queues it for the
  unit's next digest, unless the deadline engine would remind the unit of one of its deadlines (or find it due)
  before that digest goes out (三个二's 20-minute contact, reminded of after 10 minutes, say: then it is pushed at
  once, and the unit is never reminded of a ticket it has not been told of); ``off`` sends nothing.
* a ticket **moved away** (re-dispatched or assigned to another unit): its former unit gets a short notice saying
  where it went, mentioning its former handler if it had one. WeCom changes a pushed card only in answer to a click
  on it (its one-use ``response_code`` or the click's req_id, :mod:`handlers.cards`), so the old card cannot be
  edited from here; the notice says it is void, and a click on it is refused by the router as for any other unit's
  ticket (who acted and where it is now).
* a **warning ticket** (预警: a return-visit result listed in ``visits.warning_results``, ``visit`` into
  ``warning``): by the ``warning`` rule, by default a card to the unit's group mentioning the ticket's handler and
  the head, and privately to the head and deputies; with the visit's note. A unit with a ``heads_group`` has it
  announced there at once as well, mentioning its heads.

**The service window.** An ``urgent`` rule's push goes at once at any hour; outside the service window or in quiet
hours it also goes privately to whoever is on duty (:meth:`bot.services.duty.DutyService.on_duty`; nobody on duty:
the office unit's head and deputies). A push whose rule is not urgent (and the notice of a move of such a ticket) is
written at once but held back until the window opens and quiet hours end (the outbox rows' ``next_attempt_at``,
:meth:`config.model.BotConfig.routine_from`). Digests go out only inside the window, outside quiet hours.

**Imports** (``source == "import"``) push only tickets new to the bot, still waiting for their unit (not taken on,
finished or closed on the platform), whose 派单时间 was given and lies within ``pushes.import.recent`` (24 h) before
the import: an import of the platform's history pushes nothing. Of one import
batch (one transaction, 1,000 rows), at most ``pushes.import.at_once_max`` (20) are pushed at once; the rest join
their unit's digest.

**Once only.** Every push's outbox keys derive from the ticket, its cycle and the event (``push:<no>:<cycle>:new``
…), and each new cycle is a new dispatch: a hand-over retried, repeated or replayed changes nothing and pushes
nothing again; a digest's key is its unit and period (``digest:<unit>:<yyyymmddHHMM>``).

**Privacy.** What reaches a group is masked (:mod:`bot.domain.masking`): no citizen name or phone, phone numbers in
the text masked, as on the cards (:func:`bot.messages.cards.ticket_card`). Private pushes (head, duty) are masked
as well; the full details go only to the claimer, by /接单. What a push says: :mod:`bot.messages.pushes`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from datetime import datetime, time, timedelta
from typing import Any

from bot.domain.clock import Clock
from bot.domain.lifecycle import Action, TicketState
from bot.domain.records import Deadline, RepeatLink, Ticket
from bot.messages import pushes as texts
from bot.messages.cards import ticket_card
from bot.messages.format import board_link
from bot.messages.notice import Notice
from bot.messages.pushes import MOVED, NEW, REOPENED, WARNING
from bot.services.channels import Channels
from bot.services.duty import DutyService
from bot.services.tickets import TicketChange
from config.model import BotConfig, PushRule, Unit
from config.vocabulary import DeadlineName, PushAudience, PushKind
from notifiers.rows import Row, group_channel, notice_rows, takes_cards
from store import outbox as outbox_repo
from store import pushes as pushes_repo
from store import repeats as repeats_repo
from store.core import Conn, Store
from store.pushes import Queued

log = logging.getLogger(__name__)

# set by :meth:`Pusher.changed` when its transaction queued a push due now; read (and cleared) by
# :meth:`Pusher.committed`, which the ticket service calls in the same task once that transaction has committed
_SEND_NOW: ContextVar[bool] = ContextVar("push_send_now", default=False)


def event_of(change: TicketChange) -> str | None:
    """Which push a change calls for: new, moved (re-dispatched or assigned: new to its unit), reopened, warning."""
    if change.action == "dispatch":
        return NEW
    if change.action in (Action.REDISPATCH, Action.ASSIGN):
        return MOVED
    if change.action == Action.APPROVE_RETURN and change.to_state is TicketState.DISPATCHED:
        return MOVED  # approved and re-dispatched in one step
    if change.action == Action.REOPEN:
        return REOPENED
    if change.to_state is TicketState.WARNING and change.from_state is not TicketState.WARNING:
        return WARNING
    return None


def audience(names: Sequence[PushAudience], unit: Unit, handler: str | None) -> list[str]:
    """The userids ``names`` stand for in ``unit`` for a ticket with ``handler``, in order, without repeats."""
    found: list[str] = []
    for name in names:
        if name is PushAudience.TEAM:
            found += unit.emergency_team or unit.members
        elif name is PushAudience.HANDLER:
            if handler:
                found.append(handler)
        elif name is PushAudience.HEAD:
            found.append(unit.head)
        elif name is PushAudience.DEPUTIES:
            found += unit.deputies
        else:
            found += unit.members
    return list(dict.fromkeys(found))


class Pusher:
    """Turns ticket changes into pushes inside their transaction (a :class:`bot.services.tickets.ChangeHook`), and
    flushes the digests. ``wake`` tells the outbox worker that something was queued (after the commit)."""

    def __init__(
        self,
        store: Store,
        config: BotConfig,
        clock: Clock,
        channels: Channels,
        *,
        duty: DutyService | None = None,
        wake: Callable[[], None] | None = None,
        board_url: str | None = None,
    ) -> None:
        self.store = store
        self.board_url = board_url  # PUBLIC_URL: each push links to the ticket's page on the board
        self.config = config
        self.clock = clock
        self.channels = channels
        self.duty = duty
        self.wake = wake
        self._unreachable: set[str] = set()  # units whose group no channel reaches (logged once each)

    # --- the hook ------------------------------------------------------------------------------------------------

    async def changed(self, conn: Conn, changes: Sequence[TicketChange]) -> None:
        now = self.clock.now()
        rows: list[Row] = []
        queued: list[dict[str, Any]] = []
        at_once_left = self.config.pushes.imports.at_once_max
        on_duty: list[str] | None = None
        earlier = await _earlier(conn, [c.ticket for c in changes if event_of(c) is not None])
        for change in changes:
            event = event_of(change)
            leaves = change.from_state is TicketState.DISPATCHED and change.to_state is not TicketState.DISPATCHED
            if change.action != "dispatch" and (leaves or event in (MOVED, REOPENED)):
                # the ticket moved on (taken on, finished, sent elsewhere): a routine push of it still held for the
                # service window would be stale when the window opens (a 待接单 card for a claimed ticket); the
                # notice to a unit it left stays. This change's own pushes are queued after. Only a ticket leaving
                # 待接单 or starting a new dispatch can have such a push: other changes cost no statement.
                why = f"superseded: {change.action}"
                await outbox_repo.void_held(conn, f"push:{change.ticket_no}:", now=now, keep=":moved-from:", why=why)
            if event is None:
                continue
            ticket = change.ticket
            rule = self.config.push_rule(PushKind.WARNING if event == WARNING else ticket.kind)
            mode = rule.mode
            capped = False
            if change.source == "import":
                if not self._pushed_on_import(change, now):
                    continue
                if mode == "at_once":
                    capped = at_once_left <= 0
                    mode = "digest" if capped else mode
                    at_once_left -= 1
            if mode == "digest" and not capped and self._due_before_digest(change, now):
                mode = "at_once"
            if event == MOVED and change.from_unit and change.from_unit != ticket.unit_code:
                rows += self._rows(self._moved_away(change, rule, now), now)
            unit = self.config.unit(ticket.unit_code or "")
            if unit is None or mode == "off":
                continue
            if mode == "digest":
                queued.append(
                    {
                        "ticket_id": ticket.id,
                        "ticket_no": change.ticket_no,
                        "cycle": ticket.cycle,
                        "unit_code": unit.code,
                        "queued_at": now,
                        "flushed_at": None,
                        "digest_key": None,
                    }
                )
                continue
            notices = self._push(change, event, rule, unit, now, earlier.get(ticket.id, ()))
            if rule.urgent and self._outside(now):
                if on_duty is None:  # asked once for the whole batch: the same moment
                    on_duty = await self._on_duty(conn, now)
                notices.append(self._to_duty(change, event, unit, on_duty, now))
            rows += self._rows(notices, now)
        await outbox_repo.enqueue(conn, rows)
        await pushes_repo.queue_digest(conn, queued)
        if any(row["next_attempt_at"] <= now for row in rows):
            _SEND_NOW.set(True)

    def committed(self) -> None:
        """Wakes the outbox when the transaction queued a push that is due now (not for one held back for the
        window, a digest item, or nothing): a wake costs the worker a pass, and a burst of hand-overs commits often."""
        if _SEND_NOW.get():
            _SEND_NOW.set(False)
            if self.wake is not None:
                self.wake()

    def _pushed_on_import(self, change: TicketChange, now: datetime) -> bool:
        """An import pushes a ticket new to the bot only when its 派单时间 was given and is recent, and nobody has it
        yet (the rest is the platform's history: a row already taken on, finished or closed there is not news to
        its unit); a re-dispatch an import brings is pushed when its ticket is open."""
        if change.action != "dispatch":
            return True
        if not change.dated or change.to_state is not TicketState.DISPATCHED:
            return False
        return now - change.ticket.dispatched_at <= self.config.pushes.imports.recent.natural()

    def _due_before_digest(self, change: TicketChange, now: datetime) -> bool:
        """Whether the deadline engine would act on one of the ticket's new deadlines before the next digest goes
        out: its first step (a reminder, or the due time itself; ``next_due_at``, as the engine reads it) comes
        sooner (三个二's 20 minutes to contact, reminded of at half the time, say). Then the ticket is pushed at
        once instead, so that the unit is never reminded of a ticket it has not been told of. The return window
        is a right, not a duty: nothing reminds of it, and it does not count."""
        first = [
            d.next_due_at or d.due_at
            for d in change.deadlines
            if d.name not in (DeadlineName.RETURN_WINDOW, DeadlineName.RETURN_REVIEW)
        ]
        return bool(first) and min(first) < self.next_digest(now)

    def _outside(self, at: datetime) -> bool:
        return not self.config.in_service_window(at) or self.config.in_quiet_hours(at)

    def _rows(self, notices: Sequence[Notice], now: datetime) -> list[Row]:
        return [
            row
            for notice in notices
            for row in notice_rows(self._reachable(notice), self.config, self.channels, at=now)
        ]

    def _takes_cards(self, unit: Unit) -> bool:
        """Whether ``unit``'s group is reached where a card's buttons work (the robot's long connection): elsewhere
        the markdown stands in for it, and the card is not built."""
        return takes_cards(unit, self.channels)

    def _reachable(self, notice: Notice) -> Notice:
        """``notice`` without its group part when no channel of this deployment reaches that group: logged once per
        unit (not at every ticket), and its private part still goes."""
        if notice.unit is None:
            return notice
        unit = self.config.unit(notice.unit)
        if unit is not None and group_channel(unit, self.channels, heads=notice.heads) is not None:
            return notice
        if notice.unit not in self._unreachable:
            self._unreachable.add(notice.unit)
            log.warning(
                "no channel reaches the work group of unit %s (give it a chatid for the robot's long connection or "
                "the app, or a webhook_key): its pushes are not sent",
                notice.unit,
            )
        return dataclasses.replace(notice, unit=None)

    # --- what a push says -----------------------------------------------------------------------------------------

    def _push(
        self,
        change: TicketChange,
        event: str,
        rule: PushRule,
        unit: Unit,
        now: datetime,
        earlier: Sequence[RepeatLink] = (),
    ) -> list[Notice]:
        """The push of ``change`` to ``unit``'s group (and privately, by the rule); ``earlier``: the tickets it
        repeats (重复诉求), the latest first."""
        ticket, no, cycle = change.ticket, change.ticket_no, change.ticket.cycle
        headline, lead = self._headline(change, event)
        not_before = None if rule.urgent else self.config.routine_from(now)
        mention = audience(rule.mention, unit, ticket.handler_userid)
        card = (
            ticket_card(
                ticket,
                change.deadlines,
                self.config,
                now,
                tag=f"p{change.audit_id}",
                done=lead,
                earlier=earlier,
                link=board_link(self.board_url, no),
            )
            if self._takes_cards(unit)
            else None
        )
        body = texts.markdown(
            self.config,
            ticket,
            change.deadlines,
            headline,
            lead,
            now,
            remaining=not_before is None,
            earlier=earlier,
            link=board_link(self.board_url, no),
        )
        base = f"push:{no}:{cycle}:{event}"
        notices = [
            Notice(
                key=base,
                text=body,
                unit=unit.code,
                mention=mention,
                card=card,
                urgent=rule.urgent,
                ordering_key=_lane(no, unit.code, rule.urgent),
                mention_text=headline,
                not_before=not_before,
            )
        ]
        if event == WARNING and unit.heads_group is not None:
            # seed 004: a warning ticket is announced at once in the unit heads' group
            notices.append(
                Notice(
                    key=f"{base}:heads",
                    text=body,
                    unit=unit.code,
                    heads=True,
                    mention=unit.heads,
                    urgent=True,
                    ordering_key=f"push:{no}:heads",
                )
            )
        private = audience(rule.private, unit, ticket.handler_userid)
        if private:
            notices.append(
                Notice(
                    key=f"{base}:private",
                    text=body,
                    members=private,
                    urgent=rule.urgent,
                    not_before=not_before,
                )
            )
        return notices

    def _headline(self, change: TicketChange, event: str) -> tuple[str, str | None]:
        """The push's first line, and the lead line of its card (None: a plain new ticket)."""
        return texts.headline(self.config, change.ticket, event=event, action=change.action, from_unit=change.from_unit)

    def _moved_away(self, change: TicketChange, rule: PushRule, now: datetime) -> list[Notice]:
        """The short notice to the unit a ticket left: where it went, and that its card is void."""
        ticket, no = change.ticket, change.ticket_no
        old = change.from_unit or ""
        return [
            Notice(
                key=f"push:{no}:{ticket.cycle}:moved-from:{old}",
                text=texts.moved_away(self.config, ticket, action=change.action),
                unit=old,
                mention=[change.from_handler] if change.from_handler else [],
                urgent=rule.urgent,
                ordering_key=_lane(no, old, rule.urgent),
                not_before=None if rule.urgent else self.config.routine_from(now),
            )
        ]

    async def _on_duty(self, conn: Conn, now: datetime) -> list[str]:
        """Who is told of an urgent push outside the service window: whoever is on duty, else the office's heads."""
        on_duty = await self.duty.on_duty_in(conn, now) if self.duty is not None else self.config.on_duty(now)
        if not on_duty:
            log.warning("nobody on duty for an urgent push outside the service window; told the office's heads")
            return list(self.config.office_unit.heads)
        return list(on_duty)

    def _to_duty(self, change: TicketChange, event: str, unit: Unit, on_duty: list[str], now: datetime) -> Notice:
        """The urgent push outside the service window, privately to ``on_duty``."""
        ticket, no = change.ticket, change.ticket_no
        headline, _ = self._headline(change, event)
        body = texts.to_duty(self.config, ticket, change.deadlines, headline, unit.name, now)
        return Notice(key=f"push:{no}:{ticket.cycle}:{event}:duty", text=body, members=on_duty, urgent=True)

    # --- the digest -----------------------------------------------------------------------------------------------

    def period_start(self, at: datetime) -> datetime:
        """The start of the digest period ``at`` falls in: ``digest.offset`` past local midnight and every
        ``digest.every`` after it (the last period of a day ends at the next day's first)."""
        settings = self.config.pushes.digest
        local = self.config.local(at)
        offset = settings.offset.natural() if settings.offset is not None else timedelta()
        base = datetime.combine(local.date(), time(), local.tzinfo) + offset
        if local < base:
            base -= timedelta(days=1)
        every = settings.every.natural()
        return base + every * ((local - base) // every)

    def next_digest(self, at: datetime) -> datetime:
        """When a ticket queued at ``at`` goes out in a digest: the next period's start, or the first moment after
        it inside the service window and outside quiet hours."""
        return self.config.routine_from(self.period_start(at) + self.config.pushes.digest.every.natural())

    async def flush(self, now: datetime | None = None) -> int:
        """Sends each unit's digest of the tickets queued before the current period began, once: one message per
        unit and period (its key), written in one transaction with the marks on what it took. Tickets that no
        longer wait (claimed, moved, closed) are dropped from it. Nothing happens outside the service window or in
        quiet hours: the digest waits for them to end. Returns how many digests were queued."""
        now = now or self.clock.now()
        if self.config.routine_from(now) != now:
            return 0
        start = self.period_start(now)
        period = self.config.local(start).strftime("%Y%m%d%H%M")
        sent = 0
        async with self.store.transaction() as conn:
            found = await pushes_repo.waiting(conn, queued_before=start)
            if not found:
                return 0
            by_unit: dict[str, list[Queued]] = {}
            for queued in found:
                by_unit.setdefault(queued.unit_code, []).append(queued)
            open_deadlines = await pushes_repo.open_deadlines_of(conn, [q.ticket.id for q in found])
            earlier = await _earlier(conn, [q.ticket for q in found])
            for code, items in by_unit.items():
                waiting = [q for q in items if _still_waits(q)]
                kept = {q.item_id for q in waiting}
                gone = [q.item_id for q in items if q.item_id not in kept]
                await pushes_repo.mark_flushed(conn, gone, at=now, key=None)
                if not waiting:
                    continue
                base = f"digest:{code}:{period}"
                rows = self._rows(self._digest(code, waiting, open_deadlines, base, now, earlier), now)
                if rows and await pushes_repo.keys_queued(conn, [r["idempotency_key"] for r in rows]):
                    # this unit's digest of this period went out already (tickets whose commit came late): they wait
                    # for the next period's, rather than be marked as sent in a message that does not hold them
                    continue
                await outbox_repo.enqueue(conn, rows)
                await pushes_repo.mark_flushed(conn, [q.item_id for q in waiting], at=now, key=base)
                sent += 1 if rows else 0
        if sent and self.wake is not None:
            self.wake()
        return sent

    def _digest(
        self,
        code: str,
        items: Sequence[Queued],
        open_deadlines: Mapping[int, Sequence[Deadline]],
        base: str,
        now: datetime,
        earlier: Mapping[int, Sequence[RepeatLink]],
    ) -> list[Notice]:
        unit = self.config.unit(code)
        if unit is None:
            log.warning("digest for unknown unit %s dropped (%d tickets)", code, len(items))
            return []
        kinds = dict.fromkeys(q.ticket.kind for q in items)
        mention = list(dict.fromkeys(u for k in kinds for u in audience(self.config.push_rule(k).mention, unit, None)))
        if len(items) == 1:  # a digest of one ticket: the ticket itself, with its card
            ticket = items[0].ticket
            deadlines = open_deadlines.get(ticket.id, [])
            headline = texts.new_ticket(ticket)
            card = None
            repeats = earlier.get(ticket.id, ())
            if self._takes_cards(unit):
                card = ticket_card(
                    ticket,
                    deadlines,
                    self.config,
                    now,
                    tag=f"d{items[0].item_id}",
                    earlier=repeats,
                    link=board_link(self.board_url, ticket.ticket_no),
                )
            link = board_link(self.board_url, ticket.ticket_no)
            body = texts.markdown(self.config, ticket, deadlines, headline, None, now, earlier=repeats, link=link)
            return [
                Notice(
                    key=base,
                    text=body,
                    unit=code,
                    mention=mention,
                    card=card,
                    ordering_key=f"digest:{code}",
                    mention_text=headline,
                )
            ]
        text = texts.digest(unit.name, [q.ticket for q in items], open_deadlines, self.config.pushes.digest.max_items)
        return [Notice(key=base, text=text, unit=code, mention=mention, ordering_key=f"digest:{code}")]


def _lane(ticket_no: str, unit: str, urgent: bool) -> str:
    """The order a ticket's pushes to one group keep. Urgent ones have a lane of their own: a warning at night must
    not wait behind a routine push held back for the service window."""
    return f"push:{ticket_no}:{unit}" + (":urgent" if urgent else "")


async def _earlier(conn: Conn, pushed: Sequence[Ticket]) -> Mapping[int, Sequence[RepeatLink]]:
    """The earlier tickets of those of ``pushed`` the bot found to be repeats (their push says how the one before
    ended), read in the push's own transaction."""
    repeated = [t.id for t in pushed if t.repeat_count > 1]
    return await repeats_repo.earlier_of(conn, repeated) if repeated else {}


def _still_waits(queued: Queued) -> bool:
    """Whether a queued ticket still waits for its digest: unclaimed, with the unit, in the cycle it was queued in."""
    ticket = queued.ticket
    return (
        ticket.state is TicketState.DISPATCHED and ticket.unit_code == queued.unit_code and ticket.cycle == queued.cycle
    )
