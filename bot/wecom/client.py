"""The WeCom HTTP API on aiohttp: the self-built app (``message/*``, ``appchat/*``), the group robot webhook and the
intelligent robot's ``response_url``.

Every call answers ``{"errcode": 0, ...}`` or raises a typed :mod:`bot.wecom.errors` error. Retries are bounded:
an invalid token is refetched and the call retried once; -1, 45009/45033 and transport failures are retried
``max_retries`` times with backoff through the injected ``sleep``; anything permanent raises at once. Obvious local
limits (sizes, recipient counts) raise ValueError before a request is spent.

A request that changes something (a message sent into a chat, a one-use code spent) is retried here only when it
certainly did not take effect: WeCom answered with an errcode, or the connection was never made. When the request
may have reached WeCom without its answer reaching us (a timeout after it was written, the connection reset while
the answer was read, an HTTP 5xx from the gateway, an answer that is not JSON), the TransportError says so
(``request_sent``) and the caller decides (the outbox resends it, marked where the chat has no duplicate check,
:mod:`notifiers.outbox`): repeated blindly here, it could show twice. Reads (GET) are retried on any transient
failure.

Secrets (corpsecret, access_token, webhook key, response_code) travel only in query strings; they never appear in
an error message or a log line, which name the API path instead.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bot.wecom.errors import (
    TRANSPORT,
    RateLimited,
    TokenInvalid,
    TransportError,
    WeComError,
    error_for,
)
from bot.wecom.tokens import TokenManager, TokenStore

log = logging.getLogger(__name__)

WECOM_API_BASE = "https://qyapi.weixin.qq.com"

# limits from the API pages (90236 app messages, 90248 appchat, 91770 webhook robot); bytes are UTF-8 bytes
TEXT_MAX_BYTES = 2048
APP_MARKDOWN_MAX_BYTES = 2048
WEBHOOK_MARKDOWN_MAX_BYTES = 4096
WEBHOOK_IMAGE_MAX_BYTES = 2 * 1024 * 1024  # before base64
WEBHOOK_FILE_MIN_BYTES = 5  # upload_media: "5B~20M" (the page says 5B; we require more than 5 bytes (?))
WEBHOOK_FILE_MAX_BYTES = 20 * 1024 * 1024
WEBHOOK_NEWS_MAX_ARTICLES = 8
MAX_USERS = 1000  # touser / userids
MAX_PARTIES = 100
MAX_TAGS = 100
APPCHAT_MIN_USERS, APPCHAT_MAX_USERS = 2, 2000
_CHATID = re.compile(r"[0-9A-Za-z]{1,32}")
_SECRET_IN_TEXT = re.compile(r"((?:access_token|corpsecret|key|response_code)=)[^&\s'\"]+", re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """``...?access_token=abc&x=1`` → ``...?access_token=***&x=1`` (also corpsecret, key, response_code)."""
    return _SECRET_IN_TEXT.sub(r"\1***", text)


def default_backoff(retry: int) -> float:
    """0.5, 1, 2, 4, 8, 8 … seconds before retry number ``retry`` (0-based)."""
    return min(0.5 * 2**retry, 8.0)


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def _check_bytes(what: str, text: str, limit: int) -> None:
    size = _utf8_len(text)
    if size > limit:
        raise ValueError(f"{what} is {size} bytes in UTF-8; WeCom accepts at most {limit}")


def _ids(what: str, values: Sequence[str] | Sequence[int] | str, limit: int) -> str:
    items = [values] if isinstance(values, str) else [str(v) for v in values]
    if len(items) > limit:
        raise ValueError(f"{what}: {len(items)} ids; WeCom accepts at most {limit}")
    return "|".join(items)


def _json_body(payload: Mapping[str, Any]) -> bytes:
    # WeCom rejects \uXXXX escapes in a request (errcode 40033): send the characters themselves
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After", "")
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


@dataclass(frozen=True, kw_only=True)
class SendResult:
    """What ``message/send`` answered: recipients it dropped, the msgid (to recall) and, for interactive template
    cards, the response_code that ``update_template_card`` consumes (valid 72 h, one use)."""

    msgid: str
    invalid_users: tuple[str, ...] = ()
    response_code: str | None = None
    invalid_parties: tuple[str, ...] = ()
    invalid_tags: tuple[str, ...] = ()


def _split(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value if str(v))
    if isinstance(value, str):
        return tuple(v for v in value.split("|") if v)
    return ()


class _Http:
    """One request, its answer as a dict or a typed error, and the bounded retry loop."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        timeout: float,
        max_retries: int,
        backoff: Callable[[int], float],
        sleep: Callable[[float], Awaitable[None]],
        max_retry_after: float = 10.0,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        # a connection not made within half the time fails as a connection timeout (nothing sent), not as a timeout
        # of the whole request, which cannot tell whether the request went out
        self.timeout = aiohttp.ClientTimeout(total=timeout, connect=timeout / 2)
        self.max_retries = max_retries
        self.backoff = backoff
        self.sleep = sleep
        self.max_retry_after = max_retry_after

    def url(self, path: str) -> str:
        return f"{self.base_url}/cgi-bin/{path}"

    async def request(
        self,
        method: str,
        url: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        payload: Mapping[str, Any] | None = None,
        data: aiohttp.FormData | None = None,
    ) -> dict[str, Any]:
        headers = {}
        body: bytes | aiohttp.FormData | None = data
        if payload is not None:
            body = _json_body(payload)
            headers["Content-Type"] = "application/json; charset=utf-8"
        try:
            async with self.session.request(
                method, url, params=params, data=body, headers=headers, timeout=self.timeout
            ) as response:
                status = response.status
                raw = await response.read()
                retry_after = _retry_after(response.headers)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise TransportError(
                f"cannot connect: {type(exc).__name__}: {mask_secrets(str(exc))}", path, request_sent=False
            ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            # written (in part or whole) before it failed: WeCom may have carried it out
            raise TransportError(f"{type(exc).__name__}: {mask_secrets(str(exc))}", path) from None
        if status == 429:
            raise RateLimited(TRANSPORT, "HTTP 429", path, retry_after=retry_after)
        if status != 200:
            transient = status >= 500 or status == 408
            raise TransportError(f"HTTP {status}", path, status=status, retryable=transient, permanent=not transient)
        try:
            answer = json.loads(raw)
        except ValueError:
            raise TransportError("answer is not JSON", path, status=status) from None
        if not isinstance(answer, dict):
            raise TransportError("answer is not a JSON object", path, status=status)
        try:
            errcode = int(answer.get("errcode", 0))
        except (TypeError, ValueError):
            raise TransportError("answer has a malformed errcode", path, status=status) from None
        if errcode:
            error = error_for(errcode, str(answer.get("errmsg", "")), path)
            if isinstance(error, RateLimited) and retry_after is not None:
                error.retry_after = retry_after
            raise error
        return answer

    def _delay(self, exc: WeComError, retry: int) -> float | None:
        """Seconds to wait before retry number ``retry``, or None to give up now."""
        if not exc.retryable or retry >= self.max_retries:
            return None
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            # a wait longer than this belongs to the caller's outbox, not to a request in flight
            return exc.retry_after if exc.retry_after <= self.max_retry_after else None
        return self.backoff(retry)

    async def with_retries(
        self,
        path: str,
        attempt: Callable[[], Awaitable[dict[str, Any]]],
        *,
        repeatable: bool,
        may_retry: Callable[[WeComError], bool] = lambda exc: True,
    ) -> dict[str, Any]:
        """``attempt`` until it answers, at most ``max_retries`` more times. Unless the request is ``repeatable``
        (sending it twice does no harm), a failure after which it may have been carried out is raised at once."""
        for retry in range(self.max_retries + 1):
            try:
                return await attempt()
            except WeComError as exc:
                allowed = may_retry(exc) and (repeatable or not may_have_taken_effect(exc))
                delay = self._delay(exc, retry) if allowed else None
                if delay is None:
                    raise
                log.warning(
                    "wecom %s failed (%s: %s), retry %d/%d in %.1fs",
                    path,
                    type(exc).__name__,
                    exc.errcode,
                    retry + 1,
                    self.max_retries,
                    delay,
                )
                await self.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")


def may_have_taken_effect(exc: WeComError) -> bool:
    """Whether the failed request may still have been carried out: no answer came back although the request went
    out (or part of it). An errcode answer (busy, rate limited, invalid token …) says it was not."""
    return isinstance(exc, TransportError) and exc.may_have_taken_effect


class WeComClient:
    """The self-built app: ``message/send``, ``message/update_template_card``, ``appchat/*``.

    Tokens come from ``tokens`` (memory or Redis), keyed by corp and a hash of the secret, so processes of one app
    share them and apps never mix them up.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str = WECOM_API_BASE,
        corp_id: str,
        secret: str,
        agent_id: int | None,
        tokens: TokenStore,
        clock: Callable[[], float] = time.time,
        timeout: float = 10,
        max_retries: int = 3,
        backoff: Callable[[int], float] = default_backoff,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        refresh_margin: float = 300,
        max_retry_after: float = 10.0,
    ) -> None:
        self._http = _Http(
            session,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            sleep=sleep,
            max_retry_after=max_retry_after,
        )
        self.corp_id = corp_id
        self._secret = secret
        self.agent_id = agent_id
        secret_id = hashlib.sha256(f"{corp_id}:{secret}".encode()).hexdigest()[:16]
        self.token_manager = TokenManager(
            tokens,
            self._fetch_token,
            key=f"access_token:{corp_id}:{secret_id}",
            clock=clock,
            refresh_margin=refresh_margin,
        )

    def __repr__(self) -> str:
        return f"WeComClient(corp_id={self.corp_id!r}, agent_id={self.agent_id!r})"

    async def _fetch_token(self) -> tuple[str, int]:
        answer = await self._http.request(
            "GET", self._http.url("gettoken"), "gettoken", params={"corpid": self.corp_id, "corpsecret": self._secret}
        )
        token, expires_in = answer.get("access_token"), answer.get("expires_in")
        if not isinstance(token, str) or not token or not isinstance(expires_in, int) or expires_in <= 0:
            raise TransportError("gettoken answered without access_token/expires_in", "gettoken")
        return token, expires_in

    async def call(
        self,
        method: str,
        path: str,
        *,
        payload: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        repeatable: bool | None = None,
    ) -> dict[str, Any]:
        """Any token-authenticated API: ``await client.call("POST", "message/recall", payload={"msgid": ...})``.

        ``repeatable``: whether sending the request twice does no harm (default: GET only); a request that is not
        is retried only when it certainly did not take effect (see the module's docstring)."""
        refetched = False

        async def once(token: str) -> dict[str, Any]:
            query = {**(params or {}), "access_token": token}
            return await self._http.request(method, self._http.url(path), path, params=query, payload=payload)

        async def attempt() -> dict[str, Any]:
            nonlocal refetched
            try:
                token = await self._token()
                try:
                    return await once(token)
                except TokenInvalid:
                    if refetched:
                        raise
                    # refetch and retry once; a second invalid token surfaces
                    refetched = True
                    log.warning("wecom %s: access token rejected, refetching once", path)
                    await self.token_manager.invalidate(token)
                    return await once(await self.token_manager.get())
            except TimeoutError as exc:  # a token refresh lock that never came free: nothing was sent
                raise TransportError(f"{type(exc).__name__}: {exc}", path, request_sent=False) from None

        return await self._http.with_retries(
            path,
            attempt,
            repeatable=method == "GET" if repeatable is None else repeatable,
            may_retry=lambda exc: not isinstance(exc, TokenInvalid),
        )

    async def _token(self) -> str:
        """The access token. A failure to fetch it is a failure before the call's own request was sent, however far
        the token request itself got."""
        try:
            return await self.token_manager.get()
        except TransportError as exc:
            exc.request_sent = False
            raise

    # --- message/send (page 90236) -------------------------------------------------------------------------------

    async def send_message(
        self,
        *,
        touser: Sequence[str] | str = (),
        toparty: Sequence[str] | Sequence[int] | str = (),
        totag: Sequence[str] | Sequence[int] | str = (),
        msgtype: str,
        content: Mapping[str, Any],
        safe: int = 0,
        enable_duplicate_check: int = 0,
        duplicate_check_interval: int = 1800,
    ) -> SendResult:
        if self.agent_id is None:
            raise ValueError("message/send needs the app's agent_id")
        recipients = {
            "touser": _ids("touser", touser, MAX_USERS),
            "toparty": _ids("toparty", toparty, MAX_PARTIES),
            "totag": _ids("totag", totag, MAX_TAGS),
        }
        if not any(recipients.values()):
            raise ValueError("message/send needs at least one of touser, toparty, totag")
        _check_app_content(msgtype, content)
        payload: dict[str, Any] = {k: v for k, v in recipients.items() if v}
        payload.update(
            msgtype=msgtype,
            agentid=self.agent_id,
            safe=safe,
            enable_duplicate_check=enable_duplicate_check,
            duplicate_check_interval=duplicate_check_interval,
        )
        payload[msgtype] = dict(content)
        answer = await self.call("POST", "message/send", payload=payload)
        return SendResult(
            msgid=str(answer.get("msgid", "")),
            invalid_users=_split(answer.get("invaliduser")),
            response_code=answer.get("response_code") or None,
            invalid_parties=_split(answer.get("invalidparty")),
            invalid_tags=_split(answer.get("invalidtag")),
        )

    async def send_text(
        self,
        text: str,
        *,
        touser: Sequence[str] | str = (),
        toparty: Sequence[str] | Sequence[int] | str = (),
        totag: Sequence[str] | Sequence[int] | str = (),
        safe: int = 0,
        enable_duplicate_check: int = 0,
        duplicate_check_interval: int = 1800,
    ) -> SendResult:
        return await self.send_message(
            touser=touser,
            toparty=toparty,
            totag=totag,
            msgtype="text",
            content={"content": text},
            safe=safe,
            enable_duplicate_check=enable_duplicate_check,
            duplicate_check_interval=duplicate_check_interval,
        )

    async def send_markdown(
        self,
        markdown: str,
        *,
        touser: Sequence[str] | str = (),
        toparty: Sequence[str] | Sequence[int] | str = (),
        totag: Sequence[str] | Sequence[int] | str = (),
        enable_duplicate_check: int = 0,
        duplicate_check_interval: int = 1800,
    ) -> SendResult:
        return await self.send_message(
            touser=touser,
            toparty=toparty,
            totag=totag,
            msgtype="markdown",
            content={"content": markdown},
            enable_duplicate_check=enable_duplicate_check,
            duplicate_check_interval=duplicate_check_interval,
        )

    async def send_textcard(
        self,
        *,
        title: str,
        description: str,
        url: str,
        btntxt: str | None = None,
        touser: Sequence[str] | str = (),
        toparty: Sequence[str] | Sequence[int] | str = (),
        totag: Sequence[str] | Sequence[int] | str = (),
        enable_duplicate_check: int = 0,
        duplicate_check_interval: int = 1800,
    ) -> SendResult:
        card: dict[str, Any] = {"title": title, "description": description, "url": url}
        if btntxt:
            card["btntxt"] = btntxt
        return await self.send_message(
            touser=touser,
            toparty=toparty,
            totag=totag,
            msgtype="textcard",
            content=card,
            enable_duplicate_check=enable_duplicate_check,
            duplicate_check_interval=duplicate_check_interval,
        )

    async def send_template_card(
        self,
        card: Mapping[str, Any],
        *,
        touser: Sequence[str] | str = (),
        toparty: Sequence[str] | Sequence[int] | str = (),
        totag: Sequence[str] | Sequence[int] | str = (),
        enable_duplicate_check: int = 0,
        duplicate_check_interval: int = 1800,
    ) -> SendResult:
        """A ``template_card`` (``card["card_type"]``: text_notice, news_notice, button_interaction, vote_interaction,
        multiple_interaction); the interactive ones return a ``response_code``."""
        if "card_type" not in card:
            raise ValueError("a template card needs its card_type")
        return await self.send_message(
            touser=touser,
            toparty=toparty,
            totag=totag,
            msgtype="template_card",
            content=card,
            enable_duplicate_check=enable_duplicate_check,
            duplicate_check_interval=duplicate_check_interval,
        )

    # --- message/update_template_card (page 94888) ---------------------------------------------------------------

    async def update_template_card(
        self,
        *,
        response_code: str,
        card: Mapping[str, Any] | None = None,
        replace_name: str | None = None,
        userids: Sequence[str] = (),
        partyids: Sequence[int] = (),
        tagids: Sequence[int] = (),
        atall: bool = False,
    ) -> None:
        """Replace the card for its recipients (``card``), or only grey out its button with ``replace_name``.
        ``response_code`` is single use and valid 72 h."""
        if self.agent_id is None:
            raise ValueError("message/update_template_card needs the app's agent_id")
        if (card is None) == (replace_name is None):
            raise ValueError("give either a new card or a button replace_name")
        if not response_code:
            raise ValueError("update_template_card needs the response_code")
        for what, ids, limit in (("userids", userids, MAX_USERS), ("partyids", partyids, MAX_PARTIES)):
            if len(ids) > limit:
                raise ValueError(f"{what}: {len(ids)} ids; WeCom accepts at most {limit}")
        if len(tagids) > MAX_TAGS:
            raise ValueError(f"tagids: {len(tagids)} ids; WeCom accepts at most {MAX_TAGS}")
        payload: dict[str, Any] = {"agentid": self.agent_id, "response_code": response_code, "atall": int(atall)}
        if userids:
            payload["userids"] = [userids] if isinstance(userids, str) else list(userids)
        if partyids:
            payload["partyids"] = list(partyids)
        if tagids:
            payload["tagids"] = list(tagids)
        if card is not None:
            payload["template_card"] = dict(card)
        else:
            payload["button"] = {"replace_name": replace_name}
        await self.call("POST", "message/update_template_card", payload=payload)

    # --- appchat (pages 90245, 98913, 98914, 90248) --------------------------------------------------------------

    async def appchat_create(
        self, *, userlist: Sequence[str], name: str | None = None, owner: str | None = None, chatid: str | None = None
    ) -> str:
        users = list(userlist)
        if not APPCHAT_MIN_USERS <= len(users) <= APPCHAT_MAX_USERS:
            raise ValueError(f"an app chat needs {APPCHAT_MIN_USERS}–{APPCHAT_MAX_USERS} members, got {len(users)}")
        if chatid is not None and not _CHATID.fullmatch(chatid):
            raise ValueError("chatid: at most 32 characters of 0-9, a-z, A-Z")
        payload: dict[str, Any] = {"userlist": users}
        if name is not None:
            payload["name"] = name
        if owner is not None:
            payload["owner"] = owner
        if chatid is not None:
            payload["chatid"] = chatid
        answer = await self.call("POST", "appchat/create", payload=payload)
        return str(answer["chatid"])

    async def appchat_get(self, chatid: str) -> dict[str, Any]:
        answer = await self.call("GET", "appchat/get", params={"chatid": chatid})
        info = answer.get("chat_info")
        return dict(info) if isinstance(info, dict) else {}

    async def appchat_update(
        self,
        chatid: str,
        *,
        name: str | None = None,
        owner: str | None = None,
        add_user_list: Sequence[str] = (),
        del_user_list: Sequence[str] = (),
    ) -> None:
        payload: dict[str, Any] = {"chatid": chatid}
        if name is not None:
            payload["name"] = name
        if owner is not None:
            payload["owner"] = owner
        if add_user_list:
            payload["add_user_list"] = list(add_user_list)
        if del_user_list:
            payload["del_user_list"] = list(del_user_list)
        await self.call("POST", "appchat/update", payload=payload)

    async def appchat_send(self, chatid: str, msgtype: str, content: Mapping[str, Any], *, safe: int = 0) -> None:
        """Into a group this app created (``appchat_create``); not into groups made in the client."""
        _check_app_content(msgtype, content)
        payload = {"chatid": chatid, "msgtype": msgtype, msgtype: dict(content), "safe": safe}
        await self.call("POST", "appchat/send", payload=payload)


def _check_app_content(msgtype: str, content: Mapping[str, Any]) -> None:
    text = content.get("content")
    if msgtype == "text" and isinstance(text, str):
        _check_bytes("text content", text, TEXT_MAX_BYTES)
    elif msgtype == "markdown" and isinstance(text, str):
        _check_bytes("markdown content", text, APP_MARKDOWN_MAX_BYTES)


class WebhookClient:
    """The group robot (消息推送, page 91770): ``webhook/send?key=`` into the one group it was added to. No token;
    the key is the secret. WeCom allows 20 messages a minute per robot: pace upstream, this only retries."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str = WECOM_API_BASE,
        timeout: float = 10,
        max_retries: int = 3,
        backoff: Callable[[int], float] = default_backoff,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_retry_after: float = 10.0,
    ) -> None:
        self._http = _Http(
            session,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            sleep=sleep,
            max_retry_after=max_retry_after,
        )

    async def _post(
        self,
        key: str,
        path: str,
        *,
        payload: Mapping[str, Any] | None = None,
        form: Callable[[], aiohttp.FormData] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        if not key:
            raise ValueError("a webhook robot needs its key")
        query = {**(params or {}), "key": key}

        async def attempt() -> dict[str, Any]:
            # a FormData is consumed by a request: build one per attempt
            return await self._http.request(
                "POST", self._http.url(path), path, params=query, payload=payload, data=form() if form else None
            )

        # an upload twice leaves an unused media_id; a message twice shows twice
        return await self._http.with_retries(path, attempt, repeatable=path == "webhook/upload_media")

    async def send(self, key: str, msgtype: str, content: Mapping[str, Any]) -> None:
        await self._post(key, "webhook/send", payload={"msgtype": msgtype, msgtype: dict(content)})

    async def send_text(
        self, key: str, text: str, *, mentioned_list: Sequence[str] = (), mentioned_mobile_list: Sequence[str] = ()
    ) -> None:
        """``mentioned_list`` takes userids (or "@all"); ``mentioned_mobile_list`` phone numbers."""
        _check_bytes("text content", text, TEXT_MAX_BYTES)
        content: dict[str, Any] = {"content": text}
        if mentioned_list:
            content["mentioned_list"] = list(mentioned_list)
        if mentioned_mobile_list:
            content["mentioned_mobile_list"] = list(mentioned_mobile_list)
        await self.send(key, "text", content)

    async def send_markdown(self, key: str, markdown: str) -> None:
        """Markdown with ``<@userid>`` mentions and ``<font color="info|comment|warning">``."""
        _check_bytes("markdown content", markdown, WEBHOOK_MARKDOWN_MAX_BYTES)
        await self.send(key, "markdown", {"content": markdown})

    async def send_markdown_v2(self, key: str, markdown: str) -> None:
        """Fuller markdown (tables, code blocks); no mentions, no font colours. Same byte limit assumed (?)."""
        _check_bytes("markdown_v2 content", markdown, WEBHOOK_MARKDOWN_MAX_BYTES)
        await self.send(key, "markdown_v2", {"content": markdown})

    async def send_image(self, key: str, data: bytes) -> None:
        """A JPG or PNG of at most 2 MB (before base64), sent as base64 with the md5 of the raw bytes."""
        if not data:
            raise ValueError("empty image")
        if len(data) > WEBHOOK_IMAGE_MAX_BYTES:
            raise ValueError(f"image is {len(data)} bytes; the robot accepts at most {WEBHOOK_IMAGE_MAX_BYTES}")
        content = {"base64": base64.b64encode(data).decode("ascii"), "md5": hashlib.md5(data).hexdigest()}
        await self.send(key, "image", content)

    async def upload_media(self, key: str, data: bytes, filename: str, *, media_type: str = "file") -> str:
        """``webhook/upload_media``: a media_id valid 3 days, usable by this robot only."""
        if len(data) <= WEBHOOK_FILE_MIN_BYTES or len(data) > WEBHOOK_FILE_MAX_BYTES:
            raise ValueError(
                f"file is {len(data)} bytes; the robot takes more than {WEBHOOK_FILE_MIN_BYTES} and at most "
                f"{WEBHOOK_FILE_MAX_BYTES}"
            )
        if not filename:
            raise ValueError("a file needs a name")

        # the name as UTF-8 (as browsers send it), not percent-encoded: WeCom shows it to the group as given (?)
        shown = filename.replace("\r", " ").replace("\n", " ")

        def form() -> aiohttp.FormData:
            body = aiohttp.FormData(quote_fields=False)
            body.add_field("media", data, filename=shown, content_type="application/octet-stream")
            return body

        answer = await self._post(key, "webhook/upload_media", form=form, params={"type": media_type})
        media_id = answer.get("media_id")
        if not isinstance(media_id, str) or not media_id:
            raise TransportError("upload_media answered without media_id", "webhook/upload_media")
        return media_id

    async def send_file(self, key: str, data: bytes, filename: str) -> None:
        media_id = await self.upload_media(key, data, filename)
        await self.send(key, "file", {"media_id": media_id})

    async def send_news(self, key: str, articles: Sequence[Mapping[str, Any]]) -> None:
        """1–8 articles of ``title``, ``url``, optional ``description`` and ``picurl``."""
        if not 1 <= len(articles) <= WEBHOOK_NEWS_MAX_ARTICLES:
            raise ValueError(f"news takes 1–{WEBHOOK_NEWS_MAX_ARTICLES} articles, got {len(articles)}")
        await self.send(key, "news", {"articles": [dict(a) for a in articles]})

    async def send_template_card(self, key: str, card: Mapping[str, Any]) -> None:
        """Notice cards only (text_notice, news_notice): a robot cannot receive the clicks."""
        if card.get("card_type") not in ("text_notice", "news_notice"):
            raise ValueError("the webhook robot sends text_notice or news_notice template cards only")
        await self.send(key, "template_card", card)


class ResponseUrlClient:
    """The intelligent robot's ``response_url`` (page 101138): one reply, within 1 hour, to the URL a callback gave.

    Only URLs on WeCom's API host (or ``base_url``) are accepted, and they are sent to ``base_url``, so a proxy or
    the fake server sees them too. A response_url is single use: a reply is retried only when it certainly was not
    taken (the connection failed, or WeCom answered with an error such as -1 busy).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str = WECOM_API_BASE,
        timeout: float = 10,
        max_retries: int = 2,
        backoff: Callable[[int], float] = default_backoff,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._http = _Http(
            session, base_url=base_url, timeout=timeout, max_retries=max_retries, backoff=backoff, sleep=sleep
        )
        self._origins = {_origin(WECOM_API_BASE), _origin(base_url)}

    def _target(self, response_url: str) -> tuple[str, str]:
        parts = urlsplit(response_url)
        if f"{parts.scheme}://{parts.netloc}" not in self._origins or not parts.path.startswith("/cgi-bin/"):
            raise ValueError("not a WeCom response_url")
        url = self._http.base_url + parts.path + (f"?{parts.query}" if parts.query else "")
        return url, parts.path.removeprefix("/cgi-bin/")

    async def reply(self, response_url: str, payload: Mapping[str, Any]) -> None:
        url, path = self._target(response_url)
        if "msgtype" not in payload:
            raise ValueError("a reply needs its msgtype")

        async def attempt() -> dict[str, Any]:
            return await self._http.request("POST", url, path, payload=payload)

        await self._http.with_retries(path, attempt, repeatable=False)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
