"""The report as the office's Excel workbook and as CSV, read back as a spreadsheet and a CSV reader would."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import openpyxl
import pytest

from bot.domain.clock import TZ
from bot.domain.reports.figures import Counts, Figures, Rate, Ratio
from bot.domain.reports.periods import Period, PeriodKind
from bot.domain.reports.report import LateItem, RepeatItem, Report, ReturnItem, UnitLine, VisitItem
from bot.messages.workbook import RECEIVED, csv_text, workbook
from config.vocabulary import DeadlineName

AT = datetime(2027, 1, 2, 8, 30, tzinfo=TZ)
PERIOD = Period(PeriodKind.BIMONTH, date(2026, 11, 1), date(2027, 1, 1))
NAMES = {"u1": "东村居委会", "u2": "城管中队", "u3": "=cmd|calc"}


def figures(*, accept: tuple[int, int] = (9, 10), satisfied: tuple[float, int] = (7.5, 8), misses: int = 0) -> Figures:
    f = Figures()
    f.rates[Rate.ACCEPT] = Ratio(*accept)
    f.rates[Rate.SATISFACTION] = Ratio(*satisfied)
    f.counts = Counts(received=12, returns_asked=2, returns_approved=1, returns_rejected=1, accept_misses=misses)
    return f


def line(code: str | None, rank: int | None, *, misses: int = 0, score: float | None = 90.0) -> UnitLine:
    now = figures(misses=misses)
    before = figures(accept=(8, 10))
    return UnitLine(
        code=code,
        name=NAMES.get(code or "", "合计"),
        figures=now,
        previous=before,
        year_ago=Figures(),
        score=score,
        previous_score=None if score is None else score - 2.5,
        year_ago_score=None,
        rank=rank,
    )


def report(**items: object) -> Report:
    units = [line("u1", 1, misses=1), line("u2", 2, misses=3), line("u3", None, score=None)]
    fields: dict[str, object] = {
        "period": PERIOD,
        "at": AT,
        "office": "夏阳街道热线办",
        "scope": None,
        "total": line(None, None),
        "units": units,
        "ranked": 2,
        "chart_rate": Rate.SATISFACTION,
        "trend": (),
        "targets": {},
        "miss_limit": 3,
        "unit_names": NAMES,
    } | items
    return Report(**fields)  # type: ignore[arg-type]


def late(no: str, deadline: DeadlineName, *, met: datetime | None = None, stopped: datetime | None = None) -> LateItem:
    return LateItem(
        ticket_no=no,
        unit="u1",
        kind="regular",
        category="市容环境",
        title="路灯不亮",
        deadline=deadline,
        due_at=datetime(2026, 11, 23, 1, 0, tzinfo=UTC),  # 09:00 in Beijing
        met_at=met,
        stopped_at=stopped,
    )


FULL = {
    "late": (
        late("T1", DeadlineName.ACCEPT),
        late("T2", DeadlineName.FIRST_CONTACT),
        late("T3", DeadlineName.HANDLE, met=datetime(2026, 11, 23, 12, 30, tzinfo=TZ)),
        # closed unmet: the ticket was submitted without a first contact recorded
        late("T7", DeadlineName.FIRST_CONTACT, stopped=datetime(2026, 11, 23, 11, 0, tzinfo=TZ)),
    ),
    "returns": (
        ReturnItem(
            ticket_no="T4",
            unit="u1",
            asked_at=datetime(2026, 11, 5, 10, 0, tzinfo=TZ),
            reason="+非本单位职责",
            suggested="u2",
            outcome="approved",
            decided_at=datetime(2026, 11, 5, 15, 0, tzinfo=TZ),
        ),
    ),
    "visits": (
        VisitItem(
            ticket_no="T5",
            unit="u2",
            category="噪音",
            title="夜间施工",
            visited_at=datetime(2026, 12, 1, 9, 0, tzinfo=TZ),
            result="dissatisfied",
            solved="unsolved",
            warning=True,
            rehandle_due=datetime(2026, 12, 4, 17, 0, tzinfo=TZ),
            rehandle_met=None,
        ),
    ),
    "repeats": (
        RepeatItem(
            ticket_no="T6",
            unit="u2",
            category="噪音",
            title='=HYPERLINK("http://x","点我")',
            dispatched_at=datetime(2026, 12, 2, 9, 0, tzinfo=TZ),
            count=2,
            repeat_of="T5",
            reason="phone+address",
        ),
    ),
}


@pytest.fixture
def book(engine: str) -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(workbook(report(**FULL), engine=engine)))


def rows(sheet: openpyxl.worksheet.worksheet.Worksheet, first: int = 1) -> list[tuple[object, ...]]:
    return [tuple(r) for r in sheet.iter_rows(min_row=first, values_only=True)]


def test_the_sheets_come_in_the_bulletins_order(book: openpyxl.Workbook) -> None:
    assert book.sheetnames == ["汇总", "未按时接单", "未先行联系及逾期", "退单", "不满意及预警", "重复诉求", "收件统计"]


def test_the_summary_has_a_title_two_header_rows_and_a_row_per_unit_then_the_total(book: openpyxl.Workbook) -> None:
    ws = book["汇总"]
    assert "夏阳街道热线办" in ws["A1"].value
    assert "2026年11-12月" in ws["A1"].value
    assert "生成时间：2027-01-02 08:30" in ws["A1"].value
    assert [ws.cell(2, c).value for c in (1, 2, 3, 4, 7)] == ["排名", "单位", "收到工单", "得分", "按时接单率"]
    assert [ws.cell(3, c).value for c in range(4, 12)] == [
        "得分", "环比(分)", "同比(分)", "分子", "分母", "比率", "环比(百分点)", "同比(百分点)",
    ]  # fmt: skip
    headers = [ws.cell(2, c).value for c in range(1, ws.max_column + 1)]
    rate_headers = [h for h in headers if h and h.endswith("率")]
    assert rate_headers == [r.label for r in Rate]
    assert headers[-12:] == [
        "退单", None, None, "按时再次处置", None, None, "预警", "不满意", "联系不上", "重复诉求", "媒体曝光", "未按时接单",
    ]  # fmt: skip
    subs = [ws.cell(3, c).value for c in range(len(headers) - 11, len(headers) - 5)]
    assert subs == ["申请", "同意", "驳回", "分子", "分母", "比率"]
    assert [ws.cell(r, 2).value for r in range(4, 8)] == ["东村居委会", "城管中队", "=cmd|calc", "合计"]
    assert ws.cell(6, 2).data_type == "s"
    assert ws.max_row == 7
    assert ws.freeze_panes == "C4"


def test_the_summarys_numbers_are_numbers_and_its_rates_percentages(book: openpyxl.Workbook) -> None:
    ws = book["汇总"]
    rank, received, score, change = ws["A4"], ws["C4"], ws["D4"], ws["E4"]
    assert (rank.value, received.value, score.value, change.value) == (1, 12, 90.0, 2.5)
    num, den, ratio, month_on_month, year_on_year = (ws.cell(4, c) for c in range(7, 12))
    assert (num.value, den.value) == (9, 10)
    assert ratio.value == pytest.approx(0.9)
    assert ratio.data_type == "n"
    assert ratio.number_format == "0.0%"
    assert month_on_month.value == pytest.approx(10.0)  # 90 % against 80 %
    assert year_on_year.value is None  # no denominator a year ago
    handle = [ws.cell(3, c).value for c in range(1, ws.max_column + 1)].index("比率", 12) + 1
    assert ws.cell(4, handle).value is None  # 先行联系率: no denominator, no ratio
    assert ws.cell(6, 1).value is None  # a unit without a score has no rank
    labels = [ws.cell(2, c).value for c in range(1, ws.max_column + 1)]
    satisfaction = labels.index("满意率") + 1
    assert ws.cell(4, satisfaction).value == 7.5  # the weighted numerator stays a fraction
    assert ws.cell(4, satisfaction + 2).value == pytest.approx(7.5 / 8)


def test_accept_misses_list_the_units_most_first_and_highlight_those_at_the_limit(book: openpyxl.Workbook) -> None:
    ws = book["未按时接单"]
    assert rows(ws)[:3] == [
        ("单位", "未按时接单次数", "上限", "状态", None, None, None, None, None),
        ("城管中队", 3, 3, "已达上限，约谈", None, None, None, None, None),
        ("东村居委会", 1, 3, None, None, None, None, None, None),
    ]
    assert ws["A2"].fill.fgColor.rgb.endswith("FFC7CE")
    assert ws["D2"].fill.fgColor.rgb.endswith("FFC7CE")
    assert not ws["A3"].fill.fgColor.rgb.endswith("FFC7CE")
    assert ws.freeze_panes == "A2"
    tickets = [r for r in rows(ws, 5) if r[0] is not None]
    assert tickets[0][:6] == ("未按时接单工单", None, None, None, None, None)
    assert tickets[1][:3] == ("工单编号", "单位", "类型")
    assert [r[0] for r in tickets[2:]] == ["T1"]  # the accept line only
    assert ws.auto_filter.ref == "A6:I7"


def test_late_deadlines_show_beijing_times_the_hours_over_and_room_for_an_explanation(book: openpyxl.Workbook) -> None:
    ws = book["未先行联系及逾期"]
    header, *lines = rows(ws)
    assert header == (
        "工单编号",
        "单位",
        "类型",
        "分类",
        "标题",
        "时限",
        "到期时间",
        "完成时间",
        "超时(小时)",
        "情况说明",
    )
    assert [r[0] for r in lines] == ["T2", "T3", "T7"]
    assert lines[0][1:6] == ("东村居委会", "常规", "市容环境", "路灯不亮", "先行联系")
    assert lines[0][6] == datetime(2026, 11, 23, 9, 0)  # naive Beijing time
    assert ws["G2"].number_format == "yyyy-mm-dd hh:mm"
    assert lines[0][7] == "未完成"
    assert lines[0][8] == pytest.approx((AT.replace(tzinfo=None) - datetime(2026, 11, 23, 9, 0)).total_seconds() / 3600)
    assert lines[1][5:9] == ("办结", datetime(2026, 11, 23, 9, 0), datetime(2026, 11, 23, 12, 30), 3.5)
    assert ws["I3"].data_type == "n"
    assert lines[1][9] is None
    assert lines[2][7:9] == ("未完成", 2.0)  # overdue until it stopped being due, not until the report
    assert ws.freeze_panes == "B2"
    assert ws.auto_filter.ref == "A1:J4"
    assert ws.column_dimensions["E"].width >= 10  # four CJK characters count as eight


def test_returns_visits_and_repeats_in_words(book: openpyxl.Workbook) -> None:
    assert rows(book["退单"]) == [
        ("工单编号", "退单单位", "申请时间", "理由", "建议单位", "结果", "审核时间"),
        ("T4", "东村居委会", datetime(2026, 11, 5, 10), "+非本单位职责", "城管中队", "同意", datetime(2026, 11, 5, 15)),
    ]
    assert rows(book["不满意及预警"])[1] == (
        "T5", "城管中队", "噪音", "夜间施工", datetime(2026, 12, 1, 9), "不满意", "未解决", "是",
        datetime(2026, 12, 4, 17), "未完成",
    )  # fmt: skip
    header, repeat = rows(book["重复诉求"])
    assert header == ("工单编号", "单位", "分类", "标题", "派单时间", "第几次", "前次工单", "匹配依据")
    assert repeat[4:] == (datetime(2026, 12, 2, 9), 2, "T5", "电话+地址")


def test_a_title_that_looks_like_a_formula_stays_text(book: openpyxl.Workbook) -> None:
    cell = book["重复诉求"]["D2"]
    assert cell.value == '=HYPERLINK("http://x","点我")'
    assert cell.data_type == "s"
    assert book["退单"]["D2"].data_type == "s"


def test_an_empty_report_is_still_a_workbook(engine: str) -> None:
    empty = report(units=[], total=UnitLine(
        code=None, name="合计", figures=Figures(), previous=Figures(), year_ago=Figures(),
        score=None, previous_score=None, year_ago_score=None,
    ))  # fmt: skip
    book = openpyxl.load_workbook(io.BytesIO(workbook(empty, engine=engine)))
    assert len(book.sheetnames) == 7
    summary = book["汇总"]
    assert summary.max_row == 4
    assert summary["B4"].value == "合计"
    assert summary["C4"].value == 0
    assert all(cell.value is None for cell in summary[4][3:6])
    assert rows(book["退单"]) == [("工单编号", "退单单位", "申请时间", "理由", "建议单位", "结果", "审核时间")]
    assert book["未按时接单"]["A2"].value is None


def test_the_csv_is_the_summary_table_with_decimal_ratios() -> None:
    table = list(csv.reader(io.StringIO(csv_text(report(**FULL)))))
    header, *lines = table
    assert header[:6] == ["排名", "单位", "收到工单", "得分", "得分-环比(分)", "得分-同比(分)"]
    at = header.index("按时接单率-分子")
    assert header[at : at + 5] == [
        "按时接单率-分子", "按时接单率-分母", "按时接单率-比率", "按时接单率-环比(百分点)", "按时接单率-同比(百分点)",
    ]  # fmt: skip
    assert header[-12:] == [
        "退单-申请", "退单-同意", "退单-驳回", "按时再次处置-分子", "按时再次处置-分母", "按时再次处置-比率",
        "预警", "不满意", "联系不上", "重复诉求", "媒体曝光", "未按时接单",
    ]  # fmt: skip
    assert len(lines) == 4
    first = dict(zip(header, lines[0], strict=True))
    assert first["排名"] == "1"
    assert first["单位"] == "东村居委会"
    assert first["按时接单率-比率"] == "0.9000"
    assert float(first["按时接单率-环比(百分点)"]) == pytest.approx(10.0)
    assert first["按时接单率-同比(百分点)"] == ""
    assert first["满意率-分子"] == "7.5"
    assert first["先行联系率-比率"] == ""
    assert lines[-1][1] == "合计"


def test_csv_cells_that_could_run_as_formulas_get_a_quote() -> None:
    lowered = line("u1", 1, score=80.0)
    text = csv_text(report(units=[lowered, line("u3", 2)], unit_names=NAMES | {"u1": "@SUM(A1)"}))
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[1][1] == "'@SUM(A1)"
    assert lines[2][1] == "'=cmd|calc"
    down = lines[0].index("得分-环比(分)")
    lowered_down = csv_text(report(units=[UnitLine(**{**_fields(lowered), "previous_score": 85.0})]))
    assert list(csv.reader(io.StringIO(lowered_down)))[1][down] == "-5.00"  # a negative number stays a number
    assert lines[1][down] == "2.50"


def _fields(unit: UnitLine) -> dict[str, object]:
    return {name: getattr(unit, name) for name in UnitLine.__slots__}


def looks(data: bytes) -> dict[str, object]:
    """All that a spreadsheet shows of a workbook: each sheet's cells with their formats, merged ranges, widths,
    heights, frozen panes, filter and page set-up; the title."""
    book = openpyxl.load_workbook(io.BytesIO(data))
    out: dict[str, object] = {"title": book.properties.title, "sheets": book.sheetnames}
    for ws in book.worksheets:
        cells = {
            c.coordinate: (
                c.value,
                c.data_type,
                c.number_format,
                c.font.b,
                c.font.sz,
                c.font.color and c.font.color.rgb,
                c.fill.fill_type,
                c.fill.fgColor.rgb,
                c.border.top.style,
                c.border.left.style,
                c.alignment.horizontal,
                c.alignment.vertical,
                c.alignment.wrap_text,
            )  # fmt: skip
            for row in ws.iter_rows()
            for c in row
            if c.value is not None or c.has_style
        }
        out[ws.title] = {
            "cells": cells,
            "merged": sorted(str(r) for r in ws.merged_cells.ranges),
            # one width per column (XlsxWriter writes neighbours of the same width as one range)
            "widths": {i: d.width for d in ws.column_dimensions.values() for i in range(d.min, d.max + 1)},
            "heights": {k: d.height for k, d in ws.row_dimensions.items() if d.height},
            "frozen": ws.freeze_panes,
            "filter": ws.auto_filter.ref,
            "page": (ws.page_setup.orientation, ws.page_setup.fitToWidth, ws.page_setup.fitToHeight),
            "fit": ws.sheet_properties.pageSetUpPr.fitToPage if ws.sheet_properties.pageSetUpPr else None,
            "titles": ws.print_title_rows,
        }
    return out


def test_both_engines_write_the_same_workbook(c_engine: str) -> None:
    """The C library's workbook and XlsxWriter's read back alike, cell by cell, format by format."""
    full = report(**FULL)
    c, python = looks(workbook(full, engine=c_engine)), looks(workbook(full, engine="xlsxwriter"))
    assert c == python
    assert c["title"] == "夏阳街道热线办 2026年11-12月"
    summary = c["汇总"]
    assert isinstance(summary, dict)
    assert summary["titles"] == "$2:$3"
    assert "A2:A3" in summary["merged"]
    assert summary["page"] == ("landscape", None, 0)  # one page wide (the default, not written), as long as it runs


def test_where_the_limit_does_not_apply_the_misses_stand_alone(engine: str) -> None:
    """A quarter's workbook where three misses count per two months: no limit, no unit highlighted."""
    made = openpyxl.load_workbook(io.BytesIO(workbook(report(miss_limit=None, **FULL), engine=engine)))
    ws = made["未按时接单"]
    assert rows(ws)[1:3] == [
        ("城管中队", 3, None, None, None, None, None, None, None),
        ("东村居委会", 1, None, None, None, None, None, None, None),
    ]
    assert not ws["A2"].fill.fgColor.rgb.endswith("FFC7CE")


def test_the_tickets_received_by_kind_and_by_category_most_first(engine: str) -> None:
    total = line(None, None)
    total.figures.counts.by_kind.update({"regular": 9, "urgent": 3})
    total.figures.counts.by_category.update({"噪音": 5, "市容环境": 7})
    made = openpyxl.load_workbook(io.BytesIO(workbook(report(total=total), engine=engine)))
    ws = made[RECEIVED]
    table = rows(ws)
    assert table[:3] == [("类型", "件数", "占比"), ("常规", 9, 0.75), ("紧急", 3, 0.25)]
    assert table[4:7] == [
        ("分类", "件数", "占比"),
        ("市容环境", 7, pytest.approx(7 / 12)),
        ("噪音", 5, pytest.approx(5 / 12)),
    ]
    assert ws["C2"].number_format == "0.0%"


def test_more_rows_than_a_sheet_holds_is_an_error_on_both_engines(engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither engine drops a row: past the sheet's last row the workbook is refused (here with a sheet of 5 rows)."""
    from bot.messages import workbook as module

    monkeypatch.setattr(module, "LAST_ROW", 4)  # 汇总 needs 7 rows: its title, two header rows, three units, 合计
    with pytest.raises(ValueError, match="more rows than a sheet holds"):
        workbook(report(**FULL), engine=engine)
