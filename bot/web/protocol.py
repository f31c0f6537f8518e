"""Requests that are the client's doing, not ours: a malformed request and a client that went away.

aiohttp's connection handler logs a request it cannot parse (a bad request line, bad headers, a bad
``Content-Length``) through ``logger.exception``: an ERROR with a traceback for every stray or hostile request.
:data:`PROTOCOL_LOG` (handed to aiohttp as the ``logger`` of its handler, see ``bot.app``) makes that one WARNING
line; anything else it logs stays an ERROR with its traceback.

A client that closes its connection before its request has been read (mid-body) is no server error either: it is
logged as one WARNING line and counted in ``/metrics`` under :data:`CLIENT_CLOSED`, nginx's 499 ("client closed
request"), a status that never goes over the wire.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger(__name__)

CLIENT_CLOSED = 499


class _ProtocolLog(logging.LoggerAdapter[logging.Logger]):
    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            # aiohttp calls: exception("Error handling request from %s", request.remote, exc_info=exc)
            remote = args[0] if args else None
            reason = (exc_info.message or type(exc_info).__name__).strip().splitlines()[0]
            self.logger.warning(
                "malformed HTTP request from %s: %s", remote, reason, extra={"status": exc_info.code or 400}
            )
            return
        self.logger.exception(msg, *args, exc_info=exc_info, **kwargs)


PROTOCOL_LOG = _ProtocolLog(logging.getLogger("aiohttp.server"))


def client_went_away(request: web.Request, exc: BaseException) -> bool:
    """``exc`` (raised while handling ``request``) says only that the client closed its connection."""
    return isinstance(exc, ConnectionResetError) and (request.transport is None or request.transport.is_closing())


def client_closed(request: web.Request) -> web.Response:
    """The answer to a request whose client went away: nobody reads it, the metrics count it as 499."""
    log.warning(
        "client closed the connection before its request was read",
        extra={"path": request.path, "method": request.method, "status": CLIENT_CLOSED},
    )
    return web.Response(status=CLIENT_CLOSED)
