"""Signing in to the board with WeCom, and who the signed-in viewer is.

``GET /board/login?next=…`` sends the browser to WeCom: a page opened in WeCom's own browser (its user agent says
``wxwork``) to the web authorisation (``WECOM_OAUTH_URL``, snsapi_base: WeCom asks nobody and comes straight back),
any other browser to the QR login (``WECOM_SSO_URL``). WeCom comes back to ``GET /board/auth?code=…&state=…``; the
state must be the one this browser was given, and the code is exchanged for the member's userid with the app's
access token (``auth/getuserinfo``). A userid the configuration does not know is refused.

The session is an encrypted, signed cookie (aiohttp-session's ``EncryptedCookieStorage``: Fernet, so it cannot be
read or changed outside the bot), ``HttpOnly``, ``SameSite=Lax`` (WeCom's redirect back is a top-level navigation
from another site), ``Secure`` when ``PUBLIC_URL`` is https, on ``Path=/board``, 12 hours. Its key comes from
``BOARD_SECRET``, which every bot process behind one address shares; without it each process makes its own at start
(sessions then end with the process, and the log says so once). The session holds the userid and a CSRF token,
nothing else; what the member may see and do is read from the configuration on every request, so a member taken out
of a unit loses it at once.

Every request that changes something (``POST``) must carry the session's CSRF token in ``X-CSRF-Token`` and, when the
browser sends one, an ``Origin`` of this site.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web
from aiohttp_session import get_session, new_session, session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from bot.domain.permissions import Sight, sight_of
from bot.web.errors import ApiError, Handler
from bot.web.keys import CONFIG, SETTINGS
from config.settings import Settings

log = logging.getLogger(__name__)
# aiohttp-session 2.12 keeps its storage under string keys of the request, which aiohttp 3.14 advises against on every
# request: nothing to act on here
warnings.filterwarnings("ignore", category=web.NotAppKeyWarning, module="aiohttp_session")

COOKIE = "hotline_board"
SESSION_SECONDS = 12 * 3600
CSRF_HEADER = "X-CSRF-Token"
BOARD = "/board/"
API = "/board/api/"  # the page's API: JSON, as every API of the bot
SIGNED_OUT = "/board/signed-out"

UseridForCode = Callable[[str], Awaitable[str | None]]
SIGN_IN = web.AppKey("board_sign_in", object)  # UseridForCode, or None without WeCom app credentials


@dataclass(frozen=True, slots=True)
class Viewer:
    userid: str
    name: str
    sight: Sight
    csrf: str


def middleware(settings: Settings) -> Any:
    """The session middleware, its cookie's key from ``BOARD_SECRET`` (or this process's own)."""
    secret = settings.board_secret.get_secret_value() if settings.board_secret else None
    if secret is None:
        key = os.urandom(32)
        log.warning(
            "board: BOARD_SECRET is not set: sign-ins last as long as this process and hold only on it "
            "(set it, the same on every process, for a deployment)"
        )
    else:
        key = hashlib.sha256(b"hotline-board-session:" + secret.encode()).digest()
    secure = bool(settings.public_url and settings.public_url.startswith("https://"))
    storage = EncryptedCookieStorage(
        key, cookie_name=COOKIE, max_age=SESSION_SECONDS, httponly=True, samesite="Lax", path="/board", secure=secure
    )
    return session_middleware(storage)


def _safe_next(value: str | None) -> str:
    """Where to go after signing in: a path of the board, never another site (nor a header's worth of CR/LF)."""
    if value and value.startswith(BOARD) and "\\" not in value and value.isprintable():
        return value
    return BOARD


def _base(request: web.Request) -> str:
    configured = request.app[SETTINGS].public_url
    return configured if configured else f"{request.scheme}://{request.host}"


def sign_in_url(request: web.Request, state: str) -> str:
    """WeCom's page to send this browser to: the web authorisation in WeCom's browser, else the QR login."""
    settings = request.app[SETTINGS]
    redirect = f"{_base(request)}/board/auth"
    if "wxwork" in request.headers.get("User-Agent", "").lower():
        query = {
            "appid": settings.wecom_corp_id or "",
            "redirect_uri": redirect,
            "response_type": "code",
            "scope": "snsapi_base",
            "state": state,
            "agentid": settings.wecom_app_agent_id or "",
        }
        return f"{settings.wecom_oauth_url}?{urlencode(query)}#wechat_redirect"
    query = {
        "login_type": "CorpApp",
        "appid": settings.wecom_corp_id or "",
        "agentid": settings.wecom_app_agent_id or "",
        "redirect_uri": redirect,
        "state": state,
    }
    return f"{settings.wecom_sso_url}?{urlencode(query)}"


def _page(title: str, text: str, status: int, link: tuple[str, str] = ("重新登录", "/board/login")) -> web.Response:
    """A short page of the board's own in Chinese (a sign-in that failed, a page that does not exist), with a link
    on."""
    from html import escape

    label, href = link
    html = (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{escape(title)}</title></head><body style="font-family:sans-serif;margin:2em">'
        f'<h1>{escape(title)}</h1><p>{escape(text)}</p><p><a href="{escape(href)}">{escape(label)}</a></p>'
        "</body></html>"
    )
    return web.Response(text=html, content_type="text/html", status=status)


@web.middleware
async def pages_in_chinese(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A board address that is no page (a mistyped or an old link), or a page asked the wrong way, is answered with a
    page in Chinese, not the API's JSON; the board's API (``/board/api/``) keeps its JSON."""
    if not request.path.startswith(BOARD) or request.path.startswith(API):
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return _page("页面不存在", "看板上没有这个页面，链接可能有误或已过期。", 404, ("返回看板", BOARD))
    except web.HTTPMethodNotAllowed as exc:
        response = _page("无法打开", "这个页面不能这样打开，请从看板上的链接进入。", 405, ("返回看板", BOARD))
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response


NO_APP = "本系统尚未配置企业微信应用（WECOM_CORP_ID、WECOM_APP_SECRET、WECOM_APP_AGENT_ID），请联系管理员。"


async def login(request: web.Request) -> web.StreamResponse:
    if request.app.get(SIGN_IN) is None:
        return _page("无法登录", NO_APP, 503)
    if await signed_in(request) is not None:  # already signed in: a link elsewhere cannot sign a member out
        raise web.HTTPFound(_safe_next(request.query.get("next")))
    session = await new_session(request)
    state = secrets.token_hex(16)
    session["state"] = state
    session["next"] = _safe_next(request.query.get("next"))
    raise web.HTTPFound(sign_in_url(request, state))


async def auth(request: web.Request) -> web.StreamResponse:
    """WeCom's redirect back: the state checked, the code exchanged, the member known, then a new session."""
    session = await get_session(request)
    expected = session.get("state")
    given = request.query.get("state", "")
    code = request.query.get("code", "")
    matches = hmac.compare_digest(str(expected).encode(), given.encode("utf-8", "replace"))
    if not expected or not matches or not code or len(code) > 512:
        return _page("登录已失效", "登录链接已失效或不是从本页面发起的，请重新登录。", 400)
    target = _safe_next(session.get("next"))
    userid_for_code = request.app.get(SIGN_IN)
    if not callable(userid_for_code):  # this process has no app credentials (another one sent the browser)
        return _page("无法登录", NO_APP, 503)
    try:
        userid = await userid_for_code(code)
    except Exception:  # WeCom refused the code (used, expired) or could not be reached
        log.warning("board: a sign-in's code was not accepted by WeCom", exc_info=True)
        return _page("登录失败", "企业微信未能确认您的身份（登录码已使用或已过期），请重新登录。", 400)
    config = request.app[CONFIG]
    if userid is None or sight_of(config, userid) is None:
        log.info("board: sign-in refused: not a member of the configuration")
        return _page("无权访问", "您不在本热线系统的成员名单中。如需使用，请联系热线办管理员添加。", 403)
    session = await new_session(request)  # a new session on signing in: none carried over from before
    session["userid"] = userid
    session["csrf"] = secrets.token_urlsafe(24)
    log.info("board: signed in", extra={"userid": userid})
    raise web.HTTPFound(target)


async def logout(request: web.Request) -> web.StreamResponse:
    """Ends the session in this browser (its cookie is dropped). A copy of the cookie elsewhere would stay valid
    until it expires; rotating BOARD_SECRET ends every session at once (docs/board.md)."""
    await viewer(request, write=True)
    session = await get_session(request)
    session.invalidate()
    return web.json_response({"ok": True, "next": SIGNED_OUT})


async def signed_out(request: web.Request) -> web.StreamResponse:
    """Where 退出 lands: not the sign-in, which in WeCom's browser would sign the member straight back in."""
    html = (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><title>已退出</title></head>'
        '<body style="font-family:sans-serif;margin:2em"><h1>已退出工单看板</h1>'
        '<p><a href="/board/login">重新登录</a></p></body></html>'
    )
    return web.Response(text=html, content_type="text/html")


async def viewer(request: web.Request, *, write: bool = False) -> Viewer:
    """The signed-in member, or 401; for a change (``write``) also the CSRF token and the origin, or 403."""
    session = await get_session(request)
    userid = session.get("userid")
    config = request.app[CONFIG]
    sight = sight_of(config, userid) if isinstance(userid, str) else None
    if sight is None:
        raise ApiError(401, "sign_in_required", "请先通过企业微信登录", {"login": "/board/login"})
    csrf = str(session.get("csrf", ""))
    if write:
        given = request.headers.get(CSRF_HEADER, "")
        if not csrf or not hmac.compare_digest(csrf.encode(), given.encode("utf-8", "replace")):
            raise ApiError(403, "csrf", "页面已过期，请刷新后重试")
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc not in (request.host, urlsplit(_base(request)).netloc):
            raise ApiError(403, "cross_site", "不接受来自其他网站的请求")
    member = config.member(userid) if isinstance(userid, str) else None
    return Viewer(str(userid), member.name if member is not None else str(userid), sight, csrf)


async def signed_in(request: web.Request) -> Viewer | None:
    """The signed-in member for a page (None: send them to sign in)."""
    try:
        return await viewer(request)
    except ApiError:
        return None
