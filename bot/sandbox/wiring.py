"""When the sandbox is on, where its fake WeCom runs, and with which credentials.

Where the fake runs: on a loopback port of its own (``127.0.0.1``, port 0: the OS picks a free one), started by a
``cleanup_ctx`` of the bot's application, before the database and everything else, and stopped after them. A port
of its own rather than a prefix on the bot's server, because the fake must look like WeCom to the bot's clients:
they build ``{WECOM_API_BASE}/cgi-bin/...`` and the robot's ``response_url`` client accepts only URLs whose path
starts with ``/cgi-bin/`` on the API base's origin; under a prefix the bot's ``/cgi-bin`` would also mix WeCom's
API into the bot's own routes. The port is known only once the fake listens, so ``create_app`` gets settings with
a placeholder base (``http://127.0.0.1:1``, which reaches nothing) and the context replaces ``app[SETTINGS]`` with
the real one before the outbox worker (the only reader of ``WECOM_API_BASE``) starts.

How the work groups reach the bot (``SANDBOX_ROBOT``): ``long_connection`` (the default) gives the bot the intelligent
robot's BotID and Secret, and the bot keeps the robot's long connection to the fake (``fake.aibot``, at the fake's
``ws://`` URL, set like the API base once the fake listens), as a production bot with them does: what members type
in a group, and their clicks on the robot's cards, arrive over it; the pushes into the groups are the robot's cards
with buttons (``aibot_send_msg``), and a click changes the card for everyone (``aibot_respond_update_msg``).
``callback`` gives it the robot's callback token and key instead: lines and clicks are POSTed to ``/wecom/aibot``, and
the groups get their pushes as app chats (markdown, no buttons), as with a robot in callback mode. A robot is in one
mode or the other in WeCom, so the bot gets one of the two. Private chats are the app's in both.

Credentials: generated at every start (corp id ``ww`` + 16 hex digits, app agent 1000002 with a random secret,
random callback tokens and EncodingAESKeys for the app and the intelligent robot, the robot's BotID and Secret for
its long connection). Nothing outside this process
needs them, and new ones each time mean nothing cached from an earlier run (an access token in Redis, a
``response_url``) can be mistaken for valid. ``HOTLINE_INGEST_SECRET`` is kept when set, else a random one is made
so that the demo feed can sign its hand-overs.

What the fake has: the configured members; every unit's ``group.chatid`` as an app chat (created directly in the
fake's state: sandbox chat ids such as ``sandbox-rxb`` are not what ``appchat/create`` would accept, and the app
is taken to have created them), with the unit's members (head and deputies included); every ``group.webhook_key``
as a robot. Every message the fake delivers or drops becomes an item of the page's feed, in the chat it reached.

When: ``create_app(..., sandbox=True)`` (``run_bot.py serve`` passes it) calls :func:`attach`. The sandbox is on
when ``SANDBOX`` is ``auto`` (the default) or ``public`` and no WeCom setting at all is given (any ``WECOM_*``
credential, or a ``WECOM_API_BASE`` of one's own: a half-configured WeCom is a mistake to report, not a reason to
pretend). It is only served on a loopback ``BOT_HOST``: it lets whoever opens the page act as any member. On another
host it stays off, with a warning in the log and on ``/sandbox/``, unless ``SANDBOX=public``.

Who may open it: whoever has the link from the start log, ``/sandbox/?token=…``. The access token is random at
every start (like Jupyter's), and :mod:`bot.sandbox.web` refuses every request without it; unless
``SANDBOX=public``, also every request that did not come straight from this machine (see there).
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from bot.domain.masking import mask_text
from bot.sandbox.fake import Delivered, FakeWeCom
from config.settings import Settings

log = logging.getLogger(__name__)

API_PLACEHOLDER = "http://127.0.0.1:1"  # until the fake listens; port 1 reaches nothing
WS_PLACEHOLDER = "ws://127.0.0.1:1"  # the robot's long connection, likewise
KEEP_DELIVERED = 1000  # the fake's own lists are trimmed to this many records


# -- the decision ---------------------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (``127.0.0.0/8``, ``::1``, and ``::ffff:127.0.0.1`` as a dual-stack
    socket reports an IPv4 peer)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip().strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def new_token() -> str:
    """The page's access token: 43 URL-safe characters. One that the logs' phone-number mask would change (a run
    of digits that looks like a phone number: about one start in a billion) is drawn again, so that the link in
    the start log always works."""
    while True:
        token = secrets.token_urlsafe(32)
        if mask_text(token) == token:
            return token


Decision = Literal["on", "off", "refused"]
RobotMode = Literal["long_connection", "callback"]


def decide(settings: Settings) -> Decision:
    """Whether this process embeds the sandbox, logging why not when it does not."""
    if settings.sandbox == "off":
        log.info("sandbox: off (SANDBOX=off)")
        return "off"
    given = settings.wecom_given()
    if given:
        if not settings.wecom_configured:
            log.warning(
                "sandbox: off, because WeCom settings are given (%s) — but they are not enough to reach WeCom",
                ", ".join(given),
            )
        return "off"
    if not is_loopback(settings.host) and settings.sandbox != "public":
        log.warning(
            "sandbox: not started: BOT_HOST=%s is not a loopback address, and the sandbox lets anyone who opens it "
            "act as any member. Listen on 127.0.0.1, or set SANDBOX=public to serve it anyway (training only).",
            settings.host,
        )
        return "refused"
    return "on"


# -- credentials ----------------------------------------------------------------------------------------------


def _aes_key() -> str:
    """A random EncodingAESKey: 43 characters of base64 (32 bytes without the trailing '=')."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")[:43]


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    corp_id: str
    agent_id: int
    app_secret: str
    app_token: str
    app_aes_key: str
    aibot_token: str
    aibot_aes_key: str
    aibot_id: str
    aibot_secret: str

    @classmethod
    def generate(cls) -> Credentials:
        return cls(
            corp_id="ww" + secrets.token_hex(8),
            agent_id=1000002,
            app_secret=secrets.token_urlsafe(32),
            app_token=secrets.token_urlsafe(24),
            app_aes_key=_aes_key(),
            aibot_token=secrets.token_urlsafe(24),
            aibot_aes_key=_aes_key(),
            aibot_id="aib" + secrets.token_hex(12),
            aibot_secret=secrets.token_urlsafe(32),
        )

    def settings(self, robot: RobotMode) -> dict[str, Any]:
        """The bot's WeCom settings: the app's always; the intelligent robot's BotID and Secret for its long
        connection (whose URL is known once the fake listens: :data:`WS_PLACEHOLDER` until then), or its callback
        token and key. A robot is in one mode or the other in WeCom, so the sandbox gives the bot one of them."""
        robot_settings: dict[str, Any] = (
            {"wecom_aibot_bot_id": self.aibot_id, "wecom_aibot_secret": self.aibot_secret,
             "wecom_aibot_ws_url": WS_PLACEHOLDER}
            if robot == "long_connection"
            else {"wecom_aibot_token": self.aibot_token, "wecom_aibot_aes_key": self.aibot_aes_key}
        )  # fmt: skip
        return {
            "wecom_corp_id": self.corp_id,
            "wecom_app_agent_id": str(self.agent_id),
            "wecom_app_secret": self.app_secret,
            "wecom_app_token": self.app_token,
            "wecom_app_aes_key": self.app_aes_key,
            **robot_settings,
        }


# -- the fake, reporting what it records ------------------------------------------------------------------------


class SandboxWeCom(FakeWeCom):
    """The fake WeCom, telling the sandbox about every message it delivers or drops."""

    def __init__(self, on_record: Callable[[Delivered, str | None], None], **kwargs: Any) -> None:
        super().__init__(keep_received=0, **kwargs)  # the page shows deliveries; requests are not kept
        self._on_record = on_record

    def deliver(self, *args: Any, **kwargs: Any) -> Delivered:
        record = super().deliver(*args, **kwargs)
        self._report(record, None)
        del self.delivered[:-KEEP_DELIVERED]
        return record

    def drop(self, *args: Any, **kwargs: Any) -> Any:
        record = super().drop(*args, **kwargs)
        self._report(record, getattr(record, "reason", "") or "dropped")
        del self.dropped[:-KEEP_DELIVERED]
        return record

    def _report(self, record: Delivered, dropped: str | None) -> None:
        try:
            self._on_record(record, dropped)
        except Exception:  # the page is a view: never let it break the fake's answer
            log.exception("sandbox: could not show a %s message", record.kind)


def self_url(host: str, port: int) -> str:
    """The bot's own URL from its settings (a wildcard address is reached through loopback)."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
