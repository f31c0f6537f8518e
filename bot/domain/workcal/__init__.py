"""The official Chinese working-day calendar and deadline arithmetic on it.

Day classification
==================
Every calendar day in ``[first_year, last_year]`` is either a working day or a day off. The decision
is taken, in order of precedence, from:

1. the **override file** (``config/holidays.yaml``, see ``config/holidays.example.yaml``): its
   ``holidays`` are days off and its ``workdays`` are make-up working days (调休), whatever any other
   source says;
2. the **official data** shipped by ``chinesecalendar`` (the State Council schedule), for the years
   that package covers (detected from its data, e.g. 2004-2026 for chinesecalendar 1.11);
3. for a year the override file declares ``complete: true`` but chinesecalendar does not cover:
   weekends off, every other day a working day, plus the override's own holidays/workdays (so the
   override file must then list *every* holiday of that year, including 元旦/劳动节/国庆节);
4. otherwise the **fallback**: weekends off, plus the fixed-date statutory holidays 元旦 (Jan 1),
   劳动节 (May 1-2) and 国庆节 (Oct 1-3) off; every other day a working day.

The fallback is only an approximation. The lunar holidays (春节 Spring Festival incl. 除夕, 清明节
Qingming, 端午节 Dragon Boat, 中秋节 Mid-Autumn), the bridging days around every holiday and the
make-up working days (调休) cannot be known before the State Council publishes its yearly notice
(国务院办公厅关于XXXX年部分节假日安排的通知), usually in November/December of the previous year. A deadline
computed on a fallback day may therefore be off by several days; the calendar logs a WARNING the
first time (per calendar instance) a computation relies on the fallback for a given year, and
:meth:`WorkCalendar.coverage` reports fallback days for ``/healthz``. Enter the official schedule
in the override file (``complete: true``) as soon as it is published, or upgrade chinesecalendar.

The working-time model
======================
A working day contributes 24 h of *working time* (00:00-24:00, Asia/Shanghai local time); a day off
contributes none. ``W(t)`` is the working time elapsed from the start of the calendar to instant
``t``: a continuous, non-decreasing function that grows at the rate of real time inside working
days and stays flat during days off.

* ``add_working_days(start, n)`` is the *earliest* instant ``t`` with ``W(t) - W(start) = n x 24 h``.
  Fri 15:00 + 1wd = Mon 15:00; Sat 10:00 + 1wd = Tue 00:00 (the end of Monday); dispatched at 15:00
  on the last working day before a holiday, + 1wd = 15:00 on the first working day after it. A
  result exactly at the end of a working day is that day's 24:00, i.e. the next calendar day 00:00.
* ``n = 0`` returns ``start`` when ``start`` is inside a working day, else 00:00 of the next
  working day (the moment the clock starts running).
* ``working_seconds_between(a, b)`` is ``W(b) - W(a)`` in whole seconds (truncated toward zero).

Asia/Shanghai has been a fixed UTC+08:00 without DST since 1992, so every local day is exactly
86,400 s long; the vectorised path relies on that and the constructor refuses earlier years.

Implementation
==============
At construction the calendar precomputes, over all days of ``[first_year, last_year]`` (day index
``i`` counted from Jan 1 of ``first_year``): ``is_work[i]``, ``cum_work[i]`` (working days strictly
before day ``i``) and ``workday_index[k]`` (the day index of the k-th working day). ``W`` and its
inverse are then O(1) lookups, for one datetime or for a numpy array of epoch seconds at once
(:mod:`.calendar`; the override file in :mod:`.overrides`).
"""

from bot.domain.workcal.calendar import Coverage, Source, WorkCalendar, default_calendar
from bot.domain.workcal.overrides import CalendarOverrides

__all__ = [
    "CalendarOverrides",
    "Coverage",
    "Source",
    "WorkCalendar",
    "default_calendar",
]
