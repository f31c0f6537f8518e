"""The 24-hour duty roster and takeovers of it."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Self

from pydantic import model_validator

from config.model.fields import ClockTime, D, Model, NaturalDuration, UserId, Weekday, minute_of_day, seconds_of_day


class DutyShift(Model):
    """One line of the 24-hour duty roster. A shift whose end is not after its start runs into the next
    day (17:00-09:00); start == end is a full 24-hour shift. It belongs to the day it starts on."""

    userid: UserId
    weekdays: list[Weekday] = []  # ISO: 1 = Monday .. 7 = Sunday
    dates: list[date] = []
    start: ClockTime
    end: ClockTime

    @model_validator(mode="after")
    def _has_days(self) -> Self:
        if not self.weekdays and not self.dates:
            raise ValueError("give weekdays (1 = Monday .. 7 = Sunday) or dates")
        if self.start == "24:00":
            raise ValueError('start may not be 24:00; write "00:00"')
        return self

    def _starts_on(self, day: date) -> bool:
        return day.isoweekday() in self.weekdays or day in self.dates

    def covers(self, at: datetime) -> bool:
        """Whether the shift is on at ``at`` (a local, Asia/Shanghai wall-clock time)."""
        now = seconds_of_day(at)
        lo, hi = minute_of_day(self.start) * 60, minute_of_day(self.end) * 60
        today = at.date()
        if lo < hi:
            return self._starts_on(today) and lo <= now < hi
        return (self._starts_on(today) and now >= lo) or (self._starts_on(today - timedelta(days=1)) and now < hi)

    def period_on(self, day: date) -> tuple[datetime, datetime] | None:
        """The shift's start and end (naive local wall-clock times) when it starts on ``day``, else None.
        Consistent with :meth:`covers`: ``start <= at < end`` exactly when the shift of that day covers ``at``."""
        if not self._starts_on(day):
            return None
        midnight = datetime.combine(day, time())
        lo, hi = minute_of_day(self.start), minute_of_day(self.end)
        if hi <= lo:
            hi += 1440  # into the next day; start == end: 24 hours
        return midnight + timedelta(minutes=lo), midnight + timedelta(minutes=hi)


class DutySettings(Model):
    """Takeovers of the roster (/值班 接班). A takeover lasts until the roster shift on at the time ends, or, when
    none is on, until the next one starts; never longer than ``takeover_max``. When no roster shift is on or due
    within a week (or the roster is empty), it lasts ``takeover_default``."""

    takeover_max: NaturalDuration = D("24h")
    takeover_default: NaturalDuration = D("12h")

    @model_validator(mode="after")
    def _default_within_max(self) -> Self:
        if self.takeover_default.natural() > self.takeover_max.natural():
            raise ValueError(
                f"takeover_default {self.takeover_default} is longer than takeover_max {self.takeover_max}"
            )
        return self
