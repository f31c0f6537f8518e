"""config/loader.py: YAML reading and every mistake reported with its path and line."""

from __future__ import annotations

import textwrap
from datetime import datetime
from pathlib import Path

import pytest

from config.loader import ConfigError, load_config
from tests.config.yaml_cases import BASE, issue_at, issues_of, line_with, load


def test_unquoted_times_and_numbers_are_read_as_text() -> None:
    # PyYAML would read 17:00 as the base-60 integer 1020; the loader keeps it as "17:00".
    config = load(
        BASE.replace("name: 负责人", "name: 负责人\n    mobile: 13800000001")
        + """\
service_window: {start: 6:00, end: 24:00}
duty_roster:
  - {userid: w1, weekdays: [1], start: 17:00, end: 09:00}
  - {userid: w2, dates: [2026-10-01], start: 09:00, end: 09:00}
"""
    )
    assert config.service_window.start == "06:00"
    assert config.service_window.end == "24:00"
    assert config.duty_roster[0].start == "17:00"
    assert config.member("h1").mobile == "13800000001"  # type: ignore[union-attr]
    assert config.on_duty(datetime(2026, 10, 2, 8, 0)) == ["w2"]


def test_load_config_from_file(tmp_path: Path) -> None:
    path = tmp_path / "bot.yaml"
    path.write_text(BASE, encoding="utf-8")
    config = load_config(path)
    assert config.base_dir == tmp_path.resolve()
    assert config.unit("SR") is not None


def test_unknown_field_suggests_the_right_one() -> None:
    text = BASE.replace("deputies: [w1]", "deputys: [w1]")
    issues = issues_of(text)
    issue = issue_at(issues, "units[1].deputys")
    assert issue.message == 'unknown field "deputys" (did you mean "deputies"?)'
    assert issue.line == line_with(text, "deputys")
    # the head's deputy is now just a member: no other complaint
    assert len(issues) == 1


def test_unknown_top_level_field() -> None:
    issue = issue_at(issues_of(BASE + "rooting: []\n"), "rooting")
    assert issue.message == 'unknown field "rooting" (did you mean "routing"?)'


def test_missing_field_points_at_its_parent() -> None:
    text = BASE.replace("    head: h1\n", "")
    issue = issue_at(issues_of(text), "units[1].head")
    assert issue.message == "required, but missing"
    assert issue.line == line_with(text, "code: SR")


@pytest.mark.parametrize(
    ("snippet", "path", "fragment"),
    [
        ("service_window: {start: '25:00', end: '24:00'}", "service_window.start", 'invalid time "25:00"'),
        ("service_window: {start: '10:00', end: '09:00'}", "service_window", "must be before end"),
        ("quiet_hours: {start: '22:00', end: '22:00'}", "quiet_hours", "same time"),
        ("timezone: Europe/Berlin", "timezone", "Asia/Shanghai"),
        ("hotline: {sync_url: ftp://x}", "hotline.sync_url", "http://"),
        ("hotline: {sync_timeout_seconds: 0}", "hotline.sync_timeout_seconds", "greater than 0"),
        ("import: {columns: {工单号: ticket_number}}", "import.columns.工单号", 'unknown ticket field "ticket_number"'),
        ("import: {kind_labels: {特急: very_urgent}}", "import.kind_labels.特急", 'unknown ticket kind "very_urgent"'),
        ("duty_roster: [{userid: w1, start: '17:00', end: '09:00'}]", "duty_roster[0]", "give weekdays"),
        ("duty_roster: [{userid: w1, weekdays: [8], start: '1:00', end: '2:00'}]", "duty_roster[0].weekdays[0]", "7"),
    ],
)
def test_field_errors(snippet: str, path: str, fragment: str) -> None:
    text = BASE + snippet + "\n"
    issue = issue_at(issues_of(text), path)
    assert fragment in issue.message
    assert issue.line == len(textwrap.dedent(text).splitlines())


def test_several_errors_reported_at_once_in_line_order() -> None:
    text = (
        BASE.replace("  unit: RXB", "  unit: NOPE")  # cross-reference
        .replace("name: 派单员", "name: 派单员\n    mobile: '12'")  # field error
        .replace("head: h1", "head: ghost")  # cross-reference
        .replace("categories: [市容景观]", "categories: [市容景观]\n    colour: red")  # unknown field
        + "deadlines: {policies: {regular: {handle: soon}}}\n"  # bad duration
    )
    issues = issues_of(text)
    assert [i.path for i in issues] == [
        "office.unit",
        "members[0].mobile",
        "units[1].head",
        "routing[0].colour",
        "deadlines.policies.regular.handle",
    ]
    lines = [i.line or 0 for i in issues]
    assert all(i.line is not None for i in issues)
    assert lines == sorted(lines)


def test_cross_reference_inside_a_field_error_is_not_repeated() -> None:
    # units[1].members[3] is not text: one field error, not also "unknown member".
    text = BASE.replace("members: [h1, w1, w2]", "members: [h1, w1, w2, 12]")
    issues = issues_of(text)
    assert [i.path for i in issues] == ["units[1].members[3]"]


def test_report_format(tmp_path: Path) -> None:
    path = tmp_path / "bot.yaml"
    text = BASE.replace("head: h1", "head: lisi")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    line = line_with(text, "head: lisi")
    assert caught.value.report() == f'{path}:{line}: units[1].head: unknown member "lisi"'
    assert str(caught.value) == caught.value.report()
    assert str(caught.value.issues[0]) == f'line {line}: units[1].head: unknown member "lisi"'
    assert "Traceback" not in caught.value.report()


def test_yaml_syntax_error_has_its_line() -> None:
    text = BASE.replace("    name: 市容所\n", "    name: 市容所\n   head: [broken\n")
    issues = issues_of(text)
    assert len(issues) == 1
    assert issues[0].path == ""
    assert "YAML syntax error" in issues[0].message
    assert issues[0].line == line_with(text, "head: [broken")


def test_tab_indentation_is_a_syntax_error() -> None:
    issues = issues_of(BASE + "hotline:\n\tsync_url: null\n")
    assert issues[0].line == len(BASE.splitlines()) + 2
    assert "YAML syntax error" in issues[0].message


def test_duplicate_keys_all_reported() -> None:
    text = BASE.replace("    head: h1\n", "    head: h1\n    head: w1\n") + "routing: []\n"
    issues = issues_of(text)
    assert [(i.path, i.line) for i in issues] == [
        ("units[1].head", line_with(text, "head: w1")),
        ("routing", line_with(text, "routing:", 2)),
    ]
    assert issues[0].message == f"duplicate key (first at line {line_with(text, 'head: h1')})"


def test_invalid_date_is_reported_not_raised() -> None:
    text = BASE + "duty_roster: [{userid: w1, dates: [2026-02-30], start: '09:00', end: '10:00'}]\n"
    issues = issues_of(text)
    assert issues[0].line == len(text.splitlines())
    assert "invalid date" in issues[0].message


def test_unsafe_tags_are_rejected() -> None:
    issues = issues_of(BASE + "x: !!python/object/apply:os.system ['true']\n")
    assert issues[0].line == len(BASE.splitlines()) + 1


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "the configuration is empty"), ("# only a comment\n", "the configuration is empty")],
)
def test_empty_file(text: str, message: str) -> None:
    assert issues_of(text)[0].message == message


def test_top_level_must_be_a_mapping() -> None:
    issue = issues_of("- a\n- b\n")[0]
    assert issue.message == "the top level must be a mapping (key: value), not a list"


def test_wrong_shapes() -> None:
    issues = issues_of(BASE.replace("members: [disp]", "members: disp") + "duty_roster: {}\n")
    assert issue_at(issues, "units[0].members").message == 'expected a list, got "disp"'
    assert issue_at(issues, "duty_roster").message == "expected a list, got a mapping"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")
    assert caught.value.report() == f"{tmp_path / 'nope.yaml'}: file not found"
