"""The override file (``config/holidays.yaml``): local days off and make-up working days (调休), per year."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

import yaml

_RANGE_RE = re.compile(r"^\s*(\S+?)\s*\.\.\s*(\S+)\s*$")
_OVERRIDE_KEYS: Final = frozenset({"complete", "holidays", "workdays"})


@dataclass(frozen=True)
class CalendarOverrides:
    """Local corrections to the calendar, normally read from ``config/holidays.yaml``."""

    holidays: frozenset[date]  # days off that override everything
    workdays: frozenset[date]  # make-up working days (调休) that override everything
    years: frozenset[int]  # years whose official schedule the file declares fully entered

    @classmethod
    def empty(cls) -> CalendarOverrides:
        return cls(frozenset(), frozenset(), frozenset())

    @classmethod
    def from_mapping(cls, data: Mapping[Any, Any] | None, *, source: str = "overrides") -> CalendarOverrides:
        """Build from the parsed YAML structure ``{year: {complete, holidays, workdays}}``.

        ``source`` names the origin (the file path) in error messages. Raises ``ValueError`` on any
        malformed content: a bad year key, an unknown key, a bad date, a range ``a..b`` with
        ``b < a``, a date outside its year key, or a day listed both as holiday and workday.
        """
        if data is None:
            return cls.empty()
        if not isinstance(data, Mapping):
            raise ValueError(
                f"{source}: expected a mapping of years to {{complete, holidays, workdays}}, got {type(data).__name__}"
            )
        holidays: set[date] = set()
        workdays: set[date] = set()
        years: set[int] = set()
        seen_years: set[int] = set()
        for raw_year, body in data.items():
            year = _parse_year_key(raw_year, source)
            if year in seen_years:
                raise ValueError(f"{source}: year {year} is listed twice")
            seen_years.add(year)
            where = f"{source}: year {year}"
            if body is None:
                body = {}
            if not isinstance(body, Mapping):
                raise ValueError(
                    f"{where}: expected a mapping with keys complete/holidays/workdays, got {type(body).__name__}"
                )
            unknown = sorted(str(k) for k in body if k not in _OVERRIDE_KEYS)
            if unknown:
                raise ValueError(
                    f"{where}: unknown key(s) {', '.join(unknown)} (allowed: complete, holidays, workdays)"
                )
            complete = body.get("complete", False)
            if not isinstance(complete, bool):
                raise ValueError(f"{where}: 'complete' must be true or false, got {complete!r}")
            year_holidays = _parse_day_list(body.get("holidays"), year, f"{where}, holidays")
            year_workdays = _parse_day_list(body.get("workdays"), year, f"{where}, workdays")
            both = sorted(year_holidays & year_workdays)
            if both:
                listed = ", ".join(d.isoformat() for d in both)
                raise ValueError(f"{where}: {listed} listed both as holiday and as workday")
            holidays |= year_holidays
            workdays |= year_workdays
            if complete:
                years.add(year)
        return cls(frozenset(holidays), frozenset(workdays), frozenset(years))

    @classmethod
    def load(cls, path: Path) -> CalendarOverrides:
        """Read and validate an override YAML file; ``ValueError`` names the file and the entry."""
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML: {exc}") from exc
        return cls.from_mapping(data, source=str(path))


def _parse_year_key(raw: object, source: str) -> int:
    if isinstance(raw, bool):
        raise ValueError(f"{source}: year key {raw!r} is not a year")
    if isinstance(raw, int):
        year = raw
    elif isinstance(raw, str) and raw.strip().isdigit():
        year = int(raw.strip())
    else:
        raise ValueError(f"{source}: year key {raw!r} is not a year")
    if not 1 <= year <= 9999:
        raise ValueError(f"{source}: year key {raw!r} is out of range")
    return year


def _parse_one_date(raw: object, where: str, entry: object) -> date:
    if isinstance(raw, datetime):
        raise ValueError(f"{where}: entry {entry!r}: expected a date (YYYY-MM-DD), not a date-time")
    if isinstance(raw, date):
        return raw
    if not isinstance(raw, str):
        raise ValueError(f"{where}: entry {entry!r}: expected a date string YYYY-MM-DD")
    text = raw.strip()
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ValueError(f"{where}: entry {entry!r}: {text!r} is not a date in the form YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{where}: entry {entry!r}: invalid date {text!r} ({exc})") from exc


def _parse_day_list(raw: object, year: int, where: str) -> set[date]:
    """Parse a list of ``YYYY-MM-DD`` days and inclusive ``a..b`` ranges, all inside ``year``."""
    if raw is None:
        return set()
    if isinstance(raw, str | date) or not isinstance(raw, Iterable):
        raise ValueError(f"{where}: expected a list of dates or ranges 'a..b', got {raw!r}")
    days: set[date] = set()
    for entry in raw:
        match = _RANGE_RE.match(entry) if isinstance(entry, str) else None
        if match:
            first = _parse_one_date(match.group(1), where, entry)
            last = _parse_one_date(match.group(2), where, entry)
            if last < first:
                raise ValueError(f"{where}: entry {entry!r}: range end {last} is before its start {first}")
        else:
            first = last = _parse_one_date(entry, where, entry)
        if first.year != year or last.year != year:
            raise ValueError(f"{where}: entry {entry!r} is outside year {year}")
        for ordinal in range(first.toordinal(), last.toordinal() + 1):
            days.add(date.fromordinal(ordinal))
    return days
