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
import hashlib
import io
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import aiohttp

from bot.wecom.errors import (
    TokenInvalid,
    TransportError,
)
from bot.wecom.http import (
    APP_MARKDOWN_MAX_BYTES,
    APPCHAT_MAX_USERS,
    APPCHAT_MIN_USERS,
    CHATID_PATTERN,
    MAX_PARTIES,
    MAX_TAGS,
    MAX_USERS,
    TEXT_MAX_BYTES,
    WECOM_API_BASE,
    SendResult,
    WeComHttp,
    check_bytes,
    check_media,
    default_backoff,
    join_ids,
    split_ids,
)
from bot.wecom.tokens import TokenManager, TokenStore
from bot.wecom.webhook import ResponseUrlClient, WebhookClient

# the webhook clients live in bot.wecom.webhook, and are named here too
__all__ = ["WECOM_API_BASE", "ResponseUrlClient", "WeComClient", "WebhookClient"]

log = logging.getLogger(__name__)


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
        self._http = WeComHttp(
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
        form: Callable[[], aiohttp.MultipartWriter] | None = None,
    ) -> dict[str, Any]:
        """Any token-authenticated API: ``await client.call("POST", "message/recall", payload={"msgid": ...})``.

        ``repeatable``: whether sending the request twice does no harm (default: GET only); a request that is not
        is retried only when it certainly did not take effect (see the module's docstring). ``form`` builds a
        multipart body (one per attempt: a request consumes it) instead of the JSON ``payload``."""
        refetched = False

        async def once(token: str) -> dict[str, Any]:
            query = {**(params or {}), "access_token": token}
            return await self._http.request(
                method, self._http.url(path), path, params=query, payload=payload, data=form() if form else None
            )

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

    # --- auth/getuserinfo (page 91023) ----------------------------------------------------------------------------

    async def userid_for_code(self, code: str) -> str | None:
        """The member who signed in through the web authorisation or the QR login: the ``code`` it redirected with
        (used once; 40029 raises WeComError). None for someone who is not a member of the corp (an ``openid``)."""
        if not code or len(code) > 512:
            raise ValueError("a code is 1 to 512 characters")
        # one use: asked twice, the second answers 40029, so a lost answer is not retried blindly
        answer = await self.call("GET", "auth/getuserinfo", params={"code": code}, repeatable=False)
        userid = answer.get("userid")
        return userid if isinstance(userid, str) and userid else None

    # --- media/upload (page 90253) ---------------------------------------------------------------------------------

    async def upload_media(self, media_type: str, filename: str, data: bytes) -> str:
        """Temporary media (上传临时素材): its ``media_id``, valid 3 days, for image/voice/video/file messages of any
        of the corp's apps. multipart/form-data with the part ``media`` carrying ``filename`` (the name WeCom shows
        with a file) and ``filelength``, as the page shows it. Limits (checked here, a ValueError): more than 5
        bytes; image 10 MB (JPG or PNG), voice 2 MB, video 10 MB, file 20 MB. An upload sent twice leaves an unused
        media_id and no harm: it is retried like a read."""
        check_media(media_type, data, filename)
        # the name as UTF-8 (as browsers send it), not percent-encoded: WeCom shows it as given (?)
        shown = filename.replace("\r", " ").replace("\n", " ")
        content_type = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg" if media_type == "image" else None

        def form() -> aiohttp.MultipartWriter:
            writer = aiohttp.MultipartWriter("form-data")
            part = writer.append(io.BytesIO(data), {"Content-Type": content_type or "application/octet-stream"})
            part.set_content_disposition(
                "form-data", quote_fields=False, name="media", filename=shown, filelength=str(len(data))
            )
            return writer

        answer = await self.call("POST", "media/upload", params={"type": media_type}, form=form, repeatable=True)
        media_id = answer.get("media_id")
        if not isinstance(media_id, str) or not media_id:
            raise TransportError("media/upload answered without media_id", "media/upload")
        return media_id

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
            "touser": join_ids("touser", touser, MAX_USERS),
            "toparty": join_ids("toparty", toparty, MAX_PARTIES),
            "totag": join_ids("totag", totag, MAX_TAGS),
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
            invalid_users=split_ids(answer.get("invaliduser")),
            response_code=answer.get("response_code") or None,
            invalid_parties=split_ids(answer.get("invalidparty")),
            invalid_tags=split_ids(answer.get("invalidtag")),
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
        if chatid is not None and not CHATID_PATTERN.fullmatch(chatid):
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
        check_bytes("text content", text, TEXT_MAX_BYTES)
    elif msgtype == "markdown" and isinstance(text, str):
        check_bytes("markdown content", text, APP_MARKDOWN_MAX_BYTES)
