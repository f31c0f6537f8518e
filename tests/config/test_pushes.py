"""config/model/pushes.py: push rules, digests, the import's pushes."""

from __future__ import annotations

import pytest

from config.durations import Duration
from config.vocabulary import PushAudience, TicketKind
from tests.config.yaml_cases import BASE, issue_at, issues_of, load


def test_push_rules_default_and_merge_field_by_field() -> None:
    config = load(BASE)
    regular, urgent, warning = (config.push_rule(k) for k in ("regular", "urgent", "warning"))
    assert (regular.mode, regular.urgent, regular.mention, regular.private) == ("digest", False, [], [])
    assert (urgent.mode, urgent.urgent, urgent.mention) == ("at_once", True, [PushAudience.TEAM, PushAudience.HEAD])
    assert all(config.push_rule(k) == urgent for k in ("semi_urgent", "photo", "city_review"))
    assert warning.mention == [PushAudience.HANDLER, PushAudience.HEAD]
    assert warning.private == [PushAudience.HEAD, PushAudience.DEPUTIES]
    assert config.push_rule(TicketKind.URGENT) is urgent
    changed = load(
        BASE + "pushes:\n  rules:\n    regular: {mode: at_once}\n    urgent: {mention: [members]}\n"
        "  digest: {every: 1h, offset: null, max_items: 5}\n  import: {recent: 2h, at_once_max: 0}\n"
    )
    assert changed.push_rule("regular").mode == "at_once"
    assert changed.push_rule("regular").urgent is False  # the rest stays the kind's default
    assert changed.push_rule("urgent").mention == [PushAudience.MEMBERS]
    assert changed.push_rule("urgent").urgent is True
    assert changed.pushes.digest.every == Duration(1, "h")
    assert changed.pushes.digest.offset is None
    assert (changed.pushes.imports.recent, changed.pushes.imports.at_once_max) == (Duration(2, "h"), 0)


@pytest.mark.parametrize(
    ("text", "path", "fragment"),
    [
        ("pushes:\n  rules:\n    regulr: {mode: digest}\n", "pushes.rules.regulr", 'did you mean "regular"'),
        ("pushes:\n  rules:\n    urgent: {mode: now}\n", "pushes.rules.urgent.mode", "expected 'at_once'"),
        ("pushes:\n  rules:\n    warning: {private: [bosses]}\n", "pushes.rules.warning.private[0]", "audience"),
        ("pushes:\n  digest: {every: 2m}\n", "pushes.digest", "between 5m and 24h"),
        ("pushes:\n  digest: {every: 30m, offset: 30m}\n", "pushes.digest", "shorter than every"),
        ("pushes:\n  digest: {every: 1wd}\n", "pushes.digest.every", "not working days"),
        ("pushes:\n  import: {at_once_max: -1}\n", "pushes.import.at_once_max", ""),
        ("pushes:\n  rules:\n    warning: {mode: digest}\n", "pushes", "a warning ticket is pushed"),
    ],
)
def test_bad_push_settings(text: str, path: str, fragment: str) -> None:
    issue = issue_at(issues_of(BASE + text), path)
    assert fragment in issue.message
