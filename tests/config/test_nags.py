"""config/model/nags.py: reminders, escalation and their mistakes."""

from __future__ import annotations

from config.vocabulary import Role, TicketKind
from tests.config.yaml_cases import BASE, issue_at, issues_of, line_with, load


def test_nags_defaults_and_changes() -> None:
    nags = load(BASE).nags
    assert [str(p) for p in nags.reminders] == ["50%", "80%", "1h"]
    assert nags.escalation == [Role.HANDLER, Role.UNIT_HEAD, Role.CENTER_LEAD]
    assert (str(nags.interval), nags.repeats, nags.tick_seconds) == ("2h", 3, 15)
    assert nags.urgent_kinds == [TicketKind.URGENT, TicketKind.SEMI_URGENT]
    assert (nags.three_misses.count, nags.three_misses.period_months) == (3, 2)
    changed = load(BASE + "nags: {reminders: ['30%', 2h], escalation: [unit_head, dispatcher], repeats: 0}\n").nags
    assert [str(p) for p in changed.reminders] == ["30%", "2h"]
    assert changed.escalation == [Role.UNIT_HEAD, Role.DISPATCHER]


def test_nags_mistakes_are_reported_each_with_its_line() -> None:
    text = (
        BASE
        + "nags:\n  reminders: ['120%', 2wd]\n  escalation: [duty]\n  interval: 1wd\n  three_misses: {period_months: 5}\n"
    )
    issues = issues_of(text)
    assert "1% to 99%" in issue_at(issues, "nags.reminders[0]").message
    assert "span before the due time" in issue_at(issues, "nags.reminders[1]").message
    assert '"duty" cannot be escalated to' in issue_at(issues, "nags.escalation[0]").message
    assert "not working days" in issue_at(issues, "nags.interval").message
    assert issue_at(issues, "nags.three_misses.period_months").line == line_with(text, "period_months")
