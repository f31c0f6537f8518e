"""WeCom errcodes as typed exceptions: what the caller may do about each one.

Codes from the global errcode table (developer pages 90313/90455) and the pages of the APIs that return them.
``retryable``: the same request may succeed later; ``permanent``: it will not until someone changes something
(configuration, a secret, a trusted IP, the recipients, the card).
"""

from __future__ import annotations

BUSY = -1
TRANSPORT = -2  # ours: the network, a timeout, an HTTP status other than 200
DATA_VERSION_CONFLICT = 6000  # "数据版本冲突": another caller changed the data, retry later
INVALID_SECRET = 40001  # on gettoken a wrong corpsecret; elsewhere (as in WeChat) an invalid token
INVALID_TOKEN = 40014
TOKEN_EXPIRED = 42001
BAD_TEMPLATE_CARD = 42045
FREQUENCY_LIMIT = 45009
CONCURRENCY_LIMIT = 45033
IP_NOT_TRUSTED = 60020
ALL_RECIPIENTS_INVALID = 81013
BAD_WEBHOOK_KEY = 93000


class WeComError(Exception):
    """A call that did not succeed. ``path`` is the API path (``message/send``), never a URL with its query."""

    retryable: bool = False
    permanent: bool = True

    def __init__(
        self,
        errcode: int,
        errmsg: str,
        path: str,
        *,
        retryable: bool | None = None,
        permanent: bool | None = None,
    ) -> None:
        super().__init__(f"{path}: errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.path = path
        if retryable is not None:
            self.retryable = retryable
        if permanent is not None:
            self.permanent = permanent


class Busy(WeComError):
    """-1 系统繁忙: retry with backoff (WeCom suggests at most 3 times)."""

    retryable = True
    permanent = False


class TokenInvalid(WeComError):
    """40014 / 42001 / 40001: refetch the access token, then retry once."""

    retryable = True
    permanent = False


class RateLimited(WeComError):
    """45009 frequency / 45033 concurrency limit (or HTTP 429): retry later, after ``retry_after`` seconds if known."""

    retryable = True
    permanent = False

    def __init__(self, errcode: int, errmsg: str, path: str, *, retry_after: float | None = None) -> None:
        super().__init__(errcode, errmsg, path)
        self.retry_after = retry_after


class IpNotTrusted(WeComError):
    """60020: the server's IP is not among the app's trusted IPs; permanent until an admin adds it."""


class InvalidRecipients(WeComError):
    """81013: every user, party and tag was invalid or outside the app's visible range."""


class BadWebhookKey(WeComError):
    """93000: the robot's webhook key is wrong or the robot was removed."""


class BadTemplateCard(WeComError):
    """42045: the template card does not validate (or the response_code was used or expired) (?)."""


class TransportError(WeComError):
    """No WeCom answer to read: a network error, a timeout, HTTP 5xx, a body that is not JSON.

    Retryable unless the HTTP status says the request itself is wrong (4xx other than 408/429).
    ``request_sent`` is False when the connection was never made, so a retry cannot duplicate anything.
    """

    retryable = True
    permanent = False

    def __init__(
        self,
        errmsg: str,
        path: str,
        *,
        status: int | None = None,
        request_sent: bool = True,
        retryable: bool | None = None,
        permanent: bool | None = None,
    ) -> None:
        super().__init__(TRANSPORT, errmsg, path, retryable=retryable, permanent=permanent)
        self.status = status
        self.request_sent = request_sent

    @property
    def may_have_taken_effect(self) -> bool:
        """Whether WeCom may have carried the request out although no answer says so: it went out, and no 4xx
        status says it was refused (a 5xx from the gateway may come after WeCom acted on it)."""
        return self.request_sent and not (self.status is not None and 400 <= self.status < 500)


_BY_CODE: dict[int, type[WeComError]] = {
    BUSY: Busy,
    INVALID_TOKEN: TokenInvalid,
    TOKEN_EXPIRED: TokenInvalid,
    INVALID_SECRET: TokenInvalid,
    FREQUENCY_LIMIT: RateLimited,
    CONCURRENCY_LIMIT: RateLimited,
    IP_NOT_TRUSTED: IpNotTrusted,
    ALL_RECIPIENTS_INVALID: InvalidRecipients,
    BAD_WEBHOOK_KEY: BadWebhookKey,
    BAD_TEMPLATE_CARD: BadTemplateCard,
}
# transient codes without a class of their own
_TRANSIENT = {DATA_VERSION_CONFLICT}


def error_for(errcode: int, errmsg: str, path: str) -> WeComError:
    """The typed error for a non-zero errcode; unknown codes are permanent unless known to be transient."""
    if errcode == INVALID_SECRET and path == "gettoken":
        # a wrong corpsecret: refetching the token cannot help
        return WeComError(errcode, errmsg, path, retryable=False, permanent=True)
    cls = _BY_CODE.get(errcode)
    if cls is not None:
        return cls(errcode, errmsg, path)
    if errcode in _TRANSIENT:
        return WeComError(errcode, errmsg, path, retryable=True, permanent=False)
    return WeComError(errcode, errmsg, path, retryable=False, permanent=True)
