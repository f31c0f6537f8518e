"""bot/domain/workcal/overrides.py: the override file, read and applied."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from bot.domain.workcal import CalendarOverrides


def test_load_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "holidays.yaml"
    path.write_text(
        "# fictional\n"
        "2027:\n"
        "  complete: true\n"
        '  holidays: ["2027-01-01", "2027-02-06..2027-02-08", 2027-05-01]\n'
        '  workdays: ["2027-02-14"]\n'
        "2028:\n"
        '  holidays: ["2028-01-01"]\n',
        encoding="utf-8",
    )
    ov = CalendarOverrides.load(path)
    assert ov.years == frozenset({2027})
    assert ov.holidays == frozenset(
        {date(2027, 1, 1), date(2027, 2, 6), date(2027, 2, 7), date(2027, 2, 8), date(2027, 5, 1)} | {date(2028, 1, 1)}
    )
    assert ov.workdays == frozenset({date(2027, 2, 14)})


def test_load_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "holidays.yaml"
    path.write_text("# nothing yet\n", encoding="utf-8")
    assert CalendarOverrides.load(path) == CalendarOverrides.empty()


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('2027:\n  holidays: ["2027-02-30"]\n', "2027-02-30"),
        ('2027:\n  holidays: ["2027-13-01"]\n', "2027-13-01"),
        ('2027:\n  holidays: ["next friday"]\n', "next friday"),
        ('2027:\n  holidays: ["2027-02-12..2027-02-06"]\n', "before its start"),
        ('2027:\n  holidays: ["2028-01-01"]\n', "outside year 2027"),
        ('2027:\n  holidays: ["2026-12-31..2027-01-02"]\n', "outside year 2027"),
        ('2027:\n  holidays: ["2027-02-06..2027-02-08"]\n  workdays: ["2027-02-07"]\n', "both"),
        ("2027:\n  complete: yes-please\n", "complete"),
        ("2027:\n  holiday: []\n", "unknown key"),
        ('2027:\n  holidays: "2027-01-01"\n', "list"),
        ('next-year:\n  holidays: ["2027-01-01"]\n', "not a year"),
        ("- 2027-01-01\n", "mapping"),
        ("2027: [1, 2]\n", "mapping"),
        ("2027:\n  holidays: [2027-01-01 10:00:00]\n", "date-time"),
        ('2027: {holidays: ["2027-01-01"\n', "not valid YAML"),
    ],
)
def test_malformed_override_files(tmp_path: Path, body: str, fragment: str) -> None:
    path = tmp_path / "holidays.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ValueError, match="holidays.yaml") as excinfo:
        CalendarOverrides.load(path)
    assert fragment in str(excinfo.value)
