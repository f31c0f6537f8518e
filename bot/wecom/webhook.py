"""The group robot's webhook (消息推送) and the intelligent robot's one-use ``response_url``: no token, the URL's
key or code is the secret."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bot.wecom.errors import (
    TransportError,
)
from bot.wecom.http import (
    TEXT_MAX_BYTES,
    WEBHOOK_FILE_MAX_BYTES,
    WEBHOOK_FILE_MIN_BYTES,
    WEBHOOK_IMAGE_MAX_BYTES,
    WEBHOOK_MARKDOWN_MAX_BYTES,
    WEBHOOK_NEWS_MAX_ARTICLES,
    WECOM_API_BASE,
    WeComHttp,
    check_bytes,
    check_image,
    default_backoff,
)

log = logging.getLogger(__name__)


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
        self._http = WeComHttp(
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
        check_bytes("text content", text, TEXT_MAX_BYTES)
        content: dict[str, Any] = {"content": text}
        if mentioned_list:
            content["mentioned_list"] = list(mentioned_list)
        if mentioned_mobile_list:
            content["mentioned_mobile_list"] = list(mentioned_mobile_list)
        await self.send(key, "text", content)

    async def send_markdown(self, key: str, markdown: str) -> None:
        """Markdown with ``<@userid>`` mentions and ``<font color="info|comment|warning">``."""
        check_bytes("markdown content", markdown, WEBHOOK_MARKDOWN_MAX_BYTES)
        await self.send(key, "markdown", {"content": markdown})

    async def send_markdown_v2(self, key: str, markdown: str) -> None:
        """Fuller markdown (tables, code blocks); no mentions, no font colours. Same byte limit assumed (?)."""
        check_bytes("markdown_v2 content", markdown, WEBHOOK_MARKDOWN_MAX_BYTES)
        await self.send(key, "markdown_v2", {"content": markdown})

    async def send_image(self, key: str, data: bytes) -> None:
        """A JPG or PNG of at most 2 MB (before base64), sent as base64 with the md5 of the raw bytes."""
        if not data:
            raise ValueError("empty image")
        if len(data) > WEBHOOK_IMAGE_MAX_BYTES:
            raise ValueError(f"image is {len(data)} bytes; the robot accepts at most {WEBHOOK_IMAGE_MAX_BYTES}")
        check_image(data)
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
            body.add_field("media", io.BytesIO(data), filename=shown, content_type="application/octet-stream")
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
        self._http = WeComHttp(
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
