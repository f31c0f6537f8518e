"""Operations endpoints: the probes ``GET /livez`` (the process works) and ``GET /readyz`` (it can accept requests:
the database answers; ``/healthz`` is the same), and ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

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
from bot.web.protocol import CLIENT_CLOSED
from store import outbox as outbox_repo
from store.core import ping
from store.liveness import unreachable

log = logging.getLogger(__name__)
routes = web.RouteTableDef()


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    """One registry per application (tests run many apps in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "hotline_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "hotline_http_request_seconds", "HTTP request latency", ["route"], registry=self.registry
        )
        self.tickets = Counter(
            "hotline_tickets_ingested_total", "Tickets handed over by the hotline", ["status"], registry=self.registry
        )
        self.rejects = Counter(
            "hotline_ingest_rejected_total", "Hand-overs refused", ["reason"], registry=self.registry
        )
        self.outbox = Gauge("hotline_outbox_messages", "Outbox messages by status", ["status"], registry=self.registry)
        self._request_children: dict[tuple[str, str, int], Any] = {}
        self._latency_children: dict[str, Any] = {}
        self.fallback_days = Gauge(
            "hotline_calendar_fallback_days",
            "Days in the next 30 decided by the fallback calendar rule",
            registry=self.registry,
        )
        self.unsure = Counter(
            "hotline_outbox_unsure_total",
            "Sends that may have arrived without an answer (no_answer) or were left unrecorded by a process that "
            "died (abandoned); each is sent again, marked 【补发】 where the channel has no duplicate check",
            ["channel", "reason"],
            registry=self.registry,
        )

    def unsure_send(self, channel: str, reason: str) -> None:
        self.unsure.labels(channel, reason).inc()

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One HTTP request answered. The labelled series are looked up once and kept: ``labels()`` validates and
        locks on every call, a cost every request would pay."""
        if method not in _METHODS:
            method = "OTHER"  # a client's made-up method is not a new series
        key = (method, route, status)
        counter = self._request_children.get(key)
        if counter is None:
            counter = self._request_children[key] = self.requests.labels(method, route, str(status))
        counter.inc()
        histogram = self._latency_children.get(route)
        if histogram is None:
            histogram = self._latency_children[route] = self.latency.labels(route)
        histogram.observe(seconds)

    def ingested(self, outcomes: Iterable[Any]) -> None:
        for outcome in outcomes:
            self.tickets.labels(outcome.status).inc()

    def rejected(self, reason: str) -> None:
        self.rejects.labels(reason).inc()


METRICS = web.AppKey("metrics", Metrics)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        if request.transport is None:  # the handler was cancelled because its client went away
            status = CLIENT_CLOSED
        raise
    finally:
        request.app[METRICS].request(request.method, route, status, time.perf_counter() - started)


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


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    app = request.app
    m = app[METRICS]
    try:
        async with app[STORE].reading() as conn:
            counts = await outbox_repo.outbox_counts(conn)
        for status in ("pending", "sent", "dead", "void"):
            m.outbox.labels(status).set(counts.get(status, 0))
    except Exception:
        log.warning("metrics: could not count the outbox", exc_info=True)
    m.fallback_days.set(len(app[CALENDAR].coverage(app[CLOCK].now().date(), 30).fallback_days))
    return web.Response(body=generate_latest(m.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
