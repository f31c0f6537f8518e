"""The composition root: the one package that imports handlers, notifiers, bot.wecom, bot.hotline and (lazily, when
the sandbox is on) bot.sandbox together. ``create_app(settings, config)`` builds the aiohttp application."""

from bot.app.factory import build_calendar, create_app
from bot.app.inbound import AIBOT_KICKED_RETRY
from bot.app.resources import HTTP_SESSION, sync_back
from bot.app.scheduler import DIGEST_CHECK, RETENTION_EVERY, RETENTION_FIRST, EngineJob
from bot.app.senders import OUTBOX, RATE_LIMITER, push_channels, record_channels, serving_channels

__all__ = [
    "AIBOT_KICKED_RETRY",
    "DIGEST_CHECK",
    "HTTP_SESSION",
    "OUTBOX",
    "RATE_LIMITER",
    "RETENTION_EVERY",
    "RETENTION_FIRST",
    "EngineJob",
    "build_calendar",
    "create_app",
    "push_channels",
    "record_channels",
    "serving_channels",
    "sync_back",
]
