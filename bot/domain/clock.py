"""Time is injected: one timezone (Asia/Shanghai), one clock object passed down."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Asia/Shanghai")


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(TZ)


class FrozenClock:
    """A clock tests and benchmarks move by hand."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")
        self._at = at.astimezone(TZ)

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = at.astimezone(TZ)

    def advance(self, **delta: float) -> datetime:
        from datetime import timedelta

        self._at = self._at + timedelta(**delta)
        return self._at


def local(dt: datetime) -> datetime:
    """The same instant in Asia/Shanghai; naive datetimes are taken as Shanghai local time."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=TZ)
    return dt.astimezone(TZ)


def utc(dt: datetime) -> datetime:
    return local(dt).astimezone(UTC)
