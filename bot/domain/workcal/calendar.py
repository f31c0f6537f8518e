"""The working-day calendar: each day's classification precomputed, and working-time arithmetic on it (see
:mod:`bot.domain.workcal` for the model)."""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Literal

import chinese_calendar
import numpy as np
import numpy.typing as npt

from bot.domain.clock import TZ
from bot.domain.workcal.overrides import CalendarOverrides
from config.durations import Duration

Source = Literal["official", "override", "fallback"]

_LOG = logging.getLogger(__name__)

DAY_SECONDS: Final = 86_400
_DAY_US: Final = DAY_SECONDS * 1_000_000
_UTC_OFFSET_SECONDS: Final = 8 * 3600  # Asia/Shanghai, fixed since 1992 (no DST)
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_MIN_FIRST_YEAR: Final = 1992
_MAX_LAST_YEAR: Final = 9998

# Fixed-date statutory holidays used by the fallback (全国年节及纪念日放假办法, as revised in 2024):
# 元旦 Jan 1, 劳动节 May 1-2, 国庆节 Oct 1-3. The lunar holidays are deliberately absent.
_FALLBACK_FIXED_HOLIDAYS: Final[tuple[tuple[int, int], ...]] = (
    (1, 1),
    (5, 1),
    (5, 2),
    (10, 1),
    (10, 2),
    (10, 3),
)

_SRC_OFFICIAL: Final = 0
_SRC_OVERRIDE: Final = 1
_SRC_FALLBACK: Final = 2
_SOURCE_NAMES: Final[tuple[Source, Source, Source]] = ("official", "override", "fallback")

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, kw_only=True)
class Coverage:
    """Which days of ``[start, start + days)`` are decided only by the fallback rule."""

    start: date
    days: int
    fallback_days: list[date]
    years_in_fallback: list[int]

    @property
    def ok(self) -> bool:
        return not self.fallback_days

    def warning(self) -> str | None:
        if self.ok:
            return None
        years = ", ".join(str(y) for y in self.years_in_fallback)
        return (
            f"calendar for {years} not covered by chinesecalendar or the override file; "
            "using the fallback (weekends + fixed-date holidays)"
        )


# --------------------------------------------------------------------------------------------------
# The calendar
# --------------------------------------------------------------------------------------------------


def _official_year_range() -> tuple[int, int]:
    """The years chinesecalendar has data for (the same rule chinesecalendar itself applies)."""
    keys = chinese_calendar.holidays.keys()
    return min(keys).year, max(keys).year


class WorkCalendar:
    """Working days and working-time arithmetic over ``[first_year, last_year]``. Thread-safe."""

    def __init__(
        self,
        overrides: CalendarOverrides | None = None,
        *,
        first_year: int = 2004,
        last_year: int = 2099,
        logger: logging.Logger | None = None,
    ) -> None:
        if not _MIN_FIRST_YEAR <= first_year <= last_year <= _MAX_LAST_YEAR:
            raise ValueError(
                f"invalid calendar span {first_year}..{last_year}: need "
                f"{_MIN_FIRST_YEAR} <= first_year <= last_year <= {_MAX_LAST_YEAR}"
            )
        self._overrides = overrides if overrides is not None else CalendarOverrides.empty()
        self._log = logger if logger is not None else _LOG
        self._first_year = first_year
        self._last_year = last_year
        self._official_first, self._official_last = _official_year_range()

        origin = date(first_year, 1, 1).toordinal()
        n_days = date(last_year + 1, 1, 1).toordinal() - origin
        self._origin = origin
        self._n_days = n_days
        self._origin_epoch_day = origin - _EPOCH_ORDINAL
        # year_start[y - first_year] = day index of Jan 1 of y; the last entry is n_days.
        self._year_start = np.array(
            [date(y, 1, 1).toordinal() - origin for y in range(first_year, last_year + 2)], dtype=np.int64
        )

        weekday0 = date(first_year, 1, 1).weekday()
        is_work: BoolArray = (weekday0 + np.arange(n_days, dtype=np.int64)) % 7 < 5
        src = np.full(n_days, _SRC_OFFICIAL, dtype=np.int8)

        def in_span(d: date) -> bool:
            return first_year <= d.year <= last_year

        # Official data, read from chinesecalendar's tables directly (its is_workday is slow).
        off_lo = max(first_year, self._official_first)
        off_hi = min(last_year, self._official_last)
        official_holidays = [d.toordinal() - origin for d in chinese_calendar.holidays if off_lo <= d.year <= off_hi]
        official_workdays = [d.toordinal() - origin for d in chinese_calendar.workdays if off_lo <= d.year <= off_hi]
        is_work[np.array(official_holidays, dtype=np.int64)] = False
        is_work[np.array(official_workdays, dtype=np.int64)] = True  # 调休 beats holiday, as upstream

        fallback_years: list[int] = []
        fallback_fixed: list[int] = []
        for year in range(first_year, last_year + 1):
            if self._official_first <= year <= self._official_last:
                continue
            lo, hi = self._year_bounds(year)
            if year in self._overrides.years:
                src[lo:hi] = _SRC_OVERRIDE
                continue
            src[lo:hi] = _SRC_FALLBACK
            fallback_years.append(year)
            fallback_fixed.extend(date(year, m, d).toordinal() - origin for m, d in _FALLBACK_FIXED_HOLIDAYS)
        is_work[np.array(fallback_fixed, dtype=np.int64)] = False

        # The override file beats everything (days outside the span cannot matter and are ignored).
        ov_holidays = np.array([d.toordinal() - origin for d in self._overrides.holidays if in_span(d)], dtype=np.int64)
        ov_workdays = np.array([d.toordinal() - origin for d in self._overrides.workdays if in_span(d)], dtype=np.int64)
        is_work[ov_holidays] = False
        is_work[ov_workdays] = True
        src[ov_holidays] = _SRC_OVERRIDE
        src[ov_workdays] = _SRC_OVERRIDE

        cum_work = np.zeros(n_days + 1, dtype=np.int64)
        np.cumsum(is_work, out=cum_work[1:])
        workday_index = np.flatnonzero(is_work).astype(np.int64)
        is_fallback = src == _SRC_FALLBACK
        cum_fallback = np.zeros(n_days + 1, dtype=np.int64)
        np.cumsum(is_fallback, out=cum_fallback[1:])
        fb_days = np.flatnonzero(is_fallback)

        # Padded with one non-working day so the instant "end of the span" (Jan 1 of last_year + 1,
        # 00:00) can be located too.
        self._is_work: BoolArray = np.append(is_work, False)
        self._cum_work: IntArray = cum_work
        self._workday_index: IntArray = workday_index
        self._n_work = int(workday_index.size)
        self._src = src
        self._cum_fallback: IntArray = cum_fallback
        self._fallback_years = frozenset(fallback_years)
        self._first_fb = int(fb_days[0]) if fb_days.size else n_days
        self._last_fb = int(fb_days[-1]) if fb_days.size else -1
        for arr in (self._is_work, self._cum_work, self._workday_index, self._src, self._cum_fallback):
            arr.flags.writeable = False
        # Plain-list mirrors: the scalar path is faster on Python ints than on numpy scalars.
        self._is_work_l: list[bool] = self._is_work.tolist()
        self._cum_work_l: list[int] = cum_work.tolist()
        self._workday_index_l: list[int] = workday_index.tolist()

        self._warned_years: set[int] = set()
        self._warn_lock = threading.Lock()

    # ---- properties ---------------------------------------------------------------------------

    @property
    def official_last_year(self) -> int:
        """The last year chinesecalendar has official data for."""
        return self._official_last

    @property
    def official_first_year(self) -> int:
        return self._official_first

    @property
    def first_year(self) -> int:
        return self._first_year

    @property
    def last_year(self) -> int:
        return self._last_year

    @property
    def overrides(self) -> CalendarOverrides:
        return self._overrides

    # ---- day classification -------------------------------------------------------------------

    def is_workday(self, d: date) -> bool:
        """Whether ``d`` is a working day. An aware datetime is taken as its Asia/Shanghai date."""
        i = self._day_index(d)
        self._check_fallback(i, i)
        return self._is_work_l[i]

    def source(self, d: date) -> Source:
        """Which rule decides ``d``: the override file, chinesecalendar's data, or the fallback."""
        i = self._day_index(d)
        return _SOURCE_NAMES[int(self._src[i])]

    def next_workday(self, d: date) -> date:
        """The first working day on or after ``d``."""
        i = self._day_index(d)
        k = self._cum_work_l[i]
        if k >= self._n_work:
            raise self._beyond_error(f"no working day on or after {d.isoformat()}")
        j = self._workday_index_l[k]
        self._check_fallback(i, j)
        return date.fromordinal(self._origin + j)

    def coverage(self, start: date, days: int = 30) -> Coverage:
        """Report the days of ``[start, start + days)`` decided only by the fallback rule."""
        if days < 0:
            raise ValueError(f"coverage: days must be >= 0, got {days}")
        i0 = self._day_index(start)
        i1 = i0 + days
        if i1 > self._n_days:
            raise ValueError(
                f"coverage: {start.isoformat()} + {days} days extends past the calendar span "
                f"{self._first_year}..{self._last_year}"
            )
        offsets = np.flatnonzero(self._src[i0:i1] == _SRC_FALLBACK)
        fallback_days = [date.fromordinal(self._origin + i0 + int(x)) for x in offsets]
        years = sorted({d.year for d in fallback_days})
        return Coverage(start=start, days=days, fallback_days=fallback_days, years_in_fallback=years)

    # ---- arithmetic ---------------------------------------------------------------------------

    def add(self, start: datetime, duration: Duration) -> datetime:
        """``start + duration``: working days on the working-time model, other units as natural time."""
        if duration.unit == "wd":
            return self.add_working_days(start, duration.value)
        _require_aware(start)
        return (start.astimezone(UTC) + duration.natural()).astimezone(TZ)

    def add_working_days(self, start: datetime, n: int) -> datetime:
        """The earliest instant at which ``n`` x 24 h of working time has elapsed since ``start``."""
        n = _check_n(n)
        i, us = self._locate(start)
        if n == 0:
            if self._is_work_l[i]:
                self._check_fallback(i, i)
                return start.astimezone(TZ)
            k = self._cum_work_l[i]
            if k >= self._n_work:
                raise self._beyond_error(f"{start.isoformat()} + 0 working days")
            j = self._workday_index_l[k]
            self._check_fallback(i, j)
            return self._midnight(j)
        target = self._cum_work_l[i] * _DAY_US + (us if self._is_work_l[i] else 0) + n * _DAY_US
        k = (target - 1) // _DAY_US  # the working day (0-based) in which the target is reached
        if k >= self._n_work:
            raise self._beyond_error(f"{start.isoformat()} + {n} working days")
        j = self._workday_index_l[k]
        self._check_fallback(i, j)
        return self._midnight(j) + timedelta(microseconds=target - k * _DAY_US)

    def add_working_days_many(self, starts: npt.NDArray[np.integer[Any]], n: int) -> IntArray:
        """Vectorised :meth:`add_working_days` on unix epoch seconds (int64 in, int64 out)."""
        n = _check_n(n)
        arr = np.asarray(starts)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"starts must be an integer array of epoch seconds, got dtype {arr.dtype}")
        t = arr.astype(np.int64, copy=False)
        if t.size == 0:
            return np.array(t, dtype=np.int64, copy=True)
        local_days, sec = np.divmod(t + _UTC_OFFSET_SECONDS, DAY_SECONDS)
        i = local_days - self._origin_epoch_day
        bad = (i < 0) | (i > self._n_days) | ((i == self._n_days) & (sec != 0))
        if bad.any():
            first_bad = int(t.ravel()[int(np.argmax(bad.ravel()))])
            raise self._span_error(f"start {first_bad} ({datetime.fromtimestamp(first_bad, TZ).isoformat()})")
        cum = self._cum_work[i]
        in_work = self._is_work[i]
        base = self._origin_epoch_day * DAY_SECONDS - _UTC_OFFSET_SECONDS  # epoch of day 0, 00:00
        if n == 0:
            # The first working day on or after day i is the cum[i]-th one (i itself if it works).
            if int(cum.max()) >= self._n_work:
                raise self._beyond_error("a start + 0 working days")
            j = self._workday_index[cum]
            result = np.where(in_work, t, base + j * DAY_SECONDS)
        else:
            target = cum * DAY_SECONDS + sec * in_work + n * DAY_SECONDS
            k = (target - 1) // DAY_SECONDS
            if int(k.max()) >= self._n_work:
                raise self._beyond_error(f"a start + {n} working days")
            j = self._workday_index[k]
            result = base + j * DAY_SECONDS + (target - k * DAY_SECONDS)
        if self._first_fb <= int(j.max()) and int(i.min()) <= self._last_fb:
            self._check_fallback_many(i, j)
        return result.astype(np.int64, copy=False)

    # Working time as a number: ``W`` in whole seconds since the calendar's first day, and back. For computations
    # done in working time throughout (the deadline engine's points); they log no fallback warning, since their
    # callers stay between a start and a due time whose computation did.

    def working_seconds_at(self, epoch: int) -> int:
        """``W`` at the instant ``epoch`` (Unix seconds): working seconds since the calendar's first day."""
        day, sec = divmod(epoch + _UTC_OFFSET_SECONDS, DAY_SECONDS)
        i = day - self._origin_epoch_day
        if not (0 <= i < self._n_days or (i == self._n_days and sec == 0)):
            raise self._span_error(f"instant {epoch}")
        return self._cum_work_l[i] * DAY_SECONDS + (sec if self._is_work_l[i] else 0)

    def instant_at_working_seconds(self, w: int) -> int:
        """The instant (Unix seconds) at which ``W`` reaches ``w``, always on a working day.

        Where ``W`` stands still (the days off after a working day) several instants have the same working time;
        this is the *latest*, 00:00 of the next working day, where :meth:`add_working_days` gives the earliest (the
        end of the working day before). So a point measured in working time never falls on a weekend or a holiday:
        Friday 22:00 plus 2 h of working time is Monday 00:00, not Saturday 00:00. Below 0: the first working day's
        00:00."""
        k = max(0, w) // DAY_SECONDS  # the working day (0-based) in which w lies, at its start when on a boundary
        if k >= self._n_work:
            raise self._beyond_error(f"working time {w}")
        return self._epoch_of_day(self._workday_index_l[k]) + max(0, w) - k * DAY_SECONDS

    def working_seconds_at_many(self, epochs: npt.NDArray[np.integer[Any]]) -> IntArray:
        """Vectorised :meth:`working_seconds_at`."""
        t = np.asarray(epochs).astype(np.int64, copy=False)
        day, sec = np.divmod(t + _UTC_OFFSET_SECONDS, DAY_SECONDS)
        i = day - self._origin_epoch_day
        bad = (i < 0) | (i > self._n_days) | ((i == self._n_days) & (sec != 0))
        if bad.any():
            raise self._span_error(f"instant {int(t[np.argmax(bad)])}")
        return (self._cum_work[i] * DAY_SECONDS + sec * self._is_work[i]).astype(np.int64, copy=False)

    def instant_at_working_seconds_many(self, ws: npt.NDArray[np.integer[Any]]) -> IntArray:
        """Vectorised :meth:`instant_at_working_seconds`."""
        w = np.maximum(np.asarray(ws).astype(np.int64, copy=False), 0)
        k = w // DAY_SECONDS
        if k.size and int(k.max()) >= self._n_work:
            raise self._beyond_error("a working time")
        base = self._origin_epoch_day * DAY_SECONDS - _UTC_OFFSET_SECONDS
        return (base + self._workday_index[k] * DAY_SECONDS + w - k * DAY_SECONDS).astype(np.int64, copy=False)

    def _epoch_of_day(self, i: int) -> int:
        return (self._origin_epoch_day + i) * DAY_SECONDS - _UTC_OFFSET_SECONDS

    def working_seconds_between(self, a: datetime, b: datetime) -> int:
        """Working time elapsed from ``a`` to ``b`` in whole seconds; negative if ``b < a``."""
        ia, ua = self._locate(a)
        ib, ub = self._locate(b)
        diff = self._working_us(ib, ub) - self._working_us(ia, ua)
        self._check_fallback(min(ia, ib), max(ia, ib))
        seconds = abs(diff) // 1_000_000
        return seconds if diff >= 0 else -seconds

    # ---- internals ----------------------------------------------------------------------------

    def _year_bounds(self, year: int) -> tuple[int, int]:
        k = year - self._first_year
        return int(self._year_start[k]), int(self._year_start[k + 1])

    def _span_error(self, what: str) -> ValueError:
        return ValueError(
            f"{what} is outside the working calendar span {self._first_year}-01-01..{self._last_year}-12-31"
        )

    def _beyond_error(self, what: str) -> ValueError:
        return ValueError(f"{what} ends after the working calendar span (last year {self._last_year})")

    def _day_index(self, d: date) -> int:
        if isinstance(d, datetime):
            d = _require_aware(d).astimezone(TZ).date()
        i = d.toordinal() - self._origin
        if not 0 <= i < self._n_days:
            raise self._span_error(d.isoformat())
        return i

    def _locate(self, dt: datetime) -> tuple[int, int]:
        """(day index, microseconds since local midnight); accepts the span's end instant too."""
        loc = _require_aware(dt).astimezone(TZ)
        i = loc.toordinal() - self._origin
        us = ((loc.hour * 60 + loc.minute) * 60 + loc.second) * 1_000_000 + loc.microsecond
        if not (0 <= i < self._n_days or (i == self._n_days and us == 0)):
            raise self._span_error(loc.isoformat())
        return i, us

    def _working_us(self, i: int, us: int) -> int:
        return self._cum_work_l[i] * _DAY_US + (us if self._is_work_l[i] else 0)

    def _midnight(self, i: int) -> datetime:
        d = date.fromordinal(self._origin + i)
        return datetime(d.year, d.month, d.day, tzinfo=TZ)

    def _year_of(self, i: int) -> int:
        return self._first_year + int(np.searchsorted(self._year_start, i, side="right")) - 1

    def _check_fallback(self, i: int, j: int) -> None:
        """Log (once per year) if any day in ``[i, j]`` is decided by the fallback rule."""
        if j < self._first_fb or i > self._last_fb:
            return
        hi = min(j, self._n_days - 1)
        if self._cum_fallback[hi + 1] - self._cum_fallback[i] <= 0:
            return
        for year in range(self._year_of(i), self._year_of(hi) + 1):
            if year in self._fallback_years and year not in self._warned_years:
                lo_y, hi_y = self._year_bounds(year)
                lo, up = max(i, lo_y), min(hi, hi_y - 1)
                if self._cum_fallback[up + 1] - self._cum_fallback[lo] > 0:
                    self._warn_year(year)

    def _check_fallback_many(self, i: IntArray, j: IntArray) -> None:
        j = np.minimum(j, self._n_days - 1)
        for year in sorted(self._fallback_years - self._warned_years):
            lo_y, hi_y = self._year_bounds(year)
            lo = np.maximum(i, lo_y)
            up = np.minimum(j, hi_y - 1)
            hit = (lo <= up) & (self._cum_fallback[up + 1] - self._cum_fallback[np.minimum(lo, up)] > 0)
            if hit.any():
                self._warn_year(year)

    def _warn_year(self, year: int) -> None:
        with self._warn_lock:
            if year in self._warned_years:
                return
            self._warned_years.add(year)
        self._log.warning(
            "calendar for %d not covered by chinesecalendar or the override file; using the fallback "
            "(weekends + fixed-date holidays Jan 1, May 1-2, Oct 1-3). Lunar holidays and make-up "
            "working days (调休) are unknown: enter the State Council schedule in the override file",
            year,
        )


def _require_aware(dt: datetime) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"naive datetime {dt.isoformat()}: pass a timezone-aware datetime")
    return dt


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise TypeError(f"number of working days must be an integer, got {n!r}")
    n = int(n)
    if n < 0:
        raise ValueError(f"number of working days must be >= 0, got {n}")
    return n


@functools.cache
def default_calendar() -> WorkCalendar:
    """A shared calendar without overrides (official data + fallback), built once."""
    return WorkCalendar()
