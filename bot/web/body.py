"""Reading a request body whole: within a size limit and a deadline.

A sender that trickles its body (a few bytes every few seconds) would otherwise hold its connection, and the
handler waiting for it, for as long as it likes: the whole body must arrive within ``HTTP_BODY_TIMEOUT`` seconds
(:attr:`config.settings.Settings.body_timeout`), or it is answered 408.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from bot.web.errors import ApiError
from bot.web.keys import SETTINGS

log = logging.getLogger(__name__)

# an export's upload (the board's, the imports API's) by a caller who has said who it is: a large file over an
# office's or a mobile line may take minutes
UPLOAD_SECONDS = 600.0


async def read_body(request: web.Request, limit: int, *, within: float | None = None) -> bytes:
    """The body; 413 once it exceeds ``limit`` (at once by its ``Content-Length``, else while reading), 408 when it
    has not all arrived within the body timeout (``within`` seconds instead, for a person's upload over a slow
    line). An empty body is ``b""``."""
    length = request.content_length
    if length is not None and length > limit:
        raise ApiError(413, "body_too_large", f"the request body is at most {limit} bytes")
    if request.content.is_eof():
        # all of it has arrived (a small body comes with its headers): nothing to wait for
        whole = request.content.read_nowait(limit + 1)
        if len(whole) > limit:
            raise ApiError(413, "body_too_large", f"the request body is at most {limit} bytes")
        return whole
    timeout = within if within is not None else request.app[SETTINGS].body_timeout
    body = bytearray()
    try:
        async with asyncio.timeout(timeout):
            while chunk := await request.content.read(limit + 1 - len(body)):
                body += chunk
                if len(body) > limit:
                    raise ApiError(413, "body_too_large", f"the request body is at most {limit} bytes")
    except TimeoutError:
        log.warning(
            "request body not received within %g s",
            timeout,
            extra={"path": request.path, "received": len(body), "declared": length},
        )
        raise ApiError(408, "body_timeout", f"the request body did not arrive within {timeout:g} s") from None
    return bytes(body)
