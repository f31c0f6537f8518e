"""Web authorisation (网页授权, page 91022) and the QR login of a desktop browser (企业微信登录, page 98151), and
the code's exchange for the member (page 91023).

In WeCom a page opened in WeCom's own browser goes to ``open.weixin.qq.com/connect/oauth2/authorize`` and comes
back at once to ``redirect_uri?code=CODE&state=STATE`` (snsapi_base asks nobody); a desktop browser goes to
``login.work.weixin.qq.com/wwlogin/sso/login`` and comes back once the member scanned the QR code with WeCom. The
fake cannot know who holds the phone, so both show a picker of the members (with their names when it knows them);
choosing one is the member opening the page, or scanning. The rest is WeCom's: the redirect_uri must be on a
trusted domain of the app (可信域名, host and port exactly), the code works once, within 5 minutes, and
``auth/getuserinfo`` (and the older ``user/getuserinfo`` that Tencent's SDK still calls) exchanges it for the
member's userid with the app's access token.
"""

from __future__ import annotations

import functools
import re
from html import escape
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from bot.sandbox.fake import errors as E
from bot.sandbox.fake.core import OAUTH_CODE_TTL, FakeWeCom, agentid_of
from bot.sandbox.fake.errors import ApiError

AUTHORIZE = "/connect/oauth2/authorize"
SSO_LOGIN = "/wwlogin/sso/login"
PICKED = "/connect/oauth2/picked"  # the picker's form: the member chosen (the fake's own, not WeCom's)
SCOPES = ("snsapi_base", "snsapi_privateinfo")
_STATE = re.compile(r"[A-Za-z0-9]{0,128}")


def _page(title: str, body: str, status: int = 200) -> web.Response:
    html = (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>body{{font-family:sans-serif;margin:1.5em;max-width:30em}}"
        "button{display:block;width:100%;margin:.4em 0;padding:.8em;font-size:1em;text-align:left}</style>"
        f"</head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return web.Response(text=html, content_type="text/html", status=status)


def _refused(message: str) -> web.Response:
    """WeCom's own page for a link it will not follow (a wrong appid, a redirect_uri off the trusted domains)."""
    return _page("无法登录", f"<p>{escape(message)}</p>", status=400)


def _checked(fake: FakeWeCom, query: Any, *, sso: bool) -> dict[str, str] | web.Response:
    """What the link asks, as the picker passes it on; or WeCom's refusal."""
    if query.get("appid") != fake.corp_id:
        return _refused("appid参数错误")
    if sso:
        if query.get("login_type", "CorpApp") != "CorpApp":
            return _refused("login_type参数错误")
        try:
            agentid = agentid_of(query.get("agentid", ""))
        except ApiError:
            return _refused("agentid参数错误")
        if agentid not in {app.agentid for app in fake.apps.values()}:
            return _refused("agentid参数错误")
    else:
        if query.get("response_type") != "code":
            return _refused("response_type参数错误")
        if query.get("scope") not in SCOPES:
            return _refused("scope参数错误")
    redirect = query.get("redirect_uri", "")
    parts = urlsplit(redirect)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return _refused("redirect_uri参数错误")
    if fake.trusted_domains is not None and parts.netloc not in fake.trusted_domains:
        return _refused("redirect_uri参数错误：域名与应用的可信域名不一致")
    state = query.get("state", "")
    if not _STATE.fullmatch(state):
        return _refused("state参数错误：只能是字母和数字，最长128字节")
    return {"redirect_uri": redirect, "state": state, "agentid": query.get("agentid", "")}


def _picker(fake: FakeWeCom, asked: dict[str, str], *, sso: bool) -> web.Response:
    hidden = "".join(f'<input type="hidden" name="{k}" value="{escape(v)}">' for k, v in asked.items())
    buttons = "".join(
        f'<button name="userid" value="{escape(userid)}">{escape(fake.names.get(userid, userid))}'
        f"（{escape(userid)}）</button>"
        for userid in sorted(fake.members.values(), key=str.lower)
    )
    lead = "用企业微信扫码登录：选择扫码的成员" if sso else "在企业微信中打开：选择打开页面的成员"
    return _page(
        "企业微信登录（沙盒）",
        f'<p>{lead}</p><form method="post" action="{PICKED}">{hidden}{buttons}</form>',
    )


async def authorize(fake: FakeWeCom, request: web.Request) -> web.StreamResponse:
    asked = _checked(fake, request.query, sso=False)
    return asked if isinstance(asked, web.Response) else _picker(fake, asked, sso=False)


async def sso_login(fake: FakeWeCom, request: web.Request) -> web.StreamResponse:
    asked = _checked(fake, request.query, sso=True)
    return asked if isinstance(asked, web.Response) else _picker(fake, asked, sso=True)


async def picked(fake: FakeWeCom, request: web.Request) -> web.StreamResponse:
    """The member chosen: back to the redirect_uri with a new code and the state, as WeCom redirects."""
    form = await request.post()
    userid = fake.member(form.get("userid"))
    redirect = str(form.get("redirect_uri", ""))
    parts = urlsplit(redirect)
    trusted = fake.trusted_domains is None or parts.netloc in fake.trusted_domains
    if userid is None or parts.scheme not in ("http", "https") or not trusted:
        return _refused("登录失败，请重新打开链接")
    agentid = str(form.get("agentid", ""))
    code = fake.issue_code(
        "oauth", OAUTH_CODE_TTL, agentid=int(agentid) if agentid.isdigit() else None, context={"userid": userid}
    )
    query = {"code": code, **({"state": str(form["state"])} if form.get("state") else {})}
    glue = "&" if parts.query else "?"
    raise web.HTTPFound(f"{redirect}{glue}{urlencode(query)}")


def _member_for(fake: FakeWeCom, request: web.Request) -> str:
    fake.authenticate(request)
    code = request.query.get("code", "")
    if not code:
        raise ApiError(E.OAUTH_CODE_MISSING)
    issued = fake.oauth_code(code)
    return str(issued.context["userid"])


async def getuserinfo(fake: FakeWeCom, request: web.Request) -> dict[str, Any]:
    """``GET /cgi-bin/auth/getuserinfo``: the member behind a code (a member of the corp: ``userid``)."""
    return {"errcode": 0, "errmsg": "ok", "userid": _member_for(fake, request)}


async def getuserinfo_legacy(fake: FakeWeCom, request: web.Request) -> dict[str, Any]:
    """``GET /cgi-bin/user/getuserinfo``, the older path: ``UserId`` and ``DeviceId``."""
    return {"errcode": 0, "errmsg": "ok", "UserId": _member_for(fake, request), "DeviceId": ""}


def add_pages(app: web.Application, fake: FakeWeCom) -> None:
    """The sign-in pages, which a browser opens (HTML, not the API's JSON)."""
    for method, path, page in (("GET", AUTHORIZE, authorize), ("GET", SSO_LOGIN, sso_login), ("POST", PICKED, picked)):
        app.router.add_route(method, path, functools.partial(page, fake))
