"""The reports as chat messages (markdown, within WeCom's 2,048 bytes for an app message): the answer to /报表, the
weekly data (每周三) for the office and for each unit head, the periodic 通报 in the six items of the sub-district's
report (seed 004, 五), and the heads' morning brief. Every rate is shown as numerator/denominator with its percentage;
changes in percentage points. Long lists name the first few units and point to the workbook."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from bot.domain.bulk import collector_paused
from bot.domain.escaping import escape_md
from bot.domain.reports.figures import Figures, Rate, Ratio
from bot.domain.reports.report import Report, UnitLine
from bot.messages.charts import Point, drawable, report_chart
from bot.messages.format import deadline_label, remaining, when
from config.vocabulary import DeadlineName

LIST_UNITS = 5  # units named in one item of a chat message; the workbook has them all
# the rates a message shows, in this order (20-minute contact only where 三个二 units have any)
_CONTACTS = (DeadlineName.FIRST_CONTACT, DeadlineName.CONTACT_20M)  # 未先行联系 in the 通报's item 二; the rest 逾期
SHOWN = (Rate.ACCEPT, Rate.FIRST_CONTACT, Rate.CONTACT_20M, Rate.HANDLE, Rate.REPLY, Rate.SOLVED, Rate.SATISFACTION)


def number(value: float) -> str:
    """45 → 45; 45.5 → 45.5 (a weighted satisfaction numerator)."""
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def ratio(r: Ratio) -> str:
    """``45/50（90.0%）``; ``0/0（无）`` with nothing to count."""
    if r.value is None:
        return "0/0（无）"
    return f"{number(r.num)}/{r.den}（{r.value * 100:.1f}%）"


def points(value: float | None) -> str:
    """``+1.2个百分点`` / ``-0.5个百分点`` / ``持平`` / ``—`` (nothing to compare)."""
    if value is None:
        return "—"
    if abs(value) < 0.05:
        return "持平"
    return f"{value:+.1f}个百分点"


def score(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _rate_lines(line: UnitLine) -> list[str]:
    out = []
    for rate in SHOWN:
        r = line.figures.rates[rate]
        if rate is Rate.CONTACT_20M and not r.den:
            continue
        change = f"，环比{points(line.change(rate))}，同比{points(line.change(rate, year=True))}" if r.den else ""
        out.append(f"· {rate.label} {ratio(r)}{change}")
    return out


def _received(f: Figures, change: str = "") -> str:
    c = f.counts
    return f"收到工单 {c.received} 件{change}（重复诉求 {c.repeats}，媒体曝光 {c.media}）"


def _outcomes(f: Figures) -> str:
    c = f.counts
    return (
        f"退单 {c.returns_asked} 件（同意 {c.returns_approved}，驳回 {c.returns_rejected}）；"
        f"不满意 {c.dissatisfied} 件，预警 {c.warnings} 件（按时再次处置 {ratio(f.rehandled)}）。"
    )


def _counts_line(f: Figures) -> str:
    return f"{_received(f)}；{_outcomes(f)}"


def unit_report(report: Report, line: UnitLine) -> str:
    """/报表 for one unit (or the office's total): its rates, counts, score and rank, the accept misses."""
    title = line.name if line.code is not None else f"{report.office}（全部单位）"
    head = f"**{title} {report.period.label}**（截至 {when(report.at)}）"
    f = line.figures
    if nothing(f):
        return f"{head}\n本期暂无数据：没有收到工单，也没有到期的时限、回访或退单。"
    rank = f"，第 {line.rank}/{report.ranked} 名" if line.rank else ""
    lines = [
        head,
        *_rate_lines(line),
        _counts_line(line.figures),
        f"未按时接单 {line.figures.counts.accept_misses} 次{_limit(report, line)}；"
        f"得分 {score(line.score)}{rank}，环比{_score_change(line)}。",
    ]
    return "\n".join(lines)


def _limit(report: Report, line: UnitLine) -> str:
    """A unit's limit of accept misses (not the office's total: the limit is each unit's), where it applies."""
    return "" if report.miss_limit is None or line.code is None else f"（上限 {report.miss_limit} 次）"


def nothing(f: Figures) -> bool:
    """Whether the period holds nothing of the unit's: no ticket received, no deadline due, no visit, no return."""
    c = f.counts
    done = (c.received, c.returns_asked, c.returns_approved, c.returns_rejected, c.warnings, c.unreachable)
    return not any(done) and not f.rehandled.den and not any(r.den for r in f.rates.values())


def _score_change(line: UnitLine) -> str:
    change = line.score_change()
    return "—" if change is None else ("持平" if abs(change) < 0.05 else f"{change:+.1f}分")


def office_report(report: Report) -> str:
    """/报表 for the whole office: the totals, then the lowest-scoring units (the workbook has the table)."""
    lines = [unit_report(report, report.total)]
    scored = [x for x in report.units if x.score is not None]
    if len(scored) > LIST_UNITS:
        lines.append("得分最低的单位：")
        lines += [f"· {x.name} {score(x.score)} 分（第 {x.rank} 名）" for x in scored[-LIST_UNITS:][::-1]]
    elif scored:
        lines.append("各单位得分：")
        lines += [f"· {x.name} {score(x.score)} 分（第 {x.rank} 名）" for x in scored]
    return "\n".join(lines)


def units_report(report: Report) -> str:
    """/报表 for several units (a head of more than one): each in two lines, as many as one message takes."""
    for shown in range(len(report.units), 0, -1):
        lines = [f"**{report.period.label} 报表**（截至 {when(report.at)}）"]
        for x in report.units[:shown]:
            rank = f"，第 {x.rank}/{report.ranked} 名" if x.rank else ""
            rates = "，".join(
                f"{rate.label[:-1]} {ratio(x.figures.rates[rate])}"
                for rate in (Rate.ACCEPT, Rate.FIRST_CONTACT, Rate.HANDLE, Rate.SATISFACTION)
            )
            lines.append(f"**{x.name}** 得分 {score(x.score)}{rank}")
            lines.append(f"{rates}；未按时接单 {x.figures.counts.accept_misses} 次")
        if shown < len(report.units):
            lines.append(f"……另有 {len(report.units) - shown} 个单位。")
        lines.append("发送 /报表 时段 单位名 查看单个单位的全部指标。")
        text = "\n".join(lines)
        if fits(text):
            break
    return text


def weekly_office(report: Report) -> str:
    """每周三's data for the office's group: volume and its change, the rates, units under target."""
    t = report.total
    prev = t.previous.counts.received
    change = f"，环比{'+' if t.figures.counts.received >= prev else ''}{t.figures.counts.received - prev} 件"
    lines = [
        f"**{report.office} 上周热线数据** {report.period.label}",
        _received(t.figures, change) + "。",
        *_rate_lines(t),
        _outcomes(t.figures),
    ]
    rate = Rate.SATISFACTION
    target = report.targets.get(rate)
    if target is not None:
        under = [x for x in report.units if (v := x.figures.rates[rate].value) is not None and v < target]
        if under:
            names = "、".join(f"{x.name} {ratio(x.figures.rates[rate])}" for x in under[:LIST_UNITS])
            more = f" 等 {len(under)} 个单位" if len(under) > LIST_UNITS else ""
            lines.append(f"{rate.label}低于 {target * 100:.0f}% 的单位：{names}{more}。")
    return "\n".join(lines)


def weekly_unit(report: Report, line: UnitLine) -> str:
    """每周三's data for one unit's head, privately."""
    return unit_report(report, line).replace(report.period.label, f"上周数据 {report.period.label}", 1)


def _named(n: int, lines: Sequence[str]) -> str:
    """The first ``n`` of ``lines``, and how many there are in all."""
    if not lines:
        return "无。"
    if n == 0:  # the shortest 通报: the units only in the workbook
        return f"共 {len(lines)} 个单位（见附件）。"
    more = f"等 {len(lines)} 个单位" if len(lines) > n else ""
    return "；".join(lines[:n]) + (f"；{more}" if more else "") + "。"


BUDGET = 1900  # bytes of one chat message (WeCom's app markdown takes 2,048; the rows clip at 2,000)


def fits(*texts: str) -> bool:
    return all(len(t.encode("utf-8")) <= BUDGET for t in texts)


def bulletin(report: Report) -> list[str]:
    """The 通报 in seed 004's six items, in its order, as two messages (items 一 to 三, 四 to 六: one would pass WeCom's
    2,048 bytes), each naming as many units per item as fit; the workbook carries every unit and ticket."""
    for n in (LIST_UNITS, 3, 2, 1, 0):
        parts = _bulletin(report, n)
        if fits(*parts):
            break
    return parts


def _bulletin(report: Report, n: int) -> list[str]:
    units = report.units
    limit = report.miss_limit
    misses = [x for x in units if x.figures.counts.accept_misses]
    misses.sort(key=lambda x: -x.figures.counts.accept_misses)
    item1 = [
        f"{x.name} {x.figures.counts.accept_misses} 次"
        + ("（已达上限，约谈）" if limit is not None and x.figures.counts.accept_misses >= limit else "")
        for x in misses
    ]
    # the tickets (not the deadlines) of 未先行联系及逾期, the workbook's sheet: a ticket late twice is one
    late_by_unit: dict[str | None, dict[str, set[str]]] = {}
    for item in report.late:
        if item.deadline != DeadlineName.ACCEPT:
            key = "未先行联系" if item.deadline in _CONTACTS else "逾期"
            late_by_unit.setdefault(item.unit, {}).setdefault(key, set()).add(item.ticket_no)
    item2 = [
        f"{report.unit_name(code)} "
        + "，".join(f"{k} {len(kinds[k])} 件" for k in ("未先行联系", "逾期") if k in kinds)
        for code, kinds in sorted(late_by_unit.items(), key=lambda kv: -sum(map(len, kv[1].values())))
    ]
    c = report.total.figures.counts
    returned = [x for x in units if x.figures.counts.returns_asked]
    returned.sort(key=lambda x: -x.figures.counts.returns_asked)
    item3 = [f"{x.name} {x.figures.counts.returns_asked} 件" for x in returned]
    unhappy = [x for x in units if x.figures.counts.dissatisfied or x.figures.counts.warnings]
    unhappy.sort(key=lambda x: -(x.figures.counts.dissatisfied + x.figures.counts.warnings))
    item4 = [f"{x.name} 不满意 {x.figures.counts.dissatisfied}，预警 {x.figures.counts.warnings}" for x in unhappy]
    scored = [x for x in units if x.score is not None]
    item5 = [
        f"{x.rank}. {x.name} {score(x.score)} 分，满意率 {ratio(x.figures.rates[Rate.SATISFACTION])}" for x in scored
    ]
    t = report.total
    head = f"**{report.office} 12345热线工单情况通报 {report.period.label}**"
    lines = [
        head,
        "一、未按时先行接单的单位"
        + ("" if limit is None else f"（同一单位 {limit} 次由纪工委约谈）")
        + f"：{_named(n, item1)}",
        f"二、存在“未先行联系”或“逾期工单”的单位（须书面说明情况）：{_named(n, item2)}",
        f"三、退单情况：申请 {c.returns_asked} 件，同意 {c.returns_approved} 件，驳回 {c.returns_rejected} 件。"
        + (f"其中：{_named(n, item3)}" if item3 else ""),
        f"{head}（续）",
        f"四、不满意工单情况：不满意 {c.dissatisfied} 件，预警 {c.warnings} 件，"
        f"按时再次处置 {ratio(t.figures.rehandled)}。" + (f"其中：{_named(n, item4)}" if item4 else ""),
        f"五、各单位得分、满意率（{f'前 {min(n, len(scored))} 名，' if n else ''}全表见附件）：{_named(n, item5)}",
        "六、同比、环比："
        + f"收到工单 {c.received} 件（上期 {t.previous.counts.received}，去年同期 {t.year_ago.counts.received}）；"
        + "；".join(
            f"{rate.label} {ratio(t.figures.rates[rate])}，"
            f"环比{points(t.change(rate))}，同比{points(t.change(rate, year=True))}"
            for rate in (Rate.ACCEPT, Rate.FIRST_CONTACT, Rate.HANDLE, Rate.SOLVED, Rate.SATISFACTION)
        )
        + "。",
    ]
    return ["\n".join(lines[:4]), "\n".join(lines[4:])]


@dataclass(frozen=True, slots=True, kw_only=True)
class BriefItem:
    ticket_no: str
    title: str  # masked
    deadline: str  # a DeadlineName value
    due_at: datetime
    warning: bool


def brief(unit_name: str, items: Sequence[BriefItem], *, misses: int, limit: int, period: str, now: datetime) -> str:
    """The head's morning brief: what falls due today, what is overdue, the warning tickets with the time left, and
    the accept misses of the three-misses period (本期未按时接单 2/3, as the flag counts them), listing as many
    tickets as one message takes."""
    for shown in (10, 6, 4, 2, 0):
        text = _brief(unit_name, items, misses=misses, limit=limit, period=period, now=now, shown=shown)
        if fits(text):
            break
    return text


def _brief(
    unit_name: str, items: Sequence[BriefItem], *, misses: int, limit: int, period: str, now: datetime, shown: int
) -> str:
    overdue, today, warnings = _brief_tickets(items, now)
    lines = [f"**{unit_name} 今日提醒**（{when(now)}）"]

    def section(title: str, group: Sequence[Sequence[BriefItem]]) -> None:
        lines.append(f"{title} {len(group)} 件" + ("：" if group else "。"))
        for first, *more in group[:shown]:
            title = escape_md(first.title)
            title = title[:BRIEF_TITLE] + "…" if len(title) > BRIEF_TITLE else title
            names = "、".join(deadline_label(i.deadline) for i in (first, *more))
            lines.append(f"· {first.ticket_no} {title} {names} {remaining(first.due_at, now)}")
        if len(group) > shown:
            lines.append(f"……另有 {len(group) - shown} 件（/逾期、/待办 查看）")

    section("已逾期", overdue)
    section("今日到期", today)
    section("预警工单（再次处置）", warnings)
    lines.append(f"本期（{period}）未按时接单 {misses}/{limit}" + ("，已达上限。" if misses >= limit else "。"))
    return "\n".join(lines)


BRIEF_TITLE = 24  # characters of a title in the brief


def _brief_tickets(
    items: Sequence[BriefItem], now: datetime
) -> tuple[list[list[BriefItem]], list[list[BriefItem]], list[list[BriefItem]]]:
    """The tickets (not the deadlines) the brief lists, each once, earliest first: overdue (its deadlines past due),
    due today (the rest), warning tickets (their re-handling). Each ticket's deadlines of its section, the earliest
    first."""
    by_ticket: dict[str, list[BriefItem]] = {}
    for item in sorted(items, key=lambda i: i.due_at):
        by_ticket.setdefault(item.ticket_no, []).append(item)
    overdue, today, warnings = [], [], []
    for group in by_ticket.values():
        if rehandle := [i for i in group if i.warning]:
            warnings.append(rehandle)
        elif late := [i for i in group if i.due_at <= now]:
            overdue.append(late)
        else:
            today.append(group)
    return overdue, today, warnings


def chart(report: Report) -> bytes:
    """The 通报's chart: the chart rate per unit against its target, its trend, and the categories' shares."""
    # drawn with the collector paused: its full passes, set off by the figure's many artists, would walk the report's
    # ticket lines still alive beside it (the figure's own cycles are found at the next pass after)
    with collector_paused():
        return named_chart(**chart_data(report))


def chart_data(report: Report) -> dict[str, Any]:
    """What the chart shows, as :func:`named_chart`'s arguments: plain values, which another process can be handed
    (notifiers.reports draws the 通报's chart in one)."""
    rate = report.chart_rate
    bars = [
        Point(x.name, x.figures.rates[rate].value, ratio(x.figures.rates[rate]).split("（")[0]) for x in report.units
    ]
    # each with its numerator and denominator beside it, as the bars: never a bare percentage
    trend = [Point(p.short_label, r.value, ratio(r).split("（")[0]) for p, r in report.trend]
    # the largest categories by name, the rest together as 其他 (report_chart keeps 8)
    shares = list(report.total.figures.counts.by_category.items())
    return {
        "title": f"{report.office} {report.period.label}",
        "rate_name": rate.label,
        "bars": bars,
        "target": report.targets.get(rate),
        "trend": trend,
        "shares_title": "工单分类占比",
        "shares": shares,
    }


def named_chart(*, title: str, bars: Sequence[Point], shares: Sequence[tuple[str, int]], **rest: Any) -> bytes:
    """:func:`bot.messages.charts.report_chart` of :func:`chart_data`'s values, a character of the office's, a unit's
    or a category's name that the font lacks drawn as "?" (the platform's names may hold a rare one). Done where the
    chart is drawn: the process that only hands the values over need not load the plotting library and its font."""
    return report_chart(
        title=drawable(title),
        bars=[replace(p, label=drawable(p.label)) for p in bars],
        shares=[(drawable(name), n) for name, n in shares],
        **rest,
    )
