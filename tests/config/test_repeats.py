"""config/model/repeats.py: the repeat window, the signals, the thresholds, in the YAML."""

from __future__ import annotations

import pytest

from config.durations import Duration
from config.model import Repeats
from tests.config.yaml_cases import BASE, CONFIG_DIR, issue_at, issues_of, load


def test_repeats_default_and_as_written() -> None:
    config = load(BASE)
    assert config.repeats == Repeats()
    assert (config.repeats.enabled, config.repeats.window, config.repeats.signals) == (
        True,
        Duration(30, "d"),
        ["phone", "address"],
    )
    changed = load(
        BASE + "repeats:\n  window: 60d\n  signals: [phone]\n  phone_similarity: 0.2\n  ignore_phones: ['021-12345']\n"
    )
    assert changed.repeats.window == Duration(60, "d")
    assert changed.repeats.signals == ["phone"]
    assert changed.repeats.ignore_phones == ["021-12345"]
    # the commented example writes the defaults out
    assert load((CONFIG_DIR / "example.yaml").read_text(encoding="utf-8")).repeats == Repeats()


@pytest.mark.parametrize(
    ("text", "path", "fragment"),
    [
        ("repeats:\n  window: 30wd\n", "repeats.window", "not working days"),
        ("repeats:\n  window: 2y\n", "repeats.window", "invalid duration"),
        ("repeats:\n  window: 400d\n", "repeats", "between 1h and 366d"),
        ("repeats:\n  signals: [phone, email]\n", "repeats.signals[1]", "'phone' or 'address'"),
        ("repeats:\n  similarity: 2\n", "repeats.similarity", "less than or equal to 1"),
        ("repeats:\n  enabeld: false\n", "repeats.enabeld", 'did you mean "enabled"'),
    ],
)
def test_bad_repeat_settings(text: str, path: str, fragment: str) -> None:
    issue = issue_at(issues_of(BASE + text), path)
    assert fragment in issue.message
