"""config/model/deadlines.py: policies per kind, 三个二, extensions."""

from __future__ import annotations

import pytest

from config.durations import Duration
from config.vocabulary import DeadlineName, TicketKind
from tests.config.yaml_cases import BASE, issue_at, issues_of, line_with, load


def test_policy_merge_and_null_removal() -> None:
    config = load(
        BASE
        + """\
deadlines:
  policies:
    regular: {handle: 4wd}
    urgent: {handle_internal: null, handle: 1d}
  three_twos:
    categories: [市容景观]
    solve_24h: 12h
"""
    )
    regular = config.policy_for(TicketKind.REGULAR)
    assert regular[DeadlineName.HANDLE] == Duration(4, "wd")
    assert regular[DeadlineName.ACCEPT] == Duration(1, "wd")  # untouched default
    urgent = config.policy_for(TicketKind.URGENT)
    assert DeadlineName.HANDLE_INTERNAL not in urgent
    assert urgent[DeadlineName.HANDLE] == Duration(1, "d")
    assert config.policy_for(TicketKind.SEMI_URGENT)[DeadlineName.HANDLE_INTERNAL] == Duration(2, "wd")
    assert config.policy_for("photo")[DeadlineName.HANDLE] == Duration(3, "d")  # type: ignore[arg-type]
    twos = config.three_twos_for(" 市容景观 ")
    assert twos[DeadlineName.SOLVE_24H] == Duration(12, "h")
    assert twos[DeadlineName.CONTACT_20M] == Duration(20, "m")
    assert config.three_twos_for("环卫") == {}
    # the returned dict is a copy
    config.policy_for(TicketKind.REGULAR).clear()
    assert config.policy_for(TicketKind.REGULAR)


def test_unknown_deadline_name_and_kind() -> None:
    text = BASE + "deadlines:\n  policies:\n    regular: {handel: 3wd}\n    regullar: {handle: 3wd}\n"
    issues = issues_of(text)
    name = issue_at(issues, "deadlines.policies.regular.handel")
    assert name.message == 'unknown deadline name "handel" (did you mean "handle"?)'
    assert name.line == line_with(text, "handel")
    kind = issue_at(issues, "deadlines.policies.regullar")
    assert kind.message.startswith('unknown ticket kind "regullar"')
    assert kind.line == line_with(text, "regullar")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("5x", 'invalid duration "5x"'), ("0wd", "must be greater than zero"), ("[1]", "invalid duration")],
)
def test_bad_durations(value: str, fragment: str) -> None:
    text = BASE + f"deadlines:\n  policies:\n    urgent:\n      handle: {value}\n"
    issue = issue_at(issues_of(text), "deadlines.policies.urgent.handle")
    assert fragment in issue.message
    assert issue.line == line_with(text, "handle:")


def test_bad_three_twos_duration() -> None:
    text = BASE + "deadlines:\n  three_twos:\n    on_site_2h: two hours\n"
    issue = issue_at(issues_of(text), "deadlines.three_twos.on_site_2h")
    assert 'invalid duration "two hours"' in issue.message


def test_extension_settings() -> None:
    config = load(BASE + "deadlines:\n  extension: {default_days: 2, max_days: 5, max_approved: 0}\n")
    assert (config.deadlines.extension.default_days, config.deadlines.extension.max_approved) == (2, 0)
    text = BASE + "deadlines:\n  extension:\n    max_days: 0\n"
    assert "greater than or equal to 1" in issue_at(issues_of(text), "deadlines.extension.max_days").message
    text = BASE + "deadlines:\n  extension:\n    default_days: 5\n    max_days: 4\n"
    issue = issue_at(issues_of(text), "deadlines.extension")
    assert "default_days (5) is more than max_days (4)" in issue.message


def test_extension_defaults_agree_with_the_lifecycle() -> None:
    from bot.domain.lifecycle import ExtensionLimits

    extension = load(BASE).deadlines.extension
    assert ExtensionLimits() == ExtensionLimits(max_days=extension.max_days, max_count=extension.max_approved)
