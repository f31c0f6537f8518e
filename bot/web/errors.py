"""Every HTTP error is a JSON body: ``{"error": {"code": …, "message": …, "details": …}}``."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bot.web import protocol
from bot.web.keys import LIVENESS
from store.liveness import unreachable

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)


def json_response(data: Any, status: int = 200) -> web.Response:
    """JSON with Chinese text as text (not \\u escapes)."""
    return web.json_response(data, status=status, dumps=_dumps)


def json_error(status: int, code: str, message: str, details: Any = None) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return json_response({"error": error}, status=status)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details

    def response(self) -> web.Response:
        return json_error(self.status, self.code, self.message, self.details)


_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        code = _CODES.get(exc.status, "http_error")
        message = exc.reason
        if exc.status == 413:
            message = "the request body is too large"
        response = json_error(exc.status, code, message)
        for name in ("Allow",):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except Exception as exc:
        if protocol.client_went_away(request, exc):
            return protocol.client_closed(request)
        if await _store_away(request, exc):
            return _store_unavailable()
        log.exception("unhandled error", extra={"path": request.path, "method": request.method})
        return json_error(500, "internal_error", "an internal error occurred; it has been logged")


async def _store_away(request: web.Request, exc: Exception) -> bool:
    """Whether ``exc`` is the database being away; the outage is then logged once by the liveness's watch, not as a
    traceback per request."""
    liveness = request.app.get(LIVENESS)
    if liveness is None:
        return unreachable(exc)
    return await liveness.database.confirms(exc)


def _store_unavailable() -> web.Response:
    """The database is away: 503, nothing was stored, the sender may try again (WeCom and the hotline do)."""
    response = json_error(503, "store_unavailable", "the database is unreachable; nothing was stored, try again")
    response.headers["Retry-After"] = "5"
    return response
