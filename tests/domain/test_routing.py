"""Routing a ticket to its unit (bot.domain.routing) with example.yaml's rules and small configs of our own."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.routing import RouteDecision, Router
from config.loader import load_config, load_config_text
from config.model import BotConfig
from config.vocabulary import TicketKind

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = load_config(ROOT / "config" / "example.yaml")
ROUTER = Router(EXAMPLE)

# example.yaml's routing rules, by index (the reason names the index: "rule:N")
SRJGK_LICENSING, SRJGS_CATEGORY, HWK_FEES, PHGS_STREETS, HWK_REST, LHSQ_CATEGORY, GYS_CATEGORY, FGS_CATEGORY = range(8)
SRJGS_WORDS, GYS_WORDS, LHSQ_WORDS, FGS_WORDS, PHGS_WORDS = range(8, 13)


def route(
    config: BotConfig | None = None,
    *,
    unit_label: str | None = None,
    category: str | None = None,
    area: str | None = None,
    content: str = "",
    kind: TicketKind = TicketKind.REGULAR,
) -> RouteDecision:
    router = ROUTER if config is None else Router(config)
    return router.route(unit_label=unit_label, category=category, area=area, content=content, kind=kind)


def rule(index: int) -> str:
    return f"rule:{index}"


def test_example_rules_are_as_this_file_assumes() -> None:
    units = [r.unit for r in EXAMPLE.routing]
    assert units == [
        "SRJGK", "SRJGS", "HWK", "PHGS", "HWK", "LHSQ", "GYS", "FGS",
        "SRJGS", "GYS", "LHSQ", "FGS", "PHGS",
    ]  # fmt: skip
    assert EXAMPLE.office.unit == "TSZJ"


# --------------------------------------------------------------------------------------------------
# The hotline's named unit
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "unit"),
    [
        ("PHGS", "PHGS"),  # code
        ("phgs", "PHGS"),  # code, any case
        ("普环公司", "PHGS"),  # Chinese name
        ("普环环境卫生服务公司", "PHGS"),  # alias
        (" 公园所 ", "GYS"),  # stray blanks from the export
        ("区市容景观管理所", "SRJGS"),
        ("投诉质监中心", "TSZJ"),
    ],
)
def test_the_hotlines_named_unit_wins(label: str, unit: str) -> None:
    # every condition here would send the ticket elsewhere: the hotline's word comes first
    decision = route(unit_label=label, category="工地渣土", area="青柳街道", content="渣土偷倒")
    assert decision == RouteDecision(unit, "hotline")


@pytest.mark.parametrize("label", [None, "", "区城管执法局", "不存在的单位"])
def test_an_unknown_or_missing_label_falls_through_to_the_rules(label: str | None) -> None:
    assert route(unit_label=label, category="公园") == RouteDecision("GYS", rule(GYS_CATEGORY))


# --------------------------------------------------------------------------------------------------
# Rules in order
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "area", "content", "unit", "index"),
    [
        # the first matching rule wins, even when a later one matches too
        ("市容景观", None, "店招设置方案需要审批吗", "SRJGK", SRJGK_LICENSING),
        ("市容景观", None, "店招脱落有安全隐患", "SRJGS", SRJGS_CATEGORY),
        ("店招店牌", None, "店招审批", "SRJGS", SRJGS_CATEGORY),  # rule 0 needs category 市容景观
        ("环卫", "青柳街道", "垃圾清运费怎么收", "HWK", HWK_FEES),  # before the contractor's streets
        ("环卫", "青柳街道", "垃圾桶满溢", "PHGS", PHGS_STREETS),
        ("公共厕所", "石桥街道", "公厕无人保洁", "PHGS", PHGS_STREETS),
        ("环卫", "东湖街道", "垃圾桶满溢", "HWK", HWK_REST),  # not one of the contractor's streets
        ("环卫", None, "垃圾桶满溢", "HWK", HWK_REST),
        ("社区绿化", None, "店招挡住树", "LHSQ", LHSQ_CATEGORY),  # the category beats later keyword rules
        ("公园", None, "公园里的树木倒伏", "GYS", GYS_CATEGORY),
        ("工地渣土/废油脂", None, "", "FGS", FGS_CATEGORY),
        # no or an unknown category: keywords, in order
        (None, None, "霓虹灯彻夜不关", "SRJGS", SRJGS_WORDS),
        (None, None, "公园里的树木倒伏", "GYS", GYS_WORDS),  # the park rule stands before the tree rule
        ("其他", None, "小区树木倒伏压到车", "LHSQ", LHSQ_WORDS),
        (None, "青柳街道", "夜间泥浆车偷倒", "FGS", FGS_WORDS),
        (None, None, "垃圾箱太臭", "PHGS", PHGS_WORDS),
    ],
)
def test_rules_in_order_first_match_wins(
    category: str | None, area: str | None, content: str, unit: str, index: int
) -> None:
    assert route(category=category, area=area, content=content) == RouteDecision(unit, rule(index))


@pytest.mark.parametrize(
    ("category", "area", "content"),
    [
        (None, None, ""),
        (None, None, "噪音扰民"),
        ("其他", "青柳街道", "路灯不亮"),
        ("市容", None, "审批"),  # no keyword rule knows 审批; rule 0 needs category 市容景观
    ],
)
def test_no_match_goes_to_the_office(category: str | None, area: str | None, content: str) -> None:
    assert route(category=category, area=area, content=content) == RouteDecision("TSZJ", "fallback")


# --------------------------------------------------------------------------------------------------
# Conditions combine with AND (a config of our own, with every kind of condition)
# --------------------------------------------------------------------------------------------------

SMALL = """
office: {name: 测试热线办, unit: OFFICE}
members:
  - {userid: u1, name: 甲}
  - {userid: u2, name: 乙}
units:
  - {code: OFFICE, name: 热线办, head: u1, members: [u1]}
  - {code: ALL4, name: 全条件单位, head: u2, members: [u2]}
  - {code: URGENT, name: 应急队, head: u2, members: [u2]}
  - {code: LED, name: 灯光所, head: u2, members: [u2]}
  - {code: EAST, name: 东片, head: u2, members: [u2]}
routing:
  - unit: ALL4
    categories: [市容景观, 环卫]
    areas: [青柳街道]
    keywords: [占道, 乱堆]
    kinds: [urgent, semi_urgent]
  - unit: URGENT
    kinds: [urgent]
  - unit: LED
    keywords: [LED]
  - unit: EAST
    areas: [东湖街道]
"""
CONFIG = load_config_text(SMALL)
GOOD = {"category": "环卫", "area": "青柳街道", "content": "店门口乱堆杂物", "kind": TicketKind.SEMI_URGENT}


def test_all_four_conditions_match() -> None:
    assert route(CONFIG, **GOOD) == RouteDecision("ALL4", "rule:0")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("category", "公园"),
        ("category", None),
        ("area", "东湖街道"),
        ("area", None),
        ("content", "店门口堆了杂物"),
        ("content", ""),
        ("kind", TicketKind.REGULAR),
        ("kind", TicketKind.PHOTO),
    ],
)
def test_one_failing_condition_drops_the_rule(field: str, value: object) -> None:
    decision = route(CONFIG, **{**GOOD, field: value})  # type: ignore[arg-type]
    assert decision.reason != "rule:0"
    expected = {"area": RouteDecision("EAST", "rule:3")} if value == "东湖街道" else {}
    assert decision == expected.get(field, RouteDecision("OFFICE", "fallback"))


def test_kind_only_rule() -> None:
    assert route(CONFIG, kind=TicketKind.URGENT) == RouteDecision("URGENT", "rule:1")
    assert route(CONFIG, kind=TicketKind.SEMI_URGENT) == RouteDecision("OFFICE", "fallback")
    # the all-conditions rule still comes first for an urgent ticket that fits it
    assert route(CONFIG, **{**GOOD, "kind": TicketKind.URGENT}) == RouteDecision("ALL4", "rule:0")  # type: ignore[arg-type]


def test_a_config_without_rules_routes_everything_to_the_office() -> None:
    bare = load_config_text(SMALL.split("routing:")[0])
    assert bare.routing == []
    assert route(bare, category="环卫", content="LED") == RouteDecision("OFFICE", "fallback")
    assert route(bare, unit_label="东片") == RouteDecision("EAST", "hotline")


# --------------------------------------------------------------------------------------------------
# The router and RoutingRule.matches (config/model.py's own reading of a rule) should agree
# --------------------------------------------------------------------------------------------------


def first_match(config: BotConfig, category: str | None, area: str | None, content: str, kind: TicketKind) -> str:
    for index, r in enumerate(config.routing):
        if r.matches(category=category, area=area, content=content, kind=kind):
            return f"{r.unit} rule:{index}"
    return f"{config.office.unit} fallback"


_categories = st.sampled_from([None, "市容景观", "店招店牌", "环卫", "公共厕所", "社区绿化", "公园", "废油脂", "其他"])
_areas = st.sampled_from([None, "青柳街道", "石桥街道", "长河街道", "东湖街道"])
_words = st.sampled_from(["审批", "收费", "店招", "公园", "树木", "渣土", "保洁", "噪音", "路灯", "。"])


@settings(max_examples=150, deadline=None)
@given(
    category=_categories,
    area=_areas,
    content=st.lists(_words, max_size=4).map("".join),
    kind=st.sampled_from(list(TicketKind)),
)
def test_router_agrees_with_the_rules_own_matcher(
    category: str | None, area: str | None, content: str, kind: TicketKind
) -> None:
    decision = route(category=category, area=area, content=content, kind=kind)
    assert f"{decision.unit_code} {decision.reason}" == first_match(EXAMPLE, category, area, content, kind)


@pytest.mark.parametrize(
    ("config", "category", "area", "content", "expected"),
    [
        pytest.param(EXAMPLE, " 环卫 ", None, "", "HWK rule:4", id="category-with-blanks"),
        pytest.param(EXAMPLE, "环卫", "青柳街道 ", "", "PHGS rule:3", id="area-with-blanks"),
        pytest.param(CONFIG, None, None, "led屏晚上太亮", "LED rule:2", id="keyword-case"),
    ],
)
def test_router_normalises_like_the_rules_matcher(
    config: BotConfig, category: str | None, area: str | None, content: str, expected: str
) -> None:
    # blanks from a spreadsheet cell and the keywords' case do not change the route
    assert first_match(config, category, area, content, TicketKind.REGULAR) == expected
    decision = route(config, category=category, area=area, content=content)
    assert f"{decision.unit_code} {decision.reason}" == expected
