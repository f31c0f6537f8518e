"""``GET /api/reports``: a period's report (docs/reports.md) with the API token, as JSON, CSV (the unit table) or the
Excel workbook the office files.

Query: ``period`` (``month`` by default; ``week``, ``bimonth``, ``quarter``, ``year``, ``last_week`` … or the Chinese
words /报表 takes, or ``YYYY-MM``), ``unit`` (a code or name; default every unit), ``format`` (``json`` by default,
``csv``, ``xlsx``), ``details`` (``true``: the JSON also lists the tickets behind the figures; the workbook always
does). Masked: no citizen's name, phone or address in any format. A bad parameter is a 400 naming it."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from aiohttp import web

from bot.domain.reports.figures import Figures, Rate, Ratio
from bot.domain.reports.periods import parse
from bot.domain.reports.report import Report, UnitLine
from bot.hotline.api import authorize
from bot.messages.workbook import csv_text, workbook
from bot.services.reports import ReportService
from bot.web.errors import ApiError, json_response
from bot.web.keys import CLOCK, CONFIG, STORE

routes = web.RouteTableDef()

FORMATS = ("json", "csv", "xlsx")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _ratio(r: Ratio) -> dict[str, Any]:
    return {"numerator": r.num, "denominator": r.den, "rate": r.value}


def _figures(f: Figures) -> dict[str, Any]:
    c = f.counts
    return {
        "rates": {rate.value: _ratio(f.rates[rate]) for rate in Rate},
        "rehandled": _ratio(f.rehandled),
        "counts": {
            "received": c.received,
            "by_kind": c.by_kind,
            "by_category": c.by_category,
            "repeats": c.repeats,
            "media": c.media,
            "returns": {"asked": c.returns_asked, "approved": c.returns_approved, "rejected": c.returns_rejected},
            "warnings": c.warnings,
            "dissatisfied": c.dissatisfied,
            "unreachable": c.unreachable,
            "accept_misses": c.accept_misses,
        },
    }


def _line(line: UnitLine) -> dict[str, Any]:
    return {
        "unit": line.code,
        "name": line.name,
        "rank": line.rank,
        "score": line.score,
        **_figures(line.figures),
        "previous": {"score": line.previous_score, **_figures(line.previous)},
        "year_ago": {"score": line.year_ago_score, **_figures(line.year_ago)},
        # 环比 and 同比 in percentage points (None: nothing to compare)
        "change_points": {
            "previous": {rate.value: line.change(rate) for rate in Rate},
            "year_ago": {rate.value: line.change(rate, year=True) for rate in Rate},
        },
    }


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def report_json(report: Report, *, details: bool) -> dict[str, Any]:
    p = report.period
    body: dict[str, Any] = {
        "period": {"kind": p.kind.value, "start": p.start.isoformat(), "end": p.last_day.isoformat(), "label": p.label},
        "generated_at": report.at.isoformat(),
        "office": report.office,
        "miss_limit": report.miss_limit,
        "total": _line(report.total),
        "units": [_line(x) for x in report.units],
        "trend": {
            "rate": report.chart_rate.value,
            "periods": [{"label": q.label, "start": q.start.isoformat(), **_ratio(r)} for q, r in report.trend],
        },
    }
    if details:
        body["tickets"] = {
            name: [{k: _iso(v) for k, v in asdict(item).items()} for item in items]
            for name, items in (
                ("late", report.late),
                ("returns", report.returns),
                ("visits", report.visits),
                ("repeats", report.repeats),
            )
        }
    return body


@routes.get("/api/reports")
async def get_report(request: web.Request) -> web.StreamResponse:
    authorize(request)
    config, now = request.app[CONFIG], request.app[CLOCK].now()
    word = request.query.get("period", "month")
    period = parse(word, now)
    if period is None:
        raise ApiError(
            400, "bad_period", "period: week, month, bimonth, quarter, year, last_week … or YYYY-MM", {"period": word}
        )
    if period.start > now.date():
        raise ApiError(400, "future_period", f"period {period.label} has not begun", {"period": word})
    units = None
    named = request.query.get("unit")
    if named:
        unit = config.unit(named) or config.unit_for_label(named)
        if unit is None:
            raise ApiError(404, "unit_not_found", f"no unit {named}", {"unit": named})
        units = [unit.code]
    fmt = request.query.get("format", "json")
    if fmt not in FORMATS:
        raise ApiError(400, "bad_format", "format: json, csv or xlsx", {"format": fmt})
    flag = request.query.get("details", "false").strip().lower() or "false"
    if flag not in ("true", "1", "false", "0"):
        raise ApiError(400, "bad_details", "details: true or false", {"details": flag})
    details = fmt == "xlsx" or flag in ("true", "1")
    service = ReportService(request.app[STORE], config)
    report = await service.report(period, now=now, units=units, details=details, trend=fmt != "csv")
    name = f"report-{period.key}{'-' + units[0] if units else ''}"
    if fmt == "json":
        return json_response(report_json(report, details=details))
    if fmt == "csv":
        body = ("\ufeff" + csv_text(report)).encode("utf-8")  # the BOM: Excel opens UTF-8 CSV as such
        return web.Response(
            body=body,
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    data = await asyncio.to_thread(workbook, report)
    return web.Response(
        body=data, content_type=XLSX, headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'}
    )
