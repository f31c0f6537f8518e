"""The notifiers' typed application keys (aiohttp ``AppKey``)."""

from __future__ import annotations

from aiohttp import web

from notifiers.pushes import Pusher

PUSHES = web.AppKey("pushes", Pusher)  # tickets into the work groups, and the digests
