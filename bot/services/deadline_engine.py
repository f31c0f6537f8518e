"""The deadline engine: reminders before a deadline, the overdue notice at it, escalation after it, and the units that
let the accept deadline pass three times in a reporting period.

A **tick** (:meth:`DeadlineEngine.tick`, every ``nags.tick_seconds`` in the leader process, or from a test with any
time) reads only what is due: deadlines whose ``next_due_at`` has come, through its partial index, a batch at a
time; never every open ticket, never a timer per ticket. For each it decides the step (:mod:`bot.domain.nags`), and
in **one transaction per batch** queues the messages (the engine produces :class:`bot.messages.nags.Reminder` and
:class:`bot.messages.nags.MissFlag`; the injected ``rows`` renders them and makes the outbox rows) and
advances each deadline's ``stage`` and ``next_due_at`` with an optimistic guard: a row moves only if it still has
the stage and next-due time it was read with and is still open. So

* a reminder is never lost (the messages and the move commit together; a crash before the commit leaves the row due
  for the next tick) and never sent twice (once moved, a row is not due again for that step; a second engine, or a
  claim closing the deadline meanwhile, makes the guard fail and the row's messages are dropped with it; the outbox's
  idempotency key, per deadline, due time and stages, would catch a repeat all the same);
* it stops the moment the deadline is met or the ticket moves on: the ticket service closes the deadline (status
  ``met``/``missed``/``cancelled``, ``next_due_at`` NULL), and the guard checks it is still open.

**Addressing.** A reminder goes to the unit's work group, @-mentioning the handler (unclaimed: the unit's emergency
team, else its head), and privately to the handler. The overdue notice likewise, with escalation level 1 privately; then
each further level privately (default: unit head and deputies, then the center leads), then repeats to every level. The
office's review of a return (``return_review``) goes to the office unit's group and the dispatchers instead, its
escalations to the office unit's heads and the center leads; while that review runs, the unit's own deadlines of the
ticket are held (no ``next_due_at``). Everything a tick has for one group is one message (a robot may send 20 a minute),
and everything for one member one private message. Group messages show masked text only.

**Service window and quiet hours.** Outside the window, or in quiet hours, a routine step waits: the row's
``next_due_at`` becomes the moment they allow it (nothing is skipped; the steps that came due meanwhile go out
together then, as one message). An urgent ticket's step (``nags.urgent_kinds``) outside the window goes privately to
the duty officer (:meth:`bot.services.duty.DutyService.on_duty`) instead; with nobody on duty it waits too.

**History.** A deadline of an imported ticket that was due by the import (the platform's past, see
:mod:`bot.domain.history`) is never acted on: the import plans it without a step, and a tick that finds one all the
same finishes it without a message or a miss.

**Three misses.** An accept deadline found open after its due time is counted against its unit (once:
:func:`store.nags.record_misses`; the ticket service counts a late claim that came first). The unit that reaches
``nags.three_misses.count`` in a reporting period is flagged once: privately to the dispatchers and in the office
unit's group, when the window allows.

**Accountability.** Whatever the engine queues is recorded in the same transaction, one row per deadline (for a
flag, per missed ticket) and recipient, with the kind (reminder, overdue, escalation and its level, repeat, duty,
three misses), the channel and the outbox row's key and id (:mod:`bot.services.accountability`,
:mod:`store.notifications`): a unit was told if and only if the record says so, long after the outbox is purged.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from bot.domain.clock import Clock
from bot.domain.history import imported_until
from bot.domain.masking import Citizen
from bot.domain.nags import (
    NAG_FREE,
    NagSchedule,
    Step,
    next_routine_moment,
    period_start,
    routine_allowed,
)
from bot.domain.records import DeadlineStatus, DueDeadline, NotificationKind
from bot.domain.workcal import WorkCalendar
from bot.messages.nags import DueItem, MissFlag, Reminder, Section
from bot.services import accountability
from bot.services.accountability import Told
from bot.services.duty import DutyService
from config.model import BotConfig, Unit
from config.vocabulary import DeadlineName, Role, TicketKind
from store import nags as nag_store
from store import notifications as notifications_repo
from store import outbox as outbox_repo
from store.core import Store

log = logging.getLogger(__name__)

# a tick takes at most this many batches (an outage's backlog is worked off over several ticks)
MAX_BATCHES = 100
FLAGS_EVERY = timedelta(minutes=1)  # how often a tick without misses of its own looks for units flagged elsewhere

Row = dict[str, Any]
# the engine's notices rendered as outbox rows, due from the given time (wired by the composition root:
# bot.messages renders them, notifiers addresses them)
NoticeRows = Callable[[Sequence[Reminder | MissFlag], datetime], list[Row]]


@dataclass(kw_only=True)
class TickResult:
    due: int = 0  # deadline rows read
    moved: int = 0  # rows advanced (sent, waiting or finished)
    raced: int = 0  # rows another engine or a claim changed first (left alone)
    items: int = 0  # deadlines with a message this tick
    waiting: int = 0  # routine steps held back by the service window or quiet hours
    messages: int = 0  # outbox rows queued
    told: int = 0  # notifications recorded (a deadline or a flagged ticket, and one recipient)
    misses: int = 0  # accept deadlines found missed
    flags: int = 0  # units flagged (three misses)
    batches: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class _Moment:
    """What a tick decides by, the same for every deadline it reads."""

    now: datetime
    allowed: bool  # routine messages may go out (in the window, outside quiet hours)
    in_window: bool
    duty: list[str] | None  # on duty, when outside the window
    opens: datetime  # when routine messages may go out next


@dataclass(slots=True, kw_only=True)
class _Decision:
    move: dict[str, Any]
    item: DueItem | None = None
    told: Told = field(default_factory=dict)  # what each recipient of the item heard of it
    miss: dict[str, Any] | None = None
    waiting: bool = False


@dataclass
class _Digest:
    lines: dict[str, list[DueItem]] = field(default_factory=lambda: defaultdict(list))
    mention: dict[str, None] = field(default_factory=dict)
    urgent: bool = False


class DeadlineEngine:
    def __init__(
        self,
        store: Store,
        config: BotConfig,
        calendar: WorkCalendar,
        clock: Clock,
        *,
        duty: DutyService,
        rows: NoticeRows,
        wake: Callable[[], None] | None = None,
        batch: int | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.duty = duty
        self.rows = rows
        self.wake = wake
        self.nags = config.nags
        self.batch = batch or config.nags.batch
        self.schedule = NagSchedule(config.nags, calendar)
        self.ticks = 0
        self.last_tick_at: datetime | None = None  # when the last tick finished, at the engine's clock (/metrics)
        self.ticked = asyncio.Event()  # set after every tick (tests wait on it)
        self._urgent = frozenset(TicketKind(k).value for k in config.nags.urgent_kinds)
        self._holders = {role: [m.userid for m in config.members_with_role(role)] for role in Role}
        self._flags_checked: datetime | None = None

    # --- the tick --------------------------------------------------------------------------------------------------

    async def tick(self, now: datetime | None = None) -> TickResult:
        """Takes every step due at ``now`` (default: the clock's now); returns what it did."""
        now = now or self.clock.now()
        result = TickResult()
        moment = await self._moment(now)
        for _ in range(MAX_BATCHES):
            if self.store.backend == "sqlite":  # most ticks find nothing: look before taking the write lock
                async with self.store.reading() as conn:
                    if not await nag_store.anything_due(conn, now):
                        break
            taken = await self._batch(moment, result)
            if taken < self.batch:
                break
        # flags: after misses, else once a minute (a late claim in another process may have flagged a unit)
        if result.misses or self._flags_checked is None or now - self._flags_checked >= FLAGS_EVERY:
            self._flags_checked = now
            await self._flags(now, result)
        if result.messages and self.wake is not None:
            self.wake()
        self.ticks += 1
        self.last_tick_at = self.clock.now()
        self.ticked.set()
        return result

    async def _moment(self, now: datetime) -> _Moment:
        in_window = self.config.in_service_window(now)
        return _Moment(
            now=now,
            allowed=routine_allowed(self.config, now),
            in_window=in_window,
            duty=None if in_window else await self.duty.on_duty(now),
            opens=next_routine_moment(self.config, now),
        )

    async def _batch(self, moment: _Moment, result: TickResult) -> int:
        now = moment.now
        async with self.store.transaction() as conn:
            rows = await nag_store.due_deadlines(conn, now, limit=self.batch)
            if not rows:
                return 0
            decisions = [self._decide(row, moment) for row in rows]
            moved = await nag_store.advance(conn, [d.move for d in decisions])
            won = [d for d in decisions if d.move["id"] in moved]
            misses = [d.miss for d in won if d.miss is not None]
            counted = await nag_store.record_misses(conn, misses, threshold=self.nags.three_misses.count, at=now)
            items = [d.item for d in won if d.item is not None]
            sent = self._messages(items, now)
            out = [r for _, made in sent for r in made]
            queued = await outbox_repo.enqueue(conn, out)
            told = {d.item.key: d.told for d in won if d.item is not None}
            recorded = await notifications_repo.record(conn, accountability.reminders_told(sent, told, queued, now))
        result.batches += 1
        result.due += len(rows)
        result.moved += len(moved)
        result.raced += len(rows) - len(moved)
        result.items += len(items)
        result.waiting += sum(1 for d in won if d.waiting)
        result.messages += len(out)
        result.told += recorded
        result.misses += counted
        return len(rows)

    # --- one deadline ----------------------------------------------------------------------------------------------

    def _decide(self, row: DueDeadline, moment: _Moment) -> _Decision:
        now = moment.now
        move = {"id": row.id, "stage": row.stage, "next_due_at": row.next_due_at}
        stage = row.stage
        if row.status != DeadlineStatus.OPEN or not row.state.is_open or row.name in NAG_FREE or _history(row):
            return _Decision(move={**move, "new_stage": stage, "new_next": None})
        fired: list[Step] = []
        later: Step | None = None
        for step in self.schedule.iter_steps(row.policy, row.started_at, row.due_at):
            if step.index < stage:
                continue
            if step.at > now:
                later = step
                break
            fired.append(step)
        miss = None
        if row.name == DeadlineName.ACCEPT and row.unit_code and any(s.kind == "overdue" for s in fired):
            # passed unmet, not counted yet (the overdue notice is still to come): against the unit that has it
            miss = {
                "deadline_id": row.id,
                "ticket_id": row.ticket_id,
                "unit_code": row.unit_code,
                "period_start": period_start(row.due_at, self.nags.three_misses.period_months),
                "missed_at": row.due_at,
            }
        if not fired:  # nothing due after all (the config changed): look again at the next step
            return _Decision(move={**move, "new_stage": stage, "new_next": _after(later, now)}, miss=miss)
        urgent = row.kind in self._urgent
        to_duty = False
        if not moment.allowed:
            if urgent and not moment.in_window:
                to_duty = bool(moment.duty)
                wait = not moment.duty
            else:
                wait = not urgent  # urgent in quiet hours, inside the window: as in the day
            if wait:
                wake = moment.opens
                if row.due_at > now:
                    wake = min(wake, row.due_at)  # look at the due time anyway: a missed accept counts then
                return _Decision(move={**move, "new_stage": stage, "new_next": wake}, miss=miss, waiting=True)
        new_stage = fired[-1].index + 1
        key = f"{row.id}:{int(row.due_at.timestamp())}:{stage}-{new_stage}"
        item, told = self._item(row, fired, key, urgent, moment.duty if to_duty else None)
        move = {**move, "new_stage": new_stage, "new_next": _after(later, now)}
        return _Decision(move=move, item=item, told=told, miss=miss)

    def _item(
        self, row: DueDeadline, fired: Sequence[Step], key: str, urgent: bool, duty: list[str] | None
    ) -> tuple[DueItem, Told]:
        """The deadline's part in the tick's messages, and what each recipient hears of it (for the record)."""
        # the office's review of a return is the dispatchers' to meet, in the office's group
        review = row.name == DeadlineName.RETURN_REVIEW
        unit = self.config.office_unit if review else self._unit(row.unit_code)
        handler = None if review else row.handler_userid
        responsible = self._holders[Role.DISPATCHER] if review else self._responsible(unit, handler)
        overdue = any(s.after_due for s in fired)
        private: dict[str, Section] = {}
        group: str | None = None
        mention: tuple[str, ...] = ()
        told: dict[accountability.Audience, tuple[NotificationKind, int | None]] = {}
        if duty is not None:
            private = {userid: "duty" for userid in duty}
            told = {accountability.member(userid): (NotificationKind.DUTY, None) for userid in duty}
        else:
            if any(s.kind in ("reminder", "overdue") for s in fired):
                group = unit.code if unit is not None else None
                mention = tuple(responsible)
                if group is not None:
                    due = [s for s in fired if s.kind == "overdue"]
                    told[accountability.group(group)] = (
                        (NotificationKind.OVERDUE, due[0].level or None) if due else (NotificationKind.REMINDER, None)
                    )
            if not overdue:
                for userid in responsible if review else [handler] if handler else []:
                    private[userid] = "mine"
                    told[accountability.member(userid)] = (NotificationKind.REMINDER, None)
            else:
                # each level, and what it heard last (a repeat covers every level)
                levels: dict[int, tuple[NotificationKind, int | None]] = {}
                for s in fired:
                    if s.kind in ("overdue", "escalation") and s.level:
                        levels[s.level] = (NotificationKind(s.kind), s.level)
                    elif s.kind == "repeat":
                        levels.update(
                            dict.fromkeys(range(1, len(self.nags.escalation) + 1), (NotificationKind.REPEAT, s.level))
                        )
                for level in sorted(levels):
                    role = self.nags.escalation[level - 1]
                    for userid in self._audience(role, unit, responsible):
                        section: Section = "mine" if userid in responsible else "escalation"
                        if private.get(userid) != "mine":
                            private[userid] = section
                        told.setdefault(accountability.member(userid), levels[level])
        item = DueItem(
            key=key,
            deadline_id=row.id,
            ticket_id=row.ticket_id,
            ticket_no=row.ticket_no,
            name=row.name,
            due_at=row.due_at,
            text=row.text or "",
            citizen=Citizen.of(row),
            unit_code=row.unit_code,
            handler=handler,
            overdue=overdue,
            urgent=urgent,
            group=group,
            mention=mention,
            private=tuple(private.items()),
        )
        return item, told

    def _unit(self, code: str | None) -> Unit | None:
        if code is None:
            return self.config.office_unit
        unit = self.config.unit(code)
        if unit is None:
            log.warning("deadline engine: unit %s is not in the config; its work group is not reminded", code)
        return unit

    @staticmethod
    def _responsible(unit: Unit | None, handler: str | None) -> list[str]:
        """Who must act: the handler; unclaimed, the unit's emergency team, else its head."""
        if handler:
            return [handler]
        if unit is None:
            return []
        return list(unit.emergency_team) or [unit.head]

    def _audience(self, role: Role, unit: Unit | None, responsible: list[str]) -> list[str]:
        if role is Role.HANDLER:
            return responsible
        if role is Role.UNIT_HEAD:
            return unit.heads if unit is not None else []
        return self._holders[role]

    # --- digests ---------------------------------------------------------------------------------------------------

    def _messages(self, items: Sequence[DueItem], now: datetime) -> list[tuple[Reminder, list[Row]]]:
        """One message per work group and one per member for everything this batch has for them, each with the outbox
        rows it became."""
        groups: dict[str, _Digest] = defaultdict(_Digest)
        members: dict[str, _Digest] = defaultdict(_Digest)
        for item in items:
            if item.group is not None:
                digest = groups[item.group]
                digest.lines["overdue" if item.overdue else "soon"].append(item)
                digest.mention.update(dict.fromkeys(item.mention))
                digest.urgent |= item.urgent
            for userid, section in item.private:
                digest = members[userid]
                part = section if section != "mine" else ("mine_overdue" if item.overdue else "mine_soon")
                digest.lines[part].append(item)
                digest.urgent |= item.urgent or section == "duty"
        reminders = [
            Reminder(
                key=f"nag:{_digest_key(digest)}",
                unit=code,
                sections=digest.lines,
                mention=tuple(digest.mention),
                urgent=digest.urgent,
            )
            for code, digest in sorted(groups.items())
        ]
        reminders += [
            Reminder(key=f"nag:{_digest_key(digest)}", member=userid, sections=digest.lines, urgent=digest.urgent)
            for userid, digest in sorted(members.items())
        ]
        return [(reminder, self.rows([reminder], now)) for reminder in reminders]

    # --- three misses ----------------------------------------------------------------------------------------------

    async def _flags(self, now: datetime, result: TickResult) -> None:
        async with self.store.reading() as conn:
            if not await nag_store.pending_flags(conn):
                return
        months = self.nags.three_misses.period_months
        current = period_start(now, months)
        previous = period_start(current - timedelta(days=1), months)
        async with self.store.transaction() as conn:
            out: list[Row] = []
            sent: list[tuple[MissFlag, accountability.Audience, list[Row]]] = []
            for flag in await nag_store.pending_flags(conn):
                unit_code: str = flag["unit_code"]
                start: date = flag["period_start"]
                if start not in (current, previous):
                    # a period long closed (an old export imported): news to nobody now
                    await nag_store.mark_flag_notified(conn, unit_code, start, at=now)
                    log.info("three misses of unit %s in the period from %s: past, not sent", unit_code, start)
                    continue
                if not routine_allowed(self.config, now):
                    continue  # the dispatchers hear of it when the window opens
                if not await nag_store.mark_flag_notified(conn, unit_code, start, at=now):
                    continue
                misses = await nag_store.misses_of(conn, unit_code, start)
                whole = self._flag(unit_code, start, flag["misses"], misses)
                for audience, part in _flag_audiences(whole):  # one message each, as one notice would make them
                    rows = self.rows([part], now)
                    sent.append((part, audience, rows))
                    out += rows
                result.flags += 1
            queued = await outbox_repo.enqueue(conn, out)
            records = [
                record
                for part, audience, made in sent
                for record in accountability.flag_told(part, audience, made, queued, now)
            ]
            result.told += await notifications_repo.record(conn, records)
        result.messages += len(out)

    def _flag(self, unit_code: str, start: date, count: int, misses: Sequence[Mapping[Any, Any]]) -> MissFlag:
        return MissFlag(
            unit_code=unit_code,
            period_start=start,
            period_months=self.nags.three_misses.period_months,
            count=count,
            threshold=self.nags.three_misses.count,
            misses=misses,
            office_unit=self.config.office.unit,
            dispatchers=self._holders[Role.DISPATCHER],
        )


def _flag_audiences(flag: MissFlag) -> list[tuple[accountability.Audience, MissFlag]]:
    """The flag for each of its recipients alone: the office's group, then each dispatcher (the same notice key, so
    the same outbox keys as the whole)."""
    parts: list[tuple[accountability.Audience, MissFlag]] = []
    if flag.office_unit is not None:
        parts.append((accountability.group(flag.office_unit), replace(flag, dispatchers=())))
    parts += [
        (accountability.member(userid), replace(flag, office_unit=None, dispatchers=(userid,)))
        for userid in dict.fromkeys(flag.dispatchers)
    ]
    return parts


def _history(row: DueDeadline) -> bool:
    """A deadline of an imported ticket that was due by the import: the platform's past, never nagged (and no miss of
    it counted against a unit now). Planned so (no next step); this holds whatever else moved it since."""
    until = imported_until(row.source, row.received_at)
    return until is not None and row.due_at <= until


def _after(step: Step | None, now: datetime) -> datetime | None:
    """The next look at a row: at its next step, and never at or before ``now`` (a tick must not find it again)."""
    if step is None:
        return None
    return step.at if step.at > now else now + timedelta(seconds=1)


def _digest_key(digest: _Digest) -> str:
    keys = sorted(item.key for items in digest.lines.values() for item in items)
    return hashlib.sha256("|".join(keys).encode()).hexdigest()[:32]
