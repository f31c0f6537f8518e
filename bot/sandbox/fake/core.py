"""The fake WeCom's state, and what a test does with it: read what was delivered, move time, expire tokens, inject
faults, mint the codes a user's click or message would produce."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from secrets import token_hex, token_urlsafe
from typing import Any, Literal

from aiohttp import web

from bot.sandbox.fake import errors as E
from bot.sandbox.fake.aibot_rules import KINDS as AIBOT_KINDS
from bot.sandbox.fake.errors import ApiError
from bot.sandbox.fake.longconn import AibotHub
from bot.sandbox.fake.model import (
    FAULTS,
    App,
    Chat,
    Delivered,
    Dropped,
    Fault,
    InjectedFault,
    Media,
    OneUseCode,
    PathStats,
    Received,
    SlidingWindow,
    Token,
    take_fault,
)

log = logging.getLogger(__name__)

CARD_CODE_TTL = timedelta(hours=72)  # response_code: 72 h, one use (pages 90236, 94888)
AIBOT_CODE_TTL = timedelta(hours=1)  # response_url: 1 h, one use (page 101138)
OAUTH_CODE_TTL = timedelta(minutes=5)  # a web authorisation's code: 5 minutes, one use (page 91023)
MEDIA_TTL = timedelta(days=3)  # media/upload and webhook upload_media: a media_id is valid 3 days (pages 90253, 91770)

Limits = Sequence[tuple[float, int]]  # (window seconds, max events)


def _now_utc() -> datetime:
    return datetime.now(UTC)


def agentid_of(value: object) -> int:
    """An agentid as WeCom takes it: an integer (a string of digits is let through)."""
    if isinstance(value, bool):
        raise ApiError(E.INVALID_AGENTID)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ApiError(E.INVALID_AGENTID)


class FakeWeCom:
    """A WeCom server API that enforces WeCom's rules, served by :func:`bot.sandbox.fake.make_app`.

    ``secrets`` maps each app's corpsecret to its agentid; ``members`` are the userids that exist (case-insensitive,
    as in WeCom); ``parties``/``tags`` map party/tag ids to member userids for ``toparty``/``totag``.
    ``trusted_ips``, when given, turns calls with an access_token from any other address into 60020.
    Limits are sliding windows of (seconds, count); the defaults are WeCom's documented ones. The last
    ``keep_received`` requests are kept in ``received`` (0: none), for tests to see what WeCom was sent.
    """

    def __init__(
        self,
        *,
        corp_id: str,
        secrets: Mapping[str, str | int],
        webhook_keys: Iterable[str],
        members: Iterable[str],
        clock: Callable[[], datetime] | None = None,
        token_ttl: int = 7200,
        parties: Mapping[str | int, Iterable[str]] | None = None,
        tags: Mapping[str | int, Iterable[str]] | None = None,
        trusted_ips: Iterable[str] | None = None,
        gettoken_per_minute: int = 20,
        app_member_limits: Limits = ((60, 30), (3600, 1000)),
        appchat_member_limits: Limits = ((60, 200), (86400, 10000)),
        webhook_per_minute: int = 20,
        slow_delay: float = 6.0,
        base_url: str | None = None,
        aibots: Mapping[str, str] | None = None,
        aibot_heartbeat_timeout: float = 90.0,
        keep_received: int = 1000,
        names: Mapping[str, str] | None = None,
        trusted_domains: Iterable[str] | None = None,
    ) -> None:
        self.corp_id = corp_id
        self.apps = {secret: App(secret, agentid_of(agentid)) for secret, agentid in secrets.items()}
        self.webhook_keys = set(webhook_keys)
        self.members = {userid.lower(): userid for userid in members}
        self.parties = {str(k): list(v) for k, v in (parties or {}).items()}
        self.tags = {str(k): list(v) for k, v in (tags or {}).items()}
        self.clock = clock or _now_utc
        self.token_ttl = timedelta(seconds=token_ttl)
        self.trusted_ips = frozenset(trusted_ips) if trusted_ips is not None else None
        self.gettoken_per_minute = gettoken_per_minute
        self.app_member_limits = tuple(app_member_limits)
        self.appchat_member_limits = tuple(appchat_member_limits)
        self.webhook_per_minute = webhook_per_minute
        self.slow_delay = slow_delay
        self.base_url = base_url
        self.names = dict(names or {})  # userid -> name, shown by the sign-in page's picker
        # the apps' 可信域名 (host[:port]) a web authorisation may redirect to; None: any
        self.trusted_domains = frozenset(trusted_domains) if trusted_domains is not None else None

        self.delivered: list[Delivered] = []
        self.dropped: list[Dropped] = []
        self.stats: defaultdict[str, PathStats] = defaultdict(PathStats)
        self.received: deque[Received] = deque(maxlen=keep_received)  # every request, as it arrived
        self.chats: dict[str, Chat] = {}
        self.media: dict[str, Media] = {}

        self._tokens: dict[str, Token] = {}
        self._current_token: dict[str, str] = {}  # corpsecret -> the token gettoken hands out while it is valid
        self._codes: dict[str, OneUseCode] = {}
        self._task_ids: set[tuple[int, str]] = set()
        self._windows: dict[tuple[Any, ...], list[SlidingWindow]] = {}
        self._recent_bodies: dict[tuple[int, str], datetime] = {}
        self._faults: list[InjectedFault] = []
        # intelligent robots on the long connection: bot_id -> secret (``bot.sandbox.fake.longconn``)
        self.aibot = AibotHub(self, aibots or {}, heartbeat_timeout=aibot_heartbeat_timeout)

    # ---- what tests use ---------------------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock()

    def requests_to(self, path: str) -> list[Received]:
        """The requests received on ``path`` (``/cgi-bin/message/send``), oldest first, of the last
        ``keep_received`` to any path."""
        return [r for r in self.received if r.path == path]

    def messages_to(
        self, userid: str | None = None, chatid: str | None = None, webhook_key: str | None = None
    ) -> list[Delivered]:
        """Delivered messages for one member (app messages), one chat (the app's group chat, or what an intelligent
        robot sent into the chat over its long connection: a group's chatid, a userid for the 1:1 chat) or one
        robot; all of them without an argument. Card updates and response_url replies are in ``delivered`` (kinds
        update_card, response_url)."""
        found = self.delivered
        if userid is not None:
            found = [d for d in found if d.kind == "app" and d.to["touser"].lower() == userid.lower()]
        if chatid is not None:
            found = [d for d in found if d.kind in ("appchat", *AIBOT_KINDS) and d.to["chatid"] == chatid]
        if webhook_key is not None:
            found = [d for d in found if d.kind == "webhook" and d.to["webhook_key"] == webhook_key]
        return list(found)

    def media_of(self, delivered: Delivered) -> tuple[str, bytes] | None:
        """The filename and bytes an image, voice, video or file message carried (an inline robot image has the
        name ``""``), or None for another message or media the fake no longer has."""
        section = delivered.body.get(delivered.msgtype)
        if delivered.msgtype not in ("image", "voice", "video", "file") or not isinstance(section, dict):
            return None
        if isinstance(section.get("base64"), str):
            try:
                return "", base64.b64decode(section["base64"])
            except (binascii.Error, ValueError):
                return None
        media = self.media.get(section.get("media_id", ""))
        return (media.filename, media.data) if media is not None else None

    def expire_tokens(self) -> None:
        """Every token issued so far now answers 42001; the next gettoken issues a new one."""
        for token in self._tokens.values():
            token.revoked = True
        self._current_token.clear()

    def inject(
        self, fault: Fault | int, *, times: int = 1, path: str | None = None, delay: float | None = None
    ) -> None:
        """The next ``times`` requests (to ``path``, e.g. ``/cgi-bin/message/send``, or to any path) meet ``fault``:
        a named one, or an errcode they are answered with (and not carried out). Injected faults are consumed in
        the order they were injected."""
        if isinstance(fault, bool) or (not isinstance(fault, int) and fault not in FAULTS):
            raise ValueError(f"unknown fault {fault!r}")
        if times < 1:
            raise ValueError("times must be at least 1")
        self._faults.append(InjectedFault(fault=fault, remaining=times, path=path, delay=delay))

    def response_url(self, payload: Mapping[str, Any] | None = None) -> str:
        """A one-use ``response_url`` (valid 1 h) as an intelligent-robot callback carries it. ``payload`` (e.g. the
        chatid and userid of the message being answered) is recorded as the reply's ``to``. Absolute when
        ``base_url`` is known (``serve`` sets it), else a path on this server."""
        code = self.issue_code("aibot", AIBOT_CODE_TTL, context=dict(payload or {}))
        return f"{self.base_url or ''}/cgi-bin/aibot/response?response_code={code}"

    def card_response_code(
        self, *, agentid: int | None = None, task_id: str | None = None, userid: str | None = None
    ) -> str:
        """The one-use ``ResponseCode`` (valid 72 h) a ``template_card_event`` carries when ``userid`` clicks a
        button of card ``task_id``; ``update_template_card`` accepts it once."""
        if agentid is None:
            if len(self.apps) != 1:
                raise ValueError("several apps: say which agentid")
            agentid = next(iter(self.apps.values())).agentid
        if task_id is not None and (agentid, task_id) not in self._task_ids:
            raise ValueError(f"app {agentid} sent no card with task_id {task_id!r}")
        return self.issue_code("card", CARD_CODE_TTL, agentid=agentid, context={"task_id": task_id, "userid": userid})

    # ---- used by the handlers -----------------------------------------------------------------------------------

    def issue_token(self, app: App) -> Token:
        now = self.now()
        current = self._tokens.get(self._current_token.get(app.secret, ""))
        if current is not None and not current.revoked and now < current.expires_at:
            return current
        token = Token(value=token_urlsafe(96), secret=app.secret, issued_at=now, expires_at=now + self.token_ttl)
        self._tokens[token.value] = token
        self._current_token[app.secret] = token.value
        return token

    def authenticate(self, request: web.Request) -> App:
        """The app behind ``?access_token``: 41001 without one, 40014 if unknown, 42001 once expired; then the
        trusted-IP check (60020)."""
        value = request.query.get("access_token", "")
        if not value:
            raise ApiError(E.TOKEN_MISSING)
        token = self._tokens.get(value)
        if token is None:
            raise ApiError(E.INVALID_TOKEN)
        if token.revoked or self.now() >= token.expires_at:
            raise ApiError(E.TOKEN_EXPIRED)
        if self.trusted_ips is not None and request.remote not in self.trusted_ips:
            raise ApiError(E.IP_NOT_TRUSTED)
        return self.apps[token.secret]

    def member(self, userid: object) -> str | None:
        """The member's userid as configured, or None; userids are case-insensitive."""
        if not isinstance(userid, str):
            return None
        return self.members.get(userid.strip().lower())

    def admit(self, key: tuple[Any, ...], limits: Limits) -> bool:
        """Count one event for ``key`` if every window allows it."""
        now = self.now()
        windows = self._windows.setdefault(key, [SlidingWindow(count, seconds) for seconds, count in limits])
        if not all(w.allows(now) for w in windows):
            return False
        for window in windows:
            window.record(now)
        return True

    def seen_recently(self, agentid: int, digest: str, interval: float) -> bool:
        """WeCom's ``enable_duplicate_check``: the same request body within ``interval`` seconds is not delivered."""
        now = self.now()
        last = self._recent_bodies.get((agentid, digest))
        if last is not None and now - last < timedelta(seconds=interval):
            return True
        self._recent_bodies[(agentid, digest)] = now
        return False

    def register_task_id(self, agentid: int, task_id: str) -> None:
        if (agentid, task_id) in self._task_ids:
            raise ApiError(E.TASK_ID_INVALID, "task_id already used by this app")
        self._task_ids.add((agentid, task_id))

    def issue_code(
        self,
        kind: Literal["card", "aibot", "oauth"],
        ttl: timedelta,
        *,
        agentid: int | None = None,
        context: dict[str, Any] | None = None,
    ) -> str:
        now = self.now()
        code = token_urlsafe(32)
        self._codes[code] = OneUseCode(
            code=code, kind=kind, issued_at=now, expires_at=now + ttl, agentid=agentid, context=context or {}
        )
        return code

    def consume_code(self, code: object, kind: str, *, agentid: int | None = None) -> OneUseCode:
        """Use a one-use code once. Unknown 40058, expired 42003 (?), used 42022 (?), another app's card 42015."""
        issued = self._codes.get(code) if isinstance(code, str) else None
        if issued is None or issued.kind != kind:
            raise ApiError(E.INVALID_PARAMETER, "invalid response_code")
        if issued.used:
            raise ApiError(E.CODE_USED)
        if self.now() >= issued.expires_at:
            raise ApiError(E.CODE_EXPIRED)
        if agentid is not None and issued.agentid != agentid:
            raise ApiError(E.UPDATE_APP_MISMATCH)
        issued.used = True
        return issued

    def oauth_code(self, code: str) -> OneUseCode:
        """A web authorisation's code, used once: 40029 if unknown, used or expired (WeCom answers all three so)."""
        issued = self._codes.get(code)
        if issued is None or issued.kind != "oauth" or issued.used or self.now() >= issued.expires_at:
            raise ApiError(E.INVALID_OAUTH_CODE)
        issued.used = True
        return issued

    def deliver(
        self, kind: str, to: dict[str, Any], msgtype: str, body: dict[str, Any], msgid: str | None = None
    ) -> Delivered:
        record = Delivered(at=self.now(), kind=kind, to=to, msgtype=msgtype, body=body, msgid=msgid)
        self.delivered.append(record)
        log.debug("fake wecom delivered %s %s to %s", kind, msgtype, to)
        return record

    def drop(
        self, kind: str, to: dict[str, Any], msgtype: str, body: dict[str, Any], reason: str, msgid: str | None = None
    ) -> Dropped:
        record = Dropped(at=self.now(), kind=kind, to=to, msgtype=msgtype, body=body, msgid=msgid, reason=reason)
        self.dropped.append(record)
        log.debug("fake wecom dropped %s %s to %s: %s", kind, msgtype, to, reason)
        return record

    def take_fault(self, path: str) -> InjectedFault | None:
        return take_fault(self._faults, lambda injected: injected.path in (None, path))


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, whatever its content type (WeCom does not look); 40058 if it is not one."""
    raw = await request.read()
    try:
        body = json.loads(raw or b"null")
    except (UnicodeDecodeError, ValueError):
        raise ApiError(E.INVALID_PARAMETER, "Warning: wrong json format.") from None
    if not isinstance(body, dict):
        raise ApiError(E.INVALID_PARAMETER, "Warning: wrong json format.")
    return body


def new_id(nbytes: int = 24) -> str:
    return token_urlsafe(nbytes)


def new_chatid() -> str:
    return token_hex(16)  # 32 characters of [0-9a-f]: what appchat/create allows
