"""Who is on duty (值班): the config's 24-hour roster, and the takeovers (接班) that replace it for their period.

Pure: the takeovers come in as data; :mod:`bot.services.duty` reads and writes them. The rules:

* While one or more takeovers are active, their members are on duty and the roster is not (a takeover replaces the
  roster for its period). Otherwise whoever the roster has on (``BotConfig.on_duty``).
* A takeover made at ``t`` lasts until the end of the roster shift on at ``t`` (the latest end when several are on),
  else until the next roster shift starts; never longer than ``duty.takeover_max`` (24 h). With no roster shift on
  or due within :data:`HORIZON` (an empty roster), it lasts ``duty.takeover_default`` (12 h).
* A takeover ends early when its member hands back (交班) or another member takes over; ``ended_at`` says when.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from config.model import BotConfig

# how far the roster is looked at, ahead (the next shift) and back (a shift's start): a weekly roster repeats in 7 days
HORIZON = timedelta(days=8)


@dataclass(frozen=True, slots=True, kw_only=True)
class Takeover:
    """A member on duty in place of the roster, from ``starts_at`` until ``ends_at`` (or ``ended_at``, if earlier)."""

    id: int
    userid: str
    starts_at: datetime
    ends_at: datetime
    ended_at: datetime | None = None

    @property
    def until(self) -> datetime:
        """When it stops (or stopped): handed back or relieved early, else as planned."""
        if self.ended_at is not None and self.ended_at < self.ends_at:
            return self.ended_at
        return self.ends_at

    def active(self, at: datetime) -> bool:
        return self.starts_at <= at < self.until


@dataclass(frozen=True, slots=True, kw_only=True)
class Watch:
    """One member on duty for a stretch: who, from when, until when, and by which takeover (None: the roster)."""

    userid: str
    starts_at: datetime
    ends_at: datetime
    takeover_id: int | None = None

    @property
    def by_takeover(self) -> bool:
        return self.takeover_id is not None


class DutyRoster:
    """The roster of ``config`` with ``takeovers`` (any that matter around the times asked about)."""

    def __init__(self, config: BotConfig, takeovers: Iterable[Takeover] = ()) -> None:
        self.config = config
        self.tz = config.tz
        self.takeovers = sorted(takeovers, key=lambda t: (t.starts_at, t.id))

    def _aware(self, at: datetime) -> datetime:
        return at.replace(tzinfo=self.tz) if at.tzinfo is None else at.astimezone(self.tz)

    # -- the roster alone ---------------------------------------------------------------------------------------

    def shifts(self, start: datetime, end: datetime) -> list[Watch]:
        """The roster's shifts that overlap [start, end), by start (roster order at equal starts)."""
        start, end = self._aware(start), self._aware(end)
        found: list[tuple[datetime, int, Watch]] = []
        day, last = start.date() - timedelta(days=1), end.date()
        while day <= last:
            for index, shift in enumerate(self.config.duty_roster):
                period = shift.period_on(day)
                if period is None:
                    continue
                lo, hi = period[0].replace(tzinfo=self.tz), period[1].replace(tzinfo=self.tz)
                if lo < end and hi > start:
                    found.append((lo, index, Watch(userid=shift.userid, starts_at=lo, ends_at=hi)))
            day += timedelta(days=1)
        found.sort(key=lambda item: (item[0], item[1]))
        return [watch for _lo, _index, watch in found]

    def takeover_end(self, at: datetime) -> datetime:
        """Where a takeover made at ``at`` ends (see the module's rules)."""
        at = self._aware(at)
        settings = self.config.duty
        ahead = self.shifts(at, at + HORIZON)
        covering = [w.ends_at for w in ahead if w.starts_at <= at]
        upcoming = [w.starts_at for w in ahead if w.starts_at > at]
        if covering:
            end = max(covering)
        elif upcoming:
            end = min(upcoming)
        else:
            return at + settings.takeover_default.natural()
        return min(end, at + settings.takeover_max.natural())

    # -- with the takeovers -------------------------------------------------------------------------------------

    def active_takeovers(self, at: datetime) -> list[Takeover]:
        at = self._aware(at)
        return [t for t in self.takeovers if t.active(at)]

    def on_duty(self, at: datetime) -> list[str]:
        """Userids on duty at ``at``: the active takeovers' members if any, else the roster's, without repeats."""
        taken = self.active_takeovers(at)
        if taken:
            return list(dict.fromkeys(t.userid for t in taken))
        return self.config.on_duty(self._aware(at))

    def watches(self, at: datetime) -> list[Watch]:
        """Who is on duty at ``at``, each with the stretch they are on for: a takeover's period, or their roster
        shifts run together (a night shift followed by the same member's weekend shift is one stretch), cut where
        a takeover starts or ended."""
        at = self._aware(at)
        taken = self.active_takeovers(at)
        if taken:
            first: dict[str, Takeover] = {}
            for t in taken:
                first.setdefault(t.userid, t)
            return [
                Watch(userid=t.userid, starts_at=t.starts_at, ends_at=t.until, takeover_id=t.id) for t in first.values()
            ]
        around = self.shifts(at - HORIZON, at + HORIZON)
        # the roster is cut where a takeover begins after ``at`` and where one ended before it
        later = [t.starts_at for t in self.takeovers if t.starts_at > at]
        earlier = [t.until for t in self.takeovers if t.starts_at <= at and t.until <= at]
        cut_end, cut_start = min(later, default=None), max(earlier, default=None)
        out = []
        for userid in self.config.on_duty(at):
            mine = [w for w in around if w.userid == userid]
            start = min((w.starts_at for w in mine if w.starts_at <= at < w.ends_at), default=at)
            end = max((w.ends_at for w in mine if w.starts_at <= at < w.ends_at), default=at)
            changed = True
            while changed:  # run the member's touching or overlapping shifts together
                changed = False
                for w in mine:
                    if w.starts_at <= end < w.ends_at:
                        end, changed = w.ends_at, True
                    if w.starts_at < start <= w.ends_at:
                        start, changed = w.starts_at, True
            if cut_end is not None:
                end = min(end, cut_end)
            if cut_start is not None:
                start = max(start, cut_start)
            out.append(Watch(userid=userid, starts_at=start, ends_at=end))
        return out

    def next_watches(self, at: datetime) -> tuple[datetime, list[Watch]] | None:
        """The next time after ``at`` that someone comes on duty who was not on just before (the next shift, past
        the stretches on at ``at``), within :data:`HORIZON`, and who is on then."""
        at = self._aware(at)
        points = {p for w in self.shifts(at, at + HORIZON) for p in (w.starts_at, w.ends_at)}
        points.update(p for t in self.takeovers for p in (t.starts_at, t.until))
        before = set(self.on_duty(at))
        for point in sorted(p for p in points if at < p <= at + HORIZON):
            now = set(self.on_duty(point))
            if now - before:
                return point, self.watches(point)
            before = now
        return None


__all__ = ["HORIZON", "DutyRoster", "Takeover", "Watch"]
