"""The fake served over HTTP: the routes under /cgi-bin/, injected faults, per-path counters.

Every answer is HTTP 200 with JSON carrying ``errcode`` and ``errmsg``, as WeCom answers API errors; WeCom also
sets the ``error-code``/``error-msg`` headers, and so does the fake. Only the ``server_error`` fault answers
HTTP 500 (with an HTML page, as WeCom's gateway does), and ``drop``/``drop_after`` close the connection.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bot.sandbox.fake import app_api, appchat_api, media_api, oauth_api, robot_api
from bot.sandbox.fake import errors as E
from bot.sandbox.fake.core import FakeWeCom
from bot.sandbox.fake.errors import ApiError
from bot.sandbox.fake.model import Received

FAKE = web.AppKey("wecom_fake", FakeWeCom)
MAX_BODY = 32 * 1024 * 1024  # a 20 MB upload, a 2 MB image in base64

Handler = Callable[[FakeWeCom, web.Request], Awaitable[dict[str, Any]]]

_FAULT_CODES = {
    "busy": E.BUSY,
    "rate_limited": E.FREQUENCY_LIMIT,
    "concurrency": E.CONCURRENCY_LIMIT,
    "token_expired": E.TOKEN_EXPIRED,
    "invalid_token": E.INVALID_TOKEN,
    "ip_not_trusted": E.IP_NOT_TRUSTED,
}
_GATEWAY_500 = "<html>\r\n<head><title>500 Internal Server Error</title></head>\r\n<body>\r\n<center><h1>500 Internal Server Error</h1></center>\r\n<hr><center>stgw</center>\r\n</body>\r\n</html>\r\n"  # noqa: E501

ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/cgi-bin/gettoken", app_api.gettoken),
    ("GET", "/cgi-bin/auth/getuserinfo", oauth_api.getuserinfo),
    ("GET", "/cgi-bin/user/getuserinfo", oauth_api.getuserinfo_legacy),
    ("POST", "/cgi-bin/media/upload", media_api.upload),
    ("POST", "/cgi-bin/message/send", app_api.message_send),
    ("POST", "/cgi-bin/message/update_template_card", app_api.update_template_card),
    ("POST", "/cgi-bin/appchat/create", appchat_api.create),
    ("POST", "/cgi-bin/appchat/update", appchat_api.update),
    ("GET", "/cgi-bin/appchat/get", appchat_api.get),
    ("POST", "/cgi-bin/appchat/send", appchat_api.send),
    ("POST", "/cgi-bin/webhook/send", robot_api.webhook_send),
    ("POST", "/cgi-bin/webhook/upload_media", robot_api.upload_media),
    ("POST", "/cgi-bin/aibot/response", robot_api.aibot_response),
]


def _json(payload: dict[str, Any]) -> web.Response:
    headers = {}
    if payload["errcode"] != 0:
        headers = {"error-code": str(payload["errcode"]), "error-msg": str(payload["errmsg"])}
    return web.Response(
        body=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
        content_type="application/json",
        charset="UTF-8",
        headers=headers,
    )


def _hang_up(request: web.Request) -> web.Response:
    """Close the connection without a word; the client sees the server disconnect."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response()


async def _record(fake: FakeWeCom, request: web.Request) -> None:
    if not fake.received.maxlen:
        return
    if request.content_type.startswith("multipart/"):
        fake.received.append(Received(path=request.path, query=dict(request.query), body=None, raw=b""))
        return
    raw = await request.read()
    try:
        body = json.loads(raw) if raw else None
    except (UnicodeDecodeError, ValueError):
        body = None
    fake.received.append(Received(path=request.path, query=dict(request.query), body=body, raw=raw))


def _endpoint(fake: FakeWeCom, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        stats = fake.stats[request.path]
        stats.requests += 1
        await _record(fake, request)
        injected = fake.take_fault(request.path)
        fault = injected.fault if injected is not None else None
        payload: dict[str, Any] | None = None
        if isinstance(fault, int):
            payload = ApiError(fault).body(request.remote)
        elif injected is not None and fault == "slow":
            await asyncio.sleep(injected.delay if injected.delay is not None else fake.slow_delay)
        elif fault == "drop":
            stats.errors += 1
            return _hang_up(request)
        elif fault == "server_error":
            stats.errors += 1
            return web.Response(status=500, text=_GATEWAY_500, content_type="text/html")
        elif fault == "request_timeout":
            stats.errors += 1
            return web.Response(status=408, text="<html>408 Request Timeout</html>", content_type="text/html")
        elif injected is not None and fault == "too_many_requests":
            stats.errors += 1
            retry_after = f"{injected.delay if injected.delay is not None else 1:g}"
            return web.Response(status=429, headers={"Retry-After": retry_after})
        elif fault in _FAULT_CODES:
            payload = ApiError(_FAULT_CODES[fault]).body(request.remote)
        if payload is None:
            try:
                payload = await handler(fake, request)
            except ApiError as error:
                payload = error.body(request.remote)
        if fault == "drop_after":
            stats.errors += 1
            return _hang_up(request)
        if payload["errcode"] != 0:
            stats.errors += 1
        return _json(payload)

    return endpoint


def make_app(fake: FakeWeCom) -> web.Application:
    """A new aiohttp application serving ``fake``."""
    app = web.Application(client_max_size=MAX_BODY)
    app[FAKE] = fake
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, _endpoint(fake, handler))
    oauth_api.add_pages(app, fake)  # the sign-in pages a browser opens
    # the intelligent robot's long connection (WeCom's wss://openws.work.weixin.qq.com has no path)
    app.router.add_get("/", fake.aibot.handle)
    app.on_shutdown.append(fake.aibot.close_all)
    return app


async def serve(fake: FakeWeCom, host: str = "127.0.0.1", port: int = 0) -> web.AppRunner:
    """Serve ``fake`` on ``host:port`` (port 0: any free one) and set ``fake.base_url``; ``await runner.cleanup()``
    stops it."""
    runner = web.AppRunner(make_app(fake), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    if ":" in bound_host:
        bound_host = f"[{bound_host}]"
    fake.base_url = f"http://{bound_host}:{bound_port}"
    return runner
