"""A plain Python reading of the report's definitions (bot.domain.reports.figures), for the property test to hold the
report service to: the raw rows of the tickets, their deadlines and the audit log, walked with loops and datetime
comparisons. Written from the definitions, not from the service's code: nothing here is shared with
bot/services/reports.py or store/reports.py but the Rate enum and the Ratio a rate is reported as."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from bot.domain.reports.figures import Rate, Ratio
from bot.domain.reports.periods import Period
from store.core import Store
from store.models import audit_log, deadlines, tickets

# which rate each counted deadline is a numerator and denominator of (the docstring's list)
DEADLINE_RATE = {
    "accept": Rate.ACCEPT,
    "first_contact": Rate.FIRST_CONTACT,
    "contact_20m": Rate.CONTACT_20M,
    "handle": Rate.HANDLE,
    "rehandle": Rate.HANDLE,
}
COUNTS = (
    "received",
    "repeats",
    "media",
    "returns_asked",
    "returns_approved",
    "returns_rejected",
    "warnings",
    "dissatisfied",
    "unreachable",
    "accept_misses",
)


@dataclass
class Rows:
    tickets: list[dict[str, Any]]
    deadlines: list[dict[str, Any]]
    audit: list[dict[str, Any]]  # in the order written

    @property
    def by_id(self) -> dict[int, dict[str, Any]]:
        return {t["id"]: t for t in self.tickets}


async def read_rows(store: Store) -> Rows:
    async with store.reading() as conn:
        t = [dict(r) for r in (await conn.execute(select(tickets))).mappings()]
        d = [dict(r) for r in (await conn.execute(select(deadlines))).mappings()]
        a = [dict(r) for r in (await conn.execute(select(audit_log).order_by(audit_log.c.id))).mappings()]
    return Rows(t, d, a)


@dataclass
class Expected:
    """One unit's figures as the reference reads them."""

    rates: dict[Rate, Ratio] = field(default_factory=lambda: {r: Ratio() for r in Rate})
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    by_kind: dict[str, int] = field(default_factory=dict)
    by_category: dict[str, int] = field(default_factory=dict)
    rehandled: Ratio = field(default_factory=Ratio)

    def plus(self, other: Expected) -> Expected:
        out = Expected()
        for r in Rate:
            out.rates[r] = Ratio(self.rates[r].num + other.rates[r].num, self.rates[r].den + other.rates[r].den)
        for k in COUNTS:
            out.counts[k] = self.counts[k] + other.counts[k]
        for mine, a, b in (
            (out.by_kind, self.by_kind, other.by_kind),
            (out.by_category, self.by_category, other.by_category),
        ):
            for src in (a, b):
                for key, n in src.items():
                    mine[key] = mine.get(key, 0) + n
        out.rehandled = Ratio(self.rehandled.num + other.rehandled.num, self.rehandled.den + other.rehandled.den)
        return out

    def score(self, weights: Mapping[Rate, float]) -> float | None:
        parts = [(w, self.rates[r].num / self.rates[r].den) for r, w in weights.items() if w > 0 and self.rates[r].den]
        if not parts:
            return None
        return 100 * sum(w * v for w, v in parts) / sum(w for w, _ in parts)


def _add(ratio: Ratio, num: float, den: int) -> Ratio:
    return Ratio(ratio.num + num, ratio.den + den)


def _within(at: datetime | None, period: Period) -> bool:
    return at is not None and period.starts <= at < period.ends


def counted(ticket: Mapping[str, Any]) -> bool:
    """Cancelled tickets and tickets approved 不纳入测评 count in nothing but the tickets received."""
    return ticket["state"] != "cancelled" and ticket["evaluation"] != "excluded"


def counted_deadlines(rows: Rows, period: Period, now: datetime) -> list[tuple[dict[str, Any], bool]]:
    """(deadline, met on time) for every deadline a rate counts in ``period`` as of ``now``."""
    by_id = rows.by_id
    out = []
    for d in rows.deadlines:
        if d["name"] not in DEADLINE_RATE or not _within(d["due_at"], period):
            continue
        if d["status"] == "cancelled" or not counted(by_id[d["ticket_id"]]):
            continue
        if d["status"] == "open" and d["due_at"] > now:
            continue  # not due yet: not counted yet
        on_time = d["status"] == "met" and d["met_at"] is not None and d["met_at"] <= d["due_at"]
        out.append((d, on_time))
    return out


def first_submission_times(rows: Rows) -> dict[int, datetime]:
    """Each ticket's first submission (办结提交), from the audit log: a re-dispatch or a reopening does not undo it."""
    first: dict[int, datetime] = {}
    for e in rows.audit:
        if e["action"] == "submit":
            first.setdefault(e["ticket_id"], e["at"])
    return first


def latest_visits(rows: Rows) -> dict[int, dict[str, Any]]:
    """Each ticket's latest return visit (the one its results are), from the audit log; a reopening clears it."""
    latest: dict[int, dict[str, Any]] = {}
    for e in rows.audit:
        if e["action"] == "reopen":
            latest.pop(e["ticket_id"], None)
        elif e["action"] == "visit":
            latest[e["ticket_id"]] = e
    return latest


def figures(
    rows: Rows, period: Period, now: datetime, satisfaction_weights: Mapping[Any, float]
) -> dict[str | None, Expected]:
    """Every unit's figures of ``period`` as of ``now``."""
    out: dict[str | None, Expected] = {}

    def of(unit: str | None) -> Expected:
        return out.setdefault(unit, Expected())

    by_id = rows.by_id
    first_submissions = first_submission_times(rows)
    for d, on_time in counted_deadlines(rows, period, now):
        f = of(d["unit_code"])
        rate = DEADLINE_RATE[d["name"]]
        f.rates[rate] = _add(f.rates[rate], int(on_time), 1)
        if d["name"] == "accept" and not on_time:
            f.counts["accept_misses"] += 1
        if d["name"] == "rehandle":
            f.rehandled = _add(f.rehandled, int(on_time), 1)
    for t in rows.tickets:
        if _within(t["dispatched_at"], period):  # every ticket received, cancelled and excluded too
            f = of(t["unit_code"])
            f.counts["received"] += 1
            f.by_kind[t["kind"]] = f.by_kind.get(t["kind"], 0) + 1
            category = t["category"] or "未分类"
            f.by_category[category] = f.by_category.get(category, 0) + 1
            f.counts["repeats"] += bool(t["is_repeat"] or t["repeat_count"] > 1)
            f.counts["media"] += bool(t["is_media"])
        deadline = t["hotline_deadline"]
        if counted(t) and _within(deadline, period):
            submitted = first_submissions.get(t["id"])
            if submitted is not None or deadline <= now:  # answered, or its deadline has passed
                f = of(t["unit_code"])
                f.rates[Rate.REPLY] = _add(f.rates[Rate.REPLY], int(submitted is not None and submitted <= deadline), 1)
    for ticket_id, v in latest_visits(rows).items():
        t = by_id[ticket_id]
        if not counted(t) or not _within(v["at"], period):
            continue
        f = of(visit_unit(t, v))
        result, solved = v["data"].get("result"), v["data"].get("solved")
        if result in satisfaction_weights:
            f.rates[Rate.SATISFACTION] = _add(f.rates[Rate.SATISFACTION], satisfaction_weights[result], 1)
        if result == "dissatisfied":
            f.counts["dissatisfied"] += 1
        if result == "unreachable":
            f.counts["unreachable"] += 1
        if solved is not None:
            f.rates[Rate.SOLVED] = _add(f.rates[Rate.SOLVED], int(solved == "solved"), 1)
    audited = {
        "request_return": "returns_asked",
        "approve_return": "returns_approved",
        "reject_return": "returns_rejected",
    }
    for e in rows.audit:
        ticket = by_id.get(e["ticket_id"])
        if ticket is None or not counted(ticket) or not _within(e["at"], period):
            continue
        name = audited.get(e["action"])
        if name is None and e["action"] == "visit" and e["to_state"] == "warning":
            name = "warnings"
        if name is not None:  # under the unit the ticket was with then
            of(e["unit_code"] or ticket["unit_code"]).counts[name] += 1
    return out


def visit_unit(ticket: Mapping[str, Any], visit: Mapping[str, Any]) -> str | None:
    """The unit a visit counts for: the one that had the ticket at the visit (as for the warning it made)."""
    return visit["unit_code"] or ticket["unit_code"]


def keep(found: Mapping[str | None, Expected], units: Sequence[str] | None) -> dict[str | None, Expected]:
    return {u: f for u, f in found.items() if units is None or u in units}


def total(found: Iterable[Expected]) -> Expected:
    out = Expected()
    for f in found:
        out = out.plus(f)
    return out


# the ticket lists ---------------------------------------------------------------------------------------------


def late(rows: Rows, period: Period, now: datetime, units: Sequence[str] | None) -> list[tuple[str, str, datetime]]:
    by_id = rows.by_id
    return sorted(
        (by_id[d["ticket_id"]]["ticket_no"], d["name"], d["due_at"])
        for d, on_time in counted_deadlines(rows, period, now)
        if not on_time and (units is None or d["unit_code"] in units)
    )


def returns(rows: Rows, period: Period, units: Sequence[str] | None) -> list[tuple[str, datetime, str]]:
    """(ticket, asked at, outcome) of every return asked for in the period: what the next decision on the ticket
    (its head's refusal, the office's approval or rejection) made of it, pending if none came before the next request."""
    by_id = rows.by_id
    outcomes = {"approve_return": "approved", "reject_return": "rejected", "decline_return": "declined"}
    out = []
    for i, e in enumerate(rows.audit):
        t = by_id.get(e["ticket_id"])
        if e["action"] != "request_return" or t is None or not counted(t) or not _within(e["at"], period):
            continue
        if units is not None and (e["unit_code"] or t["unit_code"]) not in units:
            continue
        outcome = "pending"
        for later in rows.audit[i + 1 :]:
            if later["ticket_id"] != e["ticket_id"]:
                continue
            if later["action"] == "request_return":
                break
            if later["action"] in outcomes:
                outcome = outcomes[later["action"]]
                break
        out.append((t["ticket_no"], e["at"], outcome))
    return sorted(out)


def visits(rows: Rows, period: Period, units: Sequence[str] | None) -> list[tuple[str, str | None, bool]]:
    """(ticket, its latest visit's result, whether a visit in the period made it a warning ticket) of the tickets
    whose latest visit in the period was 不满意 or that a visit in the period made warning tickets."""
    latest = latest_visits(rows)
    warned = {
        e["ticket_id"]
        for e in rows.audit
        if e["action"] == "visit" and e["to_state"] == "warning" and _within(e["at"], period)
    }
    out = []
    for t in rows.tickets:
        v = latest.get(t["id"])
        unit = visit_unit(t, v) if v is not None else t["unit_code"]
        if not counted(t) or (units is not None and unit not in units):
            continue
        dissatisfied = v is not None and _within(v["at"], period) and v["data"].get("result") == "dissatisfied"
        if dissatisfied or t["id"] in warned:
            out.append((t["ticket_no"], v["data"].get("result") if v else None, t["id"] in warned))
    return sorted(out)


def repeats(rows: Rows, period: Period, units: Sequence[str] | None) -> list[str]:
    return sorted(
        t["ticket_no"]
        for t in rows.tickets
        if _within(t["dispatched_at"], period)
        and (t["is_repeat"] or t["repeat_count"] > 1)
        and (units is None or t["unit_code"] in units)
    )
