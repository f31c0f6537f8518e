"""The probes: ``/livez`` says the process works, ``/readyz`` that it can accept requests (the database answers).
Redis away leaves a process ready, reported as degraded: a load balancer following ``/readyz`` keeps every process
that still stores what it is sent. ``/healthz`` answers as ``/readyz``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from bot.app import create_app
from bot.domain.clock import FrozenClock
from config.model import BotConfig
from config.settings import Settings
from tests.hotline.test_api import TICKET, post_json
from tests.tcpproxy import closed_port

Client = TestClient[Any, Any]


async def test_with_redis_unreachable_the_process_is_live_and_ready_and_says_it_is_degraded(
    aiohttp_client: Callable[..., Awaitable[Client]],
    database_url: str,
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    clock: FrozenClock,
) -> None:
    redis_url = f"redis://127.0.0.1:{closed_port()}/0"
    app = create_app(settings_for(database_url, REDIS_URL=redis_url), sandbox_config, clock=clock, run_workers=False)
    client = await aiohttp_client(app)

    live = await client.get("/livez")
    assert (live.status, await live.json()) == (200, {"status": "ok"})
    for path in ("/readyz", "/healthz"):
        ready = await client.get(path)
        assert ready.status == 200
        body = await ready.json()
        assert body["status"] == "degraded"
        assert body["checks"]["database"]["status"] == "ok"
        assert body["checks"]["redis"]["status"] == "degraded"
        assert "share of each limit" in body["checks"]["redis"]["detail"]
    # and it is: hand-overs are still accepted
    assert (await post_json(client, clock, "/api/tickets", TICKET)).status == 201


async def test_the_openapi_document_describes_the_probes(
    aiohttp_client: Callable[..., Awaitable[Client]],
    sqlite_url: str,
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    clock: FrozenClock,
) -> None:
    client = await aiohttp_client(create_app(settings_for(sqlite_url), sandbox_config, clock=clock, run_workers=False))
    paths = (await (await client.get("/api/openapi.json")).json())["paths"]
    assert set(paths["/livez"]["get"]["responses"]) == {"200"}
    assert set(paths["/readyz"]["get"]["responses"]) == {"200", "503"}
    assert "degraded" in paths["/readyz"]["get"]["responses"]["200"]["description"]
