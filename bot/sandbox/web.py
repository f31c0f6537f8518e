"""The sandbox's page and its small JSON API, under ``/sandbox/``.

``GET /sandbox/`` is one self-contained HTML file (``static/index.html``: inline CSS and vanilla JS, no build step,
nothing from a CDN) with the state embedded as JSON. The page then long-polls ``GET /sandbox/api/events?after=N``:
the server holds the request up to 25 s until there is something after item N, so an idle page costs a request
every 25 s, not one a second. ``POST /sandbox/api/say`` (a member types), ``/click`` (a member clicks a card
button) and ``/demo`` (demo tickets) act through the real endpoints over HTTP; their errors are JSON in the API's
shape (``bot.web.errors``), and nothing is sent when the input is refused.

Requests are checked before anything happens, each check a 403 (JSON for the API, a short page for ``/sandbox/``):

* **The access token.** It is random at every start and written once, in the start log's link
  ``/sandbox/?token=…``. The page accepts it in that query (or the ``X-Sandbox-Token`` header, or the cookie) and
  answers with it as an ``HttpOnly; SameSite=Strict`` cookie on ``Path=/sandbox``; the page's script strips the
  query from the address bar. The API accepts it only in the cookie (the page's requests) or the
  ``X-Sandbox-Token`` header (scripts), never in a URL. A cookie rather than the token in the page: the page can
  be reloaded from ``/sandbox/``; no script, not even one smuggled in through a rendering bug, can read the token;
  and browsers do not send it with requests from other sites. It is compared in constant time, never echoed, and
  never in a JSON answer or a log line other than the start line.
* **Only from this machine** (unless ``SANDBOX=public``): the TCP peer must be a loopback address, no proxy header
  (``Forwarded``, ``X-Forwarded-*``, ``X-Real-IP``) may be present, and the ``Host`` must be a loopback name (a web
  page elsewhere cannot reach it through DNS rebinding). A reverse proxy on the same machine connects from
  loopback and may forward ``Host: 127.0.0.1:8080`` and no proxy header at all: that is why the token is needed.
* **A POST** must be ``application/json`` (a cross-site form cannot send that without a CORS preflight, which is
  never granted), its ``Origin``, when sent, must be this host, and its body at most 16 KiB (413).

The page is sent with a Content-Security-Policy that lets only its own inline script and style run, so even a
rendering bug could not run a script that came in a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import re
import secrets
from functools import cache
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from bot.sandbox.chats import Chat
from bot.sandbox.demo import MAX_COUNT
from bot.sandbox.embed import Sandbox
from bot.sandbox.wiring import decide, is_loopback
from bot.web.errors import ApiError, json_response
from bot.web.keys import CLOCK, SETTINGS
from bot.wecom.longconn import AIBOT_CONNECTION
from config.model import BotConfig
from config.settings import Settings

SANDBOX = web.AppKey("sandbox", Sandbox)

STATIC = Path(__file__).resolve().parent / "static"
MAX_BODY = 16 * 1024
TEXT_MAX_BYTES = 2048  # WeCom's limit for a text message
WAIT_DEFAULT = 25.0
WAIT_MAX = 30.0
ANNOUNCE_WAIT = 5.0  # seconds the link waits for the groups' long connection to subscribe
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
TOKEN_QUERY = "token"  # the start log's link: /sandbox/?token=…
TOKEN_HEADER = "X-Sandbox-Token"  # scripts
# a request with one of these came through a proxy: refused unless SANDBOX=public
PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-IP")

routes = web.RouteTableDef()


def attach(app: web.Application, settings: Settings, config: BotConfig) -> Settings:
    """Embeds the sandbox when :func:`bot.sandbox.wiring.decide` says so: the fake WeCom starts with the app, the
    bot uses its credentials and ``/sandbox/`` is served. Returns the settings the bot runs with (the sandbox's
    WeCom credentials, or ``settings`` unchanged)."""
    decision = decide(settings)
    if decision == "refused":
        app.router.add_route("*", "/sandbox/{tail:.*}", _refused)
        return settings
    if decision == "off":
        return settings
    sandbox = Sandbox(settings, config, app[CLOCK])
    app[SANDBOX] = sandbox
    app[SETTINGS] = sandbox.settings
    app.cleanup_ctx.append(sandbox.serve)  # the fake WeCom is up before the bot's workers, down after them
    app.on_startup.append(_announce)  # after every part of the app has started (cleanup_ctx runs first)
    app.on_shutdown.append(_shutdown)
    app.add_routes(routes)
    return sandbox.settings


async def _announce(app: web.Application) -> None:
    connection = app.get(AIBOT_CONNECTION)
    if connection is not None:
        # the groups' long connection logs its subscription; the link comes after it, among the start's last lines
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ANNOUNCE_WAIT):
                await connection.wait_subscribed()
    app[SANDBOX].announce()


async def _shutdown(app: web.Application) -> None:
    await app[SANDBOX].stop()


# -- guards --------------------------------------------------------------------------------------------------------


def _sandbox(request: web.Request, *, page: bool = False) -> Sandbox:
    """The sandbox, once the request passed the checks (see the module's docstring); ``page``: the page's own
    request, which may bring the token in its query."""
    sandbox = request.app[SANDBOX]
    if not sandbox.public:
        proxied = next((name for name in PROXY_HEADERS if name in request.headers), None)
        if proxied is not None:
            raise ApiError(
                403, "proxied", f"the sandbox is not served through a proxy ({proxied}); SANDBOX=public allows it"
            )
        if not is_loopback(request.remote or ""):
            raise ApiError(403, "forbidden_peer", "the sandbox answers only connections from this machine")
        host = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
        if not is_loopback(host.strip("[]")):
            raise ApiError(403, "forbidden_host", "the sandbox answers only on 127.0.0.1 or localhost")
    _check_token(request, sandbox, page=page)
    sandbox.learn_url(request)
    return sandbox


def _check_token(request: web.Request, sandbox: Sandbox, *, page: bool) -> None:
    """The access token: the first of the page's query, the header and the cookie that is there must be right."""
    given = request.query.get(TOKEN_QUERY) if page else None
    if given is None:
        given = request.headers.get(TOKEN_HEADER)
    if given is None:
        given = request.cookies.get(sandbox.cookie)
    if not given:
        raise ApiError(403, "token_required", "open the sandbox with the link from the bot's start log (?token=…)")
    if not hmac.compare_digest(given.encode("utf-8", "replace"), sandbox.token.encode("ascii")):
        raise ApiError(403, "invalid_token", "wrong access token: use the link from the bot's latest start log")


async def _read_body(request: web.Request) -> bytes:
    """The whole body, however many pieces it arrives in; 413 once it exceeds :data:`MAX_BODY` (at once by its
    ``Content-Length``, else while reading)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, "body_too_large", f"at most {MAX_BODY} bytes")
    body = bytearray()
    while chunk := await request.content.read(MAX_BODY + 1 - len(body)):
        body += chunk
        if len(body) > MAX_BODY:
            raise ApiError(413, "body_too_large", f"at most {MAX_BODY} bytes")
    return bytes(body)


async def _json(request: web.Request) -> dict[str, Any]:
    """The POST body as a JSON object: 415 unless JSON, 403 from another origin, 413 when large, 400 if malformed."""
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send JSON with Content-Type: application/json")
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        raise ApiError(403, "forbidden_origin", "requests from another site are not accepted")
    body = await _read_body(request)
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return data


def _field(data: dict[str, Any], name: str, *, empty: bool = False) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not (value or empty):
        raise ApiError(422, "validation_error", f'"{name}" is required, as a string', [{"loc": name}])
    return value


def _member(sandbox: Sandbox, userid: str, chat: Chat) -> str:
    member = sandbox.config.member(userid)
    if member is None:
        raise ApiError(422, "unknown_member", f"no member {userid[:64]!r} in the configuration")
    if member.userid not in chat.members:
        raise ApiError(422, "not_in_chat", f"{member.name} is not in {chat.title}")
    return member.userid


def _text(value: str) -> str:
    text = value.strip()
    if not text:
        raise ApiError(422, "empty_text", "type something first")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise ApiError(422, "invalid_text", "the text is not valid Unicode") from None
    if size > TEXT_MAX_BYTES:
        raise ApiError(422, "text_too_long", f"a message is at most {TEXT_MAX_BYTES} bytes (this one: {size})")
    if _CONTROL.search(text):
        raise ApiError(422, "invalid_text", "the text contains control characters")
    return text


# -- the page ------------------------------------------------------------------------------------------------------


@cache
def _template() -> str:
    return (STATIC / "index.html").read_text(encoding="utf-8")


def _script_json(data: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``: no ``<``, ``>``, ``&`` or line separators."""
    text = json.dumps(data, ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028")):
        text = text.replace(char, escaped)
    return text.replace("\u2029", "\\u2029")


_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@routes.get("/sandbox")
async def _redirect(request: web.Request) -> web.Response:
    query = request.rel_url.raw_query_string  # the token of the start log's link, when it is there
    raise web.HTTPFound(f"/sandbox/?{query}" if query else "/sandbox/")


_FORBIDDEN_HTML = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>无法打开沙箱</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto; padding: 0 1em; line-height: 1.6">
<h1>无法打开企业微信沙箱</h1>
<p>请使用机器人启动日志中的链接打开沙箱：<code>sandbox: open http://…/sandbox/?token=…</code>。
每次启动都会生成新的链接；沙箱只接受本机的直接访问。</p>
<p lang="en">Open the sandbox with the link from the bot's start log (<code>sandbox: open …/sandbox/?token=…</code>);
every start makes a new one. The sandbox answers only direct requests from this machine.</p>
<p lang="en"><small>__REASON__</small></p>
</body></html>
"""


def _forbidden_page(error: ApiError) -> web.Response:
    html = _FORBIDDEN_HTML.replace("__REASON__", escape(f"{error.code}: {error.message}"))
    headers = {**_SECURITY_HEADERS, "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'"}
    return web.Response(status=error.status, text=html, content_type="text/html", charset="utf-8", headers=headers)


@routes.get("/sandbox/")
async def page(request: web.Request) -> web.Response:
    try:
        sandbox = _sandbox(request, page=True)
    except ApiError as exc:
        return _forbidden_page(exc)
    nonce = secrets.token_urlsafe(16)
    html = _template().replace("__NONCE__", nonce).replace("__STATE__", _script_json(sandbox.state()))
    csp = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    headers = {**_SECURITY_HEADERS, "Content-Security-Policy": csp}
    response = web.Response(text=html, content_type="text/html", charset="utf-8", headers=headers)
    # the token, for the page's own requests and its reloads: out of reach of scripts and of other sites' requests
    response.set_cookie(sandbox.cookie, sandbox.token, path="/sandbox", httponly=True, samesite="Strict")
    return response


# -- the API -------------------------------------------------------------------------------------------------------


@routes.get("/sandbox/api/state")
async def state(request: web.Request) -> web.Response:
    return json_response(_sandbox(request).state())


@routes.get("/sandbox/api/events")
async def events(request: web.Request) -> web.Response:
    sandbox = _sandbox(request)
    try:
        after = int(request.query.get("after", "0"))
        wait = float(request.query.get("wait", WAIT_DEFAULT))
    except ValueError:
        raise ApiError(400, "bad_request", '"after" is an item number and "wait" seconds') from None
    if after < 0 or not 0 <= wait <= WAIT_MAX:
        raise ApiError(400, "bad_request", f'"after" is at least 0 and "wait" at most {WAIT_MAX:.0f} s')
    items = await sandbox.feed.wait_after(after, wait)
    return json_response(
        {"epoch": sandbox.feed.epoch, "last": sandbox.feed.last, "items": [i.public() for i in items]},
    )


@routes.post("/sandbox/api/say")
async def say(request: web.Request) -> web.Response:
    sandbox = _sandbox(request)
    data = await _json(request)
    chat = sandbox.directory.chat(_field(data, "chat"))
    if chat is None or chat.kind == "system":
        raise ApiError(422, "unknown_chat", f"no chat {str(data['chat'])[:64]!r}")
    member = _member(sandbox, _field(data, "member"), chat)
    text = _text(_field(data, "text", empty=True))
    result = await sandbox.say(sandbox.self_url, member, chat, text)
    return json_response(result)


@routes.post("/sandbox/api/click")
async def click(request: web.Request) -> web.Response:
    sandbox = _sandbox(request)
    data = await _json(request)
    item = sandbox.feed.get(data.get("item"))
    if item is None or item.card is None:
        raise ApiError(422, "unknown_card", "no clickable card with that item number")
    key = _field(data, "key")
    if key not in item.card.buttons:
        raise ApiError(422, "unknown_button", f"the card has no button {key[:64]!r}")
    chat = sandbox.directory.chat(item.chat)
    if chat is None:  # pragma: no cover - items are only ever in the directory's chats
        raise ApiError(422, "unknown_chat", "the card is in no chat")
    member = _member(sandbox, _field(data, "member"), chat)
    result = await sandbox.click(sandbox.self_url, member, item, key)
    return json_response(result)


@routes.post("/sandbox/api/demo")
async def demo(request: web.Request) -> web.Response:
    sandbox = _sandbox(request)
    data = await _json(request)
    count = data.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_COUNT:
        raise ApiError(422, "validation_error", f'"count" is a whole number from 1 to {MAX_COUNT}', [{"loc": "count"}])
    results = await sandbox.inject_demo(request.app, sandbox.self_url, count)
    return json_response({"tickets": [r.public() for r in results]})


# -- refused: not on loopback -----------------------------------------------------------------------------------

_REFUSED_HTML = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>沙箱未启用</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto; padding: 0 1em; line-height: 1.6">
<h1>企业微信沙箱未启用</h1>
<p>机器人监听的地址（BOT_HOST）不是本机回环地址。沙箱允许任何打开页面的人冒充任意成员发言，
因此只在 127.0.0.1 / localhost 上提供。</p>
<p>如确需在局域网内培训使用，请设置 <code>SANDBOX=public</code> 后重新启动，并确保只有受训人员能访问该地址。</p>
<p lang="en">The WeCom sandbox is off: BOT_HOST is not a loopback address and the sandbox lets anyone act as any
member. Set <code>SANDBOX=public</code> to serve it anyway (training only).</p>
</body></html>
"""


async def _refused(request: web.Request) -> web.Response:
    if request.path.startswith("/sandbox/api/"):
        raise ApiError(403, "sandbox_refused", "the sandbox is off: BOT_HOST is not loopback (SANDBOX=public allows)")
    return web.Response(status=403, text=_REFUSED_HTML, content_type="text/html", charset="utf-8")
