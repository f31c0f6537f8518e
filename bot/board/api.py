"""The board's pages and its JSON API, under ``/board/``.

Pages (static HTML and script from ``bot/board/static``, nothing from elsewhere): ``/board/`` the board,
``/board/ticket/{no}`` a ticket, ``/board/reports`` the reports, ``/board/import`` an export's import. Signed out, a
page sends the browser to sign in and back.

API (JSON; errors as ``bot.web.errors`` shapes them, with a Chinese message; 401 when signed out):
``GET /board/api/me`` (who, what they may filter by, the CSRF token), ``GET /board/api/board`` (the tiles and the
deadline list, filtered by ``unit``, ``kind``, ``state``, ``repeat``, ``media``), ``GET /board/api/tickets/{no}``
(a ticket's page), ``POST /board/api/tickets/{no}/actions`` (an action, with the chat's checks: who may, and the
lifecycle's rules), ``GET /board/api/reports`` (and its ``chart.png`` and ``download``), ``POST /board/api/imports``
(an export, its progress streamed back). Every answer is for the signed-in member only: what they may see is
decided on the server for every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from bot.board.auth import BOARD, Viewer, signed_in, viewer
from bot.domain.clock import TZ
from bot.domain.lifecycle import Action, ActionRequest, Solved, TicketState, TransitionRefused, VisitResult, decide
from bot.domain.permissions import may_act
from bot.domain.records import DeadlineStatus, Ticket
from bot.domain.reports.periods import parse
from bot.domain.reports.report import Report
from bot.hotline.importer import ImportFormatError, ImportInterrupted, import_file
from bot.hotline.imports_api import IMPORT_LOCK, remove_temp, upload_of, write_temp
from bot.messages import board as view
from bot.messages.charts import ChartFontMissing
from bot.messages.format import state_label
from bot.messages.refusals import ticket_not_found
from bot.messages.reports import chart
from bot.messages.workbook import csv_text, workbook
from bot.services.reports import ReportService
from bot.services.ticket_model import TicketDetail, TicketNotFound
from bot.services.tickets import TicketService
from bot.web.body import UPLOAD_SECONDS, read_body
from bot.web.errors import ApiError, json_response
from bot.web.keys import CLOCK, CONFIG, STORE, TICKETS
from config.model import BotConfig
from config.vocabulary import KIND_LABELS, DeadlineName, Role
from store import board as board_repo

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = frozenset(p.name for p in STATIC.iterdir() if not p.name.endswith(".html"))  # served as they are
LIST_LIMIT = 200
SOON = timedelta(hours=2)
NOTE_MAX = 500
MAX_BODY = 8 * 1024
WINDOWS = (DeadlineName.RETURN_WINDOW.value,)
OPEN_STATES = tuple(s.value for s in TicketState if s.is_open)
# the actions a ticket's page offers, in this order; each when the member may and the lifecycle allows it
OFFERED = (
    Action.CLAIM,
    Action.CONTACT,
    Action.ON_SITE,
    Action.SUBMIT,
    Action.REQUEST_RETURN,
    Action.CONFIRM_RETURN,
    Action.DECLINE_RETURN,
    Action.APPROVE_RETURN,
    Action.REJECT_RETURN,
    Action.REDISPATCH,
    Action.VISIT,
    Action.REQUEST_EXCLUSION,
    Action.APPROVE_EXCLUSION,
    Action.REJECT_EXCLUSION,
)
NEEDS_NOTE = frozenset({Action.SUBMIT, Action.REQUEST_RETURN, Action.REJECT_RETURN, Action.REQUEST_EXCLUSION,
                        Action.DECLINE_RETURN})  # fmt: skip
# asked for and decided in the chat (/延期), whose command tells the approvers and the requester
IN_CHAT = frozenset({Action.REQUEST_EXTENSION, Action.APPROVE_EXTENSION, Action.REJECT_EXTENSION})
# refusals of what was asked rather than of the ticket's state: bad input (400), not a conflict (409)
BAD_INPUT = frozenset({"reason_required", "note_required", "result_required", "unit_required", "unknown_unit"})
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

routes = web.RouteTableDef()


def _file(name: str) -> web.FileResponse:
    response = web.FileResponse(STATIC / name)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store" if name.endswith(".html") else "max-age=300"
    return response


async def _page(request: web.Request, name: str) -> web.StreamResponse:
    if await signed_in(request) is None:
        raise web.HTTPFound(f"/board/login?{_next(request)}")
    return _file(name)


def _next(request: web.Request) -> str:
    return urlencode({"next": request.path_qs})


@routes.get("/board")
async def board_bare(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(BOARD)


@routes.get("/board/")
async def board_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, "board.html")


@routes.get("/board/ticket/{no}")
async def ticket_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, "ticket.html")


@routes.get("/board/static/{name}")
async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in ASSETS:
        raise ApiError(404, "not_found", "没有这个文件")
    return _file(name)


# -- the API ---------------------------------------------------------------------------------------------------


def _roles(config: BotConfig, userid: str) -> list[str]:
    return [role.value for role in Role if config.has_role(userid, role)]


@routes.get("/board/api/me")
async def me(request: web.Request) -> web.Response:
    who = await viewer(request)
    config = request.app[CONFIG]
    units = None if who.sight.everything else sorted({*who.sight.units, *who.sight.unclaimed_units})
    return json_response(
        {
            "userid": who.userid,
            "name": who.name,
            "office": config.office.name,
            "roles": _roles(config, who.userid),
            "everything": who.sight.everything,
            "csrf": who.csrf,
            **view.choices(config, units),
            # the reports page: the periods offered, the units whose reports this member may read
            "periods": [{"code": c, "name": n} for c, n in PERIODS],
            "report_units": [{"code": u.code, "name": u.name} for u in config.units if who.sight.sees_unit(u.code)],
        }
    )


def _flag(request: web.Request, name: str) -> bool | None:
    value = request.query.get(name, "")
    if value in ("", "any"):
        return None
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    raise ApiError(400, "bad_filter", f"筛选条件 {name} 只能是 1 或 0", {"field": name})


def _filters(request: web.Request, who: Viewer, config: BotConfig) -> board_repo.Filters:
    unit = request.query.get("unit") or None
    if unit is not None and config.unit(unit) is None:
        raise ApiError(400, "bad_filter", "没有这个单位", {"field": "unit"})
    kind = request.query.get("kind") or None
    if kind is not None and kind not in {k.value for k in KIND_LABELS}:
        raise ApiError(400, "bad_filter", "没有这种工单类型", {"field": "kind"})
    state = request.query.get("state") or None
    if state is not None and state not in OPEN_STATES:
        raise ApiError(400, "bad_filter", "没有这个状态（看板只列未办结的工单）", {"field": "state"})
    return board_repo.Filters(
        unit=unit, kind=kind, state=state, repeat=_flag(request, "repeat"), media=_flag(request, "media")
    )


@routes.get("/board/api/board")
async def board_data(request: web.Request) -> web.Response:
    who = await viewer(request)
    config = request.app[CONFIG]
    filters = _filters(request, who, config)
    now = request.app[CLOCK].now()
    day_end = datetime.combine(now.astimezone(TZ).date() + timedelta(days=1), time(), TZ)
    async with request.app[STORE].reading() as conn:
        counts = await board_repo.ticket_counts(
            conn, who.sight, filters, open_states=OPEN_STATES, states=[s.value for s in view.STATE_TILES.values()]
        )
        due = await board_repo.deadline_counts(
            conn, who.sight, filters, windows=WINDOWS, now=now, soon=now + SOON, day_end=day_end
        )
        rows = await board_repo.open_deadlines(conn, who.sight, filters, windows=WINDOWS, limit=LIST_LIMIT + 1)
    tiles = {"open": counts["open"], **due}
    tiles.update({key: counts[state.value] for key, state in view.STATE_TILES.items()})
    response = json_response(
        {
            "at": now.astimezone(TZ).isoformat(timespec="seconds"),
            "tiles": view.tiles(tiles),
            "rows": [view.deadline_row(r, config, now) for r in rows[:LIST_LIMIT]],
            "more": len(rows) > LIST_LIMIT,
        }
    )
    response.enable_compression()  # 200 rows: a fifth of the bytes gzipped, for a phone on a mobile network
    return response


async def _detail(request: web.Request, who: Viewer, *, full: bool = False) -> TicketDetail:
    """The ticket the path names (``full``: with its deadlines and history, for its page), if this member sees it;
    else 404, worded as for a ticket that does not exist (another unit's tickets are not told to exist)."""
    no = request.match_info["no"].strip()
    try:
        detail = await request.app[TICKETS].get(no, history=full, deadlines=full)
    except TicketNotFound:
        detail = None
    if detail is None or not who.sight.sees(detail.ticket):
        raise ApiError(404, "ticket_not_found", ticket_not_found(no))
    return detail


def _trial(action: Action, who: Viewer, config: BotConfig, ticket: Ticket, now: datetime) -> ActionRequest:
    """A request of ``action`` with plausible details (a note, another unit, a visit's result), to ask the lifecycle
    whether the ticket's state allows it."""
    other = next((u.code for u in config.units if u.code != ticket.unit_code), None)
    return ActionRequest(
        action=action,
        actor=who.userid,
        at=now,
        note="—",
        unit=other if action in (Action.REDISPATCH, Action.ASSIGN, Action.REQUEST_RETURN) else None,
        result=VisitResult.SATISFIED if action == Action.VISIT else None,
    )


def offered(tickets: TicketService, who: Viewer, detail: TicketDetail, now: datetime) -> list[Action]:
    """The actions this member may take on the ticket now: their role allows it, and the lifecycle does, asked as the
    ticket service asks it (the configured limits, the current cycle's open deadlines)."""
    ticket, config = detail.ticket, tickets.config
    due = {d.name: d.due_at for d in detail.deadlines if d.status == DeadlineStatus.OPEN and d.cycle == ticket.cycle}
    shown = []
    for action in OFFERED:
        if not may_act(config, who.userid, action, ticket):
            continue
        try:
            decide(ticket, tickets.prepared(ticket, _trial(action, who, config, ticket, now)), due)
        except TransitionRefused:
            continue
        shown.append(action)
    return shown


def _full(config: BotConfig, who: Viewer, ticket: Ticket) -> bool:
    """The citizen shown as the platform sent them: to the ticket's own handler and to a dispatcher, as in a private
    chat."""
    return ticket.handler_userid == who.userid or config.has_role(who.userid, Role.DISPATCHER)


@routes.get("/board/api/tickets/{no}")
async def ticket_data(request: web.Request) -> web.Response:
    who = await viewer(request)
    config, tickets = request.app[CONFIG], request.app[TICKETS]
    detail = await _detail(request, who, full=True)
    ticket = detail.ticket
    now = request.app[CLOCK].now()
    full = _full(config, who, ticket)
    if full:
        await tickets.record_access(ticket, actor=who.userid, what="board_view_contact")
    page = view.ticket_page(
        ticket,
        detail.deadlines,
        detail.history,
        detail.notifications,
        config,
        now,
        full=full,
        actions=offered(tickets, who, detail, now),
    )
    page["units"] = [{"code": u.code, "name": u.name} for u in config.units if u.code != ticket.unit_code]
    page["results"] = [{"code": r.value, "name": r.label} for r in VisitResult]
    return json_response(page)


async def _json(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "请求须为 JSON（application/json）")
    raw = await read_body(request, MAX_BODY)
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "bad_json", "请求内容不是有效的 JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "请求内容须为 JSON 对象")
    return body


def _text(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ApiError(400, "missing_field", "请填写说明", {"field": name})
        return None
    if not isinstance(value, str) or len(value) > NOTE_MAX:
        raise ApiError(400, "bad_field", f"说明最多 {NOTE_MAX} 字", {"field": name})
    return value.strip()


@routes.post("/board/api/tickets/{no}/actions")
async def act(request: web.Request) -> web.Response:
    who = await viewer(request, write=True)
    config = request.app[CONFIG]
    ticket = (await _detail(request, who)).ticket
    body = await _json(request)
    try:
        action = Action(str(body.get("action", "")))
    except ValueError:
        raise ApiError(400, "bad_action", "不支持的操作", {"field": "action"}) from None
    if action in IN_CHAT:
        message = "延期的申请和审批请在群里用 /延期 命令办理：审批人和申请人会收到通知"
        raise ApiError(400, "in_chat", message, {"field": "action"})
    if action not in OFFERED:
        raise ApiError(400, "bad_action", "看板不支持此操作，请在群里用命令办理", {"field": "action"})
    unit = body.get("unit") or None
    if action in (Action.REDISPATCH, Action.ASSIGN) and (not isinstance(unit, str) or config.unit(unit) is None):
        raise ApiError(400, "bad_field", "请选择要派往的单位", {"field": "unit"})
    if unit is not None and (not isinstance(unit, str) or config.unit(unit) is None):
        raise ApiError(400, "bad_field", "没有这个单位", {"field": "unit"})
    result = None
    if action == Action.VISIT:
        try:
            result = VisitResult(str(body.get("result", "")))
        except ValueError:
            raise ApiError(400, "bad_field", "请选择回访结果", {"field": "result"}) from None
    solved = None
    if body.get("solved") not in (None, ""):
        try:
            solved = Solved(str(body["solved"]))
        except ValueError:
            message = "实际解决情况只能是已解决、部分解决或未解决"
            raise ApiError(400, "bad_field", message, {"field": "solved"}) from None
    req = ActionRequest(
        action=action,
        actor=who.userid,
        at=request.app[CLOCK].now(),
        note=_text(body, "note", required=action in NEEDS_NOTE),
        unit=unit if isinstance(unit, str) else None,
        result=result,
        solved=solved,
    )
    try:
        outcome = await request.app[TICKETS].act(ticket.ticket_no, req)
    except TicketNotFound:
        raise ApiError(404, "ticket_not_found", ticket_not_found(ticket.ticket_no)) from None
    except TransitionRefused as refused:  # NotPermitted among them: the same checks as the chat
        status = 403 if refused.code == "forbidden" else 400 if refused.code in BAD_INPUT else 409
        raise ApiError(status, refused.code, refused.message) from None
    return json_response({"ok": True, "state": state_label(outcome.ticket.state), "message": f"已{action.label}"})


# -- reports ---------------------------------------------------------------------------------------------------

PERIODS = (
    ("本月", "本月（至今）"), ("上月", "上月"), ("本双月", "本双月（至今）"), ("上双月", "上个双月"),
    ("本季", "本季度（至今）"), ("上季", "上季度"), ("本年", "本年（至今）"), ("去年", "去年"),
    ("本周", "本周（至今）"), ("上周", "上周"),
)  # fmt: skip
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@routes.get("/board/reports")
async def reports_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, "reports.html")


async def _report(request: web.Request, *, details: bool, trend: bool) -> Report:
    """The report the query asks for, of the units this member may see: the office any unit or all of them, a
    unit's head and deputies their own units; a handler none (their unit's head files its figures)."""
    who = await viewer(request)
    config, now = request.app[CONFIG], request.app[CLOCK].now()
    if not who.sight.everything and not who.sight.units:
        raise ApiError(403, "forbidden", "报表由单位负责人和热线办查看；您可以在群里用 /报表 查看本单位的数据")
    word = request.query.get("period", "上月")
    period = parse(word, now)
    if period is None:
        raise ApiError(400, "bad_period", "没有这个统计周期（例如 上月、本季、2026-10）", {"field": "period"})
    if period.start > now.date():
        raise ApiError(400, "future_period", f"{period.label}还没有开始", {"field": "period"})
    code = request.query.get("unit") or None
    if code is not None and config.unit(code) is None:
        raise ApiError(400, "bad_filter", "没有这个单位", {"field": "unit"})
    if code is not None and not who.sight.sees_unit(code):
        raise ApiError(403, "forbidden", "您只能查看本单位的报表")
    units = [code] if code else (None if who.sight.everything else list(who.sight.units))
    service = ReportService(request.app[STORE], config)
    return await service.report(period, now=now, units=units, details=details, trend=trend)


@routes.get("/board/api/reports")
async def report_data(request: web.Request) -> web.Response:
    report = await _report(request, details=False, trend=True)
    return json_response(view.report_page(report))


@routes.get("/board/api/reports/chart.png")
async def report_chart(request: web.Request) -> web.Response:
    report = await _report(request, details=False, trend=True)
    try:
        png = await asyncio.to_thread(chart, report)
    except (ChartFontMissing, ValueError) as failed:
        log.warning("board: the report's chart could not be drawn: %s", failed)
        raise ApiError(503, "chart_unavailable", "图表暂时无法生成（服务器缺少中文字体），数据和下载不受影响") from None
    return web.Response(body=png, content_type="image/png", headers={"Cache-Control": "private, max-age=60"})


@routes.get("/board/api/reports/download")
async def report_download(request: web.Request) -> web.Response:
    fmt = request.query.get("format", "xlsx")
    if fmt not in ("xlsx", "csv"):
        raise ApiError(400, "bad_format", "下载格式只能是 xlsx 或 csv", {"field": "format"})
    report = await _report(request, details=fmt == "xlsx", trend=fmt == "xlsx")
    code = request.query.get("unit")
    name = f"{report.office}{report.period.label}{'-' + code if code else ''}报表"
    disposition = f"attachment; filename=\"report.{fmt}\"; filename*=UTF-8''{quote(name)}.{fmt}"
    if fmt == "csv":
        body = ("\ufeff" + csv_text(report)).encode("utf-8")  # the BOM: Excel opens UTF-8 CSV as such
        return web.Response(
            body=body, content_type="text/csv", charset="utf-8", headers={"Content-Disposition": disposition}
        )
    data = await asyncio.to_thread(workbook, report)
    return web.Response(body=data, content_type=XLSX, headers={"Content-Disposition": disposition})


# -- import --------------------------------------------------------------------------------------------------------


@routes.get("/board/import")
async def import_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, "import.html")


# the import API's refusals of an upload, as the board's page says them
UPLOAD_REFUSALS = {
    "body_too_large": "文件超过上限（{limit} MB），请分成几个文件导入",
    "body_timeout": "上传超时，请检查网络后重试",
    "bad_request": "没有收到文件，请选择文件后重试",
    "unsupported_media_type": "请以表单上传文件（.xlsx、.xls、.ods 或 .csv）",
}


@routes.post("/board/api/imports")
async def post_import(request: web.Request) -> web.StreamResponse:
    """An export uploaded by the office (``multipart/form-data``: ``file``, ``dry_run``, ``sheet``), imported as
    ``POST /api/imports`` imports it, with its progress streamed back as it goes: one JSON line per batch
    (``{"done": rows, "total": rows}``), then ``{"report": …}`` or ``{"error": …}``. One answer, one process: no
    job to look up on another bot process behind the load balancer. The import goes on if the browser goes away."""
    who = await viewer(request, write=True)
    if not who.sight.everything:
        raise ApiError(403, "forbidden", "导入平台工单只能由热线办操作")
    config = request.app[CONFIG]
    limit = config.imports.max_upload_bytes
    try:
        upload = upload_of(request, await read_body(request, limit, within=UPLOAD_SECONDS))
    except ApiError as refused:
        message = UPLOAD_REFUSALS.get(refused.code)
        if message is None:
            raise
        raise ApiError(refused.status, refused.code, message.format(limit=limit // (1024 * 1024))) from None
    if not upload.data.strip():
        raise ApiError(422, "invalid_file", "上传的文件是空的")
    lock = request.app[IMPORT_LOCK]
    if lock.locked():
        raise ApiError(409, "import_running", "正在导入另一个文件，请稍后再试")
    async with lock:
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson; charset=utf-8",
                                               "Cache-Control": "no-store", "X-Accel-Buffering": "no"})  # fmt: skip
        await response.prepare(request)
        gone = False

        async def line(payload: dict[str, Any]) -> None:
            nonlocal gone
            if gone:
                return
            try:
                await response.write((json.dumps(payload, ensure_ascii=False) + "\n").encode())
            except (ConnectionError, RuntimeError):  # the browser went away: the import goes on, and is logged
                gone = True

        log.info("board: import started", extra={"userid": who.userid, "bytes": len(upload.data)})
        path = await asyncio.to_thread(write_temp, upload.data, upload.name)
        try:
            await line({"done": 0, "total": None})
            report = await import_file(
                path,
                request.app[TICKETS],
                config,
                progress=False,
                dry_run=upload.dry_run,
                sheet=upload.sheet,
                on_progress=lambda done, total: line({"done": done, "total": total}),
            )
            log.info("board: import finished: %s", report.summary(), extra={"userid": who.userid})
            await line({"report": report.as_json()})
        except ImportFormatError as exc:
            await line({"error": {"code": "invalid_file", "message": exc.message}})
        except ImportInterrupted as exc:
            log.warning("board: import interrupted: %s", exc.message(), extra={"userid": who.userid})
            await line(
                {"error": {"code": "import_interrupted", "message": exc.message()}, "report": exc.report.as_json()}
            )
        except Exception:
            log.exception("board: import failed")
            await line({"error": {"code": "internal", "message": "导入时出现内部错误，已记录；可重新上传同一文件继续"}})
        finally:
            await asyncio.to_thread(remove_temp, path)
    if not gone:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await response.write_eof()
    return response


def setup(app: web.Application) -> None:
    app.add_routes(routes)
