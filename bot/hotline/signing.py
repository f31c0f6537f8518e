"""Signed requests between the hotline platform and the bot, both directions.

``X-Hotline-Timestamp``: Unix seconds. ``X-Hotline-Signature``: ``sha256=`` + hex HMAC-SHA256, keyed with
``HOTLINE_INGEST_SECRET``, of ``{timestamp}.{raw body}``. Binding the timestamp into the signature means a
captured request cannot be replayed outside the window with a fresh timestamp.
"""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_HEADER = "X-Hotline-Timestamp"
SIGNATURE_HEADER = "X-Hotline-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_PREFIX = "sha256="


class SignatureError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return _PREFIX + mac.hexdigest()


def signed_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(secret, timestamp, body)}


def verify(secret: str, timestamp: str | None, signature: str | None, body: bytes, *, now: float, window: int) -> None:
    """Raises SignatureError unless ``signature`` is valid for ``body`` and ``timestamp`` is within the window."""
    if not timestamp or not signature:
        raise SignatureError("missing_signature", f"the {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} headers are required")
    try:
        ts = int(timestamp)
    except ValueError:
        raise SignatureError("bad_timestamp", f"{TIMESTAMP_HEADER} must be Unix seconds") from None
    if abs(now - ts) > window:
        raise SignatureError(
            "stale_timestamp", f"{TIMESTAMP_HEADER} is more than {window} s away from the server's clock"
        )
    if not hmac.compare_digest(sign(secret, ts, body), signature.strip()):
        raise SignatureError("bad_signature", "the signature does not match the body")
