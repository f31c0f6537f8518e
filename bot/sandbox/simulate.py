"""What WeCom sends the bot when a person types or clicks, built the way WeCom builds it.

* In a group: the intelligent robot's JSON callback (pages 100719 and 101027): ``msgtype`` ``text`` with the robot's
  ``@Name`` in front of the text, ``chattype`` ``group``, ``chatid``, ``from.userid``, a unique ``msgid``,
  ``aibotid`` and a one-use ``response_url``; a card click is ``msgtype`` ``event`` with
  ``event.template_card_event``. Encrypted with the robot's key for receive id ``""``, wrapped as
  ``{"encrypt": ...}``.
* In a private chat with the app: the app's XML (pages 90239-90241): ``MsgType`` ``text`` with ``FromUserName``,
  ``AgentID`` and ``MsgId``; a card click is ``MsgType`` ``event``, ``Event`` ``template_card_event`` with
  ``EventKey``, ``TaskId``, ``CardType`` and ``ResponseCode``. Encrypted for the corp id and wrapped in
  ``<xml><ToUserName/><Encrypt/><AgentID/></xml>``.

Both are signed (``msg_signature`` over token, timestamp, nonce and the ciphertext) and POSTed to the bot's own
callback URL with ``msg_signature``, ``timestamp`` and ``nonce`` in the query, exactly as WeCom does. Passive
replies in the answer are opened the same way: the sandbox is WeCom's side of the conversation.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree

from bot.wecom.crypto import CallbackCrypto, CallbackCryptoError


def _cdata(value: str) -> str:
    # "]]>" cannot stand inside CDATA: end the section after "]]" and open another before ">"
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _xml(fields: Mapping[str, str | int]) -> bytes:
    parts = [f"<{k}>{v}</{k}>" if isinstance(v, int) else f"<{k}>{_cdata(v)}</{k}>" for k, v in fields.items()]
    return ("<xml>" + "".join(parts) + "</xml>").encode("utf-8")


def new_msgid() -> str:
    """A message id: unique, as WeCom's are (the bot deduplicates by it)."""
    return secrets.token_urlsafe(18)


def new_app_msgid() -> str:
    """The app's ``MsgId``: a 64-bit number."""
    return str(secrets.randbits(63))


def new_nonce() -> str:
    return secrets.token_hex(8)


# -- plaintexts ---------------------------------------------------------------------------------------------------


def robot_text(
    *,
    aibot_id: str,
    robot_name: str,
    chatid: str | None,
    userid: str,
    text: str,
    response_url: str,
    msgid: str | None = None,
) -> bytes:
    """A text message to the intelligent robot: in a group the text starts with ``@robot_name``."""
    payload: dict[str, Any] = {
        "msgid": msgid or new_msgid(),
        "aibotid": aibot_id,
        "chattype": "group" if chatid else "single",
        "from": {"userid": userid},
        "response_url": response_url,
        "msgtype": "text",
        "text": {"content": f"@{robot_name} {text}" if chatid else text},
    }
    if chatid:
        payload["chatid"] = chatid
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def robot_card_click(
    *,
    aibot_id: str,
    chatid: str | None,
    userid: str,
    task_id: str,
    event_key: str,
    card_type: str,
    response_url: str,
    create_time: int,
    msgid: str | None = None,
) -> bytes:
    """A click on a card the robot sent (``template_card_event``, nested as on page 101027)."""
    payload: dict[str, Any] = {
        "msgid": msgid or new_msgid(),
        "create_time": create_time,
        "aibotid": aibot_id,
        "chattype": "group" if chatid else "single",
        "from": {"userid": userid},
        "response_url": response_url,
        "msgtype": "event",
        "event": {
            "eventtype": "template_card_event",
            "template_card_event": {"card_type": card_type, "event_key": event_key, "task_id": task_id},
        },
    }
    if chatid:
        payload["chatid"] = chatid
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def app_text(*, corp_id: str, agent_id: int, userid: str, text: str, create_time: int, msg_id: str) -> bytes:
    return _xml(
        {
            "ToUserName": corp_id,
            "FromUserName": userid,
            "CreateTime": create_time,
            "MsgType": "text",
            "Content": text,
            "MsgId": msg_id,
            "AgentID": agent_id,
        }
    )


def app_card_click(
    *,
    corp_id: str,
    agent_id: int,
    userid: str,
    task_id: str,
    event_key: str,
    card_type: str,
    response_code: str,
    create_time: int,
) -> bytes:
    return _xml(
        {
            "ToUserName": corp_id,
            "FromUserName": userid,
            "CreateTime": create_time,
            "MsgType": "event",
            "Event": "template_card_event",
            "EventKey": event_key,
            "TaskId": task_id,
            "CardType": card_type,
            "ResponseCode": response_code,
            "AgentID": agent_id,
        }
    )


# -- sealed for the wire ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sealed:
    """A callback ready to POST: the query (``msg_signature``, ``timestamp``, ``nonce``) and the body."""

    query: str
    body: bytes
    content_type: str


def _query(crypto: CallbackCrypto, encrypt: str, timestamp: int, nonce: str) -> str:
    signature = crypto.signature(str(timestamp), nonce, encrypt)
    return f"msg_signature={signature}&timestamp={timestamp}&nonce={quote(nonce)}"


def seal_robot(crypto: CallbackCrypto, plaintext: bytes, *, timestamp: int, nonce: str | None = None) -> Sealed:
    nonce = nonce or new_nonce()
    encrypt = crypto.encrypt(plaintext)
    body = json.dumps({"encrypt": encrypt}).encode("ascii")
    return Sealed(_query(crypto, encrypt, timestamp, nonce), body, "application/json")


def seal_app(
    crypto: CallbackCrypto, plaintext: bytes, *, corp_id: str, agent_id: int, timestamp: int, nonce: str | None = None
) -> Sealed:
    nonce = nonce or new_nonce()
    encrypt = crypto.encrypt(plaintext)
    body = _xml({"ToUserName": corp_id, "Encrypt": encrypt, "AgentID": str(agent_id)})
    return Sealed(_query(crypto, encrypt, timestamp, nonce), body, "text/xml")


# -- passive replies ----------------------------------------------------------------------------------------------


class ReplyError(Exception):
    """An answer body that is not a passive reply the sandbox can open; ``str()`` says why."""


def open_robot_reply(crypto: CallbackCrypto, body: bytes) -> dict[str, Any]:
    """The robot's passive reply ``{"encrypt","msgsignature","timestamp","nonce"}`` → the reply's JSON."""
    try:
        envelope = json.loads(body)
        if not isinstance(envelope, dict):
            raise ReplyError("the answer is not a JSON object")
        plain = crypto.decrypt(
            _opt_str(envelope.get("msgsignature")),
            _opt_str(envelope.get("timestamp")),
            _opt_str(envelope.get("nonce")),
            _opt_str(envelope.get("encrypt")),
        )
        reply = json.loads(plain)
    except (ValueError, CallbackCryptoError) as exc:
        raise ReplyError(f"the robot's passive reply cannot be opened: {exc}") from None
    if not isinstance(reply, dict):
        raise ReplyError("the robot's passive reply is not a JSON object")
    return reply


def _opt_str(value: object) -> str | None:
    if value is None:
        return None
    return str(value)


def _xml_fields(data: bytes) -> dict[str, Any]:
    """A flat ``<xml>`` document as a dict (nested elements as dicts); no DOCTYPE accepted, so no entities."""
    if b"<!DOCTYPE" in data.upper() or b"<!ENTITY" in data.upper():
        raise ReplyError("the reply declares a DOCTYPE or entities")
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise ReplyError(f"the reply is not XML: {exc}") from None

    def convert(element: ElementTree.Element) -> Any:
        children = list(element)
        if not children:
            return element.text or ""
        return {child.tag: convert(child) for child in children}

    result = convert(root)
    if not isinstance(result, dict):
        raise ReplyError("the reply has no fields")
    return result


def open_app_reply(crypto: CallbackCrypto, body: bytes) -> dict[str, Any]:
    """The app's passive reply ``<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>`` → the reply's fields
    (``MsgType``, ``Content``, ``Button`` …)."""
    envelope = _xml_fields(body)
    try:
        plain = crypto.decrypt(
            _opt_str(envelope.get("MsgSignature")),
            _opt_str(envelope.get("TimeStamp")),
            _opt_str(envelope.get("Nonce")),
            _opt_str(envelope.get("Encrypt")),
        )
    except CallbackCryptoError as exc:
        raise ReplyError(f"the app's passive reply cannot be opened: {exc.message}") from None
    return _xml_fields(plain)
