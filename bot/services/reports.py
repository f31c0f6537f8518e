"""Reports from the bot's own records (bot.domain.reports defines every figure; docs/reports.md says it in words):
the figures of a period per unit with the period before and the same period a year earlier, the office's total, the
chart rate's trend, and the tickets behind the figures. Read in one snapshot on SQLite (on PostgreSQL each statement
reads as of its start); the only write keeps the counts of settled periods it had to count (store.settled)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from bot.domain.bulk import collector_paused
from bot.domain.masking import Citizen, mask_text
from bot.domain.reports.figures import COUNTED_DEADLINES, DEADLINE_RATES, Figures, Rate, Ratio, total
from bot.domain.reports.periods import Period
from bot.domain.reports.report import LateItem, RepeatItem, Report, ReturnItem, UnitLine, VisitItem
from config.model import BotConfig
from config.vocabulary import DeadlineName
from store import report_items
from store import reports as counts_repo
from store import settled as settled_repo
from store.core import Conn, Store
from store.reports import Facts, Range

TREND = 12  # periods the chart's trend shows
log = logging.getLogger(__name__)
_UNCATEGORISED = "未分类"


def _ranges(periods: Iterable[Period]) -> list[Range]:
    return [(p.starts, p.ends) for p in periods]


class ReportService:
    def __init__(self, store: Store, config: BotConfig) -> None:
        self.store = store
        self.config = config
        reports = config.reports
        self.weights = {Rate(k): v for k, v in reports.score_weights.items()}
        self.targets = {Rate(k): v for k, v in reports.targets.items()}
        self.satisfaction = dict(reports.satisfaction_weights)

    async def report(
        self,
        period: Period,
        *,
        now: datetime,
        units: Sequence[str] | None = None,
        details: bool = True,
        trend: bool = True,
        chart_rate: Rate | None = None,
        on_figures: Callable[[Report], None] | None = None,
    ) -> Report:
        """The report of ``period`` for ``units`` (None: every unit and the office's total of all) as of ``now``.
        ``details``: with the ticket lines (the workbook's); ``trend``: with the chart rate
        over the last 12 periods. ``on_figures`` is given the report without its ticket lines as soon as its figures
        are counted, while the lines are still read: what is made of the figures alone can start (the 通报's chart,
        notifiers.reports)."""
        rate = chart_rate or Rate(self.config.reports.bulletin.chart_rate)
        three = self.config.nags.three_misses
        compared = [period, period.previous(), period.year_earlier()]
        to_keep = _ToKeep()
        Counted = tuple[list[dict[str | None, Figures]], list[tuple[Period, Ratio]]]

        async def counts(conn: Conn) -> Counted:
            """The figures of the compared periods, and the chart rate's trend (whose last two are among them)."""
            wanted = _ranges(compared)
            counted = await self.facts(conn, wanted, now, units, to_keep=to_keep)
            figures = dict(zip(wanted, map(self._figures, counted), strict=True))
            series = []
            if trend:
                periods = period.back(TREND)
                rest = [r for r in _ranges(periods) if r not in figures]
                more = await self.facts(conn, rest, now, units, only=rate, to_keep=to_keep)
                # the other periods' office totals only: their facts counted as one unit's
                office = {r: total(f.values()) for r, f in figures.items()}
                office.update(
                    (r, self._figures(f.pooled()).get(None, Figures())) for r, f in zip(rest, more, strict=True)
                )
                series = [(p, office[r].rates[rate]) for p, r in zip(periods, _ranges(periods), strict=True)]
            return [figures[r] for r in wanted], series

        def assemble(counted: Counted) -> Report:
            """The report of the figures counted, without its ticket lines."""
            (current, previous, year_ago), series = counted
            # ranks are among all units: a report of some units (one unit's, from its own index) has none
            ranked = self._lines(current, previous, year_ago, ranks=units is None)
            lines = ranked if units is None else [x for x in ranked if x.code in units]
            if units is None:
                t, tp, ty = (total(d.values()) for d in (current, previous, year_ago))
            else:
                t, tp, ty = (total(d[u] for u in units if u in d) for d in (current, previous, year_ago))
            office_total = self._line(None, "合计", t, tp, ty)
            made = Report(
                period=period,
                at=now,
                office=self.config.office.name,
                scope=None if units is None else tuple(units),
                total=office_total,
                units=lines,
                ranked=sum(1 for x in ranked if x.rank is not None),
                chart_rate=rate,
                trend=series,
                targets=self.targets,
                miss_limit=three.count if period.months == three.period_months else None,
                unit_names={u.code: u.name for u in self.config.units},
            )
            if on_figures is not None:
                on_figures(made)
            return made

        async def figures(conn: Conn) -> Report:
            return assemble(await counts(conn))

        async def items(conn: Conn) -> dict[str, Any]:
            return await self._items(conn, period, now, units)

        async def apart(read: Callable[[Conn], Awaitable[Any]]) -> Any:
            async with self.store.reading() as conn:
                return await read(conn)

        # tens of thousands of ticket lines at a large office: read and built with the collector paused
        # (bot.domain.bulk): decoding and building them is most of the report's allocations
        with collector_paused():
            if details and not self.store.single_process:
                # on PostgreSQL each statement reads as of its start anyway: the counts and the ticket lines on two
                # connections, so that the database reads the one while the bot masks the other
                report, lists = await asyncio.gather(apart(figures), apart(items))
            else:
                async with self.store.reading() as conn:  # SQLite: one snapshot
                    report = await figures(conn)
                    lists = await items(conn) if details else {}
        await self.keep(to_keep, now)
        return replace(report, **lists) if lists else report

    def _lines(
        self,
        current: dict[str | None, Figures],
        previous: dict[str | None, Figures],
        year_ago: dict[str | None, Figures],
        *,
        ranks: bool,
    ) -> list[UnitLine]:
        order = {u.code: i for i, u in enumerate(self.config.units)}
        codes = [u.code for u in self.config.units]
        # a unit no longer configured still has its past in the records
        codes += sorted({c for c in current if isinstance(c, str) and c not in order})
        lines = []
        for code in codes:
            f, fp, fy = (d.get(code) or Figures() for d in (current, previous, year_ago))
            name = unit.name if (unit := self.config.unit(code)) is not None else code
            lines.append(self._line(code, name, f, fp, fy))
        # ranked by the score as shown (one decimal): units that read the same share a rank
        shown: dict[str | None, float] = {x.code: round(x.score, 1) for x in lines if x.score is not None}
        scored = sorted(shown, key=lambda code: -shown[code])
        by_code: dict[str | None, int] = {}
        for i, scored_code in enumerate(scored):
            before = scored[i - 1] if i else None
            by_code[scored_code] = by_code[before] if i and shown[before] == shown[scored_code] else i + 1
        ranked = [replace(x, rank=by_code.get(x.code) if ranks else None) for x in lines]
        return sorted(ranked, key=lambda x: (x.rank is None, x.rank or 0, order.get(x.code or "", len(order))))

    def _line(self, code: str | None, name: str, f: Figures, fp: Figures, fy: Figures) -> UnitLine:
        """A unit's line (``code`` None: the office's total), its score and the scores it is compared with."""
        return UnitLine(
            code=code,
            name=name,
            figures=f,
            previous=fp,
            year_ago=fy,
            score=f.score(self.weights),
            previous_score=fp.score(self.weights),
            year_ago_score=fy.score(self.weights),
        )

    async def facts(
        self,
        conn: Conn,
        ranges: Sequence[Range],
        now: datetime,
        units: Sequence[str] | None,
        *,
        only: Rate | None = None,
        to_keep: _ToKeep | None = None,
    ) -> list[Facts]:
        """Each range's facts of ``units`` (None: all); ``only``: at least what that rate needs (the trend). A settled
        range's come from those kept (store.settled); one not kept yet is counted whole when the report is of every
        unit, and added to ``to_keep`` (kept by :meth:`keep`, after the reading)."""
        if only is None:
            names, kinds = COUNTED_DEADLINES, counts_repo.KINDS
        else:
            names = tuple(n.value for n, r in DEADLINE_RATES.items() if r is only)
            kinds = frozenset({"deadlines", *_KINDS_OF.get(only, ())})
        distinct = list(dict.fromkeys(ranges))
        settled = [r for r in distinct if settled_repo.settled(r[1], now)]
        done = await settled_repo.load(conn, settled, kinds, units) if settled else {}
        # a settled range not kept yet is counted whole (every kind, every unit) to be kept
        whole = [r for r in settled if r not in done] if units is None and to_keep is not None else []
        live = [r for r in distinct if r not in done and r not in whole]
        if whole and to_keep is not None and to_keep.epoch is None:
            to_keep.epoch = await settled_repo.epoch(conn)  # read before counting: a change after it is not kept
        if only is None and units is None:  # the live ranges want the same as the whole ones: one reading
            whole, live = whole + live, []
        done.update(zip(whole, await counts_repo.facts(conn, whole, now, COUNTED_DEADLINES), strict=True))
        done.update(zip(live, await counts_repo.facts(conn, live, now, names, units, kinds), strict=True))
        if to_keep is not None:
            to_keep.facts += [(r, done[r]) for r in settled if r in whole]
        return [done[r] for r in ranges]

    async def keep(self, to_keep: _ToKeep, now: datetime) -> None:
        """Keeps the facts of settled ranges counted by :meth:`facts`, unless a ticket they count changed since (a
        failure to keep them is logged: the report stands, the next one counts them again)."""
        if to_keep.epoch is None or not to_keep.facts:
            return
        try:
            async with self.store.transaction() as conn:
                await settled_repo.keep(conn, to_keep.epoch, to_keep.facts, now)
        except Exception:  # noqa: BLE001 - keeping is an optimisation: the report it was counted for stands
            log.warning("reports: could not keep the counts of settled periods", exc_info=True)

    def _figures(self, facts: Facts) -> dict[str | None, Figures]:
        out: dict[str | None, Figures] = defaultdict(Figures)
        for unit, name_, due, on_time in facts.deadlines:
            f = out[unit]
            name = DeadlineName(name_)
            ratio = Ratio(on_time, due)
            rate = DEADLINE_RATES[name]
            f.rates[rate] = f.rates[rate] + ratio
            if name is DeadlineName.ACCEPT:
                f.counts.accept_misses += due - on_time
            elif name is DeadlineName.REHANDLE:
                f.rehandled = f.rehandled + ratio
        for unit, due, on_time in facts.replies:
            f = out[unit]
            f.rates[Rate.REPLY] = f.rates[Rate.REPLY] + Ratio(on_time, due)
        for unit, result, solved, n in facts.visits:
            self._visits(out[unit], result, solved, n)
        for unit, kind, category_, received, repeats, media in facts.received:
            c = out[unit].counts
            c.received += received
            c.by_kind[kind] = c.by_kind.get(kind, 0) + received
            category = masked_category(category_) or _UNCATEGORISED
            c.by_category[category] = c.by_category.get(category, 0) + received
            c.repeats += repeats
            c.media += media
        for unit, what, n in facts.audits:
            c = out[unit].counts
            counted = _AUDITED[what]
            setattr(c, counted, getattr(c, counted) + n)
        return dict(out)

    def _visits(self, f: Figures, result: str | None, solved: str | None, n: int) -> None:
        weight = self.satisfaction.get(result) if result is not None else None  # type: ignore[call-overload]
        if weight is not None:
            f.rates[Rate.SATISFACTION] = f.rates[Rate.SATISFACTION] + Ratio(weight * n, n)
        if result == "dissatisfied":
            f.counts.dissatisfied += n
        elif result == "unreachable":
            f.counts.unreachable += n
        if solved is not None:
            f.rates[Rate.SOLVED] = f.rates[Rate.SOLVED] + Ratio(n if solved == "solved" else 0, n)

    def _suggested(self, text: str | None, citizen: Citizen) -> str | None:
        """A return's suggested unit: the code of the unit it names, else the member's text masked."""
        if not text:
            return None
        unit = self.config.unit_for_label(text)
        return unit.code if unit is not None else mask_text(" ".join(text.split()), citizen)

    async def _items(self, conn: Conn, period: Period, now: datetime, units: Sequence[str] | None) -> dict[str, Any]:
        start, end = period.starts, period.ends
        titles: dict[str, str] = {}  # a ticket's title masked once, however many of its deadlines are listed

        def title(row: dict[str, Any]) -> str:
            found = titles.get(row["ticket_no"])
            if found is None:
                found = titles[row["ticket_no"]] = masked_title(row)
            return found

        late = [
            LateItem(
                ticket_no=r["ticket_no"],
                unit=r["unit_code"],
                kind=r["kind"],
                category=_category(r),
                title=title(r),
                deadline=DeadlineName(r["name"]),
                due_at=r["due_at"],
                met_at=r["met_at"] if r["status"] == "met" else None,
                stopped_at=r["met_at"] if r["status"] == "missed" else None,
            )
            for r in await report_items.late_deadlines(conn, start, end, now, COUNTED_DEADLINES, units)
        ]
        entries = await report_items.return_entries(conn, start, end, units)
        returns = _returns(entries, start, end, units, self._suggested)
        visits = [
            VisitItem(
                ticket_no=r["ticket_no"],
                unit=r["unit_code"],
                category=_category(r),
                title=title(r),
                visited_at=r["visited_at"],
                result=r["satisfaction"],
                solved=r["visit_solved"],
                warning=bool(r["warning"]),
                rehandle_due=r["rehandle_due"],
                rehandle_met=r["rehandle_met"],
            )
            for r in await report_items.unsatisfied_visits(conn, start, end, units)
        ]
        repeats = [
            RepeatItem(
                ticket_no=r["ticket_no"],
                unit=r["unit_code"],
                category=_category(r),
                title=title(r),
                dispatched_at=r["dispatched_at"],
                count=max(r["repeat_count"], 2),
                repeat_of=r["repeat_of"],
                reason=r["repeat_reason"] or ("platform" if r["is_repeat"] else None),
            )
            for r in await report_items.repeat_tickets(conn, start, end, units)
        ]
        return {"late": late, "returns": returns, "visits": visits, "repeats": repeats}


@dataclass(slots=True)
class _ToKeep:
    """Facts of settled ranges counted in a report, with the epoch read before counting them (store.settled)."""

    epoch: int | None = None
    facts: list[tuple[Range, Facts]] = field(default_factory=list)


# the facts besides deadlines a rate's trend needs
_KINDS_OF = {Rate.REPLY: {"replies"}, Rate.SOLVED: {"visits"}, Rate.SATISFACTION: {"visits"}}

_AUDITED = {
    "request_return": "returns_asked",
    "approve_return": "returns_approved",
    "reject_return": "returns_rejected",
    "warning": "warnings",
}


@functools.lru_cache(maxsize=4096)
def masked_category(category: str | None) -> str | None:
    """A category as the platform sent it, masked (a free-text field: it could hold a name or a number) without a
    ticket's citizen, as the figures by category have none: an office has a few dozen, each masked once."""
    return mask_text(category) if category else category


def _category(row: dict[str, Any]) -> str | None:
    """A ticket row's category masked, with its citizen where their name or address could be in it."""
    category = row["category"]
    if not category:
        return category
    name, address = row.get("citizen_name"), row.get("address")
    if (name and name[0] in category) or (address and address in category):
        return mask_text(category, Citizen(name or None, address or None))
    return masked_category(category)


def masked_title(row: dict[str, Any], limit: int = 60) -> str:
    """A ticket row's title (the store reads its text where it has none) for a report or a brief: masked whole, then
    cut to ``limit``."""
    citizen = Citizen(row.get("citizen_name") or None, row.get("address") or None)
    return mask_text(row.get("title") or "", citizen)[:limit]


def _returns(
    entries: Sequence[dict[str, Any]],
    start: datetime,
    end: datetime,
    units: Sequence[str] | None,
    suggested: Callable[[str | None, Citizen], str | None],
) -> list[ReturnItem]:
    """Each request asked in ``[start, end)`` by one of ``units`` and what became of it: the entries of one ticket in
    time order, a request opening an item that the next decision closes. The entries also hold the ticket's later
    requests and other units' (a request closes the one before it): those are no items of this report."""
    items: list[ReturnItem] = []
    open_item: dict[str, Any] | None = None

    def close(outcome: str, at: datetime | None) -> None:
        nonlocal open_item
        if open_item is not None:
            items.append(ReturnItem(**open_item, outcome=outcome, decided_at=at))
        open_item = None

    last_ticket = None
    for e in entries:
        if e["ticket_id"] != last_ticket:
            close("pending", None)
            last_ticket = e["ticket_id"]
        action = e["action"]
        if action == "request_return":
            close("pending", None)
            if not (start <= e["at"] < end and (units is None or e["unit"] in units)):
                continue
            citizen = Citizen(e.get("citizen_name"), e.get("address"))
            open_item = {
                "ticket_no": e["ticket_no"],
                "unit": e["unit"],
                "asked_at": e["at"],
                "reason": mask_text(str(e["reason"] or e["note"] or ""), citizen),
                "suggested": suggested(e["suggested_unit"], citizen),
            }
        elif action in ("approve_return", "reject_return", "decline_return"):
            close({"approve_return": "approved", "reject_return": "rejected"}.get(action, "declined"), e["at"])
    close("pending", None)
    return items
