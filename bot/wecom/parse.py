"""Decrypted WeCom callbacks → :mod:`bot.domain.events`.

App (自建应用, XML, pages 90238-90241): ``text`` messages, ``template_card_event`` (``EventKey``, ``TaskId``,
``CardType``, ``ResponseCode``), ``enter_agent``; everything else becomes :class:`OtherEvent`. XML is read into
the dict shape wechatpy's xmltodict gives (attributes dropped, text stripped, repeated elements as lists) by a
small builder over an expat parser that refuses any DOCTYPE outright, so neither internal entities (billion laughs)
nor external ones (XXE) are ever declared, let alone expanded; undeclared entities are an expat error. Every XML
document (the envelope and the message) goes through that one reader. Body size is the HTTP layer's limit.

Intelligent robot (智能机器人, JSON, pages 100719 messages, 101027 events, 101033 crypto): ``msgtype`` ``text``,
``mixed`` (text parts joined by newlines, images dropped), ``event`` (``template_card_event``, ``enter_chat``);
``chattype`` single/group, ``chatid``, ``from.userid``, ``msgid``, ``response_url``, ``quote``. In a group the text
starts with the robot's ``@Name`` mention, which is removed.

Uncertain, and handled both ways:

* the robot's ``template_card_event`` details: page 101027 nests them (``event.template_card_event.event_key``);
  ``WecomTeam/aibot-node-sdk``'s types put ``event_key`` / ``task_id`` directly on ``event``. Both are accepted,
  nested first.
* ``response_url`` on robot *events*: page 101027's generic event sample has none, WECOM.md says card clicks carry
  one. It is read from the top level when present, else ``None``.
* ``create_time`` is documented for robot events but absent from the text-message samples; without it ``at`` is
  the ``received_at`` the caller passes (the HTTP layer's injected clock), falling back to the wall clock.
* ``chattype`` is optional on robot events in the node SDK's types: when missing, a ``chatid`` means group.
* The exact shape of the robot's ``@Name`` prefix (separator after the name: space or U+2005) is from samples
  (``"@RobotA hello robot"``); any Unicode whitespace is accepted as the separator.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, NoReturn
from xml.parsers import expat

from bot.domain.clock import TZ
from bot.domain.events import CardClick, ChatType, EnterChat, InboundEvent, OtherEvent, Sender, TextMessage

# the inbox sources of WeCom's callbacks (the inbox is shared with the hotline's own dedup)
APP_SOURCE = "wecom_app"
AIBOT_SOURCE = "wecom_aibot"


class MalformedCallback(ValueError):
    """A decrypted (or envelope) payload that is not a WeCom callback we can read. ``message`` is safe to log."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _fail(message: str) -> NoReturn:
    raise MalformedCallback(message)


# -- XML ----------------------------------------------------------------------------------------------------------


def _refuse(*_args: object) -> NoReturn:
    raise ValueError("DOCTYPE, entity declarations and external entities are not allowed")


def _no_dtd_parser() -> Any:
    """An expat parser refusing a DOCTYPE (defusedxml's protections, stricter: the document is rejected at
    ``<!DOCTYPE``, before any declaration is read)."""
    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.UnparsedEntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.buffer_text = True
    return parser


class _DictBuilder:
    """expat events → nested dicts: an element with children is a dict (its own text, if any, under ``#text``), a
    text-only element its stripped text, an empty one None; an element repeated under one parent becomes a list."""

    __slots__ = ("stack",)

    def __init__(self) -> None:
        self.stack: list[tuple[dict[str, Any], list[str]]] = [({}, [])]

    def start(self, _name: str, _attrs: object) -> None:
        self.stack.append(({}, []))

    def data(self, text: str) -> None:
        self.stack[-1][1].append(text)

    def end(self, name: str) -> None:
        children, parts = self.stack.pop()
        text = "".join(parts).strip()
        value: Any
        if children:
            value = children
            if text:
                children["#text"] = text
        else:
            value = text or None
        parent = self.stack[-1][0]
        if name not in parent:
            parent[name] = value
        elif isinstance(parent[name], list):
            parent[name].append(value)
        else:
            parent[name] = [parent[name], value]

    @property
    def document(self) -> dict[str, Any]:
        return self.stack[0][0]


def _parse_xml(data: bytes) -> dict[str, Any]:
    parser = _no_dtd_parser()
    builder = _DictBuilder()
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
    except (expat.ExpatError, ValueError) as exc:
        _fail(f"not acceptable XML: {exc}")
    doc = builder.document
    if not isinstance(doc, dict) or list(doc) != ["xml"] or not isinstance(doc["xml"], dict):
        _fail("the root element must be <xml> with child elements")
    return doc["xml"]


def _xml_field(xml: Mapping[str, Any], name: str) -> str | None:
    value = xml.get(name)
    if value is None or isinstance(value, str):
        return value
    _fail(f"<{name}> must appear once, as text")


def _xml_required(xml: Mapping[str, Any], name: str) -> str:
    value = _xml_field(xml, name)
    if not value:
        _fail(f"<{name}> is missing")
    return value


def parse_app_envelope(body: bytes) -> tuple[str, str | None]:
    """The app's outer POST body ``<xml><ToUserName/><Encrypt/><AgentID/></xml>`` → ``(encrypt, agent_id)``.
    Other simple elements are ignored; a nested or repeated ``Encrypt`` is not."""
    xml = _parse_xml(body)
    return _xml_required(xml, "Encrypt"), _xml_field(xml, "AgentID") or None


def _timestamp(value: object, what: str) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | str):
        _fail(f"{what} is not a timestamp")
    text = str(value)
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        _fail(f"{what} is not a timestamp")
    try:
        return datetime.fromtimestamp(int(text), TZ)
    except (OverflowError, OSError, ValueError):
        _fail(f"{what} is out of range")


def parse_app_xml(xml: bytes) -> InboundEvent:
    """A decrypted app message (XML) → an event."""
    msg = _parse_xml(xml)
    msg_type = _xml_required(msg, "MsgType")
    user = _xml_required(msg, "FromUserName")
    at = _timestamp(_xml_required(msg, "CreateTime"), "CreateTime")
    agent_id = _xml_field(msg, "AgentID") or None
    sender = Sender(user)

    if msg_type == "text":
        msg_id = _xml_required(msg, "MsgId")
        return TextMessage(
            source="app",
            msg_id=msg_id,
            sender=sender,
            chat_type="single",
            chat_id=None,
            text=(_xml_field(msg, "Content") or "").strip(),
            quoted_text=None,
            at=at,
            agent_id=agent_id,
        )
    if msg_type != "event":
        key = f"app:msg:{_xml_field(msg, 'MsgId')}" if msg.get("MsgId") else _app_event_key(msg, msg_type)
        return OtherEvent(source="app", kind=msg_type, sender=sender, at=at, dedup_key=key, raw=MappingProxyType(msg))

    event = _xml_required(msg, "Event")
    if event == "template_card_event":
        event_key = _xml_required(msg, "EventKey")
        task_id = _xml_required(msg, "TaskId")
        return CardClick(
            source="app",
            event_key=event_key,
            task_id=task_id,
            sender=sender,
            chat_type="single",
            chat_id=None,
            response_code=_xml_field(msg, "ResponseCode") or None,
            response_url=None,
            at=at,
            dedup_key=_app_event_key(msg, event, task_id, event_key),
            card_type=_xml_field(msg, "CardType") or None,
            agent_id=agent_id,
        )
    if event == "enter_agent":
        return EnterChat(source="app", sender=sender, at=at, dedup_key=_app_event_key(msg, event), agent_id=agent_id)
    return OtherEvent(
        source="app",
        kind=f"event.{event}",
        sender=sender,
        at=at,
        dedup_key=_app_event_key(msg, event),
        raw=MappingProxyType(msg),
    )


def _app_event_key(msg: Mapping[str, Any], *parts: str) -> str:
    """Events have no MsgId: FromUserName + CreateTime (+ AgentID, the event and, for cards, task and key)."""
    head = [str(msg.get("AgentID") or ""), str(msg.get("FromUserName")), str(msg.get("CreateTime"))]
    return "app:event:" + ":".join(head + list(parts))


def read_stored(source: str, payload: str, received_at: datetime) -> InboundEvent:
    """The event of a stored inbox row (the decrypted plaintext), as the callback's handler read it: the inbox's
    :data:`bot.services.inbox.PayloadReader` for WeCom's sources."""
    if source == APP_SOURCE:
        return parse_app_xml(payload.encode("utf-8"))
    if source == AIBOT_SOURCE:
        return parse_aibot_json(payload.encode("utf-8"), received_at=received_at)
    raise MalformedCallback(f"no parser for inbox source {source!r}")


# -- JSON ---------------------------------------------------------------------------------------------------------


def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``'s ``object_pairs_hook``: an object naming a key twice is refused, not silently merged."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _parse_json(data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data, object_pairs_hook=no_duplicate_keys, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        _fail(f"not acceptable JSON: {exc}")
    if not isinstance(doc, dict):
        _fail("the payload must be a JSON object")
    if (problem := _unstorable(doc)) is not None:
        _fail(f"a string holds {problem}")
    return doc


def _unstorable(value: Any) -> str | None:
    """What in decoded JSON is no text the inbox (or anything after it) can store: ``"\\ud800"`` alone decodes to a
    lone surrogate, ``"\\u0000"`` to U+0000, which PostgreSQL refuses in text."""
    if isinstance(value, str):
        if "\x00" in value:
            return "U+0000 (\\u0000)"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "a lone surrogate escape (\\ud800-\\udfff)"
        return None
    if isinstance(value, dict):
        items = [*value.keys(), *value.values()]
    elif isinstance(value, list):
        items = value
    else:
        return None
    for item in items:
        if (problem := _unstorable(item)) is not None:
            return problem
    return None


def parse_aibot_envelope(body: bytes) -> str:
    """The robot's outer POST body ``{"encrypt": "..."}`` → the ``encrypt`` string."""
    encrypt = _parse_json(body).get("encrypt")
    if not isinstance(encrypt, str) or not encrypt:
        _fail('"encrypt" is missing')
    return encrypt


def _str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value or None
    _fail(f'"{key}" must be a string')


def _obj(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        _fail(f'"{key}" must be an object')
    return value


def _content(obj: Mapping[str, Any], key: str) -> str | None:
    """``{"<key>": {"content": "..."}}`` → the content."""
    return _str(_obj(obj, key), "content")


def _mixed_text(obj: Mapping[str, Any]) -> str | None:
    items = _obj(obj, "mixed").get("msg_item")
    if not isinstance(items, list):
        return None
    texts = [
        text
        for item in items
        if isinstance(item, dict) and item.get("msgtype") == "text" and (text := _content(item, "text"))
    ]
    return "\n".join(texts) if texts else None


def _quoted_text(msg: Mapping[str, Any]) -> str | None:
    quote = _obj(msg, "quote")
    match quote.get("msgtype"):
        case "text":
            return _content(quote, "text")
        case "mixed":
            return _mixed_text(quote)
        case "voice":
            return _content(quote, "voice")
        case _:
            return None


def strip_mention(text: str, robot_name: str | None, *, group: bool) -> str:
    """Remove the robot's own ``@Name`` mention and trim. With ``robot_name``, its first mention (at the start, or
    preceded by whitespace, and followed by whitespace or the end) is removed wherever it stands. In a group, when
    there is no such mention (name unknown or renamed there), the leading ``@word`` is taken as the robot's."""
    text = text.strip()
    if robot_name:
        mention = re.compile(r"(?:^|(?<=\s))@" + re.escape(robot_name) + r"(?:\s+|$)")
        stripped, count = mention.subn("", text, count=1)
        if count:
            return stripped.strip()
    if group:
        leading = re.match(r"@\S+(?:\s+|$)", text)
        if leading:
            return text[leading.end() :].strip()
    return text


def parse_aibot_json(
    data: bytes, robot_name: str | None = None, *, received_at: datetime | None = None
) -> InboundEvent:
    """A decrypted intelligent-robot callback (JSON) → an event. ``robot_name`` is the robot's display name, for
    removing its ``@`` mention; ``received_at`` is the time to use when the payload has no ``create_time``."""
    msg = _parse_json(data)
    msg_id = _str(msg, "msgid")
    if not msg_id:
        _fail('"msgid" is missing')
    key = f"aibot:msg:{msg_id}"
    msg_type = _str(msg, "msgtype")
    if not msg_type:
        _fail('"msgtype" is missing')

    if "create_time" in msg:
        at = _timestamp(msg["create_time"], "create_time")
    else:
        at = received_at if received_at is not None else datetime.now(TZ)

    sender_obj = _obj(msg, "from")
    userid = _str(sender_obj, "userid")
    sender = Sender(userid, _str(sender_obj, "corpid")) if userid else None
    chat_id = _str(msg, "chatid")
    chat_type = _chat_type(_str(msg, "chattype"), chat_id)
    response_url = _str(msg, "response_url")

    if msg_type in ("text", "mixed"):
        raw_text = _content(msg, "text") if msg_type == "text" else _mixed_text(msg)
        if sender is None:
            _fail('"from.userid" is missing')
        return TextMessage(
            source="aibot",
            msg_id=msg_id,
            sender=sender,
            chat_type=chat_type,
            chat_id=chat_id,
            text=strip_mention(raw_text or "", robot_name, group=chat_type == "group"),
            quoted_text=_quoted_text(msg),
            at=at,
            response_url=response_url,
        )
    if msg_type != "event":
        return OtherEvent(source="aibot", kind=msg_type, sender=sender, at=at, dedup_key=key, raw=MappingProxyType(msg))

    event = _obj(msg, "event")
    event_type = _str(event, "eventtype")
    if not event_type:
        _fail('"event.eventtype" is missing')
    if event_type == "template_card_event":
        detail = _obj(event, "template_card_event") or event
        event_key, task_id = _str(detail, "event_key"), _str(detail, "task_id")
        if not event_key or not task_id:
            _fail("template_card_event without event_key or task_id")
        if sender is None:
            _fail('"from.userid" is missing')
        return CardClick(
            source="aibot",
            event_key=event_key,
            task_id=task_id,
            sender=sender,
            chat_type=chat_type,
            chat_id=chat_id,
            response_code=None,
            response_url=response_url,
            at=at,
            dedup_key=key,
            card_type=_str(detail, "card_type"),
        )
    if event_type == "enter_chat" and sender is not None:
        return EnterChat(source="aibot", sender=sender, at=at, dedup_key=key, response_url=response_url)
    return OtherEvent(
        source="aibot", kind=f"event.{event_type}", sender=sender, at=at, dedup_key=key, raw=MappingProxyType(msg)
    )


def _chat_type(value: str | None, chat_id: str | None) -> ChatType:
    if value is None:
        return "group" if chat_id else "single"
    if value == "single":
        return "single"
    if value == "group":
        return "group"
    _fail(f"unknown chattype {value!r}")
