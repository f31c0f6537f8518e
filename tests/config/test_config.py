"""config/: settings from the environment, the operators' YAML, and its error reports."""

from __future__ import annotations

import ast
import textwrap
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from config.durations import Duration
from config.loader import ConfigError, ConfigIssue, load_config, load_config_text
from config.model import DEFAULT_IMPORT_COLUMNS, DEFAULT_POLICIES, BotConfig
from config.settings import Settings
from config.vocabulary import DeadlineName, PushAudience, Role, TicketKind

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"

BASE = """\
office:
  name: 测试热线办
  unit: RXB
members:
  - userid: disp
    name: 派单员
    roles: [dispatcher]
  - userid: lead
    name: 领导
    roles: [center_lead]
  - userid: h1
    name: 负责人
  - userid: w1
    name: 承办人一
  - userid: w2
    name: 承办人二
units:
  - code: RXB
    name: 热线办
    head: disp
    members: [disp]
  - code: SR
    name: 市容所
    head: h1
    deputies: [w1]
    members: [h1, w1, w2]
    emergency_team: [w2]
routing:
  - unit: SR
    categories: [市容景观]
"""


def load(text: str, base_dir: Path | None = None) -> BotConfig:
    return load_config_text(textwrap.dedent(text), "test.yaml", base_dir)


def issues_of(text: str, base_dir: Path | None = None) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as caught:
        load(text, base_dir)
    assert caught.value.source == "test.yaml"
    return caught.value.issues


def issue_at(issues: list[ConfigIssue], path: str) -> ConfigIssue:
    found = [i for i in issues if i.path == path]
    assert found, f"no issue at {path}; got:\n" + "\n".join(map(str, issues))
    return found[0]


def line_with(text: str, needle: str, nth: int = 1) -> int:
    """1-based number of the nth line of ``text`` containing ``needle``."""
    hits = [n for n, line in enumerate(textwrap.dedent(text).splitlines(), 1) if needle in line]
    return hits[nth - 1]


# --------------------------------------------------------------------------------------------------
# The shipped configs
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example() -> BotConfig:
    return load_config(CONFIG_DIR / "example.yaml")


@pytest.fixture(scope="module")
def sandbox() -> BotConfig:
    return load_config(CONFIG_DIR / "sandbox.yaml")


def route(config: BotConfig, *, category: str | None = None, area: str | None = None, content: str = "") -> str:
    for rule in config.routing:
        if rule.matches(category=category, area=area, content=content, kind=TicketKind.REGULAR):
            return rule.unit
    return config.office.unit


def test_example_structure(example: BotConfig) -> None:
    assert example.base_dir == CONFIG_DIR
    assert example.office_unit.code == "TSZJ"
    assert {u.code for u in example.units} >= {"TSZJ", "SRJGK", "SRJGS", "HWK", "PHGS", "LHSQ", "GYS", "FGS"}
    for unit in example.units:
        assert unit.head in unit.members
        assert set(unit.emergency_team) <= set(unit.members)
    assert example.service_window.start == "06:00"
    assert example.service_window.end == "24:00"
    assert example.calendar_overrides_path is None


def test_example_roles(example: BotConfig) -> None:
    assert example.has_role("chenlixin", Role.CENTER_LEAD)
    assert example.has_role("wujiayi", Role.DISPATCHER, "SRJGS")  # global: whatever the unit
    assert not example.has_role("wujiayi", Role.ADMIN)
    assert example.has_role("yangjianjun", Role.UNIT_HEAD, "SRJGS")
    assert example.has_role("xuwentao", Role.UNIT_HEAD, "SRJGS")  # deputy
    assert not example.has_role("xuwentao", Role.UNIT_HEAD, "GYS")
    assert not example.has_role("caoyong", Role.UNIT_HEAD)
    assert example.has_role("caoyong", Role.HANDLER, "SRJGS")
    assert not example.has_role("caoyong", Role.HANDLER, "GYS")
    assert example.has_role("fengxiaowen", Role.DUTY)
    assert not example.has_role("nobody", Role.HANDLER)
    assert [u.code for u in example.units_of("sunhaiyan")] == ["TSZJ"]
    assert [u.code for u in example.units_led_by("xuwentao")] == ["SRJGS"]
    assert example.member("yanli") is not None
    assert example.member("yanli").name == "阎丽"  # type: ignore[union-attr]
    assert example.member("nobody") is None
    assert {m.userid for m in example.members_with_role(Role.CENTER_LEAD)} == {"chenlixin", "sunhaiyan"}


def test_example_labels_and_import(example: BotConfig) -> None:
    assert example.unit_for_label("市容景观所").code == "SRJGS"  # type: ignore[union-attr]
    assert example.unit_for_label(" 区市容景观管理所 ").code == "SRJGS"  # type: ignore[union-attr]
    assert example.unit_for_label("phgs").code == "PHGS"  # type: ignore[union-attr]
    assert example.unit_for_label("不存在的单位") is None
    assert example.unit_for_label(None) is None
    columns = example.import_columns
    assert columns["工单编号"] == "ticket_no"
    assert columns["工单号"] == "ticket_no"
    assert columns["主办单位"] == "unit"
    assert example.kind_labels["特急"] is TicketKind.URGENT
    assert example.kind_labels["市级复核单"] is TicketKind.CITY_REVIEW


def test_example_routing(example: BotConfig) -> None:
    assert route(example, category="市容景观", content="店招破损") == "SRJGS"
    assert route(example, category="市容景观", content="户外广告设置审批咨询") == "SRJGK"
    assert route(example, category="环卫", area="青柳街道") == "PHGS"
    assert route(example, category="环卫", area="南湖镇") == "HWK"
    assert route(example, content="公园里树木倒伏") == "GYS"
    assert route(example, content="小区树木倒伏") == "LHSQ"
    assert route(example, content="夜间偷倒渣土") == "FGS"
    assert route(example, category="咨询", content="办事指南") == "TSZJ"


def test_example_deadlines(example: BotConfig) -> None:
    regular = example.policy_for(TicketKind.REGULAR)
    assert regular[DeadlineName.HANDLE] == Duration(5, "wd")
    assert DeadlineName.HANDLE_INTERNAL not in regular
    photo = example.policy_for(TicketKind.PHOTO)
    assert photo[DeadlineName.HANDLE] == Duration(3, "d")
    assert photo[DeadlineName.HANDLE_INTERNAL] == Duration(2, "wd")
    for category in ("市容景观", "环卫", "社区绿化", "公园", "工地渣土"):
        assert example.three_twos_for(category) == {
            DeadlineName.CONTACT_20M: Duration(20, "m"),
            DeadlineName.ON_SITE_2H: Duration(2, "h"),
            DeadlineName.SOLVE_24H: Duration(24, "h"),
            DeadlineName.OPINION_5D: Duration(5, "d"),
        }
    assert example.three_twos_for("咨询") == {}
    assert example.three_twos_for(None) == {}


def test_example_duty_and_windows(example: BotConfig) -> None:
    # 2026-11-20 is a Friday.
    assert example.on_duty(datetime(2026, 11, 20, 12, 0)) == []
    assert example.on_duty(datetime(2026, 11, 20, 20, 0)) == ["wujiayi"]
    assert example.on_duty(datetime(2026, 11, 21, 8, 0)) == ["wujiayi"]  # Friday's night shift
    assert example.on_duty(datetime(2026, 11, 21, 10, 0)) == ["fengxiaowen", "sunhaiyan"]
    assert example.on_duty(datetime(2026, 11, 22, 3, 0)) == ["fengxiaowen"]  # Saturday's 24h shift
    assert example.on_duty(datetime(2026, 11, 23, 8, 59)) == ["zhenghao"]  # Sunday's 24h shift
    assert example.on_duty(datetime(2026, 11, 23, 9, 0)) == []
    assert "wujiayi" in example.on_duty(datetime(2026, 10, 2, 3, 0))  # holiday dates
    aware = datetime.fromisoformat("2026-11-20T12:30:00+00:00")  # 20:30 in Shanghai
    assert example.on_duty(aware) == ["wujiayi"]
    assert example.in_service_window(datetime(2026, 11, 20, 23, 59))
    assert not example.in_service_window(datetime(2026, 11, 20, 5, 59))
    assert example.in_quiet_hours(datetime(2026, 11, 20, 23, 0))
    assert example.in_quiet_hours(datetime(2026, 11, 20, 6, 30))
    assert not example.in_quiet_hours(datetime(2026, 11, 20, 7, 0))


def test_sandbox(sandbox: BotConfig) -> None:
    assert 2 <= len(sandbox.units) <= 3
    assert 6 <= len(sandbox.members) <= 10
    assert sandbox.members_with_role(Role.DISPATCHER)
    assert sandbox.members_with_role(Role.CENTER_LEAD)
    assert sandbox.duty_roster
    assert sandbox.calendar.overrides_file is None
    assert sandbox.office_unit.code == "RXB"
    assert sandbox.three_twos_for("环卫")
    assert route(sandbox, content="路边垃圾没人清") == "HW"


def test_config_is_frozen(sandbox: BotConfig) -> None:
    with pytest.raises(ValidationError):
        sandbox.office = sandbox.office  # type: ignore[misc]


def test_config_imports_nothing_of_the_domain() -> None:
    forbidden = ("bot", "store", "handlers", "notifiers")
    for path in CONFIG_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"


# --------------------------------------------------------------------------------------------------
# The base config and small variations that load
# --------------------------------------------------------------------------------------------------


def test_base_loads_with_defaults() -> None:
    config = load(BASE)
    assert config.timezone == "Asia/Shanghai"
    assert config.service_window.start == "06:00"
    assert config.quiet_hours is None
    for kind in TicketKind:
        assert config.policy_for(kind) == DEFAULT_POLICIES[kind]
    assert config.policy_for(TicketKind.URGENT)[DeadlineName.HANDLE] == Duration(3, "wd")
    assert config.three_twos_for("市容景观") == {}  # off by default
    assert config.import_columns == DEFAULT_IMPORT_COLUMNS
    assert config.hotline.max_body_bytes == 1_048_576
    assert config.hotline.sync_url is None
    extension = config.deadlines.extension  # 延期: 3 working days unless said, at most 10, once a ticket
    assert (extension.default_days, extension.max_days, extension.max_approved) == (3, 10, 1)


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
    text = BASE + "nags:\n  reminders: ['120%', 2wd]\n  escalation: [duty]\n  interval: 1wd\n  three_misses: {period_months: 5}\n"
    issues = issues_of(text)
    assert "1% to 99%" in issue_at(issues, "nags.reminders[0]").message
    assert "span before the due time" in issue_at(issues, "nags.reminders[1]").message
    assert '"duty" cannot be escalated to' in issue_at(issues, "nags.escalation[0]").message
    assert "not working days" in issue_at(issues, "nags.interval").message
    assert issue_at(issues, "nags.three_misses.period_months").line == line_with(text, "period_months")


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


def test_import_overrides_and_removal() -> None:
    config = load(
        BASE
        + """\
import:
  columns: {工单号: ticket_no, 标题: null}
  kind_labels: {一般: null, 特急: urgent}
"""
    )
    assert config.import_columns["工单号"] == "ticket_no"
    assert "标题" not in config.import_columns
    assert "一般" not in config.kind_labels
    assert config.kind_labels["特急"] is TicketKind.URGENT


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


def test_catch_all_as_last_rule_is_fine() -> None:
    config = load(BASE + "  - unit: RXB\n")
    assert config.routing[-1].is_catch_all


def test_overrides_file_resolved_against_base_dir(tmp_path: Path) -> None:
    (tmp_path / "holidays.yaml").write_text("{}\n", encoding="utf-8")
    config = load(BASE + "calendar: {overrides_file: holidays.yaml}\n", base_dir=tmp_path)
    assert config.base_dir == tmp_path.resolve()
    assert config.calendar_overrides_path == tmp_path.resolve() / "holidays.yaml"


def test_load_config_from_file(tmp_path: Path) -> None:
    path = tmp_path / "bot.yaml"
    path.write_text(BASE, encoding="utf-8")
    config = load_config(path)
    assert config.base_dir == tmp_path.resolve()
    assert config.unit("SR") is not None


# --------------------------------------------------------------------------------------------------
# Errors: each with its path and line
# --------------------------------------------------------------------------------------------------


def test_unknown_head_is_reported_with_line() -> None:
    text = BASE.replace("head: h1", "head: lisi")
    issue = issue_at(issues_of(text), "units[1].head")
    assert issue.message == 'unknown member "lisi"'
    assert issue.line == line_with(text, "head: lisi")


def test_head_deputy_and_team_must_be_unit_members() -> None:
    text = BASE.replace("deputies: [w1]", "deputies: [disp]").replace(
        "emergency_team: [w2]", "emergency_team: [w2, lead, ghost]"
    )
    text = text.replace("head: h1", "head: lead")
    issues = issues_of(text)
    head = issue_at(issues, "units[1].head")
    assert head.message == '"lead" is not a member of unit SR'
    assert head.line == line_with(text, "head: lead")
    assert issue_at(issues, "units[1].deputies[0]").message == '"disp" is not a member of unit SR'
    assert issue_at(issues, "units[1].emergency_team[1]").message == '"lead" is not a member of unit SR'
    ghost = issue_at(issues, "units[1].emergency_team[2]")
    assert ghost.message == 'unknown member "ghost"'
    assert ghost.line == line_with(text, "emergency_team:")


def test_unit_members_must_be_known() -> None:
    text = BASE.replace("members: [h1, w1, w2]", "members: [h1, w1, w2, zhangsan]")
    issue = issue_at(issues_of(text), "units[1].members[3]")
    assert issue.message == 'unknown member "zhangsan"'
    assert issue.line == line_with(text, "zhangsan")


def test_routing_to_unknown_unit() -> None:
    text = BASE.replace("  - unit: SR\n", "  - unit: SRJG\n")
    issue = issue_at(issues_of(text), "routing[0].unit")
    assert issue.message == 'unknown unit "SRJG"'
    assert issue.line == line_with(text, "unit: SRJG")


def test_routing_rule_without_condition_before_the_last() -> None:
    text = BASE.replace("routing:\n", "routing:\n  - unit: RXB\n")
    issue = issue_at(issues_of(text), "routing[0]")
    assert "no condition" in issue.message
    assert "only the last rule may be a catch-all" in issue.message
    assert issue.line == line_with(text, "- unit: RXB")


def test_office_unit_unknown() -> None:
    text = BASE.replace("  unit: RXB", "  unit: XYZ")
    issue = issue_at(issues_of(text), "office.unit")
    assert issue.message == 'unknown unit "XYZ"'
    assert issue.line == 3


def test_duty_roster_userid_unknown() -> None:
    text = BASE + 'duty_roster:\n  - {userid: ghost, weekdays: [1], start: "17:00", end: "09:00"}\n'
    issue = issue_at(issues_of(text), "duty_roster[0].userid")
    assert issue.message == 'unknown member "ghost"'
    assert issue.line == line_with(text, "ghost")


def test_duplicate_userids_and_unit_codes() -> None:
    text = (
        BASE.replace("  - userid: w2\n", "  - userid: w1\n")
        .replace("members: [h1, w1, w2]", "members: [h1, w1]")
        .replace("emergency_team: [w2]", "emergency_team: []")
        .replace("  - code: SR\n", "  - code: RXB\n")
        .replace("  - unit: SR\n", "  - unit: RXB\n")
    )
    issues = issues_of(text)
    userid = issue_at(issues, "members[4].userid")
    assert userid.message == 'duplicate userid "w1" (see members[3])'
    assert userid.line == line_with(text, "userid: w1", 2)
    code = issue_at(issues, "units[1].code")
    assert code.message == 'duplicate unit code "RXB" (see units[0])'
    assert code.line == line_with(text, "code: RXB", 2)


def test_duplicate_unit_names() -> None:
    text = BASE.replace("name: 市容所", "name: 热线办")
    assert issue_at(issues_of(text), "units[1].name").message == '"热线办" already names unit RXB'
    text = BASE.replace("name: 市容所", "name: 市容所\n    aliases: [rxb]")
    assert issue_at(issues_of(text), "units[1].aliases[0]").message == '"rxb" already names unit RXB'
    text = BASE.replace("name: 热线办", "name: 热线办\n    aliases: [sr]")
    assert issue_at(issues_of(text), "units[1].code").message == '"SR" already names unit RXB'


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
    config = load(BASE + 'service_window: {start: "06:00", end: "24:00"}\nquiet_hours: {start: "22:00", end: "07:00"}\n')
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


def test_member_field_errors() -> None:
    text = BASE.replace("  - userid: w2\n    name: 承办人二\n", "  - userid: 10086\n    name: ''\n    mobile: '123'\n")
    text = text.replace("[h1, w1, w2]", "[h1, w1]").replace("emergency_team: [w2]", "emergency_team: []")
    issues = issues_of(text)
    assert (
        issue_at(issues, "members[4].userid").message
        == 'expected text, got the number 10086; put it in quotes ("10086")'
    )
    assert issue_at(issues, "members[4].name").line == line_with(text, "name: ''")
    assert issue_at(issues, "members[4].mobile").message == 'invalid mobile "123": 11 digits starting with 1'


def test_role_errors() -> None:
    text = BASE.replace("roles: [center_lead]", "roles: [center_led, unit_head]")
    issues = issues_of(text)
    assert issue_at(issues, "members[1].roles[0]").message == 'unknown role "center_led" (did you mean "center_lead"?)'
    text = BASE.replace("roles: [center_lead]", "roles: [unit_head]")
    issue = issue_at(issues_of(text), "members[1].roles")
    assert "lead heads no unit" in issue.message


def test_group_transport_needs_its_target() -> None:
    text = BASE.replace("    members: [disp]\n", "    members: [disp]\n    group: {transport: webhook}\n")
    issue = issue_at(issues_of(text), "units[0].group")
    assert issue.message == 'transport "webhook" needs webhook_key'
    assert issue.line == line_with(text, "group:")


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


# --------------------------------------------------------------------------------------------------
# Errors: the file and its YAML
# --------------------------------------------------------------------------------------------------


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


def test_direct_validation_also_cross_checks() -> None:
    import yaml

    data = yaml.safe_load(BASE.replace("head: h1", "head: lisi"))
    with pytest.raises(ValidationError, match='unknown member "lisi"'):
        BotConfig.model_validate(data)


# --------------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------------


def test_settings_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.database_url == "sqlite+aiosqlite:///data/hotline.db"
    assert settings.is_sqlite
    assert settings.redis_url is None
    assert settings.config_path == Path("config/sandbox.yaml")
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.wecom_api_base == "https://qyapi.weixin.qq.com"
    assert not settings.wecom_configured
    assert settings.log_format == "json"
    assert settings.log_level == "INFO"


def test_settings_env_vars_cover_every_field() -> None:
    assert set(Settings.ENV_VARS) == set(Settings.model_fields)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://bot:pw@db:5432/hotline", "postgresql+asyncpg://bot:pw@db:5432/hotline"),
        ("postgres://bot:pw@db/hotline", "postgresql+asyncpg://bot:pw@db/hotline"),
        ("postgresql+asyncpg://bot@db/hotline", "postgresql+asyncpg://bot@db/hotline"),
        ("sqlite:///data/x.db", "sqlite+aiosqlite:///data/x.db"),
        ("sqlite:////abs/x.db", "sqlite+aiosqlite:////abs/x.db"),
        ("sqlite+aiosqlite:///data/x.db", "sqlite+aiosqlite:///data/x.db"),
    ],
)
def test_database_url_rewriting(url: str, expected: str) -> None:
    settings = Settings.from_env({"DATABASE_URL": url})
    assert settings.database_url == expected
    assert settings.is_sqlite == expected.startswith("sqlite")


@pytest.mark.parametrize("url", ["mysql://x/y", "postgresql+psycopg2://x/y", "data/hotline.db"])
def test_bad_database_url(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"DATABASE_URL": url})
    assert [i.path for i in caught.value.issues] == ["DATABASE_URL"]


def test_settings_values() -> None:
    settings = Settings.from_env(
        {
            "BOT_PORT": " 9000 ",
            "BOT_HOST": "0.0.0.0",
            "BOT_CONFIG": "config/example.yaml",
            "REDIS_URL": "redis://localhost:6379/0",
            "WECOM_API_BASE": "http://127.0.0.1:9999/",
            "WECOM_CORP_ID": "ww123",
            "WECOM_AIBOT_TOKEN": "tok",
            "LOG_FORMAT": "TEXT",
            "LOG_LEVEL": "debug",
        }
    )
    assert settings.port == 9000
    assert settings.host == "0.0.0.0"
    assert settings.config_path == Path("config/example.yaml")
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.wecom_api_base == "http://127.0.0.1:9999"
    assert settings.wecom_configured
    assert settings.log_format == "text"
    assert settings.log_level == "DEBUG"


def test_empty_values_count_as_unset() -> None:
    settings = Settings.from_env({"BOT_PORT": "", "REDIS_URL": "  ", "API_TOKEN": "", "DATABASE_URL": ""})
    assert settings.port == 8080
    assert settings.redis_url is None
    assert settings.api_token is None
    assert settings.is_sqlite


@pytest.mark.parametrize("port", ["0", "65536", "http", "-1", "80.5"])
def test_invalid_port_names_the_variable(port: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"BOT_PORT": port})
    assert [i.path for i in caught.value.issues] == ["BOT_PORT"]
    assert caught.value.report().startswith("environment: BOT_PORT: must be a port number between 1 and 65535")


def test_several_env_errors_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"BOT_PORT": "x", "LOG_FORMAT": "xml", "LOG_LEVEL": "LOUD", "REDIS_URL": "localhost:6379"})
    assert {i.path for i in caught.value.issues} == {"BOT_PORT", "LOG_FORMAT", "LOG_LEVEL", "REDIS_URL"}


def test_from_env_reads_os_environ_when_called(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_PORT", "8123")
    assert Settings.from_env().port == 8123
    monkeypatch.setenv("BOT_PORT", "8124")
    assert Settings.from_env().port == 8124


def test_secrets_are_hidden() -> None:
    secrets = {
        "HOTLINE_INGEST_SECRET": "ingest-s3cret",
        "API_TOKEN": "api-s3cret",
        "WECOM_APP_SECRET": "app-s3cret",
        "WECOM_APP_TOKEN": "apptok-s3cret",
        "WECOM_APP_AES_KEY": "aes-s3cret",
        "WECOM_AIBOT_TOKEN": "aibot-s3cret",
        "WECOM_AIBOT_AES_KEY": "aibotaes-s3cret",
        "DATABASE_URL": "postgresql://bot:db-s3cret@db/hotline",
        "REDIS_URL": "redis://:redis-s3cret@localhost:6379/0",
    }
    settings = Settings.from_env({**secrets, "WECOM_CORP_ID": "ww1"})
    for shown in (repr(settings), str(settings)):
        assert "s3cret" not in shown
    assert settings.api_token is not None
    assert settings.api_token.get_secret_value() == "api-s3cret"
    assert settings.wecom_app_secret == "app-s3cret"
    assert "db-s3cret" in settings.database_url
    assert settings.database_url_redacted == "postgresql+asyncpg://bot:***@db/hotline"
    assert settings.wecom_configured


def test_bad_url_errors_do_not_echo_passwords() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"DATABASE_URL": "mysql://bot:db-s3cret@db/x"})
    assert "s3cret" not in caught.value.report()


def test_event_loop_setting() -> None:
    assert Settings.from_env({}).event_loop == "uvloop"
    assert Settings.from_env({"EVENT_LOOP": "asyncio"}).event_loop == "asyncio"
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"EVENT_LOOP": "trio"})
    assert [i.path for i in caught.value.issues] == ["EVENT_LOOP"]
