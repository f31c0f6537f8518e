"""Decrypted WeCom callbacks → :mod:`bot.domain.events`.

App (自建应用, XML, pages 90238-90241): ``text`` messages, ``template_card_event`` (``EventKey``, ``TaskId``,
``CardType``, ``ResponseCode``), ``enter_agent``; everything else becomes :class:`OtherEvent`. XML is read into
the dict shape wechatpy's xmltodict gives (attributes dropped, text stripped, repeated elements as lists) by a
small builder over an expat parser that refuses any DOCTYPE outright, so neither internal entities (billion laughs)
nor external ones (XXE) are ever declared, let alone expanded; undeclared entities are an expat error. The builder
replaced xmltodict on the callback path because it is about three times faster (every callback parses two
documents). Body size is the HTTP layer's limit.

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


class MalformedCallback(Exception):
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


# A flat document, as WeCom writes its app messages and most events: <xml> holding simple elements, each with text or
# one CDATA section. Such a document is read with two regular expressions instead of expat and the builder (a third
# of the time); whatever might read differently (an XML declaration, a DOCTYPE, attributes, nesting, a repeated or
# empty element, entities, a carriage return, a character XML forbids, bytes that are not UTF-8) goes to the parser,
# and the tests hold the two to the same result.
_WS = rb"[ \t\r\n]*"
_FLAT_DOCUMENT = re.compile(_WS + rb"<xml>(.*)</xml>" + _WS, re.DOTALL)
# an element with text (no markup, no entity, no carriage return) or one CDATA section (which ends at its first "]]>")
_NAME = rb"([A-Za-z_][A-Za-z0-9_]*)"
_CDATA = rb"<!\[CDATA\[([^\]]*(?:\](?!\]>)[^\]]*)*)\]\]>"
_TEXT = rb"((?:[^<&\r\]]|\](?!\]>))*)"  # "]]>" is not allowed in text
_FLAT_ELEMENTS = re.compile(_WS + rb"<" + _NAME + rb">(?:" + _CDATA + rb"|" + _TEXT + rb")</\1>")
_FLAT_BODY = re.compile(  # the same, repeated: the whole body is such elements
    rb"(?:"
    + _WS
    + rb"<"
    + _NAME
    + rb">(?:"
    + _CDATA.replace(b"(", b"(?:", 1)
    + rb"|"
    + _TEXT.replace(b"(", b"(?:", 1)
    + rb")</\1>)*"
    + _WS
)
_FORBIDDEN_BYTES = bytes([*range(0x00, 0x09), 0x0B, 0x0C, 0x0D, *range(0x0E, 0x20)])  # controls XML forbids, and \r


def _plain_characters(data: bytes) -> bool:
    """No character XML forbids (controls, U+FFFE, U+FFFF) and no carriage return (which XML reads as a newline):
    what the fast paths require of a document before reading it without the parser."""
    if len(data.translate(None, _FORBIDDEN_BYTES)) != len(data):
        return False
    return b"\xef\xbf" not in data or (b"\xef\xbf\xbe" not in data and b"\xef\xbf\xbf" not in data)


def _flat_xml(data: bytes) -> dict[str, Any] | None:
    """A flat document's elements, as :func:`_parse_xml` reads them; None when it is not one (see above)."""
    document = _FLAT_DOCUMENT.fullmatch(data)
    if document is None or not _plain_characters(data):
        return None
    start, end = document.span(1)
    if _FLAT_BODY.fullmatch(data, start, end) is None:
        return None
    elements = _FLAT_ELEMENTS.findall(data, start, end)
    try:
        result = {
            name.decode("ascii"): (cdata or text).decode("utf-8").strip() or None for name, cdata, text in elements
        }
    except UnicodeDecodeError:
        return None
    if len(result) != len(elements) or not result:  # a repeated element is a list; an empty <xml> is refused
        return None
    return result


def _parse_xml(data: bytes) -> dict[str, Any]:
    flat = _flat_xml(data)
    if flat is not None:
        return flat
    return _parse_xml_expat(data)


def _parse_xml_expat(data: bytes) -> dict[str, Any]:
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


# The envelope exactly as WeCom writes it: ToUserName, Encrypt (base64) and AgentID, each in one CDATA section. It
# is read without an XML parser (a tenth of the time); anything else (other elements, other order, entities,
# comments, a DOCTYPE, whitespace XML does not allow) goes through the parser. The ``Encrypt`` value is then held
# to the signature as always.
_CANONICAL_ENVELOPE = re.compile(
    rb"[ \t\r\n]*<xml>[ \t\r\n]*"
    rb"<ToUserName><!\[CDATA\[[A-Za-z0-9_@.\-]*\]\]></ToUserName>[ \t\r\n]*"
    rb"<Encrypt><!\[CDATA\[([A-Za-z0-9+/=]+)\]\]></Encrypt>[ \t\r\n]*"
    rb"<AgentID>(?:<!\[CDATA\[[ \t\r\n]*([0-9]*)[ \t\r\n]*\]\]>|[ \t\r\n]*([0-9]*)[ \t\r\n]*)</AgentID>[ \t\r\n]*"
    rb"</xml>[ \t\r\n]*"
)


def parse_app_envelope(body: bytes) -> tuple[str, str | None]:
    """The app's outer POST body ``<xml><ToUserName/><Encrypt/><AgentID/></xml>`` → ``(encrypt, agent_id)``.
    Other simple elements are ignored; a nested or repeated ``Encrypt`` is not."""
    canonical = _CANONICAL_ENVELOPE.fullmatch(body)
    if canonical is not None:
        agent_id = canonical.group(2) or canonical.group(3)
        return canonical.group(1).decode("ascii"), agent_id.decode("ascii") if agent_id else None
    return _envelope_from_xml(body)


def _envelope_from_xml(body: bytes) -> tuple[str, str | None]:
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


# A text message exactly as WeCom writes it: ToUserName, FromUserName, CreateTime, MsgType "text", Content, MsgId and
# AgentID in that order, the strings in one CDATA section each, the numbers as digits. It is read with one regular
# expression, straight into the event, without the element map. It is most of what the app's callback receives, and
# this reads it in half the time. Anything else (another order, another element, an entity, a character XML
# forbids, bytes that are not UTF-8) goes the general way, and the tests hold the two to the same event.
_TEXT_MESSAGE = re.compile(
    _WS
    + rb"<xml>"
    + _WS
    + rb"<ToUserName>"
    + _CDATA
    + rb"</ToUserName>"
    + _WS
    + rb"<FromUserName>"
    + _CDATA
    + rb"</FromUserName>"
    + _WS
    + rb"<CreateTime>([0-9]{1,12})</CreateTime>"
    + _WS
    + rb"<MsgType><!\[CDATA\[text\]\]></MsgType>"
    + _WS
    + rb"<Content>"
    + _CDATA
    + rb"</Content>"
    + _WS
    + rb"<MsgId>([0-9]+)</MsgId>"
    + _WS
    + rb"<AgentID>([0-9]+)</AgentID>"
    + _WS
    + rb"</xml>"
    + _WS
)


def _text_message(xml: bytes) -> TextMessage | None:
    """The event of a text message in WeCom's own layout (see above), as the general way reads it; None for any
    other document. A CreateTime out of range is refused here, with the general way's error."""
    match = _TEXT_MESSAGE.fullmatch(xml)
    if match is None or not _plain_characters(xml):
        return None
    to_user, from_user, create_time, content, msg_id, agent_id = match.groups()
    try:
        to_user.decode("utf-8")  # read, as every element is, though the event does not keep it
        user = from_user.decode("utf-8").strip()
        text = content.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    if not user:
        return None  # the general way refuses it, and says why
    return TextMessage(
        source="app",
        msg_id=msg_id.decode("ascii"),
        sender=Sender(user),
        chat_type="single",
        chat_id=None,
        text=text,
        quoted_text=None,
        at=_timestamp(create_time.decode("ascii"), "CreateTime"),
        agent_id=agent_id.decode("ascii"),
    )


def parse_app_xml(xml: bytes) -> InboundEvent:
    """A decrypted app message (XML) → an event."""
    text = _text_message(xml)
    if text is not None:
        return text
    return _parse_app_xml(xml)


def _parse_app_xml(xml: bytes) -> InboundEvent:
    """:func:`parse_app_xml` the general way: the document's elements, then the event they describe."""
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
