"""config/model/windows.py: the service window, quiet hours, the calendar overrides file."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.config.yaml_cases import BASE, issue_at, issues_of, line_with, load


def test_overrides_file_resolved_against_base_dir(tmp_path: Path) -> None:
    (tmp_path / "holidays.yaml").write_text("{}\n", encoding="utf-8")
    config = load(BASE + "calendar: {overrides_file: holidays.yaml}\n", base_dir=tmp_path)
    assert config.base_dir == tmp_path.resolve()
    assert config.calendar_overrides_path == tmp_path.resolve() / "holidays.yaml"


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        ("10:00", "10:00"),  # inside the window, outside quiet hours: at once
        ("05:00", "07:00"),  # before the window: quiet hours end after it opens
        ("06:30", "07:00"),
        ("22:30", "+07:00"),  # quiet hours: the next morning
        ("23:59", "+07:00"),
    ],
)
def test_routine_messages_wait_for_the_window_and_the_end_of_quiet_hours(at: str, expected: str) -> None:
    config = load(
        BASE + 'service_window: {start: "06:00", end: "24:00"}\nquiet_hours: {start: "22:00", end: "07:00"}\n'
    )
    day = datetime(2026, 11, 23, tzinfo=ZoneInfo("Asia/Shanghai"))
    hh, mm = (int(x) for x in at.split(":"))
    when = day.replace(hour=hh, minute=mm)
    ehh, emm = (int(x) for x in expected.lstrip("+").split(":"))
    wanted = day.replace(hour=ehh, minute=emm) + timedelta(days=1 if expected.startswith("+") else 0)
    assert config.routine_from(when) == wanted
    # without quiet hours: the window's opening
    plain = load(BASE + 'service_window: {start: "08:00", end: "18:00"}\n')
    assert plain.routine_from(day.replace(hour=19)) == day.replace(hour=8) + timedelta(days=1)
    assert plain.routine_from(day.replace(hour=7, minute=59)) == day.replace(hour=8)


def test_overrides_file_missing(tmp_path: Path) -> None:
    text = BASE + "calendar:\n  overrides_file: holidays.yaml\n"
    issue = issue_at(issues_of(text, base_dir=tmp_path), "calendar.overrides_file")
    assert issue.message == f"file not found: {tmp_path.resolve() / 'holidays.yaml'}"
    assert issue.line == line_with(text, "overrides_file")
