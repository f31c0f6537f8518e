"""Operations endpoints: the probes ``GET /livez`` (the process works) and ``GET /readyz`` (it can accept requests:
the database answers; ``/healthz`` is the same), and the request id every log line of a request carries. The
metrics are :mod:`bot.web.metrics`'s."""

from __future__ import annotations

import re
import uuid
from typing import Any

from aiohttp import web

from bot.logging import bound
from bot.web.errors import Handler, json_response
from bot.web.keys import (
    AIBOT_LEADER,
    AIBOT_LEADER_TASK,
    AIBOT_LINK,
    CALENDAR,
    CLOCK,
    DEADLINE_ENGINE,
    DEADLINE_LEADER,
    DEADLINE_LEADER_TASK,
    LIVENESS,
    REDIS,
    STORE,
)
from store.core import ping
from store.liveness import unreachable

routes = web.RouteTableDef()


REQUEST_ID = web.RequestKey("request_id", str)
# what a proxy's id looks like (nginx's $request_id: 32 hex digits); with a letter, so that it is never a number a
# caller could make a citizen's phone
_GIVEN_ID = re.compile(r"(?=[^A-Za-z]*[A-Za-z])[A-Za-z0-9._:-]{8,64}")


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every line logged for the request carries its ``request_id``: the ``X-Request-Id`` the proxy gave it (nginx's
    ``$request_id``, in its access log too), else a new one; the answer carries it back (:func:`answer_request_id`)."""
    given = request.headers.get("X-Request-Id", "")
    request_id = given if _GIVEN_ID.fullmatch(given) else uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    with bound(request_id=request_id):
        return await handler(request)


async def answer_request_id(request: web.Request, response: web.StreamResponse) -> None:
    if REQUEST_ID in request:
        response.headers["X-Request-Id"] = request[REQUEST_ID]


@routes.get("/livez")
async def livez(_request: web.Request) -> web.Response:
    """The process works (its event loop answers); nothing outside it is asked, so an outage of the database or
    Redis never gets a process restarted."""
    return json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Whether the process can accept requests: 503 while the database does not answer. Redis away is ``degraded``
    (200): callbacks and hand-overs are still stored, and sends go on under a share of each limit held in the
    process. ``degraded`` also reports a calendar that runs out and a long connection or deadline engine that is
    down."""
    app = request.app
    checks: dict[str, Any] = {}
    healthy = True
    degraded = False
    try:
        async with app[STORE].reading() as conn:
            await ping(conn)
        checks["database"] = {"status": "ok", "backend": app[STORE].backend}
        if LIVENESS in app:
            checks["database"]["processes"] = app[LIVENESS].processes  # live bot processes sharing it
    except Exception as exc:  # a health check reports, it does not raise
        healthy = False
        checks["database"] = {"status": "fail", "error": type(exc).__name__}
        if LIVENESS in app and unreachable(exc):
            app[LIVENESS].database.failed(exc)
    redis = app[REDIS]
    if redis is None:
        checks["redis"] = {"status": "not_configured"}
    else:
        try:
            await redis.ping()
            checks["redis"] = {"status": "ok"}
        except Exception as exc:
            degraded = True
            checks["redis"] = {
                "status": "degraded",
                "error": type(exc).__name__,
                "detail": "sends go on under this process's share of each limit until Redis is back",
            }
    coverage = app[CALENDAR].coverage(app[CLOCK].now().date(), 30)
    calendar: dict[str, Any] = {
        "status": "ok" if coverage.ok else "warning",
        "official_until": app[CALENDAR].official_last_year,
        "fallback_days": [d.isoformat() for d in coverage.fallback_days],
    }
    if not coverage.ok:
        calendar["warning"] = coverage.warning()
    checks["calendar"] = calendar
    degraded = degraded or not coverage.ok
    connection = app.get(AIBOT_LINK)
    if connection is not None:
        checks["wecom_aibot"] = aibot = _aibot_check(app)
        degraded = degraded or aibot["status"] != "ok"
    if DEADLINE_LEADER_TASK in app:
        checks["deadline_engine"] = engine = _engine_check(app)
        degraded = degraded or engine["status"] == "down"
    status = "fail" if not healthy else ("degraded" if degraded else "ok")
    return json_response({"status": status, "checks": checks}, status=200 if healthy else 503)


routes.get("/healthz")(readyz)  # the probe's earlier name, for what still asks it


def _aibot_check(app: web.Application) -> dict[str, Any]:
    """``ok`` or ``down`` in the process that leads; ``standby`` in a live one waiting for the lock (PostgreSQL);
    ``down`` with a reason when this process no longer takes part in the election (its leader task ended)."""
    connection = app[AIBOT_LINK]
    leader = app.get(AIBOT_LEADER)
    task = app.get(AIBOT_LEADER_TASK)
    if leader is None or task is None or task.done():
        return {
            "status": "down",
            "state": connection.state,
            "reason": "the leader election stopped in this process (see the log); restart it",
        }
    if leader.leading.is_set():
        return {"status": "ok" if connection.subscribed else "down", "state": connection.state}
    if leader.engine.dialect.name == "postgresql":
        return {"status": "standby", "detail": "another process holds the long connection"}
    return {"status": "down", "state": connection.state, "reason": "the long connection has not started yet"}


def _engine_check(app: web.Application) -> dict[str, Any]:
    """``ok`` in the process that ticks the deadline engine (with its tick count), ``standby`` in one waiting for the
    lock (PostgreSQL), ``down`` when this process no longer takes part in the election."""
    if app[DEADLINE_LEADER_TASK].done():
        return {"status": "down", "reason": "the leader election stopped in this process (see the log); restart it"}
    if app[DEADLINE_LEADER].leading.is_set():
        return {"status": "ok", "ticks": app[DEADLINE_ENGINE].ticks}
    return {"status": "standby", "detail": "another process runs the deadline engine"}
