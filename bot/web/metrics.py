"""The metrics: ``GET /metrics`` in Prometheus' text format (behind ``METRICS_TOKEN`` when set), one registry per
application with the standard process, platform and garbage-collector collectors, the bot's counters, and what a
scrape reads of the database and of the process's roles. docs/operations.md lists them."""

from __future__ import annotations

import asyncio
import hmac
import logging
import platform
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

import bot
from bot.web.errors import Handler, json_error
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
    SETTINGS,
    STORE,
    WECOM_INBOUND,
)
from bot.web.protocol import CLIENT_CLOSED
from store import gauges
from store.liveness import unreachable

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
disable_created_metrics()  # no creation-time series beside every counter: Prometheus does not need them


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    """One registry per application (tests run many apps in one process), with the standard process, platform and
    garbage-collector collectors, the bot's own counters, and what is read at each scrape (:func:`metrics`)."""

    def __init__(self, app: web.Application | None = None) -> None:
        self.registry = registry = CollectorRegistry()
        if app is not None:
            registry.register(_Roles(app))
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        Info("hotline_build", "The running version", registry=registry).info(
            {"version": bot.version(), "python": platform.python_version()}
        )
        self.requests = Counter(
            "hotline_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=registry
        )
        self.latency = Histogram("hotline_http_request_seconds", "HTTP request latency", ["route"], registry=registry)
        self.tickets = Counter(
            "hotline_tickets_ingested_total", "Tickets handed over by the hotline", ["status"], registry=registry
        )
        self.rejects = Counter("hotline_ingest_rejected_total", "Hand-overs refused", ["reason"], registry=registry)
        self.refusals = Counter(
            "hotline_callback_refusals_total",
            "WeCom callbacks refused (signature, timestamp, decryption, malformed), by source and reason",
            ["source", "reason"],
            registry=registry,
        )
        self._request_children: dict[tuple[str, str, int], Any] = {}
        self._latency_children: dict[str, Any] = {}
        self.sent = Counter(
            "hotline_outbox_sent_total", "Messages sent by this process", ["channel"], registry=registry
        )
        self.send_errors = Counter(
            "hotline_outbox_send_errors_total",
            "Failed sends by channel and error code (WeCom's errcode, http_<status>, unreachable, transport, ...); "
            "a send paced by the rate limiter is not an error",
            ["channel", "code"],
            registry=registry,
        )
        self.unsure = Counter(
            "hotline_outbox_unsure_total",
            "Sends that may have arrived without an answer (no_answer) or were left unrecorded by a process that "
            "died (abandoned); each is sent again, marked 【补发】 where the channel has no duplicate check",
            ["channel", "reason"],
            registry=registry,
        )
        # read at each scrape (the database's are the same from every process: aggregate them with max)
        self.database_up = Gauge(
            "hotline_database_up", "Whether this process could read the database at the scrape", registry=registry
        )
        self.outbox = Gauge(
            "hotline_outbox_messages",
            "Messages waiting in the outbox (whole database): pending, or dead (awaiting `hotline-bot outbox replay`)",
            ["channel", "status"],
            registry=registry,
        )
        self.outbox_age = Gauge(
            "hotline_outbox_oldest_pending_age_seconds",
            "How long the longest-waiting pending message has waited: since it was queued once a send failed, else "
            "since it became due (held or paced messages do not wait yet); 0 when none waits",
            ["channel"],
            registry=registry,
        )
        self.inbox = Gauge(
            "hotline_inbox_pending",
            "WeCom messages and events accepted and not yet handled (whole database)",
            ["source"],
            registry=registry,
        )
        self.inbox_age = Gauge(
            "hotline_inbox_oldest_pending_age_seconds",
            "How long the oldest accepted, unhandled WeCom message has waited",
            ["source"],
            registry=registry,
        )
        self.fallback_days = Gauge(
            "hotline_calendar_fallback_days",
            "Days in the next 30 decided by the fallback calendar rule (no official data: fill the holiday file)",
            registry=registry,
        )

    def unsure_send(self, channel: str, reason: str) -> None:
        self.unsure.labels(channel, reason).inc()

    def sent_one(self, channel: str) -> None:
        self.sent.labels(channel).inc()

    def send_failed(self, channel: str, code: str) -> None:
        self.send_errors.labels(channel, code).inc()

    def refused(self, source: str, reason: str) -> None:
        self.refusals.labels(source, reason).inc()

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


class _Roles:
    """The process's part in the two elections, the deadline engine's ticks and the long connection's state, read
    from the application when scraped."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        app = self.app
        leader = GaugeMetricFamily(
            "hotline_leader",
            "1 in the process that holds the role (the deadline engine; the robot's long connection), else 0",
            labels=["role"],
        )
        if DEADLINE_LEADER in app:
            leader.add_metric(["deadline_engine"], _leads(app, DEADLINE_LEADER, DEADLINE_LEADER_TASK))
        if AIBOT_LEADER in app:
            leader.add_metric(["long_connection"], _leads(app, AIBOT_LEADER, AIBOT_LEADER_TASK))
        yield leader
        if DEADLINE_ENGINE in app:
            engine = app[DEADLINE_ENGINE]
            ticks = CounterMetricFamily(
                "hotline_deadline_engine_ticks", "Deadline engine ticks run by this process", value=engine.ticks
            )
            yield ticks
            last = engine.last_tick_at
            yield GaugeMetricFamily(
                "hotline_deadline_engine_last_tick_timestamp_seconds",
                "When this process last finished a tick of the deadline engine (Unix time; 0: never)",
                value=last.timestamp() if last is not None else 0,
            )
        link = app.get(AIBOT_LINK)
        if link is not None and AIBOT_LEADER in app and app[AIBOT_LEADER].leading.is_set():
            yield GaugeMetricFamily(
                "hotline_wecom_long_connection_up",
                "1 while the robot's long connection is subscribed (in the process that holds it)",
                value=1 if link.subscribed else 0,
            )


def _leads(app: web.Application, leader: web.AppKey[Any], task: web.AppKey[Any]) -> int:
    running = task in app and not app[task].done()
    return 1 if running and app[leader].leading.is_set() else 0


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


SCRAPE_READ_TIMEOUT = 5.0


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus' text format. With ``METRICS_TOKEN`` set, only for ``Authorization: Bearer <token>``."""
    app = request.app
    token = app[SETTINGS].metrics_token
    if token is not None:
        given = request.headers.get("Authorization", "")
        expected = "Bearer " + token.get_secret_value()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            response = json_error(401, "unauthorized", "/metrics needs Authorization: Bearer <METRICS_TOKEN>")
            response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    m = app[METRICS]
    now = app[CLOCK].now()
    inbound = app.get(WECOM_INBOUND)
    try:
        # well within a scrape's timeout (Prometheus' default: 10 s), so that a slow database reads as down
        async with asyncio.timeout(SCRAPE_READ_TIMEOUT), app[STORE].reading() as conn:
            outbox = await gauges.outbox_backlog(conn, now)
            inbox = await gauges.inbox_backlog(conn, inbound.sources if inbound is not None else ())
    except Exception as exc:
        m.database_up.set(0)
        for gauge in (m.outbox, m.outbox_age, m.inbox, m.inbox_age):
            gauge.clear()  # no reading rather than an old one
        if LIVENESS in app and unreachable(exc):
            app[LIVENESS].database.failed(exc)  # an outage: logged once when it begins and once when it ends
        elif isinstance(exc, TimeoutError):
            log.warning("metrics: the database did not answer within %g s", SCRAPE_READ_TIMEOUT)
        else:
            log.warning("metrics: could not read the outbox and the inbox", exc_info=True)
    else:
        m.database_up.set(1)
        m.outbox.clear()
        m.outbox_age.clear()
        for channel in sorted({channel for channel, _ in outbox}):
            m.outbox_age.labels(channel).set(_age(outbox.get((channel, "pending")), now))
            for status in ("pending", "dead"):
                backlog = outbox.get((channel, status))
                m.outbox.labels(channel, status).set(backlog.count if backlog is not None else 0)
        m.inbox.clear()
        m.inbox_age.clear()
        for source in inbound.sources if inbound is not None else ():
            m.inbox.labels(source).set(inbox[source].count if source in inbox else 0)
            m.inbox_age.labels(source).set(_age(inbox.get(source), now))
    m.fallback_days.set(len(app[CALENDAR].coverage(now.date(), 30).fallback_days))
    return web.Response(body=generate_latest(m.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


def _age(backlog: gauges.Backlog | None, now: datetime) -> float:
    if backlog is None or backlog.waiting_since is None:
        return 0.0
    return max(0.0, (now - backlog.waiting_since).total_seconds())
