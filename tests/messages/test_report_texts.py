"""The reports as chat messages: each within one WeCom message however many units and tickets, every rate as
numerator/denominator, texts from the platform escaped."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

from bot.domain.clock import TZ
from bot.domain.reports.figures import Counts, Figures, Rate, Ratio
from bot.domain.reports.periods import Period, PeriodKind
from bot.domain.reports.report import LateItem, Report, UnitLine
from bot.messages import reports as texts
from config.vocabulary import DeadlineName

AT = datetime(2026, 11, 2, 9, 37, tzinfo=TZ)
PERIOD = Period(PeriodKind.BIMONTH, date(2026, 9, 1), date(2026, 11, 1))
LIMIT = 1900
ROOT = Path(__file__).resolve().parents[2]


def unit(i: int, *, name: str | None = None) -> UnitLine:
    f = Figures()
    for rate in Rate:
        f.rates[rate] = Ratio(90 + i % 10, 100)
    f.counts = Counts(received=120, accept_misses=i % 4, returns_asked=i % 3, dissatisfied=i % 5, warnings=i % 2)
    return UnitLine(
        code=f"U{i:03d}",
        name=name or f"青浦区夏阳街道第{i:03d}号居民委员会城市管理联勤联动工作站",
        figures=f,
        previous=f,
        year_ago=Figures(),
        score=90 - i / 10,
        previous_score=89.0,
        year_ago_score=None,
        rank=i,
    )


def report(units: int) -> Report:
    lines = [unit(i) for i in range(1, units + 1)]
    late = [
        LateItem(
            ticket_no=f"2026091{i:07d}",
            unit=f"U{i % units + 1:03d}",
            kind="regular",
            category="市容",
            title="店招破损",
            deadline=DeadlineName.FIRST_CONTACT if i % 2 else DeadlineName.HANDLE,
            due_at=AT - timedelta(days=20),
            met_at=None,
        )
        for i in range(500)
    ]
    return Report(
        period=PERIOD,
        at=AT,
        office="上海市青浦区夏阳街道城市运行管理中心12345市民服务热线办公室",
        scope=None,
        total=replace(unit(0), code=None, name="合计"),
        units=lines,
        ranked=units,
        chart_rate=Rate.HANDLE,
        trend=(),
        targets={Rate.SATISFACTION: 0.95},
        miss_limit=3,
        late=late,
        unit_names={x.code: x.name for x in lines if x.code},
    )


def size(text: str) -> int:
    return len(text.encode("utf-8"))


def test_the_bulletin_fits_two_messages_with_two_hundred_long_named_units() -> None:
    first, second = texts.bulletin(report(200))
    assert size(first) <= LIMIT
    assert size(second) <= LIMIT
    assert "六、同比、环比" in second  # the last item is never cut off
    assert "等 200 个单位" in second  # item 五 names some, and says how many there are


def test_the_office_and_several_units_answers_fit() -> None:
    big = report(200)
    assert size(texts.office_report(big)) <= LIMIT
    assert size(texts.weekly_office(big)) <= LIMIT
    assert size(texts.units_report(replace(big, units=big.units[:8]))) <= LIMIT


def test_the_brief_fits_and_keeps_its_last_line() -> None:
    items = [
        texts.BriefItem(
            ticket_no=f"20261102{i:05d}",
            title="光明路幸福里小区北门店招破损严重有坠落风险请尽快处理",
            deadline="handle" if i % 3 else "rehandle",
            due_at=AT + timedelta(hours=i - 15),
            warning=i % 3 == 0,
        )
        for i in range(40)
    ]
    text = texts.brief("青浦区夏阳街道城市管理联勤联动工作站", items, misses=2, limit=3, period="2026年11–12月", now=AT)
    assert size(text) <= LIMIT
    assert text.endswith("本期（2026年11–12月）未按时接单 2/3。")
    assert "已逾期 " in text
    assert "今日到期 " in text


def test_a_platform_title_is_escaped_in_the_brief() -> None:
    item = texts.BriefItem(
        ticket_no="1", title="[点我](http://evil.example) **急**", deadline="handle", due_at=AT, warning=False
    )
    text = texts.brief("环卫所", [item], misses=0, limit=3, period="2026年11–12月", now=AT)
    assert "](http" not in text
    assert "**急**" not in text


def test_a_bulletin_that_fits_no_name_says_how_many_units_and_points_to_the_workbook() -> None:
    long = report(20)
    long = replace(long, units=[unit(i, name="城市管理联勤联动工作站" * 40) for i in range(1, 21)])
    first, second = texts.bulletin(long)
    assert size(first) <= LIMIT
    assert size(second) <= LIMIT
    assert "工作站城市管理" not in first + second  # no name fitted
    assert "共 20 个单位（见附件）" in second
    assert "前 0 名" not in second
    assert "：；" not in first + second


def test_a_unit_whose_only_doing_was_a_return_has_data() -> None:
    sample = report(3)
    quiet = replace(unit(1), figures=Figures(counts=Counts(returns_asked=2, returns_approved=1)))
    assert "暂无数据" in texts.unit_report(sample, replace(unit(1), figures=Figures()))
    answer = texts.unit_report(sample, quiet)
    assert "暂无数据" not in answer
    assert "退单 2 件（同意 1，驳回 0）" in answer


def test_the_bulletins_item_two_counts_tickets_as_the_workbooks_sheet_lists_them() -> None:
    """A ticket late on its first contact and its 20-minute contact is one 未先行联系 ticket; one late on its handling
    and its re-handling one 逾期 ticket."""

    def late(no: str, deadline: DeadlineName) -> LateItem:
        return LateItem(ticket_no=no, unit="U001", kind="regular", category="市容", title="店招破损",
                        deadline=deadline, due_at=AT - timedelta(days=20), met_at=None)  # fmt: skip

    sample = replace(
        report(3),
        late=[
            late("T1", DeadlineName.FIRST_CONTACT),
            late("T1", DeadlineName.CONTACT_20M),
            late("T2", DeadlineName.CONTACT_20M),
            late("T3", DeadlineName.HANDLE),
            late("T3", DeadlineName.REHANDLE),
            late("T4", DeadlineName.ACCEPT),  # item 一's
        ],
    )
    first = texts.bulletin(sample)[0]
    item2 = next(line for line in first.splitlines() if line.startswith("二、"))
    assert item2.endswith(f"{unit(1).name} 未先行联系 2 件，逾期 1 件。")


def test_handing_the_chart_over_loads_no_plotting_library() -> None:
    """The 通报's chart is drawn in the process apart: the bot's own process makes its values without importing
    matplotlib or loading the font (a fifth of a second on the event loop and tens of MB, once)."""
    code = (
        "import sys; from tests.messages.test_report_texts import report; from bot.messages import reports; "
        "sample = report(3); sample.total.figures.counts.by_category['𠀀类'] = 5; reports.chart_data(sample); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'PIL')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == "[]"


def test_where_the_limit_does_not_apply_no_unit_is_marked_as_at_it() -> None:
    """A quarter's 通报 where three misses count per two months: the misses, without the limit or a summons."""
    sample = replace(report(12), miss_limit=None)
    first = texts.bulletin(sample)[0]
    assert first.splitlines()[1].startswith("一、未按时先行接单的单位：")
    assert "约谈" not in first
    assert "上限" not in texts.unit_report(sample, sample.units[2])
    assert "（上限 3 次）" in texts.unit_report(report(12), report(12).units[2])


def test_the_charts_trend_shows_each_rate_with_its_numerator_and_denominator() -> None:
    periods = [PERIOD.previous(), PERIOD]
    sample = replace(report(3), trend=[(periods[0], Ratio(45, 50)), (periods[1], Ratio(0, 0))])
    trend = texts.chart_data(sample)["trend"]
    assert [(p.value, p.note) for p in trend] == [(0.9, "45/50"), (None, "0/0")]


def test_the_brief_lists_each_ticket_once_with_its_deadlines() -> None:
    """A 三个二 ticket overdue on three deadlines is one ticket overdue; its title is cut with an ellipsis."""

    def item(no: str, deadline: str, hours: float, *, warning: bool = False) -> texts.BriefItem:
        title = "光明路幸福里小区北门店招破损严重有坠落风险请尽快处理并回复"
        return texts.BriefItem(ticket_no=no, title=title, deadline=deadline, due_at=AT + timedelta(hours=hours),
                               warning=warning)  # fmt: skip

    items = [
        item("T1", "first_contact", -3),
        item("T1", "accept", -5),
        item("T1", "contact_20m", -6),
        item("T1", "on_site_2h", 2),  # later today: T1 is listed under 已逾期 only
        item("T2", "solve_24h", 4),
        item("T3", "rehandle", 30, warning=True),
    ]
    text = texts.brief("市容景观所", items, misses=0, limit=3, period="2026年11–12月", now=AT)
    lines = text.splitlines()
    assert lines[1] == "已逾期 1 件："
    assert lines[2] == "· T1 光明路幸福里小区北门店招破损严重有坠落风险请尽快… 20分钟联系、接单、先行联系 已超时 6小时"
    assert lines[3] == "今日到期 1 件："
    assert lines[4].startswith("· T2 ")
    assert "24小时解决" in lines[4]
    assert lines[5] == "预警工单（再次处置） 1 件："
