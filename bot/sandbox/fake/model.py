"""What the fake records and keeps: deliveries, drops, tokens, one-use codes, chats, uploaded media, rate windows."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, TypeVar, get_args

Fault = Literal[
    "busy",  # errcode -1
    "rate_limited",  # errcode 45009
    "concurrency",  # errcode 45033
    "token_expired",  # errcode 42001
    "invalid_token",  # errcode 40014
    "ip_not_trusted",  # errcode 60020
    "server_error",  # HTTP 500 with an HTML body, as WeCom's gateway answers
    "request_timeout",  # HTTP 408: the gateway gave up waiting for the request, nothing was done
    "too_many_requests",  # HTTP 429 with ``Retry-After`` (the ``delay`` given to ``inject``, else 1 s)
    "slow",  # the normal answer, after a delay (``slow_delay`` or the ``delay`` given to ``inject``)
    "drop",  # the connection closes before anything is done or answered
    "drop_after",  # the request is carried out, then the connection closes without an answer
]
FAULTS: frozenset[str] = frozenset(get_args(Fault))

Kind = Literal["app", "appchat", "webhook", "response_url", "update_card"]


@dataclass(frozen=True, kw_only=True)
class Delivered:
    """One accepted message. ``to`` names the recipient: ``touser``+``agentid`` for an app message (one record per
    member), ``chatid`` (+ ``members`` who got it) for a group chat, ``webhook_key`` for a robot, ``response_code``
    (+ the payload given to ``response_url``) for an intelligent-robot reply, ``response_code``+``agentid`` for a
    card update."""

    at: datetime
    kind: str
    to: dict[str, Any]
    msgtype: str
    body: dict[str, Any]
    msgid: str | None = None


@dataclass(frozen=True, kw_only=True)
class Dropped(Delivered):
    """A message WeCom answered with errcode 0 but did not deliver (per-member limits, duplicate check)."""

    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class Received:
    """One request as the fake received it: the path, the query, the JSON body (None for another content type, or
    JSON that does not parse) and the raw body (empty for a multipart upload)."""

    path: str
    query: dict[str, str]
    body: Any
    raw: bytes


@dataclass
class PathStats:
    requests: int = 0
    errors: int = 0  # non-zero errcode, HTTP 500 or a dropped connection


@dataclass
class App:
    secret: str
    agentid: int


@dataclass(kw_only=True)
class Token:
    value: str
    secret: str
    issued_at: datetime
    expires_at: datetime
    revoked: bool = False


@dataclass(kw_only=True)
class OneUseCode:
    """A ``response_code`` for ``update_template_card`` (kind ``card``), a ``response_url`` (kind ``aibot``) or the
    ``code`` of a web authorisation (kind ``oauth``: 5 minutes, once)."""

    code: str
    kind: Literal["card", "aibot", "oauth"]
    issued_at: datetime
    expires_at: datetime
    agentid: int | None = None
    context: dict[str, Any] = field(default_factory=dict)
    used: bool = False


@dataclass(kw_only=True)
class Chat:
    chatid: str
    name: str
    owner: str
    userlist: list[str]
    agentid: int  # the app that created it: only it may get, update or send


@dataclass(kw_only=True)
class Media:
    """An upload, kept with its bytes so that tests (and the sandbox's page) see what arrived."""

    media_id: str
    key: str  # the robot that uploaded it (only it may send it); "" for the apps' media/upload (any app may)
    type: str
    filename: str
    size: int
    md5: str
    created_at: datetime
    expires_at: datetime
    data: bytes = field(default=b"", repr=False)


@dataclass(kw_only=True)
class InjectedFault:
    fault: str | int  # a named fault, or an errcode to answer with
    remaining: int
    path: str | None
    delay: float | None


class _Countdown(Protocol):
    remaining: int


F = TypeVar("F", bound=_Countdown)


def take_fault(faults: list[F], applies: Callable[[F], bool]) -> F | None:
    """The first injected fault that ``applies``, used once: removed when it has no uses left."""
    for fault in faults:
        if applies(fault):
            fault.remaining -= 1
            if fault.remaining == 0:
                faults.remove(fault)
            return fault
    return None


class SlidingWindow:
    """At most ``limit`` events in any ``seconds``-long span (stricter than calendar minutes, so a client that keeps to
    it keeps to WeCom's rule whichever way WeCom counts)."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.span = timedelta(seconds=seconds)
        self._events: deque[datetime] = deque()

    def allows(self, now: datetime) -> bool:
        while self._events and now - self._events[0] >= self.span:
            self._events.popleft()
        return len(self._events) < self.limit

    def record(self, now: datetime) -> None:
        self._events.append(now)
