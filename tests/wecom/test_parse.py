"""Decrypted callbacks → events: every event type of both sources, the @-mention, hostile XML and JSON."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

import pytest
import xmltodict
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.clock import TZ
from bot.domain.events import CardClick, EnterChat, OtherEvent, Sender, TextMessage, dedup_key
from bot.wecom.crypto import CallbackCrypto
from bot.wecom.parse import (
    MalformedCallback,
    parse_aibot_envelope,
    parse_aibot_json,
    parse_app_envelope,
    parse_app_xml,
    strip_mention,
)

T0 = 1409659813
AT0 = datetime.fromtimestamp(T0, TZ)
RECEIVED = datetime(2026, 5, 6, 9, 30, tzinfo=TZ)

# The plaintexts of Tencent's vectors (see test_crypto).
DOC_PLAIN = (
    b"<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n"
    b"<FromUserName><![CDATA[mycreate]]></FromUserName>\n<CreateTime>1409659813</CreateTime>\n"
    b"<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[hello]]></Content>\n"
    b"<MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>"
)
DOC_EVENT = TextMessage(  # what DOC_PLAIN says
    source="app",
    msg_id="4561255354251345929",
    sender=Sender("mycreate"),
    chat_type="single",
    chat_id=None,
    text="hello",
    quoted_text=None,
    at=AT0,
    agent_id="218",
)
SAMPLE_PLAIN = (
    "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName>"
    "<CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>你好</Content><MsgId>1456453720</MsgId>"
    "<AgentID>1000002</AgentID></xml>"
).encode()
SAMPLE_ENVELOPE = (
    b"<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName>\n<Encrypt><![CDATA[Kl7kjoSf6DMD1zh7]]></Encrypt>"
    b"\n<AgentID><![CDATA[1000002]]></AgentID>\n</xml>"
)
JSON_SAMPLE_PLAIN = (
    b'{ "ToUserName": "wx5823bf96d3bd56c7", "FromUserName": :mycreate", "CreateTime": 1409659813, '
    b'"MsgType": "text", "Content": "hello", "MsgId": 4561255354251345929, "AgentID": 218}'
)


def app_xml(**fields: str) -> bytes:
    base = {"ToUserName": "ww1436e0e65a779aee", "FromUserName": "zhangsan", "CreateTime": str(T0)}
    body = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in {**base, **fields}.items())
    return f"<xml>{body}</xml>".encode()


def robot(msgtype: str | None, **fields: Any) -> bytes:
    base: dict[str, Any] = {
        "msgid": "CAIQ16HMjQYY/NGagIOAgAMgq4KM0AI=",
        "aibotid": "AIBOTID",
        "chatid": "CHATID",
        "chattype": "group",
        "from": {"userid": "lisi"},
        "response_url": "https://example.invalid/resp",
        "msgtype": msgtype,
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None}, ensure_ascii=False).encode()


def malformed(call: Any) -> str:
    with pytest.raises(MalformedCallback) as info:
        call()
    return info.value.message


# -- app XML --------------------------------------------------------------------------------------------------------


def test_doc_vector_text_message() -> None:
    event = parse_app_xml(DOC_PLAIN)
    assert event == DOC_EVENT
    assert dedup_key(event) == "app:msg:4561255354251345929"
    assert event.at.tzinfo is TZ


def test_sample_vector_text_message() -> None:
    event = parse_app_xml(SAMPLE_PLAIN)
    assert isinstance(event, TextMessage)
    assert (event.text, event.sender.userid, event.agent_id) == ("你好", "ChenJiaShun", "1000002")


def test_app_text_is_trimmed_and_keeps_at_signs() -> None:
    event = parse_app_xml(app_xml(MsgType="text", Content="  @张三 /派单 123\n ", MsgId="1", AgentID="1000002"))
    assert isinstance(event, TextMessage)
    assert event.text == "@张三 /派单 123"


def test_app_empty_content() -> None:
    event = parse_app_xml(app_xml(MsgType="text", Content="   ", MsgId="9"))
    assert isinstance(event, TextMessage)
    assert event.text == ""


def test_app_card_click() -> None:
    xml = app_xml(
        MsgType="event",
        Event="template_card_event",
        EventKey="accept",
        TaskId="ticket-42-accept",
        CardType="button_interaction",
        ResponseCode="RESPCODE",
        AgentID="1000002",
    )
    event = parse_app_xml(xml)
    assert event == CardClick(
        source="app",
        event_key="accept",
        task_id="ticket-42-accept",
        sender=Sender("zhangsan"),
        chat_type="single",
        chat_id=None,
        response_code="RESPCODE",
        response_url=None,
        at=AT0,
        dedup_key=f"app:event:1000002:zhangsan:{T0}:template_card_event:ticket-42-accept:accept",
        card_type="button_interaction",
        agent_id="1000002",
    )


def test_app_card_click_with_selected_items_keeps_the_scalars() -> None:
    xml = (
        b"<xml><FromUserName>u</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType>"
        b"<Event>template_card_event</Event><EventKey>k</EventKey><TaskId>t</TaskId><CardType>vote_interaction</CardType>"
        b"<SelectedItems><SelectedItem><QuestionKey>q</QuestionKey><OptionIds><OptionId>a</OptionId></OptionIds>"
        b"</SelectedItem></SelectedItems></xml>"
    )
    event = parse_app_xml(xml)
    assert isinstance(event, CardClick)
    assert (event.event_key, event.task_id, event.response_code) == ("k", "t", None)


def test_app_enter_agent() -> None:
    event = parse_app_xml(app_xml(MsgType="event", Event="enter_agent", EventKey="", AgentID="1000002"))
    assert event == EnterChat(
        source="app",
        sender=Sender("zhangsan"),
        at=AT0,
        dedup_key=f"app:event:1000002:zhangsan:{T0}:enter_agent",
        response_url=None,
        agent_id="1000002",
    )


def test_app_other_message_and_event() -> None:
    image = parse_app_xml(app_xml(MsgType="image", PicUrl="http://x", MediaId="m", MsgId="77"))
    assert isinstance(image, OtherEvent)
    assert (image.kind, image.dedup_key, image.raw["MediaId"]) == ("image", "app:msg:77", "m")
    sub = parse_app_xml(app_xml(MsgType="event", Event="subscribe"))
    assert isinstance(sub, OtherEvent)
    assert (sub.kind, sub.dedup_key) == ("event.subscribe", f"app:event::zhangsan:{T0}:subscribe")
    location = parse_app_xml(app_xml(MsgType="location"))
    assert isinstance(location, OtherEvent)
    assert location.dedup_key == f"app:event::zhangsan:{T0}:location"


def test_raw_is_read_only() -> None:
    event = parse_app_xml(app_xml(MsgType="image", MsgId="1"))
    assert isinstance(event, OtherEvent)
    with pytest.raises(TypeError):
        event.raw["MsgId"] = "2"  # type: ignore[index]


def test_events_are_frozen() -> None:
    event = parse_app_xml(DOC_PLAIN)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.text = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    "xml",
    [
        app_xml(Content="x", MsgId="1"),  # no MsgType
        app_xml(MsgType="text", Content="x"),  # text without MsgId
        app_xml(MsgType="event", Event="template_card_event", TaskId="t"),  # no EventKey
        app_xml(MsgType="event", Event="template_card_event", EventKey="k"),  # no TaskId
        app_xml(MsgType="event"),  # no Event
        app_xml(MsgType="text", MsgId="1", CreateTime="yesterday"),
        app_xml(MsgType="text", MsgId="1", CreateTime="99999999999999"),
        b"<xml><MsgType>text</MsgType><MsgType>text</MsgType></xml>",  # repeated
        b"<xml><MsgType><a>text</a></MsgType></xml>",  # nested
        b"<root><MsgType>text</MsgType></root>",  # wrong root
        b"<xml>text</xml>",
        b"<xml><MsgType>text</xml>",  # not well-formed
        b"",
        b"\xff\xfe garbage",
        b"<xml><Content>&undefined;</Content></xml>",  # undeclared entity
    ],
)
def test_malformed_app_xml(xml: bytes) -> None:
    malformed(lambda: parse_app_xml(xml))


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<xml><Encrypt>&lol9;</Encrypt><MsgType>text</MsgType><Content>&lol9;</Content></xml>"""

HOSTILE = {
    "billion_laughs": BILLION_LAUGHS,
    "xxe_file": b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Encrypt>&e;</Encrypt></xml>',
    "xxe_parameter": b'<!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1/x.dtd"> %p;]><xml><Encrypt>a</Encrypt></xml>',
    "external_dtd": b'<!DOCTYPE xml SYSTEM "http://127.0.0.1/x.dtd"><xml><Encrypt>a</Encrypt></xml>',
    "harmless_doctype": b"<!DOCTYPE xml><xml><Encrypt>a</Encrypt></xml>",
    "utf16_doctype": '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "b">]><xml><Encrypt>&a;</Encrypt></xml>'.encode(
        "utf-16"
    ),
}


@pytest.mark.parametrize("parse", [parse_app_xml, parse_app_envelope])
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_doctype_and_entities_are_refused_quickly(name: str, parse: Any) -> None:
    started = time.perf_counter()
    malformed(lambda: parse(HOSTILE[name]))
    assert time.perf_counter() - started < 0.5


def test_envelope() -> None:
    assert parse_app_envelope(SAMPLE_ENVELOPE) == ("Kl7kjoSf6DMD1zh7", "1000002")
    assert parse_app_envelope(b"<xml><ToUserName>x</ToUserName><Encrypt>abc</Encrypt></xml>") == ("abc", None)


@pytest.mark.parametrize(
    "body",
    [
        b"<xml><ToUserName>x</ToUserName></xml>",
        b"<xml><Encrypt></Encrypt></xml>",
        b"<xml><Encrypt>a</Encrypt><Encrypt>b</Encrypt></xml>",
        b"<xml><Encrypt><x>a</x></Encrypt></xml>",
        b'{"encrypt": "a"}',
        b"<Encrypt>a</Encrypt>",
    ],
)
def test_malformed_envelope(body: bytes) -> None:
    malformed(lambda: parse_app_envelope(body))


# -- robot JSON -----------------------------------------------------------------------------------------------------


def test_robot_group_text_from_the_doc_sample() -> None:
    data = robot(
        "text", text={"content": "@RobotA hello robot"}, quote={"msgtype": "text", "text": {"content": "原文"}}
    )
    event = parse_aibot_json(data, received_at=RECEIVED)
    assert event == TextMessage(
        source="aibot",
        msg_id="CAIQ16HMjQYY/NGagIOAgAMgq4KM0AI=",
        sender=Sender("lisi"),
        chat_type="group",
        chat_id="CHATID",
        text="hello robot",
        quoted_text="原文",
        at=RECEIVED,
        response_url="https://example.invalid/resp",
        agent_id=None,
    )
    assert dedup_key(event) == "aibot:msg:CAIQ16HMjQYY/NGagIOAgAMgq4KM0AI="


@pytest.mark.parametrize(
    ("content", "robot_name", "group", "expected"),
    [
        ("@RobotA hello robot", "RobotA", True, "hello robot"),
        ("@RobotA\u2005/派单 123", "RobotA", True, "/派单 123"),
        ("@12345 助手  查询 A001 ", "12345 助手", True, "查询 A001"),
        ("@张三 @RobotA 转派给他", "RobotA", True, "@张三 转派给他"),
        ("@RobotAB hi", "RobotA", True, "hi"),  # not our name: the leading mention is taken as the robot's
        ("@RobotA", "RobotA", True, ""),
        ("hello @RobotA", "RobotA", True, "hello"),
        ("mail a@RobotA now", "RobotA", True, "mail a@RobotA now"),
        ("@小助手 帮助", None, True, "帮助"),
        ("  no mention  ", None, True, "no mention"),
        ("@张三 在吗", None, False, "@张三 在吗"),  # single chat: only the robot's own name is removed
        ("@RobotA 在吗", "RobotA", False, "在吗"),
    ],
)
def test_mention_stripping(content: str, robot_name: str | None, group: bool, expected: str) -> None:
    assert strip_mention(content, robot_name, group=group) == expected
    data = robot("text", text={"content": content}, chattype="group" if group else "single")
    event = parse_aibot_json(data, robot_name, received_at=RECEIVED)
    assert isinstance(event, TextMessage)
    assert event.text == expected


def test_robot_single_chat_without_chatid() -> None:
    event = parse_aibot_json(robot("text", text={"content": " 帮助 "}, chattype="single", chatid=None))
    assert isinstance(event, TextMessage)
    assert (event.chat_type, event.chat_id, event.text) == ("single", None, "帮助")


def test_robot_mixed_text_parts_joined() -> None:
    mixed = {
        "msg_item": [
            {"msgtype": "text", "text": {"content": "@RobotA 现场照片"}},
            {"msgtype": "image", "image": {"url": "https://x/1"}},
            {"msgtype": "text", "text": {"content": "工单 A001"}},
        ]
    }
    event = parse_aibot_json(robot("mixed", mixed=mixed), "RobotA", received_at=RECEIVED)
    assert isinstance(event, TextMessage)
    assert event.text == "现场照片\n工单 A001"


@pytest.mark.parametrize(
    ("quote", "expected"),
    [
        ({"msgtype": "text", "text": {"content": "原话"}}, "原话"),
        ({"msgtype": "mixed", "mixed": {"msg_item": [{"msgtype": "text", "text": {"content": "图文"}}]}}, "图文"),
        ({"msgtype": "voice", "voice": {"content": "语音转文字"}}, "语音转文字"),
        ({"msgtype": "image", "image": {"url": "https://x"}}, None),
        ({"msgtype": "file", "file": {"url": "https://x"}}, None),
    ],
)
def test_robot_quote(quote: dict[str, Any], expected: str | None) -> None:
    event = parse_aibot_json(robot("text", text={"content": "@R 看这个"}, quote=quote), "R", received_at=RECEIVED)
    assert isinstance(event, TextMessage)
    assert event.quoted_text == expected


def test_robot_create_time_when_present() -> None:
    event = parse_aibot_json(robot("text", text={"content": "x"}, create_time=T0), received_at=RECEIVED)
    assert event.at == AT0


def test_robot_without_create_time_or_received_at_uses_the_clock() -> None:
    before = datetime.now(TZ)
    event = parse_aibot_json(robot("text", text={"content": "x"}))
    assert before <= event.at <= datetime.now(TZ)


def test_robot_external_sender() -> None:
    event = parse_aibot_json(robot("text", text={"content": "x"}, **{"from": {"userid": "u", "corpid": "wpOTHER"}}))
    assert isinstance(event, TextMessage)
    assert event.sender == Sender("u", "wpOTHER")


@pytest.mark.parametrize("nested", [True, False])
def test_robot_card_click(nested: bool) -> None:
    detail = {"card_type": "button_interaction", "event_key": "accept", "task_id": "T-1"}
    event_obj = (
        {"eventtype": "template_card_event", "template_card_event": detail}
        if nested
        else {"eventtype": "template_card_event", **detail}
    )
    event = parse_aibot_json(robot("event", event=event_obj, create_time=T0, msgid="evt-1"))
    assert event == CardClick(
        source="aibot",
        event_key="accept",
        task_id="T-1",
        sender=Sender("lisi"),
        chat_type="group",
        chat_id="CHATID",
        response_code=None,
        response_url="https://example.invalid/resp",
        at=AT0,
        dedup_key="aibot:msg:evt-1",
        card_type="button_interaction",
    )


def test_robot_enter_chat() -> None:
    data = robot("event", event={"eventtype": "enter_chat"}, chattype="single", chatid=None, create_time=T0)
    event = parse_aibot_json(data)
    assert event == EnterChat(
        source="aibot",
        sender=Sender("lisi"),
        at=AT0,
        dedup_key="aibot:msg:CAIQ16HMjQYY/NGagIOAgAMgq4KM0AI=",
        response_url="https://example.invalid/resp",
    )


def test_robot_other_messages_and_events() -> None:
    image = parse_aibot_json(robot("image", image={"url": "https://x"}, chattype="single"), received_at=RECEIVED)
    assert isinstance(image, OtherEvent)
    assert (image.kind, image.sender, image.raw["image"]) == ("image", Sender("lisi"), {"url": "https://x"})
    feedback = parse_aibot_json(robot("event", event={"eventtype": "feedback_event"}), received_at=RECEIVED)
    assert isinstance(feedback, OtherEvent)
    assert feedback.kind == "event.feedback_event"
    voice = parse_aibot_json(robot("voice", voice={"content": "语音"}), received_at=RECEIVED)
    assert isinstance(voice, OtherEvent)
    anonymous = parse_aibot_json(robot("stream", **{"from": None}), received_at=RECEIVED)
    assert isinstance(anonymous, OtherEvent)
    assert anonymous.sender is None


def test_robot_chattype_inferred_when_missing() -> None:
    grouped = parse_aibot_json(robot("text", text={"content": "x"}, chattype=None))
    assert isinstance(grouped, TextMessage)
    assert grouped.chat_type == "group"
    event = parse_aibot_json(robot("text", text={"content": "x"}, chattype=None, chatid=None))
    assert isinstance(event, TextMessage)
    assert event.chat_type == "single"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'"text"',
        b"\xff\xfe",
        b'{"msgid": "a", "msgid": "b", "msgtype": "text"}',  # duplicate key
        b'{"msgid": "a", "msgtype": "text", "create_time": NaN}',
        b"[" * 100_000 + b"]" * 100_000,  # nesting
        robot("text", msgid=None),
        robot("text", msgid=123),
        robot(None, text={"content": "x"}),
        robot("text", text={"content": 5}),
        robot("text", text="plain"),
        robot("text", chattype="channel"),
        robot("text", create_time="soon"),
        robot("text", create_time=True),
        robot("text", **{"from": None}),
        robot("text", **{"from": "lisi"}),
        robot("event", event={"eventtype": "template_card_event", "template_card_event": {"task_id": "t"}}),
        robot("event", event={"eventtype": "template_card_event", "event_key": "k"}),
        robot("event", event={"eventtype": "template_card_event", "event_key": "k", "task_id": "t"}, **{"from": None}),
        robot("event", event={}),
        JSON_SAMPLE_PLAIN,  # Tencent's own JSON sample plaintext has a typo
    ],
)
def test_malformed_robot_json(data: bytes) -> None:
    malformed(lambda: parse_aibot_json(data, received_at=RECEIVED))


def test_robot_envelope() -> None:
    assert parse_aibot_envelope(b'{"encrypt": "abc=="}') == "abc=="


@pytest.mark.parametrize(
    "body", [b"{}", b'{"encrypt": ""}', b'{"encrypt": 1}', b'{"encrypt": "a", "encrypt": "b"}', b"<xml/>", b"[]"]
)
def test_malformed_robot_envelope(body: bytes) -> None:
    malformed(lambda: parse_aibot_envelope(body))


# -- property: unicode text survives encrypt → decrypt → parse ------------------------------------------------------

TOKEN, KEY = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo", "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
XML_TEXT = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\ufffe\uffff") | st.sampled_from("\t\n\r")
)


@settings(max_examples=80, deadline=None)
# U+0000 and lone surrogates are refused (tests/wecom/callbacks): text WeCom sends holds neither
@given(
    content=st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",))),
    chat=st.sampled_from(["single", "group"]),
)
def test_robot_text_round_trip(content: str, chat: str) -> None:
    c = CallbackCrypto(TOKEN, KEY, "")
    plain = robot("text", text={"content": content}, chattype=chat, create_time=T0)
    sig, ts, nonce = c.signature("1", "2", (encrypt := c.encrypt(plain))), "1", "2"
    event = parse_aibot_json(c.decrypt(sig, ts, nonce, encrypt), "RobotA")
    assert isinstance(event, TextMessage)
    assert event.text == strip_mention(content, "RobotA", group=chat == "group")
    if chat == "single" and not content.strip().startswith("@RobotA"):
        assert event.text == content.strip()


@settings(max_examples=80, deadline=None)
@given(content=XML_TEXT)
def test_app_text_round_trip(content: str) -> None:
    c = CallbackCrypto(TOKEN, KEY, "ww1436e0e65a779aee")
    escaped = escape(content, {"\r": "&#13;"})
    xml = f"<xml><FromUserName>u</FromUserName><CreateTime>{T0}</CreateTime><MsgType>text</MsgType><Content>{escaped}</Content><MsgId>1</MsgId></xml>"
    encrypt = c.encrypt(xml.encode())
    event = parse_app_xml(c.decrypt(c.signature("1", "2", encrypt), "1", "2", encrypt))
    assert isinstance(event, TextMessage)
    assert event.text == content.strip()


# -- the XML reader reads what wechatpy's xmltodict reads ------------------------------------------------------------

_names = st.sampled_from(["ToUserName", "Event", "SelectedItem", "QuestionKey", "OptionIds", "OptionId", "Info"])
_texts = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)


@st.composite
def _elements(draw: st.DrawFn, depth: int = 0) -> str:
    name = draw(_names)
    if depth >= 3 or draw(st.booleans()):
        body = draw(_texts)
        inner = f"<![CDATA[{body}]]>" if draw(st.booleans()) and "]]>" not in body else escape(body)
    else:
        inner = "".join(draw(st.lists(_elements(depth + 1), max_size=4)))
        if draw(st.booleans()):
            inner = f"{escape(draw(_texts))}{inner}"
    attrs = ' id="1"' if draw(st.booleans()) else ""
    return f"<{name}{attrs}>{inner}</{name}>"


_APP_HEAD = "<FromUserName>u</FromUserName><CreateTime>1</CreateTime><MsgType>other</MsgType>"


@settings(max_examples=300, deadline=None)
@given(st.lists(_elements(), max_size=6), st.sampled_from(["", "\n", "  \n  "]))
def test_the_xml_reader_matches_xmltodict(children: list[str], gap: str) -> None:
    document = f"<xml>{gap}{_APP_HEAD}{gap}{gap.join(children)}{gap}</xml>".encode()
    expected = xmltodict.parse(document, xml_attribs=False, disable_entities=True)["xml"]
    event = parse_app_xml(document)
    assert isinstance(event, OtherEvent)
    assert dict(event.raw) == expected


def test_wecoms_own_text_message_in_any_layout() -> None:
    assert parse_app_xml(DOC_PLAIN) == DOC_EVENT
    for other in (
        DOC_PLAIN.replace(b"<![CDATA[mycreate]]>", b"mycreate"),
        DOC_PLAIN.replace(b"<CreateTime>1409659813</CreateTime>", b"<CreateTime><![CDATA[1409659813]]></CreateTime>"),
        DOC_PLAIN.replace(b"\n</xml>", b"\n<Extra>1</Extra></xml>"),
        b'<?xml version="1.0"?>' + DOC_PLAIN,
    ):
        assert parse_app_xml(other) == DOC_EVENT
    # bytes that are not UTF-8 (a stray byte, an encoded surrogate, an overlong NUL), in any of the strings: refused
    for bad in (b"\xff", b"\xed\xa0\x80", b"\xc0\x80"):
        for value in (b"wx5823bf96d3bd56c7", b"mycreate", b"hello"):
            with pytest.raises(MalformedCallback):
                parse_app_xml(DOC_PLAIN.replace(value, value + bad))
    for bad_text in (b"<xml><A>a]]>b</A></xml>", b"<xml><A>]]></A></xml>"):  # "]]>" outside CDATA: not XML
        with pytest.raises(MalformedCallback, match="not acceptable XML"):
            parse_app_xml(bad_text)
    with pytest.raises(MalformedCallback, match="FromUserName"):
        parse_app_xml(DOC_PLAIN.replace(b"mycreate", b"  "))
    with pytest.raises(MalformedCallback, match="CreateTime"):
        parse_app_xml(DOC_PLAIN.replace(b"1409659813", b"999999999999"))
