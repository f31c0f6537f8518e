"""config/model/duty.py: the roster and takeovers."""

from __future__ import annotations

import pytest

from config.durations import Duration
from tests.config.yaml_cases import BASE, issue_at, issues_of, line_with, load


def test_duty_roster_userid_unknown() -> None:
    text = BASE + 'duty_roster:\n  - {userid: ghost, weekdays: [1], start: "17:00", end: "09:00"}\n'
    issue = issue_at(issues_of(text), "duty_roster[0].userid")
    assert issue.message == 'unknown member "ghost"'
    assert issue.line == line_with(text, "ghost")


def test_duty_takeover_lengths() -> None:
    assert (load(BASE).duty.takeover_max, load(BASE).duty.takeover_default) == (Duration(24, "h"), Duration(12, "h"))
    config = load(BASE + "duty:\n  takeover_max: 2d\n  takeover_default: 10h\n")
    assert (config.duty.takeover_max, config.duty.takeover_default) == (Duration(2, "d"), Duration(10, "h"))


@pytest.mark.parametrize(
    ("text", "path", "fragment"),
    [
        ("duty:\n  takeover_max: 1wd\n", "duty.takeover_max", "not working days"),
        ("duty:\n  takeover_default: soon\n", "duty.takeover_default", 'invalid duration "soon"'),
        ("duty:\n  takeover_max: 8h\n", "duty", "takeover_default 12h is longer than takeover_max 8h"),
        ("duty:\n  takeover_maximum: 8h\n", "duty.takeover_maximum", ""),
    ],
)
def test_bad_duty_settings(text: str, path: str, fragment: str) -> None:
    issue = issue_at(issues_of(BASE + text), path)
    assert fragment in issue.message
