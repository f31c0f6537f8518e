"""The hotline bridge over real HTTP: signed hand-overs, updates, the read API, OpenAPI, health, metrics."""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import create_app
from bot.domain.clock import FrozenClock
from bot.domain.lifecycle import Action, ActionRequest
from bot.hotline.signing import signed_headers
from bot.web.keys import STORE, TICKETS
from config.model import BotConfig
from config.settings import Settings
from store.models import audit_log, tickets
from tests.conftest import API_TOKEN, INGEST_SECRET, REDIS_HOST, REDIS_PORT, REDIS_URL, require_service
from tests.hotline.conftest import Client

TICKET = {
    "ticket_no": "2026112300123",
    "content": "某路口店招破损，有坠落风险",
    "category": "市容景观",
    "urgency": "紧急",
    "citizen_name": "李女士",
    "citizen_phone": "13912345678",
    "address": "某区某路 8 号",
    "dispatched_at": "2026-11-23T08:30:00",
}


def signed(body: bytes, clock: FrozenClock, secret: str = INGEST_SECRET, skew: int = 0) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        **signed_headers(secret, int(clock.now().timestamp()) + skew, body),
    }


async def post_json(client: Client, clock: FrozenClock, path: str, data: Any) -> Any:
    body = json.dumps(data, ensure_ascii=False).encode()
    return await client.post(path, data=body, headers=signed(body, clock))


async def count(client: Client, table: Any) -> int:
    async with client.app[STORE].reading() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def test_hand_over_creates_then_repeat_is_unchanged(client: Client, clock: FrozenClock) -> None:
    response = await post_json(client, clock, "/api/tickets", TICKET)
    assert response.status == 201
    assert await response.json() == {
        "ticket_no": "2026112300123",
        "status": "created",
        "state": "dispatched",
        "unit": "SRJG",
        "changed": [],
    }
    again = await post_json(client, clock, "/api/tickets", TICKET)
    assert again.status == 200
    assert (await again.json())["status"] == "unchanged"
    assert await count(client, tickets) == 1
    changed = await post_json(client, clock, "/api/tickets", {**TICKET, "content": "店招已有一角脱落"})
    assert (await changed.json())["changed"] == ["content"]


async def test_batch_hand_over(client: Client, clock: FrozenClock) -> None:
    batch = {"tickets": [{**TICKET, "ticket_no": f"20261123{i:05d}"} for i in range(20)]}
    response = await post_json(client, clock, "/api/tickets", batch)
    assert response.status == 201
    results = (await response.json())["results"]
    assert [r["status"] for r in results] == ["created"] * 20
    assert await count(client, tickets) == 20


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_signature"),
        ({"X-Hotline-Timestamp": "not-a-number", "X-Hotline-Signature": "sha256=00"}, "bad_timestamp"),
        ("stale", "stale_timestamp"),
        ("wrong_secret", "bad_signature"),
        ("altered", "bad_signature"),
    ],
)
async def test_bad_signatures_are_refused_and_change_nothing(
    client: Client, clock: FrozenClock, headers: Any, code: str
) -> None:
    body = json.dumps(TICKET).encode()
    if headers == "stale":
        headers = signed(body, clock, skew=-301)
    elif headers == "wrong_secret":
        headers = signed(body, clock, secret="guessed")
    elif headers == "altered":
        headers = signed(body, clock)
        body = body.replace(b"2026112300123", b"2026112300999")
    response = await client.post("/api/tickets", data=body, headers=headers)
    assert response.status == 401
    assert (await response.json())["error"]["code"] == code
    assert await count(client, tickets) == 0


async def test_timestamp_inside_the_window_is_accepted(client: Client, clock: FrozenClock) -> None:
    body = json.dumps(TICKET).encode()
    response = await client.post("/api/tickets", data=body, headers=signed(body, clock, skew=-299))
    assert response.status == 201


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"\xff\xfe", 400, "invalid_json"),
        (b"[]", 422, "validation_error"),
        (json.dumps({**TICKET, "ticket_no": "x"}).encode(), 422, "validation_error"),
        (json.dumps({**TICKET, "content": ""}).encode(), 422, "validation_error"),
        (json.dumps({**TICKET, "citizen_phone": "call me"}).encode(), 422, "validation_error"),
        (json.dumps({**TICKET, "urgency": "特急"}).encode(), 422, "validation_error"),
        (json.dumps({**TICKET, "dispatched_at": "yesterday"}).encode(), 422, "validation_error"),
        (json.dumps({**TICKET, "unexpected": 1}).encode(), 422, "validation_error"),
        (json.dumps({"tickets": []}).encode(), 422, "validation_error"),
        (b'{"ticket_no": "2026112300123", "content": "x", "extra": {"a": NaN}}', 400, "invalid_json"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, 400, "invalid_json"),
        (
            json.dumps({**TICKET, "extra": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}).encode(),
            422,
            "validation_error",
        ),
        (json.dumps(TICKET).encode("utf-16"), 400, "invalid_json"),
        (json.dumps({**TICKET, "dispatched_at": "1999-11-20T08:00:00"}).encode(), 422, "validation_error"),
        (json.dumps({**TICKET, "dispatched_at": "2100-01-01T08:00:00"}).encode(), 422, "validation_error"),
        (json.dumps({**TICKET, "hotline_deadline": "0001-01-01T00:00:00"}).encode(), 422, "validation_error"),
    ],
)
async def test_malformed_bodies_get_a_json_error_and_change_nothing(
    client: Client, clock: FrozenClock, body: bytes, status: int, code: str
) -> None:
    response = await client.post("/api/tickets", data=body, headers=signed(body, clock))
    assert response.status == status
    error = (await response.json())["error"]
    assert error["code"] == code
    assert error["message"]
    assert await count(client, tickets) == 0


async def test_validation_errors_name_the_field(client: Client, clock: FrozenClock) -> None:
    response = await post_json(client, clock, "/api/tickets", {**TICKET, "urgency": "特急", "content": ""})
    details = (await response.json())["error"]["details"]
    assert any(d["loc"] == "content" for d in details)


async def test_oversized_body_is_refused(client: Client, clock: FrozenClock, sandbox_config: BotConfig) -> None:
    body = json.dumps({**TICKET, "extra": {"blob": "x" * (sandbox_config.hotline.max_body_bytes + 10)}}).encode()
    response = await client.post("/api/tickets", data=io.BytesIO(body), headers=signed(body, clock))
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "body_too_large"
    assert await count(client, tickets) == 0


async def test_ingest_disabled_without_a_secret(
    aiohttp_client: Callable[..., Awaitable[Client]],
    sqlite_url: str,
    sandbox_config: BotConfig,
    clock: FrozenClock,
) -> None:
    settings = Settings.from_env({"DATABASE_URL": sqlite_url})
    client = await aiohttp_client(create_app(settings, sandbox_config, clock=clock, run_workers=False))
    response = await post_json(client, clock, "/api/tickets", TICKET)
    assert response.status == 503
    assert (await response.json())["error"]["code"] == "ingest_disabled"


async def test_events_visit_result_and_dedup(client: Client, clock: FrozenClock) -> None:
    await post_json(client, clock, "/api/tickets", TICKET)
    no = TICKET["ticket_no"]
    refused = await post_json(
        client, clock, f"/api/tickets/{no}/events", {"event_id": "e1", "type": "visit_result", "result": "满意"}
    )
    assert refused.status == 409  # nothing submitted yet
    assert (await refused.json())["error"]["code"] == "invalid_state"
    cancel = {"event_id": "e2", "type": "cancel", "note": "市民撤回诉求"}
    first = await post_json(client, clock, f"/api/tickets/{no}/events", cancel)
    assert first.status == 200
    assert await first.json() == {"ticket_no": no, "event_id": "e2", "state": "cancelled", "duplicate": False}
    audits = await count(client, audit_log)
    again = await post_json(client, clock, f"/api/tickets/{no}/events", cancel)
    assert (await again.json())["duplicate"] is True
    assert await count(client, audit_log) == audits


async def test_event_redispatch_by_the_hotline(client: Client, clock: FrozenClock) -> None:
    await post_json(client, clock, "/api/tickets", TICKET)
    no = TICKET["ticket_no"]
    missing_unit = await post_json(client, clock, f"/api/tickets/{no}/events", {"event_id": "r0", "type": "redispatch"})
    assert missing_unit.status == 422
    response = await post_json(
        client, clock, f"/api/tickets/{no}/events", {"event_id": "r1", "type": "redispatch", "unit": "环卫所"}
    )
    assert response.status == 200
    read = await client.get(f"/api/tickets/{no}", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert (await read.json())["ticket"]["unit"] == "HW"


async def test_extension_events(client: Client, clock: FrozenClock) -> None:
    """延期 from the platform: a request with its days and reason, the decision, the read API's view of both."""
    await post_json(client, clock, "/api/tickets", TICKET)  # urgent: handling due in 3 working days
    no, auth = TICKET["ticket_no"], {"Authorization": f"Bearer {API_TOKEN}"}
    path = f"/api/tickets/{no}/events"

    async def event(**fields: Any) -> Any:
        return await post_json(client, clock, path, {"event_id": fields.pop("event_id", "x"), **fields})

    for fields, locs in [
        ({"type": "request_extension", "note": "需协调"}, ["days"]),
        ({"type": "request_extension", "days": 3}, ["note"]),
        ({"type": "request_extension", "days": 11, "note": " "}, ["days", "note"]),  # sandbox: at most 10
        ({"type": "reject_extension"}, ["note"]),
        ({"type": "cancel", "days": 2}, ["days"]),
    ]:
        response = await event(**fields)
        assert response.status == 422, fields
        error = (await response.json())["error"]
        assert (error["code"], [d["loc"] for d in error["details"]]) == ("validation_error", locs)
    for days in (0, "three"):
        assert (await event(type="request_extension", days=days, note="需协调")).status == 422
    unclaimed = await event(type="request_extension", days=3, note="需协调")
    assert unclaimed.status == 409
    assert (await unclaimed.json())["error"]["code"] == "claim_first"
    async with client.app[STORE].transaction() as conn:  # claimed in the chat meanwhile
        await conn.execute(tickets.update().values(state="claimed", handler_userid="zhouting"))
    asked = await event(event_id="x1", type="request_extension", days=3, note="需协调物业，请回电13912345678")
    assert asked.status == 200
    assert (await asked.json())["state"] == "claimed"
    twice = await event(event_id="x2", type="request_extension", days=2, note="再申请")
    assert (twice.status, (await twice.json())["error"]["code"]) == (409, "already_requested")
    body = await (await client.get(f"/api/tickets/{no}", headers=auth)).json()
    assert body["ticket"]["extension"] == {
        "pending": {
            "days": 3,
            "reason": "需协调物业，请回电139****5678",  # masked, as the ticket's own text
            "requested_by": "hotline",
            "requested_at": clock.now().isoformat(),
        },
        "approved": 0,
    }
    handle = next(d for d in body["deadlines"] if d["name"] == "handle")
    approved = await event(event_id="x3", type="approve_extension", days=2)
    assert approved.status == 200
    again = await event(event_id="x3", type="approve_extension", days=2)  # the platform retries: applied once
    assert (await again.json())["duplicate"] is True
    body = await (await client.get(f"/api/tickets/{no}", headers=auth)).json()
    assert body["ticket"]["extension"] == {"pending": None, "approved": 1}
    moved = next(d for d in body["deadlines"] if d["name"] == "handle")
    # Thu 11-26 08:30 + 2 working days: Fri, then over the weekend to Mon 11-30 08:30
    assert (handle["due_at"], moved["due_at"]) == ("2026-11-26T08:30:00+08:00", "2026-11-30T08:30:00+08:00")
    assert moved["extended_days"] == 2
    assert [h["action"] for h in body["history"]][-2:] == ["request_extension", "approve_extension"]
    nothing = await event(event_id="x4", type="reject_extension", note="不同意")
    assert (nothing.status, (await nothing.json())["error"]["code"]) == (409, "nothing_to_approve")


async def test_events_with_bad_input_change_nothing(client: Client, clock: FrozenClock) -> None:
    await post_json(client, clock, "/api/tickets", TICKET)
    no = TICKET["ticket_no"]
    long_path = await post_json(
        client, clock, f"/api/tickets/{'9' * 300}/events", {"event_id": "x" * 100, "type": "cancel"}
    )
    assert long_path.status == 404
    old = await post_json(
        client, clock, f"/api/tickets/{no}/events", {"event_id": "e", "type": "cancel", "at": "1999-01-01T00:00:00"}
    )
    assert old.status == 422
    body = json.dumps({"event_id": "u16", "type": "cancel"}).encode("utf-16")
    utf16 = await client.post(f"/api/tickets/{no}/events", data=body, headers=signed(body, clock))
    assert utf16.status == 400
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    assert (await (await client.get(f"/api/tickets/{no}", headers=auth)).json())["ticket"]["state"] == "dispatched"


async def test_event_for_unknown_ticket_and_bad_event(client: Client, clock: FrozenClock) -> None:
    response = await post_json(client, clock, "/api/tickets/2026000000000/events", {"event_id": "x", "type": "cancel"})
    assert response.status == 404
    bad = await post_json(client, clock, "/api/tickets/2026000000000/events", {"event_id": "x", "type": "explode"})
    assert bad.status == 422


async def test_read_api_needs_the_token_and_masks_contacts(client: Client, clock: FrozenClock) -> None:
    await post_json(client, clock, "/api/tickets", {**TICKET, "content": "店招破损，请回电 13912345678"})
    path = f"/api/tickets/{TICKET['ticket_no']}"
    assert (await client.get(path)).status == 401
    assert (await client.get(path, headers={"Authorization": "Bearer wrong"})).status == 401
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    body = await (await client.get(path, headers=auth)).json()
    assert body["ticket"]["citizen_phone"] == "139****5678"
    assert body["ticket"]["citizen_name"] == "李女士"
    assert body["ticket"]["state"] == "dispatched"
    assert body["ticket"]["kind"] == "urgent"
    names = {d["name"] for d in body["deadlines"]}
    assert {"accept", "first_contact", "return_window", "handle", "handle_internal", "contact_20m"} <= names
    assert body["history"][0]["action"] == "dispatch"
    assert body["ticket"]["content"] == "店招破损，请回电 139****5678"
    full = await (await client.get(path + "?contact=full", headers=auth)).json()
    assert full["ticket"]["citizen_phone"] == "13912345678"
    assert full["ticket"]["content"] == "店招破损，请回电 13912345678"
    again = await (await client.get(path, headers=auth)).json()
    assert [h["action"] for h in again["history"]] == ["dispatch", "view_contact"]  # who saw it, recorded
    missing = await client.get("/api/tickets/2026000000000", headers=auth)
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "ticket_not_found"


async def test_the_masked_read_api_masks_the_category_too(client: Client, clock: FrozenClock) -> None:
    """The category is the platform's free text, masked as the content is."""
    no = "2026112300124"
    await post_json(
        client, clock, "/api/tickets", {**TICKET, "ticket_no": no, "category": "市容景观（联系13912345678）"}
    )
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    body = await (await client.get(f"/api/tickets/{no}", headers=auth)).json()
    assert body["ticket"]["category"] == "市容景观（联系139****5678）"
    full = await (await client.get(f"/api/tickets/{no}?contact=full", headers=auth)).json()
    assert full["ticket"]["category"] == "市容景观（联系13912345678）"


async def test_overdue_flag_follows_the_clock(client: Client, clock: FrozenClock) -> None:
    await post_json(client, clock, "/api/tickets", TICKET)
    path = f"/api/tickets/{TICKET['ticket_no']}"
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    clock.advance(minutes=40)  # the 20-minute contact deadline (三个二) has passed, nothing else has
    body = await (await client.get(path, headers=auth)).json()
    overdue = {d["name"] for d in body["deadlines"] if d["overdue"]}
    assert overdue == {"contact_20m"}


async def test_unknown_route_and_method_are_json(client: Client) -> None:
    missing = await client.get("/nowhere")
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "not_found"
    wrong = await client.put("/api/tickets")
    assert wrong.status == 405
    assert (await wrong.json())["error"]["code"] == "method_not_allowed"


async def test_openapi_document(client: Client) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    assert {"/api/tickets", "/api/tickets/{ticket_no}", "/api/tickets/{ticket_no}/events", "/healthz"} <= set(
        doc["paths"]
    )
    schema = doc["components"]["schemas"]["TicketPayload"]
    assert {"ticket_no", "content"} <= set(schema["required"])
    event = doc["components"]["schemas"]["TicketEventPayload"]
    assert {"request_extension", "approve_extension", "reject_extension"} <= set(event["properties"]["type"]["enum"])
    assert event["properties"]["days"]["anyOf"][0] == {"minimum": 1, "type": "integer"}
    assert "延期" in doc["paths"]["/api/tickets/{ticket_no}/events"]["post"]["summary"]


async def test_healthz_and_metrics(client: Client, clock: FrozenClock) -> None:
    health = await client.get("/healthz")
    assert health.status == 200
    body = await health.json()
    assert body["status"] == "ok"  # 2026-11-23 + 30 days stays inside chinesecalendar's data
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["redis"] == {"status": "not_configured"}
    await post_json(client, clock, "/api/tickets", TICKET)
    metrics = await (await client.get("/metrics")).text()
    assert 'hotline_tickets_ingested_total{status="created"} 1.0' in metrics
    assert "hotline_http_requests_total" in metrics


async def test_requests_are_counted_by_method_route_and_status(client: Client) -> None:
    for _ in range(3):
        assert (await client.get("/healthz")).status == 200
    assert (await client.get("/api/tickets/NOPE")).status in (401, 403, 404)
    await client.request("PURGE", "/healthz")  # an unusual method: counted, but not as a series of its own
    await client.request("PROPFIND", "/healthz")
    metrics = await (await client.get("/metrics")).text()
    assert 'hotline_http_requests_total{method="GET",route="/healthz",status="200"} 3.0' in metrics
    assert 'hotline_http_request_seconds_count{route="/healthz"}' in metrics
    assert 'hotline_http_requests_total{method="OTHER",route="unmatched",status="405"} 2.0' in metrics
    assert "PURGE" not in metrics
    assert "PROPFIND" not in metrics


async def test_healthz_warns_when_the_calendar_runs_out(client: Client, clock: FrozenClock) -> None:
    clock.advance(days=30)  # 2026-12-23: the next 30 days reach into 2027
    body = await (await client.get("/healthz")).json()
    assert body["status"] == "degraded"
    calendar = body["checks"]["calendar"]
    assert calendar["status"] == "warning"
    assert calendar["fallback_days"][0] == "2027-01-01"
    assert "2027" in calendar["warning"]


@pytest.mark.parametrize(
    ("redis_url", "status", "code"), [(REDIS_URL, "ok", 200), ("redis://127.0.0.1:1/0", "degraded", 200)]
)
async def test_healthz_checks_redis_when_configured(
    aiohttp_client: Callable[..., Awaitable[Client]],
    sqlite_url: str,
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    clock: FrozenClock,
    redis_url: str,
    status: str,
    code: int,
) -> None:
    if status == "ok":
        require_service("Redis", REDIS_HOST, REDIS_PORT)
    app = create_app(settings_for(sqlite_url, REDIS_URL=redis_url), sandbox_config, clock=clock, run_workers=False)
    client = await aiohttp_client(app)
    response = await client.get("/healthz")
    assert response.status == code
    assert (await response.json())["checks"]["redis"]["status"] == status


async def test_return_events(client: Client, clock: FrozenClock) -> None:
    """退单 decided by the platform: approve (re-dispatching when a unit is named) or reject with its reason; the read
    API shows a pending return, its reason masked."""
    await post_json(client, clock, "/api/tickets", TICKET)
    no, auth = TICKET["ticket_no"], {"Authorization": f"Bearer {API_TOKEN}"}
    path = f"/api/tickets/{no}/events"
    service = client.app[TICKETS]
    await service.act(
        no,
        ActionRequest(action=Action.REQUEST_RETURN, actor="chenjing", at=clock.now(), note="非本所职责，联系13912345678", unit="环卫所 13912345678"),
    )  # fmt: skip
    body = await (await client.get(f"/api/tickets/{no}", headers=auth)).json()
    assert body["ticket"]["state"] == "return_requested"
    assert body["ticket"]["return"] == {
        "reason": "非本所职责，联系139****5678",
        "suggested_unit": "环卫所 139****5678",  # a member's text, masked as the reason is
        "requested_by": "chenjing",
        "requested_at": clock.now().isoformat(),
        "signed_by": "chenjing",  # a head's own return
    }
    missing = await post_json(client, clock, path, {"event_id": "r0", "type": "reject_return"})
    assert missing.status == 422
    assert [d["loc"] for d in (await missing.json())["error"]["details"]] == ["note"]
    unknown = await post_json(client, clock, path, {"event_id": "r1", "type": "approve_return", "unit": "无此单位"})
    assert (unknown.status, (await unknown.json())["error"]["code"]) == (409, "unknown_unit")
    rejected = await post_json(client, clock, path, {"event_id": "r2", "type": "reject_return", "note": "属于贵所"})
    assert (rejected.status, (await rejected.json())["state"]) == (200, "dispatched")
    body = await (await client.get(f"/api/tickets/{no}", headers=auth)).json()
    assert body["ticket"]["return"] is None
    assert body["history"][-1]["action"] == "reject_return"
    again = await post_json(client, clock, path, {"event_id": "r3", "type": "approve_return"})
    assert (again.status, (await again.json())["error"]["code"]) == (409, "invalid_state")


async def test_an_approved_return_redispatched_by_the_platform(client: Client, clock: FrozenClock) -> None:
    await post_json(client, clock, "/api/tickets", TICKET)
    no, auth = TICKET["ticket_no"], {"Authorization": f"Bearer {API_TOKEN}"}
    await client.app[TICKETS].act(
        no, ActionRequest(action=Action.REQUEST_RETURN, actor="chenjing", at=clock.now(), note="非本所", unit="HW")
    )
    path = f"/api/tickets/{no}/events"
    approved = await post_json(client, clock, path, {"event_id": "a1", "type": "approve_return", "unit": "环卫所"})
    assert (approved.status, (await approved.json())["state"]) == (200, "dispatched")
    ticket = (await (await client.get(f"/api/tickets/{no}", headers=auth)).json())["ticket"]
    assert (ticket["unit"], ticket["returns"], ticket["redispatches"]) == ("HW", 1, 1)


async def test_the_secret_and_the_token_being_replaced_are_accepted_beside_the_new_ones(
    aiohttp_client: Callable[..., Awaitable[Client]],
    sqlite_url: str,
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    clock: FrozenClock,
) -> None:
    """While the platform switches to the new secret (and readers to the new token), both work; nothing else does."""
    settings = settings_for(
        sqlite_url,
        HOTLINE_INGEST_SECRET="the-new-secret",
        HOTLINE_INGEST_SECRET_PREVIOUS=INGEST_SECRET,
        API_TOKEN="the-new-token",
        API_TOKEN_PREVIOUS=API_TOKEN,
    )
    client = await aiohttp_client(create_app(settings, sandbox_config, clock=clock, run_workers=False))
    for n, secret in enumerate((INGEST_SECRET, "the-new-secret")):
        body = json.dumps({**TICKET, "ticket_no": f"202611230012{n}"}, ensure_ascii=False).encode()
        assert (await client.post("/api/tickets", data=body, headers=signed(body, clock, secret))).status == 201
    body = json.dumps({**TICKET, "ticket_no": "2026112300129"}, ensure_ascii=False).encode()
    refused = await client.post("/api/tickets", data=body, headers=signed(body, clock, "an-old-old-secret"))
    assert (refused.status, (await refused.json())["error"]["code"]) == (401, "bad_signature")
    stale = await client.post("/api/tickets", data=body, headers=signed(body, clock, INGEST_SECRET, skew=-3600))
    assert (await stale.json())["error"]["code"] == "stale_timestamp"  # the old secret is no way round the window
    for token, status in ((API_TOKEN, 200), ("the-new-token", 200), ("guess", 401)):
        answer = await client.get("/api/tickets/2026112300120", headers={"Authorization": f"Bearer {token}"})
        assert answer.status == status, token
