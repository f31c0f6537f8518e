"""The OpenAPI document says what the server enforces, on both databases: each case below reads what the document
(``GET /api/openapi.json``) says of a field, sends the server a value it allows or refuses, and checks the server
agrees: nulls, the date range, what each event type needs, and text holding U+0000.

"Refused" is a 422 ``validation_error`` naming the field; "accepted" is anything but (a 409 of the lifecycle is the
value passing validation). Careless bodies that are not JSON text at all are a 400.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from itertools import count
from typing import Any

from bot.domain.clock import FrozenClock
from tests.hotline.conftest import Client
from tests.hotline.test_api import TICKET, post_json, signed

ticket_numbers = count(1)


async def schemas(client: Client) -> dict[str, Any]:
    return dict((await (await client.get("/api/openapi.json")).json())["components"]["schemas"])


def nullable(prop: dict[str, Any]) -> bool:
    return prop.get("type") == "null" or any(branch.get("type") == "null" for branch in prop.get("anyOf", []))


def text_field(prop: dict[str, Any]) -> bool:
    branches = [prop, *prop.get("anyOf", [])]
    return any(b.get("type") == "string" and "format" not in b and "pattern" not in b for b in branches)


async def hand_over(client: Client, clock: FrozenClock, **fields: Any) -> Any:
    ticket = {**TICKET, "ticket_no": f"2026112399{next(ticket_numbers):03d}", **fields}
    return await post_json(client, clock, "/api/tickets", ticket)


async def verdict(response: Any) -> tuple[bool, list[str]]:
    """(accepted, the fields a refusal names)."""
    if response.status == 422:
        error = (await response.json())["error"]
        assert error["code"] == "validation_error"
        return False, [d["loc"] for d in error.get("details") or []]
    assert response.status in (200, 201, 409), await response.text()
    return True, []


# -- nulls --------------------------------------------------------------------------------------------------------


async def test_a_ticket_field_takes_null_exactly_where_the_document_says(client: Client, clock: FrozenClock) -> None:
    schema = (await schemas(client))["TicketPayload"]
    required = set(schema.get("required", []))
    for field, prop in schema["properties"].items():
        accepted, locs = await verdict(await hand_over(client, clock, **{field: None}))
        documented = nullable(prop) and field not in required
        assert accepted == documented, (field, prop)
        assert accepted or field in locs


async def test_an_event_field_takes_null_exactly_where_the_document_says(client: Client, clock: FrozenClock) -> None:
    schema = (await schemas(client))["TicketEventPayload"]
    assert (await post_json(client, clock, "/api/tickets", TICKET)).status == 201
    path = f"/api/tickets/{TICKET['ticket_no']}/events"
    for n, (field, prop) in enumerate(schema["properties"].items()):
        event = {"event_id": f"null-{n}", "type": "reopen", field: None}  # reopen needs nothing of its own
        accepted, locs = await verdict(await post_json(client, clock, path, event))
        assert accepted == (nullable(prop) and field not in schema["required"]), (field, prop)
        assert accepted or field in locs


# -- what each event type needs -----------------------------------------------------------------------------------

COMPLETE = {
    "visit_result": {"result": "satisfied"},
    "redispatch": {"unit": "HW"},
    "request_extension": {"days": 2, "note": "需协调物业"},
    "reject_extension": {"note": "理由不充分"},
    "reject_return": {"note": "经核实属于贵单位职责"},
    "request_exclusion": {"note": "重复来电"},
}


async def test_each_event_type_needs_what_the_document_says(client: Client, clock: FrozenClock) -> None:
    rules = (await schemas(client))["TicketEventPayload"]["allOf"]
    needs = {
        rule["if"]["properties"]["type"]["const"]: rule["then"]["required"]
        for rule in rules
        if "const" in rule["if"]["properties"]["type"]
    }
    assert needs["redispatch"] == ["unit"]
    assert set(needs) == set(COMPLETE)
    assert (await post_json(client, clock, "/api/tickets", TICKET)).status == 201
    path = f"/api/tickets/{TICKET['ticket_no']}/events"
    ids = count()
    for event_type, fields in needs.items():
        for field in fields:
            for missing in ("absent", None, "", "  "):
                if missing in ("", "  ") and field not in ("unit", "note"):
                    continue
                event = {"event_id": f"e{next(ids)}", "type": event_type, **COMPLETE[event_type]}
                if missing == "absent":
                    del event[field]
                else:
                    event[field] = missing
                accepted, locs = await verdict(await post_json(client, clock, path, event))
                assert not accepted, event
                assert field in locs, (event, locs)
        complete = {"event_id": f"e{next(ids)}", "type": event_type, **COMPLETE[event_type]}
        assert (await verdict(await post_json(client, clock, path, complete)))[0], complete

    # days: the document allows it only with an extension request or approval, and so does the server
    [days_rule] = [r for r in rules if "const" not in r["if"]["properties"]["type"]]
    assert days_rule["then"]["properties"]["days"] == {"type": "null"}
    for event_type in days_rule["if"]["properties"]["type"]["not"]["enum"]:
        event = {"event_id": f"e{next(ids)}", "type": event_type, "days": 1, "note": "延期"}
        assert "days" not in (await verdict(await post_json(client, clock, path, event)))[1]
    refused, locs = await verdict(await post_json(client, clock, path, {"event_id": "d", "type": "cancel", "days": 1}))
    assert not refused
    assert locs == ["days"]


# -- the date range -----------------------------------------------------------------------------------------------


def date_fields(schema: dict[str, Any]) -> dict[str, tuple[datetime, datetime]]:
    return {
        field: (datetime.fromisoformat(prop["formatMinimum"]), datetime.fromisoformat(prop["formatMaximum"]))
        for field, prop in schema["properties"].items()
        if any(b.get("format") == "date-time" for b in [prop, *prop.get("anyOf", [])])
    }


def around(low: datetime, high: datetime) -> list[tuple[str, bool]]:
    """ISO values at and just beyond each bound, written with the offset and without it (Beijing time)."""
    tick = timedelta(microseconds=1)
    values = [(low, True), (high, True), (low - tick, False), (high + tick, False)]
    out = [(v.isoformat(), ok) for v, ok in values]
    out += [(v.replace(tzinfo=None).isoformat(), ok) for v, ok in values]
    out += [("2098-12-31T23:59:59.999999+08:00", True), ("2098-12-31T20:00:00-08:00", False)]
    return out


async def test_dates_are_accepted_exactly_within_the_documented_range(client: Client, clock: FrozenClock) -> None:
    all_schemas = await schemas(client)
    ticket_dates = date_fields(all_schemas["TicketPayload"])
    assert set(ticket_dates) == {"dispatched_at", "hotline_deadline"}
    for field, (low, high) in ticket_dates.items():
        assert "2004-01-01 to 2098-12-31" in all_schemas["TicketPayload"]["properties"][field]["description"]
        for value, documented in around(low, high):
            accepted, locs = await verdict(await hand_over(client, clock, **{field: value}))
            assert accepted == documented, (field, value)
            assert accepted or locs == [field]

    event_dates = date_fields(all_schemas["TicketEventPayload"])
    assert set(event_dates) == {"at"}
    assert (await post_json(client, clock, "/api/tickets", TICKET)).status == 201
    path = f"/api/tickets/{TICKET['ticket_no']}/events"
    for n, (value, documented) in enumerate(around(*event_dates["at"])):
        response = await post_json(client, clock, path, {"event_id": f"at-{n}", "type": "reopen", "at": value})
        accepted, locs = await verdict(response)
        assert accepted == documented, value
        assert accepted or locs == ["at"]


# -- text that no database stores ---------------------------------------------------------------------------------


async def test_no_text_field_takes_a_nul_character(client: Client, clock: FrozenClock) -> None:
    """U+0000 is valid JSON ("\\u0000") but no text PostgreSQL stores: refused in every text field, on both
    databases, as the document says, instead of a 500 from the database."""
    doc = await (await client.get("/api/openapi.json")).json()
    assert "U+0000" in doc["info"]["description"]
    schema = doc["components"]["schemas"]["TicketPayload"]
    fields = [f for f, prop in schema["properties"].items() if text_field(prop)]
    assert {"content", "title", "address", "citizen_name"} <= set(fields)
    for field in [*fields, "extra"]:
        value: Any = {"备注": "a\u0000b"} if field == "extra" else "投诉\u0000内容"
        accepted, locs = await verdict(await hand_over(client, clock, **{field: value}))
        assert not accepted, field
        assert locs == [field]
    assert (await post_json(client, clock, "/api/tickets", TICKET)).status == 201
    path = f"/api/tickets/{TICKET['ticket_no']}/events"
    for field in ("event_id", "note"):
        event = {"event_id": "nul", "type": "cancel", field: "撤单\u0000"}
        accepted, locs = await verdict(await post_json(client, clock, path, event))
        assert not accepted, field
        assert locs == [field]


async def test_a_lone_surrogate_escape_is_not_json_text(client: Client, clock: FrozenClock) -> None:
    body = json.dumps({**TICKET, "content": "店招破损"}, ensure_ascii=False).replace("店招破损", "店招\\ud800").encode()
    assert b"\\ud800" in body
    response = await client.post("/api/tickets", data=body, headers=signed(body, clock))
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "invalid_json"
    assert (await post_json(client, clock, "/api/tickets", TICKET)).status == 201  # nothing of it was stored
