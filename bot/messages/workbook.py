"""A report as the Excel workbook the hotline office files with its bimonthly 通报, and its summary table as CSV.

The six sheets follow the six items the office reports on: every unit's figures beside the period before (环比) and
a year earlier (同比) with the office's total (汇总); the units that missed accepting tickets in time, those at the
limit to be summoned (未按时接单); the deadlines not met, with an empty column for the unit's written explanation
(未先行联系及逾期); the returns (退单); the visits not satisfied or that made a warning ticket (不满意及预警); the
repeated requests (重复诉求); then the office's tickets received by kind and by category (收件统计). The sheet and
column names below are the ones docs/reports.md cites.

Cells hold what they mean: numbers and percentages as numbers with a number format, times as Excel date-times in
Beijing time. Text is always written as text, never as a formula, so a title that starts with ``=`` stays a title;
CSV cells that could start a formula get a leading quote. Titles and reasons come masked from the report.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from itertools import groupby
from typing import Any

from bot.domain.bulk import collector_paused
from bot.domain.clock import local
from bot.domain.lifecycle import Solved, VisitResult
from bot.domain.reports.figures import Figures, Rate, Ratio
from bot.domain.reports.report import LateItem, RepeatItem, Report, ReturnItem, UnitLine, VisitItem
from bot.messages.xlsx import Book, Sheet, new_book
from config.vocabulary import DEADLINE_LABELS, KIND_LABELS, DeadlineName

# --- sheet and column names ----------------------------------------------------------------------------------------

SUMMARY = "汇总"
MISSES = "未按时接单"
LATE = "未先行联系及逾期"
RETURNS = "退单"
VISITS = "不满意及预警"
REPEATS = "重复诉求"

TOTAL = "合计"  # the office's row in 汇总
GENERATED = "生成时间"
# 汇总: 排名, 单位, 收到工单; 得分 and each rate (Rate order) as a group of columns; the counts
LEAD_COLUMNS = ("排名", "单位", "收到工单")
CHANGES = ("环比(百分点)", "同比(百分点)")  # a rate's, in percentage points
SCORE = "得分"
SCORE_COLUMNS = (SCORE, "环比(分)", "同比(分)")  # the score's, in points of the score
RATE_COLUMNS = ("分子", "分母", "比率", *CHANGES)
RETURNS_GROUP = "退单"
RETURN_COUNTS = ("申请", "同意", "驳回")
REHANDLED = "按时再次处置"  # the warnings' re-handling: numerator, denominator, ratio
COUNT_COLUMNS = ("预警", "不满意", "联系不上", "重复诉求", "媒体曝光", "未按时接单")
RECEIVED = "收件统计"  # the tickets received, by kind and by category (the office's)
RECEIVED_COLUMNS = (("件数", "int"), ("占比", "pct"))
# the ticket sheets: (header, how its cells are written)
MISS_COLUMNS = (("单位", "text"), ("未按时接单次数", "int"), ("上限", "int"), ("状态", "text"))
SUMMONED = "已达上限，约谈"
ACCEPT_LINES = "未按时接单工单"  # the heading above 未按时接单's ticket lines
LATE_COLUMNS = (
    ("工单编号", "text"),
    ("单位", "text"),
    ("类型", "text"),
    ("分类", "text"),
    ("标题", "text"),
    ("时限", "text"),
    ("到期时间", "date"),
    ("完成时间", "date"),
    ("超时(小时)", "hours"),
    ("情况说明", "note"),
)
NOT_MET = "未完成"
RETURN_COLUMNS = (
    ("工单编号", "text"),
    ("退单单位", "text"),
    ("申请时间", "date"),
    ("理由", "text"),
    ("建议单位", "text"),
    ("结果", "text"),
    ("审核时间", "date"),
)
OUTCOME_LABELS = {"pending": "待审核", "approved": "同意", "rejected": "驳回", "declined": "负责人未签"}
VISIT_COLUMNS = (
    ("工单编号", "text"),
    ("单位", "text"),
    ("分类", "text"),
    ("标题", "text"),
    ("回访时间", "date"),
    ("回访结果", "text"),
    ("实际解决", "text"),
    ("预警", "text"),
    ("再次处置时限", "date"),
    ("再次处置完成", "date"),
)
REPEAT_COLUMNS = (
    ("工单编号", "text"),
    ("单位", "text"),
    ("分类", "text"),
    ("标题", "text"),
    ("派单时间", "date"),
    ("第几次", "int"),
    ("前次工单", "text"),
    ("匹配依据", "text"),
)
MATCH_LABELS = {"phone": "电话", "address": "地址", "phone+address": "电话+地址", "platform": "平台标记"}

# --- formats -------------------------------------------------------------------------------------------------------

NUMBER_FORMATS = {
    "date": "yyyy-mm-dd hh:mm",
    "pct": "0.0%",
    "points": "+0.0;-0.0;0.0",
    "score": "0.0",
    "hours": "0.0",
}
HEADER = {"bold": True, "bg_color": "#D9E1F2", "border": 1, "align": "center", "valign": "vcenter", "text_wrap": True}
HOT = {"bg_color": "#FFC7CE", "font_color": "#9C0006"}  # a unit at or over the accept-miss limit
WIDTHS = {"date": 17, "note": 30, "pct": 8, "points": 8, "score": 7, "hours": 8, "int": 7, "num": 8}
MAX_WIDTH = 60
LAST_ROW = 1_048_575  # a sheet's last row (from 0)
_WIDEST = MAX_WIDTH - 2  # a column this wide is as wide as it gets (_finish)
CSV_UNSAFE = ("=", "+", "-", "@", "\t", "\r")

_EPOCH = datetime(1899, 12, 30, tzinfo=UTC)  # Excel's day 0 (1900 date system), as a wall-clock time
_DAY = timedelta(days=1)
_KINDS = {kind.value: label for kind, label in KIND_LABELS.items()}
_DEADLINES = {name.value: label for name, label in DEADLINE_LABELS.items()}
_VISITS = {r.value: r.label for r in VisitResult}
_SOLVED = {s.value: s.label for s in Solved}

Cell = str | int | float | datetime | None
Row = Sequence[Cell]
Columns = Sequence[tuple[str, str]]  # (header, kind: text, note, int, num or a key of NUMBER_FORMATS)
_KEYS = ("text", "note", "int", "num", *NUMBER_FORMATS)


def workbook(report: Report, *, engine: str | None = None) -> bytes:
    """The report as an .xlsx file: 汇总, 未按时接单, 未先行联系及逾期, 退单, 不满意及预警, 重复诉求, in that order.
    ``engine``: which writes it (bot.messages.xlsx; None: the faster one this machine has)."""
    with collector_paused():  # a cell is an object: tens of thousands of them
        book = new_book(engine)
        try:
            book.set_title(f"{report.office} {report.period.label}")
            writer = _Writer(book)
            writer.summary(report)
            writer.misses(report)
            late = (_late_row(report, i) for i in report.late if i.deadline != DeadlineName.ACCEPT)
            writer.tickets(LATE, LATE_COLUMNS, late)
            writer.tickets(RETURNS, RETURN_COLUMNS, (_return_row(report, i) for i in report.returns))
            writer.tickets(VISITS, VISIT_COLUMNS, (_visit_row(report, i) for i in report.visits))
            writer.tickets(REPEATS, REPEAT_COLUMNS, (_repeat_row(report, i) for i in report.repeats))
            writer.received(report)
        except BaseException:
            with contextlib.suppress(Exception):  # what the writer holds is let go; the error stands
                book.close()
            raise
        return book.close()


def csv_text(report: Report) -> str:
    """汇总 as CSV: one header row, a row per unit (rank order) and the 合计 row. A rate is its numerator, denominator,
    ratio as a decimal (0.9875), then its 环比 and 同比 in percentage points; a cell without a value is empty. A text
    cell that a spreadsheet could take for a formula starts with a single quote."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([_csv_safe(_flat(group, sub)) for group, sub, _ in SUMMARY_COLUMNS])
    for line in (*report.units, report.total):
        values = _summary_row(report, line)
        writer.writerow([_csv_cell(v, kind) for (_, _, kind), v in zip(SUMMARY_COLUMNS, values, strict=True)])
    return out.getvalue()


# --- 汇总's columns and rows ----------------------------------------------------------------------------------------


def _summary_columns() -> list[tuple[str, str | None, str]]:
    """(group header, sub-header or None for a column of its own, kind) of each column of 汇总."""
    cols: list[tuple[str, str | None, str]] = [
        (name, None, "text" if name == "单位" else "int") for name in LEAD_COLUMNS
    ]
    cols += [(SCORE, sub, "score" if sub == SCORE else "points") for sub in SCORE_COLUMNS]
    for rate in Rate:
        kinds = ("num", "int", "pct", "points", "points")
        cols += [(rate.label, sub, kind) for sub, kind in zip(RATE_COLUMNS, kinds, strict=True)]
    cols += [(RETURNS_GROUP, sub, "int") for sub in RETURN_COUNTS]
    cols += [(REHANDLED, sub, kind) for sub, kind in zip(RATE_COLUMNS[:3], ("int", "int", "pct"), strict=True)]
    cols += [(name, None, "int") for name in COUNT_COLUMNS]
    return cols


SUMMARY_COLUMNS = _summary_columns()


def _summary_row(report: Report, line: UnitLine) -> list[Cell]:
    f: Figures = line.figures
    c = f.counts
    name = TOTAL if line is report.total else report.unit_name(line.code)
    row: list[Cell] = [line.rank, name, c.received, line.score, line.score_change(), line.score_change(year=True)]
    for rate in Rate:
        ratio = f.rates.get(rate, Ratio())
        row += [ratio.num, ratio.den, ratio.value, line.change(rate), line.change(rate, year=True)]
    row += [c.returns_asked, c.returns_approved, c.returns_rejected]
    row += [f.rehandled.num, f.rehandled.den, f.rehandled.value]
    row += [c.warnings, c.dissatisfied, c.unreachable, c.repeats, c.media, c.accept_misses]
    return row


# --- the ticket sheets' rows ---------------------------------------------------------------------------------------


def _late_row(report: Report, i: LateItem, *, note: bool = True) -> Row:
    # overdue until it was met, or stopped being due unmet, else until the report's time
    end = i.met_at or i.stopped_at or report.at
    hours = round(max((end - i.due_at).total_seconds(), 0) / 3600, 2)
    row = (
        i.ticket_no,
        report.unit_name(i.unit),
        _KINDS.get(i.kind, i.kind),
        i.category,
        i.title,
        _DEADLINES.get(i.deadline, str(i.deadline)),
        i.due_at,
        NOT_MET if i.met_at is None else i.met_at,
        hours,
    )
    return (*row, None) if note else row


def _return_row(report: Report, i: ReturnItem) -> Row:
    suggested = None if i.suggested is None else report.unit_name(i.suggested)
    outcome = OUTCOME_LABELS.get(i.outcome, i.outcome)
    return (i.ticket_no, report.unit_name(i.unit), i.asked_at, i.reason, suggested, outcome, i.decided_at)


def _visit_row(report: Report, i: VisitItem) -> Row:
    result = None if i.result is None else _VISITS.get(i.result, i.result)
    solved = None if i.solved is None else _SOLVED.get(i.solved, i.solved)
    met = i.rehandle_met if i.rehandle_met is not None or i.rehandle_due is None else NOT_MET
    warning = "是" if i.warning else "否"
    return (i.ticket_no, report.unit_name(i.unit), i.category, i.title, i.visited_at, result, solved, warning,
            i.rehandle_due, met)  # fmt: skip


def _repeat_row(report: Report, i: RepeatItem) -> Row:
    reason = None if i.reason is None else MATCH_LABELS.get(i.reason, i.reason)
    return (i.ticket_no, report.unit_name(i.unit), i.category, i.title, i.dispatched_at, i.count, i.repeat_of, reason)


# --- writing -------------------------------------------------------------------------------------------------------


class _Writer:
    """The workbook's formats, and its sheets written from rows of cells."""

    def __init__(self, book: Book) -> None:
        self.book = book
        self.header = book.add_format(HEADER)
        self.title = book.add_format({"bold": True, "font_size": 14})
        self.heading = book.add_format({"bold": True, "font_size": 12})
        self.plain = self._formats({})
        self.hot = self._formats(HOT)
        self.total = self._formats({"bold": True, "top": 1})

    def _formats(self, props: Mapping[str, object]) -> dict[str, Any]:
        """A format for each kind of cell (None: the default one) with ``props``."""
        out: dict[str, Any] = {}
        for key in _KEYS:
            fmt = {**props, "num_format": NUMBER_FORMATS[key]} if key in NUMBER_FORMATS else props
            out[key] = self.book.add_format(fmt) if fmt else None
        return out

    def summary(self, report: Report) -> None:
        ws = self.book.add_worksheet(SUMMARY)
        at = f"{GENERATED}：{local(report.at):%Y-%m-%d %H:%M}"
        title = f"{report.office}　{report.period.label}　工单情况汇总（{at}）"
        ws.write_string(0, 0, title, self.title)
        ws.set_row(0, 24)
        widths = [0] * len(SUMMARY_COLUMNS)
        c = 0
        for group, columns in groupby(SUMMARY_COLUMNS, key=lambda column: column[0]):
            subs = [sub for _, sub, _ in columns]
            if subs == [None]:  # a column of its own: its header over both rows
                ws.merge_range(1, c, 2, c, group, self.header)
                widths[c] = _width(group)
            else:
                ws.merge_range(1, c, 1, c + len(subs) - 1, group, self.header)
                for i, sub in enumerate(subs):
                    ws.write_string(2, c + i, sub or "", self.header)
                    widths[c + i] = _width(sub or "")
            c += len(subs)
        kinds = [kind for _, _, kind in SUMMARY_COLUMNS]
        for col, kind in enumerate(kinds):
            widths[col] = max(widths[col], WIDTHS.get(kind, 0))
        end = self._rows(ws, 3, kinds, (_summary_row(report, u) for u in report.units), widths, self.plain)
        self._rows(ws, end, kinds, [_summary_row(report, report.total)], widths, self.total)
        ws.freeze_panes(3, 2)
        ws.repeat_rows(1, 2)
        _finish(ws, widths)

    def misses(self, report: Report) -> None:
        """The units that missed accepting in time, most misses first, those at the limit highlighted; below, the
        tickets they missed."""
        ws = self.book.add_worksheet(MISSES)
        limit = report.miss_limit
        misses = [(u, u.figures.counts.accept_misses) for u in report.units if u.figures.counts.accept_misses > 0]
        misses.sort(key=lambda unit_misses: -unit_misses[1])  # stable: in rank order among equals
        rows = [
            (report.unit_name(u.code), n, limit, SUMMONED if limit is not None and limit <= n else None)
            for u, n in misses
        ]
        widths = [0] * max(len(MISS_COLUMNS), len(LATE_COLUMNS) - 1)
        end = self._table(ws, 0, MISS_COLUMNS, rows, widths, hot=lambda r: r[3] == SUMMONED)
        ws.write_string(end + 1, 0, ACCEPT_LINES, self.heading)
        top = end + 2
        lines = (_late_row(report, i, note=False) for i in report.late if i.deadline == DeadlineName.ACCEPT)
        end = self._table(ws, top, LATE_COLUMNS[:-1], lines, widths)
        ws.autofilter(top, 0, end - 1, len(LATE_COLUMNS) - 2)
        ws.freeze_panes(1, 0)
        _finish(ws, widths)

    def received(self, report: Report) -> None:
        """The office's tickets received in the period, by kind, then by category, each most first, with its share."""
        ws = self.book.add_worksheet(RECEIVED)
        counts = report.total.figures.counts
        widths = [0] * (len(RECEIVED_COLUMNS) + 1)
        top = 0
        for heading, tally, labels in (("类型", counts.by_kind, _KINDS), ("分类", counts.by_category, {})):
            rows = [
                (labels.get(key, key), n, n / counts.received if counts.received else None)
                for key, n in sorted(tally.items(), key=lambda item: -item[1])
            ]
            top = self._table(ws, top, ((heading, "text"), *RECEIVED_COLUMNS), rows, widths) + 1
        ws.freeze_panes(1, 0)
        _finish(ws, widths)

    def tickets(self, name: str, columns: Columns, rows: Iterable[Row]) -> None:
        ws = self.book.add_worksheet(name)
        widths = [0] * len(columns)
        end = self._table(ws, 0, columns, rows, widths)
        ws.autofilter(0, 0, end - 1, len(columns) - 1)
        ws.freeze_panes(1, 1)
        _finish(ws, widths)

    def _table(
        self,
        ws: Sheet,
        top: int,
        columns: Columns,
        rows: Iterable[Row],
        widths: list[int],
        *,
        hot: Callable[[Row], bool] | None = None,
    ) -> int:
        """The header at row ``top``, the rows below it (``hot`` ones highlighted); the row after the last."""
        kinds = [kind for _, kind in columns]
        for c, (header, kind) in enumerate(columns):
            ws.write_string(top, c, header, self.header)
            widths[c] = max(widths[c], _width(header), WIDTHS.get(kind, 0))
        return self._rows(ws, top + 1, kinds, rows, widths, self.plain, hot)

    def _rows(
        self,
        ws: Sheet,
        r: int,
        kinds: Sequence[str],
        rows: Iterable[Row],
        widths: list[int],
        fmts: dict[str, Any],
        hot: Callable[[Row], bool] | None = None,
    ) -> int:
        """``rows`` from row ``r`` on (``hot`` ones highlighted): text as text (never a formula), times as Excel
        date-times in Beijing time, numbers as numbers; the row after the last. Tight: it writes every cell."""
        string, number, blank = ws.write_string, ws.write_number, ws.write_blank
        for values in rows:
            if r > LAST_ROW:  # XlsxWriter would skip the cell silently, libxlsxwriter refuse it: neither, told
                raise ValueError(f"more rows than a sheet holds ({LAST_ROW + 1:,})")
            f = self.hot if hot is not None and hot(values) else fmts
            for c, value in enumerate(values):
                if value is None:
                    if (fmt := f[kinds[c]]) is not None:
                        blank(r, c, None, fmt)
                elif isinstance(value, str):
                    string(r, c, value, f["text"])
                    # _width, inlined, and only for text that could widen the column (at most two a character)
                    if (
                        widths[c] < _WIDEST
                        and (n := len(value)) * 2 > widths[c]
                        and (w := (len(value.encode()) + n) // 2) > widths[c]
                    ):
                        widths[c] = w
                elif isinstance(value, datetime):
                    number(r, c, (local(value).replace(tzinfo=UTC) - _EPOCH) / _DAY, f["date"])
                else:
                    number(r, c, value, f[kinds[c]])
            r += 1
        return r


def _finish(ws: Sheet, widths: Sequence[int]) -> None:
    for c, w in enumerate(widths):
        ws.set_column(c, c, min(w + 2, MAX_WIDTH))
    ws.set_landscape()
    ws.fit_to_pages(1, 0)


def _width(text: str) -> int:
    """Display width: a CJK character (three bytes in UTF-8) counts two, ASCII one."""
    return (len(text.encode()) + len(text)) // 2


# --- CSV -----------------------------------------------------------------------------------------------------------


def _flat(group: str, sub: str | None) -> str:
    return group if sub is None or sub == group else f"{group}-{sub}"


def _csv_cell(value: Cell, kind: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return _csv_safe(value)
    if isinstance(value, datetime):
        return f"{local(value):%Y-%m-%d %H:%M}"
    if kind == "pct":
        return f"{value:.4f}"
    if kind in ("points", "score"):
        return f"{value:.2f}"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4f}".rstrip("0").rstrip(".")


def _csv_safe(text: str) -> str:
    """A leading quote on text a spreadsheet would run as a formula (CSV injection)."""
    return "'" + text if text.startswith(CSV_UNSAFE) else text
