"""What every WeCom HTTP call shares: the limits WeCom documents, the request loop with its retries and backoff
(:class:`WeComHttp`), and keeping secrets out of messages."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.wecom.errors import (
    TRANSPORT,
    RateLimited,
    TransportError,
    WeComError,
    error_for,
)

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
# media/upload (page 90253, 上传临时素材): every file more than 5 bytes; image 10 MB (JPG, PNG), voice 2 MB (AMR),
# video 10 MB (MP4), file 20 MB; the media_id is valid 3 days and shared by the corp's apps
MEDIA_MIN_BYTES = 5  # "所有文件size必须大于5个字节"
MEDIA_MAX_BYTES = {
    "image": 10 * 1024 * 1024,
    "voice": 2 * 1024 * 1024,
    "video": 10 * 1024 * 1024,
    "file": 20 * 1024 * 1024,
}
_PNG, _JPG = b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"
MAX_USERS = 1000  # touser / userids
MAX_PARTIES = 100
MAX_TAGS = 100
APPCHAT_MIN_USERS, APPCHAT_MAX_USERS = 2, 2000
CHATID_PATTERN = re.compile(r"[0-9A-Za-z]{1,32}")
_SECRET_IN_TEXT = re.compile(r"((?:access_token|corpsecret|key|response_code)=)[^&\s'\"]+", re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """``...?access_token=abc&x=1`` → ``...?access_token=***&x=1`` (also corpsecret, key, response_code)."""
    return _SECRET_IN_TEXT.sub(r"\1***", text)


def default_backoff(retry: int) -> float:
    """0.5, 1, 2, 4, 8, 8 … seconds before retry number ``retry`` (0-based)."""
    return min(0.5 * 2**retry, 8.0)


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def check_bytes(what: str, text: str, limit: int) -> None:
    size = _utf8_len(text)
    if size > limit:
        raise ValueError(f"{what} is {size} bytes in UTF-8; WeCom accepts at most {limit}")


def check_image(data: bytes) -> None:
    """An image WeCom shows: JPG or PNG (pages 90253, 91770), told by its first bytes."""
    if not (data.startswith(_PNG) or data.startswith(_JPG)):
        raise ValueError("an image must be a JPG or a PNG")


def check_media(media_type: str, data: bytes, filename: str) -> None:
    """What ``media/upload`` takes (page 90253): its four types, more than 5 bytes, the type's limit, a name; an
    image a JPG or PNG."""
    limit = MEDIA_MAX_BYTES.get(media_type)
    if limit is None:
        raise ValueError(f"media type {media_type!r}: WeCom takes image, voice, video or file")
    if not MEDIA_MIN_BYTES < len(data) <= limit:
        raise ValueError(
            f"{media_type} is {len(data)} bytes; WeCom takes more than {MEDIA_MIN_BYTES} and at most {limit}"
        )
    if not filename.strip():
        raise ValueError("an upload needs a filename")
    if media_type == "image":
        check_image(data)


def join_ids(what: str, values: Sequence[str] | Sequence[int] | str, limit: int) -> str:
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


def split_ids(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value if str(v))
    if isinstance(value, str):
        return tuple(v for v in value.split("|") if v)
    return ()


class WeComHttp:
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
        data: aiohttp.FormData | aiohttp.MultipartWriter | None = None,
    ) -> dict[str, Any]:
        headers = {}
        body: bytes | aiohttp.FormData | aiohttp.MultipartWriter | None = data
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
