"""WeCom's callback URLs: the self-built app (``/wecom/callback``, XML) and the intelligent robot (``/wecom/aibot``,
JSON).

``GET`` is URL verification: check the signature, decrypt ``echostr``, answer its plaintext (``text/plain``, no
quotes, no newline). The query is read raw (:func:`raw_query_param`): decoded as a form, a ``+`` in ``echostr``
would become a space. Any failure is a 403 JSON error.

``POST`` is a message or event: a bounded body (≤ 64 KiB, 413 beyond, refused on ``Content-Length`` before
reading; 408 when it has not all arrived within ``HTTP_BODY_TIMEOUT``), envelope → signature and receive id checked
→ timestamp within the replay window → decrypt → parse → :meth:`InboundProcessor.accept` (one inbox row, in its own
transaction) → 200. A callback that cannot be trusted or read gets a 4xx JSON error and
leaves no row. Nothing on this path calls WeCom, so the answer comes well within WeCom's 1 s (verification) and
5 s (messages); the event is processed after the answer.

A repeat of a callback (WeCom's retries reuse its ``timestamp``, within minutes) is caught by the inbox's (source,
dedup key) uniqueness; those rows are purged after ``retention.inbox_days``, so a signed ``timestamp`` older than
that less a day (:func:`replay_window`), or dated ahead of our clock, is refused (403 ``bad_timestamp``).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import NoReturn

from aiohttp import web

from bot.domain.events import EnterChat, InboundEvent
from bot.web.body import read_body
from bot.web.errors import ApiError, json_error
from bot.web.keys import CLOCK, CONFIG, WECOM_INBOUND
from bot.web.metrics import METRICS
from bot.wecom.crypto import CallbackCrypto, CallbackCryptoError, raw_query_params
from bot.wecom.parse import (
    AIBOT_SOURCE,
    APP_SOURCE,
    MalformedCallback,
    parse_aibot_envelope,
    parse_aibot_json,
    parse_app_envelope,
    parse_app_xml,
)
from config.loader import ConfigError, ConfigIssue
from config.model import BotConfig
from config.settings import Settings

log = logging.getLogger(__name__)

APP_PATH = "/wecom/callback"
AIBOT_PATH = "/wecom/aibot"
MAX_BODY = 64 * 1024

# codes that mean "not from WeCom, or not for us"; the others mean "unreadable"
_FORBIDDEN = {"missing_signature", "bad_signature", "bad_timestamp", "wrong_receiver"}
# a signed callback older than the inbox's retention less this is refused (see replay_window); one dated more than
# FUTURE_SKEW ahead of our clock too (WeCom's clock and ours agree within seconds)
REPLAY_MARGIN = timedelta(days=1)
FUTURE_SKEW = timedelta(hours=1)


# WeCom callbacks, present only when their credentials are configured: inbox source -> crypto
WECOM_CALLBACKS: web.AppKey[Mapping[str, CallbackCrypto]] = web.AppKey("wecom_callbacks")


# -- configuration ------------------------------------------------------------------------------------------------


def configured(settings: Settings) -> dict[str, CallbackCrypto]:
    """The callbacks whose credentials are set, by inbox source: the app needs ``WECOM_APP_TOKEN``,
    ``WECOM_APP_AES_KEY`` and ``WECOM_CORP_ID`` (its receive id); the robot ``WECOM_AIBOT_TOKEN`` and
    ``WECOM_AIBOT_AES_KEY`` (its receive id is ``""``). A callback with a token or key but not the rest is left out
    with a warning; a malformed EncodingAESKey is a :class:`ConfigError` naming the variable."""
    result: dict[str, CallbackCrypto] = {}
    issues: list[ConfigIssue] = []

    def add(source: str, token: tuple[str, str | None], key: tuple[str, str | None], receive_id: str | None) -> None:
        if not (token[1] or key[1]):
            return  # not used (the corp id alone serves the API client)
        missing = [name for name, value in (token, key) if not value]
        if receive_id is None:
            missing.append("WECOM_CORP_ID")
        if missing:
            log.warning("wecom %s callback disabled: %s not set", source, ", ".join(missing))
            return
        try:
            result[source] = CallbackCrypto(token[1] or "", key[1] or "", receive_id or "")
        except ValueError as exc:
            issues.append(ConfigIssue(key[0], str(exc)))

    add(
        APP_SOURCE,
        ("WECOM_APP_TOKEN", settings.wecom_app_token),
        ("WECOM_APP_AES_KEY", settings.wecom_app_aes_key),
        settings.wecom_corp_id or None,
    )
    add(
        AIBOT_SOURCE,
        ("WECOM_AIBOT_TOKEN", settings.wecom_aibot_token),
        ("WECOM_AIBOT_AES_KEY", settings.wecom_aibot_aes_key),
        "",  # an enterprise-internal robot's receive id
    )
    if issues:
        raise ConfigError("environment", issues)
    return result


def routes_for(callbacks: Mapping[str, CallbackCrypto]) -> list[web.RouteDef]:
    """The routes of the configured callbacks."""
    routes: list[web.RouteDef] = []
    if APP_SOURCE in callbacks:
        routes += [web.get(APP_PATH, verify_app, allow_head=False), web.post(APP_PATH, receive_app)]
    if AIBOT_SOURCE in callbacks:
        routes += [web.get(AIBOT_PATH, verify_aibot, allow_head=False), web.post(AIBOT_PATH, receive_aibot)]
    return routes


# -- URL verification ---------------------------------------------------------------------------------------------


def _verify(request: web.Request, source: str) -> web.Response:
    crypto = request.app[WECOM_CALLBACKS][source]
    query = request.rel_url.raw_query_string
    params = raw_query_params(query, "msg_signature", "timestamp", "nonce", "echostr")
    try:
        plain = crypto.verify_url(*params)
    except CallbackCryptoError as exc:
        request.app[METRICS].refused(source, exc.code)
        log.warning("wecom %s URL verification refused: %s", source, exc.message, extra={"code": exc.code})
        return json_error(403, exc.code, exc.message)
    except Exception:  # never a 500 to WeCom's verification
        log.exception("wecom %s URL verification failed", source)
        return json_error(403, "verification_failed", "the URL could not be verified")
    return web.Response(text=plain, content_type="text/plain")


async def verify_app(request: web.Request) -> web.Response:
    return _verify(request, APP_SOURCE)


async def verify_aibot(request: web.Request) -> web.Response:
    return _verify(request, AIBOT_SOURCE)


# -- messages and events ------------------------------------------------------------------------------------------


def replay_window(config: BotConfig) -> timedelta:
    """How old a callback's signed timestamp may be: the inbox's retention less a day, so that a callback is refused
    before the inbox row that recognises its repeat can have been purged."""
    return timedelta(days=config.retention.inbox_days) - REPLAY_MARGIN


def _check_timestamp(request: web.Request, timestamp: str) -> None:
    """A signed callback is refused when its ``timestamp`` is older than :func:`replay_window` (a captured callback
    replayed after its inbox row was purged would run again) or more than :data:`FUTURE_SKEW` ahead of our clock."""
    if not (timestamp.isascii() and timestamp.isdigit()):
        raise CallbackCryptoError("bad_timestamp", "the timestamp is not Unix seconds")
    sent = int(timestamp)
    now = request.app[CLOCK].now().timestamp()
    window = replay_window(request.app[CONFIG])
    if sent < now - window.total_seconds():
        raise CallbackCryptoError(
            "bad_timestamp", f"the callback was signed more than {window.days} days ago: a replay is not accepted"
        )
    if sent > now + FUTURE_SKEW.total_seconds():
        raise CallbackCryptoError("bad_timestamp", "the callback is dated ahead of the server's clock")


def _refused(request: web.Request, source: str, exc: CallbackCryptoError | MalformedCallback) -> NoReturn:
    if isinstance(exc, CallbackCryptoError):
        status, code, message = (403 if exc.code in _FORBIDDEN else 400), exc.code, exc.message
    else:
        status, code, message = 400, "malformed", exc.message
    request.app[METRICS].refused(source, code)
    log.warning("wecom %s callback refused: %s", source, message, extra={"code": code, "status": status})
    raise ApiError(status, code, message)


async def _open(request: web.Request, source: str, envelope: Callable[[bytes], str]) -> tuple[bytes, str]:
    """Body → envelope → checked and decrypted plaintext, as bytes and as the text stored in the inbox."""
    crypto = request.app[WECOM_CALLBACKS][source]
    body = await read_body(request, MAX_BODY)
    query = request.rel_url.raw_query_string
    try:
        if not body:
            raise MalformedCallback("the body is empty")
        encrypt = envelope(body)
        signature, timestamp, nonce = raw_query_params(query, "msg_signature", "timestamp", "nonce")
        plain = crypto.decrypt(signature, timestamp, nonce, encrypt)
        _check_timestamp(request, timestamp or "")
    except (CallbackCryptoError, MalformedCallback) as exc:
        _refused(request, source, exc)
    try:
        return plain, plain.decode("utf-8")
    except UnicodeDecodeError:
        _refused(request, source, MalformedCallback("the decrypted message is not UTF-8"))


async def _accept(
    request: web.Request, source: str, parse: Callable[[bytes, datetime], InboundEvent], plain: bytes, raw: str
) -> InboundEvent:
    received_at = request.app[CLOCK].now()
    try:
        event = parse(plain, received_at)
    except MalformedCallback as exc:
        _refused(request, source, exc)
    # a database that cannot be reached is answered 503 store_unavailable (bot.web.errors), never 2xx: WeCom retries
    # a callback that is not answered 200, so nothing is lost while the store is down
    await request.app[WECOM_INBOUND].accept(source, event, raw, received_at=received_at)
    return event


def _app_event(data: bytes, _received_at: datetime) -> InboundEvent:
    return parse_app_xml(data)


def _aibot_event(data: bytes, received_at: datetime) -> InboundEvent:
    # without ``create_time`` the event is dated by its arrival; recovery re-parses with the row's received_at
    return parse_aibot_json(data, received_at=received_at)


async def receive_app(request: web.Request) -> web.Response:
    plain, raw = await _open(request, APP_SOURCE, lambda body: parse_app_envelope(body)[0])
    await _accept(request, APP_SOURCE, _app_event, plain, raw)
    return web.Response(status=200)  # WeCom: "不想回复任何内容，可以直接返回200（即以空串为返回包）"


async def receive_aibot(request: web.Request) -> web.Response:
    plain, raw = await _open(request, AIBOT_SOURCE, parse_aibot_envelope)
    event = await _accept(request, AIBOT_SOURCE, _aibot_event, plain, raw)
    welcome = request.app[CONFIG].office.welcome_text
    if isinstance(event, EnterChat) and welcome:
        # the one answer known before processing: the welcome, as a passive reply (also on WeCom's retry, whose
        # first answer was lost). Everything else is answered later, through response_url or the API.
        crypto = request.app[WECOM_CALLBACKS][AIBOT_SOURCE]
        timestamp = str(int(request.app[CLOCK].now().timestamp()))
        reply = crypto.encrypt_json_reply(
            {"msgtype": "text", "text": {"content": welcome}}, secrets.token_hex(8), timestamp
        )
        return web.Response(text=reply, content_type="application/json")
    # an empty 200 tells WeCom the callback arrived
    return web.Response(status=200)
