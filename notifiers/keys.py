"""The notifiers' typed application keys (aiohttp ``AppKey``)."""

from __future__ import annotations

from aiohttp import web

from notifiers.pushes import Pusher
from notifiers.reports import ScheduledReports

PUSHES = web.AppKey("pushes", Pusher)  # tickets into the work groups, and the digests
REPORTS = web.AppKey("reports", ScheduledReports)  # the weekly data, the 通报, the heads' brief
