"""The scheduled reports (docs/reports.md), queued by the process that runs the deadline engine:

* **the weekly data** (每周三, ``reports.weekly``): Monday to Sunday of the week before, on the configured day and time,
  to the office's group and privately to each unit head for their own unit;
* **the 通报** (``reports.bulletin``): on the first working day after each period (two months by default), the six
  items of the sub-district's report in two messages, the chart and the workbook, to the office's group; the workbook
  also privately to each center lead;
* **the heads' morning brief** (``reports.brief``): on working days, privately to each unit head with something to
  say: what falls due today, what is overdue, the warning tickets, the accept misses of the three-misses period.

**Once only, and not lost.** A report's messages and its record in ``report_runs`` (its key: ``weekly:week-…``,
``bulletin:bimonth-…``, ``brief:2026-12-07``) commit in one transaction; a process that looks again, a restart or a
second process finds the record and queues nothing twice. A report not sent at its time (the bot was down) is sent
when the bot is back: the weekly data within a day, the 通报 within a week, the brief until noon; after that it is
left (a stale brief helps nobody; the figures are there on demand, /报表). The messages then go through the outbox
like any other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from bot.domain.clock import TZ, Clock
from bot.domain.nags import period_label, period_start
from bot.domain.reports.periods import Period, PeriodKind, last_complete
from bot.domain.reports.report import Report
from bot.domain.workcal import WorkCalendar
from bot.messages import reports as texts
from bot.messages.notice import Attachment, Notice
from bot.messages.workbook import workbook
from bot.services.apart import Apart
from bot.services.channels import Channels
from bot.services.reports import ReportService, masked_title
from config.model import BotConfig, minute_of_day
from config.vocabulary import Role
from notifiers.rows import Row, group_channel, notice_rows, takes_files
from store import outbox as outbox_repo
from store import report_items, report_runs
from store.core import Store

log = logging.getLogger(__name__)

WEEKLY_LATE = timedelta(days=1)  # how long after its time a missed report is still sent
BULLETIN_LATE = timedelta(days=7)
BRIEF_UNTIL = time(12, 0)  # a brief not sent by then (and an hour after its time) is left: it would be stale
BRIEF_GRACE = timedelta(hours=1)
RETRY_AFTER = timedelta(minutes=10)
# every deadline of the unit's (三个二's too), not the office's own (退单审核) or a window (退单期限)
BRIEF_NAMES = (
    "accept",
    "first_contact",
    "contact_20m",
    "on_site_2h",
    "solve_24h",
    "opinion_5d",
    "handle",
    "handle_internal",
    "rehandle",
)


@dataclass(frozen=True, slots=True)
class Due:
    key: str
    what: str  # weekly | bulletin | brief
    period: Period | None


class ScheduledReports:
    """Looks every minute (:meth:`run`) for a scheduled report whose time has come and that is not yet queued."""

    def __init__(
        self,
        store: Store,
        config: BotConfig,
        calendar: WorkCalendar,
        clock: Clock,
        channels: Channels,
        *,
        wake: Callable[[], None] | None = None,
        apart: Apart | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.calendar = calendar
        self.clock = clock
        self.channels = channels
        self.wake = wake
        self.apart = apart  # where the 通报's chart is drawn (None: in a thread)
        self.reports = ReportService(store, config)
        self._failed: dict[str, datetime] = {}  # when a report last failed (tried again RETRY_AFTER later)
        office = config.unit(config.office.unit)
        if (
            config.reports.bulletin.enabled
            and office is not None
            and group_channel(office, channels) is not None
            and not takes_files(office, channels)
        ):
            log.warning(
                "reports: the 通报's chart and workbook cannot reach the office's group (%s): the robot's long "
                "connection sends no files; give the group a webhook robot (units[].group.webhook_key) or make it "
                "an app chat, else they are dead-lettered (the texts go)",
                office.code,
            )

    def due(self, now: datetime) -> list[Due]:
        """The scheduled reports whose time has come by ``now`` and has not passed too long ago."""
        now = now.astimezone(TZ)
        settings = self.config.reports
        out = []
        weekly = settings.weekly
        if weekly.enabled:
            week = last_complete(PeriodKind.WEEK, now)
            at = _at(week.end + timedelta(days=weekly.weekday_index), weekly.at)
            if at <= now < at + WEEKLY_LATE:
                out.append(Due(f"weekly:{week.key}", "weekly", week))
        bulletin = settings.bulletin
        if bulletin.enabled:
            period = last_complete(PeriodKind(bulletin.period), now)
            day = period.end
            while not self.calendar.is_workday(day):
                day += timedelta(days=1)
            at = _at(day, bulletin.at)
            if at <= now < at + BULLETIN_LATE:
                out.append(Due(f"bulletin:{period.key}", "bulletin", period))
        brief = settings.brief
        today = now.date()
        if brief.enabled and self.calendar.is_workday(today):
            at = _at(today, brief.at)
            if at <= now < max(at + BRIEF_GRACE, datetime.combine(today, BRIEF_UNTIL, TZ)):
                out.append(Due(f"brief:{today.isoformat()}", "brief", None))
        return out

    async def run(self) -> list[str]:
        """Queues every report due now and not yet queued; the keys of those queued. A report that fails is logged
        and tried again :data:`RETRY_AFTER` later; the others go on."""
        now = self.clock.now()
        done = []
        for due in self.due(now):
            failed = self._failed.get(due.key)
            if failed is not None and now < failed + RETRY_AFTER:
                continue
            try:
                if await self._queue(due, now):
                    done.append(due.key)
            except Exception:
                self._failed[due.key] = now
                log.exception("reports: %s failed; trying again in %s", due.key, RETRY_AFTER)
        if done and self.wake is not None:
            self.wake()
        return done

    async def _queue(self, due: Due, now: datetime) -> bool:
        async with self.store.reading() as conn:
            if await report_runs.queued(conn, due.key):
                return False
        notices = await self._notices(due, now)
        rows: list[Row] = []
        for notice in notices:
            rows += notice_rows(notice, self.config, self.channels, at=now)
        async with self.store.transaction() as conn:
            if await report_runs.queued(conn, due.key):
                return False
            await report_runs.record(conn, due.key, now)
            if rows:
                await outbox_repo.enqueue(conn, rows)
        self._failed.pop(due.key, None)
        log.info("reports: queued %s (%d messages)", due.key, len(rows))
        return True

    async def _notices(self, due: Due, now: datetime) -> list[Notice]:
        if due.what == "brief":
            return await self._briefs(now)
        assert due.period is not None
        if due.what == "weekly":
            report = await self.reports.report(due.period, now=now, details=False, trend=False)
            return self._weekly(due.key, report)
        return await self._bulletin(due.key, due.period, now)

    def _weekly(self, key: str, report: Report) -> list[Notice]:
        office = self.config.office.unit
        notices = [Notice(key=f"report:{key}", unit=office, text=texts.weekly_office(report))]
        for line in report.units:
            unit = self.config.unit(line.code) if line.code else None
            if unit is None or (unit.code == office and texts.nothing(line.figures)):
                continue  # the office's own head reads the office's data in its group: no empty line besides
            notices.append(
                Notice(key=f"report:{key}:{unit.code}", members=[unit.head], text=texts.weekly_unit(report, line))
            )
        return notices

    async def _bulletin(self, key: str, period: Period, now: datetime) -> list[Notice]:
        office = self.config.office.unit
        name = f"{self.config.office.name}{period.label}通报"
        report, png, xlsx = await bulletin(self.reports, period, now, self.apart)
        attachments = [] if png is None else [Attachment("image", f"{name}.png", png)]
        book = Attachment("file", f"{name}.xlsx", xlsx)
        first, second = texts.bulletin(report)
        leads = [m.userid for m in self.config.members_with_role(Role.CENTER_LEAD)]
        return [
            # one lane: the second part and its attachments after the first
            Notice(key=f"report:{key}:1", unit=office, text=first, ordering_key=f"report:{key}"),
            Notice(
                key=f"report:{key}:2",
                unit=office,
                text=second,
                attachments=(*attachments, book),
                ordering_key=f"report:{key}",
            ),
            # each center lead privately: both parts and the workbook, in a lane of their own
            *(
                notice
                for userid in leads
                for notice in (
                    Notice(
                        key=f"report:{key}:lead:{userid}:1",
                        members=[userid],
                        text=first,
                        ordering_key=f"report:{key}:lead:{userid}",
                    ),
                    Notice(
                        key=f"report:{key}:lead:{userid}:2",
                        members=[userid],
                        text=second,
                        attachments=(book,),
                        ordering_key=f"report:{key}:lead:{userid}",
                    ),
                )
            ),
        ]

    async def _briefs(self, now: datetime) -> list[Notice]:
        today = now.date()
        day_end = datetime.combine(today + timedelta(days=1), time(), TZ)
        months = self.config.nags.three_misses.period_months
        start = period_start(now, months)
        codes = [u.code for u in self.config.units]
        async with self.store.reading() as conn:
            rows = await report_items.open_deadlines_for_brief(conn, codes, day_end, BRIEF_NAMES)
            misses = await report_items.accept_misses(conn, codes, start)
        by_unit: dict[str, list[texts.BriefItem]] = {}
        seen: set[tuple[str, str]] = set()
        for r in rows:
            if (r["ticket_no"], r["name"]) in seen:
                continue
            seen.add((r["ticket_no"], r["name"]))
            by_unit.setdefault(r["unit_code"], []).append(
                texts.BriefItem(
                    ticket_no=r["ticket_no"],
                    title=masked_title(r, 40),
                    deadline=r["name"],
                    due_at=r["due_at"],
                    warning=r["name"] == "rehandle",
                )
            )
        limit = self.config.nags.three_misses.count
        label = period_label(start, months)
        notices = []
        for unit in self.config.units:
            items, missed = by_unit.get(unit.code, []), misses.get(unit.code, 0)
            if not items and not missed:
                continue
            text = texts.brief(unit.name, items, misses=missed, limit=limit, period=label, now=now)
            notices.append(Notice(key=f"report:brief:{today.isoformat()}:{unit.code}", members=[unit.head], text=text))
        return notices


async def bulletin(
    reports: ReportService, period: Period, now: datetime, apart: Apart | None
) -> tuple[Report, bytes | None, bytes]:
    """The 通报: its report, its chart (None if it could not be drawn: the 通报 goes without it) and its workbook. At
    a large office each is most of a second, so they are made side by side: the chart is drawn in the process
    ``apart`` (bot.services.apart; without one, in a thread) from the figures as soon as they are counted, while the
    ticket lines are still read, then beside the workbook, which this process writes once the report is whole."""
    drawing: asyncio.Future[bytes | None] | None = None
    failed = False

    def figures(report: Report) -> None:
        nonlocal drawing
        if not failed:  # the figures of a report whose lines failed come after it (asyncio.gather): no chart then
            drawing = asyncio.ensure_future(_chart(report, apart))

    try:
        report = await reports.report(period, now=now, on_figures=figures)
        xlsx = await asyncio.to_thread(workbook, report)
    except BaseException:
        failed = True
        if drawing is not None:
            drawing.cancel()
        raise
    assert drawing is not None  # the report gives its figures before it returns
    return report, await drawing, xlsx


async def _chart(report: Report, apart: Apart | None) -> bytes | None:
    try:
        if apart is None:
            return await asyncio.to_thread(texts.chart, report)
        return await apart.run(texts.named_chart, **texts.chart_data(report))
    except Exception:  # noqa: BLE001 - no font, a bug, a process that failed: the 通报 goes without its chart
        log.exception("reports: the chart could not be drawn; the 通报 goes without it")
        return None


def _at(day: date, hhmm: str) -> datetime:
    """``day`` at the configured clock time ("24:00": the next midnight)."""
    return datetime.combine(day, time(), TZ) + timedelta(minutes=minute_of_day(hhmm))
