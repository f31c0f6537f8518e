"""Callback security shared by the self-built app (XML) and the intelligent robot (JSON).

The scheme (developer pages 90968 / 91144 for the app, 101033 for the robot):

* ``msg_signature = sha1(''.join(sorted([token, timestamp, nonce, encrypt])))``, lowercase hex; compared here in
  constant time, **before** anything is decrypted (so a forged request learns nothing from padding errors).
* AES-256-CBC, key = base64(EncodingAESKey + "="), IV = key[:16]. Plaintext = 16 random bytes ‖ uint32 big-endian
  length ‖ message ‖ receive id, PKCS#7-padded to a multiple of **32** bytes.
* receive id: the corpid for the app, ``""`` for an enterprise-internal intelligent robot ("企业内部智能机器人场景中,
  ReceiveId为\"\"", page 101033). It is checked on every decrypt; for the robot that means *nothing* may follow the
  message.

Why not wechatpy's ``PrpCrypto`` / ``WeChatCrypto`` (1.8.18): its signature check is a plain ``!=``; it does not
validate PKCS#7 padding or the length field, so with an empty receive id a frame whose length field overruns the
payload is accepted as a truncated message (the trailing "receive id" slice is then ``""`` and matches); it returns
``str`` (we want the exact bytes); its random prefix comes from ``random.sample``; and its failures are assorted
``struct.error`` / ``IndexError`` / ``UnicodeDecodeError`` tracebacks. The framing is a few lines, so it lives here;
the AES primitive is the ``cryptography`` package, the backend wechatpy itself prefers. The tests check interop with
wechatpy in both directions.

Query strings and ``+``: WeCom sends ``echostr`` (base64, may contain ``+ / =``) percent-encoded, but a framework
that decodes the query as a form (``+`` → space) corrupts it. The HTTP layer must read raw values with
:func:`raw_query_param`. As a safety net :meth:`CallbackCrypto.verify_url` maps spaces in ``echostr`` back to ``+``:
base64 never contains a space, so the mapping is unambiguous, and the signature is then checked over the restored
value, so nothing unsigned gets through. ``msg_signature`` (hex), ``timestamp`` and ``nonce`` are used exactly as
given: no such repair is safe or needed there, and the POST body's ``encrypt`` is never repaired.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import unquote

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bot.domain.clock import TZ

ErrorCode = Literal[
    "missing_signature", "bad_signature", "bad_timestamp", "decrypt_failed", "wrong_receiver", "malformed"
]

BLOCK = 32  # WeCom pads to 32-byte blocks, not AES's 16
RANDOM_LEN = 16
DEFAULT_MAX_SKEW = timedelta(minutes=5)

_NONCE = re.compile(r"[0-9A-Za-z_-]{1,128}")
_TIMESTAMP = re.compile(r"[0-9]{1,20}")

_XML_REPLY = (
    "<xml>\n"
    "<Encrypt><![CDATA[{encrypt}]]></Encrypt>\n"
    "<MsgSignature><![CDATA[{signature}]]></MsgSignature>\n"
    "<TimeStamp>{timestamp}</TimeStamp>\n"
    "<Nonce><![CDATA[{nonce}]]></Nonce>\n"
    "</xml>"
)


class CallbackCryptoError(Exception):
    """A callback that cannot be trusted or read. ``code`` is one of :data:`ErrorCode`; ``message`` is safe to log
    (it never contains the token, the key or decrypted content)."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code: ErrorCode = code
        self.message = message


def _utf8(value: str) -> bytes:
    # surrogatepass: a query value with a lone surrogate must fail the signature check, not raise.
    return value.encode("utf-8", "surrogatepass")


class CallbackCrypto:
    """Sign, verify, encrypt and decrypt WeCom callbacks for one (token, EncodingAESKey, receive id).

    ``random_bytes`` supplies the 16-byte prefix of each encrypted frame; tests inject a fixed one to reproduce
    Tencent's published ciphertexts.
    """

    def __init__(
        self,
        token: str,
        encoding_aes_key: str,
        receive_id: str,
        *,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        if not token:
            raise ValueError("callback token is empty")
        if len(encoding_aes_key) != 43:
            raise ValueError("EncodingAESKey must be 43 characters")
        try:
            key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("EncodingAESKey is not base64") from exc
        if len(key) != 32:  # pragma: no cover - 43 valid base64 characters always give 32 bytes
            raise ValueError("EncodingAESKey must decode to 32 bytes")
        self._token = token
        # one Cipher for the key (IV = key[:16]); encryption takes a context from it per message. Decryption, on
        # every callback, reuses one context (creating one costs several times the decryption of a message):
        # CBC chains each block to the ciphertext block before it, so feeding the IV as a ciphertext block first
        # (its output discarded) decrypts the next message exactly as a fresh context with that IV would.
        self._cipher = Cipher(algorithms.AES(key), modes.CBC(key[:16]))
        self._iv = key[:16]
        self._decryptor = self._cipher.decryptor()
        self._decrypting = threading.Lock()
        self._receive_id = receive_id.encode("utf-8")
        self._random_bytes = random_bytes

    @property
    def receive_id(self) -> str:
        return self._receive_id.decode("utf-8")

    # -- signatures -------------------------------------------------------------------------------------------

    def signature(self, timestamp: str, nonce: str, encrypt: str) -> str:
        """``sha1`` of the sorted, concatenated ``[token, timestamp, nonce, encrypt]``, lowercase hex."""
        parts = sorted([self._token, timestamp, nonce, encrypt])
        return hashlib.sha1(_utf8("".join(parts))).hexdigest()

    def _check_signature(
        self, msg_signature: str | None, timestamp: str | None, nonce: str | None, encrypt: str
    ) -> None:
        if not msg_signature:
            raise CallbackCryptoError("missing_signature", "msg_signature is missing")
        if not timestamp or not nonce:
            raise CallbackCryptoError("missing_signature", "timestamp or nonce is missing")
        expected = self.signature(timestamp, nonce, encrypt)
        if not hmac.compare_digest(expected.encode("ascii"), _utf8(msg_signature)):
            raise CallbackCryptoError("bad_signature", "msg_signature does not match")

    # -- inbound ----------------------------------------------------------------------------------------------

    def verify_url(
        self, msg_signature: str | None, timestamp: str | None, nonce: str | None, echostr: str | None
    ) -> str:
        """URL verification (GET): check the signature, decrypt ``echostr`` and return its plaintext, which the
        HTTP layer answers verbatim (no quotes, no newline) within 1 s. Spaces in ``echostr`` are taken as ``+``
        mangled by form decoding (see the module docstring)."""
        if not echostr:
            raise CallbackCryptoError("malformed", "echostr is missing")
        echostr = echostr.replace(" ", "+")
        self._check_signature(msg_signature, timestamp, nonce, echostr)
        plain = self._open(echostr)
        try:
            return plain.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CallbackCryptoError("decrypt_failed", "echostr plaintext is not UTF-8") from exc

    def decrypt(
        self, msg_signature: str | None, timestamp: str | None, nonce: str | None, encrypt: str | None
    ) -> bytes:
        """A callback POST: check the signature over the envelope's ``encrypt``, decrypt it, check the receive id
        and return the message bytes (XML for the app, JSON for the robot)."""
        if not encrypt:
            raise CallbackCryptoError("malformed", "encrypt is missing")
        self._check_signature(msg_signature, timestamp, nonce, encrypt)
        return self._open(encrypt)

    def _open(self, encrypt: str) -> bytes:
        try:
            raw = base64.b64decode(encrypt.encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error, ValueError) as exc:
            raise CallbackCryptoError("decrypt_failed", "encrypt is not valid base64") from exc
        if len(raw) < BLOCK or len(raw) % 16:
            raise CallbackCryptoError("decrypt_failed", f"ciphertext length {len(raw)} is not a whole AES frame")
        plain = self._decrypt_blocks(raw)
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise CallbackCryptoError("decrypt_failed", "bad padding (wrong EncodingAESKey?)")
        body = plain[RANDOM_LEN:-pad]
        if len(body) < 4:
            raise CallbackCryptoError("decrypt_failed", "frame too short for its length field")
        length = int.from_bytes(body[:4], "big")
        if length > len(body) - 4:
            raise CallbackCryptoError("decrypt_failed", "length field exceeds the frame")
        message, receive_id = body[4 : 4 + length], body[4 + length :]
        if not hmac.compare_digest(receive_id, self._receive_id):
            shown = receive_id[:64].decode("utf-8", "replace")
            raise CallbackCryptoError("wrong_receiver", f"message is for receive id {shown!r}")
        return message

    def _decrypt_blocks(self, raw: bytes) -> bytes:
        """AES-256-CBC decryption of whole blocks with the key's IV, through the reused context (see __init__)."""
        with self._decrypting:
            self._decryptor.update(self._iv)  # the chain restarts from the IV
            return self._decryptor.update(raw)

    # -- outbound ---------------------------------------------------------------------------------------------

    def encrypt(self, plaintext: bytes) -> str:
        """Encrypt one message for this receive id: base64 ciphertext, as the ``Encrypt`` / ``encrypt`` field."""
        prefix = self._random_bytes(RANDOM_LEN)
        if len(prefix) != RANDOM_LEN:
            raise ValueError("random_bytes must return 16 bytes")
        frame = prefix + len(plaintext).to_bytes(4, "big") + plaintext + self._receive_id
        pad = BLOCK - len(frame) % BLOCK
        frame += bytes([pad]) * pad
        encryptor = self._cipher.encryptor()
        return base64.b64encode(encryptor.update(frame) + encryptor.finalize()).decode("ascii")

    def encrypt_xml_reply(self, xml: str, nonce: str, timestamp: str) -> str:
        """The app's passive reply: ``<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>``, byte for byte
        the layout of Tencent's sample library."""
        _check_reply_params(nonce, timestamp)
        encrypt = self.encrypt(xml.encode("utf-8"))
        signature = self.signature(timestamp, nonce, encrypt)
        return _XML_REPLY.format(encrypt=encrypt, signature=signature, timestamp=timestamp, nonce=nonce)

    def encrypt_json_reply(self, payload: Mapping[str, Any], nonce: str, timestamp: str) -> str:
        """The robot's passive reply: ``{"encrypt","msgsignature","timestamp","nonce"}`` (timestamp as a string,
        as Tencent's ``WXBizJsonMsgCrypt`` writes it)."""
        _check_reply_params(nonce, timestamp)
        try:
            body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise CallbackCryptoError("malformed", f"reply payload is not JSON: {exc}") from exc
        encrypt = self.encrypt(body.encode("utf-8"))
        signature = self.signature(timestamp, nonce, encrypt)
        return json.dumps({"encrypt": encrypt, "msgsignature": signature, "timestamp": timestamp, "nonce": nonce})


def _check_reply_params(nonce: str, timestamp: str) -> None:
    if not _NONCE.fullmatch(nonce):
        raise CallbackCryptoError("malformed", "reply nonce must be 1-128 characters of [0-9A-Za-z_-]")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise CallbackCryptoError("malformed", "reply timestamp must be decimal seconds")


def check_timestamp(timestamp: str | None, *, now: datetime, max_skew: timedelta = DEFAULT_MAX_SKEW) -> datetime:
    """Optional replay window: the callback's ``timestamp`` (Unix seconds) must be within ``max_skew`` of ``now``.
    Returns it as an aware Asia/Shanghai datetime. Signature checks do not depend on this."""
    if not timestamp:
        raise CallbackCryptoError("missing_signature", "timestamp is missing")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise CallbackCryptoError("bad_timestamp", "timestamp is not decimal seconds")
    try:
        at = datetime.fromtimestamp(int(timestamp), TZ)
    except (OverflowError, OSError, ValueError) as exc:
        raise CallbackCryptoError("bad_timestamp", "timestamp out of range") from exc
    if abs(at - now) > max_skew:
        raise CallbackCryptoError("bad_timestamp", f"timestamp is {(at - now).total_seconds():+.0f} s from now")
    return at


def raw_query_param(query_string: str, name: str) -> str | None:
    """The first value of ``name`` in a raw query string, percent-decoded **without** turning ``+`` into a space
    (``urllib.parse.unquote``, not ``unquote_plus``). ``None`` when absent; ``""`` for ``name`` or ``name=``.
    Use it for ``msg_signature``, ``timestamp``, ``nonce`` and ``echostr``. In aiohttp pass
    ``request.rel_url.raw_query_string``: ``request.query`` and ``request.query_string`` are already decoded, with
    ``+`` turned into a space."""
    return raw_query_params(query_string, name)[0]


def raw_query_params(query_string: str, *names: str) -> tuple[str | None, ...]:
    """:func:`raw_query_param` for several names, in one pass over the query: their values in the order asked."""
    found: dict[str, str] = {}
    for part in query_string.removeprefix("?").split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        if "%" in key:
            key = unquote(key)
        if key in names and key not in found:
            found[key] = unquote(value) if "%" in value else value
            if len(found) == len(names):
                break
    return tuple(found.get(name) for name in names)
