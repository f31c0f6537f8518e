"""The shipped configs (config/example.yaml, config/sandbox.yaml) load and say what they should."""

from __future__ import annotations

from datetime import datetime

import pytest

from config.durations import Duration
from config.loader import load_config
from config.model import BotConfig
from config.vocabulary import DeadlineName, Role, TicketKind
from tests.config.yaml_cases import CONFIG_DIR


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
