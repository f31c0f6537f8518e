"""The hotline bridge over HTTP: tickets in (signed), updates in (signed), ticket state out (API token)."""

from __future__ import annotations

import hmac
import json
import re
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from bot.domain.lifecycle import Action, ActionRequest, Solved, TransitionRefused
from bot.domain.masking import Citizen, mask_address, mask_name, mask_phone, mask_text
from bot.domain.records import RepeatLink, Ticket
from bot.hotline.schemas import (
    DAYS_ONLY_WITH,
    EVENT_NEEDS,
    TICKET_NO,
    TicketBatch,
    TicketEventPayload,
    TicketPayload,
)
from bot.hotline.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError, verify
from bot.services.tickets import HOTLINE, TicketNotFound
from bot.web.body import read_body
from bot.web.errors import ApiError, json_response
from bot.web.keys import CLOCK, CONFIG, INGEST, SETTINGS, TICKETS
from bot.web.metrics import METRICS

routes = web.RouteTableDef()
TICKET_NO_RE = re.compile(TICKET_NO)

EVENT_ACTIONS = {
    "visit_result": Action.VISIT,
    "redispatch": Action.REDISPATCH,
    "cancel": Action.CANCEL,
    "reopen": Action.REOPEN,
    "request_extension": Action.REQUEST_EXTENSION,
    "approve_extension": Action.APPROVE_EXTENSION,
    "reject_extension": Action.REJECT_EXTENSION,
    "approve_return": Action.APPROVE_RETURN,
    "reject_return": Action.REJECT_RETURN,
    "request_exclusion": Action.REQUEST_EXCLUSION,
    "approve_exclusion": Action.APPROVE_EXCLUSION,
    "reject_exclusion": Action.REJECT_EXCLUSION,
}


def _validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": ".".join(str(p) for p in err["loc"]), "message": err["msg"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def check_signature(request: web.Request, secret: str, body: bytes) -> None:
    """A 401 (counted in the metrics) unless ``body`` carries the hotline's valid, fresh signature, made with the
    secret or, while it is being replaced, with ``HOTLINE_INGEST_SECRET_PREVIOUS``."""
    previous = request.app[SETTINGS].hotline_ingest_secret_previous
    secrets = [secret] if previous is None else [secret, previous.get_secret_value()]
    try:
        for n, key in enumerate(secrets, 1):
            try:
                verify(
                    key,
                    request.headers.get(TIMESTAMP_HEADER),
                    request.headers.get(SIGNATURE_HEADER),
                    body,
                    now=request.app[CLOCK].now().timestamp(),
                    window=request.app[CONFIG].hotline.ingest_window_seconds,
                )
                break
            except SignatureError as exc:
                if exc.code != "bad_signature" or n == len(secrets):
                    raise
    except SignatureError as exc:
        request.app[METRICS].rejected(exc.code)
        raise ApiError(401, exc.code, exc.message) from None


async def _signed_json(request: web.Request) -> tuple[bytes, Any]:
    """The raw body, verified against its signature, and its JSON."""
    settings = request.app[SETTINGS]
    config = request.app[CONFIG]
    secret = settings.hotline_ingest_secret
    if secret is None:
        raise ApiError(503, "ingest_disabled", "HOTLINE_INGEST_SECRET is not configured: ingest is disabled")
    body = await read_body(request, config.hotline.max_body_bytes)
    check_signature(request, secret.get_secret_value(), body)
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_no_constants)
        json.dumps(data, ensure_ascii=False).encode("utf-8")  # "\ud800" alone decodes to a lone surrogate: no text
        return body, data
    except UnicodeEncodeError:
        request.app[METRICS].rejected("invalid_json")
        raise ApiError(400, "invalid_json", "a string holds a lone surrogate escape (\\ud800-\\udfff)") from None
    except UnicodeDecodeError:
        request.app[METRICS].rejected("invalid_json")
        raise ApiError(400, "invalid_json", "the body must be JSON in UTF-8") from None
    except (ValueError, RecursionError) as exc:
        request.app[METRICS].rejected("invalid_json")
        detail = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {detail}") from None


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _ticket_no(request: web.Request) -> str:
    """The ticket number in the path; one that cannot exist is simply not found."""
    ticket_no = request.match_info["ticket_no"]
    if not TICKET_NO_RE.match(ticket_no):
        raise ApiError(404, "ticket_not_found", f"no ticket {ticket_no[:64]}")
    return ticket_no


@routes.post("/api/tickets")
async def post_tickets(request: web.Request) -> web.Response:
    _, data = await _signed_json(request)
    labels = request.app[CONFIG].kind_labels
    try:
        if isinstance(data, dict) and "tickets" in data:
            payloads = TicketBatch.model_validate(data).tickets
            single = False
        else:
            payloads = [TicketPayload.model_validate(data)]
            single = True
    except ValidationError as exc:
        request.app[METRICS].rejected("validation_error")
        raise ApiError(422, "validation_error", "the ticket is not valid", _validation_details(exc)) from None
    inputs, problems = [], []
    for index, payload in enumerate(payloads):
        try:
            inputs.append(payload.to_input(labels))
        except ValueError as exc:
            loc = "urgency" if single else f"tickets.{index}.urgency"
            problems.append({"loc": loc, "message": str(exc)})
    if problems:
        request.app[METRICS].rejected("validation_error")
        raise ApiError(422, "validation_error", "the ticket is not valid", problems)
    outcomes = await request.app[INGEST].submit_inputs(inputs, source="api")
    request.app[METRICS].ingested(outcomes)
    results = [
        {
            "ticket_no": o.ticket_no,
            "status": o.status,
            "state": o.state,
            "unit": o.unit_code,
            "changed": list(o.changed),
        }
        for o in outcomes
    ]
    if single:
        return json_response(results[0], status=201 if results[0]["status"] == "created" else 200)
    status = 201 if any(r["status"] == "created" for r in results) else 200
    return json_response({"results": results}, status=status)


@routes.post("/api/tickets/{ticket_no}/events")
async def post_ticket_event(request: web.Request) -> web.Response:
    body, data = await _signed_json(request)
    ticket_no = _ticket_no(request)
    try:
        event = TicketEventPayload.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "validation_error", "the event is not valid", _validation_details(exc)) from None
    at = event.at or request.app[CLOCK].now()
    req = ActionRequest(
        action=EVENT_ACTIONS[event.type],
        actor=HOTLINE,
        at=at,
        note=event.note,
        unit=event.unit,
        result=event.result,
        by_hotline=True,
        days=event.days,
        solved=Solved(event.solved) if event.solved else None,
    )
    _check_event(event, request.app[CONFIG].deadlines.extension.max_days)
    try:
        outcome = await request.app[TICKETS].act(
            ticket_no, req, dedup=("hotline", f"{ticket_no}:{event.event_id}", body.decode())
        )
    except TicketNotFound as exc:
        raise ApiError(404, "ticket_not_found", f"no ticket {exc.ticket_no}") from None
    except TransitionRefused as exc:
        raise ApiError(409, exc.code, exc.message) from None
    return json_response(
        {
            "ticket_no": outcome.ticket_no,
            "event_id": event.event_id,
            "state": outcome.to_state.value,
            "duplicate": outcome.duplicate,
        }
    )


def _check_event(event: TicketEventPayload, max_days: int) -> None:
    """An event carries what its type needs (:data:`EVENT_NEEDS`, as the OpenAPI document says: not null, not
    blank), ``days`` only with an extension request or approval, and a request at most ``max_days``."""
    problems = []
    for name in EVENT_NEEDS.get(event.type, ()):
        value = getattr(event, name)
        if value is None or (isinstance(value, str) and not value.strip()):
            problems.append({"loc": name, "message": "required: the reason" if name == "note" else "required"})
    if event.solved is not None and event.type != "visit_result":
        problems.append({"loc": "solved", "message": f"not used by {event.type}"})
    if event.days is not None:
        if event.type not in DAYS_ONLY_WITH:
            problems.append({"loc": "days", "message": f"not used by {event.type}"})
        elif event.type == "request_extension" and event.days > max_days:
            problems.append({"loc": "days", "message": f"at most {max_days} working days"})
    if problems:
        problems.sort(key=lambda p: p["loc"])
        raise ApiError(422, "validation_error", f"{event.type} is not complete", problems)


def authorize(request: web.Request) -> None:
    """The API token (or, while it is being replaced, ``API_TOKEN_PREVIOUS``) as a bearer token, or a 401."""
    settings = request.app[SETTINGS]
    token = settings.api_token
    if token is None:
        raise ApiError(503, "api_disabled", "API_TOKEN is not configured: the read API is disabled")
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    tokens = [t.get_secret_value().encode() for t in (token, settings.api_token_previous) if t is not None]
    # every token compared, so that the time taken does not tell which matched
    matched = [hmac.compare_digest(value.strip().encode(), t) for t in tokens]
    if scheme.lower() != "bearer" or not any(matched):
        raise ApiError(401, "unauthorized", "send the API token as 'Authorization: Bearer <API_TOKEN>'")


def _masked(value: Any, citizen: Citizen) -> Any:
    """A history entry's ``data`` with every text in it masked (reasons, results, rejections, whatever it holds)."""
    if isinstance(value, str):
        return mask_text(value, citizen)
    if isinstance(value, dict):
        return {key: _masked(item, citizen) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item, citizen) for item in value]
    return value


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


async def _repeat(request: web.Request, t: Ticket) -> dict[str, Any]:
    """重复诉求 as the bot found it (``is_repeat`` beside it is the platform's own flag): whether the ticket repeats
    earlier ones of the same matter within the window, which one it is (``nth``), the one just before it and what
    matched it, and the earlier and later tickets with their state and satisfaction. Numbers only, so the same
    masked or not."""
    earlier, later = await request.app[TICKETS].repeats_of(t)
    return {
        "found": t.repeat_count > 1,
        "nth": t.repeat_count,
        "previous": t.repeat_of,
        "reason": t.repeat_reason,
        "window": str(request.app[CONFIG].repeats.window),
        "earlier": [_link(link) for link in earlier],
        "later": [_link(link) for link in later],
    }


def _link(link: RepeatLink) -> dict[str, Any]:
    return {
        "ticket_no": link.ticket_no,
        "dispatched_at": _iso(link.dispatched_at),
        "state": link.state,
        "satisfaction": link.satisfaction,
        "reason": link.reason,
    }


@routes.get("/api/tickets/{ticket_no}")
async def get_ticket(request: web.Request) -> web.Response:
    authorize(request)
    ticket_no = _ticket_no(request)
    try:
        detail = await request.app[TICKETS].get(ticket_no)
    except TicketNotFound:
        raise ApiError(404, "ticket_not_found", f"no ticket {ticket_no}") from None
    now = request.app[CLOCK].now()
    full = request.query.get("contact") == "full"
    t = detail.ticket
    citizen = Citizen.of(t)
    if full:
        await request.app[TICKETS].record_access(t, actor="api", what="GET /api/tickets?contact=full")
    ticket = {
        "ticket_no": t.ticket_no,
        "state": t.state,
        "kind": t.kind,
        "request_type": t.request_type,
        "category": t.category if full or not t.category else mask_text(t.category, citizen),
        "area": t.area,
        "title": t.title if full or not t.title else mask_text(t.title, citizen),
        "content": t.content if full else mask_text(t.content, citizen),
        "address": t.address if full or not t.address else mask_address(t.address),
        "citizen_name": t.citizen_name if full else mask_name(t.citizen_name),
        "citizen_phone": t.citizen_phone if full else mask_phone(t.citizen_phone),
        "unit": t.unit_code,
        "handler": t.handler_userid,
        "evaluation": t.evaluation,
        "satisfaction": t.satisfaction,
        # 实际解决: as the unit declared it, and as the citizen saw it at the visit; the visit's note
        "solved": t.solved,
        "visit_solved": t.visit_solved,
        "visit_note": t.visit_note if full or not t.visit_note else mask_text(t.visit_note, citizen),
        "returns": t.return_count,
        "redispatches": t.redispatch_count,
        "rehandles": t.rehandle_count,
        "extension": {
            "pending": None
            if t.extension_days is None
            else {
                "days": t.extension_days,
                "reason": t.extension_reason if full else mask_text(t.extension_reason or "", citizen),
                "requested_by": t.extension_requested_by,
                "requested_at": _iso(t.extension_requested_at),
            },
            "approved": t.extension_count,
        },
        # 退单: the pending return (None when none is pending); signed_by is None while it waits for the head
        "return": None
        if t.return_requested_at is None
        else {
            "reason": t.return_reason if full else mask_text(t.return_reason or "", citizen),
            "suggested_unit": t.return_unit if full or not t.return_unit else mask_text(t.return_unit, citizen),
            "requested_by": t.return_requested_by,
            "requested_at": _iso(t.return_requested_at),
            "signed_by": t.return_signed_by,
        },
        "is_repeat": t.is_repeat,
        "repeat": await _repeat(request, t),
        "is_media": t.is_media,
        "routed_by": t.routed_by,
        "hotline_unit": t.hotline_unit,
        "dispatched_at": _iso(t.dispatched_at),
        "received_at": _iso(t.received_at),
        "updated_at": _iso(t.updated_at),
        "closed_at": _iso(t.closed_at),
        "hotline_deadline": _iso(t.hotline_deadline),
    }
    deadlines = [
        {
            "name": d.name,
            "cycle": d.cycle,
            "policy": d.policy,
            "started_at": _iso(d.started_at),
            "due_at": _iso(d.due_at),
            "status": d.status,
            "met_at": _iso(d.met_at),
            "extended_days": d.extended_days,
            "overdue": d.status == "open" and d.due_at < now,
            "late": d.status == "met" and d.met_at is not None and d.met_at > d.due_at,
        }
        for d in detail.deadlines
    ]
    history = [
        {
            "at": _iso(h.at),
            "actor": h.actor,
            "action": h.action,
            "from_state": h.from_state,
            "to_state": h.to_state,
            "note": h.note if full or not h.note else mask_text(h.note, citizen),
            "data": h.data if full else _masked(h.data, citizen),
        }
        for h in detail.history
    ]
    # who was told of its deadlines: staff and channels only, nothing of the citizen (the same in either view)
    notifications = [
        {
            "at": _iso(n.at),
            "kind": n.kind,
            "level": n.level,
            "deadline": n.deadline_name,
            "due_at": _iso(n.due_at),
            "unit": n.unit_code,
            "recipient_kind": n.recipient_kind,
            "recipient": n.recipient,
            "channel": n.channel,
            "outbox_id": n.outbox_id,
        }
        for n in detail.notifications
    ]
    return json_response({"ticket": ticket, "deadlines": deadlines, "history": history, "notifications": notifications})
