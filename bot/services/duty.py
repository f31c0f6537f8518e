"""The duty service: who is on duty (值班) now, for the deadline engine and the chat, and the takeovers (接班, 交班)
that change it, each in one transaction with its audit entry.

The rules are :mod:`bot.domain.duty`'s: the config's roster, replaced for their period by takeovers, which last until
the roster shift on at the time ends (else until the next starts), 24 h at most (``duty.takeover_max``), 12 h with
nothing on the roster (``duty.takeover_default``). A member may take over when they hold the duty role or are on the
roster, or are a dispatcher or an admin (:data:`TAKERS`).

* **Taking over** relieves whoever holds a takeover then (their takeover ends now); the roster's members are simply
  replaced until the takeover ends.
* **Taking over again** while holding a takeover extends it when the rule now gives a later end (a new 12 h with an
  empty roster, a shift that was added …), and otherwise changes nothing. A member the roster has on duty, with no
  takeover active, is on duty already: nothing changes either.
* **Handing back** ends the member's own takeover now; the roster (or nobody) is on duty again.
* **Once only:** with ``dedup`` (the chat message's key, as for ticket actions) a re-delivered message changes
  nothing and is answered as the first time.

Every change is in the audit log under the member's WeCom userid, without a ticket (``ticket_id`` NULL): actions
``duty_take``, ``duty_extend``, ``duty_relieved`` (another's takeover ended by this one) and ``duty_hand_back``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from bot.domain.clock import Clock
from bot.domain.duty import DutyRoster, Takeover, Watch
from bot.messages import refusals
from config.model import BotConfig
from config.vocabulary import Role
from store import audit as audit_repo
from store import duty as duty_repo
from store import inbox as inbox_repo
from store.core import Conn, Store

# who may take over the duty: the duty role (which the roster's members hold), dispatchers, admins
TAKERS: tuple[Role, ...] = (Role.DUTY, Role.DISPATCHER, Role.ADMIN)


class DutyRefused(Exception):
    """A duty change that cannot be made; ``message`` is a polite Chinese sentence for the chat. Nothing changed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True, kw_only=True)
class DutyStatus:
    """Who is on duty at ``at`` (each with from and until), and who comes on next, from when (None: nobody within
    a week)."""

    at: datetime
    on_duty: list[Watch]
    next_at: datetime | None = None
    next: list[Watch] | None = None

    @property
    def userids(self) -> list[str]:
        return [w.userid for w in self.on_duty]


@dataclass(frozen=True, slots=True, kw_only=True)
class DutyChange:
    """What a take or a hand-back did.

    ``status``: ``taken`` (a new takeover until ``until``), ``extended`` (the member's takeover now lasts until
    ``until``), ``held`` (the member already holds a takeover until ``until``: unchanged), ``on_roster`` (the roster
    has the member on duty until ``until``: unchanged), ``handed_back``. ``relieved``: members whose takeover this
    one ended. ``duplicate``: the message was applied before; nothing changed this time.
    """

    status: Literal["taken", "extended", "held", "on_roster", "handed_back"]
    userid: str
    at: datetime
    until: datetime | None = None
    relieved: tuple[str, ...] = ()
    duplicate: bool = False

    @property
    def changed(self) -> bool:
        return self.status in ("taken", "extended", "handed_back") and not self.duplicate


class DutyService:
    def __init__(self, store: Store, config: BotConfig, clock: Clock) -> None:
        self.store = store
        self.config = config
        self.clock = clock

    # --- reading -------------------------------------------------------------------------------------------------

    async def roster(self, at: datetime | None = None) -> DutyRoster:
        """The roster with the takeovers that matter from ``at`` on (and those ended within the last
        ``takeover_max``, for when the roster's members came back on). One indexed read."""
        at = at or self.clock.now()
        async with self.store.reading() as conn:
            return await self._roster(conn, at)

    async def _roster(self, conn: Conn, at: datetime) -> DutyRoster:
        since = at - self.config.duty.takeover_max.natural()
        rows = await duty_repo.takeovers_ending_after(conn, since)
        return DutyRoster(self.config, [_takeover(row) for row in rows])

    async def on_duty(self, at: datetime | None = None) -> list[str]:
        """The userids on duty at ``at`` (default: now): the active takeovers' members if any, else the roster's.
        Empty when nobody is; the caller decides what then (the office, say)."""
        at = at or self.clock.now()
        return (await self.roster(at)).on_duty(at)

    async def on_duty_in(self, conn: Conn, at: datetime) -> list[str]:
        """:meth:`on_duty`, read on ``conn``: inside a transaction of the caller's (a push written with its change)."""
        return (await self._roster(conn, at)).on_duty(at)

    async def current_shift(self, at: datetime | None = None) -> list[Watch]:
        """Who is on duty at ``at``, each with from and until (a takeover's period, or their roster stretch)."""
        at = at or self.clock.now()
        return (await self.roster(at)).watches(at)

    async def next_shift(self, at: datetime | None = None) -> tuple[datetime, list[Watch]] | None:
        """When someone not on duty at ``at`` next comes on, and who is on then; None: nobody within a week."""
        at = at or self.clock.now()
        return (await self.roster(at)).next_watches(at)

    async def status(self, at: datetime | None = None) -> DutyStatus:
        """:meth:`current_shift` and :meth:`next_shift` from one read."""
        at = at or self.clock.now()
        roster = await self.roster(at)
        upcoming = roster.next_watches(at)
        if upcoming is None:
            return DutyStatus(at=at, on_duty=roster.watches(at))
        return DutyStatus(at=at, on_duty=roster.watches(at), next_at=upcoming[0], next=upcoming[1])

    # --- changes -------------------------------------------------------------------------------------------------

    def may_take(self, userid: str) -> bool:
        return any(self.config.has_role(userid, role) for role in TAKERS)

    async def take(
        self,
        userid: str,
        at: datetime | None = None,
        *,
        by: str | None = None,
        note: str | None = None,
        dedup: tuple[str, str, str] | None = None,
    ) -> DutyChange:
        """``userid`` takes over the duty from ``at`` (default: now); ``by`` who asked (default: the member).
        ``dedup`` = (source, key, raw payload): an inbound message applied once only. Raises :class:`DutyRefused`
        when the member may not take over (nothing changed)."""
        at = at or self.clock.now()
        actor = by or userid
        if not self.may_take(userid):
            raise DutyRefused("forbidden", refusals.duty_forbidden(TAKERS))
        async with self.store.transaction() as conn:
            await duty_repo.lock(conn)
            if dedup is not None and not await self._first_time(conn, dedup, at):
                return await self._replayed(conn, userid, at, "take")
            roster = await self._roster(conn, at)
            active = roster.active_takeovers(at)
            end = roster.takeover_end(at)
            mine = next((t for t in active if t.userid == userid), None)
            if mine is not None:
                if end <= mine.until:
                    return DutyChange(status="held", userid=userid, at=at, until=mine.until)
                await duty_repo.extend_takeover(conn, mine.id, ends_at=end)
                await self._audit(
                    conn,
                    at,
                    actor,
                    "duty_extend",
                    {"takeover_id": mine.id, "userid": userid, "from": mine.until, "until": end},
                )
                return DutyChange(status="extended", userid=userid, at=at, until=end)
            if not active and userid in roster.on_duty(at):
                own = next(w for w in roster.watches(at) if w.userid == userid)
                return DutyChange(status="on_roster", userid=userid, at=at, until=own.ends_at)
            replaced = roster.on_duty(at)
            takeover_id = await duty_repo.insert_takeover(
                conn,
                {
                    "userid": userid,
                    "starts_at": at,
                    "ends_at": end,
                    "created_by": actor,
                    "created_at": at,
                    "ended_at": None,
                    "ended_by": None,
                    "note": note,
                },
            )
            await duty_repo.end_takeovers(conn, [t.id for t in active], at=at, by=actor)
            for other in active:
                await self._audit(
                    conn, at, actor, "duty_relieved",
                    {"takeover_id": other.id, "userid": other.userid, "by_takeover": takeover_id},
                )  # fmt: skip
            await self._audit(
                conn, at, actor, "duty_take",
                {"takeover_id": takeover_id, "userid": userid, "until": end, "replaces": replaced},
            )  # fmt: skip
            relieved = tuple(dict.fromkeys(t.userid for t in active))
            return DutyChange(status="taken", userid=userid, at=at, until=end, relieved=relieved)

    async def hand_back(
        self,
        userid: str,
        at: datetime | None = None,
        *,
        by: str | None = None,
        dedup: tuple[str, str, str] | None = None,
    ) -> DutyChange:
        """``userid`` hands their takeover back at ``at`` (default: now): the roster (or nobody) is on duty again.
        Raises :class:`DutyRefused` when the member holds no takeover then (nothing changed)."""
        at = at or self.clock.now()
        actor = by or userid
        async with self.store.transaction() as conn:
            await duty_repo.lock(conn)
            if dedup is not None and not await self._first_time(conn, dedup, at):
                return await self._replayed(conn, userid, at, "hand_back")
            roster = await self._roster(conn, at)
            mine = [t for t in roster.active_takeovers(at) if t.userid == userid]
            if not mine:
                raise DutyRefused("no_takeover", refusals.NO_TAKEOVER)
            await duty_repo.end_takeovers(conn, [t.id for t in mine], at=at, by=actor)
            for t in mine:
                await self._audit(
                    conn, at, actor, "duty_hand_back",
                    {"takeover_id": t.id, "userid": userid, "planned_until": t.ends_at},
                )  # fmt: skip
            return DutyChange(status="handed_back", userid=userid, at=at)

    async def _first_time(self, conn: Conn, dedup: tuple[str, str, str], at: datetime) -> bool:
        """Records the message (under its key) as applied; False when it was before (a re-delivery)."""
        source, key, payload = dedup
        inbox_id = await inbox_repo.record_inbound(
            conn, source=source, dedup_key=key, payload=payload, at=at, status="done"
        )
        return inbox_id is not None

    async def _replayed(self, conn: Conn, userid: str, at: datetime, what: Literal["take", "hand_back"]) -> DutyChange:
        """The answer to a message applied before: the state as it is (nothing changes)."""
        if what == "hand_back":
            return DutyChange(status="handed_back", userid=userid, at=at, duplicate=True)
        roster = await self._roster(conn, at)
        mine = next((t for t in roster.active_takeovers(at) if t.userid == userid), None)
        if mine is None:
            own = next((w for w in roster.watches(at) if w.userid == userid), None)
            if own is not None:  # the roster has the member on: so the first time it did, too
                return DutyChange(status="on_roster", userid=userid, at=at, until=own.ends_at, duplicate=True)
        return DutyChange(status="taken", userid=userid, at=at, until=mine.until if mine else None, duplicate=True)

    async def _audit(self, conn: Conn, at: datetime, actor: str, action: str, data: Mapping[str, Any]) -> None:
        await audit_repo.append_audit(
            conn,
            [
                {
                    "ticket_id": None,
                    "ticket_no": None,
                    "at": at,
                    "actor": actor,
                    "action": action,
                    "from_state": None,
                    "to_state": None,
                    "note": None,
                    "data": {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()},
                }
            ],
        )


def _takeover(row: Mapping[Any, Any]) -> Takeover:
    return Takeover(
        id=row["id"], userid=row["userid"], starts_at=row["starts_at"], ends_at=row["ends_at"], ended_at=row["ended_at"]
    )
