"""The OpenAPI 3.1 document of the bot's HTTP API, served at ``GET /api/openapi.json``.

Request bodies come from the same pydantic models that validate them, so the document cannot drift.
"""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web

from bot.hotline.imports_api import CONTENT_TYPES, report_schema
from bot.hotline.reports_api import FORMATS as REPORT_FORMATS
from bot.hotline.reports_api import XLSX as REPORT_XLSX
from bot.hotline.schemas import TicketBatch, TicketEventPayload, TicketPayload
from bot.hotline.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER
from bot.web.errors import json_response

routes = web.RouteTableDef()

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {},
            },
        }
    },
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


_SIGNED_ERRORS = {
    "400": _error("The body is not JSON (or holds a lone surrogate escape such as `\\ud800`)"),
    "401": _error("Missing, stale or wrong signature"),
    "413": _error("The body is too large"),
    "422": _error(
        "The JSON does not describe a valid ticket or event (what the schema refuses: a null where the field takes "
        "none, a date outside formatMinimum..formatMaximum, a field the event type needs, U+0000 in a text); "
        "`details` lists each problem by `loc`"
    ),
    "503": _error("HOTLINE_INGEST_SECRET is not configured"),
}


def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": _ERROR}
    for model in (TicketPayload, TicketBatch, TicketEventPayload):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    schemas["ImportReport"] = report_schema()
    schemas["UpsertResult"] = {
        "type": "object",
        "properties": {
            "ticket_no": {"type": "string"},
            "status": {"enum": ["created", "updated", "unchanged"]},
            "state": {"type": "string"},
            "unit": {"type": ["string", "null"]},
            "changed": {"type": "array", "items": {"type": "string"}},
        },
    }
    return schemas


def _imports(signed: list[dict[str, list[str]]]) -> dict[str, Any]:
    binary = {"schema": {"type": "string", "format": "binary"}}
    options = [
        {"name": "dry_run", "in": "query", "required": False, "schema": {"type": "boolean"}},
        {"name": "sheet", "in": "query", "required": False, "schema": {"type": "string"}},
        {
            "name": "filename",
            "in": "query",
            "required": False,
            "description": "a raw body's file name (its suffix says its kind)",
            "schema": {"type": "string"},
        },
    ]
    form = {
        "type": "object",
        "required": ["file"],
        "properties": {
            "file": {"type": "string", "format": "binary"},
            "dry_run": {"type": "boolean"},
            "sheet": {"type": "string"},
        },
    }
    return {
        "post": {
            "summary": "Import an export of the hotline platform (.xlsx, .xls, .ods, .csv), as run_bot.py import does",
            "description": (
                "Authenticated by the API token (`Authorization: Bearer`) or by the hand-over's signature over the "
                "raw body. The file as multipart/form-data (`file`, with `dry_run` and `sheet` fields) or as the body "
                "itself; at most import.max_upload_bytes (64 MiB). Answered once the whole file is imported (about "
                "half a minute per 100,000 rows: allow a generous timeout), with the report the command line prints. "
                "Rows are committed 1,000 at a time: a 503 `import_interrupted` carries the report of what was "
                "committed, and posting the same file again carries on (committed rows come back unchanged)."
            ),
            "security": [{"apiToken": []}, *signed],
            "parameters": options,
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {"schema": form},
                    **{kind: binary for kind in CONTENT_TYPES},
                },
            },
            "responses": {
                "200": {
                    "description": "Imported (or checked, with dry_run); row errors are in the report (`ok` false)",
                    "content": _json("ImportReport"),
                },
                "400": _error("A malformed multipart body, or an option that is not true/false"),
                "401": _error("Neither a right API token nor a right signature"),
                "409": _error("Another import is running in this process"),
                "413": _error("The file is larger than import.max_upload_bytes"),
                "415": _error("Not a spreadsheet or CSV content type"),
                "422": _error("The file cannot be read, or its header lacks a required column: nothing was imported"),
                "503": _error(
                    "No API_TOKEN nor HOTLINE_INGEST_SECRET configured; or the database failed part-way "
                    "(`import_interrupted`, `details` the report of what was committed)"
                ),
            },
        }
    }


@functools.cache
def document() -> dict[str, Any]:
    signed: list[dict[str, list[str]]] = [{"hotlineSignature": [], "hotlineTimestamp": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hotline-bot",
            "version": "0.1.0",
            "description": (
                "Tickets from the 12345 hotline in, ticket state out. Hand-overs are signed: "
                f"`{TIMESTAMP_HEADER}` = Unix seconds, `{SIGNATURE_HEADER}` = `sha256=` + hex HMAC-SHA256 "
                "of `{timestamp}.{raw body}` keyed with HOTLINE_INGEST_SECRET; the timestamp must be within "
                "the configured window (default 300 s). The body must arrive within HTTP_BODY_TIMEOUT (default "
                "10 s; 408 after). Validation: a field takes `null` only where its schema lists it (then it means "
                "absent); dates (ISO 8601, without an offset Beijing time) lie from 2004-01-01 to 2098-12-31; each "
                "event type has the fields its `allOf` rule names; no text may hold U+0000."
            ),
        },
        "paths": {
            "/api/tickets": {
                "post": {
                    "summary": "Hand over one ticket, or a batch of up to 500 (idempotent by ticket_no)",
                    "security": signed,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/TicketPayload"},
                                        {"$ref": "#/components/schemas/TicketBatch"},
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "Created (persisted before this answer)",
                            "content": _json("UpsertResult"),
                        },
                        "200": {"description": "Known ticket updated, or unchanged", "content": _json("UpsertResult")},
                        **_SIGNED_ERRORS,
                    },
                }
            },
            "/api/tickets/{ticket_no}/events": {
                "post": {
                    "summary": (
                        "An update from the hotline: return-visit result, re-dispatch, cancellation, reopen, "
                        "extensions (延期): request, approve, reject; returns (退单): approve, reject"
                    ),
                    "description": (
                        "`type` names the update. `request_extension` needs `days` (working days, at most "
                        "deadlines.extension.max_days) and the reason in `note`; `approve_extension` may grant "
                        "fewer `days` than asked and moves the running handling deadlines that many working days; "
                        "`reject_extension` needs the reason in `note`. `approve_return` decides a unit's return "
                        "under review; with a `unit` it re-dispatches the ticket there in the same step (a ticket "
                        "returned too often goes to the center leads for 签派 instead). `reject_return` needs the "
                        "reason in `note`; the unit's deadlines run on. A refusal of the lifecycle is a 409 whose "
                        "`code` says why (`overdue`, `already_requested`, `extension_limit`, `nothing_to_approve`, "
                        "`invalid_state`, `unknown_unit` …)."
                    ),
                    "security": signed,
                    "parameters": [{"name": "ticket_no", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "requestBody": {"required": True, "content": _json("TicketEventPayload")},
                    "responses": {
                        "200": {"description": "Applied (or a repeat of an event already applied: duplicate=true)"},
                        "404": _error("No such ticket"),
                        "409": _error("The lifecycle does not allow this now; `code` says why"),
                        **_SIGNED_ERRORS,
                    },
                }
            },
            "/api/imports": _imports(signed),
            "/api/tickets/{ticket_no}": {
                "get": {
                    "summary": "A ticket: state, unit, every deadline, its history and who was told of its deadlines",
                    "security": [{"apiToken": []}],
                    "parameters": [
                        {"name": "ticket_no", "in": "path", "required": True, "schema": {"type": "string"}},
                        {
                            "name": "contact",
                            "in": "query",
                            "required": False,
                            "description": "`full` to include the citizen's unmasked name and phone",
                            "schema": {"enum": ["full"]},
                        },
                    ],
                    "responses": {
                        "200": {"description": "The ticket"},
                        "401": _error("Missing or wrong API token"),
                        "404": _error("No such ticket"),
                        "503": _error("API_TOKEN is not configured"),
                    },
                }
            },
            "/api/reports": {
                "get": {
                    "summary": "A period's report: each unit's rates (numerator, denominator, rate), counts, score and "
                    "rank, with the period before and a year earlier; as JSON, CSV (the unit table) or the workbook",
                    "security": [{"apiToken": []}],
                    "parameters": [
                        {
                            "name": "period",
                            "in": "query",
                            "required": False,
                            "description": "week, month (default), bimonth, quarter, year (the current one, to date); "
                            "last_week … last_year; YYYY-MM; or /报表's words (周, 上月, 双月 …)",
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "unit",
                            "in": "query",
                            "required": False,
                            "description": "a unit's code or name (default: every unit)",
                            "schema": {"type": "string"},
                        },
                        {"name": "format", "in": "query", "required": False, "schema": {"enum": list(REPORT_FORMATS)}},
                        {
                            "name": "details",
                            "in": "query",
                            "required": False,
                            "description": "`true`: the JSON also lists the tickets behind the figures (masked)",
                            "schema": {"enum": ["true", "false", "1", "0"]},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "The report",
                            "content": {
                                "application/json": {},
                                "text/csv": {},
                                REPORT_XLSX: {},
                            },
                        },
                        "400": _error(
                            "A bad period, format or details flag (the error's `details` names it), or a period not "
                            "begun"
                        ),
                        "401": _error("Missing or wrong API token"),
                        "404": _error("No such unit"),
                        "503": _error("API_TOKEN is not configured"),
                    },
                }
            },
            "/livez": {
                "get": {
                    "summary": "Liveness: the process works (nothing outside it is asked)",
                    "responses": {"200": {"description": "Alive"}},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness: the database answers; also Redis (when configured), the calendar coverage "
                    "of the next 30 days, the long connection and the deadline engine",
                    "responses": {
                        "200": {
                            "description": "Ready: status ok, or degraded (Redis unreachable: sends go on under this "
                            "process's share of each limit; a calendar warning; the long connection or the deadline "
                            "engine down)"
                        },
                        "503": {"description": "Not ready: the database is unreachable"},
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "The same as /readyz (its earlier name)",
                    "responses": {
                        "200": {"description": "Ready (status ok or degraded)"},
                        "503": {"description": "Not ready: the database is unreachable"},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics; with METRICS_TOKEN set, Authorization: Bearer <token>",
                    "responses": {
                        "200": {"description": "Prometheus' text exposition format"},
                        "401": {"description": "METRICS_TOKEN is set and the request did not carry it"},
                    },
                }
            },
            "/api/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "JSON"}}}},
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "hotlineSignature": {"type": "apiKey", "in": "header", "name": SIGNATURE_HEADER},
                "hotlineTimestamp": {"type": "apiKey", "in": "header", "name": TIMESTAMP_HEADER},
                "apiToken": {"type": "http", "scheme": "bearer"},
            },
        },
    }


@routes.get("/api/openapi.json")
async def openapi_json(_request: web.Request) -> web.Response:
    return json_response(document())
