"""The board: the office's and the unit heads' web page, opened from WeCom, served by the bot itself under
``/board/`` (sign-in with WeCom in :mod:`.auth`, pages and API in :mod:`.api`, the page's files in ``static/``)."""

from __future__ import annotations

from aiohttp import web

from bot.board import api
from bot.board.auth import (
    API,
    SIGN_IN,
    SIGNED_OUT,
    UseridForCode,
    auth,
    login,
    logout,
    middleware,
    pages_in_chinese,
    signed_out,
)
from config.settings import Settings

__all__ = ["setup"]


def setup(app: web.Application, settings: Settings, userid_for_code: UseridForCode | None) -> None:
    """Serves the board on ``app``; ``userid_for_code`` exchanges a sign-in's code for a userid (None: no WeCom app
    credentials, and nobody can sign in)."""
    app.middlewares.append(middleware(settings))
    app.middlewares.append(pages_in_chinese)
    app[SIGN_IN] = userid_for_code
    app.router.add_get("/board/login", login)
    app.router.add_get("/board/auth", auth)
    app.router.add_post("/board/api/logout", logout)
    app.router.add_get(SIGNED_OUT, signed_out)
    app.on_response_prepare.append(_no_store)
    api.setup(app)


async def _no_store(request: web.Request, response: web.StreamResponse) -> None:
    """No answer of the board's API is kept by a browser or a proxy: a ticket's page may carry the citizen's
    details."""
    if request.path.startswith(API) and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
