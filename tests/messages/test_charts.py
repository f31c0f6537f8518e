"""The report charts: PNG images a phone can read, Chinese drawn in the CJK font (warnings are errors here, so a
glyph matplotlib cannot find fails the test), at most 40 units, and no character ever drawn as an empty box."""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import pytest

from bot.messages import charts
from bot.messages.charts import ChartFontMissing, Point, report_chart, shares_chart, trend_chart, unit_bars

PNG = b"\x89PNG\r\n\x1a\n"
WECOM_IMAGE_LIMIT = 2 * 1024 * 1024
UNITS = ["东城街道办事处", "西城供电公司", "南湖镇人民政府", "高新区水务集团", "北山城管执法局"]
SHARES = [("路灯", 120), ("噪音", 80), ("供水", 77), ("道路", 50), ("垃圾", 33), ("占道经营", 20), ("停车", 11)]
SHARES += [("物业", 9), ("供暖", 3), ("其他", 2), ("无人反映", 0)]


@pytest.fixture(autouse=True)
def _cjk_font(monkeypatch: pytest.MonkeyPatch) -> None:
    """The charts need a CJK font (make fonts installs it): in CI its absence fails, elsewhere it skips."""
    monkeypatch.delenv(charts.FONT_ENV, raising=False)
    try:
        charts.font_path()
    except ChartFontMissing as missing:
        if os.environ.get("CI"):
            pytest.fail(str(missing))
        pytest.skip(str(missing))


def size(png: bytes) -> tuple[int, int]:
    """The image's width and height in pixels, from its IHDR chunk."""
    assert png.startswith(PNG)
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def units(n: int) -> list[Point]:
    """``n`` units, their rates spread over 50%..100%, every tenth with no data."""
    return [
        Point(f"{UNITS[i % len(UNITS)]}{i}", None if i % 10 == 9 else 0.5 + (i * 37 % 100) / 200, f"{i % 50}/50")
        for i in range(n)
    ]


def periods(n: int) -> list[Point]:
    return [Point(f"2026年{m}-{m + 1}月", 0.8 + m / 100, f"{40 + m}/50") for m in range(1, n + 1)]


def test_report_chart_is_one_png_a_phone_shows_and_wecom_accepts() -> None:
    png = report_chart(
        title="2026年11月 工单报告",
        rate_name="按时办结率",
        bars=units(200),
        target=0.9,
        trend=[Point(f"第{w}周", None if w == 45 else 0.85 + (w % 5) / 50) for w in range(38, 52)],
        shares_title="诉求类别占比",
        shares=SHARES,
    )
    width, height = size(png)
    assert 1000 <= width <= 1200
    assert 2000 <= height <= 4000
    assert 50_000 < len(png) < WECOM_IMAGE_LIMIT / 2


def edges_are_blank(png: bytes, band: int = 3) -> bool:
    """Nothing drawn within ``band`` pixels of the image's edges: no label runs off the picture."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("L")
    width, height = image.size
    for box in (
        (0, 0, band, height),
        (width - band, 0, width, height),
        (0, 0, width, band),
        (0, height - band, width, height),
    ):
        if image.crop(box).getextrema()[0] < 250:  # anything darker than the white background
            return False
    return True


def test_long_names_and_slanted_periods_stay_inside_the_picture() -> None:
    long_names = [Point(f"高新技术产业开发区管理委员会社会事务局{i}", 0.5 + i / 100, "9/10") for i in range(12)]
    long_periods = [Point(f"2026年{m}月第{m}周（补充统计）", 0.9) for m in range(1, 13)]
    for png in (
        report_chart(
            title="2026年9-10月 工单报告",
            rate_name="按时办结率",
            bars=long_names,
            target=0.9,
            trend=long_periods,
            shares_title="诉求类别占比",
            shares=[("城乡建设与管理综合执法类诉求", 30), *SHARES],
        ),
        trend_chart("按时办结率趋势", long_periods, target=0.9),
        unit_bars("按时办结率", long_names, target=0.9),
    ):
        assert edges_are_blank(png)


def test_the_bars_show_every_unit_up_to_40_and_the_40_lowest_beyond() -> None:
    heights = {n: size(unit_bars("各单位按时办结率", units(n), target=0.95))[1] for n in (10, 40, 41, 200)}
    assert heights[10] < heights[40]
    assert heights[41] == heights[40] == heights[200]  # 40 bars, however many units


def test_the_report_has_room_for_40_units_at_most() -> None:
    def height(n: int) -> int:
        png = report_chart(
            title="报告",
            rate_name="按时办结率",
            bars=units(n),
            target=None,
            trend=periods(3),
            shares_title="类别",
            shares=SHARES,
        )
        return size(png)[1]

    assert height(40) == height(200)
    assert height(5) < height(40)


def test_a_40_bar_chart_stays_well_under_wecoms_image_limit() -> None:
    png = unit_bars("按时办结率", units(40), target=0.9)
    assert size(png)[0] == 1100
    assert len(png) < WECOM_IMAGE_LIMIT / 4


def test_units_and_periods_with_no_data_are_drawn() -> None:
    nothing = [Point(name, None) for name in UNITS]
    assert size(unit_bars("按时办结率", nothing, target=0.9))[1] > 0
    gaps = [Point("第1周", 0.9), Point("第2周", None, "0/0"), Point("第3周", 0.95, "19/20")]
    assert size(trend_chart("按时办结率趋势", gaps, target=0.9))[1] > 0
    assert size(trend_chart("按时办结率趋势", [Point("第1周", None)], target=None))[1] > 0


def test_empty_inputs_draw_a_chart_that_says_so() -> None:
    for png in (
        shares_chart("诉求类别", []),
        shares_chart("诉求类别", [("路灯", 0)]),
        unit_bars("按时办结率", [], target=0.9),
        trend_chart("趋势", [], target=None),
        report_chart(title="报告", rate_name="满意率", bars=[], target=None, trend=[], shares_title="类别", shares=[]),
    ):
        assert png.startswith(PNG)


def test_a_trend_shows_the_latest_12_periods() -> None:
    assert size(trend_chart("趋势", periods(30), target=0.9)) == size(trend_chart("趋势", periods(12), target=0.9))


def test_a_dollar_sign_in_a_name_is_text_not_a_formula() -> None:
    assert unit_bars("单位$x$", [Point("A$_{1}$局", 0.5), Point("费用$单位", 0.7)], target=None).startswith(PNG)


@pytest.mark.parametrize(
    ("where", "text"),
    [
        ("title", "工单报告😀"),  # an emoji: WenQuanYi Micro Hei has none
        ("unit", "𠀀街道"),  # U+20000, CJK Extension B: not in WenQuanYi Micro Hei
        ("period", "第49周😀"),
        ("category", "路灯𠀀"),
    ],
)
def test_a_character_the_font_lacks_is_refused_not_drawn_as_a_box(where: str, text: str) -> None:
    args = {
        "title": "报告",
        "rate_name": "按时办结率",
        "bars": [Point(text if where == "unit" else "东城", 0.9)],
        "target": 0.9,
        "trend": [Point(text if where == "period" else "第49周", 0.9)],
        "shares_title": "类别",
        "shares": [(text if where == "category" else "路灯", 3)],
    }
    if where == "title":
        args["title"] = text
    with pytest.raises(ValueError, match="no glyph") as refused:
        report_chart(**args)  # type: ignore[arg-type]
    lacking = next(c for c in text if ord(c) > 0xFFFF)
    assert f"U+{ord(lacking):04X}" in str(refused.value)


def test_report_font_names_the_font_to_use(monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib

    latin_only = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    monkeypatch.setenv(charts.FONT_ENV, str(latin_only))
    assert unit_bars("On time", [Point("East", 0.9, "9/10")], target=None).startswith(PNG)
    with pytest.raises(ValueError, match="DejaVuSans.ttf has no glyph for .*'按' \\(U\\+6309\\)"):
        unit_bars("按时办结率", [Point("East", 0.9)], target=0.8)


def test_without_a_font_the_error_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(charts, "FONT_PATHS", ())
    with pytest.raises(ChartFontMissing, match="fonts-wqy-microhei"):
        unit_bars("按时办结率", units(3), target=0.9)
    monkeypatch.setenv(charts.FONT_ENV, "/nonexistent/font.ttc")
    with pytest.raises(ChartFontMissing, match="REPORT_FONT=/nonexistent/font.ttc"):
        shares_chart("类别", SHARES)
